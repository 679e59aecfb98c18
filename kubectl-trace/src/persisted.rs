//! Trace output persisted to a volume (`run --output pvc:CLAIM[/SUBDIR]`), read back by
//! `kubectl trace logs` once the trace pods are gone (or always with `--all-runs`, `--run`,
//! `-O`).
//!
//! The runner writes `<output-dir>/<trace-id>/<run-start-UTC>/{output.txt,meta.json}`.
//! To read it, the plugin starts a short-lived reader pod (busybox by default,
//! `--reader-image`) that mounts the claim read-only at `/output`, and execs two commands
//! in it through `pods/exec` (a websocket):
//! 1. `find <dir>/<id> -mindepth 2 -maxdepth 2 -type f -exec stat -c '%s %n' {} +`: the
//!    run files and their sizes (run directory names sort in time order);
//! 2. `tar czf - -C <dir> <id>/<run>/meta.json <id>/<run>/output.txt ...`: the chosen
//!    files, in order (each run's meta.json before its output, runs oldest first), in
//!    batches that keep the exec URL short.
//!
//! The tar.gz arrives as raw bytes on the exec's stdout and is unpacked as it arrives:
//! the async side pushes chunks into a bounded channel, a blocking task reads them through
//! [`ChanReader`] into flate2 + tar ([`unpack_runs`]), and each file is streamed into a
//! [`RunSink`] (printed, or written under `-O DIR`). Memory stays bounded by the channel
//! (a few chunks) and the decoders' buffers, whatever the size of the output.
//! The reader pod is deleted afterwards, also on errors and on Ctrl-C.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use indicatif::{ProgressBar, ProgressStyle};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, PersistentVolumeClaimVolumeSource, Pod, PodSecurityContext, PodSpec,
    ResourceRequirements, SeccompProfile, SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, AttachParams, DeleteParams, PostParams};
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::client::{is_not_found, Ctx};
use crate::errors::{fail, Error, Op, Result};
use crate::manifest::{PvcOutput, APP, LABEL_APP, LABEL_ID, NAME_PREFIX, OUTPUT_DIR};
use crate::progress::{Out, Progress};
use crate::util::{format_age, new_trace_id};

/// Default image of the reader pod: it needs `sleep`, `find`, `stat` and `tar` with gzip.
pub const READER_IMAGE: &str = "busybox:1.36";
/// Label telling reader pods from trace pods (same trace id label, so `delete` finds them).
pub const LABEL_COMPONENT: &str = "kubectl-trace/component";
pub const COMPONENT_READER: &str = "reader";
/// Container name of the reader pod.
pub const READER_CONTAINER: &str = "reader";
/// User and group the reader runs as (`nobody`): it only reads the claim, whose files
/// the runner (root) leaves readable by all (0644 files in 0755 directories).
pub const READER_UID: i64 = 65534;
/// How long a forgotten reader pod may live (its own `activeDeadlineSeconds`).
pub const READER_LIFETIME: i64 = 600;
pub use trace_contract::rundir::{run_key, META_FILE, OUTPUT_FILE};

/// Bytes of one chunk pushed from the exec stream to the unpacker.
const CHUNK: usize = 64 * 1024;
/// Chunks in flight between the exec stream and the unpacker (the memory bound).
const CHANNEL_CHUNKS: usize = 4;
/// Longest command line (bytes of file arguments) of one `tar` exec: the arguments travel
/// as query parameters of the exec URL.
const ARGS_BUDGET: usize = 48 * 1024;
/// Longest line printed as one line (longer ones are cut, never buffered whole).
const MAX_LINE: u64 = 1024 * 1024;
/// Largest meta.json read.
const MAX_META: u64 = 1024 * 1024;
/// Largest listing accepted from `find`.
const MAX_LISTING: usize = 32 * 1024 * 1024;

// ---------------------------------------------------------------------------------------
// Unpacking (pure I/O over any `Read`)
// ---------------------------------------------------------------------------------------

/// Where unpacked run files go.
pub trait RunSink {
    /// One file of run directory `run` (e.g. `2026-11-25T15-04-05Z`), named `name`
    /// (`output.txt`, `meta.json`), of `size` bytes per the archive; read it from `data`.
    fn file(&mut self, run: &str, name: &str, size: u64, data: &mut dyn Read) -> io::Result<()>;
    /// The archive is over (cleanly or not).
    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One file met in the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    pub run: String,
    pub name: String,
    /// Size per the tar header.
    pub size: u64,
    /// Bytes that arrived.
    pub got: u64,
}

impl FileReport {
    pub fn complete(&self) -> bool {
        self.got == self.size
    }

    pub fn path(&self) -> String {
        format!("{}/{}", self.run, self.name)
    }
}

/// What [`unpack_runs`] got out of a stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    pub files: Vec<FileReport>,
    /// Why the stream could not be read to its end (truncated, corrupt).
    pub stream_error: Option<String>,
    /// Why a file could not be stored or shown (the sink failed).
    pub sink_error: Option<String>,
    /// Entries skipped because their path was not `<id>/<run>/<file>`.
    pub skipped: Vec<String>,
}

impl UnpackReport {
    /// Everything arrived, intact.
    pub fn is_complete(&self) -> bool {
        self.stream_error.is_none()
            && self.sink_error.is_none()
            && self.files.iter().all(FileReport::complete)
    }

    pub fn merge(&mut self, other: UnpackReport) {
        self.files.extend(other.files);
        self.stream_error = self.stream_error.take().or(other.stream_error);
        self.sink_error = self.sink_error.take().or(other.sink_error);
        self.skipped.extend(other.skipped);
    }
}

/// Counts the bytes read and remembers whether a read error came from the source.
struct Counting<'a, R: Read> {
    inner: R,
    count: u64,
    error: &'a mut Option<String>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.inner.read(buf) {
            Ok(n) => {
                self.count += n as u64;
                Ok(n)
            }
            Err(e) => {
                if self.error.is_none() {
                    *self.error = Some(describe_stream_error(&e));
                }
                Err(e)
            }
        }
    }
}

fn describe_stream_error(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => "the stream ended early".to_string(),
        // One line even when a corrupt header's name holds control characters.
        _ => format!(
            "the stream is corrupt or was cut: {}",
            crate::errors::one_line(&e.to_string())
        ),
    }
}

/// `<id>/<run>/<file>` → (run, file); `None` for anything else (directories, odd paths).
fn run_file(path: &Path) -> Option<(String, String)> {
    let parts: Vec<&str> = path
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    match parts.as_slice() {
        [_id, run, file] => Some((run.to_string(), file.to_string())),
        _ => None,
    }
}

/// Unpack a tar.gz of run directories (`<id>/<run>/<file>`) as it is read, file by file,
/// into `sink`. Never buffers a whole file: each one is handed to the sink as a reader
/// over the decompressing stream. Truncated or corrupt input ends the unpacking and is
/// reported (with the files that arrived, complete or not), never a panic.
pub fn unpack_runs<R: Read>(reader: R, sink: &mut dyn RunSink) -> UnpackReport {
    let mut report = UnpackReport::default();
    let mut stream_error: Option<String> = None;
    let decoder = flate2::read::MultiGzDecoder::new(reader);
    let mut archive = tar::Archive::new(decoder);
    let result: io::Result<()> = (|| {
        let entries = archive.entries().inspect_err(|e| {
            stream_error.get_or_insert_with(|| describe_stream_error(e));
        })?;
        for entry in entries {
            let mut entry = entry.inspect_err(|e| {
                stream_error.get_or_insert_with(|| describe_stream_error(e));
            })?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let path = entry.path().map(|p| p.into_owned()).unwrap_or_default();
            let Some((run, name)) = run_file(&path) else {
                report.skipped.push(path.display().to_string());
                continue;
            };
            let size = entry.size();
            let mut counting = Counting {
                inner: &mut entry,
                count: 0,
                error: &mut stream_error,
            };
            let r = sink.file(&run, &name, size, &mut counting);
            // Whatever the sink left unread still counts as arrived if it can be read.
            let mut got = counting.count;
            if r.is_ok() && counting.error.is_none() {
                got += io::copy(&mut counting, &mut io::sink()).unwrap_or(0);
            }
            report.files.push(FileReport {
                run,
                name,
                size,
                got,
            });
            if let Err(e) = r {
                if stream_error.is_none() {
                    report.sink_error = Some(e.to_string());
                }
                return Err(e);
            }
            if stream_error.is_some() {
                return Err(io::Error::other("stream error"));
            }
        }
        Ok(())
    })();
    if result.is_ok() {
        // The end of the tar is not the end of the gzip stream: read the rest, so that a
        // missing trailer (a cut stream) is noticed.
        let mut rest = archive.into_inner();
        if let Err(e) = io::copy(&mut rest, &mut io::sink()) {
            stream_error.get_or_insert_with(|| describe_stream_error(&e));
        }
    }
    report.stream_error = stream_error;
    if let Err(e) = sink.finish() {
        report.sink_error.get_or_insert(e.to_string());
    }
    report
}

/// A blocking `Read` over chunks sent through a bounded tokio channel (the bridge from
/// the async exec stream to the synchronous decoders). The end of the channel is the end
/// of the stream.
pub struct ChanReader {
    rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

impl ChanReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<Vec<u8>>) -> Self {
        ChanReader {
            rx,
            cur: Vec::new(),
            pos: 0,
        }
    }
}

impl Read for ChanReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos >= self.cur.len() {
            match self.rx.blocking_recv() {
                Some(chunk) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// What `meta.json` says about a run (the fields `logs` shows).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMeta {
    pub status: String,
    pub start: String,
    pub end: Option<String>,
    pub exit_status: Option<i64>,
    pub lost_events: u64,
    pub error: Option<String>,
}

impl RunMeta {
    /// A `meta.json` of any version ([`trace_contract::Meta::parse`]).
    pub fn parse(text: &str) -> Option<RunMeta> {
        let m = trace_contract::Meta::parse(text)?;
        Some(RunMeta {
            status: m.status.as_str().to_string(),
            start: m.start,
            end: m.end,
            exit_status: m.exit_status,
            lost_events: m.lost_events,
            error: m.error,
        })
    }

    /// `succeeded, 2026-11-25T15:04:05.123Z → 2026-11-25T15:05:05.456Z`.
    pub fn summary(&self) -> String {
        let status = match (self.status.as_str(), self.exit_status) {
            ("failed", Some(c)) if c != 0 => format!("failed, exit status {c}"),
            (s, _) => s.to_string(),
        };
        let start = if self.start.is_empty() {
            "?"
        } else {
            &self.start
        };
        format!("{status}, {start} → {}", self.end.as_deref().unwrap_or("…"))
    }
}

/// The header line of one run in `--all-runs`.
pub fn run_header(run: &str, meta: Option<&RunMeta>) -> String {
    match meta {
        Some(m) => format!("==> RUN {run} ({}) <==", m.summary()),
        None => format!("==> RUN {run} (no meta.json) <=="),
    }
}

/// Prints runs: each run's `output.txt` line by line (with `--all-runs`, after a header
/// from its `meta.json`); a run's recorded error or lost events go to stderr after it.
pub struct PrintSink {
    out: Out,
    headers: bool,
    /// Run whose header/notes are pending or printed: (run, meta, header printed).
    current: Option<(String, Option<RunMeta>, bool)>,
    /// Notes for stderr (written by the caller, after the output).
    pub notes: Vec<String>,
}

impl PrintSink {
    pub fn new(out: Out, headers: bool) -> Self {
        PrintSink {
            out,
            headers,
            current: None,
            notes: Vec::new(),
        }
    }

    fn close_run(&mut self) {
        if let Some((run, meta, printed)) = self.current.take() {
            if self.headers && !printed {
                self.out.line("", &run_header(&run, meta.as_ref()));
            }
            if let Some(m) = meta {
                if let Some(e) = &m.error {
                    self.notes
                        .push(format!("run {run} ended with an error: {e}"));
                }
                if m.lost_events > 0 {
                    self.notes
                        .push(format!("run {run} lost {} events", m.lost_events));
                }
            }
        }
    }

    fn enter_run(&mut self, run: &str) {
        if self.current.as_ref().map(|c| c.0.as_str()) != Some(run) {
            self.close_run();
            self.current = Some((run.to_string(), None, false));
        }
    }
}

impl RunSink for PrintSink {
    fn file(&mut self, run: &str, name: &str, _size: u64, data: &mut dyn Read) -> io::Result<()> {
        self.enter_run(run);
        match name {
            META_FILE => {
                let mut text = String::new();
                data.take(MAX_META).read_to_string(&mut text).or_else(|e| {
                    if e.kind() == io::ErrorKind::InvalidData {
                        Ok(0)
                    } else {
                        Err(e)
                    }
                })?;
                if let Some(c) = self.current.as_mut() {
                    c.1 = RunMeta::parse(&text);
                }
                Ok(())
            }
            OUTPUT_FILE => {
                if let Some(c) = self.current.as_mut() {
                    if self.headers && !c.2 {
                        self.out.line("", &run_header(run, c.1.as_ref()));
                        c.2 = true;
                    }
                }
                let mut reader = BufReader::with_capacity(CHUNK, data);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    let n = (&mut reader).take(MAX_LINE).read_until(b'\n', &mut line)?;
                    if n == 0 {
                        return Ok(());
                    }
                    let text = String::from_utf8_lossy(&line);
                    if line.ends_with(b"\n") {
                        self.out.write(&text);
                    } else {
                        // A cut line (or the last one without a newline): keep it whole
                        // on screen by ending it.
                        self.out.line("", &text);
                    }
                }
            }
            _ => Ok(()),
        }
    }

    fn finish(&mut self) -> io::Result<()> {
        self.close_run();
        Ok(())
    }
}

/// Writes runs under a local directory: `<dir>/<run>/<file>`.
pub struct DirSink {
    pub dir: PathBuf,
    pub progress: Option<ProgressBar>,
    pub runs: BTreeSet<String>,
}

impl DirSink {
    pub fn new(dir: PathBuf, progress: Option<ProgressBar>) -> Self {
        DirSink {
            dir,
            progress,
            runs: BTreeSet::new(),
        }
    }
}

impl RunSink for DirSink {
    fn file(&mut self, run: &str, name: &str, _size: u64, data: &mut dyn Read) -> io::Result<()> {
        let dir = self.dir.join(run);
        std::fs::create_dir_all(&dir)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))?;
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        self.runs.insert(run.to_string());
        if let Some(p) = &self.progress {
            p.set_message(format!("{run}/{name}"));
        }
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = data.read(&mut buf)?;
            if n == 0 {
                break;
            }
            f.write_all(&buf[..n])
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if let Some(p) = &self.progress {
                p.inc(n as u64);
            }
        }
        f.flush()
    }
}

// ---------------------------------------------------------------------------------------
// The listing and the choice of runs
// ---------------------------------------------------------------------------------------

/// The run files on the volume, from the reader's `find ... stat -c '%s %n'`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Listing {
    /// Run directory → (file name → size), runs in time order by [`Listing::runs`].
    pub runs: BTreeMap<String, BTreeMap<String, u64>>,
}

impl Listing {
    /// Parse lines `SIZE <dir>/<id>/<run>/<file>`.
    pub fn parse(text: &str) -> Listing {
        let mut runs: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        for line in text.lines() {
            let Some((size, path)) = line.trim().split_once(' ') else {
                continue;
            };
            let Ok(size) = size.parse::<u64>() else {
                continue;
            };
            let mut parts = path.rsplit('/');
            let (Some(file), Some(run)) = (parts.next(), parts.next()) else {
                continue;
            };
            if file.is_empty() || run.is_empty() || file == "." || run == ".." || file == ".." {
                continue;
            }
            runs.entry(run.to_string())
                .or_default()
                .insert(file.to_string(), size);
        }
        Listing { runs }
    }

    /// Run names, oldest first.
    pub fn runs(&self) -> Vec<String> {
        let mut r: Vec<String> = self.runs.keys().cloned().collect();
        r.sort_by_key(|a| run_key(a));
        r
    }
}

/// Which runs to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    All,
    Latest,
    /// 1-based, in time order.
    Nth(usize),
}

impl Selection {
    /// `--run N|latest`.
    pub fn parse_run(text: &str) -> Result<Selection> {
        match text.trim() {
            "latest" | "last" => Ok(Selection::Latest),
            t => match t.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Selection::Nth(n)),
                _ => Err(fail(format!(
                    "invalid --run {text:?}: use a run number (1 is the oldest) or latest"
                ))),
            },
        }
    }
}

/// The chosen runs, oldest first.
pub fn select_runs(runs: &[String], sel: Selection) -> std::result::Result<Vec<String>, String> {
    match sel {
        Selection::All => Ok(runs.to_vec()),
        Selection::Latest => Ok(runs.last().cloned().into_iter().collect()),
        Selection::Nth(n) if n <= runs.len() => Ok(vec![runs[n - 1].clone()]),
        Selection::Nth(n) => Err(format!(
            "there is no run {n}: there {} {} run{} (--run 1..{} or latest)",
            if runs.len() == 1 { "is" } else { "are" },
            runs.len(),
            if runs.len() == 1 { "" } else { "s" },
            runs.len()
        )),
    }
}

/// Files to fetch, as `<id>/<run>/<file>`, in the order they must arrive: per run
/// (oldest first) meta.json, output.txt, then (`all_files`) the others.
pub fn files_to_fetch(
    listing: &Listing,
    id: &str,
    runs: &[String],
    all_files: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for run in runs {
        let Some(files) = listing.runs.get(run) else {
            continue;
        };
        for f in [META_FILE, OUTPUT_FILE] {
            if files.contains_key(f) {
                out.push(format!("{id}/{run}/{f}"));
            }
        }
        if all_files {
            for f in files.keys() {
                if f != META_FILE && f != OUTPUT_FILE {
                    out.push(format!("{id}/{run}/{f}"));
                }
            }
        }
    }
    out
}

/// Split the files into `tar` command lines whose arguments stay within the URL budget.
pub fn tar_commands(dir: &str, files: &[String]) -> Vec<Vec<String>> {
    let mut cmds = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    let mut len = 0;
    for f in files {
        if !cur.is_empty() && len + f.len() + 9 > ARGS_BUDGET {
            cmds.push(std::mem::take(&mut cur));
            len = 0;
        }
        len += f.len() + 9; // "&command=" per argument
        cur.push(f.clone());
    }
    if !cur.is_empty() {
        cmds.push(cur);
    }
    cmds.into_iter()
        .map(|files| {
            // `--`: no file name is ever taken for an option of tar.
            let mut c: Vec<String> = ["tar", "czf", "-", "-C", dir, "--"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            c.extend(files);
            c
        })
        .collect()
}

/// The listing command.
pub fn find_command(dir: &str, id: &str) -> Vec<String> {
    [
        "find",
        &format!("{dir}/{id}"),
        "-mindepth",
        "2",
        "-maxdepth",
        "2",
        "-type",
        "f",
        "-exec",
        "stat",
        "-c",
        "%s %n",
        "{}",
        "+",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// The one-line account of an incomplete download: what is missing or cut.
pub fn describe_incomplete(report: &UnpackReport, expected: &[String], id: &str) -> Option<String> {
    let got: BTreeSet<String> = report
        .files
        .iter()
        .map(|f| format!("{id}/{}", f.path()))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|f| !got.contains(*f))
        .map(|f| f.strip_prefix(&format!("{id}/")).unwrap_or(f).to_string())
        .collect();
    let cut: Vec<String> = report
        .files
        .iter()
        .filter(|f| !f.complete())
        .map(|f| format!("{} ({} of {} bytes)", f.path(), f.got, f.size))
        .collect();
    if report.is_complete() && missing.is_empty() {
        return None;
    }
    let mut parts = Vec::new();
    if let Some(e) = &report.sink_error {
        parts.push(format!("cannot store the output: {e}"));
    }
    if let Some(e) = &report.stream_error {
        parts.push(e.clone());
    }
    if !cut.is_empty() {
        parts.push(format!("incomplete: {}", cut.join(", ")));
    }
    if !missing.is_empty() {
        let runs: BTreeSet<&str> = missing.iter().filter_map(|m| m.split('/').next()).collect();
        parts.push(format!(
            "missing: {} (runs {})",
            missing.join(", "),
            runs.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    if parts.is_empty() {
        parts.push("the download is incomplete".into());
    }
    Some(format!("partial download: {}", parts.join("; ")))
}

// ---------------------------------------------------------------------------------------
// Commands in the reader pod
// ---------------------------------------------------------------------------------------

/// A command started in the reader pod.
pub struct Exec {
    pub stdout: Pin<Box<dyn AsyncRead + Send>>,
    pub stderr: Pin<Box<dyn AsyncRead + Send>>,
    /// How the command ended: `Err(message)` for a non-zero exit.
    pub status: BoxFuture<'static, std::result::Result<(), String>>,
    /// Keeps the connection alive until the streams are read.
    pub keep: Box<dyn Send>,
}

/// Runs commands in the reader pod (`pods/exec` in a cluster; local processes in tests).
pub trait Remote: Sync {
    fn exec(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Exec>>;
}

/// `pods/exec` in the reader pod, over a websocket.
pub struct PodExec {
    pub ctx: Ctx,
    pub namespace: String,
    pub pod: String,
}

impl Remote for PodExec {
    fn exec(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Exec>> {
        async move {
            let api: Api<Pod> = Api::namespaced(self.ctx.stream_client.clone(), &self.namespace);
            let ap = AttachParams {
                container: Some(READER_CONTAINER.to_string()),
                stdin: false,
                stdout: true,
                stderr: true,
                tty: false,
                max_stdout_buf_size: Some(CHUNK),
                max_stderr_buf_size: Some(CHUNK),
                ..Default::default()
            };
            let mut p = api.exec(&self.pod, argv, &ap).await.map_err(|e| {
                unavailable(self.ctx.err(
                    Op::new("create", "pods/exec", Some(&self.namespace)).named(&self.pod),
                )(e))
            })?;
            let stdout = p.stdout().ok_or_else(|| fail("exec: no stdout"))?;
            let stderr = p.stderr().ok_or_else(|| fail("exec: no stderr"))?;
            let status = p.take_status().ok_or_else(|| fail("exec: no status"))?;
            Ok(Exec {
                stdout: Box::pin(stdout),
                stderr: Box::pin(stderr),
                status: async move {
                    match status.await {
                        None => Ok(()),
                        Some(s) if s.status.as_deref() == Some("Success") => Ok(()),
                        Some(s) => Err(s
                            .message
                            .filter(|m| !m.is_empty())
                            .or(s.reason)
                            .unwrap_or_else(|| "the command failed".into())),
                    }
                }
                .boxed(),
                keep: Box::new(p),
            })
        }
        .boxed()
    }
}

/// Marks an error as "the reader could not be used at all" (the caller may fall back).
pub fn unavailable(e: Error) -> Error {
    Error::Failed(format!("{READER_UNAVAILABLE}{e}"))
}

const READER_UNAVAILABLE: &str = "cannot read the volume: ";

/// True for errors where no byte of the volume was read (reader pod or exec unusable).
pub fn is_unavailable(e: &Error) -> bool {
    matches!(e, Error::Failed(m) if m.starts_with(READER_UNAVAILABLE))
}

/// Read an async stream to its end, keeping at most `limit` bytes.
async fn read_capped(mut r: Pin<Box<dyn AsyncRead + Send>>, limit: usize) -> (Vec<u8>, bool) {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 8192];
    let mut overflow = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, overflow),
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                overflow |= n > room;
            }
        }
    }
}

/// Run a command and collect its (bounded) output: (stdout, stderr, exit).
pub async fn exec_collect(
    remote: &dyn Remote,
    argv: Vec<String>,
) -> Result<(String, String, std::result::Result<(), String>)> {
    let Exec {
        stdout,
        stderr,
        status,
        keep,
    } = remote.exec(argv).await?;
    let ((out, overflow), (err, _)) =
        tokio::join!(read_capped(stdout, MAX_LISTING), read_capped(stderr, 4096));
    if overflow {
        return Err(fail("the listing of the run directories is too large"));
    }
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .unwrap_or(Ok(()));
    drop(keep);
    Ok((
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).trim().to_string(),
        status,
    ))
}

/// Run a `tar czf -` command and unpack its stdout into `sink` as it arrives. Returns the
/// report, the sink, and the command's stderr and exit.
pub async fn exec_unpack<S: RunSink + Send + 'static>(
    remote: &dyn Remote,
    argv: Vec<String>,
    sink: S,
) -> Result<(UnpackReport, S, String, std::result::Result<(), String>)> {
    let Exec {
        mut stdout,
        stderr,
        status,
        keep,
    } = remote.exec(argv).await?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHANNEL_CHUNKS);
    let unpacker = tokio::task::spawn_blocking(move || {
        let mut sink = sink;
        let report = unpack_runs(ChanReader::new(rx), &mut sink);
        (report, sink)
    });
    let pump = async move {
        let mut read_error = None;
        loop {
            let mut buf = vec![0u8; CHUNK];
            match stdout.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    // The unpacker stopped (an error, or it has all it needs).
                    if tx.send(buf).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    read_error = Some(e.to_string());
                    break;
                }
            }
        }
        drop(tx);
        read_error
    };
    let (read_error, (err, _)) = tokio::join!(pump, read_capped(stderr, 4096));
    let (mut report, sink) = unpacker
        .await
        .map_err(|e| fail(format!("the unpacking task failed: {e}")))?;
    if let (Some(e), None) = (read_error, &report.stream_error) {
        report.stream_error = Some(format!("the connection broke: {e}"));
    }
    let status = tokio::time::timeout(Duration::from_secs(30), status)
        .await
        .unwrap_or(Ok(()));
    drop(keep);
    Ok((
        report,
        sink,
        String::from_utf8_lossy(&err).trim().to_string(),
        status,
    ))
}

// ---------------------------------------------------------------------------------------
// The reader pod
// ---------------------------------------------------------------------------------------

/// The reader pod of trace `id`: mounts the claim read-only at /output and sleeps, so
/// that commands can be exec'd in it; gone by itself after [`READER_LIFETIME`].
pub fn reader_pod(ns: &str, id: &str, claim: &str, image: &str, suffix: &str) -> Pod {
    let q = |s: &str| Quantity(s.to_string());
    let labels = BTreeMap::from([
        (LABEL_APP.to_string(), APP.to_string()),
        (LABEL_ID.to_string(), id.to_string()),
        (LABEL_COMPONENT.to_string(), COMPONENT_READER.to_string()),
    ]);
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("{NAME_PREFIX}{id}-reader-{suffix}")),
            namespace: Some(ns.to_string()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(PodSpec {
            restart_policy: Some("Never".to_string()),
            active_deadline_seconds: Some(READER_LIFETIME),
            termination_grace_period_seconds: Some(1),
            automount_service_account_token: Some(false),
            enable_service_links: Some(false),
            // PodSecurity "restricted": it passes in any namespace, privileged or not.
            // fsGroup adds the group to the reader's (a read-only claim is normally not
            // re-owned; OnRootMismatch keeps a kubelet that does from walking a big one).
            security_context: Some(PodSecurityContext {
                run_as_non_root: Some(true),
                run_as_user: Some(READER_UID),
                run_as_group: Some(READER_UID),
                fs_group: Some(READER_UID),
                fs_group_change_policy: Some("OnRootMismatch".to_string()),
                seccomp_profile: Some(SeccompProfile {
                    type_: "RuntimeDefault".to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            tolerations: Some(vec![Toleration {
                operator: Some("Exists".to_string()),
                effect: Some("NoSchedule".to_string()),
                ..Default::default()
            }]),
            containers: vec![Container {
                name: READER_CONTAINER.to_string(),
                image: Some(image.to_string()),
                image_pull_policy: Some("IfNotPresent".to_string()),
                command: Some(vec!["sleep".to_string(), READER_LIFETIME.to_string()]),
                volume_mounts: Some(vec![VolumeMount {
                    name: "output".to_string(),
                    mount_path: OUTPUT_DIR.to_string(),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                security_context: Some(SecurityContext {
                    allow_privilege_escalation: Some(false),
                    read_only_root_filesystem: Some(true),
                    capabilities: Some(Capabilities {
                        drop: Some(vec!["ALL".to_string()]),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                resources: Some(ResourceRequirements {
                    requests: Some(BTreeMap::from([
                        ("cpu".to_string(), q("10m")),
                        ("memory".to_string(), q("16Mi")),
                    ])),
                    limits: Some(BTreeMap::from([("memory".to_string(), q("64Mi"))])),
                    ..Default::default()
                }),
                ..Default::default()
            }],
            volumes: Some(vec![Volume {
                name: "output".to_string(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: claim.to_string(),
                    read_only: Some(true),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// How the reader pod stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ReaderState {
    Ready,
    Waiting(String),
    Fatal(String),
}

pub fn reader_state(pod: &Pod, image: &str) -> ReaderState {
    let status = pod.status.clone().unwrap_or_default();
    let phase = status.phase.clone().unwrap_or_else(|| "Pending".into());
    let cs = status
        .container_statuses
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.name == READER_CONTAINER);
    let state = cs.and_then(|c| c.state).unwrap_or_default();
    if state.running.is_some() && phase == "Running" {
        return ReaderState::Ready;
    }
    if phase == "Failed" || phase == "Succeeded" || state.terminated.is_some() {
        let why = status.reason.or(status.message).unwrap_or(phase);
        return ReaderState::Fatal(format!("the reader pod ended: {why}"));
    }
    if let Some(why) = crate::tracejob::unschedulable(status.conditions.as_deref()) {
        return ReaderState::Fatal(format!("the reader pod cannot be scheduled: {why}"));
    }
    if let Some(w) = state.waiting {
        let reason = w.reason.unwrap_or_default();
        return match reason.as_str() {
            "ErrImagePull" | "ImagePullBackOff" | "InvalidImageName" | "ErrImageNeverPull" => {
                ReaderState::Fatal(format!(
                    "cannot pull the reader image {image} ({reason}): {} (choose another with --reader-image)",
                    w.message.unwrap_or_default()
                ))
            }
            "CreateContainerConfigError" | "CreateContainerError" | "RunContainerError" => {
                ReaderState::Fatal(format!(
                    "the reader container cannot start ({reason}): {}",
                    w.message.unwrap_or_default()
                ))
            }
            "" => ReaderState::Waiting(phase),
            r => ReaderState::Waiting(r.to_string()),
        };
    }
    ReaderState::Waiting(phase)
}

/// Create the reader pod; returns its name.
pub async fn create_reader(ctx: &Ctx, pod: &Pod) -> Result<String> {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let created = api.create(&PostParams::default(), pod).await.map_err(|e| {
        unavailable(ctx.err(Op::new("create", "pods", Some(&ns)).named(&name))(
            e,
        ))
    })?;
    Ok(created.metadata.name.unwrap_or(name))
}

/// Wait until the reader pod runs: its states come from a watch of that one pod
/// (kube-runtime's `watcher`), and the wait gives up after `timeout`.
pub async fn wait_reader(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    image: &str,
    timeout: Duration,
) -> Result<()> {
    use futures::StreamExt;
    use kube::runtime::watcher;
    // A watch stays quiet for long: the client without a read timeout.
    let api: Api<Pod> = Api::namespaced(ctx.stream_client.clone(), ns);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config));
    let mut progress = Progress::new();
    let mut shown = "Pending".to_string();
    let wait = async {
        while let Some(event) = events.next().await {
            let pod = match event {
                Ok(watcher::Event::Apply(p) | watcher::Event::InitApply(p)) => p,
                Ok(watcher::Event::Delete(_)) => {
                    return Err(fail(format!("the reader pod {name} was deleted")))
                }
                Ok(_) => continue,
                Err(e) => {
                    return Err(fail(format!(
                        "cannot follow the reader pod {name} in namespace {ns}: {e}"
                    )))
                }
            };
            match reader_state(&pod, image) {
                ReaderState::Ready => return Ok(()),
                ReaderState::Fatal(m) => return Err(fail(m)),
                ReaderState::Waiting(s) => {
                    progress.set(&format!("starting the reader pod {name} ({s})"));
                    shown = s;
                }
            }
        }
        Err(fail(format!("the watch of the reader pod {name} ended")))
    };
    let r = match tokio::time::timeout(timeout, wait).await {
        Ok(r) => r,
        Err(_) => Err(fail(format!(
            "the reader pod {name} has not started after {} ({shown}); see kubectl describe pod {name} -n {ns}",
            format_age(timeout.as_secs() as i64)
        ))),
    };
    progress.finish();
    r.map_err(unavailable)
}

/// Delete the reader pod (quietly when it is already gone).
pub async fn delete_reader(ctx: &Ctx, ns: &str, name: &str) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    match api.delete(name, &dp).await {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => eprintln!(
            "note: could not delete the reader pod {name} ({}); it ends by itself within {}s, or: kubectl delete pod {name} -n {ns}",
            ctx.err(Op::new("delete", "pods", Some(ns)).named(name))(e),
            READER_LIFETIME
        ),
    }
}

/// A fresh 5-character suffix for reader pod names.
pub fn reader_suffix() -> String {
    new_trace_id()[..5].to_string()
}

// ---------------------------------------------------------------------------------------
// Reading a trace's runs
// ---------------------------------------------------------------------------------------

/// What to do with the runs read.
pub enum Mode {
    /// Print them (`headers`: a header line per run, for `--all-runs`).
    Print { out: Out, headers: bool },
    /// Write them under a directory (`-O`).
    Download { dir: PathBuf },
}

/// List and read the runs of trace `id` through `remote` (a reader pod already running).
pub async fn read_runs(
    remote: &dyn Remote,
    id: &str,
    output: &PvcOutput,
    sel: Selection,
    mode: Mode,
) -> Result<()> {
    let dir = output.dir();
    let where_ = format!("claim {} ({})", output.claim, output.display());
    let (text, err, status) = exec_collect(remote, find_command(&dir, id)).await?;
    if let Err(e) = status {
        if err.contains("No such file") || err.contains("not found") || text.is_empty() {
            return Err(fail(format!(
                "no output of trace {id} on {where_}: {}",
                if err.is_empty() { e } else { err }
            )));
        }
        // find may complain about one file and still list the others.
        eprintln!(
            "note: listing the runs: {}",
            if err.is_empty() { e } else { err }
        );
    }
    let listing = Listing::parse(&text);
    let runs = listing.runs();
    if runs.is_empty() {
        return Err(fail(format!("trace {id} has no run on {where_} yet")));
    }
    let chosen = select_runs(&runs, sel).map_err(|e| fail(format!("trace {id}: {e}")))?;
    let all_files = matches!(mode, Mode::Download { .. });
    let files = files_to_fetch(&listing, id, &chosen, all_files);
    if matches!(sel, Selection::Latest | Selection::Nth(_))
        && matches!(mode, Mode::Print { headers: false, .. })
        && std::io::IsTerminal::is_terminal(&std::io::stderr())
    {
        let n = runs.iter().position(|r| r == &chosen[0]).unwrap_or(0) + 1;
        eprintln!("run {n} of {}: {}", runs.len(), chosen[0]);
    }
    let commands = tar_commands(&dir, &files);
    let mut report = UnpackReport::default();
    let mut notes = Vec::new();
    let mut tar_errors = Vec::new();
    match mode {
        Mode::Print { out, headers } => {
            let mut sink = PrintSink::new(out, headers);
            for cmd in commands {
                let (r, s, err, status) = exec_unpack(remote, cmd, sink).await?;
                sink = s;
                let stop = !r.is_complete();
                report.merge(r);
                if let Err(e) = status {
                    tar_errors.push(if err.is_empty() { e } else { err });
                }
                if stop {
                    break;
                }
            }
            notes.append(&mut sink.notes);
        }
        Mode::Download { dir: local } => {
            std::fs::create_dir_all(&local)
                .map_err(|e| fail(format!("cannot create {}: {e}", local.display())))?;
            let total: u64 = chosen
                .iter()
                .filter_map(|r| listing.runs.get(r))
                .flat_map(|f| f.values())
                .sum();
            let bar = std::io::IsTerminal::is_terminal(&std::io::stderr()).then(|| {
                let b = ProgressBar::new(total);
                b.set_style(
                    ProgressStyle::with_template(
                        "{bar:30.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} {wide_msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                );
                b
            });
            let mut sink = DirSink::new(local.clone(), bar.clone());
            for cmd in commands {
                let (r, s, err, status) = exec_unpack(remote, cmd, sink).await?;
                sink = s;
                let stop = !r.is_complete();
                report.merge(r);
                if let Err(e) = status {
                    tar_errors.push(if err.is_empty() { e } else { err });
                }
                if stop {
                    break;
                }
            }
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            if report.is_complete() {
                eprintln!(
                    "downloaded {} run{} of trace {id} ({} files) into {}",
                    sink.runs.len(),
                    if sink.runs.len() == 1 { "" } else { "s" },
                    report.files.len(),
                    local.display()
                );
            }
        }
    }
    for n in notes {
        eprintln!("note: {n}");
    }
    if let Some(m) = describe_incomplete(&report, &files, id) {
        let tar = if tar_errors.is_empty() {
            String::new()
        } else {
            format!(" (reader: {})", tar_errors.join("; "))
        };
        return Err(fail(format!("{m}{tar}")));
    }
    if !tar_errors.is_empty() {
        // Everything listed arrived; tar still complained (e.g. a file grew meanwhile).
        eprintln!("note: the reader reported: {}", tar_errors.join("; "));
    }
    Ok(())
}

/// Start a reader pod for the claim, read the runs through the [`Remote`] made for it,
/// and delete the pod (also on errors and on Ctrl-C).
#[allow(clippy::too_many_arguments)]
pub async fn read_with_reader(
    ctx: &Ctx,
    id: &str,
    output: &PvcOutput,
    sel: Selection,
    mode: Mode,
    image: &str,
    timeout: Duration,
    remote: &(dyn Fn(&Ctx, &str, &str) -> Box<dyn Remote + Send> + Sync),
) -> Result<()> {
    let ns = ctx.namespace.clone();
    let pod = reader_pod(&ns, id, &output.claim, image, &reader_suffix());
    let name = create_reader(ctx, &pod).await?;
    let work = async {
        wait_reader(ctx, &ns, &name, image, timeout).await?;
        let remote = remote(ctx, &ns, &name);
        read_runs(remote.as_ref(), id, output, sel, mode).await
    };
    let result = tokio::select! {
        r = work => r,
        _ = tokio::signal::ctrl_c() => Err(Error::Interrupted("interrupted; the reader pod is being deleted".into())),
    };
    delete_reader(ctx, &ns, &name).await;
    result
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use std::process::Stdio;

    /// Write run directories under `root/<id>/`: (run, output text, meta json).
    pub fn make_runs(root: &Path, id: &str, runs: &[(&str, &str, Option<&str>)]) {
        for (run, output, meta) in runs {
            let d = root.join(id).join(run);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::write(d.join(OUTPUT_FILE), output).unwrap();
            if let Some(m) = meta {
                std::fs::write(d.join(META_FILE), m).unwrap();
            }
        }
    }

    pub fn meta(status: &str, start: &str, end: Option<&str>, error: Option<&str>) -> String {
        serde_json::json!({
            "version": 1, "trace_id": "abc", "target": "node/n1", "node": "n1",
            "script_sha256": "00", "status": status, "start": start, "end": end,
            "exit_status": if status == "succeeded" { Some(0) } else if end.is_some() { Some(1) } else { None },
            "lost_events": 0, "error": error,
        })
        .to_string()
    }

    /// A real tar.gz of `files` (relative to `root`), in that order, made with
    /// tar::Builder over a GzEncoder.
    pub fn tar_gz(root: &Path, files: &[String]) -> Vec<u8> {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for f in files {
            b.append_path_with_name(root.join(f), f).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    fn sample(root: &Path) -> Vec<String> {
        make_runs(
            root,
            "abc",
            &[
                (
                    "2026-11-25T15-04-05Z",
                    "Attaching 1 probe...\n@[bash]: 3\n",
                    Some(&meta(
                        "succeeded",
                        "2026-11-25T15:04:05.000Z",
                        Some("2026-11-25T15:05:05.000Z"),
                        None,
                    )),
                ),
                (
                    "2026-11-25T16-04-05Z",
                    "Attaching 1 probe...\npartial line",
                    Some(&meta(
                        "failed",
                        "2026-11-25T16:04:05.000Z",
                        Some("2026-11-25T16:04:09.000Z"),
                        Some("writing the output: No space left on device (os error 28)"),
                    )),
                ),
            ],
        );
        vec![
            "abc/2026-11-25T15-04-05Z/meta.json".to_string(),
            "abc/2026-11-25T15-04-05Z/output.txt".to_string(),
            "abc/2026-11-25T16-04-05Z/meta.json".to_string(),
            "abc/2026-11-25T16-04-05Z/output.txt".to_string(),
        ]
    }

    #[test]
    fn unpack_prints_runs_with_headers_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample(dir.path());
        let gz = tar_gz(dir.path(), &files);
        let (out, buf) = Out::buffer();
        let mut sink = PrintSink::new(out, true);
        let report = unpack_runs(&gz[..], &mut sink);
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(report.files.len(), 4);
        assert_eq!(
            buf.text(),
            "==> RUN 2026-11-25T15-04-05Z (succeeded, 2026-11-25T15:04:05.000Z → 2026-11-25T15:05:05.000Z) <==\n\
             Attaching 1 probe...\n@[bash]: 3\n\
             ==> RUN 2026-11-25T16-04-05Z (failed, exit status 1, 2026-11-25T16:04:05.000Z → 2026-11-25T16:04:09.000Z) <==\n\
             Attaching 1 probe...\npartial line\n"
        );
        assert_eq!(
            sink.notes,
            vec!["run 2026-11-25T16-04-05Z ended with an error: writing the output: No space left on device (os error 28)"]
        );
        assert!(describe_incomplete(&report, &files, "abc").is_none());
    }

    #[test]
    fn unpack_downloads_identical_files() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample(dir.path());
        let gz = tar_gz(dir.path(), &files);
        let dest = tempfile::tempdir().unwrap();
        let mut sink = DirSink::new(dest.path().to_path_buf(), None);
        let report = unpack_runs(&gz[..], &mut sink);
        assert!(report.is_complete(), "{report:?}");
        for f in &files {
            let rel = f.strip_prefix("abc/").unwrap();
            assert_eq!(
                std::fs::read(dest.path().join(rel)).unwrap(),
                std::fs::read(dir.path().join(f)).unwrap(),
                "{rel}"
            );
        }
        assert_eq!(sink.runs.len(), 2);
    }

    #[test]
    fn truncated_archive_is_reported_as_partial() {
        let dir = tempfile::tempdir().unwrap();
        // Incompressible-ish output, large enough to be cut in the middle.
        let mut big = String::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for i in 0..20000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            big.push_str(&format!("line {i} {x:016x}\n"));
        }
        make_runs(
            dir.path(),
            "abc",
            &[
                ("2026-01-01T00-00-00Z", "first run\n", None),
                ("2026-01-02T00-00-00Z", &big, None),
            ],
        );
        let files = vec![
            "abc/2026-01-01T00-00-00Z/output.txt".to_string(),
            "abc/2026-01-02T00-00-00Z/output.txt".to_string(),
            "abc/2026-01-03T00-00-00Z/output.txt".to_string(), // listed, never sent
        ];
        let gz = tar_gz(dir.path(), &files[..2]);
        let cut = &gz[..gz.len() / 2];
        let (out, buf) = Out::buffer();
        let mut sink = PrintSink::new(out, false);
        let report = unpack_runs(cut, &mut sink);
        assert!(!report.is_complete());
        assert_eq!(
            report.stream_error.as_deref(),
            Some("the stream ended early")
        );
        assert!(report.files[0].complete());
        assert!(!report.files[1].complete());
        assert!(buf.text().starts_with("first run\nline 0 "));
        let msg = describe_incomplete(&report, &files, "abc").unwrap();
        assert!(msg.starts_with("partial download: the stream ended early; incomplete: 2026-01-02T00-00-00Z/output.txt ("), "{msg}");
        assert!(
            msg.contains("missing: 2026-01-03T00-00-00Z/output.txt (runs 2026-01-03T00-00-00Z)"),
            "{msg}"
        );

        // Cut exactly at the end of the tar data: only the gzip trailer is missing.
        let gz = tar_gz(dir.path(), &files[..1]);
        let report = unpack_runs(
            &gz[..gz.len() - 8],
            &mut PrintSink::new(Out::buffer().0, false),
        );
        assert!(report.files.iter().all(FileReport::complete));
        assert!(!report.is_complete(), "{report:?}");

        // Not gzip at all.
        let report = unpack_runs(&b"tar: abc: No such file or directory\n"[..], &mut sink);
        assert!(report.stream_error.is_some());
        assert!(report.files.is_empty());
    }

    /// A reader that records how much was consumed when the sink sees data.
    struct Probe<R> {
        inner: R,
        consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
    }

    impl<R: Read> Read for Probe<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.consumed
                .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
            Ok(n)
        }
    }

    struct LagSink {
        consumed: std::sync::Arc<std::sync::atomic::AtomicU64>,
        delivered: u64,
        max_lag: u64,
    }

    impl RunSink for LagSink {
        fn file(&mut self, _: &str, _: &str, _: u64, data: &mut dyn Read) -> io::Result<()> {
            let mut buf = [0u8; 4096];
            loop {
                let n = data.read(&mut buf)?;
                if n == 0 {
                    return Ok(());
                }
                self.delivered += n as u64;
                let c = self.consumed.load(std::sync::atomic::Ordering::SeqCst);
                self.max_lag = self.max_lag.max(c.saturating_sub(self.delivered));
            }
        }
    }

    #[test]
    fn unpacking_streams_with_bounded_memory() {
        // 8 MiB of output that does not compress: if the unpacker buffered the archive,
        // the input consumed would run far ahead of what the sink has been given.
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![0u8; 8 * 1024 * 1024];
        let mut x: u64 = 0x2545f4914f6cdd1d;
        for b in data.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        let d = dir.path().join("abc/2026-01-01T00-00-00Z");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("output.txt"), &data).unwrap();
        let gz = tar_gz(
            dir.path(),
            &["abc/2026-01-01T00-00-00Z/output.txt".to_string()],
        );
        assert!(gz.len() > 8 * 1024 * 1024);
        let consumed = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let probe = Probe {
            inner: &gz[..],
            consumed: consumed.clone(),
        };
        let mut sink = LagSink {
            consumed,
            delivered: 0,
            max_lag: 0,
        };
        let report = unpack_runs(probe, &mut sink);
        assert!(report.is_complete(), "{report:?}");
        assert_eq!(sink.delivered, data.len() as u64);
        // The bound is the decompressor's own read-ahead, not the archive: under 256 KiB
        // with flate2's miniz backend, 474 KiB with its zlib-rs backend, which the
        // workspace gets when built together (blazesym's `zlib` feature).
        assert!(
            sink.max_lag < 1024 * 1024,
            "input ran {} bytes ahead of the output",
            sink.max_lag
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn channel_bridge_is_bounded_and_complete() {
        let dir = tempfile::tempdir().unwrap();
        let files = sample(dir.path());
        let gz = tar_gz(dir.path(), &files);
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(CHANNEL_CHUNKS);
        let (out, buf) = Out::buffer();
        let task = tokio::task::spawn_blocking(move || {
            let mut sink = PrintSink::new(out, true);
            unpack_runs(ChanReader::new(rx), &mut sink)
        });
        // Tiny chunks: the bridge must reassemble them in order.
        for c in gz.chunks(7) {
            tx.send(c.to_vec()).await.unwrap();
            assert!(tx.capacity() <= CHANNEL_CHUNKS);
        }
        drop(tx);
        let report = task.await.unwrap();
        assert!(report.is_complete(), "{report:?}");
        assert!(buf.text().contains("@[bash]: 3\n"));
    }

    #[test]
    fn listing_selection_and_commands() {
        let text = "35 /output/team-a/abc/2026-11-25T15-04-05Z/output.txt\n\
                    300 /output/team-a/abc/2026-11-25T15-04-05Z/meta.json\n\
                    10 /output/team-a/abc/2026-11-25T15-04-05Z-10/output.txt\n\
                    10 /output/team-a/abc/2026-11-25T15-04-05Z-2/output.txt\n\
                    7 /output/team-a/abc/2026-11-24T00-00-00Z/output.txt\n\
                    garbage\n";
        let l = Listing::parse(text);
        assert_eq!(
            l.runs(),
            vec![
                "2026-11-24T00-00-00Z",
                "2026-11-25T15-04-05Z",
                "2026-11-25T15-04-05Z-2",
                "2026-11-25T15-04-05Z-10"
            ]
        );
        let runs = l.runs();
        assert_eq!(
            select_runs(&runs, Selection::Latest).unwrap(),
            vec!["2026-11-25T15-04-05Z-10"]
        );
        assert_eq!(
            select_runs(&runs, Selection::Nth(2)).unwrap(),
            vec!["2026-11-25T15-04-05Z"]
        );
        assert_eq!(
            select_runs(&runs, Selection::Nth(5)).unwrap_err(),
            "there is no run 5: there are 4 runs (--run 1..4 or latest)"
        );
        assert_eq!(Selection::parse_run("latest").unwrap(), Selection::Latest);
        assert_eq!(Selection::parse_run("3").unwrap(), Selection::Nth(3));
        assert!(Selection::parse_run("0").is_err());
        let files = files_to_fetch(&l, "abc", &runs[1..2], false);
        assert_eq!(
            files,
            vec![
                "abc/2026-11-25T15-04-05Z/meta.json",
                "abc/2026-11-25T15-04-05Z/output.txt"
            ]
        );
        let cmds = tar_commands("/output/team-a", &files);
        assert_eq!(cmds.len(), 1);
        assert_eq!(
            cmds[0][..6],
            ["tar", "czf", "-", "-C", "/output/team-a", "--"].map(String::from)
        );
        // Many files: several commands, none over budget, order kept.
        let many: Vec<String> = (0..5000)
            .map(|i| format!("abc/2026-11-25T15-04-05Z-{i}/output.txt"))
            .collect();
        let cmds = tar_commands("/output", &many);
        assert!(cmds.len() > 1);
        assert!(cmds
            .iter()
            .all(|c| c[6..].iter().map(|a| a.len() + 9).sum::<usize>() <= ARGS_BUDGET));
        let back: Vec<String> = cmds.into_iter().flat_map(|c| c[6..].to_vec()).collect();
        assert_eq!(back, many);
    }

    #[test]
    fn reader_pod_shape() {
        let p = reader_pod("tracing", "abc", "traces", READER_IMAGE, "x1y2z");
        assert_eq!(
            p.metadata.name.as_deref(),
            Some("kubectl-trace-abc-reader-x1y2z")
        );
        let l = p.metadata.labels.as_ref().unwrap();
        assert_eq!(l[LABEL_ID], "abc");
        assert_eq!(l[LABEL_COMPONENT], COMPONENT_READER);
        let s = p.spec.as_ref().unwrap();
        assert_eq!(s.restart_policy.as_deref(), Some("Never"));
        assert_eq!(s.active_deadline_seconds, Some(600));
        let v = &s.volumes.as_ref().unwrap()[0];
        let pvc = v.persistent_volume_claim.as_ref().unwrap();
        assert_eq!(
            (pvc.claim_name.as_str(), pvc.read_only),
            ("traces", Some(true))
        );
        let m = &s.containers[0].volume_mounts.as_ref().unwrap()[0];
        assert_eq!(
            (m.mount_path.as_str(), m.read_only),
            ("/output", Some(true))
        );
        assert_eq!(
            s.containers[0].command.as_ref().unwrap(),
            &vec!["sleep".to_string(), "600".to_string()]
        );
    }

    #[test]
    fn reader_pod_runs_unprivileged() {
        // What PodSecurity "restricted" asks, plus a fixed non-root user: the reader only
        // reads the claim (the runner's files are 0644 in 0755 directories).
        let p = reader_pod("tracing", "abc", "traces", READER_IMAGE, "x1y2z");
        let s = p.spec.as_ref().unwrap();
        let psc = s.security_context.as_ref().expect("pod securityContext");
        assert_eq!(psc.run_as_non_root, Some(true));
        assert!(psc.run_as_user.is_some_and(|u| u > 0), "{psc:?}");
        assert!(psc.run_as_group.is_some_and(|g| g > 0), "{psc:?}");
        assert!(psc.fs_group.is_some_and(|g| g > 0), "{psc:?}");
        assert_eq!(
            psc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
            Some("RuntimeDefault")
        );
        for c in &s.containers {
            let sc = c.security_context.as_ref().unwrap();
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            assert_eq!(sc.privileged, None);
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            let caps = sc.capabilities.as_ref().unwrap();
            assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
            assert_eq!(caps.add, None);
            // Nothing in the container overrides the pod's user back to root.
            assert!(sc.run_as_user.is_none_or(|u| u > 0));
            assert_ne!(sc.run_as_non_root, Some(false));
        }
        assert_eq!(s.host_pid, None);
        assert_eq!(s.host_network, None);
        assert!(s
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.host_path.is_none()));
    }

    /// Runs the reader's commands as local processes, with `/output` mapped to a
    /// directory: the same find/stat/tar command lines, real bytes, no websocket.
    pub struct LocalRemote {
        pub root: PathBuf,
        /// Cut the tar stream after this many bytes (a broken connection).
        pub cut_after: Option<usize>,
    }

    impl Remote for LocalRemote {
        fn exec(&self, argv: Vec<String>) -> BoxFuture<'_, Result<Exec>> {
            async move {
                let map = |a: &String| match a.strip_prefix(OUTPUT_DIR) {
                    Some(rest) => format!("{}{rest}", self.root.display()),
                    None => a.clone(),
                };
                let argv: Vec<String> = argv.iter().map(map).collect();
                let mut child = tokio::process::Command::new(&argv[0])
                    .args(&argv[1..])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| fail(format!("spawn {}: {e}", argv[0])))?;
                let stdout = child.stdout.take().unwrap();
                let stderr = child.stderr.take().unwrap();
                let root = format!("{}", self.root.display());
                // Paths printed by find come back as the pod would print them.
                let stdout: Pin<Box<dyn AsyncRead + Send>> = if argv[0] == "find" {
                    let mut s = stdout;
                    let mut text = String::new();
                    s.read_to_string(&mut text).await.unwrap();
                    let text = text.replace(&root, OUTPUT_DIR);
                    Box::pin(std::io::Cursor::new(text.into_bytes()))
                } else if let Some(n) = self.cut_after {
                    Box::pin(stdout.take(n as u64))
                } else {
                    Box::pin(stdout)
                };
                Ok(Exec {
                    stdout,
                    stderr: Box::pin(stderr),
                    status: async move {
                        match child.wait().await {
                            Ok(s) if s.success() => Ok(()),
                            Ok(s) => Err(format!("command terminated with {s}")),
                            Err(e) => Err(e.to_string()),
                        }
                    }
                    .boxed(),
                    keep: Box::new(()),
                })
            }
            .boxed()
        }
    }

    fn pvc(sub: Option<&str>) -> PvcOutput {
        PvcOutput {
            claim: "traces".into(),
            subdir: sub.map(str::to_string),
        }
    }

    #[tokio::test]
    async fn read_runs_through_the_reader_commands() {
        let vol = tempfile::tempdir().unwrap();
        let root = vol.path().join("team-a");
        sample(&root);
        let remote = LocalRemote {
            root: vol.path().to_path_buf(),
            cut_after: None,
        };
        // --all-runs
        let (out, buf) = Out::buffer();
        read_runs(
            &remote,
            "abc",
            &pvc(Some("team-a")),
            Selection::All,
            Mode::Print { out, headers: true },
        )
        .await
        .unwrap();
        let text = buf.text();
        assert_eq!(text.matches("==> RUN ").count(), 2, "{text}");
        assert!(text.find("15-04-05Z").unwrap() < text.find("16-04-05Z").unwrap());
        // default: the latest run, no header
        let (out, buf) = Out::buffer();
        read_runs(
            &remote,
            "abc",
            &pvc(Some("team-a")),
            Selection::Latest,
            Mode::Print {
                out,
                headers: false,
            },
        )
        .await
        .unwrap();
        assert_eq!(buf.text(), "Attaching 1 probe...\npartial line\n");
        // --run 1 -O DIR
        let dest = tempfile::tempdir().unwrap();
        read_runs(
            &remote,
            "abc",
            &pvc(Some("team-a")),
            Selection::Nth(1),
            Mode::Download {
                dir: dest.path().join("dl"),
            },
        )
        .await
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(dest.path().join("dl/2026-11-25T15-04-05Z/output.txt"))
                .unwrap(),
            "Attaching 1 probe...\n@[bash]: 3\n"
        );
        assert!(!dest.path().join("dl/2026-11-25T16-04-05Z").exists());
        // unknown trace
        let e = read_runs(
            &remote,
            "nope",
            &pvc(Some("team-a")),
            Selection::All,
            Mode::Print {
                out: Out::buffer().0,
                headers: true,
            },
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("no output of trace nope on claim traces (pvc:traces/team-a)"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn broken_stream_names_what_is_missing() {
        let vol = tempfile::tempdir().unwrap();
        let mut noise = String::new();
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            noise.push_str(&format!("{x:016x}\n"));
        }
        make_runs(
            vol.path(),
            "abc",
            &[
                ("2026-01-01T00-00-00Z", &"x".repeat(100), None),
                ("2026-01-02T00-00-00Z", &noise, None),
            ],
        );
        let remote = LocalRemote {
            root: vol.path().to_path_buf(),
            cut_after: Some(20_000),
        };
        let dest = tempfile::tempdir().unwrap();
        let e = read_runs(
            &remote,
            "abc",
            &pvc(None),
            Selection::All,
            Mode::Download {
                dir: dest.path().to_path_buf(),
            },
        )
        .await
        .unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("partial download: the stream ended early"),
            "{e}"
        );
        assert!(e.contains("2026-01-02T00-00-00Z/output.txt"), "{e}");
        assert_eq!(crate::errors::Error::Failed(e).exit_code(), 1);
    }
}
