//! `--format folded`'s [`Printer`]: bpftrace's text output, except that "Attaching N
//! probes..." goes to stderr and, at exit, the maps that fold (see `flame.rs`) print as
//! folded stacks on stdout and every other map, in bpftrace's text, on stderr, so stdout
//! is a pure folded-stack stream for flamegraph.pl or inferno.

use std::io::{self, Write};

use crate::abi::UserMap;
use crate::flame::{folded_text, partition};
use crate::output::{MapDump, Printer, Record, RecordMap, TextPrinter, Val};

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
        let (folded, other) = partition(maps.iter().filter_map(|dump| {
            let map = self.user_maps.iter().find(|m| m.name == dump.name)?;
            Some((map, dump.clone()))
        }));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Entry, EntryValue};
    use trace_lang::types::{MapValue, Type};

    fn user_map(name: &str, keys: Vec<Type>, value: MapValue) -> UserMap {
        UserMap {
            name: name.into(),
            kernel_map: 0,
            keys,
            value,
            per_cpu: false,
            array: false,
        }
    }

    fn count(name: &str, entries: Vec<(Vec<Val>, u64)>) -> MapDump {
        MapDump {
            name: name.into(),
            value: MapValue::Count,
            entries: entries
                .into_iter()
                .map(|(key, n)| Entry {
                    key,
                    value: EntryValue::Scalar(Val::Uint(n)),
                })
                .collect(),
        }
    }

    fn print(
        p: &dyn Printer,
        f: impl Fn(&dyn Printer, &mut Vec<u8>, &mut Vec<u8>),
    ) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        f(p, &mut out, &mut err);
        (
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn exit_maps_fold_on_stdout_and_print_the_rest_as_text_on_stderr() {
        let str_key = Type::Str(16);
        let int_key = Type::Int {
            bytes: 8,
            signed: true,
        };
        let p = FoldedPrinter::new(&[
            user_map("a", vec![str_key], MapValue::Count),
            user_map("b", vec![int_key], MapValue::Count),
            user_map("z", vec![], MapValue::Count),
        ]);
        let maps = [
            count(
                "a",
                vec![
                    (vec![Val::Str("y".into())], 1),
                    (vec![Val::Str("x;1".into())], 2),
                ],
            ),
            count("b", vec![(vec![Val::Int(7)], 4)]),
            count("z", vec![(vec![], 5)]),
        ];
        let (out, err) = print(&p, |p, o, e| p.exit_maps(o, e, &maps).unwrap());
        assert_eq!(out, "@a;x:1 2\n@a;y 1\n@b;7 4\n");
        assert_eq!(err, "\n\n@z: 5\n");
    }

    #[test]
    fn attached_goes_to_stderr_and_the_rest_prints_as_text() {
        let p = FoldedPrinter::new(&[]);
        assert_eq!(
            print(&p, |p, o, e| p.attached(o, e, 2).unwrap()),
            (String::new(), "Attaching 2 probes...\n".into())
        );
        let (out, err) = print(&p, |p, o, _| {
            p.message(o, "printf", b"hi\n").unwrap();
            p.line(o, "join", b"a b\n").unwrap();
            p.value(o, &Val::Int(3)).unwrap();
            p.lost(o, 2).unwrap();
        });
        assert_eq!(out, "hi\na b\n3\nLost 2 events\n");
        assert_eq!(err, "");
    }
}
