//! The user-space actions behind `cat()` and `system()`: their records arrive formatted
//! like printf's, and the text is then a file to print or a command to run, as bpftrace
//! does it (`BPFTRACE_CAT_BYTES_MAX` bytes of a file, default 10240; a command's standard
//! output through `sh -c`). Failures go to stderr in bpftrace's words; nothing stops the run.

use std::io::Read;
use std::process::{Command, Stdio};

/// bpftrace's default for `BPFTRACE_CAT_BYTES_MAX`.
const CAT_BYTES_MAX: u64 = 10240;

/// An error as bpftrace words it (strerror, without Rust's "(os error N)").
fn strerror(e: &std::io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first `BPFTRACE_CAT_BYTES_MAX` bytes of the file `path` names.
pub fn cat(path: &[u8]) -> Vec<u8> {
    let path = text(path);
    let max = std::env::var("BPFTRACE_CAT_BYTES_MAX")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(CAT_BYTES_MAX);
    let mut out = Vec::new();
    match std::fs::File::open(&path) {
        Ok(f) => {
            if let Err(e) = f.take(max).read_to_end(&mut out) {
                eprintln!("ERROR: failed to read file '{path}': {}", strerror(&e));
            }
        }
        Err(e) => eprintln!("ERROR: failed to open file '{path}': {}", strerror(&e)),
    }
    out
}

/// The standard output of `sh -c COMMAND`.
pub fn system(command: &[u8]) -> Vec<u8> {
    let command = text(command);
    match Command::new("/bin/sh")
        .arg("-c")
        .arg(&command)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
    {
        Ok(out) => out.stdout,
        Err(e) => {
            eprintln!("ERROR: cannot run '{command}': {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cat_reads_a_file_and_reports_a_missing_one() {
        let dir = crate::test_util::TempDir::new("cat");
        let file = dir.0.join("f");
        std::fs::write(&file, "one\ntwo\n").unwrap();
        assert_eq!(cat(file.to_str().unwrap().as_bytes()), b"one\ntwo\n");
        assert!(cat(b"/nonexistent/kt-cat").is_empty());
    }

    #[test]
    fn system_prints_the_command_output() {
        assert_eq!(system(b"echo hi 5"), b"hi 5\n");
    }
}
