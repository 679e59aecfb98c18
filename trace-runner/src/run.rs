//! The `run` subcommand: resolves the scope (cgroup, pod, pid), compiles the script
//! (or hands a compiled object to [`crate::runtime::object`]), sets up persisted output,
//! then loads, attaches, streams events until the end and prints the maps.

pub(crate) use crate::uprobes::resolve_program;

use crate::cli::{Failure, RunArgs};
use crate::commands::{base_options, compile_source, load_failure};
use crate::compile::codegen;
use crate::compile::verifier::ProgramFacts;
use crate::run_record::{RecordSpec, RunOutput};
use crate::runtime::{self, Session};
use crate::sink::Sink;
use crate::sys::{process, signal};
use crate::tracefs::Tracefs;
use crate::{flame, persist, pod, pod_names, scope};
use trace_contract::exit;

/// The scope of a run: what the generated filter checks, and the user-space side of it.
struct Scope {
    cgroups: Vec<scope::Cgroup>,
    pid_set: Option<pod::PidSet>,
    container_pid: Option<u32>,
}

fn resolve_run_scope(args: &RunArgs) -> Result<Scope, Failure> {
    let fail = |e: String| Failure(format!("error: {e}"), exit::FAILURE);
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
        targets.push(vec![pod::PodTarget {
            uid: uid.clone(),
            container_ids: args.container_ids.clone(),
        }]);
    }
    for pod_name in &args.pod_names {
        let (ns, name) = pod_name.split_once('/').ok_or_else(|| {
            Failure(
                format!("error: --pod takes NAMESPACE/NAME, not '{pod_name}'"),
                exit::SCRIPT,
            )
        })?;
        targets.push(
            pod_names::find_pod_by_name(&args.host_logs, ns, name, &args.container_names)
                .map_err(fail)?,
        );
    }
    if targets.is_empty() && !args.container_ids.is_empty() {
        return Err(Failure(
            "error: --container-id needs --pod-uid".into(),
            exit::SCRIPT,
        ));
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
                Some(_) => {
                    return Err(fail(
                        "several pods without cgroup v2 are not supported in one trace".into(),
                    ))
                }
                None => out.pid_set = Some(set),
            },
        }
    }
    Ok(out)
}

/// The first candidate found on this node. With several pods in one trace, the container
/// IDs given belong to one pod or another: each pod keeps the ones it has.
fn resolve_pod(
    candidates: &[pod::PodTarget],
    several: bool,
    host_proc: &std::path::Path,
) -> Result<pod::ResolvedScope, String> {
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
                    let one = pod::PodTarget {
                        uid: target.uid.clone(),
                        container_ids: vec![(*id).clone()],
                    };
                    pod::find_pod_cgroups(&one, &root).is_ok()
                })
                .cloned()
                .collect();
            if mine.is_empty() {
                return Err(e);
            }
            pod::resolve_scope(
                &pod::PodTarget {
                    uid: target.uid.clone(),
                    container_ids: mine,
                },
                host_proc,
                None,
            )
        });
        match attempt {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Arguments that are wrong whatever the script: `--pid` 0 or of no process (under
/// `--host-proc`), and a `--trace-id` that cannot name a directory. A malformed value
/// exits 2 (as clap's usage errors and `--pod` without `/` do); a process that is not
/// there exits 1 (as a `--cgroup` or pod that is not there does).
fn check_args(args: &RunArgs) -> Result<(), Failure> {
    if let Some(id) = &args.trace_id {
        if let Some(why) = persist::trace_id_problem(id) {
            return Err(Failure(
                format!("error: invalid --trace-id {id:?}: {why}"),
                exit::SCRIPT,
            ));
        }
    }
    match args.pid {
        Some(0) => Err(Failure(
            "error: --pid 0 is not a process (give the ID of a running process)".into(),
            exit::SCRIPT,
        )),
        Some(pid) if !args.host_proc.join(pid.to_string()).exists() => Err(Failure(
            format!(
                "error: --pid {pid}: no such process (nothing at {})",
                args.host_proc.join(pid.to_string()).display()
            ),
            exit::FAILURE,
        )),
        _ => Ok(()),
    }
}

pub(crate) fn run(args: RunArgs) -> Result<(), Failure> {
    let started = std::time::SystemTime::now();
    check_args(&args)?;
    if args.command.is_some() && args.pid.is_some() {
        return Err(Failure(
            "error: -c/--command and --pid exclude each other".into(),
            exit::SCRIPT,
        ));
    }
    // `-o FILE`: everything the run prints to stdout (system()'s output too) goes to FILE
    // but the blank lines before the maps at exit, left on the original stdout as bpftrace
    // leaves them.
    let saved_stdout = match &args.output {
        Some(path) => Some(redirect_stdout(path)?),
        None => None,
    };
    let child = match &args.command {
        Some(cmd) => Some(HeldChild::spawn(cmd)?),
        None => None,
    };
    let env = Tracefs::open();
    let scope = resolve_run_scope(&args)?;
    // USDT files are found in the traced process's filesystem: `-p`, or a pod's container.
    // Without `-p`, absolute uprobe and usdt paths, wildcard file names and library names
    // name the container's files, then the node's (not with `-c`, whose command runs here).
    let roots = match args.pid {
        Some(_) => crate::uprobes::Roots::default(),
        None => crate::uprobes::Roots {
            container: scope
                .container_pid
                .map(|pid| pod::container_root(&args.host_proc, pid)),
            node: match args.command {
                Some(_) => None,
                None => crate::uprobes::node_root(&args.host_proc),
            },
        },
    };
    env.set_usdt_scope(crate::usdt::UsdtScope {
        pid: args.pid.or(scope.container_pid),
        roots,
        command: match (&child, &args.command) {
            (Some(_), Some(cmd)) => crate::uprobes::resolve_program(
                &split_command(cmd)[0],
                std::env::var("PATH").ok().as_deref(),
            )
            .ok(),
            _ => None,
        },
    });
    // Function watchpoints probe the binary of `-c` (named as found) or of `-p`.
    env.set_traced_binary(match (&child, args.pid) {
        (Some(_), _) => args.command.as_deref().and_then(|cmd| {
            let path = crate::uprobes::resolve_program(
                &split_command(cmd)[0],
                std::env::var("PATH").ok().as_deref(),
            )
            .ok()?;
            let path = path.to_string_lossy().into_owned();
            Some((path.clone(), path))
        }),
        (None, Some(pid)) => {
            let exe = format!("/proc/{pid}/exe");
            Some((exe.clone(), exe))
        }
        _ => None,
    });
    // A compiled BPF object (ELF, e_machine 247, maybe gzip-compressed) instead of a script.
    if let Some(path) = args.script.file().as_deref() {
        if let Some(bytes) =
            runtime::object::read_object(path).map_err(|e| Failure(e, exit::SCRIPT))?
        {
            if args.emit_maps {
                return Err(Failure(
                    format!(
                        "error: --{} applies to scripts; a compiled object's maps have no script types to write",
                        trace_contract::args::flag::EMIT_MAPS
                    ),
                    exit::FAILURE,
                ));
            }
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
    opts.helper_checks = args.helper_checks;
    opts.cpid = child.as_ref().map(|c| c.pid);
    let (name, src) = args.script.source()?;
    let predefined = trace_lang::Predefined {
        params: args.script.params().to_vec(),
        container_pid: scope.container_pid,
    };
    let compiled = compile_source(&name, &src, &predefined, &env, opts)?;
    if compiled.programs.is_empty() {
        return Err(Failure(
            "error: nothing to trace: every attach point was skipped (see the warnings above)"
                .into(),
            exit::FAILURE,
        ));
    }
    // Stopped before anything was loaded: nothing ran, nothing to print or record.
    if runtime::stop_requested() {
        return Ok(());
    }

    let mut output = RunOutput::open(
        args.format,
        &compiled.user_maps,
        RecordSpec {
            persist: args.output_dir.as_deref().zip(args.trace_id.as_deref()),
            target: args.target.as_deref(),
            program: src.as_bytes(),
            started,
        },
    )
    .map_err(|(msg, code)| Failure(msg, code))?;
    output.sink.exit_separator_fd = saved_stdout;

    let attached = Attached {
        notify: args.notify_attached,
        child,
    };
    // A load the kernel refuses at one of its limits is located in the script, as by
    // `check --load`.
    let facts = ProgramFacts::of(&compiled.programs);
    let load_failure = |e: &runtime::LoadError| load_failure(&e.to_string(), &facts, &name, &src);
    let result = trace(
        compiled,
        &args,
        &scope,
        &mut output.sink,
        attached,
        &load_failure,
    );
    // The output volume filled up (or failed) mid-run. The trace goes on to stdout: that
    // is the live stream users watch (`kubectl trace logs -f`, the pod's log), and stopping
    // would lose the rest of it too, while the persisted copy is only an archive of the same
    // lines. But the run did not do all it was asked, so it fails: exit status 1, and
    // meta.json says `failed` with exit status 1 and why (both come from `run_outcome`).
    output
        .finish(result.map_err(|Failure(msg, code)| (msg, code)))
        .map_err(|(msg, code)| Failure(msg, code))
}

/// Load, attach, stream until the end, print the maps; returns the lost-event count.
fn trace(
    compiled: codegen::Compiled,
    args: &RunArgs,
    scope: &Scope,
    sink: &mut Sink,
    mut attached: Attached,
    load_failure: &dyn Fn(&runtime::LoadError) -> Failure,
) -> Result<u64, Failure> {
    let fail = |e: runtime::LoadError| Failure(format!("error: {e}"), exit::FAILURE);
    runtime::raise_memlock();
    // A stop while loading or attaching may surface as a failed syscall (the verifier
    // gives up with EAGAIN when a signal is pending): it is a stop, not an error. Until
    // the probes are attached the run ends quietly (the programs go with the session).
    let stopped = runtime::stop_requested;
    let mut session = match Session::load(compiled) {
        Ok(s) => s,
        Err(_) if stopped() => return Ok(0),
        Err(e) => return Err(load_failure(&e)),
    };
    if stopped() {
        return Ok(0);
    }
    let mut pid_set = scope
        .pid_set
        .as_ref()
        .map(|s| (s.clone(), args.host_proc.clone()));
    if let Some((set, _)) = &pid_set {
        session.update_pid_set(&set.pids().iter().copied().collect::<Vec<_>>(), &[]);
    }
    if !args.quiet {
        sink.attached(session.probe_count());
    }
    // BEGIN runs before the other probes are attached, as in bpftrace 0.17: an interval
    // of 1 s then sees at least 1 s since BEGIN (`BEGIN { @t = nsecs }`). Its output is
    // printed by the event loop, so after every probe is attached.
    session.run_begin().map_err(fail)?;
    match session.attach(scope.cgroups.first().map(|c| c.path.as_path())) {
        Ok(()) => {}
        Err(_) if stopped() => return Ok(0),
        Err(e) => return Err(fail(e)),
    }
    if attached.notify {
        // On stderr, whatever -q and -o say, as bpftrace 0.17 prints it.
        sink.flush();
        eprintln!("__BPFTRACE_NOTIFY_PROBES_ATTACHED");
    }
    // From here on a stop is handled as at any later moment: the event loop returns at
    // once, END runs and the maps print.
    let child = &mut attached.child;
    let mut tick = |s: &Session| {
        // `-c`: the command runs once the probes are attached and BEGIN's output is out;
        // its exit ends the run.
        if let Some(c) = child.as_mut().filter(|c| !c.released()) {
            c.release();
        }
        if let Some((set, proc_root)) = &mut pid_set {
            let (added, removed) = set.refresh(proc_root);
            s.update_pid_set(&added, &removed);
        }
    };
    let reason = runtime::event_loop(&mut session, sink, args.deadline, &mut tick).map_err(fail)?;
    session.detach_all();
    if reason == runtime::StopReason::Exit {
        // As bpftrace: what the probes sent after exit() is not printed (a 1 ms interval
        // that calls exit() prints once), END's output is.
        runtime::discard_pending(&mut session);
    } else {
        // A signal or the deadline: what is queued, as long as it takes at most a second
        // (see `drain_queued`), then END.
        runtime::drain_queued(&mut session, sink, std::time::Duration::from_secs(1));
    }
    // The run ended first (exit(), a signal, the deadline): the command is stopped.
    drop(attached.child.take());
    session.run_end().map_err(fail)?;
    runtime::drain_remaining(&mut session, sink);
    runtime::print_all_maps(&session, sink);
    if args.emit_maps {
        runtime::emit_maps_line(&session, sink);
    }
    if let Some(path) = &args.flamegraph {
        let what = match args.script.file() {
            Some(f) => f.display().to_string(),
            None => args.script.program.clone().unwrap_or_default(),
        };
        let title = format!(
            "Flame Graph: {}",
            what.chars().take(100).collect::<String>()
        );
        let n = flame::write_flamegraph(
            &session.compiled.user_maps,
            runtime::read_all_maps(&session),
            path,
            &title,
        )
        .map_err(|e| {
            Failure(
                format!("error: cannot write {}: {e}", path.display()),
                exit::FAILURE,
            )
        })?;
        eprintln!("flame graph of {n} samples written to {}", path.display());
    }
    let lost = session.lost_events();
    if lost > 0 {
        sink.lost(lost);
    }
    sink.flush();
    Ok(lost)
}

/// What happens once the probes are attached: the notification line, the held command.
struct Attached {
    notify: bool,
    child: Option<HeldChild>,
}

/// Point stdout at `path` (created or truncated); returns a copy of the original stdout.
fn redirect_stdout(path: &std::path::Path) -> Result<i32, Failure> {
    let file = std::fs::File::create(path).map_err(|e| {
        Failure(
            format!("error: cannot open {}: {e}", path.display()),
            exit::FAILURE,
        )
    })?;
    crate::sys::stdio::redirect_stdout(&file).map_err(|e| {
        Failure(
            format!("error: cannot write to {}: {e}", path.display()),
            exit::FAILURE,
        )
    })
}

/// The command of `-c`, forked at once and held before `execv` until [`HeldChild::release`]
/// (so that `cpid` is known when the program is compiled and nothing of the command runs
/// before the probes are attached, as bpftrace does). Dropped before release, or while
/// still running, it is sent SIGTERM and reaped.
struct HeldChild {
    pid: u32,
    /// The write end of the pipe the child waits on (-1 once released).
    go: i32,
    /// Set by the waiter thread when the command has exited.
    exited: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl HeldChild {
    fn spawn(cmd: &str) -> Result<HeldChild, Failure> {
        use std::ffi::CString;
        let words = split_command(cmd);
        let fail = |m: String| {
            Failure(
                format!("error: cannot start the command of -c: {m}"),
                exit::FAILURE,
            )
        };
        let program =
            resolve_program(&words[0], std::env::var("PATH").ok().as_deref()).map_err(fail)?;
        let path = CString::new(program.as_os_str().as_encoded_bytes())
            .map_err(|_| fail("a NUL byte in the command".into()))?;
        let argv: Vec<CString> = words
            .iter()
            .map(|w| CString::new(w.as_bytes()))
            .collect::<Result<_, _>>()
            .map_err(|_| fail("a NUL byte in the command".into()))?;
        let held = process::spawn_held(&path, &argv).map_err(|e| fail(e.to_string()))?;
        Ok(HeldChild {
            pid: held.pid as u32,
            go: held.go,
            exited: Default::default(),
        })
    }

    fn released(&self) -> bool {
        self.go < 0
    }

    /// Let the command exec, and end the run when it exits.
    fn release(&mut self) {
        let pid = self.pid as i32;
        let exited = self.exited.clone();
        std::thread::spawn(move || {
            process::wait(pid);
            exited.store(true, std::sync::atomic::Ordering::SeqCst);
            runtime::request_stop();
        });
        process::release(self.go);
        self.go = -1;
    }
}

impl Drop for HeldChild {
    fn drop(&mut self) {
        let pid = self.pid as i32;
        if self.go >= 0 {
            // Never released: closing the pipe makes it exit without running the command.
            process::cancel(self.go);
            process::wait(pid);
            return;
        }
        let exited = &self.exited;
        if !exited.load(std::sync::atomic::Ordering::SeqCst) {
            // Our own child (the waiter thread reaps it).
            signal::kill(pid, signal::SIGTERM);
            for _ in 0..200 {
                if exited.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}

/// Split `-c`'s command as bpftrace 0.17 does: on single spaces, no quoting (two spaces
/// make an empty argument), the first word being the program.
pub(crate) fn split_command(cmd: &str) -> Vec<String> {
    cmd.split(' ').map(str::to_string).collect()
}
