//! The [`Printer`] trait: one method per kind of output a run produces, so the runtime
//! picks the output format once and never matches on it again. [`TextPrinter`] prints
//! bpftrace 0.17's text output and [`JsonPrinter`] its `-f json` records, byte for byte
//! what the free `write_*` functions of this crate print (they are the implementations'
//! internals). Each method writes the run's stdout to `out`; the few outputs bpftrace sends
//! to stderr (helper-error warnings in text mode) go to `err`, which the caller writes out
//! after flushing what `out` holds, so the two streams stay in order.

use std::io::{self, Write};

use crate::{
    write_attached_json, write_attached_text, write_exit_maps_json, write_exit_maps_text,
    write_lost_events_json, write_lost_events_text, write_map_json_top_div, write_map_text_top_div,
    write_message_json_bytes, write_value_json, write_value_text, MapDump, Val,
};

/// A value that prints itself in both formats (a compiled object's BTF-typed events and
/// map entries).
pub trait Record {
    /// The text form, without a newline.
    fn text(&self) -> String;
    /// The JSON form, without a newline.
    fn json(&self) -> String;
    /// The text form as a map key (inside `@name[...]`).
    fn key_text(&self) -> String;
    /// The key as a JSON object key: a string literal, quotes included.
    fn key_json(&self) -> String;
}

/// A compiled object's map at exit.
pub struct RecordMap<'a> {
    /// `@name`.
    pub name: String,
    /// `name` as a JSON string literal, quotes included.
    pub name_json: String,
    /// A one-entry array: printed without its key.
    pub keyless: bool,
    /// (key, value), in print order.
    pub entries: Vec<(&'a dyn Record, &'a dyn Record)>,
}

/// The output of a run in one format.
pub trait Printer {
    /// "Attaching N probes..." (or its JSON record).
    fn attached(&self, out: &mut dyn Write, err: &mut dyn Write, n: usize) -> io::Result<()>;

    /// Text printed by an action (`printf`, `time`, `cat`, `system`): as is, or under JSON
    /// a record of type `kind` (bpftrace's "printf", "time", "cat", "syscall").
    fn message(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()>;

    /// A line printed by the runtime (`join`, the watchpoint "out of registers" notice):
    /// as is, or under JSON a record of type `kind` whose data drops the final newline.
    fn line(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()>;

    /// `print(@m, top, div)`.
    fn map(&self, out: &mut dyn Write, map: &MapDump, top: u32, div: u32) -> io::Result<()>;

    /// `print(value)`.
    fn value(&self, out: &mut dyn Write, value: &Val) -> io::Result<()>;

    /// Every map at exit, in name order.
    fn exit_maps(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        maps: &[MapDump],
    ) -> io::Result<()>;

    /// The count of events dropped because the ring buffer was full.
    fn lost(&self, out: &mut dyn Write, n: u64) -> io::Result<()>;

    /// A BPF helper that failed at run time: the text `warning` (on stderr), or under JSON
    /// the `json` record (on stdout, with its newline).
    fn helper_error(
        &self,
        out: &mut dyn Write,
        err: &mut dyn Write,
        json: &str,
        warning: &str,
    ) -> io::Result<()>;

    /// One event of a compiled object: its fields, or `{"type": "event", "data": ...}`.
    fn event(&self, out: &mut dyn Write, record: &dyn Record) -> io::Result<()>;

    /// A compiled object's maps at exit: text `@name[KEY]: VALUE` lines after a blank
    /// line pair, or one `{"type": "map", ...}` record a map; nothing without maps.
    fn record_maps(&self, out: &mut dyn Write, maps: &[RecordMap<'_>]) -> io::Result<()>;
}

/// bpftrace's text output.
#[derive(Debug, Default, Clone, Copy)]
pub struct TextPrinter;

/// bpftrace's `-f json` output: one record a line.
#[derive(Debug, Default, Clone, Copy)]
pub struct JsonPrinter;

impl Printer for TextPrinter {
    fn attached(&self, out: &mut dyn Write, _err: &mut dyn Write, n: usize) -> io::Result<()> {
        write_attached_text(out, n)
    }
    fn message(&self, out: &mut dyn Write, _kind: &str, text: &[u8]) -> io::Result<()> {
        out.write_all(text)
    }
    fn line(&self, out: &mut dyn Write, _kind: &str, text: &[u8]) -> io::Result<()> {
        out.write_all(text)
    }
    fn map(&self, out: &mut dyn Write, map: &MapDump, top: u32, div: u32) -> io::Result<()> {
        write_map_text_top_div(out, map, top, div)
    }
    fn value(&self, out: &mut dyn Write, value: &Val) -> io::Result<()> {
        write_value_text(out, value)
    }
    fn exit_maps(
        &self,
        out: &mut dyn Write,
        _err: &mut dyn Write,
        maps: &[MapDump],
    ) -> io::Result<()> {
        write_exit_maps_text(out, maps)
    }
    fn lost(&self, out: &mut dyn Write, n: u64) -> io::Result<()> {
        write_lost_events_text(out, n)
    }
    fn helper_error(
        &self,
        _out: &mut dyn Write,
        err: &mut dyn Write,
        _json: &str,
        warning: &str,
    ) -> io::Result<()> {
        err.write_all(warning.as_bytes())
    }
    fn event(&self, out: &mut dyn Write, record: &dyn Record) -> io::Result<()> {
        writeln!(out, "{}", record.text())
    }
    fn record_maps(&self, out: &mut dyn Write, maps: &[RecordMap<'_>]) -> io::Result<()> {
        if maps.is_empty() {
            return Ok(());
        }
        out.write_all(b"\n\n")?;
        for m in maps {
            for (k, v) in &m.entries {
                if m.keyless {
                    writeln!(out, "{}: {}", m.name, v.text())?;
                } else {
                    writeln!(out, "{}[{}]: {}", m.name, k.key_text(), v.text())?;
                }
            }
        }
        Ok(())
    }
}

impl Printer for JsonPrinter {
    fn attached(&self, out: &mut dyn Write, _err: &mut dyn Write, n: usize) -> io::Result<()> {
        write_attached_json(out, n)
    }
    fn message(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()> {
        write_message_json_bytes(out, kind, text)
    }
    fn line(&self, out: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()> {
        write_message_json_bytes(out, kind, text.strip_suffix(b"\n").unwrap_or(text))
    }
    fn map(&self, out: &mut dyn Write, map: &MapDump, top: u32, div: u32) -> io::Result<()> {
        write_map_json_top_div(out, map, top, div)
    }
    fn value(&self, out: &mut dyn Write, value: &Val) -> io::Result<()> {
        write_value_json(out, value)
    }
    fn exit_maps(
        &self,
        out: &mut dyn Write,
        _err: &mut dyn Write,
        maps: &[MapDump],
    ) -> io::Result<()> {
        write_exit_maps_json(out, maps)
    }
    fn lost(&self, out: &mut dyn Write, n: u64) -> io::Result<()> {
        write_lost_events_json(out, n)
    }
    fn helper_error(
        &self,
        out: &mut dyn Write,
        _err: &mut dyn Write,
        json: &str,
        _warning: &str,
    ) -> io::Result<()> {
        out.write_all(json.as_bytes())
    }
    fn event(&self, out: &mut dyn Write, record: &dyn Record) -> io::Result<()> {
        writeln!(out, "{{\"type\": \"event\", \"data\": {}}}", record.json())
    }
    fn record_maps(&self, out: &mut dyn Write, maps: &[RecordMap<'_>]) -> io::Result<()> {
        for m in maps {
            let data = if m.keyless {
                m.entries
                    .first()
                    .map_or_else(|| "0".to_string(), |(_, v)| v.json())
            } else {
                let items: Vec<String> = m
                    .entries
                    .iter()
                    .map(|(k, v)| format!("{}: {}", k.key_json(), v.json()))
                    .collect();
                format!("{{{}}}", items.join(", "))
            };
            writeln!(
                out,
                "{{\"type\": \"map\", \"data\": {{{}: {data}}}}}",
                m.name_json
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Entry, EntryValue};
    use trace_lang::types::{MapValue, Type};

    macro_rules! fixture {
        ($name:literal, $ext:literal) => {
            &include_bytes!(concat!(
                "../../trace-runner/tests/fixtures/output/",
                $name,
                ".",
                $ext
            ))[..]
        };
    }

    /// Calls to a printer, writing to (stdout, stderr).
    type Steps<'a> = &'a dyn Fn(&dyn Printer, &mut Vec<u8>, &mut Vec<u8>);

    /// What `steps` print through `p`: (stdout, stderr).
    fn run(p: &dyn Printer, steps: Steps<'_>) -> (String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        steps(p, &mut out, &mut err);
        (
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    /// Run `steps` through both printers and compare stdout with the fixture's
    /// `.txt` and `.json`; nothing goes to stderr.
    fn check(steps: Steps<'_>, txt: &[u8], json: &[u8]) {
        let text = run(&TextPrinter, steps);
        assert_eq!(text.0, String::from_utf8_lossy(txt), "text output differs");
        assert_eq!(text.1, "", "text stderr");
        let js = run(&JsonPrinter, steps);
        assert_eq!(js.0, String::from_utf8_lossy(json), "json output differs");
        assert_eq!(js.1, "", "json stderr");
    }

    fn keyless(name: &str, value: MapValue, v: Val) -> MapDump {
        MapDump {
            name: name.into(),
            value,
            entries: vec![Entry {
                key: vec![],
                value: EntryValue::Scalar(v),
            }],
        }
    }

    #[test]
    fn misc_fixture_attached_message_value_map_exit_maps() {
        let x = keyless(
            "x",
            MapValue::Value(Type::Int {
                bytes: 8,
                signed: true,
            }),
            Val::Int(1),
        );
        check(
            &|p, out, err| {
                p.attached(out, err, 1).unwrap();
                p.message(out, "printf", b"% 5|100%%\n").unwrap();
                p.message(out, "printf", b"%d|\n").unwrap();
                p.value(out, &Val::Int(5)).unwrap();
                p.value(out, &Val::Str("str".into())).unwrap();
                let t = Val::Tuple(vec![Val::Int(1), Val::Str("a".into()), Val::Int(-3)]);
                p.value(out, &t).unwrap();
                p.value(out, &Val::Int(-7)).unwrap();
                p.map(out, &x, 0, 0).unwrap();
                p.exit_maps(out, err, std::slice::from_ref(&x)).unwrap();
            },
            fixture!("misc", "txt"),
            fixture!("misc", "json"),
        );
    }

    #[test]
    fn utf_fixture_messages_are_byte_exact() {
        check(
            &|p, out, err| {
                p.attached(out, err, 1).unwrap();
                p.message(out, "printf", b"\xc3\xa9\x01\x7f|\r\n").unwrap();
                p.message(out, "printf", b"\xc8|\n").unwrap();
                let m = MapDump {
                    name: "m".into(),
                    value: MapValue::Value(Type::Int {
                        bytes: 8,
                        signed: true,
                    }),
                    entries: vec![Entry {
                        key: vec![Val::Str("é".into())],
                        value: EntryValue::Scalar(Val::Int(1)),
                    }],
                };
                let n = keyless("n", MapValue::Value(Type::Str(64)), Val::Str("\x02".into()));
                p.exit_maps(out, err, &[m, n]).unwrap();
            },
            fixture!("utf", "txt"),
            fixture!("utf", "json"),
        );
    }

    #[test]
    fn topdiv_fixture_map_with_top_and_div() {
        let c = MapDump {
            name: "c".into(),
            value: MapValue::Count,
            entries: (1..=3)
                .map(|k| Entry {
                    key: vec![Val::Int(k)],
                    value: EntryValue::Scalar(Val::Uint(k as u64)),
                })
                .collect(),
        };
        let (text, _) = run(&TextPrinter, &|p, out, _| p.map(out, &c, 2, 2).unwrap());
        let (json, _) = run(&JsonPrinter, &|p, out, _| p.map(out, &c, 2, 2).unwrap());
        let txt = String::from_utf8_lossy(fixture!("topdiv", "txt"));
        let js = String::from_utf8_lossy(fixture!("topdiv", "json"));
        assert_eq!(text, "@c[2]: 1\n@c[3]: 1\n");
        assert!(txt.contains(&format!("probe...\n{text}")), "{txt}");
        assert!(js.contains(&json), "{js} lacks {json}");
    }

    #[test]
    fn lost_events() {
        assert_eq!(
            run(&TextPrinter, &|p, o, _| p.lost(o, 3).unwrap()).0,
            "Lost 3 events\n"
        );
        assert_eq!(
            run(&JsonPrinter, &|p, o, _| p.lost(o, 3).unwrap()).0,
            "{\"type\": \"lost_events\", \"data\": {\"events\": 3}}\n"
        );
    }

    #[test]
    fn helper_error_goes_to_stderr_in_text_and_stdout_in_json() {
        let steps = |p: &dyn Printer, o: &mut Vec<u8>, e: &mut Vec<u8>| {
            p.helper_error(o, e, "{\"type\": \"helper_error\"}\n", "WARNING: x\n")
                .unwrap()
        };
        assert_eq!(
            run(&TextPrinter, &steps),
            (String::new(), "WARNING: x\n".into())
        );
        assert_eq!(
            run(&JsonPrinter, &steps),
            ("{\"type\": \"helper_error\"}\n".into(), String::new())
        );
    }

    #[test]
    fn line_drops_one_final_newline_in_json_only() {
        let steps = |p: &dyn Printer, o: &mut Vec<u8>, _: &mut Vec<u8>| {
            p.line(o, "join", b"a b\n").unwrap()
        };
        assert_eq!(run(&TextPrinter, &steps).0, "a b\n");
        assert_eq!(
            run(&JsonPrinter, &steps).0,
            "{\"type\": \"join\", \"data\": \"a b\"}\n"
        );
    }

    #[test]
    fn message_kinds_and_escapes() {
        let steps = |p: &dyn Printer, o: &mut Vec<u8>, _: &mut Vec<u8>| {
            p.message(o, "printf", b"tab\there \"q\" back\\slash\n")
                .unwrap();
            p.message(o, "syscall", b"x\n").unwrap();
        };
        assert_eq!(
            run(&TextPrinter, &steps).0,
            "tab\there \"q\" back\\slash\nx\n"
        );
        let json = run(&JsonPrinter, &steps).0;
        let special = String::from_utf8_lossy(fixture!("special", "json"));
        let first = json.lines().next().unwrap();
        assert!(special.contains(first), "{special} lacks {first}");
        assert!(json.ends_with("{\"type\": \"syscall\", \"data\": \"x\\n\"}\n"));
    }

    struct Ev;
    impl Record for Ev {
        fn text(&self) -> String {
            "a=1 b=2".into()
        }
        fn json(&self) -> String {
            "{\"a\": 1, \"b\": 2}".into()
        }
        fn key_text(&self) -> String {
            "k \"1\"".into()
        }
        fn key_json(&self) -> String {
            "\"k \\\"1\\\"\"".into()
        }
    }

    #[test]
    fn record_maps_text_and_json() {
        let maps = [
            RecordMap {
                name: "@k".into(),
                name_json: "\"@k\"".into(),
                keyless: false,
                entries: vec![(&Ev as &dyn Record, &Ev as &dyn Record)],
            },
            RecordMap {
                name: "@one".into(),
                name_json: "\"@one\"".into(),
                keyless: true,
                entries: vec![(&Ev as &dyn Record, &Ev as &dyn Record)],
            },
            RecordMap {
                name: "@none".into(),
                name_json: "\"@none\"".into(),
                keyless: true,
                entries: vec![],
            },
        ];
        assert_eq!(
            run(&TextPrinter, &|p, o, _| p.record_maps(o, &maps).unwrap()).0,
            "\n\n@k[k \"1\"]: a=1 b=2\n@one: a=1 b=2\n"
        );
        assert_eq!(
            run(&JsonPrinter, &|p, o, _| p.record_maps(o, &maps).unwrap()).0,
            "{\"type\": \"map\", \"data\": {\"@k\": {\"k \\\"1\\\"\": {\"a\": 1, \"b\": 2}}}}\n\
             {\"type\": \"map\", \"data\": {\"@one\": {\"a\": 1, \"b\": 2}}}\n\
             {\"type\": \"map\", \"data\": {\"@none\": 0}}\n"
        );
        for p in [&TextPrinter as &dyn Printer, &JsonPrinter] {
            assert_eq!(run(p, &|p, o, _| p.record_maps(o, &[]).unwrap()).0, "");
        }
    }

    #[test]
    fn event_records() {
        assert_eq!(
            run(&TextPrinter, &|p, o, _| p.event(o, &Ev).unwrap()).0,
            "a=1 b=2\n"
        );
        assert_eq!(
            run(&JsonPrinter, &|p, o, _| p.event(o, &Ev).unwrap()).0,
            "{\"type\": \"event\", \"data\": {\"a\": 1, \"b\": 2}}\n"
        );
    }
}
