//! A run's final maps in machine-readable form, for `kubectl trace ... --merge`.
//!
//! With `--emit-maps` ([`crate::args::flag::EMIT_MAPS`]) the runner writes, after the maps
//! it prints at exit, one more line into its output (stdout, so the pod's log, and the
//! persisted `output.txt`):
//!
//! ```text
//! __KUBECTL_TRACE_MAPS__ {"version":1,"maps":[...]}
//! ```
//!
//! [`MAPS_LINE_PREFIX`], then a [`MapsRecord`] as one line of JSON. The plugin takes that
//! line out of the output it shows ([`parse_line`] tells it apart) and merges the records of
//! all pods. The record carries each map exactly: counts, sums, min and max as the integers
//! the runner read (signed or unsigned, as bpftrace prints them); avg and stats as count and
//! total; hist and lhist as counts by bucket index (lhist with its min, max and step); keys
//! as typed parts ([`WireVal`]) so they print as bpftrace prints them. Maps of plain values
//! (`@m = expr`) are carried too, typed the same way; they have no merge rule.
//!
//! Versioned: [`MAPS_VERSION`] changes when a field changes meaning or goes away; readers
//! refuse a newer version with one line.

use serde::{Deserialize, Serialize};

/// The version of [`MapsRecord`] this crate writes and reads.
pub const MAPS_VERSION: u32 = 1;

/// What starts the maps line in a run's output (a space separates it from the JSON).
pub const MAPS_LINE_PREFIX: &str = "__KUBECTL_TRACE_MAPS__ ";

/// Every script map of one run, as read at exit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapsRecord {
    pub version: u32,
    pub maps: Vec<WireMap>,
}

/// One map: its name without `@` (`""` for `@`), what it aggregates, its entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireMap {
    pub name: String,
    pub kind: MapKind,
    pub entries: Vec<WireEntry>,
}

/// The aggregation a map holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MapKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
    Stats,
    Hist,
    Lhist {
        min: i64,
        max: i64,
        step: i64,
    },
    /// `@m = expr`: a plain value. `ty` is bpftrace's spelling of its type (`int64`,
    /// `string[16]`, `ksym`, ...), which printing needs for a few types.
    Value {
        ty: String,
    },
}

/// One entry: the key parts (none for a keyless map) and the value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireEntry {
    pub key: Vec<WireVal>,
    pub value: WireValue,
}

/// A value as a map holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireValue {
    /// count, sum, min, max, and plain values.
    Scalar(WireVal),
    /// avg and stats: the number of values and their sum (bpftrace prints `total / count`).
    Avg {
        count: u64,
        total: i64,
    },
    Stats {
        count: u64,
        total: i64,
    },
    /// hist and lhist: counts by bucket index; missing trailing indexes count 0.
    Buckets(Vec<u64>),
}

/// A typed key part or value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WireVal {
    Int(i64),
    Uint(u64),
    Str(String),
    /// A symbol, probe name or stack, already rendered by the runner.
    Sym(String),
    Tuple(Vec<WireVal>),
    Array(Vec<WireVal>),
    Struct(Vec<(String, WireVal)>),
}

impl MapsRecord {
    /// A record of the current version.
    pub fn new(maps: Vec<WireMap>) -> MapsRecord {
        MapsRecord {
            version: MAPS_VERSION,
            maps,
        }
    }

    /// The whole line the runner writes: [`MAPS_LINE_PREFIX`], the JSON, a newline.
    pub fn to_line(&self) -> String {
        let json = serde_json::to_string(self).expect("a MapsRecord always serializes");
        format!("{MAPS_LINE_PREFIX}{json}\n")
    }
}

/// Whether `line` (with or without its newline) is a maps line.
pub fn is_maps_line(line: &str) -> bool {
    line.starts_with(MAPS_LINE_PREFIX)
}

/// The record of a maps line; `None` when `line` is not one, an error (one line) when it is
/// but cannot be read.
pub fn parse_line(line: &str) -> Option<Result<MapsRecord, String>> {
    let json = line.strip_prefix(MAPS_LINE_PREFIX)?.trim_end();
    #[derive(Deserialize)]
    struct VersionOnly {
        version: u32,
    }
    let result = match serde_json::from_str::<VersionOnly>(json) {
        Err(e) => Err(format!("unreadable maps record: {e}")),
        Ok(v) if v.version > MAPS_VERSION => Err(format!(
            "the runner wrote maps record version {}; this plugin reads up to version {MAPS_VERSION} (upgrade the plugin)",
            v.version
        )),
        Ok(_) => serde_json::from_str::<MapsRecord>(json)
            .map_err(|e| format!("unreadable maps record: {e}")),
    };
    Some(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MapsRecord {
        MapsRecord::new(vec![
            WireMap {
                name: "".into(),
                kind: MapKind::Count,
                entries: vec![WireEntry {
                    key: vec![
                        WireVal::Str("bash \"x\"\n".into()),
                        WireVal::Int(-1),
                        WireVal::Uint(u64::MAX),
                    ],
                    value: WireValue::Scalar(WireVal::Uint(u64::MAX)),
                }],
            },
            WireMap {
                name: "lat".into(),
                kind: MapKind::Lhist {
                    min: -10,
                    max: 100,
                    step: 7,
                },
                entries: vec![WireEntry {
                    key: vec![WireVal::Tuple(vec![
                        WireVal::Sym("\n        vfs_read+4\n".into()),
                        WireVal::Struct(vec![(
                            "a".into(),
                            WireVal::Array(vec![WireVal::Int(i64::MIN)]),
                        )]),
                    ])],
                    value: WireValue::Buckets(vec![0, 3, 0, 1]),
                }],
            },
            WireMap {
                name: "a".into(),
                kind: MapKind::Avg,
                entries: vec![WireEntry {
                    key: vec![],
                    value: WireValue::Avg {
                        count: 3,
                        total: -7,
                    },
                }],
            },
            WireMap {
                name: "v".into(),
                kind: MapKind::Value { ty: "int64".into() },
                entries: vec![],
            },
        ])
    }

    #[test]
    fn the_maps_line_round_trips() {
        let record = sample();
        let line = record.to_line();
        assert!(line.starts_with(MAPS_LINE_PREFIX) && line.ends_with('\n'));
        assert_eq!(line.matches('\n').count(), 1, "one line: {line}");
        assert!(is_maps_line(&line));
        assert_eq!(parse_line(&line), Some(Ok(record.clone())));
        assert_eq!(parse_line(line.trim_end()), Some(Ok(record)));
    }

    #[test]
    fn other_lines_are_not_maps_lines() {
        assert_eq!(parse_line("@: 3"), None);
        assert_eq!(parse_line(" __KUBECTL_TRACE_MAPS__ {}"), None);
        assert!(!is_maps_line("Attaching 1 probe..."));
    }

    #[test]
    fn a_newer_or_broken_record_is_one_line_of_error() {
        let newer = format!("{MAPS_LINE_PREFIX}{{\"version\":2,\"maps\":[],\"more\":1}}");
        let e = parse_line(&newer).unwrap().unwrap_err();
        assert!(e.contains("version 2") && !e.contains('\n'), "{e}");
        let broken = format!("{MAPS_LINE_PREFIX}{{\"version\":1,\"maps\":[{{}}]}}");
        let e = parse_line(&broken).unwrap().unwrap_err();
        assert!(
            e.starts_with("unreadable maps record") && !e.contains('\n'),
            "{e}"
        );
    }
}
