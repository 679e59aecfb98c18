//! The fake API server's state: objects (as JSON, shaped like the real API's), a global
//! increasing resourceVersion, the history of watch events, pod logs, the kill channels
//! of running pods (graceful deletion), garbage collection of owned objects, PodSecurity
//! admission, and the test knobs (forbidden verbs, namespaces rejecting privileged pods,
//! the record of requests).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};
use tokio::sync::{broadcast, mpsc, watch, Notify};

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Container, Pod};

use crate::api::resources::{self, Resource};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::util;

/// The Job strategy's defaults at creation: unless `spec.manualSelector`, a
/// `spec.selector` on the Job's new uid, and the labels the Job controller's pods carry
/// (`controller-uid`, `job-name` and their `batch.kubernetes.io/` forms) in the template.
fn job_selector(mut obj: Value) -> Value {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector as Selector;
    // A new object's status starts empty, as the API resets it on creation.
    if let Some(o) = obj.as_object_mut() {
        o.remove("status");
    }
    // Read typed, written into the request's JSON: the fields k8s-openapi does not know
    // stay as they came.
    let Ok(job) = serde_json::from_value::<Job>(obj.clone()) else {
        return obj;
    };
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let name = job.metadata.name.clone().unwrap_or_default();
    let Some(spec) = job.spec else {
        return obj;
    };
    if spec.manual_selector == Some(true) {
        return obj;
    }
    let selector = Selector {
        match_labels: Some(BTreeMap::from([(
            "batch.kubernetes.io/controller-uid".to_string(),
            uid.clone(),
        )])),
        match_expressions: None,
    };
    let mut labels = spec
        .template
        .metadata
        .and_then(|m| m.labels)
        .unwrap_or_default();
    for (k, v) in [
        ("controller-uid", &uid),
        ("batch.kubernetes.io/controller-uid", &uid),
        ("job-name", &name),
        ("batch.kubernetes.io/job-name", &name),
    ] {
        labels.insert(k.to_string(), v.clone());
    }
    obj["spec"]["selector"] = json!(selector);
    if !obj["spec"]["template"]["metadata"].is_object() {
        obj["spec"]["template"]["metadata"] = json!({});
    }
    obj["spec"]["template"]["metadata"]["labels"] = json!(labels);
    obj
}

/// An API error, rendered as a `Status` object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Value,
}

impl ApiError {
    pub fn status(&self) -> Value {
        json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": self.message, "reason": self.reason,
            "details": self.details, "code": self.code,
        })
    }

    pub fn not_found(res: &Resource, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound",
            message: format!("{} {name:?} not found", res.qualified()),
            details: json!({"name": name, "group": res.group, "kind": res.plural}),
        }
    }

    pub fn already_exists(res: &Resource, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists",
            message: format!("{} {name:?} already exists", res.qualified()),
            details: json!({"name": name, "group": res.group, "kind": res.plural}),
        }
    }

    pub fn forbidden(res: &Resource, name: &str, message: String) -> Self {
        ApiError {
            code: 403,
            reason: "Forbidden",
            message,
            details: json!({"name": name, "group": res.group, "kind": res.plural}),
        }
    }

    /// 422 with `field: reason` causes.
    pub fn invalid(res: &Resource, name: &str, causes: &[(String, String)]) -> Self {
        let msgs: Vec<String> = causes.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message = match msgs.len() {
            1 => format!("{} {name:?} is invalid: {}", res.qualified_kind(), msgs[0]),
            _ => format!(
                "{} {name:?} is invalid: [{}]",
                res.qualified_kind(),
                msgs.join(", ")
            ),
        };
        ApiError {
            code: 422,
            reason: "Invalid",
            message,
            details: json!({"name": name, "group": res.group, "kind": res.kind,
                "causes": causes.iter().map(|(f, m)| json!({"reason": "FieldValueInvalid", "message": m, "field": f})).collect::<Vec<_>>()}),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            code: 400,
            reason: "BadRequest",
            message: message.into(),
            details: Value::Null,
        }
    }

    pub fn method_not_allowed() -> Self {
        ApiError {
            code: 405,
            reason: "MethodNotAllowed",
            message: "the server does not allow this method on the requested resource".into(),
            details: Value::Null,
        }
    }
}

/// One change, as a watch stream carries it.
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub type_: &'static str,
    pub res: &'static Resource,
    pub namespace: String,
    pub object: Arc<Value>,
}

/// A request the server received (for assertions such as "nothing was created").
#[derive(Debug, Clone, PartialEq)]
pub struct RequestRecord {
    pub method: String,
    pub path: String,
    pub query: String,
    /// RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
}

/// Why a running pod's container should stop.
#[derive(Debug, Clone, PartialEq)]
pub struct Kill {
    /// Seconds between SIGTERM and SIGKILL.
    pub grace: u64,
}

/// How to run a command in a running container (`pods/exec`): enter the mount namespace
/// of its main process (its root is the container's), with its environment and user.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecTarget {
    pub container: String,
    /// The container's main process.
    pub pid: i32,
    pub workdir: String,
    pub env: Vec<(String, String)>,
    /// The container's user (`securityContext`); `None`: root.
    pub creds: Option<Creds>,
}

/// A container's user as `securityContext` sets it: `runAsUser`, `runAsGroup`, and the
/// supplementary groups (`fsGroup`, `supplementalGroups`).
#[derive(Debug, Clone, PartialEq)]
pub struct Creds {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Creds {
    /// The user of `container` in `pod` (the container's settings win over the pod's);
    /// `None` when neither sets `runAsUser` (the image's user: root here).
    pub fn of(pod: &Pod, container: &Container) -> Option<Creds> {
        let psc = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
        let csc = container.security_context.as_ref();
        let uid = csc
            .and_then(|c| c.run_as_user)
            .or_else(|| psc.and_then(|p| p.run_as_user))?;
        let gid = csc
            .and_then(|c| c.run_as_group)
            .or_else(|| psc.and_then(|p| p.run_as_group))
            .unwrap_or(0);
        let mut groups: Vec<u32> = psc
            .and_then(|p| p.fs_group)
            .into_iter()
            .chain(
                psc.and_then(|p| p.supplemental_groups.clone())
                    .into_iter()
                    .flatten(),
            )
            .filter_map(|g| u32::try_from(g).ok())
            .collect();
        groups.dedup();
        Some(Creds {
            uid: u32::try_from(uid).ok()?,
            gid: u32::try_from(gid).unwrap_or(0),
            groups,
        })
    }

    /// Become this user (in a child between fork and exec: async-signal-safe calls only).
    ///
    /// # Safety
    /// Only to be called in a `pre_exec` hook.
    pub unsafe fn apply(&self) -> std::io::Result<()> {
        if libc::setgroups(self.groups.len(), self.groups.as_ptr()) != 0
            || libc::setgid(self.gid) != 0
            || libc::setuid(self.uid) != 0
        {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Test knobs.
#[derive(Debug, Default, Clone)]
pub struct Knobs {
    /// (verb, resource) pairs answered 403, resource as RBAC names it: `jobs.batch`,
    /// `pods`, `pods/log`; verb `*` for all.
    pub forbidden: Vec<(String, String)>,
    /// Namespaces whose PodSecurity admission rejects privileged pods (as a cluster-wide
    /// default level would), whatever their labels say.
    pub reject_privileged: HashSet<String>,
}

/// One line of a pod's log.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub timestamp: String,
    pub text: Vec<u8>,
}

/// A container's log: complete lines, and whether the container has ended.
pub struct PodLog {
    inner: Mutex<(Vec<LogLine>, bool)>,
    tx: watch::Sender<u64>,
}

impl Default for PodLog {
    fn default() -> Self {
        PodLog {
            inner: Mutex::new((Vec::new(), false)),
            tx: watch::channel(0).0,
        }
    }
}

impl PodLog {
    /// Append one line (with its newline).
    pub fn push(&self, text: Vec<u8>) {
        let mut g = self.inner.lock().unwrap();
        g.0.push(LogLine {
            timestamp: util::now_nanos(),
            text,
        });
        let n = g.0.len() as u64;
        drop(g);
        self.tx.send_replace(n);
    }

    /// The container ended: followers finish.
    pub fn close(&self) {
        self.inner.lock().unwrap().1 = true;
        self.tx.send_modify(|v| *v += 1);
    }

    /// Lines from `from`, and whether the log is closed.
    pub fn read_from(&self, from: usize) -> (Vec<LogLine>, bool) {
        let g = self.inner.lock().unwrap();
        (g.0.get(from..).map(<[_]>::to_vec).unwrap_or_default(), g.1)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// All text so far.
    pub fn text(&self) -> String {
        let g = self.inner.lock().unwrap();
        g.0.iter()
            .map(|l| String::from_utf8_lossy(&l.text).into_owned())
            .collect()
    }
}

type Key = (&'static str, &'static str, String, String);

fn key(res: &Resource, ns: &str, name: &str) -> Key {
    (res.group, res.plural, ns.to_string(), name.to_string())
}

/// Everything behind the lock.
pub struct State {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    history: Vec<WatchEvent>,
    tx: broadcast::Sender<WatchEvent>,
    /// Container logs by `<pod uid>/<container name>`.
    pub logs: HashMap<String, Arc<PodLog>>,
    /// Running pods by uid: how to stop their container.
    pub kills: HashMap<String, mpsc::UnboundedSender<Kill>>,
    /// Running containers' main pids (process group leaders) by pod uid.
    pub pids: HashMap<String, i32>,
    /// Running containers by pod uid: where `pods/exec` runs its commands.
    pub exec: HashMap<String, ExecTarget>,
    pub knobs: Knobs,
    pub requests: Vec<RequestRecord>,
}

/// The shared store.
pub struct Store {
    state: Mutex<State>,
    /// Woken at every change (the node agent's reconcile loop waits on it).
    pub changed: Notify,
}

impl Default for Store {
    fn default() -> Self {
        Store {
            state: Mutex::new(State {
                rv: 1000,
                objects: BTreeMap::new(),
                history: Vec::new(),
                tx: broadcast::channel(65536).0,
                logs: HashMap::new(),
                kills: HashMap::new(),
                pids: HashMap::new(),
                exec: HashMap::new(),
                knobs: Knobs::default(),
                requests: Vec::new(),
            }),
            changed: Notify::new(),
        }
    }
}

/// The name and namespace of an object.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && s.as_bytes()[0].is_ascii_alphanumeric()
        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric()
}

fn is_label_value(s: &str) -> bool {
    s.is_empty()
        || (s.len() <= 63
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
            && s.as_bytes()[0].is_ascii_alphanumeric()
            && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
}

/// Validation beyond the schema: the checks the real API server makes that a trace's
/// objects can trip.
fn validate(res: &Resource, obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    let name = meta_str(obj, "name");
    if !is_dns_subdomain(name) {
        causes.push((
            "metadata.name".into(),
            format!("Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"),
        ));
    }
    let mut check_labels = |path: &str, labels: Option<&Value>| {
        for (k, v) in labels.and_then(Value::as_object).into_iter().flatten() {
            let v = v.as_str().unwrap_or("");
            if !is_label_value(v) {
                causes.push((
                    format!("{path}.labels"),
                    format!("Invalid value: {v:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (for key {k:?})"),
                ));
            }
        }
    };
    check_labels("metadata", obj.pointer("/metadata/labels"));
    let template = match res.plural {
        "jobs" => obj.pointer("/spec/template"),
        "cronjobs" => obj.pointer("/spec/jobTemplate/spec/template"),
        _ => None,
    };
    let prefix = if res.plural == "cronjobs" {
        "spec.jobTemplate.spec.template"
    } else {
        "spec.template"
    };
    if let Some(t) = template {
        check_labels(&format!("{prefix}.metadata"), t.pointer("/metadata/labels"));
        let rp = t.pointer("/spec/restartPolicy").and_then(Value::as_str);
        if !matches!(rp, Some("Never" | "OnFailure")) {
            causes.push((
                format!("{prefix}.spec.restartPolicy"),
                "Required value: valid values: \"OnFailure\", \"Never\"".into(),
            ));
        }
    }
    if res.plural == "configmaps" {
        let size: usize = ["data", "binaryData"]
            .iter()
            .filter_map(|f| obj.get(f).and_then(Value::as_object))
            .flat_map(|m| m.values())
            .map(|v| v.as_str().map_or(0, str::len))
            .sum();
        if size > 1024 * 1024 {
            causes.push((
                "data".into(),
                "Too long: must have at most 1048576 bytes".into(),
            ));
        }
    }
    causes
}

/// The PodSecurity "baseline" violations of a pod spec, worded as the real admission
/// plugin words them.
pub fn baseline_violations(spec: &Value) -> Vec<String> {
    let mut v = Vec::new();
    let mut hostns = Vec::new();
    for f in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec.get(f).and_then(Value::as_bool) == Some(true) {
            hostns.push(format!("{f}=true"));
        }
    }
    if !hostns.is_empty() {
        v.push(format!("host namespaces ({})", hostns.join(", ")));
    }
    let host_paths: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|vol| vol.get("hostPath").is_some())
        .map(|vol| {
            format!(
                "{:?}",
                vol.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    if !host_paths.is_empty() {
        let word = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        v.push(format!(
            "hostPath volumes ({word} {})",
            host_paths.join(", ")
        ));
    }
    let privileged: Vec<String> = ["initContainers", "containers"]
        .iter()
        .filter_map(|f| spec.get(f).and_then(Value::as_array))
        .flatten()
        .filter(|c| {
            c.pointer("/securityContext/privileged")
                .and_then(Value::as_bool)
                == Some(true)
        })
        .map(|c| format!("{:?}", c.get("name").and_then(Value::as_str).unwrap_or("")))
        .collect();
    if !privileged.is_empty() {
        let word = if privileged.len() == 1 {
            "container"
        } else {
            "containers"
        };
        v.push(format!(
            "privileged ({word} {} must not set securityContext.privileged=true)",
            privileged.join(", ")
        ));
    }
    v
}

/// Options of a delete.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeleteOpts {
    /// `Orphan`, `Background` or `Foreground`; `None` for the resource's default.
    pub propagation: Option<String>,
    pub grace: Option<u64>,
}

impl State {
    fn bump(&mut self) -> u64 {
        self.rv += 1;
        self.rv
    }

    fn emit(&mut self, type_: &'static str, res: &'static Resource, ns: &str, object: &Value) {
        let ev = WatchEvent {
            rv: self.rv,
            type_,
            res,
            namespace: ns.to_string(),
            object: Arc::new(object.clone()),
        };
        self.history.push(ev.clone());
        let _ = self.tx.send(ev);
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, res: &Resource, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&key(res, ns, name))
    }

    /// Objects of a resource, in one namespace or (`None`) all, filtered.
    pub fn list(
        &self,
        res: &'static Resource,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((g, p, n, _), _)| {
                *g == res.group && *p == res.plural && ns.is_none_or(|ns| ns == n)
            })
            .map(|(_, v)| v)
            .filter(|v| labels.matches(v) && fields.matches(v))
            .cloned()
            .collect()
    }

    /// The PodSecurity level enforced in a namespace (`None`: privileged).
    pub fn enforced_level(&self, ns: &str) -> Option<String> {
        let nsres = resources::get("", "namespaces");
        let label = self
            .get(nsres, "", ns)
            .and_then(|n| n.pointer("/metadata/labels/pod-security.kubernetes.io~1enforce"))
            .and_then(Value::as_str)
            .filter(|l| *l == "baseline" || *l == "restricted")
            .map(str::to_string);
        label.or_else(|| {
            self.knobs
                .reject_privileged
                .contains(ns)
                .then(|| "baseline".to_string())
        })
    }

    /// The admission error of a pod, if PodSecurity rejects it.
    pub fn admit_pod(&self, ns: &str, pod: &Value) -> Result<(), ApiError> {
        let Some(level) = self.enforced_level(ns) else {
            return Ok(());
        };
        let v = baseline_violations(pod.get("spec").unwrap_or(&Value::Null));
        if v.is_empty() {
            return Ok(());
        }
        let name = meta_str(pod, "name");
        Err(ApiError::forbidden(
            resources::get("", "pods"),
            name,
            format!(
                "pods {name:?} is forbidden: violates PodSecurity \"{level}:latest\": {}",
                v.join(", ")
            ),
        ))
    }

    /// The `Warning` a workload creation gets when its pods would be rejected.
    pub fn admission_warning(&self, res: &Resource, ns: &str, obj: &Value) -> Option<String> {
        let level = self.enforced_level(ns)?;
        let spec = match res.plural {
            "jobs" | "deployments" | "statefulsets" | "daemonsets" | "replicasets" => {
                obj.pointer("/spec/template/spec")
            }
            "cronjobs" => obj.pointer("/spec/jobTemplate/spec/template/spec"),
            _ => None,
        }?;
        let v = baseline_violations(spec);
        (!v.is_empty()).then(|| {
            format!(
                "would violate PodSecurity \"{level}:latest\": {}",
                v.join(", ")
            )
        })
    }

    /// Create an object: fills metadata, checks the schema, names and admission.
    pub fn create(
        &mut self,
        res: &'static Resource,
        ns: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request was in an unknown format",
            ));
        }
        let api_version = res.api_version();
        let body_kind = obj.get("kind").and_then(Value::as_str).unwrap_or(res.kind);
        if body_kind != res.kind {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({api_version})",
                obj.get("apiVersion").and_then(Value::as_str).unwrap_or("")
            )));
        }
        obj["apiVersion"] = json!(api_version);
        obj["kind"] = json!(res.kind);
        if !obj.get("metadata").is_some_and(Value::is_object) {
            obj["metadata"] = json!({});
        }
        let body_ns = meta_str(&obj, "namespace").to_string();
        if res.namespaced {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            obj["metadata"]["namespace"] = json!(ns);
        } else if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("namespace");
        }
        if meta_str(&obj, "name").is_empty() {
            let gen = meta_str(&obj, "generateName").to_string();
            if gen.is_empty() {
                return Err(ApiError::invalid(
                    res,
                    "",
                    &[(
                        "metadata.name".into(),
                        "Required value: name or generateName is required".into(),
                    )],
                ));
            }
            obj["metadata"]["name"] = json!(format!("{gen}{}", util::name_suffix()));
        }
        let name = meta_str(&obj, "name").to_string();
        if let Err(e) = (res.decode)(&obj) {
            return Err(ApiError::bad_request(format!(
                "{} in version \"{}\" cannot be handled as a {}: {e}",
                res.kind, res.version, res.kind
            )));
        }
        let causes = validate(res, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, &name, &causes));
        }
        let nskey = if res.namespaced { ns } else { "" };
        if res.namespaced && self.get(resources::get("", "namespaces"), "", ns).is_none() {
            return Err(ApiError::not_found(resources::get("", "namespaces"), ns));
        }
        if self.objects.contains_key(&key(res, nskey, &name)) {
            return Err(ApiError::already_exists(res, &name));
        }
        if res.plural == "pods" {
            self.admit_pod(ns, &obj)?;
        }
        let rv = self.bump();
        let m = obj["metadata"]
            .as_object_mut()
            .expect("metadata is an object");
        m.insert("uid".into(), json!(util::new_uid()));
        m.insert("resourceVersion".into(), json!(rv.to_string()));
        m.insert("creationTimestamp".into(), json!(util::now()));
        if matches!(
            res.plural,
            "jobs" | "cronjobs" | "deployments" | "statefulsets" | "daemonsets" | "replicasets"
        ) {
            m.insert("generation".into(), json!(1));
        }
        m.remove("deletionTimestamp");
        if res.plural == "jobs" {
            obj = job_selector(obj);
        }
        if res.plural == "namespaces" {
            obj["status"] = json!({"phase": "Active"});
            obj["metadata"]["labels"]["kubernetes.io/metadata.name"] = json!(name);
        }
        if res.plural == "persistentvolumeclaims" && obj.get("status").is_none() {
            obj["status"] = json!({"phase": "Bound", "accessModes": obj.pointer("/spec/accessModes").cloned().unwrap_or(json!(["ReadWriteOnce"]))});
        }
        self.objects.insert(key(res, nskey, &name), obj.clone());
        self.emit("ADDED", res, nskey, &obj);
        Ok(obj)
    }

    /// Change an object in place (a controller's update); bumps its resourceVersion.
    pub fn update(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value),
    ) -> Option<Value> {
        let k = key(res, ns, name);
        let mut obj = self.objects.get(&k)?.clone();
        f(&mut obj);
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.objects.insert(k, obj.clone());
        self.emit("MODIFIED", res, ns, &obj);
        Some(obj)
    }

    /// Replace an object (PUT/PATCH): keeps identity, checks the schema.
    pub fn replace(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Value, ApiError> {
        let nskey = if res.namespaced { ns } else { "" };
        let obj = self.check_replace(res, ns, name, obj)?;
        Ok(self.update(res, nskey, name, |o| *o = obj).expect("exists"))
    }

    /// What [`State::replace`] would store, checked, without storing it (a dry run).
    pub fn check_replace(
        &self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, ApiError> {
        let nskey = if res.namespaced { ns } else { "" };
        let old = self
            .get(res, nskey, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        for f in [
            "uid",
            "creationTimestamp",
            "namespace",
            "name",
            "generation",
            "deletionTimestamp",
        ] {
            if let Some(v) = old["metadata"].get(f) {
                obj["metadata"][f] = v.clone();
            }
        }
        obj["apiVersion"] = json!(res.api_version());
        obj["kind"] = json!(res.kind);
        (res.decode)(&obj).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let causes = validate(res, &obj);
        if !causes.is_empty() {
            return Err(ApiError::invalid(res, name, &causes));
        }
        obj["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        Ok(obj)
    }

    /// Whether deleting this object starts a graceful termination rather than removing
    /// it: a pod whose container the kubelet runs (with a grace period of 0 the kubelet
    /// kills it at once), or a running workload pod unless the grace period is 0 (as the
    /// API's pod strategy decides: not for unscheduled or finished pods).
    fn deletes_gracefully(&self, res: &Resource, obj: &Value, opts: &DeleteOpts) -> bool {
        if res.plural != "pods" {
            return false;
        }
        let uid = meta_str(obj, "uid");
        if self.kills.contains_key(uid) {
            return true;
        }
        if opts.grace == Some(0) {
            return false;
        }
        let finished = matches!(
            obj.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed")
        );
        let workload = obj
            .pointer("/metadata/annotations")
            .and_then(Value::as_object)
            .is_some_and(|a| a.contains_key(crate::node::WORKLOAD_ANNOTATION));
        workload && !finished
    }

    fn grace_of(obj: &Value, opts: &DeleteOpts) -> u64 {
        opts.grace.unwrap_or_else(|| {
            obj.pointer("/spec/terminationGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30)
        })
    }

    /// What [`State::delete`] would answer, without deleting anything (a dry run).
    pub fn delete_dry_run(
        &self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let nskey = if res.namespaced { ns } else { "" };
        let mut obj = self
            .get(res, nskey, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        if self.deletes_gracefully(res, &obj, opts)
            && obj["metadata"].get("deletionTimestamp").is_none()
        {
            obj["metadata"]["deletionTimestamp"] = json!(util::now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(Self::grace_of(&obj, opts));
        }
        Ok(obj)
    }

    /// Remove an object now (no graceful deletion, no GC).
    pub fn remove(&mut self, res: &'static Resource, ns: &str, name: &str) -> Option<Value> {
        let mut obj = self.objects.remove(&key(res, ns, name))?;
        let rv = self.bump();
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        if res.plural == "pods" {
            let uid = meta_str(&obj, "uid").to_string();
            let prefix = format!("{uid}/");
            self.logs.retain(|k, _| !k.starts_with(&prefix));
            self.kills.remove(&uid);
            self.exec.remove(&uid);
        }
        self.emit("DELETED", res, ns, &obj);
        Some(obj)
    }

    /// Delete as the API does: pods with a running container terminate gracefully (the
    /// kubelet removes them when the container has stopped); dependents are deleted
    /// (Background/Foreground) or orphaned (Orphan, the default for batch/v1 Jobs).
    pub fn delete(
        &mut self,
        res: &'static Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
    ) -> Result<Value, ApiError> {
        let nskey = if res.namespaced { ns } else { "" };
        let obj = self
            .get(res, nskey, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(res, name))?;
        let uid = meta_str(&obj, "uid").to_string();
        if res.plural == "pods" && self.deletes_gracefully(res, &obj, opts) {
            let grace = Self::grace_of(&obj, opts);
            if obj["metadata"].get("deletionTimestamp").is_some() && grace != 0 {
                return Ok(obj);
            }
            // A workload pod's processes are the test's: the agent removes it from the
            // API once other clients have seen it Terminating.
            if let Some(tx) = self.kills.get(&uid).cloned() {
                let _ = tx.send(Kill { grace });
            }
            return Ok(self
                .update(res, nskey, name, |o| {
                    o["metadata"]["deletionTimestamp"] = json!(util::now());
                    o["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                })
                .expect("exists"));
        }
        let removed = self.remove(res, nskey, name).expect("exists");
        let policy = opts.propagation.clone().unwrap_or_else(|| {
            if res.plural == "jobs" {
                "Orphan"
            } else {
                "Background"
            }
            .to_string()
        });
        let dependents: Vec<(&'static Resource, String, String)> = self
            .objects
            .iter()
            .filter(|(_, v)| {
                v.pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .is_some_and(|refs| {
                        refs.iter()
                            .any(|r| r.get("uid").and_then(Value::as_str) == Some(&uid))
                    })
            })
            .map(|((g, p, n, name), _)| (resources::get(g, p), n.clone(), name.clone()))
            .collect();
        for (dres, dns, dname) in dependents {
            if policy == "Orphan" {
                self.update(dres, &dns, &dname, |o| {
                    if let Some(refs) = o["metadata"]["ownerReferences"].as_array_mut() {
                        refs.retain(|r| r.get("uid").and_then(Value::as_str) != Some(&uid));
                    }
                });
            } else {
                let _ = self.delete(
                    dres,
                    &dns,
                    &dname,
                    &DeleteOpts {
                        propagation: Some("Background".into()),
                        grace: None,
                    },
                );
            }
        }
        Ok(removed)
    }

    /// Record an event about an object (as controllers and the kubelet do).
    pub fn event(
        &mut self,
        involved: &Value,
        type_: &str,
        reason: &str,
        message: &str,
        component: &str,
    ) {
        let ns = meta_str(involved, "namespace").to_string();
        let ns = if ns.is_empty() {
            "default".to_string()
        } else {
            ns
        };
        let name = meta_str(involved, "name").to_string();
        let evres = resources::get("", "events");
        let now = util::now();
        // Repeats of the same event bump its count, as the real recorder does.
        let same = self
            .list(
                evres,
                Some(&ns),
                &LabelSelector::default(),
                &FieldSelector::default(),
            )
            .into_iter()
            .find(|e| {
                e.pointer("/involvedObject/uid").and_then(Value::as_str)
                    == Some(meta_str(involved, "uid"))
                    && e.get("reason").and_then(Value::as_str) == Some(reason)
                    && e.get("message").and_then(Value::as_str) == Some(message)
            });
        if let Some(e) = same {
            let ename = meta_str(&e, "name").to_string();
            self.update(evres, &ns, &ename, |o| {
                o["count"] = json!(o["count"].as_i64().unwrap_or(1) + 1);
                o["lastTimestamp"] = json!(now);
            });
            return;
        }
        let ev = json!({
            "metadata": {"name": format!("{name}.{}", &util::new_uid().replace('-', "")[..16]), "namespace": ns},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"), "kind": involved.get("kind"),
                "name": name, "namespace": ns, "uid": meta_str(involved, "uid"),
                "resourceVersion": meta_str(involved, "resourceVersion"),
            },
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component},
            "reportingComponent": component,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        });
        let _ = self.create(evres, &ns, ev);
    }

    /// Subscribe to changes after `after` (history replayed), atomically.
    pub fn watch_from(&self, after: u64) -> (Vec<WatchEvent>, broadcast::Receiver<WatchEvent>) {
        let rx = self.tx.subscribe();
        let past = self
            .history
            .iter()
            .filter(|e| e.rv > after)
            .cloned()
            .collect();
        (past, rx)
    }
}

impl Store {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `f` under the lock and wake the node agent afterwards.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_waiters();
        self.changed.notify_one();
        r
    }
}

/// Set a JSON value at a path of object keys, creating objects on the way.
pub fn set_path(obj: &mut Value, path: &[&str], v: Value) {
    let mut cur = obj;
    for p in &path[..path.len() - 1] {
        if !cur.get(*p).is_some_and(Value::is_object) {
            cur[*p] = Value::Object(Map::new());
        }
        cur = cur.get_mut(*p).expect("just set");
    }
    cur[path[path.len() - 1]] = v;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_ns() -> Store {
        let s = Store::default();
        s.with(|st| {
            st.create(
                resources::get("", "namespaces"),
                "",
                json!({"metadata": {"name": "default"}}),
            )
            .unwrap()
        });
        s
    }

    #[test]
    fn create_get_conflict_invalid() {
        let s = store_with_ns();
        let cm = resources::get("", "configmaps");
        let o = s
            .with(|st| {
                st.create(
                    cm,
                    "default",
                    json!({"metadata": {"name": "a"}, "data": {"k": "v"}}),
                )
            })
            .unwrap();
        assert_eq!(o["kind"], "ConfigMap");
        assert!(o["metadata"]["uid"].as_str().unwrap().len() == 36);
        let e = s
            .with(|st| st.create(cm, "default", json!({"metadata": {"name": "a"}})))
            .unwrap_err();
        assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
        assert_eq!(e.message, "configmaps \"a\" already exists");
        let e = s
            .with(|st| st.create(cm, "default", json!({"metadata": {"name": "Bad_Name"}})))
            .unwrap_err();
        assert_eq!(e.code, 422);
        let e = s
            .with(|st| st.create(cm, "nope", json!({"metadata": {"name": "x"}})))
            .unwrap_err();
        assert_eq!(e.message, "namespaces \"nope\" not found");
    }

    /// The Job defaults at creation add the selector and the template's labels, and keep
    /// every field of the request, known to k8s-openapi or not.
    #[test]
    fn job_defaults_keep_unknown_fields() {
        let s = store_with_ns();
        let job = s
            .with(|st| {
                st.create(
                    resources::get("batch", "jobs"),
                    "default",
                    json!({"metadata": {"name": "j", "labels": {"a": "b"}},
                           "spec": {"futureField": {"x": 1}, "template": {
                               "metadata": {"labels": {"app": "t"}, "futureMeta": true},
                               "spec": {"restartPolicy": "Never", "futureSpec": "y",
                                        "containers": [{"name": "c", "image": "i", "futureC": 2}]}}},
                           "status": {"active": 3}}),
                )
            })
            .unwrap();
        let uid = job["metadata"]["uid"].as_str().unwrap();
        assert_eq!(job["spec"]["futureField"], json!({"x": 1}), "{job}");
        assert_eq!(job["spec"]["template"]["metadata"]["futureMeta"], true);
        assert_eq!(job["spec"]["template"]["spec"]["futureSpec"], "y");
        assert_eq!(
            job["spec"]["template"]["spec"]["containers"][0]["futureC"],
            2
        );
        assert_eq!(
            job["spec"]["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        let labels = &job["spec"]["template"]["metadata"]["labels"];
        assert_eq!(labels["app"], "t");
        assert_eq!(labels["job-name"], "j");
        assert_eq!(labels["controller-uid"], uid);
        assert!(job.get("status").is_none(), "{job}");
    }

    #[test]
    fn gc_and_orphans() {
        let s = store_with_ns();
        let jobs = resources::get("batch", "jobs");
        let cm = resources::get("", "configmaps");
        let job = json!({"metadata": {"name": "j"}, "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c"}]}}}});
        let j = s
            .with(|st| st.create(jobs, "default", job.clone()))
            .unwrap();
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": j["metadata"]["uid"]}]);
        s.with(|st| {
            st.create(
                cm,
                "default",
                json!({"metadata": {"name": "j", "ownerReferences": owner}}),
            )
        })
        .unwrap();
        s.with(|st| st.delete(jobs, "default", "j", &DeleteOpts::default()))
            .unwrap();
        let left = s.lock().get(cm, "default", "j").cloned().unwrap();
        assert_eq!(left["metadata"]["ownerReferences"], json!([]));
        let j = s.with(|st| st.create(jobs, "default", job)).unwrap();
        let owner = json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": j["metadata"]["uid"]}]);
        s.with(|st| {
            st.create(
                cm,
                "default",
                json!({"metadata": {"name": "k", "ownerReferences": owner}}),
            )
        })
        .unwrap();
        s.with(|st| {
            st.delete(
                jobs,
                "default",
                "j",
                &DeleteOpts {
                    propagation: Some("Background".into()),
                    grace: None,
                },
            )
        })
        .unwrap();
        assert!(s.lock().get(cm, "default", "k").is_none());
    }

    #[test]
    fn pod_security() {
        let spec = json!({"hostPID": true, "containers": [{"name": "trace-runner", "securityContext": {"privileged": true}}],
            "volumes": [{"name": "sys", "hostPath": {"path": "/sys"}}, {"name": "programs", "configMap": {"name": "x"}}]});
        assert_eq!(
            baseline_violations(&spec).join(", "),
            "host namespaces (hostPID=true), hostPath volumes (volume \"sys\"), privileged (container \"trace-runner\" must not set securityContext.privileged=true)"
        );
    }
}
