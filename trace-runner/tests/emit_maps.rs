//! `--emit-maps` (for `kubectl trace --merge`): the real runner, on the two halves of a
//! program's events (`trace-output/tests/fixtures/merge/part1.bt`, `part2.bt`), prints
//! what bpftrace 0.17 printed for each, then one maps line; the two maps lines, merged,
//! print exactly what bpftrace printed for the whole program (`combined.txt`). The maps
//! line also lands in the persisted output, and a compiled object refuses the flag.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;
use trace_contract::maps::{parse_line, MapsRecord, MAPS_LINE_PREFIX};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../trace-output/tests/fixtures/merge")
}

/// Run `NAME.bt` with `--emit-maps`: its output before the maps line, and the record.
fn run(name: &str, extra: &[&str]) -> (String, MapsRecord) {
    let out = Command::new(runner())
        .args(["run", "--emit-maps"])
        .args(extra)
        .arg(fixtures().join(format!("{name}.bt")))
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (shown, line) = stdout
        .split_once(MAPS_LINE_PREFIX)
        .unwrap_or_else(|| panic!("{name}: no maps line in {stdout:?}"));
    let line = format!("{MAPS_LINE_PREFIX}{line}");
    assert!(
        line.ends_with('\n') && line.matches('\n').count() == 1,
        "{line:?}"
    );
    (shown.to_string(), parse_line(&line).unwrap().unwrap())
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(fixtures().join(format!("{name}.txt"))).unwrap()
}

#[test]
fn the_merged_maps_lines_print_what_bpftrace_printed_for_the_whole_program() {
    if !require_bpf() {
        return;
    }
    let (shown1, r1) = run("part1", &[]);
    let (shown2, r2) = run("part2", &[]);
    assert_eq!(shown1, expected("part1"));
    assert_eq!(shown2, expected("part2"));
    let merged = trace_output::merge::merge(&[r1, r2]);
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
    let mut text = b"Attaching 1 probe...\n".to_vec();
    trace_output::write_exit_maps_text(&mut text, &merged.maps).unwrap();
    assert_eq!(String::from_utf8(text).unwrap(), expected("combined"));
}

#[test]
fn the_maps_line_is_persisted_too() {
    if !require_bpf() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("emit-maps-{}", std::process::id()));
    let (_, record) = run(
        "part1",
        &["--output-dir", dir.to_str().unwrap(), "--trace-id", "m1"],
    );
    let mut files = Vec::new();
    for run in std::fs::read_dir(dir.join("m1")).unwrap().flatten() {
        files.push(std::fs::read_to_string(run.path().join("output.txt")).unwrap());
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(files.len(), 1);
    let line = files[0]
        .lines()
        .find(|l| l.starts_with(MAPS_LINE_PREFIX))
        .expect("a maps line in output.txt");
    assert_eq!(parse_line(line).unwrap().unwrap(), record);
}

#[test]
fn a_compiled_object_refuses_emit_maps_in_one_line() {
    let dir = std::env::temp_dir().join(format!("emit-maps-obj-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let object = dir.join("prog.o");
    run_ok(
        Command::new(runner())
            .args(["build", "-e", "BEGIN { @ = count(); exit(); }", "-o"])
            .arg(&object),
    );
    let out = Command::new(runner())
        .args(["run", "--emit-maps"])
        .arg(&object)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--emit-maps applies to scripts"),
        "{stderr}"
    );
}
