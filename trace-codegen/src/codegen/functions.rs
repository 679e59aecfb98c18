//! Code for the functions and values that user space finishes: `ntop()`, `macaddr()`,
//! `buf()`, `strftime()`, `cgroup_path()`, `usym()`/`func` (with the pid), `kstack` and
//! `ustack` (ids in a `BPF_MAP_TYPE_STACK_TRACE` map, plus the pid), `join()` (through
//! a per-CPU scratch buffer larger than the BPF stack), `kaddr()` and `signal()`.
//! Layouts (in [`crate::abi`]; read back by `values` and `stacks`):
//! - inet `{u64 af; u8 addr[16]}`, macaddr `u8[6]` padded to 8, buffer `{u64 len; u8 data[n]}`,
//!   timestamp `{u64 format index; u64 ns}`, cgroup path `u64 id`;
//! - usym `{u64 addr; u64 pid}`, stack `{i64 stack id; u64 pid}` (pid 0 for kernel stacks).

use trace_lang::ast::{Expr, ExprKind};
use trace_lang::names::Func;
use trace_lang::span::Span;
use trace_lang::types::Type;
use trace_lang::Diagnostic;

use super::{err, EventKind, ProgGen};
use crate::abi::{JOIN_ARG_LEN, JOIN_MAX_ARGS};
use crate::insn::{helper, Alu, Cond, Size, FP, R0, R1, R2, R3, R4, R5, R6, R9};
use crate::layout::Site;

/// `BPF_F_USER_STACK`.
const F_USER_STACK: i32 = 1 << 8;
/// `bpf_get_stackid`.
const GET_STACKID: i32 = 27;
/// `bpf_get_ns_current_pid_tgid`.
const GET_NS_CURRENT_PID_TGID: i32 = 120;
/// `AF_INET`, `AF_INET6`.
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;

impl ProgGen<'_> {
    fn stack_map(&self, span: Span) -> Result<usize, Diagnostic> {
        self.layout
            .stack_map
            .ok_or_else(|| err(span, "internal error: no stack map laid out"))
    }

    fn scratch_map(&self, span: Span) -> Result<usize, Diagnostic> {
        self.layout
            .scratch_map
            .ok_or_else(|| err(span, "internal error: no scratch map laid out"))
    }

    /// Store the current process id at `FP + off`, as the runner's own `/proc` numbers
    /// it (in a pid namespace, e.g. a container, that differs from the kernel's global
    /// pid): user symbols are looked up through `/proc/PID/`.
    fn store_pid(&mut self, off: i16) {
        if let Some((dev, ino)) = self.env.pid_namespace() {
            // bpf_get_ns_current_pid_tgid(dev, ino, &{u32 pid; u32 tgid}, 8)
            self.asm.store_imm(Size::DW, FP, off, 0);
            self.asm.load_const(R1, dev as i64);
            self.asm.load_const(R2, ino as i64);
            self.stack_ptr(R3, off);
            self.asm.mov_imm(R4, 8);
            self.asm.call(GET_NS_CURRENT_PID_TGID);
            self.asm.load(Size::W, R0, FP, off + 4);
            self.asm.store(Size::DW, FP, off, R0);
            return;
        }
        self.asm.call(helper::GET_CURRENT_PID_TGID);
        self.asm.alu_imm(Alu::Rsh, R0, 32);
        self.asm.store(Size::DW, FP, off, R0);
    }

    /// Write a value of one of the types of this module at `FP + off`.
    pub(super) fn gen_value_into(&mut self, e: &Expr, off: i16) -> Result<(), Diagnostic> {
        let size = e.ty.size();
        match &e.kind {
            ExprKind::Var(name) => {
                let (from, _) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(e.span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                self.copy_stack(from, off, size);
                return Ok(());
            }
            ExprKind::Map(m) => {
                let info = self.user_map(m)?;
                let key = self.build_key(m, None)?;
                self.zero(off, size);
                self.asm.load_map(R1, info.kernel_map);
                self.stack_ptr(R2, key);
                self.asm.call(helper::MAP_LOOKUP_ELEM);
                let done = self.asm.new_label();
                self.asm.jump_imm(Cond::Eq, R0, 0, done);
                for i in (0..size).step_by(8) {
                    self.asm.load(Size::DW, R1, R0, i as i16);
                    self.asm.store(Size::DW, FP, off + i as i16, R1);
                }
                self.asm.bind(done);
                return Ok(());
            }
            ExprKind::Ternary { cond, then, els } => {
                let else_label = self.asm.new_label();
                let end = self.asm.new_label();
                self.gen_int(cond)?;
                self.asm.jump_imm(Cond::Eq, R0, 0, else_label);
                self.gen_value_into(then, off)?;
                self.asm.jump(end);
                self.asm.bind(else_label);
                self.gen_value_into(els, off)?;
                self.asm.bind(end);
                return Ok(());
            }
            _ => {}
        }
        match &e.ty {
            Type::Usym => {
                self.gen_int(e)?;
                self.asm.store(Size::DW, FP, off, R0);
                self.store_pid(off + 8);
                Ok(())
            }
            Type::Stack { user, .. } => self.gen_stack(*user, off, e.span),
            Type::Username => {
                self.asm.call(helper::GET_CURRENT_UID_GID);
                self.asm.extend(R0, 4, false);
                self.asm.store(Size::DW, FP, off, R0);
                Ok(())
            }
            Type::CgroupPath | Type::Strerror => {
                let arg = call_arg(e, 0)?;
                self.gen_int(arg)?;
                self.asm.store(Size::DW, FP, off, R0);
                Ok(())
            }
            Type::Timestamp => {
                let (fmt, ns) = (call_arg(e, 0)?, call_arg(e, 1)?);
                let ExprKind::Str(_) = &fmt.kind else {
                    return Err(err(fmt.span, "strftime() takes a string literal format"));
                };
                let index = self.site(Site::Time, e.span)?;
                self.gen_int(ns)?;
                self.asm.store(Size::DW, FP, off + 8, R0);
                self.asm.load_const(R0, index as i64);
                self.asm.store(Size::DW, FP, off, R0);
                Ok(())
            }
            Type::Inet => self.gen_ntop(e, off),
            Type::MacAddr => {
                let arg = call_arg(e, 0)?;
                self.zero(off, 8);
                if let Type::Array { .. } | Type::Str(_) = arg.ty {
                    return self.gen_bytes_into(arg, off, 6);
                }
                self.gen_int(arg)?;
                self.read_into(off, 6, matches!(arg.ty, Type::Ptr { user: true, .. }));
                Ok(())
            }
            Type::Buf(n) => self.gen_buf(e, *n, off),
            _ => Err(err(e.span, "internal error: not a special value")),
        }
    }

    /// Copy `n` bytes of an array-valued expression to `FP + off`.
    fn gen_bytes_into(&mut self, e: &Expr, off: i16, n: usize) -> Result<(), Diagnostic> {
        if Self::is_memory(e) {
            let user = self.gen_addr(e)?;
            self.read_into(off, n, user);
            return Ok(());
        }
        // An array held in a variable or map: copy it whole through a temporary.
        let size = e.ty.size();
        let tmp = self.alloc(size, e.span)?;
        self.zero(tmp, size);
        self.gen_into(e, tmp)?;
        self.copy_stack(tmp, off, n.min(size));
        Ok(())
    }

    /// `probe_read(FP + off, n, r0)`.
    fn read_into(&mut self, off: i16, n: usize, user: bool) {
        self.asm.mov(R3, R0);
        self.stack_ptr(R1, off);
        self.asm.mov_imm(R2, n as i32);
        self.asm.call(if user {
            helper::PROBE_READ_USER
        } else {
            helper::PROBE_READ_KERNEL
        });
    }

    fn gen_ntop(&mut self, e: &Expr, off: i16) -> Result<(), Diagnostic> {
        let ExprKind::Call { args, .. } = &e.kind else {
            return Err(err(e.span, "internal error: ntop"));
        };
        self.zero(off, 24);
        let addr = args
            .last()
            .ok_or_else(|| err(e.span, "ntop() needs an address"))?;
        let default_af = match &addr.ty {
            Type::Array { len: 16, .. } => AF_INET6,
            _ => AF_INET,
        };
        match &addr.ty {
            Type::Array { len, .. } => self.gen_bytes_into(addr, off + 8, *len as usize)?,
            _ => {
                self.gen_int(addr)?;
                self.asm.store(Size::W, FP, off + 8, R0);
            }
        }
        if args.len() == 2 {
            self.gen_int(&args[0])?;
            self.asm.store(Size::DW, FP, off, R0);
        } else {
            self.asm.store_imm(Size::DW, FP, off, default_af);
        }
        Ok(())
    }

    fn gen_buf(&mut self, e: &Expr, n: usize, off: i16) -> Result<(), Diagnostic> {
        let ExprKind::Call { args, .. } = &e.kind else {
            return Err(err(e.span, "internal error: buf"));
        };
        let size = 8 + n.div_ceil(8) * 8;
        self.zero(off, size);
        let data = &args[0];
        if !data.ty.is_integral() {
            let avail = data.ty.size().min(n);
            self.gen_bytes_into(data, off + 8, avail)?;
            let len = match args.get(1) {
                Some(Expr {
                    kind: ExprKind::Int(v),
                    ..
                }) => (*v as usize).min(avail),
                _ => avail,
            };
            self.asm.store_imm(Size::DW, FP, off, len as i32);
            return Ok(());
        }
        let user = matches!(data.ty, Type::Ptr { user: true, .. });
        let ptr = self.alloc(8, e.span)?;
        self.gen_int(data)?;
        self.asm.store(Size::DW, FP, ptr, R0);
        match args.get(1) {
            Some(len) => self.gen_int(len)?,
            None => self.asm.load_const(R0, n as i64),
        }
        // Clamp to 0..=n so that the verifier sees a bounded size.
        let a = &mut self.asm;
        let ok = a.new_label();
        let neg = a.new_label();
        a.jump_imm(Cond::Slt, R0, 0, neg);
        a.jump_imm(Cond::Le, R0, n as i32, ok);
        a.mov_imm(R0, n as i32);
        a.jump(ok);
        a.bind(neg);
        a.mov_imm(R0, 0);
        a.bind(ok);
        a.store(Size::DW, FP, off, R0);
        a.mov(R2, R0);
        a.load(Size::DW, R3, FP, ptr);
        self.stack_ptr(R1, off + 8);
        self.asm.call(if user {
            helper::PROBE_READ_USER
        } else {
            helper::PROBE_READ_KERNEL
        });
        Ok(())
    }

    /// `{stack id; pid}` at `FP + off`.
    fn gen_stack(&mut self, user: bool, off: i16, span: Span) -> Result<(), Diagnostic> {
        let map = self.stack_map(span)?;
        self.asm.mov(R1, R6);
        self.asm.load_map(R2, map);
        self.asm.mov_imm(R3, if user { F_USER_STACK } else { 0 });
        self.asm.call(GET_STACKID);
        self.asm.store(Size::DW, FP, off, R0);
        if user {
            self.store_pid(off + 8);
        } else {
            self.asm.store_imm(Size::DW, FP, off + 8, 0);
        }
        Ok(())
    }

    /// `kaddr("symbol")`: the address of a kernel symbol, resolved now.
    pub(super) fn gen_kaddr(&mut self, e: &Expr, args: &[Expr]) -> Result<(), Diagnostic> {
        let name = match args.first().map(|a| &a.kind) {
            Some(ExprKind::Str(name)) => name.clone(),
            // `kaddr(str($1))`: the positional parameter's text.
            Some(ExprKind::Call {
                func: Some(Func::Str),
                args: inner,
                ..
            }) => match inner.first().map(|a| &a.kind) {
                Some(ExprKind::Positional(i)) => self
                    .opts
                    .params
                    .get((*i as usize).wrapping_sub(1))
                    .cloned()
                    .unwrap_or_default(),
                _ => return Err(err(e.span, "kaddr() takes a symbol name")),
            },
            _ => return Err(err(e.span, "kaddr() takes a symbol name")),
        };
        let name = &name;
        let addr = self.env.kernel_symbol(name).ok_or_else(|| {
            // As bpftrace. A kernel built without CONFIG_KALLSYMS_ALL lists no data
            // symbols in /proc/kallsyms, so there a variable cannot be found either (and
            // bpftrace refuses it too): say why.
            let why = if self.env.kallsyms_lists_functions_only() {
                " (this kernel's /proc/kallsyms lists no data symbols: CONFIG_KALLSYMS_ALL is off)"
            } else {
                ""
            };
            err(
                e.span,
                format!("Failed to resolve kernel symbol: {name}{why}"),
            )
        })?;
        self.asm.load_const(R0, addr as i64);
        Ok(())
    }

    /// `debugf(fmt, ...)`: `bpf_trace_printk` to the kernel's trace pipe, with at most
    /// three arguments (the helper's limit); strings are passed by address.
    pub(super) fn gen_debugf(&mut self, e: &Expr, args: &[Expr]) -> Result<(), Diagnostic> {
        let Some(Expr {
            kind: ExprKind::Str(fmt),
            ..
        }) = args.first()
        else {
            return Err(err(e.span, "debugf() takes a string literal format"));
        };
        if args.len() > 4 {
            return Err(err(
                args[4].span,
                "debugf() takes at most 3 arguments after the format (bpf_trace_printk's limit)",
            ));
        }
        let mut slots = Vec::new();
        for a in &args[1..] {
            let slot = self.alloc(8, a.span)?;
            if a.ty.is_str() {
                let s = self.alloc(a.ty.size(), a.span)?;
                self.zero(s, a.ty.size());
                self.gen_into_sized(a, s, &a.ty)?;
                self.stack_ptr(R0, s);
            } else {
                self.gen_int(a)?;
            }
            self.asm.store(Size::DW, FP, slot, R0);
            slots.push(slot);
        }
        let text = Expr {
            kind: ExprKind::Str(fmt.clone()),
            span: e.span,
            ty: Type::Str(fmt.len() + 1),
        };
        let f = self.alloc(fmt.len() + 1, e.span)?;
        self.zero(f, fmt.len() + 1);
        self.gen_into_sized(&text, f, &text.ty)?;
        for (reg, slot) in [R3, R4, R5].into_iter().zip(&slots) {
            self.asm.load(Size::DW, reg, FP, *slot);
        }
        self.stack_ptr(R1, f);
        self.asm.mov_imm(R2, fmt.len() as i32 + 1);
        self.asm.call(helper::TRACE_PRINTK);
        Ok(())
    }

    /// `signal(SIG)`: `bpf_send_signal` to the current process.
    pub(super) fn gen_signal(&mut self, e: &Expr, args: &[Expr]) -> Result<(), Diagnostic> {
        if !self.opts.unsafe_actions {
            return Err(err(
                e.span,
                "signal() can kill processes: it is only allowed with --unsafe",
            ));
        }
        let arg = args
            .first()
            .ok_or_else(|| err(e.span, "signal() needs a signal"))?;
        match &arg.kind {
            ExprKind::Str(s) => {
                let name = s.strip_prefix("SIG").unwrap_or(s);
                let n = trace_lang::sema::signal_number(name)
                    .ok_or_else(|| err(arg.span, format!("signal(): unknown signal '{s}'")))?;
                self.asm.mov_imm(R1, n as i32);
            }
            _ => {
                self.gen_int(arg)?;
                self.asm.mov(R1, R0);
            }
        }
        self.asm.call(helper::SEND_SIGNAL);
        Ok(())
    }

    /// `join(argv[, delim])`: the strings of a NULL-terminated array, sent as one event
    /// built in the scratch map (`{id; JOIN_MAX_ARGS x char[JOIN_ARG_LEN]}`).
    pub(super) fn gen_join(&mut self, e: &Expr, args: &[Expr]) -> Result<(), Diagnostic> {
        let argv = args
            .first()
            .ok_or_else(|| err(e.span, "join() needs an array of strings"))?;
        if !matches!(args.get(1).map(|a| &a.kind), None | Some(ExprKind::Str(_))) {
            return Err(err(
                e.span,
                "join(): the delimiter must be a string literal",
            ));
        }
        let user = !matches!(argv.ty, Type::Ptr { user: false, .. });
        let index = self.site(Site::Join, e.span)?;
        let scratch = self.scratch_map(e.span)?;
        let slot = self.alloc(8, e.span)?;
        let argv_slot = self.alloc(8, e.span)?;
        self.gen_int(argv)?;
        self.asm.store(Size::DW, FP, argv_slot, R0);
        // R9 = scratch buffer (callee-saved across helper calls).
        self.asm.store_imm(Size::DW, FP, slot, 0);
        self.asm.load_map(R1, scratch);
        self.stack_ptr(R2, slot);
        self.asm.call(helper::MAP_LOOKUP_ELEM);
        let exit = self.exit;
        self.asm.jump_imm(Cond::Eq, R0, 0, exit);
        self.asm.mov(R9, R0);
        self.asm
            .load_const(R1, ((EventKind::Join as i64) << 32) | index as i64);
        self.asm.store(Size::DW, R9, 0, R1);
        let done = self.asm.new_label();
        for i in 0..JOIN_MAX_ARGS {
            let at = (8 + i * JOIN_ARG_LEN) as i16;
            self.asm.store_imm(Size::B, R9, at, 0);
        }
        for i in 0..JOIN_MAX_ARGS {
            let at = (8 + i * JOIN_ARG_LEN) as i32;
            // ptr = argv[i]
            self.asm.load(Size::DW, R3, FP, argv_slot);
            self.asm.alu_imm(Alu::Add, R3, (8 * i) as i32);
            self.stack_ptr(R1, slot);
            self.asm.mov_imm(R2, 8);
            self.asm.call(if user {
                helper::PROBE_READ_USER
            } else {
                helper::PROBE_READ_KERNEL
            });
            self.asm.load(Size::DW, R3, FP, slot);
            self.asm.jump_imm(Cond::Eq, R3, 0, done);
            self.asm.mov(R1, R9);
            self.asm.alu_imm(Alu::Add, R1, at);
            self.asm.mov_imm(R2, JOIN_ARG_LEN as i32);
            self.asm.call(if user {
                helper::PROBE_READ_USER_STR
            } else {
                helper::PROBE_READ_KERNEL_STR
            });
        }
        self.asm.bind(done);
        let events = self.layout.events_map;
        self.asm.load_map(R1, events);
        self.asm.mov(R2, R9);
        self.asm
            .mov_imm(R3, (8 + JOIN_MAX_ARGS * JOIN_ARG_LEN) as i32);
        self.asm.mov_imm(R4, 0);
        self.asm.call(helper::RINGBUF_OUTPUT);
        Ok(())
    }
}

fn call_arg(e: &Expr, i: usize) -> Result<&Expr, Diagnostic> {
    match &e.kind {
        ExprKind::Call { args, .. } => args.get(i).ok_or_else(|| err(e.span, "missing argument")),
        _ => Err(err(e.span, "internal error: expected a call")),
    }
}
