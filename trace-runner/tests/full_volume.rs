//! `--output-dir` on a volume that fills up, on a real 64 KiB tmpfs: full mid-run, the
//! trace goes on to stdout but the run fails, and the exit status and meta.json agree;
//! full before the run, it does not start, says why in one line and leaves no empty files.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// A 64 KiB tmpfs mounted for the test, unmounted on drop.
struct SmallFs(PathBuf);

impl SmallFs {
    fn mount(name: &str) -> SmallFs {
        let dir = std::env::temp_dir().join(format!("kt-full-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cannot mount a tmpfs on {}", dir.display());
        SmallFs(dir)
    }

    /// Fill the volume, then free `pages` pages of it again.
    fn fill_leaving(&self, pages: u64) {
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![b'x'; 4096];
        let mut size = 0u64;
        loop {
            match f.write(&chunk) {
                Ok(n) if n > 0 => size += n as u64,
                _ => break,
            }
            assert!(size < 1 << 20, "the 64k volume never filled up");
        }
        let size = size / 4096 * 4096;
        f.set_len(size.saturating_sub(pages * 4096)).unwrap();
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Every file under `dir` (recursively).
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn volume_full_mid_run_fails_the_run_and_meta_agrees() {
    if !require_bpf() {
        return;
    }
    let fs = SmallFs::mount("mid");
    // Two pages: meta.json takes one, output.txt fills the other mid-run.
    fs.fill_leaving(2);
    let line = format!("line {}", "z".repeat(80));
    let script = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} interval:ms:10 {{ @n = count(); printf(\"{line}\\n\"); }} \
         interval:ms:800 {{ exit(); }}"
    );
    let out = Command::new(runner())
        .args(["run", "--output-dir"])
        .arg(&fs.0)
        .args(["--trace-id", "mid", "-e", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines = stdout.matches(&line).count();
    assert!(
        lines * (line.len() + 1) > 4096,
        "the run printed more than the volume holds: {lines} lines"
    );
    // The live stream went on after the volume filled up.
    assert!(stdout.contains("@n: "), "maps printed at the end: {stdout}");

    let run = std::fs::read_dir(fs.0.join("mid"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let persisted = std::fs::read_to_string(run.join("output.txt")).unwrap();
    assert!(
        !persisted.is_empty() && persisted.len() < stdout.len() && stdout.starts_with(&persisted),
        "output.txt is a prefix of stdout, cut short ({} of {} bytes)",
        persisted.len(),
        stdout.len()
    );
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "a cut-short copy fails the run: {stderr}\nmeta: {meta}"
    );
    assert_eq!(meta["status"], "failed", "{meta}");
    assert_eq!(
        meta["exit_status"], 1,
        "meta.json agrees with the exit status: {meta}"
    );
    let error = meta["error"].as_str().unwrap_or_default();
    assert!(error.contains("No space left on device"), "{meta}");
    assert!(
        stderr.contains("No space left on device") && stderr.contains(run.to_str().unwrap()),
        "{stderr}"
    );
}

#[test]
fn volume_full_at_start_refuses_the_run_and_says_why() {
    if !require_bpf() {
        return;
    }
    let fs = SmallFs::mount("start");
    fs.fill_leaving(0);
    let out = Command::new(runner())
        .args(["run", "--output-dir"])
        .arg(&fs.0)
        .args([
            "--trace-id",
            "full",
            "-e",
            "BEGIN { printf(\"began\\n\"); exit(); }",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ")
            && stderr.contains(fs.0.to_str().unwrap())
            && stderr.to_lowercase().contains("no space left"),
        "{stderr}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("began"),
        "the run did not start"
    );
    // Nothing misleading left behind: no empty output.txt, no meta-less run directory.
    assert_eq!(files(&fs.0), [fs.0.join("filler")]);
    assert!(!fs.0.join("full").exists());
}
