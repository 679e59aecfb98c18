//! The typed maps of this crate to and from their machine-readable form in the contract
//! (`trace_contract::maps`), which the runner writes with `--emit-maps` and the plugin
//! reads to merge several pods' maps.

use trace_contract::maps::{MapKind, MapsRecord, WireEntry, WireMap, WireVal, WireValue};
use trace_lang::types::MapValue;

use crate::{Entry, EntryValue, MapDump, Val};

/// The record of a run's maps (any order; printing sorts them).
pub fn record(maps: &[MapDump]) -> MapsRecord {
    MapsRecord::new(maps.iter().map(to_wire).collect())
}

/// One map in the contract's form.
pub fn to_wire(map: &MapDump) -> WireMap {
    let kind = match &map.value {
        MapValue::Count => MapKind::Count,
        MapValue::Sum => MapKind::Sum,
        MapValue::Min => MapKind::Min,
        MapValue::Max => MapKind::Max,
        MapValue::Avg => MapKind::Avg,
        MapValue::Stats => MapKind::Stats,
        MapValue::Hist => MapKind::Hist,
        MapValue::Lhist { min, max, step } => MapKind::Lhist {
            min: *min,
            max: *max,
            step: *step,
        },
        MapValue::Value(ty) => MapKind::Value { ty: ty.to_string() },
    };
    let entries = map
        .entries
        .iter()
        .map(|e| WireEntry {
            key: e.key.iter().map(key_part_to_wire).collect(),
            value: match &e.value {
                EntryValue::Scalar(v) => WireValue::Scalar(val_to_wire(v)),
                EntryValue::Avg { count, total } => WireValue::Avg {
                    count: *count,
                    total: *total,
                },
                EntryValue::Stats { count, total } => WireValue::Stats {
                    count: *count,
                    total: *total,
                },
                EntryValue::Hist(c) | EntryValue::Lhist(c) => WireValue::Buckets(c.clone()),
            },
        })
        .collect();
    WireMap {
        name: map.name.clone(),
        kind,
        entries,
    }
}

/// A map of an aggregation back in this crate's form; `None` for a map of plain values
/// (`MapKind::Value`), whose type the record names only as text.
pub fn aggregation_from_wire(map: &WireMap) -> Option<MapDump> {
    let value = match &map.kind {
        MapKind::Count => MapValue::Count,
        MapKind::Sum => MapValue::Sum,
        MapKind::Min => MapValue::Min,
        MapKind::Max => MapValue::Max,
        MapKind::Avg => MapValue::Avg,
        MapKind::Stats => MapValue::Stats,
        MapKind::Hist => MapValue::Hist,
        MapKind::Lhist { min, max, step } => MapValue::Lhist {
            min: *min,
            max: *max,
            step: *step,
        },
        MapKind::Value { .. } => return None,
    };
    let entries = map
        .entries
        .iter()
        .map(|e| Entry {
            key: e.key.iter().map(val_from_wire).collect(),
            value: match &e.value {
                WireValue::Scalar(v) => EntryValue::Scalar(val_from_wire(v)),
                WireValue::Avg { count, total } => EntryValue::Avg {
                    count: *count,
                    total: *total,
                },
                WireValue::Stats { count, total } => EntryValue::Stats {
                    count: *count,
                    total: *total,
                },
                WireValue::Buckets(c) if value == MapValue::Hist => EntryValue::Hist(c.clone()),
                WireValue::Buckets(c) => EntryValue::Lhist(c.clone()),
            },
        })
        .collect();
    Some(MapDump {
        name: map.name.clone(),
        value,
        entries,
    })
}

/// A key part: a stack travels as the text it prints with as a key (the wire format keeps
/// stacks as text, which is what merging matches).
fn key_part_to_wire(v: &Val) -> WireVal {
    match v {
        Val::Stack(st) => WireVal::Sym(st.render(crate::stack::KEY_INDENT)),
        v => val_to_wire(v),
    }
}

fn val_to_wire(v: &Val) -> WireVal {
    match v {
        Val::Stack(st) => WireVal::Sym(st.render(crate::stack::VALUE_INDENT)),
        Val::Int(i) => WireVal::Int(*i),
        Val::Uint(u) => WireVal::Uint(*u),
        Val::Str(s) => WireVal::Str(s.clone()),
        Val::Sym(s) => WireVal::Sym(s.clone()),
        Val::Tuple(items) => WireVal::Tuple(items.iter().map(val_to_wire).collect()),
        Val::Array(items) => WireVal::Array(items.iter().map(val_to_wire).collect()),
        Val::Struct(fields) => WireVal::Struct(
            fields
                .iter()
                .map(|(n, x)| (n.clone(), val_to_wire(x)))
                .collect(),
        ),
    }
}

fn val_from_wire(v: &WireVal) -> Val {
    match v {
        WireVal::Int(i) => Val::Int(*i),
        WireVal::Uint(u) => Val::Uint(*u),
        WireVal::Str(s) => Val::Str(s.clone()),
        WireVal::Sym(s) => Val::Sym(s.clone()),
        WireVal::Tuple(items) => Val::Tuple(items.iter().map(val_from_wire).collect()),
        WireVal::Array(items) => Val::Array(items.iter().map(val_from_wire).collect()),
        WireVal::Struct(fields) => Val::Struct(
            fields
                .iter()
                .map(|(n, x)| (n.clone(), val_from_wire(x)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_contract::maps::parse_line;

    #[test]
    fn every_aggregation_round_trips_through_the_maps_line() {
        let key = vec![
            Val::Str("bash".into()),
            Val::Int(-3),
            Val::Uint(u64::MAX),
            Val::Tuple(vec![
                Val::Sym("\n        f+1\n".into()),
                Val::Array(vec![Val::Int(1)]),
            ]),
            Val::Struct(vec![("m".into(), Val::Uint(2))]),
        ];
        let maps = vec![
            MapDump {
                name: "".into(),
                value: MapValue::Count,
                entries: vec![Entry {
                    key: key.clone(),
                    value: EntryValue::Scalar(Val::Uint(7)),
                }],
            },
            MapDump {
                name: "s".into(),
                value: MapValue::Stats,
                entries: vec![Entry {
                    key: vec![],
                    value: EntryValue::Stats {
                        count: 2,
                        total: -9,
                    },
                }],
            },
            MapDump {
                name: "h".into(),
                value: MapValue::Hist,
                entries: vec![Entry {
                    key: vec![Val::Int(1)],
                    value: EntryValue::Hist(vec![0, 1, 2]),
                }],
            },
            MapDump {
                name: "l".into(),
                value: MapValue::Lhist {
                    min: 0,
                    max: 100,
                    step: 10,
                },
                entries: vec![Entry {
                    key: key.clone(),
                    value: EntryValue::Lhist(vec![1, 0, 3]),
                }],
            },
        ];
        let line = record(&maps).to_line();
        let back = parse_line(&line).unwrap().unwrap();
        let back: Vec<MapDump> = back
            .maps
            .iter()
            .map(|m| aggregation_from_wire(m).unwrap())
            .collect();
        assert_eq!(back, maps);
    }

    #[test]
    fn maps_of_plain_values_keep_their_type_name_only() {
        let map = MapDump {
            name: "v".into(),
            value: MapValue::Value(trace_lang::types::Type::Int {
                bytes: 8,
                signed: true,
            }),
            entries: vec![],
        };
        let wire = to_wire(&map);
        assert_eq!(wire.kind, MapKind::Value { ty: "int64".into() });
        assert_eq!(aggregation_from_wire(&wire), None);
    }
}
