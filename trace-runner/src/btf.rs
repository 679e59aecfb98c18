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
use std::path::Path;
use std::sync::{Mutex, OnceLock};

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
    /// Function name -> (FUNC id, FUNC_PROTO id).
    funcs: HashMap<String, (u32, u32)>,
    /// The first type id of this BTF's own (for a module's: the first after the kernel's).
    first_own_id: u32,
}

struct Bytes(Vec<u8>);

impl Readable for Bytes {
    // btfparse reads a few bytes at a time, hundreds of thousands of times for the
    // kernel's BTF: this is written with plain indexing, which unoptimised builds (the
    // kernel matrix runs them under emulation) compile without a function call per step,
    // unlike slice ranges and `copy_from_slice`.
    fn read(&self, offset: u64, buffer: &mut [u8]) -> btfparse::Result<()> {
        let data: &[u8] = &self.0;
        let n = buffer.len();
        if offset > data.len() as u64 || data.len() - (offset as usize) < n {
            return Err(btfparse::Error::new(
                btfparse::ErrorKind::EOF,
                "read past the end of the BTF data",
            ));
        }
        let start = offset as usize;
        let mut i = 0;
        while i < n {
            buffer[i] = data[start + i];
            i += 1;
        }
        Ok(())
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

/// A module's BTF (`/sys/kernel/btf/MODULE`, split BTF on top of the kernel's) joined
/// with the kernel's, so that its types resolve; parsed once per module, `None` when the
/// module has no BTF (or is `vmlinux`).
pub fn module(name: &str) -> Option<&'static KernelTypes> {
    static MODULES: Mutex<Vec<(String, Option<&'static KernelTypes>)>> = Mutex::new(Vec::new());
    let mut cache = MODULES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, found)) = cache.iter().find(|(n, _)| n == name) {
        return *found;
    }
    let parsed = (|| {
        if name == "vmlinux" || name.contains('/') || name.starts_with('.') {
            return None;
        }
        let base = std::fs::read(VMLINUX_BTF).ok()?;
        let split = std::fs::read(Path::new("/sys/kernel/btf").join(name)).ok()?;
        let first_own_id = kernel()?.info.get().keys().max().copied().unwrap_or(0) + 1;
        let mut types = KernelTypes::parse(join_split(&base, &split)?)?;
        types.first_own_id = first_own_id;
        Some(&*Box::leak(Box::new(types)))
    })();
    cache.push((name.to_string(), parsed));
    parsed
}

/// The type and string sections of a BTF blob: `(types, strings)`.
fn btf_sections(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let u32_at = |at: usize| -> Option<u32> {
        Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?))
    };
    if data.get(0..2)? != [0x9f, 0xeb] {
        return None;
    }
    let hdr_len = u32_at(4)? as usize;
    let (type_off, type_len) = (u32_at(8)? as usize, u32_at(12)? as usize);
    let (str_off, str_len) = (u32_at(16)? as usize, u32_at(20)? as usize);
    let types =
        data.get(hdr_len + type_off..hdr_len.checked_add(type_off)?.checked_add(type_len)?)?;
    let strs = data.get(hdr_len + str_off..hdr_len.checked_add(str_off)?.checked_add(str_len)?)?;
    Some((types, strs))
}

/// One BTF blob with the types and strings of `base` followed by those of `split` (a
/// module's BTF): split BTF numbers its types after the base's and offsets its strings
/// by the base's string section, so the two sections simply follow each other.
/// Little-endian only (x86-64 and arm64).
pub fn join_split(base: &[u8], split: &[u8]) -> Option<Vec<u8>> {
    let (base_types, base_strs) = btf_sections(base)?;
    let (split_types, split_strs) = btf_sections(split)?;
    let type_len = u32::try_from(base_types.len() + split_types.len()).ok()?;
    let str_len = u32::try_from(base_strs.len() + split_strs.len()).ok()?;
    let mut out = Vec::with_capacity(24 + type_len as usize + str_len as usize);
    out.extend_from_slice(&[0x9f, 0xeb, 1, 0]);
    for v in [24, 0, type_len, type_len, str_len] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for part in [base_types, split_types, base_strs, split_strs] {
        out.extend_from_slice(part);
    }
    Some(out)
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
                        funcs.entry(n.clone()).or_insert((*id, *f.prototype_tid()));
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
            first_own_id: 0,
        })
    }

    /// A type as C writes it (`struct file *`, `size_t`), for listings.
    fn c_type(&self, tid: u32, depth: u32) -> String {
        if depth > 16 {
            return "?".into();
        }
        let named = |kind: &str| {
            let name = self.info.name_of(tid).unwrap_or_default();
            format!("{kind} {name}").trim_end().to_string()
        };
        match self.info.from_id(tid) {
            None | Some(TypeVariant::Void) => "void".into(),
            Some(TypeVariant::Ptr(p)) => format!("{} *", self.c_type(*p.tid(), depth + 1)),
            Some(TypeVariant::Const(c)) => format!("const {}", self.c_type(*c.tid(), depth + 1)),
            Some(TypeVariant::Volatile(v)) => {
                format!("volatile {}", self.c_type(*v.tid(), depth + 1))
            }
            Some(TypeVariant::Struct(_)) => named("struct"),
            Some(TypeVariant::Union(_)) => named("union"),
            Some(TypeVariant::Enum(_) | TypeVariant::Enum64(_)) => named("enum"),
            Some(TypeVariant::FuncProto(_)) => "void".into(),
            Some(_) => self.info.name_of(tid).unwrap_or_else(|| "?".into()),
        }
    }

    /// A function's parameters and return value as `bpftrace -lv` lists a kfunc's:
    /// `struct file * file`, ..., `ssize_t retval`.
    pub fn func_params_c(&self, func: &str) -> Option<Vec<String>> {
        let (_, proto) = *self.funcs.get(func)?;
        let TypeVariant::FuncProto(p) = self.info.from_id(proto)? else {
            return None;
        };
        let mut out: Vec<String> = p
            .parameter_list()
            .iter()
            .map(|param| {
                format!(
                    "{} {}",
                    self.c_type(param.tid(), 0),
                    param.name().unwrap_or_default()
                )
            })
            .collect();
        out.push(format!("{} retval", self.c_type(*p.return_tid(), 0)));
        Some(out)
    }

    /// The names of this BTF's own functions, unordered.
    pub fn func_names(&self) -> impl Iterator<Item = &str> {
        self.funcs
            .iter()
            .filter(|(_, (id, _))| *id >= self.first_own_id)
            .map(|(name, _)| name.as_str())
    }

    /// The id of the FUNC type named `func` (a kfunc program's `attach_btf_id`), among
    /// this BTF's own types (a module's, not the kernel's it builds on).
    pub fn func_id(&self, func: &str) -> Option<u32> {
        self.funcs
            .get(func)
            .map(|(id, _)| *id)
            .filter(|id| *id >= self.first_own_id)
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
        let (_, proto) = *self.funcs.get(func)?;
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

    /// A BTF blob of `types` and `strings` (each a list of u32 words / bytes).
    fn blob(types: &[u32], strings: &[u8]) -> Vec<u8> {
        let type_len = (types.len() * 4) as u32;
        let mut out = vec![0x9f, 0xeb, 1, 0];
        for v in [24, 0, type_len, type_len, strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for t in types {
            out.extend_from_slice(&t.to_le_bytes());
        }
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn module_btf_joins_the_kernels() {
        // Kernel: [1] int. Module (split): [2] proto `int (int x)`, [3] func `f`; its
        // string offsets follow the kernel's 5 bytes of strings.
        let base = blob(&[1, 1 << 24, 4, (1 << 24) | 32], b"\0int\0");
        let split = blob(
            &[0, (13 << 24) | 1, 1, 8, 1, 6, (12 << 24) | 1, 2],
            b"\0f\0x\0",
        );
        // Split BTF alone does not resolve; joined, it does.
        assert!(KernelTypes::parse(split.clone()).is_none_or(|t| t.func_signature("f").is_none()));
        let mut joined = KernelTypes::parse(join_split(&base, &split).unwrap()).unwrap();
        joined.first_own_id = 2;
        assert_eq!(joined.func_id("f"), Some(3));
        let sig = joined.func_signature("f").unwrap();
        let int = Type::Int {
            bytes: 4,
            signed: true,
        };
        assert_eq!(sig.params, [("x".to_string(), int.clone())]);
        assert_eq!(sig.ret, int);
        // A kernel function is not the module's.
        joined.funcs.insert("g".into(), (1, 2));
        assert_eq!(joined.func_id("g"), None);
        assert!(join_split(&base, b"not btf").is_none());
    }

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
        assert_eq!(
            k.func_params_c("vfs_read").unwrap(),
            [
                "struct file * file",
                "char * buf",
                "size_t count",
                "loff_t * pos",
                "ssize_t retval"
            ]
        );
    }
}
