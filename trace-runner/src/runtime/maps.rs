//! Reading script maps out of the kernel: walks keys, sums per-CPU values, decodes
//! keys and values by their script types into [`crate::output::MapDump`]s, and
//! implements `clear()` / `zero()`.

use std::collections::BTreeMap;

use trace_lang::types::{MapValue, Type};

use super::{bpf_sys, Session};
use crate::abi::{Compiled, UserMap};
use crate::output::{Entry, EntryValue, MapDump, Val};
use crate::symbols;

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_ne_bytes(s.try_into().unwrap_or([0; 8])))
}

fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Decode one value of script type `ty` from the start of `b`.
/// The name of the `probe` value `id`: an index into the probe names, or, in a k(ret)probe
/// wildcard, the address of the function hit (bit 63 cleared for a kretprobe), named
/// like bpftrace names the expanded probe (`kprobe:vfs_read`).
pub fn probe_name(id: u64, names: &[String], ksym: impl Fn(u64) -> String) -> String {
    if id <= u64::from(u32::MAX) {
        return names.get(id as usize).cloned().unwrap_or_default();
    }
    let kind = if id >> 63 == 1 { "kprobe" } else { "kretprobe" };
    format!("{kind}:{}", ksym(id | 1 << 63))
}

/// The little-endian integer in the first `bytes` bytes of `b` (missing bytes read 0).
fn uint_le(b: &[u8], bytes: usize) -> u64 {
    let mut v = [0u8; 8];
    let n = bytes.min(8).min(b.len());
    v[..n].copy_from_slice(&b[..n]);
    u64::from_le_bytes(v)
}

pub fn decode_value(ty: &Type, b: &[u8], compiled: &Compiled) -> Val {
    match ty {
        Type::Int { bytes, signed } => {
            let raw = uint_le(b, usize::from(*bytes));
            let bits = 8 * u32::from(*bytes).min(8);
            if *signed {
                let shift = 64 - bits;
                Val::Int(((raw << shift) as i64) >> shift)
            } else if bits < 64 {
                Val::Uint(raw & ((1u64 << bits) - 1))
            } else {
                Val::Uint(raw)
            }
        }
        Type::Str(n) => Val::Str(c_string(&b[..(*n).min(b.len())])),
        Type::Probe => Val::Sym(probe_name(
            u64_at(b, 0),
            &compiled.probe_names,
            symbols::kernel_symbol,
        )),
        Type::Ksym => Val::Sym(symbols::kernel_symbol(u64_at(b, 0))),
        t if crate::values::handles(t) => crate::values::decode(t, b, compiled),
        Type::Tuple(items) => {
            let (offsets, _) = trace_lang::types::tuple_layout(items);
            let vals = items
                .iter()
                .zip(offsets)
                .map(|(t, at)| decode_value(t, &b[at.min(b.len())..], compiled))
                .collect();
            Val::Tuple(vals)
        }
        Type::Array { elem, len } => {
            let size = elem.memory_size();
            let vals = (0..*len as usize)
                .map(|i| decode_value(elem, b.get(i * size..).unwrap_or(&[]), compiled))
                .collect();
            Val::Array(vals)
        }
        Type::Struct(st) => Val::Struct(
            st.fields
                .iter()
                .map(|f| {
                    let at = b.get(f.offset as usize..).unwrap_or(&[]);
                    let v = match (f.bitfield, &f.ty) {
                        (Some((shift, bits)), Type::Int { bytes, .. }) => {
                            let raw = uint_le(at, usize::from(*bytes)) >> shift;
                            Val::Uint(if bits >= 64 {
                                raw
                            } else {
                                raw & ((1u64 << bits) - 1)
                            })
                        }
                        (_, t) => decode_value(t, at, compiled),
                    };
                    (f.name.clone(), v)
                })
                .collect(),
        ),
        Type::Ptr { .. } => Val::Uint(u64_at(b, 0)),
        _ => Val::Uint(u64_at(b, 0)),
    }
}

fn decode_key(map: &UserMap, key: &[u8], compiled: &Compiled) -> Vec<Val> {
    let mut at = 0;
    map.keys
        .iter()
        .map(|t| {
            let b = &key[at.min(key.len())..];
            let v = decode_value(t, b, compiled);
            at += t.size();
            v
        })
        .collect()
}

fn value_size(map: &UserMap) -> usize {
    match &map.value {
        MapValue::Min | MapValue::Max | MapValue::Avg | MapValue::Stats => 16,
        MapValue::Value(t) => t.size().max(1),
        _ => 8,
    }
}

/// The per-CPU values of one entry, each rounded up to 8 bytes.
fn per_cpu_values(buf: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    buf.chunks(size.div_ceil(8) * 8)
}

/// Fold per-CPU values into one entry value.
fn merge(map: &UserMap, buf: &[u8]) -> EntryValue {
    let size = value_size(map);
    let cpus = per_cpu_values(buf, size);
    match &map.value {
        MapValue::Count => EntryValue::Scalar(Val::Uint(cpus.map(|c| u64_at(c, 0)).sum())),
        MapValue::Sum => EntryValue::Scalar(Val::Int(
            cpus.map(|c| u64_at(c, 0) as i64)
                .fold(0i64, i64::wrapping_add),
        )),
        MapValue::Avg | MapValue::Stats => {
            let (mut count, mut total) = (0u64, 0i64);
            for c in cpus {
                count += u64_at(c, 0);
                total = total.wrapping_add(u64_at(c, 8) as i64);
            }
            if map.value == MapValue::Avg {
                EntryValue::Avg { count, total }
            } else {
                EntryValue::Stats { count, total }
            }
        }
        MapValue::Min | MapValue::Max => {
            let set = cpus
                .filter(|c| u64_at(c, 8) != 0)
                .map(|c| u64_at(c, 0) as i64);
            let v = if map.value == MapValue::Min {
                set.min()
            } else {
                set.max()
            };
            EntryValue::Scalar(Val::Int(v.unwrap_or(0)))
        }
        MapValue::Hist | MapValue::Lhist { .. } => {
            EntryValue::Scalar(Val::Uint(cpus.map(|c| u64_at(c, 0)).sum()))
        }
        MapValue::Value(_) => EntryValue::Scalar(Val::Int(0)),
    }
}

/// Read script map `index` (into `compiled.user_maps`).
pub fn read_map(session: &Session, index: usize) -> Option<MapDump> {
    let compiled = &session.compiled;
    let map = compiled.user_maps.get(index)?;
    let def = &compiled.maps[map.kernel_map];
    let fd = session.map_fd(map.kernel_map);
    let cpus = bpf_sys::possible_cpus();
    let size = value_size(map);
    let buf_len = if map.per_cpu {
        size.div_ceil(8) * 8 * cpus
    } else {
        size
    };
    let mut entries = Vec::new();

    if map.array {
        let mut buf = vec![0u8; buf_len];
        if bpf_sys::lookup(fd, &0u32.to_ne_bytes(), &mut buf).ok()? {
            let value = merge(map, &buf);
            // An array slot exists from the start: only print it once something was recorded.
            let touched = session.zeroed.contains(&index)
                || per_cpu_values(&buf, size).any(|c| c.iter().any(|b| *b != 0));
            // bpftrace 0.17 prints a keyless count() map even when nothing counted
            // (or after clear/delete): `@: 0`.
            if touched || map.value == MapValue::Count {
                entries.push(Entry {
                    key: Vec::new(),
                    value,
                });
            }
        }
        return Some(MapDump {
            name: map.name.clone(),
            value: map.value.clone(),
            entries,
        });
    }

    let keys = bpf_sys::keys(fd, def.key_size as usize).ok()?;
    let bucketed = matches!(map.value, MapValue::Hist | MapValue::Lhist { .. });
    let user_key_size: usize = map.keys.iter().map(Type::size).sum();
    let mut buckets: BTreeMap<Vec<u8>, Vec<u64>> = BTreeMap::new();
    for key in keys {
        let mut buf = vec![0u8; buf_len];
        if !bpf_sys::lookup(fd, &key, &mut buf).unwrap_or(false) {
            continue;
        }
        if bucketed {
            let user_key = key[..user_key_size].to_vec();
            let bucket = u64_at(&key, user_key_size) as usize;
            let EntryValue::Scalar(Val::Uint(n)) = merge(map, &buf) else {
                continue;
            };
            let counts = buckets.entry(user_key).or_default();
            if counts.len() <= bucket {
                counts.resize(bucket + 1, 0);
            }
            counts[bucket] += n;
            continue;
        }
        let value = match &map.value {
            MapValue::Value(t) => EntryValue::Scalar(decode_value(t, &buf, compiled)),
            _ => merge(map, &buf),
        };
        entries.push(Entry {
            key: decode_key(map, &key[..user_key_size.min(key.len())], compiled),
            value,
        });
    }
    for (key, counts) in buckets {
        let value = if map.value == MapValue::Hist {
            EntryValue::Hist(counts)
        } else {
            EntryValue::Lhist(counts)
        };
        entries.push(Entry {
            key: decode_key(map, &key, compiled),
            value,
        });
    }
    Some(MapDump {
        name: map.name.clone(),
        value: map.value.clone(),
        entries,
    })
}

/// `clear(@m)` deletes every entry; `zero(@m)` keeps keys and zeroes values.
pub fn clear_map(session: &Session, index: usize, keep_keys: bool) {
    let compiled = &session.compiled;
    let Some(map) = compiled.user_maps.get(index) else {
        return;
    };
    let def = &compiled.maps[map.kernel_map];
    let fd = session.map_fd(map.kernel_map);
    let size = value_size(map);
    let zeros = vec![
        0u8;
        if map.per_cpu {
            size.div_ceil(8) * 8 * bpf_sys::possible_cpus()
        } else {
            size
        }
    ];
    if map.array {
        let _ = bpf_sys::update(fd, &0u32.to_ne_bytes(), &zeros);
        return;
    }
    for key in bpf_sys::keys(fd, def.key_size as usize).unwrap_or_default() {
        let _ = if keep_keys {
            bpf_sys::update(fd, &key, &zeros)
        } else {
            bpf_sys::delete(fd, &key)
        };
    }
}

#[cfg(test)]
mod probe_name_tests {
    use super::probe_name;

    #[test]
    fn wildcard_kprobes_name_the_function_hit() {
        let names = vec!["BEGIN".to_string(), "kprobe:vfs_*".to_string()];
        let ksym = |addr: u64| {
            assert_eq!(addr, 0xffff_ffff_8123_4560);
            "vfs_read".to_string()
        };
        assert_eq!(probe_name(1, &names, ksym), "kprobe:vfs_*");
        assert_eq!(
            probe_name(0xffff_ffff_8123_4560, &names, ksym),
            "kprobe:vfs_read"
        );
        assert_eq!(
            probe_name(0x7fff_ffff_8123_4560, &names, ksym),
            "kretprobe:vfs_read"
        );
    }
}
