//! Several runs' final maps merged into one answer (`kubectl trace ... --merge`): maps are
//! matched by name and entries by key; counts and sums add, min and max keep the smallest
//! and largest, avg and stats add their counts and totals (so the average is the total of
//! all values over their number, truncated as bpftrace prints it), hist and lhist add their
//! buckets. A key present in only some runs appears once. Maps of assigned values
//! (`@m = expr`) have no such rule and are left out, each with a note.

use std::collections::HashMap;

use trace_contract::maps::{MapKind, MapsRecord};
use trace_lang::types::MapValue;

use crate::wire::aggregation_from_wire;
use crate::{Entry, EntryValue, MapDump, Val};

/// The merged maps, and one line for each map that could not be merged.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Merged {
    pub maps: Vec<MapDump>,
    pub notes: Vec<String>,
}

/// One map being merged.
struct Acc {
    map: MapDump,
    /// Index into `map.entries` by key (the key's debug text, which tells every typed key
    /// apart).
    index: HashMap<String, usize>,
}

enum State {
    Merging(Acc),
    Left(String),
}

/// Merge the maps of several runs of one program.
pub fn merge(records: &[MapsRecord]) -> Merged {
    let mut order: Vec<String> = Vec::new();
    let mut states: HashMap<String, State> = HashMap::new();
    for record in records {
        for wire in &record.maps {
            let at = format!("@{}", wire.name);
            let state = states.entry(wire.name.clone()).or_insert_with(|| {
                order.push(wire.name.clone());
                match &wire.kind {
                    MapKind::Value { .. } => State::Left(format!(
                        "{at}: a map of assigned values (not an aggregation) is not merged"
                    )),
                    _ => State::Merging(Acc {
                        map: MapDump {
                            name: wire.name.clone(),
                            value: aggregation_from_wire(wire).map_or(MapValue::Count, |m| m.value),
                            entries: Vec::new(),
                        },
                        index: HashMap::new(),
                    }),
                }
            });
            let State::Merging(acc) = state else { continue };
            let Some(dump) = aggregation_from_wire(wire) else {
                *state = State::Left(format!(
                    "{at}: an aggregation in some runs and assigned values in others; not merged"
                ));
                continue;
            };
            if dump.value != acc.map.value {
                *state = State::Left(format!(
                    "{at}: the runs' maps aggregate differently; not merged"
                ));
                continue;
            }
            for entry in dump.entries {
                acc.add(entry);
            }
        }
    }
    let mut merged = Merged::default();
    for name in order {
        match states.remove(&name) {
            Some(State::Merging(acc)) => merged.maps.push(acc.map),
            Some(State::Left(note)) => merged.notes.push(note),
            None => {}
        }
    }
    merged
}

impl Acc {
    fn add(&mut self, entry: Entry) {
        let key = format!("{:?}", entry.key);
        match self.index.get(&key) {
            Some(&i) => {
                let old = &mut self.map.entries[i].value;
                *old = combine(&self.map.value, old, &entry.value);
            }
            None => {
                self.index.insert(key, self.map.entries.len());
                self.map.entries.push(entry);
            }
        }
    }
}

/// Two values of one key in a map of aggregation `kind`.
pub fn combine(kind: &MapValue, a: &EntryValue, b: &EntryValue) -> EntryValue {
    use EntryValue::*;
    match (a, b) {
        (Scalar(x), Scalar(y)) => Scalar(match kind {
            MapValue::Min => pick(x, y, std::cmp::Ordering::Less),
            MapValue::Max => pick(x, y, std::cmp::Ordering::Greater),
            _ => add(x, y),
        }),
        (
            Avg {
                count: c1,
                total: t1,
            },
            Avg {
                count: c2,
                total: t2,
            },
        ) => Avg {
            count: c1.wrapping_add(*c2),
            total: t1.wrapping_add(*t2),
        },
        (
            Stats {
                count: c1,
                total: t1,
            },
            Stats {
                count: c2,
                total: t2,
            },
        ) => Stats {
            count: c1.wrapping_add(*c2),
            total: t1.wrapping_add(*t2),
        },
        (Hist(x), Hist(y)) => Hist(add_buckets(x, y)),
        (Lhist(x), Lhist(y)) => Lhist(add_buckets(x, y)),
        // One program's maps hold one kind of value per map.
        _ => a.clone(),
    }
}

fn add(x: &Val, y: &Val) -> Val {
    match (x, y) {
        (Val::Uint(a), Val::Uint(b)) => Val::Uint(a.wrapping_add(*b)),
        (Val::Int(a), Val::Int(b)) => Val::Int(a.wrapping_add(*b)),
        (Val::Int(a), Val::Uint(b)) | (Val::Uint(b), Val::Int(a)) => {
            Val::Int(a.wrapping_add(*b as i64))
        }
        _ => x.clone(),
    }
}

/// `x` unless `y` compares `want` to it (signed or unsigned as the values are).
fn pick(x: &Val, y: &Val, want: std::cmp::Ordering) -> Val {
    let order = match (x, y) {
        (Val::Uint(a), Val::Uint(b)) => b.cmp(a),
        (Val::Int(a), Val::Int(b)) => b.cmp(a),
        (Val::Int(a), Val::Uint(b)) => i128::from(*b).cmp(&i128::from(*a)),
        (Val::Uint(a), Val::Int(b)) => i128::from(*b).cmp(&i128::from(*a)),
        _ => std::cmp::Ordering::Equal,
    };
    if order == want {
        y.clone()
    } else {
        x.clone()
    }
}

fn add_buckets(x: &[u64], y: &[u64]) -> Vec<u64> {
    let mut out = vec![0u64; x.len().max(y.len())];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = x
            .get(i)
            .copied()
            .unwrap_or(0)
            .wrapping_add(y.get(i).copied().unwrap_or(0));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::record;
    use trace_lang::types::Type;

    fn dump(name: &str, value: MapValue, entries: Vec<(Vec<Val>, EntryValue)>) -> MapDump {
        MapDump {
            name: name.into(),
            value,
            entries: entries
                .into_iter()
                .map(|(key, value)| Entry { key, value })
                .collect(),
        }
    }

    #[test]
    fn values_combine_by_their_aggregation() {
        use EntryValue::*;
        let u = |n| Scalar(Val::Uint(n));
        let i = |n| Scalar(Val::Int(n));
        assert_eq!(combine(&MapValue::Count, &u(2), &u(3)), u(5));
        assert_eq!(combine(&MapValue::Sum, &i(-2), &i(3)), i(1));
        assert_eq!(combine(&MapValue::Min, &i(-2), &i(3)), i(-2));
        assert_eq!(combine(&MapValue::Min, &i(5), &i(-3)), i(-3));
        assert_eq!(combine(&MapValue::Max, &i(-2), &i(3)), i(3));
        assert_eq!(combine(&MapValue::Max, &i(5), &i(-3)), i(5));
        // avg 7/2 = 3 and 2/2 = 1: merged 9/4 = 2 (not the average of the averages).
        assert_eq!(
            combine(
                &MapValue::Avg,
                &Avg { count: 2, total: 7 },
                &Avg { count: 2, total: 2 }
            ),
            Avg { count: 4, total: 9 }
        );
        assert_eq!(
            combine(&MapValue::Hist, &Hist(vec![1, 2]), &Hist(vec![0, 1, 0, 4])),
            Hist(vec![1, 3, 0, 4])
        );
    }

    #[test]
    fn maps_of_assigned_values_are_left_out_with_a_note() {
        let a = record(&[
            dump("v", MapValue::Value(Type::Str(16)), vec![]),
            dump(
                "c",
                MapValue::Count,
                vec![(vec![Val::Int(1)], EntryValue::Scalar(Val::Uint(2)))],
            ),
        ]);
        let b = record(&[dump(
            "c",
            MapValue::Sum,
            vec![(vec![Val::Int(1)], EntryValue::Scalar(Val::Int(2)))],
        )]);
        let merged = merge(&[a, b]);
        assert!(merged.maps.is_empty(), "{:?}", merged.maps);
        assert_eq!(
            merged.notes,
            [
                "@v: a map of assigned values (not an aggregation) is not merged",
                "@c: the runs' maps aggregate differently; not merged"
            ]
        );
    }
}
