//! The fake kubelet: it takes a pod scheduled to a fake node, moves it Pending → Running,
//! prepares its volumes (ConfigMaps written to a directory, hostPath as-is except the
//! kubelet's log directories, which are the harness's own, one directory per
//! PersistentVolumeClaim, emptyDir) and starts its container with the node's runtime
//! ([`super::runtime`]). stdout and stderr become the pod's log; the exit code ends the
//! pod (Succeeded/Failed) and its Job (Complete/Failed). Deletion and
//! activeDeadlineSeconds stop the container with SIGTERM, then SIGKILL after the grace
//! period.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobStatus};
use k8s_openapi::api::core::v1::{
    ConfigMap, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, PersistentVolumeClaim, Pod, PodCondition, PodIP,
    PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::controllers::job_pod_finished;
use super::logs::write_pod_logs;
use super::objects::{self, controller_of};
use super::runtime::{containerd_spec, plan_launch, spawn};
use super::Agent;
use crate::api::resources;
use crate::api::store::{ExecTarget, Kill, PodLog, State};
use crate::util;

/// A volume ready to bind: a host directory (or file).
pub(super) type Volumes = HashMap<String, PathBuf>;

fn prepare_volumes(
    agent: &Agent,
    st: &State,
    pod: &Pod,
    poddir: &Path,
) -> Result<Volumes, (String, String)> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
    let failed = |e: std::io::Error| ("FailedMount".to_string(), e.to_string());
    let mut vols = Volumes::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let vname = v.name.clone();
        let dir = poddir.join("volumes").join(&vname);
        if let Some(src) = &v.config_map {
            let cm_name = src.name.as_str();
            let optional = src.optional.unwrap_or(false);
            std::fs::create_dir_all(&dir).map_err(failed)?;
            match objects::get::<ConfigMap>(st, ns, cm_name) {
                None if optional => {}
                None => {
                    return Err((
                        "FailedMount".into(),
                        format!("MountVolume.SetUp failed for volume {vname:?} : configmap {cm_name:?} not found"),
                    ))
                }
                Some(cm) => {
                    let mut files: Vec<(String, Vec<u8>)> = Vec::new();
                    for (k, d) in cm.data.unwrap_or_default() {
                        files.push((k, d.into_bytes()));
                    }
                    for (k, d) in cm.binary_data.unwrap_or_default() {
                        files.push((k, d.0));
                    }
                    for (k, bytes) in files {
                        let rel = match &src.items {
                            Some(items) => match items.iter().find(|i| i.key == k) {
                                Some(i) => i.path.clone(),
                                None => continue,
                            },
                            None => k,
                        };
                        let path = dir.join(rel);
                        if let Some(parent) = path.parent() {
                            let _ = std::fs::create_dir_all(parent);
                        }
                        std::fs::write(&path, bytes).map_err(failed)?;
                        let _ = std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644));
                    }
                }
            }
            vols.insert(vname, dir);
        } else if let Some(hp) = &v.host_path {
            let path = agent.cfg.host_path(&hp.path);
            match hp.type_.as_deref().unwrap_or("") {
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
        } else if let Some(pvc) = &v.persistent_volume_claim {
            let claim = pvc.claim_name.as_str();
            if objects::get::<PersistentVolumeClaim>(st, ns, claim).is_none() {
                return Err((
                    "FailedMount".into(),
                    format!("Unable to attach or mount volumes: unmounted volumes=[{vname}]: persistentvolumeclaim {claim:?} not found"),
                ));
            }
            let dir = claim_dir(&agent.cfg.workdir, ns, claim);
            std::fs::create_dir_all(&dir).map_err(failed)?;
            vols.insert(vname, dir);
        } else {
            std::fs::create_dir_all(&dir).map_err(failed)?;
            vols.insert(vname, dir);
        }
    }
    Ok(vols)
}

/// Where the fake cluster keeps a PersistentVolumeClaim's files.
pub fn claim_dir(workdir: &Path, ns: &str, claim: &str) -> PathBuf {
    workdir.join("pvc").join(ns).join(claim)
}

fn signal_group(pid: i32, sig: i32) {
    // SAFETY: plain kill(2) on the container's process group.
    unsafe {
        libc::kill(-pid, sig);
    }
}

fn container_status(
    name: &str,
    image: &str,
    state: ContainerState,
    id: Option<&str>,
    ready: bool,
) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: image.into(),
        image_id: id.map_or_else(String::new, |id| {
            format!("{image}@sha256:{}", &id[..64.min(id.len())])
        }),
        container_id: id.map(|id| format!("containerd://{id}")),
        ready,
        started: Some(ready),
        restart_count: 0,
        state: Some(state),
        ..Default::default()
    }
}

/// A pod condition set at `at`.
fn condition(type_: &str, status: bool, reason: Option<&str>, at: &Time) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.map(str::to_string),
        last_transition_time: Some(at.clone()),
        ..Default::default()
    }
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// The kubelet's work for one pod on a fake node.
pub(super) async fn kubelet(agent: Arc<Agent>, ns: String, name: String, uid: String) {
    let pods_res = resources::get("", "pods");
    let store = agent.store.clone();
    let poddir = agent.cfg.workdir.join("pods").join(&uid);
    let Some(pod) = objects::get::<Pod>(&store.lock(), &ns, &name) else {
        return;
    };
    let spec = pod.spec.clone().unwrap_or_default();
    let container = spec.containers.first().cloned().unwrap_or_default();
    let cname = container.name.clone();
    let image = container.image.clone().unwrap_or_default();
    let node = spec.node_name.clone().unwrap_or_default();
    let node_ix = agent.cfg.nodes.iter().position(|n| *n == node).unwrap_or(0);
    let scheduled = now();
    store.with(|st| {
        objects::update_status::<Pod, PodStatus>(st, &ns, &name, |s| {
            *s = PodStatus {
                phase: Some("Pending".into()),
                host_ip: Some("127.0.0.1".into()),
                start_time: Some(scheduled.clone()),
                qos_class: Some("Burstable".into()),
                conditions: Some(vec![
                    condition("PodScheduled", true, None, &scheduled),
                    condition("Initialized", true, None, &scheduled),
                    condition("Ready", false, Some("ContainersNotReady"), &scheduled),
                ]),
                container_statuses: Some(vec![container_status(
                    &cname,
                    &image,
                    ContainerState {
                        waiting: Some(ContainerStateWaiting {
                            reason: Some("ContainerCreating".into()),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    None,
                    false,
                )]),
                ..Default::default()
            };
        });
        let msg = format!("Successfully assigned {ns}/{name} to {node}");
        objects::event(st, &pod, "Normal", "Scheduled", &msg, "default-scheduler");
    });
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Volumes (the plugin creates the ConfigMap after the Job: wait for it).
    let vols = loop {
        let r = {
            let st = store.lock();
            match objects::get::<Pod>(&st, &ns, &name) {
                None => return,
                Some(p) if p.metadata.deletion_timestamp.is_some() => Err(None),
                Some(p) => prepare_volumes(&agent, &st, &p, &poddir).map_err(Some),
            }
        };
        match r {
            Ok(v) => break v,
            Err(None) => {
                store.with(|st| st.remove(pods_res, &ns, &name));
                return;
            }
            Err(Some((reason, msg))) => {
                store.with(|st| objects::event(st, &pod, "Warning", &reason, &msg, "kubelet"));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let (kill_tx, mut kill_rx) = mpsc::unbounded_channel::<Kill>();
    let log = Arc::new(PodLog::default());
    let started_at = now();
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
                objects::event(
                    st,
                    &pod,
                    "Warning",
                    "Failed",
                    &format!("Error: {msg}"),
                    "kubelet",
                );
                let state = ContainerState {
                    terminated: Some(ContainerStateTerminated {
                        exit_code: 128,
                        reason: Some("StartError".into()),
                        message: Some(msg.clone()),
                        started_at: Some(started_at.clone()),
                        finished_at: Some(now()),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                objects::update_status::<Pod, PodStatus>(st, &ns, &name, |s| {
                    s.phase = Some("Failed".into());
                    s.container_statuses = Some(vec![container_status(
                        &cname,
                        &image,
                        state,
                        Some(&cid),
                        false,
                    )]);
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
                workdir: container.working_dir.clone().unwrap_or_else(|| "/".into()),
                env: exec_env,
                creds: exec_creds,
            },
        );
        st.kills.insert(uid.clone(), kill_tx);
        st.logs.insert(format!("{uid}/{cname}"), log.clone());
        let ip = format!("10.244.{node_ix}.{}", 2 + (pid % 250));
        let running = ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(started_at.clone()),
            }),
            ..Default::default()
        };
        objects::update_status::<Pod, PodStatus>(st, &ns, &name, |s| {
            s.phase = Some("Running".into());
            s.pod_ip = Some(ip.clone());
            s.pod_ips = Some(vec![PodIP { ip }]);
            s.conditions = Some(vec![
                condition("PodScheduled", true, None, &started_at),
                condition("Initialized", true, None, &started_at),
                condition("ContainersReady", true, None, &started_at),
                condition("Ready", true, None, &started_at),
            ]);
            s.container_statuses = Some(vec![container_status(
                &cname,
                &image,
                running,
                Some(&cid),
                true,
            )]);
        });
        if let Some(job) = pod_job(&pod) {
            objects::update_status::<Job, JobStatus>(st, &ns, &job, |s| s.ready = Some(1));
        }
        objects::event(
            st,
            &pod,
            "Normal",
            "Pulled",
            &format!("Container image {image:?} already present on machine"),
            "kubelet",
        );
        objects::event(
            st,
            &pod,
            "Normal",
            "Created",
            &format!("Created container {cname}"),
            "kubelet",
        );
        objects::event(
            st,
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
    let finished = now();
    store.with(|st| {
        st.kills.remove(&uid);
        st.pids.remove(&uid);
        st.exec.remove(&uid);
        let reason = if code == 0 { "Completed" } else { "Error" };
        let phase = if code == 0 { "Succeeded" } else { "Failed" };
        let message = (code != 0).then(|| {
            let text = log.text();
            let tail: Vec<&str> = text.lines().rev().take(80).collect();
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        });
        let terminated = ContainerState {
            terminated: Some(ContainerStateTerminated {
                exit_code: code,
                reason: Some(reason.into()),
                message,
                started_at: Some(started_at.clone()),
                finished_at: Some(finished.clone()),
                container_id: Some(format!("containerd://{cid}")),
                ..Default::default()
            }),
            ..Default::default()
        };
        let updated = objects::update_status::<Pod, PodStatus>(st, &ns, &name, |s| {
            s.phase = Some(phase.into());
            s.conditions = Some(vec![
                condition("PodScheduled", true, None, &started_at),
                condition("Initialized", true, None, &started_at),
                condition("ContainersReady", false, Some("PodCompleted"), &finished),
                condition("Ready", false, Some("PodCompleted"), &finished),
            ]);
            s.container_statuses = Some(vec![container_status(
                &cname,
                &image,
                terminated,
                Some(&cid),
                false,
            )]);
        });
        if let Some(job) = pod_job(&pod) {
            job_pod_finished(st, &ns, &job, code == 0);
        }
        if updated.is_some_and(|p| p.metadata.deletion_timestamp.is_some()) {
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

fn pod_job(pod: &Pod) -> Option<String> {
    controller_of(&pod.metadata, "Job").map(|r| r.name.clone())
}
