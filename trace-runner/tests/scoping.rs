//! In-kernel scoping: `--cgroup` and `--pid` count exactly the target's events.

mod common;

use common::*;

const COUNT_GETPPID: &str =
    "BEGIN { printf(\"ready\\n\"); } tracepoint:syscalls:sys_enter_getppid { @ = count(); }";

fn getppid_loop(n: usize) -> String {
    format!("/usr/bin/python3 -c 'import os\nfor _ in range({n}): os.getppid()'")
}

#[test]
fn cgroup_filter_counts_only_that_cgroup() {
    if !require_bpf() {
        return;
    }
    let target = TestCgroup::new("scope");
    let other = TestCgroup::new("other");
    let cg = target.path.to_str().unwrap().to_string();
    let trace = Trace::start(&["--cgroup", &cg, "-e", COUNT_GETPPID]);
    // Inside the cgroup: 1234 calls. Outside: in another cgroup, and in our own.
    run_ok(&mut target.command(&getppid_loop(1234)));
    run_ok(&mut other.command(&getppid_loop(777)));
    run_ok(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(getppid_loop(55)),
    );
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@: 1234\n"),
        "expected exactly the cgroup's 1234 calls, got:\n{out}"
    );
}

#[test]
fn cgroup_filter_includes_descendants() {
    if !require_bpf() {
        return;
    }
    let pod = TestCgroup::new("pod");
    let a = pod.child("container-a");
    let b = pod.child("container-b");
    let cg = pod.path.to_str().unwrap().to_string();
    let trace = Trace::start(&["--cgroup", &cg, "-e", COUNT_GETPPID]);
    run_ok(&mut a.command(&getppid_loop(100)));
    run_ok(&mut b.command(&getppid_loop(23)));
    let (out, _) = trace.stop(libc::SIGTERM);
    assert!(
        out.contains("@: 123\n"),
        "expected both containers' 123 calls, got:\n{out}"
    );
    drop((a, b));
}

#[test]
fn pid_filter_counts_only_that_process() {
    if !require_bpf() {
        return;
    }
    // A workload that waits for a line on stdin before its loop, so the trace can
    // attach to its pid first.
    let mut child = std::process::Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import os, sys\nsys.stdin.readline()\nfor _ in range(321): os.getppid()")
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let trace = Trace::start(&["--pid", &pid, "-e", COUNT_GETPPID]);
    run_ok(
        std::process::Command::new("sh")
            .arg("-c")
            .arg(getppid_loop(99)),
    );
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait().unwrap();
    let (out, _) = trace.stop(libc::SIGINT);
    assert!(
        out.contains("@: 321\n"),
        "expected the process's 321 calls, got:\n{out}"
    );
}
