//! A full ring buffer loses events in the kernel, and the runner says how many at exit;
//! a storm of events does not keep SIGINT waiting.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn full_ring_buffer_is_counted_and_reported() {
    if !require_bpf() {
        return;
    }
    // stdout is a pipe nobody reads for a while: the runner blocks writing, the ring fills.
    let mut child = Command::new(runner())
        .args(["run", "-e", "tracepoint:raw_syscalls:sys_enter /comm == \"dd\"/ { printf(\"%s %s %d\\n\", comm, comm, args->id); }"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let status = Command::new("dd")
        .args(["if=/dev/zero", "of=/dev/null", "bs=1", "count=300000"])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let mut out = Vec::new();
    child.stdout.take().unwrap().read_to_end(&mut out).unwrap();
    let code = child.wait().unwrap().code();
    let out = String::from_utf8_lossy(&out);
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "SIGINT honoured promptly"
    );
    let lost = out
        .lines()
        .find(|l| l.starts_with("Lost "))
        .unwrap_or_else(|| {
            panic!(
                "no 'Lost N events' line in the last output: {}",
                &out[out.len().saturating_sub(300)..]
            )
        });
    let n: u64 = lost.split_whitespace().nth(1).unwrap().parse().unwrap();
    let printed = out.lines().filter(|l| l.starts_with("dd dd ")).count() as u64;
    assert!(n > 0, "{lost}");
    assert!(
        printed + n >= 600_000,
        "every event is either printed or counted lost: {printed} + {n}"
    );
}
