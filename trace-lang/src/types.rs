//! The types semantic analysis gives to expressions and map values.

/// The type of an expression's value.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Type {
    /// No value (a statement-like call such as `printf`), or not yet analysed.
    #[default]
    None,
    /// An integer of 1, 2, 4 or 8 bytes. Arithmetic is done on 64 bits.
    Int { bytes: u8, signed: bool },
    /// A NUL-padded string in a fixed buffer of this many bytes (bpftrace's default is 64;
    /// `comm` is 16).
    Str(usize),
    /// A tuple `(a, b)`.
    Tuple(Vec<Type>),
    /// The `args` builtin of a tracepoint (only valid before `->field`).
    Ctx,
    /// The `probe` builtin: the name of the attach point that fired (carried as an id).
    Probe,
    /// A kernel address symbolized at print time (`func` in a kprobe, `ksym(x)`).
    Ksym,
    /// A user address symbolized at print time (`func` in a uprobe, `usym(x)`).
    Usym,
    /// A pointer to a value of the given type (kernel memory unless `user`).
    Ptr { to: Box<Type>, user: bool },
    /// `kstack` / `ustack` (and `kstack(perf, 10)`): a stack id collected in the
    /// program and symbolized at print time. Added by the front end; the runner
    /// decides the exact layout (for `ustack` it may also need the pid).
    Stack {
        user: bool,
        limit: u32,
        mode: StackMode,
    },
    /// A fixed-size array inside a record, e.g. the `args` field
    /// `unsigned long args[6]` of `raw_syscalls:sys_enter`: indexing gives `elem`.
    Array { elem: Box<Type>, len: u32 },
    /// A named C aggregate (`struct sock`), seen behind a `Ptr` from a cast such as
    /// `(struct sock *)arg0` or as a member of another; its fields come from BTF.
    Record(String),
    /// `ntop([af,] addr)`: `{u64 af; u8 addr[16]}`, printed as an IPv4/IPv6 address.
    Inet,
    /// `macaddr(p)`: 6 bytes (padded to 8), printed `AA:BB:CC:DD:EE:FF`.
    MacAddr,
    /// `buf(p, n)`: `{u64 len; u8 data[n]}`, printed with `%r` as escaped bytes.
    Buf(usize),
    /// `strftime(fmt, ns)`: `{u64 format index; u64 ns since boot}`, formatted at print time.
    Timestamp,
    /// `cgroup_path(id)`: a cgroup id, resolved to its path at print time.
    CgroupPath,
    /// A script-defined struct or union as a value (`*(struct Foo *)p`, a struct
    /// member), copied with its layout: variables, map keys and values, tuples and
    /// `print()` carry it whole. Field access works on it as on [`Type::Record`].
    Struct(Box<StructType>),
}

/// The layout of a [`Type::Struct`] value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructType {
    /// `struct Foo` (the name its fields are looked up by).
    pub name: String,
    pub size: u32,
    /// Named members in declaration order (those of anonymous members inlined).
    pub fields: Vec<StructField>,
}

/// One member of a [`StructType`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StructField {
    pub name: String,
    pub offset: u32,
    pub ty: Type,
    /// `(shift, bits)` within the integer at `offset`, for a bitfield.
    pub bitfield: Option<(u8, u8)>,
}

/// How a stack is printed (`kstack(perf)`, `ustack(raw)`), default `Bpftrace`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum StackMode {
    #[default]
    Bpftrace,
    Perf,
    Raw,
}

impl Type {
    /// A signed 64-bit integer: the type of literals and most builtins.
    pub const I64: Type = Type::Int {
        bytes: 8,
        signed: true,
    };
    /// An unsigned 64-bit integer.
    pub const U64: Type = Type::Int {
        bytes: 8,
        signed: false,
    };

    pub fn is_int(&self) -> bool {
        matches!(self, Type::Int { .. })
    }

    pub fn is_str(&self) -> bool {
        matches!(self, Type::Str(_))
    }

    /// Integers and pointers: what arithmetic, conditions and `%d` accept.
    pub fn is_integral(&self) -> bool {
        matches!(self, Type::Int { .. } | Type::Ptr { .. })
    }

    /// Alignment of the value in a tuple or C memory: integers at their width, strings
    /// and byte buffers at 1, aggregates at their largest member's.
    pub fn align(&self) -> usize {
        match self {
            Type::Int { bytes, .. } => usize::from(*bytes).max(1),
            Type::Str(_) => 1,
            Type::Array { elem, .. } => elem.align(),
            Type::Tuple(items) => items.iter().map(Type::align).max().unwrap_or(1),
            Type::Struct(s) => s.fields.iter().map(|f| f.ty.align()).max().unwrap_or(1),
            Type::None | Type::Ctx | Type::Record(_) => 1,
            _ => 8,
        }
    }

    /// Bytes one element of this type occupies in C memory (integers at their width).
    pub fn memory_size(&self) -> usize {
        match self {
            Type::Int { bytes, .. } => usize::from(*bytes),
            t => t.size(),
        }
    }

    /// Bytes the value occupies in a map key, map value or printf record.
    pub fn size(&self) -> usize {
        match self {
            Type::None | Type::Ctx | Type::Record(_) => 0,
            Type::Int { .. }
            | Type::Probe
            | Type::Ksym
            | Type::Ptr { .. }
            | Type::MacAddr
            | Type::CgroupPath => 8,
            // `{address or stack id; pid}`: user addresses mean something only with
            // the process they belong to.
            Type::Usym | Type::Stack { .. } | Type::Timestamp => 16,
            Type::Inet => 24,
            Type::Buf(n) => 8 + n.div_ceil(8) * 8,
            // Elements as laid out in memory (`u8 addr[16]` is 16 bytes).
            Type::Array { elem, len } => elem.memory_size() * *len as usize,
            Type::Str(n) => *n,
            Type::Tuple(items) => tuple_layout(items).1,
            Type::Struct(s) => s.size as usize,
        }
    }
}

/// The offsets of a tuple's elements and its size: laid out as a C struct of them
/// (bpftrace's tuple layout), so `sizeof(((int8)1, (int64)2))` is 16.
pub fn tuple_layout(items: &[Type]) -> (Vec<usize>, usize) {
    let mut at = 0usize;
    let mut align = 1usize;
    let mut offsets = Vec::with_capacity(items.len());
    for t in items {
        let a = t.align();
        align = align.max(a);
        at = at.div_ceil(a) * a;
        offsets.push(at);
        at += t.memory_size();
    }
    (offsets, at.div_ceil(align) * align)
}

/// What a map's values are, decided by the first assignment to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MapValue {
    /// `count()`
    Count,
    /// `sum(x)`
    Sum,
    /// `avg(x)`
    Avg,
    /// `min(x)`
    Min,
    /// `max(x)`
    Max,
    /// `stats(x)`
    Stats,
    /// `hist(x)`
    Hist,
    /// `lhist(x, min, max, step)`
    Lhist { min: i64, max: i64, step: i64 },
    /// `@m = expr` with a plain value of this type.
    Value(Type),
}

impl std::fmt::Display for Type {
    /// bpftrace's spelling: `int64`, `uint32`, `string[16]`, `(int64,string[64])`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Type::None => write!(f, "none"),
            Type::Int { bytes, signed } => {
                write!(
                    f,
                    "{}int{}",
                    if *signed { "" } else { "u" },
                    *bytes as u32 * 8
                )
            }
            Type::Str(n) => write!(f, "string[{n}]"),
            Type::Tuple(items) => {
                write!(f, "(")?;
                for (i, t) in items.iter().enumerate() {
                    if i > 0 {
                        write!(f, ",")?;
                    }
                    write!(f, "{t}")?;
                }
                write!(f, ")")
            }
            Type::Ctx => write!(f, "ctx"),
            Type::Probe => write!(f, "probe"),
            Type::Ksym => write!(f, "ksym"),
            Type::Usym => write!(f, "usym"),
            Type::Ptr { to, .. } => write!(f, "{to} *"),
            Type::Stack { user, .. } => write!(f, "{}", if *user { "ustack" } else { "kstack" }),
            Type::Array { elem, len } => write!(f, "{elem}[{len}]"),
            Type::Record(name) => write!(f, "{name}"),
            Type::Inet => write!(f, "inet"),
            Type::MacAddr => write!(f, "macaddr"),
            Type::Buf(n) => write!(f, "buffer[{n}]"),
            Type::Timestamp => write!(f, "timestamp"),
            Type::CgroupPath => write!(f, "cgroup_path"),
            Type::Struct(s) => write!(f, "{}", s.name),
        }
    }
}

impl std::fmt::Display for MapValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MapValue::Count => write!(f, "count"),
            MapValue::Sum => write!(f, "sum"),
            MapValue::Avg => write!(f, "avg"),
            MapValue::Min => write!(f, "min"),
            MapValue::Max => write!(f, "max"),
            MapValue::Stats => write!(f, "stats"),
            MapValue::Hist => write!(f, "hist"),
            MapValue::Lhist { .. } => write!(f, "lhist"),
            MapValue::Value(t) => write!(f, "{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int(bytes: u8) -> Type {
        Type::Int {
            bytes,
            signed: true,
        }
    }

    /// bpftrace 0.17 prints these sizes for `sizeof` of the same tuples.
    #[test]
    fn tuples_are_laid_out_as_c_structs() {
        assert_eq!(
            tuple_layout(&[int(1), int(8), int(1), int(8)]),
            (vec![0, 8, 16, 24], 32)
        );
        assert_eq!(tuple_layout(&[int(1), int(2), int(4)]), (vec![0, 2, 4], 8));
        assert_eq!(tuple_layout(&[int(4), int(2), int(1)]), (vec![0, 4, 6], 8));
        // `((int32)1, int x[4])`: 20; strings are byte-aligned.
        let arr = Type::Array {
            elem: Box::new(int(4)),
            len: 4,
        };
        assert_eq!(tuple_layout(&[int(4), arr]).1, 20);
        assert_eq!(
            tuple_layout(&[int(1), Type::Str(7), int(8), int(2), Type::Str(4)]),
            (vec![0, 1, 8, 16, 18], 24)
        );
    }
}
