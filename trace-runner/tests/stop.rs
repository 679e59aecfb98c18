//! `trace-runner stop`, as the plugin runs it through `pods/exec` on Ctrl-C: it stops
//! the runner of its own container (same mount namespace and cgroup) gracefully, so END
//! runs and the maps are printed, and leaves runners of other containers alone.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = "BEGIN { printf(\"ready\\n\"); @started = 1; } \
    interval:s:100 { exit(); } END { printf(\"end\\n\"); }";

/// Start a runner through `cmd` and wait for its `ready` line.
// The child goes back to the caller, which waits for it.
#[allow(clippy::zombie_processes)]
fn start(mut cmd: Command) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start trace-runner");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut line = String::new();
        if out.read_line(&mut line).unwrap() == 0 {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            let _ = child.wait();
            panic!("trace-runner ended before it was ready: {err}");
        }
        if line.trim() == "ready" {
            return (child, out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("trace-runner not ready in time");
        }
    }
}

#[test]
fn stop_ends_the_runner_of_its_own_container_gracefully() {
    if !require_bpf() {
        return;
    }
    let cg = TestCgroup::new("stop");
    // "The container": its own cgroup and mount namespace (unshare execs the runner).
    let (mut inside, mut inside_out) =
        start(cg.command(&format!("unshare -m {} run -e '{SCRIPT}'", runner())));
    // Another container's runner: same program, other cgroup and mount namespace.
    let other_cg = TestCgroup::new("stop-other");
    let (mut other, _other_out) =
        start(other_cg.command(&format!("unshare -m {} run -e '{SCRIPT}'", runner())));

    // `kubectl exec` into the container: join its mount namespace and cgroup.
    let stop = cg
        .command(&format!("nsenter -t {} -m {} stop", inside.id(), runner()))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&stop.stdout);
    assert!(
        stop.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&stop.stderr)
    );
    assert!(
        said.contains(&format!("stopping trace-runner (pid {})", inside.id())),
        "{said}"
    );
    let mut rest = String::new();
    inside_out.read_to_string(&mut rest).unwrap();
    let status = inside.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert_eq!(rest, "end\n\n\n@started: 1\n");

    // The other runner still runs.
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        other.try_wait().unwrap().is_none(),
        "the other runner was stopped"
    );
    unsafe { libc::kill(other.id() as i32, libc::SIGTERM) };
    other.wait().unwrap();
}

#[test]
fn stop_without_a_runner_says_so() {
    let out = Command::new("unshare")
        .args(["-m", runner(), "stop"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "error: no trace-runner is running in this container (the trace has ended)\n"
    );
}
