//! Kernel types from the node's own BTF (`/sys/kernel/btf/vmlinux`), read at compile
//! time so that scripts need no kernel headers: struct and union layouts (for `->` and
//! `.` chains, `sizeof`, `offsetof`), typedefs, enum constants and function signatures.
//!
//! Parsing is done by the `btfparse` crate, once, on first use (a script that uses no
//! kernel type never pays for it). Types are handed to the front end as
//! [`trace_lang::types::Type`]s: integers, pointers, `char[N]` as strings, other arrays,
//! and structs/unions as [`Type::Record`] named `struct sock`, `union bpf_attr`, or
//! `struct #ID` (a BTF type id) for anonymous ones.

use std::collections::HashMap;
use std::sync::OnceLock;

use btfparse::{Integer32Value, Integer64Value, Offset, Readable, TypeInformation, TypeVariant};
use trace_lang::sema::{FieldInfo, FuncSignature};
use trace_lang::types::Type;

/// Where the running kernel publishes its BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// The parsed kernel BTF with name indexes.
pub struct KernelTypes {
    info: TypeInformation,
    /// `struct NAME` / `union NAME` -> type id (complete definitions only).
    records: HashMap<String, u32>,
    typedefs: HashMap<String, u32>,
    enum_values: HashMap<String, i64>,
    /// Function name -> FUNC_PROTO id.
    funcs: HashMap<String, u32>,
}

struct Bytes(Vec<u8>);

impl Readable for Bytes {
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        match start
            .checked_add(buffer.len())
            .and_then(|end| self.0.get(start..end))
        {
            Some(src) => {
                buffer.copy_from_slice(src);
                Ok(())
            }
            None => Err(btfparse::Error::new(
                btfparse::ErrorKind::EOF,
                "read past the end of the BTF data",
            )),
        }
    }
}

static KERNEL: OnceLock<Option<KernelTypes>> = OnceLock::new();

/// The running kernel's types, parsed on first use; `None` without BTF.
pub fn kernel() -> Option<&'static KernelTypes> {
    KERNEL
        .get_or_init(|| {
            let data = std::fs::read(VMLINUX_BTF).ok()?;
            KernelTypes::parse(data)
        })
        .as_ref()
}

/// Whether the kernel publishes BTF (without parsing it).
pub fn available() -> bool {
    std::path::Path::new(VMLINUX_BTF).is_file()
}

/// Members that newer kernels renamed, so that older scripts keep working:
/// `(record, old name, new name)`.
const RENAMED_FIELDS: &[(&str, &str, &str)] = &[
    // Linux 6.13 (sched: "nr_running" of a cfs_rq counts queued entities).
    ("struct cfs_rq", "nr_running", "nr_queued"),
    ("struct cfs_rq", "h_nr_running", "h_nr_queued"),
];

fn renamed_field(record: &str, field: &str) -> Option<&'static str> {
    RENAMED_FIELDS
        .iter()
        .find(|(r, old, _)| *r == record && *old == field)
        .map(|(_, _, new)| *new)
}

/// Type modifiers to look through.
fn strip(info: &TypeInformation, mut tid: u32) -> (u32, Option<TypeVariant>) {
    for _ in 0..32 {
        let Some(v) = info.from_id(tid) else {
            return (tid, None);
        };
        match &v {
            TypeVariant::Typedef(t) => tid = *t.tid(),
            TypeVariant::Const(t) => tid = *t.tid(),
            TypeVariant::Volatile(t) => tid = *t.tid(),
            TypeVariant::Restrict(t) => tid = *t.tid(),
            TypeVariant::TypeTag(t) => tid = *t.tid(),
            _ => return (tid, Some(v)),
        }
    }
    (tid, None)
}

impl KernelTypes {
    /// Parse raw BTF (as found in `/sys/kernel/btf/vmlinux`).
    pub fn parse(data: Vec<u8>) -> Option<KernelTypes> {
        let info = TypeInformation::new(&Bytes(data)).ok()?;
        let mut records = HashMap::new();
        let mut typedefs = HashMap::new();
        let mut enum_values = HashMap::new();
        let mut funcs = HashMap::new();
        for (id, v) in info.get() {
            match v {
                TypeVariant::Struct(s) => {
                    if let Some(n) = s.name() {
                        records.entry(format!("struct {n}")).or_insert(*id);
                    }
                }
                TypeVariant::Union(u) => {
                    if let Some(n) = u.name() {
                        records.entry(format!("union {n}")).or_insert(*id);
                    }
                }
                TypeVariant::Typedef(t) => {
                    if let Some(n) = t.name() {
                        typedefs.entry(n.clone()).or_insert(*id);
                    }
                }
                TypeVariant::Enum(e) => {
                    for nv in e.named_value_list() {
                        let v = match nv.value {
                            Integer32Value::Signed(v) => i64::from(v),
                            Integer32Value::Unsigned(v) => i64::from(v),
                        };
                        enum_values.entry(nv.name.clone()).or_insert(v);
                    }
                }
                TypeVariant::Enum64(e) => {
                    for nv in e.named_value_list() {
                        let v = match nv.value {
                            Integer64Value::Signed(v) => v,
                            Integer64Value::Unsigned(v) => v as i64,
                        };
                        enum_values.entry(nv.name.clone()).or_insert(v);
                    }
                }
                TypeVariant::Func(f) => {
                    if let Some(n) = f.name() {
                        funcs.entry(n.clone()).or_insert(*f.prototype_tid());
                    }
                }
                _ => {}
            }
        }
        Some(KernelTypes {
            info,
            records,
            typedefs,
            enum_values,
            funcs,
        })
    }

    /// The type id behind a record name (`struct sock`, `union x`, `struct #123`).
    fn record_id(&self, name: &str) -> Option<u32> {
        if let Some(id) = name.split_once('#').and_then(|(_, id)| id.parse().ok()) {
            return Some(id);
        }
        self.records.get(name.trim()).copied()
    }

    /// The members of a struct or union (type id), with the record's kind.
    fn members(&self, id: u32) -> Option<Vec<btfparse::Member>> {
        match strip(&self.info, id).1? {
            TypeVariant::Struct(s) => Some(s.member_list().clone()),
            TypeVariant::Union(u) => Some(u.member_list().clone()),
            _ => None,
        }
    }

    /// Find a member by name, looking into anonymous structs and unions as C does.
    /// Returns the member's type id and its offset (bits) from the record's start,
    /// and its bitfield size (0 when not a bitfield).
    fn find_member(&self, record: u32, field: &str, depth: u32) -> Option<(u32, u32, u32)> {
        if depth > 8 {
            return None;
        }
        let members = self.members(record)?;
        for m in &members {
            if m.name().as_deref() == Some(field) {
                let (bits, size) = match m.offset() {
                    Offset::ByteOffset(b) => (b * 8, 0),
                    Offset::BitOffsetAndSize(b, s) => (b, s),
                };
                return Some((m.tid(), bits, size));
            }
        }
        for m in members.iter().filter(|m| m.name().is_none()) {
            let base = match m.offset() {
                Offset::ByteOffset(b) => b * 8,
                Offset::BitOffsetAndSize(b, _) => b,
            };
            if let Some((tid, bits, size)) = self.find_member(m.tid(), field, depth + 1) {
                return Some((tid, base + bits, size));
            }
        }
        None
    }

    /// The size in bytes of a type id.
    fn size_of(&self, tid: u32) -> Option<u64> {
        self.info.size_of(tid).ok().map(|n| n as u64)
    }

    /// The script type of a BTF type id.
    pub fn script_type(&self, tid: u32) -> Type {
        let (id, v) = strip(&self.info, tid);
        let Some(v) = v else { return Type::U64 };
        match v {
            TypeVariant::Void => Type::Int {
                bytes: 1,
                signed: false,
            },
            TypeVariant::Int(i) => {
                let bytes = (*i.size()).clamp(1, 8) as u8;
                let bytes = if bytes.is_power_of_two() { bytes } else { 8 };
                Type::Int {
                    bytes,
                    signed: *i.signed(),
                }
            }
            TypeVariant::Enum(e) => Type::Int {
                bytes: (*e.size()).clamp(1, 8).next_power_of_two() as u8,
                signed: *e.signed(),
            },
            TypeVariant::Enum64(e) => Type::Int {
                bytes: 8,
                signed: *e.signed(),
            },
            TypeVariant::Float(f) => Type::Int {
                bytes: (*f.size()).clamp(1, 8) as u8,
                signed: true,
            },
            TypeVariant::Ptr(p) => {
                let (_, to) = strip(&self.info, *p.tid());
                let to = match to {
                    Some(TypeVariant::FuncProto(_)) | None => return Type::U64,
                    Some(TypeVariant::Ptr(_)) => Type::U64,
                    _ => self.script_type(*p.tid()),
                };
                Type::Ptr {
                    to: Box::new(to),
                    user: false,
                }
            }
            TypeVariant::Array(a) => {
                let len = *a.element_count();
                let (_, elem) = strip(&self.info, *a.element_tid());
                // `char x[N]` is a string; `u8`/`unsigned char` arrays stay byte arrays.
                if let Some(TypeVariant::Int(i)) = &elem {
                    if *i.size() == 1 && i.name().as_deref() == Some("char") {
                        return Type::Str(len as usize);
                    }
                }
                Type::Array {
                    elem: Box::new(self.script_type(*a.element_tid())),
                    len,
                }
            }
            TypeVariant::Struct(s) => match s.name() {
                Some(n) => Type::Record(format!("struct {n}")),
                None => Type::Record(format!("struct #{id}")),
            },
            TypeVariant::Union(u) => match u.name() {
                Some(n) => Type::Record(format!("union {n}")),
                None => Type::Record(format!("union #{id}")),
            },
            TypeVariant::Fwd(f) => {
                Type::Record(format!("struct {}", f.name().clone().unwrap_or_default()))
            }
            _ => Type::U64,
        }
    }

    pub fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
        let id = self.record_id(record)?;
        let (tid, bit_offset, bitfield_size) = self.find_member(id, field, 0).or_else(|| {
            let renamed = renamed_field(record, field)?;
            self.find_member(id, renamed, 0)
        })?;
        let ty = self.script_type(tid);
        // A bitfield: either flagged in the member offset, or an int type narrower
        // than its storage (BTF without kind_flag).
        let (bit_offset, bits) = if bitfield_size > 0 {
            (bit_offset, bitfield_size)
        } else if let (_, Some(TypeVariant::Int(i))) = strip(&self.info, tid) {
            let bits = *i.bits() as u32;
            if bits > 0 && bits < 8 * *i.size() as u32 {
                (bit_offset + *i.offset() as u32, bits)
            } else {
                (bit_offset, 0)
            }
        } else {
            (bit_offset, 0)
        };
        if bits == 0 {
            return Some(FieldInfo {
                offset: bit_offset / 8,
                ty,
                bitfield: None,
            });
        }
        let shift = bit_offset % 8;
        let unit = [1u32, 2, 4, 8]
            .into_iter()
            .find(|u| shift + bits <= u * 8)?;
        let signed = matches!(ty, Type::Int { signed: true, .. });
        Some(FieldInfo {
            offset: bit_offset / 8,
            ty: Type::Int {
                bytes: unit as u8,
                signed,
            },
            bitfield: Some((shift as u8, bits as u8)),
        })
    }

    /// `sizeof` of `struct X`, `union X`, a typedef name, or `struct #ID`.
    pub fn type_size(&self, name: &str) -> Option<u64> {
        if let Some(id) = self.record_id(name) {
            return self.size_of(id);
        }
        self.typedefs
            .get(name.trim())
            .and_then(|id| self.size_of(*id))
    }

    pub fn typedef(&self, name: &str) -> Option<Type> {
        let words: Vec<&str> = name.split_whitespace().collect();
        let (base, stars) = match words.as_slice() {
            [base] => (base.trim_end_matches('*'), base.matches('*').count()),
            [base, rest @ ..] if rest.iter().all(|w| w.chars().all(|c| c == '*')) => {
                (*base, rest.iter().map(|w| w.len()).sum())
            }
            _ => return None,
        };
        let mut ty = self.script_type(*self.typedefs.get(base)?);
        for _ in 0..stars {
            ty = Type::Ptr {
                to: Box::new(ty),
                user: false,
            };
        }
        Some(ty)
    }

    pub fn enum_value(&self, name: &str) -> Option<i64> {
        self.enum_values.get(name).copied()
    }

    pub fn func_signature(&self, func: &str) -> Option<FuncSignature> {
        let proto = *self.funcs.get(func)?;
        let TypeVariant::FuncProto(p) = self.info.from_id(proto)? else {
            return None;
        };
        let params = p
            .parameter_list()
            .iter()
            .map(|param| {
                (
                    param.name().unwrap_or_default(),
                    self.script_type(param.tid()),
                )
            })
            .collect();
        Some(FuncSignature {
            params,
            ret: self.script_type(*p.return_tid()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vmlinux_layouts() {
        let Some(k) = kernel() else {
            eprintln!("no kernel BTF here: skipped");
            return;
        };
        let f = k.record_field("struct sock", "__sk_common").unwrap();
        assert_eq!(f.offset, 0);
        assert_eq!(f.ty, Type::Record("struct sock_common".into()));
        // skc_dport lives in an anonymous union inside an anonymous struct.
        let f = k.record_field("struct sock_common", "skc_dport").unwrap();
        assert_eq!(
            f.ty,
            Type::Int {
                bytes: 2,
                signed: false
            }
        );
        assert_eq!(f.offset, 12);
        let comm = k.record_field("struct task_struct", "comm").unwrap();
        assert_eq!(comm.ty, Type::Str(16));
        let parent = k.record_field("struct task_struct", "real_parent").unwrap();
        assert_eq!(
            parent.ty,
            Type::Ptr {
                to: Box::new(Type::Record("struct task_struct".into())),
                user: false
            }
        );
        assert!(k.type_size("struct task_struct").unwrap() > 1000);
        assert_eq!(k.enum_value("TCP_FIN_WAIT1"), Some(4));
        assert!(k.record_field("struct sock", "nope").is_none());
        assert!(k.func_signature("tcp_connect").unwrap().params.len() == 1);
    }
}
