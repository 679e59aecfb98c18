//! The command line: subcommands, their arguments, and the failure type every
//! subcommand returns (a message and an exit code: 2 for script errors, 1 otherwise).
//!
//! Options are honoured wherever they stand, before or after the script file (GNU
//! getopt's permutation, as bpftrace does): the script's parameters `$1`, `$2`, ... are
//! the words that are not options, and every word after `--` is a parameter, so
//! `run sc.bt --pid 1 -- -5 --x` scopes to pid 1 and passes `-5` and `--x`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::sink::Format;
use trace_contract::args::{self, flag};
use trace_contract::exit;

#[derive(Parser)]
#[command(
    name = "trace-runner",
    version,
    about = "Run bpftrace-language scripts against this kernel, compiled in-process to eBPF"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Compile, load and run a script until exit(), Ctrl-C, SIGTERM or the deadline.
    #[command(override_usage = RUN_USAGE)]
    Run(Box<RunArgs>),
    /// Parse and analyse a script (exit 0 when valid); with --load, also load it through the verifier.
    #[command(override_usage = CHECK_USAGE)]
    Check {
        #[command(flatten)]
        script: ScriptArgs,
        /// Also generate code and load every program through the kernel verifier (no attach).
        #[arg(long)]
        load: bool,
        /// Load, then attach every probe and detach it at once (BEGIN and END do not run).
        /// Every FILE is a script of its own, checked in this one process (the kernel's
        /// BTF and the other node facts are read once), with one line per file on stdout:
        /// `FILE: ok (N probes)` or its error; exit status non-zero if any failed.
        #[arg(long)]
        attach: bool,
        /// Allow actions that change the system: signal().
        #[arg(long = "unsafe")]
        unsafe_actions: bool,
    },
    /// List the probes this node offers, like `bpftrace -l`.
    List {
        /// Only probes matching this pattern (`*` wildcards), e.g. 'tracepoint:syscalls:*open*'.
        pattern: Option<String>,
    },
    /// Speak bpftrace 0.17's command line (as when invoked under the name `bpftrace`):
    /// `trace-runner bpftrace -e PROGRAM`, `-c CMD`, `-l -v`, `--info`, ...; see `bpftrace -h`.
    #[command(disable_help_flag = true)]
    Bpftrace {
        /// bpftrace's arguments.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Stop the trace running in this container gracefully (SIGINT: END runs and the maps
    /// are printed), as `kubectl trace` does through `pods/exec` on Ctrl-C. Only runners in
    /// this process's own mount namespace and cgroup are signalled.
    Stop {
        /// Where /proc is (the pod's own, which shows the host's pids under hostPID).
        #[arg(long, value_name = "DIR", default_value = "/proc", hide = true)]
        proc_dir: PathBuf,
    },
    /// Compile a script and write the BPF ELF object the runner would load.
    #[command(override_usage = BUILD_USAGE)]
    Build {
        #[command(flatten)]
        script: ScriptArgs,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
    },
}

const RUN_USAGE: &str = "trace-runner run [OPTIONS] (-e PROGRAM | FILE) [[--] ARGS...]";
const CHECK_USAGE: &str = "trace-runner check [OPTIONS] (-e PROGRAM | FILE) [[--] ARGS...]
       trace-runner check --attach [--unsafe] FILE...";
const BUILD_USAGE: &str =
    "trace-runner build [OPTIONS] --output <OUTPUT> (-e PROGRAM | FILE) [[--] ARGS...]";

#[derive(Args, Clone)]
pub(crate) struct ScriptArgs {
    /// The program text.
    #[arg(short = flag::PROGRAM, value_name = "PROGRAM")]
    pub(crate) program: Option<String>,
    /// A script file (unless -e is given), then the positional parameters $1, $2, ...
    /// Options may follow the file; every word after `--` is a parameter (`-- -5`).
    #[arg(value_name = "FILE | ARGS")]
    pub(crate) positionals: Vec<String>,
}

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) script: ScriptArgs,
    /// Only trace tasks in this cgroup v2 directory (and its descendants).
    #[arg(long = flag::CGROUP, value_name = "PATH")]
    pub(crate) cgroup: Option<PathBuf>,
    /// Only trace this process.
    #[arg(long = flag::PID)]
    pub(crate) pid: Option<u32>,
    /// Stop after this long, e.g. 30s, 5m, 1h (plain numbers are seconds).
    #[arg(long = flag::DEADLINE, value_parser = parse_duration)]
    pub(crate) deadline: Option<Duration>,
    /// Output format.
    #[arg(long = flag::FORMAT, value_enum, default_value = "text")]
    pub(crate) format: Format,
    /// Trace only this pod (found on this node by UID, on any common cgroup layout); repeat
    /// for several pods on one node.
    #[arg(long = flag::POD_UID, value_name = "UID")]
    pub(crate) pod_uids: Vec<String>,
    /// Trace only this pod, found by NAMESPACE/NAME through the kubelet's log directories
    /// (scheduled traces: it finds a recreated pod again); repeatable.
    #[arg(long = flag::POD, value_name = "NAMESPACE/NAME")]
    pub(crate) pod_names: Vec<String>,
    /// Only these containers (IDs may carry containerd://, cri-o://, docker://).
    #[arg(long = flag::CONTAINER_ID, value_name = "ID")]
    pub(crate) container_ids: Vec<String>,
    /// With --pod: only these containers, by name.
    #[arg(long = flag::CONTAINER_NAME, value_name = "NAME")]
    pub(crate) container_names: Vec<String>,
    /// The host's /var/log as mounted in the trace pod (for --pod).
    #[arg(long = flag::HOST_LOGS, value_name = "DIR", default_value = args::DEFAULT_HOST_LOGS, hide = true)]
    pub(crate) host_logs: PathBuf,
    /// The host's /proc as mounted in the trace pod.
    #[arg(long = flag::HOST_PROC, value_name = "DIR", default_value = args::DEFAULT_HOST_PROC)]
    pub(crate) host_proc: PathBuf,
    /// Also write the output under DIR/<trace-id>/<start-UTC>/ (output.txt, meta.json).
    #[arg(long = flag::OUTPUT_DIR, value_name = "DIR", requires = "trace_id")]
    pub(crate) output_dir: Option<PathBuf>,
    /// The trace's id (names the persisted output directory).
    #[arg(long = flag::TRACE_ID, value_name = "ID")]
    pub(crate) trace_id: Option<String>,
    /// What is traced, recorded in meta.json (e.g. pod/shop/web-0).
    #[arg(long = flag::TARGET, value_name = "TARGET", hide = true)]
    pub(crate) target: Option<String>,
    /// Compiled objects: the binary of bare `uprobe` sections, as PATH[:SYMBOL[+OFF]]
    /// (inside the container's filesystem for pod targets).
    #[arg(long = flag::UPROBE_TARGET, value_name = "PATH")]
    pub(crate) uprobe_target: Option<String>,
    /// Compiled objects: sampling frequency of perf_event programs, on every CPU (default 99).
    #[arg(long = flag::SAMPLE_HZ, value_name = "N")]
    pub(crate) sample_hz: Option<u64>,
    /// At exit, also write an SVG flame graph of the stack maps (e.g. of
    /// `profile:hz:99 { @[ustack, kstack] = count(); }`) to this file.
    #[arg(long = flag::FLAMEGRAPH, value_name = "FILE.svg")]
    pub(crate) flamegraph: Option<PathBuf>,
    /// Allow actions that change the system: signal().
    #[arg(long = flag::UNSAFE)]
    pub(crate) unsafe_actions: bool,
    /// Warn when a map helper fails: `-k` deletes and updates, `-kk` lookups too (as
    /// bpftrace's -k/-kk).
    #[arg(short = 'k', action = clap::ArgAction::Count)]
    pub(crate) helper_checks: u8,
    /// Start this command (split on spaces, as bpftrace's -c), held until the probes are
    /// attached; `cpid` is its pid, and the run ends when it exits.
    #[arg(short = 'c', long = flag::COMMAND, value_name = "CMD")]
    pub(crate) command: Option<String>,
    /// No "Attaching N probes..." line.
    #[arg(short = 'q', long = flag::QUIET)]
    pub(crate) quiet: bool,
    /// Write the output to FILE instead of stdout.
    #[arg(short = 'o', long = flag::OUTPUT, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// After the maps printed at exit, one line with them as JSON for `kubectl trace
    /// --merge` (`trace_contract::maps`).
    #[arg(long = flag::EMIT_MAPS)]
    pub(crate) emit_maps: bool,
    /// Print `__BPFTRACE_NOTIFY_PROBES_ATTACHED` on stderr once attached (bpftrace mode).
    #[arg(skip)]
    pub(crate) notify_attached: bool,
}

/// Parse `30s`, `5m`, `1h`, `250ms`, or plain seconds.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
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

/// A failure: message and exit code ([`exit::SCRIPT`] for script errors, else [`exit::FAILURE`]).
pub(crate) struct Failure(pub(crate) String, pub(crate) u8);

impl ScriptArgs {
    /// The script file, when the program does not come from -e.
    pub(crate) fn file(&self) -> Option<PathBuf> {
        match self.program {
            Some(_) => None,
            None => self.positionals.first().map(PathBuf::from),
        }
    }

    /// Positional parameters `$1`, `$2`, ...
    pub(crate) fn params(&self) -> &[String] {
        let skip = usize::from(self.program.is_none()).min(self.positionals.len());
        &self.positionals[skip..]
    }

    pub(crate) fn source(&self) -> Result<(String, String), Failure> {
        match (&self.program, &self.file()) {
            (Some(p), _) => Ok(("stdin".to_string(), p.clone())),
            (None, Some(f)) => {
                let name = f.display().to_string();
                let bytes = std::fs::read(f).map_err(|e| {
                    Failure(format!("error: cannot read {name}: {e}"), exit::SCRIPT)
                })?;
                let src = script_text(&name, bytes).map_err(|msg| Failure(msg, exit::SCRIPT))?;
                Ok((name, src))
            }
            (None, None) => Err(Failure(
                "error: give a program with -e or a script file".into(),
                exit::SCRIPT,
            )),
        }
    }
}

/// A script file's text; bytes that are not UTF-8 are an error located at the first bad
/// byte (`FILE:LINE:COL: error: ...`, the line with the bad bytes shown as U+FFFD, a caret).
pub(crate) fn script_text(name: &str, bytes: Vec<u8>) -> Result<String, String> {
    let e = match String::from_utf8(bytes) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    let at = e.utf8_error().valid_up_to();
    let bytes = e.into_bytes();
    let bad_len = match std::str::from_utf8(&bytes[at..]) {
        Err(e) => e.error_len().unwrap_or(bytes.len() - at),
        Ok(_) => 1,
    };
    let bad: Vec<String> = bytes[at..at + bad_len]
        .iter()
        .map(|b| format!("0x{b:02x}"))
        .collect();
    // The valid prefix is unchanged by the lossy decoding: `at` is the U+FFFD's offset.
    let lossy = String::from_utf8_lossy(&bytes);
    let diag = trace_lang::Diagnostic::new(
        trace_lang::span::Span::new(at, at + '\u{fffd}'.len_utf8()),
        format!(
            "invalid UTF-8 (byte {}): scripts must be UTF-8 text",
            bad.join(" ")
        ),
    );
    Err(diag.render(name, &lossy).trim_end().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_located_at_the_first_bad_byte() {
        let src = b"BEGIN {\n  printf(\"caf\xe9 %d\\n\", 1);\n}\n".to_vec();
        let msg = script_text("sc.bt", src).unwrap_err();
        let lines: Vec<&str> = msg.lines().collect();
        assert_eq!(
            lines[0],
            "sc.bt:2:14: error: invalid UTF-8 (byte 0xe9): scripts must be UTF-8 text"
        );
        assert_eq!(lines[1], "  printf(\"caf\u{fffd} %d\\n\", 1);");
        assert_eq!(lines[2], "             ^");
        assert_eq!(lines.len(), 3);
        // A multi-byte character before the bad byte counts as one column.
        let msg = script_text("x", "é\u{263a}".bytes().chain([0xff, b'a']).collect()).unwrap_err();
        assert!(
            msg.starts_with("x:1:3: error: invalid UTF-8 (byte 0xff)"),
            "{msg}"
        );
        assert_eq!(script_text("x", b"ok".to_vec()).unwrap(), "ok");
    }

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

/// The plugin builds the runner's argv with [`trace_contract::RunnerArgs::to_argv`]: every
/// argv it can produce must parse back, through this parser, to the same values.
#[cfg(test)]
mod contract_round_trip {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use trace_contract::{OutputFormat, Program, RunnerArgs};

    fn path_text(p: &std::path::Path) -> String {
        p.to_str().expect("UTF-8 path").to_string()
    }

    /// What the runner understood, in the contract's terms.
    fn understood(argv: &[String]) -> Result<RunnerArgs, String> {
        let cli = Cli::try_parse_from(
            std::iter::once("trace-runner".to_string()).chain(argv.iter().cloned()),
        )
        .map_err(|e| e.to_string())?;
        let Command::Run(a) = cli.command else {
            return Err("not the run subcommand".into());
        };
        let program = match (&a.script.program, a.script.file()) {
            (Some(p), _) => Program::Inline(p.clone()),
            (None, Some(f)) => Program::File(path_text(&f)),
            (None, None) => return Err("no program".into()),
        };
        Ok(RunnerArgs {
            program,
            params: a.script.params().to_vec(),
            cgroup: a.cgroup.as_deref().map(path_text),
            pid: a.pid,
            deadline: a.deadline,
            format: match a.format {
                Format::Text => OutputFormat::Text,
                Format::Json => OutputFormat::Json,
                Format::Folded => OutputFormat::Folded,
            },
            pod_uids: a.pod_uids.clone(),
            pod_names: a.pod_names.clone(),
            container_ids: a.container_ids.clone(),
            container_names: a.container_names.clone(),
            host_logs: path_text(&a.host_logs),
            host_proc: path_text(&a.host_proc),
            output_dir: a.output_dir.as_deref().map(path_text),
            trace_id: a.trace_id.clone(),
            target: a.target.clone(),
            uprobe_target: a.uprobe_target.clone(),
            sample_hz: a.sample_hz,
            flamegraph: a.flamegraph.as_deref().map(path_text),
            unsafe_actions: a.unsafe_actions,
            command: a.command.clone(),
            quiet: a.quiet,
            output: a.output.as_deref().map(path_text),
            emit_maps: a.emit_maps,
        })
    }

    /// Words as scripts, paths and ids may have them: leading `-`, `=`, `--`, spaces,
    /// non-ASCII, empty.
    fn word() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9/._]{1,10}",
            "[-=a-z/ é:]{0,8}",
            Just("--".to_string()),
            Just("-".to_string()),
            Just("-e".to_string()),
            Just("--pid".to_string()),
        ]
    }

    /// Paths are never empty (clap's path parser refuses an empty one).
    fn path() -> impl Strategy<Value = String> {
        word().prop_filter("a path is not empty", |w| !w.is_empty())
    }

    fn args() -> impl Strategy<Value = RunnerArgs> {
        let program = prop_oneof![
            word().prop_map(Program::Inline),
            path().prop_map(Program::File)
        ];
        let scope = (
            proptest::option::of(path()),
            proptest::option::of(any::<u32>()),
            proptest::option::of((0u64..10_000_000).prop_map(std::time::Duration::from_millis)),
            prop_oneof![
                Just(OutputFormat::Text),
                Just(OutputFormat::Json),
                Just(OutputFormat::Folded)
            ],
            proptest::collection::vec(word(), 0..3),
            proptest::collection::vec(word(), 0..3),
            proptest::collection::vec(word(), 0..3),
            proptest::collection::vec(word(), 0..3),
        );
        let rest = (
            path(),
            path(),
            // --output-dir needs --trace-id; a trace id may come alone.
            proptest::option::of((proptest::option::of(path()), word())),
            proptest::option::of(word()),
            proptest::option::of(word()),
            proptest::option::of(any::<u64>()),
            proptest::option::of(path()),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            proptest::option::of(word()),
            proptest::option::of(path()),
        );
        (
            program,
            proptest::collection::vec(word(), 0..4),
            scope,
            rest,
        )
            .prop_map(|(program, params, scope, rest)| {
                let (cgroup, pid, deadline, format, pod_uids, pod_names, cids, cnames) = scope;
                let (host_logs, host_proc, persist, target, uprobe, hz, flame, switches, cmd, out) =
                    rest;
                let (output_dir, trace_id) = match persist {
                    Some((dir, id)) => (dir, Some(id)),
                    None => (None, None),
                };
                RunnerArgs {
                    program,
                    params,
                    cgroup,
                    pid,
                    deadline,
                    format,
                    pod_uids,
                    pod_names,
                    container_ids: cids,
                    container_names: cnames,
                    host_logs,
                    host_proc,
                    output_dir,
                    trace_id,
                    target,
                    uprobe_target: uprobe,
                    sample_hz: hz,
                    flamegraph: flame,
                    unsafe_actions: switches.0,
                    command: cmd,
                    quiet: switches.1,
                    output: out,
                    emit_maps: switches.2,
                }
            })
    }

    #[test]
    fn every_built_argv_parses_back_to_the_same_values() {
        let config = Config {
            cases: 500,
            failure_persistence: None,
            ..Config::default()
        };
        let rng = TestRng::deterministic_rng(RngAlgorithm::ChaCha);
        TestRunner::new_with_rng(config, rng)
            .run(&args(), |a| {
                let argv = a.to_argv();
                let back = understood(&argv)
                    .map_err(|e| TestCaseError::fail(format!("{argv:?} does not parse: {e}")))?;
                prop_assert_eq!(back, a, "argv {:?}", argv);
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn defaults_agree() {
        let argv = RunnerArgs {
            program: Program::File("x.bt".into()),
            ..RunnerArgs::default()
        }
        .to_argv();
        assert_eq!(argv, ["run", "--", "x.bt"]);
        assert_eq!(
            understood(&argv).unwrap(),
            RunnerArgs {
                program: Program::File("x.bt".into()),
                ..RunnerArgs::default()
            }
        );
    }
}
