//! Merging checked against bpftrace 0.17 itself: `fixtures/merge/part1.bt` and
//! `part2.bt` split the events of `combined.bt` between two "pods"; each `.txt`/`.json`
//! is what `bpftrace [-f json] NAME.bt` printed. The maps of each part are built here
//! from the same events as the runner reads them (and must print as bpftrace printed that
//! part), sent through the contract's maps line, merged, and must print exactly what
//! bpftrace printed for the combined run. No privileges needed.

use trace_contract::maps::parse_line;
use trace_lang::types::MapValue;
use trace_output::merge::merge;
use trace_output::wire::record;
use trace_output::{
    hist_index, lhist_buckets, lhist_index, write_exit_maps_json, write_exit_maps_text, Entry,
    EntryValue, MapDump, Val,
};

/// One aggregation call of the scripts: `@name[key] = agg(value)`.
#[derive(Clone, Copy)]
enum Agg {
    Count,
    Sum(i64),
    Min(i64),
    Max(i64),
    Avg(i64),
    Stats(i64),
    Hist(i64),
    Lhist(i64),
}

/// The lhist parameters the scripts use.
const LHIST: (i64, i64, i64) = (0, 100, 10);

type Event = (&'static str, Option<Val>, Agg);

fn s(k: &str) -> Option<Val> {
    Some(Val::Str(k.to_string()))
}
fn i(k: i64) -> Option<Val> {
    Some(Val::Int(k))
}

/// part1.bt's calls, in order.
fn part1() -> Vec<Event> {
    use Agg::*;
    vec![
        ("c", s("a"), Count),
        ("c", s("a"), Count),
        ("c", s("b"), Count),
        ("s", i(1), Sum(10)),
        ("s", i(2), Sum(-3)),
        ("mn", None, Min(7)),
        ("mx", None, Max(-2)),
        ("mk", s("q"), Max(3)),
        ("a", s("x"), Avg(10)),
        ("a", s("x"), Avg(3)),
        ("st", None, Stats(100)),
        ("st", None, Stats(1)),
        ("h", None, Hist(0)),
        ("h", None, Hist(5)),
        ("h", None, Hist(1000)),
        ("l", i(1), Lhist(5)),
        ("l", i(1), Lhist(150)),
    ]
}

/// part2.bt's calls, in order.
fn part2() -> Vec<Event> {
    use Agg::*;
    vec![
        ("c", s("a"), Count),
        ("c", s("c"), Count),
        ("c", s("c"), Count),
        ("s", i(2), Sum(20)),
        ("s", i(3), Sum(1)),
        ("mn", None, Min(-4)),
        ("mx", None, Max(9)),
        ("mk", s("q"), Max(8)),
        ("a", s("x"), Avg(4)),
        ("a", s("y"), Avg(-7)),
        ("st", None, Stats(2)),
        ("h", None, Hist(5)),
        ("h", None, Hist(-1)),
        ("h", None, Hist(70000)),
        ("l", i(1), Lhist(-5)),
        ("l", i(2), Lhist(55)),
    ]
}

/// The maps one run of these calls leaves, typed as the runner reads them (count as
/// unsigned, sum/min/max signed, avg/stats as count and total, buckets by index), with
/// bpftrace 0.17's max().
fn run(events: &[Event]) -> Vec<MapDump> {
    let mut maps: Vec<MapDump> = Vec::new();
    for (name, key, agg) in events {
        let value = match agg {
            Agg::Count => MapValue::Count,
            Agg::Sum(_) => MapValue::Sum,
            Agg::Min(_) => MapValue::Min,
            Agg::Max(_) => MapValue::Max,
            Agg::Avg(_) => MapValue::Avg,
            Agg::Stats(_) => MapValue::Stats,
            Agg::Hist(_) => MapValue::Hist,
            Agg::Lhist(_) => MapValue::Lhist {
                min: LHIST.0,
                max: LHIST.1,
                step: LHIST.2,
            },
        };
        let at = match maps.iter().position(|m| m.name == *name) {
            Some(at) => at,
            None => {
                maps.push(MapDump {
                    name: name.to_string(),
                    value,
                    entries: Vec::new(),
                });
                maps.len() - 1
            }
        };
        let key: Vec<Val> = key.iter().cloned().collect();
        let entries = &mut maps[at].entries;
        // bpftrace 0.17's max() starts from an unset 0 and records a value only when it is
        // greater: `@mx = max(-2)` leaves no entry (both it and the runner print none).
        if matches!(agg, Agg::Max(v) if *v <= 0) && !entries.iter().any(|e| e.key == key) {
            continue;
        }
        let e = match entries.iter().position(|e| e.key == key) {
            Some(e) => e,
            None => {
                let empty = match agg {
                    Agg::Count => EntryValue::Scalar(Val::Uint(0)),
                    Agg::Sum(_) => EntryValue::Scalar(Val::Int(0)),
                    Agg::Min(_) => EntryValue::Scalar(Val::Int(i64::MAX)),
                    Agg::Max(_) => EntryValue::Scalar(Val::Int(i64::MIN)),
                    Agg::Avg(_) => EntryValue::Avg { count: 0, total: 0 },
                    Agg::Stats(_) => EntryValue::Stats { count: 0, total: 0 },
                    Agg::Hist(_) => EntryValue::Hist(vec![0; trace_output::HIST_MAX_INDEX + 1]),
                    Agg::Lhist(_) => {
                        EntryValue::Lhist(vec![0; lhist_buckets(LHIST.0, LHIST.1, LHIST.2)])
                    }
                };
                entries.push(Entry { key, value: empty });
                entries.len() - 1
            }
        };
        match (&mut entries[e].value, agg) {
            (EntryValue::Scalar(Val::Uint(n)), Agg::Count) => *n += 1,
            (EntryValue::Scalar(Val::Int(n)), Agg::Sum(v)) => *n += v,
            (EntryValue::Scalar(Val::Int(n)), Agg::Min(v)) => *n = (*n).min(*v),
            (EntryValue::Scalar(Val::Int(n)), Agg::Max(v)) => *n = (*n).max(*v),
            (EntryValue::Avg { count, total }, Agg::Avg(v))
            | (EntryValue::Stats { count, total }, Agg::Stats(v)) => {
                *count += 1;
                *total += v;
            }
            (EntryValue::Hist(c), Agg::Hist(v)) => c[hist_index(*v)] += 1,
            (EntryValue::Lhist(c), Agg::Lhist(v)) => {
                c[lhist_index(*v, LHIST.0, LHIST.1, LHIST.2)] += 1
            }
            _ => unreachable!("one aggregation per map"),
        }
    }
    maps
}

/// What bpftrace printed for NAME, without its `Attaching 1 probe...` line.
fn captured(name: &str, ext: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/merge/{name}.{ext}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (first, rest) = text.split_once('\n').unwrap();
    assert!(first.contains("probe"), "{path} starts with {first:?}");
    rest.to_string()
}

fn text(maps: &[MapDump]) -> String {
    let mut out = Vec::new();
    write_exit_maps_text(&mut out, maps).unwrap();
    String::from_utf8(out).unwrap()
}

fn json(maps: &[MapDump]) -> String {
    let mut out = Vec::new();
    write_exit_maps_json(&mut out, maps).unwrap();
    String::from_utf8(out).unwrap()
}

#[test]
fn each_part_prints_as_bpftrace_printed_it() {
    for (name, events) in [("part1", part1()), ("part2", part2())] {
        let maps = run(&events);
        assert_eq!(text(&maps), captured(name, "txt"), "{name} text");
        assert_eq!(json(&maps), captured(name, "json"), "{name} json");
    }
}

#[test]
fn the_merged_parts_print_as_bpftrace_printed_the_combined_run() {
    let records: Vec<_> = [part1(), part2()]
        .iter()
        .map(|events| {
            let line = record(&run(events)).to_line();
            parse_line(&line).unwrap().unwrap()
        })
        .collect();
    let merged = merge(&records);
    assert!(merged.notes.is_empty(), "{:?}", merged.notes);
    assert_eq!(text(&merged.maps), captured("combined", "txt"));
    assert_eq!(json(&merged.maps), captured("combined", "json"));
    // The same when the pods' records come the other way round.
    let swapped = merge(&[records[1].clone(), records[0].clone()]);
    assert_eq!(text(&swapped.maps), captured("combined", "txt"));
}
