//! The trace job: what a trace is made of in the cluster and how to find and read it.
//! A trace is the Jobs (or CronJobs, for `--schedule`) labelled with its id, one per
//! node, each with a ConfigMap and pods; this module owns the lookups (trace id to
//! Jobs, CronJobs and pods), which node and which pods each Job covers, and the
//! classification of Jobs and pods (status, lifecycle, why a pod cannot start), shared
//! by `get`, `logs`, `attach` and `delete`. The label and annotation names themselves
//! are defined with the objects that carry them, in `manifest`.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::ListParams;

use crate::client::Ctx;
use crate::errors::{fail, Op, Result};
use crate::manifest::{
    app_selector, id_selector, ANN_NODE, ANN_PODS, CONTAINER_NAME, LABEL_ID, LABEL_NODE,
};
use crate::persisted::{COMPONENT_READER, LABEL_COMPONENT};

/// The label selector of one trace (`Some(id)`) or of every trace (`None`).
pub fn selector(id: Option<&str>) -> String {
    match id {
        Some(id) => id_selector(id),
        None => app_selector(),
    }
}

/// The Jobs and CronJobs of the traces a selector matches.
#[derive(Debug, Clone, Default)]
pub struct Workloads {
    pub jobs: Vec<Job>,
    pub cronjobs: Vec<CronJob>,
}

impl Workloads {
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty() && self.cronjobs.is_empty()
    }
}

/// The Jobs and CronJobs matching `selector` (see [`selector`]) in `ns` (`None`: every
/// namespace).
pub async fn workloads(ctx: &Ctx, ns: Option<&str>, selector: &str) -> Result<Workloads> {
    let lp = ListParams::default().labels(selector);
    let jobs: Vec<Job> = ctx.list(ns, &lp, Op::new("list", "jobs.batch", ns)).await?;
    let cronjobs: Vec<CronJob> = ctx
        .list(ns, &lp, Op::new("list", "cronjobs.batch", ns))
        .await?;
    Ok(Workloads { jobs, cronjobs })
}

/// (namespace, trace id) of a trace object, from its metadata.
pub fn trace_key(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        label(meta, LABEL_ID),
    )
}

/// An annotation's value, or empty.
pub fn annotation(meta: &ObjectMeta, key: &str) -> String {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(key).cloned())
        .unwrap_or_default()
}

/// A label's value, or empty.
pub fn label(meta: &ObjectMeta, key: &str) -> String {
    meta.labels
        .as_ref()
        .and_then(|a| a.get(key).cloned())
        .unwrap_or_default()
}

/// Whether a Job is owned by the object with this uid (a CronJob's run).
pub fn owned_by(job: &Job, uid: &str) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.uid == uid)
}

/// Whether a Job is a run of some CronJob.
pub fn is_scheduled_run(job: &Job) -> bool {
    job.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind == "CronJob")
}

/// A Job's status as `get` shows it: Completed, Failed (REASON), Suspended, Running or
/// Pending, from its conditions and counts.
pub fn job_status(job: &Job) -> String {
    let st = job.status.clone().unwrap_or_default();
    for c in st.conditions.iter().flatten() {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return "Completed".into(),
            "Failed" => {
                return match &c.reason {
                    Some(r) if !r.is_empty() => format!("Failed ({r})"),
                    _ => "Failed".into(),
                }
            }
            "Suspended" => return "Suspended".into(),
            _ => {}
        }
    }
    if st.active.unwrap_or(0) > 0 {
        return if st.ready == Some(0) {
            "Pending".into()
        } else {
            "Running".into()
        };
    }
    if st.failed.unwrap_or(0) > 0 {
        return "Failed".into();
    }
    if st.succeeded.unwrap_or(0) > 0 {
        return "Completed".into();
    }
    "Pending".into()
}

/// The Jobs of a trace, newest first per node (a scheduled trace has one per run).
pub async fn trace_jobs(ctx: &Ctx, ns: &str, id: &str) -> Result<Vec<Job>> {
    let lp = ListParams::default().labels(&id_selector(id));
    let list: Vec<Job> = ctx
        .list(Some(ns), &lp, Op::new("list", "jobs.batch", Some(ns)))
        .await?;
    let mut newest: BTreeMap<String, Job> = BTreeMap::new();
    for job in list {
        let node = job_node(&job);
        let newer = match newest.get(&node) {
            Some(old) => job.metadata.creation_timestamp > old.metadata.creation_timestamp,
            None => true,
        };
        if newer {
            newest.insert(node, job);
        }
    }
    if newest.is_empty() {
        return Err(fail(format!(
            "trace {id} has no job in namespace {ns} (see kubectl trace get)"
        )));
    }
    Ok(newest.into_values().collect())
}

/// The node a Job runs on, from its annotation (or label).
pub fn job_node(job: &Job) -> String {
    job.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANN_NODE).cloned())
        .or_else(|| {
            job.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(LABEL_NODE).cloned())
        })
        .unwrap_or_default()
}

/// The prefix of a Job's output lines when several are streamed: the pod when the Job
/// traces exactly one, the node otherwise.
pub fn job_prefix(job: &Job) -> String {
    prefix_for(&job.metadata, &job_node(job))
}

/// The output prefix from an object's annotations (Jobs and trace pods carry them).
pub fn prefix_for(meta: &ObjectMeta, node: &str) -> String {
    let ann = meta.annotations.clone().unwrap_or_default();
    let pods = ann.get(ANN_PODS).cloned().unwrap_or_default();
    let pods: Vec<&str> = pods.split(',').filter(|s| !s.is_empty()).collect();
    if pods.len() == 1 {
        let name = pods[0].rsplit('/').next().unwrap_or(pods[0]);
        format!("[pod/{name}] ")
    } else {
        let node = ann.get(ANN_NODE).map(String::as_str).unwrap_or(node);
        format!("[node/{node}] ")
    }
}

/// The pods of a trace (its runner pods, not its reader pods), oldest first.
pub async fn trace_pods(ctx: &Ctx, ns: &str, id: &str) -> Result<Vec<Pod>> {
    let lp = ListParams::default().labels(&id_selector(id));
    let mut pods: Vec<Pod> = ctx
        .list::<Pod>(Some(ns), &lp, Op::new("list", "pods", Some(ns)))
        .await?
        .into_iter()
        .filter(|p| label(&p.metadata, LABEL_COMPONENT) != COMPONENT_READER)
        .collect();
    pods.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.clone(),
            a.metadata.name.clone(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.clone(),
                b.metadata.name.clone(),
            ))
    });
    Ok(pods)
}

/// The output prefix of a trace pod's lines (see [`prefix_for`]).
pub fn pod_prefix(p: &Pod) -> String {
    let node = p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.clone())
        .unwrap_or_default();
    prefix_for(&p.metadata, &node)
}

/// How a pod stands, for the waiting loop.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Still coming up: what to show.
    Waiting(String),
    /// The runner container runs or has run: stream its logs.
    Started,
    /// It will never start: why.
    Fatal(String),
}

/// Classify a trace pod.
pub fn classify(pod: &Pod, node: &str) -> PodState {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    let cs = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == CONTAINER_NAME);
    let state = cs
        .as_ref()
        .and_then(|c| c.state.clone())
        .unwrap_or_default();
    if state.running.is_some() || state.terminated.is_some() {
        return PodState::Started;
    }
    if phase == "Failed" || phase == "Succeeded" {
        let reason = status.reason.unwrap_or_else(|| phase.clone());
        let msg = status.message.unwrap_or_default();
        return PodState::Fatal(format!(
            "the trace pod on node/{node} did not start: {reason}{}",
            if msg.is_empty() {
                String::new()
            } else {
                format!(": {msg}")
            }
        ));
    }
    if let Some(why) = unschedulable(status.conditions.as_deref()) {
        return PodState::Fatal(format!(
            "the trace pod cannot be scheduled on node/{node}: {why}"
        ));
    }
    if let Some(w) = state.waiting {
        let reason = w.reason.unwrap_or_default();
        let msg = w.message.unwrap_or_default();
        let image = cs.as_ref().map(|c| c.image.clone()).unwrap_or_default();
        return match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                PodState::Fatal(format!(
                    "node/{node} cannot pull the runner image {image} ({reason}): {msg} (choose another with --image)"
                ))
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                PodState::Fatal(format!("the trace container cannot start on node/{node} ({reason}): {msg}"))
            }
            "" => PodState::Waiting(phase),
            r => PodState::Waiting(r.to_string()),
        };
    }
    PodState::Waiting(phase)
}

/// The pods of one Job as a watch reports them (kube-runtime's `watcher` events), so
/// that waiting for a trace pod follows the API's changes instead of polling.
#[derive(Debug, Default)]
pub struct JobPods {
    pods: BTreeMap<String, Pod>,
    /// A relist in progress: the pods seen so far (they replace all at its end).
    relist: Option<BTreeMap<String, Pod>>,
}

impl JobPods {
    /// Take one watch event; true when the pods as known may have changed.
    pub fn apply(&mut self, event: kube::runtime::watcher::Event<Pod>) -> bool {
        use kube::runtime::watcher::Event;
        let name = |p: &Pod| p.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => {
                self.relist = Some(BTreeMap::new());
                false
            }
            Event::InitApply(p) => {
                self.relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(name(&p), p);
                false
            }
            Event::InitDone => {
                self.pods = self.relist.take().unwrap_or_default();
                true
            }
            Event::Apply(p) => {
                self.pods.insert(name(&p), p);
                true
            }
            Event::Delete(p) => {
                self.pods.remove(&name(&p));
                true
            }
        }
    }

    /// The newest pod (a Job makes a new one when its pod is deleted).
    pub fn newest(&self) -> Option<&Pod> {
        self.pods
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .max_by(|a, b| {
                (&a.metadata.creation_timestamp, &a.metadata.name)
                    .cmp(&(&b.metadata.creation_timestamp, &b.metadata.name))
            })
    }
}

/// Whether a pod's runner container is running now.
pub fn runner_running(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.name == CONTAINER_NAME))
        .and_then(|c| c.state.as_ref())
        .is_some_and(|s| s.running.is_some())
}

/// The scheduler's message when a pod's `PodScheduled` condition says `Unschedulable`.
pub fn unschedulable(
    conditions: Option<&[k8s_openapi::api::core::v1::PodCondition]>,
) -> Option<String> {
    conditions?
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| c.message.clone().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "trace-runner"}]},
            "status": status
        }))
        .unwrap()
    }

    #[test]
    fn classify_states() {
        let p = pod(json!({"phase": "Pending"}));
        assert_eq!(classify(&p, "n1"), PodState::Waiting("Pending".into()));
        let p = pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "trace-runner", "image": "img:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(
            classify(&p, "n1"),
            PodState::Waiting("ContainerCreating".into())
        );
        let p = pod(json!({"phase": "Pending", "containerStatuses": [{
            "name": "trace-runner", "image": "img:1", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}}]}));
        match classify(&p, "n1") {
            PodState::Fatal(m) => assert!(
                m.contains("cannot pull the runner image img:1 (ImagePullBackOff)"),
                "{m}"
            ),
            s => panic!("{s:?}"),
        }
        let p = pod(
            json!({"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False",
            "reason": "Unschedulable", "message": "0/3 nodes are available"}]}),
        );
        assert!(
            matches!(classify(&p, "n1"), PodState::Fatal(m) if m.contains("cannot be scheduled"))
        );
        let p = pod(
            json!({"phase": "Failed", "reason": "OutOfcpu", "message": "Node didn't have enough resource"}),
        );
        assert!(matches!(classify(&p, "n1"), PodState::Fatal(m) if m.contains("OutOfcpu")));
        let p = pod(json!({"phase": "Running", "containerStatuses": [{
            "name": "trace-runner", "image": "img:1", "imageID": "", "ready": true, "restartCount": 0,
            "state": {"running": {}}}]}));
        assert_eq!(classify(&p, "n1"), PodState::Started);
    }

    #[test]
    fn prefixes() {
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "kubectl-trace-x-1", "annotations": {
                "kubectl-trace/node": "n1", "kubectl-trace/pods": "prod/web-0"}}
        }))
        .unwrap();
        assert_eq!(job_prefix(&job), "[pod/web-0] ");
        let job: Job = serde_json::from_value(json!({
            "metadata": {"name": "kubectl-trace-x-1", "annotations": {
                "kubectl-trace/node": "n1", "kubectl-trace/pods": "prod/web-0,prod/web-1"}}
        }))
        .unwrap();
        assert_eq!(job_prefix(&job), "[node/n1] ");
    }

    fn job(name: &str, status: serde_json::Value, _owner: Option<&str>) -> Job {
        serde_json::from_value(json!({"metadata": {"name": name}, "status": status})).unwrap()
    }

    #[test]
    fn statuses() {
        assert_eq!(job_status(&job("a", json!({}), None)), "Pending");
        assert_eq!(
            job_status(&job("a", json!({"active": 1, "ready": 0}), None)),
            "Pending"
        );
        assert_eq!(
            job_status(&job("a", json!({"active": 1, "ready": 1}), None)),
            "Running"
        );
        assert_eq!(
            job_status(&job(
                "a",
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
                None
            )),
            "Completed"
        );
        assert_eq!(
            job_status(&job(
                "a",
                json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}),
                None
            )),
            "Failed (DeadlineExceeded)"
        );
    }

    #[test]
    fn job_pods_follow_the_watch() {
        use kube::runtime::watcher::Event;
        let pod = |name: &str, created: &str, deleting: bool| -> Pod {
            let mut m = json!({"name": name, "creationTimestamp": created});
            if deleting {
                m["deletionTimestamp"] = json!("2025-01-01T00:09:00Z");
            }
            serde_json::from_value(json!({"metadata": m})).unwrap()
        };
        let newest = |w: &JobPods| w.newest().and_then(|p| p.metadata.name.clone());
        let mut w = JobPods::default();
        assert!(!w.apply(Event::Init));
        assert!(!w.apply(Event::InitApply(pod("a", "2025-01-01T00:00:00Z", false))));
        assert_eq!(newest(&w), None, "nothing known before the list ends");
        assert!(w.apply(Event::InitDone));
        assert_eq!(newest(&w).as_deref(), Some("a"));
        // The pod is being replaced: the terminating one no longer counts.
        w.apply(Event::Apply(pod("a", "2025-01-01T00:00:00Z", true)));
        assert_eq!(newest(&w), None);
        w.apply(Event::Apply(pod("b", "2025-01-01T00:10:00Z", false)));
        assert_eq!(newest(&w).as_deref(), Some("b"));
        w.apply(Event::Delete(pod("b", "2025-01-01T00:10:00Z", false)));
        assert_eq!(newest(&w), None);
        // A relist replaces everything known.
        w.apply(Event::Init);
        w.apply(Event::InitApply(pod("c", "2025-01-01T00:20:00Z", false)));
        w.apply(Event::InitDone);
        assert_eq!(newest(&w).as_deref(), Some("c"));
    }
}
