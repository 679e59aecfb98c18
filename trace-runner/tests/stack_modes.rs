//! Stacks of a real process in each printing mode bpftrace 0.17 has: a Python loop in a
//! test cgroup, sampled by `profile:hz:99` into maps keyed by `ustack(perf)` and `ustack`.
//! Each frame line must have the form bpftrace prints (perf: `\t<hex> <sym> (<module>)`,
//! bpftrace: 4 spaces and `<sym>` in a key).

mod common;

use std::process::{Command, Stdio};

/// The frame lines of the keys of map `@name` in `out` (the lines between `@name[` and `]: N`).
fn key_frames<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let mut frames = Vec::new();
    let mut inside = false;
    for line in out.lines() {
        if line == format!("@{name}[") {
            inside = true;
        } else if inside && line.starts_with("]: ") {
            inside = false;
        } else if inside {
            frames.push(line);
        }
    }
    frames
}

#[test]
fn user_stacks_in_perf_and_bpftrace_modes() {
    if !common::require_bpf() {
        return;
    }
    let cg = common::TestCgroup::new("stackmodes");
    let mut python = cg
        .command("/usr/bin/python3 -c 'import os\nwhile True:\n  sum(range(1000)); os.stat(\"/\")'")
        .spawn()
        .unwrap();
    let out = Command::new(common::runner())
        .args(["run", "--deadline", "2s", "--cgroup"])
        .arg(&cg.path)
        .args([
            "-e",
            "profile:hz:99 { @p[ustack(perf)] = count(); @b[ustack] = count(); }",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let _ = python.kill();
    let _ = python.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    // perf: `\t<hex addr> <func+off | 0xaddr> (<module path> | [unknown])`.
    let perf = key_frames(&stdout, "p");
    assert!(perf.len() >= 3, "too few frames in:\n{stdout}");
    let mut with_module = 0;
    for line in &perf {
        let rest = line
            .strip_prefix('\t')
            .unwrap_or_else(|| panic!("{line:?}"));
        let (addr, rest) = rest.split_once(' ').unwrap_or_else(|| panic!("{line:?}"));
        assert!(u64::from_str_radix(addr, 16).is_ok(), "{line:?}");
        let (sym, module) = rest
            .rsplit_once(" (")
            .unwrap_or_else(|| panic!("no module in {line:?}"));
        assert!(!sym.is_empty() && module.ends_with(')'), "{line:?}");
        let module = module.trim_end_matches(')');
        if module == "[unknown]" {
            continue;
        }
        assert!(module.starts_with('/'), "{line:?}");
        assert!(
            sym.rsplit_once('+').is_some(),
            "a resolved frame is func+off: {line:?}"
        );
        with_module += 1;
    }
    assert!(with_module > 0, "no frame named its module:\n{stdout}");

    // bpftrace mode: 4 spaces of indent in a key, no module.
    let plain = key_frames(&stdout, "b");
    assert!(!plain.is_empty(), "{stdout}");
    for line in &plain {
        let sym = line
            .strip_prefix("    ")
            .unwrap_or_else(|| panic!("{line:?}"));
        assert!(!sym.starts_with(' ') && !sym.contains(" ("), "{line:?}");
    }
}
