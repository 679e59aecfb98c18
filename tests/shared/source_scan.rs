//! Reading a crate's sources for the architecture text checks (purity, name matching,
//! libc only in `sys/`, no import cycles): its Rust files, the lines of their non-test
//! code with comments removed, and its `[dependencies]`. One copy for the workspace:
//! each crate's test includes it with `#[path = "../../tests/shared/source_scan.rs"]`.
#![allow(dead_code)] // each including test uses part of it

use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, into `out`.
pub fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
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
/// block comes last, by the workspace's convention).
pub fn code_lines(src: &str) -> Vec<(usize, String)> {
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

/// The names in the `[dependencies]` table of the crate at `manifest_dir`, in order.
pub fn dependencies(manifest_dir: &Path) -> Vec<String> {
    let manifest = std::fs::read_to_string(manifest_dir.join("Cargo.toml")).unwrap();
    manifest
        .split("\n[dependencies]\n")
        .nth(1)
        .expect("a [dependencies] table")
        .lines()
        .take_while(|l| !l.starts_with('['))
        .filter_map(|l| l.split('=').next())
        .map(str::trim)
        .filter(|name| !name.is_empty() && !name.starts_with('#'))
        .map(str::to_string)
        .collect()
}
