//! Typed reads of kernel (and user) memory: `p->field`, `s.field`, `a[i]` and `*p` over
//! kernel structs whose layouts come from BTF (through the node facts), and arrays inside
//! tracepoint records. An access chain computes one address (offsets folded in as it
//! goes: `((struct sock *)arg0)->__sk_common.skc_dport` is one pointer plus 12) and the
//! leaf is copied onto the BPF stack with `bpf_probe_read_kernel` (or `_user` when the
//! chain started from a user pointer, e.g. a syscall argument); only pointers met on
//! the way (`curtask->real_parent->pid`) cost a read each.

use trace_lang::ast::{BinOp, Expr, ExprKind, UnOp};
use trace_lang::sema::FieldInfo;
use trace_lang::span::Span;
use trace_lang::types::Type;
use trace_lang::Diagnostic;

use super::{err, ProgGen};
use crate::insn::{helper, Alu, Cond, Size, FP, R0, R1, R2, R3, R6};

/// The record a field access reads from: `(record name, through a pointer?)`.
fn record_of(t: &Type) -> Option<(&str, bool)> {
    match t {
        Type::Record(r) => Some((r, false)),
        Type::Struct(s) => Some((&s.name, false)),
        Type::Ptr { to, .. } => match to.as_ref() {
            Type::Record(r) => Some((r, true)),
            _ => None,
        },
        _ => None,
    }
}

impl ProgGen<'_> {
    /// Whether `e` denotes memory (a struct member, an array element, `*p` of a
    /// struct) that must be read rather than computed.
    pub(super) fn is_memory(e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Field { expr, .. } => match record_of(&expr.ty) {
                Some((_, true)) => true,
                Some((_, false)) => Self::is_memory(expr) || Self::is_held(expr),
                None => expr.ty == Type::Ctx && matches!(e.ty, Type::Array { .. }),
            },
            ExprKind::Index { expr, .. } => match &expr.ty {
                Type::Ptr { .. } => true,
                Type::Array { .. } => Self::is_memory(expr) || Self::is_held(expr),
                _ => false,
            },
            ExprKind::Unary {
                op: UnOp::Deref,
                expr,
            } => {
                matches!(&expr.ty, Type::Ptr { to, .. } if matches!(to.as_ref(), Type::Record(_)))
            }
            _ => false,
        }
    }

    /// Whether `e` is an array or struct held whole in a variable or a map value
    /// (its members and elements are then read from there).
    fn is_held(e: &Expr) -> bool {
        matches!(e.kind, ExprKind::Var(_) | ExprKind::Map(_))
            && matches!(e.ty, Type::Array { .. } | Type::Struct(_))
    }

    /// The layout of `record.field`: from the script's own definitions, else from the
    /// kernel's BTF.
    fn kernel_field(&self, record: &str, field: &str, span: Span) -> Result<FieldInfo, Diagnostic> {
        if self.t.types.record_def(record).is_some() {
            return self
                .t
                .types
                .record_field(record, field)
                .ok_or_else(|| err(span, format!("'{record}' has no field named '{field}'")));
        }
        if !self.env.has_kernel_types() {
            return Err(err(
                span,
                "kernel types need BTF (/sys/kernel/btf/vmlinux), which this kernel lacks",
            ));
        }
        self.env
            .record_field(record, field)
            .ok_or_else(|| err(span, format!("'{record}' has no field named '{field}'")))
    }

    /// Size in bytes of one element of type `t` in memory.
    pub(super) fn memory_size(&self, t: &Type, span: Span) -> Result<usize, Diagnostic> {
        Ok(match t {
            Type::Record(r) if self.t.types.record_def(r).is_some() => {
                self.t.types.type_size(r).unwrap_or(0) as usize
            }
            Type::Array { elem, len } => self.memory_size(elem, span)? * *len as usize,
            Type::Record(r) => self
                .env
                .type_size(r)
                .map(|n| n as usize)
                .ok_or_else(|| err(span, format!("the size of '{r}' is unknown")))?,
            Type::Int { bytes, .. } => usize::from(*bytes),
            t => t.size(),
        })
    }

    /// r0 = the address of memory expression `e`; returns whether it is user memory.
    pub(super) fn gen_addr(&mut self, e: &Expr) -> Result<bool, Diagnostic> {
        match &e.kind {
            ExprKind::Field { expr, field, .. } if expr.ty == Type::Ctx => {
                let f = self.field(field, e.span)?;
                self.asm.mov(R0, R6);
                self.asm.alu_imm(Alu::Add, R0, f.offset as i32);
                Ok(false)
            }
            ExprKind::Field { expr, field, .. } => {
                let (record, pointer) = record_of(&expr.ty)
                    .ok_or_else(|| err(e.span, "internal error: field of a non-record"))?;
                let record = record.to_string();
                let user = if pointer {
                    self.gen_int(expr)?;
                    matches!(expr.ty, Type::Ptr { user: true, .. })
                } else {
                    self.gen_addr(expr)?
                };
                let f = self.kernel_field(&record, field, e.span)?;
                if f.offset != 0 {
                    self.asm.alu_imm(Alu::Add, R0, f.offset as i32);
                }
                Ok(user)
            }
            ExprKind::Index { expr, index } => {
                let (elem, user) = match &expr.ty {
                    Type::Array { elem, .. } => {
                        let elem = elem.as_ref().clone();
                        (elem, self.gen_addr(expr)?)
                    }
                    Type::Ptr { to, user } => {
                        let (elem, user) = (to.as_ref().clone(), *user);
                        self.gen_int(expr)?;
                        (elem, user)
                    }
                    _ => return Err(err(e.span, "internal error: index of a non-array")),
                };
                let size = self.memory_size(&elem, e.span)?;
                if let ExprKind::Int(i) = index.kind {
                    self.asm.alu_imm(Alu::Add, R0, (i as usize * size) as i32);
                } else {
                    let base = self.alloc(8, e.span)?;
                    self.asm.store(Size::DW, FP, base, R0);
                    self.gen_int(index)?;
                    self.asm.alu_imm(Alu::Mul, R0, size as i32);
                    self.asm.load(Size::DW, R1, FP, base);
                    self.asm.alu_reg(Alu::Add, R0, R1);
                }
                Ok(user)
            }
            ExprKind::Unary {
                op: UnOp::Deref,
                expr,
            } => {
                self.gen_int(expr)?;
                Ok(matches!(expr.ty, Type::Ptr { user: true, .. }))
            }
            ExprKind::Var(name) if Self::is_held(e) => {
                let (off, _) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(e.span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                self.stack_ptr(R0, off);
                Ok(false)
            }
            ExprKind::Map(m) if Self::is_held(e) => {
                // The value in the map (a missing entry reads as zeros: the read helper
                // clears its destination when the address is 0).
                let info = self.user_map(m)?;
                let key = self.build_key(m, None)?;
                self.asm.load_map(R1, info.kernel_map);
                self.stack_ptr(R2, key);
                self.asm.call(helper::MAP_LOOKUP_ELEM);
                // The verifier allows offsets only on a checked pointer; on the null
                // path r0 is the scalar 0.
                let checked = self.asm.new_label();
                self.asm.jump_imm(Cond::Ne, R0, 0, checked);
                self.asm.mov_imm(R0, 0);
                self.asm.bind(checked);
                Ok(false)
            }
            _ => Err(err(e.span, "internal error: not a memory expression")),
        }
    }

    /// The bitfield `(shift, bits)` of a struct member access, if it is one.
    fn bitfield_of(&self, e: &Expr) -> Result<Option<(u8, u8)>, Diagnostic> {
        if let ExprKind::Field { expr, field, .. } = &e.kind {
            if let Some((record, _)) = record_of(&expr.ty) {
                return Ok(self.kernel_field(record, field, e.span)?.bitfield);
            }
        }
        Ok(None)
    }

    /// r0 = the integer or pointer stored at memory expression `e`.
    pub(super) fn gen_memory_int(&mut self, e: &Expr) -> Result<(), Diagnostic> {
        let bitfield = self.bitfield_of(e)?;
        let user = self.gen_addr(e)?;
        let (bytes, signed) = match e.ty {
            Type::Int { bytes, signed } => (bytes, signed),
            _ => (8, false),
        };
        self.probe_read_int(bytes, signed && bitfield.is_none(), user, e.span)?;
        if let Some((shift, bits)) = bitfield {
            let a = &mut self.asm;
            if signed {
                a.alu_imm(Alu::Lsh, R0, 64 - i32::from(shift) - i32::from(bits));
                a.alu_imm(Alu::Arsh, R0, 64 - i32::from(bits));
            } else {
                if shift > 0 {
                    a.alu_imm(Alu::Rsh, R0, i32::from(shift));
                }
                if bits < 32 {
                    a.alu_imm(Alu::And, R0, ((1u64 << bits) - 1) as i32);
                } else if bits < 64 {
                    a.load_const(R1, ((1u64 << bits) - 1) as i64);
                    a.alu_reg(Alu::And, R0, R1);
                }
            }
        }
        Ok(())
    }

    /// r0 = `lhs == rhs` (or `!=`) for values compared byte for byte: arrays, structs,
    /// buffers (of any sizes: bytes past the shorter one count as zero) and tuples.
    pub(super) fn gen_bytes_equality(
        &mut self,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let equal_value = match op {
            BinOp::Eq => 1,
            BinOp::Ne => 0,
            _ => {
                return Err(err(
                    span,
                    "these values can only be compared with == and !=",
                ))
            }
        };
        let (ln, rn) = (lhs.ty.size(), rhs.ty.size());
        let mark = self.stack;
        let (l, r) = self.zeroed_copies(lhs, rhs)?;
        let a = &mut self.asm;
        let differ = a.new_label();
        let done = a.new_label();
        // Both copies are zero-padded to 8 bytes: compare in words.
        let words = ln.max(rn).div_ceil(8);
        for i in 0..words {
            let at = 8 * i as i16;
            if 8 * i < ln {
                a.load(Size::DW, R1, FP, l + at);
            } else {
                a.mov_imm(R1, 0);
            }
            if 8 * i < rn {
                a.load(Size::DW, R2, FP, r + at);
            } else {
                a.mov_imm(R2, 0);
            }
            a.jump_reg(Cond::Ne, R1, R2, differ);
        }
        a.mov_imm(R0, equal_value);
        a.jump(done);
        a.bind(differ);
        a.mov_imm(R0, 1 - equal_value);
        a.bind(done);
        self.stack = mark;
        Ok(())
    }

    /// r0 = `ptr + n` / `ptr - n` (or `n + ptr`), `n` counted in elements as in C:
    /// `(struct A *)1024 - 5` is `1024 - 5 * sizeof(struct A)`.
    pub(super) fn gen_pointer_arith(
        &mut self,
        e: &Expr,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
    ) -> Result<(), Diagnostic> {
        let (ptr, int) = if matches!(lhs.ty, Type::Ptr { .. }) {
            (lhs, rhs)
        } else {
            (rhs, lhs)
        };
        let Type::Ptr { to, .. } = &ptr.ty else {
            return Err(err(
                e.span,
                "internal error: pointer arithmetic without a pointer",
            ));
        };
        let scale = match to.as_ref() {
            // `void *` (typed as bytes) and unknown kernel records count bytes.
            Type::Record(r) if self.t.types.record_def(r).is_none() => {
                self.env.type_size(r).unwrap_or(1) as i32
            }
            t => self.memory_size(t, e.span)?.max(1) as i32,
        };
        let mark = self.stack;
        let tmp = self.alloc(8, e.span)?;
        self.gen_int(int)?;
        if scale != 1 {
            self.asm.alu_imm(Alu::Mul, R0, scale);
        }
        self.asm.store(Size::DW, FP, tmp, R0);
        self.gen_int(ptr)?;
        self.asm.load(Size::DW, R1, FP, tmp);
        self.asm
            .alu_reg(if op == BinOp::Sub { Alu::Sub } else { Alu::Add }, R0, R1);
        self.stack = mark;
        Ok(())
    }

    /// `tuple.N`: the tuple is written to a temporary on the stack; returns the stack
    /// offset of element N and its size. (The temporary lives to the end of the
    /// statement.)
    pub(super) fn tuple_element(
        &mut self,
        tuple: &Expr,
        field: &str,
        span: Span,
    ) -> Result<(i16, usize), Diagnostic> {
        let Type::Tuple(items) = &tuple.ty else {
            return Err(err(span, "internal error: element of a non-tuple"));
        };
        let i: usize = field
            .parse()
            .ok()
            .filter(|i| *i < items.len())
            .ok_or_else(|| err(span, format!("the tuple has no element {field}")))?;
        let (offsets, size) = trace_lang::types::tuple_layout(items);
        let base = match self.stack_place(tuple) {
            Some(at) => at,
            None => {
                let tmp = self.alloc(size, span)?;
                self.zero(tmp, size);
                self.gen_into(tuple, tmp)?;
                tmp
            }
        };
        Ok((base + offsets[i] as i16, items[i].memory_size()))
    }

    /// Where a tuple held in a variable (or an element of one) is on the stack.
    fn stack_place(&self, e: &Expr) -> Option<i16> {
        match &e.kind {
            ExprKind::Var(name) => self.vars.get(name).map(|(off, _)| *off),
            ExprKind::Field { expr, field, .. } => {
                let Type::Tuple(items) = &expr.ty else {
                    return None;
                };
                let i: usize = field.parse().ok().filter(|i| *i < items.len())?;
                let base = self.stack_place(expr)?;
                Some(base + trace_lang::types::tuple_layout(items).0[i] as i16)
            }
            _ => None,
        }
    }

    /// Copy the bytes of memory expression `e` (a string, an array or a struct) to `FP + off`.
    pub(super) fn gen_memory_into(&mut self, e: &Expr, off: i16) -> Result<(), Diagnostic> {
        let size = e.ty.size();
        let user = self.gen_addr(e)?;
        self.asm.mov(R3, R0);
        self.stack_ptr(R1, off);
        self.asm.mov_imm(R2, size as i32);
        let (read, name) = self.read_helper(user);
        self.asm.call(read);
        self.check_helper(2, name, Cond::Ne, e.span)
    }
}
