//! bpftrace 0.17's output, shared by `trace-runner` and the `kubectl-trace` plugin: typed map
//! values ([`MapDump`], [`Entry`], [`EntryValue`], [`Val`]), the hist/lhist bucket functions
//! ([`buckets`]) and their labels, exactly the text bpftrace prints or its `-f json` lines
//! (the [`Printer`] trait: [`TextPrinter`], [`JsonPrinter`]), the C printf engine
//! (`printf.rs`), the machine-readable form of a run's final maps ([`wire`], to and from
//! `trace_contract::maps`) and the merging
//! of several runs' maps into one ([`merge`]). Pure: no aya, no kube, no libc; the only I/O is
//! writing to the `&mut dyn Write` the caller passes.
//!
//! Every rule here was checked against bpftrace 0.17.0 (`src/output.cpp`, `src/bpftrace.cpp`,
//! `src/format_string.cpp`, `src/ast/codegen_llvm.cpp`) and against the real binary; the
//! captured outputs live in `trace-runner/tests/fixtures/output/` (`NAME.bt` is the program,
//! `NAME.txt` / `NAME.json` what `bpftrace NAME.bt` / `bpftrace -f json NAME.bt` printed) and
//! the unit tests below reproduce them byte for byte.
//!
//! # Bucket indexes (the BPF code must compute exactly these)
//!
//! `hist(v)`, see [`hist_index`] (bpftrace's `log2` helper; `v` is a signed 64-bit value):
//!
//! | index      | values                                    | text label          |
//! |------------|-------------------------------------------|---------------------|
//! | 0          | `v < 0`                                   | `(..., 0)`          |
//! | 1          | `v == 0`                                  | `[0]`               |
//! | 2          | `v == 1`                                  | `[1]`               |
//! | `k + 2`    | `2^k <= v < 2^(k+1)`, `1 <= k <= 30`      | `[2^k, 2^(k+1))`    |
//! | 33         | every `v >= 2^31` (bpftrace 0.17 caps the shift loop at 31) | `[2G, 4G)` |
//!
//! So the index is at most 33 ([`HIST_MAX_INDEX`]); the BPF side may compute it as
//! `v < 0 ? 0 : v == 0 ? 1 : 2 + min(63 - clz(v), 31)`, or with bpftrace's own loop
//! `r = 2; for s in [16, 8, 4, 2, 1] { b = (v >= 1 << s) ? s : 0; v >>= b; r += b }`.
//!
//! `lhist(v, min, max, step)`, see [`lhist_index`] (signed 64-bit compares and division):
//! `v < min` → 0; `v > max` → `1 + (max - min) / step`; otherwise `1 + (v - min) / step`.
//! With `buckets = (max - min) / step`, index `buckets + 1` is printed as `[max, ...)`
//! (so when `max - min` is not a multiple of `step`, values in `[min + buckets*step, max]`
//! land there too, as in bpftrace), and indexes `1..=buckets` as `[min + (i-1)*step, min + i*step)`.
//! [`lhist_buckets`] gives the number of indexes (`buckets + 2`).
//!
//! [`EntryValue::Hist`] / [`EntryValue::Lhist`] hold the counts by index; missing trailing
//! indexes count as 0.
//!
//! # Map printing rules (bpftrace 0.17)
//!
//! * Maps print at exit in byte order of their names (`@` first, then `@A`, `@_x`, `@a`, ...),
//!   after a `"\n\n"` that bpftrace writes in both text and JSON mode ([`write_exit_maps_text`]).
//! * count / sum / min / max / integer-valued maps: sorted by value ascending (signed or
//!   unsigned as the value). Other plain values (strings, tuples, symbols): sorted by key,
//!   integer key parts compared as unsigned 64-bit numbers, strings bytewise.
//! * avg / stats maps: sorted by the average (`total / count`, truncating, 0 when count is 0).
//!   hist / lhist maps: sorted by the sum of all buckets.
//! * Ties: bpftrace sorts avg/stats/hist maps out of a `std::map` ordered by the raw key bytes
//!   (little-endian integers, NUL-padded strings), so ties come out in that byte order (`0`,
//!   `256`, `1`, `2`, `-1`); this module breaks every tie that way. (For count/sum/... maps
//!   bpftrace's tie order follows the kernel hash-map iteration and is not reproducible.)
//! * Text layout: `@name[k1, k2]: value`, one per line, then one `"\n"` after the map (so no
//!   blank line); avg/stats maps get a blank line after them; each histogram is
//!   `@name[k]: ` + newline + its lines, with a blank line after each histogram. An empty map
//!   still prints its trailing newline(s). Values of ksym/usym maps are concatenated without
//!   newline (bpftrace's delimiter quirk).
//! * JSON: one line per map, `{"type": "map"|"hist"|"stats", "data": {"@name": ...}}`; keyed
//!   maps nest `{"k1,k2": value, ...}`; empty maps print nothing.

pub mod buckets;
pub mod merge;
pub mod printer;
mod printf;
pub mod stack;
pub mod wire;

pub use printer::{JsonPrinter, Printer, Record, RecordMap, TextPrinter};
pub use printf::{format_printf, format_printf_bytes};
pub use stack::{Frame, Stack, Symbol};

use std::cmp::Ordering;
use std::io::{self, Write};

use trace_lang::types::{MapValue, Type};

/// A decoded key part or value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Val {
    Int(i64),
    Uint(u64),
    /// A string; printing stops at the first NUL, like bpftrace's `strnlen`.
    Str(String),
    Tuple(Vec<Val>),
    /// A C array: `[1,2,3]`.
    Array(Vec<Val>),
    /// A struct, members by name: `{ .m = 2, .n = 3 }` (`{.m=2,.n=3}` in a key).
    Struct(Vec<(String, Val)>),
    /// Already-symbolized probe name / ksym / usym; printed like a string.
    Sym(String),
    /// A `kstack`/`ustack`: printed as [`Stack::render`] with 4 spaces of indent as a map
    /// key part, 8 elsewhere; sorted and compared by that text.
    Stack(Stack),
}

/// One map as read from the kernel, CPUs already summed/merged by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDump {
    /// The name as written without '@' ("" for `@`).
    pub name: String,
    pub value: MapValue,
    /// In any order (for plain non-integer values, bpftrace's sort is stable, so ties keep
    /// this order).
    pub entries: Vec<Entry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Empty for a keyless map.
    pub key: Vec<Val>,
    pub value: EntryValue,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryValue {
    /// count, sum, min, max and plain values.
    Scalar(Val),
    Avg {
        count: u64,
        total: i64,
    },
    Stats {
        count: u64,
        total: i64,
    },
    /// Counts by [`hist_index`].
    Hist(Vec<u64>),
    /// Counts by [`lhist_index`].
    Lhist(Vec<u64>),
}

// ---------------------------------------------------------------------------------------------
// Maps
// ---------------------------------------------------------------------------------------------

pub use buckets::{hist_index, lhist_buckets, lhist_index, HIST_MAX_INDEX};

/// What bpftrace prints for `print(@m)` and for each map at exit.
pub fn write_map_text(w: &mut dyn Write, map: &MapDump) -> io::Result<()> {
    write_map_text_top_div(w, map, 0, 0)
}

/// `print(@m, top, div)`: `top` > 0 keeps only the last `top` entries of the sorted order
/// (not applied to stats maps), `div` > 0 divides the printed values (not for stats and lhist;
/// for hist only the counts, not the bars), as bpftrace 0.17 does.
pub fn write_map_text_top_div(
    w: &mut dyn Write,
    map: &MapDump,
    top: u32,
    div: u32,
) -> io::Result<()> {
    let div = if div == 0 { 1 } else { div };
    let name = format!("@{}", map.name);
    let mut out = String::new();
    match &map.value {
        MapValue::Hist | MapValue::Lhist { .. } => {
            let elems: Vec<String> = top_slice(sorted_hist(map), top)
                .iter()
                .map(|e| {
                    let body = match (&map.value, &e.value) {
                        (MapValue::Lhist { min, max, step }, _) => {
                            lhist_text(hist_counts(&e.value), *min, *max, *step)
                        }
                        _ => hist_text(hist_counts(&e.value), div),
                    };
                    format!("{}{}: \n{}", name, key_text(&e.key), body)
                })
                .collect();
            out.push_str(&elems.join("\n"));
            out.push('\n');
        }
        MapValue::Avg | MapValue::Stats => {
            let is_avg = map.value == MapValue::Avg;
            let sorted = sorted_stats(map);
            let sel = if is_avg {
                top_slice(sorted, top)
            } else {
                sorted
            };
            let elems: Vec<String> = sel
                .iter()
                .map(|e| {
                    let (count, total) = stats_parts(&e.value);
                    let value = if is_avg {
                        (average(count, total).wrapping_div(i64::from(div))).to_string()
                    } else {
                        format!(
                            "count {}, average {}, total {}",
                            count,
                            average(count, total),
                            total
                        )
                    };
                    format!("{}{}: {}", name, key_text(&e.key), value)
                })
                .collect();
            out.push_str(&elems.join("\n"));
            out.push_str("\n\n");
        }
        _ => {
            let ty = value_type(&map.value);
            let elems: Vec<String> = top_slice(sorted_scalar(map), top)
                .iter()
                .map(|e| {
                    let v = match &e.value {
                        EntryValue::Scalar(v) => val_text(v, ty, div),
                        other => other_value_text(other),
                    };
                    format!("{}{}: {}", name, key_text(&e.key), v)
                })
                .collect();
            let delim = match ty {
                Some(Type::Ksym) | Some(Type::Usym) => "",
                _ => "\n",
            };
            out.push_str(&elems.join(delim));
            out.push('\n');
        }
    }
    w.write_all(out.as_bytes())
}

/// bpftrace `-f json` shape of `print(@m)` / the exit print, one line (nothing for an empty map).
pub fn write_map_json(w: &mut dyn Write, map: &MapDump) -> io::Result<()> {
    write_map_json_top_div(w, map, 0, 0)
}

/// [`write_map_json`] with `print(@m, top, div)` semantics (see [`write_map_text_top_div`]).
pub fn write_map_json_top_div(
    w: &mut dyn Write,
    map: &MapDump,
    top: u32,
    div: u32,
) -> io::Result<()> {
    if map.entries.is_empty() {
        return Ok(());
    }
    let div = if div == 0 { 1 } else { div };
    let keyed = map.entries.iter().any(|e| !e.key.is_empty());
    let (kind, elems): (&str, Vec<String>) = match &map.value {
        MapValue::Hist | MapValue::Lhist { .. } => {
            let elems = top_slice(sorted_hist(map), top)
                .iter()
                .map(|e| {
                    let body = match &map.value {
                        MapValue::Lhist { min, max, step } => {
                            lhist_json(hist_counts(&e.value), *min, *max, *step)
                        }
                        _ => hist_json(hist_counts(&e.value), div),
                    };
                    json_keyval(&e.key, &body)
                })
                .collect();
            ("hist", elems)
        }
        MapValue::Avg | MapValue::Stats => {
            let is_avg = map.value == MapValue::Avg;
            let sorted = sorted_stats(map);
            let sel = if is_avg {
                top_slice(sorted, top)
            } else {
                sorted
            };
            let elems = sel
                .iter()
                .map(|e| {
                    let (count, total) = stats_parts(&e.value);
                    let value = if is_avg {
                        (average(count, total).wrapping_div(i64::from(div))).to_string()
                    } else {
                        format!(
                            "{{\"count\": {}, \"average\": {}, \"total\": {}}}",
                            count,
                            average(count, total),
                            total
                        )
                    };
                    json_keyval(&e.key, &value)
                })
                .collect();
            ("stats", elems)
        }
        _ => {
            let ty = value_type(&map.value);
            let elems = top_slice(sorted_scalar(map), top)
                .iter()
                .map(|e| {
                    let v = match &e.value {
                        EntryValue::Scalar(v) => val_json(v, ty, div),
                        other => other_value_text(other),
                    };
                    json_keyval(&e.key, &v)
                })
                .collect();
            ("map", elems)
        }
    };
    let mut out = format!(
        "{{\"type\": \"{}\", \"data\": {{\"{}\": ",
        kind,
        json_escape(&format!("@{}", map.name))
    );
    if keyed {
        out.push('{');
    }
    out.push_str(&elems.join(", "));
    if keyed {
        out.push('}');
    }
    out.push_str("}}\n");
    w.write_all(out.as_bytes())
}

/// What bpftrace prints at exit in text mode: `"\n\n"`, then every map in name order.
pub fn write_exit_maps_text(w: &mut dyn Write, maps: &[MapDump]) -> io::Result<()> {
    w.write_all(b"\n\n")?;
    for m in by_name(maps) {
        write_map_text(w, m)?;
    }
    Ok(())
}

/// What bpftrace prints at exit in JSON mode: `"\n\n"` (yes, also in JSON mode), then every
/// non-empty map in name order.
pub fn write_exit_maps_json(w: &mut dyn Write, maps: &[MapDump]) -> io::Result<()> {
    w.write_all(b"\n\n")?;
    for m in by_name(maps) {
        write_map_json(w, m)?;
    }
    Ok(())
}

fn by_name(maps: &[MapDump]) -> Vec<&MapDump> {
    let mut v: Vec<&MapDump> = maps.iter().collect();
    v.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    v
}

fn top_slice(v: Vec<&Entry>, top: u32) -> Vec<&Entry> {
    let top = top as usize;
    if top > 0 && v.len() > top {
        v[v.len() - top..].to_vec()
    } else {
        v
    }
}

fn value_type(mv: &MapValue) -> Option<&Type> {
    match mv {
        MapValue::Value(t) => Some(t),
        _ => None,
    }
}

fn hist_counts(v: &EntryValue) -> &[u64] {
    match v {
        EntryValue::Hist(c) | EntryValue::Lhist(c) => c,
        _ => &[],
    }
}

fn stats_parts(v: &EntryValue) -> (i64, i64) {
    match v {
        EntryValue::Avg { count, total } | EntryValue::Stats { count, total } => {
            (*count as i64, *total)
        }
        EntryValue::Scalar(Val::Int(i)) => (1, *i),
        EntryValue::Scalar(Val::Uint(u)) => (1, *u as i64),
        _ => (0, 0),
    }
}

fn average(count: i64, total: i64) -> i64 {
    if count != 0 {
        total.wrapping_div(count)
    } else {
        0
    }
}

fn other_value_text(v: &EntryValue) -> String {
    match v {
        EntryValue::Scalar(v) => val_text(v, None, 1),
        EntryValue::Avg { count, total } => average(*count as i64, *total).to_string(),
        EntryValue::Stats { count, total } => {
            total.wrapping_div((*count as i64).max(1)).to_string()
        }
        EntryValue::Hist(c) | EntryValue::Lhist(c) => c.iter().sum::<u64>().to_string(),
    }
}

// --- sorting -----------------------------------------------------------------------------

/// Order of the raw key bytes (little-endian integers, NUL-padded strings), part by part.
fn key_bytes_cmp(a: &[Val], b: &[Val]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = part_bytes_cmp(x, y);
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

fn part_bytes_cmp(a: &Val, b: &Val) -> Ordering {
    match (int_bits(a), int_bits(b)) {
        (Some(x), Some(y)) => x.to_le_bytes().cmp(&y.to_le_bytes()),
        _ => match (a, b) {
            (Val::Tuple(x), Val::Tuple(y)) | (Val::Array(x), Val::Array(y)) => key_bytes_cmp(x, y),
            (Val::Struct(x), Val::Struct(y)) => {
                let x: Vec<Val> = x.iter().map(|(_, v)| v.clone()).collect();
                let y: Vec<Val> = y.iter().map(|(_, v)| v.clone()).collect();
                key_bytes_cmp(&x, &y)
            }
            _ => str_bytes(a).cmp(&str_bytes(b)),
        },
    }
}

fn int_bits(v: &Val) -> Option<u64> {
    match v {
        Val::Int(i) => Some(*i as u64),
        Val::Uint(u) => Some(*u),
        _ => None,
    }
}

fn str_bytes(v: &Val) -> std::borrow::Cow<'_, [u8]> {
    match v {
        Val::Str(s) | Val::Sym(s) => until_nul(s.as_bytes()).into(),
        Val::Stack(st) => until_nul(st.render(stack::KEY_INDENT).as_bytes())
            .to_vec()
            .into(),
        _ => (&[][..]).into(),
    }
}

fn until_nul(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(n) => &b[..n],
        None => b,
    }
}

/// bpftrace's `sort_by_key`: integer parts as unsigned 64-bit, strings bytewise, other parts
/// not compared (the sort is stable).
fn sort_by_key_cmp(a: &[Val], b: &[Val]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let o = match (x, y) {
            (Val::Str(_), Val::Str(_)) => str_bytes(x).cmp(&str_bytes(y)),
            _ => match (int_bits(x), int_bits(y)) {
                (Some(p), Some(q)) => p.cmp(&q),
                _ => Ordering::Equal,
            },
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn scalar_num(v: &EntryValue) -> Option<i128> {
    match v {
        EntryValue::Scalar(Val::Int(i)) => Some(i128::from(*i)),
        EntryValue::Scalar(Val::Uint(u)) => Some(i128::from(*u)),
        _ => None,
    }
}

fn sorted_scalar(map: &MapDump) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = map.entries.iter().collect();
    let by_value = match &map.value {
        MapValue::Value(t) => t.is_int(),
        _ => true,
    };
    if by_value {
        v.sort_by(|a, b| {
            scalar_num(&a.value)
                .cmp(&scalar_num(&b.value))
                .then_with(|| key_bytes_cmp(&a.key, &b.key))
        });
    } else {
        v.sort_by(|a, b| sort_by_key_cmp(&a.key, &b.key));
    }
    v
}

fn sorted_hist(map: &MapDump) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = map.entries.iter().collect();
    v.sort_by(|a, b| key_bytes_cmp(&a.key, &b.key));
    let total = |e: &Entry| {
        hist_counts(&e.value)
            .iter()
            .fold(0u64, |s, &c| s.wrapping_add(c))
    };
    v.sort_by_key(|e| total(e));
    v
}

fn sorted_stats(map: &MapDump) -> Vec<&Entry> {
    let mut v: Vec<&Entry> = map.entries.iter().collect();
    v.sort_by(|a, b| key_bytes_cmp(&a.key, &b.key));
    v.sort_by_key(|e| {
        let (c, t) = stats_parts(&e.value);
        average(c, t)
    });
    v
}

// --- values and keys ----------------------------------------------------------------------

/// `[k1, k2]` (empty for a keyless map).
fn key_text(key: &[Val]) -> String {
    if key.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = key.iter().map(key_part_text).collect();
    format!("[{}]", parts.join(", "))
}

/// One key part as bpftrace prints it in `@m[...]`: structs compactly, `{.m=2,.n=3}`.
fn key_part_text(v: &Val) -> String {
    match v {
        Val::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(n, x)| format!(".{n}={}", key_part_text(x)))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Val::Array(items) => {
            let parts: Vec<String> = items.iter().map(key_part_text).collect();
            format!("[{}]", parts.join(","))
        }
        Val::Stack(st) => st.render(stack::KEY_INDENT),
        v => val_text(v, None, 1),
    }
}

fn json_keyval(key: &[Val], val: &str) -> String {
    if key.is_empty() {
        return val.to_string();
    }
    let parts: Vec<String> = key.iter().map(key_part_text).collect();
    format!("\"{}\": {}", json_escape(&parts.join(",")), val)
}

fn tuple_elem_type(ty: Option<&Type>, i: usize) -> Option<&Type> {
    match ty {
        Some(Type::Tuple(ts)) => ts.get(i),
        _ => None,
    }
}

/// bpftrace's `value_to_str` for text output.
fn val_text(v: &Val, ty: Option<&Type>, div: u32) -> String {
    match v {
        Val::Int(i) => i.wrapping_div(i64::from(div)).to_string(),
        // bpftrace 0.17 prints a pointer held as a value (not a key) as a signed
        // decimal: `@p = curtask` shows `@p: -131386560675840`.
        Val::Uint(u) if matches!(ty, Some(Type::Ptr { .. })) => (*u as i64).to_string(),
        Val::Uint(u) => (u / u64::from(div)).to_string(),
        Val::Str(s) | Val::Sym(s) => String::from_utf8_lossy(until_nul(s.as_bytes())).into_owned(),
        Val::Stack(st) => {
            String::from_utf8_lossy(until_nul(st.render(stack::VALUE_INDENT).as_bytes()))
                .into_owned()
        }
        Val::Tuple(items) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, x)| val_text(x, tuple_elem_type(ty, i), div))
                .collect();
            format!("({})", parts.join(", "))
        }
        Val::Array(items) => {
            let parts: Vec<String> = items.iter().map(|x| val_text(x, None, div)).collect();
            format!("[{}]", parts.join(","))
        }
        Val::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(n, x)| format!(".{n} = {}", val_text(x, None, div)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
    }
}

/// bpftrace's `JsonOutput::value_to_str`: strings and symbols quoted, tuples as arrays.
fn val_json(v: &Val, ty: Option<&Type>, div: u32) -> String {
    match v {
        Val::Str(_) | Val::Sym(_) | Val::Stack(_) => {
            format!("\"{}\"", json_escape(&val_text(v, ty, div)))
        }
        Val::Tuple(items) => {
            let parts: Vec<String> = items
                .iter()
                .enumerate()
                .map(|(i, x)| val_json(x, tuple_elem_type(ty, i), div))
                .collect();
            format!("[{}]", parts.join(","))
        }
        Val::Array(items) => {
            let parts: Vec<String> = items.iter().map(|x| val_json(x, None, div)).collect();
            format!("[{}]", parts.join(","))
        }
        Val::Struct(fields) => {
            let parts: Vec<String> = fields
                .iter()
                .map(|(n, x)| format!("\"{}\": {}", json_escape(n), val_json(x, None, div)))
                .collect();
            format!("{{ {} }}", parts.join(", "))
        }
        _ => val_text(v, ty, div),
    }
}

// --- histograms ---------------------------------------------------------------------------

fn at(values: &[u64], i: usize) -> u64 {
    values.get(i).copied().unwrap_or(0)
}

/// bpftrace's `hist_prepare` (with its `int` truncations): (first, last) non-empty index and
/// the largest count.
fn hist_prepare(values: &[u64]) -> Option<(usize, usize, i32)> {
    let mut min_index = None;
    let mut max_index = 0;
    let mut max_value = 0i32;
    for (i, &c) in values.iter().enumerate() {
        let v = c as i32;
        if v > 0 {
            min_index.get_or_insert(i);
            max_index = i;
        }
        if v > max_value {
            max_value = v;
        }
    }
    min_index.map(|m| (m, max_index, max_value))
}

fn bar(count: u64, max_value: i32) -> String {
    let width = (count as f32 / max_value as f32 * 52.0) as i32;
    "@".repeat(width.max(0) as usize)
}

fn hist_line(header: &str, count: u64, bar: &str) -> String {
    format!("{:<16}{:>8} |{:<52}|\n", header, count, bar)
}

fn hist_index_label(power: i32) -> String {
    let (power, suffix) = if power >= 40 {
        (power - 40, "T")
    } else if power >= 30 {
        (power - 30, "G")
    } else if power >= 20 {
        (power - 20, "M")
    } else if power >= 10 {
        (power - 10, "K")
    } else {
        (power, "")
    };
    format!("{}{}", 1i32.wrapping_shl(power as u32), suffix)
}

fn hist_text(values: &[u64], div: u32) -> String {
    let Some((min_index, max_index, max_value)) = hist_prepare(values) else {
        return String::new();
    };
    let mut res = String::new();
    for i in min_index..=max_index {
        let header = match i {
            0 => "(..., 0)".to_string(),
            1 => "[0]".to_string(),
            2 => "[1]".to_string(),
            _ => format!(
                "[{}, {})",
                hist_index_label(i as i32 - 2),
                hist_index_label(i as i32 - 1)
            ),
        };
        let c = at(values, i);
        res.push_str(&hist_line(&header, c / u64::from(div), &bar(c, max_value)));
    }
    res
}

fn hist_json(values: &[u64], div: u32) -> String {
    let Some((min_index, max_index, _)) = hist_prepare(values) else {
        return "[]".to_string();
    };
    let mut res = String::from("[");
    for i in min_index..=max_index {
        if i > min_index {
            res.push_str(", ");
        }
        res.push('{');
        match i {
            0 => res.push_str("\"max\": -1, "),
            1 => res.push_str("\"min\": 0, \"max\": 0, "),
            2 => res.push_str("\"min\": 1, \"max\": 1, "),
            _ => {
                // bpftrace 0.17 computes these in `int` (so index 33 prints -2147483648 / 0).
                let low = 1i32.wrapping_shl(i as u32 - 2);
                let high = 1i32.wrapping_shl(i as u32 - 1).wrapping_sub(1);
                res.push_str(&format!("\"min\": {}, \"max\": {}, ", low, high));
            }
        }
        res.push_str(&format!("\"count\": {}}}", at(values, i) / u64::from(div)));
    }
    res.push(']');
    res
}

fn lhist_index_label(number: i64) -> String {
    const KILO: i64 = 1024;
    const MEGA: i64 = 1048576;
    if number == 0 {
        "0".to_string()
    } else if number % MEGA == 0 {
        format!("{}M", number / MEGA)
    } else if number % KILO == 0 {
        format!("{}K", number / KILO)
    } else {
        number.to_string()
    }
}

/// bpftrace's `lhist_prepare`: (start, end, buckets, max_value), or None when all are 0.
fn lhist_prepare(
    values: &[u64],
    min: i64,
    max: i64,
    step: i64,
) -> Option<(usize, usize, i64, i32)> {
    let mut any = false;
    let mut max_value = 0i32;
    for &c in values {
        let v = c as i32;
        if v != 0 {
            any = true;
        }
        if v > max_value {
            max_value = v;
        }
    }
    if !any {
        return None;
    }
    let buckets = if step != 0 {
        max.wrapping_sub(min) / step
    } else {
        0
    };
    let mut start = None;
    let mut end = 0;
    for i in 0..=(buckets.max(-1) + 1) as usize {
        if at(values, i) > 0 {
            start.get_or_insert(i);
            end = i;
        }
    }
    Some((start.unwrap_or(0), end, buckets, max_value))
}

/// `i * step + min`, the lower bound of lhist index `i + 1`.
fn lhist_bound(i: i64, step: i64, min: i64) -> i64 {
    i.wrapping_mul(step).wrapping_add(min)
}

fn lhist_text(values: &[u64], min: i64, max: i64, step: i64) -> String {
    let Some((start, end, buckets, max_value)) = lhist_prepare(values, min, max, step) else {
        return String::new();
    };
    let mut res = String::new();
    for i in start..=end {
        let ii = i as i64;
        let header = if i == 0 {
            format!("(..., {})", lhist_index_label(min))
        } else if ii == buckets + 1 {
            format!("[{}, ...)", lhist_index_label(max))
        } else {
            format!(
                "[{}, {})",
                lhist_index_label(lhist_bound(ii - 1, step, min)),
                lhist_index_label(lhist_bound(ii, step, min))
            )
        };
        let c = at(values, i);
        res.push_str(&hist_line(&header, c, &bar(c, max_value)));
    }
    res
}

fn lhist_json(values: &[u64], min: i64, max: i64, step: i64) -> String {
    let Some((start, end, buckets, _)) = lhist_prepare(values, min, max, step) else {
        return "[]".to_string();
    };
    let mut res = String::from("[");
    for i in start..=end {
        let ii = i as i64;
        if i > start {
            res.push_str(", ");
        }
        res.push('{');
        if i == 0 {
            res.push_str(&format!("\"max\": {}, ", min.wrapping_sub(1)));
        } else if ii == buckets + 1 {
            res.push_str(&format!("\"min\": {}, ", max));
        } else {
            res.push_str(&format!(
                "\"min\": {}, \"max\": {}, ",
                lhist_bound(ii - 1, step, min),
                lhist_bound(ii, step, min).wrapping_sub(1)
            ));
        }
        res.push_str(&format!("\"count\": {}}}", at(values, i)));
    }
    res.push(']');
    res
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

/// bpftrace's `json_escape`, byte by byte. Quirk kept: bytes >= 0x80 (a signed `char` in C++)
/// come out as `\uffffffXX`.
pub fn json_escape(s: &str) -> String {
    json_escape_bytes(s.as_bytes())
}

/// [`json_escape`] for raw bytes (bpftrace output that is not UTF-8).
pub fn json_escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0..=0x1f => out.push_str(&format!("\\u{:04x}", b)),
            0x80..=0xff => out.push_str(&format!("\\u{:x}", b as i8 as i32)),
            _ => out.push(b as char),
        }
    }
    out
}

/// `{"type": "<kind>", "data": "<escaped text>"}` + newline: how bpftrace's JSON mode prints
/// `printf` ("printf"), `time` ("time"), `cat` ("cat"), `system` ("syscall") and `join`
/// ("join") output.
pub fn write_message_json(w: &mut dyn Write, kind: &str, text: &str) -> io::Result<()> {
    writeln!(
        w,
        "{{\"type\": \"{}\", \"data\": \"{}\"}}",
        kind,
        json_escape(text)
    )
}

/// JSON line for a `printf` (text mode prints the formatted text as is, no newline added).
pub fn write_printf_json(w: &mut dyn Write, text: &str) -> io::Result<()> {
    write_message_json(w, "printf", text)
}

/// [`write_printf_json`] for the raw bytes of [`format_printf_bytes`].
pub fn write_printf_json_bytes(w: &mut dyn Write, text: &[u8]) -> io::Result<()> {
    write_message_json_bytes(w, "printf", text)
}

/// [`write_message_json`] for raw bytes (output that may not be UTF-8).
pub fn write_message_json_bytes(w: &mut dyn Write, kind: &str, text: &[u8]) -> io::Result<()> {
    writeln!(
        w,
        "{{\"type\": \"{}\", \"data\": \"{}\"}}",
        kind,
        json_escape_bytes(text)
    )
}

/// JSON line for `time()`.
pub fn write_time_json(w: &mut dyn Write, text: &str) -> io::Result<()> {
    write_message_json(w, "time", text)
}

/// `Attaching 1 probe...` / `Attaching N probes...`.
pub fn write_attached_text(w: &mut dyn Write, n: usize) -> io::Result<()> {
    if n == 1 {
        writeln!(w, "Attaching {} probe...", n)
    } else {
        writeln!(w, "Attaching {} probes...", n)
    }
}

/// `{"type": "attached_probes", "data": {"probes": N}}`.
pub fn write_attached_json(w: &mut dyn Write, n: usize) -> io::Result<()> {
    writeln!(
        w,
        "{{\"type\": \"attached_probes\", \"data\": {{\"probes\": {}}}}}",
        n
    )
}

/// `Lost N events`.
pub fn write_lost_events_text(w: &mut dyn Write, n: u64) -> io::Result<()> {
    writeln!(w, "Lost {} events", n)
}

/// `{"type": "lost_events", "data": {"events": N}}`.
pub fn write_lost_events_json(w: &mut dyn Write, n: u64) -> io::Result<()> {
    writeln!(
        w,
        "{{\"type\": \"lost_events\", \"data\": {{\"events\": {}}}}}",
        n
    )
}

/// `print(expr)` of a non-map value: the value and a newline.
pub fn write_value_text(w: &mut dyn Write, v: &Val) -> io::Result<()> {
    writeln!(w, "{}", val_text(v, None, 1))
}

/// `{"type": "value", "data": V}` (strings quoted, tuples as arrays).
pub fn write_value_json(w: &mut dyn Write, v: &Val) -> io::Result<()> {
    writeln!(
        w,
        "{{\"type\": \"value\", \"data\": {}}}",
        val_json(v, None, 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(v: i64) -> Val {
        Val::Int(v)
    }
    fn s(v: &str) -> Val {
        Val::Str(v.to_string())
    }
    fn scalar(key: Vec<Val>, v: Val) -> Entry {
        Entry {
            key,
            value: EntryValue::Scalar(v),
        }
    }
    fn map(name: &str, value: MapValue, entries: Vec<Entry>) -> MapDump {
        MapDump {
            name: name.to_string(),
            value,
            entries,
        }
    }
    fn count(name: &str, entries: Vec<(Vec<Val>, u64)>) -> MapDump {
        map(
            name,
            MapValue::Count,
            entries
                .into_iter()
                .map(|(k, v)| scalar(k, Val::Uint(v)))
                .collect(),
        )
    }
    fn int_map(name: &str, mv: MapValue, entries: Vec<(Vec<Val>, i64)>) -> MapDump {
        map(
            name,
            mv,
            entries.into_iter().map(|(k, v)| scalar(k, i(v))).collect(),
        )
    }
    /// A hist map from the raw values, bucketed with `hist_index`.
    fn hist(name: &str, entries: Vec<(Vec<Val>, Vec<i64>)>) -> MapDump {
        let entries = entries
            .into_iter()
            .map(|(k, vs)| {
                let mut c = vec![0u64; HIST_MAX_INDEX + 1];
                for v in vs {
                    c[hist_index(v)] += 1;
                }
                Entry {
                    key: k,
                    value: EntryValue::Hist(c),
                }
            })
            .collect();
        map(name, MapValue::Hist, entries)
    }
    fn lhist(
        name: &str,
        (min, max, step): (i64, i64, i64),
        entries: Vec<(Vec<Val>, Vec<i64>)>,
    ) -> MapDump {
        let entries = entries
            .into_iter()
            .map(|(k, vs)| {
                let mut c = vec![0u64; lhist_buckets(min, max, step)];
                for v in vs {
                    c[lhist_index(v, min, max, step)] += 1;
                }
                Entry {
                    key: k,
                    value: EntryValue::Lhist(c),
                }
            })
            .collect();
        map(name, MapValue::Lhist { min, max, step }, entries)
    }
    fn stats(name: &str, avg: bool, entries: Vec<(Vec<Val>, Vec<i64>)>) -> MapDump {
        let entries = entries
            .into_iter()
            .map(|(k, vs)| {
                let count = vs.len() as u64;
                let total = vs.iter().sum();
                Entry {
                    key: k,
                    value: if avg {
                        EntryValue::Avg { count, total }
                    } else {
                        EntryValue::Stats { count, total }
                    },
                }
            })
            .collect();
        map(
            name,
            if avg { MapValue::Avg } else { MapValue::Stats },
            entries,
        )
    }

    /// Everything bpftrace prints for a BEGIN-only script: attach line, the printfs (text),
    /// the exit maps.
    fn whole(printfs: &[&str], maps: &[MapDump]) -> (String, String) {
        let mut t: Vec<u8> = Vec::new();
        let mut j: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 1).unwrap();
        write_attached_json(&mut j, 1).unwrap();
        for p in printfs {
            t.extend_from_slice(p.as_bytes());
            write_printf_json(&mut j, p).unwrap();
        }
        write_exit_maps_text(&mut t, maps).unwrap();
        write_exit_maps_json(&mut j, maps).unwrap();
        (String::from_utf8(t).unwrap(), String::from_utf8(j).unwrap())
    }

    macro_rules! fixture {
        ($name:literal) => {
            (
                &include_bytes!(concat!(
                    "../../trace-runner/tests/fixtures/output/",
                    $name,
                    ".txt"
                ))[..],
                &include_bytes!(concat!(
                    "../../trace-runner/tests/fixtures/output/",
                    $name,
                    ".json"
                ))[..],
            )
        };
    }

    fn check(got: (String, String), want: (&[u8], &[u8])) {
        assert_eq!(
            got.0,
            String::from_utf8_lossy(want.0),
            "text output differs"
        );
        assert_eq!(
            got.1,
            String::from_utf8_lossy(want.1),
            "json output differs"
        );
    }

    #[test]
    fn hist_index_matches_bpftrace_log2() {
        // Straight port of bpftrace 0.17's log2 helper.
        fn reference(v: i64) -> usize {
            if v < 0 {
                return 0;
            }
            if v == 0 {
                return 1;
            }
            let mut n = v as u64;
            let mut r = 2u64;
            for i in (0..=4).rev() {
                let shift = ((n as i64 >= 1i64 << (1 << i)) as u64) << i;
                n >>= shift;
                r += shift;
            }
            r as usize
        }
        let mut vals = vec![i64::MIN, -1, 0, 1, 2, 3, 4, 1023, 1024, i64::MAX];
        for k in 0..63 {
            vals.extend([(1i64 << k) - 1, 1i64 << k, (1i64 << k) + 1]);
        }
        for v in vals {
            assert_eq!(hist_index(v), reference(v), "v = {}", v);
        }
        assert_eq!(hist_index(1 << 40), HIST_MAX_INDEX);
    }

    #[test]
    fn lhist_index_rules() {
        assert_eq!(lhist_index(-1, 0, 100, 10), 0);
        assert_eq!(lhist_index(0, 0, 100, 10), 1);
        assert_eq!(lhist_index(99, 0, 100, 10), 10);
        assert_eq!(lhist_index(100, 0, 100, 10), 11);
        assert_eq!(lhist_index(i64::MAX, 0, 100, 10), 11);
        assert_eq!(lhist_index(100, 0, 105, 10), 11);
        assert_eq!(lhist_index(3, 10, 100, 10), 0);
        assert_eq!(lhist_buckets(0, 100, 10), 12);
    }

    #[test]
    fn fixture_brief() {
        let maps = vec![
            count("c", vec![(vec![i(1)], 1), (vec![i(2)], 2)]),
            hist("h", vec![(vec![], vec![0, 5, 1000, -1])]),
            lhist("l", (0, 100, 10), vec![(vec![], vec![5, 150])]),
            stats("s", false, vec![(vec![], vec![4, 8])]),
            stats("a", true, vec![(vec![], vec![3, 4])]),
            int_map("mn", MapValue::Min, vec![(vec![], 5)]),
            int_map("mx", MapValue::Max, vec![(vec![], 7)]),
            map(
                "str",
                MapValue::Value(Type::Str(64)),
                vec![scalar(vec![s("a")], s("hello"))],
            ),
            count("t", vec![(vec![i(1), s("x")], 1)]),
        ];
        check(whole(&[], &maps), fixture!("brief"));
    }

    #[test]
    fn fixture_empty_and_simple() {
        check(whole(&[], &[]), fixture!("empty"));
        check(whole(&["hi 5\n"], &[]), fixture!("printonly"));
        check(
            whole(&[], &[count("c", vec![(vec![], 1)])]),
            fixture!("onecount"),
        );
    }

    #[test]
    fn fixture_printcall() {
        let c = count("c", vec![(vec![i(1)], 1)]);
        let h = hist("h", vec![(vec![], vec![3])]);
        let st = stats("s", false, vec![(vec![], vec![3])]);
        let mut t: Vec<u8> = Vec::new();
        let mut j: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 1).unwrap();
        write_attached_json(&mut j, 1).unwrap();
        for m in [&c, &h, &st] {
            write_map_text(&mut t, m).unwrap();
            write_map_json(&mut j, m).unwrap();
        }
        t.extend_from_slice(b"after\n");
        write_printf_json(&mut j, "after\n").unwrap();
        let cleared: Vec<MapDump> = [c, h, st]
            .into_iter()
            .map(|mut m| {
                m.entries.clear();
                m
            })
            .collect();
        write_exit_maps_text(&mut t, &cleared).unwrap();
        write_exit_maps_json(&mut j, &cleared).unwrap();
        check(
            (String::from_utf8(t).unwrap(), String::from_utf8(j).unwrap()),
            fixture!("printcall"),
        );
    }

    #[test]
    fn fixture_hists() {
        let big = vec![
            1 << 31,
            1 << 32,
            1 << 33,
            1 << 40,
            1 << 50,
            1 << 62,
            i64::MAX,
            3,
            3,
        ];
        check(
            whole(&[], &[hist("h", vec![(vec![], big)])]),
            fixture!("histbig"),
        );
        let maps = vec![
            hist("h", vec![(vec![], vec![(1 << 32) - 1, 1 << 34, 1 << 60])]),
            hist("g", vec![(vec![], vec![1 << 30, (1 << 31) - 1])]),
        ];
        check(whole(&[], &maps), fixture!("histbig2"));
        let maps = vec![
            hist("n", vec![(vec![], vec![-5, -1])]),
            hist("o", vec![(vec![], vec![1])]),
            hist("z", vec![(vec![], vec![0, 0, 2])]),
            hist("k", vec![(vec![], vec![1023, 1024, 1024, 2047, 4096])]),
        ];
        check(whole(&[], &maps), fixture!("histsmall"));
        let maps = vec![
            hist(
                "h",
                vec![
                    (vec![i(1)], vec![5, 6]),
                    (vec![i(2)], vec![100]),
                    (vec![i(3)], vec![0, 0, 1]),
                ],
            ),
            lhist(
                "l",
                (0, 10, 1),
                vec![(vec![s("b")], vec![5]), (vec![s("a")], vec![7, 7])],
            ),
        ];
        check(whole(&[], &maps), fixture!("histk"));
    }

    #[test]
    fn fixture_lhists() {
        let maps = vec![lhist(
            "l",
            (0, 100, 25),
            vec![(vec![], vec![-50, -1, 0, 100, -9223372036854775807])],
        )];
        check(whole(&[], &maps), fixture!("lhneg"));
        let maps = vec![
            lhist(
                "l",
                (0, 2097152, 262144),
                vec![(vec![], vec![5000, 3000000])],
            ),
            lhist(
                "k",
                (1024, 4096, 1024),
                vec![(vec![], vec![2000, 1000, 5000])],
            ),
            lhist(
                "m",
                (1048576, 3145728, 1048576),
                vec![(vec![], vec![1048576, 1048575])],
            ),
        ];
        check(whole(&[], &maps), fixture!("lhk"));
        let maps = vec![lhist(
            "l",
            (0, 105, 10),
            vec![(vec![], vec![102, 106, 95, 105, 100])],
        )];
        check(whole(&[], &maps), fixture!("lhodd"));
        let maps = vec![
            lhist("l", (0, 100, 10), vec![(vec![], vec![30, 55, 55])]),
            lhist("b", (10, 100, 10), vec![(vec![], vec![3, 15])]),
            lhist("g", (0, 100, 10), vec![(vec![], vec![i64::MAX, 1 << 40])]),
        ];
        check(whole(&[], &maps), fixture!("lhmid"));
    }

    #[test]
    fn fixture_names_and_sorting() {
        let one = |n: &str, v: i64| int_map(n, MapValue::Value(Type::I64), vec![(vec![], v)]);
        let maps = vec![
            count("", vec![(vec![], 1)]),
            one("b", 1),
            one("A", 2),
            one("_x", 3),
            one("a1", 4),
            one("a", 5),
            one("Z9", 6),
        ];
        check(whole(&[], &maps), fixture!("names"));
        let maps = vec![count(
            "c",
            vec![
                (vec![i(1)], 5),
                (vec![i(5)], 1),
                (vec![i(-1)], 3),
                (vec![i(256)], 4),
                (vec![i(3)], 2),
            ],
        )];
        check(whole(&[], &maps), fixture!("cntsort"));
        let maps = vec![
            int_map(
                "s",
                MapValue::Sum,
                vec![
                    (vec![i(1)], -5),
                    (vec![i(2)], 3),
                    (vec![i(3)], -10),
                    (vec![i(4)], 0),
                ],
            ),
            map(
                "u",
                MapValue::Sum,
                vec![
                    scalar(vec![i(1)], Val::Uint(5)),
                    scalar(vec![i(2)], Val::Uint(1)),
                ],
            ),
        ];
        check(whole(&[], &maps), fixture!("sumneg"));
        // bpftrace 0.17 never creates max() entries for values <= 0: those come in empty.
        let maps = vec![
            int_map(
                "mn",
                MapValue::Min,
                vec![(vec![i(1)], 5), (vec![i(2)], -3), (vec![i(3)], 100)],
            ),
            int_map(
                "mx",
                MapValue::Max,
                vec![(vec![i(1)], 5), (vec![i(3)], 100)],
            ),
            int_map("mnneg", MapValue::Min, vec![(vec![], -7)]),
            int_map("mxneg", MapValue::Max, vec![]),
        ];
        check(whole(&[], &maps), fixture!("minmax"));
        let maps = vec![
            int_map(
                "i",
                MapValue::Value(Type::I64),
                vec![(vec![i(1)], 5), (vec![i(2)], -3), (vec![i(3)], 100)],
            ),
            map(
                "u",
                MapValue::Value(Type::U64),
                vec![
                    scalar(vec![i(1)], Val::Uint(u64::MAX)),
                    scalar(vec![i(2)], Val::Uint(7)),
                ],
            ),
            int_map(
                "w",
                MapValue::Value(Type::Int {
                    bytes: 4,
                    signed: true,
                }),
                vec![(vec![i(1)], -2), (vec![i(2)], 9)],
            ),
        ];
        check(whole(&[], &maps), fixture!("intvals"));
    }

    #[test]
    fn fixture_stats() {
        let maps = vec![
            stats(
                "a",
                true,
                vec![
                    (vec![i(1)], vec![10]),
                    (vec![i(2)], vec![2, 3]),
                    (vec![i(3)], vec![-4]),
                    (vec![i(4)], vec![7]),
                ],
            ),
            stats("b", true, vec![(vec![], vec![-7, 2])]),
        ];
        check(whole(&[], &maps), fixture!("avgk"));
        let maps = vec![stats(
            "s",
            false,
            vec![
                (vec![s("x")], vec![10]),
                (vec![s("y")], vec![2, 3]),
                (vec![s("z")], vec![-4]),
            ],
        )];
        check(whole(&[], &maps), fixture!("statsk"));
    }

    #[test]
    fn fixture_ties() {
        let keys = [1, 2, 256, -1, 0];
        let maps = vec![
            hist("h", keys.iter().map(|&k| (vec![i(k)], vec![5])).collect()),
            stats(
                "s",
                false,
                keys.iter().map(|&k| (vec![i(k)], vec![5])).collect(),
            ),
            hist(
                "hs",
                ["b", "a", "ab"]
                    .iter()
                    .map(|k| (vec![s(k)], vec![1]))
                    .collect(),
            ),
            stats(
                "a",
                true,
                [1, 513, 2].iter().map(|&k| (vec![i(k)], vec![5])).collect(),
            ),
        ];
        check(whole(&[], &maps), fixture!("ties"));
    }

    #[test]
    fn fixture_values() {
        let st = MapValue::Value(Type::Str(64));
        let maps = vec![
            map(
                "s",
                st.clone(),
                vec![
                    scalar(vec![s("b")], s("x")),
                    scalar(vec![s("a")], s("y")),
                    scalar(vec![s("ab")], s("z")),
                    scalar(vec![s("")], s("e")),
                ],
            ),
            map(
                "n",
                st.clone(),
                vec![
                    scalar(vec![i(3)], s("three")),
                    scalar(vec![i(-1)], s("neg")),
                    scalar(vec![i(10)], s("ten")),
                ],
            ),
            map(
                "m",
                st,
                vec![
                    scalar(vec![i(2), s("b")], s("q")),
                    scalar(vec![i(1), s("c")], s("r")),
                    scalar(vec![i(1), s("a")], s("s")),
                ],
            ),
        ];
        check(whole(&[], &maps), fixture!("strval"));
        let tt = MapValue::Value(Type::Tuple(vec![Type::I64, Type::Str(64)]));
        let maps = vec![
            map(
                "t",
                MapValue::Value(Type::Tuple(vec![Type::I64, Type::Str(64), Type::I64])),
                vec![scalar(vec![], Val::Tuple(vec![i(1), s("a"), i(-2)]))],
            ),
            map(
                "tk",
                tt,
                vec![
                    scalar(vec![i(2), s("b")], Val::Tuple(vec![i(3), s("c")])),
                    scalar(vec![i(1), s("z")], Val::Tuple(vec![i(4), s("d")])),
                    scalar(vec![i(1), s("a")], Val::Tuple(vec![i(5), s("e")])),
                ],
            ),
        ];
        check(whole(&[], &maps), fixture!("tupval"));
        let sym = |x: &str| Val::Sym(x.to_string());
        let maps = vec![
            count("p", vec![(vec![sym("BEGIN")], 1)]),
            map(
                "q",
                MapValue::Value(Type::Probe),
                vec![scalar(vec![], sym("BEGIN"))],
            ),
        ];
        check(whole(&[], &maps), fixture!("probek"));
        let maps = vec![
            map(
                "k",
                MapValue::Value(Type::Ksym),
                vec![scalar(vec![i(1)], sym("0")), scalar(vec![i(2)], sym("0x1"))],
            ),
            map(
                "u",
                MapValue::Value(Type::Usym),
                vec![scalar(vec![], sym("0"))],
            ),
            map(
                "p",
                MapValue::Value(Type::Probe),
                vec![
                    scalar(vec![i(1)], sym("BEGIN")),
                    scalar(vec![i(2)], sym("BEGIN")),
                ],
            ),
        ];
        check(whole(&[], &maps), fixture!("ksym"));
    }

    #[test]
    fn fixture_escapes() {
        let maps = vec![
            count("s", vec![(vec![s("a\"b\\c\td")], 1)]),
            map(
                "v",
                MapValue::Value(Type::Str(64)),
                vec![scalar(vec![], s("q\"x\n"))],
            ),
        ];
        let pf = format_printf("tab\there \"q\" back\\slash\n", &[]);
        check(whole(&[&pf], &maps), fixture!("special"));
        let maps = vec![
            count("m", vec![(vec![s("é")], 1)]),
            map(
                "n",
                MapValue::Value(Type::Str(64)),
                vec![scalar(vec![], s("\x02"))],
            ),
        ];
        let p1 = format_printf("é\x01\x7f|\r\n", &[]);
        // bpftrace writes the raw byte 200 for `%c` of 200: only the byte API can say that.
        let p2 = format_printf_bytes("%c|\n", &[i(200)]);
        assert_eq!(format_printf("%c|\n", &[i(200)]), "\u{fffd}|\n");
        let mut t: Vec<u8> = Vec::new();
        let mut j: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 1).unwrap();
        write_attached_json(&mut j, 1).unwrap();
        t.extend_from_slice(p1.as_bytes());
        write_printf_json(&mut j, &p1).unwrap();
        t.extend_from_slice(&p2);
        write_printf_json_bytes(&mut j, &p2).unwrap();
        write_exit_maps_text(&mut t, &maps).unwrap();
        write_exit_maps_json(&mut j, &maps).unwrap();
        let want = fixture!("utf");
        assert_eq!(t, want.0);
        assert_eq!(j, want.1);
    }

    #[test]
    fn fixture_zeroed() {
        let maps = vec![
            count("c", vec![(vec![i(1)], 0)]),
            map(
                "h",
                MapValue::Hist,
                vec![Entry {
                    key: vec![],
                    value: EntryValue::Hist(vec![0; 34]),
                }],
            ),
            stats("s", false, vec![(vec![], vec![])]),
            stats("a", true, vec![(vec![i(1)], vec![])]),
            map(
                "l",
                MapValue::Lhist {
                    min: 0,
                    max: 10,
                    step: 1,
                },
                vec![Entry {
                    key: vec![],
                    value: EntryValue::Lhist(vec![0; 12]),
                }],
            ),
        ];
        check(whole(&[], &maps), fixture!("zeroed"));
    }

    #[test]
    fn fixture_top_div() {
        let c = count("c", vec![(vec![i(1)], 1), (vec![i(2)], 2), (vec![i(3)], 3)]);
        let h = hist("h", vec![(vec![], vec![5, 5, 5, 100])]);
        let a = stats(
            "a",
            true,
            vec![
                (vec![i(1)], vec![10]),
                (vec![i(2)], vec![20]),
                (vec![i(3)], vec![30]),
            ],
        );
        let st = stats(
            "s",
            false,
            vec![
                (vec![i(1)], vec![10]),
                (vec![i(2)], vec![20]),
                (vec![i(3)], vec![30]),
            ],
        );
        let l = lhist("l", (0, 10, 1), vec![(vec![], vec![5, 5, 5])]);
        let mut t: Vec<u8> = Vec::new();
        let mut j: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 1).unwrap();
        write_attached_json(&mut j, 1).unwrap();
        for (m, top, div) in [
            (&c, 2, 2),
            (&h, 0, 2),
            (&a, 2, 10),
            (&st, 2, 10),
            (&l, 0, 2),
        ] {
            write_map_text_top_div(&mut t, m, top, div).unwrap();
            write_map_json_top_div(&mut j, m, top, div).unwrap();
        }
        let cleared: Vec<MapDump> = [c, h, a, st, l]
            .into_iter()
            .map(|mut m| {
                m.entries.clear();
                m
            })
            .collect();
        write_exit_maps_text(&mut t, &cleared).unwrap();
        write_exit_maps_json(&mut j, &cleared).unwrap();
        check(
            (String::from_utf8(t).unwrap(), String::from_utf8(j).unwrap()),
            fixture!("topdiv"),
        );
    }

    #[test]
    fn fixture_printf() {
        let u = Val::Uint;
        let lines: Vec<String> = vec![
            format_printf(
                "A %d|%u|%x|%X|%d\n",
                &[i(1 << 40), i(-1), i(-1), i(255), i(-1)],
            ),
            format_printf("B %5d|%-5d|%05d|%-05d|\n", &[i(42), i(42), i(42), i(-42)]),
            format_printf(
                "C %s|%10s|%-10s|%.2s|%5.1s|\n",
                &[s("hello"), s("hi"), s("hi"), s("hello"), s("hello")],
            ),
            format_printf("D %c%c|%3c|\n", &[i(65), i(66), i(67)]),
            format_printf(
                "E %ld|%lu|%lld|%llu|%lx|%llx\n",
                &[i(-5), i(-5), i(-5), i(-5), i(-5), i(255)],
            ),
            format_printf("F %p|%p\n", &[i(0), i(4096)]),
            format_printf("G %% literal 100%%\n", &[]),
            format_printf("G2 %d %% after %%\n", &[i(5)]),
            format_printf("H %u|%d\n", &[u(4294967295), i(-1)]),
            format_printf("I %x|%08x\n", &[i(3735928559), i(255)]),
            format_printf("J %hhd|%hd|%hu\n", &[i(257), i(65537), i(65537)]),
            format_printf("K %s|\n", &[s("bpftrace\0\0\0")]),
            format_printf("L %d %s %d\n", &[i(1), s("two"), i(3)]),
            format_printf("M %-3d|%3s|\n", &[i(123456), s("abcdef")]),
            format_printf("P %o|%lo\n", &[i(8), i(-1)]),
            format_printf("Q %5.3d|%.3d|\n", &[i(7), i(7)]),
            format_printf("R %c|\n", &[i(0)]),
            format_printf("S %zd|%jd|%td|%zu\n", &[i(-1), i(-1), i(-1), i(-1)]),
            format_printf("T %hhu|%hhx|%hx\n", &[i(-1), i(-1), i(-1)]),
            format_printf("U %s %d\n", &[Val::Sym("BEGIN".into()), i(1)]),
        ];
        let refs: Vec<&str> = lines.iter().map(|x| x.as_str()).collect();
        check(whole(&refs, &[]), fixture!("pf"));
    }

    #[test]
    fn fixture_misc() {
        let x = int_map("x", MapValue::Value(Type::I64), vec![(vec![], 1)]);
        let mut t: Vec<u8> = Vec::new();
        let mut j: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 1).unwrap();
        write_attached_json(&mut j, 1).unwrap();
        for p in [
            format_printf("%% %d|100%%\n", &[i(5)]),
            format_printf("%%d|\n", &[i(5)]),
        ] {
            t.extend_from_slice(p.as_bytes());
            write_printf_json(&mut j, &p).unwrap();
        }
        for v in [i(5), s("str"), Val::Tuple(vec![i(1), s("a"), i(-3)]), i(-7)] {
            write_value_text(&mut t, &v).unwrap();
            write_value_json(&mut j, &v).unwrap();
        }
        write_map_text(&mut t, &x).unwrap();
        write_map_json(&mut j, &x).unwrap();
        write_exit_maps_text(&mut t, std::slice::from_ref(&x)).unwrap();
        write_exit_maps_json(&mut j, &[x]).unwrap();
        check(
            (String::from_utf8(t).unwrap(), String::from_utf8(j).unwrap()),
            fixture!("misc"),
        );
    }

    #[test]
    fn misc_messages() {
        let mut t: Vec<u8> = Vec::new();
        write_attached_text(&mut t, 3).unwrap();
        write_lost_events_text(&mut t, 7).unwrap();
        write_lost_events_json(&mut t, 7).unwrap();
        write_time_json(&mut t, "15:22:23\n").unwrap();
        assert_eq!(
            String::from_utf8(t).unwrap(),
            "Attaching 3 probes...\nLost 7 events\n\
             {\"type\": \"lost_events\", \"data\": {\"events\": 7}}\n\
             {\"type\": \"time\", \"data\": \"15:22:23\\n\"}\n"
        );
    }
}
