//! The output crate stays pure, so the plugin can share it: its non-test code names no
//! file system, process, environment, clock, printing, libc, aya or kube, and it depends
//! only on the front end's types and the contract. Text checks; no privileges needed.

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

/// A file's lines before its `#[cfg(test)] mod` block, comments removed.
fn code_lines(src: &str) -> Vec<(usize, String)> {
    let lines: Vec<&str> = src.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).map_or("", |l| l.trim());
        if line.trim() == "#[cfg(test)]" && next.starts_with("mod ") && next.ends_with('{') {
            break;
        }
        out.push((i + 1, line.split("//").next().unwrap_or("").to_string()));
    }
    out
}

#[test]
fn output_has_no_system_access() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut files = 0;
    for entry in std::fs::read_dir(&src).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        files += 1;
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in code_lines(&text) {
            for word in FORBIDDEN {
                if line.contains(word) {
                    found.push(format!("{}:{n}: `{word}`", path.display()));
                }
            }
        }
    }
    assert!(files >= 5, "only {files} files under {}", src.display());
    assert!(
        found.is_empty(),
        "system access in trace-output:\n{}",
        found.join("\n")
    );
}

#[test]
fn output_depends_only_on_the_front_end_and_the_contract() {
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
    assert_eq!(deps, ["trace-lang", "trace-contract"]);
}

#[test]
fn the_checker_skips_comments_and_tests() {
    let lines = code_lines("use std::fs; // libc\n#[cfg(test)]\nmod tests {\n use std::env;\n}\n");
    assert_eq!(lines, vec![(1, "use std::fs; ".to_string())]);
}
