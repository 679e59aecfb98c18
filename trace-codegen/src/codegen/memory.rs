//! Typed reads of kernel (and user) memory: `p->field`, `s.field`, `a[i]` and `*p` over
//! kernel structs whose layouts come from BTF (through the node facts), and arrays inside
//! tracepoint records. An access chain computes one address (offsets folded in as it
//! goes: `((struct sock *)arg0)->__sk_common.skc_dport` is one pointer plus 12) and the
//! leaf is copied onto the BPF stack with `bpf_probe_read_kernel` (or `_user` when the
//! chain started from a user pointer, e.g. a syscall argument); only pointers met on
//! the way (`curtask->real_parent->pid`) cost a read each.

use trace_lang::ast::{Expr, ExprKind, UnOp};
use trace_lang::sema::FieldInfo;
use trace_lang::span::Span;
use trace_lang::types::Type;
use trace_lang::Diagnostic;

use super::{err, ProgGen};
use crate::insn::{helper, Alu, Size, FP, R0, R1, R2, R3, R6};

/// The record a field access reads from: `(record name, through a pointer?)`.
fn record_of(t: &Type) -> Option<(&str, bool)> {
    match t {
        Type::Record(r) => Some((r, false)),
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
            ExprKind::Field { expr, .. } => {
                record_of(&expr.ty).is_some()
                    || (expr.ty == Type::Ctx && matches!(e.ty, Type::Array { .. }))
            }
            ExprKind::Index { expr, .. } => match &expr.ty {
                Type::Ptr { .. } => true,
                Type::Array { .. } => Self::is_memory(expr),
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

    /// The layout of `record.field` from the kernel's BTF.
    fn kernel_field(&self, record: &str, field: &str, span: Span) -> Result<FieldInfo, Diagnostic> {
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
    fn memory_size(&self, t: &Type, span: Span) -> Result<usize, Diagnostic> {
        Ok(match t {
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

    /// Copy the bytes of memory expression `e` (a string or an array) to `FP + off`.
    pub(super) fn gen_memory_into(&mut self, e: &Expr, off: i16) -> Result<(), Diagnostic> {
        let size = e.ty.size();
        let user = self.gen_addr(e)?;
        self.asm.mov(R3, R0);
        self.stack_ptr(R1, off);
        self.asm.mov_imm(R2, size as i32);
        self.asm.call(if user {
            helper::PROBE_READ_USER
        } else {
            helper::PROBE_READ_KERNEL
        });
        Ok(())
    }
}
