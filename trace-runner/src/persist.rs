//! Trace output persisted to a volume (`--output-dir`): each run gets
//! `<base>/<trace-id>/<run-start-UTC>/` (e.g. `2026-11-25T15-04-05Z`, a name that sorts in
//! time order) holding `output.txt`, appended and flushed line by line by the sink so that
//! a killed pod loses nothing already printed, and `meta.json`, written as `running` at the
//! start and replaced atomically (tmp + rename) when the run ends.
//!
//! A full volume (`ENOSPC`/`EDQUOT`, see [`is_disk_full`]) must be reported in the output and
//! the exit status; [`RunDir::finish`] still records it in `meta.json` by rewriting the file
//! in place (its block is already allocated) when the tmp file cannot be written.
//! The names, the order and `meta.json`'s layout are the plugin's too: they live in
//! [`trace_contract`].

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::sys::errno;
pub use trace_contract::rundir::{
    rfc3339, run_dir_candidate, run_dir_name, trace_id_problem, META_FILE, OUTPUT_FILE,
};
use trace_contract::{Meta, Status, META_VERSION};

/// Longest `error` kept in `meta.json`, so the final file still fits the block the first
/// one occupies (what makes the in-place rewrite on a full volume possible).
const MAX_ERROR_LEN: usize = 2048;

/// Whether an I/O error means the volume is full (or the quota is exhausted).
pub fn is_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(errno::ENOSPC) | Some(errno::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// Lower-case hex SHA-256 of `data` (the script digest in `meta.json`).
pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What `meta.json` records about a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMeta {
    pub trace_id: String,
    /// What was traced, e.g. `node/worker-1` or `pod/default/web-0 (container nginx)`.
    pub target: String,
    pub node: String,
    pub script_sha256: String,
    pub start: SystemTime,
    /// `None` while running.
    pub end: Option<SystemTime>,
    /// The runner's exit code, `None` while running.
    pub exit_status: Option<i32>,
    pub lost_events: u64,
    /// Why the run failed (including a full volume), if it did.
    pub error: Option<String>,
}

impl RunMeta {
    /// The metadata of a run that has just started.
    pub fn new(
        trace_id: &str,
        target: &str,
        node: &str,
        script: &str,
        start: SystemTime,
    ) -> RunMeta {
        RunMeta {
            trace_id: trace_id.to_string(),
            target: target.to_string(),
            node: node.to_string(),
            script_sha256: sha256_hex(script.as_bytes()),
            start,
            end: None,
            exit_status: None,
            lost_events: 0,
            error: None,
        }
    }

    /// `running` (no end yet), `succeeded` (exit 0, no error) or `failed`.
    pub fn status(&self) -> Status {
        Status::of(
            self.end.is_some(),
            self.exit_status.map(i64::from),
            self.error.as_deref(),
        )
    }

    /// `meta.json`'s text ([`Meta::to_json`]); an `error` longer than `MAX_ERROR_LEN` is
    /// cut (with `...`).
    pub fn to_json(&self) -> String {
        let error = self.error.as_ref().map(|e| {
            let mut e = e.clone();
            if e.len() > MAX_ERROR_LEN {
                let mut cut = MAX_ERROR_LEN;
                while !e.is_char_boundary(cut) {
                    cut -= 1;
                }
                e.truncate(cut);
                e.push_str("...");
            }
            e
        });
        Meta {
            version: META_VERSION,
            trace_id: self.trace_id.clone(),
            target: self.target.clone(),
            node: self.node.clone(),
            script_sha256: self.script_sha256.clone(),
            status: self.status(),
            start: rfc3339(self.start),
            end: self.end.map(rfc3339),
            exit_status: self.exit_status.map(i64::from),
            lost_events: self.lost_events,
            error,
        }
        .to_json()
    }
}

fn check_trace_id(id: &str) -> io::Result<()> {
    match trace_id_problem(id) {
        Some(why) => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid trace id {id:?}: {why}"),
        )),
        None => Ok(()),
    }
}

/// How a run with a persisted copy ends: as the trace ended, except that a copy cut short
/// (a full volume, an I/O error) fails a run that otherwise succeeded, with exit status 1.
/// The runner exits with this and `meta.json` records this, so the two always agree.
pub fn run_outcome(
    outcome: Result<u64, (String, u8)>,
    file_error: Option<&io::Error>,
    run_dir: &Path,
) -> Result<u64, (String, u8)> {
    match (outcome, file_error) {
        (Ok(_), Some(e)) => {
            let what = if is_disk_full(e) {
                "the output volume filled up"
            } else {
                "writing the output volume failed"
            };
            Err((
                format!(
                    "error: {what} ({e}): the persisted output in {} is incomplete (stdout has all of it)",
                    run_dir.display()
                ),
                1,
            ))
        }
        (outcome, _) => outcome,
    }
}

/// Write `dir/meta.json` atomically (tmp file, fsync, rename, fsync of the directory).
/// Whatever the runner's umask, the reader pod (which runs as nobody, not as root) must
/// be able to read what a run leaves: directories 0755, files 0644.
fn readable_by_all(f: &File) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = if f.metadata()?.is_dir() { 0o755 } else { 0o644 };
    f.set_permissions(std::fs::Permissions::from_mode(mode))
}

fn write_meta_file(dir: &Path, meta: &RunMeta) -> io::Result<()> {
    let json = meta.to_json();
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        readable_by_all(&f)?;
        f.write_all(json.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, dir.join(META_FILE))?;
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// One run's directory on the output volume.
#[derive(Debug)]
pub struct RunDir {
    dir: PathBuf,
    output: File,
}

impl RunDir {
    /// Create `<base>/<trace_id>/<start as 2026-11-25T15-04-05Z>/` (with `-1`, `-2`, ...
    /// appended if a run started in the same second), write a first `meta.json` with status
    /// `running`, then open `output.txt` for append. Call [`RunDir::replace_meta`] next with
    /// the full metadata.
    ///
    /// `meta.json` comes first: it reserves the block that the final `meta.json` is
    /// rewritten into when the volume fills up later. If even that cannot be written (a
    /// volume full before the run), nothing is left behind (no empty `output.txt`, no empty
    /// run directory, which would read as a run that printed nothing): the error, for the
    /// caller to report, is all there is.
    pub fn create(base: &Path, trace_id: &str, start: SystemTime) -> io::Result<RunDir> {
        check_trace_id(trace_id)?;
        let parent = base.join(trace_id);
        let new_parent = !parent.exists();
        std::fs::create_dir_all(&parent)?;
        if new_parent {
            readable_by_all(&File::open(&parent)?)?;
        }
        let name = run_dir_name(start);
        let mut n = 0u32;
        let dir = loop {
            let candidate = parent.join(run_dir_candidate(&name, n));
            match std::fs::create_dir(&candidate) {
                Ok(()) => {
                    readable_by_all(&File::open(&candidate)?)?;
                    break candidate;
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
                Err(e) => return Err(e),
            }
        };
        let undo = |e: io::Error| {
            let _ = std::fs::remove_file(dir.join(OUTPUT_FILE));
            let _ = std::fs::remove_file(dir.join(META_FILE));
            let _ = std::fs::remove_dir(&dir);
            if new_parent {
                let _ = std::fs::remove_dir(&parent);
            }
            e
        };
        write_meta_file(&dir, &RunMeta::new(trace_id, "", "", "", start)).map_err(undo)?;
        let output = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(OUTPUT_FILE))
            .map_err(undo)?;
        readable_by_all(&output).map_err(undo)?;
        Ok(RunDir { dir, output })
    }

    /// The run directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn meta_path(&self) -> PathBuf {
        self.dir.join(META_FILE)
    }

    /// A handle on `output.txt` (opened for append) for the sink: write whole lines with
    /// `write_all`; each goes straight to the kernel, so a SIGKILL loses none of them.
    pub fn output_file(&self) -> io::Result<File> {
        self.output.try_clone()
    }

    /// Write `meta.json` atomically (tmp file, fsync, rename, fsync of the directory).
    pub fn write_meta(&self, meta: &RunMeta) -> io::Result<()> {
        write_meta_file(&self.dir, meta)
    }

    /// [`Self::write_meta`], or on a full volume (no room for the tmp file) a rewrite of
    /// the existing `meta.json` in place.
    pub fn replace_meta(&self, meta: &RunMeta) -> io::Result<()> {
        match self.write_meta(meta) {
            Err(e) if is_disk_full(&e) => self.rewrite_meta_in_place(meta),
            other => other,
        }
    }

    /// Record how the run ended — lost events on success, the failure's message and exit
    /// code otherwise, and a failed persisted copy (e.g. a full volume), which makes the run
    /// fail (see [`run_outcome`]) — and [`Self::finish`], reporting a failure to write
    /// `meta.json` on stderr.
    pub fn record_end(
        &self,
        meta: &mut RunMeta,
        outcome: Result<u64, (&str, u8)>,
        file_error: Option<&io::Error>,
    ) {
        meta.end = Some(SystemTime::now());
        let lost = *outcome.as_ref().unwrap_or(&0);
        let outcome = outcome.map_err(|(msg, code)| (msg.to_string(), code));
        let (code, error) = match run_outcome(outcome, file_error, &self.dir) {
            Ok(_) => (0, None),
            Err((msg, code)) => (i32::from(code), Some(msg)),
        };
        meta.exit_status = Some(code);
        meta.lost_events = lost;
        meta.error = error;
        if let Err(e) = self.finish(meta) {
            eprintln!(
                "error: cannot record the run's end in {}: {e}",
                self.meta_path().display()
            );
        }
    }

    /// The end of the run: sync `output.txt` and replace `meta.json` (set `meta.end` and
    /// `meta.exit_status` first). On a full volume the tmp file cannot be written, so the
    /// existing `meta.json` is overwritten in place instead; the error is still returned
    /// if that fails too.
    pub fn finish(&self, meta: &RunMeta) -> io::Result<()> {
        let synced = self.output.sync_all();
        self.replace_meta(meta).and(synced.or_else(
            |e| {
                if is_disk_full(&e) {
                    Ok(())
                } else {
                    Err(e)
                }
            },
        ))
    }

    fn rewrite_meta_in_place(&self, meta: &RunMeta) -> io::Result<()> {
        let json = meta.to_json();
        let mut f = OpenOptions::new().write(true).open(self.meta_path())?;
        f.write_all(json.as_bytes())?;
        f.set_len(json.len() as u64)?;
        f.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read};
    use std::process::{Command, Stdio};

    use crate::test_util::TempDir;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(secs: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    fn in_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true")
    }

    #[test]
    fn persist_a_cut_short_copy_fails_the_run() {
        let dir = Path::new("/out/t/2026-11-25T15-04-05Z");
        let full = io::Error::from_raw_os_error(errno::ENOSPC);
        let (msg, code) = run_outcome(Ok(3), Some(&full), dir).unwrap_err();
        assert_eq!(code, 1);
        assert!(
            msg.starts_with("error: the output volume filled up (No space left on device")
                && msg.contains("/out/t/2026-11-25T15-04-05Z"),
            "{msg}"
        );
        let eio = io::Error::from_raw_os_error(errno::EIO);
        assert!(run_outcome(Ok(0), Some(&eio), dir)
            .unwrap_err()
            .0
            .contains("writing the output volume failed"));
        assert_eq!(run_outcome(Ok(3), None, dir), Ok(3));
        // The trace's own failure wins over the copy's.
        assert_eq!(
            run_outcome(Err(("error: x".into(), 2)), Some(&full), dir),
            Err(("error: x".to_string(), 2))
        );
    }

    #[test]
    fn persist_sha256_and_disk_full() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_disk_full(&io::Error::from_raw_os_error(errno::ENOSPC)));
        assert!(is_disk_full(&io::Error::from_raw_os_error(errno::EDQUOT)));
        assert!(!is_disk_full(&io::Error::from_raw_os_error(errno::EIO)));
        assert!(!is_disk_full(&io::Error::other("x")));
    }

    #[test]
    fn persist_run_dir_layout_and_meta() {
        let t = TempDir::new("layout");
        let start = at(1_795_619_045);
        let run = RunDir::create(&t.0, "trace-abc", start).unwrap();
        assert_eq!(run.path(), t.0.join("trace-abc/2026-11-25T15-04-05Z"));
        assert!(run.path().join(OUTPUT_FILE).is_file());
        let meta0: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.meta_path()).unwrap()).unwrap();
        assert_eq!(meta0["status"], "running");
        assert_eq!(meta0["trace_id"], "trace-abc");
        assert_eq!(meta0["start"], "2026-11-25T15:04:05.000Z");
        assert!(meta0["end"].is_null());

        let script = "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }\n";
        let mut meta = RunMeta::new(
            "trace-abc",
            "pod/default/web-0 \"nginx\"",
            "worker-1",
            script,
            start,
        );
        run.write_meta(&meta).unwrap();
        let mut out = run.output_file().unwrap();
        out.write_all(b"first line\n").unwrap();
        run.output_file()
            .unwrap()
            .write_all(b"second line\n")
            .unwrap();
        meta.end = Some(start + Duration::from_millis(61_500));
        meta.exit_status = Some(0);
        meta.lost_events = 3;
        run.finish(&meta).unwrap();

        assert_eq!(
            std::fs::read_to_string(run.path().join(OUTPUT_FILE)).unwrap(),
            "first line\nsecond line\n"
        );
        let text = std::fs::read_to_string(run.meta_path()).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["version"], 1);
        assert_eq!(v["target"], "pod/default/web-0 \"nginx\"");
        assert_eq!(v["node"], "worker-1");
        assert_eq!(v["script_sha256"], sha256_hex(script.as_bytes()));
        assert_eq!(v["status"], "succeeded");
        assert_eq!(v["start"], "2026-11-25T15:04:05.000Z");
        assert_eq!(v["end"], "2026-11-25T15:05:06.500Z");
        assert_eq!(v["exit_status"], 0);
        assert_eq!(v["lost_events"], 3);
        assert!(v["error"].is_null());
        // Only the two files remain (no tmp file).
        let mut names: Vec<_> = std::fs::read_dir(run.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["meta.json", "output.txt"]);

        // A second run in the same second gets its own directory; another second sorts after.
        let again = RunDir::create(&t.0, "trace-abc", start).unwrap();
        assert_eq!(again.path(), t.0.join("trace-abc/2026-11-25T15-04-05Z-1"));
        let later = RunDir::create(&t.0, "trace-abc", start + Duration::from_secs(3600)).unwrap();
        assert_eq!(later.path(), t.0.join("trace-abc/2026-11-25T16-04-05Z"));

        // Failures, and strings that need escaping.
        let mut failed = meta.clone();
        failed.exit_status = Some(1);
        failed.error = Some("write output.txt: No space left on device\n\t\"\\\u{1}".into());
        let v: serde_json::Value = serde_json::from_str(&failed.to_json()).unwrap();
        assert_eq!(v["status"], "failed");
        assert_eq!(
            v["error"],
            "write output.txt: No space left on device\n\t\"\\\u{1}"
        );
        failed.error = Some("é".repeat(3000));
        let v: serde_json::Value = serde_json::from_str(&failed.to_json()).unwrap();
        assert!(v["error"].as_str().unwrap().len() <= MAX_ERROR_LEN + 3);

        for bad in ["", ".", "..", "a/b", "a\nb", "-x", "--output-dir", "a\0b"] {
            assert!(trace_id_problem(bad).is_some(), "{bad:?}");
            assert!(RunDir::create(&t.0, bad, start).is_err(), "{bad:?}");
        }
        for good in ["abc123", "trace-7f3c", "a.b_c-d", "x-"] {
            assert_eq!(trace_id_problem(good), None, "{good:?}");
        }
    }

    const WRITER_ENV: &str = "KTRACE_PERSIST_CRASH_WRITER_BASE";

    /// Not a test on its own: run by `persist_crash_keeps_every_written_line` as a child
    /// process that writes lines (like the sink) until it is SIGKILLed.
    #[test]
    fn persist_crash_writer_child() {
        let Ok(base) = std::env::var(WRITER_ENV) else {
            return;
        };
        let run = RunDir::create(Path::new(&base), "crash", SystemTime::now()).unwrap();
        let mut out = run.output_file().unwrap();
        let mut ack = io::stdout();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut i = 0u64;
        while std::time::Instant::now() < deadline {
            let line = format!("line {i:08} {}\n", "x".repeat((i % 97) as usize));
            out.write_all(line.as_bytes()).unwrap();
            out.flush().unwrap();
            // Acknowledge only after the line reached the kernel.
            writeln!(ack, "wrote {i}").unwrap();
            ack.flush().unwrap();
            i += 1;
        }
    }

    #[test]
    fn persist_crash_keeps_every_written_line() {
        let t = TempDir::new("crash");
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "persist::tests::persist_crash_writer_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER_ENV, &t.0)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut last: Option<u64> = None;
        let mut line = String::new();
        // Kill it mid-stream, then collect the acknowledgements already in the pipe.
        while reader.read_line(&mut line).unwrap() > 0 {
            if let Some(n) = line.trim().strip_prefix("wrote ") {
                last = Some(n.parse().unwrap());
                if last == Some(2000) {
                    child.kill().unwrap();
                }
            }
            line.clear();
        }
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(crate::sys::signal::SIGKILL),
            "the writer was not killed: {status:?}"
        );
        let last = last.expect("the writer acknowledged no line");
        assert!(last >= 2000);

        let runs: Vec<PathBuf> = std::fs::read_dir(t.0.join("crash"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(runs.len(), 1);
        let mut text = String::new();
        File::open(runs[0].join(OUTPUT_FILE))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        assert!(
            lines.len() as u64 > last,
            "{} lines in the file, {} acknowledged",
            lines.len(),
            last + 1
        );
        for (i, l) in lines.iter().enumerate() {
            // Every line is whole and in order (writes are whole-line appends).
            assert_eq!(
                *l,
                format!("line {i:08} {}\n", "x".repeat(i % 97)),
                "line {i}"
            );
        }
        // The run never finished: meta.json still says so.
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(runs[0].join(META_FILE)).unwrap())
                .unwrap();
        assert_eq!(meta["status"], "running");
    }

    /// A tiny tmpfs mounted for the test, unmounted on drop.
    struct SmallFs(TempDir);

    impl SmallFs {
        fn mount(size: &str) -> Option<SmallFs> {
            let t = TempDir::new("smallfs");
            let ok = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&t.0)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(SmallFs(t))
        }
    }

    impl Drop for SmallFs {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0 .0).status();
        }
    }

    #[test]
    fn persist_full_volume_is_detected_and_recorded() {
        let Some(fs) = SmallFs::mount("64k") else {
            if in_ci() {
                panic!("CI=true and this test needs to mount a tmpfs (root)");
            }
            eprintln!("skipped: cannot mount a tmpfs (needs root)");
            return;
        };
        let start = SystemTime::now();
        let run = RunDir::create(&fs.0 .0, "full", start).unwrap();
        let mut meta = RunMeta::new("full", "node/n1", "n1", "BEGIN { exit(); }", start);
        run.write_meta(&meta).unwrap();
        let mut out = run.output_file().unwrap();
        let line = format!("{}\n", "y".repeat(999));
        let mut written = 0usize;
        let err = loop {
            match out.write_all(line.as_bytes()) {
                Ok(()) => written += 1,
                Err(e) => break e,
            }
            assert!(written < 1000, "the 64k volume never filled up");
        };
        assert!(is_disk_full(&err), "{err:?}");
        assert!(written >= 10);

        meta.end = Some(SystemTime::now());
        meta.exit_status = Some(1);
        meta.error = Some(format!("output volume full after {written} lines: {err}"));
        run.finish(&meta).unwrap();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.meta_path()).unwrap()).unwrap();
        assert_eq!(v["status"], "failed");
        assert!(
            v["error"]
                .as_str()
                .unwrap()
                .contains("No space left on device"),
            "{v}"
        );
        assert!(!run.path().join("meta.json.tmp").exists());
        let text = std::fs::read_to_string(run.path().join(OUTPUT_FILE)).unwrap();
        assert!(text.starts_with(&line.repeat(written)));
    }
}
