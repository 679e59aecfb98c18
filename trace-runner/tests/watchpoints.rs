//! Function watchpoints (`watchpoint:FUNC+argN:LEN:MODE`, `asyncwatchpoint:`,
//! `unwatch`) end to end, through `trace-runner bpftrace -c CMD`, with exact hit counts
//! and, where bpftrace 0.17 is installed, its output on the same program byte for byte.
//!
//! The program, built here with `cc`, takes BUFFERS, WRITES and GAP: for each of BUFFERS
//! fresh buffers it passes the buffer's address to `arm()` (which does not touch it),
//! waits 300 ms, then writes the buffer WRITES times, GAP microseconds apart (1 ms). So a watchpoint on
//! `arm+arg0` hits exactly WRITES times per buffer, whether or not the process is
//! stopped while the breakpoint is set.

mod common;
#[path = "../src/test_util.rs"]
#[allow(dead_code)]
mod test_util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const PROG: &str = r#"
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) void arm(int *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

int main(int argc, char **argv) {
  int buffers = argc > 1 ? atoi(argv[1]) : 1;
  int writes = argc > 2 ? atoi(argv[2]) : 3;
  int gap = argc > 3 ? atoi(argv[3]) : 1000;
  for (int b = 0; b < buffers; b++) {
    volatile int *p = malloc(64);
    arm((int *)p);
    usleep(300000);
    for (int i = 0; i < writes; i++) {
      *p = i;
      usleep(gap);
    }
  }
  return 0;
}
"#;

fn build(dir: &test_util::TempDir) -> PathBuf {
    test_util::build_c(&dir.0, "watched", &[PROG], &[])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `trace-runner bpftrace ARGS`.
fn ours(args: &[&str]) -> Output {
    Command::new(runner())
        .arg("bpftrace")
        .args(args)
        .env_remove("__BPFTRACE_NOTIFY_PROBES_ATTACHED")
        .output()
        .unwrap()
}

/// Run `script` on `-c "APP ARGS"` with ours, check stdout is `expected`, and that
/// bpftrace 0.17 prints the same (when installed).
fn check(app: &Path, script: &str, app_args: &str, extra: &[&str], expected: &str) {
    let cmd = format!("{} {app_args}", app.display());
    let mut args = vec!["-e", script, "-c", &cmd];
    args.extend_from_slice(extra);
    let out = ours(&args);
    assert!(
        out.status.success(),
        "{script}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    assert_eq!(
        text(&out.stdout),
        expected,
        "{script}\n{}",
        text(&out.stderr)
    );
    if require_bpftrace() {
        let reference = Command::new(BPFTRACE).args(&args).output().unwrap();
        assert_eq!(
            text(&out.stdout),
            text(&reference.stdout),
            "{script}: bpftrace 0.17 printed otherwise"
        );
    }
}

#[test]
fn a_watchpoint_on_a_function_argument_sees_every_write() {
    if !require_bpf() {
        return;
    }
    let dir = test_util::TempDir::new("watch-sync");
    let app = build(&dir);
    let name = format!("watchpoint:{}:arm:4:w", app.display());
    check(
        &app,
        "watchpoint:arm+arg0:4:w { @[probe] = count(); }",
        "1 3",
        &[],
        &format!("Attaching 1 probe...\n\n\n@[{name}]: 3\n"),
    );
}

#[test]
fn an_async_watchpoint_sees_every_write_after_the_delay() {
    if !require_bpf() {
        return;
    }
    let dir = test_util::TempDir::new("watch-async");
    let app = build(&dir);
    let name = format!("asyncwatchpoint:{}:arm:4:w", app.display());
    check(
        &app,
        "asyncwatchpoint:arm+arg0:4:w { @[probe] = count(); }",
        "2 2",
        &[],
        &format!("Attaching 1 probe...\n\n\n@[{name}]: 4\n"),
    );
}

#[test]
fn the_fifth_address_finds_no_debug_register() {
    if !require_bpf() {
        return;
    }
    let dir = test_util::TempDir::new("watch-regs");
    let app = build(&dir);
    // x86-64 has 4 debug registers: buffers 5 and 6 are not watched.
    let lost = "Failed to attach watchpoint probe. You are out of watchpoint registers.\n";
    check(
        &app,
        "watchpoint:arm+arg0:4:w { @ = count(); }",
        "6 2",
        &[],
        &format!("Attaching 1 probe...\n{lost}{lost}\n\n@: 8\n"),
    );
    let lost = r#"{"type": "lost_events", "data": "Failed to attach watchpoint probe. You are out of watchpoint registers."}"#;
    check(
        &app,
        "watchpoint:arm+arg0:4:w { @ = count(); }",
        "6 2",
        &["-f", "json"],
        &format!(
            "{{\"type\": \"attached_probes\", \"data\": {{\"probes\": 1}}}}\n{lost}\n{lost}\n\n\n{{\"type\": \"map\", \"data\": {{\"@\": 8}}}}\n"
        ),
    );
}

#[test]
fn unwatch_removes_the_watchpoint_after_its_first_hit() {
    if !require_bpf() {
        return;
    }
    let dir = test_util::TempDir::new("watch-unwatch");
    let app = build(&dir);
    let script = format!(
        "uprobe:{}:arm {{ @a = arg0 }} watchpoint:arm+arg0:4:w {{ @n = count(); unwatch(@a) }} END {{ clear(@a) }}",
        app.display()
    );
    // unwatch takes effect once user space has read the event: 100 ms between writes.
    check(
        &app,
        &script,
        "1 5 100000",
        &[],
        "Attaching 3 probes...\n\n\n\n@n: 1\n",
    );
}

#[test]
fn a_function_watchpoint_needs_a_process() {
    let out = ours(&["-e", "watchpoint:arm+arg0:4:w { @ = count(); }"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        text(&out.stderr),
        "stdin:1:1: ERROR: -p PID or -c CMD required for watchpoint\n\
         watchpoint:arm+arg0:4:w { @ = count(); }\n\
         ^~~~~~~~~~~~~~~~~~~~~~~\n"
    );
}
