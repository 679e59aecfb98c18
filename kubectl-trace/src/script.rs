//! Loading the program (`-e`, `-f FILE` / `-f -`, `--script NAME`) and checking it
//! locally with trace-lang before anything is sent: a script error is rendered as
//! `FILE:LINE:COL: error: ...` with the line and a caret, and the run exits with 2.
//! `-f prog.o` with an ELF whose machine is BPF is shipped as a compiled object.

use std::io::Read;

use trace_contract::container_pid;

use crate::errors::{fail, Error, Result};
use crate::manifest::{is_bpf_object, Program};

/// Scripts shipped with the plugin, for `--script NAME`: the documented set in the
/// repository's `bpf-scripts/` directory (each file's header says what it shows).
pub const BUILTIN_SCRIPTS: &[(&str, &str, &str)] = &[
    (
        "execsnoop",
        "every program executed, with its arguments",
        include_str!("../../bpf-scripts/execsnoop.bt"),
    ),
    (
        "opensnoop",
        "every file opened, with pid, process name and result",
        include_str!("../../bpf-scripts/opensnoop.bt"),
    ),
    (
        "syscount",
        "system calls counted per process name and syscall id",
        include_str!("../../bpf-scripts/syscount.bt"),
    ),
    (
        "killsnoop",
        "signals sent with kill(2): sender, signal, target, result",
        include_str!("../../bpf-scripts/killsnoop.bt"),
    ),
    (
        "oomkill",
        "processes killed by the out-of-memory killer",
        include_str!("../../bpf-scripts/oomkill.bt"),
    ),
    (
        "capable",
        "capability checks: which process needed which capability",
        include_str!("../../bpf-scripts/capable.bt"),
    ),
    (
        "setuids",
        "setuid/setgid/setresuid calls",
        include_str!("../../bpf-scripts/setuids.bt"),
    ),
    (
        "threadsnoop",
        "new threads, with the process that created them",
        include_str!("../../bpf-scripts/threadsnoop.bt"),
    ),
    (
        "tcpconnect",
        "outgoing TCP connections",
        include_str!("../../bpf-scripts/tcpconnect.bt"),
    ),
    (
        "tcpaccept",
        "incoming TCP connections as they are established",
        include_str!("../../bpf-scripts/tcpaccept.bt"),
    ),
    (
        "tcplife",
        "TCP connections as they close, with their duration",
        include_str!("../../bpf-scripts/tcplife.bt"),
    ),
    (
        "tcpretrans",
        "TCP retransmissions",
        include_str!("../../bpf-scripts/tcpretrans.bt"),
    ),
    (
        "runqlat",
        "CPU run-queue latency histogram",
        include_str!("../../bpf-scripts/runqlat.bt"),
    ),
    (
        "biolatency",
        "block I/O latency histogram",
        include_str!("../../bpf-scripts/biolatency.bt"),
    ),
    (
        "vfsstat",
        "file-system syscall rates, every second",
        include_str!("../../bpf-scripts/vfsstat.bt"),
    ),
    (
        "readsize",
        "histogram of read() sizes per process name",
        include_str!("../../bpf-scripts/readsize.bt"),
    ),
    (
        "profile",
        "CPU profile (comm, user and kernel stacks at 99 Hz) for flame graphs",
        include_str!("../../bpf-scripts/profile.bt"),
    ),
    (
        "dns-latency",
        "getaddrinfo() latency per process, with the names looked up",
        include_str!("../../bpf-scripts/dns-latency.bt"),
    ),
    (
        "opens-by-prefix",
        "file opens under a path prefix ($1 PREFIX, $2 its length)",
        include_str!("../../bpf-scripts/opens-by-prefix.bt"),
    ),
    (
        "unexpected-exec",
        "exec of binaries outside an allow-list of directories",
        include_str!("../../bpf-scripts/unexpected-exec.bt"),
    ),
];

/// Help text listing the built-in scripts.
pub fn builtin_list() -> String {
    BUILTIN_SCRIPTS
        .iter()
        .map(|(n, d, _)| format!("  {n:<16} {d}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loaded program and the file name its diagnostics refer to.
#[derive(Debug, Clone, PartialEq)]
pub struct Loaded {
    pub program: Program,
    pub file: String,
}

/// Read the program from exactly one of the sources.
pub fn load(expr: Option<&str>, file: Option<&str>, script: Option<&str>) -> Result<Loaded> {
    match (expr, file, script) {
        (Some(e), None, None) => Ok(Loaded {
            program: Program::Script {
                source: e.to_string(),
            },
            file: "<expression>".to_string(),
        }),
        (None, Some(f), None) => {
            let bytes = if f == "-" {
                let mut b = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut b)
                    .map_err(|e| fail(format!("cannot read the program from stdin: {e}")))?;
                b
            } else {
                std::fs::read(f).map_err(|e| fail(format!("cannot read {f}: {e}")))?
            };
            let name = if f == "-" { "<stdin>" } else { f }.to_string();
            if is_bpf_object(&bytes) {
                return Ok(Loaded {
                    program: Program::Object { bytes },
                    file: name,
                });
            }
            if bytes.starts_with(b"\x7fELF") {
                return Err(fail(format!(
                    "{name} is an ELF file but not a BPF object (build it with clang -target bpf, or cargo build for bpfel-unknown-none)"
                )));
            }
            let source = String::from_utf8(bytes)
                .map_err(|_| fail(format!("{name} is neither a text script nor a BPF object")))?;
            Ok(Loaded {
                program: Program::Script { source },
                file: name,
            })
        }
        (None, None, Some(s)) => {
            let Some((_, _, src)) = BUILTIN_SCRIPTS.iter().find(|(n, _, _)| *n == s) else {
                return Err(fail(format!(
                    "unknown script {s:?}; the built-in scripts are:\n{}",
                    builtin_list()
                )));
            };
            Ok(Loaded {
                program: Program::Script {
                    source: src.to_string(),
                },
                file: format!("{s}.bt"),
            })
        }
        (None, None, None) => Err(fail(
            "missing program: give -e PROGRAM, -f FILE or --script NAME",
        )),
        _ => Err(fail("give only one of -e, -f and --script")),
    }
}

/// Check a script with the language front end, given its positional parameters (what
/// follows the program on the command line); every diagnostic is rendered into one
/// script error. `$container_pid` is provided by the runner at run time
/// (iovisor/kubectl-trace scripts use it); here it stands for a placeholder pid.
pub fn check(src: &str, file: &str, params: &[String]) -> Result<()> {
    let predefined = trace_lang::Predefined {
        params: params.to_vec(),
        container_pid: Some(container_pid::PLACEHOLDER),
    };
    // The front end is young: if its analysis panics on something, say nothing and
    // fall back to the parser alone (the runner checks again on the node).
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let full = std::panic::catch_unwind(|| {
        trace_lang::check_with(src, &trace_lang::NoEnv, &predefined).map(|(_, a)| a.warnings)
    });
    std::panic::set_hook(prev);
    let result = match full {
        Ok(r) => r,
        Err(_) => trace_lang::with_stack(|| trace_lang::parser::parse_predefined(src, &predefined))
            .map(|_| Vec::new())
            .map_err(trace_lang::Diagnostics::from),
    };
    match result {
        Ok(warnings) => {
            for w in warnings {
                eprintln!("{w}");
            }
            Ok(())
        }
        Err(d) => {
            for w in &d.warnings {
                eprintln!("{w}");
            }
            Err(Error::Script(d.render(file, src).trim_end().to_string()))
        }
    }
}

/// True when the script uses `$container_pid` (it then needs exactly one container).
pub fn uses_container_pid(src: &str) -> bool {
    container_pid::uses(src)
}

/// One use of a positional parameter in a probe's predicate or body.
#[derive(Debug, Clone, PartialEq)]
pub struct PositionalUse {
    pub n: u32,
    pub span: trace_lang::span::Span,
    /// `str($N)`: the parameter's text; otherwise it is read as a number.
    pub as_text: bool,
}

/// The positional parameters a script uses, and whether it reads `$#` (then it decides
/// itself what a missing parameter means). Scripts that do not parse give nothing.
pub fn positionals(src: &str) -> (Vec<PositionalUse>, bool) {
    use trace_lang::lexer::{Lexer, TokenKind};
    let Ok(program) = trace_lang::parse(src) else {
        return (vec![], false);
    };
    let mut spans = Vec::new();
    for p in &program.probes {
        spans.extend(p.predicate.iter().map(|e| e.span));
        spans.extend(p.body.iter().map(|s| s.span));
    }
    let (mut uses, mut counts) = (Vec::new(), false);
    for span in spans {
        let mut lx = Lexer::new(src);
        lx.set_pos(span.start);
        let mut toks = Vec::new();
        while let Ok(t) = lx.next_token() {
            if t.kind == TokenKind::Eof || t.span.start >= span.end {
                break;
            }
            toks.push(t);
        }
        for (i, t) in toks.iter().enumerate() {
            match t.kind {
                TokenKind::ParamCount => counts = true,
                TokenKind::Positional(n) => {
                    let as_text = i >= 2
                        && toks[i - 1].kind == TokenKind::Sym("(")
                        && toks[i - 2].kind == TokenKind::Ident("str".into());
                    if !uses.iter().any(|u: &PositionalUse| u.span == t.span) {
                        uses.push(PositionalUse {
                            n,
                            span: t.span,
                            as_text,
                        });
                    }
                }
                _ => {}
            }
        }
    }
    (uses, counts)
}

fn is_number(text: &str) -> bool {
    let t = text.trim();
    match t.strip_prefix("0x") {
        Some(hex) => i64::from_str_radix(hex, 16).is_ok(),
        None => t.parse::<i64>().is_ok(),
    }
}

/// Check the script's positional parameters against the arguments given after `--`:
/// every `$N` it uses must be given (unless it reads `$#`), and one read as a number
/// must be one, as the runner would find on the node.
pub fn check_params(src: &str, file: &str, args: &[String]) -> Result<()> {
    let (uses, counts) = positionals(src);
    let render = |span, msg: String| {
        Error::Script(
            trace_lang::Diagnostic::new(span, msg)
                .render(file, src)
                .trim_end()
                .to_string(),
        )
    };
    for u in &uses {
        match args.get(u.n as usize - 1) {
            None if !counts => {
                let given = match args.len() {
                    0 => "no argument was given".to_string(),
                    1 => "only 1 argument was given".to_string(),
                    k => format!("only {k} arguments were given"),
                };
                let want = uses.iter().map(|u| u.n).max().unwrap_or(u.n);
                let example: Vec<String> = (1..=want).map(|i| format!("ARG{i}")).collect();
                return Err(render(
                    u.span,
                    format!(
                        "the script uses ${} but {given}: pass its arguments after --, e.g. kubectl trace run ... -- {}",
                        u.n,
                        example.join(" ")
                    ),
                ));
            }
            Some(text) if !u.as_text && !is_number(text) => {
                return Err(render(
                    u.span,
                    format!(
                        "positional parameter ${} is not a number: '{text}' (use str(${}) for text)",
                        u.n, u.n
                    ),
                ));
            }
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_script_passes() {
        check(
            "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }",
            "<expression>",
            &[],
        )
        .unwrap();
    }

    #[test]
    fn syntax_error_is_located() {
        let src = "tracepoint:syscalls:sys_enter_openat {\n  @[comm] = count(;\n}\n";
        let e = check(src, "t.bt", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let s = e.to_string();
        assert!(s.starts_with("t.bt:2:"), "{s}");
        assert!(s.contains("error:"), "{s}");
        assert!(s.contains("  @[comm] = count(;"), "{s}");
        assert!(
            s.lines().nth(2).unwrap().trim_start().starts_with('^'),
            "{s}"
        );
    }

    #[test]
    fn container_pid_is_accepted() {
        check(
            "tracepoint:syscalls:sys_enter_openat /pid == $container_pid/ { @[comm] = count(); }",
            "<expression>",
            &[],
        )
        .unwrap();
        // Columns after it are unchanged.
        let e = check("BEGIN { @x = $container_pid; @x = \"s\"; }", "x.bt", &[]).unwrap_err();
        assert!(e.to_string().starts_with("x.bt:1:"), "{e}");
        let col: usize = e.to_string().split(':').nth(2).unwrap().parse().unwrap();
        assert!(col > 30, "{e}");
    }

    /// What the runner accepts, the local check accepts: positional parameters in
    /// attach points and `unroll`, `$container_pid` in a uprobe's path.
    #[test]
    fn predefined_values_are_known_to_the_check() {
        let params = ["100".to_string(), "3".to_string()];
        check(
            "interval:ms:$1 { unroll($2) { @n = count(); } exit(); }",
            "t.bt",
            &params,
        )
        .unwrap();
        check(
            "uprobe:/proc/$container_pid/exe:main { @[tid] = count(); }",
            "t.bt",
            &[],
        )
        .unwrap();
        // A missing parameter is still an error, at its place.
        let e = check("BEGIN { unroll($2) { } }", "t.bt", &params[..1]).unwrap_err();
        assert!(e.to_string().starts_with("t.bt:1:16: error: "), "{e}");
    }

    /// Every error of the script, each with its line and caret.
    #[test]
    fn every_error_is_reported() {
        let src = "BEGIN { foo(); }\nEND { bar(); }";
        let e = check(src, "t.bt", &[]).unwrap_err().to_string();
        assert_eq!(
            e,
            "t.bt:1:9: error: Unknown function: foo\nBEGIN { foo(); }\n        ^~~\n\
             t.bt:2:7: error: Unknown function: bar\nEND { bar(); }\n      ^~~"
        );
    }

    #[test]
    fn container_pid_in_a_probe_path_is_accepted() {
        check(
            "uprobe:/proc/$container_pid/exe:main { @[comm] = count(); }",
            "<expression>",
            &[],
        )
        .unwrap();
    }

    #[test]
    fn positional_parameters_are_checked() {
        let src = include_str!("../../bpf-scripts/opens-by-prefix.bt");
        let e = check_params(src, "opens-by-prefix.bt", &[]).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        let first = e.to_string().lines().next().unwrap().to_string();
        assert!(first.starts_with("opens-by-prefix.bt:25:"), "{first}");
        assert!(
            first.ends_with("error: the script uses $1 but no argument was given: pass its arguments after --, e.g. kubectl trace run ... -- ARG1 ARG2"),
            "{first}"
        );
        let e = check_params(src, "opens-by-prefix.bt", &["/etc".into()]).unwrap_err();
        assert!(
            e.to_string()
                .contains("uses $2 but only 1 argument was given"),
            "{e}"
        );
        let e = check_params(src, "opens-by-prefix.bt", &["/etc".into(), "four".into()])
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "opens-by-prefix.bt:30:40: error: positional parameter $2 is not a number: 'four'"
            ),
            "{e}"
        );
        assert_eq!(e.lines().nth(2).unwrap().trim(), "^~");
        check_params(src, "x", &["/etc".into(), "4".into()]).unwrap();
        check_params(src, "x", &["/etc".into(), "0x4".into(), "extra".into()]).unwrap();
        // A script reading $# decides itself.
        check_params("BEGIN { if ($# > 0) { printf(\"%d\\n\", $1); } }", "x", &[]).unwrap();
        check_params("BEGIN { exit(); }", "x", &[]).unwrap();
    }

    #[test]
    fn builtins_parse() {
        for (name, _, src) in BUILTIN_SCRIPTS {
            trace_lang::parse(src).unwrap_or_else(|d| panic!("{name}: {}", d.render(name, src)));
            check(src, name, &[]).unwrap();
        }
    }

    #[test]
    fn sources() {
        assert!(load(None, None, None).is_err());
        assert!(load(Some("x"), None, Some("y")).is_err());
        let l = load(None, None, Some("syscount")).unwrap();
        assert_eq!(l.file, "syscount.bt");
        assert!(load(None, None, Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("syscount"));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.o");
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 62;
        std::fs::write(&p, &elf).unwrap();
        let e = load(None, Some(p.to_str().unwrap()), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a BPF object"), "{e}");
        elf[18] = 247;
        std::fs::write(&p, &elf).unwrap();
        let l = load(None, Some(p.to_str().unwrap()), None).unwrap();
        assert!(matches!(l.program, Program::Object { .. }));
    }
}
