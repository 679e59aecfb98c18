//! `trace-runner list`: the probes this node offers, like `bpftrace -l`.

mod common;

use std::process::Command;

use common::*;

fn list(pattern: &str) -> String {
    let out = Command::new(runner())
        .args(["list", pattern])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lists_tracepoints_raw_tracepoints_and_uprobe_functions() {
    if !require_bpf() {
        return;
    }
    let tp = list("tracepoint:syscalls:sys_enter_open*");
    assert!(
        tp.lines()
            .any(|l| l == "tracepoint:syscalls:sys_enter_openat"),
        "{tp}"
    );
    assert!(
        tp.lines()
            .all(|l| l.starts_with("tracepoint:syscalls:sys_enter_open")),
        "{tp}"
    );
    let raw = list("rawtracepoint:sched_switch");
    assert_eq!(raw, "rawtracepoint:sched_switch\n");
    let plain = list("sys_enter_getppid");
    assert!(
        plain.contains("tracepoint:syscalls:sys_enter_getppid\n"),
        "a bare word matches anywhere: {plain}"
    );
    // A library by name: libc.so (a linker script on Debian) is not taken for libc.so.6.
    let uprobes = list("uprobe:libc:getppid");
    assert_eq!(uprobes, "uprobe:libc:getppid\n");
}
