//! Up-front checks of the names a user gives (trace ids, namespaces, node, pod and
//! container names, `pvc:CLAIM[/SUBDIR]`), with the rules Kubernetes applies to each
//! kind: a bad name is refused with one line naming the argument, before any request
//! is built (a newline in a name would otherwise surface as "invalid uri character").

use crate::errors::{fail, Result};
use crate::manifest::{trace_id_of, PvcOutput, NAME_PREFIX};

/// Longest trace id: `kubectl-trace-<id>-<n>` must stay a valid Job name (63 characters,
/// the `job-name` label value), with room for a node index up to 999.
pub const MAX_TRACE_ID: usize = 63 - NAME_PREFIX.len() - 4;

/// `"a\nb"` as the user can read it (control characters escaped).
fn shown(value: &str) -> String {
    format!("{value:?}")
}

fn is_label_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
}

/// Why `value` is not an RFC 1123 label (`[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most `max`
/// characters); `None` when it is one.
fn label_problem(value: &str, max: usize) -> Option<String> {
    if value.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!("it contains the control character {:?}", c));
    }
    if value.len() > max {
        return Some(format!("it is longer than {max} characters"));
    }
    if let Some(c) = value.chars().find(|c| !is_label_char(*c)) {
        return Some(format!(
            "{c:?} is not allowed (lower-case letters, digits and '-' only)"
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Some("it must start and end with a letter or a digit".into());
    }
    None
}

/// Why `value` is not an RFC 1123 subdomain (labels joined by `.`, 253 characters at
/// most); `None` when it is one.
fn subdomain_problem(value: &str) -> Option<String> {
    if value.is_empty() {
        return Some("it is empty".into());
    }
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!("it contains the control character {:?}", c));
    }
    if value.len() > 253 {
        return Some("it is longer than 253 characters".into());
    }
    if let Some(c) = value.chars().find(|c| !is_label_char(*c) && *c != '.') {
        return Some(format!(
            "{c:?} is not allowed (lower-case letters, digits, '-' and '.' only)"
        ));
    }
    for part in value.split('.') {
        if part.is_empty() {
            return Some("it has an empty part between dots".into());
        }
        if part.starts_with('-') || part.ends_with('-') {
            return Some(
                "each dot-separated part must start and end with a letter or a digit".into(),
            );
        }
    }
    None
}

fn refuse(arg: &str, value: &str, why: String, rule: &str) -> crate::errors::Error {
    fail(format!("invalid {arg} {}: {why} ({rule})", shown(value)))
}

/// A namespace (`-n`, `--target-namespace`, the kubeconfig context's): an RFC 1123 label.
pub fn namespace(arg: &str, value: &str) -> Result<()> {
    match label_problem(value, 63) {
        Some(why) => Err(refuse(arg, value, why, "a namespace is an RFC 1123 label")),
        None => Ok(()),
    }
}

/// A container name (`-c`): an RFC 1123 label.
pub fn container(arg: &str, value: &str) -> Result<()> {
    match label_problem(value, 63) {
        Some(why) => Err(refuse(
            arg,
            value,
            why,
            "a container name is an RFC 1123 label",
        )),
        None => Ok(()),
    }
}

/// An object name (node, pod, workload, claim): an RFC 1123 subdomain.
pub fn object(arg: &str, value: &str) -> Result<()> {
    match subdomain_problem(value) {
        Some(why) => Err(refuse(arg, value, why, "names are RFC 1123 subdomains")),
        None => Ok(()),
    }
}

/// The trace id a TRACE argument names (an id, `kubectl-trace-<id>[-<n>]`, or
/// `job/kubectl-trace-<id>`), checked: an RFC 1123 label of at most [`MAX_TRACE_ID`]
/// characters, so that it never reaches a URL, a label selector, a directory or the
/// reader pod's command line as anything but a plain word.
pub fn trace_id(arg: &str) -> Result<String> {
    let rule =
        "trace ids are lower-case letters, digits and '-', as `kubectl trace get` shows them";
    if let Some(c) = arg.chars().find(|c| c.is_control()) {
        return Err(refuse(
            "trace id",
            arg,
            format!("it contains the control character {c:?}"),
            rule,
        ));
    }
    if let Some((kind, name)) = arg.trim().split_once('/') {
        let plain_kind = kind.starts_with(|c: char| c.is_ascii_lowercase())
            && kind.chars().all(|c| c.is_ascii_lowercase() || c == '.');
        if !plain_kind || name.contains('/') {
            return Err(refuse(
                "trace id",
                arg,
                "write ID, NAME or TYPE/NAME (e.g. job/kubectl-trace-ID)".into(),
                rule,
            ));
        }
    }
    let id = trace_id_of(arg);
    match label_problem(&id, MAX_TRACE_ID) {
        Some(why) => Err(refuse("trace id", arg, why, rule)),
        None => Ok(id),
    }
}

/// `pvc:CLAIM[/SUBDIR]` (`run --output`, `logs --from`): the claim an object name, each
/// part of the subdirectory plain letters, digits, `.`, `_` and `-`, not starting with
/// `-` (the directory reaches the runner's and the reader's command lines).
pub fn pvc_output(flag: &str, text: &str) -> Result<PvcOutput> {
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(fail(format!(
            "invalid {flag} {}: it contains the control character {c:?}",
            shown(text)
        )));
    }
    let out =
        PvcOutput::parse(text).map_err(|e| fail(e.to_string().replacen("--output", flag, 1)))?;
    if let Some(why) = subdomain_problem(&out.claim) {
        return Err(fail(format!(
            "invalid {flag} {}: the claim name {}: {why} (names are RFC 1123 subdomains)",
            shown(text),
            shown(&out.claim)
        )));
    }
    if let Some(sub) = &out.subdir {
        for part in sub.split('/') {
            let plain = part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if part.is_empty() || !plain || part.starts_with('-') || part == "." {
                return Err(fail(format!(
                    "invalid {flag} {}: the subdirectory part {} must be letters, digits, '.', '_' and '-', not starting with '-'",
                    shown(text),
                    shown(part)
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trace_ids() {
        assert_eq!(trace_id("k3x9q2m7fa").unwrap(), "k3x9q2m7fa");
        assert_eq!(
            trace_id("kubectl-trace-k3x9q2m7fa-2").unwrap(),
            "k3x9q2m7fa"
        );
        assert_eq!(trace_id("job/kubectl-trace-abc").unwrap(), "abc");
        let e = trace_id("ab\ncd").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid trace id \"ab\\ncd\": it contains the control character '\\n' (trace ids are lower-case letters, digits and '-', as `kubectl trace get` shows them)"
        );
        assert!(!e.contains('\n'));
        let e = trace_id("-rf").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid trace id \"-rf\": it must start and end with"),
            "{e}"
        );
        assert!(trace_id("../x")
            .unwrap_err()
            .to_string()
            .contains("TYPE/NAME"));
        assert!(trace_id("a/../../etc").is_err());
        assert!(trace_id("..").unwrap_err().to_string().contains("'.'"));
        assert!(trace_id("").is_err());
        assert!(trace_id("ABC").is_err());
        assert!(trace_id(&"a".repeat(MAX_TRACE_ID + 1)).is_err());
        assert!(trace_id(&"a".repeat(MAX_TRACE_ID)).is_ok());
    }

    #[test]
    fn kubernetes_names() {
        assert!(namespace("-n/--namespace", "kube-system").is_ok());
        let e = namespace("-n/--namespace", "a\nb").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid -n/--namespace \"a\\nb\": it contains the control character '\\n' (a namespace is an RFC 1123 label)"
        );
        assert!(namespace("-n", "a.b").is_err());
        assert!(namespace("-n", &"a".repeat(64)).is_err());
        assert!(object("node name", "ip-10-0-0-1.ec2.internal").is_ok());
        assert!(object("node name", "a..b").is_err());
        assert!(object("pod name", "-x").is_err());
        assert!(object("pod name", "Web").is_err());
        assert!(container("-c/--container", "app").is_ok());
        assert!(container("-c/--container", "a.b").is_err());
    }

    #[test]
    fn pvc_outputs() {
        let o = pvc_output("--output", "pvc:traces/team-a/x_1").unwrap();
        assert_eq!(o.claim, "traces");
        assert_eq!(o.subdir.as_deref(), Some("team-a/x_1"));
        for bad in [
            "pvc:tr\naces",
            "pvc:traces/-x",
            "pvc:traces/a\nb",
            "pvc:Traces",
            "pvc:traces/a b",
            "pvc:traces/./x",
        ] {
            let e = pvc_output("--output", bad).unwrap_err().to_string();
            assert!(e.starts_with("invalid --output "), "{bad:?}: {e}");
            assert!(!e.contains('\n'), "{e}");
        }
        let e = pvc_output("--from", "pvc:").unwrap_err().to_string();
        assert!(e.contains("--from"), "{e}");
    }
}
