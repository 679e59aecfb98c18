//! `kubectl trace attach` (and `run -a`): wait for each trace pod to start, showing its
//! progress and explaining why it cannot (PodSecurity, FailedCreate, Unschedulable,
//! image pull), then stream every pod's output, prefixed per pod or node when there are
//! several. The first Ctrl-C stops the trace gracefully and keeps its output: the runner
//! is told to stop through `pods/exec` (`trace-runner stop`: END runs, the maps are
//! printed, the pod stays until the Job's TTL, so `kubectl trace logs` still shows them),
//! Jobs whose pod has not started are deleted (and that is an error: nothing ran); the
//! stream goes on until the runners end. The second Ctrl-C leaves at once.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use futures::future::BoxFuture;
use futures::{AsyncBufReadExt, FutureExt, StreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams};
use kube::runtime::{watcher, WatchStreamExt};
use tokio::io::AsyncReadExt;
use trace_contract::exit;

use crate::client::{is_not_found, Ctx};
use crate::errors::{fail, pod_security_message, Error, Op, Result};
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{id_selector, CONTAINER_NAME, PROGRAMS_DIR};
use crate::progress::{Out, Progress};
use crate::tracejob::{
    classify, job_node, job_prefix, runner_running, trace_jobs, JobPods, PodState,
};
use crate::util::{format_age, parse_duration};

pub const EXAMPLES: &str = "\
Examples:
  # Follow a running trace (Ctrl-C stops it and shows its final maps)
  kubectl trace attach k3x9q2m7fa

  # By object name, in another namespace
  kubectl trace attach kubectl-trace-k3x9q2m7fa -n tracing";

#[derive(Debug, Clone, Args)]
pub struct AttachArgs {
    /// The trace: its id or its name
    #[arg(value_name = "TRACE")]
    pub trace: String,
    /// How long to wait for the trace pod to start
    #[arg(long, value_name = "DUR", default_value = "5m")]
    pub pod_running_timeout: String,
    /// After the output of the trace's pods, print their maps merged into one answer (a
    /// trace started with `run --merge`)
    #[arg(long)]
    pub merge: bool,
    /// At most this many nodes' pods are waited for and streamed at once (the others
    /// follow as they end; their output is kept meanwhile)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_CONCURRENCY,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub concurrency: u16,
}

/// How many nodes are created, waited for or streamed at once by default.
pub const DEFAULT_CONCURRENCY: u16 = 8;

#[derive(Debug, Clone)]
pub struct AttachOptions {
    pub pod_running_timeout: Duration,
    /// Grace period (seconds) used to stop the runner on Ctrl-C.
    pub grace: u64,
    /// The program's name in messages from the node (the user's file, `<expression>`).
    pub script_name: String,
    /// At most this many Jobs are waited for and streamed at once.
    pub concurrency: usize,
}

/// The program's name in node messages when the user's file name is not known.
pub const UNKNOWN_SCRIPT: &str = "program.bt";

/// Wait between attempts to open the log stream of a container still being created.
const POLL: Duration = Duration::from_millis(1000);

/// `kubectl trace attach`.
pub async fn execute(args: AttachArgs, global: &GlobalArgs) -> Result<()> {
    let timeout = parse_duration(&args.pod_running_timeout)
        .map_err(|e| fail(format!("--pod-running-timeout: {e}")))?;
    let id = crate::names::trace_id(&args.trace)?;
    let ctx = Ctx::connect(global).await?;
    let jobs = trace_jobs(&ctx, &ctx.namespace, &id).await?;
    let grace = jobs
        .first()
        .and_then(|j| j.spec.as_ref())
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30) as u64;
    let opts = AttachOptions {
        pod_running_timeout: Duration::from_secs(timeout),
        grace,
        script_name: UNKNOWN_SCRIPT.to_string(),
        concurrency: usize::from(args.concurrency),
    };
    if args.merge {
        crate::merge::check_trace(&id, &jobs)?;
        let (maps, out) = (crate::merge::Collector::default(), Out::stdout());
        let followed = attach_trace(&ctx, &id, &opts, &out.with_maps(&maps)).await;
        return crate::merge::finish_after(followed, &id, &maps, jobs.len(), &out);
    }
    attach_trace(&ctx, &id, &opts, &Out::stdout()).await
}

/// Shared start-up state of all the trace's pods, shown in one spinner.
struct Starting {
    progress: Mutex<Progress>,
    states: Mutex<BTreeMap<String, String>>,
    /// Set by the first Ctrl-C.
    stopped: AtomicBool,
    /// Jobs deleted by a stop before their pod started: job name -> node.
    cancelled: Mutex<BTreeMap<String, String>>,
}

impl Starting {
    fn is_cancelled(&self, job: &str) -> bool {
        self.cancelled
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(job)
    }

    fn state(&self, node: &str) -> Option<String> {
        self.states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(node)
            .cloned()
    }
}

impl Starting {
    fn set(&self, node: &str, state: &str) {
        let msg = {
            let mut states = self.states.lock().unwrap_or_else(|e| e.into_inner());
            states.insert(node.to_string(), state.to_string());
            let waiting: Vec<String> = states
                .iter()
                .filter(|(_, s)| s.as_str() != "streaming")
                .map(|(n, s)| format!("node/{n}: {s}"))
                .collect();
            if waiting.is_empty() {
                None
            } else {
                Some(format!(
                    "waiting for the trace pod ({})",
                    waiting.join("; ")
                ))
            }
        };
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        match msg {
            Some(m) => p.set(&m),
            None => p.finish(),
        }
    }

    fn note(&self, msg: &str) {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .note(msg);
    }
}

/// Why a Job cannot make its pod, from its status and events; `None` while all is well.
async fn job_trouble(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    check_events: bool,
) -> Result<Option<String>> {
    let job: Job = ctx
        .get(
            Some(ns),
            name,
            Op::new("get", "jobs.batch", Some(ns)).named(name),
        )
        .await?;
    for c in job.status.and_then(|s| s.conditions).unwrap_or_default() {
        if c.type_ == "Failed" && c.status == "True" {
            return Ok(Some(format!(
                "job {name} failed: {}{}",
                c.reason.unwrap_or_default(),
                c.message.map(|m| format!(": {m}")).unwrap_or_default()
            )));
        }
    }
    if !check_events {
        return Ok(None);
    }
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Job,involvedObject.name={name}"
    ));
    let list: Vec<Event> = match ctx
        .list(Some(ns), &lp, Op::new("list", "events", Some(ns)))
        .await
    {
        Ok(l) => l,
        Err(_) => return Ok(None), // events are a bonus
    };
    for ev in list {
        if ev.reason.as_deref() == Some("FailedCreate") {
            let msg = ev.message.unwrap_or_default();
            if msg.contains("violates PodSecurity") {
                return Ok(Some(pod_security_message(ns, &msg)));
            }
            return Ok(Some(format!(
                "job {name} cannot create its pod (FailedCreate): {msg}"
            )));
        }
    }
    Ok(None)
}

/// Latest warning event of a pod, to show while waiting (e.g. FailedMount).
async fn pod_warning(ctx: &Ctx, ns: &str, pod: &str) -> Option<String> {
    let lp = ListParams::default().fields(&format!(
        "involvedObject.kind=Pod,involvedObject.name={pod}"
    ));
    let list: Vec<Event> = ctx
        .list(Some(ns), &lp, Op::new("list", "events", Some(ns)))
        .await
        .ok()?;
    list.into_iter()
        .filter(|e| e.type_.as_deref() == Some("Warning"))
        .max_by(|a, b| a.last_timestamp.cmp(&b.last_timestamp))
        .map(|e| {
            let m = e.message.unwrap_or_default();
            let m = m.lines().next().unwrap_or("").to_string();
            format!("{}: {m}", e.reason.unwrap_or_default())
        })
}

/// How often, while a pod is awaited, the Job's own troubles (its conditions and
/// FailedCreate events) and the pod's warnings are looked up, and the timeout checked.
#[cfg(not(test))]
const CHECK: Duration = Duration::from_secs(2);
#[cfg(test)]
const CHECK: Duration = Duration::from_millis(20);

/// Consecutive watch errors tolerated (the watcher relists, with a backoff) before the
/// wait fails.
const WATCH_ERRORS: u32 = 5;

/// Wait until the Job's pod has started its runner; `None` when stopped meanwhile. The
/// pod's states come from a watch of the Job's pods (kube-runtime's `watcher`); the
/// Job's conditions and events are checked every [`CHECK`] while it has no pod.
async fn wait_started(
    ctx: &Ctx,
    ns: &str,
    job: &str,
    node: &str,
    opts: &AttachOptions,
    starting: &Starting,
) -> Result<Option<Pod>> {
    let begin = Instant::now();
    // A watch stays quiet for long: the client without a read timeout.
    let api: Api<Pod> = Api::namespaced(ctx.stream_client.clone(), ns);
    let config = watcher::Config::default().labels(&format!("job-name={job}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut pods = JobPods::default();
    let mut listed = false;
    let mut errors = 0;
    let mut warning: Option<String> = None;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + CHECK, CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut i: u64 = 0;
    loop {
        if starting.is_cancelled(job) {
            return Ok(None);
        }
        tokio::select! {
            biased;
            event = events.next() => {
                match event {
                    Some(Ok(e)) => {
                        errors = 0;
                        if !pods.apply(e) {
                            continue;
                        }
                        listed = true;
                    }
                    Some(Err(e)) => {
                        errors += 1;
                        if errors >= WATCH_ERRORS {
                            return Err(fail(format!(
                                "cannot follow the pod of job {job} in namespace {ns}: {e}"
                            )));
                        }
                        continue;
                    }
                    None => return Err(fail(format!("the watch of job {job}'s pods ended"))),
                }
            }
            _ = tick.tick() => {
                i += 1;
                if begin.elapsed() > opts.pod_running_timeout {
                    return Err(fail(format!(
                        "the trace pod on node/{node} has not started after {}; see kubectl describe job {job} -n {ns}",
                        format_age(opts.pod_running_timeout.as_secs() as i64)
                    )));
                }
                if !listed {
                    continue;
                }
                match pods.newest() {
                    None => {
                        if starting.stopped.load(Ordering::SeqCst) {
                            return Ok(None);
                        }
                        if let Some(why) = job_trouble(ctx, ns, job, i.is_multiple_of(2)).await? {
                            return Err(fail(why));
                        }
                    }
                    Some(pod) if begin.elapsed() > Duration::from_secs(5) && i.is_multiple_of(3) => {
                        let name = pod.metadata.name.clone().unwrap_or_default();
                        warning = pod_warning(ctx, ns, &name).await;
                    }
                    Some(_) => {}
                }
            }
        }
        match pods.newest() {
            Some(pod) => match classify(pod, node) {
                PodState::Started => return Ok(Some(pod.clone())),
                PodState::Fatal(m) => return Err(fail(m)),
                PodState::Waiting(s) => {
                    let shown = match &warning {
                        Some(w) => format!("{s} ({w})"),
                        None => s,
                    };
                    starting.set(node, &shown);
                }
            },
            None => starting.set(node, "waiting for the Job to create the pod"),
        }
    }
}

/// A runner output line with the program's path in the trace container
/// (`/programs/program.bt`) replaced by the name the user knows it by.
pub fn map_program_path(line: &str, name: &str) -> String {
    let mut out = line.to_string();
    for key in ["program.bt", "program.o.gz", "program.o"] {
        out = out.replace(&format!("{PROGRAMS_DIR}/{key}"), name);
    }
    out
}

/// Stream a pod's runner output to `out`, each line prefixed and with the program's
/// path mapped to `script_name` (see [`map_program_path`]); retries while the container
/// is still being created (the API answers 400 then). Returns the first diagnostic line
/// (`FILE:LINE:COL: error: ...`) seen, if any.
pub async fn stream_logs(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    prefix: &str,
    lp: &LogParams,
    script_name: &str,
    out: &Out,
) -> Result<Option<String>> {
    let api: Api<Pod> = Api::namespaced(ctx.stream_client.clone(), ns);
    let mut attempt = 0;
    let mut reader = loop {
        match api.log_stream(pod, lp).await {
            Ok(r) => break r,
            Err(kube::Error::Api(s)) if s.code == 400 && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                return Err(ctx.err(Op::new("get", "pods/log", Some(ns)).named(pod))(e));
            }
        }
    };
    let mut buf = Vec::new();
    let mut diagnostic = None;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .await
            .map_err(|e| fail(format!("reading the output of pod {pod}: {e}")))?;
        if n == 0 {
            return Ok(diagnostic);
        }
        let text = String::from_utf8_lossy(&buf);
        let line = map_program_path(text.trim_end_matches(['\n', '\r']), script_name);
        if diagnostic.is_none() && line.starts_with(script_name) && line.contains(": error: ") {
            diagnostic = Some(line.clone());
        }
        out.line(prefix, &line);
    }
}

/// How the runner ended, when the pod can still tell.
async fn runner_exit(ctx: &Ctx, ns: &str, pod: &str) -> Option<(i32, String)> {
    let op = Op::new("get", "pods", Some(ns)).named(pod);
    let p: Pod = match ctx.try_get(Some(ns), pod, &op).await {
        Ok(Ok(p)) => p,
        _ => return None,
    };
    let t = p
        .status?
        .container_statuses?
        .into_iter()
        .find(|c| c.name == CONTAINER_NAME)?
        .state?
        .terminated?;
    Some((t.exit_code, t.reason.unwrap_or_default()))
}

/// Follow one Job: wait for its pod, stream, report a failed runner.
async fn follow_job(
    ctx: &Ctx,
    ns: &str,
    job: &Job,
    prefix: &str,
    opts: &AttachOptions,
    starting: &Starting,
    out: &Out,
) -> Result<()> {
    let name = job.metadata.name.clone().unwrap_or_default();
    let node = job_node(job);
    let Some(pod) = wait_started(ctx, ns, &name, &node, opts, starting).await? else {
        let state = starting.state(&node).unwrap_or_else(|| "Pending".into());
        starting.set(&node, "streaming");
        if starting.is_cancelled(&name) {
            return Err(Error::Interrupted(format!(
                "stopped before the trace pod on node/{node} started (it was: {state}); nothing was traced there and job {name} was deleted"
            )));
        }
        return Ok(());
    };
    starting.set(&node, "streaming");
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let lp = LogParams {
        follow: true,
        container: Some(CONTAINER_NAME.to_string()),
        ..Default::default()
    };
    let diagnostic = stream_logs(ctx, ns, &pod_name, prefix, &lp, &opts.script_name, out).await?;
    if let Some((code, reason)) = runner_exit(ctx, ns, &pod_name).await {
        let by_us =
            starting.stopped.load(Ordering::SeqCst) && (code == 143 || code == 130 || code == 137);
        if code == i32::from(exit::SCRIPT) && !by_us {
            if let Some(d) = diagnostic {
                return Err(Error::Script(format!("{d} (reported by node/{node})")));
            }
            return Err(Error::Script(format!(
                "error: the runner on node/{node} rejected the script (see its message above)"
            )));
        }
        if code != i32::from(exit::OK) && !by_us {
            return Err(fail(format!(
                "the trace on node/{node} failed: the runner exited with code {code}{}",
                if reason.is_empty() || reason == "Error" {
                    String::new()
                } else {
                    format!(" ({reason})")
                }
            )));
        }
    }
    Ok(())
}

/// Stops one started runner and keeps its pod (in a cluster: `pods/exec` of
/// `trace-runner stop`, see [`exec_stop`]); arguments: namespace, pod.
pub type StopRunner<'a> = &'a (dyn Fn(&Ctx, &str, &str) -> BoxFuture<'static, Result<()>> + Sync);

/// How long the stop command may take before the pod is deleted instead.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// The real [`StopRunner`]: `trace-runner stop` in the runner container through
/// `pods/exec`. The runner gets SIGINT, runs END, prints its maps and exits 0; the pod
/// stays (until the Job's TTL), so `kubectl trace logs` still shows the output.
pub fn exec_stop(ctx: &Ctx, ns: &str, pod: &str) -> BoxFuture<'static, Result<()>> {
    let (ctx, ns, pod) = (ctx.clone(), ns.to_string(), pod.to_string());
    async move {
        let api: Api<Pod> = Api::namespaced(ctx.stream_client.clone(), &ns);
        let ap = AttachParams {
            container: Some(CONTAINER_NAME.to_string()),
            stdin: false,
            stdout: true,
            stderr: true,
            tty: false,
            ..Default::default()
        };
        let run = async {
            let mut p = api
                .exec(&pod, ["trace-runner", "stop"], &ap)
                .await
                .map_err(ctx.err(Op::new("create", "pods/exec", Some(&ns)).named(&pod)))?;
            let (mut out, mut err) = (p.stdout(), p.stderr());
            let status = p.take_status();
            let (mut said, mut complaint) = (String::new(), String::new());
            if let Some(o) = out.as_mut() {
                let _ = o.read_to_string(&mut said).await;
            }
            if let Some(e) = err.as_mut() {
                let _ = e.read_to_string(&mut complaint).await;
            }
            let status = match status {
                Some(s) => s.await,
                None => None,
            };
            match status {
                None => Ok(()),
                Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
                Some(s) => {
                    let why = complaint
                        .lines()
                        .next()
                        .map(str::to_string)
                        .filter(|l| !l.is_empty())
                        .or(s.message)
                        .unwrap_or_else(|| "the command failed".into());
                    Err(fail(format!("trace-runner stop in pod {pod}: {why}")))
                }
            }
        };
        match tokio::time::timeout(STOP_TIMEOUT, run).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!(
                "trace-runner stop in pod {pod} did not answer within {}s",
                STOP_TIMEOUT.as_secs()
            ))),
        }
    }
    .boxed()
}

/// What a stop did, per node.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StopReport {
    /// Nodes whose runner was told to stop: it prints its maps, the pod is kept.
    pub stopped: Vec<String>,
    /// Nodes whose runner could not be told (old image, no `pods/exec`): their pod was
    /// deleted with the grace period instead (the runner still prints its maps on
    /// SIGTERM, but the output is gone with the pod); with the reason.
    pub deleted_running: Vec<(String, String)>,
    /// Jobs (name, node) whose pod had not started: deleted, with what they owned.
    pub cancelled: Vec<(String, String)>,
    /// Jobs (name, node) that could not be deleted: with the error.
    pub left: Vec<(String, String, String)>,
}

/// Stop a trace gracefully and keep its output: every running runner is told to stop
/// (`stop`; on failure its pod is deleted with the grace period, as a fallback), and
/// every Job whose pod has not started yet is deleted (nothing ran there).
pub async fn stop_trace(
    ctx: &Ctx,
    ns: &str,
    id: &str,
    grace: u64,
    stop: StopRunner<'_>,
) -> Result<StopReport> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let lp = ListParams::default().labels(&id_selector(id));
    let list: Vec<Pod> = ctx
        .list(Some(ns), &lp, Op::new("list", "pods", Some(ns)))
        .await?;
    let dp = DeleteParams {
        grace_period_seconds: Some(grace as u32),
        ..Default::default()
    };
    let mut report = StopReport::default();
    let mut started_jobs = Vec::new();
    for p in list {
        let name = p.metadata.name.clone().unwrap_or_default();
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        if classify(&p, &node) != PodState::Started {
            continue; // not started: its Job is deleted below
        }
        if let Some(l) = p.metadata.labels.as_ref().and_then(|l| l.get("job-name")) {
            started_jobs.push(l.clone());
        }
        if !runner_running(&p) {
            continue; // already ended
        }
        match stop(ctx, ns, &name).await {
            Ok(()) => report.stopped.push(node),
            Err(why) => {
                match pods.delete(&name, &dp).await {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => {
                        return Err(ctx.err(Op::new("delete", "pods", Some(ns)).named(&name))(e))
                    }
                }
                report.deleted_running.push((node, why.to_string()));
            }
        }
    }
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
    for j in trace_jobs(ctx, ns, id).await.unwrap_or_default() {
        let name = j.metadata.name.clone().unwrap_or_default();
        if started_jobs.contains(&name) {
            continue;
        }
        let node = job_node(&j);
        match jobs.delete(&name, &DeleteParams::background()).await {
            Ok(_) => report.cancelled.push((name, node)),
            Err(e) if is_not_found(&e) => report.cancelled.push((name, node)),
            Err(e) => {
                let e = ctx.err(Op::new("delete", "jobs.batch", Some(ns)).named(&name))(e);
                report.left.push((name, node, e.to_string()));
            }
        }
    }
    Ok(report)
}

/// The one line printed when a second Ctrl-C leaves at once.
pub fn left_running(
    id: &str,
    report: Option<&StopReport>,
    states: &BTreeMap<String, String>,
) -> String {
    let mut parts: Vec<String> = Vec::new();
    match report {
        Some(r) => {
            for n in &r.stopped {
                parts.push(format!("node/{n} printing its maps"));
            }
            for (_, n, _) in &r.left {
                parts.push(format!("node/{n} not deleted"));
            }
        }
        None => {
            for (n, s) in states {
                let s = if s == "streaming" {
                    "running"
                } else {
                    s.as_str()
                };
                parts.push(format!("node/{n} {s}"));
            }
        }
    }
    if parts.is_empty() {
        return format!("left trace {id}; see it with: kubectl trace get {id}");
    }
    format!(
        "left trace {id} ({}); read it with: kubectl trace logs {id}, delete it with: kubectl trace delete {id}",
        parts.join(", ")
    )
}

/// The user's Ctrl-C presses, as a stream (a test feeds its own).
pub type Interrupts<'a> = &'a mut (dyn futures::Stream<Item = ()> + Unpin + Send);

/// SIGINT as a stream (every press is seen, also between polls).
pub fn ctrl_c_stream() -> Box<dyn futures::Stream<Item = ()> + Unpin + Send> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut sig) = signal(SignalKind::interrupt()) {
            return Box::new(Box::pin(futures::stream::poll_fn(move |cx| {
                sig.poll_recv(cx)
            })));
        }
    }
    Box::new(Box::pin(futures::stream::unfold((), |()| async {
        tokio::signal::ctrl_c().await.ok()?;
        Some(((), ()))
    })))
}

/// Follow every Job of a trace until their runners end; Ctrl-C stops it (see
/// [`attach_trace_with`]).
pub async fn attach_trace(ctx: &Ctx, id: &str, opts: &AttachOptions, out: &Out) -> Result<()> {
    let mut interrupts = ctrl_c_stream();
    attach_trace_with(ctx, id, opts, out, &mut *interrupts, &exec_stop).await
}

/// Follow every Job of a trace until their runners end. The first interrupt stops the
/// trace ([`stop_trace`]): started runners print their maps and keep their pods, pods
/// still starting are deleted with their Jobs (an error: nothing ran there); the second
/// leaves at once with one line saying what is left.
pub async fn attach_trace_with(
    ctx: &Ctx,
    id: &str,
    opts: &AttachOptions,
    out: &Out,
    interrupts: Interrupts<'_>,
    stop: StopRunner<'_>,
) -> Result<()> {
    let ns = ctx.namespace.clone();
    let jobs = trace_jobs(ctx, &ns, id).await?;
    let ttl = jobs
        .first()
        .and_then(|j| j.spec.as_ref())
        .and_then(|s| s.ttl_seconds_after_finished);
    let progress = Progress::new();
    out.follow_progress(&progress);
    let starting = Arc::new(Starting {
        progress: Mutex::new(progress),
        states: Mutex::new(BTreeMap::new()),
        stopped: AtomicBool::new(false),
        cancelled: Mutex::new(BTreeMap::new()),
    });
    let multi = jobs.len() > 1;
    let follows = jobs.iter().map(|job| {
        let prefix = if multi {
            job_prefix(job)
        } else {
            String::new()
        };
        let (starting, ns) = (starting.clone(), ns.clone());
        async move { follow_job(ctx, &ns, job, &prefix, opts, &starting, out).await }
    });
    // Bounded: a trace over many nodes follows `concurrency` of them at once; the
    // others are followed as those end (their logs are read from the start).
    let mut all = Box::pin(
        futures::stream::iter(follows)
            .buffer_unordered(opts.concurrency.max(1))
            .collect::<Vec<_>>(),
    );
    let mut report: Option<StopReport> = None;
    let leave = |starting: &Starting, report: Option<&StopReport>| {
        let mut p = starting.progress.lock().unwrap_or_else(|e| e.into_inner());
        p.finish();
        let states = starting
            .states
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Error::Interrupted(left_running(id, report, &states))
    };
    let results = loop {
        tokio::select! {
            r = &mut all => break r,
            i = interrupts.next() => {
                if i.is_none() {
                    // No more interrupts can come (no signal handling): just follow.
                    break all.await;
                }
                if starting.stopped.swap(true, Ordering::SeqCst) {
                    return Err(leave(&starting, report.as_ref()));
                }
                starting.note(&format!(
                    "stopping trace {id}: the runner prints its results (Ctrl-C again to leave now)"
                ));
                let stopping = stop_trace(ctx, &ns, id, opts.grace, stop);
                let r = tokio::select! {
                    r = stopping => r,
                    _ = interrupts.next() => return Err(leave(&starting, None)),
                };
                match r {
                    Ok(r) => {
                        for (n, why) in &r.deleted_running {
                            starting.note(&format!(
                                "node/{n}: could not stop the runner in place ({why}); deleted its pod with the grace period instead, so its output will not be kept"
                            ));
                        }
                        {
                            let mut c = starting.cancelled.lock().unwrap_or_else(|e| e.into_inner());
                            for (job, node) in &r.cancelled {
                                c.insert(job.clone(), node.clone());
                            }
                            for (job, node, e) in &r.left {
                                c.insert(job.clone(), node.clone());
                                starting.note(&format!("node/{node}: {e}"));
                            }
                        }
                        report = Some(r);
                    }
                    Err(e) => starting.note(&format!(
                        "could not stop trace {id}: {e}; delete it with: kubectl trace delete {id}"
                    )),
                }
            }
        }
    };
    starting
        .progress
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .finish();
    if let Some(r) = &report {
        if !r.stopped.is_empty() {
            let until = ttl
                .map(|t| format!(" for {}", format_age(i64::from(t))))
                .unwrap_or_default();
            starting.note(&format!(
                "trace {id} stopped; its output stays readable{until} with: kubectl trace logs {id}"
            ));
        }
    }
    combine(results.into_iter().filter_map(|r| r.err()).collect())
}

/// One error for several streams: a script error only when every failure is one.
pub fn combine(errors: Vec<Error>) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let all_script = errors.iter().all(|e| matches!(e, Error::Script(_)));
    let all_interrupted = errors.iter().all(|e| matches!(e, Error::Interrupted(_)));
    let texts: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
    if all_script {
        Err(Error::Script(texts.join("\n")))
    } else if all_interrupted {
        Err(Error::Interrupted(texts.join("\nerror: ")))
    } else {
        let texts: Vec<String> = texts
            .into_iter()
            .map(|t| t.strip_prefix("error: ").map(str::to_string).unwrap_or(t))
            .collect();
        Err(fail(texts.join("\nerror: ")))
    }
}
