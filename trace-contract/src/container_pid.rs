//! `$container_pid`: scripts written for iovisor/kubectl-trace name the target
//! container's main process with it. It is not bpftrace language: it is replaced by a
//! number before the front end sees the script, by the runner with the pid it found, and
//! by the plugin's local check (and `trace-runner check`) with [`PLACEHOLDER`].

/// The variable's spelling.
pub const VAR: &str = "$container_pid";

/// The pid that stands for the container's when there is no target (checking a script).
pub const PLACEHOLDER: u32 = 1;

/// True when the script uses `$container_pid` (it then needs exactly one container).
pub fn uses(src: &str) -> bool {
    src.contains(VAR)
}

/// `src` with every `$container_pid` replaced by `pid`, padded with spaces to the
/// variable's width: every other line and column stays where it was, so diagnostics
/// point at the text the user wrote. Inside a path (`uprobe:/proc/$container_pid/exe:f`:
/// a `/` before it, or a `/` or `:` after it) the pid goes in unpadded, since spaces
/// would end the path.
pub fn substitute(src: &str, pid: u32) -> String {
    if !uses(src) {
        return src.to_string();
    }
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find(VAR) {
        out.push_str(&rest[..at]);
        rest = &rest[at + VAR.len()..];
        let in_path = out.ends_with('/') || rest.starts_with(['/', ':']);
        if in_path {
            out.push_str(&pid.to_string());
        } else {
            out.push_str(&format!("{:<w$}", pid, w = VAR.len()));
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitution_keeps_columns() {
        let src = "BEGIN { @[$container_pid] = count(); }";
        let out = substitute(src, 4_294_967_295);
        assert_eq!(out, "BEGIN { @[4294967295    ] = count(); }");
        assert_eq!(out.len(), src.len());
        assert_eq!(out.find("] ="), src.find("] ="));
        assert_eq!(
            substitute("$container_pid+$container_pid", 7),
            "7             +7             "
        );
        assert_eq!(substitute("BEGIN {}", 7), "BEGIN {}");
        // In a probe path the pid is not padded: spaces would end the path.
        assert_eq!(
            substitute("uprobe:/proc/$container_pid/exe:main { @ = count(); }", 42),
            "uprobe:/proc/42/exe:main { @ = count(); }"
        );
        assert_eq!(
            substitute(
                "uprobe:/proc/$container_pid/root/bin/app:f /pid == $container_pid/ {}",
                9
            ),
            "uprobe:/proc/9/root/bin/app:f /pid == 9             / {}"
        );
        assert!(uses("/pid == $container_pid/"));
        assert!(!uses("$container"));
    }
}
