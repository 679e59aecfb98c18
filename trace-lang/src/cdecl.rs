//! C type definitions written at the top of a script (`struct`, `union`, `enum`,
//! `typedef`), as bpftrace accepts them before the probes: the declaration parser (over
//! the script's own tokens, so errors are located) and the C layout rules (alignment,
//! padding, bitfields as clang lays them out for x86-64 and BPF). Pure: kernel types a
//! definition uses by value are sized through a callback (the runner answers from BTF).
//!
//! [`parse_definition`] turns one top-level definition into [`Decl`]s (the parser keeps
//! them in [`crate::ast::Program::c_defs`]); [`CTypes::build`] lays them out, and sema
//! consults the resulting table before the kernel's BTF, so a script definition of
//! `struct task_struct` overrides the kernel's, as in bpftrace.

use std::collections::HashMap;

use crate::diag::Diagnostic;
use crate::lexer::{Token, TokenKind};
use crate::sema::FieldInfo;
use crate::span::Span;
use crate::types::{StructField, StructType, Type};

/// One top-level definition as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Decl {
    /// `struct X { ... }` / `union X { ... }` (possibly also declaring nothing else).
    Record(RecordSyn),
    /// `enum X { A, B = 2 }`.
    Enum(EnumSyn),
    /// `typedef SPEC DECLARATOR;`
    Typedef(TypeSpec, Declarator),
}

/// A type specifier: the part of a declaration before the declarators.
#[derive(Debug, Clone, PartialEq)]
pub struct TypeSpec {
    pub kind: SpecKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SpecKind {
    Int {
        bytes: u8,
        signed: bool,
    },
    /// Plain `char`: an array of it is a string, as in bpftrace.
    Char,
    Void,
    /// A typedef name (script-defined or a fixed-width name such as `uint32_t`).
    Named(String),
    /// `struct X` / `union X`, with its body when one is written here.
    Record(Box<RecordSyn>),
    /// `enum X`, with its body when one is written here.
    Enum(Box<EnumSyn>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordSyn {
    pub union: bool,
    pub name: Option<String>,
    /// `None` for a reference (`struct X *p`), `Some` for a definition.
    pub members: Option<Vec<MemberSyn>>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemberSyn {
    pub spec: TypeSpec,
    /// `None` for an anonymous struct/union member (its fields are the parent's).
    pub decl: Option<Declarator>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnumSyn {
    pub name: Option<String>,
    pub values: Option<Vec<(String, i64)>>,
    pub span: Span,
}

/// `**name[2][3] : 4` (`name` empty for an unnamed bitfield).
#[derive(Debug, Clone, PartialEq)]
pub struct Declarator {
    pub ptrs: usize,
    pub name: String,
    pub dims: Vec<u32>,
    pub bits: Option<u32>,
    pub span: Span,
}

fn syntax(t: &Token, expecting: &str) -> Diagnostic {
    Diagnostic::new(
        t.span,
        format!(
            "syntax error in C definition, unexpected {}, expecting {expecting}",
            t.kind.describe()
        ),
    )
}

/// A cursor over the tokens of one definition.
struct P<'a> {
    toks: &'a [Token],
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> &Token {
        &self.toks[self.i.min(self.toks.len() - 1)]
    }
    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.i < self.toks.len() {
            self.i += 1;
        }
        t
    }
    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek().kind, TokenKind::Sym(x) if x == s)
    }
    fn eat(&mut self, s: &str) -> bool {
        if self.is_sym(s) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn expect(&mut self, s: &str) -> Result<Token, Diagnostic> {
        if self.is_sym(s) {
            Ok(self.next())
        } else {
            Err(syntax(self.peek(), s))
        }
    }
    fn ident(&mut self) -> Option<String> {
        match &self.peek().kind {
            TokenKind::Ident(s) => {
                let s = s.clone();
                self.i += 1;
                Some(s)
            }
            _ => None,
        }
    }
    fn int(&mut self) -> Result<i64, Diagnostic> {
        let neg = self.eat("-");
        match self.peek().kind {
            TokenKind::Int(v) => {
                self.i += 1;
                Ok(if neg { v.wrapping_neg() } else { v })
            }
            _ => Err(syntax(self.peek(), "integer")),
        }
    }

    fn spec(&mut self) -> Result<TypeSpec, Diagnostic> {
        let start = self.peek().span;
        let mut words: Vec<String> = Vec::new();
        while let TokenKind::Ident(w) = &self.peek().kind {
            match w.as_str() {
                "const" | "volatile" | "static" | "extern" | "register" | "restrict" => {
                    self.i += 1;
                }
                "struct" | "union" if words.is_empty() => {
                    let union = w == "union";
                    self.i += 1;
                    let name = self.ident();
                    let members = if self.is_sym("{") {
                        Some(self.members()?)
                    } else {
                        None
                    };
                    if name.is_none() && members.is_none() {
                        return Err(syntax(self.peek(), "a name or {"));
                    }
                    let span = start.to(self.toks[self.i - 1].span);
                    self.qualifiers();
                    return Ok(TypeSpec {
                        kind: SpecKind::Record(Box::new(RecordSyn {
                            union,
                            name,
                            members,
                            span,
                        })),
                        span,
                    });
                }
                "enum" if words.is_empty() => {
                    self.i += 1;
                    let name = self.ident();
                    let values = if self.is_sym("{") {
                        Some(self.enumerators()?)
                    } else {
                        None
                    };
                    if name.is_none() && values.is_none() {
                        return Err(syntax(self.peek(), "a name or {"));
                    }
                    let span = start.to(self.toks[self.i - 1].span);
                    self.qualifiers();
                    return Ok(TypeSpec {
                        kind: SpecKind::Enum(Box::new(EnumSyn { name, values, span })),
                        span,
                    });
                }
                "unsigned" | "signed" | "char" | "short" | "int" | "long" | "_Bool" | "bool"
                | "void" => {
                    words.push(w.clone());
                    self.i += 1;
                }
                _ if words.is_empty() => {
                    let name = w.clone();
                    self.i += 1;
                    self.qualifiers();
                    return Ok(TypeSpec {
                        kind: SpecKind::Named(name),
                        span: start,
                    });
                }
                _ => break,
            }
        }
        if words.is_empty() {
            return Err(syntax(self.peek(), "a type"));
        }
        let span = start.to(self.toks[self.i - 1].span);
        let kind = if words == ["void"] {
            SpecKind::Void
        } else if words == ["char"] {
            SpecKind::Char
        } else {
            let (bytes, signed) = int_words(&words).ok_or_else(|| {
                Diagnostic::new(span, format!("invalid type '{}'", words.join(" ")))
            })?;
            SpecKind::Int { bytes, signed }
        };
        Ok(TypeSpec { kind, span })
    }

    fn qualifiers(&mut self) {
        while matches!(&self.peek().kind, TokenKind::Ident(w) if matches!(w.as_str(), "const" | "volatile" | "restrict"))
        {
            self.i += 1;
        }
    }

    fn members(&mut self) -> Result<Vec<MemberSyn>, Diagnostic> {
        self.expect("{")?;
        let mut out = Vec::new();
        while !self.eat("}") {
            if self.eat(";") {
                continue;
            }
            let spec = self.spec()?;
            if self.is_sym(";") || self.is_sym("}") {
                // An anonymous struct/union member; anything else declares nothing.
                if matches!(&spec.kind, SpecKind::Record(r) if r.name.is_none()) {
                    out.push(MemberSyn { spec, decl: None });
                }
                self.eat(";");
                continue;
            }
            loop {
                let decl = self.declarator(true)?;
                out.push(MemberSyn {
                    spec: spec.clone(),
                    decl: Some(decl),
                });
                if !self.eat(",") {
                    break;
                }
            }
            // clang accepts (with a warning) a missing `;` before `}`.
            if !self.is_sym("}") {
                self.expect(";")?;
            }
        }
        Ok(out)
    }

    fn enumerators(&mut self) -> Result<Vec<(String, i64)>, Diagnostic> {
        self.expect("{")?;
        let mut out = Vec::new();
        let mut next = 0i64;
        while !self.eat("}") {
            let Some(name) = self.ident() else {
                return Err(syntax(self.peek(), "an enumerator name"));
            };
            if self.eat("=") {
                next = self.int()?;
            }
            out.push((name, next));
            next = next.wrapping_add(1);
            if !self.eat(",") {
                self.expect("}")?;
                break;
            }
        }
        Ok(out)
    }

    fn declarator(&mut self, member: bool) -> Result<Declarator, Diagnostic> {
        let start = self.peek().span;
        let mut ptrs = 0;
        while self.eat("*") {
            ptrs += 1;
            self.qualifiers();
        }
        if self.is_sym("(") {
            return Err(Diagnostic::new(
                self.peek().span,
                "function pointers are not supported in script type definitions",
            ));
        }
        let name = match self.ident() {
            Some(n) => n,
            None if member && self.is_sym(":") => String::new(),
            None => return Err(syntax(self.peek(), "a name")),
        };
        let mut dims = Vec::new();
        while self.eat("[") {
            let t = self.peek().clone();
            let n = self.int()?;
            if !(0..=1 << 24).contains(&n) {
                return Err(Diagnostic::new(t.span, format!("invalid array size {n}")));
            }
            dims.push(n as u32);
            self.expect("]")?;
        }
        let mut bits = None;
        if member && self.eat(":") {
            let t = self.peek().clone();
            let n = self.int()?;
            if !(0..=64).contains(&n) {
                return Err(Diagnostic::new(
                    t.span,
                    format!("invalid bitfield width {n}"),
                ));
            }
            bits = Some(n as u32);
        }
        let span = start.to(self.toks[self.i - 1].span);
        Ok(Declarator {
            ptrs,
            name,
            dims,
            bits,
            span,
        })
    }
}

/// C integer type words (`unsigned long long`) as `(bytes, signed)`; LP64.
fn int_words(words: &[String]) -> Option<(u8, bool)> {
    let mut signed = true;
    let mut bytes = 4;
    let mut longs = 0;
    let mut base = 0;
    for w in words {
        match w.as_str() {
            "unsigned" => signed = false,
            "signed" => signed = true,
            "char" => {
                bytes = 1;
                base += 1
            }
            "_Bool" | "bool" => {
                bytes = 1;
                signed = false;
                base += 1
            }
            "short" => {
                bytes = 2;
                base += 1
            }
            "int" => {}
            "long" => longs += 1,
            _ => return None,
        }
    }
    if base > 1 || (base == 1 && longs > 0) || longs > 2 {
        return None;
    }
    if longs > 0 {
        bytes = 8;
    }
    Some((bytes, signed))
}

/// Parse one top-level definition (`tokens` ends with the `}` or `;` that closes it).
/// A name where a type is expected is taken as a typedef name (resolved when laid out).
pub fn parse_definition(tokens: &[Token]) -> Result<Decl, Diagnostic> {
    let mut p = P { toks: tokens, i: 0 };
    if matches!(&p.peek().kind, TokenKind::Ident(w) if w == "typedef") {
        p.next();
        let spec = p.spec()?;
        let decl = p.declarator(false)?;
        p.expect(";")?;
        return Ok(Decl::Typedef(spec, decl));
    }
    let spec = p.spec()?;
    p.eat(";");
    if p.i < tokens.len() {
        return Err(syntax(p.peek(), ";"));
    }
    match spec.kind {
        SpecKind::Record(r) if r.members.is_some() => Ok(Decl::Record(*r)),
        SpecKind::Enum(e) if e.values.is_some() => Ok(Decl::Enum(*e)),
        _ => Err(Diagnostic::new(
            spec.span,
            "a definition at the top of a script must define a struct, union or enum",
        )),
    }
}

// ---- layout -------------------------------------------------------------------

/// A laid-out struct or union.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordDef {
    /// `struct Foo`, or a generated name for an anonymous one.
    pub name: String,
    pub size: u32,
    pub align: u32,
    pub members: Vec<Member>,
}

/// One member; an anonymous struct/union member has `name: None` and its fields are
/// found through it.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: Option<String>,
    /// Byte offset (for a bitfield: of the storage unit to load).
    pub offset: u32,
    pub ty: Type,
    /// For a bitfield: `(shift, bits)` within the loaded unit (little endian).
    pub bitfield: Option<(u8, u8)>,
}

/// The types a script defines, laid out.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CTypes {
    records: HashMap<String, RecordDef>,
    typedefs: HashMap<String, Type>,
    enums: HashMap<String, i64>,
    anon: usize,
}

/// Sizes of kernel records (`struct task_struct`) used by value in a definition.
pub type KernelSize<'a> = &'a dyn Fn(&str) -> Option<u64>;

/// Fixed-width typedef names scripts use without including a header.
fn builtin_typedef(name: &str) -> Option<Type> {
    let (bytes, signed) = match name {
        "int8_t" | "__s8" | "s8" | "int8" => (1, true),
        "uint8_t" | "__u8" | "u8" | "uint8" => (1, false),
        "int16_t" | "__s16" | "s16" | "int16" => (2, true),
        "uint16_t" | "__u16" | "u16" | "uint16" => (2, false),
        "int32_t" | "__s32" | "s32" | "int32" | "pid_t" => (4, true),
        "uint32_t" | "__u32" | "u32" | "uint32" => (4, false),
        "int64_t" | "__s64" | "s64" | "int64" | "ssize_t" | "intptr_t" | "off_t" => (8, true),
        "uint64_t" | "__u64" | "u64" | "uint64" | "size_t" | "uintptr_t" => (8, false),
        _ => return None,
    };
    Some(Type::Int { bytes, signed })
}

impl CTypes {
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.typedefs.is_empty() && self.enums.is_empty()
    }

    /// Lay out the definitions in order; `kernel` sizes kernel records used by value.
    pub fn build(decls: &[Decl], kernel: KernelSize) -> Result<CTypes, Diagnostic> {
        let mut t = CTypes::default();
        for d in decls {
            match d {
                Decl::Record(r) => {
                    t.record(r, kernel)?;
                }
                Decl::Enum(e) => t.enumeration(e),
                Decl::Typedef(spec, decl) => {
                    let base = t.spec(spec, kernel)?;
                    let ty = t.declared(base, spec.kind == SpecKind::Char, decl, kernel)?;
                    t.typedefs.insert(decl.name.clone(), ty);
                }
            }
        }
        Ok(t)
    }

    fn enumeration(&mut self, e: &EnumSyn) {
        for (name, v) in e.values.iter().flatten() {
            self.enums.insert(name.clone(), *v);
        }
    }

    fn spec(&mut self, s: &TypeSpec, kernel: KernelSize) -> Result<Type, Diagnostic> {
        Ok(match &s.kind {
            SpecKind::Int { bytes, signed } => Type::Int {
                bytes: *bytes,
                signed: *signed,
            },
            SpecKind::Void => Type::None,
            SpecKind::Char => Type::Int {
                bytes: 1,
                signed: true,
            },
            SpecKind::Named(n) => match self.typedefs.get(n) {
                Some(t) => t.clone(),
                None => builtin_typedef(n)
                    .ok_or_else(|| Diagnostic::new(s.span, format!("unknown type name '{n}'")))?,
            },
            SpecKind::Record(r) => match &r.members {
                Some(_) => Type::Record(self.record(r, kernel)?),
                None => Type::Record(format!(
                    "{} {}",
                    if r.union { "union" } else { "struct" },
                    r.name.as_deref().unwrap_or("")
                )),
            },
            SpecKind::Enum(e) => {
                self.enumeration(e);
                Type::Int {
                    bytes: 4,
                    signed: false,
                }
            }
        })
    }

    /// Apply a declarator (pointers, array dimensions) to a base type.
    fn declared(
        &self,
        base: Type,
        char: bool,
        d: &Declarator,
        kernel: KernelSize,
    ) -> Result<Type, Diagnostic> {
        let mut ty = base;
        if d.ptrs == 0 && ty == Type::None {
            return Err(Diagnostic::new(d.span, "a member cannot have type 'void'"));
        }
        for _ in 0..d.ptrs {
            if ty == Type::None {
                // `void *`: a pointer to bytes.
                ty = Type::Int {
                    bytes: 1,
                    signed: false,
                };
            }
            ty = Type::Ptr {
                to: Box::new(ty),
                user: false,
            };
        }
        if !d.dims.is_empty() {
            self.size_align(&ty, kernel)
                .map_err(|m| Diagnostic::new(d.span, m))?;
        }
        let mut dims = &d.dims[..];
        if let (true, 0, Some((last, rest))) = (char, d.ptrs, d.dims.split_last()) {
            // `char s[N]` is a string of N bytes (bpftrace reads it as one).
            ty = Type::Str(*last as usize);
            dims = rest;
        }
        for len in dims.iter().rev() {
            ty = Type::Array {
                elem: Box::new(ty),
                len: *len,
            };
        }
        Ok(ty)
    }

    /// `(size, alignment)` of a member type.
    pub fn size_align(&self, t: &Type, kernel: KernelSize) -> Result<(u32, u32), String> {
        Ok(match t {
            Type::Int { bytes, .. } => (u32::from(*bytes), u32::from(*bytes)),
            Type::Ptr { .. } => (8, 8),
            Type::Str(n) => (*n as u32, 1),
            Type::Array { elem, len } => {
                let (s, a) = self.size_align(elem, kernel)?;
                (s * len, a)
            }
            Type::Record(name) => match self.records.get(name) {
                Some(r) => (r.size, r.align),
                None => match kernel(name) {
                    Some(n) => (n as u32, 8.min(n.next_power_of_two().max(1)) as u32),
                    None => return Err(format!("field has incomplete type '{name}'")),
                },
            },
            t => (t.size() as u32, 8),
        })
    }

    /// Lay out a record definition and register it; returns its name.
    fn record(&mut self, r: &RecordSyn, kernel: KernelSize) -> Result<String, Diagnostic> {
        let kw = if r.union { "union" } else { "struct" };
        let name = match &r.name {
            Some(n) => format!("{kw} {n}"),
            None => {
                self.anon += 1;
                format!("{kw} (anonymous#{})", self.anon)
            }
        };
        // As in bpftrace, a script's redefinition of a kernel type (`struct task_struct
        // { ... }`) does not bring in the kernel types it would use by value. Asked only
        // when a member needs a kernel type, so that other definitions do not wait for
        // the kernel's types to be read.
        let redefines_kernel = std::cell::OnceCell::new();
        let outer = kernel;
        let guarded = |n: &str| {
            let redefines =
                *redefines_kernel.get_or_init(|| r.name.is_some() && outer(&name).is_some());
            if redefines {
                None
            } else {
                outer(n)
            }
        };
        let kernel: KernelSize = &guarded;
        let mut members = Vec::new();
        // Offsets in bits; a union restarts every member at 0.
        let mut bit = 0u64;
        let mut size_bits = 0u64;
        let mut align = 1u32;
        for m in r.members.iter().flatten() {
            let base = self.spec(&m.spec, kernel)?;
            let Some(d) = &m.decl else {
                let (s, a) = self
                    .size_align(&base, kernel)
                    .map_err(|e| Diagnostic::new(m.spec.span, e))?;
                let at = if r.union {
                    0
                } else {
                    bit.div_ceil(u64::from(a) * 8) * u64::from(a) * 8
                };
                members.push(Member {
                    name: None,
                    offset: (at / 8) as u32,
                    ty: base,
                    bitfield: None,
                });
                align = align.max(a);
                bit = at + u64::from(s) * 8;
                size_bits = size_bits.max(bit);
                continue;
            };
            let ty = self.declared(base, m.spec.kind == SpecKind::Char, d, kernel)?;
            let (s, a) = self
                .size_align(&ty, kernel)
                .map_err(|e| Diagnostic::new(d.span, e))?;
            let start = if r.union { 0 } else { bit };
            if let Some(bits) = d.bits {
                let Type::Int { .. } = ty else {
                    return Err(Diagnostic::new(
                        d.span,
                        format!("bitfield '{}' has non-integral type '{ty}'", d.name),
                    ));
                };
                let unit = u64::from(s) * 8;
                if u64::from(bits) > unit {
                    return Err(Diagnostic::new(
                        d.span,
                        format!("width of bitfield '{}' ({bits} bits) exceeds the width of its type ({unit} bits)", d.name),
                    ));
                }
                let mut at = start;
                if bits == 0 {
                    // `int :0` starts the next unit.
                    bit = at.div_ceil(unit) * unit;
                    size_bits = size_bits.max(bit);
                    continue;
                }
                if at / unit != (at + u64::from(bits) - 1) / unit {
                    at = at.div_ceil(unit) * unit;
                }
                let unit_start = at / unit * unit;
                if !d.name.is_empty() {
                    align = align.max(a);
                    members.push(Member {
                        name: Some(d.name.clone()),
                        offset: (unit_start / 8) as u32,
                        ty,
                        bitfield: Some(((at - unit_start) as u8, bits as u8)),
                    });
                }
                bit = at + u64::from(bits);
                size_bits = size_bits.max(bit);
                continue;
            }
            let at = start.div_ceil(u64::from(a) * 8) * u64::from(a) * 8;
            align = align.max(a);
            members.push(Member {
                name: Some(d.name.clone()),
                offset: (at / 8) as u32,
                ty,
                bitfield: None,
            });
            bit = at + u64::from(s) * 8;
            size_bits = size_bits.max(bit);
        }
        let size = size_bits.div_ceil(8).div_ceil(u64::from(align)) * u64::from(align);
        self.records.insert(
            name.clone(),
            RecordDef {
                name: name.clone(),
                size: size as u32,
                align,
                members,
            },
        );
        Ok(name)
    }

    /// Add a record laid out elsewhere (a uprobe binary's, from its debug info).
    pub fn add_record(&mut self, record: RecordDef) {
        self.records.insert(record.name.clone(), record);
    }

    /// Add a typedef defined elsewhere (a uprobe binary's, from its debug info).
    pub fn add_typedef(&mut self, name: &str, ty: Type) {
        self.typedefs.insert(name.to_string(), ty);
    }

    /// A record the script defines (`struct Foo`).
    pub fn record_def(&self, name: &str) -> Option<&RecordDef> {
        self.records.get(name)
    }

    /// A member of a script-defined record, looking into anonymous members as C does.
    pub fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
        let r = self.records.get(record)?;
        for m in &r.members {
            match &m.name {
                Some(n) if n == field => {
                    let ty = match (&m.bitfield, &m.ty) {
                        // The unit to load, as wide as the declared type; bpftrace
                        // reads bitfields as unsigned.
                        (Some(_), Type::Int { bytes, .. }) => Type::Int {
                            bytes: *bytes,
                            signed: false,
                        },
                        (_, t) => t.clone(),
                    };
                    return Some(FieldInfo {
                        offset: m.offset,
                        ty,
                        bitfield: m.bitfield,
                    });
                }
                None => {
                    if let Type::Record(inner) = &m.ty {
                        if let Some(mut f) = self.record_field(inner, field) {
                            f.offset += m.offset;
                            return Some(f);
                        }
                    }
                }
                _ => {}
            }
        }
        None
    }

    /// The type an expression of type `t` has as a value: a script-defined record
    /// becomes a [`Type::Struct`] carrying its layout (also inside arrays); other
    /// types (kernel records, pointers) are unchanged.
    pub fn value_type(&self, t: &Type) -> Type {
        match t {
            Type::Record(name) => match self.records.get(name) {
                Some(r) => {
                    let mut fields = Vec::new();
                    self.flatten(r, 0, &mut fields);
                    Type::Struct(Box::new(StructType {
                        name: name.clone(),
                        size: r.size,
                        fields,
                    }))
                }
                None => t.clone(),
            },
            Type::Array { elem, len } => Type::Array {
                elem: Box::new(self.value_type(elem)),
                len: *len,
            },
            _ => t.clone(),
        }
    }

    fn flatten(&self, r: &RecordDef, base: u32, out: &mut Vec<StructField>) {
        for m in &r.members {
            match &m.name {
                Some(name) => {
                    let ty = match (&m.bitfield, &m.ty) {
                        (Some(_), Type::Int { bytes, .. }) => Type::Int {
                            bytes: *bytes,
                            signed: false,
                        },
                        (_, t) => self.value_type(t),
                    };
                    out.push(StructField {
                        name: name.clone(),
                        offset: base + m.offset,
                        ty,
                        bitfield: m.bitfield,
                    });
                }
                None => {
                    if let Type::Record(inner) = &m.ty {
                        if let Some(inner) = self.records.get(inner) {
                            self.flatten(inner, base + m.offset, out);
                        }
                    }
                }
            }
        }
    }

    /// `sizeof` of a script-defined record or typedef name.
    pub fn type_size(&self, name: &str) -> Option<u64> {
        if let Some(r) = self.records.get(name) {
            return Some(u64::from(r.size));
        }
        let t = self.typedefs.get(name)?;
        self.size_align(t, &|_| None)
            .ok()
            .map(|(s, _)| u64::from(s))
    }

    /// The type a script typedef stands for.
    pub fn typedef(&self, name: &str) -> Option<Type> {
        self.typedefs.get(name).cloned()
    }

    /// The value of a script enum constant.
    pub fn enum_value(&self, name: &str) -> Option<i64> {
        self.enums.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexer::Lexer;

    fn tokens(src: &str) -> Vec<Token> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let t = lx.next_token().unwrap();
            if t.kind == TokenKind::Eof {
                out.push(t);
                break;
            }
            out.push(t);
        }
        out
    }

    /// Build the definitions of `src`, split at top-level `;` / closing `}`.
    fn build(src: &str) -> Result<CTypes, Diagnostic> {
        let toks = tokens(src);
        let mut decls = Vec::new();
        let mut cur = Vec::new();
        let mut depth = 0;
        for t in toks {
            if t.kind == TokenKind::Eof {
                break;
            }
            let close = match t.kind {
                TokenKind::Sym("{") => {
                    depth += 1;
                    false
                }
                TokenKind::Sym("}") => {
                    depth -= 1;
                    false
                }
                TokenKind::Sym(";") => depth == 0,
                _ => false,
            };
            cur.push(t);
            if close {
                decls.push(parse_definition(&cur)?);
                cur.clear();
            }
        }
        CTypes::build(&decls, &|n| match n {
            "struct task_struct" => Some(9984),
            "struct thread_info" => Some(24),
            _ => None,
        })
    }

    #[test]
    fn kernel_types_are_asked_for_only_by_members_that_need_them() {
        // Reading the kernel's BTF takes a second or more in a debug build: a script
        // that only redefines `struct Foo` (bpftrace's "struct override" test, whose
        // program calls the function a second after it starts) must not wait for it.
        let asked = std::cell::Cell::new(0);
        let kernel = |n: &str| {
            asked.set(asked.get() + 1);
            (n == "struct thread_info").then_some(24)
        };
        let defs = |src: &str| {
            let toks: Vec<Token> = tokens(src)
                .into_iter()
                .filter(|t| t.kind != TokenKind::Eof)
                .collect();
            vec![parse_definition(&toks).unwrap()]
        };
        let t = CTypes::build(
            &defs("struct Foo { int b; char c[4]; struct Foo *next; };"),
            &kernel,
        )
        .unwrap();
        assert_eq!(t.type_size("struct Foo"), Some(16));
        assert_eq!(asked.get(), 0);
        let t = CTypes::build(&defs("struct Bar { struct thread_info x; };"), &kernel).unwrap();
        assert_eq!(t.type_size("struct Bar"), Some(24));
        assert!(asked.get() > 0);
    }

    /// `(name, offset, bitfield)` of a member.
    type Placed = (String, u32, Option<(u8, u8)>);

    fn layout(t: &CTypes, rec: &str) -> (u32, Vec<Placed>) {
        let r = t.record_def(rec).unwrap();
        (
            r.size,
            r.members
                .iter()
                .map(|m| (m.name.clone().unwrap_or_default(), m.offset, m.bitfield))
                .collect(),
        )
    }

    fn offs(v: &[(&str, u32)]) -> Vec<Placed> {
        v.iter().map(|(n, o)| (n.to_string(), *o, None)).collect()
    }

    // Expected sizes and offsets below were printed once by a C program built with clang
    // for x86-64 (sizeof/offsetof; bitfield positions from the bytes a store sets), whose
    // layout rules the BPF target shares. Kernel records used by value are sized by the
    // callback and assumed 8-byte aligned.

    #[test]
    fn padding_and_alignment() {
        let t = build("struct A { char c; int i; char d; long l; short s; };").unwrap();
        assert_eq!(
            layout(&t, "struct A"),
            (
                32,
                offs(&[("c", 0), ("i", 4), ("d", 8), ("l", 16), ("s", 24)])
            )
        );
        let t = build("struct B { char a; char b[3]; short s; };").unwrap();
        assert_eq!(
            layout(&t, "struct B"),
            (6, offs(&[("a", 0), ("b", 1), ("s", 4)]))
        );
    }

    #[test]
    fn arrays_nested_and_multidimensional() {
        let t = build(
            "struct B { int y[2][2]; }; struct W { char a; struct B b; int *p[3]; uint8_t u[10]; };",
        )
        .unwrap();
        assert_eq!(t.type_size("struct B"), Some(16));
        assert_eq!(
            layout(&t, "struct W"),
            (64, offs(&[("a", 0), ("b", 4), ("p", 24), ("u", 48)]))
        );
        let f = t.record_field("struct B", "y").unwrap();
        assert_eq!(
            f.ty,
            Type::Array {
                elem: Box::new(Type::Array {
                    elem: Box::new(Type::Int {
                        bytes: 4,
                        signed: true
                    }),
                    len: 2
                }),
                len: 2
            }
        );
    }

    #[test]
    fn unions_and_anonymous_members() {
        let t = build("union U { char c; long l; int i[3]; };").unwrap();
        assert_eq!(t.type_size("union U"), Some(16));
        let t = build("struct S { int a; union { char c; long l; }; struct { short x, y; }; };")
            .unwrap();
        assert_eq!(t.type_size("struct S"), Some(24));
        assert_eq!(t.record_field("struct S", "l").unwrap().offset, 8);
        assert_eq!(t.record_field("struct S", "y").unwrap().offset, 18);
        assert!(t.record_field("struct S", "z").is_none());
    }

    #[test]
    fn nested_definitions_without_final_semicolons() {
        // clang accepts a missing `;` before `}` (bpftrace's struct tests rely on it).
        let t = build("struct Foo { struct { int m[1] } y; struct { int n } a; };").unwrap();
        assert_eq!(t.type_size("struct Foo"), Some(8));
        assert_eq!(t.record_field("struct Foo", "a").unwrap().offset, 4);
    }

    #[test]
    fn char_arrays_are_strings() {
        // bpftrace types `char s[N]` as a string; other byte arrays stay arrays.
        let t = build("struct F { char s[5]; uint8_t b[10]; char m[2][3]; char *p; };").unwrap();
        assert_eq!(t.record_field("struct F", "s").unwrap().ty, Type::Str(5));
        assert!(matches!(
            t.record_field("struct F", "b").unwrap().ty,
            Type::Array { len: 10, .. }
        ));
        assert_eq!(
            t.record_field("struct F", "m").unwrap().ty,
            Type::Array {
                elem: Box::new(Type::Str(3)),
                len: 2
            }
        );
        assert_eq!(t.record_field("struct F", "p").unwrap().offset, 24);
    }

    #[test]
    fn bitfields() {
        let t = build("struct Foo { unsigned int a:4, b:8, c:3, d:1, e:16; };").unwrap();
        let (size, m) = layout(&t, "struct Foo");
        assert_eq!(size, 4);
        let bf: Vec<_> = m.iter().map(|(_, o, b)| (*o, b.unwrap())).collect();
        assert_eq!(
            bf,
            [
                (0, (0, 4)),
                (0, (4, 8)),
                (0, (12, 3)),
                (0, (15, 1)),
                (0, (16, 16))
            ]
        );
        // A bitfield that would straddle its unit starts the next one: f moves to bit 32.
        let t = build("struct Bar { short a:4, b:8, c:3, d:1; int e:9, f:15, g:1, h:2, i:5; };")
            .unwrap();
        let (size, m) = layout(&t, "struct Bar");
        assert_eq!(size, 8);
        let bf: Vec<_> = m
            .iter()
            .map(|(n, o, b)| (n.as_str(), *o, b.unwrap()))
            .collect();
        assert_eq!(
            bf,
            [
                ("a", 0, (0, 4)),
                ("b", 0, (4, 8)),
                ("c", 0, (12, 3)),
                ("d", 0, (15, 1)),
                ("e", 0, (16, 9)),
                ("f", 4, (0, 15)),
                ("g", 4, (15, 1)),
                ("h", 4, (16, 2)),
                ("i", 4, (18, 5)),
            ]
        );
        let t = build("struct Z { char a; int :0; char b; };").unwrap();
        assert_eq!(layout(&t, "struct Z"), (5, offs(&[("a", 0), ("b", 4)])));
    }

    #[test]
    fn enums_typedefs_and_kernel_members() {
        let t = build(
            "enum E { A, B = 5, C, D = -1 }; typedef struct { int x; } point_t; typedef unsigned long long u64x; struct K { struct task_struct t; point_t p; u64x q; enum E e; };",
        )
        .unwrap();
        assert_eq!(t.enum_value("C"), Some(6));
        assert_eq!(t.enum_value("D"), Some(-1));
        assert_eq!(t.type_size("point_t"), Some(4));
        assert_eq!(
            t.typedef("u64x"),
            Some(Type::Int {
                bytes: 8,
                signed: false
            })
        );
        assert_eq!(t.record_field("struct K", "q").unwrap().offset, 9992);
        assert_eq!(t.type_size("struct K"), Some(10008));
    }

    #[test]
    fn errors_are_located() {
        let src = "struct A { int x; foo_t y; };";
        let e = build(src).unwrap_err();
        assert_eq!(e.message, "unknown type name 'foo_t'");
        assert_eq!(&src[e.span.start..e.span.end], "foo_t");
        let src = "struct A { int x[; };";
        let e = build(src).unwrap_err();
        assert!(e.message.contains("expecting integer"), "{}", e.message);
        assert_eq!(e.span.start, src.find(';').unwrap());
        let e = build("struct A { struct inode i; };").unwrap_err();
        assert_eq!(e.message, "field has incomplete type 'struct inode'");
        // A kernel type used by value resolves, except in a redefinition of a kernel
        // type (bpftrace: "field has incomplete type").
        let t = build("struct foo { struct thread_info x; };").unwrap();
        assert_eq!(t.type_size("struct foo"), Some(24));
        let e = build("struct task_struct { struct thread_info x; };").unwrap_err();
        assert_eq!(e.message, "field has incomplete type 'struct thread_info'");
        let e = build("struct A { char c:9; };").unwrap_err();
        assert!(e.message.contains("exceeds"), "{}", e.message);
    }
}
