//! `signal()` and `system()` change the system, so like bpftrace they need `--unsafe`: without it a
//! script using it gets a located error that says so; with it the signal is sent.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn signal_needs_unsafe() {
    let src = "tracepoint:syscalls:sys_enter_getppid { signal(\"SIGTERM\"); }";
    for cmd in [vec!["check"], vec!["run", "--deadline", "1s"]] {
        let out = Command::new(common::runner())
            .args(&cmd)
            .args(["-e", src])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{cmd:?}: {err}");
        assert!(
            err.starts_with(
                "stdin:1:41: error: signal() can kill processes: it is only allowed with --unsafe"
            ),
            "{cmd:?}: {err}"
        );
        assert!(err.contains("^~~~"), "{err}");
    }
}

#[test]
fn signal_with_unsafe_kills_the_target() {
    if !common::require_bpf() {
        return;
    }
    // A process that calls getppid() every 50 ms for up to 20 s.
    let mut victim = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import os, time\nfor i in range(400):\n  os.getppid(); time.sleep(0.05)",
        ])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = victim.id();
    let script = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} tracepoint:syscalls:sys_enter_getppid /pid == {pid}/ {{ signal(\"SIGTERM\"); }}"
    );
    let trace = common::Trace::start(&["--unsafe", "-e", &script]);
    let end = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = victim.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "the victim was not signalled");
        std::thread::sleep(Duration::from_millis(20));
    };
    let (_, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
}

/// `system()` runs commands: like bpftrace it needs `--unsafe`, and then prints the
/// command's output.
#[test]
fn system_needs_unsafe_and_then_prints_the_output() {
    let src = "BEGIN { system(\"echo hi %d\", 5); exit(); }";
    let out = Command::new(common::runner())
        .args(["check", "-e", src])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "stdin:1:9: error: system() runs commands on the node: it is only allowed with --unsafe"
        ),
        "{err}"
    );
    if !common::require_bpf() {
        return;
    }
    let out = Command::new(common::runner())
        .args(["run", "--unsafe", "-e", src])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("\nhi 5\n"), "{stdout}");
}

/// A stop is not held by a backlog of `system()` calls: with one per context switch,
/// each command's context switches queue more of them faster than they run, and the
/// stop used to run every queued one first (tens of seconds to minutes). Now what is
/// queued runs for at most a second, then END (bpftrace 0.17 drops them all).
#[test]
fn a_backlog_of_system_calls_does_not_hold_a_stop() {
    if !common::require_bpf() {
        return;
    }
    let src = "tracepoint:sched:sched_switch { system(\"true\"); } END { printf(\"end\\n\"); }";
    let mut child = Command::new(common::runner())
        .args(["run", "--unsafe", "-e", src])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = stopped.elapsed();
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}", out.status);
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).ends_with("end\n\n\n"),
        "no END output"
    );
}
