//! `trace-runner check --attach FILE...`: several scripts checked in one process, each
//! compiled, loaded through the verifier, attached and detached, with one line per file
//! and a failing exit status when any failed (the kernel matrix's `all_tools` case runs
//! it over every bpftrace tool; here a few bundled scripts, a broken script, a missing
//! file and a kprobe script, which attaches only where the kernel has kprobes).

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn every_file_gets_one_line_and_any_failure_fails_the_run() {
    if !common::require_bpf() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kt-check-attach-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.bt");
    std::fs::write(
        &broken,
        "BEGIN { printf(\"hi\\n\"); }\nkprobe:vfs_read { nope(); }\n",
    )
    .unwrap();
    let kprobe = dir.join("kprobe.bt");
    std::fs::write(&kprobe, "kprobe:vfs_read { @ = count(); }\n").unwrap();
    let missing = dir.join("missing.bt");
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf-scripts");
    let bundled = ["execsnoop", "runqlat", "vfsstat"].map(|s| scripts.join(format!("{s}.bt")));
    let out = Command::new(common::runner())
        .args(["check", "--attach"])
        .args(&bundled)
        .args([&broken, &missing, &kprobe])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let has_kprobes = Path::new("/sys/bus/event_source/devices/kprobe").exists();
    let kprobe_line = if has_kprobes {
        format!("{}: ok (1 probe)", kprobe.display())
    } else {
        format!(
            "{}: error: cannot attach kprobe:vfs_read: this kernel has no kprobes (CONFIG_KPROBES is off); the program passed the verifier, but only tracepoints, raw tracepoints, uprobes and perf events can attach here (see `trace-runner list`)",
            kprobe.display()
        )
    };
    let expected = [
        format!("{}: ok (2 probes)", bundled[0].display()),
        format!("{}: ok (5 probes)", bundled[1].display()),
        format!("{}: ok (9 probes)", bundled[2].display()),
        format!("{}:2:19: error: Unknown function: nope", broken.display()),
        format!(
            "{}: error: cannot read {}: No such file or directory (os error 2)",
            missing.display(),
            missing.display()
        ),
        kprobe_line,
    ];
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines, expected, "stderr:\n{stderr}");
    // The broken script's error is located on stderr: its line and a caret.
    assert!(
        stderr.contains("kprobe:vfs_read { nope(); }\n                  ^~~~"),
        "{stderr}"
    );
    // A one-line error is not repeated on stderr.
    assert!(!stderr.contains("cannot read"), "{stderr}");
    // BEGIN does not run: checking prints nothing of the script's own.
    assert!(
        !stdout.lines().chain(stderr.lines()).any(|l| l == "hi"),
        "{stderr}"
    );
    // A loader failure (no kprobes) makes it 1, else the script errors make it 2.
    assert_eq!(
        out.status.code(),
        Some(if has_kprobes { 2 } else { 1 }),
        "{stderr}"
    );
    let failed = if has_kprobes { 2 } else { 3 };
    assert!(
        stderr.ends_with(&format!("error: {failed} of 6 scripts failed\n")),
        "{stderr}"
    );
}

#[test]
fn scripts_that_all_attach_exit_0() {
    if !common::require_bpf() {
        return;
    }
    let out = Command::new(common::runner())
        .args([
            "check",
            "--attach",
            "-e",
            "tracepoint:syscalls:sys_enter_getppid, interval:s:1 { @ = count(); }",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout,
        "stdin: ok (2 probes)\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0));
}
