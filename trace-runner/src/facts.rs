//! The live node's facts for code generation ([`NodeFacts`]): tracepoint formats and
//! kernel types come from [`Tracefs`]'s [`trace_lang::ProbeEnv`] (tracefs and BTF, cached
//! there), kernel symbols from `/proc/kallsyms` ([`crate::symbols`]), the pid namespace
//! from `/proc/self/ns/pid`.

use crate::compile::node_facts::NodeFacts;
use crate::tracefs::Tracefs;

/// The inode number of the initial pid namespace (`PROC_PID_INIT_INO`).
const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// `(dev, inode)` of this process's pid namespace when it is not the initial one.
fn own_pid_namespace() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/ns/pid").ok()?;
    (m.ino() != INIT_PID_NS_INO).then(|| (m.dev(), m.ino()))
}

impl NodeFacts for Tracefs {
    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        crate::symbols::kernel_address(name)
    }

    fn kallsyms_lists_functions_only(&self) -> bool {
        crate::symbols::kernel_lists_functions_only()
    }

    fn pid_namespace(&self) -> Option<(u64, u64)> {
        own_pid_namespace()
    }
}
