//! `trace-runner`: compiles bpftrace-language scripts to eBPF in-process and runs
//! them against the local kernel (no LLVM, clang, headers or bpftrace needed).
//!
//! Pipeline: `trace_lang` (lex, parse, analyse) → [`compile`] (codegen, object
//! emission) → [`runtime`] (aya load/attach, events, maps) → [`output`] (bpftrace's
//! text or JSON) through a [`sink::Sink`].

mod compile;
mod output;
mod runtime;
mod scope;
mod sink;
mod symbols;
mod tracefs;
mod persist;
mod pod;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use compile::codegen::{self, CodegenOptions};
use runtime::{Session, StopReason};
use sink::{Format, Sink};
use tracefs::Tracefs;

#[derive(Parser)]
#[command(name = "trace-runner", version, about = "Run bpftrace-language scripts against this kernel, compiled in-process to eBPF")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile, load and run a script until exit(), Ctrl-C, SIGTERM or the deadline.
    Run(RunArgs),
    /// Parse and analyse a script (exit 0 when valid); with --load, also load it through the verifier.
    Check {
        #[command(flatten)]
        script: ScriptArgs,
        /// Also generate code and load every program through the kernel verifier (no attach).
        #[arg(long)]
        load: bool,
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
    #[arg(short = 'e', value_name = "PROGRAM", conflicts_with = "file")]
    program: Option<String>,
    /// A script file.
    #[arg(value_name = "FILE", required_unless_present = "program")]
    file: Option<PathBuf>,
    /// Positional parameters for $1, $2, ...
    #[arg(value_name = "ARGS", trailing_var_arg = true)]
    params: Vec<String>,
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
}

/// Parse `30s`, `5m`, `1h`, `250ms`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration '{s}' (e.g. 30s, 5m, 1h)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" | "" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in '{s}' (use ms, s, m or h)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

/// A failure: message and exit code (2 for script errors).
struct Failure(String, u8);

impl ScriptArgs {
    fn source(&self) -> Result<(String, String), Failure> {
        match (&self.program, &self.file) {
            (Some(p), _) => Ok(("stdin".to_string(), p.clone())),
            (None, Some(f)) => std::fs::read_to_string(f)
                .map(|s| (f.display().to_string(), s))
                .map_err(|e| Failure(format!("error: cannot read {}: {e}", f.display()), 2)),
            (None, None) => Err(Failure("error: give a program with -e or a script file".into(), 2)),
        }
    }
}

struct Compiled {
    compiled: codegen::Compiled,
}

fn compile_script(script: &ScriptArgs, env: &Tracefs, opts: CodegenOptions) -> Result<Compiled, Failure> {
    let (name, src) = script.source()?;
    let render = |d: trace_lang::Diagnostic| Failure(d.render(&name, &src).trim_end().to_string(), 2);
    let (program, analysis) = trace_lang::check(&src, env).map_err(render)?;
    let opts = CodegenOptions { params: script.params.clone(), ..opts };
    let compiled = codegen::generate(&program, &analysis, env, &opts).map_err(render)?;
    Ok(Compiled { compiled })
}

fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn base_options() -> CodegenOptions {
    CodegenOptions { start_ns: monotonic_ns(), cgroup_id_of: Some(scope::cgroup_id_of), ..Default::default() }
}

fn run(args: RunArgs) -> Result<(), Failure> {
    let env = Tracefs::open();
    let mut opts = base_options();
    let cgroup = match &args.cgroup {
        Some(path) => Some(scope::resolve_cgroup(path).map_err(|e| Failure(format!("error: {e}"), 1))?),
        None => None,
    };
    opts.cgroup = cgroup.as_ref().map(|c| (c.id, c.level));
    opts.pid = args.pid;
    let Compiled { compiled } = compile_script(&args.script, &env, opts)?;
    runtime::raise_memlock();
    let mut session = Session::load(compiled).map_err(|e| Failure(format!("error: {e}"), 1))?;
    runtime::install_signal_handlers();
    let mut sink = Sink::new(args.format, None);
    sink.attached(session.probe_count());
    session.attach(cgroup.as_ref().map(|c| c.path.as_path())).map_err(|e| Failure(format!("error: {e}"), 1))?;
    session.run_begin().map_err(|e| Failure(format!("error: {e}"), 1))?;
    let reason = runtime::event_loop(&mut session, &mut sink, args.deadline).map_err(|e| Failure(format!("error: {e}"), 1))?;
    session.detach_all();
    if reason != StopReason::Exit || !session.compiled.programs.is_empty() {
        session.run_end().map_err(|e| Failure(format!("error: {e}"), 1))?;
    }
    runtime::drain_events(&mut session, &mut sink);
    runtime::print_all_maps(&session, &mut sink);
    let lost = session.lost_events();
    if lost > 0 {
        sink.lost(lost);
    }
    Ok(())
}

fn check(script: ScriptArgs, load: bool) -> Result<(), Failure> {
    let env = Tracefs::open();
    let Compiled { compiled } = compile_script(&script, &env, base_options())?;
    if load {
        runtime::raise_memlock();
        let n = compiled.programs.len();
        Session::load(compiled).map_err(|e| Failure(format!("error: {e}"), 1))?;
        eprintln!("{n} program{} loaded through the verifier", if n == 1 { "" } else { "s" });
    }
    Ok(())
}

fn build(script: ScriptArgs, output: PathBuf) -> Result<(), Failure> {
    let env = Tracefs::open();
    let Compiled { compiled } = compile_script(&script, &env, base_options())?;
    let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
    let elf = compile::object_file::emit(&programs, &compiled.maps).map_err(|e| Failure(format!("error: {e}"), 1))?;
    std::fs::write(&output, elf).map_err(|e| Failure(format!("error: cannot write {}: {e}", output.display()), 1))
}

fn list(pattern: Option<String>) -> Result<(), Failure> {
    let env = Tracefs::open();
    if !env.is_available() {
        return Err(Failure("error: tracefs is not available (mount -t tracefs tracefs /sys/kernel/tracing)".into(), 1));
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
        if pattern.as_ref().is_none_or(|p| tracefs::glob_match(p, &name)) {
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
        Command::Run(args) => run(args),
        Command::Check { script, load } => check(script, load),
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
