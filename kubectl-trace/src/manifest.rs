//! Pure builders of the objects a trace is made of: the ConfigMap holding the program and
//! the Job (or CronJob, with `--schedule`) running the trace-runner image on one node.
//! No I/O here, so every manifest can be unit-tested, validated against the Kubernetes
//! schema, and printed by `run --dry-run=client -o yaml|json`.

use std::collections::BTreeMap;
use std::io::Write;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, EnvVar, EnvVarSource, HostPathVolumeSource,
    ObjectFieldSelector, PersistentVolumeClaimVolumeSource, PodSpec, PodTemplateSpec,
    ResourceRequirements, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use serde_json::Value;
use trace_contract::args::{Program as RunnerProgram, RunnerArgs};

use crate::errors::{fail, Result};
use crate::util::{format_duration, sanitize_label_value};

pub const IMAGE_REPOSITORY: &str = "ghcr.io/kubectl-trace/trace-runner";
pub const CONTAINER_NAME: &str = "trace-runner";
pub const NAME_PREFIX: &str = "kubectl-trace-";

pub const LABEL_APP: &str = "app.kubernetes.io/name";
pub const APP: &str = "kubectl-trace";
pub const LABEL_ID: &str = "kubectl-trace/id";
pub const LABEL_TARGET_KIND: &str = "kubectl-trace/target-kind";
pub const LABEL_TARGET_NAME: &str = "kubectl-trace/target-name";
pub const LABEL_NODE: &str = "kubectl-trace/node";
pub const ANN_TARGET: &str = "kubectl-trace/target";
pub const ANN_NODE: &str = "kubectl-trace/node";
pub const ANN_PODS: &str = "kubectl-trace/pods";
pub const ANN_SCRIPT: &str = "kubectl-trace/script";
pub const ANN_PROGRAM: &str = "kubectl-trace/program";
pub const ANN_DEADLINE: &str = "kubectl-trace/deadline";
/// `pvc:CLAIM[/SUBDIR]` of a trace whose output is kept on a volume (`--output`).
pub const ANN_OUTPUT: &str = "kubectl-trace/output";

/// Where the ConfigMap is mounted in the trace pod.
pub const PROGRAMS_DIR: &str = "/programs";
/// Where the host's /proc is mounted (passed to the runner as `--host-proc`).
pub const HOST_PROC: &str = "/host/proc";
/// Where a `--output pvc:CLAIM` volume is mounted.
pub const OUTPUT_DIR: &str = "/output";
/// The kubelet's pod log directories: scheduled pod traces find their pods there by
/// namespace and name (`/var/log/pods/<namespace>_<name>_<uid>/`) ...
pub const POD_LOGS_DIR: &str = "/var/log/pods";
/// ... and their containers' IDs by name in the log links
/// (`/var/log/containers/<name>_<namespace>_<container>-<id>.log`).
pub const CONTAINER_LOGS_DIR: &str = "/var/log/containers";

/// Compiled objects larger than this travel gzip-compressed.
pub const GZIP_THRESHOLD: usize = 64 * 1024;
/// A ConfigMap holds at most 1 MiB.
pub const CONFIGMAP_LIMIT: usize = 1024 * 1024;
/// Longest script kept verbatim in the annotation (annotations share a 256 KiB budget).
const SCRIPT_ANNOTATION_LIMIT: usize = 32 * 1024;

/// The runner image matching this plugin's version.
pub fn default_image() -> String {
    format!("{IMAGE_REPOSITORY}:{}", env!("CARGO_PKG_VERSION"))
}

/// The program a trace runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Program {
    /// A bpftrace-language script (already checked by trace-lang).
    Script { source: String },
    /// A compiled eBPF ELF object (`-f prog.o`).
    Object { bytes: Vec<u8> },
}

impl Program {
    /// The ConfigMap key, and whether the payload is gzip-compressed.
    pub fn key(&self) -> &'static str {
        match self {
            Program::Script { .. } => "program.bt",
            Program::Object { bytes } if bytes.len() > GZIP_THRESHOLD => "program.o.gz",
            Program::Object { .. } => "program.o",
        }
    }
}

/// True when the bytes are an ELF object whose machine is BPF (e_machine 247).
pub fn is_bpf_object(bytes: &[u8]) -> bool {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return false;
    }
    let machine = match bytes[5] {
        2 => u16::from_be_bytes([bytes[18], bytes[19]]),
        _ => u16::from_le_bytes([bytes[18], bytes[19]]),
    };
    machine == 247
}

/// What the trace is aimed at, as recorded in labels and annotations.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetDesc {
    /// `node`, `pod`, `deployment`, `statefulset`, `daemonset` or `selector`.
    pub kind: String,
    /// The name (or the selector) as given.
    pub name: String,
    /// Namespace of a namespaced target.
    pub namespace: Option<String>,
}

impl TargetDesc {
    /// Full target for the annotation: `node/n1`, `pod/prod/web-0`, `selector/prod/app=web`.
    pub fn display(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{}/{}", self.kind, ns, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }
}

/// A pod the trace is scoped to, on one node.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PodScope {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    /// Container IDs as the API reports them, runtime prefix included (`containerd://...`).
    pub container_ids: Vec<String>,
    /// Containers chosen by name (`-c`, or the only one when the script uses
    /// `$container_pid`); empty for the whole pod. Scheduled traces pass these instead of
    /// IDs, which change when the pod is recreated.
    pub container_names: Vec<String>,
}

/// Everything traced on one node: one Job (or CronJob) each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NodePlan {
    pub node: String,
    /// Empty for a node-wide trace.
    pub pods: Vec<PodScope>,
}

/// `--schedule`: a CronJob instead of a Job.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub cron: String,
    pub starting_deadline: u64,
    pub time_zone: Option<String>,
    pub history_limit: i32,
}

/// `--output pvc:CLAIM[/SUBDIR]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PvcOutput {
    pub claim: String,
    pub subdir: Option<String>,
}

impl PvcOutput {
    /// `pvc:CLAIM[/SUBDIR]`, as `--output` takes it.
    pub fn display(&self) -> String {
        match &self.subdir {
            Some(s) => format!("pvc:{}/{s}", self.claim),
            None => format!("pvc:{}", self.claim),
        }
    }

    /// The runner's `--output-dir` (where the claim is mounted, plus the subdirectory).
    pub fn dir(&self) -> String {
        match &self.subdir {
            Some(s) => format!("{OUTPUT_DIR}/{s}"),
            None => OUTPUT_DIR.to_string(),
        }
    }

    pub fn parse(text: &str) -> Result<Self> {
        let rest = text.strip_prefix("pvc:").ok_or_else(|| {
            fail(format!(
                "invalid --output {text:?}: expected pvc:CLAIM[/SUBDIR]"
            ))
        })?;
        let (claim, subdir) = match rest.split_once('/') {
            Some((c, s)) => (
                c,
                Some(s.trim_matches('/').to_string()).filter(|s| !s.is_empty()),
            ),
            None => (rest, None),
        };
        if claim.is_empty() {
            return Err(fail(format!(
                "invalid --output {text:?}: the claim name is empty"
            )));
        }
        if let Some(s) = &subdir {
            if s.split('/').any(|p| p == "..") {
                return Err(fail(format!(
                    "invalid --output {text:?}: '..' is not allowed"
                )));
            }
        }
        Ok(PvcOutput {
            claim: claim.to_string(),
            subdir,
        })
    }
}

/// Settings shared by every Job of one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSpec {
    pub id: String,
    pub namespace: String,
    pub image: String,
    pub image_pull_policy: String,
    /// Seconds the runner traces before stopping itself.
    pub deadline: u64,
    /// Seconds the runner gets after SIGTERM to print its maps.
    pub grace: u64,
    /// Seconds a finished Job (and its logs) is kept.
    pub ttl: u64,
    pub service_account: Option<String>,
    pub program: Program,
    pub program_args: Vec<String>,
    pub target: TargetDesc,
    pub schedule: Option<Schedule>,
    pub output: Option<PvcOutput>,
    /// `--merge`: the runner writes its maps in machine-readable form at exit.
    pub merge: bool,
}

/// The objects of one node's share of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceObjects {
    pub config_map: ConfigMap,
    pub workload: Workload,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    Job(Box<Job>),
    CronJob(Box<CronJob>),
}

impl Workload {
    pub fn name(&self) -> String {
        match self {
            Workload::Job(j) => j.metadata.name.clone().unwrap_or_default(),
            Workload::CronJob(c) => c.metadata.name.clone().unwrap_or_default(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Job(_) => "Job",
            Workload::CronJob(_) => "CronJob",
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Workload::Job(j) => to_value(j.as_ref()),
            Workload::CronJob(c) => to_value(c.as_ref()),
        }
    }
}

/// Serialize a k8s-openapi object (with apiVersion and kind) to JSON.
pub fn to_value<T: serde::Serialize>(obj: &T) -> Value {
    serde_json::to_value(obj).expect("k8s-openapi objects always serialize")
}

/// Name of the Job/CronJob/ConfigMap for node `index` of `total`.
pub fn object_name(id: &str, index: usize, total: usize) -> String {
    if total <= 1 {
        format!("{NAME_PREFIX}{id}")
    } else {
        format!("{NAME_PREFIX}{id}-{}", index + 1)
    }
}

/// The trace id a user's TRACE argument names: the id itself, or an object name
/// `kubectl-trace-<id>` / `kubectl-trace-<id>-<n>`.
pub fn trace_id_of(arg: &str) -> String {
    let arg = arg.trim();
    let arg = arg.rsplit('/').next().unwrap_or(arg);
    match arg.strip_prefix(NAME_PREFIX) {
        Some(rest) => rest.split('-').next().unwrap_or(rest).to_string(),
        None => arg.to_string(),
    }
}

/// The label selector of one trace.
pub fn id_selector(id: &str) -> String {
    format!("{LABEL_ID}={id}")
}

/// The label selector of every trace.
pub fn app_selector() -> String {
    format!("{LABEL_APP}={APP}")
}

/// Labels every object of the trace carries (pods included).
pub fn labels(spec: &TraceSpec, node: &str) -> BTreeMap<String, String> {
    let mut l = BTreeMap::new();
    l.insert(LABEL_APP.to_string(), APP.to_string());
    l.insert(LABEL_ID.to_string(), spec.id.clone());
    l.insert(LABEL_TARGET_KIND.to_string(), spec.target.kind.clone());
    l.insert(
        LABEL_TARGET_NAME.to_string(),
        sanitize_label_value(&spec.target.name),
    );
    l.insert(LABEL_NODE.to_string(), sanitize_label_value(node));
    l
}

fn annotations(spec: &TraceSpec, plan: &NodePlan) -> BTreeMap<String, String> {
    let mut a = BTreeMap::new();
    a.insert(ANN_TARGET.to_string(), spec.target.display());
    a.insert(ANN_NODE.to_string(), plan.node.clone());
    a.insert(ANN_DEADLINE.to_string(), format_duration(spec.deadline));
    if let Some(o) = &spec.output {
        a.insert(ANN_OUTPUT.to_string(), o.display());
    }
    if !plan.pods.is_empty() {
        let pods: Vec<String> = plan
            .pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        a.insert(ANN_PODS.to_string(), pods.join(","));
    }
    match &spec.program {
        Program::Script { source } => {
            a.insert(ANN_PROGRAM.to_string(), "script".to_string());
            let s = if source.len() > SCRIPT_ANNOTATION_LIMIT {
                let mut cut = SCRIPT_ANNOTATION_LIMIT;
                while !source.is_char_boundary(cut) {
                    cut -= 1;
                }
                format!(
                    "{}\n// ... truncated; the full script is in the ConfigMap",
                    &source[..cut]
                )
            } else {
                source.clone()
            };
            a.insert(ANN_SCRIPT.to_string(), s);
        }
        Program::Object { bytes } => {
            a.insert(
                ANN_PROGRAM.to_string(),
                format!("compiled eBPF object, {} bytes", bytes.len()),
            );
        }
    }
    a
}

/// The ConfigMap holding the program (no ownerReference: see [`set_owner`]).
pub fn config_map(spec: &TraceSpec, plan: &NodePlan, name: &str) -> Result<ConfigMap> {
    let mut cm = ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(spec.namespace.clone()),
            labels: Some(labels(spec, &plan.node)),
            ..Default::default()
        },
        ..Default::default()
    };
    match &spec.program {
        Program::Script { source } => {
            if source.len() > CONFIGMAP_LIMIT - 1024 {
                return Err(fail(
                    "the script is larger than a ConfigMap can hold (1 MiB)",
                ));
            }
            cm.data = Some(BTreeMap::from([(
                spec.program.key().to_string(),
                source.clone(),
            )]));
        }
        Program::Object { bytes } => {
            let payload = if bytes.len() > GZIP_THRESHOLD {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(bytes)
                    .and_then(|_| enc.finish())
                    .map_err(|e| fail(format!("cannot compress the object: {e}")))?
            } else {
                bytes.clone()
            };
            // binaryData is base64 in JSON: 4/3 of the payload.
            if payload.len() * 4 / 3 > CONFIGMAP_LIMIT - 1024 {
                return Err(fail(format!(
                    "the compiled object is too large for a ConfigMap ({} bytes after compression, 1 MiB at most)",
                    payload.len()
                )));
            }
            cm.binary_data = Some(BTreeMap::from([(
                spec.program.key().to_string(),
                ByteString(payload),
            )]));
        }
    }
    Ok(cm)
}

/// Point the ConfigMap at the Job or CronJob that owns it, so deleting that deletes it.
/// `blockOwnerDeletion` stays unset: setting it needs the finalizers permission.
pub fn set_owner(cm: &mut ConfigMap, api_version: &str, kind: &str, name: &str, uid: &str) {
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(false),
        block_owner_deletion: None,
    }]);
}

/// True for a scheduled trace of pods: found again by name at each run.
pub fn scheduled_pods(spec: &TraceSpec, plan: &NodePlan) -> bool {
    spec.schedule.is_some() && !plan.pods.is_empty()
}

/// The runner's command line for one node. The program file and its arguments come
/// last, after `--`: the runner takes options wherever they stand, so a user's argument
/// such as `-5` or `--pid` must never be read as one of its options.
pub fn runner_args(spec: &TraceSpec, plan: &NodePlan) -> Vec<String> {
    let mut args = RunnerArgs {
        program: RunnerProgram::File(format!("{PROGRAMS_DIR}/{}", spec.program.key())),
        params: spec.program_args.clone(),
        deadline: Some(std::time::Duration::from_secs(spec.deadline)),
        host_proc: HOST_PROC.to_string(),
        target: Some(spec.target.display()),
        emit_maps: spec.merge,
        ..RunnerArgs::default()
    };
    if scheduled_pods(spec, plan) {
        // A scheduled run may come after the pod was recreated (new UID, new container
        // IDs): the runner finds it by namespace and name in the kubelet's log
        // directories (/var/log/pods), and its containers by name.
        args.pod_names = plan
            .pods
            .iter()
            .map(|pod| format!("{}/{}", pod.namespace, pod.name))
            .collect();
        let mut names: Vec<String> = plan
            .pods
            .iter()
            .flat_map(|p| p.container_names.iter().cloned())
            .collect();
        names.sort();
        names.dedup();
        args.container_names = names;
    } else {
        args.pod_uids = plan.pods.iter().map(|pod| pod.uid.clone()).collect();
        args.container_ids = plan
            .pods
            .iter()
            .flat_map(|pod| pod.container_ids.iter().cloned())
            .collect();
    }
    if let Some(out) = &spec.output {
        args.output_dir = Some(out.dir());
        args.trace_id = Some(spec.id.clone());
    }
    args.to_argv()
}

fn host_path(name: &str, path: &str, kind: Option<&str>) -> Volume {
    Volume {
        name: name.to_string(),
        host_path: Some(HostPathVolumeSource {
            path: path.to_string(),
            type_: kind.map(str::to_string),
        }),
        ..Default::default()
    }
}

fn mount(name: &str, path: &str, read_only: bool, propagation: Option<&str>) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: read_only.then_some(true),
        mount_propagation: propagation.map(str::to_string),
        ..Default::default()
    }
}

fn env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value: Some(value.to_string()),
        ..Default::default()
    }
}

/// The trace pod: privileged, hostPID, pinned to the node with `nodeName`.
pub fn pod_template(spec: &TraceSpec, plan: &NodePlan, name: &str) -> PodTemplateSpec {
    let q = |s: &str| Quantity(s.to_string());
    let mut volumes = vec![
        Volume {
            name: "programs".to_string(),
            config_map: Some(ConfigMapVolumeSource {
                name: name.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        },
        host_path("sys", "/sys", Some("Directory")),
        host_path("cgroup", "/sys/fs/cgroup", Some("Directory")),
        host_path("tracefs", "/sys/kernel/tracing", None),
        host_path("debugfs", "/sys/kernel/debug", None),
        host_path("host-proc", "/proc", Some("Directory")),
    ];
    let mut mounts = vec![
        mount("programs", PROGRAMS_DIR, true, None),
        // Read-only: the runner only reads these (BTF, tracepoint ids and formats, PMU
        // types, cgroup ids; cgroup programs attach through an fd opened read-only).
        // When the node has no tracefs mounted, the runner mounts one over
        // /sys/kernel/tracing in the pod's own mount namespace, which a read-only mount
        // point allows. A read-only mount is not recursive (sub-mounts of /sys keep the
        // node's flags), hence the separate read-only mounts of the ones used.
        mount("sys", "/sys", true, Some("HostToContainer")),
        mount("cgroup", "/sys/fs/cgroup", true, Some("HostToContainer")),
        mount("tracefs", "/sys/kernel/tracing", true, None),
        mount("debugfs", "/sys/kernel/debug", true, None),
        mount("host-proc", HOST_PROC, true, Some("HostToContainer")),
    ];
    if let Some(out) = &spec.output {
        volumes.push(Volume {
            name: "output".to_string(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: out.claim.clone(),
                read_only: None,
            }),
            ..Default::default()
        });
        mounts.push(mount("output", OUTPUT_DIR, false, None));
    }
    if scheduled_pods(spec, plan) {
        // Read-only, and only the kubelet's two directories (not the rest of /var/log).
        volumes.push(host_path("pod-logs", POD_LOGS_DIR, Some("Directory")));
        mounts.push(mount("pod-logs", POD_LOGS_DIR, true, None));
        volumes.push(host_path("container-logs", CONTAINER_LOGS_DIR, None));
        mounts.push(mount("container-logs", CONTAINER_LOGS_DIR, true, None));
    }
    let mut envs = vec![
        env("KUBECTL_TRACE_ID", &spec.id),
        EnvVar {
            name: "NODE_NAME".to_string(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "spec.nodeName".to_string(),
                    api_version: None,
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    if !plan.pods.is_empty() {
        let pods: Vec<String> = plan
            .pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        envs.push(env("KUBECTL_TRACE_TARGET_PODS", &pods.join(",")));
    }
    let container = Container {
        name: CONTAINER_NAME.to_string(),
        image: Some(spec.image.clone()),
        image_pull_policy: Some(spec.image_pull_policy.clone()),
        args: Some(runner_args(spec, plan)),
        env: Some(envs),
        security_context: Some(SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), q("100m")),
                ("memory".to_string(), q("64Mi")),
            ])),
            limits: Some(BTreeMap::from([("memory".to_string(), q("256Mi"))])),
            ..Default::default()
        }),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    };
    let toleration = |effect: &str| Toleration {
        operator: Some("Exists".to_string()),
        effect: Some(effect.to_string()),
        ..Default::default()
    };
    let mut pod_annotations = BTreeMap::from([
        (ANN_TARGET.to_string(), spec.target.display()),
        (ANN_NODE.to_string(), plan.node.clone()),
    ]);
    if !plan.pods.is_empty() {
        let pods: Vec<String> = plan
            .pods
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        pod_annotations.insert(ANN_PODS.to_string(), pods.join(","));
    }
    if let Some(o) = &spec.output {
        pod_annotations.insert(ANN_OUTPUT.to_string(), o.display());
    }
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(labels(spec, &plan.node)),
            annotations: Some(pod_annotations),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            host_pid: Some(true),
            node_name: Some(plan.node.clone()),
            tolerations: Some(vec![toleration("NoSchedule"), toleration("NoExecute")]),
            service_account_name: spec.service_account.clone(),
            // The runner needs no API access (scheduled pod traces find their pods in
            // /var/log/pods): no token, unless --serviceaccount names an account, whose
            // own automountServiceAccountToken then decides (unset here: not forced on).
            automount_service_account_token: spec.service_account.is_none().then_some(false),
            termination_grace_period_seconds: Some(spec.grace as i64),
            containers: vec![container],
            volumes: Some(volumes),
            ..Default::default()
        }),
    }
}

fn job_spec(spec: &TraceSpec, plan: &NodePlan, name: &str) -> JobSpec {
    JobSpec {
        active_deadline_seconds: Some((spec.deadline + spec.grace) as i64),
        backoff_limit: Some(0),
        completions: Some(1),
        parallelism: Some(1),
        ttl_seconds_after_finished: Some(spec.ttl.min(i32::MAX as u64) as i32),
        template: pod_template(spec, plan, name),
        ..Default::default()
    }
}

/// Annotations of the Jobs a CronJob makes.
fn job_template_annotations(spec: &TraceSpec) -> BTreeMap<String, String> {
    let mut a = BTreeMap::from([(ANN_TARGET.to_string(), spec.target.display())]);
    if let Some(o) = &spec.output {
        a.insert(ANN_OUTPUT.to_string(), o.display());
    }
    a
}

/// Build the ConfigMap and the Job (or CronJob) for node `index` of `total`.
pub fn build(
    spec: &TraceSpec,
    plan: &NodePlan,
    index: usize,
    total: usize,
) -> Result<TraceObjects> {
    let name = object_name(&spec.id, index, total);
    let config_map = config_map(spec, plan, &name)?;
    let metadata = ObjectMeta {
        name: Some(name.clone()),
        namespace: Some(spec.namespace.clone()),
        labels: Some(labels(spec, &plan.node)),
        annotations: Some(annotations(spec, plan)),
        ..Default::default()
    };
    let workload = match &spec.schedule {
        None => Workload::Job(Box::new(Job {
            metadata,
            spec: Some(job_spec(spec, plan, &name)),
            status: None,
        })),
        Some(s) => Workload::CronJob(Box::new(CronJob {
            metadata,
            spec: CronJobSpec {
                schedule: s.cron.clone(),
                concurrency_policy: Some("Forbid".to_string()),
                starting_deadline_seconds: Some(s.starting_deadline as i64),
                successful_jobs_history_limit: Some(s.history_limit),
                failed_jobs_history_limit: Some(s.history_limit),
                time_zone: s.time_zone.clone(),
                job_template: JobTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(labels(spec, &plan.node)),
                        annotations: Some(job_template_annotations(spec)),
                        ..Default::default()
                    }),
                    spec: Some(job_spec(spec, plan, &name)),
                },
                ..Default::default()
            },
            status: None,
        })),
    };
    Ok(TraceObjects {
        config_map,
        workload,
    })
}

/// `--patch-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PatchType {
    /// RFC 6902 JSON patch: a list of operations.
    Json,
    /// RFC 7386 JSON merge patch: a partial object (lists are replaced whole).
    #[default]
    Merge,
    /// Like merge, but lists of named objects (containers, volumes, env, ...) are merged
    /// by name as kubectl's strategic merge does; `$patch: delete` removes an element.
    Strategic,
}

/// A strategic-merge-style patch: maps merge recursively (null deletes), lists whose
/// elements all have a `name` merge element-wise by name, other lists are replaced.
pub fn strategic_merge(doc: &mut Value, patch: &Value) {
    match (doc, patch) {
        (Value::Object(d), Value::Object(p)) => {
            for (k, pv) in p {
                if pv.is_null() {
                    d.remove(k);
                    continue;
                }
                match d.get_mut(k) {
                    Some(dv) => strategic_merge(dv, pv),
                    None => {
                        let mut v = pv.clone();
                        strip_directives(&mut v);
                        d.insert(k.clone(), v);
                    }
                }
            }
        }
        (Value::Array(d), Value::Array(p))
            if !p.is_empty()
                && p.iter()
                    .all(|e| e.get("name").is_some_and(Value::is_string))
                && d.iter()
                    .all(|e| e.get("name").is_some_and(Value::is_string)) =>
        {
            for pe in p {
                let name = pe["name"].clone();
                let delete = pe.get("$patch").and_then(Value::as_str) == Some("delete");
                match d.iter().position(|de| de["name"] == name) {
                    Some(i) if delete => {
                        d.remove(i);
                    }
                    Some(i) => strategic_merge(&mut d[i], pe),
                    None if delete => {}
                    None => {
                        let mut v = pe.clone();
                        strip_directives(&mut v);
                        d.push(v);
                    }
                }
            }
        }
        (d, p) => {
            let mut v = p.clone();
            strip_directives(&mut v);
            *d = v;
        }
    }
}

fn strip_directives(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("$patch");
            m.values_mut().for_each(strip_directives);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_directives),
        _ => {}
    }
}

/// Parse a patch file (JSON or YAML).
pub fn parse_patch(text: &str, file: &str) -> Result<Value> {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        return Ok(v);
    }
    serde_saphyr::from_str::<Value>(text).map_err(|e| {
        fail(format!(
            "cannot read patch {file}: {}",
            first_line(&e.to_string())
        ))
    })
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or(s)
}

/// Apply a user patch to the workload (the Job, or the CronJob with `--schedule`).
pub fn apply_patch(workload: &Workload, patch: &Value, kind: PatchType) -> Result<Workload> {
    let mut doc = workload.to_value();
    match kind {
        PatchType::Merge => json_patch::merge(&mut doc, patch),
        PatchType::Strategic => strategic_merge(&mut doc, patch),
        PatchType::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone()).map_err(|e| {
                fail(format!(
                    "invalid JSON patch: {e} (a JSON patch is a list of {{\"op\", \"path\", \"value\"}} operations)"
                ))
            })?;
            json_patch::patch(&mut doc, &ops)
                .map_err(|e| fail(format!("cannot apply the JSON patch: {e}")))?;
        }
    }
    let bad = |e: serde_json::Error| {
        fail(format!(
            "the patched {} is not a valid {}: {e}",
            workload.kind(),
            workload.kind()
        ))
    };
    Ok(match workload {
        Workload::Job(_) => Workload::Job(Box::new(serde_json::from_value(doc).map_err(bad)?)),
        Workload::CronJob(_) => {
            Workload::CronJob(Box::new(serde_json::from_value(doc).map_err(bad)?))
        }
    })
}

/// `-o yaml`: documents separated by `---`.
pub fn to_yaml_documents(items: &[Value]) -> String {
    let mut out = String::new();
    for item in items {
        out.push_str("---\n");
        let doc =
            serde_saphyr::to_string(item).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        out.push_str(&doc);
        if !doc.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// `-o json`: a `v1 List`.
pub fn to_json_list(items: Vec<Value>) -> String {
    let list = serde_json::json!({
        "apiVersion": "v1",
        "kind": "List",
        "metadata": {"resourceVersion": ""},
        "items": items,
    });
    let mut s = serde_json::to_string_pretty(&list).unwrap_or_default();
    s.push('\n');
    s
}

#[cfg(test)]
pub mod tests {
    use super::*;

    pub fn sample_spec() -> TraceSpec {
        TraceSpec {
            id: "abc123defg".to_string(),
            namespace: "default".to_string(),
            image: default_image(),
            image_pull_policy: "IfNotPresent".to_string(),
            deadline: 3600,
            grace: 30,
            ttl: 3600,
            service_account: None,
            program: Program::Script {
                source: "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }".to_string(),
            },
            program_args: vec![],
            target: TargetDesc {
                kind: "node".to_string(),
                name: "worker-1".to_string(),
                namespace: None,
            },
            schedule: None,
            output: None,
            merge: false,
        }
    }

    #[test]
    fn merge_asks_the_runner_for_its_maps_line() {
        let mut spec = sample_spec();
        let flag = format!("--{}", trace_contract::args::flag::EMIT_MAPS);
        assert!(!runner_args(&spec, &node_plan()).contains(&flag));
        spec.merge = true;
        let args = runner_args(&spec, &node_plan());
        let dashdash = args.iter().position(|a| a == "--").unwrap();
        assert!(args[..dashdash].contains(&flag), "{args:?}");
    }

    pub fn node_plan() -> NodePlan {
        NodePlan {
            node: "worker-1".to_string(),
            pods: vec![],
        }
    }

    fn job(objs: &TraceObjects) -> &Job {
        match &objs.workload {
            Workload::Job(j) => j,
            _ => panic!("not a job"),
        }
    }

    #[test]
    fn node_job_shape() {
        let spec = sample_spec();
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let j = job(&objs);
        assert_eq!(j.metadata.name.as_deref(), Some("kubectl-trace-abc123defg"));
        let js = j.spec.as_ref().unwrap();
        assert_eq!(js.active_deadline_seconds, Some(3630));
        assert_eq!(js.backoff_limit, Some(0));
        assert_eq!(js.ttl_seconds_after_finished, Some(3600));
        let ps = js.template.spec.as_ref().unwrap();
        assert_eq!(ps.node_name.as_deref(), Some("worker-1"));
        assert_eq!(ps.host_pid, Some(true));
        assert_eq!(ps.termination_grace_period_seconds, Some(30));
        assert!(ps.affinity.is_none());
        let tols = ps.tolerations.as_ref().unwrap();
        assert_eq!(tols.len(), 2);
        assert!(tols.iter().all(|t| t.operator.as_deref() == Some("Exists")));
        let c = &ps.containers[0];
        assert_eq!(c.security_context.as_ref().unwrap().privileged, Some(true));
        assert_eq!(
            c.args.as_ref().unwrap(),
            &vec![
                "run",
                "--deadline",
                "3600s",
                "--host-proc",
                "/host/proc",
                "--target",
                "node/worker-1",
                "--",
                "/programs/program.bt"
            ]
        );
        let labels = j.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_APP], "kubectl-trace");
        assert_eq!(labels[LABEL_ID], "abc123defg");
        assert_eq!(labels[LABEL_TARGET_KIND], "node");
        assert_eq!(labels[LABEL_TARGET_NAME], "worker-1");
        let ann = j.metadata.annotations.as_ref().unwrap();
        assert_eq!(ann[ANN_TARGET], "node/worker-1");
        assert!(ann[ANN_SCRIPT].contains("sys_enter_openat"));
        let mounts: Vec<_> = c
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .map(|m| m.mount_path.as_str())
            .collect();
        for p in [
            "/programs",
            "/sys",
            "/sys/fs/cgroup",
            "/sys/kernel/tracing",
            "/sys/kernel/debug",
            "/host/proc",
        ] {
            assert!(mounts.contains(&p), "{p} not mounted");
        }
        assert_eq!(
            objs.config_map.data.as_ref().unwrap()["program.bt"],
            "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }"
        );
        assert!(objs.config_map.metadata.owner_references.is_none());
    }

    #[test]
    fn service_account_token_follows_the_account() {
        // No --serviceaccount: no token at all.
        let spec = sample_spec();
        let ps = pod_spec_of(&build(&spec, &node_plan(), 0, 1).unwrap());
        assert_eq!(ps.service_account_name, None);
        assert_eq!(ps.automount_service_account_token, Some(false));
        // --serviceaccount NAME: the account's own automountServiceAccountToken decides
        // (the pod does not force a token in).
        let mut spec = sample_spec();
        spec.service_account = Some("trace-runner".into());
        let ps = pod_spec_of(&build(&spec, &node_plan(), 0, 1).unwrap());
        assert_eq!(ps.service_account_name.as_deref(), Some("trace-runner"));
        assert_eq!(ps.automount_service_account_token, None);
    }

    #[test]
    fn host_file_systems_are_mounted_read_only() {
        // The runner only reads /sys, the cgroup tree, tracefs and debugfs (tracepoint
        // ids and formats, BTF, cgroup ids; cgroup programs attach through a read-only
        // fd). Only the output volume is written.
        let mut spec = sample_spec();
        spec.output = Some(PvcOutput::parse("pvc:traces").unwrap());
        let ps = pod_spec_of(&build(&spec, &node_plan(), 0, 1).unwrap());
        let mounts = ps.containers[0].volume_mounts.clone().unwrap();
        for m in &mounts {
            let want = if m.name == "output" { None } else { Some(true) };
            assert_eq!(m.read_only, want, "{} at {}", m.name, m.mount_path);
        }
        let paths: Vec<&str> = mounts.iter().map(|m| m.mount_path.as_str()).collect();
        for p in [
            "/sys",
            "/sys/fs/cgroup",
            "/sys/kernel/tracing",
            "/sys/kernel/debug",
        ] {
            assert!(paths.contains(&p), "{p} not mounted");
        }
    }

    #[test]
    fn pod_scope_args() {
        let mut spec = sample_spec();
        spec.target = TargetDesc {
            kind: "pod".into(),
            name: "web-0".into(),
            namespace: Some("prod".into()),
        };
        spec.program_args = vec!["42".into()];
        let plan = NodePlan {
            node: "n2".into(),
            pods: vec![PodScope {
                namespace: "prod".into(),
                name: "web-0".into(),
                uid: "u-1".into(),
                container_ids: vec!["containerd://aaa".into(), "cri-o://bbb".into()],
                container_names: vec![],
            }],
        };
        let objs = build(&spec, &plan, 0, 1).unwrap();
        let args = job(&objs)
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        let joined = args.join(" ");
        assert!(joined.contains("--pod-uid u-1 --container-id containerd://aaa --container-id cri-o://bbb --target pod/prod/web-0 -- /programs/program.bt 42"), "{joined}");
        assert_eq!(
            job(&objs).metadata.annotations.as_ref().unwrap()[ANN_TARGET],
            "pod/prod/web-0"
        );
        // Arguments that look like options stay the program's: they follow `--`.
        spec.program_args = vec!["-5".into(), "--pid".into(), "1".into()];
        let args = runner_args(&spec, &plan);
        assert_eq!(
            args[args.len() - 5..],
            ["--", "/programs/program.bt", "-5", "--pid", "1"]
        );
        assert_eq!(args.iter().filter(|a| *a == "--").count(), 1);
    }

    fn pod_spec_of(objs: &TraceObjects) -> PodSpec {
        match &objs.workload {
            Workload::Job(j) => j.spec.clone().unwrap().template.spec.unwrap(),
            Workload::CronJob(c) => c
                .spec
                .job_template
                .spec
                .clone()
                .unwrap()
                .template
                .spec
                .unwrap(),
        }
    }

    #[test]
    fn scheduled_pod_trace_finds_pods_by_name() {
        let mut spec = sample_spec();
        spec.target = TargetDesc {
            kind: "statefulset".into(),
            name: "web".into(),
            namespace: Some("prod".into()),
        };
        spec.deadline = 60;
        spec.schedule = Some(Schedule {
            cron: "0 * * * *".into(),
            starting_deadline: 120,
            time_zone: None,
            history_limit: 3,
        });
        let scope = |name: &str, uid: &str| PodScope {
            namespace: "prod".into(),
            name: name.into(),
            uid: uid.into(),
            container_ids: vec![format!("containerd://{uid}")],
            container_names: vec!["app".into()],
        };
        let plan = NodePlan {
            node: "n2".into(),
            pods: vec![scope("web-0", "u-0"), scope("web-1", "u-1")],
        };
        let objs = build(&spec, &plan, 0, 1).unwrap();
        let ps = pod_spec_of(&objs);
        let args = ps.containers[0].args.clone().unwrap().join(" ");
        assert!(
            args.contains("--pod prod/web-0 --pod prod/web-1 --container-name app --target statefulset/prod/web"),
            "{args}"
        );
        assert!(!args.contains("--pod-uid"), "{args}");
        assert!(!args.contains("--container-id"), "{args}");
        // The kubelet's log directories, read-only; no API token.
        let v = ps
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .find(|v| v.name == "pod-logs")
            .unwrap();
        assert_eq!(v.host_path.as_ref().unwrap().path, "/var/log/pods");
        let m = ps.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "pod-logs")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/var/log/pods", Some(true))
        );
        let m = ps.containers[0]
            .volume_mounts
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.name == "container-logs")
            .unwrap();
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/var/log/containers", Some(true))
        );
        assert_eq!(ps.service_account_name, None);
        assert_eq!(ps.automount_service_account_token, Some(false));

        // Whole pods: no container names.
        let mut plan = plan;
        plan.pods.iter_mut().for_each(|p| p.container_names.clear());
        let args = runner_args(&spec, &plan).join(" ");
        assert!(!args.contains("--container-name"), "{args}");

        // One-shot pod traces keep UIDs and container IDs, and need no /var/log/pods.
        spec.schedule = None;
        let objs = build(&spec, &plan, 0, 1).unwrap();
        let ps = pod_spec_of(&objs);
        let args = ps.containers[0].args.clone().unwrap().join(" ");
        assert!(
            args.contains("--pod-uid u-0 --pod-uid u-1 --container-id containerd://u-0"),
            "{args}"
        );
        assert!(ps
            .volumes
            .unwrap()
            .iter()
            .all(|v| v.name != "pod-logs" && v.name != "container-logs"));
    }

    #[test]
    fn output_annotation() {
        let mut spec = sample_spec();
        spec.output = Some(PvcOutput::parse("pvc:traces/team-a").unwrap());
        spec.schedule = Some(Schedule {
            cron: "0 * * * *".into(),
            starting_deadline: 120,
            time_zone: None,
            history_limit: 3,
        });
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let Workload::CronJob(cj) = &objs.workload else {
            panic!()
        };
        let want = Some(&"pvc:traces/team-a".to_string());
        assert_eq!(
            cj.metadata.annotations.as_ref().unwrap().get(ANN_OUTPUT),
            want
        );
        let jt = &cj.spec.job_template;
        assert_eq!(
            jt.metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()
                .get(ANN_OUTPUT),
            want
        );
        let pt = &jt.spec.as_ref().unwrap().template;
        assert_eq!(
            pt.metadata
                .as_ref()
                .unwrap()
                .annotations
                .as_ref()
                .unwrap()
                .get(ANN_OUTPUT),
            want
        );
        assert_eq!(PvcOutput::parse("pvc:x").unwrap().display(), "pvc:x");
    }

    #[test]
    fn trace_ids() {
        assert_eq!(trace_id_of("abc123defg"), "abc123defg");
        assert_eq!(trace_id_of("kubectl-trace-abc123defg"), "abc123defg");
        assert_eq!(trace_id_of("kubectl-trace-abc123defg-2"), "abc123defg");
        assert_eq!(trace_id_of("job/kubectl-trace-abc123defg"), "abc123defg");
    }

    #[test]
    fn multi_node_names() {
        assert_eq!(object_name("x", 0, 1), "kubectl-trace-x");
        assert_eq!(object_name("x", 1, 3), "kubectl-trace-x-2");
    }

    #[test]
    fn cronjob_shape() {
        let mut spec = sample_spec();
        spec.schedule = Some(Schedule {
            cron: "*/10 * * * *".into(),
            starting_deadline: 120,
            time_zone: None,
            history_limit: 3,
        });
        spec.deadline = 60;
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let Workload::CronJob(cj) = &objs.workload else {
            panic!()
        };
        let s = &cj.spec;
        assert_eq!(s.concurrency_policy.as_deref(), Some("Forbid"));
        assert_eq!(s.starting_deadline_seconds, Some(120));
        assert_eq!(s.successful_jobs_history_limit, Some(3));
        let js = s.job_template.spec.as_ref().unwrap();
        assert_eq!(js.active_deadline_seconds, Some(90));
    }

    #[test]
    fn owner_reference() {
        let spec = sample_spec();
        let mut objs = build(&spec, &node_plan(), 0, 1).unwrap();
        set_owner(
            &mut objs.config_map,
            "batch/v1",
            "Job",
            "kubectl-trace-abc123defg",
            "uid-1",
        );
        let o = &objs.config_map.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((o.kind.as_str(), o.uid.as_str()), ("Job", "uid-1"));
    }

    #[test]
    fn compiled_objects() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 247;
        assert!(is_bpf_object(&elf));
        elf[18] = 62;
        assert!(!is_bpf_object(&elf));
        elf[18] = 247;
        let mut spec = sample_spec();
        spec.program = Program::Object { bytes: elf.clone() };
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        assert_eq!(
            objs.config_map.binary_data.as_ref().unwrap()["program.o"].0,
            elf
        );
        let args = job(&objs)
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
            .containers[0]
            .args
            .clone()
            .unwrap();
        assert_eq!(args.last().unwrap(), "/programs/program.o");

        let mut big = elf.clone();
        big.resize(200 * 1024, 0xab);
        spec.program = Program::Object { bytes: big.clone() };
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let gz = &objs.config_map.binary_data.as_ref().unwrap()["program.o.gz"].0;
        assert!(gz.len() < big.len());
        let mut dec = flate2::read::GzDecoder::new(&gz[..]);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut dec, &mut back).unwrap();
        assert_eq!(back, big);
    }

    #[test]
    fn patches() {
        let spec = sample_spec();
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let merge = parse_patch(
            "spec:\n  template:\n    spec:\n      priorityClassName: system-node-critical\n",
            "p.yaml",
        )
        .unwrap();
        let w = apply_patch(&objs.workload, &merge, PatchType::Merge).unwrap();
        let Workload::Job(j) = &w else { panic!() };
        assert_eq!(
            j.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .priority_class_name
                .as_deref(),
            Some("system-node-critical")
        );
        let json = parse_patch(
            r#"[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"my/runner:dev"}]"#,
            "p.json",
        )
        .unwrap();
        let w = apply_patch(&objs.workload, &json, PatchType::Json).unwrap();
        let Workload::Job(j) = &w else { panic!() };
        assert_eq!(
            j.spec
                .as_ref()
                .unwrap()
                .template
                .spec
                .as_ref()
                .unwrap()
                .containers[0]
                .image
                .as_deref(),
            Some("my/runner:dev")
        );
        let sm = parse_patch(
            "spec:\n  template:\n    spec:\n      containers:\n      - name: trace-runner\n        image: my/runner:dev\n      volumes:\n      - name: debugfs\n        $patch: delete\n",
            "p.yaml",
        )
        .unwrap();
        let w = apply_patch(&objs.workload, &sm, PatchType::Strategic).unwrap();
        let Workload::Job(j) = &w else { panic!() };
        let ps = j.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        assert_eq!(ps.containers[0].image.as_deref(), Some("my/runner:dev"));
        assert_eq!(
            ps.containers[0]
                .security_context
                .as_ref()
                .unwrap()
                .privileged,
            Some(true)
        );
        assert!(ps
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.name != "debugfs"));
        let bad = parse_patch(r#"[{"op":"remove","path":"/nope/x"}]"#, "p.json").unwrap();
        assert!(apply_patch(&objs.workload, &bad, PatchType::Json).is_err());
    }

    #[test]
    fn pvc_output() {
        let o = PvcOutput::parse("pvc:traces/team-a").unwrap();
        assert_eq!(o.claim, "traces");
        assert_eq!(o.subdir.as_deref(), Some("team-a"));
        assert!(PvcOutput::parse("s3:bucket").is_err());
        assert!(PvcOutput::parse("pvc:x/../y").is_err());
        let mut spec = sample_spec();
        spec.output = Some(o);
        let args = runner_args(&spec, &node_plan()).join(" ");
        assert!(
            args.contains("--output-dir /output/team-a --trace-id abc123defg"),
            "{args}"
        );
    }

    #[test]
    fn yaml_and_json_output() {
        let spec = sample_spec();
        let objs = build(&spec, &node_plan(), 0, 1).unwrap();
        let items = vec![to_value(&objs.config_map), objs.workload.to_value()];
        let y = to_yaml_documents(&items);
        assert!(y.starts_with("---\n"));
        assert_eq!(y.matches("---\n").count(), 2);
        assert!(y.contains("kind: ConfigMap"));
        assert!(y.contains("kind: Job"));
        let docs: Vec<Value> = serde_saphyr::from_multiple(&y).unwrap();
        assert_eq!(docs, items);
        let j: Value = serde_json::from_str(&to_json_list(items)).unwrap();
        assert_eq!(j["kind"], "List");
        assert_eq!(j["items"].as_array().unwrap().len(), 2);
    }
}
