//! Every raw system call of the runner goes through `src/sys/`: no file of
//! `trace-runner/src` outside `src/sys/` may name the `libc` crate (`libc::...`, `use
//! libc`), test modules included; they call sys's typed wrappers instead. Comments are
//! left out. Pure text: no privileges needed.

use std::path::Path;

#[path = "../../tests/shared/source_scan.rs"]
mod source_scan;
use source_scan::rust_files;

/// Files allowed to name `libc` outside `src/sys/`, each with its reason (none today).
const ALLOWED: &[(&str, &str)] = &[];

/// `(line number, line)` of each line of `src` that names the libc crate outside a `//`
/// comment.
fn libc_uses(src: &str) -> Vec<(usize, String)> {
    src.lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            code.contains("libc::")
                || code.trim_start().starts_with("use libc")
                || code.contains("extern crate libc")
        })
        .map(|(i, line)| (i + 1, line.trim().to_string()))
        .collect()
}

#[test]
fn libc_is_named_only_in_sys() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let sys = src.join("sys");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    assert!(files.len() > 20, "too few files under {}", src.display());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&sys)) {
        let rel = file.strip_prefix(&src).unwrap().display().to_string();
        if ALLOWED.iter().any(|(f, _)| *f == rel) {
            continue;
        }
        for (n, line) in libc_uses(&std::fs::read_to_string(file).unwrap()) {
            found.push(format!("src/{rel}:{n}: {line}"));
        }
    }
    assert!(
        found.is_empty(),
        "raw libc outside src/sys/ (add a typed wrapper in sys/ and call it):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_scan_sees_calls_and_imports_but_not_comments() {
    let src = "fn a() { unsafe { libc::getpid() }; }\n// libc::write in a comment\nuse libc::c_int;\nlet x = 1; // libc::close\n";
    let lines: Vec<usize> = libc_uses(src).into_iter().map(|(n, _)| n).collect();
    assert_eq!(lines, vec![1, 3]);
}
