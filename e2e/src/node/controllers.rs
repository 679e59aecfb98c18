//! The fake node's controllers: the Job controller (a pod per Job, `<job>-xxxxx`, labels
//! `job-name`/`controller-uid` and the template's, admission included: a rejected pod
//! becomes a `FailedCreate` event on the Job, as the real controller reports it; the Job
//! completes or fails with its pod; activeDeadlineSeconds; ttlSecondsAfterFinished
//! removes finished Jobs), CronJob runs on demand with their history limits, and a tiny
//! scheduler that hands pods to the kubelet. They work on k8s-openapi types
//! ([`super::objects`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::{ObjectReference, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::kubelet::kubelet;
use super::logs::gc_pod_logs;
use super::objects::{self, controller_of, ids, owner_ref, Object as _};
use super::{Agent, WORKLOAD_ANNOTATION};
use crate::api::resources;
use crate::api::selectors::LabelSelector;
use crate::api::store::{ApiError, DeleteOpts, State, Store};
use crate::util;

/// `Complete` or `Failed` once the Job has finished.
fn job_finished(job: &Job) -> Option<&'static str> {
    let conds = job.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

/// A Job condition as the controller sets it, now.
fn condition(type_: &str, reason: &str, message: &str) -> JobCondition {
    let now = Time(Timestamp::now());
    JobCondition {
        type_: type_.into(),
        status: "True".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_probe_time: Some(now.clone()),
        last_transition_time: Some(now),
    }
}

fn epoch(t: &Time) -> i64 {
    t.0.as_second()
}

fn background() -> DeleteOpts {
    DeleteOpts {
        propagation: Some("Background".into()),
        grace: None,
    }
}

pub(super) fn reconcile(agent: &Arc<Agent>) {
    gc_pod_logs(&agent.store, &agent.cfg.log_dir);
    let all = LabelSelector::default();
    let mut to_start = Vec::new();
    {
        // Not `Store::with`: that would wake this loop again at once.
        let mut guard = agent.store.lock();
        let st = &mut *guard;
        let now = util::epoch_now();
        for job in objects::list::<Job>(st, None, &all) {
            let (name, ns, uid) = ids(&job.metadata);
            let spec = job.spec.clone().unwrap_or_default();
            let status = job.status.clone().unwrap_or_default();
            if let Some(kind) = job_finished(&job) {
                let done_at = status.completion_time.as_ref().or_else(|| {
                    status
                        .conditions
                        .iter()
                        .flatten()
                        .find(|c| c.type_ == kind)
                        .and_then(|c| c.last_transition_time.as_ref())
                });
                if let (Some(ttl), Some(t)) = (spec.ttl_seconds_after_finished, done_at) {
                    if now >= epoch(t) + i64::from(ttl) {
                        let _ = st.delete(Job::resource(), &ns, &name, &background());
                    }
                }
                continue;
            }
            if status.start_time.is_none() {
                objects::update_status::<Job, JobStatus>(st, &ns, &name, |s| {
                    s.start_time = Some(Time(Timestamp::now()))
                });
            }
            let start = status.start_time.as_ref().map_or(now, epoch);
            if let Some(ads) = spec.active_deadline_seconds {
                if now >= start + ads {
                    deadline_exceeded(st, &job);
                    continue;
                }
            }
            if spec.suspend == Some(true) {
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
            match objects::create(st, &ns, &pod_for_job(&job)) {
                Ok(p) => {
                    agent.created.lock().unwrap().insert(uid.clone());
                    objects::update_status::<Job, JobStatus>(st, &ns, &name, |s| {
                        s.active = Some(1);
                        s.ready = Some(0);
                        s.terminating = Some(0);
                    });
                    let msg = format!(
                        "Created pod: {}",
                        p.metadata.name.as_deref().unwrap_or_default()
                    );
                    objects::event(
                        st,
                        &job,
                        "Normal",
                        "SuccessfulCreate",
                        &msg,
                        "job-controller",
                    );
                }
                Err(e) => {
                    agent
                        .failed_create
                        .lock()
                        .unwrap()
                        .insert(uid.clone(), Instant::now());
                    let msg = format!("Error creating: {}", e.message);
                    objects::event(st, &job, "Warning", "FailedCreate", &msg, "job-controller");
                }
            }
        }
        // The scheduler and the kubelet.
        let started = agent.started.lock().unwrap().clone();
        for pod in objects::list::<Pod>(st, None, &all) {
            let (name, ns, uid) = ids(&pod.metadata);
            if is_workload(&pod) && pod.metadata.deletion_timestamp.is_some() {
                // Seen Terminating by the watchers; its processes are the test's.
                st.remove(Pod::resource(), &ns, &name);
                continue;
            }
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            if started.contains(&uid)
                || is_workload(&pod)
                || matches!(phase, Some("Succeeded" | "Failed"))
            {
                continue;
            }
            let spec = pod.spec.clone().unwrap_or_default();
            let node = spec.node_name.clone().unwrap_or_default();
            if node.is_empty() {
                let wanted = spec
                    .node_selector
                    .as_ref()
                    .and_then(|s| s.get("kubernetes.io/hostname"))
                    .cloned();
                let chosen = wanted
                    .filter(|w| agent.cfg.nodes.contains(w))
                    .or_else(|| agent.cfg.nodes.first().cloned());
                if let Some(n) = chosen {
                    st.update(Pod::resource(), &ns, &name, |p| {
                        p["spec"]["nodeName"] = json!(n)
                    });
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
fn is_workload(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(WORKLOAD_ANNOTATION))
}

/// The Job controller's pod for `job`: the template, with the controller's labels,
/// annotation, owner reference and finalizer.
fn pod_for_job(job: &Job) -> Pod {
    let (name, _, uid) = ids(&job.metadata);
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    for (k, v) in [
        ("job-name", &name),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("batch.kubernetes.io/controller-uid", &uid),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert("batch.kubernetes.io/job-tracking".into(), String::new());
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner_ref(job)]),
            finalizers: Some(vec!["batch.kubernetes.io/job-tracking".into()]),
            ..Default::default()
        },
        spec: Some(template.spec.unwrap_or_default()),
        status: Some(PodStatus {
            phase: Some("Pending".into()),
            qos_class: Some("Burstable".into()),
            ..Default::default()
        }),
    }
}

fn deadline_exceeded(st: &mut State, job: &Job) {
    let (name, ns, uid) = ids(&job.metadata);
    let sel = LabelSelector::parse(&format!("controller-uid={uid}")).expect("selector");
    let mut failed = 0;
    for p in objects::list::<Pod>(st, Some(&ns), &sel) {
        let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
        if !matches!(phase, Some("Succeeded" | "Failed")) {
            failed += 1;
            let pod_name = p.metadata.name.unwrap_or_default();
            let _ = st.delete(Pod::resource(), &ns, &pod_name, &DeleteOpts::default());
        }
    }
    let message = "Job was active longer than specified deadline";
    objects::update_status::<Job, JobStatus>(st, &ns, &name, |s| {
        s.active = Some(0);
        s.failed = Some(s.failed.unwrap_or(0) + failed);
        s.conditions = Some(vec![
            condition("FailureTarget", "DeadlineExceeded", message),
            condition("Failed", "DeadlineExceeded", message),
        ]);
    });
    objects::event(
        st,
        job,
        "Warning",
        "DeadlineExceeded",
        message,
        "job-controller",
    );
    cronjob_run_ended(st, job, false);
}

/// A Job's pod ended: the Job completes or fails (backoffLimit 0 is all a trace uses).
pub(super) fn job_pod_finished(st: &mut State, ns: &str, job_name: &str, succeeded: bool) {
    let Some(job) = objects::get::<Job>(st, ns, job_name) else {
        return;
    };
    if job_finished(&job).is_some() {
        return;
    }
    objects::update_status::<Job, JobStatus>(st, ns, job_name, |s| {
        s.active = Some(0);
        s.ready = Some(0);
        if succeeded {
            let m = "Reached expected number of succeeded pods";
            s.succeeded = Some(1);
            s.completion_time = Some(Time(Timestamp::now()));
            s.conditions = Some(vec![
                condition("SuccessCriteriaMet", "CompletionsReached", m),
                condition("Complete", "CompletionsReached", m),
            ]);
        } else {
            let m = "Job has reached the specified backoff limit";
            s.failed = Some(s.failed.unwrap_or(0) + 1);
            s.conditions = Some(vec![
                condition("FailureTarget", "BackoffLimitExceeded", m),
                condition("Failed", "BackoffLimitExceeded", m),
            ]);
        }
    });
    if succeeded {
        objects::event(
            st,
            &job,
            "Normal",
            "Completed",
            "Job completed",
            "job-controller",
        );
    } else {
        objects::event(
            st,
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
fn cronjob_run_ended(st: &mut State, job: &Job, succeeded: bool) {
    let Some(owner) = controller_of(&job.metadata, "CronJob").cloned() else {
        return;
    };
    let (_, ns, job_uid) = ids(&job.metadata);
    let Some(cj) = objects::update_status::<CronJob, CronJobStatus>(st, &ns, &owner.name, |s| {
        if let Some(a) = s.active.as_mut() {
            a.retain(|r| r.uid.as_deref() != Some(job_uid.as_str()));
        }
        if succeeded {
            s.last_successful_time = Some(Time(Timestamp::now()));
        }
    }) else {
        return;
    };
    let cj_uid = cj.metadata.uid.clone().unwrap_or_default();
    let spec = cj.spec.clone();
    for (ok, limit) in [
        (true, spec.successful_jobs_history_limit.unwrap_or(3)),
        (false, spec.failed_jobs_history_limit.unwrap_or(1)),
    ] {
        let limit = usize::try_from(limit).unwrap_or(0);
        let mut runs: Vec<Job> = objects::list::<Job>(st, Some(&ns), &LabelSelector::default())
            .into_iter()
            .filter(|j| controller_of(&j.metadata, "CronJob").is_some_and(|o| o.uid == cj_uid))
            .filter(|j| job_finished(j) == Some(if ok { "Complete" } else { "Failed" }))
            .collect();
        runs.sort_by_key(|j| {
            (
                j.metadata.creation_timestamp.as_ref().map(|t| t.0),
                j.metadata.name.clone(),
            )
        });
        while runs.len() > limit {
            let old = runs.remove(0);
            let old_name = old.metadata.name.unwrap_or_default();
            let _ = st.delete(Job::resource(), &ns, &old_name, &background());
        }
    }
}

/// Run a CronJob now: a Job from its jobTemplate, owned by it (a test knob: real
/// schedules are minutes apart). Returns the Job's name.
pub fn trigger_cronjob(store: &Store, ns: &str, name: &str) -> Result<String, ApiError> {
    let cj_res = resources::get("batch", "cronjobs");
    store.with(|st| {
        let cj = objects::get::<CronJob>(st, ns, name)
            .ok_or_else(|| ApiError::not_found(cj_res, name))?;
        let spec = cj.spec.clone();
        let forbid = spec.concurrency_policy.as_deref() == Some("Forbid");
        let active = cj
            .status
            .as_ref()
            .and_then(|s| s.active.as_ref())
            .is_some_and(|a| !a.is_empty());
        if forbid && active {
            return Err(ApiError {
                code: 409,
                reason: "Conflict",
                message: format!("cronjob {name} has an active run and concurrencyPolicy Forbid"),
                details: serde_json::Value::Null,
            });
        }
        let template = spec.job_template;
        let mut minutes = util::epoch_now() / 60;
        while objects::get::<Job>(st, ns, &format!("{name}-{minutes}")).is_some() {
            minutes += 1;
        }
        let job_name = format!("{name}-{minutes}");
        let tmeta = template.metadata.unwrap_or_default();
        let mut annotations: BTreeMap<String, String> = tmeta.annotations.unwrap_or_default();
        annotations.insert(
            "batch.kubernetes.io/cronjob-scheduled-timestamp".into(),
            util::now(),
        );
        let job = Job {
            metadata: ObjectMeta {
                name: Some(job_name.clone()),
                labels: Some(tmeta.labels.unwrap_or_default()),
                annotations: Some(annotations),
                owner_references: Some(vec![owner_ref(&cj)]),
                ..Default::default()
            },
            spec: Some(template.spec.unwrap_or_default()),
            status: None,
        };
        let created = objects::create(st, ns, &job)?;
        let r = ObjectReference {
            api_version: Some("batch/v1".into()),
            kind: Some("Job".into()),
            name: Some(job_name.clone()),
            namespace: Some(ns.into()),
            uid: created.metadata.uid.clone(),
            ..Default::default()
        };
        objects::update_status::<CronJob, CronJobStatus>(st, ns, name, |s| {
            s.active.get_or_insert_with(Vec::new).push(r);
            s.last_schedule_time = Some(Time(Timestamp::now()));
        });
        objects::event(
            st,
            &cj,
            "Normal",
            "SuccessfulCreate",
            &format!("Created job {job_name}"),
            "cronjob-controller",
        );
        Ok(job_name)
    })
}
