//! The code-generation crate stays pure: its non-test code names no file system,
//! process, environment, printing or global state, and it depends on nothing but the
//! front end, the pure output crate (for the hist/lhist bucket indexes) and the ELF writer
//! (no aya, no libc). Text checks; no privileges needed.

use std::path::{Path, PathBuf};

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

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The lines of a file's non-test code, comments removed (a file's `#[cfg(test)] mod`
/// block comes last, by this crate's convention).
fn code_lines(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = src.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            break;
        }
        out.push((i + 1, line.split("//").next().unwrap_or("").to_string()));
    }
    out
}

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
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .collect();
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
