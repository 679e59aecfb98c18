//! `--format folded`'s [`Printer`]: bpftrace's text output, except that "Attaching N
//! probes..." goes to stderr and, at exit, the maps that fold (see `flame.rs`) print as
//! folded stacks on stdout and every other map, in bpftrace's text, on stderr, so stdout
//! is a pure folded-stack stream for flamegraph.pl or inferno.

use std::io::{self, Write};

use crate::abi::UserMap;
use crate::flame::{fold_map, folded_text};
use crate::output::{MapDump, Printer, Record, RecordMap, TextPrinter, Val};

// `flame::print_maps_folded` is superseded by `FoldedPrinter::exit_maps`. flame.rs is being
// changed on another branch at the same time, so the old function is deleted after that
// merge; until then this keeps it from failing `-D warnings` as dead code.
#[allow(dead_code)]
const _SUPERSEDED: fn(&[UserMap], Vec<(usize, MapDump)>, &mut crate::sink::Sink) =
    crate::flame::print_maps_folded;

/// The folded printer of a script whose maps are `user_maps`.
pub struct FoldedPrinter {
    user_maps: Vec<UserMap>,
}

impl FoldedPrinter {
    pub fn new(user_maps: &[UserMap]) -> FoldedPrinter {
        FoldedPrinter {
            user_maps: user_maps.to_vec(),
        }
    }
}

impl Printer for FoldedPrinter {
    fn attached(&self, _out: &mut dyn Write, err: &mut dyn Write, n: usize) -> io::Result<()> {
        TextPrinter.attached(err, &mut io::sink(), n)
    }
    fn message(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()> {
        TextPrinter.message(out, kind, text)
    }
    fn line(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()> {
        TextPrinter.line(out, kind, text)
    }
    fn map(&self, out: &mut dyn Write, map: &MapDump, top: u32, div: u32) -> io::Result<()> {
        TextPrinter.map(out, map, top, div)
    }
    fn value(&self, out: &mut dyn Write, value: &Val) -> io::Result<()> {
        TextPrinter.value(out, value)
    }
    /// `maps` in name order: the folded ones on `out`, the others as text on `err`.
    fn exit_maps(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        maps: &[MapDump],
    ) -> io::Result<()> {
        let (mut folded, mut other) = (Vec::new(), Vec::new());
        for dump in maps {
            let Some(map) = self.user_maps.iter().find(|m| m.name == dump.name) else {
                continue;
            };
            match fold_map(map, dump) {
                Some(f) => folded.push(f),
                None => other.push(dump.clone()),
            }
        }
        if !other.is_empty() {
            TextPrinter.exit_maps(err, &mut io::sink(), &other)?;
        }
        out.write_all(folded_text(&folded).as_bytes())
    }
    fn lost(&self, out: &mut dyn Write, n: u64) -> io::Result<()> {
        TextPrinter.lost(out, n)
    }
    fn helper_error(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        json: &str,
        warning: &str,
    ) -> io::Result<()> {
        TextPrinter.helper_error(out, err, json, warning)
    }
    fn event(&self, out: &mut dyn Write, record: &dyn Record) -> io::Result<()> {
        TextPrinter.event(out, record)
    }
    fn record_maps(&self, out: &mut dyn Write, maps: &[RecordMap<'_>]) -> io::Result<()> {
        TextPrinter.record_maps(out, maps)
    }
}
