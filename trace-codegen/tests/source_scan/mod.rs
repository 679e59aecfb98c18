//! Reading this crate's sources for the text checks (purity, name matching): its
//! Rust files, and the lines of their non-test code with comments removed.

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
/// block comes last, by this crate's convention).
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
