//! `skb->field` in `cgroup_skb:ingress|egress` probes: the program's context is the
//! kernel's `struct __sk_buff` (offsets and sizes in [`trace_lang::skb`]). The verifier
//! only accepts direct loads from the context pointer (R6 here) at a field's exact
//! offset, with its size, and rewrites them into reads of the real `sk_buff`; so each
//! field is one `ldx`, never a probe-read. 16-bit network-order fields are shifted
//! down when the kernel keeps them in the upper half and byte-swapped to host order.

use trace_lang::span::Span;
use trace_lang::Diagnostic;

use super::{err, ProgGen};
use crate::insn::{Alu, Size, R0, R6};

impl ProgGen<'_> {
    /// r0 = `skb->name`.
    pub(super) fn skb_field(&mut self, name: &str, span: Span) -> Result<(), Diagnostic> {
        let f = trace_lang::skb::skb_field(name).ok_or_else(|| {
            err(
                span,
                format!(
                    "struct __sk_buff has no readable field '{name}' (readable: {})",
                    trace_lang::skb::skb_field_names()
                ),
            )
        })?;
        self.asm.load(
            Size::from_bytes(usize::from(f.size)),
            R0,
            R6,
            f.offset as i16,
        );
        if f.high16 {
            self.asm.alu_imm(Alu::Rsh, R0, 16);
        }
        if f.be16 {
            self.asm.bswap(R0, 16);
        }
        Ok(())
    }
}
