//! Nothing of ours stays in the kernel after any exit: SIGINT, SIGTERM, SIGKILL,
//! exit() and the deadline. (One test function, so the counts are not disturbed by
//! other tests of this binary running in parallel.)

mod common;

use std::process::Command;

use common::*;

const SCRIPT: &str = "BEGIN { printf(\"ready\\n\"); } tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } tracepoint:raw_syscalls:sys_enter { @n = count(); } END { printf(\"bye\\n\"); }";

fn settle(before: usize) -> usize {
    // Program release after the last fd closes is asynchronous (RCU); give it a moment.
    let mut now = loaded_programs();
    for _ in 0..100 {
        if now <= before {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
        now = loaded_programs();
    }
    now
}

#[test]
fn no_programs_left_after_any_exit() {
    if !require_bpf() {
        return;
    }
    let before = loaded_programs();
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGKILL] {
        let trace = Trace::start(&["-e", SCRIPT]);
        assert!(
            loaded_programs() >= before + 4,
            "the trace's programs should be loaded while it runs"
        );
        let (out, code) = trace.stop(sig);
        if sig != libc::SIGKILL {
            assert_eq!(code, Some(0), "clean exit on signal {sig}: {out}");
            assert!(out.contains("bye"), "END ran on signal {sig}: {out}");
            assert!(out.contains("@n: "), "maps printed on signal {sig}: {out}");
        }
        let after = settle(before);
        assert!(
            after <= before,
            "programs leaked after signal {sig}: {after} loaded, {before} before"
        );
    }
    // exit() and the deadline.
    for args in [
        vec!["run", "-e", "BEGIN { exit(); }"],
        vec![
            "run",
            "--deadline",
            "1s",
            "-e",
            "tracepoint:raw_syscalls:sys_enter { @ = count(); }",
        ],
    ] {
        let status = Command::new(runner()).args(&args).output().unwrap();
        assert!(
            status.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&status.stderr)
        );
        let after = settle(before);
        assert!(
            after <= before,
            "programs leaked after {args:?}: {after} loaded, {before} before"
        );
    }
}
