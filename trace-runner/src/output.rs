//! TEMPORARY STUB written by the lead so the crate compiles; the output helper overwrites this file entirely.
use std::io::{self, Write};
use trace_lang::types::MapValue;
pub enum Val { Int(i64), Uint(u64), Str(String), Tuple(Vec<Val>), Sym(String) }
pub struct MapDump { pub name: String, pub value: MapValue, pub entries: Vec<Entry> }
pub struct Entry { pub key: Vec<Val>, pub value: EntryValue }
pub enum EntryValue { Scalar(Val), Avg { count: u64, total: i64 }, Stats { count: u64, total: i64 }, Hist(Vec<u64>), Lhist(Vec<u64>) }
fn v(x: &Val) -> String { match x { Val::Int(i) => i.to_string(), Val::Uint(u) => u.to_string(), Val::Str(s) | Val::Sym(s) => s.clone(), Val::Tuple(t) => t.iter().map(v).collect::<Vec<_>>().join(", ") } }
pub fn write_map_text(w: &mut dyn Write, m: &MapDump) -> io::Result<()> {
    for e in &m.entries {
        let key = if e.key.is_empty() { String::new() } else { format!("[{}]", e.key.iter().map(v).collect::<Vec<_>>().join(", ")) };
        let val = match &e.value { EntryValue::Scalar(x) => v(x), EntryValue::Avg{count,total} => (if *count==0 {0} else {total / *count as i64}).to_string(), EntryValue::Stats{count,total} => format!("count {count}, total {total}"), EntryValue::Hist(c) | EntryValue::Lhist(c) => format!("{c:?}") };
        writeln!(w, "@{}{}: {}", m.name, key, val)?;
    }
    writeln!(w)
}
pub fn write_map_json(w: &mut dyn Write, m: &MapDump) -> io::Result<()> { write_map_text(w, m) }
pub fn format_printf(fmt: &str, args: &[Val]) -> String { let mut s = fmt.to_string(); for a in args { s = s.replacen("%d", &v(a), 1).replacen("%s", &v(a), 1); } s }
pub fn write_printf_json(w: &mut dyn Write, t: &str) -> io::Result<()> { writeln!(w, "{t:?}") }
pub fn write_attached_json(w: &mut dyn Write, n: usize) -> io::Result<()> { writeln!(w, "{n}") }
pub fn format_time(_f: &str) -> String { String::new() }
