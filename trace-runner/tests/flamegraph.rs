//! `--format folded` and `--flamegraph FILE.svg` on a real profile: a Python loop
//! (arithmetic plus `os.stat`, so both user and kernel frames show) and a shell busy
//! loop, in a test cgroup, sampled by `profile:hz:99 { @[ustack, kstack] = count(); }`.
//! The folded output must be `frame;frame;... count` lines with kernel symbols in them,
//! and the SVG a well-formed document with the same frames drawn as rectangles.

mod common;

use std::process::{Command, Stdio};

/// A minimal well-formedness check: every tag closed in order, one root `<svg>`.
fn well_formed(doc: &str) -> Result<(), String> {
    let body = doc
        .trim_start()
        .strip_prefix("<?xml")
        .and_then(|r| r.split_once("?>"))
        .map_or(doc, |(_, rest)| rest);
    let mut stack: Vec<String> = Vec::new();
    let mut roots = 0;
    let mut rest = body;
    while let Some(at) = rest.find('<') {
        let end = rest[at..].find('>').ok_or("unclosed '<'")? + at;
        let tag = &rest[at + 1..end];
        rest = &rest[end + 1..];
        if let Some(name) = tag.strip_prefix('/') {
            let open = stack.pop().ok_or(format!("stray </{name}>"))?;
            if open != name.trim() {
                return Err(format!("<{open}> closed by </{name}>"));
            }
        } else if !tag.ends_with('/') {
            let name = tag.split_whitespace().next().unwrap_or("").to_string();
            if stack.is_empty() {
                roots += 1;
                if name != "svg" {
                    return Err(format!("root element is <{name}>"));
                }
            }
            stack.push(name);
        } else if stack.is_empty() {
            return Err("empty element at the root".into());
        }
    }
    if !stack.is_empty() || roots != 1 {
        return Err(format!("unclosed {stack:?}, {roots} roots"));
    }
    for bad in ["& ", "&\"", "<<"] {
        if body.contains(bad) {
            return Err(format!("unescaped text: {bad}"));
        }
    }
    Ok(())
}

#[test]
fn svg_checker_works() {
    assert!(well_formed("<?xml version=\"1.0\"?>\n<svg a=\"1\"><g><rect/></g></svg>\n").is_ok());
    assert!(well_formed("<svg><g></svg>").is_err());
    assert!(well_formed("<g></g>").is_err());
}

#[test]
fn profile_flame_graph_and_folded_stacks() {
    if !common::require_bpf() {
        return;
    }
    let cg = common::TestCgroup::new("flame");
    let mut python = cg
        .command("/usr/bin/python3 -c 'import os\nwhile True:\n  sum(range(1000)); os.stat(\"/\")'")
        .spawn()
        .unwrap();
    let mut shell = cg.command("sh -c 'while :; do :; done'").spawn().unwrap();
    let dir = tempfile_dir();
    let svg_path = dir.join("cpu.svg");
    let out = Command::new(common::runner())
        .args(["run", "--deadline", "3s", "--format", "folded", "--cgroup"])
        .arg(&cg.path)
        .arg("--flamegraph")
        .arg(&svg_path)
        .args(["-e", "profile:hz:99 { @[ustack, kstack] = count(); }"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let _ = python.kill();
    let _ = shell.kill();
    let _ = python.wait();
    let _ = shell.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("Attaching 1 probe..."), "{stderr}");
    assert!(stderr.contains("flame graph of"), "{stderr}");

    // Folded: `a;b;c N`, at least a second's worth of samples, kernel frames named.
    let mut samples = 0u64;
    for line in stdout.lines() {
        let (stack, n) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        samples += n
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("bad count in {line:?}"));
        assert!(
            !stack.is_empty() && stack.split(';').all(|f| !f.is_empty()),
            "{line:?}"
        );
        assert!(!stack.contains('+'), "offsets must be stripped: {line:?}");
    }
    assert!(samples >= 99, "only {samples} samples:\n{stdout}");
    let kernel = [
        "do_syscall_64",
        "entry_SYSCALL_64_after_hwframe",
        "asm_sysvec_apic_timer_interrupt",
    ];
    assert!(
        kernel.iter().any(|k| stdout.contains(k)),
        "no kernel frame in:\n{stdout}"
    );
    // User frames from Python's and libc's dynamic symbols (the binaries are stripped,
    // so only exported functions resolve).
    assert!(
        stdout.split([';', '\n']).any(|f| f.starts_with("_Py")
            || f.starts_with("Py")
            || f.contains("stat64")
            || f.contains("fstatat")),
        "no user frame resolved in:\n{stdout}"
    );

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    well_formed(&svg).unwrap_or_else(|e| panic!("{e}:\n{svg}"));
    assert!(svg.contains("<svg "), "{svg}");
    let rects = svg.matches("<rect").count();
    assert!(rects >= 10, "only {rects} rects");
    assert!(
        svg.contains(&format!("<title>all ({samples} samples, 100.00%)</title>")),
        "{svg}"
    );
    assert!(
        kernel
            .iter()
            .any(|k| svg.contains(&format!("<title>{k} ("))),
        "{svg}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("kt-flame-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
