//! The fake node's controllers: the Job controller (a pod per Job, `<job>-xxxxx`, labels
//! `job-name`/`controller-uid` and the template's, admission included: a rejected pod
//! becomes a `FailedCreate` event on the Job, as the real controller reports it; the Job
//! completes or fails with its pod; activeDeadlineSeconds; ttlSecondsAfterFinished
//! removes finished Jobs), CronJob runs on demand with their history limits, and a tiny
//! scheduler that hands pods to the kubelet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::kubelet::kubelet;
use super::logs::gc_pod_logs;
use super::{Agent, WORKLOAD_ANNOTATION};
use crate::api::resources;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{meta_str, ApiError, DeleteOpts, State, Store};
use crate::util;

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

pub(super) fn controller_of<'a>(obj: &'a Value, kind: &str) -> Option<&'a Value> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("kind").and_then(Value::as_str) == Some(kind))
}

pub(super) fn reconcile(agent: &Arc<Agent>) {
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
pub(super) fn job_pod_finished(st: &mut State, ns: &str, job_name: &str, succeeded: bool) {
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
