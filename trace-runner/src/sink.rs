//! Where a trace's output goes: stdout, formatted by the run's one `Printer` (bpftrace's
//! text, newline-delimited JSON or folded stacks), optionally mirrored into a file. Output
//! is batched: the event loop calls [`Sink::flush`] after each batch of events (one write
//! per batch instead of one per printf, which is what keeps up with millions of events a
//! second), and stdout and the persisted copy are flushed together, so the file always
//! holds what was printed.

use std::fs::File;
use std::io::{self, Write};

use crate::output::{self, MapDump, Printer, Record, RecordMap};

/// Output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// bpftrace's text output.
    Text,
    /// bpftrace's `-f json` records, one per line.
    Json,
    /// Text, but stack maps print at exit as folded stacks (for flamegraph.pl or inferno).
    Folded,
}

pub struct Sink {
    /// How each kind of output is formatted.
    printer: Box<dyn Printer>,
    stdout: io::Stdout,
    /// A persisted copy (`--output-dir`), flushed with stdout.
    file: Option<File>,
    /// Output not yet written.
    pending: Vec<u8>,
    /// The first error writing the persisted copy (after it, the copy stops).
    pub file_error: Option<io::Error>,
    /// With `-o FILE` (stdout redirected): the original stdout, which gets the blank lines
    /// before the maps at exit, as bpftrace's `-o` leaves them there.
    pub exit_separator_fd: Option<i32>,
}

impl Sink {
    pub fn new(printer: Box<dyn Printer>, file: Option<File>) -> Sink {
        Sink {
            printer,
            stdout: io::stdout(),
            file,
            pending: Vec::new(),
            file_error: None,
            exit_separator_fd: None,
        }
    }

    fn emit(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        if self.pending.len() >= 1 << 16 {
            self.flush();
        }
    }

    /// Write out everything emitted so far, to stdout and to the persisted copy.
    pub fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let bytes = std::mem::take(&mut self.pending);
        let mut out = self.stdout.lock();
        let _ = out.write_all(&bytes);
        let _ = out.flush();
        drop(out);
        self.persist(&bytes);
        self.pending = bytes;
        self.pending.clear();
    }

    fn persist(&mut self, bytes: &[u8]) {
        let Some(f) = &mut self.file else { return };
        if let Err(e) = f.write_all(bytes).and_then(|_| f.flush()) {
            let what = if crate::persist::is_disk_full(&e) {
                "the output volume is full"
            } else {
                "cannot write the output volume"
            };
            eprintln!(
                "error: {what} ({e}): the persisted output is truncated here; stdout continues"
            );
            self.file = None;
            self.file_error = Some(e);
        }
    }

    /// Print through the printer: what it writes to `out` goes to stdout (batched), what
    /// it writes to `err` to stderr, after stdout is flushed, so the two stay in order.
    fn print(
        &mut self,
        f: impl FnOnce(&dyn Printer, &mut dyn Write, &mut dyn Write) -> io::Result<()>,
    ) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let _ = f(&*self.printer, &mut out, &mut err);
        if !err.is_empty() {
            self.flush();
            let _ = io::stderr().write_all(&err);
        }
        self.emit(&out);
    }

    /// printf output, byte-exact (it may hold bytes that are not UTF-8).
    pub fn printf_bytes(&mut self, text: &[u8]) {
        self.message_bytes("printf", text);
    }

    /// Text printed by an action: as is, or under `-f json` a record of type `kind`
    /// (bpftrace's "printf", "time", "cat", "syscall" for system()).
    pub fn message_bytes(&mut self, kind: &str, text: &[u8]) {
        self.print(|p, out, _| p.message(out, kind, text));
    }

    /// A line the runtime prints (`join`, watchpoint notices): as is, or under `-f json` a
    /// record of type `kind` without the final newline.
    pub fn line(&mut self, kind: &str, text: &[u8]) {
        self.print(|p, out, _| p.line(out, kind, text));
    }

    /// `print(@m, top, div)`.
    pub fn map(&mut self, map: &MapDump, top: u32, div: u32) {
        self.print(|p, out, _| p.map(out, map, top, div));
    }

    /// `print(value)`.
    pub fn value(&mut self, value: &output::Val) {
        self.print(|p, out, _| p.value(out, value));
    }

    /// "Attaching N probes..." (on stdout, as bpftrace 0.17 prints it).
    pub fn attached(&mut self, n: usize) {
        self.print(|p, out, err| p.attached(out, err, n));
    }

    /// Every map at exit, in name order, as bpftrace prints them.
    pub fn exit_maps(&mut self, maps: &[MapDump]) {
        let mut buf = Vec::new();
        let mut err = Vec::new();
        let _ = self.printer.exit_maps(&mut buf, &mut err, maps);
        if !err.is_empty() {
            self.flush();
            let _ = io::stderr().write_all(&err);
        }
        if let (Some(fd), Some(rest)) = (self.exit_separator_fd, buf.strip_prefix(b"\n\n")) {
            self.flush();
            crate::sys::stdio::write_raw(fd, b"\n\n");
            self.emit(rest);
            return;
        }
        self.emit(&buf);
    }

    /// The count of events dropped because the ring buffer was full.
    pub fn lost(&mut self, n: u64) {
        self.print(|p, out, _| p.lost(out, n));
    }

    /// A BPF helper that failed at run time (its JSON record and its text warning).
    pub fn helper_error(&mut self, json: &str, warning: &str) {
        self.print(|p, out, err| p.helper_error(out, err, json, warning));
    }

    /// One event of a compiled object.
    pub fn event(&mut self, record: &dyn Record) {
        self.print(|p, out, _| p.event(out, record));
    }

    /// A compiled object's maps at exit.
    pub fn record_maps(&mut self, maps: &[RecordMap<'_>]) {
        self.print(|p, out, _| p.record_maps(out, maps));
    }

    /// Bytes that are the same in every format (the `--emit-maps` line).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.emit(bytes);
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush();
    }
}
