//! Helpers for the crate's unit tests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A scratch directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "ktrace-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Can C programs with `<sys/sdt.h>` USDT markers be built here (`cc` and Debian's
/// systemtap-sdt-dev)? Under `CI=true` a "no" fails the test.
pub fn require_sdt_cc() -> bool {
    // Preprocess an include of the header: it lives in a multiarch directory on Debian.
    let found = std::process::Command::new("cc")
        .args(["-E", "-x", "c", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(b"#include <sys/sdt.h>\n")?;
            c.wait()
        })
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("cc or <sys/sdt.h> is missing and CI=true: failing instead of skipping (apt-get install gcc systemtap-sdt-dev)");
    }
    eprintln!("skipping: cc or <sys/sdt.h> (systemtap-sdt-dev) is missing");
    false
}

/// Compile C `sources` (one translation unit each) with `cc -O1` into `dir/name`;
/// panics with cc's output on failure.
pub fn build_c(dir: &std::path::Path, name: &str, sources: &[&str], extra: &[&str]) -> PathBuf {
    let files: Vec<PathBuf> = sources
        .iter()
        .enumerate()
        .map(|(i, source)| {
            let src = dir.join(format!("{name}{i}.c"));
            std::fs::write(&src, source).unwrap();
            src
        })
        .collect();
    let out = dir.join(name);
    let r = std::process::Command::new("cc")
        .args(["-O1", "-g0", "-o"])
        .arg(&out)
        .args(&files)
        .args(extra)
        .output()
        .expect("run cc");
    assert!(
        r.status.success(),
        "cc failed: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    out
}
