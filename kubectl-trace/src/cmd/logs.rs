//! `kubectl trace logs TRACE [-f] [--timestamps] [--tail N]`: the output of a trace's
//! pods (every run of a scheduled trace), prefixed per pod or node when there are several.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use k8s_openapi::api::core::v1::{Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, LogParams};

use crate::attach::stream_logs;
use crate::client::Ctx;
use crate::errors::{fail, Op, Result};
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{PvcOutput, ANN_OUTPUT, CONTAINER_NAME, OUTPUT_DIR};
use crate::persisted::{self, is_unavailable, Mode, Remote, Selection, READER_IMAGE};
use crate::progress::Out;
use crate::tracejob::{self, pod_prefix, trace_pods};
use crate::util::parse_duration;

pub const EXAMPLES: &str = "\
Examples:
  # The output of a trace
  kubectl trace logs k3x9q2m7fa

  # Follow it, with timestamps, starting from the last 20 lines
  kubectl trace logs -f --timestamps --tail 20 kubectl-trace-k3x9q2m7fa

  # A trace run with --output pvc:CLAIM: every run kept on the volume, oldest first
  kubectl trace logs k3x9q2m7fa --all-runs

  # The second run, or download every run into ./runs
  kubectl trace logs k3x9q2m7fa --run 2
  kubectl trace logs k3x9q2m7fa -O ./runs

  # A trace whose Jobs are gone: name the volume
  kubectl trace logs k3x9q2m7fa --from pvc:traces/team-a --all-runs

Output kept on a volume is read through a short-lived reader pod (--reader-image) that
mounts the claim read-only; it is deleted afterwards.";

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The trace: its id or its name
    #[arg(value_name = "TRACE")]
    pub trace: String,
    /// Keep streaming new output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Prefix each line with its RFC3339 timestamp (pod logs only)
    #[arg(long)]
    pub timestamps: bool,
    /// Lines from the end to show (-1: all; pod logs only)
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Every run kept on the trace's volume, oldest first, each after a header line
    #[arg(long, conflicts_with_all = ["follow", "run"])]
    pub all_runs: bool,
    /// The run kept on the volume to show: N (1 is the oldest) or latest
    #[arg(long, value_name = "N|latest", conflicts_with = "follow")]
    pub run: Option<String>,
    /// Download the runs kept on the volume (all, or --run's) into DIR/<run>/
    #[arg(
        short = 'O',
        long = "download",
        value_name = "DIR",
        conflicts_with = "follow"
    )]
    pub download: Option<PathBuf>,
    /// Read the runs from this volume (for a trace whose Jobs are gone)
    #[arg(
        long = "from",
        value_name = "pvc:CLAIM[/SUBDIR]",
        conflicts_with = "follow"
    )]
    pub from: Option<String>,
    /// Image of the pod that reads the volume (it needs sleep, find, stat and tar)
    #[arg(long, value_name = "IMAGE", default_value = READER_IMAGE,
          env = "KUBECTL_TRACE_READER_IMAGE")]
    pub reader_image: String,
    /// How long to wait for the reader pod to start
    #[arg(long, value_name = "DUR", default_value = "2m")]
    pub pod_running_timeout: String,
    /// After the output of the trace's pods, print their maps merged into one answer (a
    /// trace started with `run --merge`)
    #[arg(long, conflicts_with_all = ["all_runs", "run", "download"])]
    pub merge: bool,
}

impl LogsArgs {
    /// Plain `logs TRACE`.
    pub fn new(trace: &str) -> Self {
        LogsArgs {
            trace: trace.to_string(),
            follow: false,
            timestamps: false,
            tail: -1,
            all_runs: false,
            run: None,
            download: None,
            from: None,
            reader_image: READER_IMAGE.to_string(),
            pod_running_timeout: "2m".to_string(),
            merge: false,
        }
    }

    /// True when the runs kept on the volume are asked for explicitly.
    fn wants_volume(&self) -> bool {
        self.all_runs || self.run.is_some() || self.download.is_some() || self.from.is_some()
    }
}

/// Makes the [`Remote`] that runs commands in a reader pod.
pub type RemoteFactory<'a> = &'a (dyn Fn(&Ctx, &str, &str) -> Box<dyn Remote + Send> + Sync);

/// The real one: `pods/exec`.
pub fn pod_exec(ctx: &Ctx, ns: &str, pod: &str) -> Box<dyn Remote + Send> {
    Box::new(persisted::PodExec {
        ctx: ctx.clone(),
        namespace: ns.to_string(),
        pod: pod.to_string(),
    })
}

pub async fn execute(args: LogsArgs, global: &GlobalArgs) -> Result<()> {
    let ctx = Ctx::connect(global).await?;
    if args.merge {
        let id = crate::names::trace_id(&args.trace)?;
        let jobs = crate::tracejob::trace_jobs(&ctx, &ctx.namespace, &id).await?;
        crate::merge::check_trace(&id, &jobs)?;
        let (maps, out) = (crate::merge::Collector::default(), Out::stdout());
        let shown = logs_with(&ctx, &args, &out.with_maps(&maps)).await;
        return crate::merge::finish_after(shown, &id, &maps, jobs.len(), &out);
    }
    logs_with(&ctx, &args, &Out::stdout()).await
}

/// The volume output of a pod template (annotation, else the `output` volume and the
/// runner's `--output-dir`).
pub fn output_of(meta: Option<&ObjectMeta>, spec: Option<&PodSpec>) -> Option<PvcOutput> {
    if let Some(o) = meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(ANN_OUTPUT))
        .and_then(|v| PvcOutput::parse(v).ok())
    {
        return Some(o);
    }
    let spec = spec?;
    let claim = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "output")?
        .persistent_volume_claim
        .as_ref()?
        .claim_name
        .clone();
    let args = spec.containers.first()?.args.clone().unwrap_or_default();
    let dir = trace_contract::args::option_value(&args, trace_contract::args::flag::OUTPUT_DIR)
        .unwrap_or(OUTPUT_DIR)
        .to_string();
    let sub = dir
        .strip_prefix(OUTPUT_DIR)
        .unwrap_or("")
        .trim_matches('/')
        .to_string();
    Some(PvcOutput {
        claim,
        subdir: Some(sub).filter(|s| !s.is_empty()),
    })
}

/// Whether the trace's Jobs or CronJobs exist, and the volume its output is kept on.
pub async fn trace_output(ctx: &Ctx, ns: &str, id: &str) -> Result<(bool, Option<PvcOutput>)> {
    let w = tracejob::workloads(ctx, Some(ns), &tracejob::selector(Some(id))).await?;
    let found = !w.is_empty();
    let (jobs, cronjobs) = (w.jobs, w.cronjobs);
    let from_jobs = jobs.iter().find_map(|j| {
        let t = j.spec.as_ref().map(|s| &s.template);
        output_of(Some(&j.metadata), None).or_else(|| {
            output_of(
                t.and_then(|t| t.metadata.as_ref()),
                t.and_then(|t| t.spec.as_ref()),
            )
        })
    });
    let from_cronjobs = || {
        cronjobs.iter().find_map(|c| {
            let t = c.spec.job_template.spec.as_ref().map(|s| &s.template);
            output_of(Some(&c.metadata), None).or_else(|| {
                output_of(
                    t.and_then(|t| t.metadata.as_ref()),
                    t.and_then(|t| t.spec.as_ref()),
                )
            })
        })
    };
    Ok((found, from_jobs.or_else(from_cronjobs)))
}

fn not_found(id: &str, ns: &str) -> crate::errors::Error {
    fail(format!(
        "trace {id} not found in namespace {ns} (see kubectl trace get); if it kept its output on a volume, read it with --from pvc:CLAIM[/SUBDIR]"
    ))
}

pub async fn logs_with(ctx: &Ctx, args: &LogsArgs, out: &Out) -> Result<()> {
    logs_with_remote(ctx, args, out, &pod_exec).await
}

pub async fn logs_with_remote(
    ctx: &Ctx,
    args: &LogsArgs,
    out: &Out,
    remote: RemoteFactory<'_>,
) -> Result<()> {
    let ns = ctx.namespace.as_str();
    let id = crate::names::trace_id(&args.trace)?;
    if let Some(f) = &args.from {
        crate::names::pvc_output("--from", f)?;
    }
    if args.wants_volume() {
        return volume_logs(ctx, args, &id, out, remote).await;
    }
    let pods = trace_pods(ctx, ns, &id).await?;
    if pods.is_empty() {
        // Finished and gone: the runs kept on a volume, if there is one.
        let (found, output) = trace_output(ctx, ns, &id).await?;
        return match (found, output) {
            (_, Some(o)) => read_volume(ctx, args, &id, &o, Selection::Latest, out, remote).await,
            (true, None) => Err(fail(format!(
                "trace {id} has no pod: it has not started yet, or its pod was removed"
            ))),
            (false, None) => Err(not_found(&id, ns)),
        };
    }
    let lp = LogParams {
        follow: args.follow,
        timestamps: args.timestamps,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        container: Some(CONTAINER_NAME.to_string()),
        ..Default::default()
    };
    if args.follow {
        let multi = pods.len() > 1;
        let streams = pods.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let pre = if multi { pod_prefix(p) } else { String::new() };
            let lp = lp.clone();
            async move {
                stream_logs(
                    ctx,
                    ns,
                    &name,
                    &pre,
                    &lp,
                    crate::attach::UNKNOWN_SCRIPT,
                    out,
                )
                .await
                .map(|_| ())
            }
        });
        let errors: Vec<String> = futures::future::join_all(streams)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(fail(errors.join("\nerror: ")))
        };
    }
    // Several runs of a scheduled trace on one node: a header per run separates them
    // (their lines would otherwise share one prefix).
    let runs = several_runs(&pods);
    print_pod_logs(ctx, ns, &pods, &lp, runs, out).await
}

/// True when two pods would print under the same prefix: runs of a scheduled trace.
pub fn several_runs(pods: &[Pod]) -> bool {
    let mut seen = std::collections::BTreeSet::new();
    pods.iter().any(|p| !seen.insert(pod_prefix(p)))
}

/// `==> RUN <pod> (phase, start → end) <==` for the runs still kept as pods.
pub fn pod_header(p: &Pod) -> String {
    let st = p.status.clone().unwrap_or_default();
    let phase = st.phase.clone().unwrap_or_else(|| "Pending".into());
    let start = st
        .start_time
        .as_ref()
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| "?".into());
    let end = st
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == CONTAINER_NAME)
        .and_then(|c| c.state?.terminated?.finished_at)
        .map(|t| t.0.to_string())
        .unwrap_or_else(|| "…".into());
    format!(
        "==> RUN {} ({}, {start} → {end}) <==",
        p.metadata.name.clone().unwrap_or_default(),
        phase.to_lowercase()
    )
}

/// Print the logs of pods, one after the other (prefixed when several and no headers).
async fn print_pod_logs(
    ctx: &Ctx,
    ns: &str,
    pods: &[Pod],
    lp: &LogParams,
    headers: bool,
    out: &Out,
) -> Result<()> {
    let multi = pods.len() > 1 && !headers;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for p in pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let pre = if multi { pod_prefix(p) } else { String::new() };
        if headers {
            out.line("", &pod_header(p));
        }
        match api.logs(&name, lp).await {
            Ok(text) => {
                for line in text.lines() {
                    out.line(&pre, line);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 400 => {
                eprintln!("note: pod {name} has not started its runner yet");
            }
            Err(e) => {
                return Err(ctx.err(Op::new("get", "pods/log", Some(ns)).named(&name))(
                    e,
                ))
            }
        }
    }
    Ok(())
}

/// `--all-runs`, `--run`, `-O`, `--from`: the runs kept on the volume.
async fn volume_logs(
    ctx: &Ctx,
    args: &LogsArgs,
    id: &str,
    out: &Out,
    remote: RemoteFactory<'_>,
) -> Result<()> {
    let ns = ctx.namespace.as_str();
    let sel = match &args.run {
        Some(r) => Selection::parse_run(r)?,
        None if args.all_runs || args.download.is_some() => Selection::All,
        None => Selection::Latest,
    };
    let output = match &args.from {
        Some(f) => Some(crate::names::pvc_output("--from", f)?),
        None => {
            let (found, output) = trace_output(ctx, ns, id).await?;
            if !found && output.is_none() {
                return Err(not_found(id, ns));
            }
            output
        }
    };
    let Some(output) = output else {
        // No volume: the runs still kept as pods are all there is.
        if args.download.is_some() {
            return Err(fail(format!(
                "trace {id} keeps no output on a volume (run it with --output pvc:CLAIM[/SUBDIR]); nothing to download"
            )));
        }
        eprintln!(
            "note: trace {id} keeps no output on a volume; showing the runs still kept as pods"
        );
        let pods = trace_pods(ctx, ns, id).await?;
        return pod_runs(ctx, id, pods, sel, args, out).await;
    };
    match read_volume(ctx, args, id, &output, sel, out, remote).await {
        Err(e) if is_unavailable(&e) && args.download.is_none() => {
            let pods = trace_pods(ctx, ns, id).await?;
            if pods.is_empty() {
                return Err(e);
            }
            eprintln!("note: {e}; showing the runs still kept as pods instead");
            pod_runs(ctx, id, pods, sel, args, out).await
        }
        r => r,
    }
}

/// The runs of a trace that still have a pod, as `--all-runs`/`--run` would show them.
async fn pod_runs(
    ctx: &Ctx,
    id: &str,
    pods: Vec<Pod>,
    sel: Selection,
    args: &LogsArgs,
    out: &Out,
) -> Result<()> {
    let ns = ctx.namespace.as_str();
    if pods.is_empty() {
        return Err(fail(format!("trace {id} has no pod left to read")));
    }
    let names: Vec<String> = pods
        .iter()
        .map(|p| p.metadata.name.clone().unwrap_or_default())
        .collect();
    let chosen =
        persisted::select_runs(&names, sel).map_err(|e| fail(format!("trace {id}: {e}")))?;
    let pods: Vec<Pod> = pods
        .into_iter()
        .filter(|p| chosen.contains(p.metadata.name.as_ref().unwrap_or(&String::new())))
        .collect();
    let lp = LogParams {
        timestamps: args.timestamps,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        container: Some(CONTAINER_NAME.to_string()),
        ..Default::default()
    };
    print_pod_logs(ctx, ns, &pods, &lp, args.all_runs, out).await
}

async fn read_volume(
    ctx: &Ctx,
    args: &LogsArgs,
    id: &str,
    output: &PvcOutput,
    sel: Selection,
    out: &Out,
    remote: RemoteFactory<'_>,
) -> Result<()> {
    let timeout = parse_duration(&args.pod_running_timeout)
        .map_err(|e| fail(format!("--pod-running-timeout: {e}")))?;
    let mode = match &args.download {
        Some(dir) => Mode::Download { dir: dir.clone() },
        None => Mode::Print {
            out: out.clone(),
            headers: args.all_runs,
        },
    };
    persisted::read_with_reader(
        ctx,
        id,
        output,
        sel,
        mode,
        &args.reader_image,
        Duration::from_secs(timeout),
        remote,
    )
    .await
}
