//! Syscall tracepoints are served by raw `sys_enter`/`sys_exit` programs filtered by
//! syscall number: counts per probe, arguments, return values and the whole
//! `sys_enter_*` wildcard (which bpftrace needs 26 s to attach here) must all be right.

mod common;

use common::*;

fn workload(n_getppid: usize, n_getpid: usize, comm_dir: &std::path::Path) {
    let py = comm_dir.join("ktsys");
    if !py.exists() {
        std::os::unix::fs::symlink("/usr/bin/python3.11", &py).unwrap();
    }
    let status = std::process::Command::new(&py)
        .arg("-c")
        .arg(format!(
            "import os\nfor _ in range({n_getppid}): os.getppid()\nfor _ in range({n_getpid}): os.getpid()\nos.lseek(os.open('/etc/passwd', os.O_RDONLY), 12345, 0)"
        ))
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn probes_arguments_and_return_values() {
    if !require_bpf() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kt-sys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"BEGIN { printf("ready\n"); }
tracepoint:syscalls:sys_enter_getppid, tracepoint:syscalls:sys_enter_getpid /comm == "ktsys"/ { @calls[probe] = count(); }
tracepoint:syscalls:sys_enter_lseek /comm == "ktsys" && args->offset == 12345/ { @offset = max(args->offset); @whence = sum(args->whence + 7); }
tracepoint:syscalls:sys_exit_lseek /comm == "ktsys" && args->ret == 12345/ { @ret = max(args->ret); @nr = max(args->__syscall_nr); }
tracepoint:syscalls:sys_enter_* /comm == "ktsys"/ { @all = count(); }"#;
    let trace = Trace::start(&["-e", script]);
    workload(321, 123, &dir);
    let (out, code) = trace.stop(libc::SIGINT);
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@calls[tracepoint:syscalls:sys_enter_getpid]: 123\n"),
        "{out}"
    );
    assert!(
        out.contains("@calls[tracepoint:syscalls:sys_enter_getppid]: 321\n"),
        "{out}"
    );
    assert!(
        out.contains("@offset: 12345\n") && out.contains("@ret: 12345\n"),
        "{out}"
    );
    assert!(
        out.contains("@whence: 7\n") && out.contains("@nr: 8\n"),
        "{out}"
    );
    let all: u64 = out
        .lines()
        .find_map(|l| l.strip_prefix("@all: "))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        all >= 321 + 123 + 2,
        "the wildcard sees every syscall of the workload: {out}"
    );
}

#[test]
fn kernel_stacks_start_at_the_traced_code() {
    if !require_bpf() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("kt-sysstack-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trace = Trace::start(&["-e", "BEGIN { printf(\"ready\\n\"); } tracepoint:syscalls:sys_enter_getppid /comm == \"ktsys\"/ { @[kstack] = count(); }"]);
    workload(3, 0, &dir);
    let (out, _) = trace.stop(libc::SIGINT);
    std::fs::remove_dir_all(&dir).unwrap();
    let first = out
        .lines()
        .skip_while(|l| !l.starts_with("@["))
        .nth(1)
        .unwrap_or_default()
        .trim();
    assert!(
        !first.is_empty() && !first.starts_with("bpf_"),
        "first frame {first:?} in:\n{out}"
    );
    assert!(out.contains("do_syscall_64"), "{out}");
}
