//! Loading and running: hands the compiled object to aya, loads every program
//! through the verifier, attaches them, runs BEGIN, streams events until the end
//! (exit(), a signal or the deadline), runs END and prints the maps.

mod actions;
/// The map and test-run commands, under their old name (`stacks.rs` uses it).
pub(crate) use crate::sys::bpf as bpf_sys;
pub mod elf_check;
#[cfg(test)]
mod elf_check_fuzz;
pub use crate::sys::fentry;
pub mod kattach;
pub mod kfuncs;
pub mod maps;
pub mod object;
pub mod object_btf;
pub use crate::sys::uprobe as uattach;
mod watch;

use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::time::{Duration, Instant};

use aya::maps::{Map, MapData, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{
    CgroupAttachMode, CgroupSkb, CgroupSkbAttachType, KProbe, PerfEvent, ProgramError,
    RawTracePoint, TracePoint, UProbe,
};
use aya::{Ebpf, EbpfLoader};

use crate::abi::{Attach, Compiled, EventKind, PrintfAction};
use crate::compile::object_file;
use crate::output::{self, Val};
use crate::sink::Sink;
use crate::sys::signal;

/// How often the event loop looks at the ring buffer while events flow, and at most
/// how long it sleeps while none do.
const POLL_MS: u64 = 5;
const IDLE_POLL_MS: u64 = 40;

/// Set once a kprobe_multi link failed: the kernel has none (or cannot take these
/// functions), and later wildcards go straight to one perf event per function.
static MULTI_FAILED: AtomicBool = AtomicBool::new(false);

/// Set by SIGINT/SIGTERM.
static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that set [`STOP`] (0: none yet).
static STOP_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// Set by SIGUSR1: print every map now, as bpftrace does, and keep running.
static PRINT_MAPS: AtomicBool = AtomicBool::new(false);

extern "C" fn on_usr1(_: std::ffi::c_int) {
    PRINT_MAPS.store(true, Ordering::SeqCst);
}

extern "C" fn on_signal(sig: std::ffi::c_int) {
    STOP_SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Ask for a stop, as SIGINT does (the command of `-c` has exited).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

/// Whether SIGINT or SIGTERM asked for a stop.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Route SIGINT and SIGTERM to a clean stop. `main` calls this before anything else: a
/// signal that comes before the handler exists is lost or fatal, and both are wrong for a
/// tracer. Without a handler, the default action kills the runner (no END, no maps); and
/// where the default action does not apply, the signal is simply dropped and nothing ever
/// stops the run: as PID 1 of a container (the kernel drops signals that the namespace's
/// init has no handler for, so an early SIGTERM from the kubelet vanished and the pod
/// hung until it was killed), or started as a background job by a non-interactive shell
/// (`trace-runner run ... &`: SIGINT is inherited as ignored). The handlers also replace an
/// inherited "ignore", and the two signals are unblocked in case the parent had blocked
/// them (a signal already pending is then handled at once).
///
/// SA_RESTART: reads and writes interrupted by the signal are restarted; `poll` in the
/// event loop is not (it returns early, and the loop sees the flag).
pub fn install_signal_handlers() {
    // The handlers only store to atomics, which is async-signal-safe.
    signal::install(on_signal, &[signal::SIGINT, signal::SIGTERM]);
    signal::install(on_usr1, &[signal::SIGUSR1]);
}

/// For the subcommands that load nothing (check, build, list): give SIGINT and SIGTERM
/// their default action back, and if one already came, act on it now.
pub fn release_signal_handlers() {
    signal::set_default(signal::SIGINT);
    signal::set_default(signal::SIGTERM);
    signal::set_default(signal::SIGUSR1);
    let sig = STOP_SIGNAL.load(Ordering::SeqCst);
    if sig != 0 {
        signal::raise(sig);
    }
}

/// Failure to raise RLIMIT_MEMLOCK is only a warning: kernels >= 5.11 account BPF
/// memory to the memory cgroup instead.
pub fn raise_memlock() {
    if let Err(e) = crate::sys::rlimit::raise_memlock() {
        if std::env::var_os("TRACE_RUNNER_DEBUG").is_some() {
            eprintln!("warning: cannot raise RLIMIT_MEMLOCK ({e}); continuing");
        }
    }
}

/// Detach and unload one program.
fn unload(attach: &Attach, prog: &mut aya::programs::Program) {
    let _ = match attach {
        // Loaded outside aya (see `fentry`): closing the fds unloads them.
        Attach::Begin | Attach::End | Attach::Fentry { .. } => Ok(()),
        Attach::RawTracepoint { .. } => {
            <&mut RawTracePoint>::try_from(prog).and_then(|x| x.unload())
        }
        Attach::Tracepoint { .. } => <&mut TracePoint>::try_from(prog).and_then(|x| x.unload()),
        Attach::Kprobe { .. } => <&mut KProbe>::try_from(prog).and_then(|x| x.unload()),
        Attach::Uprobe { .. } | Attach::Usdt { .. } | Attach::WatchpointSetup { .. } => {
            <&mut UProbe>::try_from(prog).and_then(|x| x.unload())
        }
        Attach::Profile { .. }
        | Attach::Interval { .. }
        | Attach::PerfCounter { .. }
        | Attach::Watchpoint { .. } => <&mut PerfEvent>::try_from(prog).and_then(|x| x.unload()),
        Attach::CgroupSkb { .. } => <&mut CgroupSkb>::try_from(prog).and_then(|x| x.unload()),
    };
}

/// An `EbpfLoader` that has not parsed the kernel's BTF.
///
/// aya 0.14's `EbpfLoader::new()` always parses `/sys/kernel/btf/vmlinux` (9 MB here): 18 ms
/// and 18 MB of peak memory, most of a script's start-up, for objects that carry no CO-RE
/// relocations and never use it. So the loader is created in a private, throw-away mount
/// namespace where that file is empty, and the process then returns to its own namespace.
/// Any failure along the way (not privileged, multi-threaded) falls back to the plain path.
fn loader_without_kernel_btf() -> EbpfLoader<'static> {
    crate::sys::mount::with_file_hidden(c"/sys/kernel/btf/vmlinux", EbpfLoader::new)
}

/// A loaded (not yet attached) script.
pub struct Session {
    ebpf: Ebpf,
    pub compiled: Compiled,
    map_fds: Vec<RawFd>,
    /// Program fds of BEGIN and END blocks, run with BPF_PROG_TEST_RUN.
    begin: Vec<RawFd>,
    end: Vec<RawFd>,
    /// The `events` ring buffer carrying printf and async actions.
    ring: RingBuf<MapData>,
    /// Keyless maps that `zero()` reset: they print (as zero) even if never touched again.
    pub zeroed: std::collections::HashSet<usize>,
    /// The functions each kprobe program (by program name) attaches to.
    kprobe_funcs: std::collections::HashMap<String, Vec<String>>,
    /// The kprobe perf events and fentry links attached (closing one detaches it).
    kprobe_links: Vec<std::os::fd::OwnedFd>,
    /// The kfunc programs (by program name), loaded outside aya (see [`fentry`]).
    fentry_progs: std::collections::HashMap<String, std::os::fd::OwnedFd>,
    /// The breakpoints of function watchpoints set so far.
    watches: watch::Watches,
}

/// What the loader says when something fails, already worded for the user.
#[derive(Debug)]
pub struct LoadError(pub String);

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn map_data(map: &Map) -> Option<&MapData> {
    Some(match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::HashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::RingBuf(d)
        | Map::StackTraceMap(d)
        | Map::Unsupported(d) => d,
        _ => return None,
    })
}

/// The last lines of a verifier log: where the kernel says what it rejected.
pub fn verifier_log_tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

fn verifier_error(probe: &str, e: ProgramError) -> LoadError {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let tail = verifier_log_tail(&verifier_log.to_string());
            LoadError(format!(
                "the kernel's verifier rejected {probe}: {io_error}\nverifier log (end):\n{tail}"
            ))
        }
        other => LoadError(format!("cannot load {probe}: {}", error_chain(&other))),
    }
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = inner.source();
    }
    s
}

/// The functions a kprobe attach point expands to on this node (see [`kfuncs`]). Where
/// nothing can be said (no kprobes, no tracefs), the function as written. A point that
/// expands to nothing was already reported and dropped by analysis, through
/// [`crate::tracefs::Tracefs`], so it is skipped quietly here; a function the kernel then
/// refuses to probe is skipped with a warning at attach time.
fn kprobe_targets(probe_name: &str, func: &str, ret: bool) -> Result<Vec<String>, LoadError> {
    let Some(list) = kfuncs::FuncList::system() else {
        // No list of probe-able functions (no kprobes, no tracefs): a function the
        // kernel does not have at all is skipped with bpftrace's warning.
        if !func.contains('*') && crate::symbols::kernel_function_listed(func) == Some(false) {
            eprintln!("{}", kfuncs::skip_warning(ret, None, func));
            return Ok(Vec::new());
        }
        return Ok(vec![func.to_string()]);
    };
    let (module, _) = kfuncs::split_probe_name(probe_name);
    match list.expand(ret, module, func) {
        kfuncs::Expansion::Funcs(f) => Ok(kfuncs::qualify(module, f)),
        kfuncs::Expansion::Unlisted(name) => Ok(kfuncs::qualify(module, vec![name])),
        kfuncs::Expansion::Banned(why) => Err(LoadError(why)),
    }
}

/// The perf breakpoint of `watchpoint:ADDR:LEN:MODE` (`None` for a length or mode
/// the analysis refuses).
fn watchpoint_config(
    address: u64,
    len: u64,
    mode: &str,
) -> Option<aya::programs::perf_event::BreakpointConfig> {
    use aya::programs::perf_event::{BreakpointConfig, PerfBreakpointLength, PerfBreakpointType};
    if mode == "x" {
        return Some(BreakpointConfig::Instruction { address });
    }
    let r#type = match (mode.contains('r'), mode.contains('w')) {
        (true, true) => PerfBreakpointType::ReadWrite,
        (true, false) => PerfBreakpointType::Read,
        (false, true) => PerfBreakpointType::Write,
        (false, false) => return None,
    };
    let length = match len {
        1 => PerfBreakpointLength::Len1,
        2 => PerfBreakpointLength::Len2,
        4 => PerfBreakpointLength::Len4,
        8 => PerfBreakpointLength::Len8,
        _ => return None,
    };
    Some(BreakpointConfig::Data {
        r#type,
        address,
        length,
    })
}

/// Whether the kernel runs the programs on one attach point of this kind newest first
/// (kprobes, uprobes, fentry, software perf events): those are attached in reverse
/// script order so that, as in bpftrace, the blocks of one event run in the order the
/// script gives them.
fn runs_newest_first(a: &Attach) -> bool {
    matches!(
        a,
        Attach::Kprobe { .. }
            | Attach::Fentry { .. }
            | Attach::Uprobe { .. }
            | Attach::Usdt { .. }
            | Attach::PerfCounter {
                hardware: false,
                ..
            }
    )
}

/// The order to attach programs in: script order, except that the programs on one
/// attach point the kernel runs newest first are attached in reverse among themselves
/// (each group keeps the slots it has, so different points still attach in script
/// order).
fn attach_order(attaches: &[&Attach]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..attaches.len()).collect();
    let mut groups: std::collections::HashMap<String, Vec<usize>> = Default::default();
    for (i, a) in attaches.iter().enumerate() {
        if runs_newest_first(a) {
            groups.entry(format!("{a:?}")).or_default().push(i);
        }
    }
    for slots in groups.values() {
        for (slot, i) in slots.iter().zip(slots.iter().rev()) {
            order[*slot] = *i;
        }
    }
    order
}

/// The running kernel's release (`uname -r`).
fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Why nothing loads on a kernel without the BPF ring buffer, which carries every
/// printf and event from the kernel (no perf-buffer fallback: see
/// docs/kernel-support.md).
pub fn no_ringbuf_message(release: &str) -> String {
    format!(
        "this kernel ({release}) has no BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8 and later), which trace-runner needs for its output; use a node with Linux 5.8 or later"
    )
}

/// Load a kfunc/kretfunc program (see [`fentry`]) on `func` of `module`'s BTF.
fn load_fentry(
    p: &crate::compile::codegen::CompiledProgram,
    module: &str,
    func: &str,
    ret: bool,
    map_fds: &[RawFd],
) -> Result<std::os::fd::OwnedFd, LoadError> {
    let name = &p.probe_name;
    let types = if module == "vmlinux" {
        crate::btf::kernel()
    } else {
        crate::btf::module(module)
    };
    let Some(types) = types else {
        return Err(LoadError(format!(
            "cannot load {name}: no BTF for {module} (/sys/kernel/btf/{module})"
        )));
    };
    let btf_id = types.func_id(func).ok_or_else(|| {
        LoadError(format!(
            "cannot load {name}: {func} is not a function of {module}'s BTF"
        ))
    })?;
    let btf_obj = if module == "vmlinux" {
        None
    } else {
        Some(fentry::module_btf_fd(module).map_err(|e| {
            LoadError(format!(
                "cannot load {name}: cannot find the kernel's BTF object of module {module}: {e}"
            ))
        })?)
    };
    let code: Vec<[u8; 8]> = p.code.insns.iter().map(|i| i.to_bytes()).collect();
    let insns = kattach::relocate(&code, &p.code.map_relocs, map_fds);
    fentry::load(&insns, ret, btf_id, btf_obj.as_ref().map(|f| f.as_raw_fd())).map_err(
        |(e, log)| {
            if log.is_empty() {
                LoadError(format!(
                    "cannot load {name}: {e} (does this kernel support kfunc/fentry programs? `trace-runner bpftrace --info` says)"
                ))
            } else {
                LoadError(format!(
                    "the kernel's verifier rejected {name}: {e}\nverifier log (end):\n{}",
                    verifier_log_tail(&log)
                ))
            }
        },
    )
}

impl Session {
    /// Create the maps and load every program through the verifier.
    pub fn load(mut compiled: Compiled) -> Result<Session, LoadError> {
        let mut kprobe_funcs = std::collections::HashMap::new();
        for p in &compiled.programs {
            if let Attach::Kprobe { func, ret } = &p.attach {
                kprobe_funcs.insert(
                    p.code.name.clone(),
                    kprobe_targets(&p.probe_name, func, *ret)?,
                );
            }
        }
        compiled
            .programs
            .retain(|p| kprobe_funcs.get(&p.code.name).is_none_or(|f| !f.is_empty()));
        if !kprobe_funcs.is_empty() && compiled.programs.is_empty() {
            return Err(LoadError(
                "nothing to trace: every attach point was skipped (see the warnings above)".into(),
            ));
        }
        let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
        let elf = object_file::emit(&programs, &compiled.maps).map_err(LoadError)?;
        let mut ebpf = loader_without_kernel_btf()
            .btf(None)
            .load(&elf)
            .map_err(|e| {
                if crate::sys::bpf::ringbuf_ok() {
                    LoadError(format!("cannot create BPF maps: {}", error_chain(&e)))
                } else {
                    LoadError(no_ringbuf_message(&kernel_release()))
                }
            })?;
        let mut map_fds = Vec::new();
        for def in &compiled.maps {
            let map = ebpf
                .map(&def.name)
                .ok_or_else(|| LoadError(format!("internal error: map {} missing", def.name)))?;
            let data = map_data(map).ok_or_else(|| {
                LoadError(format!(
                    "internal error: map {} of unexpected type",
                    def.name
                ))
            })?;
            map_fds.push(data.fd().as_fd().as_raw_fd());
        }
        if let Some(i) = compiled.stack_map {
            crate::stacks::register_map(map_fds[i], bpf_sys::lookup);
        }
        let ring_map = ebpf
            .take_map("events")
            .ok_or_else(|| LoadError("internal error: no events map".into()))?;
        let ring = RingBuf::try_from(ring_map)
            .map_err(|e| LoadError(format!("cannot open the event ring: {e}")))?;
        let mut begin = Vec::new();
        let mut end = Vec::new();
        let mut fentry_progs = std::collections::HashMap::new();
        for p in &compiled.programs {
            // Each program may take the verifier a while: a stop ends the load here.
            if stop_requested() {
                return Err(LoadError("stopped by a signal while loading".into()));
            }
            let prog = ebpf.program_mut(&p.code.name).ok_or_else(|| {
                LoadError(format!(
                    "internal error: program for {} missing",
                    p.probe_name
                ))
            })?;
            let name = &p.probe_name;
            if let Attach::Fentry { module, func, ret } = &p.attach {
                let fd = load_fentry(p, module, func, *ret, &map_fds)?;
                fentry_progs.insert(p.code.name.clone(), fd);
                continue;
            }
            let r = match &p.attach {
                Attach::Fentry { .. } => Ok(()),
                Attach::Begin | Attach::End | Attach::RawTracepoint { .. } => {
                    let rt: &mut RawTracePoint =
                        prog.try_into().map_err(|e| verifier_error(name, e))?;
                    rt.load().and_then(|_| {
                        let fd = rt.fd()?.as_fd().as_raw_fd();
                        match p.attach {
                            Attach::Begin => begin.push(fd),
                            Attach::End => end.push(fd),
                            _ => {}
                        }
                        Ok(())
                    })
                }
                Attach::Tracepoint { .. } => {
                    let tp: &mut TracePoint =
                        prog.try_into().map_err(|e| verifier_error(name, e))?;
                    tp.load()
                }
                Attach::Kprobe { .. } => {
                    let kp: &mut KProbe = prog.try_into().map_err(|e| verifier_error(name, e))?;
                    kp.load()
                }
                Attach::Uprobe { .. } | Attach::Usdt { .. } | Attach::WatchpointSetup { .. } => {
                    let up: &mut UProbe = prog.try_into().map_err(|e| verifier_error(name, e))?;
                    up.load()
                }
                Attach::Profile { .. }
                | Attach::Interval { .. }
                | Attach::PerfCounter { .. }
                | Attach::Watchpoint { .. } => {
                    let pe: &mut PerfEvent =
                        prog.try_into().map_err(|e| verifier_error(name, e))?;
                    pe.load()
                }
                Attach::CgroupSkb { .. } => {
                    let skb: &mut CgroupSkb =
                        prog.try_into().map_err(|e| verifier_error(name, e))?;
                    skb.load()
                }
            };
            r.map_err(|e| verifier_error(name, e))?;
        }
        Ok(Session {
            ebpf,
            compiled,
            map_fds,
            begin,
            end,
            ring,
            zeroed: Default::default(),
            kprobe_funcs,
            kprobe_links: Vec::new(),
            fentry_progs,
            watches: Default::default(),
        })
    }

    /// Number of attach points, as bpftrace counts them for "Attaching N probes...".
    pub fn probe_count(&self) -> usize {
        self.compiled
            .programs
            .iter()
            .map(|p| {
                self.kprobe_funcs
                    .get(&p.code.name)
                    .map_or(p.points, Vec::len)
            })
            .sum()
    }

    /// Attach every program (BEGIN/END excepted); `cgroup_dir` is where cgroup programs go.
    pub fn attach(&mut self, cgroup_dir: Option<&std::path::Path>) -> Result<(), LoadError> {
        let cpus =
            aya::util::online_cpus().map_err(|(what, e)| LoadError(format!("{what}: {e}")))?;
        let attaches: Vec<&Attach> = self.compiled.programs.iter().map(|p| &p.attach).collect();
        for i in attach_order(&attaches) {
            let p = &self.compiled.programs[i];
            if stop_requested() {
                return Err(LoadError("stopped by a signal while attaching".into()));
            }
            let prog = self.ebpf.program_mut(&p.code.name).ok_or_else(|| {
                LoadError(format!(
                    "internal error: program for {} missing",
                    p.probe_name
                ))
            })?;
            let fail = |e: ProgramError| {
                LoadError(format!(
                    "cannot attach {}: {}",
                    p.probe_name,
                    error_chain(&e)
                ))
            };
            match &p.attach {
                Attach::Begin | Attach::End => {}
                Attach::Fentry { .. } => {
                    let Some(prog) = self.fentry_progs.get(&p.code.name) else {
                        continue;
                    };
                    match fentry::attach(prog.as_raw_fd()) {
                        Ok(link) => self.kprobe_links.push(link),
                        Err(e) => {
                            eprintln!(
                                "WARNING: could not attach probe {}, skipping.",
                                p.probe_name
                            );
                            if std::env::var_os("TRACE_RUNNER_DEBUG").is_some() {
                                eprintln!("{}: BPF_RAW_TRACEPOINT_OPEN: {e}", p.probe_name);
                            }
                        }
                    }
                }
                Attach::Tracepoint { category, name } => {
                    let tp: &mut TracePoint = prog.try_into().map_err(fail)?;
                    tp.attach(category, name).map_err(fail)?;
                }
                Attach::RawTracepoint { name } => {
                    let rt: &mut RawTracePoint = prog.try_into().map_err(fail)?;
                    rt.attach(name).map_err(fail)?;
                }
                Attach::Kprobe { ret, .. } => {
                    let kp: &mut KProbe = prog.try_into().map_err(fail)?;
                    let prog_fd = kp.fd().map_err(fail)?.as_fd().as_raw_fd();
                    let Some(pmu) = kattach::KprobePmu::system() else {
                        return Err(LoadError(format!(
                            "cannot attach {}: this kernel has no kprobes (CONFIG_KPROBES is off); the program passed the verifier, but only tracepoints, raw tracepoints, uprobes and perf events can attach here (see `trace-runner list`)",
                            p.probe_name
                        )));
                    };
                    let funcs = self
                        .kprobe_funcs
                        .get(&p.code.name)
                        .map(Vec::as_slice)
                        .unwrap_or_default();
                    if funcs.len() > 1 && !MULTI_FAILED.load(Ordering::Relaxed) {
                        let code: Vec<[u8; 8]> =
                            p.code.insns.iter().map(|i| i.to_bytes()).collect();
                        let insns = kattach::relocate(&code, &p.code.map_relocs, &self.map_fds);
                        // kprobe_multi resolves bare names (in the kernel, then modules).
                        let bare: Vec<String> = funcs
                            .iter()
                            .map(|f| kfuncs::unqualified(f).to_string())
                            .collect();
                        match kattach::attach_multi(&insns, &bare, *ret) {
                            Ok(fds) => {
                                self.kprobe_links.extend(fds);
                                continue;
                            }
                            // No kprobe_multi here (before 5.18, no CONFIG_FPROBE, or a
                            // module function on a kernel that cannot resolve it): one
                            // perf event per function, from now on.
                            Err(e) => {
                                MULTI_FAILED.store(true, Ordering::Relaxed);
                                if std::env::var_os("TRACE_RUNNER_DEBUG").is_some() {
                                    eprintln!("kprobe_multi link for {}: {e}; attaching one perf event per function", p.probe_name);
                                }
                            }
                        }
                    }
                    let kind = if *ret { "kretprobe" } else { "kprobe" };
                    for (func, r) in funcs
                        .iter()
                        .zip(kattach::attach_all(pmu, prog_fd, funcs, *ret))
                    {
                        match r {
                            Ok(fd) => self.kprobe_links.push(fd),
                            Err(e) => {
                                eprintln!("{}", kfuncs::skip_warning(*ret, None, func));
                                if std::env::var_os("TRACE_RUNNER_DEBUG").is_some() {
                                    eprintln!("{kind}:{func}: perf_event_open: {e}");
                                }
                            }
                        }
                    }
                }
                Attach::Uprobe { path, symbol, .. } => {
                    let (func, offset) =
                        crate::uprobes::attach_location(path, symbol).map_err(LoadError)?;
                    let up: &mut UProbe = prog.try_into().map_err(fail)?;
                    up.attach(
                        aya::programs::uprobe::UProbeAttachLocation::SymbolOffset(&func, offset),
                        path,
                        aya::programs::uprobe::UProbeScope::AllProcesses,
                    )
                    .map_err(fail)?;
                }
                Attach::Usdt {
                    file,
                    offset,
                    semaphore,
                    pid,
                } => {
                    let up: &mut UProbe = prog.try_into().map_err(fail)?;
                    let prog_fd = up.fd().map_err(fail)?.as_fd().as_raw_fd();
                    let pmu = uattach::UprobePmu::system().ok_or_else(|| {
                        LoadError(format!(
                            "cannot attach {}: this kernel has no uprobe PMU",
                            p.probe_name
                        ))
                    })?;
                    let fd = uattach::attach(pmu, prog_fd, file, *offset, *semaphore, *pid)
                        .map_err(|e| {
                            LoadError(format!(
                                "cannot attach {} ({file} at offset {offset:#x}): {e}",
                                p.probe_name
                            ))
                        })?;
                    self.kprobe_links.push(fd);
                }
                Attach::Profile { hz } => {
                    let pe: &mut PerfEvent = prog.try_into().map_err(fail)?;
                    for cpu in &cpus {
                        pe.attach(
                            PerfEventConfig::Software(SoftwareEvent::CpuClock),
                            PerfEventScope::AllProcessesOneCpu { cpu: *cpu },
                            SamplePolicy::Frequency(*hz),
                            false,
                        )
                        .map_err(fail)?;
                    }
                }
                Attach::PerfCounter {
                    hardware,
                    config,
                    period,
                } => {
                    let pe: &mut PerfEvent = prog.try_into().map_err(fail)?;
                    // PERF_TYPE_HARDWARE is 0, PERF_TYPE_SOFTWARE 1.
                    let pmu_type = if *hardware { 0 } else { 1 };
                    for cpu in &cpus {
                        pe.attach(
                            PerfEventConfig::Pmu {
                                pmu_type,
                                config: *config,
                            },
                            PerfEventScope::AllProcessesOneCpu { cpu: *cpu },
                            SamplePolicy::Period(*period),
                            false,
                        )
                        .map_err(fail)?;
                    }
                }
                // Set when its setup probe reports an address (see `watch`).
                Attach::Watchpoint { on_call: true, .. } => {}
                Attach::WatchpointSetup {
                    path, symbol, pid, ..
                } => {
                    let (func, offset) =
                        crate::uprobes::attach_location(path, symbol).map_err(LoadError)?;
                    let up: &mut UProbe = prog.try_into().map_err(fail)?;
                    let scope = match pid.and_then(std::num::NonZeroU32::new) {
                        Some(pid) => aya::programs::uprobe::UProbeScope::OneProcess(pid),
                        None => aya::programs::uprobe::UProbeScope::AllProcesses,
                    };
                    up.attach(
                        aya::programs::uprobe::UProbeAttachLocation::SymbolOffset(&func, offset),
                        path,
                        scope,
                    )
                    .map_err(fail)?;
                }
                Attach::Watchpoint {
                    address,
                    len,
                    mode,
                    pid,
                    on_call: false,
                } => {
                    let pe: &mut PerfEvent = prog.try_into().map_err(fail)?;
                    let config = watchpoint_config(*address, *len, mode).ok_or_else(|| {
                        LoadError(format!("{}: invalid watchpoint", p.probe_name))
                    })?;
                    let scopes: Vec<PerfEventScope> = match pid {
                        Some(pid) => vec![PerfEventScope::OneProcess {
                            pid: *pid,
                            cpu: None,
                        }],
                        None => cpus
                            .iter()
                            .map(|&cpu| PerfEventScope::AllProcessesOneCpu { cpu })
                            .collect(),
                    };
                    for scope in scopes {
                        pe.attach(
                            PerfEventConfig::Breakpoint(config),
                            scope,
                            SamplePolicy::Period(1),
                            false,
                        )
                        .map_err(fail)?;
                    }
                }
                Attach::Interval { period_ns } => {
                    let pe: &mut PerfEvent = prog.try_into().map_err(fail)?;
                    pe.attach(
                        PerfEventConfig::Software(SoftwareEvent::CpuClock),
                        PerfEventScope::AllProcessesOneCpu {
                            cpu: cpus.first().copied().unwrap_or(0),
                        },
                        SamplePolicy::Period(*period_ns),
                        false,
                    )
                    .map_err(fail)?;
                }
                Attach::CgroupSkb { egress } => {
                    let dir = cgroup_dir.ok_or_else(|| {
                        LoadError(format!(
                            "{} needs a cgroup: pass --cgroup PATH or a pod target",
                            p.probe_name
                        ))
                    })?;
                    let file = std::fs::File::open(dir).map_err(|e| {
                        LoadError(format!("cannot open cgroup {}: {e}", dir.display()))
                    })?;
                    let skb: &mut CgroupSkb = prog.try_into().map_err(fail)?;
                    let kind = if *egress {
                        CgroupSkbAttachType::Egress
                    } else {
                        CgroupSkbAttachType::Ingress
                    };
                    skb.attach(file, kind, CgroupAttachMode::Single)
                        .map_err(fail)?;
                }
            }
        }
        // Every kprobe (and kfunc) was refused and nothing else runs: as when analysis
        // skips them all.
        let only_kprobes = self
            .compiled
            .programs
            .iter()
            .all(|p| matches!(p.attach, Attach::Kprobe { .. } | Attach::Fentry { .. }));
        if only_kprobes && self.kprobe_links.is_empty() {
            return Err(LoadError(
                "nothing to trace: every attach point was skipped (see the warnings above)".into(),
            ));
        }
        Ok(())
    }

    /// Detach and unload every probe (BEGIN/END stay loaded for END); maps stay readable.
    pub fn detach_all(&mut self) {
        let kinds: std::collections::HashMap<&str, &Attach> = self
            .compiled
            .programs
            .iter()
            .map(|p| (p.code.name.as_str(), &p.attach))
            .collect();
        let programs: Vec<(&Attach, &mut aya::programs::Program)> = self
            .ebpf
            .programs_mut()
            .filter_map(|(name, prog)| kinds.get(name).map(|attach| (*attach, prog)))
            .filter(|(attach, _)| !matches!(attach, Attach::Begin | Attach::End))
            .collect();
        // Closing a perf-event link waits for an RCU grace period (tens of ms): detach
        // the programs side by side rather than one after the other.
        let links = std::mem::take(&mut self.kprobe_links);
        let fentry_progs = std::mem::take(&mut self.fentry_progs);
        std::thread::scope(|scope| {
            scope.spawn(move || drop(fentry_progs));
            scope.spawn(move || kattach::detach_all(links));
            for (attach, prog) in programs {
                scope.spawn(move || unload(attach, prog));
            }
        });
    }

    pub fn map_fd(&self, index: usize) -> RawFd {
        self.map_fds[index]
    }

    /// Add and remove tgids of the pid-set scope filter.
    pub fn update_pid_set(&self, added: &[u32], removed: &[u32]) {
        let Some(index) = self
            .compiled
            .maps
            .iter()
            .position(|m| m.name == crate::abi::SCOPE_PIDS_MAP)
        else {
            return;
        };
        let fd = self.map_fds[index];
        for pid in added {
            let _ = bpf_sys::update(fd, &pid.to_ne_bytes(), &[1]);
        }
        for pid in removed {
            let _ = bpf_sys::delete(fd, &pid.to_ne_bytes());
        }
    }

    /// Run BEGIN (or END) blocks once.
    fn run_special(&self, fds: &[RawFd], what: &str) -> Result<(), LoadError> {
        for fd in fds {
            bpf_sys::test_run(*fd).map_err(|e| LoadError(format!("cannot run {what}: {e}")))?;
        }
        Ok(())
    }

    pub fn run_begin(&self) -> Result<(), LoadError> {
        self.run_special(&self.begin, "BEGIN")
    }

    pub fn run_end(&self) -> Result<(), LoadError> {
        self.run_special(&self.end, "END")
    }

    /// Events lost because the ring buffer was full.
    pub fn lost_events(&self) -> u64 {
        let fd = self.map_fds[self.compiled.lost_map];
        let cpus = bpf_sys::possible_cpus();
        let mut buf = vec![0u8; 8 * cpus];
        match bpf_sys::lookup(fd, &0u32.to_ne_bytes(), &mut buf) {
            Ok(true) => buf
                .chunks(8)
                .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
                .sum(),
            _ => 0,
        }
    }
}

/// Why the event loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    Exit,
    Signal,
    Deadline,
}

/// Streams events until exit(), a signal or the deadline.
/// `tick` runs about once a second (pid-set scoping keeps its map current there).
pub fn event_loop(
    session: &mut Session,
    sink: &mut Sink,
    deadline: Option<Duration>,
    tick: &mut dyn FnMut(&Session),
) -> Result<StopReason, LoadError> {
    let start = Instant::now();
    let mut last_tick = Instant::now();
    let fd = session.ring.as_raw_fd();
    let mut idle_ms = POLL_MS;
    // The first tick comes once BEGIN's output is out (the command of `-c` starts then).
    let mut first = true;
    loop {
        if last_tick.elapsed() >= Duration::from_secs(1) {
            tick(session);
            last_tick = Instant::now();
        }
        let (stop, handled) = drain_events(session, sink, true);
        sink.flush();
        if let Some(r) = stop {
            return Ok(r);
        }
        if STOP.load(Ordering::SeqCst) {
            return Ok(StopReason::Signal);
        }
        if PRINT_MAPS.swap(false, Ordering::SeqCst) {
            // As at exit, without the two empty lines first.
            let mut dumps: Vec<_> = (0..session.compiled.user_maps.len())
                .filter_map(|i| maps::read_map(session, i))
                .collect();
            dumps.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
            for dump in &dumps {
                sink.map(dump, 0, 0);
            }
            sink.flush();
        }
        if first {
            first = false;
            tick(session);
            last_tick = Instant::now();
        }
        // The programs do not wake us up per record (BPF_RB_NO_WAKEUP): look again soon
        // while events flow, so that the ring (2 MiB) cannot fill between two looks, and
        // back off to IDLE_POLL_MS while nothing comes.
        idle_ms = if handled > 0 {
            POLL_MS
        } else {
            (idle_ms * 2).min(IDLE_POLL_MS)
        };
        let mut timeout = Duration::from_millis(idle_ms);
        if let Some(d) = deadline {
            let elapsed = start.elapsed();
            if elapsed >= d {
                return Ok(StopReason::Deadline);
            }
            timeout = timeout.min(d - elapsed);
        }
        crate::sys::poll_readable(&[fd], timeout);
    }
}

/// Drop the events queued so far without handling them (those sent after exit()).
pub fn discard_pending(session: &mut Session) {
    while session.ring.next().is_some() {}
}

/// Handle the events still queued when a signal or the deadline stopped the run, for at
/// most `budget`, and drop the rest. bpftrace 0.17 drops them all; this keeps what a
/// stop finds queued when that is quick, but a backlog of slow actions (a `system()`
/// per event of a busy probe, seconds or minutes of them) cannot hold the stop: END
/// runs after this and its output is then handled in full.
pub fn drain_queued(session: &mut Session, sink: &mut Sink, budget: Duration) {
    let start = Instant::now();
    while start.elapsed() < budget {
        let Some(record) = session.ring.next().map(|item| item.to_vec()) else {
            break;
        };
        handle_event(session, sink, &record);
    }
    discard_pending(session);
    sink.flush();
}

/// Handle every event left once the probes are detached (END's output included).
pub fn drain_remaining(session: &mut Session, sink: &mut Sink) {
    drain_events(session, sink, false);
    sink.flush();
}

/// Handle queued events without waiting; reports exit() if one was seen (events queued
/// before it are handled first). While tracing (`live`), the work is bounded and a stop
/// request ends it, so that a storm of events cannot keep a signal or the deadline waiting.
fn drain_events(session: &mut Session, sink: &mut Sink, live: bool) -> (Option<StopReason>, usize) {
    let mut reason = None;
    let mut handled = 0;
    for _ in 0..if live { 64 } else { usize::MAX } {
        if live && STOP.load(Ordering::SeqCst) && reason.is_none() {
            break;
        }
        let mut records = Vec::new();
        while let Some(item) = session.ring.next() {
            records.push(item.to_vec());
            if records.len() >= 256 {
                break;
            }
        }
        if records.is_empty() {
            break;
        }
        handled += records.len();
        for r in records {
            // Live, nothing after exit() is handled; at the end (END's output), everything is.
            if reason.is_none() || !live {
                reason = reason.or(handle_event(session, sink, &r));
            }
        }
    }
    (reason, handled)
}

fn read_u64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_ne_bytes(s.try_into().unwrap_or([0; 8])))
}

fn handle_event(session: &mut Session, sink: &mut Sink, record: &[u8]) -> Option<StopReason> {
    let id = read_u64(record, 0);
    let kind = (id >> 32) as u32;
    let index = (id & 0xffff_ffff) as usize;
    match kind {
        k if k == EventKind::Printf as u32 => {
            let spec = session.compiled.printfs.get(index)?;
            let args: Vec<Val> = spec
                .args
                .iter()
                .map(|(ty, at)| {
                    maps::decode_value(ty, &record[(*at).min(record.len())..], &session.compiled)
                })
                .collect();
            let text = output::format_printf_bytes(&spec.format, &args);
            match spec.action {
                PrintfAction::Print => sink.printf_bytes(&text),
                PrintfAction::Cat => sink.message_bytes("cat", &actions::cat(&text)),
                PrintfAction::System => sink.message_bytes("syscall", &actions::system(&text)),
            }
        }
        k if k == EventKind::Exit as u32 => return Some(StopReason::Exit),
        k if k == EventKind::Print as u32 => {
            let spec = session.compiled.prints.get(index).cloned()?;
            if let Some(dump) = maps::read_map(session, spec.map) {
                sink.map(&dump, spec.top, spec.div);
            }
        }
        k if k == EventKind::PrintValue as u32 => {
            let ty = session.compiled.print_values.get(index)?;
            let value = maps::decode_value(ty, record.get(8..).unwrap_or(&[]), &session.compiled);
            sink.value(&value);
        }
        k if k == EventKind::Clear as u32 => maps::clear_map(session, index, false),
        k if k == EventKind::Zero as u32 => {
            maps::clear_map(session, index, true);
            session.zeroed.insert(index);
        }
        k if k == EventKind::Time as u32 => {
            if let Some(fmt) = session.compiled.time_formats.get(index) {
                sink.message_bytes("time", output::format_time(fmt).as_bytes());
            }
        }
        k if k == EventKind::HelperError as u32 => {
            if let Some(check) = session.compiled.helper_errors.get(index) {
                let ret = read_u64(record, 8) as i64;
                sink.helper_error(&check.json(ret), &check.warning(ret));
            }
        }
        k if k == EventKind::WatchpointAttach as u32 => {
            if let Err(e) = session.watch(index, read_u64(record, 8), sink) {
                sink.flush();
                eprintln!("ERROR: {e}");
                return Some(StopReason::Exit);
            }
        }
        k if k == EventKind::WatchpointDetach as u32 => session.unwatch(read_u64(record, 8)),
        k if k == EventKind::Join as u32 => {
            if let Some(text) = crate::values::join_record(&session.compiled, index, record) {
                // bpftrace's JSON join record has no newline in its data.
                sink.line("join", text.as_bytes());
            }
        }
        _ => {}
    }
    None
}

/// Every script map that can be read, with its index into `user_maps`.
pub fn read_all_maps(session: &Session) -> Vec<(usize, crate::output::MapDump)> {
    (0..session.compiled.user_maps.len())
        .filter_map(|i| maps::read_map(session, i).map(|d| (i, d)))
        .collect()
}

/// Print every map in name order (what bpftrace does at exit).
pub fn print_all_maps(session: &Session, sink: &mut Sink) {
    let mut dumps: Vec<_> = (0..session.compiled.user_maps.len())
        .filter_map(|i| maps::read_map(session, i))
        .collect();
    dumps.sort_by(|a, b| a.name.cmp(&b.name));
    sink.exit_maps(&dumps);
}

/// `--emit-maps`: every map once more, as the contract's one machine-readable line
/// (`trace_contract::maps`), for `kubectl trace --merge`.
pub fn emit_maps_line(session: &Session, sink: &mut Sink) {
    let dumps: Vec<_> = read_all_maps(session).into_iter().map(|(_, d)| d).collect();
    sink.raw(output::wire::record(&dumps).to_line().as_bytes());
}

#[cfg(test)]
mod ringbuf_tests {
    #[test]
    fn a_kernel_without_the_ring_buffer_is_one_clear_line() {
        let m = super::no_ringbuf_message("5.4.0-150-generic");
        assert!(m.starts_with("this kernel (5.4.0-150-generic) has no BPF ring buffer"));
        assert!(m.contains("Linux 5.8") && !m.contains('\n'));
    }

    #[test]
    fn this_kernel_has_the_ring_buffer() {
        // Every kernel the runner is tested on has it (5.8+); creating a map needs root.
        // SAFETY: geteuid cannot fail.
        if !crate::sys::process::is_root() {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "not root under CI=true"
            );
            eprintln!("skipped: not root");
            return;
        }
        assert!(crate::sys::bpf::ringbuf_ok());
    }
}

#[cfg(test)]
mod attach_order_tests {
    use super::{attach_order, Attach};

    #[test]
    fn programs_on_one_uprobe_attach_in_reverse_among_themselves() {
        let up = |s: &str| Attach::Uprobe {
            path: "/bin/bash".into(),
            symbol: s.into(),
            ret: false,
        };
        let tp = Attach::Tracepoint {
            category: "syscalls".into(),
            name: "sys_enter_read".into(),
        };
        let kp = Attach::Kprobe {
            func: "vfs_read".into(),
            ret: true,
        };
        let iv = Attach::Interval { period_ns: 1 };
        let (a0, a1, b) = (up("a"), up("a"), up("b"));
        // The two programs on uprobe a swap places; everything else keeps script order.
        let all = [&a0, &tp, &b, &a1, &kp, &iv];
        assert_eq!(attach_order(&all), vec![3, 1, 2, 0, 4, 5]);
    }
}
