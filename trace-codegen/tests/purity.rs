//! The code-generation crate stays pure: its non-test code names no file system,
//! process, environment, printing or global state, and it depends on nothing but the
//! front end, the pure output crate (for the hist/lhist bucket indexes) and the ELF writer
//! (no aya, no libc). Text checks; no privileges needed.

#[path = "../../tests/shared/source_scan.rs"]
mod source_scan;

use source_scan::{code_lines, dependencies, rust_files};
use std::path::Path;

/// What pure code must not name.
const FORBIDDEN: &[&str] = &[
    "std::fs",
    "std::process",
    "std::env",
    "std::net",
    "std::os",
    "libc",
    "aya",
    "println!",
    "eprintln!",
    "print!(",
    "eprint!(",
    "dbg!(",
    "static ",
    "thread_local!",
    "OnceLock",
    "unsafe ",
];

/// Whether `line` contains `word` other than as part of a lifetime (`&'static str`).
fn names(line: &str, word: &str) -> bool {
    line.match_indices(word)
        .any(|(at, _)| !line[..at].ends_with('\''))
}

#[test]
fn code_generation_has_no_system_access() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(
        files.len() >= 8,
        "only {} files under {}",
        files.len(),
        src.display()
    );
    let mut found = Vec::new();
    for file in &files {
        // The fuzz test module (declared `#[cfg(test)]` in lib.rs) may print its seed.
        if file.file_name().is_some_and(|n| n == "codegen_fuzz.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in code_lines(&text) {
            for word in FORBIDDEN {
                if names(&line, word) {
                    found.push(format!(
                        "{}:{n}: `{word}` in {}",
                        file.display(),
                        line.trim()
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "system access in trace-codegen:\n{}",
        found.join("\n")
    );
}

#[test]
fn code_generation_depends_only_on_the_front_end_the_bucket_indexes_and_the_elf_writer() {
    let deps = dependencies(Path::new(env!("CARGO_MANIFEST_DIR")));
    assert_eq!(deps, ["trace-lang", "trace-output", "object"]);
}

#[test]
fn the_checker_sees_code_and_skips_comments_and_tests() {
    let lines =
        code_lines("use std::fs; // std::env\n#[cfg(test)]\nmod tests {\n use std::env;\n}\n");
    assert_eq!(lines, vec![(1, "use std::fs; ".to_string())]);
    assert!(names("static X: u8 = 1;", "static "));
    assert!(!names("fn f() -> &'static str {", "static "));
}
