//! The output crate stays pure, so the plugin can share it: its non-test code names no
//! file system, process, environment, clock, printing, libc, aya or kube, and it depends
//! only on the front end's types and the contract. Text checks; no privileges needed.

#[path = "../../tests/shared/source_scan.rs"]
mod source_scan;

use source_scan::{code_lines, dependencies, rust_files};
use std::path::Path;

const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::process",
    "std::env",
    "std::net",
    "std::os",
    "std::time",
    "libc",
    "aya",
    "kube",
    "println!",
    "eprintln!",
    "print!(",
    "eprint!(",
    "dbg!(",
    "unsafe ",
];

#[test]
fn output_has_no_system_access() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).unwrap();
        for (n, line) in code_lines(&text) {
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("{}:{n}: `{word}`", path.display()));
                }
            }
        }
    }
    assert!(
        files.len() >= 5,
        "only {} files under {}",
        files.len(),
        src.display()
    );
    assert!(
        found.is_empty(),
        "system access in trace-output:\n{}",
        found.join("\n")
    );
}

#[test]
fn output_depends_only_on_the_front_end_and_the_contract() {
    let deps = dependencies(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(deps, ["trace-lang", "trace-contract"]);
}

#[test]
fn the_checker_skips_comments_and_tests() {
    let lines = code_lines("use std::fs; // libc\n#[cfg(test)]\nmod tests {\n use std::env;\n}\n");
    assert_eq!(lines, vec![(1, "use std::fs; ".to_string())]);
}
