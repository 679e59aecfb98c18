//! Exit codes of the runner, which the plugin reads from the terminated container (and
//! uses for its own exit status with the same meaning).

/// The run (or check) succeeded.
pub const OK: u8 = 0;
/// Any failure other than a script error: the node, the kernel, I/O, a target not found.
pub const FAILURE: u8 = 1;
/// The script or the command line is wrong (syntax, semantics, a malformed option).
pub const SCRIPT: u8 = 2;
