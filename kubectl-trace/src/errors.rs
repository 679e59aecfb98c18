//! The plugin's error type and the translation of Kubernetes API failures into one clear
//! line each: RBAC (name the verb and resource), not found, unreachable API server, bad
//! credentials, admission webhooks and PodSecurity (name the namespace label to add).

use std::fmt;

/// Exit status for script errors (syntax or semantic), as promised in `--help`; the
/// runner's too.
pub const EXIT_SCRIPT: i32 = trace_contract::exit::SCRIPT as i32;
/// Exit status for every other failure.
pub const EXIT_FAILURE: i32 = trace_contract::exit::FAILURE as i32;
/// Exit status after a second Ctrl-C.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The namespace label that lets privileged trace pods through PodSecurity admission.
pub const PRIVILEGED_LABEL: &str = "pod-security.kubernetes.io/enforce=privileged";

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// The script did not pass the language front end; already rendered with file:line:col.
    Script(String),
    /// Any other failure, already phrased for the user.
    Failed(String),
    /// The user left with a second Ctrl-C; the message says how to clean up.
    Interrupted(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Script(_) => EXIT_SCRIPT,
            Error::Failed(_) => EXIT_FAILURE,
            Error::Interrupted(_) => EXIT_INTERRUPTED,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Script(s) | Error::Failed(s) | Error::Interrupted(s) => f.write_str(s),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// Shorthand for a plain failure.
pub fn fail(msg: impl Into<String>) -> Error {
    Error::Failed(msg.into())
}

/// What the plugin was doing when a request failed, to name it in the message.
#[derive(Debug, Clone, PartialEq)]
pub struct Op {
    /// RBAC verb: get, list, create, delete, watch, patch.
    pub verb: &'static str,
    /// RBAC resource as `kubectl auth can-i` names it: `jobs.batch`, `pods`, `pods/log`.
    pub resource: &'static str,
    /// Namespace of the request; `None` for cluster-scoped resources or all namespaces.
    pub namespace: Option<String>,
    /// Object name when the request addresses one object.
    pub name: Option<String>,
}

impl Op {
    pub fn new(verb: &'static str, resource: &'static str, namespace: Option<&str>) -> Self {
        Op {
            verb,
            resource,
            namespace: namespace.map(str::to_string),
            name: None,
        }
    }

    pub fn named(mut self, name: &str) -> Self {
        self.name = Some(name.to_string());
        self
    }

    /// Singular kind for messages: `jobs.batch` -> `job`, `pods/log` -> `pod`.
    pub fn kind(&self) -> &'static str {
        let base = self
            .resource
            .split(['/', '.'])
            .next()
            .unwrap_or(self.resource);
        match base {
            "pods" => "pod",
            "jobs" => "job",
            "cronjobs" => "cronjob",
            "configmaps" => "configmap",
            "nodes" => "node",
            "namespaces" => "namespace",
            "deployments" => "deployment",
            "statefulsets" => "statefulset",
            "daemonsets" => "daemonset",
            "events" => "event",
            "persistentvolumeclaims" => "persistentvolumeclaim",
            _ => "object",
        }
    }

    fn where_(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("in namespace {ns}"),
            None => "at the cluster scope".to_string(),
        }
    }

    fn what(&self) -> String {
        match &self.name {
            Some(n) => format!("{} {}", self.kind(), n),
            None => format!("the {}", self.kind()),
        }
    }
}

/// Turn a kube client error into one line for the user.
pub fn explain(err: &kube::Error, op: &Op, server: &str) -> String {
    match err {
        kube::Error::Api(status) => {
            explain_status(status.code, &status.reason, &status.message, op, server)
        }
        kube::Error::InferConfig(e) => format!("bad kubeconfig: {e}"),
        kube::Error::InferKubeconfig(e) => format!("bad kubeconfig: {}", chain(e)),
        kube::Error::Auth(e) => format!(
            "cannot authenticate to the API server at {server}: {}",
            chain(e)
        ),
        kube::Error::HyperError(_) | kube::Error::Service(_) => unreachable_message(err, server),
        kube::Error::SerdeError(e) => {
            format!(
                "unexpected answer from the API server at {server} to {} {}: {e}",
                op.verb, op.resource
            )
        }
        other => format!("{} {} failed: {}", op.verb, op.resource, chain(other)),
    }
}

/// The kubeconfig's credential plugin (`user.exec`): its command and install hint.
#[derive(Debug, Clone, PartialEq)]
pub struct CredentialPlugin {
    pub command: String,
    pub install_hint: Option<String>,
}

/// One line for a credential plugin that failed, found anywhere in `err`'s chain:
/// which command, why (its exit status and first line of stderr, or why it could not
/// start, with its install hint), never kube's debug dump of the process output.
pub fn credential_plugin_message(
    err: &(dyn std::error::Error + 'static),
    plugin: &CredentialPlugin,
) -> Option<String> {
    use kube::client::AuthError;
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(a) = e.downcast_ref::<AuthError>() {
            let cmd = &plugin.command;
            return Some(match a {
                AuthError::AuthExecStart(io) => format!(
                    "the kubeconfig's credential plugin {cmd:?} cannot be run: {io}{}",
                    plugin
                        .install_hint
                        .as_deref()
                        .map(|h| format!("; {}", one_line(h)))
                        .unwrap_or_default()
                ),
                AuthError::AuthExecRun { out, .. } => {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    let why = stderr
                        .lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(|l| format!(": {}", one_line(l)))
                        .unwrap_or_default();
                    format!(
                        "the kubeconfig's credential plugin {cmd:?} failed ({}){why}",
                        out.status
                    )
                }
                AuthError::AuthExecParse(p) => format!(
                    "the kubeconfig's credential plugin {cmd:?} printed no valid ExecCredential: {}",
                    one_line(&p.to_string())
                ),
                other => format!(
                    "the kubeconfig's credential plugin {cmd:?} failed: {}",
                    one_line(&other.to_string())
                ),
            });
        }
        cur = e.source();
    }
    None
}

/// `cannot reach the API server at URL: ...` with the innermost cause.
fn unreachable_message(err: &(dyn std::error::Error + 'static), server: &str) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    let mut innermost = err.to_string();
    let mut io_kind = None;
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        innermost = e.to_string();
        cur = e.source();
    }
    let why = match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_string(),
        Some(std::io::ErrorKind::TimedOut) => "timed out".to_string(),
        _ if innermost.contains("Connection refused") => "connection refused".to_string(),
        _ if innermost.to_lowercase().contains("timed out") || innermost.contains("elapsed") => {
            "timed out".to_string()
        }
        _ => innermost,
    };
    format!("cannot reach the API server at {server}: {why}")
}

/// An error and its causes, joined by `: ` (without repeating identical messages).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        let full = e.to_string();
        // Some errors (YAML parsers) draw a snippet under their first line: keep one line.
        let s = full.lines().next().unwrap_or("").trim().to_string();
        if !s.is_empty() && !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = e.source();
    }
    parts.join(": ")
}

/// Explain a failed API status (the `Status` object the server answered with).
pub fn explain_status(code: u16, reason: &str, message: &str, op: &Op, server: &str) -> String {
    // A proxy's HTML page or a multi-line message: one line, of a readable length.
    let (reason, message) = (&one_line(reason), &one_line(message));
    if message.contains("violates PodSecurity") {
        return pod_security_message(op.namespace.as_deref().unwrap_or("default"), message);
    }
    if let Some(m) = admission_webhook_message(message, op) {
        return m;
    }
    match code {
        401 => format!(
            "unauthorized: the API server at {server} rejected your credentials (log in again, or check --context/--user)"
        ),
        403 => format!(
            "forbidden: you cannot {} {} {} (ask for the kubectl-trace-user ClusterRole, and the Role of that name where traces run, e.g. -n kubectl-trace)",
            op.verb,
            op.resource,
            op.where_()
        ),
        404 => match (&op.name, &op.namespace) {
            (Some(name), Some(ns)) => format!("{} {name} not found in namespace {ns}", op.kind()),
            (Some(name), None) => format!("{} {name} not found", op.kind()),
            _ => format!("the API server at {server} does not serve {}", op.resource),
        },
        409 if reason == "AlreadyExists" => format!("{} already exists {}", op.what(), op.where_()),
        400 | 409 | 422 => format!("the API server rejected {}: {}", op.what(), message),
        _ => {
            let detail = if message.is_empty() { reason } else { message };
            format!("{} {} failed: {} (HTTP {code})", op.verb, op.resource, detail)
        }
    }
}

/// `text` on one line: control characters and runs of white space become one space, and
/// more than 300 characters are cut.
pub fn one_line(text: &str) -> String {
    let words: Vec<&str> = text
        .split(|c: char| c.is_whitespace() || c.is_control())
        .filter(|w| !w.is_empty())
        .collect();
    let s = words.join(" ");
    if s.chars().count() > 300 {
        s.chars().take(300).collect::<String>() + "..."
    } else {
        s
    }
}

/// A PodSecurity rejection, with the label that lets trace pods in.
pub fn pod_security_message(namespace: &str, message: &str) -> String {
    let level = message
        .split("violates PodSecurity \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or("baseline");
    format!(
        "PodSecurity admission ({level}) forbids privileged trace pods in namespace {namespace}; {}",
        pod_security_hint(namespace)
    )
}

/// The namespace the install manifests create for trace pods (labelled privileged).
pub const INSTALL_NAMESPACE: &str = "kubectl-trace";

/// What to do when `namespace` forbids privileged pods: trace from the namespace the
/// install creates, aiming at the application's namespace (rather than relabelling it).
pub fn pod_security_hint(namespace: &str) -> String {
    if namespace == INSTALL_NAMESPACE {
        format!(
            "the install labels it {PRIVILEGED_LABEL}: kubectl label namespace {namespace} {PRIVILEGED_LABEL} --overwrite"
        )
    } else {
        format!(
            "run the trace from the namespace the install creates (labelled {PRIVILEGED_LABEL}), \
             aimed at this one: kubectl trace run ... -n {INSTALL_NAMESPACE} --target-namespace {namespace}"
        )
    }
}

fn admission_webhook_message(message: &str, op: &Op) -> Option<String> {
    let rest = message.split("admission webhook \"").nth(1)?;
    let name = rest.split('"').next().unwrap_or("?");
    let why = message
        .split("denied the request: ")
        .nth(1)
        .unwrap_or(message)
        .trim();
    let ns = op.namespace.as_deref().unwrap_or("default");
    let lower = why.to_lowercase();
    let hint = if ["privileged", "hostpid", "hostpath", "host namespace"]
        .iter()
        .any(|w| lower.contains(w))
    {
        format!(
            "; trace pods must be privileged with hostPID and hostPath mounts: ask for a policy exemption for namespace {ns} (and label it {PRIVILEGED_LABEL})"
        )
    } else {
        String::new()
    };
    Some(format!(
        "the admission webhook {name:?} rejected {}: {why}{hint}",
        op.what()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_err(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(
            kube::core::Status::failure(message, reason)
                .with_code(code)
                .boxed(),
        )
    }

    #[test]
    fn forbidden_names_verb_and_resource() {
        let op = Op::new("create", "jobs.batch", Some("tracing"));
        let e = api_err(
            403,
            "Forbidden",
            "jobs.batch is forbidden: User \"bob\" cannot create resource \"jobs\"",
        );
        assert_eq!(
            explain(&e, &op, "https://k8s:6443"),
            "forbidden: you cannot create jobs.batch in namespace tracing (ask for the kubectl-trace-user ClusterRole, and the Role of that name where traces run, e.g. -n kubectl-trace)"
        );
        let op = Op::new("get", "nodes", None).named("n1");
        let e = api_err(403, "Forbidden", "nope");
        assert!(explain(&e, &op, "x").contains("cannot get nodes at the cluster scope"));
    }

    #[test]
    fn not_found_names_object() {
        let op = Op::new("get", "pods", Some("prod")).named("web-0");
        let e = api_err(404, "NotFound", "pods \"web-0\" not found");
        assert_eq!(
            explain(&e, &op, "x"),
            "pod web-0 not found in namespace prod"
        );
        let op = Op::new("get", "nodes", None).named("n9");
        assert_eq!(explain(&e, &op, "x"), "node n9 not found");
    }

    #[test]
    fn pod_security_names_label() {
        let op = Op::new("create", "pods", Some("apps"));
        let msg = "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": privileged (container \"trace-runner\" must not set securityContext.privileged=true)";
        let e = api_err(403, "Forbidden", msg);
        let s = explain(&e, &op, "x");
        assert!(s.contains("baseline:latest"), "{s}");
        assert!(
            s.ends_with("kubectl trace run ... -n kubectl-trace --target-namespace apps"),
            "{s}"
        );
        let op = Op::new("create", "pods", Some("kubectl-trace"));
        let s = explain(&e, &op, "x");
        assert!(
            s.ends_with("kubectl label namespace kubectl-trace pod-security.kubernetes.io/enforce=privileged --overwrite"),
            "{s}"
        );
    }

    #[test]
    fn webhook_explained() {
        let op = Op::new("create", "jobs.batch", Some("apps")).named("kubectl-trace-abc");
        let msg = "admission webhook \"validation.gatekeeper.sh\" denied the request: [psp-privileged] Privileged container is not allowed: trace-runner";
        let e = api_err(400, "BadRequest", msg);
        let s = explain(&e, &op, "x");
        assert!(s.starts_with("the admission webhook \"validation.gatekeeper.sh\" rejected job kubectl-trace-abc: [psp-privileged]"), "{s}");
        assert!(s.contains(PRIVILEGED_LABEL), "{s}");
    }

    #[test]
    fn unauthorized_and_invalid() {
        let op = Op::new("list", "jobs.batch", Some("default"));
        let s = explain(
            &api_err(401, "Unauthorized", "Unauthorized"),
            &op,
            "https://k:6443",
        );
        assert!(
            s.starts_with("unauthorized: the API server at https://k:6443"),
            "{s}"
        );
        let op = Op::new("create", "jobs.batch", Some("default")).named("j");
        let s = explain(&api_err(422, "Invalid", "Job.batch \"j\" is invalid: spec.template.spec.containers[0].image: Required value"), &op, "x");
        assert!(
            s.starts_with("the API server rejected job j: Job.batch"),
            "{s}"
        );
    }

    #[test]
    fn multi_line_messages_become_one_line() {
        let op = Op::new("list", "jobs.batch", Some("default"));
        let e = api_err(
            502,
            "BadGateway",
            "<html>\n<body>bad\tgateway</body>\r\n</html>",
        );
        assert_eq!(
            explain(&e, &op, "x"),
            "list jobs.batch failed: <html> <body>bad gateway</body> </html> (HTTP 502)"
        );
        let long = "x ".repeat(400);
        let s = explain(&api_err(500, "InternalError", &long), &op, "x");
        assert!(s.len() < 350, "{s}");
    }

    #[test]
    fn exit_codes() {
        assert_eq!(Error::Script("x".into()).exit_code(), 2);
        assert_eq!(fail("x").exit_code(), 1);
    }
}
