//! The `check`, `build` and `list` subcommands, and the compile step they share with
//! `run`: front end (`trace_lang::check`) then code generation, with errors rendered
//! as `FILE:LINE:COL`, the line and a caret.

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
    params: &[String],
    env: &(dyn NodeFacts + Sync),
    opts: CodegenOptions,
) -> Result<codegen::Compiled, Failure> {
    let render = |d: trace_lang::Diagnostic| {
        Failure(d.render(name, src).trim_end().to_string(), exit::SCRIPT)
    };
    let opts = CodegenOptions {
        params: params.to_vec(),
        ..opts
    };
    // Front end and code generation on one thread with the compiler's stack: both recurse
    // over the tree as deeply as it nests.
    let compiled = trace_lang::with_stack(|| {
        let mut program = trace_lang::parser::parse_with_params(src, params)?;
        let analysis = trace_lang::sema::analyse(&mut program, env)?;
        codegen::generate(&program, &analysis, env, &opts)
    })
    .map(|mut compiled| {
        for check in &mut compiled.helper_errors {
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
    // Checked without a target: `$container_pid` stands for some pid.
    let src = substitute_container_pid(&src, Some(trace_contract::container_pid::PLACEHOLDER))?;
    compile_source(&name, &src, script.params(), env, opts)
}

pub(crate) fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
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
    let src = substitute_container_pid(&src, Some(trace_contract::container_pid::PLACEHOLDER))?;
    let compiled = compile_source(&name, &src, script.params(), &env, opts)?;
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

/// kubectl-trace (Go) scripts use `$container_pid`: the target container's main process
/// (see [`trace_contract::container_pid`]).
pub(crate) fn substitute_container_pid(src: &str, pid: Option<u32>) -> Result<String, Failure> {
    use trace_contract::container_pid;
    if !container_pid::uses(src) {
        return Ok(src.to_string());
    }
    let pid = pid.ok_or_else(|| {
        Failure(
            "error: $container_pid needs a pod target (--pod-uid)".into(),
            exit::SCRIPT,
        )
    })?;
    Ok(container_pid::substitute(src, pid))
}
