//! USDT probes end to end: a C program with `<sys/sdt.h>` markers, built here with
//! `cc`, traced by the real runner (as `trace-runner bpftrace`) with exact hit counts:
//! arguments (registers, stack, sign extension, a string), a probe inlined twice (two
//! markers), a probe behind a semaphore, `-c`, `-p` (probes without a file), several
//! processes of one file at once, `-l`, and the same output as bpftrace 0.17.

mod common;
#[path = "../src/test_util.rs"]
#[allow(dead_code)]
mod test_util;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Each line of stdin (up to EOF) fires `app:line` with (line number, its negation as a
/// short, the line) and `app:inlined` twice (two markers), and `app:gated` when its
/// semaphore is set; then `app:done` with the number of lines.
const PROG: &str = r#"
#include <stdio.h>
#include <string.h>
#include <sys/sdt.h>
void gated(long n);
static inline __attribute__((always_inline)) void twice(long v) {
  DTRACE_PROBE1(app, inlined, v);
}
int main(void) {
  char line[64];
  long n = 0;
  setvbuf(stdout, NULL, _IONBF, 0);
  printf("started\n");
  while (fgets(line, sizeof line, stdin)) {
    line[strcspn(line, "\n")] = 0;
    n++;
    short neg = (short)-n;
    DTRACE_PROBE3(app, line, n, neg, line);
    twice(n);
    twice(n * 10);
    gated(n);
  }
  DTRACE_PROBE1(app, done, n);
  return 0;
}
"#;

const GATED: &str = r#"
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
__extension__ unsigned short app_gated_semaphore __attribute__((unused))
    __attribute__((section(".probes"))) __attribute__((visibility("hidden")));
void gated(long n) {
  if (app_gated_semaphore) DTRACE_PROBE1(app, gated, n);
}
"#;

/// The test program, built once per test (each in its own directory).
fn build(dir: &test_util::TempDir) -> PathBuf {
    test_util::build_c(&dir.0, "app", &[PROG, GATED], &[])
}

fn ready() -> bool {
    require_bpf() && test_util::require_sdt_cc()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `trace-runner bpftrace ARGS` with `input` on stdin (the `-c` command reads it).
fn bpftrace(args: &[&str], input: &str) -> Output {
    let mut child = Command::new(runner())
        .arg("bpftrace")
        .args(args)
        .env_remove("__BPFTRACE_NOTIFY_PROBES_ATTACHED")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Start the program waiting on its stdin; returns once it runs.
fn start_app(app: &Path) -> Child {
    let mut child = Command::new(app)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started\n");
    child
}

/// Start `trace-runner bpftrace ARGS` and wait until its probes are attached (it says
/// so on stderr); the rest of its stderr is kept for [`finish`].
fn start_trace(args: &[&str]) -> (Child, BufReader<std::process::ChildStderr>) {
    let mut child = Command::new(runner())
        .arg("bpftrace")
        .args(args)
        .env("__BPFTRACE_NOTIFY_PROBES_ATTACHED", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.trim() == "__BPFTRACE_NOTIFY_PROBES_ATTACHED" {
            return (child, err);
        }
        seen.push_str(&line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("trace-runner did not attach: {seen}");
}

/// Wait for the trace to end by itself; its stdout.
fn finish((child, mut err): (Child, BufReader<std::process::ChildStderr>)) -> String {
    let mut stderr = String::new();
    let reader = std::thread::spawn(move || {
        std::io::Read::read_to_string(&mut err, &mut stderr).unwrap();
        stderr
    });
    // A watchdog: a trace whose exit() never comes is stopped (SIGINT: END and maps),
    // so a wrong count fails the test's assertions instead of hanging the suite.
    let pid = child.id();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if done_rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = done_tx.send(());
    let stderr = reader.join().unwrap();
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}: {stdout}{stderr}", out.status);
    stdout
}

#[test]
fn arguments_markers_and_semaphore_with_c() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-c");
    let app = build(&dir);
    let app = app.to_str().unwrap();
    let script = format!(
        "usdt:{app}:app:line {{ @lines = count(); @sum = sum(arg0); @neg = sum(arg1); @s[str(arg2)] = count(); }}
         usdt:{app}:app:inlined {{ @inlined = count(); @isum = sum(arg0); }}
         usdt:{app}:app:gated {{ @gated = sum(arg0); }}"
    );
    let out = bpftrace(&["-c", app, "-e", &script], "a\nbb\nccc\n");
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    // line (1 marker) + inlined (2) + gated (1).
    assert!(stdout.starts_with("Attaching 4 probes...\n"), "{stdout}");
    for want in [
        "@lines: 3\n",
        "@sum: 6\n",
        "@neg: -6\n",
        "@s[a]: 1\n",
        "@s[bb]: 1\n",
        "@s[ccc]: 1\n",
        "@inlined: 6\n",
        "@isum: 66\n",
        // Enabled by its semaphore: 1 + 2 + 3.
        "@gated: 6\n",
    ] {
        assert!(stdout.contains(want), "{want:?} missing in:\n{stdout}");
    }
}

#[test]
fn probes_of_a_process_with_p() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-p");
    let app_path = build(&dir);
    let mut app = start_app(&app_path);
    let pid = app.id().to_string();
    // No file: the process's files; `usdt:::*` names without provider, any provider.
    let trace = start_trace(&[
        "-p",
        &pid,
        "-e",
        "usdt::app:line { @n = count(); @s = sum(arg0); } usdt:::gated { @g = count(); } usdt::app:done { exit(); }",
    ]);
    app.stdin
        .take()
        .unwrap()
        .write_all(b"w\nx\ny\nz\n")
        .unwrap();
    let stdout = finish(trace);
    app.wait().unwrap();
    for want in ["@n: 4\n", "@s: 10\n", "@g: 4\n"] {
        assert!(stdout.contains(want), "{want:?} missing in:\n{stdout}");
    }
}

#[test]
fn semaphore_of_a_file_in_every_process() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-file");
    let app_path = build(&dir);
    let mut apps = [start_app(&app_path), start_app(&app_path)];
    let app = app_path.to_str().unwrap();
    let script = format!(
        "usdt:{app}:app:gated {{ @[pid] = count(); }}
         usdt:{app}:app:done {{ @done++; if (@done == 2) {{ exit(); }} }}"
    );
    let trace = start_trace(&["-e", &script]);
    for a in &mut apps {
        a.stdin.take().unwrap().write_all(b"1\n2\n").unwrap();
    }
    let stdout = finish(trace);
    for a in &mut apps {
        let pid = a.id();
        a.wait().unwrap();
        assert!(
            stdout.contains(&format!("@[{pid}]: 2\n")),
            "pid {pid} missing in:\n{stdout}"
        );
    }
}

#[test]
fn listing_by_file_and_by_pid() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-l");
    let app_path = build(&dir);
    let app = app_path.to_str().unwrap();
    let out = bpftrace(&["-l", &format!("usdt:{app}:*")], "");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let want: String = ["done", "gated", "inlined", "line"]
        .iter()
        .map(|n| format!("usdt:{app}:app:{n}\n"))
        .collect();
    assert_eq!(text(&out.stdout), want);
    let out = bpftrace(&["-l", &format!("usdt:{app}:app:*ed")], "");
    assert_eq!(
        text(&out.stdout),
        format!("usdt:{app}:app:gated\nusdt:{app}:app:inlined\n")
    );
    let mut running = start_app(&app_path);
    let pid = running.id();
    let out = bpftrace(&["-l", "usdt:*:app:l*", "-p", &pid.to_string()], "");
    drop(running.stdin.take());
    running.wait().unwrap();
    assert_eq!(
        text(&out.stdout),
        format!("usdt:/proc/{pid}/root{app}:app:line\n")
    );
}

#[test]
fn bad_usdt_attach_points_are_located_errors() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-err");
    let app_path = build(&dir);
    let app = app_path.to_str().unwrap();
    let cases = [
        (
            format!("usdt:{app}:nosuch {{ }}"),
            "warning: no USDT probe matches",
        ),
        (
            "usdt:/nonexistent/app:a:b { }".to_string(),
            "stdin:1:1: ERROR: usdt target file '/nonexistent/app' does not exist",
        ),
        (
            "usdt::app:line { }".to_string(),
            "stdin:1:1: ERROR: usdt probes with no file need -p PID or -c CMD",
        ),
        (
            format!("usdt:{app}:app:line {{ print(arg5); }}"),
            "ERROR: arg5: usdt:",
        ),
    ];
    for (script, want) in cases {
        let out = bpftrace(&["-e", &script], "");
        let stderr = text(&out.stderr);
        assert!(stderr.contains(want), "{script}: {stderr}");
        assert!(!out.status.success(), "{script}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// The same script run by bpftrace 0.17 and by the runner on the same program with `-c`
/// prints the same lines: arguments of every kind, the inlined markers in order, the
/// semaphore-gated probe and `probe`.
#[test]
fn same_output_as_bpftrace() {
    if !ready() || !require_bpftrace() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-cmp");
    let app_path = build(&dir);
    let app = app_path.to_str().unwrap();
    let script = format!(
        r#"usdt:{app}:app:line {{ printf("%d %d %s\n", arg0, arg1, str(arg2)); }}
           usdt:{app}:app:inlined {{ printf("i %d\n", arg0); }}
           usdt:{app}:app:gated {{ printf("g %d\n", arg0); }}
           usdt:{app}:app:done {{ printf("done %d %s\n", arg0, probe); }}"#
    );
    let run = |bin: &str, prefix: &[&str]| {
        let mut child = Command::new(bin)
            .args(prefix)
            .args(["-c", app, "-e", &script])
            .env_remove("__BPFTRACE_NOTIFY_PROBES_ATTACHED")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a\nbb\nccc\n")
            .unwrap();
        text(&child.wait_with_output().unwrap().stdout)
    };
    let reference = run(BPFTRACE, &[]);
    let ours = run(runner(), &["bpftrace"]);
    assert!(reference.contains("done 3 usdt:"), "{reference}");
    assert_eq!(ours, reference);
}

/// With `-p`, an absolute path names the file the process sees (in its mount namespace,
/// e.g. inside a container), even when this namespace has another file at that path.
#[test]
fn a_path_with_p_is_the_processs_file() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-ns");
    let app_path = build(&dir);
    // Here: a different program at the same path (its markers are elsewhere).
    let shown = dir.0.join("shown");
    std::fs::create_dir(&shown).unwrap();
    let decoy = test_util::build_c(
        &dir.0,
        "decoy",
        &["#include <sys/sdt.h>\nint pad(int x) { return x * 3 + 1; }\nint main(int c, char **v) { DTRACE_PROBE1(app, line, c); return pad(c); }\n"],
        &["-O0"],
    );
    std::fs::copy(&decoy, shown.join("app")).unwrap();
    // In the process's own mount namespace: the real program at that path.
    let inner = format!(
        "mount -t tmpfs none {s} && cp {a} {s}/app && exec {s}/app",
        s = shown.display(),
        a = app_path.display()
    );
    let mut app = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &inner])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(app.stdout.as_mut().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert_eq!(first, "started\n");
    let pid = app.id().to_string();
    let target = shown.join("app");
    let script = format!(
        "usdt:{}:app:line {{ @n = count(); @s = sum(arg0); }} usdt::app:done {{ exit(); }}",
        target.display()
    );
    let trace = start_trace(&["-p", &pid, "-e", &script]);
    app.stdin.take().unwrap().write_all(b"x\ny\n").unwrap();
    let stdout = finish(trace);
    app.wait().unwrap();
    for want in ["@n: 2\n", "@s: 3\n"] {
        assert!(stdout.contains(want), "{want:?} missing in:\n{stdout}");
    }
}

#[test]
fn usdt_paths_of_a_node_trace_are_the_nodes_files() {
    if !ready() {
        return;
    }
    let dir = test_util::TempDir::new("usdt-node");
    let built = build(&dir);
    // The program is only the node's, at /usr/bin/app-usdt (reached through /bin).
    let node = FakeNode::new("usdt");
    let app = node.root.join("usr/bin/app-usdt");
    std::fs::copy(&built, &app).unwrap();
    let proc = node.proc.display().to_string();
    let trace = Trace::start(&[
        "--host-proc",
        &proc,
        "-e",
        "BEGIN { printf(\"ready\\n\"); } usdt:/bin/app-usdt:app:line { @ = count(); }",
    ]);
    let mut child = start_app(&app);
    child.stdin.take().unwrap().write_all(b"a\nb\nc\n").unwrap();
    assert!(child.wait().unwrap().success());
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@: 3\n"),
        "the node's program, exactly:\n{out}"
    );
}
