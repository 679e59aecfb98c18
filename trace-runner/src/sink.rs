//! Where a trace's output goes: stdout as bpftrace's text or as newline-delimited
//! JSON, optionally mirrored line by line into a file.

use std::fs::File;
use std::io::{self, Write};

use crate::output::{self, MapDump};

/// Output format chosen with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

pub struct Sink {
    format: Format,
    stdout: io::Stdout,
    /// A persisted copy (`--output-dir`), flushed after every write.
    file: Option<File>,
}

impl Sink {
    pub fn new(format: Format, file: Option<File>) -> Sink {
        Sink { format, stdout: io::stdout(), file }
    }

    fn emit(&mut self, bytes: &[u8]) {
        let mut out = self.stdout.lock();
        let _ = out.write_all(bytes);
        let _ = out.flush();
        if let Some(f) = &mut self.file {
            let _ = f.write_all(bytes);
            let _ = f.flush();
        }
    }

    pub fn printf(&mut self, text: &str) {
        let mut buf = Vec::new();
        match self.format {
            Format::Text => buf.extend_from_slice(text.as_bytes()),
            Format::Json => {
                let _ = output::write_printf_json(&mut buf, text);
            }
        }
        self.emit(&buf);
    }

    pub fn map(&mut self, map: &MapDump) {
        let mut buf = Vec::new();
        let _ = match self.format {
            Format::Text => output::write_map_text(&mut buf, map),
            Format::Json => output::write_map_json(&mut buf, map),
        };
        self.emit(&buf);
    }

    /// "Attaching N probes..." (stderr in text mode, a JSON record otherwise).
    pub fn attached(&mut self, n: usize) {
        match self.format {
            Format::Text => eprintln!("Attaching {n} probe{}...", if n == 1 { "" } else { "s" }),
            Format::Json => {
                let mut buf = Vec::new();
                let _ = output::write_attached_json(&mut buf, n);
                self.emit(&buf);
            }
        }
    }

    /// A line of our own on stderr (and in the persisted file).
    pub fn note(&mut self, text: &str) {
        eprintln!("{text}");
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{text}");
            let _ = f.flush();
        }
    }
}
