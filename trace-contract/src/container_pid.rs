//! `$container_pid`: scripts written for iovisor/kubectl-trace name the target
//! container's main process with it. The front end gives it its value
//! (`trace_lang::Predefined::container_pid`): the runner the pid it found, the plugin's
//! local check (and `trace-runner check`) [`PLACEHOLDER`].

/// The variable's spelling.
pub const VAR: &str = "$container_pid";

/// The pid that stands for the container's when there is no target (checking a script).
pub const PLACEHOLDER: u32 = 1;

/// True when the script uses `$container_pid` (it then needs exactly one container).
pub fn uses(src: &str) -> bool {
    src.contains(VAR)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_finds_the_variable() {
        assert!(uses("/pid == $container_pid/"));
        assert!(!uses("$container"));
    }
}
