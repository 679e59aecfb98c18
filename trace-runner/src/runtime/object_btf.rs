//! The BTF a compiled BPF object carries (its `.BTF` section, as clang `-g` and
//! bpf-linker `--btf` emit it), read just far enough to print its data: struct layouts
//! (records of the `events` ring and map keys/values), the key and value types of
//! BTF-defined maps (`.maps`), and a decoder that turns raw bytes of a type into a
//! [`Value`] printed as `field=value ...` text or as JSON.
//!
//! Only little-endian objects (`bpfel`, what clang `-target bpf` emits on x86 and arm64)
//! are supported; the caller rejects the others.

use std::collections::HashMap;
use std::fmt::Write as _;

/// BTF's magic number and kind numbers (shared with [`super::elf_check`]).
pub(crate) const BTF_MAGIC: u16 = 0xeb9f;

pub(crate) const KIND_INT: u32 = 1;
pub(crate) const KIND_PTR: u32 = 2;
pub(crate) const KIND_ARRAY: u32 = 3;
pub(crate) const KIND_STRUCT: u32 = 4;
pub(crate) const KIND_UNION: u32 = 5;
pub(crate) const KIND_ENUM: u32 = 6;
pub(crate) const KIND_FWD: u32 = 7;
pub(crate) const KIND_TYPEDEF: u32 = 8;
pub(crate) const KIND_VOLATILE: u32 = 9;
pub(crate) const KIND_CONST: u32 = 10;
pub(crate) const KIND_RESTRICT: u32 = 11;
pub(crate) const KIND_FUNC: u32 = 12;
pub(crate) const KIND_FUNC_PROTO: u32 = 13;
pub(crate) const KIND_VAR: u32 = 14;
pub(crate) const KIND_DATASEC: u32 = 15;
pub(crate) const KIND_FLOAT: u32 = 16;
pub(crate) const KIND_DECL_TAG: u32 = 17;
pub(crate) const KIND_TYPE_TAG: u32 = 18;
pub(crate) const KIND_ENUM64: u32 = 19;

/// A struct or union member.
#[derive(Debug, Clone)]
pub struct Member {
    pub name: String,
    pub ty: u32,
    /// Offset in bits from the start of the record.
    pub bit_offset: u32,
    /// Width of a bitfield (0 for a plain member).
    pub bitfield_size: u32,
}

/// One BTF type, modifiers and typedefs kept (see [`ObjectBtf::resolve`]).
#[derive(Debug, Clone)]
pub enum Kind {
    Void,
    Int {
        name: String,
        size: u32,
        signed: bool,
        char: bool,
        bool: bool,
        bits: u32,
        offset: u32,
    },
    /// A pointer, to the type given.
    Ptr(u32),
    Array {
        elem: u32,
        len: u32,
    },
    Record {
        name: String,
        size: u32,
        members: Vec<Member>,
    },
    Enum {
        size: u32,
        signed: bool,
        values: Vec<(String, i64)>,
    },
    Fwd,
    /// Typedef, const, volatile, restrict, type tag: look through to `.0`.
    Alias(u32),
    Float {
        size: u32,
    },
    Var {
        name: String,
        ty: u32,
    },
    Datasec {
        name: String,
        /// (var type id, offset, size)
        vars: Vec<(u32, u32, u32)>,
    },
    /// FUNC, FUNC_PROTO, DECL_TAG: nothing to print.
    Other,
}

/// The parsed `.BTF` of an object.
#[derive(Debug, Default)]
pub struct ObjectBtf {
    /// Indexed by type id (0 is void).
    types: Vec<Kind>,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn cstr_at(strings: &[u8], off: u32) -> String {
    let rest = strings.get(off as usize..).unwrap_or(&[]);
    let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
    String::from_utf8_lossy(&rest[..end]).into_owned()
}

impl ObjectBtf {
    /// Parse a raw `.BTF` section (little-endian). `None` when it is malformed.
    pub fn parse(data: &[u8]) -> Option<ObjectBtf> {
        let magic = u16::from_le_bytes(data.get(0..2)?.try_into().ok()?);
        if magic != BTF_MAGIC {
            return None;
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let tstart = hdr_len.checked_add(type_off)?;
        let types = data.get(tstart..tstart.checked_add(type_len)?)?;
        let sstart = hdr_len.checked_add(str_off)?;
        let strings = data.get(sstart..sstart.checked_add(str_len)?)?;
        let mut out = vec![Kind::Void];
        let mut at = 0usize;
        while at + 12 <= types.len() {
            let name = cstr_at(strings, u32_at(types, at)?);
            let info = u32_at(types, at + 4)?;
            let size_or_type = u32_at(types, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let k = match kind {
                KIND_INT => {
                    let v = u32_at(types, at)?;
                    at += 4;
                    let enc = (v >> 24) & 0xf;
                    Kind::Int {
                        name,
                        size: size_or_type,
                        signed: enc & 1 != 0,
                        char: enc & 2 != 0,
                        bool: enc & 4 != 0,
                        offset: (v >> 16) & 0xff,
                        bits: v & 0xff,
                    }
                }
                KIND_PTR => Kind::Ptr(size_or_type),
                KIND_ARRAY => {
                    let elem = u32_at(types, at)?;
                    let len = u32_at(types, at + 8)?;
                    at += 12;
                    Kind::Array { elem, len }
                }
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let mname = cstr_at(strings, u32_at(types, at)?);
                        let ty = u32_at(types, at + 4)?;
                        let off = u32_at(types, at + 8)?;
                        at += 12;
                        let (bit_offset, bitfield_size) = if kind_flag {
                            (off & 0xff_ffff, off >> 24)
                        } else {
                            (off, 0)
                        };
                        members.push(Member {
                            name: mname,
                            ty,
                            bit_offset,
                            bitfield_size,
                        });
                    }
                    Kind::Record {
                        name,
                        size: size_or_type,
                        members,
                    }
                }
                KIND_ENUM | KIND_ENUM64 => {
                    let mut values = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        let vname = cstr_at(strings, u32_at(types, at)?);
                        let lo = u32_at(types, at + 4)?;
                        let v = if kind == KIND_ENUM64 {
                            let hi = u32_at(types, at + 8)?;
                            at += 12;
                            ((u64::from(hi) << 32) | u64::from(lo)) as i64
                        } else {
                            at += 8;
                            if kind_flag {
                                i64::from(lo as i32)
                            } else {
                                i64::from(lo)
                            }
                        };
                        values.push((vname, v));
                    }
                    Kind::Enum {
                        size: size_or_type,
                        signed: kind_flag,
                        values,
                    }
                }
                KIND_FWD => Kind::Fwd,
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Kind::Alias(size_or_type)
                }
                KIND_FUNC => Kind::Other,
                KIND_FUNC_PROTO => {
                    at += 8 * vlen;
                    Kind::Other
                }
                KIND_VAR => {
                    at += 4;
                    Kind::Var {
                        name,
                        ty: size_or_type,
                    }
                }
                KIND_DATASEC => {
                    let mut vars = Vec::with_capacity(vlen);
                    for _ in 0..vlen {
                        vars.push((
                            u32_at(types, at)?,
                            u32_at(types, at + 4)?,
                            u32_at(types, at + 8)?,
                        ));
                        at += 12;
                    }
                    Kind::Datasec { name, vars }
                }
                KIND_FLOAT => Kind::Float { size: size_or_type },
                KIND_DECL_TAG => {
                    at += 4;
                    Kind::Other
                }
                _ => return None,
            };
            out.push(k);
        }
        Some(ObjectBtf { types: out })
    }

    pub fn kind(&self, id: u32) -> &Kind {
        self.types.get(id as usize).unwrap_or(&Kind::Void)
    }

    /// Look through typedefs and qualifiers.
    pub fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..64 {
            match self.kind(id) {
                Kind::Alias(t) => id = *t,
                _ => return id,
            }
        }
        id
    }

    /// Size in bytes of a type (0 when unknown, `usize::MAX` when it overflows).
    pub fn size_of(&self, id: u32) -> usize {
        self.size_at_depth(id, 0)
    }

    /// Arrays nest at most this deep (a corrupt object may make one its own element).
    const MAX_ARRAY_DEPTH: u32 = 32;

    fn size_at_depth(&self, id: u32, depth: u32) -> usize {
        match self.kind(self.resolve(id)) {
            Kind::Int { size, .. }
            | Kind::Record { size, .. }
            | Kind::Enum { size, .. }
            | Kind::Float { size } => *size as usize,
            Kind::Ptr(_) => 8,
            Kind::Array { .. } if depth >= Self::MAX_ARRAY_DEPTH => 0,
            Kind::Array { elem, len } => self
                .size_at_depth(*elem, depth + 1)
                .saturating_mul(*len as usize),
            _ => 0,
        }
    }

    /// The id of a complete struct (or union) whose name matches one of `names`, in that
    /// order of preference.
    pub fn record_named(&self, names: &[&str]) -> Option<u32> {
        names.iter().find_map(|want| {
            self.types.iter().position(|k| {
                matches!(k, Kind::Record { name, members, .. } if name == want && !members.is_empty())
            })
        }).map(|i| i as u32)
    }

    /// Key and value type ids of every BTF-defined map (`.maps` section), by map name.
    /// A side is `None` when the definition gives only a size (`__uint(key_size, 4)`).
    pub fn map_types(&self) -> HashMap<String, (Option<u32>, Option<u32>)> {
        let mut out = HashMap::new();
        for k in &self.types {
            let Kind::Datasec { name, vars } = k else {
                continue;
            };
            if name != ".maps" {
                continue;
            }
            for (var, _, _) in vars {
                let Kind::Var { name, ty } = self.kind(*var) else {
                    continue;
                };
                let Kind::Record { members, .. } = self.kind(self.resolve(*ty)) else {
                    continue;
                };
                let pointee = |field: &str| {
                    members.iter().find(|m| m.name == field).and_then(|m| {
                        // `__type(key, T)` is `typeof(T) *key`: the member points at T.
                        match self.kind(self.resolve(m.ty)) {
                            Kind::Ptr(t) => Some(*t),
                            _ => None,
                        }
                    })
                };
                out.insert(name.clone(), (pointee("key"), pointee("value")));
            }
        }
        out
    }
}

/// A decoded value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Uint(u64),
    Bool(bool),
    Float(f64),
    Str(String),
    /// An enum constant, with its number.
    Enum(String),
    Array(Vec<Value>),
    Record(Vec<(String, Value)>),
    /// Bytes without a type.
    Hex(Vec<u8>),
}

fn read_uint(b: &[u8], size: usize) -> Option<u64> {
    let s = b.get(..size)?;
    let mut buf = [0u8; 8];
    buf[..size.min(8)].copy_from_slice(&s[..size.min(8)]);
    Some(u64::from_le_bytes(buf))
}

fn sign_extend(v: u64, bits: u32) -> i64 {
    if bits == 0 || bits >= 64 {
        return v as i64;
    }
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// A plain unsigned integer of 1, 2, 4 or 8 bytes, or hex: how untyped keys and values
/// (no BTF) print.
pub fn untyped(bytes: &[u8]) -> Value {
    match bytes.len() {
        1 | 2 | 4 | 8 => Value::Uint(read_uint(bytes, bytes.len()).unwrap_or(0)),
        _ => Value::Hex(bytes.to_vec()),
    }
}

impl ObjectBtf {
    /// Decode the bytes of a value of type `id` (hex when the type cannot be printed or the
    /// bytes are too short).
    pub fn decode(&self, id: u32, bytes: &[u8]) -> Value {
        self.decode_depth(id, bytes, 0)
    }

    fn decode_depth(&self, id: u32, bytes: &[u8], depth: u32) -> Value {
        let id = self.resolve(id);
        let size = self.size_of(id);
        let hex = || Value::Hex(bytes[..size.min(bytes.len())].to_vec());
        if depth > 16 || bytes.len() < size {
            return hex();
        }
        match self.kind(id) {
            Kind::Int {
                size,
                signed,
                bool,
                bits,
                offset,
                ..
            } => {
                if *size > 8 {
                    return hex();
                }
                let raw = read_uint(bytes, *size as usize)
                    .unwrap_or(0)
                    .checked_shr(*offset)
                    .unwrap_or(0);
                let bits = if *bits == 0 { size * 8 } else { *bits };
                let raw = if bits < 64 {
                    raw & ((1u64 << bits) - 1)
                } else {
                    raw
                };
                if *bool {
                    Value::Bool(raw != 0)
                } else if *signed {
                    Value::Int(sign_extend(raw, bits))
                } else {
                    Value::Uint(raw)
                }
            }
            Kind::Ptr(_) => Value::Uint(read_uint(bytes, 8).unwrap_or(0)),
            Kind::Enum {
                size,
                signed,
                values,
                ..
            } => {
                let raw = read_uint(bytes, (*size as usize).min(8)).unwrap_or(0);
                let v = if *signed {
                    sign_extend(raw, size.saturating_mul(8))
                } else {
                    raw as i64
                };
                match values.iter().find(|(_, x)| *x == v) {
                    Some((name, _)) => Value::Enum(name.clone()),
                    None if *signed => Value::Int(v),
                    None => Value::Uint(raw),
                }
            }
            Kind::Float { size: 4 } => Value::Float(f64::from(f32::from_le_bytes(
                bytes[..4].try_into().unwrap_or([0; 4]),
            ))),
            Kind::Float { size: 8 } => {
                Value::Float(f64::from_le_bytes(bytes[..8].try_into().unwrap_or([0; 8])))
            }
            Kind::Array { elem, len } => {
                let esize = self.size_of(*elem);
                if esize == 0 {
                    return hex();
                }
                if self.is_char(*elem) {
                    let b = &bytes[..*len as usize];
                    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
                    return Value::Str(String::from_utf8_lossy(&b[..end]).into_owned());
                }
                Value::Array(
                    (0..*len as usize)
                        .map(|i| self.decode_depth(*elem, &bytes[i * esize..], depth + 1))
                        .collect(),
                )
            }
            Kind::Record { members, .. } => {
                let mut fields = Vec::with_capacity(members.len());
                for (i, m) in members.iter().enumerate() {
                    let name = if m.name.is_empty() {
                        format!("_{i}")
                    } else {
                        m.name.clone()
                    };
                    let v = if m.bitfield_size > 0 {
                        self.bitfield(m, bytes)
                    } else {
                        let at = (m.bit_offset / 8) as usize;
                        self.decode_depth(m.ty, bytes.get(at..).unwrap_or(&[]), depth + 1)
                    };
                    // Anonymous inner structs and unions: lift their fields.
                    match v {
                        Value::Record(inner) if m.name.is_empty() => fields.extend(inner),
                        v => fields.push((name, v)),
                    }
                }
                Value::Record(fields)
            }
            _ => hex(),
        }
    }

    fn is_char(&self, id: u32) -> bool {
        matches!(self.kind(self.resolve(id)),
            Kind::Int { name, size: 1, char, .. } if *char || name == "char")
    }

    fn bitfield(&self, m: &Member, bytes: &[u8]) -> Value {
        let start = (m.bit_offset / 8) as usize;
        let shift = m.bit_offset % 8;
        let n = (((shift + m.bitfield_size) as usize).div_ceil(8)).min(8);
        let raw = read_uint(bytes.get(start..).unwrap_or(&[]), n).unwrap_or(0) >> shift;
        let raw = if m.bitfield_size < 64 {
            raw & ((1u64 << m.bitfield_size) - 1)
        } else {
            raw
        };
        let signed = matches!(
            self.kind(self.resolve(m.ty)),
            Kind::Int { signed: true, .. } | Kind::Enum { signed: true, .. }
        );
        if signed {
            Value::Int(sign_extend(raw, m.bitfield_size))
        } else {
            Value::Uint(raw)
        }
    }
}

impl Value {
    /// Add `other` into `self` (integers, field by field): how per-CPU values are summed.
    /// Returns false when the values cannot be summed (then the first CPU's value stands).
    pub fn add(&mut self, other: &Value) -> bool {
        match (self, other) {
            (Value::Uint(a), Value::Uint(b)) => {
                *a = a.wrapping_add(*b);
                true
            }
            (Value::Int(a), Value::Int(b)) => {
                *a = a.wrapping_add(*b);
                true
            }
            (Value::Float(a), Value::Float(b)) => {
                *a += *b;
                true
            }
            (Value::Record(a), Value::Record(b)) if a.len() == b.len() => {
                let mut ok = true;
                for ((_, x), (_, y)) in a.iter_mut().zip(b) {
                    ok &= x.add(y) || x == y;
                }
                ok
            }
            (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
                let mut ok = true;
                for (x, y) in a.iter_mut().zip(b) {
                    ok &= x.add(y) || x == y;
                }
                ok
            }
            _ => false,
        }
    }

    /// The value as a number, for sorting maps by value.
    pub fn as_number(&self) -> Option<i128> {
        match self {
            Value::Int(i) => Some(i128::from(*i)),
            Value::Uint(u) => Some(i128::from(*u)),
            _ => None,
        }
    }

    /// True for an all-zero value (such array entries are not printed).
    pub fn is_zero(&self) -> bool {
        match self {
            Value::Int(0) | Value::Uint(0) | Value::Bool(false) => true,
            Value::Float(f) => *f == 0.0,
            Value::Str(s) => s.is_empty(),
            Value::Array(v) => v.iter().all(Value::is_zero),
            Value::Record(v) => v.iter().all(|(_, x)| x.is_zero()),
            Value::Hex(b) => b.iter().all(|&x| x == 0),
            _ => false,
        }
    }

    /// Text: numbers in decimal, strings as they are, `{a=1 b=2}` for records, `[1,2]` for
    /// arrays, hex bytes separated by spaces for untyped data.
    pub fn text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s, false);
        s
    }

    /// A top-level record as `a=1 b=2` (no braces); other values as [`Value::text`].
    pub fn fields_text(&self) -> String {
        let mut s = String::new();
        self.write_text(&mut s, true);
        s
    }

    /// A map key: records and arrays as a bpftrace-style tuple `a, b`.
    pub fn key_text(&self) -> String {
        match self {
            Value::Record(f) => f
                .iter()
                .map(|(_, v)| v.text())
                .collect::<Vec<_>>()
                .join(", "),
            other => other.text(),
        }
    }

    fn write_text(&self, s: &mut String, top: bool) {
        match self {
            Value::Int(i) => {
                let _ = write!(s, "{i}");
            }
            Value::Uint(u) => {
                let _ = write!(s, "{u}");
            }
            Value::Bool(b) => {
                let _ = write!(s, "{b}");
            }
            Value::Float(f) => {
                let _ = write!(s, "{f}");
            }
            Value::Str(t) => {
                for c in t.chars() {
                    if c.is_control() {
                        let _ = write!(s, "\\x{:02x}", c as u32);
                    } else {
                        s.push(c);
                    }
                }
            }
            Value::Enum(n) => s.push_str(n),
            Value::Array(v) => {
                s.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        s.push(',');
                    }
                    x.write_text(s, false);
                }
                s.push(']');
            }
            Value::Record(f) => {
                if !top {
                    s.push('{');
                }
                for (i, (name, x)) in f.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(name);
                    s.push('=');
                    x.write_text(s, false);
                }
                if !top {
                    s.push('}');
                }
            }
            Value::Hex(b) => {
                for (i, x) in b.iter().enumerate() {
                    if i > 0 {
                        s.push(' ');
                    }
                    let _ = write!(s, "{x:02x}");
                }
            }
        }
    }

    /// JSON: numbers, strings, objects for records, arrays; untyped bytes as a hex string.
    pub fn json(&self) -> String {
        match self {
            Value::Int(i) => i.to_string(),
            Value::Uint(u) => u.to_string(),
            Value::Bool(b) => b.to_string(),
            Value::Float(f) if f.is_finite() => format!("{f}"),
            Value::Float(_) => "null".into(),
            Value::Str(t) | Value::Enum(t) => json_string(t),
            Value::Array(v) => format!(
                "[{}]",
                v.iter().map(Value::json).collect::<Vec<_>>().join(", ")
            ),
            Value::Record(f) => format!(
                "{{{}}}",
                f.iter()
                    .map(|(k, v)| format!("{}: {}", json_string(k), v.json()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Value::Hex(b) => {
                let mut s = String::from("\"");
                for x in b {
                    let _ = write!(s, "{x:02x}");
                }
                s.push('"');
                s
            }
        }
    }
}

/// A JSON string literal (valid JSON for any input).
pub fn json_string(t: &str) -> String {
    let mut s = String::with_capacity(t.len() + 2);
    s.push('"');
    for c in t.chars() {
        match c {
            '"' => s.push_str("\\\""),
            '\\' => s.push_str("\\\\"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(s, "\\u{:04x}", c as u32);
            }
            c => s.push(c),
        }
    }
    s.push('"');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-built BTF: `struct event { unsigned int pid; char comm[4]; int neg:4; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0unsigned int\0char\0int\0event\0pid\0comm\0neg\0__ARRAY_SIZE_TYPE__\0";
        let off = |name: &str| {
            let pat = format!("\0{name}\0");
            strings
                .windows(pat.len())
                .position(|w| w == pat.as_bytes())
                .unwrap() as u32
                + 1
        };
        let mut t: Vec<u32> = Vec::new();
        // 1: unsigned int
        t.extend([off("unsigned int"), KIND_INT << 24, 4, 32]);
        // 2: char (signed)
        t.extend([off("char"), KIND_INT << 24, 1, (1 << 24) | 8]);
        // 3: int
        t.extend([off("int"), KIND_INT << 24, 4, (1 << 24) | 32]);
        // 4: char[4]
        t.extend([0, KIND_ARRAY << 24, 0, 2, 1, 4]);
        // 5: struct event (kind_flag: bitfield offsets)
        t.extend([off("event"), (1 << 31) | (KIND_STRUCT << 24) | 3, 12]);
        t.extend([off("pid"), 1, 0]);
        t.extend([off("comm"), 4, 32]);
        t.extend([off("neg"), 3, (4 << 24) | 64]);
        let types: Vec<u8> = t.iter().flat_map(|x| x.to_le_bytes()).collect();
        let mut out = Vec::new();
        out.extend(BTF_MAGIC.to_le_bytes());
        out.extend([1u8, 0]);
        for x in [
            24u32,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend(x.to_le_bytes());
        }
        out.extend(types);
        out.extend(strings);
        out
    }

    #[test]
    fn decodes_a_record_with_a_string_and_a_bitfield() {
        let btf = ObjectBtf::parse(&sample()).unwrap();
        let id = btf.record_named(&["event"]).unwrap();
        assert_eq!(btf.size_of(id), 12);
        let mut rec = Vec::new();
        rec.extend(42u32.to_le_bytes());
        rec.extend(b"ab\0\0");
        rec.extend(0x0000_000eu32.to_le_bytes()); // neg:4 = 0b1110 = -2
        let v = btf.decode(id, &rec);
        assert_eq!(v.fields_text(), "pid=42 comm=ab neg=-2");
        assert_eq!(v.json(), r#"{"pid": 42, "comm": "ab", "neg": -2}"#);
        assert_eq!(v.key_text(), "42, ab, -2");
        // Too short: hex.
        assert_eq!(btf.decode(id, &rec[..3]).text(), "2a 00 00");
    }

    #[test]
    fn untyped_values_and_sums() {
        assert_eq!(untyped(&7u64.to_le_bytes()), Value::Uint(7));
        assert_eq!(untyped(&[1, 2, 3]).text(), "01 02 03");
        assert_eq!(untyped(&[1, 2, 3]).json(), "\"010203\"");
        let mut a = Value::Record(vec![("n".into(), Value::Uint(2))]);
        assert!(a.add(&Value::Record(vec![("n".into(), Value::Uint(3))])));
        assert_eq!(a.fields_text(), "n=5");
        assert_eq!(json_string("a\"\u{1}"), "\"a\\\"\\u0001\"");
    }
    /// Raw BTF from type words (no names).
    fn raw_btf(words: &[u32]) -> Vec<u8> {
        let types: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let mut b = Vec::new();
        for w in [
            0x0001_eb9fu32,
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            1,
        ] {
            b.extend_from_slice(&w.to_le_bytes());
        }
        b.extend_from_slice(&types);
        b.push(0);
        b
    }

    #[test]
    fn an_array_of_itself_has_no_size_rather_than_overflowing_the_stack() {
        // #1: int; #2: an array whose element is #2.
        let btf = ObjectBtf::parse(&raw_btf(&[0, 1 << 24, 4, 32, 0, 3 << 24, 0, 2, 1, 4])).unwrap();
        assert_eq!(btf.size_of(2), 0);
        assert_eq!(btf.decode(2, &[0; 16]), Value::Hex(Vec::new()));
    }

    #[test]
    fn nested_arrays_past_usize_saturate() {
        // #1: u64; #2: u64[2^32-1]; #3: #2[2^32-1]; #4: #3[2^32-1].
        let m = u32::MAX;
        let btf = ObjectBtf::parse(&raw_btf(&[
            0,
            1 << 24,
            8,
            64,
            0,
            3 << 24,
            0,
            1,
            1,
            m,
            0,
            3 << 24,
            0,
            2,
            1,
            m,
            0,
            3 << 24,
            0,
            3,
            1,
            m,
        ]))
        .unwrap();
        assert_eq!(btf.size_of(4), usize::MAX);
        assert!(matches!(btf.decode(4, &[0; 64]), Value::Hex(_)));
    }

    #[test]
    fn int_bit_offset_past_64_decodes_as_zero() {
        // An int whose encoding puts its bits at offset 100.
        let btf = ObjectBtf::parse(&raw_btf(&[0, 1 << 24, 8, (100 << 16) | 64])).unwrap();
        assert_eq!(btf.decode(1, &[0xff; 8]), Value::Uint(0));
    }
}
