//! [`FakeCluster`]: the fake API server and the node agent on their own tokio runtime,
//! a scratch directory, two fake nodes (`node-a`, `node-b`, both this host), a
//! kubeconfig for `http://127.0.0.1:PORT`, workload pods (with the kubelet's log
//! directories, in a `/var/log` of the harness's own), and the test knobs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::{json, Value};

use crate::api::resources;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{meta_str, ApiError, RequestRecord, Store};
use crate::node::containerd::{CgroupLayout, ContainerRuntime};
use crate::node::workload::{self, WorkloadPod};
use crate::node::{self, AgentConfig, WORKLOAD_ANNOTATION};
use crate::util;

/// The fake nodes.
pub const NODES: [&str; 2] = ["node-a", "node-b"];

/// A workload pod to create.
#[derive(Debug, Clone)]
pub struct PodSpec {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: Vec<(String, String)>,
    pub containers: Vec<String>,
    /// Controller owner reference (e.g. the ReplicaSet of a Deployment).
    pub owner: Option<Value>,
}

impl PodSpec {
    pub fn new(namespace: &str, name: &str, node: &str) -> Self {
        PodSpec {
            namespace: namespace.into(),
            name: name.into(),
            node: node.into(),
            labels: vec![],
            containers: vec!["app".into()],
            owner: None,
        }
    }
}

pub struct FakeCluster {
    pub store: Arc<Store>,
    pub addr: SocketAddr,
    pub workdir: PathBuf,
    /// The `e2e-workload` binary for workload pods.
    pub workload_bin: PathBuf,
    runtime: Option<tokio::runtime::Runtime>,
    /// containerd mode: the private containerd the kubelet runs pods in.
    pub containers: Option<Arc<ContainerRuntime>>,
}

impl FakeCluster {
    /// Start on a random loopback port. `runner` is the real trace-runner binary;
    /// `workload_bin` the `e2e-workload` binary. Pods run as local processes, or under
    /// containerd when `E2E_RUNTIME=containerd` (`E2E_CGROUP_DRIVER=systemd` for the
    /// systemd-style cgroup names): the same scenarios under a real runtime.
    pub fn start(runner: &Path, workload_bin: &Path) -> std::io::Result<FakeCluster> {
        let containerd = match std::env::var("E2E_RUNTIME").as_deref() {
            Ok("containerd") => Some(match std::env::var("E2E_CGROUP_DRIVER").as_deref() {
                Ok("systemd") => CgroupLayout::Systemd,
                _ => CgroupLayout::Cgroupfs,
            }),
            Ok("") | Ok("local") | Err(_) => None,
            Ok(other) => {
                return Err(std::io::Error::other(format!(
                    "E2E_RUNTIME={other}: expected local or containerd"
                )))
            }
        };
        Self::start_with(runner, workload_bin, containerd)
    }

    /// [`FakeCluster::start`], with the kubelet running pods under a private containerd
    /// whose containers are placed in `containerd`'s cgroup layout (`None`: local processes).
    pub fn start_with(
        runner: &Path,
        workload_bin: &Path,
        containerd: Option<CgroupLayout>,
    ) -> std::io::Result<FakeCluster> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fake-cluster")
            .build()?;
        let workdir =
            std::env::temp_dir().join(format!("kubectl-trace-e2e-{}", &util::new_uid()[..8]));
        std::fs::create_dir_all(&workdir)?;
        let containers = match containerd {
            Some(layout) => Some(Arc::new(
                ContainerRuntime::start(&workdir.join("runtime"), runner, layout)
                    .map_err(std::io::Error::other)?,
            )),
            None => None,
        };
        let log_dir = workdir.join("var-log");
        for sub in ["pods", "containers"] {
            std::fs::create_dir_all(log_dir.join(sub))?;
        }
        let store = Arc::new(Store::default());
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)?
        };
        runtime.spawn(crate::api::server::serve(store.clone(), listener));
        let cfg = AgentConfig {
            runner: runner.to_path_buf(),
            workdir: workdir.clone(),
            nodes: NODES.iter().map(|s| s.to_string()).collect(),
            log_dir,
            containers: containers.clone(),
        };
        {
            let _guard = runtime.enter();
            node::start(store.clone(), cfg);
        }
        let c = FakeCluster {
            store,
            addr,
            workdir,
            workload_bin: workload_bin.to_path_buf(),
            runtime: Some(runtime),
            containers,
        };
        for ns in ["default", "kube-system", "kube-public"] {
            c.create("", "namespaces", "", json!({"metadata": {"name": ns}}))
                .map_err(std::io::Error::other)?;
        }
        for n in NODES {
            c.create("", "nodes", "", json!({
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n, "kubernetes.io/os": "linux",
                                                   "kubernetes.io/arch": "amd64"}},
                "status": {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                           "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": n}],
                           "nodeInfo": {"kernelVersion": kernel_release(), "osImage": "fake", "containerRuntimeVersion": "containerd://1.7.0",
                                        "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0", "operatingSystem": "linux",
                                        "architecture": "amd64", "machineID": "", "systemUUID": "", "bootID": ""}}
            })).map_err(std::io::Error::other)?;
        }
        Ok(c)
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Write a kubeconfig for this cluster with `namespace` as the context's namespace.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<()> {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: e2e-user\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: e2e-user\n  user:\n    token: e2e-token\n",
            self.url()
        );
        std::fs::write(path, text)
    }

    /// Create an object (test setup), as the API would.
    pub fn create(&self, group: &str, plural: &str, ns: &str, obj: Value) -> Result<Value, String> {
        let res = resources::get(group, plural);
        self.store
            .with(|st| st.create(res, ns, obj))
            .map_err(|e: ApiError| e.message)
    }

    pub fn get(&self, group: &str, plural: &str, ns: &str, name: &str) -> Option<Value> {
        self.store
            .lock()
            .get(resources::get(group, plural), ns, name)
            .cloned()
    }

    /// Objects in `ns` (all namespaces when empty) matching a label selector.
    pub fn list(&self, group: &str, plural: &str, ns: &str, labels: &str) -> Vec<Value> {
        let sel = LabelSelector::parse(labels).expect("label selector");
        self.store.lock().list(
            resources::get(group, plural),
            (!ns.is_empty()).then_some(ns),
            &sel,
            &FieldSelector::default(),
        )
    }

    /// Add a namespace with labels.
    pub fn add_namespace(&self, name: &str, labels: &[(&str, &str)]) {
        let labels: serde_json::Map<String, Value> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.create(
            "",
            "namespaces",
            "",
            json!({"metadata": {"name": name, "labels": labels}}),
        )
        .expect("namespace");
    }

    /// Knob: PodSecurity admission rejects privileged pods in `ns` (a cluster-wide
    /// default level; the namespace's labels do not show it).
    pub fn reject_privileged(&self, ns: &str) {
        self.store
            .with(|st| st.knobs.reject_privileged.insert(ns.to_string()));
    }

    /// Knob: answer 403 to `verb` on `resource` (`jobs.batch`, `pods`, `pods/log`, `*`).
    pub fn forbid(&self, verb: &str, resource: &str) {
        self.store
            .with(|st| st.knobs.forbidden.push((verb.into(), resource.into())));
    }

    /// Knob: run a CronJob now; returns the Job's name.
    pub fn trigger_cronjob(&self, ns: &str, name: &str) -> Result<String, String> {
        node::trigger_cronjob(&self.store, ns, name).map_err(|e| e.message)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.store.lock().requests.clone()
    }

    /// The log of a pod's (first) container, as far as it goes.
    pub fn pod_log(&self, ns: &str, name: &str) -> Option<String> {
        let st = self.store.lock();
        let pod = st.get(resources::get("", "pods"), ns, name)?;
        let uid = meta_str(pod, "uid");
        let c = pod
            .pointer("/spec/containers/0/name")
            .and_then(Value::as_str)?;
        st.logs.get(&format!("{uid}/{c}")).map(|l| l.text())
    }

    /// The directory holding a PersistentVolumeClaim's files.
    pub fn claim_dir(&self, ns: &str, claim: &str) -> PathBuf {
        node::claim_dir(&self.workdir, ns, claim)
    }

    /// The fake nodes' `/var/log` (kubelet log directories `pods/` and `containers/`;
    /// hostPath volumes of `/var/log/pods` and `/var/log/containers` are mapped here).
    pub fn log_dir(&self) -> PathBuf {
        self.workdir.join("var-log")
    }

    /// Delete an object as `kubectl delete` does (dependents in the background).
    pub fn delete(&self, group: &str, plural: &str, ns: &str, name: &str) -> Result<(), String> {
        let res = resources::get(group, plural);
        let opts = crate::api::store::DeleteOpts {
            propagation: Some("Background".into()),
            grace: None,
        };
        self.store
            .with(|st| st.delete(res, ns, name, &opts))
            .map(|_| ())
            .map_err(|e| e.message)
    }

    /// Delete a pod as `kubectl delete pod --grace-period=0` does; a workload pod goes at
    /// once (its processes are the test's), and the kubelet removes its log directories.
    pub fn delete_pod(&self, ns: &str, name: &str) -> Result<(), String> {
        let res = resources::get("", "pods");
        let opts = crate::api::store::DeleteOpts {
            propagation: None,
            grace: Some(0),
        };
        self.store
            .with(|st| st.delete(res, ns, name, &opts))
            .map_err(|e| e.message)?;
        node::gc_pod_logs(&self.store, &self.log_dir());
        Ok(())
    }

    /// Pids of the containers the fake kubelet runs now.
    pub fn running_containers(&self) -> Vec<i32> {
        self.store.lock().pids.values().copied().collect()
    }

    /// Create a workload pod: registered Running in the API, its containers real
    /// processes in kubelet-style cgroups.
    pub fn add_workload_pod(&self, spec: &PodSpec) -> std::io::Result<WorkloadPod> {
        let root = workload::cgroup_root()?;
        let uid = util::new_uid();
        let pod_cgroup = workload::pod_cgroup_dir(&root, &uid);
        let mut containers = Vec::new();
        for c in &spec.containers {
            containers.push(workload::start_container(
                &self.workload_bin,
                &pod_cgroup,
                c,
                &util::new_container_id(),
            )?);
        }
        let now = util::now();
        let labels: serde_json::Map<String, Value> = spec
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        let mut pod = json!({
            "metadata": {"name": spec.name, "namespace": spec.namespace, "labels": labels,
                         "annotations": {WORKLOAD_ANNOTATION: "true"}},
            "spec": {"nodeName": spec.node, "restartPolicy": "Always",
                     "containers": spec.containers.iter().map(|c| json!({"name": c, "image": "e2e-workload:latest"})).collect::<Vec<_>>()},
            "status": {
                "phase": "Running", "hostIP": "127.0.0.1", "podIP": "10.244.9.9", "startTime": now, "qosClass": "Burstable",
                "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now}],
                "containerStatuses": containers.iter().map(|c| json!({
                    "name": c.name, "image": "e2e-workload:latest", "imageID": "", "ready": true, "started": true,
                    "restartCount": 0, "containerID": format!("containerd://{}", c.id),
                    "state": {"running": {"startedAt": now}}})).collect::<Vec<_>>(),
            }
        });
        if let Some(o) = &spec.owner {
            pod["metadata"]["ownerReferences"] = json!([o]);
        }
        // The API assigns the uid; the cgroup names it, so the stored pod takes ours.
        let created = self
            .create("", "pods", &spec.namespace, pod)
            .map_err(std::io::Error::other)?;
        let res = resources::get("", "pods");
        self.store.with(|st| {
            st.update(res, &spec.namespace, &spec.name, |p| {
                p["metadata"]["uid"] = json!(uid)
            });
        });
        let _ = created;
        let ids: Vec<(String, String)> = containers
            .iter()
            .map(|c| (c.name.clone(), c.id.clone()))
            .collect();
        node::write_pod_logs(&self.log_dir(), &spec.namespace, &spec.name, &uid, &ids)?;
        Ok(WorkloadPod {
            namespace: spec.namespace.clone(),
            name: spec.name.clone(),
            uid,
            node: spec.node.clone(),
            containers,
            pod_cgroup,
        })
    }

    /// A Deployment `name` (selector `app=<name>`) with a ReplicaSet and one workload
    /// pod on each of `nodes`.
    pub fn add_deployment(
        &self,
        ns: &str,
        name: &str,
        nodes: &[&str],
    ) -> std::io::Result<Vec<WorkloadPod>> {
        let labels = json!({"app": name});
        let template = json!({"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "app", "image": "e2e-workload:latest"}]}});
        let d = self
            .create("apps", "deployments", ns, json!({
                "metadata": {"name": name, "labels": labels},
                "spec": {"replicas": nodes.len(), "selector": {"matchLabels": labels}, "template": template},
                "status": {"replicas": nodes.len(), "readyReplicas": nodes.len(), "availableReplicas": nodes.len()}
            }))
            .map_err(std::io::Error::other)?;
        let hash = &util::new_container_id()[..10];
        let hash: String = hash
            .chars()
            .map(|c| if c.is_ascii_digit() { c } else { 'b' })
            .collect();
        let rs_name = format!("{name}-{hash}");
        let mut rs_labels = labels.clone();
        rs_labels["pod-template-hash"] = json!(hash);
        let rs = self
            .create("apps", "replicasets", ns, json!({
                "metadata": {"name": rs_name, "labels": rs_labels, "ownerReferences": [{
                    "apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                    "uid": meta_str(&d, "uid"), "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"replicas": nodes.len(), "selector": {"matchLabels": rs_labels},
                         "template": {"metadata": {"labels": rs_labels}, "spec": template["spec"]}}
            }))
            .map_err(std::io::Error::other)?;
        let owner = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs_name,
                           "uid": meta_str(&rs, "uid"), "controller": true, "blockOwnerDeletion": true});
        let mut pods = Vec::new();
        for node in nodes {
            let spec = PodSpec {
                namespace: ns.into(),
                name: format!("{rs_name}-{}", util::name_suffix()),
                node: node.to_string(),
                labels: vec![
                    ("app".into(), name.into()),
                    ("pod-template-hash".into(), hash.clone()),
                ],
                containers: vec!["app".into()],
                owner: Some(owner.clone()),
            };
            pods.push(self.add_workload_pod(&spec)?);
        }
        Ok(pods)
    }

    /// Stop everything: the server, the agent, and every container still running.
    pub fn shutdown(&mut self) {
        let pids = self.running_containers();
        for pid in pids {
            // SAFETY: kill(2) on a container's process group.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        if let Some(rt) = self.runtime.take() {
            // A runtime cannot be dropped from async code: do it on a thread of its own.
            let _ =
                std::thread::spawn(move || rt.shutdown_timeout(std::time::Duration::from_secs(2)))
                    .join();
        }
        // The agent's tasks are gone: the last reference stops containerd.
        self.containers = None;
        for sub in ["pods"] {
            for e in std::fs::read_dir(self.workdir.join(sub))
                .into_iter()
                .flatten()
                .flatten()
            {
                node::remove_unmounted(&e.path());
            }
        }
        node::remove_unmounted(&self.workdir);
    }
}

impl Drop for FakeCluster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}
