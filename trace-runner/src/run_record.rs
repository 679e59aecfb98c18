//! The setup every run shares, script or compiled object, around its trace: the output
//! [`Sink`] with the printer chosen once from `--format` (stdout, and with `--output-dir`
//! the persisted copy) and the run's record on the output volume (`meta.json` written as
//! `running` before the trace, its end recorded after it), so that the runner's exit
//! status and `meta.json` always agree.

use std::path::Path;
use std::time::SystemTime;

use trace_contract::exit;

use crate::abi::UserMap;
use crate::folded::FoldedPrinter;
use crate::output::{JsonPrinter, Printer, TextPrinter};
use crate::persist::{self, RunDir, RunMeta};
use crate::sink::{Format, Sink};

/// A failure: message and exit code.
pub(crate) type Failed = (String, u8);

/// Where and what a run records (`--output-dir`, `--trace-id`, `--target`).
pub(crate) struct RecordSpec<'a> {
    /// `--output-dir` and `--trace-id`: persist the output under DIR/ID/<run>/.
    pub(crate) persist: Option<(&'a Path, &'a str)>,
    /// What is traced, for `meta.json` (default `node/<node>`).
    pub(crate) target: Option<&'a str>,
    /// What `meta.json`'s `script_sha256` digests: the script text or the object's bytes.
    pub(crate) program: &'a [u8],
    pub(crate) started: SystemTime,
}

/// The output of one run: print through [`Self::sink`], then [`Self::finish`].
pub(crate) struct RunOutput {
    pub(crate) sink: Sink,
    record: Option<(RunDir, RunMeta)>,
}

impl RunOutput {
    /// Create the run directory (if persisting) with a first `meta.json`, and the sink
    /// printing in `format` (`user_maps`: the script's maps, which `--format folded`
    /// folds; none for a compiled object).
    pub(crate) fn open(
        format: Format,
        user_maps: &[UserMap],
        spec: RecordSpec<'_>,
    ) -> Result<RunOutput, Failed> {
        let printer = printer(format, user_maps);
        let Some((base, id)) = spec.persist else {
            return Ok(RunOutput {
                sink: Sink::new(printer, None),
                record: None,
            });
        };
        let dir = RunDir::create(base, id, spec.started).map_err(|e| {
            let why = if persist::is_disk_full(&e) {
                format!("the volume is full ({e})")
            } else {
                e.to_string()
            };
            (
                format!(
                    "error: cannot record this run under {}: {why}",
                    base.join(id).display()
                ),
                exit::FAILURE,
            )
        })?;
        let node = node_name();
        let target = spec
            .target
            .map_or_else(|| format!("node/{node}"), str::to_string);
        let mut meta = RunMeta::new(id, &target, &node, "", spec.started);
        meta.script_sha256 = persist::sha256_hex(spec.program);
        let _ = dir.replace_meta(&meta);
        let file = dir.output_file().map_err(|e| {
            (
                format!("error: cannot open the output file: {e}"),
                exit::FAILURE,
            )
        })?;
        Ok(RunOutput {
            sink: Sink::new(printer, Some(file)),
            record: Some((dir, meta)),
        })
    }

    /// The end of the run: flush, record how it ended in `meta.json`, and return the
    /// run's outcome, in which a persisted copy cut short (a full volume) fails a run
    /// that otherwise succeeded ([`persist::run_outcome`]).
    pub(crate) fn finish(mut self, result: Result<u64, Failed>) -> Result<(), Failed> {
        self.sink.flush();
        let Some((dir, mut meta)) = self.record else {
            return result.map(drop);
        };
        let file_error = self.sink.file_error.as_ref();
        dir.record_end(
            &mut meta,
            result
                .as_ref()
                .map(|lost| *lost)
                .map_err(|(msg, code)| (msg.as_str(), *code)),
            file_error,
        );
        persist::run_outcome(result, file_error, dir.path()).map(drop)
    }
}

/// The printer for `format`: the one place the output format is matched on.
fn printer(format: Format, user_maps: &[UserMap]) -> Box<dyn Printer> {
    match format {
        Format::Text => Box::new(TextPrinter),
        Format::Json => Box::new(JsonPrinter),
        Format::Folded => Box::new(FoldedPrinter::new(user_maps)),
    }
}

/// This node's name: `NODE_NAME` (set from the downward API in trace pods), else the
/// hostname.
fn node_name() -> String {
    std::env::var("NODE_NAME").unwrap_or_else(|_| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    })
}
