//! Language features end to end through the binary (BEGIN-only, so the output is exact):
//! positional parameters, scratch variables, control flow, string comparison, map
//! statements.

mod common;

use std::process::Command;

use common::*;

#[test]
fn positional_parameters() {
    if !require_bpf() {
        return;
    }
    let out = run_script(
        "BEGIN { printf(\"%d %d %s %d\\n\", $1, $2 + 1, str($3), $#); exit(); }",
        &["5", "0x10", "name"],
    );
    assert_eq!(out, "Attaching 1 probe...\n5 17 name 3\n\n\n");
}

#[test]
fn control_flow_variables_and_strings() {
    if !require_bpf() {
        return;
    }
    let script = r#"BEGIN {
  $s = "abc"; $n = 0;
  if ($s == "abc") { printf("eq\n"); } else { printf("ne\n"); }
  if ($s != "abd") { printf("ne2\n"); }
  unroll(5) { $n++; }
  $n += 10;
  @t = $n > 3 ? 100 : 200;
  @u = $n;
  @c++; @c += 5; @c--;
  @k["x", 1] = 1; @k["y", 2] = 2; delete(@k["x", 1]);
  @neg = -7 / 2; // unsigned, as bpftrace 0.17 divides
  @mod = 17 % 5; @bits = (1 << 10) | 3 ^ 1;
  exit();
}"#;
    let out = run_script(script, &[]);
    assert_eq!(
        out,
        "Attaching 1 probe...\neq\nne2\n\n\n@bits: 1026\n@c: 5\n@k[y, 2]: 2\n@mod: 2\n@neg: 9223372036854775804\n@t: 100\n@u: 15\n"
    );
}

#[test]
fn code_after_exit_and_return_is_accepted() {
    if !require_bpf() {
        return;
    }
    let out = run_script(
        "BEGIN { printf(\"a\\n\"); exit(); printf(\"never\\n\"); }",
        &[],
    );
    assert_eq!(out, "Attaching 1 probe...\na\n\n\n");
}

#[test]
fn map_size_follows_bpftrace_map_keys_max() {
    if !require_bpf() {
        return;
    }
    let script = "BEGIN { $i = 0; unroll(20) { @[$i] = 1; $i++; } exit(); }";
    let out = Command::new(runner())
        .args(["run", "-e", script])
        .env("BPFTRACE_MAP_KEYS_MAX", "8")
        .output()
        .unwrap();
    let keys = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("@["))
        .count();
    assert_eq!(keys, 8, "a map of 8 entries holds 8 keys");
}

#[test]
fn while_loops_with_break_and_continue() {
    if !require_bpf() {
        return;
    }
    // The same output as bpftrace 0.17 for the same script.
    let script = "BEGIN { $i = 0; $s = 0; while ($i < 100) { $i++; if ($i % 2 == 0) { continue; } if ($i > 50) { break; } $s += $i; } printf(\"%d %d\\n\", $i, $s); exit(); }";
    assert_eq!(
        run_script(script, &[]),
        "Attaching 1 probe...\n51 625\n\n\n"
    );
}

#[test]
fn break_outside_a_loop_is_a_located_error() {
    let out = Command::new(runner())
        .args(["check", "-e", "BEGIN { break; }"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("stdin:1:9: error: 'break' can only be used inside a while loop"),
        "{err}"
    );
}

#[test]
fn offsetof_from_the_kernels_btf() {
    if !require_bpf() {
        return;
    }
    let script = "BEGIN { printf(\"%d %d %d\\n\", offsetof(struct sock, __sk_common), offsetof(struct sock, __sk_common.skc_dport) - offsetof(struct sock_common, skc_dport), offsetof(struct task_struct, pid) > 0); exit(); }";
    assert_eq!(run_script(script, &[]), "Attaching 1 probe...\n0 0 1\n\n\n");
    let out = Command::new(runner())
        .args([
            "check",
            "-e",
            "BEGIN { @ = offsetof(struct sock, no_such_member); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("has no member 'no_such_member'"), "{err}");
}
