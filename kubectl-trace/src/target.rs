//! Targets: `node/NAME`, `pod/NAME` (with `-c`), `deployment|deploy/NAME`,
//! `statefulset|sts/NAME`, `daemonset|ds/NAME`, `-l SELECTOR` for pods, or `nodes`
//! (every node) and `nodes -l SELECTOR` (the nodes with those labels). Resolving a
//! target finds its pods, checks they are running, collects their container IDs and
//! groups them per node (or finds the Ready nodes): the trace gets one Job per node.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::ListParams;

use crate::client::{is_forbidden, Ctx};
use crate::errors::{fail, Op, Result};
use crate::manifest::{NodePlan, PodScope, TargetDesc};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRef {
    Node(String),
    Pod(String),
    Deployment(String),
    StatefulSet(String),
    DaemonSet(String),
    /// `-l SELECTOR`: every matching pod.
    Selector(String),
    /// `nodes [-l SELECTOR]`: every node, or the nodes matching the selector.
    Nodes(Option<String>),
}

/// [`TargetRef::name`] of `nodes` without a selector.
pub const ALL_NODES: &str = "*";

impl TargetRef {
    pub fn kind(&self) -> &'static str {
        match self {
            TargetRef::Node(_) => "node",
            TargetRef::Pod(_) => "pod",
            TargetRef::Deployment(_) => "deployment",
            TargetRef::StatefulSet(_) => "statefulset",
            TargetRef::DaemonSet(_) => "daemonset",
            TargetRef::Selector(_) => "selector",
            TargetRef::Nodes(_) => "nodes",
        }
    }

    pub fn name(&self) -> &str {
        match self {
            TargetRef::Node(n)
            | TargetRef::Pod(n)
            | TargetRef::Deployment(n)
            | TargetRef::StatefulSet(n)
            | TargetRef::DaemonSet(n)
            | TargetRef::Selector(n)
            | TargetRef::Nodes(Some(n)) => n,
            TargetRef::Nodes(None) => ALL_NODES,
        }
    }

    /// `node/NAME`: one node, known without asking the API.
    pub fn is_node(&self) -> bool {
        matches!(self, TargetRef::Node(_))
    }

    /// Whole nodes (`node/NAME` or `nodes`), not pods.
    pub fn is_nodes(&self) -> bool {
        matches!(self, TargetRef::Node(_) | TargetRef::Nodes(_))
    }

    /// What labels and annotations record.
    pub fn describe(&self, target_namespace: &str) -> TargetDesc {
        TargetDesc {
            kind: self.kind().to_string(),
            name: self.name().to_string(),
            namespace: (!self.is_nodes()).then(|| target_namespace.to_string()),
        }
    }
}

/// Parse `TYPE/NAME` (or `-l SELECTOR`).
pub fn parse_target(target: Option<&str>, selector: Option<&str>) -> Result<TargetRef> {
    // `nodes`: every node, or with `-l` the nodes it selects (a node named `nodes` is
    // still `node/nodes`).
    if target.is_some_and(|t| t.eq_ignore_ascii_case("nodes")) {
        return match selector.map(str::trim) {
            None => Ok(TargetRef::Nodes(None)),
            Some("") => Err(fail("-l needs a label selector")),
            Some(sel) => Ok(TargetRef::Nodes(Some(sel.to_string()))),
        };
    }
    match (target, selector) {
        (Some(_), Some(_)) => Err(fail(
            "give either a TARGET or -l SELECTOR, not both (nodes -l SELECTOR selects nodes)",
        )),
        (None, Some(sel)) if sel.trim().is_empty() => Err(fail("-l needs a label selector")),
        (None, Some(sel)) => Ok(TargetRef::Selector(sel.trim().to_string())),
        (None, None) => Err(fail(
            "missing TARGET: node/NAME, nodes [-l SELECTOR], pod/NAME, deployment/NAME, statefulset/NAME, daemonset/NAME or -l SELECTOR",
        )),
        (Some(t), None) => {
            let Some((kind, name)) = t.split_once('/') else {
                // A bare name is a node, as iovisor/kubectl-trace's `run NODE`.
                crate::names::object("node name in TARGET", t).map_err(|_| {
                    fail(format!(
                        "invalid target {t:?}: write TYPE/NAME, e.g. node/NAME or pod/NAME"
                    ))
                })?;
                return Ok(TargetRef::Node(t.to_string()));
            };
            if name.is_empty() || name.contains('/') {
                return Err(fail(format!("invalid target {t:?}: write TYPE/NAME")));
            }
            let name = name.to_string();
            let target = match kind.to_ascii_lowercase().as_str() {
                "node" | "nodes" | "no" => TargetRef::Node(name),
                "pod" | "pods" | "po" => TargetRef::Pod(name),
                "deployment" | "deployments" | "deploy" => TargetRef::Deployment(name),
                "statefulset" | "statefulsets" | "sts" => TargetRef::StatefulSet(name),
                "daemonset" | "daemonsets" | "ds" => TargetRef::DaemonSet(name),
                other => {
                    return Err(fail(format!(
                        "unknown target type {other:?}: use node, pod, deployment, statefulset or daemonset"
                    )))
                }
            };
            crate::names::object(
                &format!("{} name in TARGET", target.kind()),
                target.name(),
            )?;
            Ok(target)
        }
    }
}

/// A label selector object as the `labelSelector` query string.
pub fn selector_string(sel: &LabelSelector) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(ml) = &sel.match_labels {
        for (k, v) in ml {
            parts.push(format!("{k}={v}"));
        }
    }
    for e in sel.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            _ => e.key.clone(),
        });
    }
    parts.join(",")
}

/// Names of the pod's containers, in spec order.
fn container_names(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .map(|s| s.containers.iter().map(|c| c.name.clone()).collect())
        .unwrap_or_default()
}

/// Scope one running pod: its UID and the IDs of the selected containers.
/// `need_single` is set when the script uses `$container_pid`, which needs one container.
pub fn scope_pod(pod: &Pod, container: Option<&str>, need_single: bool) -> Result<PodScope> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
    if node.is_none() {
        return Err(fail(format!(
            "pod {name} is not scheduled to a node yet (phase {phase})"
        )));
    }
    if phase != "Running" {
        return Err(fail(format!(
            "pod {name} is not running (phase {phase}); trace it once it runs"
        )));
    }
    let names = container_names(pod);
    let statuses = status.container_statuses.unwrap_or_default();
    let selected: Vec<String> = match container {
        Some(c) => {
            if !names.iter().any(|n| n == c) {
                return Err(fail(format!(
                    "container {c} not found in pod {name} (containers: {})",
                    names.join(", ")
                )));
            }
            vec![c.to_string()]
        }
        None => {
            if need_single && names.len() > 1 {
                return Err(fail(format!(
                    "ambiguous container: the script uses $container_pid and pod {name} has containers {}; choose one with -c",
                    names.join(", ")
                )));
            }
            names.clone()
        }
    };
    let mut ids = Vec::new();
    for c in &selected {
        let st = statuses.iter().find(|s| &s.name == c);
        match st.and_then(|s| s.container_id.clone()) {
            Some(id) if !id.is_empty() => ids.push(id),
            _ => {
                if container.is_some() {
                    let why = st
                        .and_then(|s| s.state.as_ref())
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.clone())
                        .unwrap_or_else(|| "not started".into());
                    return Err(fail(format!(
                        "container {c} of pod {name} is not running yet ({why})"
                    )));
                }
            }
        }
    }
    if ids.is_empty() {
        return Err(fail(format!("no container of pod {name} is running yet")));
    }
    // Named containers: the one asked for, or the only one `$container_pid` may mean.
    let container_names = if container.is_some() || need_single {
        selected
    } else {
        vec![]
    };
    Ok(PodScope {
        namespace,
        name,
        uid: pod.metadata.uid.clone().unwrap_or_default(),
        container_ids: ids,
        container_names,
    })
}

/// Group running pods per node (node names sorted), skipping the others with a note.
pub fn group_pods(
    pods: &[Pod],
    container: Option<&str>,
    need_single: bool,
    what: &str,
) -> Result<Vec<NodePlan>> {
    let mut by_node: BTreeMap<String, Vec<PodScope>> = BTreeMap::new();
    let mut skipped = Vec::new();
    for pod in pods {
        let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
            && pod.metadata.deletion_timestamp.is_none();
        let node = pod.spec.as_ref().and_then(|s| s.node_name.clone());
        match (running, node) {
            (true, Some(node)) => {
                by_node
                    .entry(node)
                    .or_default()
                    .push(scope_pod(pod, container, need_single)?)
            }
            _ => skipped.push(pod.metadata.name.clone().unwrap_or_default()),
        }
    }
    if by_node.is_empty() {
        return Err(fail(if pods.is_empty() {
            format!("no pods match {what}")
        } else {
            format!("none of the pods of {what} is running yet")
        }));
    }
    if !skipped.is_empty() {
        eprintln!(
            "note: skipping pods that are not running: {}",
            skipped.join(", ")
        );
    }
    if need_single {
        if let Some((node, pods)) = by_node.iter().find(|(_, p)| p.len() > 1) {
            let names: Vec<_> = pods.iter().map(|p| p.name.as_str()).collect();
            return Err(fail(format!(
                "ambiguous container: the script uses $container_pid and pods {} share node {node}; trace one pod at a time",
                names.join(", ")
            )));
        }
    }
    Ok(by_node
        .into_iter()
        .map(|(node, pods)| NodePlan { node, pods })
        .collect())
}

/// Whether a node's `Ready` condition is `True`.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// One plan per Ready node (sorted by name), skipping the others with a note.
pub fn plan_nodes(nodes: &[Node], what: &str) -> Result<Vec<NodePlan>> {
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        if node_ready(n) && n.metadata.deletion_timestamp.is_none() {
            ready.push(name);
        } else {
            skipped.push(name);
        }
    }
    if ready.is_empty() {
        return Err(fail(if nodes.is_empty() {
            format!("no nodes match {what}")
        } else {
            format!("none of the nodes of {what} is Ready")
        }));
    }
    if !skipped.is_empty() {
        skipped.sort();
        eprintln!(
            "note: skipping nodes that are not Ready: {}",
            skipped.join(", ")
        );
    }
    ready.sort();
    Ok(ready
        .into_iter()
        .map(|node| NodePlan { node, pods: vec![] })
        .collect())
}

/// Resolve a target to its per-node plans through the API.
pub async fn resolve(
    ctx: &Ctx,
    target: &TargetRef,
    target_ns: &str,
    container: Option<&str>,
    need_single: bool,
) -> Result<Vec<NodePlan>> {
    let list_pods = |selector: String, what: String| async move {
        let lp = ListParams::default().labels(&selector);
        let list: Vec<Pod> = ctx
            .list(
                Some(target_ns),
                &lp,
                Op::new("list", "pods", Some(target_ns)),
            )
            .await?;
        group_pods(&list, container, need_single, &what)
    };
    match target {
        TargetRef::Node(name) => {
            let op = Op::new("get", "nodes", None).named(name);
            match ctx.try_get::<Node>(None, name, &op).await? {
                Ok(_) => {}
                // Many users may create Jobs without reading nodes: go on.
                Err(e) if is_forbidden(&e) => {}
                Err(e) => return Err(ctx.err(op)(e)),
            }
            Ok(vec![NodePlan {
                node: name.clone(),
                pods: vec![],
            }])
        }
        TargetRef::Pod(name) => {
            let pod: Pod = ctx
                .get(
                    Some(target_ns),
                    name,
                    Op::new("get", "pods", Some(target_ns)).named(name),
                )
                .await?;
            let scope = scope_pod(&pod, container, need_single)?;
            let node = pod
                .spec
                .and_then(|s| s.node_name)
                .expect("scope_pod checked nodeName");
            Ok(vec![NodePlan {
                node,
                pods: vec![scope],
            }])
        }
        TargetRef::Deployment(name) => {
            let d: Deployment = ctx
                .get(
                    Some(target_ns),
                    name,
                    Op::new("get", "deployments.apps", Some(target_ns)).named(name),
                )
                .await?;
            let sel = selector_string(&d.spec.selector);
            list_pods(sel, format!("deployment/{name}")).await
        }
        TargetRef::StatefulSet(name) => {
            let d: StatefulSet = ctx
                .get(
                    Some(target_ns),
                    name,
                    Op::new("get", "statefulsets.apps", Some(target_ns)).named(name),
                )
                .await?;
            let sel = selector_string(&d.spec.selector);
            list_pods(sel, format!("statefulset/{name}")).await
        }
        TargetRef::DaemonSet(name) => {
            let d: DaemonSet = ctx
                .get(
                    Some(target_ns),
                    name,
                    Op::new("get", "daemonsets.apps", Some(target_ns)).named(name),
                )
                .await?;
            let sel = selector_string(&d.spec.selector);
            list_pods(sel, format!("daemonset/{name}")).await
        }
        TargetRef::Selector(sel) => list_pods(sel.clone(), format!("-l {sel}")).await,
        TargetRef::Nodes(sel) => {
            let mut lp = ListParams::default();
            if let Some(sel) = sel {
                lp = lp.labels(sel);
            }
            let nodes: Vec<Node> = ctx.list(None, &lp, Op::new("list", "nodes", None)).await?;
            let what = match sel {
                Some(sel) => format!("nodes -l {sel}"),
                None => "the cluster".to_string(),
            };
            plan_nodes(&nodes, &what)
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use serde_json::json;

    pub fn pod_json(
        name: &str,
        node: Option<&str>,
        phase: &str,
        containers: &[(&str, Option<&str>)],
    ) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "prod", "uid": format!("uid-{name}")},
            "spec": {
                "nodeName": node,
                "containers": containers.iter().map(|(n, _)| json!({"name": n, "image": "x"})).collect::<Vec<_>>()
            },
            "status": {
                "phase": phase,
                "containerStatuses": containers.iter().map(|(n, id)| json!({
                    "name": n, "containerID": id, "image": "x", "imageID": "", "ready": true, "restartCount": 0
                })).collect::<Vec<_>>()
            }
        })
    }

    fn pod(
        name: &str,
        node: Option<&str>,
        phase: &str,
        containers: &[(&str, Option<&str>)],
    ) -> Pod {
        serde_json::from_value(pod_json(name, node, phase, containers)).unwrap()
    }

    #[test]
    fn parse_targets() {
        assert_eq!(
            parse_target(Some("node/n1"), None).unwrap(),
            TargetRef::Node("n1".into())
        );
        assert_eq!(
            parse_target(Some("po/web"), None).unwrap(),
            TargetRef::Pod("web".into())
        );
        assert_eq!(
            parse_target(Some("deploy/api"), None).unwrap(),
            TargetRef::Deployment("api".into())
        );
        assert_eq!(
            parse_target(Some("sts/db"), None).unwrap(),
            TargetRef::StatefulSet("db".into())
        );
        assert_eq!(
            parse_target(Some("ds/agent"), None).unwrap(),
            TargetRef::DaemonSet("agent".into())
        );
        assert_eq!(
            parse_target(None, Some("app=web")).unwrap(),
            TargetRef::Selector("app=web".into())
        );
        // A bare name is a node (iovisor's `run NODE`); an invalid one says how to write it.
        assert_eq!(
            parse_target(Some("worker-1"), None).unwrap(),
            TargetRef::Node("worker-1".into())
        );
        assert!(parse_target(Some("Bad_Node"), None)
            .unwrap_err()
            .to_string()
            .contains("write TYPE/NAME"));
        assert!(parse_target(Some("svc/x"), None).is_err());
        assert!(parse_target(Some("node/x"), Some("a=b")).is_err());
        // `nodes`: every node, or the nodes a selector picks.
        assert_eq!(
            parse_target(Some("nodes"), None).unwrap(),
            TargetRef::Nodes(None)
        );
        assert_eq!(
            parse_target(Some("nodes"), Some(" pool=gpu ")).unwrap(),
            TargetRef::Nodes(Some("pool=gpu".into()))
        );
        assert_eq!(
            parse_target(Some("node/nodes"), None).unwrap(),
            TargetRef::Node("nodes".into())
        );
        assert!(parse_target(Some("nodes"), Some(" ")).is_err());
        let t = TargetRef::Nodes(None).describe("apps");
        assert_eq!(t.display(), "nodes/*");
        let t = TargetRef::Nodes(Some("pool=gpu".into())).describe("apps");
        assert_eq!(t.display(), "nodes/pool=gpu");
        assert!(parse_target(None, None).is_err());
    }

    #[test]
    fn selectors() {
        let sel: LabelSelector = serde_json::from_value(json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                  {"key": "canary", "operator": "DoesNotExist"}]
        }))
        .unwrap();
        assert_eq!(selector_string(&sel), "app=web,tier in (a,b),!canary");
    }

    #[test]
    fn pod_scoping() {
        let p = pod(
            "web-0",
            Some("n1"),
            "Running",
            &[
                ("app", Some("containerd://a1")),
                ("side", Some("cri-o://b2")),
            ],
        );
        let s = scope_pod(&p, None, false).unwrap();
        assert_eq!(s.container_ids, vec!["containerd://a1", "cri-o://b2"]);
        assert_eq!(s.uid, "uid-web-0");
        assert!(s.container_names.is_empty());
        let s = scope_pod(&p, Some("side"), false).unwrap();
        assert_eq!(s.container_ids, vec!["cri-o://b2"]);
        assert_eq!(s.container_names, vec!["side"]);
        let e = scope_pod(&p, Some("nope"), false).unwrap_err().to_string();
        assert_eq!(
            e,
            "container nope not found in pod web-0 (containers: app, side)"
        );
        let e = scope_pod(&p, None, true).unwrap_err().to_string();
        assert!(e.starts_with("ambiguous container"), "{e}");
        let p = pod("web-1", None, "Pending", &[("app", None)]);
        assert_eq!(
            scope_pod(&p, None, false).unwrap_err().to_string(),
            "pod web-1 is not scheduled to a node yet (phase Pending)"
        );
        let p = pod("web-2", Some("n1"), "Pending", &[("app", None)]);
        assert!(scope_pod(&p, None, false)
            .unwrap_err()
            .to_string()
            .contains("not running (phase Pending)"));
    }

    #[test]
    fn grouping_per_node() {
        let pods = vec![
            pod("a", Some("n2"), "Running", &[("c", Some("docker://1"))]),
            pod("b", Some("n1"), "Running", &[("c", Some("docker://2"))]),
            pod("c", Some("n2"), "Running", &[("c", Some("docker://3"))]),
            pod("d", None, "Pending", &[("c", None)]),
        ];
        let plans = group_pods(&pods, None, false, "deployment/x").unwrap();
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].node, "n1");
        assert_eq!(
            plans[1]
                .pods
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>(),
            vec!["a", "c"]
        );
        assert!(group_pods(&pods, None, true, "x").is_err());
        assert_eq!(
            group_pods(&[], None, false, "deployment/x")
                .unwrap_err()
                .to_string(),
            "no pods match deployment/x"
        );
    }

    #[test]
    fn only_ready_nodes_are_planned() {
        let node = |name: &str, ready: &str| -> Node {
            serde_json::from_value(json!({"metadata": {"name": name},
                "status": {"conditions": [{"type": "Ready", "status": ready}]}}))
            .unwrap()
        };
        let plans = plan_nodes(
            &[node("b", "True"), node("c", "Unknown"), node("a", "True")],
            "the cluster",
        )
        .unwrap();
        let names: Vec<&str> = plans.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(names, ["a", "b"]);
        assert!(plans.iter().all(|p| p.pods.is_empty()));
        assert_eq!(
            plan_nodes(&[node("c", "False")], "nodes -l x=y")
                .unwrap_err()
                .to_string(),
            "none of the nodes of nodes -l x=y is Ready"
        );
        assert_eq!(
            plan_nodes(&[], "nodes -l x=y").unwrap_err().to_string(),
            "no nodes match nodes -l x=y"
        );
    }
}
