//! String comparison: `strncmp(a, b, n)` (bpftrace's: 0 when the strings are equal up to
//! `n` characters or both end at the same place before it, 1 otherwise) and `==`/`!=`.
//! Both strings are copied onto the stack and compared byte by byte in unrolled code
//! (no loops for the verifier to bound). `n` is an integer literal or a positional
//! parameter (`strncmp(str(args->filename), str($1), $2)`), known at compile time.

use trace_lang::ast::{BinOp, Expr, ExprKind};
use trace_lang::span::Span;
use trace_lang::Diagnostic;

use super::{err, ProgGen};
use crate::insn::{Alu, Cond, Size, FP, R0, R1, R2};

impl ProgGen<'_> {
    /// The compile-time value of `strncmp`'s length argument.
    fn const_len(&self, e: &Expr) -> Result<usize, Diagnostic> {
        let v = match &e.kind {
            ExprKind::Int(v) => Some(*v),
            ExprKind::Positional(i) => self
                .opts
                .params
                .get((*i as usize).wrapping_sub(1))
                .and_then(|p| p.trim().parse::<i64>().ok()),
            _ => None,
        };
        match v {
            Some(v) if v >= 0 => Ok(v as usize),
            _ => Err(err(
                e.span,
                "strncmp() needs a non-negative integer literal or positional parameter as its length",
            )),
        }
    }

    /// r0 = `strncmp(args[0], args[1], args[2])`.
    pub(super) fn gen_strncmp(&mut self, e: &Expr, args: &[Expr]) -> Result<(), Diagnostic> {
        let [lhs, rhs, len] = args else {
            return Err(err(e.span, "strncmp() takes 3 arguments"));
        };
        let n = self.const_len(len)?;
        self.compare_strings(lhs, rhs, n)
    }

    /// r0 = `a == b` (or `!=`): equal when no byte differs up to the longer buffer.
    pub(super) fn gen_str_equality(
        &mut self,
        op: BinOp,
        lhs: &Expr,
        rhs: &Expr,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let negate = match op {
            BinOp::Eq => false,
            BinOp::Ne => true,
            _ => return Err(err(span, "strings can only be compared with == and !=")),
        };
        self.compare_strings(lhs, rhs, lhs.ty.size().max(rhs.ty.size()))?;
        // r0 is 0 when equal: == wants 1 then, != wants r0 as it is.
        if !negate {
            self.asm.alu_imm(Alu::Xor, R0, 1);
        }
        Ok(())
    }

    /// Both operands copied to fresh stack slots of their own sizes, zero-padded (so they
    /// compare in 8-byte words): the slots' offsets. The caller gives the stack back.
    pub(super) fn zeroed_copies(
        &mut self,
        lhs: &Expr,
        rhs: &Expr,
    ) -> Result<(i16, i16), Diagnostic> {
        let (ln, rn) = (lhs.ty.size(), rhs.ty.size());
        let l = self.alloc(ln, lhs.span)?;
        self.zero(l, ln);
        self.gen_into(lhs, l)?;
        let r = self.alloc(rn, rhs.span)?;
        self.zero(r, rn);
        self.gen_into(rhs, r)?;
        Ok((l, r))
    }

    /// r0 = 0 when the two strings are equal over their first `n` characters, 1 otherwise.
    fn compare_strings(&mut self, lhs: &Expr, rhs: &Expr, n: usize) -> Result<(), Diagnostic> {
        let (ln, rn) = (lhs.ty.size(), rhs.ty.size());
        // The two copies are dead once compared: their stack is given back at the end.
        let mark = self.stack;
        let (l, r) = self.zeroed_copies(lhs, rhs)?;
        let a = &mut self.asm;
        let differ = a.new_label();
        let same = a.new_label();
        let done = a.new_label();
        // Past the end of a buffer a string reads as NUL.
        for i in 0..n.min(ln.max(rn)) {
            if i < ln {
                a.load(Size::B, R1, FP, l + i as i16);
            } else {
                a.mov_imm(R1, 0);
            }
            if i < rn {
                a.load(Size::B, R2, FP, r + i as i16);
            } else {
                a.mov_imm(R2, 0);
            }
            a.jump_reg(Cond::Ne, R1, R2, differ);
            a.jump_imm(Cond::Eq, R1, 0, same);
        }
        a.bind(same);
        a.mov_imm(R0, 0);
        a.jump(done);
        a.bind(differ);
        a.mov_imm(R0, 1);
        a.bind(done);
        self.stack = mark;
        Ok(())
    }
}
