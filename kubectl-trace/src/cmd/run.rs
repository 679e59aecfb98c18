//! `kubectl trace run`: check the program locally, resolve the target to nodes, create
//! one Job (or CronJob with `--schedule`) per node and then its ConfigMap owned by it;
//! `--dry-run=client -o yaml|json` prints the manifests instead (without touching the
//! API at all for a `node/NAME` target), and `-a` attaches to the trace.

use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::Value;

use crate::attach::{self, AttachOptions};
use crate::client::Ctx;
use crate::errors::{fail, Error, Op, Result};
use crate::kubeconfig::{namespace_offline, GlobalArgs};
use crate::manifest::{
    self, apply_patch, default_image, parse_patch, NodePlan, PatchType, Program, Schedule,
    TraceObjects, TraceSpec, Workload,
};
use crate::progress::Out;
use crate::script;
use crate::target::{self, TargetRef};
use crate::util::{new_trace_id, parse_duration};

pub const EXAMPLES: &str = "\
Examples:
  # Count system calls per process on a node, for 30 seconds, and show the result
  kubectl trace run node/worker-1 -a --deadline 30s \\
    -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'

  # Trace one container of a pod with a script file
  kubectl trace run pod/web-0 -c app -n prod -f opensnoop.bt -a

  # Every pod of a deployment (one Job per node, output prefixed per node)
  kubectl trace run deploy/api -n prod --script execsnoop -a

  # Pods selected by label
  kubectl trace run -l app=web --target-namespace prod -e 'profile:hz:99 { @[comm] = count(); }'

  # Print the manifests without creating anything
  kubectl trace run node/worker-1 --dry-run=client -o yaml -e 'BEGIN { printf(\"hi\\n\"); }'

  # A 1-minute trace every hour, kept on a volume
  kubectl trace run node/worker-1 --schedule '0 * * * *' --deadline 1m \\
    --output pvc:traces --script syscount

  # Ship a compiled eBPF object
  kubectl trace run pod/web-0 -f prog.o -a

Exit status: 0 on success, 2 when the script has an error (nothing is created), 1 otherwise.";

#[derive(Debug, Clone, Default, Args)]
pub struct RunArgs {
    /// node/NAME, nodes (every node, or with -l the nodes it selects), pod/NAME,
    /// deployment/NAME, statefulset/NAME or daemonset/NAME
    #[arg(value_name = "TARGET")]
    pub target: Option<String>,

    /// The container of a pod target, as iovisor/kubectl-trace took it (same as -c)
    #[arg(value_name = "CONTAINER")]
    pub container_arg: Option<String>,

    /// Arguments for the program ($1, $2, ... in the script), after `--`
    #[arg(last = true, value_name = "ARGS")]
    pub program_args: Vec<String>,

    /// The program text
    #[arg(short = 'e', long = "program", value_name = "PROGRAM")]
    pub expr: Option<String>,

    /// A script file, `-` for stdin, or a compiled eBPF object (ELF, machine BPF)
    #[arg(short = 'f', long = "filename", value_name = "FILE")]
    pub file: Option<String>,

    /// A bundled script from bpf-scripts/ (execsnoop, opensnoop, syscount, tcplife, runqlat, profile, dns-latency, ...; an unknown name lists them all)
    #[arg(long, value_name = "NAME")]
    pub script: Option<String>,

    /// Container of a pod target (default: all its containers)
    #[arg(short = 'c', long, value_name = "CONTAINER")]
    pub container: Option<String>,

    /// Trace the pods matching this label selector (after `nodes`: the nodes)
    #[arg(short = 'l', long, value_name = "SELECTOR")]
    pub selector: Option<String>,

    /// Namespace of the target when it differs from the trace's (-n)
    #[arg(long, value_name = "NAMESPACE")]
    pub target_namespace: Option<String>,

    /// How long the trace runs (1h, 30m, 90s or plain seconds) [default: 1h]
    #[arg(long, value_name = "DUR")]
    pub deadline: Option<String>,

    /// Time the runner gets to print its maps when stopped
    #[arg(
        long,
        value_name = "DUR",
        default_value = "30s",
        alias = "deadline-grace-period"
    )]
    pub grace: String,

    /// How long a finished trace (and its output) is kept
    #[arg(long, value_name = "DUR", default_value = "1h")]
    pub ttl: String,

    /// The trace-runner image [default: ghcr.io/kubectl-trace/trace-runner:<version>]
    #[arg(
        long,
        value_name = "IMAGE",
        alias = "imagename",
        env = "KUBECTL_TRACE_IMAGE"
    )]
    pub image: Option<String>,

    /// Image pull policy of the runner
    #[arg(long, value_name = "POLICY", default_value = "IfNotPresent",
          value_parser = ["Always", "IfNotPresent", "Never"])]
    pub image_pull_policy: String,

    /// Service account of the trace pod
    #[arg(
        long = "serviceaccount",
        alias = "service-account",
        value_name = "NAME"
    )]
    pub service_account: Option<String>,

    /// Patch applied to the Job (or CronJob) before it is created (JSON or YAML file)
    #[arg(long, value_name = "FILE")]
    pub patch: Option<String>,

    /// Kind of --patch
    #[arg(long, value_enum, default_value = "merge", requires = "patch")]
    pub patch_type: PatchType,

    /// Only print what would be created: `client` (the default when given alone)
    #[arg(long, value_name = "MODE", num_args = 0..=1, default_missing_value = "client",
          require_equals = true)]
    pub dry_run: Option<String>,

    /// `yaml` or `json` with --dry-run; `pvc:CLAIM[/SUBDIR]` keeps the output on a volume
    #[arg(short = 'o', long = "output", value_name = "FORMAT|pvc:CLAIM")]
    pub output: Vec<String>,

    /// Follow the trace: show its progress, then its output; Ctrl-C stops it gracefully
    #[arg(short = 'a', long)]
    pub attach: bool,

    /// For several pods or nodes: after their output, print their maps merged into one
    /// answer (counts, sums and histogram buckets added; min, max, avg and stats
    /// combined), as bpftrace prints maps. Without -a, `attach --merge` or `logs --merge`
    /// merges them later
    #[arg(long)]
    pub merge: bool,

    /// How long -a waits for the trace pod to start
    #[arg(long, value_name = "DUR", default_value = "5m")]
    pub pod_running_timeout: String,

    /// At most this many Jobs are created, and with -a followed, at once
    #[arg(long, value_name = "N", default_value_t = attach::DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,

    /// Run on a cron schedule (a CronJob; needs --deadline)
    #[arg(long, value_name = "CRON")]
    pub schedule: Option<String>,

    /// With --schedule: how late a missed run may still start
    #[arg(long, value_name = "DUR", default_value = "2m", requires = "schedule")]
    pub starting_deadline: String,

    /// With --schedule: time zone of the schedule (e.g. Europe/Paris)
    #[arg(long, value_name = "TZ", requires = "schedule")]
    pub time_zone: Option<String>,

    /// With --schedule: finished runs kept (each of succeeded and failed)
    #[arg(long, value_name = "N", default_value_t = 3, requires = "schedule")]
    pub history: i32,

    /// Accepted for compatibility with iovisor/kubectl-trace; does nothing
    #[arg(long, hide = true)]
    pub fetch_headers: bool,
}

/// The output format of a dry run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Names,
    Yaml,
    Json,
}

/// Everything `run` needs, validated, before any client exists.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub spec: TraceSpec,
    pub target: TargetRef,
    pub target_namespace: String,
    pub container: Option<String>,
    pub need_single: bool,
    pub patch: Option<(Value, PatchType)>,
    pub dry_run: bool,
    pub format: Format,
    pub attach: bool,
    pub pod_running_timeout: Duration,
    /// The program's name for messages (the user's file, `<expression>`, `NAME.bt`).
    pub script_name: String,
    /// At most this many Jobs are created, or followed, at once.
    pub concurrency: usize,
}

fn dur(flag: &str, text: &str) -> Result<u64> {
    parse_duration(text).map_err(|e| fail(format!("--{flag}: {e}")))
}

/// Validate flags and load + check the program. `namespace` is the trace's namespace.
pub fn prepare(args: &RunArgs, namespace: &str) -> Result<Prepared> {
    if args.fetch_headers {
        eprintln!("note: --fetch-headers is not needed any more (the runner uses the kernel's BTF) and is ignored");
    }
    let loaded = script::load(
        args.expr.as_deref(),
        args.file.as_deref(),
        args.script.as_deref(),
    )?;
    let mut need_single = false;
    let script_name = loaded.file.clone();
    if let Program::Script { source } = &loaded.program {
        script::check(source, &loaded.file, &args.program_args)?;
        script::check_params(source, &loaded.file, &args.program_args)?;
        need_single = script::uses_container_pid(source);
    }
    let target = target::parse_target(args.target.as_deref(), args.selector.as_deref())?;
    if args.merge {
        crate::merge::check_run(&target, &loaded.program, args.schedule.is_some())?;
    }
    let container = match (&args.container, &args.container_arg) {
        (Some(a), Some(b)) if a != b => {
            return Err(fail(format!(
                "two containers given: -c {a} and {b}; give one"
            )))
        }
        (c, positional) => c.clone().or_else(|| positional.clone()),
    };
    if args.container_arg.is_some() && !matches!(target, TargetRef::Pod(_)) {
        return Err(fail(
            "a CONTAINER after the target needs a pod/NAME target (or use -c)",
        ));
    }
    if let Some(c) = &container {
        crate::names::container("-c/--container", c)?;
    }
    if let Some(ns) = &args.target_namespace {
        crate::names::namespace("--target-namespace", ns)?;
    }
    if container.is_some() && target.is_nodes() {
        return Err(fail(
            "-c/--container needs a pod, workload or -l target, not a node",
        ));
    }
    if need_single && target.is_nodes() {
        return Err(fail(
            "the script uses $container_pid, which needs a pod target",
        ));
    }

    let mut format = Format::Names;
    let mut output = None;
    for o in &args.output {
        match o.as_str() {
            "yaml" => format = Format::Yaml,
            "json" => format = Format::Json,
            "name" => format = Format::Names,
            s if s.starts_with("pvc:") => output = Some(crate::names::pvc_output("--output", s)?),
            s => {
                return Err(fail(format!(
                    "invalid -o/--output {s:?}: use yaml or json (with --dry-run) or pvc:CLAIM[/SUBDIR]"
                )))
            }
        }
    }
    let dry_run = match args.dry_run.as_deref() {
        None | Some("none") => false,
        Some("client") => true,
        Some("server") => {
            return Err(fail(
                "--dry-run=server is not supported; use --dry-run=client",
            ))
        }
        Some(o) => return Err(fail(format!("invalid --dry-run={o}: use client or none"))),
    };
    if format != Format::Names && !dry_run {
        return Err(fail(
            "-o yaml|json prints manifests: use it with --dry-run=client",
        ));
    }
    if dry_run && args.attach {
        return Err(fail("--attach cannot be used with --dry-run"));
    }

    let schedule = match &args.schedule {
        None => None,
        Some(cron) => {
            if args.deadline.is_none() {
                return Err(fail(
                    "--schedule needs --deadline: each scheduled run is a bounded trace",
                ));
            }
            if cron.split_whitespace().count() != 5 && !cron.trim().starts_with('@') {
                return Err(fail(format!(
                    "invalid --schedule {cron:?}: use a cron expression of 5 fields, e.g. \"0 * * * *\""
                )));
            }
            if args.attach {
                return Err(fail(
                    "--attach cannot follow a scheduled trace; use kubectl trace logs -f later",
                ));
            }
            if args.history < 0 {
                return Err(fail("--history cannot be negative"));
            }
            Some(Schedule {
                cron: cron.trim().to_string(),
                starting_deadline: dur("starting-deadline", &args.starting_deadline)?,
                time_zone: args.time_zone.clone(),
                history_limit: args.history,
            })
        }
    };
    let deadline = dur("deadline", args.deadline.as_deref().unwrap_or("1h"))?;
    if deadline == 0 {
        return Err(fail("--deadline must be longer than 0s"));
    }
    let grace = dur("grace", &args.grace)?;
    let ttl = dur("ttl", &args.ttl)?;
    let pod_running_timeout =
        Duration::from_secs(dur("pod-running-timeout", &args.pod_running_timeout)?);

    let patch = match &args.patch {
        None => None,
        Some(f) => {
            let text = std::fs::read_to_string(f)
                .map_err(|e| fail(format!("cannot read patch {f}: {e}")))?;
            Some((parse_patch(&text, f)?, args.patch_type))
        }
    };

    let target_namespace = args
        .target_namespace
        .clone()
        .unwrap_or_else(|| namespace.to_string());
    let spec = TraceSpec {
        id: new_trace_id(),
        namespace: namespace.to_string(),
        image: args
            .image
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(default_image),
        image_pull_policy: args.image_pull_policy.clone(),
        deadline,
        grace,
        ttl,
        service_account: args.service_account.clone(),
        program: loaded.program,
        program_args: args.program_args.clone(),
        target: target.describe(&target_namespace),
        schedule,
        output,
        merge: args.merge,
    };
    Ok(Prepared {
        spec,
        target,
        target_namespace,
        container,
        need_single,
        patch,
        dry_run,
        format,
        attach: args.attach,
        pod_running_timeout,
        script_name,
        concurrency: usize::from(args.concurrency.max(1)),
    })
}

/// Build (and patch) the objects for every node.
pub fn build_all(p: &Prepared, plans: &[NodePlan]) -> Result<Vec<TraceObjects>> {
    let mut all = Vec::new();
    for (i, plan) in plans.iter().enumerate() {
        let mut objs = manifest::build(&p.spec, plan, i, plans.len())?;
        if let Some((patch, kind)) = &p.patch {
            objs.workload = apply_patch(&objs.workload, patch, *kind)?;
        }
        all.push(objs);
    }
    Ok(all)
}

/// Print the objects of a dry run.
pub fn print_dry_run(objs: &[TraceObjects], format: Format, out: &Out) {
    let items: Vec<Value> = objs
        .iter()
        .flat_map(|o| [manifest::to_value(&o.config_map), o.workload.to_value()])
        .collect();
    match format {
        Format::Yaml => out.write(&manifest::to_yaml_documents(&items)),
        Format::Json => out.write(&manifest::to_json_list(items)),
        Format::Names => {
            for o in objs {
                let name = o.workload.name();
                out.line("", &format!("configmap/{name} created (dry run)"));
                let kind = o.workload.kind().to_lowercase();
                out.line("", &format!("{kind}.batch/{name} created (dry run)"));
            }
        }
    }
}

/// `kubectl trace run`.
pub async fn execute(args: RunArgs, global: &GlobalArgs) -> Result<()> {
    let out = Out::stdout();
    // The namespace without a client: a dry run of a node target must not need one.
    let offline_ns = namespace_offline(global);
    let prepared = prepare(&args, &offline_ns)?;
    if prepared.dry_run && prepared.target.is_node() {
        let plans = vec![NodePlan {
            node: prepared.target.name().to_string(),
            pods: vec![],
        }];
        let objs = build_all(&prepared, &plans)?;
        print_dry_run(&objs, prepared.format, &out);
        return Ok(());
    }
    let ctx = Ctx::connect(global).await?;
    let mut prepared = prepared;
    if prepared.spec.namespace != ctx.namespace {
        prepared.spec.namespace = ctx.namespace.clone();
        if args.target_namespace.is_none() {
            prepared.target_namespace = ctx.namespace.clone();
            prepared.spec.target = prepared.target.describe(&ctx.namespace);
        }
    }
    run_with(&ctx, &prepared, &out).await.map(|_| ())
}

/// The created trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub id: String,
    /// (workload name, node) per node.
    pub workloads: Vec<(String, String)>,
}

/// Refuse early when the namespace enforces a PodSecurity level below privileged.
pub async fn check_namespace(ctx: &Ctx, ns: &str) -> Result<()> {
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let Ok(n) = api.get(ns).await else {
        return Ok(()); // not allowed to read namespaces, or similar: admission will tell
    };
    let level = n
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("pod-security.kubernetes.io/enforce").cloned());
    match level.as_deref() {
        Some(l @ ("baseline" | "restricted")) => Err(fail(format!(
            "namespace {ns} enforces PodSecurity {l:?}, which forbids privileged trace pods; {}",
            crate::errors::pod_security_hint(ns)
        ))),
        _ => Ok(()),
    }
}

/// Resolve, create and (with `-a`) attach, against the API.
pub async fn run_with(ctx: &Ctx, p: &Prepared, out: &Out) -> Result<Created> {
    let plans = target::resolve(
        ctx,
        &p.target,
        &p.target_namespace,
        p.container.as_deref(),
        p.need_single,
    )
    .await?;
    let objs = build_all(p, &plans)?;
    if p.dry_run {
        print_dry_run(&objs, p.format, out);
        return Ok(Created {
            id: p.spec.id.clone(),
            workloads: vec![],
        });
    }
    check_namespace(ctx, &p.spec.namespace).await?;
    let ns = p.spec.namespace.as_str();
    if let Some(o) = &p.spec.output {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), ns);
        pvcs.get(&o.claim)
            .await
            .map_err(ctx.err(Op::new("get", "persistentvolumeclaims", Some(ns)).named(&o.claim)))?;
    }
    let mut created = Created {
        id: p.spec.id.clone(),
        workloads: vec![],
    };
    // At most `concurrency` creations at once; after a failure no new one starts, and
    // whatever was made is deleted (leave nothing half-made behind).
    let failed = std::sync::atomic::AtomicBool::new(false);
    let creations = objs
        .into_iter()
        .zip(&plans)
        .enumerate()
        .map(|(i, (objs, plan))| {
            let failed = &failed;
            async move {
                let name = objs.workload.name();
                if failed.load(std::sync::atomic::Ordering::SeqCst) {
                    return (i, name, plan.node.clone(), None);
                }
                let r = create_one(ctx, ns, objs).await;
                if r.is_err() {
                    failed.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                (i, name, plan.node.clone(), Some(r))
            }
        });
    let mut results: Vec<_> = futures::stream::iter(creations)
        .buffer_unordered(p.concurrency.max(1))
        .collect()
        .await;
    results.sort_by_key(|r| r.0);
    let mut first_error = None;
    for (_, name, node, r) in results {
        match r {
            Some(Ok(())) => created.workloads.push((name, node)),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    if let Some(e) = first_error {
        let cron = p.spec.schedule.is_some();
        let deletions = created
            .workloads
            .iter()
            .map(|(n, _)| delete_workload(ctx, ns, n, cron));
        let _: Vec<_> = futures::stream::iter(deletions)
            .buffer_unordered(p.concurrency.max(1))
            .collect()
            .await;
        return Err(e);
    }
    let kind = if p.spec.schedule.is_some() {
        "cronjob"
    } else {
        "job"
    };
    if created.workloads.len() == 1 {
        let (n, node) = &created.workloads[0];
        out.line(
            "",
            &format!("trace {} created ({kind}/{n} on node/{node})", created.id),
        );
    } else {
        out.line("", &format!("trace {} created", created.id));
        for ((n, node), plan) in created.workloads.iter().zip(&plans) {
            let pods: Vec<_> = plan.pods.iter().map(|p| p.name.as_str()).collect();
            out.line(
                "",
                &format!("  {kind}/{n} on node/{node} (pods: {})", pods.join(", ")),
            );
        }
    }
    if p.attach {
        let opts = AttachOptions {
            pod_running_timeout: p.pod_running_timeout,
            grace: p.spec.grace,
            script_name: p.script_name.clone(),
            concurrency: p.concurrency,
        };
        if p.spec.merge {
            let maps = crate::merge::Collector::default();
            let attached =
                attach::attach_trace(ctx, &created.id, &opts, &out.with_maps(&maps)).await;
            crate::merge::finish_after(attached, &created.id, &maps, created.workloads.len(), out)?;
        } else {
            attach::attach_trace(ctx, &created.id, &opts, out).await?;
        }
    } else if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let what = if p.spec.schedule.is_some() {
            format!("see its runs with: kubectl trace get {}", created.id)
        } else {
            format!(
                "follow its output with: kubectl trace attach {}",
                created.id
            )
        };
        eprintln!("{what}");
    }
    Ok(created)
}

async fn delete_workload(ctx: &Ctx, ns: &str, name: &str, cron: bool) -> Result<()> {
    let dp = DeleteParams::background();
    if cron {
        let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
        api.delete(name, &dp)
            .await
            .map(|_| ())
            .map_err(ctx.err(Op::new("delete", "cronjobs.batch", Some(ns))))
    } else {
        let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        api.delete(name, &dp)
            .await
            .map(|_| ())
            .map_err(ctx.err(Op::new("delete", "jobs.batch", Some(ns))))
    }
}

/// Create the Job (or CronJob), then its ConfigMap owned by it. The pod waits for the
/// ConfigMap volume, so the order costs nothing and deleting the Job cleans up all.
async fn create_one(ctx: &Ctx, ns: &str, objs: TraceObjects) -> Result<()> {
    let pp = PostParams::default();
    let TraceObjects {
        mut config_map,
        workload,
    } = objs;
    let name = workload.name();
    let (uid, api_version, kind, cron) = match workload {
        Workload::Job(job) => {
            let api: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
            let j = api
                .create(&pp, &job)
                .await
                .map_err(ctx.err(Op::new("create", "jobs.batch", Some(ns)).named(&name)))?;
            (j.metadata.uid, "batch/v1", "Job", false)
        }
        Workload::CronJob(cj) => {
            let api: Api<CronJob> = Api::namespaced(ctx.client.clone(), ns);
            let c = api
                .create(&pp, &cj)
                .await
                .map_err(ctx.err(Op::new("create", "cronjobs.batch", Some(ns)).named(&name)))?;
            (c.metadata.uid, "batch/v1", "CronJob", true)
        }
    };
    let uid = uid.ok_or_else(|| {
        fail(format!(
            "the API server returned {kind} {name} without a uid"
        ))
    })?;
    manifest::set_owner(&mut config_map, api_version, kind, &name, &uid);
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), ns);
    if let Err(e) = cms.create(&pp, &config_map).await {
        let err: Error = ctx.err(Op::new("create", "configmaps", Some(ns)).named(&name))(e);
        let _ = delete_workload(ctx, ns, &name, cron).await;
        return Err(err);
    }
    Ok(())
}
