//! The fake node: the node agent acting as Job controller, CronJob runs on demand, a tiny
//! scheduler ([`controllers`]) and a kubelet ([`kubelet`]) for the fake nodes (all of
//! them this host). The kubelet runs a pod's container with one of two runtimes
//! ([`runtime`]): a local process in a private mount namespace of its own, or a
//! container of a private containerd ([`containerd`]). [`exec`] serves `pods/exec` in a
//! running container; [`logs`] keeps the kubelet's `/var/log/pods` and
//! `/var/log/containers`, in [`AgentConfig::log_dir`]. [`workload`] has the processes
//! that stand in for application pods. The controllers and the kubelet read and write
//! the store's objects as k8s-openapi types ([`objects`]).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::api::store::Store;
use crate::node::containerd::ContainerRuntime;

pub mod containerd;
mod controllers;
pub mod exec;
mod kubelet;
pub mod logs;
mod objects;
mod runtime;
pub mod workload;

pub use controllers::trigger_cronjob;
pub use exec::{exec_in_container, exec_target};
pub use kubelet::{claim_dir, remove_unmounted};
pub use logs::{gc_pod_logs, write_pod_logs};

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

pub(crate) struct Agent {
    pub(crate) store: Arc<Store>,
    pub(crate) cfg: AgentConfig,
    /// Jobs whose pod was created (by uid).
    pub(crate) created: Mutex<HashSet<String>>,
    /// Last FailedCreate per Job uid (retries every 2 s).
    pub(crate) failed_create: Mutex<HashMap<String, Instant>>,
    /// Pods the kubelet has taken (by uid).
    pub(crate) started: Mutex<HashSet<String>>,
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
            controllers::reconcile(&agent);
            tokio::select! {
                _ = agent.store.changed.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    })
}
