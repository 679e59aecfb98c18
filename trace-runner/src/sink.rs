//! Where a trace's output goes: stdout as bpftrace's text or as newline-delimited
//! JSON, optionally mirrored into a file. Output is batched: the event loop calls
//! [`Sink::flush`] after each batch of events (one write per batch instead of one per
//! printf, which is what keeps up with millions of events a second), and stdout and the
//! persisted copy are flushed together, so the file always holds what was printed.

use std::fs::File;
use std::io::{self, Write};

use crate::output::{self, MapDump};

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
    format: Format,
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
    pub fn new(format: Format, file: Option<File>) -> Sink {
        Sink {
            format,
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

    pub fn printf(&mut self, text: &str) {
        self.printf_bytes(text.as_bytes());
    }

    /// printf output, byte-exact (it may hold bytes that are not UTF-8).
    pub fn printf_bytes(&mut self, text: &[u8]) {
        self.message_bytes("printf", text);
    }

    /// Text printed by an action: as is, or under `-f json` a record of type `kind`
    /// (bpftrace's "printf", "time", "cat", "syscall" for system(), "join").
    pub fn message_bytes(&mut self, kind: &str, text: &[u8]) {
        let mut buf = Vec::new();
        match self.format {
            Format::Text | Format::Folded => buf.extend_from_slice(text),
            Format::Json => {
                let _ = output::write_message_json_bytes(&mut buf, kind, text);
            }
        }
        self.emit(&buf);
    }

    /// `print(@m, top, div)`.
    pub fn map(&mut self, map: &MapDump, top: u32, div: u32) {
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Text | Format::Folded => {
                output::write_map_text_top_div(&mut buf, map, top, div)
            }
            Format::Json => output::write_map_json_top_div(&mut buf, map, top, div),
        };
        self.emit(&buf);
    }

    /// `print(value)`.
    pub fn value(&mut self, value: &output::Val) {
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Text | Format::Folded => output::write_value_text(&mut buf, value),
            Format::Json => output::write_value_json(&mut buf, value),
        };
        self.emit(&buf);
    }

    /// "Attaching N probes..." (on stdout, as bpftrace 0.17 prints it).
    pub fn attached(&mut self, n: usize) {
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Folded => {
                // On stderr: stdout stays a pure folded-stack stream.
                let _ = output::write_attached_text(&mut buf, n);
                eprint!("{}", String::from_utf8_lossy(&buf));
                return;
            }
            Format::Text => output::write_attached_text(&mut buf, n),
            Format::Json => output::write_attached_json(&mut buf, n),
        };
        self.emit(&buf);
    }

    /// Every map at exit, in name order, as bpftrace prints them.
    pub fn exit_maps(&mut self, maps: &[MapDump]) {
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Text | Format::Folded => output::write_exit_maps_text(&mut buf, maps),
            Format::Json => output::write_exit_maps_json(&mut buf, maps),
        };
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
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Text | Format::Folded => output::write_lost_events_text(&mut buf, n),
            Format::Json => output::write_lost_events_json(&mut buf, n),
        };
        self.emit(&buf);
    }

    /// Bytes already formatted for the chosen format (compiled-object records and maps).
    pub fn raw(&mut self, bytes: &[u8]) {
        self.emit(bytes);
    }

    /// The output format.
    pub fn format(&self) -> Format {
        self.format
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.flush();
    }
}
