//! `trace-runner`: compiles bpftrace-language scripts to eBPF in-process and runs
//! them against the local kernel (no LLVM, clang, headers or bpftrace needed).
//!
//! Pipeline: `trace_lang` (lex, parse, analyse) → [`compile`] (codegen, object
//! emission) → [`runtime`] (aya load/attach, events, maps) → [`output`] (bpftrace's
//! text or JSON) through a [`sink::Sink`].

mod btf;
mod compile;
mod flame;
mod output;
mod persist;
mod pod;
mod pod_names;
mod runtime;
mod scope;
mod sink;
mod stacks;
mod symbols;
mod tracefs;
mod uprobes;
mod values;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use compile::codegen::{self, CodegenOptions};
use runtime::Session;
use sink::{Format, Sink};
use tracefs::Tracefs;

#[derive(Parser)]
#[command(
    name = "trace-runner",
    version,
    about = "Run bpftrace-language scripts against this kernel, compiled in-process to eBPF"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile, load and run a script until exit(), Ctrl-C, SIGTERM or the deadline.
    Run(Box<RunArgs>),
    /// Parse and analyse a script (exit 0 when valid); with --load, also load it through the verifier.
    Check {
        #[command(flatten)]
        script: ScriptArgs,
        /// Also generate code and load every program through the kernel verifier (no attach).
        #[arg(long)]
        load: bool,
        /// Allow actions that change the system: signal().
        #[arg(long = "unsafe")]
        unsafe_actions: bool,
    },
    /// List the probes this node offers, like `bpftrace -l`.
    List {
        /// Only probes matching this pattern (`*` wildcards), e.g. 'tracepoint:syscalls:*open*'.
        pattern: Option<String>,
    },
    /// Compile a script and write the BPF ELF object the runner would load.
    Build {
        #[command(flatten)]
        script: ScriptArgs,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

#[derive(Args, Clone)]
struct ScriptArgs {
    /// The program text.
    #[arg(short = 'e', value_name = "PROGRAM")]
    program: Option<String>,
    /// A script file (unless -e is given), then the positional parameters $1, $2, ...
    #[arg(value_name = "FILE | ARGS", trailing_var_arg = true, allow_hyphen_values = true)]
    positionals: Vec<String>,
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    script: ScriptArgs,
    /// Only trace tasks in this cgroup v2 directory (and its descendants).
    #[arg(long, value_name = "PATH")]
    cgroup: Option<PathBuf>,
    /// Only trace this process.
    #[arg(long)]
    pid: Option<u32>,
    /// Stop after this long, e.g. 30s, 5m, 1h (plain numbers are seconds).
    #[arg(long, value_parser = parse_duration)]
    deadline: Option<Duration>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// Trace only this pod (found on this node by UID, on any common cgroup layout); repeat
    /// for several pods on one node.
    #[arg(long = "pod-uid", value_name = "UID")]
    pod_uids: Vec<String>,
    /// Trace only this pod, found by NAMESPACE/NAME through the kubelet's log directories
    /// (scheduled traces: it finds a recreated pod again); repeatable.
    #[arg(long = "pod", value_name = "NAMESPACE/NAME")]
    pod_names: Vec<String>,
    /// Only these containers (IDs may carry containerd://, cri-o://, docker://).
    #[arg(long = "container-id", value_name = "ID")]
    container_ids: Vec<String>,
    /// With --pod: only these containers, by name.
    #[arg(long = "container-name", value_name = "NAME")]
    container_names: Vec<String>,
    /// The host's /var/log as mounted in the trace pod (for --pod).
    #[arg(long, value_name = "DIR", default_value = "/var/log", hide = true)]
    host_logs: PathBuf,
    /// The host's /proc as mounted in the trace pod.
    #[arg(long, value_name = "DIR", default_value = "/proc")]
    host_proc: PathBuf,
    /// Also write the output under DIR/<trace-id>/<start-UTC>/ (output.txt, meta.json).
    #[arg(long, value_name = "DIR", requires = "trace_id")]
    output_dir: Option<PathBuf>,
    /// The trace's id (names the persisted output directory).
    #[arg(long, value_name = "ID")]
    trace_id: Option<String>,
    /// What is traced, recorded in meta.json (e.g. pod/shop/web-0).
    #[arg(long, value_name = "TARGET", hide = true)]
    target: Option<String>,
    /// Compiled objects: the binary of bare `uprobe` sections, as PATH[:SYMBOL[+OFF]]
    /// (inside the container's filesystem for pod targets).
    #[arg(long, value_name = "PATH")]
    uprobe_target: Option<String>,
    /// Compiled objects: sampling frequency of perf_event programs, on every CPU (default 99).
    #[arg(long, value_name = "N")]
    sample_hz: Option<u64>,
    /// At exit, also write an SVG flame graph of the stack maps (e.g. of
    /// `profile:hz:99 { @[ustack, kstack] = count(); }`) to this file.
    #[arg(long, value_name = "FILE.svg")]
    flamegraph: Option<PathBuf>,
    /// Allow actions that change the system: signal().
    #[arg(long = "unsafe")]
    unsafe_actions: bool,
}

/// Parse `30s`, `5m`, `1h`, `250ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration '{s}' (e.g. 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(format!(
                "invalid duration unit in '{s}' (use ms, s, m or h)"
            ))
        }
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A failure: message and exit code (2 for script errors).
struct Failure(String, u8);

impl ScriptArgs {
    /// The script file, when the program does not come from -e.
    fn file(&self) -> Option<PathBuf> {
        match self.program {
            Some(_) => None,
            None => self.positionals.first().map(PathBuf::from),
        }
    }

    /// Positional parameters `$1`, `$2`, ...
    fn params(&self) -> &[String] {
        let skip = usize::from(self.program.is_none()).min(self.positionals.len());
        &self.positionals[skip..]
    }

    fn source(&self) -> Result<(String, String), Failure> {
        match (&self.program, &self.file()) {
            (Some(p), _) => Ok(("stdin".to_string(), p.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| (f.display().to_string(), s))
                .map_err(|e| Failure(format!("error: cannot read {}: {e}", f.display()), 2)),
            (None, None) => Err(Failure(
                "error: give a program with -e or a script file".into(),
                2,
            )),
        }
    }
}

fn compile_source(
    name: &str,
    src: &str,
    params: &[String],
    env: &Tracefs,
    opts: CodegenOptions,
) -> Result<codegen::Compiled, Failure> {
    let render = |d: trace_lang::Diagnostic| Failure(d.render(name, src).trim_end().to_string(), 2);
    let (program, analysis) = trace_lang::check(src, env).map_err(render)?;
    let opts = CodegenOptions {
        params: params.to_vec(),
        ..opts
    };
    codegen::generate(&program, &analysis, env, &opts).map_err(render)
}

fn compile_script(
    script: &ScriptArgs,
    env: &Tracefs,
    opts: CodegenOptions,
) -> Result<codegen::Compiled, Failure> {
    let (name, src) = script.source()?;
    // Checked without a target: `$container_pid` stands for some pid.
    let src = substitute_container_pid(&src, Some(1))?;
    compile_source(&name, &src, script.params(), env, opts)
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn base_options() -> CodegenOptions {
    CodegenOptions {
        start_ns: monotonic_ns(),
        cgroup_id_of: Some(scope::cgroup_id_of),
        ..Default::default()
    }
}

/// The scope of a run: what the generated filter checks, and the user-space side of it.
struct Scope {
    cgroups: Vec<scope::Cgroup>,
    pid_set: Option<pod::PidSet>,
    container_pid: Option<u32>,
}

fn resolve_run_scope(args: &RunArgs) -> Result<Scope, Failure> {
    let fail = |e: String| Failure(format!("error: {e}"), 1);
    let mut out = Scope {
        cgroups: Vec::new(),
        pid_set: None,
        container_pid: None,
    };
    if let Some(path) = &args.cgroup {
        out.cgroups.push(scope::resolve_cgroup(path).map_err(fail)?);
    }
    let mut targets: Vec<Vec<pod::PodTarget>> = Vec::new();
    for uid in &args.pod_uids {
        targets.push(vec![pod::PodTarget { uid: uid.clone(), container_ids: args.container_ids.clone() }]);
    }
    for pod_name in &args.pod_names {
        let (ns, name) = pod_name
            .split_once('/')
            .ok_or_else(|| Failure(format!("error: --pod takes NAMESPACE/NAME, not '{pod_name}'"), 2))?;
        targets.push(pod_names::find_pod_by_name(&args.host_logs, ns, name, &args.container_names).map_err(fail)?);
    }
    if targets.is_empty() && !args.container_ids.is_empty() {
        return Err(Failure("error: --container-id needs --pod-uid".into(), 2));
    }
    let several = targets.len() > 1;
    for candidates in targets {
        let resolved = resolve_pod(&candidates, several, &args.host_proc).map_err(fail)?;
        if let Some(note) = &resolved.note {
            eprintln!("{note}");
        }
        out.container_pid = out.container_pid.or(resolved.main_pid);
        match resolved.kind {
            pod::ScopeKind::Cgroups { cgroups, .. } => out.cgroups.extend(cgroups),
            pod::ScopeKind::Pids(set) => match &mut out.pid_set {
                Some(_) => return Err(fail("several pods without cgroup v2 are not supported in one trace".into())),
                None => out.pid_set = Some(set),
            },
        }
    }
    Ok(out)
}

/// The first candidate found on this node. With several pods in one trace, the container
/// IDs given belong to one pod or another: each pod keeps the ones it has.
fn resolve_pod(candidates: &[pod::PodTarget], several: bool, host_proc: &std::path::Path) -> Result<pod::ResolvedScope, String> {
    let mut last = String::from("no pod given");
    for target in candidates {
        let attempt = pod::resolve_scope(target, host_proc, None).or_else(|e| {
            if !several || target.container_ids.is_empty() {
                return Err(e);
            }
            let root = pod::host_cgroup2_root(host_proc).ok_or_else(|| e.clone())?;
            let mine: Vec<String> = target
                .container_ids
                .iter()
                .filter(|id| {
                    let one = pod::PodTarget { uid: target.uid.clone(), container_ids: vec![(*id).clone()] };
                    pod::find_pod_cgroups(&one, &root).is_ok()
                })
                .cloned()
                .collect();
            if mine.is_empty() {
                return Err(e);
            }
            pod::resolve_scope(&pod::PodTarget { uid: target.uid.clone(), container_ids: mine }, host_proc, None)
        });
        match attempt {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// kubectl-trace (Go) scripts use `$container_pid`: the target container's main process.
fn substitute_container_pid(src: &str, pid: Option<u32>) -> Result<String, Failure> {
    if !src.contains("$container_pid") {
        return Ok(src.to_string());
    }
    let pid = pid.ok_or_else(|| {
        Failure(
            "error: $container_pid needs a pod target (--pod-uid)".into(),
            2,
        )
    })?;
    Ok(src.replace("$container_pid", &pid.to_string()))
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let started = std::time::SystemTime::now();
    let env = Tracefs::open();
    let scope = resolve_run_scope(&args)?;
    // A compiled BPF object (ELF, e_machine 247, maybe gzip-compressed) instead of a script.
    if let Some(path) = args.script.file().as_deref() {
        if let Some(bytes) = runtime::object::read_object(path).map_err(|e| Failure(e, 2))? {
            return runtime::object::run_object(runtime::object::ObjectRun {
                path,
                bytes,
                cgroups: &scope.cgroups,
                pid_fallback: scope.pid_set.is_some(),
                container_pid: scope.container_pid,
                host_proc: &args.host_proc,
                pid: args.pid,
                uprobe_target: args.uprobe_target.as_deref(),
                sample_hz: args.sample_hz,
                deadline: args.deadline,
                format: args.format,
                output_dir: args.output_dir.as_deref(),
                trace_id: args.trace_id.as_deref(),
                target: args.target.as_deref(),
                started,
            })
            .map_err(|e| Failure(e.0, e.1));
        }
    }
    let mut opts = base_options();
    opts.cgroups = scope.cgroups.iter().map(|c| (c.id, c.level)).collect();
    opts.pid_set = scope.pid_set.is_some();
    opts.pid = args.pid;
    opts.unsafe_actions = args.unsafe_actions;
    let (name, src) = args.script.source()?;
    let src = substitute_container_pid(&src, scope.container_pid)?;
    let compiled = compile_source(&name, &src, args.script.params(), &env, opts)?;

    let run_dir = match (&args.output_dir, &args.trace_id) {
        (Some(dir), Some(id)) => Some(persist::RunDir::create(dir, id, started).map_err(|e| {
            Failure(
                format!(
                    "error: cannot create the output directory under {}: {e}",
                    dir.display()
                ),
                1,
            )
        })?),
        _ => None,
    };
    let node = std::env::var("NODE_NAME").unwrap_or_else(|_| hostname());
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| format!("node/{node}"));
    let mut meta = persist::RunMeta::new(
        args.trace_id.as_deref().unwrap_or(""),
        &target,
        &node,
        &src,
        started,
    );
    let file = match &run_dir {
        Some(dir) => {
            let _ = dir.write_meta(&meta);
            Some(
                dir.output_file()
                    .map_err(|e| Failure(format!("error: cannot open the output file: {e}"), 1))?,
            )
        }
        None => None,
    };
    let mut sink = Sink::new(args.format, file);

    let result = trace(compiled, &args, &scope, &mut sink);
    if let Some(dir) = &run_dir {
        meta.end = Some(std::time::SystemTime::now());
        let (code, lost, error) = match &result {
            Ok(lost) => (
                if sink.file_error.is_some() { 1 } else { 0 },
                *lost,
                sink.file_error
                    .as_ref()
                    .map(|e| format!("persisted output truncated: {e}")),
            ),
            Err(Failure(msg, code)) => (i32::from(*code), 0, Some(msg.clone())),
        };
        meta.exit_status = Some(code);
        meta.lost_events = lost;
        meta.error = error;
        let _ = dir.finish(&meta);
    }
    result.map(|_| ())
}

/// Load, attach, stream until the end, print the maps; returns the lost-event count.
fn trace(
    compiled: codegen::Compiled,
    args: &RunArgs,
    scope: &Scope,
    sink: &mut Sink,
) -> Result<u64, Failure> {
    let fail = |e: runtime::LoadError| Failure(format!("error: {e}"), 1);
    runtime::raise_memlock();
    let mut session = Session::load(compiled).map_err(fail)?;
    runtime::install_signal_handlers();
    let mut pid_set = scope
        .pid_set
        .as_ref()
        .map(|s| (s.clone(), args.host_proc.clone()));
    if let Some((set, _)) = &pid_set {
        session.update_pid_set(&set.pids().iter().copied().collect::<Vec<_>>(), &[]);
    }
    sink.attached(session.probe_count());
    session
        .attach(scope.cgroups.first().map(|c| c.path.as_path()))
        .map_err(fail)?;
    session.run_begin().map_err(fail)?;
    let mut tick = |s: &Session| {
        if let Some((set, proc_root)) = &mut pid_set {
            let (added, removed) = set.refresh(proc_root);
            s.update_pid_set(&added, &removed);
        }
    };
    runtime::event_loop(&mut session, sink, args.deadline, &mut tick).map_err(fail)?;
    session.detach_all();
    session.run_end().map_err(fail)?;
    runtime::drain_remaining(&mut session, sink);
    runtime::print_all_maps(&session, sink);
    if let Some(path) = &args.flamegraph {
        let what = match args.script.file() {
            Some(f) => f.display().to_string(),
            None => args.script.program.clone().unwrap_or_default(),
        };
        let title = format!("Flame Graph: {}", what.chars().take(100).collect::<String>());
        let n = flame::write_flamegraph(&session, path, &title)
            .map_err(|e| Failure(format!("error: cannot write {}: {e}", path.display()), 1))?;
        eprintln!("flame graph of {n} samples written to {}", path.display());
    }
    let lost = session.lost_events();
    if lost > 0 {
        sink.lost(lost);
    }
    Ok(lost)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn check(script: ScriptArgs, load: bool, unsafe_actions: bool) -> Result<(), Failure> {
    let env = Tracefs::open();
    let opts = CodegenOptions {
        unsafe_actions,
        ..base_options()
    };
    let compiled = compile_script(&script, &env, opts)?;
    if load {
        runtime::raise_memlock();
        let n = compiled.programs.len();
        Session::load(compiled).map_err(|e| Failure(format!("error: {e}"), 1))?;
        eprintln!(
            "{n} program{} loaded through the verifier",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

fn build(script: ScriptArgs, output: PathBuf) -> Result<(), Failure> {
    let env = Tracefs::open();
    let compiled = compile_script(&script, &env, base_options())?;
    let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
    let elf = compile::object_file::emit(&programs, &compiled.maps)
        .map_err(|e| Failure(format!("error: {e}"), 1))?;
    std::fs::write(&output, elf)
        .map_err(|e| Failure(format!("error: cannot write {}: {e}", output.display()), 1))
}

fn list(pattern: Option<String>) -> Result<(), Failure> {
    let env = Tracefs::open();
    if !env.is_available() {
        return Err(Failure(
            "error: tracefs is not available (mount -t tracefs tracefs /sys/kernel/tracing)".into(),
            1,
        ));
    }
    let pattern = pattern.map(|p| if p.contains(':') { p } else { format!("*{p}*") });
    let mut out = String::new();
    let mut names: Vec<String> = vec![
        "BEGIN".into(),
        "END".into(),
        "profile:hz:N".into(),
        "interval:s:N".into(),
        "interval:ms:N".into(),
    ];
    for (c, n) in env.all_tracepoints() {
        names.push(format!("tracepoint:{c}:{n}"));
    }
    for name in names {
        if pattern
            .as_ref()
            .is_none_or(|p| tracefs::glob_match(p, &name))
        {
            out.push_str(&name);
            out.push('\n');
        }
    }
    print!("{out}");
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(*args),
        Command::Check {
            script,
            load,
            unsafe_actions,
        } => check(script, load, unsafe_actions),
        Command::List { pattern } => list(pattern),
        Command::Build { script, output } => build(script, output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("7").unwrap(), Duration::from_secs(7));
        assert!(parse_duration("5x").is_err());
    }
}
