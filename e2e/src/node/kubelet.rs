//! The node agent: Job controller, CronJob runs on demand, a tiny scheduler and a
//! kubelet for the fake nodes (all of them this host). For each Job it creates the pod
//! (`<job>-xxxxx`, labels `job-name`/`controller-uid` and the template's), admission
//! included (a rejected pod becomes a `FailedCreate` event on the Job, as the real
//! controller reports it). The kubelet moves a pod Pending → Running and runs its
//! container command as a local process (or, in containerd mode, as a container of the
//! private containerd: [`containerd_spec`]): in a private mount namespace whose root
//! (pivot_root, as a runtime does) is made of this host's top-level directories
//! (directories the host lacks, such as /var/log/pods, made on a tmpfs there), with the pod's volumes bound at their
//! mount paths (ConfigMaps written to a directory, hostPath as-is except the kubelet's
//! log directories, which are the harness's own, one directory per
//! PersistentVolumeClaim, emptyDir), so `trace-runner` sees `/programs`, `/host/proc`
//! and `/output` as in a real pod. stdout and stderr become the pod's log; the exit
//! code ends the pod (Succeeded/Failed) and the Job (Complete/Failed).
//! activeDeadlineSeconds and pod deletion stop the container with SIGTERM, then
//! SIGKILL after the grace period; ttlSecondsAfterFinished removes finished Jobs.
//! Containers run as their `securityContext`'s `runAsUser`/`runAsGroup` (`fsGroup` and
//! `supplementalGroups` as groups; root without `runAsUser`).
//! `pods/exec` runs commands in a running container's mount namespace, as its user. The kubelet keeps
//! `/var/log/pods/<ns>_<name>_<uid>/` and `/var/log/containers/<name>_<ns>_<container>-
//! <id>.log` for its pods and the workload pods, in [`AgentConfig::log_dir`].

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use crate::node::containerd::{cgroup_path, ContainerRuntime, Root, RunSpec};
use crate::api::resources;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{meta_str, ApiError, Creds, DeleteOpts, ExecTarget, Kill, PodLog, State, Store};
use crate::util;

/// Annotation marking a pod whose processes the test runs itself (a workload stand-in).
pub const WORKLOAD_ANNOTATION: &str = "e2e.kubectl-trace.io/workload";

/// What the agent needs to know.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The real `trace-runner` binary, run for containers of the runner image.
    pub runner: PathBuf,
    /// Scratch space: pod roots, volumes, claims.
    pub workdir: PathBuf,
    /// Names of the fake nodes.
    pub nodes: Vec<String>,
    /// The fake nodes' `/var/log`: the kubelet keeps `pods/<ns>_<name>_<uid>/` and
    /// `containers/<name>_<ns>_<container>-<id>.log` there, and hostPath volumes of
    /// `/var/log/pods` and `/var/log/containers` are this directory's `pods/` and
    /// `containers/` (the host's real /var/log is never touched).
    pub log_dir: PathBuf,
    /// containerd mode: pods run as containers of this private containerd (the runner
    /// image imported from the xtask archive) instead of local processes.
    pub containers: Option<Arc<ContainerRuntime>>,
}

impl AgentConfig {
    /// The host directory a hostPath volume stands for: the fake kubelet's log
    /// directories for `/var/log/pods` and `/var/log/containers`, else the path itself.
    pub fn host_path(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        for sub in ["pods", "containers"] {
            if let Ok(rest) = p.strip_prefix(Path::new("/var/log").join(sub)) {
                return self.log_dir.join(sub).join(rest);
            }
        }
        p.to_path_buf()
    }
}

struct Agent {
    store: Arc<Store>,
    cfg: AgentConfig,
    /// Jobs whose pod was created (by uid).
    created: Mutex<HashSet<String>>,
    /// Last FailedCreate per Job uid (retries every 2 s).
    failed_create: Mutex<HashMap<String, Instant>>,
    /// Pods the kubelet has taken (by uid).
    started: Mutex<HashSet<String>>,
}

/// Start the agent's loop on the current tokio runtime.
pub fn start(store: Arc<Store>, cfg: AgentConfig) -> tokio::task::JoinHandle<()> {
    let agent = Arc::new(Agent {
        store,
        cfg,
        created: Mutex::default(),
        failed_create: Mutex::default(),
        started: Mutex::default(),
    });
    tokio::spawn(async move {
        loop {
            reconcile(&agent);
            tokio::select! {
                _ = agent.store.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
}

fn job_finished(job: &Value) -> Option<&'static str> {
    let conds = job
        .pointer("/status/conditions")
        .and_then(Value::as_array)?;
    for c in conds {
        if c.get("status").and_then(Value::as_str) == Some("True") {
            match c.get("type").and_then(Value::as_str) {
                Some("Complete") => return Some("Complete"),
                Some("Failed") => return Some("Failed"),
                _ => {}
            }
        }
    }
    None
}

fn owner_ref(obj: &Value) -> Value {
    json!({"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta_str(obj, "name"),
           "uid": meta_str(obj, "uid"), "controller": true, "blockOwnerDeletion": true})
}

fn controller_of<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("kind").and_then(Value::as_str) == Some(kind))
}

fn reconcile(agent: &Arc<Agent>) {
    gc_pod_logs(&agent.store, &agent.cfg.log_dir);
    let jobs_res = resources::get("batch", "jobs");
    let pods_res = resources::get("", "pods");
    let all = LabelSelector::default();
    let none = FieldSelector::default();
    let mut to_start = Vec::new();
    {
        // Not `Store::with`: that would wake this loop again at once.
        let mut guard = agent.store.lock();
        let st = &mut *guard;
        let now = util::epoch_now();
        for job in st.list(jobs_res, None, &all, &none) {
            let ns = meta_str(&job, "namespace").to_string();
            let name = meta_str(&job, "name").to_string();
            let uid = meta_str(&job, "uid").to_string();
            if let Some(kind) = job_finished(&job) {
                let ttl = job
                    .pointer("/spec/ttlSecondsAfterFinished")
                    .and_then(Value::as_i64);
                let done_at = job
                    .pointer("/status/completionTime")
                    .or_else(|| {
                        job.pointer("/status/conditions")
                            .and_then(Value::as_array)
                            .and_then(|c| c.iter().find(|c| c["type"] == kind))
                            .and_then(|c| c.get("lastTransitionTime"))
                    })
                    .and_then(Value::as_str)
                    .map(util::epoch_of);
                if let (Some(ttl), Some(t)) = (ttl, done_at) {
                    if now >= t + ttl {
                        let _ = st.delete(
                            jobs_res,
                            &ns,
                            &name,
                            &DeleteOpts {
                                propagation: Some("Background".into()),
                                grace: None,
                            },
                        );
                    }
                }
                continue;
            }
            if job.pointer("/status/startTime").is_none() {
                st.update(jobs_res, &ns, &name, |j| {
                    j["status"]["startTime"] = json!(util::now())
                });
            }
            let start = job
                .pointer("/status/startTime")
                .and_then(Value::as_str)
                .map_or(now, util::epoch_of);
            if let Some(ads) = job
                .pointer("/spec/activeDeadlineSeconds")
                .and_then(Value::as_i64)
            {
                if now >= start + ads {
                    deadline_exceeded(st, &job);
                    continue;
                }
            }
            if job.pointer("/spec/suspend") == Some(&json!(true)) {
                continue;
            }
            if agent.created.lock().unwrap().contains(&uid) {
                continue;
            }
            if let Some(t) = agent.failed_create.lock().unwrap().get(&uid) {
                if t.elapsed() < Duration::from_secs(2) {
                    continue;
                }
            }
            let pod = pod_for_job(&job);
            match st.create(pods_res, &ns, pod) {
                Ok(p) => {
                    agent.created.lock().unwrap().insert(uid.clone());
                    st.update(jobs_res, &ns, &name, |j| {
                        j["status"]["active"] = json!(1);
                        j["status"]["ready"] = json!(0);
                        j["status"]["terminating"] = json!(0);
                    });
                    let msg = format!("Created pod: {}", meta_str(&p, "name"));
                    st.event(&job, "Normal", "SuccessfulCreate", &msg, "job-controller");
                }
                Err(e) => {
                    agent
                        .failed_create
                        .lock()
                        .unwrap()
                        .insert(uid.clone(), Instant::now());
                    let msg = format!("Error creating: {}", e.message);
                    st.event(&job, "Warning", "FailedCreate", &msg, "job-controller");
                }
            }
        }
        // The scheduler and the kubelet.
        let started = agent.started.lock().unwrap().clone();
        for pod in st.list(pods_res, None, &all, &none) {
            let uid = meta_str(&pod, "uid").to_string();
            if is_workload(&pod) && pod.pointer("/metadata/deletionTimestamp").is_some() {
                // Seen Terminating by the watchers; its processes are the test's.
                st.remove(
                    pods_res,
                    meta_str(&pod, "namespace"),
                    meta_str(&pod, "name"),
                );
                continue;
            }
            if started.contains(&uid)
                || is_workload(&pod)
                || matches!(
                    pod.pointer("/status/phase").and_then(Value::as_str),
                    Some("Succeeded" | "Failed")
                )
            {
                continue;
            }
            let ns = meta_str(&pod, "namespace").to_string();
            let name = meta_str(&pod, "name").to_string();
            let node = pod
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            if node.is_empty() {
                let wanted = pod
                    .pointer("/spec/nodeSelector/kubernetes.io~1hostname")
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let chosen = wanted
                    .filter(|w| agent.cfg.nodes.contains(w))
                    .or_else(|| agent.cfg.nodes.first().cloned());
                if let Some(n) = chosen {
                    st.update(pods_res, &ns, &name, |p| p["spec"]["nodeName"] = json!(n));
                }
                continue;
            }
            if !agent.cfg.nodes.contains(&node) {
                continue;
            }
            agent.started.lock().unwrap().insert(uid.clone());
            to_start.push((ns, name, uid));
        }
    }
    for (ns, name, uid) in to_start {
        let agent = agent.clone();
        tokio::spawn(async move { kubelet(agent, ns, name, uid).await });
    }
}

/// Whether a pod is a workload stand-in (its processes are the test's).
fn is_workload(pod: &Value) -> bool {
    pod.pointer(&format!(
        "/metadata/annotations/{}",
        WORKLOAD_ANNOTATION.replace('/', "~1")
    ))
    .is_some()
}

fn pod_for_job(job: &Value) -> Value {
    let name = meta_str(job, "name");
    let uid = meta_str(job, "uid");
    let template = job.pointer("/spec/template").cloned().unwrap_or(json!({}));
    let mut labels = template
        .pointer("/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    for (k, v) in [
        ("job-name", name),
        ("controller-uid", uid),
        ("batch.kubernetes.io/job-name", name),
        ("batch.kubernetes.io/controller-uid", uid),
    ] {
        labels[k] = json!(v);
    }
    let mut annotations = template
        .pointer("/metadata/annotations")
        .cloned()
        .unwrap_or(json!({}));
    annotations["batch.kubernetes.io/job-tracking"] = json!("");
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": format!("{name}-"),
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [owner_ref(job)],
            "finalizers": ["batch.kubernetes.io/job-tracking"],
        },
        "spec": template.get("spec").cloned().unwrap_or(json!({})),
        "status": {"phase": "Pending", "qosClass": "Burstable"},
    })
}

fn deadline_exceeded(st: &mut State, job: &Value) {
    let jobs_res = resources::get("batch", "jobs");
    let pods_res = resources::get("", "pods");
    let ns = meta_str(job, "namespace").to_string();
    let name = meta_str(job, "name").to_string();
    let sel = LabelSelector::parse(&format!("controller-uid={}", meta_str(job, "uid")))
        .expect("selector");
    let pods = st.list(pods_res, Some(&ns), &sel, &FieldSelector::default());
    let mut failed = 0;
    for p in &pods {
        if !matches!(
            p.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        ) {
            failed += 1;
            let _ = st.delete(pods_res, &ns, meta_str(p, "name"), &DeleteOpts::default());
        }
    }
    let now = util::now();
    st.update(jobs_res, &ns, &name, |j| {
        let s = &mut j["status"];
        s["active"] = json!(0);
        s["failed"] = json!(s["failed"].as_i64().unwrap_or(0) + failed);
        s["conditions"] = json!([
            {"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline", "lastProbeTime": now, "lastTransitionTime": now},
            {"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
             "message": "Job was active longer than specified deadline", "lastProbeTime": now, "lastTransitionTime": now}
        ]);
    });
    st.event(
        job,
        "Warning",
        "DeadlineExceeded",
        "Job was active longer than specified deadline",
        "job-controller",
    );
    cronjob_run_ended(st, job, false);
}

/// A Job's pod ended: the Job completes or fails (backoffLimit 0 is all a trace uses).
fn job_pod_finished(st: &mut State, ns: &str, job_name: &str, succeeded: bool) {
    let jobs_res = resources::get("batch", "jobs");
    let Some(job) = st.get(jobs_res, ns, job_name).cloned() else {
        return;
    };
    if job_finished(&job).is_some() {
        return;
    }
    let now = util::now();
    st.update(jobs_res, ns, job_name, |j| {
        let s = &mut j["status"];
        s["active"] = json!(0);
        s["ready"] = json!(0);
        if succeeded {
            s["succeeded"] = json!(1);
            s["completionTime"] = json!(now);
            s["conditions"] = json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": now, "lastTransitionTime": now}
            ]);
        } else {
            s["failed"] = json!(s["failed"].as_i64().unwrap_or(0) + 1);
            s["conditions"] = json!([
                {"type": "FailureTarget", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit", "lastProbeTime": now, "lastTransitionTime": now}
            ]);
        }
    });
    if succeeded {
        st.event(
            &job,
            "Normal",
            "Completed",
            "Job completed",
            "job-controller",
        );
    } else {
        st.event(
            &job,
            "Warning",
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit",
            "job-controller",
        );
    }
    cronjob_run_ended(st, &job, succeeded);
}

/// Update the owning CronJob's status and apply its history limits.
fn cronjob_run_ended(st: &mut State, job: &Value, succeeded: bool) {
    let Some(owner) = controller_of(job, "CronJob").cloned() else {
        return;
    };
    let cj_res = resources::get("batch", "cronjobs");
    let jobs_res = resources::get("batch", "jobs");
    let ns = meta_str(job, "namespace").to_string();
    let cj_name = owner["name"].as_str().unwrap_or("").to_string();
    let job_uid = meta_str(job, "uid").to_string();
    let Some(cj) = st.update(cj_res, &ns, &cj_name, |c| {
        if let Some(a) = c["status"]["active"].as_array_mut() {
            a.retain(|r| r["uid"] != json!(job_uid));
        }
        if succeeded {
            c["status"]["lastSuccessfulTime"] = json!(util::now());
        }
    }) else {
        return;
    };
    let cj_uid = meta_str(&cj, "uid").to_string();
    for (ok, field, default) in [
        (true, "successfulJobsHistoryLimit", 3),
        (false, "failedJobsHistoryLimit", 1),
    ] {
        let limit = cj
            .pointer(&format!("/spec/{field}"))
            .and_then(Value::as_i64)
            .unwrap_or(default) as usize;
        let mut runs: Vec<Value> = st
            .list(
                jobs_res,
                Some(&ns),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .into_iter()
            .filter(|j| controller_of(j, "CronJob").is_some_and(|o| o["uid"] == json!(cj_uid)))
            .filter(|j| job_finished(j) == Some(if ok { "Complete" } else { "Failed" }))
            .collect();
        runs.sort_by_key(|j| {
            (
                meta_str(j, "creationTimestamp").to_string(),
                meta_str(j, "name").to_string(),
            )
        });
        while runs.len() > limit {
            let old = runs.remove(0);
            let _ = st.delete(
                jobs_res,
                &ns,
                meta_str(&old, "name"),
                &DeleteOpts {
                    propagation: Some("Background".into()),
                    grace: None,
                },
            );
        }
    }
}

/// Run a CronJob now: a Job from its jobTemplate, owned by it (a test knob: real
/// schedules are minutes apart). Returns the Job's name.
pub fn trigger_cronjob(store: &Store, ns: &str, name: &str) -> Result<String, ApiError> {
    let cj_res = resources::get("batch", "cronjobs");
    let jobs_res = resources::get("batch", "jobs");
    store.with(|st| {
        let cj = st
            .get(cj_res, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(cj_res, name))?;
        let forbid = cj
            .pointer("/spec/concurrencyPolicy")
            .and_then(Value::as_str)
            == Some("Forbid");
        let active = cj
            .pointer("/status/active")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty());
        if forbid && active {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!("cronjob {name} has an active run and concurrencyPolicy Forbid"),
                details: Value::Null,
            });
        }
        let template = cj
            .pointer("/spec/jobTemplate")
            .cloned()
            .unwrap_or(json!({}));
        let mut minutes = util::epoch_now() / 60;
        while st.get(jobs_res, ns, &format!("{name}-{minutes}")).is_some() {
            minutes += 1;
        }
        let job_name = format!("{name}-{minutes}");
        let mut annotations = template
            .pointer("/metadata/annotations")
            .cloned()
            .unwrap_or(json!({}));
        annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"] = json!(util::now());
        let job = json!({
            "metadata": {
                "name": job_name,
                "labels": template.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
                "annotations": annotations,
                "ownerReferences": [owner_ref(&cj)],
            },
            "spec": template.get("spec").cloned().unwrap_or(json!({})),
        });
        let created = st.create(jobs_res, ns, job)?;
        let r = json!({"apiVersion": "batch/v1", "kind": "Job", "name": job_name,
                       "namespace": ns, "uid": meta_str(&created, "uid")});
        st.update(cj_res, ns, name, |c| {
            let s = &mut c["status"];
            let mut active = s["active"].as_array().cloned().unwrap_or_default();
            active.push(r);
            s["active"] = json!(active);
            s["lastScheduleTime"] = json!(util::now());
        });
        st.event(
            &cj,
            "Normal",
            "SuccessfulCreate",
            &format!("Created job {job_name}"),
            "cronjob-controller",
        );
        Ok(job_name)
    })
}

/// A volume ready to bind: a host directory (or file).
type Volumes = HashMap<String, PathBuf>;

fn prepare_volumes(
    agent: &Agent,
    st: &State,
    pod: &Value,
    poddir: &Path,
) -> Result<Volumes, (String, String)> {
    let ns = meta_str(pod, "namespace");
    let mut vols = Volumes::new();
    for v in pod
        .pointer("/spec/volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vname = v["name"].as_str().unwrap_or("").to_string();
        let dir = poddir.join("volumes").join(&vname);
        if let Some(src) = v.get("configMap") {
            let cm_name = src["name"].as_str().unwrap_or("");
            let optional = src["optional"].as_bool().unwrap_or(false);
            let obj = st.get(resources::get("", "configmaps"), ns, cm_name);
            std::fs::create_dir_all(&dir).map_err(|e| ("FailedMount".into(), e.to_string()))?;
            match obj {
                None if optional => {}
                None => {
                    return Err((
                        "FailedMount".into(),
                        format!("MountVolume.SetUp failed for volume {vname:?} : configmap {cm_name:?} not found"),
                    ))
                }
                Some(obj) => {
                    let cm: ConfigMap = serde_json::from_value(obj.clone()).map_err(|e| ("FailedMount".into(), e.to_string()))?;
                    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
                    for (k, d) in cm.data.unwrap_or_default() {
                        files.push((k, d.into_bytes()));
                    }
                    for (k, d) in cm.binary_data.unwrap_or_default() {
                        files.push((k, d.0));
                    }
                    let items: Option<Vec<(String, String)>> = src["items"]
                        .as_array()
                        .map(|a| a.iter().map(|i| (i["key"].as_str().unwrap_or("").into(), i["path"].as_str().unwrap_or("").into())).collect());
                    for (k, bytes) in files {
                        let rel = match &items {
                            Some(items) => match items.iter().find(|(key, _)| *key == k) {
                                Some((_, p)) => p.clone(),
                                None => continue,
                            },
                            None => k,
                        };
                        let path = dir.join(rel);
                        if let Some(parent) = path.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        std::fs::write(&path, bytes).map_err(|e| ("FailedMount".into(), e.to_string()))?;
                        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
                    }
                }
            }
            vols.insert(vname, dir);
        } else if let Some(hp) = v.get("hostPath") {
            let path = agent.cfg.host_path(hp["path"].as_str().unwrap_or("/"));
            match hp["type"].as_str().unwrap_or("") {
                "Directory" if !path.is_dir() => {
                    return Err((
                        "FailedMount".into(),
                        format!("MountVolume.SetUp failed for volume {vname:?} : hostPath type check failed: {} is not a directory", path.display()),
                    ))
                }
                "DirectoryOrCreate" => {
                    let _ = std::fs::create_dir_all(&path);
                }
                _ => {}
            }
            vols.insert(vname, path);
        } else if let Some(pvc) = v.get("persistentVolumeClaim") {
            let claim = pvc["claimName"].as_str().unwrap_or("");
            if st
                .get(resources::get("", "persistentvolumeclaims"), ns, claim)
                .is_none()
            {
                return Err((
                    "FailedMount".into(),
                    format!("Unable to attach or mount volumes: unmounted volumes=[{vname}]: persistentvolumeclaim {claim:?} not found"),
                ));
            }
            let dir = claim_dir(&agent.cfg.workdir, ns, claim);
            std::fs::create_dir_all(&dir).map_err(|e| ("FailedMount".into(), e.to_string()))?;
            vols.insert(vname, dir);
        } else {
            std::fs::create_dir_all(&dir).map_err(|e| ("FailedMount".into(), e.to_string()))?;
            vols.insert(vname, dir);
        }
    }
    Ok(vols)
}

/// Where the fake cluster keeps a PersistentVolumeClaim's files.
pub fn claim_dir(workdir: &Path, ns: &str, claim: &str) -> PathBuf {
    workdir.join("pvc").join(ns).join(claim)
}

/// One step of building a container's root, in its own mount namespace.
enum MountOp {
    Bind {
        src: CString,
        dst: CString,
        recursive: bool,
        read_only: bool,
    },
    /// An empty tmpfs over a directory (to make mount points the host lacks).
    Tmpfs(CString),
    Mkdir(CString),
    /// An empty file (a mount point for a file).
    Touch(CString),
}

/// How to start one container, all resolved in the parent.
struct Launch {
    argv: Vec<CString>,
    env: Vec<(String, String)>,
    rootfs: CString,
    workdir: CString,
    ops: Vec<MountOp>,
    /// The container's user (`securityContext.runAsUser`...); `None`: root.
    creds: Option<Creds>,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in paths")
}

/// Lay out the container's root: the host's top-level directories, its volumes at their
/// mount paths, and the runner binary.
fn plan_launch(
    agent: &Agent,
    pod: &Value,
    container: &Value,
    vols: &Volumes,
    poddir: &Path,
) -> Result<Launch, String> {
    let rootfs = poddir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    let mut ops = Vec::new();
    let bind = |src: &Path, dst: &Path, recursive: bool, read_only: bool| MountOp::Bind {
        src: cstr(src),
        dst: cstr(dst),
        recursive,
        read_only,
    };
    let mut host_tops = HashSet::new();
    for entry in std::fs::read_dir("/").map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name();
        let target = rootfs.join(&name);
        let ft = entry.file_type().map_err(|e| e.to_string())?;
        if ft.is_symlink() {
            let to = std::fs::read_link(entry.path()).map_err(|e| e.to_string())?;
            let _ = std::os::unix::fs::symlink(to, &target);
        } else if ft.is_dir() {
            let _ = std::fs::create_dir_all(&target);
            if name == "tmp" {
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o1777));
                continue;
            }
            host_tops.insert(name.to_string_lossy().into_owned());
            ops.push(bind(&entry.path(), &target, true, false));
        }
    }
    let mut mounts: Vec<(String, PathBuf, bool)> = Vec::new();
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vname = m["name"].as_str().unwrap_or("");
        let mpath = m["mountPath"].as_str().unwrap_or("").to_string();
        let mut src = vols
            .get(vname)
            .cloned()
            .ok_or_else(|| format!("volume {vname:?} not found in the pod"))?;
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            src = src.join(sub);
            if !src.exists() {
                let _ = std::fs::create_dir_all(&src);
            }
        }
        mounts.push((mpath, src, m["readOnly"].as_bool().unwrap_or(false)));
    }
    mounts.sort_by_key(|(p, _, _)| Path::new(p).components().count());
    let under_host_top = |mpath: &str| {
        let top = mpath
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        host_tops.contains(top)
    };
    // Mount paths in the host's directories that this host lacks (/var/log/pods on a
    // machine without a kubelet): a tmpfs over their deepest existing ancestor, in the
    // container's mount namespace only, with the missing directories made in it. The
    // host is never changed.
    let mut shadowed: Vec<PathBuf> = Vec::new();
    for (mpath, _, _) in &mounts {
        let p = Path::new(mpath);
        if !under_host_top(mpath) || p.exists() {
            continue;
        }
        let mut a = p.parent();
        while let Some(x) = a.filter(|x| !x.is_dir()) {
            a = x.parent();
        }
        let a = a.unwrap_or(Path::new("/")).to_path_buf();
        if a.components().count() < 2 {
            return Err(format!(
                "mount path {mpath}: no directory of this host to put it in"
            ));
        }
        if !shadowed.iter().any(|s| a.starts_with(s)) {
            shadowed.retain(|s| !s.starts_with(&a));
            shadowed.push(a);
        }
    }
    for a in &shadowed {
        ops.push(MountOp::Tmpfs(cstr(
            &rootfs.join(a.strip_prefix("/").unwrap_or(a)),
        )));
    }
    for (mpath, src, ro) in mounts {
        let rel = mpath.trim_start_matches('/');
        let target = rootfs.join(rel);
        if under_host_top(&mpath) {
            if let Some(a) = shadowed.iter().find(|a| Path::new(&mpath).starts_with(a)) {
                let mut cur = rootfs.join(a.strip_prefix("/").unwrap_or(a));
                let rest: Vec<_> = Path::new(&mpath)
                    .strip_prefix(a)
                    .map(|r| r.components().collect())
                    .unwrap_or_default();
                for (i, c) in rest.iter().enumerate() {
                    cur = cur.join(c);
                    ops.push(if i + 1 < rest.len() || src.is_dir() {
                        MountOp::Mkdir(cstr(&cur))
                    } else {
                        MountOp::Touch(cstr(&cur))
                    });
                }
            }
        } else if src.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        } else {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
            }
            std::fs::write(&target, b"").map_err(|e| e.to_string())?;
        }
        ops.push(bind(&src, &target, true, ro));
    }
    // The runner binary, as the image's /usr/local/bin/trace-runner would be.
    let bindir = rootfs.join(".e2e-bin");
    std::fs::create_dir_all(&bindir).map_err(|e| e.to_string())?;
    std::fs::write(bindir.join("trace-runner"), b"").map_err(|e| e.to_string())?;
    ops.push(bind(
        &agent.cfg.runner,
        &bindir.join("trace-runner"),
        false,
        true,
    ));

    let image = container["image"].as_str().unwrap_or("");
    let args: Vec<String> = container["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut argv: Vec<String> = match container["command"].as_array() {
        Some(c) => c
            .iter()
            .filter_map(|s| s.as_str().map(str::to_string))
            .chain(args)
            .collect(),
        None if image.contains("trace-runner") => std::iter::once("trace-runner".to_string())
            .chain(args)
            .collect(),
        None => args,
    };
    if argv.is_empty() {
        return Err(format!("image {image:?}: no command (the fake kubelet knows no image entrypoints besides trace-runner's)"));
    }
    argv[0] = if argv[0] == "trace-runner" || argv[0].ends_with("/trace-runner") {
        "/.e2e-bin/trace-runner".to_string()
    } else if argv[0].contains('/') {
        argv[0].clone()
    } else {
        let found = [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| Path::new(d).join(&argv[0]))
        .find(|p| p.exists())
        .ok_or_else(|| format!("executable file not found in $PATH: {:?}", argv[0]))?;
        found.display().to_string()
    };

    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.e2e-bin".to_string(),
        ),
        ("HOSTNAME".to_string(), meta_str(pod, "name").to_string()),
    ];
    for var in ["TRACE_RUNNER_DEBUG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(var) {
            env.push((var.to_string(), v));
        }
    }
    for e in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = e["name"].as_str().unwrap_or("").to_string();
        let value = if let Some(v) = e["value"].as_str() {
            v.to_string()
        } else if let Some(fp) = e
            .pointer("/valueFrom/fieldRef/fieldPath")
            .and_then(Value::as_str)
        {
            let ptr = format!("/{}", fp.replace('.', "/"));
            pod.pointer(&ptr)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        } else {
            String::new()
        };
        env.push((name, value));
    }
    Ok(Launch {
        argv: argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
            .collect(),
        env,
        rootfs: cstr(&rootfs),
        workdir: CString::new(container["workingDir"].as_str().unwrap_or("/")).unwrap_or_default(),
        ops,
        creds: Creds::of(pod, container),
    })
}

fn spawn(l: Launch) -> std::io::Result<tokio::process::Child> {
    let program = std::ffi::OsStr::from_bytes(l.argv[0].as_bytes()).to_owned();
    let mut cmd = tokio::process::Command::new(program);
    for a in &l.argv[1..] {
        cmd.arg(std::ffi::OsStr::from_bytes(a.as_bytes()));
    }
    cmd.env_clear();
    for (k, v) in &l.env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(false);
    let (rootfs, workdir, ops, creds) = (l.rootfs, l.workdir, l.ops, l.creds);
    // SAFETY: only async-signal-safe syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let err = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return err();
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return err();
            }
            // The root: a mount point of its own, so that it can become the namespace's
            // root (pivot_root, as container runtimes do: under a chroot the namespace's
            // root would stay the host's, and setns(2) back to it would leave the pod).
            if libc::mount(
                rootfs.as_ptr(),
                rootfs.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                return err();
            }
            for op in &ops {
                match op {
                    MountOp::Bind {
                        src,
                        dst,
                        recursive,
                        read_only,
                    } => {
                        let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                        if libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        ) != 0
                        {
                            return err();
                        }
                        if *read_only {
                            libc::mount(
                                std::ptr::null(),
                                dst.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                                std::ptr::null(),
                            );
                        }
                    }
                    MountOp::Tmpfs(dst) => {
                        if libc::mount(
                            c"tmpfs".as_ptr(),
                            dst.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV,
                            c"mode=755".as_ptr().cast(),
                        ) != 0
                        {
                            return err();
                        }
                    }
                    MountOp::Mkdir(dst) => {
                        libc::mkdir(dst.as_ptr(), 0o755);
                    }
                    MountOp::Touch(dst) => {
                        let fd = libc::open(
                            dst.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
            }
            // pivot_root(".", "."): the old root lands on top of the new one; detach it.
            let dot = c".";
            if libc::chdir(rootfs.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0
                || libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
                || libc::chdir(workdir.as_ptr()) != 0
            {
                return err();
            }
            if let Some(c) = &creds {
                c.apply()?;
            }
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
}

/// containerd mode: the container of `launch` as `ctr run` runs it. The runner image's
/// trace-runner runs from the imported image; other images run on this host's `/usr`.
/// Volumes are bind mounts at their mount paths; `privileged`, `hostPID` and the pod's
/// QoS class (its cgroup, in the runtime's layout) come from the pod spec.
fn containerd_spec(
    rt: &ContainerRuntime,
    pod: &Value,
    container: &Value,
    vols: &Volumes,
    l: &Launch,
    cid: &str,
) -> Result<RunSpec, String> {
    let mut argv: Vec<String> = l
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut mounts = Vec::new();
    let root = if argv.first().is_some_and(|a| a == "/.e2e-bin/trace-runner") {
        argv[0] = xtask::oci::BINARY_PATH.to_string();
        Root::Image(rt.runner_image.clone())
    } else {
        mounts.extend(rt.host_image_mounts());
        Root::Dir(rt.rootfs.clone())
    };
    for m in container
        .get("volumeMounts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let vname = m["name"].as_str().unwrap_or("");
        let mut src = vols
            .get(vname)
            .cloned()
            .ok_or_else(|| format!("volume {vname:?} not found in the pod"))?;
        if let Some(sub) = m["subPath"].as_str().filter(|s| !s.is_empty()) {
            src = src.join(sub);
        }
        let dst = m["mountPath"].as_str().unwrap_or("").to_string();
        mounts.push((src, dst, m["readOnly"].as_bool().unwrap_or(false)));
    }
    let qos = pod
        .pointer("/status/qosClass")
        .and_then(Value::as_str)
        .unwrap_or("Burstable");
    Ok(RunSpec {
        id: cid.to_string(),
        root,
        argv,
        env: l.env.clone(),
        mounts,
        cgroup: cgroup_path(rt.layout, qos, meta_str(pod, "uid"), cid),
        privileged: container.pointer("/securityContext/privileged") == Some(&json!(true)),
        host_pid_ns: (pod.pointer("/spec/hostPID") == Some(&json!(true)))
            .then(|| PathBuf::from("/proc/self/ns/pid")),
        workdir: container["workingDir"].as_str().map(str::to_string),
    })
}

fn signal_group(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on the container's process group.
    unsafe {
        libc::kill(-pid, sig);
    }
}

fn container_status(name: &str, image: &str, state: Value, id: Option<&str>, ready: bool) -> Value {
    let mut s = json!({"name": name, "image": image, "imageID": "", "ready": ready,
                       "restartCount": 0, "started": ready, "state": state});
    if let Some(id) = id {
        s["containerID"] = json!(format!("containerd://{id}"));
        s["imageID"] = json!(format!("{image}@sha256:{}", &id[..64.min(id.len())]));
    }
    s
}

/// The kubelet's work for one pod on a fake node.
async fn kubelet(agent: Arc<Agent>, ns: String, name: String, uid: String) {
    let pods_res = resources::get("", "pods");
    let store = agent.store.clone();
    let poddir = agent.cfg.workdir.join("pods").join(&uid);
    let Some(pod) = store.lock().get(pods_res, &ns, &name).cloned() else {
        return;
    };
    let container = pod
        .pointer("/spec/containers/0")
        .cloned()
        .unwrap_or(json!({}));
    let cname = container["name"].as_str().unwrap_or("").to_string();
    let image = container["image"].as_str().unwrap_or("").to_string();
    let node = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let node_ix = agent.cfg.nodes.iter().position(|n| *n == node).unwrap_or(0);
    let now = util::now();
    store.with(|st| {
        st.update(pods_res, &ns, &name, |p| {
            p["status"] = json!({
                "phase": "Pending", "hostIP": "127.0.0.1", "startTime": now, "qosClass": "Burstable",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                    {"type": "Initialized", "status": "True", "lastTransitionTime": now},
                    {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now},
                ],
                "containerStatuses": [container_status(&cname, &image, json!({"waiting": {"reason": "ContainerCreating"}}), None, false)],
            });
        });
        st.event(&pod, "Normal", "Scheduled", &format!("Successfully assigned {ns}/{name} to {node}"), "default-scheduler");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Volumes (the plugin creates the ConfigMap after the Job: wait for it).
    let vols = loop {
        let r = {
            let st = store.lock();
            match st.get(pods_res, &ns, &name) {
                None => return,
                Some(p) if p["metadata"].get("deletionTimestamp").is_some() => Err(None),
                Some(p) => prepare_volumes(&agent, &st, p, &poddir).map_err(Some),
            }
        };
        match r {
            Ok(v) => break v,
            Err(None) => {
                store.with(|st| st.remove(pods_res, &ns, &name));
                return;
            }
            Err(Some((reason, msg))) => {
                store.with(|st| st.event(&pod, "Warning", &reason, &msg, "kubelet"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<Kill>();
    let log = Arc::new(PodLog::default());
    let started_at = util::now();
    let cid = util::new_container_id();
    let launch = plan_launch(&agent, &pod, &container, &vols, &poddir);
    let exec_env = launch.as_ref().map(|l| l.env.clone()).unwrap_or_default();
    let exec_creds = launch.as_ref().ok().and_then(|l| l.creds.clone());
    let runtime = agent.cfg.containers.clone();
    let child = launch.and_then(|l| match &runtime {
        Some(rt) => containerd_spec(rt, &pod, &container, &vols, &l, &cid).and_then(|spec| {
            rt.spawn(&spec)
                .map_err(|e| format!("failed to create containerd task: {e}"))
        }),
        None => spawn(l).map_err(|e| format!("failed to create containerd task: {e}")),
    });
    let mut child = match child {
        Ok(c) => c,
        Err(msg) => {
            store.with(|st| {
                st.event(&pod, "Warning", "Failed", &format!("Error: {msg}"), "kubelet");
                st.update(pods_res, &ns, &name, |p| {
                    p["status"]["phase"] = json!("Failed");
                    p["status"]["containerStatuses"] = json!([container_status(&cname, &image,
                        json!({"terminated": {"exitCode": 128, "reason": "StartError", "message": msg,
                               "startedAt": started_at, "finishedAt": util::now()}}), Some(&cid), false)]);
                });
                if let Some(job) = pod_job(&pod) {
                    job_pod_finished(st, &ns, &job, false);
                }
            });
            return;
        }
    };
    let pid = match &runtime {
        // The container's main process, in this host's pid namespace.
        Some(rt) => {
            let (rt, id) = (rt.clone(), cid.clone());
            tokio::task::spawn_blocking(move || rt.ctd.task_pid(&id, Duration::from_secs(30)))
                .await
                .ok()
                .flatten()
                .map_or(0, |p| p as i32)
        }
        None => child.id().map_or(0, |p| p as i32),
    };
    // SIGTERM to the container's main process, SIGKILL to all of it.
    let signal = |sig: i32| match &runtime {
        Some(rt) => {
            let _ = rt.ctd.kill(
                &cid,
                if sig == libc::SIGKILL {
                    "SIGKILL"
                } else {
                    "SIGTERM"
                },
            );
        }
        None if sig == libc::SIGKILL => signal_group(pid, libc::SIGKILL),
        // SAFETY: kill(2) on our child.
        None => unsafe {
            libc::kill(pid, sig);
        },
    };
    let _ = write_pod_logs(
        &agent.cfg.log_dir,
        &ns,
        &name,
        &uid,
        &[(cname.clone(), cid.clone())],
    );
    store.with(|st| {
        st.pids.insert(uid.clone(), pid);
        st.exec.insert(
            uid.clone(),
            ExecTarget {
                container: cname.clone(),
                pid,
                workdir: container["workingDir"].as_str().unwrap_or("/").to_string(),
                env: exec_env,
                creds: exec_creds,
            },
        );
        st.kills.insert(uid.clone(), kill_tx);
        st.logs.insert(format!("{uid}/{cname}"), log.clone());
        st.update(pods_res, &ns, &name, |p| {
            let s = &mut p["status"];
            s["phase"] = json!("Running");
            s["podIP"] = json!(format!("10.244.{node_ix}.{}", 2 + (pid % 250)));
            s["podIPs"] = json!([{"ip": s["podIP"]}]);
            s["conditions"] = json!([
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started_at},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": started_at},
                {"type": "Ready", "status": "True", "lastTransitionTime": started_at},
            ]);
            s["containerStatuses"] = json!([container_status(
                &cname,
                &image,
                json!({"running": {"startedAt": started_at}}),
                Some(&cid),
                true
            )]);
        });
        if let Some(job) = pod_job(&pod) {
            st.update(resources::get("batch", "jobs"), &ns, &job, |j| {
                j["status"]["ready"] = json!(1)
            });
        }
        st.event(
            &pod,
            "Normal",
            "Pulled",
            &format!("Container image {image:?} already present on machine"),
            "kubelet",
        );
        st.event(
            &pod,
            "Normal",
            "Created",
            &format!("Created container {cname}"),
            "kubelet",
        );
        st.event(
            &pod,
            "Normal",
            "Started",
            &format!("Started container {cname}"),
            "kubelet",
        );
    });
    let mut readers = Vec::new();
    let out = child
        .stdout
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    let err = child
        .stderr
        .take()
        .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
    for stream in [out, err].into_iter().flatten() {
        let log = log.clone();
        readers.push(tokio::spawn(async move {
            let mut r = BufReader::new(stream);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match r.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {
                        if !buf.ends_with(b"\n") {
                            buf.push(b'\n');
                        }
                        log.push(buf.clone());
                    }
                }
            }
        }));
    }
    // Run until exit; a kill request gets SIGTERM, then SIGKILL after its grace.
    let mut kill_at: Option<tokio::time::Instant> = None;
    let status = loop {
        let sleep_until =
            kill_at.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            s = child.wait() => break s,
            k = kill_rx.recv() => {
                if let Some(k) = k {
                    let at = tokio::time::Instant::now() + Duration::from_secs(k.grace);
                    if k.grace == 0 {
                        signal(libc::SIGKILL);
                    } else if kill_at.is_none() {
                        // As a runtime does: SIGTERM to the container's main process only.
                        signal(libc::SIGTERM);
                    }
                    kill_at = Some(kill_at.map_or(at, |old| old.min(at)));
                }
            }
            _ = tokio::time::sleep_until(sleep_until), if kill_at.is_some() => {
                signal(libc::SIGKILL);
                kill_at = Some(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    };
    // The container's other processes go with it.
    match &runtime {
        Some(rt) => rt.ctd.remove(&cid),
        None => signal_group(pid, libc::SIGKILL),
    }
    for r in readers {
        let _ = tokio::time::timeout(Duration::from_secs(2), r).await;
    }
    log.close();
    let code = match &status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
        }
        Err(_) => 137,
    };
    let finished = util::now();
    store.with(|st| {
        st.kills.remove(&uid);
        st.pids.remove(&uid);
        st.exec.remove(&uid);
        let reason = if code == 0 { "Completed" } else { "Error" };
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let updated = st.update(pods_res, &ns, &name, |p| {
            let s = &mut p["status"];
            s["phase"] = json!(phase);
            s["conditions"] = json!([
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": started_at},
                {"type": "Initialized", "status": "True", "lastTransitionTime": started_at},
                {"type": "ContainersReady", "status": "False", "reason": "PodCompleted", "lastTransitionTime": finished},
                {"type": "Ready", "status": "False", "reason": "PodCompleted", "lastTransitionTime": finished},
            ]);
            let mut term = json!({"exitCode": code, "reason": reason, "startedAt": started_at,
                                  "finishedAt": finished, "containerID": format!("containerd://{cid}")});
            if code != 0 {
                let text = log.text();
                let tail: Vec<&str> = text.lines().rev().take(80).collect();
                term["message"] = json!(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            s["containerStatuses"] = json!([container_status(&cname, &image, json!({"terminated": term}), Some(&cid), false)]);
        });
        if let Some(job) = pod_job(&pod) {
            job_pod_finished(st, &ns, &job, code == 0);
        }
        if updated.is_some_and(|p| p["metadata"].get("deletionTimestamp").is_some()) {
            st.remove(pods_res, &ns, &name);
        }
    });
    remove_unmounted(&poddir.join("rootfs"));
}

/// Remove a pod root, unless something is still mounted below it (the binds live in
/// the container's own mount namespace and vanish with it; this is a safety net).
pub fn remove_unmounted(dir: &Path) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let d = dir.display().to_string();
    if mounts.lines().any(|l| {
        l.split_whitespace()
            .nth(4)
            .is_some_and(|m| m.starts_with(&d))
    }) {
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}

fn pod_job(pod: &Value) -> Option<String> {
    controller_of(pod, "Job")
        .and_then(|r| r["name"].as_str())
        .map(str::to_string)
}

// ---------------------------------------------------------------------------------------
// pods/exec
// ---------------------------------------------------------------------------------------

/// Where to run `pods/exec` for container `container` (empty: the only one) of pod
/// `ns/name`, with the errors the API gives for a missing pod, a wrong container name and
/// a container that does not run (workload pods are not exec'd into).
pub fn exec_target(
    st: &State,
    ns: &str,
    name: &str,
    container: &str,
) -> Result<ExecTarget, ApiError> {
    let pods = resources::get("", "pods");
    let pod = st
        .get(pods, ns, name)
        .ok_or_else(|| ApiError::not_found(pods, name))?;
    let containers: Vec<&str> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let container = match container {
        "" if containers.len() == 1 => containers[0],
        "" => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
        c if containers.contains(&c) => c,
        c => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
    };
    match st.exec.get(meta_str(pod, "uid")) {
        Some(t) if t.container == container => Ok(t.clone()),
        _ => Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))),
    }
}

/// Start `argv` in a running container as a runtime's exec does: in the mount namespace
/// of the container's main process (whose root is the container's), with its environment, in a
/// process group of its own (`-pid` kills it and its children). The program is looked up
/// in the container's PATH, in the container's view of the files.
pub fn exec_in_container(
    t: &ExecTarget,
    argv: &[String],
) -> std::io::Result<tokio::process::Child> {
    let not_found = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("exec: {what:?}: executable file not found in $PATH"),
        )
    };
    let first = argv.first().ok_or_else(|| not_found(""))?;
    let view = PathBuf::from(format!("/proc/{}/root", t.pid));
    let program = if first.contains('/') {
        first.clone()
    } else {
        let path = t
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
        path.split(':')
            .map(|d| Path::new(d).join(first))
            .find(|p| {
                view.join(p.strip_prefix("/").unwrap_or(p))
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| not_found(first))?
            .display()
            .to_string()
    };
    let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", t.pid))?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(t.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&mnt);
    let workdir = CString::new(t.workdir.as_bytes()).unwrap_or_default();
    let creds = t.creds.clone();
    // SAFETY: only async-signal-safe syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Entering the namespace sets the root to its root: the container's.
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 || libc::chdir(workdir.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // As the container's user, as a runtime's exec does.
            if let Some(c) = &creds {
                c.apply()?;
            }
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(mnt);
    child
}

// ---------------------------------------------------------------------------------------
// The kubelet's log directories
// ---------------------------------------------------------------------------------------

/// Make the kubelet's log directories for a pod under `log_dir` (the fake node's
/// `/var/log`): `pods/<ns>_<name>_<uid>/<container>/0.log`, and for each container
/// `containers/<name>_<ns>_<container>-<id>.log`, a link to the former as the node sees
/// it (`/var/log/pods/...`).
pub fn write_pod_logs(
    log_dir: &Path,
    ns: &str,
    name: &str,
    uid: &str,
    containers: &[(String, String)],
) -> std::io::Result<()> {
    let pod_dir = format!("{ns}_{name}_{uid}");
    std::fs::create_dir_all(log_dir.join("containers"))?;
    for (c, id) in containers {
        let dir = log_dir.join("pods").join(&pod_dir).join(c);
        std::fs::create_dir_all(&dir)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("0.log"))?;
        let link = log_dir
            .join("containers")
            .join(format!("{name}_{ns}_{c}-{id}.log"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/var/log/pods/{pod_dir}/{c}/0.log"), &link)?;
    }
    Ok(())
}

/// The uid in a pod log directory's name (`<ns>_<name>_<uid>`).
fn uid_of_pod_dir(dir: &str) -> Option<&str> {
    dir.rsplit_once('_').map(|(_, uid)| uid)
}

/// Remove the log directories and container links of pods gone from the API, as the
/// kubelet cleans up after a deleted pod.
pub fn gc_pod_logs(store: &Store, log_dir: &Path) {
    // List first, then look the uids up: a directory listed was made after its pod.
    let list = |sub: &str| -> Vec<PathBuf> {
        std::fs::read_dir(log_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let dirs = list("pods");
    let links = list("containers");
    if dirs.is_empty() && links.is_empty() {
        return;
    }
    let uids: HashSet<String> = {
        let st = store.lock();
        st.list(
            resources::get("", "pods"),
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .iter()
        .map(|p| meta_str(p, "uid").to_string())
        .collect()
    };
    let gone = |dir: &str| uid_of_pod_dir(dir).is_some_and(|u| !uids.contains(u));
    for d in dirs {
        if d.file_name().and_then(|n| n.to_str()).is_some_and(gone) {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    for l in links {
        let target = std::fs::read_link(&l).unwrap_or_default();
        let dir = target
            .strip_prefix("/var/log/pods")
            .ok()
            .and_then(|r| r.components().next())
            .and_then(|c| c.as_os_str().to_str().map(str::to_string));
        if dir.as_deref().is_some_and(gone) {
            let _ = std::fs::remove_file(&l);
        }
    }
}
