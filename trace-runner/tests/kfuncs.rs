//! kfunc/kretfunc scripts against this node's BTF (no fentry needed: nothing is
//! attached; the kernel matrix attaches them on Debian's 6.1 and 6.12): `args->NAME`
//! and `retval` typed from the function's prototype, a located error for a parameter
//! the function lacks, and missing functions skipped with bpftrace's warning, the run
//! failing only when nothing is left.

mod common;

use std::process::Command;

use common::{require_bpf, runner};

fn run(args: &[&str]) -> (i32, String) {
    let out = Command::new(runner()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn args_and_retval_check_against_btf() {
    if !require_bpf() {
        return;
    }
    let (code, out) = run(&[
        "check",
        "-e",
        "kretfunc:vfs_read /args->count > 0/ { @[str(args->file->f_path.dentry->d_name.name)] = sum(retval); }",
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(&["check", "-e", "kfunc:vfs_read { @ = sum(args->nope); }"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("stdin:1:26: error: Can't find function parameter nope\n"),
        "{out}"
    );
}

#[test]
fn missing_functions_are_skipped_and_nothing_left_fails() {
    if !require_bpf() {
        return;
    }
    let (code, out) = run(&[
        "run",
        "-e",
        "kfunc:km_no_such_function, kretfunc:km_none_* { @ = count(); }",
    ]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        out,
        "WARNING: could not attach probe kfunc:km_no_such_function, skipping.\n\
         WARNING: could not attach probe kretfunc:km_none_*, skipping.\n\
         error: nothing to trace: every attach point was skipped (see the warnings above)\n"
    );
}
