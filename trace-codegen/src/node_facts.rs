//! What code generation needs to know about the node it generates for, as a trait: the
//! tracepoint formats and kernel types of [`ProbeEnv`] (also what the front end asks),
//! kernel symbol addresses and the runner's pid namespace. Code generation reads the
//! system only through it; the live implementation is trace-runner's `facts` (tracefs,
//! BTF, `/proc`), tests pass fixed facts.

use trace_lang::ProbeEnv;

/// Facts about the node beyond [`ProbeEnv`]. Every default describes a node that
/// cannot tell.
pub trait NodeFacts: ProbeEnv {
    /// The address of a kernel symbol of any kind (functions and data, e.g. `avenrun`),
    /// for `kaddr()`; `None` if absent or hidden.
    fn kernel_symbol(&self, _name: &str) -> Option<u64> {
        None
    }
    /// Whether the kernel's symbol list lacks data symbols (built without
    /// `CONFIG_KALLSYMS_ALL`): then `kaddr()` of a variable cannot be resolved.
    fn kallsyms_lists_functions_only(&self) -> bool {
        false
    }
    /// `(dev, inode)` of the runner's pid namespace when it is not the initial one: pids
    /// stored for user-space symbolization are then those of this namespace.
    fn pid_namespace(&self) -> Option<(u64, u64)> {
        None
    }
}

/// A node about which nothing is known.
impl NodeFacts for trace_lang::sema::NoEnv {}
