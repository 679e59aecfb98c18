//! The `check`, `build` and `list` subcommands, and the compile step they share with
//! `run`: front end (`trace_lang::check_on_this_thread`, with the predefined values)
//! then code generation, with every error rendered as `FILE:LINE:COL`, the line and a
//! caret, and the warnings of both printed first. Also `stop`: SIGINT to the runner of
//! the container it is executed in (how the plugin ends a trace and keeps its pod and
//! output).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::cli::{Failure, ScriptArgs};
use crate::compile::codegen::{self, CodegenOptions};
use crate::compile::node_facts::NodeFacts;
use crate::compile::verifier::{self, ProgramFacts};
use crate::runtime::{self, Session};
use crate::tracefs::{self, Tracefs};
use crate::{compile, scope};
use trace_contract::exit;

pub(crate) fn compile_source(
    name: &str,
    src: &str,
    predefined: &trace_lang::Predefined,
    env: &(dyn NodeFacts + Sync),
    opts: CodegenOptions,
) -> Result<codegen::Compiled, Failure> {
    let render = |d: trace_lang::Diagnostics| {
        for warning in &d.warnings {
            eprintln!("{warning}");
        }
        Failure(d.render(name, src).trim_end().to_string(), exit::SCRIPT)
    };
    let opts = CodegenOptions {
        params: predefined.params.clone(),
        ..opts
    };
    // Front end and code generation on one thread with the compiler's stack: both recurse
    // over the tree as deeply as it nests.
    let compiled = trace_lang::with_stack(|| {
        let (program, analysis) = trace_lang::check_on_this_thread(src, env, Some(predefined))?;
        for warning in &analysis.warnings {
            eprintln!("{warning}");
        }
        codegen::generate(&program, &analysis, env, &opts).map_err(trace_lang::Diagnostics::from)
    })
    .map(|mut compiled| {
        for check in &mut compiled.helper_errors {
            (check.line, check.col) = trace_lang::diag::line_col(src, check.span.start);
            let marker = codegen::HelperCheck::MESSAGE.to_string();
            check.location = trace_lang::Diagnostic::new(check.span, &marker)
                .render(name, src)
                .replacen(
                    &format!(": error: {marker}"),
                    &format!(": WARNING: {marker}"),
                    1,
                );
        }
        compiled
    })
    .map_err(render)?;
    for warning in &compiled.warnings {
        eprintln!("{warning}");
    }
    Ok(compiled)
}

pub(crate) fn compile_script(
    script: &ScriptArgs,
    env: &Tracefs,
    opts: CodegenOptions,
) -> Result<codegen::Compiled, Failure> {
    let (name, src) = script.source()?;
    compile_source(&name, &src, &checked_without_target(script), env, opts)
}

/// The predefined values of a script compiled without a target (`check`, `build`):
/// `$container_pid` stands for some pid.
fn checked_without_target(script: &ScriptArgs) -> trace_lang::Predefined {
    trace_lang::Predefined {
        params: script.params().to_vec(),
        container_pid: Some(trace_contract::container_pid::PLACEHOLDER),
    }
}

pub(crate) fn monotonic_ns() -> u64 {
    crate::sys::time::monotonic_ns()
}

pub(crate) fn base_options() -> CodegenOptions {
    CodegenOptions {
        start_ns: monotonic_ns(),
        map_entries: std::env::var("BPFTRACE_MAP_KEYS_MAX")
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .filter(|n| *n > 0),
        cgroup_id_of: Some(scope::cgroup_id_of),
        ..Default::default()
    }
}

pub(crate) fn check(script: ScriptArgs, load: bool, unsafe_actions: bool) -> Result<(), Failure> {
    let env = Tracefs::open();
    let opts = CodegenOptions {
        unsafe_actions,
        ..base_options()
    };
    let (name, src) = script.source()?;
    let compiled = compile_source(&name, &src, &checked_without_target(&script), &env, opts)?;
    if load {
        runtime::raise_memlock();
        let n = compiled.programs.len();
        let facts = ProgramFacts::of(&compiled.programs);
        Session::load(compiled).map_err(|e| load_failure(&e.to_string(), &facts, &name, &src))?;
        eprintln!(
            "{n} program{} loaded through the verifier",
            if n == 1 { "" } else { "s" }
        );
    }
    Ok(())
}

/// `check --attach`: every script (the `-e` program, or each FILE) compiled, loaded
/// through the verifier, attached and detached at once, one after the other in this
/// process, so that the kernel's BTF, the function list and kallsyms are read once
/// (they are cached in [`crate::btf`], [`crate::runtime::kfuncs`] and
/// [`crate::symbols`]; one [`Tracefs`] keeps the tracepoint formats). One line per
/// script on stdout ([`attach_line`]); warnings, and the full text of each error of
/// several lines (the script's line and caret, a verifier log), on stderr.
pub(crate) fn check_attach(script: ScriptArgs, unsafe_actions: bool) -> Result<(), Failure> {
    let scripts: Vec<ScriptArgs> = match &script.program {
        Some(_) => vec![script.clone()],
        None => script
            .positionals
            .iter()
            .map(|file| ScriptArgs {
                program: None,
                positionals: vec![file.clone()],
            })
            .collect(),
    };
    if scripts.is_empty() {
        return Err(Failure(
            "error: give a program with -e or script files".into(),
            exit::SCRIPT,
        ));
    }
    let env = Tracefs::open();
    runtime::raise_memlock();
    let mut outcomes = Vec::new();
    for one in &scripts {
        let name = one
            .file()
            .map_or_else(|| "stdin".to_string(), |f| f.display().to_string());
        let outcome = attach_one(one, &env, unsafe_actions);
        // A longer error (the script's line and caret, a verifier log) in full on stderr;
        // its first line is the script's line on stdout.
        if let Err(Failure(msg, _)) = &outcome {
            if msg.contains('\n') {
                eprintln!("{msg}");
            }
        }
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", attach_line(&name, &outcome));
            let _ = out.flush();
        }
        outcomes.push(outcome.map_err(|Failure(_, code)| code));
    }
    match attach_status(&outcomes) {
        None => Ok(()),
        Some(code) => {
            let failed = outcomes.iter().filter(|o| o.is_err()).count();
            Err(Failure(
                format!("error: {failed} of {} scripts failed", outcomes.len()),
                code,
            ))
        }
    }
}

/// Compile, load, attach and detach one script; the number of probes it attached, as
/// "Attaching N probes..." counts them.
fn attach_one(script: &ScriptArgs, env: &Tracefs, unsafe_actions: bool) -> Result<usize, Failure> {
    let (name, src) = script.source()?;
    let opts = CodegenOptions {
        unsafe_actions,
        ..base_options()
    };
    let compiled = compile_source(&name, &src, &checked_without_target(script), env, opts)?;
    if compiled.programs.is_empty() {
        return Err(Failure(
            "error: nothing to trace: every attach point was skipped (see the warnings above)"
                .into(),
            exit::FAILURE,
        ));
    }
    let facts = ProgramFacts::of(&compiled.programs);
    let mut session =
        Session::load(compiled).map_err(|e| load_failure(&e.to_string(), &facts, &name, &src))?;
    let probes = session.probe_count();
    let attached = session.attach(None);
    session.detach_all();
    attached.map_err(|e| Failure(format!("error: {e}"), exit::FAILURE))?;
    Ok(probes)
}

/// The line `check --attach` prints for one script: `FILE: ok (N probes)`, or the first
/// line of its error, which starts with `FILE:` (a located error's `FILE:LINE:COL:`) or
/// gets it as a prefix.
pub(crate) fn attach_line(name: &str, outcome: &Result<usize, Failure>) -> String {
    match outcome {
        Ok(n) => format!("{name}: ok ({n} probe{})", if *n == 1 { "" } else { "s" }),
        Err(Failure(msg, _)) => {
            let first = msg.lines().next().unwrap_or("error");
            if first.starts_with(&format!("{name}:")) {
                first.to_string()
            } else {
                format!("{name}: {first}")
            }
        }
    }
}

/// The exit status of `check --attach`: none when every script passed; else 2 when
/// every failure was the script's own (as a single `check` exits), 1 otherwise.
pub(crate) fn attach_status(outcomes: &[Result<usize, u8>]) -> Option<u8> {
    let codes: Vec<u8> = outcomes.iter().filter_map(|o| o.err()).collect();
    if codes.is_empty() {
        None
    } else if codes.iter().all(|c| *c == exit::SCRIPT) {
        Some(exit::SCRIPT)
    } else {
        Some(exit::FAILURE)
    }
}

/// A refused load: located in the script (exit 2) when it is one of the kernel's limits
/// ([`verifier::explain`]), else the loader's message (exit 1).
pub(crate) fn load_failure(
    message: &str,
    facts: &[ProgramFacts],
    name: &str,
    src: &str,
) -> Failure {
    match verifier::explain(message, facts) {
        Some(d) => Failure(d.render(name, src).trim_end().to_string(), exit::SCRIPT),
        None => Failure(format!("error: {message}"), exit::FAILURE),
    }
}

pub(crate) fn build(script: ScriptArgs, output: PathBuf) -> Result<(), Failure> {
    let env = Tracefs::open();
    let compiled = compile_script(&script, &env, base_options())?;
    let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
    let elf = compile::object_file::emit(&programs, &compiled.maps)
        .map_err(|e| Failure(format!("error: {e}"), exit::FAILURE))?;
    std::fs::write(&output, elf).map_err(|e| {
        Failure(
            format!("error: cannot write {}: {e}", output.display()),
            exit::FAILURE,
        )
    })
}

/// The probe names `list` prints.
fn list_names(pattern: Option<String>) -> Result<Vec<String>, Failure> {
    // `uprobe:PATH:PATTERN` (or `uretprobe:`) lists the functions of that binary or library.
    let uprobe = pattern.as_deref().and_then(|p| {
        ["uprobe", "uretprobe"]
            .into_iter()
            .find_map(|kind| Some((kind, p.strip_prefix(kind)?.strip_prefix(':')?)))
    });
    if let Some((kind, rest)) = uprobe {
        let (target, symbols) = rest.split_once(':').unwrap_or((rest, "*"));
        let files = crate::uprobes::resolve_targets(target);
        if files.is_empty() {
            return Err(Failure(
                format!("error: uprobe target '{target}' not found"),
                exit::FAILURE,
            ));
        }
        let mut names = Vec::new();
        for (shown, file) in files {
            let functions = crate::uprobes::functions(&file).map_err(|e| {
                Failure(
                    format!("error: cannot read {}: {e}", file.display()),
                    exit::FAILURE,
                )
            })?;
            names.extend(
                functions
                    .iter()
                    .filter(|f| tracefs::glob_match(symbols, f))
                    .map(|f| format!("{kind}:{shown}:{f}")),
            );
        }
        return Ok(names);
    }
    // `usdt:PATH:...` (or `*:PATH:...`): the USDT probes of that file.
    if let Some(p) = pattern.as_deref().filter(|p| {
        p.split(':')
            .nth(1)
            .is_some_and(|t| !t.is_empty() && t != "*")
            && tracefs::glob_match(p.split(':').next().unwrap_or(""), "usdt")
    }) {
        let usdt = crate::usdt::list(p, None).map_err(|e| Failure(format!("error: {e}"), 1))?;
        if p.starts_with("usdt:") {
            return Ok(usdt);
        }
        // `*:PATH:...`: the file's uprobes too.
        let mut names = usdt;
        let target = p.split(':').nth(1).unwrap_or("");
        if let Some(file) = crate::uprobes::resolve_target(target) {
            let functions = crate::uprobes::functions(&file).unwrap_or_default();
            names.extend(
                functions
                    .iter()
                    .map(|f| format!("uprobe:{target}:{f}"))
                    .filter(|n| tracefs::glob_match(p, n)),
            );
        }
        return Ok(names);
    }
    let env = Tracefs::open();
    if !env.is_available() {
        return Err(Failure(
            "error: tracefs is not available (mount -t tracefs tracefs /sys/kernel/tracing)".into(),
            exit::FAILURE,
        ));
    }
    let pattern = pattern.map(|p| if p.contains(':') { p } else { format!("*{p}*") });
    let mut names: Vec<String> = vec![
        "BEGIN".into(),
        "END".into(),
        "profile:hz:N".into(),
        "interval:s:N".into(),
        "interval:ms:N".into(),
        "cgroup_skb:ingress".into(),
        "cgroup_skb:egress".into(),
    ];
    // As bpftrace lists them: `hardware:EVENT:` and `software:EVENT:` (the count is
    // optional).
    for (kind, events) in [
        ("hardware", crate::abi::HARDWARE_EVENTS),
        ("software", crate::abi::SOFTWARE_EVENTS),
    ] {
        names.extend(events.iter().map(|(e, ..)| format!("{kind}:{e}:")));
    }
    let tracepoints = env.all_tracepoints();
    // Raw tracepoints: the kernel tracepoints behind the events (the syscalls:* events
    // all sit on sys_enter and sys_exit).
    let mut raw: Vec<&str> = tracepoints
        .iter()
        .filter(|(c, _)| c != "syscalls")
        .map(|(_, n)| n.as_str())
        .collect();
    raw.extend(["sys_enter", "sys_exit"]);
    raw.sort_unstable();
    raw.dedup();
    names.extend(raw.iter().map(|n| format!("rawtracepoint:{n}")));
    names.extend(
        tracepoints
            .iter()
            .map(|(c, n)| format!("tracepoint:{c}:{n}")),
    );
    names.extend(
        env.kprobe_functions()
            .into_iter()
            .map(|f| format!("kprobe:{f}")),
    );
    let provider = pattern.as_deref().map(|p| p.split(':').next().unwrap_or(p));
    let kfunc = provider.is_none_or(|p| tracefs::glob_match(p, "kfunc"));
    let kretfunc = provider.is_some_and(|p| tracefs::glob_match(p, "kretfunc"));
    if (kfunc || kretfunc) && crate::bpf_info::kfunc_ok() {
        let funcs = kfunc_names();
        // As bpftrace: `kretfunc:` names only when the pattern asks for them.
        for (wanted, kind) in [(kfunc, "kfunc"), (kretfunc, "kretfunc")] {
            if wanted {
                names.extend(funcs.iter().map(|f| format!("{kind}:{f}")));
            }
        }
    }
    names.retain(|name| {
        pattern
            .as_ref()
            .is_none_or(|p| tracefs::glob_match(p, name))
    });
    Ok(names)
}

/// `MODULE:FUNC` of every traceable function with BTF (a module's functions when the
/// module publishes BTF; whether each is in it is checked when a script uses it).
fn kfunc_names() -> Vec<String> {
    let (Some(kernel), Some(list)) = (
        crate::btf::kernel(),
        crate::runtime::kfuncs::FuncList::traceable(),
    ) else {
        return Vec::new();
    };
    let module_btf = |m: &str| Path::new("/sys/kernel/btf").join(m).is_file();
    list.expand_kfunc(None, "*", |m, f| {
        if m == "vmlinux" {
            kernel.func_id(f).is_some()
        } else {
            module_btf(m)
        }
    })
    .into_iter()
    .map(|(m, f)| format!("{m}:{f}"))
    .collect()
}

/// A kfunc's parameters and return value for `-lv` (`struct file * file`).
fn kfunc_params(name: &str) -> Vec<String> {
    let mut parts = name.splitn(3, ':').skip(1);
    let (Some(module), Some(func)) = (parts.next(), parts.next()) else {
        return Vec::new();
    };
    let types = if module == "vmlinux" {
        crate::btf::kernel()
    } else {
        crate::btf::module(module)
    };
    types
        .and_then(|t| t.func_params_c(func))
        .unwrap_or_default()
}

pub(crate) fn list(pattern: Option<String>) -> Result<(), Failure> {
    let mut out = String::new();
    for name in list_names(pattern)? {
        out.push_str(&name);
        out.push('\n');
    }
    print!("{out}");
    Ok(())
}

/// bpftrace's `-l [PATTERN]`: with `verbose`, each tracepoint's fields under its name (as
/// `-lv` prints them); with `pid`, the uprobes of the process's executable and libraries.
pub(crate) fn list_bpftrace(
    pattern: Option<String>,
    verbose: bool,
    pid: Option<u32>,
) -> Result<(), Failure> {
    let names = match pid {
        Some(pid) => process_probes(pid, pattern)?,
        None => list_names(pattern)?,
    };
    let env = Tracefs::open();
    let mut out = String::new();
    // Each uprobe target's DWARF, read once: its functions' parameters.
    let mut dwarf: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    for name in names {
        out.push_str(&name);
        out.push('\n');
        if !verbose {
            continue;
        }
        if let Some((target, func)) = name
            .strip_prefix("uprobe:")
            .or_else(|| name.strip_prefix("uretprobe:"))
            .and_then(|r| r.rsplit_once(':'))
        {
            let params = dwarf.entry(target.to_string()).or_insert_with(|| {
                crate::uprobes::resolve_target(target)
                    .and_then(|f| crate::dwarf::function_params(&f).ok())
                    .unwrap_or_default()
            });
            for param in params.get(func).into_iter().flatten() {
                out.push_str(&format!("    {param}\n"));
            }
        }
        if name.starts_with("kfunc:") || name.starts_with("kretfunc:") {
            for param in kfunc_params(&name) {
                out.push_str(&format!("    {param}\n"));
            }
        }
        if let Some((cat, event)) = name
            .strip_prefix("tracepoint:")
            .and_then(|r| r.split_once(':'))
        {
            if let Some(format) = env.read_format(cat, event) {
                for field in tracefs::format_field_decls(&format) {
                    out.push_str(&format!("    {field}\n"));
                }
            }
        }
    }
    print!("{out}");
    Ok(())
}

/// `-l -p PID`: `uprobe:FILE:FUNCTION` of the process's executable and of every file it
/// maps executable (its libraries), filtered by `pattern` (bpftrace's `*word*` rule).
fn process_probes(pid: u32, pattern: Option<String>) -> Result<Vec<String>, Failure> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).map_err(|e| {
        Failure(
            format!("error: -p {pid}: no such process ({e})"),
            exit::FAILURE,
        )
    })?;
    if let Some(p) = pattern.as_deref().filter(|p| p.starts_with("usdt")) {
        return crate::usdt::list(p, Some(pid))
            .map_err(|e| Failure(format!("error: {e}"), exit::FAILURE));
    }
    let usdt =
        crate::usdt::list(pattern.as_deref().unwrap_or("usdt:*"), Some(pid)).unwrap_or_default();
    let pattern = pattern.map(|p| if p.contains(':') { p } else { format!("*{p}*") });
    let mut files: Vec<String> = Vec::new();
    if let Ok(exe) = std::fs::read_link(format!("/proc/{pid}/exe")) {
        files.push(exe.display().to_string());
    }
    for line in maps.lines() {
        let mut cols = line.split_whitespace();
        let perms = cols.nth(1).unwrap_or("");
        if let Some(path) = cols.nth(3).filter(|p| p.starts_with('/')) {
            if perms.contains('x') && !files.iter().any(|f| f == path) {
                files.push(path.to_string());
            }
        }
    }
    let mut names = Vec::new();
    for file in files {
        // In another mount namespace the file is reached through the process's root.
        let local = std::path::Path::new(&file);
        let readable = if local.exists() {
            local.to_path_buf()
        } else {
            PathBuf::from(format!("/proc/{pid}/root{file}"))
        };
        let Ok(functions) = crate::uprobes::functions(&readable) else {
            continue;
        };
        names.extend(
            functions
                .iter()
                .map(|f| format!("uprobe:{file}:{f}"))
                .filter(|n| pattern.as_ref().is_none_or(|p| tracefs::glob_match(p, n))),
        );
    }
    names.extend(usdt);
    Ok(names)
}

/// What `stop` knows of one process under /proc.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ProcEntry {
    pub(crate) pid: u32,
    /// The target of `ns/mnt`, e.g. `mnt:[4026531841]`.
    pub(crate) mnt_ns: Option<String>,
    /// The text of `cgroup`.
    pub(crate) cgroup: Option<String>,
    /// `argv[0]` from `cmdline`.
    pub(crate) argv0: String,
}

/// The runners to stop: trace-runner (or `bpftrace`) processes other than `me` in the
/// same mount namespace and cgroup as `me`, i.e. in the same container. Unknown
/// namespaces or cgroups never match, so nothing outside the container is signalled.
pub(crate) fn runners_to_stop(me: &ProcEntry, procs: &[ProcEntry]) -> Vec<u32> {
    let (Some(ns), Some(cg)) = (&me.mnt_ns, &me.cgroup) else {
        return vec![];
    };
    procs
        .iter()
        .filter(|p| p.pid != me.pid)
        .filter(|p| p.mnt_ns.as_ref() == Some(ns) && p.cgroup.as_ref() == Some(cg))
        .filter(|p| {
            let base = p.argv0.rsplit('/').next().unwrap_or("");
            base == "trace-runner" || base == "bpftrace"
        })
        .map(|p| p.pid)
        .collect()
}

fn proc_entry(dir: &std::path::Path, pid: u32) -> ProcEntry {
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let argv0 = cmdline.split(|b| *b == 0).next().unwrap_or_default();
    ProcEntry {
        pid,
        mnt_ns: std::fs::read_link(dir.join("ns/mnt"))
            .ok()
            .map(|p| p.display().to_string()),
        cgroup: std::fs::read_to_string(dir.join("cgroup")).ok(),
        argv0: String::from_utf8_lossy(argv0).into_owned(),
    }
}

/// `trace-runner stop`: SIGINT to the runners of this container (see [`runners_to_stop`]).
pub(crate) fn stop(proc_dir: &std::path::Path) -> Result<(), Failure> {
    let me = proc_entry(&proc_dir.join("self"), std::process::id());
    let entries = std::fs::read_dir(proc_dir)
        .map_err(|e| Failure(format!("error: cannot read {}: {e}", proc_dir.display()), 1))?;
    let procs: Vec<ProcEntry> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            Some(proc_entry(&e.path(), pid))
        })
        .collect();
    let pids = runners_to_stop(&me, &procs);
    if pids.is_empty() {
        return Err(Failure(
            "error: no trace-runner is running in this container (the trace has ended)".into(),
            1,
        ));
    }
    for pid in pids {
        if let Err(e) = crate::sys::signal::send(pid as i32, crate::sys::signal::SIGINT) {
            if e.raw_os_error() != Some(crate::sys::errno::ESRCH) {
                return Err(Failure(format!("error: cannot signal pid {pid}: {e}"), 1));
            }
        }
        println!("stopping trace-runner (pid {pid}): END runs and the maps are printed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_selects_runners_of_this_container_only() {
        let p = |pid, ns: &str, cg: &str, argv0: &str| ProcEntry {
            pid,
            mnt_ns: (!ns.is_empty()).then(|| ns.to_string()),
            cgroup: (!cg.is_empty()).then(|| cg.to_string()),
            argv0: argv0.to_string(),
        };
        let me = p(9, "mnt:[1]", "0::/pod/c1\n", "trace-runner");
        let procs = vec![
            p(1, "mnt:[0]", "0::/\n", "/sbin/init"),
            p(5, "mnt:[1]", "0::/pod/c1\n", "/usr/local/bin/trace-runner"),
            p(6, "mnt:[2]", "0::/pod/c2\n", "/usr/local/bin/trace-runner"),
            p(7, "mnt:[1]", "0::/other\n", "/usr/local/bin/trace-runner"),
            p(8, "mnt:[1]", "0::/pod/c1\n", "sleep"),
            p(9, "mnt:[1]", "0::/pod/c1\n", "trace-runner"),
            p(10, "", "", "trace-runner"),
            p(11, "mnt:[1]", "0::/pod/c1\n", "bpftrace"),
        ];
        assert_eq!(runners_to_stop(&me, &procs), vec![5, 11]);
        // Without its own namespace, nothing matches.
        let lost = p(9, "", "0::/pod/c1\n", "trace-runner");
        assert!(runners_to_stop(&lost, &procs).is_empty());
    }
}

#[cfg(test)]
mod attach_tests {
    use super::*;

    #[test]
    fn check_attach_prints_one_line_per_script_named_by_its_file() {
        assert_eq!(attach_line("a.bt", &Ok(3)), "a.bt: ok (3 probes)");
        assert_eq!(attach_line("a.bt", &Ok(1)), "a.bt: ok (1 probe)");
        // A located error already starts with the file.
        let located = Failure(
            "b.bt:2:3: error: unknown function 'nope'\n  nope();\n  ^~~~".into(),
            exit::SCRIPT,
        );
        assert_eq!(
            attach_line("b.bt", &Err(located)),
            "b.bt:2:3: error: unknown function 'nope'"
        );
        let loader = Failure(
            "error: the kernel's verifier rejected kprobe:f: EACCES\nverifier log (end):\n..."
                .into(),
            exit::FAILURE,
        );
        assert_eq!(
            attach_line("c.bt", &Err(loader)),
            "c.bt: error: the kernel's verifier rejected kprobe:f: EACCES"
        );
    }

    #[test]
    fn check_attach_fails_if_any_script_failed() {
        assert_eq!(attach_status(&[Ok(1), Ok(2)]), None);
        assert_eq!(
            attach_status(&[Ok(1), Err(exit::SCRIPT)]),
            Some(exit::SCRIPT)
        );
        assert_eq!(
            attach_status(&[Err(exit::SCRIPT), Err(exit::FAILURE), Ok(1)]),
            Some(exit::FAILURE)
        );
    }
}
