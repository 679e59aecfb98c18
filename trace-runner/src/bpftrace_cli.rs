//! bpftrace 0.17's command line: `trace-runner` invoked under the name `bpftrace` (a
//! symlink), or as `trace-runner bpftrace ARGS`. This module owns the parsing (GNU
//! getopt_long rules as bpftrace uses them: clustered short options, attached or
//! separate arguments, unambiguous long-option prefixes, permutation, `--`), the
//! translation into the runner's own actions (`run`, `list`, a dry run, `--info`), and
//! bpftrace's usage, version and error lines. The parsing is pure; [`main`] acts.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::cli::{Failure, RunArgs, ScriptArgs};
use crate::sink::Format;
// Moved next to their users; the old paths stay.
#[allow(unused_imports)]
pub(crate) use crate::run::{resolve_program, split_command};
#[allow(unused_imports)]
pub(crate) use crate::tracefs::format_field_decls;

/// What `bpftrace ARGS` asks for.
#[derive(Debug, PartialEq)]
pub(crate) enum Action {
    /// Trace: the options of a run.
    Run(Box<Options>),
    /// `-l [PATTERN]` (with `-v`: probe arguments; with `-p PID`: the probes of a process).
    List {
        pattern: Option<String>,
        verbose: bool,
        pid: Option<u32>,
    },
    /// `-d`/`-dd` or `--emit-elf FILE`: compile only (the ELF written to FILE).
    DryRun {
        options: Box<Options>,
        emit_elf: Option<PathBuf>,
    },
    Help,
    Version,
    Info,
}

/// The options of a run, as bpftrace's command line gives them.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Options {
    pub(crate) program: Option<String>,
    /// The script file (`-` is stdin) unless `-e`, then the parameters.
    pub(crate) positionals: Vec<String>,
    pub(crate) command: Option<String>,
    pub(crate) pid: Option<u32>,
    pub(crate) quiet: bool,
    pub(crate) output: Option<PathBuf>,
    pub(crate) format: Option<Format>,
    pub(crate) unsafe_actions: bool,
    /// `-k` count (1: `-k`, 2: `-kk`).
    pub(crate) helper_checks: u8,
    pub(crate) includes: Vec<String>,
    pub(crate) include_dirs: Vec<String>,
}

/// A command-line error: the message, and whether bpftrace shows its usage after it.
#[derive(Debug, PartialEq)]
pub(crate) struct UsageError {
    pub(crate) message: String,
    pub(crate) usage: bool,
}

fn usage_err(message: impl Into<String>, usage: bool) -> UsageError {
    UsageError {
        message: message.into(),
        usage,
    }
}

/// Short options that take an argument, and those that do not (bpftrace 0.17's
/// `getopt_long` string `dbB:f:e:hlp:vqc:Vo:I:k`).
const SHORT_WITH_ARG: &str = "BfepcoI";
const SHORT_FLAGS: &str = "dbhlvqVk";
/// Long options: name and whether it takes an argument.
const LONG: [(&str, bool); 10] = [
    ("help", false),
    ("version", false),
    ("usdt-file-activation", false),
    ("unsafe", false),
    ("btf", false),
    ("include", true),
    ("info", false),
    ("no-warnings", false),
    ("emit-elf", true),
    ("emit-llvm", true),
];

/// One option as getopt returns it.
#[derive(Debug, PartialEq)]
enum Opt {
    Short(char, Option<String>),
    Long(&'static str, Option<String>),
}

/// getopt_long with permutation: the options, and the other words in order (every word
/// after `--` is one of them).
fn getopt(args: &[String]) -> Result<(Vec<Opt>, Vec<String>), UsageError> {
    let mut opts = Vec::new();
    let mut words = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "--" {
            words.extend(args[i..].iter().cloned());
            break;
        }
        if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let exact = LONG.iter().find(|(n, _)| *n == name);
            let matches: Vec<_> = LONG.iter().filter(|(n, _)| n.starts_with(name)).collect();
            let (full, takes) = match (exact, matches.as_slice()) {
                (Some(e), _) => *e,
                (None, [one]) => **one,
                (None, []) => {
                    return Err(usage_err(
                        format!("bpftrace: unrecognized option '--{name}'"),
                        true,
                    ))
                }
                (None, _) => {
                    return Err(usage_err(
                        format!("bpftrace: option '--{name}' is ambiguous"),
                        true,
                    ))
                }
            };
            let value = match (takes, inline) {
                (false, Some(_)) => {
                    return Err(usage_err(
                        format!("bpftrace: option '--{full}' doesn't allow an argument"),
                        true,
                    ))
                }
                (false, None) => None,
                (true, Some(v)) => Some(v),
                (true, None) => match args.get(i) {
                    Some(v) => {
                        i += 1;
                        Some(v.clone())
                    }
                    None => {
                        return Err(usage_err(
                            format!("bpftrace: option '--{full}' requires an argument"),
                            true,
                        ))
                    }
                },
            };
            opts.push(Opt::Long(full, value));
            continue;
        }
        let Some(cluster) = a.strip_prefix('-').filter(|c| !c.is_empty()) else {
            words.push(a.clone());
            continue;
        };
        for (at, c) in cluster.char_indices() {
            if SHORT_WITH_ARG.contains(c) {
                let rest = &cluster[at + c.len_utf8()..];
                let value = if !rest.is_empty() {
                    rest.to_string()
                } else if let Some(v) = args.get(i) {
                    i += 1;
                    v.clone()
                } else {
                    return Err(usage_err(
                        format!("bpftrace: option requires an argument -- '{c}'"),
                        true,
                    ));
                };
                opts.push(Opt::Short(c, Some(value)));
                break;
            } else if SHORT_FLAGS.contains(c) {
                opts.push(Opt::Short(c, None));
            } else {
                return Err(usage_err(
                    format!("bpftrace: invalid option -- '{c}'"),
                    true,
                ));
            }
        }
    }
    Ok((opts, words))
}

/// The kernel's largest possible pid (PID_MAX_LIMIT on 64-bit), bpftrace's bound for -p.
const PID_MAX_LIMIT: u64 = 4_194_304;

/// Parse bpftrace's arguments (without argv[0]).
pub(crate) fn parse(args: &[String]) -> Result<Action, UsageError> {
    let (opts, words) = getopt(args)?;
    let mut o = Options {
        positionals: words,
        ..Options::default()
    };
    let (mut list, mut verbose, mut help, mut version, mut info, mut debug) =
        (false, false, false, false, false, false);
    let mut emit_elf = None;
    for opt in opts {
        match opt {
            Opt::Short('e', v) => o.program = v,
            Opt::Short('c', v) => o.command = v,
            Opt::Short('o', v) => o.output = v.map(PathBuf::from),
            Opt::Short('I', Some(v)) => o.include_dirs.push(v),
            Opt::Short('p', Some(v)) => {
                let pid: u64 = v.trim().parse().map_err(|_| {
                    usage_err(
                        format!("ERROR: pid '{v}' is not a valid decimal number"),
                        false,
                    )
                })?;
                if !(1..=PID_MAX_LIMIT).contains(&pid) {
                    return Err(usage_err(
                        format!("ERROR: pid '{v}' out of valid pid range [1,{PID_MAX_LIMIT}]"),
                        false,
                    ));
                }
                o.pid = Some(pid as u32);
            }
            Opt::Short('f', Some(v)) => {
                o.format = Some(match v.as_str() {
                    "text" => Format::Text,
                    "json" => Format::Json,
                    _ => {
                        return Err(usage_err(
                            format!(
                            "ERROR: Invalid output format \"{v}\"\nValid formats: 'text', 'json'"
                        ),
                            false,
                        ))
                    }
                })
            }
            Opt::Short('B', Some(v)) if !matches!(v.as_str(), "line" | "full" | "none") => {
                return Err(usage_err(
                    "ERROR: USAGE: -B must be either 'line', 'full', or 'none'.",
                    false,
                ));
            }
            Opt::Short('l', _) => list = true,
            Opt::Short('v', _) => verbose = true,
            Opt::Short('q', _) => o.quiet = true,
            Opt::Short('k', _) => o.helper_checks = o.helper_checks.saturating_add(1),
            Opt::Short('d', _) => debug = true,
            Opt::Short('h', _) | Opt::Long("help", _) => help = true,
            Opt::Short('V', _) | Opt::Long("version", _) => version = true,
            Opt::Long("info", _) => info = true,
            Opt::Long("unsafe", _) => o.unsafe_actions = true,
            Opt::Long("include", Some(v)) => o.includes.push(v),
            Opt::Long("emit-elf", v) => emit_elf = v.map(PathBuf::from),
            Opt::Long("emit-llvm", _) => return Err(usage_err(
                "ERROR: --emit-llvm: trace-runner generates eBPF without LLVM, there is no LLVM IR",
                false,
            )),
            // -b (BTF, bpftrace's default), --btf, --no-warnings, --usdt-file-activation:
            // accepted; what they change (nothing here) is in `--help`.
            _ => {}
        }
    }
    if help {
        return Ok(Action::Help);
    }
    if version {
        return Ok(Action::Version);
    }
    if info {
        return Ok(Action::Info);
    }
    if o.command.is_some() && o.pid.is_some() {
        return Err(usage_err("ERROR: USAGE: Cannot use both -c and -p.", true));
    }
    if list {
        if o.program.is_some() {
            return Err(usage_err(
                "ERROR: -l with -e (the probes of a program) is not supported by trace-runner",
                false,
            ));
        }
        if o.positionals.len() > 1 {
            return Err(usage_err(
                "ERROR: -l takes at most one search pattern",
                true,
            ));
        }
        if let Some(p) = o.positionals.first() {
            search_pattern_problem(p).map_or(Ok(()), |m| Err(usage_err(m, false)))?;
        }
        return Ok(Action::List {
            pattern: o.positionals.pop(),
            verbose,
            pid: o.pid,
        });
    }
    if o.program.is_none() && o.positionals.is_empty() {
        return Err(usage_err("", true));
    }
    if debug || emit_elf.is_some() {
        return Ok(Action::DryRun {
            options: Box::new(o),
            emit_elf,
        });
    }
    Ok(Action::Run(Box::new(o)))
}

/// A `-l` search pattern with a character no probe name has: bpftrace's lexer error (the
/// pattern is its program `stdin`), with the pattern and a marker under the character.
pub(crate) fn search_pattern_problem(pattern: &str) -> Option<String> {
    let ok = |c: char| c.is_ascii_alphanumeric() || "_-*:./?[]+,@!{}~=".contains(c);
    let (at, c) = pattern.char_indices().find(|&(_, c)| !ok(c))?;
    let col = pattern[..at].chars().count() + 1;
    Some(format!(
        "stdin:1:{col}-{}: ERROR: invalid character '{c}'\n{pattern}\n{}~",
        col + 1,
        " ".repeat(col - 1)
    ))
}

/// `--include FILE`: found as a path, in a `-I` directory or in the system include
/// directories (else bpftrace's clang fails with this line).
pub(crate) fn include_problem(file: &str, dirs: &[String]) -> Option<String> {
    let system = [
        "/usr/local/include",
        "/usr/include",
        "/usr/include/x86_64-linux-gnu",
    ];
    let found = Path::new(file).is_file()
        || dirs
            .iter()
            .map(String::as_str)
            .chain(system)
            .any(|d| Path::new(d).join(file).is_file());
    (!found).then(|| format!("fatal error: '{file}' file not found"))
}

/// The files a program's `#include <FILE>` / `#include "FILE"` lines name.
pub(crate) fn script_includes(program: &str) -> Vec<String> {
    program
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix('#'))
        .filter_map(|l| l.trim_start().strip_prefix("include"))
        .filter_map(|l| {
            let l = l.trim();
            let close = match l.chars().next()? {
                '<' => '>',
                '"' => '"',
                _ => return None,
            };
            let rest = &l[1..];
            Some(rest[..rest.find(close)?].to_string())
        })
        .collect()
}

pub(crate) const USAGE: &str = "USAGE:
    bpftrace [options] filename
    bpftrace [options] - <stdin input>
    bpftrace [options] -e 'program'

OPTIONS:
    -B MODE        output buffering mode ('line', 'full', 'none')
    -f FORMAT      output format ('text', 'json')
    -o file        redirect bpftrace output to file
    -e 'program'   execute this program
    -h, --help     show this help message
    -I DIR         add the directory to the include search path
    --include FILE add an #include file before preprocessing
    -l [search]    list probes
    -p PID         enable USDT probes on PID
    -c 'CMD'       run CMD and enable USDT probes on resulting process
    --usdt-file-activation
                   activate usdt semaphores based on file path
    --unsafe       allow unsafe builtin functions
    -q             keep messages quiet
    --info         Print information about kernel BPF support
    -k             emit a warning when a bpf helper returns an error (except read functions)
    -kk            check all bpf helper functions
    -V, --version  bpftrace version
    --no-warnings  disable all warning messages

TROUBLESHOOTING OPTIONS:
    -v                      verbose messages
    -d                      (dry run) debug info
    -dd                     (dry run) verbose debug info
    --emit-elf FILE         (dry run) generate ELF file with bpf programs and write to FILE
    --emit-llvm FILE        write LLVM IR to FILE.original.ll and FILE.optimized.ll

TRACE-RUNNER NOTES:
    This is trace-runner speaking bpftrace 0.17's command line. Accepted with no effect:
    -B (output is written in batches, flushed after each batch of events), -v when
    tracing, -b/--btf (types always come from BTF), -I and --include (checked to exist,
    no C preprocessor: kernel types come from BTF, macros are not expanded),
    --usdt-file-activation, --no-warnings. -k/-kk report failed map helpers (delete and
    update; -kk lookups too).
    -p scopes every probe to the process (trace-runner's --pid). -d compiles without
    running and prints no AST; --emit-llvm is an error (no LLVM).

ENVIRONMENT:
    BPFTRACE_MAP_KEYS_MAX       [default: 4096] max keys in a map
    __BPFTRACE_NOTIFY_PROBES_ATTACHED
                                when set, print this name on stderr once attached

EXAMPLES:
bpftrace -l '*sleep*'
    list probes containing \"sleep\"
bpftrace -e 'tracepoint:syscalls:sys_enter_nanosleep { printf(\"PID %d sleeping...\\n\", pid); }'
    trace processes calling sleep
bpftrace -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'
    count syscalls by process name
";

pub(crate) fn version_line() -> String {
    format!(
        "bpftrace v0.17.0-compatible (trace-runner {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The runner's options of a bpftrace run.
pub(crate) fn run_args(o: Options) -> RunArgs {
    RunArgs {
        script: ScriptArgs {
            program: o.program,
            positionals: o.positionals,
        },
        cgroup: None,
        pid: o.pid,
        deadline: None,
        format: o.format.unwrap_or(Format::Text),
        pod_uids: Vec::new(),
        pod_names: Vec::new(),
        container_ids: Vec::new(),
        container_names: Vec::new(),
        host_logs: PathBuf::from("/var/log"),
        host_proc: PathBuf::from("/proc"),
        output_dir: None,
        trace_id: None,
        target: None,
        uprobe_target: None,
        sample_hz: None,
        flamegraph: None,
        unsafe_actions: o.unsafe_actions,
        helper_checks: o.helper_checks,
        command: o.command,
        quiet: o.quiet,
        output: o.output,
        emit_maps: false,
        notify_attached: std::env::var_os("__BPFTRACE_NOTIFY_PROBES_ATTACHED").is_some(),
    }
}

/// `-` as the script file is stdin: read here, once (the run looks at a file twice: for a
/// compiled object, then as a script); bpftrace also calls it `stdin` in messages.
fn stdin_script(o: &mut Options) -> Result<(), Failure> {
    if o.program.is_none() && o.positionals.first().is_some_and(|f| f == "-") {
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .map_err(|e| Failure(format!("error: cannot read the program from stdin: {e}"), 2))?;
        o.program = Some(crate::cli::script_text("stdin", bytes).map_err(|m| Failure(m, 2))?);
        o.positionals.remove(0);
    }
    Ok(())
}

fn act(action: Action) -> Result<(), Failure> {
    match action {
        Action::Help => {
            eprint!("{USAGE}");
            Ok(())
        }
        Action::Version => {
            println!("{}", version_line());
            Ok(())
        }
        Action::Info => {
            // On stderr, as bpftrace prints it.
            eprint!("{}", crate::bpf_info::report());
            Ok(())
        }
        Action::List {
            pattern,
            verbose,
            pid,
        } => crate::commands::list_bpftrace(pattern, verbose, pid),
        Action::DryRun {
            mut options,
            emit_elf,
        } => {
            stdin_script(&mut options)?;
            check_file(&options)?;
            check_includes(&options)?;
            let script = ScriptArgs {
                program: options.program,
                positionals: options.positionals,
            };
            match emit_elf {
                Some(out) => crate::commands::build(script, out),
                None => {
                    crate::commands::check(script, false, options.unsafe_actions)?;
                    eprintln!("dry run: the program compiles (trace-runner prints no AST)");
                    Ok(())
                }
            }
        }
        Action::Run(mut options) => {
            stdin_script(&mut options)?;
            check_file(&options)?;
            check_includes(&options)?;
            crate::run::run(run_args(*options))
        }
    }
}

/// A script file that cannot be read: bpftrace's line.
fn check_file(o: &Options) -> Result<(), Failure> {
    let Some(file) = o.positionals.first().filter(|_| o.program.is_none()) else {
        return Ok(());
    };
    match std::fs::File::open(file) {
        Ok(_) => Ok(()),
        Err(e) => {
            let why = match e.raw_os_error() {
                Some(n) => crate::sys::errno::strerror(n),
                None => e.to_string(),
            };
            Err(Failure(
                format!("ERROR: failed to open file '{file}': {why}"),
                1,
            ))
        }
    }
}

fn check_includes(o: &Options) -> Result<(), Failure> {
    let in_program = o
        .program
        .as_deref()
        .map(script_includes)
        .unwrap_or_default();
    match o
        .includes
        .iter()
        .chain(&in_program)
        .find_map(|f| include_problem(f, &o.include_dirs))
    {
        Some(msg) => Err(Failure(msg, 1)),
        None => Ok(()),
    }
}

/// `bpftrace ARGS` (without argv[0]); getopt's messages name the program as invoked.
pub(crate) fn main(program_name: &str, args: &[String]) -> ExitCode {
    let action = match parse(args) {
        Ok(a) => a,
        Err(e) => {
            if let Some(rest) = e.message.strip_prefix("bpftrace: ") {
                eprintln!("{program_name}: {rest}");
            } else if !e.message.is_empty() {
                eprintln!("{}", e.message);
            }
            if e.usage {
                eprint!("{USAGE}");
            }
            return ExitCode::from(1);
        }
    };
    if !matches!(action, Action::Run(_)) {
        crate::runtime::release_signal_handlers();
    }
    match act(action) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("{}", bpftrace_labels(&msg));
            ExitCode::from(code)
        }
    }
}

/// Errors bpftrace 0.17 prints with a lowercase `error:`: those of C definitions in the
/// script (clang's, e.g. `definitions.h:2:41: error: field has incomplete type ...`) and
/// banned kretprobes (`ERROR: error: kretprobe:... can't be used ...`).
fn lowercase_in_bpftrace(message: &str) -> bool {
    const C_DEFINITIONS: [&str; 9] = [
        "syntax error in C definition",
        "unknown type name",
        "field has incomplete type",
        "invalid type '",
        "invalid array size",
        "invalid bitfield width",
        "a member cannot have type",
        "function pointers are not supported in script type definitions",
        "a definition at the top of a script must define",
    ];
    message.contains("can't be used as it might lock up your system")
        || C_DEFINITIONS.iter().any(|p| message.starts_with(p))
}

/// A script error as bpftrace labels it: `FILE:LINE:COL: ERROR: ...` (the line and the
/// caret below stay), for tools that look for bpftrace's `ERROR:`, except where bpftrace
/// says `error:` itself ([`lowercase_in_bpftrace`]); `trace-runner run` keeps the
/// project's `error:`.
fn bpftrace_labels(msg: &str) -> String {
    let located = |line: &str| {
        let Some((head, message)) = line.split_once(": error: ") else {
            return false;
        };
        if lowercase_in_bpftrace(message) {
            return false;
        }
        let mut parts = head.rsplitn(3, ':');
        let col = parts.next().unwrap_or_default();
        let line_no = parts.next().unwrap_or_default();
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(col) && digits(line_no) && parts.next().is_some_and(|f| !f.is_empty())
    };
    msg.split('\n')
        .map(|line| {
            if located(line) {
                line.replacen(": error: ", ": ERROR: ", 1)
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether argv[0] names `bpftrace` (the runner invoked through a symlink of that name).
pub(crate) fn invoked_as_bpftrace(argv0: &std::ffi::OsStr) -> bool {
    Path::new(argv0)
        .file_name()
        .is_some_and(|n| n == "bpftrace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn located_script_errors_take_bpftrace_s_label() {
        let msg = "stdin:1:1: error: tracepoint not found: syscalls:nonsense\n\
                   t:syscalls:nonsense { }\n\
                   ^~~~~~~~~~~~~~~~~~~\n\
                   a.bt:12:3: error: x: error: y";
        assert_eq!(
            bpftrace_labels(msg),
            "stdin:1:1: ERROR: tracepoint not found: syscalls:nonsense\n\
             t:syscalls:nonsense { }\n\
             ^~~~~~~~~~~~~~~~~~~\n\
             a.bt:12:3: ERROR: x: error: y"
        );
        // Not located, or where bpftrace says `error:` too: unchanged (bpftrace's own
        // one-line errors are produced elsewhere).
        for other in [
            "error: cannot attach x",
            "a.bt: error: too many errors",
            ":1:2: error: x",
            "stdin:1:1: error: kretprobe:_raw_spin_lock can't be used as it might lock up your system.",
            "stdin:1:41: error: field has incomplete type 'struct thread_info'",
            "stdin:3:3: error: unknown type name 'foo_t'",
        ] {
            assert_eq!(bpftrace_labels(other), other);
        }
    }

    fn p(args: &[&str]) -> Result<Action, UsageError> {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn run(args: &[&str]) -> Options {
        match p(args) {
            Ok(Action::Run(o)) => *o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn program_file_and_parameters_with_permutation() {
        let o = run(&["-e", "BEGIN{}", "a", "-q", "b", "--", "-c", "x"]);
        assert_eq!(o.program.as_deref(), Some("BEGIN{}"));
        assert!(o.quiet);
        assert_eq!(o.positionals, ["a", "b", "-c", "x"]);
        assert_eq!(o.command, None);
        let o = run(&["sc.bt", "-p", "42", "1"]);
        assert_eq!(o.positionals, ["sc.bt", "1"]);
        assert_eq!(o.pid, Some(42));
        let o = run(&["-", "x"]);
        assert_eq!(o.positionals, ["-", "x"]);
    }

    #[test]
    fn clusters_attached_arguments_and_long_prefixes() {
        let o = run(&["-qe", "BEGIN{}", "-ofile", "-kk", "--unsafe", "-fjson"]);
        assert!(o.quiet && o.unsafe_actions);
        assert_eq!(o.program.as_deref(), Some("BEGIN{}"));
        assert_eq!(o.output, Some(PathBuf::from("file")));
        assert_eq!(o.helper_checks, 2);
        assert_eq!(o.format, Some(Format::Json));
        let o = run(&["--include=errno.h", "--incl", "x.h", "-I", "/d", "-e", "B"]);
        assert_eq!(o.includes, ["errno.h", "x.h"]);
        assert_eq!(o.include_dirs, ["/d"]);
        assert_eq!(p(&["--vers"]), Ok(Action::Version));
        assert_eq!(p(&["-V"]), Ok(Action::Version));
        assert_eq!(p(&["-h", "-e", "x"]), Ok(Action::Help));
        assert_eq!(p(&["--info"]), Ok(Action::Info));
        // --usdt-file-activation and --no-warnings are accepted; `--u` is ambiguous.
        run(&[
            "--usdt-file-activation",
            "--no-warnings",
            "-B",
            "none",
            "-b",
            "-v",
            "-e",
            "x",
        ]);
        assert!(p(&["--u", "-e", "x"])
            .unwrap_err()
            .message
            .contains("ambiguous"));
    }

    #[test]
    fn listing() {
        assert_eq!(
            p(&["-lv", "tracepoint:sched:*"]),
            Ok(Action::List {
                pattern: Some("tracepoint:sched:*".into()),
                verbose: true,
                pid: None
            })
        );
        assert_eq!(
            p(&["-l", "-p", "7"]),
            Ok(Action::List {
                pattern: None,
                verbose: false,
                pid: Some(7)
            })
        );
    }

    #[test]
    fn errors_as_bpftrace_words_them() {
        let e = p(&["-idonotexist"]).unwrap_err();
        assert_eq!(e.message, "bpftrace: invalid option -- 'i'");
        assert!(e.usage);
        let e = p(&["-e"]).unwrap_err();
        assert_eq!(e.message, "bpftrace: option requires an argument -- 'e'");
        let e = p(&["--nope"]).unwrap_err();
        assert_eq!(e.message, "bpftrace: unrecognized option '--nope'");
        let e = p(&["-c", "/bin/true", "-p", "1", "-e", "x"]).unwrap_err();
        assert_eq!(e.message, "ERROR: USAGE: Cannot use both -c and -p.");
        let e = p(&["-B", "foo", "-e", "x"]).unwrap_err();
        assert!(e.message.contains("-B must be"), "{}", e.message);
        let e = p(&["-f", "yaml", "-e", "x"]).unwrap_err();
        assert!(e
            .message
            .starts_with("ERROR: Invalid output format \"yaml\""));
        assert!(p(&["-p", "x1", "-e", "x"]).is_err());
        let e = p(&["-p", "5000000", "f.bt"]).unwrap_err();
        assert_eq!(
            e.message,
            "ERROR: pid '5000000' out of valid pid range [1,4194304]"
        );
        assert!(p(&["-p", "0", "f.bt"]).is_err());
        let e = p(&["-l", "a$"]).unwrap_err();
        assert_eq!(
            e.message,
            "stdin:1:2-3: ERROR: invalid character '$'\na$\n ~"
        );
        assert_eq!(
            search_pattern_problem("uprobe:/usr/lib/libc.so.6:mal*"),
            None
        );
        assert!(p(&["--unsafe=1", "-e", "x"]).is_err());
        // Nothing to run: the usage alone.
        assert_eq!(p(&[]).unwrap_err(), usage_err("", true));
        assert!(p(&["--emit-llvm", "f", "-e", "x"]).is_err());
    }

    #[test]
    fn dry_runs() {
        assert!(matches!(
            p(&["-d", "-e", "x"]),
            Ok(Action::DryRun { emit_elf: None, .. })
        ));
        assert!(matches!(
            p(&["--emit-elf", "o.elf", "-e", "x"]),
            Ok(Action::DryRun {
                emit_elf: Some(_),
                ..
            })
        ));
    }

    #[test]
    fn command_split_and_resolution() {
        assert_eq!(
            split_command("/bin/echo 'a  b'"),
            ["/bin/echo", "'a", "", "b'"]
        );
        assert_eq!(
            resolve_program("sh", Some("/nonexistent:/bin")).unwrap(),
            PathBuf::from("/bin/sh")
        );
        assert_eq!(
            resolve_program("./no/such", None).unwrap_err(),
            "path './no/such' does not exist or is not executable"
        );
        assert!(resolve_program("no-such-program-x", Some("/bin")).is_err());
    }

    #[test]
    fn includes() {
        assert_eq!(
            include_problem("nosuch-header.h", &[]),
            Some("fatal error: 'nosuch-header.h' file not found".into())
        );
        let dir = std::env::temp_dir();
        let f = dir.join(format!("inc-{}.h", std::process::id()));
        std::fs::write(&f, "").unwrap();
        let name = f.file_name().unwrap().to_str().unwrap();
        assert_eq!(include_problem(name, &[dir.display().to_string()]), None);
        std::fs::remove_file(&f).unwrap();
    }

    #[test]
    fn tracepoint_fields_for_lv() {
        let format = "name: sys_enter_openat\nID: 1\nformat:\n\
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n\
\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;\n\
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;\n\
\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:0;\n\n\
print fmt: \"x\"\n";
        assert_eq!(
            format_field_decls(format),
            [
                "int __syscall_nr",
                "const char * filename",
                "char prev_comm[16]"
            ]
        );
    }

    #[test]
    fn includes_of_a_program() {
        let prog = "#include <lol/no.h>\n  # include \"a.h\"\n#define X 1\nBEGIN { exit(); }";
        assert_eq!(script_includes(prog), ["lol/no.h", "a.h"]);
        assert!(script_includes("#include lol").is_empty());
    }

    #[test]
    fn argv0() {
        assert!(invoked_as_bpftrace("/tmp/x/bpftrace".as_ref()));
        assert!(invoked_as_bpftrace("bpftrace".as_ref()));
        assert!(!invoked_as_bpftrace("/usr/bin/trace-runner".as_ref()));
    }
}
