//! bpftrace's command line: the real `trace-runner` binary through a symlink named
//! `bpftrace` in a temporary directory (and as `trace-runner bpftrace`), flag by flag;
//! where cheap, side by side with the reference bpftrace 0.17 on the same program
//! (stdout only: the reference complains about RLIMIT_MEMLOCK on stderr here).

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::*;

/// `bpftrace`: a symlink to the runner, made once per test binary.
fn bt_path() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("bt-cli-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let link = dir.join("bpftrace");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(runner(), &link).unwrap();
        link
    })
}

fn run_with(bin: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        .env_remove("__BPFTRACE_NOTIFY_PROBES_ATTACHED");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null()).output().unwrap()
}

fn bt(args: &[&str]) -> Output {
    run_with(bt_path().to_str().unwrap(), args, &[])
}

fn reference(args: &[&str]) -> Output {
    run_with(BPFTRACE, args, &[])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn version_help_and_bad_flags() {
    let v = bt(&["--version"]);
    assert!(v.status.success());
    let line = text(&v.stdout);
    assert!(
        line.starts_with("bpftrace v0.17.0-compatible (trace-runner "),
        "{line}"
    );
    assert_eq!(text(&bt(&["-V"]).stdout), line);
    // The harness's test: a line naming bpftrace, then a version number.
    let sub = run_with(runner(), &["bpftrace", "--version"], &[]);
    assert_eq!(text(&sub.stdout), line);

    let h = bt(&["-h"]);
    assert!(h.status.success());
    assert!(text(&h.stderr).starts_with("USAGE:\n    bpftrace [options] filename\n"));

    let bad = bt(&["-idonotexist"]);
    assert_eq!(bad.status.code(), Some(1));
    let err = text(&bad.stderr);
    assert!(
        err.starts_with(&format!(
            "{}: invalid option -- 'i'\nUSAGE:\n",
            bt_path().display()
        )),
        "{err}"
    );
    let none = bt(&[]);
    assert_eq!(none.status.code(), Some(1));
    assert!(text(&none.stderr).starts_with("USAGE:"));
    let both = bt(&["-c", "/bin/true", "-p", "1", "-e", "BEGIN{}"]);
    assert_eq!(both.status.code(), Some(1));
    assert!(text(&both.stderr).starts_with("ERROR: USAGE: Cannot use both -c and -p.\n"));

    if require_bpftrace() {
        for args in [
            &["-idonotexist"][..],
            &["-e"],
            &["--nope"],
            &["-B", "x", "-e", "x"],
        ] {
            let (ours, theirs) = (bt(args), reference(args));
            assert_eq!(ours.status.code(), theirs.status.code(), "{args:?}");
            // getopt names the program as invoked.
            let first = |o: &Output| {
                let t = text(&o.stderr);
                let l = t.lines().next().unwrap_or("").to_string();
                l.replace(BPFTRACE, "bpftrace")
                    .replace(bt_path().to_str().unwrap(), "bpftrace")
            };
            assert_eq!(first(&ours), first(&theirs), "{args:?}");
        }
    }
}

#[test]
fn c_runs_the_command_once_attached_with_cpid_and_ends_with_it() {
    if !require_bpf() {
        return;
    }
    // readlink /proc/self prints its own pid: exec keeps the pid cpid names.
    let prog = r#"BEGIN { printf("cpid %d\n", cpid); } END { printf("end\n"); }"#;
    let out = bt(&["-e", prog, "-c", "/bin/readlink /proc/self"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines[0], "Attaching 2 probes...");
    let cpid = lines[1].strip_prefix("cpid ").expect(&stdout);
    // The command ran after BEGIN, as the process cpid names; the run ended with it.
    assert_eq!(lines[2], cpid, "{stdout}");
    assert_eq!(lines[3], "end");
    if require_bpftrace() {
        let theirs = text(&reference(&["-e", prog, "-c", "/bin/readlink /proc/self"]).stdout);
        // bpftrace lets the command run before BEGIN's output is out: the same lines,
        // in an order that varies.
        let shape = |s: &str| {
            let mut l: Vec<String> = s
                .replace(|c: char| c.is_ascii_digit(), "N")
                .lines()
                .map(str::to_string)
                .collect();
            l.sort();
            l
        };
        assert_eq!(shape(&stdout), shape(&theirs));
    }
    // bpftrace's exit status, not the command's; its words are split on single spaces.
    let out = bt(&[
        "-q",
        "-e",
        "END { printf(\"end\\n\"); }",
        "-c",
        "/bin/sh -c exit\\ 3",
    ]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "end\n\n\n");
    // An interval probe would never end the run by itself: the command's exit does.
    let started = std::time::Instant::now();
    let out = bt(&[
        "-q",
        "-e",
        "interval:s:10 { exit(); }",
        "-c",
        "/bin/sleep 0.2",
    ]);
    assert!(out.status.success());
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    // The same through `trace-runner run`.
    let out = run_with(
        runner(),
        &[
            "run",
            "--quiet",
            "-e",
            prog,
            "--command",
            "/bin/readlink /proc/self",
        ],
        &[],
    );
    let s = text(&out.stdout);
    let l: Vec<&str> = s.lines().collect();
    assert_eq!(l[0].strip_prefix("cpid "), Some(l[1]), "{s}");
}

/// A script error keeps its location, line and caret, labelled `ERROR:` as bpftrace
/// labels it when invoked as bpftrace; `trace-runner run` keeps `error:`.
#[test]
fn script_errors_are_labelled_as_bpftrace_labels_them() {
    let script = "t:syscalls:nonsense { printf(\"hit\"); exit(); }";
    let caret = "^~~~~~~~~~~~~~~~~~~";
    let first = |out: &Output| {
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = text(&out.stderr);
        let lines: Vec<String> = err.lines().map(str::to_string).collect();
        assert_eq!(lines.len(), 3, "{err}");
        assert_eq!(lines[1], script);
        assert_eq!(lines[2], caret);
        lines[0].clone()
    };
    for out in [
        bt(&["-e", script]),
        run_with(runner(), &["bpftrace", "-e", script], &[]),
    ] {
        let line = first(&out);
        assert!(
            line.starts_with("stdin:1:1: ERROR: tracepoint not found: syscalls:nonsense"),
            "{line}"
        );
    }
    let line = first(&run_with(runner(), &["run", "-e", script], &[]));
    assert!(
        line.starts_with("stdin:1:1: error: tracepoint not found: syscalls:nonsense"),
        "{line}"
    );
}

#[test]
fn c_errors() {
    let out = bt(&["-e", "BEGIN { exit(); }", "-c", "./no/such/program"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("path './no/such/program' does not exist"));
    // cpid without -c: a script error located at `cpid`.
    let out = bt(&["-e", "BEGIN { printf(\"%d\\n\", cpid); }"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .starts_with("stdin:1:24: ERROR: cpid cannot be used without child command"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn q_o_f_and_the_attach_notification_match_bpftrace() {
    if !require_bpf() {
        return;
    }
    let notify = [("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")];
    let prog = r#"BEGIN { @a = 1; printf("x\n"); exit(); }"#;
    let cases: [&[&str]; 4] = [
        &["-q", "-e", prog],
        &["-e", prog],
        &["-f", "json", "-e", prog],
        &["-q", "-f", "json", "-e", prog],
    ];
    for args in cases {
        let ours = run_with(bt_path().to_str().unwrap(), args, &notify);
        assert!(ours.status.success(), "{}", text(&ours.stderr));
        let o = text(&ours.stdout);
        // The notification on stderr, under -q too; the Attaching line only without -q.
        assert!(text(&ours.stderr).contains("__BPFTRACE_NOTIFY_PROBES_ATTACHED\n"));
        assert!(!o.contains("__BPFTRACE_NOTIFY"), "{o}");
        assert_eq!(args[0] == "-q", !o.contains("ttach"), "{o}");
        if require_bpftrace() {
            let theirs = run_with(BPFTRACE, args, &notify);
            assert_eq!(o, text(&theirs.stdout), "{args:?}");
            assert!(text(&theirs.stderr).contains("__BPFTRACE_NOTIFY_PROBES_ATTACHED\n"));
        }
    }
    // -o: the output in the file, the exit's blank lines on stdout.
    let dir = std::env::temp_dir();
    let file = |who: &str| dir.join(format!("bt-o-{who}-{}", std::process::id()));
    let ours = run_with(
        bt_path().to_str().unwrap(),
        &["-o", file("ours").to_str().unwrap(), "-e", prog],
        &notify,
    );
    assert!(ours.status.success());
    let ours_file = std::fs::read_to_string(file("ours")).unwrap();
    assert_eq!(ours_file, "Attaching 1 probe...\nx\n@a: 1\n");
    assert_eq!(text(&ours.stdout), "\n\n");
    if require_bpftrace() {
        let theirs = run_with(
            BPFTRACE,
            &["-o", file("theirs").to_str().unwrap(), "-e", prog],
            &notify,
        );
        assert_eq!(std::fs::read_to_string(file("theirs")).unwrap(), ours_file);
        assert_eq!(text(&theirs.stdout), text(&ours.stdout));
        let _ = std::fs::remove_file(file("theirs"));
    }
    let _ = std::fs::remove_file(file("ours"));
}

#[test]
fn script_from_stdin_and_parameters_after_it() {
    if !require_bpf() {
        return;
    }
    let mut child = Command::new(bt_path())
        .args(["-q", "-", "7", "--", "-x"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"BEGIN { printf(\"%d %s\\n\", $1, str($2)); exit(); }")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(text(&out.stdout), "7 -x\n\n\n");
}

#[test]
fn lv_prints_tracepoint_fields_as_bpftrace() {
    if !require_bpf() {
        return;
    }
    for pattern in [
        "tracepoint:syscalls:sys_enter_openat",
        "tracepoint:sched:sched_switch",
    ] {
        let ours = bt(&["-lv", pattern]);
        assert!(ours.status.success());
        let o = text(&ours.stdout);
        assert!(o.starts_with(&format!("{pattern}\n    ")), "{o}");
        assert!(!o.contains("common_"), "{o}");
        if require_bpftrace() {
            assert_eq!(o, text(&reference(&["-lv", pattern]).stdout));
        }
    }
    // uretprobes of a binary are listed as its uprobes are.
    let exe = std::env::current_exe().unwrap();
    let pat = |kind: &str| format!("{kind}:{}:*bpftrace_cli*", exe.display());
    let u = text(&bt(&["-l", &pat("uprobe")]).stdout);
    let ur = text(&bt(&["-l", &pat("uretprobe")]).stdout);
    assert!(!u.is_empty());
    assert_eq!(ur, u.replace("uprobe:", "uretprobe:"));
    // A script file that is not there, and a search pattern no probe can match.
    let gone = bt(&["no_such_file.bt"]);
    assert_eq!(gone.status.code(), Some(1));
    assert_eq!(
        text(&gone.stderr),
        "ERROR: failed to open file 'no_such_file.bt': No such file or directory\n"
    );
    let bad = bt(&["-l", "\\n"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad.stderr).starts_with("stdin:1:1-2: ERROR: invalid character '\\'\n"));
    let plain = text(&bt(&["-l", "tracepoint:raw_syscalls:*"]).stdout);
    assert_eq!(
        plain,
        "tracepoint:raw_syscalls:sys_enter\ntracepoint:raw_syscalls:sys_exit\n"
    );
}

#[test]
fn l_p_lists_the_uprobes_of_a_process() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let pid = sleeper.id().to_string();
    let all = text(&bt(&["-l", "-p", &pid]).stdout);
    let filtered = bt(&["-l", "uprobe:*:malloc", "-p", &pid]);
    let usdt = bt(&["-l", "usdt:*", "-p", &pid]);
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    // sleep maps libc: its functions are listed under the library's path.
    let libc_malloc = all
        .lines()
        .find(|l| l.starts_with("uprobe:/") && l.contains("libc") && l.ends_with(":malloc"))
        .unwrap_or_else(|| panic!("no libc malloc in {all}"));
    assert_eq!(text(&filtered.stdout), format!("{libc_malloc}\n"));
    // USDT probes of the files it maps (Debian's libc has some), reached through its root.
    assert_eq!(usdt.status.code(), Some(0), "{}", text(&usdt.stderr));
    let prefix = format!("usdt:/proc/{pid}/root/");
    assert!(
        text(&usdt.stdout).lines().all(|l| l.starts_with(&prefix)),
        "{}",
        text(&usdt.stdout)
    );
    let gone = bt(&["-l", "-p", "999999999"]);
    assert_eq!(gone.status.code(), Some(1));
}

#[test]
fn accepted_flags_and_dry_runs() {
    if !require_bpf() {
        return;
    }
    let prog = "BEGIN { printf(\"ok\\n\"); exit(); }";
    for extra in [
        &["-B", "none"][..],
        &["-B", "line"],
        &["-v"],
        &["-b"],
        &["-k"],
        &["-kk"],
        &["--no-warnings"],
        &["--usdt-file-activation"],
        &["--unsafe"],
        &["--include", "errno.h"],
        &["-I", "/tmp"],
    ] {
        let mut args = extra.to_vec();
        args.extend(["-q", "-e", prog]);
        let out = bt(&args);
        assert!(out.status.success(), "{extra:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "ok\n\n\n", "{extra:?}");
    }
    let missing = bt(&["--include", "no-such-header-x.h", "-e", prog]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "fatal error: 'no-such-header-x.h' file not found\n"
    );
    // So is an #include of the program (bpftrace's clang fails; kernel types need none).
    let missing = bt(&["-e", "#include <lol/no.h>\nBEGIN { exit(); }"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        text(&missing.stderr),
        "fatal error: 'lol/no.h' file not found\n"
    );
    let found = bt(&["-q", "-e", "#include <linux/sched.h>\nBEGIN { exit(); }"]);
    assert!(found.status.success(), "{}", text(&found.stderr));
    // -d compiles without running; a bad program is still an error.
    let dry = bt(&["-d", "-e", prog]);
    assert!(dry.status.success());
    assert_eq!(text(&dry.stdout), "");
    assert!(!bt(&["-d", "-e", "BEGIN { nosuch(); }"]).status.success());
    let elf = std::env::temp_dir().join(format!("bt-elf-{}", std::process::id()));
    let out = bt(&["--emit-elf", elf.to_str().unwrap(), "-e", prog]);
    assert!(out.status.success());
    assert_eq!(&std::fs::read(&elf).unwrap()[..4], b"\x7fELF");
    let _ = std::fs::remove_file(&elf);
    // -p scopes the run to a process that must exist.
    let out = bt(&["-p", "999999999", "-e", prog]);
    assert!(!out.status.success());
}

#[test]
fn info_reports_this_kernel_in_bpftraces_layout() {
    if !require_bpf() {
        return;
    }
    // On stderr, as bpftrace prints it.
    let out = bt(&["--info"]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "");
    let ours = text(&out.stderr);
    let sections = |s: &str| -> Vec<String> {
        s.lines()
            .filter(|l| !l.starts_with(' ') && !l.is_empty())
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        sections(&ours),
        [
            "System",
            "Build",
            "Kernel helpers",
            "Kernel features",
            "Map types",
            "Probe types"
        ]
    );
    // Measured: this kernel has these (6.x); trace-runner attaches no kfunc probes.
    for line in [
        "  perf_event_array: yes",
        "  probe_read_kernel: yes",
        "  Instruction limit: 1000000",
        "  tracepoint: yes",
        "  kfunc: no",
    ] {
        assert!(ours.contains(&format!("{line}\n")), "{line}: {ours}");
    }
    if require_bpftrace() {
        // The same keys in every section but Build, in the same order.
        let keys = |s: &str| -> Vec<String> {
            let mut section = String::new();
            s.lines()
                .filter_map(|l| {
                    if !l.starts_with(' ') {
                        section = l.to_string();
                        return None;
                    }
                    let key = l.trim().split(':').next().unwrap_or("");
                    let key = key.split(" (").next().unwrap_or("").to_string();
                    (section != "Build" && section != "System").then_some(key)
                })
                .collect()
        };
        assert_eq!(keys(&ours), keys(&text(&reference(&["--info"]).stderr)));
    }
}
