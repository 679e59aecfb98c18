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

use k8s_openapi::api::core::v1::ConfigMap;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::mpsc;

use super::controllers::{controller_of, job_pod_finished};
use super::logs::write_pod_logs;
use super::runtime::{containerd_spec, plan_launch, spawn};
use super::Agent;
use crate::api::resources;
use crate::api::store::{meta_str, ExecTarget, Kill, PodLog, State};
use crate::util;

/// A volume ready to bind: a host directory (or file).
pub(super) type Volumes = HashMap<String, PathBuf>;

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
pub(super) async fn kubelet(agent: Arc<Agent>, ns: String, name: String, uid: String) {
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
