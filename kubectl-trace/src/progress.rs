//! User feedback while waiting: an indicatif spinner with elapsed time when stderr is a
//! terminal, plain one-line state changes otherwise (CI logs, pipes). Also the shared,
//! line-atomic output sink that several log streams write to.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// A spinner (on a terminal) or quiet state-change lines (elsewhere).
pub struct Progress {
    bar: Option<ProgressBar>,
    last: String,
    quiet: bool,
}

impl Progress {
    /// A spinner when stderr is a terminal.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {msg} [{elapsed}]")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            last: String::new(),
            quiet: false,
        }
    }

    /// Show the current state; without a terminal only changes are printed.
    pub fn set(&mut self, msg: &str) {
        if msg == self.last {
            return;
        }
        self.last = msg.to_string();
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Print a note above the spinner.
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None if !self.quiet => eprintln!("{msg}"),
            None => {}
        }
    }

    /// Remove the spinner.
    pub fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Where trace output goes: stdout, or a buffer in tests. Writes are whole lines, and
/// a spinner on stderr is hidden while they are written. A runner's machine-readable
/// maps line (`--merge`, see [`crate::merge`]) is never shown: it goes to the collector,
/// if there is one.
#[derive(Clone)]
pub struct Out {
    sink: Arc<Mutex<Box<dyn Write + Send>>>,
    bar: Arc<Mutex<Option<ProgressBar>>>,
    maps: Option<crate::merge::Collector>,
}

impl Out {
    pub fn stdout() -> Self {
        Out {
            sink: Arc::new(Mutex::new(Box::new(std::io::stdout()))),
            bar: Arc::default(),
            maps: None,
        }
    }

    /// Hide this progress' spinner while writing.
    pub fn follow_progress(&self, p: &Progress) {
        *self.bar.lock().unwrap_or_else(|e| e.into_inner()) = p.bar.clone();
    }

    /// An in-memory sink and a handle to read it back.
    #[cfg(test)]
    pub fn buffer() -> (Self, SharedBuf) {
        let buf = SharedBuf::default();
        (
            Out {
                sink: Arc::new(Mutex::new(Box::new(buf.clone()))),
                bar: Arc::default(),
                maps: None,
            },
            buf,
        )
    }

    /// The same output, with the maps lines handed to `collector`.
    pub fn with_maps(&self, collector: &crate::merge::Collector) -> Self {
        Out {
            maps: Some(collector.clone()),
            ..self.clone()
        }
    }

    /// Whether `line` is a maps line (then taken, not shown).
    fn took_maps(&self, prefix: &str, line: &str) -> bool {
        if crate::merge::maps_payload(line).is_none() {
            return false;
        }
        if let Some(c) = &self.maps {
            c.add(prefix, line.trim_end_matches(['\n', '\r']));
        }
        true
    }

    /// Write text as is (it should end with a newline).
    pub fn write(&self, text: &str) {
        if self.took_maps("", text) {
            return;
        }
        let write = || {
            let mut s = self.sink.lock().unwrap_or_else(|p| p.into_inner());
            let _ = s.write_all(text.as_bytes());
            let _ = s.flush();
        };
        let bar = self.bar.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(b) if !b.is_finished() => b.suspend(write),
            _ => write(),
        }
    }

    /// Write one line, with an optional prefix.
    pub fn line(&self, prefix: &str, line: &str) {
        if self.took_maps(prefix, line) {
            return;
        }
        self.write(&format!("{prefix}{line}\n"));
    }
}

/// A clonable in-memory writer.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

#[cfg(test)]
impl SharedBuf {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[cfg(test)]
impl Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
