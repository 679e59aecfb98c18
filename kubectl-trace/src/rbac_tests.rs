//! The plugin's API footprint against the RBAC manifests, so that neither can drift.
//!
//! [`REQUESTS`] lists every request the plugin makes: verb, resource and where — the
//! trace namespace (where Jobs, CronJobs, ConfigMaps, trace pods and reader pods live),
//! the namespace of a target, every namespace (`-A`), or the cluster scope. The request
//! mocks (mock_tests.rs, exec_tests.rs) pass each request they see to [`check_seen`],
//! which fails unless it is listed; the tests here check the list against
//! `manifests/`: the ClusterRole `kubectl-trace-user` (bound cluster-wide) and the Role
//! `kubectl-trace-user` (bound in the trace namespace only) grant each listed request
//! where it is made, writes only through the Role, and nothing that no request uses.

use std::collections::BTreeSet;

use serde_json::Value;

/// Where a request is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The namespace traces run in (`-n`): only the Role applies there as well.
    Trace,
    /// The namespace of a traced pod or workload (`--target-namespace`): any namespace.
    Target,
    /// Every namespace at once (`get -A`, `delete --all -A`).
    AllNamespaces,
    /// A cluster-scoped resource (nodes, namespaces).
    Cluster,
}

/// One kind of request the plugin makes.
#[derive(Debug, Clone, Copy)]
pub struct Request {
    pub verb: &'static str,
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource as RBAC names it, subresource included (`pods/exec`).
    pub resource: &'static str,
    pub scope: Scope,
    /// `None`: the roles grant it. `Some(why)`: deliberately not granted (the plugin
    /// copes without it, or the feature needs more than the roles give).
    pub beyond: Option<&'static str>,
    pub used_by: &'static str,
}

const fn req(
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    scope: Scope,
    used_by: &'static str,
) -> Request {
    Request {
        verb,
        group,
        resource,
        scope,
        beyond: None,
        used_by,
    }
}

use Scope::*;

/// Every request the plugin makes.
pub const REQUESTS: &[Request] = &[
    // In the trace namespace.
    req("create", "batch", "jobs", Trace, "run"),
    req("create", "batch", "cronjobs", Trace, "run --schedule"),
    req("get", "batch", "jobs", Trace, "attach (the Job's status)"),
    req("list", "batch", "jobs", Trace, "get, logs, attach, delete"),
    req("list", "batch", "cronjobs", Trace, "get, logs, delete"),
    req("watch", "batch", "jobs", Trace, "get -w"),
    req("watch", "batch", "cronjobs", Trace, "get -w"),
    req(
        "delete",
        "batch",
        "jobs",
        Trace,
        "delete, run (after a failure), Ctrl-C stop",
    ),
    req(
        "delete",
        "batch",
        "cronjobs",
        Trace,
        "delete, run (after a failure)",
    ),
    req("create", "", "configmaps", Trace, "run"),
    req("list", "", "configmaps", Trace, "delete"),
    req("delete", "", "configmaps", Trace, "delete"),
    req(
        "get",
        "",
        "pods",
        Trace,
        "attach, logs: trace pods; the reader pod",
    ),
    req(
        "list",
        "",
        "pods",
        Trace,
        "attach, logs: trace pods; delete: reader pods",
    ),
    req(
        "create",
        "",
        "pods",
        Trace,
        "logs on a volume: the reader pod",
    ),
    req(
        "watch",
        "",
        "pods",
        Trace,
        "attach: wait for trace pods; logs on a volume: wait for the reader pod",
    ),
    req(
        "delete",
        "",
        "pods",
        Trace,
        "Ctrl-C stop; the reader pod; delete",
    ),
    req(
        "create",
        "",
        "pods/exec",
        Trace,
        "logs on a volume: find, stat, tar in the reader",
    ),
    req("get", "", "pods/log", Trace, "attach, logs"),
    req(
        "get",
        "",
        "persistentvolumeclaims",
        Trace,
        "run --output pvc:CLAIM",
    ),
    req(
        "list",
        "",
        "events",
        Trace,
        "attach: why a pod does not start",
    ),
    // In the namespaces of the targets.
    req("get", "", "pods", Target, "run pod/NAME"),
    req("list", "", "pods", Target, "run -l, deploy/, sts/, ds/"),
    req("get", "apps", "deployments", Target, "run deploy/NAME"),
    req("get", "apps", "statefulsets", Target, "run sts/NAME"),
    req("get", "apps", "daemonsets", Target, "run ds/NAME"),
    // Across namespaces.
    req(
        "list",
        "batch",
        "jobs",
        AllNamespaces,
        "get -A, delete --all -A",
    ),
    req(
        "list",
        "batch",
        "cronjobs",
        AllNamespaces,
        "get -A, delete --all -A",
    ),
    req(
        "list",
        "",
        "pods",
        AllNamespaces,
        "delete --all -A: reader pods",
    ),
    req("watch", "batch", "jobs", AllNamespaces, "get -A -w"),
    req("watch", "batch", "cronjobs", AllNamespaces, "get -A -w"),
    Request {
        beyond: Some(
            "delete --all -A also lists ConfigMaps in every namespace (their content): \
             a cluster administrator's command",
        ),
        ..req("list", "", "configmaps", AllNamespaces, "delete --all -A")
    },
    // Cluster-scoped.
    req("get", "", "nodes", Cluster, "run node/NAME"),
    req("list", "", "nodes", Cluster, "run nodes [-l SELECTOR]"),
    Request {
        beyond: Some(
            "the PodSecurity pre-check of run reads the namespace's labels when allowed, \
             and leaves the verdict to admission when not",
        ),
        ..req("get", "", "namespaces", Cluster, "run")
    },
];

/// The rules of one role, as (group, resource, verb) triples.
type Grants = BTreeSet<(String, String, String)>;

fn rules_of(doc: &Value) -> Grants {
    let mut out = Grants::new();
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    for rule in doc["rules"].as_array().into_iter().flatten() {
        assert!(
            rule.get("resourceNames").is_none(),
            "resourceNames are not modelled here: {rule}"
        );
        for g in strs(&rule["apiGroups"]) {
            for r in strs(&rule["resources"]) {
                for v in strs(&rule["verbs"]) {
                    assert!(
                        g != "*" && r != "*" && v != "*",
                        "no wildcards in the user's roles: {rule}"
                    );
                    out.insert((g.clone(), r.clone(), v));
                }
            }
        }
    }
    out
}

fn one_doc(text: &str, kind: &str) -> Value {
    let docs: Vec<Value> = serde_saphyr::from_multiple(text).expect("valid YAML");
    let mut docs: Vec<Value> = docs.into_iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(docs.len(), 1, "one {kind} expected");
    let d = docs.remove(0);
    assert_eq!(d["metadata"]["name"], "kubectl-trace-user");
    d
}

/// The ClusterRole's grants (everywhere) and the Role's (in the trace namespace).
fn manifests() -> (Grants, Grants, Value) {
    let cluster = one_doc(
        include_str!("../../manifests/user-clusterrole.yaml"),
        "ClusterRole",
    );
    let role = one_doc(include_str!("../../manifests/user-role.yaml"), "Role");
    let role_ns = role["metadata"]["namespace"].clone();
    (rules_of(&cluster), rules_of(&role), role_ns)
}

fn key(r: &Request) -> (String, String, String) {
    (r.group.into(), r.resource.into(), r.verb.into())
}

fn is_write(verb: &str) -> bool {
    !matches!(verb, "get" | "list" | "watch")
}

#[test]
fn the_roles_grant_every_request_where_it_is_made() {
    let (cluster, role, _) = manifests();
    for r in REQUESTS {
        let k = key(r);
        let granted = match r.scope {
            Trace => cluster.contains(&k) || role.contains(&k),
            Target | AllNamespaces | Cluster => cluster.contains(&k),
        };
        match r.beyond {
            None => assert!(
                granted,
                "{} {} ({:?}, used by {}) is not granted by manifests/user-{}.yaml",
                r.verb,
                r.resource,
                r.scope,
                r.used_by,
                if r.scope == Trace {
                    "role"
                } else {
                    "clusterrole"
                }
            ),
            Some(why) => assert!(
                !granted,
                "{} {} is granted, but REQUESTS says it is not ({why})",
                r.verb, r.resource
            ),
        }
    }
}

#[test]
fn the_roles_grant_nothing_unused() {
    let (cluster, role, _) = manifests();
    let used = |scopes: &[Scope]| -> Grants {
        REQUESTS
            .iter()
            .filter(|r| r.beyond.is_none() && scopes.contains(&r.scope))
            .map(key)
            .collect()
    };
    let used_cluster_wide = used(&[Target, AllNamespaces, Cluster]);
    let extra: Vec<_> = cluster.difference(&used_cluster_wide).collect();
    assert!(extra.is_empty(), "ClusterRole grants unused: {extra:?}");
    let used_in_trace_ns = used(&[Trace]);
    let extra: Vec<_> = role.difference(&used_in_trace_ns).collect();
    assert!(extra.is_empty(), "Role grants unused: {extra:?}");
}

#[test]
fn writes_only_in_the_trace_namespace() {
    let (cluster, role, role_ns) = manifests();
    // The cluster-wide role reads; every write (pods/exec included) is the Role's.
    let writes: Vec<_> = cluster.iter().filter(|(_, _, v)| is_write(v)).collect();
    assert!(writes.is_empty(), "ClusterRole writes: {writes:?}");
    for (g, r, v) in [
        ("", "pods", "create"),
        ("", "pods/exec", "create"),
        ("", "pods/log", "get"),
        ("batch", "jobs", "create"),
        ("batch", "cronjobs", "create"),
    ] {
        assert!(role.contains(&(g.into(), r.into(), v.into())), "{v} {r}");
        assert!(
            !cluster.contains(&(g.into(), r.into(), v.into())),
            "{v} {r}"
        );
    }
    assert!(REQUESTS
        .iter()
        .filter(|r| is_write(r.verb))
        .all(|r| r.scope == Trace));
    // The namespace the install creates.
    let ns: Value = serde_saphyr::from_str(include_str!("../../manifests/namespace.yaml")).unwrap();
    assert_eq!(role_ns, ns["metadata"]["name"]);
}

/// The RBAC verb, resource, group and scope of an HTTP request to the API server, as the
/// API server's authorizer sees it; `None` for a path that is not a resource.
pub fn classify(method: &str, path: &str, query: &str) -> Option<(String, String, String, bool)> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, rest) = match segs.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return None,
    };
    // (namespaced?, resource, name, subresource)
    let (namespaced, resource, name, sub) = match rest {
        ["namespaces", ns] => (false, "namespaces", Some(*ns), None),
        ["namespaces", _ns, r] => (true, *r, None, None),
        ["namespaces", _ns, r, n] => (true, *r, Some(*n), None),
        ["namespaces", _ns, r, n, s] => (true, *r, Some(*n), Some(*s)),
        [r] => (false, *r, None, None),
        [r, n] => (false, *r, Some(*n), None),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|kv| kv == "watch=true" || kv == "watch=1");
    let verb = match (method, name.is_some(), sub) {
        // exec and attach: create, also through a websocket GET (Kubernetes >= 1.31).
        (_, _, Some("exec" | "attach" | "portforward")) => "create",
        ("GET", _, _) if watch => "watch",
        ("GET", true, _) => "get",
        ("GET", false, _) => "list",
        ("POST", _, _) => "create",
        ("PUT", _, _) => "update",
        ("PATCH", _, _) => "patch",
        ("DELETE", true, _) => "delete",
        ("DELETE", false, _) => "deletecollection",
        _ => return None,
    };
    let resource = match sub {
        Some(s) => format!("{resource}/{s}"),
        None => resource.to_string(),
    };
    Some((verb.to_string(), group.to_string(), resource, namespaced))
}

/// Fails unless the request is one [`REQUESTS`] lists (with a scope its path allows).
pub fn check_seen(method: &str, path: &str, query: &str) {
    let Some((verb, group, resource, namespaced)) = classify(method, path, query) else {
        return;
    };
    let cluster_scoped = matches!(resource.as_str(), "nodes" | "namespaces");
    let fits = |s: Scope| match s {
        Trace | Target => namespaced,
        AllNamespaces => !namespaced && !cluster_scoped,
        Cluster => !namespaced && cluster_scoped,
    };
    assert!(
        REQUESTS
            .iter()
            .any(|r| r.verb == verb && r.group == group && r.resource == resource && fits(r.scope)),
        "the plugin made a request rbac_tests::REQUESTS does not list: {method} {path} \
         ({verb} {resource}{}); list it there and grant it in manifests/",
        if group.is_empty() {
            String::new()
        } else {
            format!(".{group}")
        }
    );
}

#[test]
fn requests_are_classified_as_the_authorizer_does() {
    let c = |m: &str, p: &str, q: &str| classify(m, p, q).unwrap();
    let t = |v: &str, g: &str, r: &str, n: bool| (v.to_string(), g.to_string(), r.to_string(), n);
    assert_eq!(
        c("POST", "/apis/batch/v1/namespaces/kubectl-trace/jobs", ""),
        t("create", "batch", "jobs", true)
    );
    assert_eq!(
        c("GET", "/apis/batch/v1/jobs", "labelSelector=x"),
        t("list", "batch", "jobs", false)
    );
    assert_eq!(
        c("GET", "/api/v1/namespaces/x/pods/r/exec", "command=tar"),
        t("create", "", "pods/exec", true)
    );
    assert_eq!(
        c("GET", "/api/v1/namespaces/x/pods/p/log", "follow=true"),
        t("get", "", "pods/log", true)
    );
    assert_eq!(
        c("GET", "/api/v1/namespaces/x", ""),
        t("get", "", "namespaces", false)
    );
    assert_eq!(
        c("GET", "/api/v1/nodes/n1", ""),
        t("get", "", "nodes", false)
    );
    assert_eq!(
        c("GET", "/api/v1/namespaces/x/pods", "watch=true"),
        t("watch", "", "pods", true)
    );
    assert_eq!(
        c("DELETE", "/api/v1/namespaces/x/pods/p", ""),
        t("delete", "", "pods", true)
    );
    assert_eq!(classify("GET", "/version", ""), None);
    // A request the plugin does not make is refused.
    let r = std::panic::catch_unwind(|| check_seen("POST", "/api/v1/namespaces/x/secrets", ""));
    assert!(r.is_err());
    let r = std::panic::catch_unwind(|| check_seen("POST", "/apis/batch/v1/namespaces/x/jobs", ""));
    assert!(r.is_ok());
}
