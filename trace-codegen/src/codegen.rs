//! Code generation: turns the typed AST into eBPF instructions, one program per
//! concrete attach point. The tables user space needs to read what the programs produce
//! (map layouts, printf formats, probe names) are laid out before, by
//! [`crate::layout`]; the emitter reads them and numbers only the `-k` helper checks.
//!
//! The conventions shared with user space (event records, key and value layouts, map
//! definitions, limits) are defined and documented in [`crate::abi`].

use std::collections::HashMap;

use trace_lang::ast::{BinOp, Expr, ExprKind, MapRef, ProbeKind, Program, Stmt, StmtKind, UnOp};
use trace_lang::debuginfo::Param;
use trace_lang::names::{Builtin, Func};
use trace_lang::sema::{Analysis, FuncSignature, ResolvedAttach};
use trace_lang::span::Span;
use trace_lang::tracepoint_format::TpField;
use trace_lang::types::{MapValue, Type};
use trace_lang::usdt::{ArgLocation, Reg as UsdtReg, UsdtArg};
use trace_lang::Diagnostic;

use super::insn::{helper, Alu, Asm, Cond, Label, Reg, Size, FP, R0, R1, R2, R3, R4, R6, R7, R8};
use super::layout::{self, Layout, LayoutOptions, ProgramPlan, Site, SiteIds};
use super::node_facts::NodeFacts;
use super::object_file::ProgramCode;

mod functions;
mod memory;
mod skb;
mod strings;

// The kernel/user contract lives in `crate::abi`; re-exported for existing users.
#[allow(unused_imports)]
pub use crate::abi::{
    Attach, Compiled, CompiledProgram, EventKind, HelperCheck, PrintSpec, PrintfAction, PrintfSpec,
    UserMap, JOIN_ARG_LEN, JOIN_MAX_ARGS, MAP_HASH, MAP_PERCPU_ARRAY, MAP_PERCPU_HASH, MAP_RINGBUF,
    MAX_INSNS, MAX_MAP_ENTRIES, RINGBUF_BYTES, SCOPE_PIDS_MAP, STACK_MAX_FRAMES,
};

/// `bpf_ringbuf_output` flag: do not wake the consumer up.
const BPF_RB_NO_WAKEUP: i32 = 1;
/// Wake user space up for this record: for the rare events a process waits on (a
/// function watchpoint's setup stops it until user space answers) or that should take
/// effect at once (`unwatch`).
const BPF_RB_FORCE_WAKEUP: i32 = 2;

/// Kernel BPF stack limit.
const STACK_LIMIT: i32 = 512;

/// Syscall tracepoints of one probe block served by one raw tracepoint program.
#[derive(Debug, Clone)]
struct SyscallGroup {
    exit: bool,
    /// `(syscall number, probe id, record fields)` of each member.
    members: Vec<(u32, usize, Vec<TpField>)>,
}

/// The function a call resolved to in semantic analysis (an internal error when it
/// has not been analysed).
fn resolved(func: Option<Func>, span: Span) -> Result<Func, Diagnostic> {
    func.ok_or_else(|| {
        err(
            span,
            "internal error: a call that semantic analysis has not resolved",
        )
    })
}

/// Options that shape the generated code.
#[derive(Debug, Clone, Default)]
pub struct CodegenOptions {
    /// Only count events of tasks in one of these cgroup v2 directories (or below them),
    /// each given as (id, level).
    pub cgroups: Vec<(u64, u32)>,
    /// Only count events of processes whose tgid is a key of the `scope_pids` hash map
    /// (kept current by user space): the fallback scoping on nodes without cgroup v2.
    pub pid_set: bool,
    /// Only count events of this process (tgid).
    pub pid: Option<u32>,
    /// Positional parameters `$1`, `$2`, ...
    pub params: Vec<String>,
    /// `CLOCK_MONOTONIC` at start, for `elapsed`.
    pub start_ns: u64,
    /// Entries of keyed maps, when not [`MAX_MAP_ENTRIES`].
    pub map_entries: Option<u32>,
    /// Resolves `cgroupid("path")`.
    pub cgroup_id_of: Option<fn(&str) -> Option<u64>>,
    /// Allow actions that change the system (`signal()`), like bpftrace's `--unsafe`.
    pub unsafe_actions: bool,
    /// The pid of the command started with `-c` (the `cpid` builtin).
    pub cpid: Option<u32>,
    /// Report failed helpers as bpftrace's `-k` (1: map deletes and updates) and `-kk`
    /// (2: map lookups too).
    pub helper_checks: u8,
}

fn err(span: Span, msg: impl Into<String>) -> Diagnostic {
    Diagnostic::new(span, msg)
}

/// What the programs of one script add to as they are generated (the resources are
/// laid out before, in [`Layout`]).
struct Tables {
    /// `-k`/`-kk` call sites.
    helper_errors: Vec<HelperCheck>,
    /// Warnings for the caller to print.
    warnings: Vec<String>,
    /// The C types the script defines (consulted before the kernel's BTF).
    types: trace_lang::cdecl::CTypes,
}

/// Compile a checked program.
pub fn generate(
    program: &Program,
    analysis: &Analysis,
    env: &dyn NodeFacts,
    opts: &CodegenOptions,
) -> Result<Compiled, Diagnostic> {
    // Generation recurses over the tree: refuse one too deep for the stack (parsed
    // scripts never are; this covers trees built otherwise).
    if let Some(span) = program.node_deeper_than(trace_lang::ast::MAX_TREE_DEPTH) {
        return Err(err(
            span,
            format!(
                "nested too deeply (limit {} levels)",
                trace_lang::ast::MAX_TREE_DEPTH
            ),
        ));
    }
    let layout = layout::layout(
        program,
        analysis,
        LayoutOptions {
            pid_set: opts.pid_set,
            map_entries: opts.map_entries,
        },
    );
    let mut t = Tables {
        warnings: Vec::new(),
        helper_errors: Vec::new(),
        types: analysis.types.clone(),
    };
    let mut programs = Vec::new();
    for plan in &layout.programs {
        let probe = &program.probes[plan.block];
        let attaches = analysis
            .attach
            .get(plan.block)
            .map_or(&[][..], Vec::as_slice);
        let attach = attaches.get(plan.attach).ok_or_else(|| {
            err(
                probe.span,
                "internal error: a program without its attach point",
            )
        })?;
        let spec = match &plan.syscall {
            Some(group) => {
                let exit = &group.exit;
                let members: Vec<(u32, usize, Vec<TpField>)> = group
                    .members
                    .iter()
                    .map(|&(nr, probe_id, i)| {
                        let a = &attaches[i];
                        let fields = env
                            .tracepoint_fields(&a.parts[0], &a.parts[1])
                            .unwrap_or_default();
                        (nr, probe_id, fields)
                    })
                    .collect();
                let direction = if *exit { "sys_exit" } else { "sys_enter" };
                let target = Attach::RawTracepoint {
                    name: direction.to_string(),
                };
                let first = layout.probe_names[plan.probe_id].clone();
                let points = members.len();
                let probe_name = if points == 1 {
                    first
                } else {
                    format!("{first} (and {} more)", points - 1)
                };
                ProgramSpec {
                    kind: ProbeKind::Tracepoint,
                    fields: Vec::new(),
                    probe_id: plan.probe_id,
                    syscall: Some(SyscallGroup {
                        exit: *exit,
                        members,
                    }),
                    target,
                    probe_name,
                    points,
                    usdt_args: Vec::new(),
                }
            }
            None => {
                let target = attach_target(attach, probe.span, opts)?;
                let fields = match (&target, attach.kind) {
                    (_, ProbeKind::Tracepoint) if attach.parts.len() == 2 => {
                        env.tracepoint_fields(&attach.parts[0], &attach.parts[1])
                    }
                    (Attach::Fentry { module, func, ret }, _) => env
                        .kfunc_signature(module, func)
                        .map(|sig| kfunc_fields(&sig, *ret)),
                    (Attach::Uprobe { path, symbol, ret }, _) if !ret && uses_args(probe) => env
                        .debug_info(path)
                        .and_then(|info| info.functions.get(symbol).map(|p| uprobe_fields(p))),
                    _ => None,
                };
                ProgramSpec {
                    kind: attach.kind,
                    fields: fields.unwrap_or_default(),
                    probe_id: plan.probe_id,
                    syscall: None,
                    target,
                    probe_name: attach.name.clone(),
                    points: 1,
                    usdt_args: attach
                        .usdt
                        .as_ref()
                        .map(|u| u.args.clone())
                        .unwrap_or_default(),
                }
            }
        };
        let body = programs.len();
        let program = build_program(&mut t, &layout, plan, env, opts, probe, spec, body)?;
        programs.push(program);
        if let Attach::Watchpoint { on_call: true, .. } = &programs[body].attach {
            // Attached later, by its setup probe, which is the one bpftrace counts.
            programs[body].points = 0;
            let spec = watchpoint_setup_spec(attach, plan.probe_id, body, opts);
            let index = programs.len();
            let program = build_program(&mut t, &layout, plan, env, opts, probe, spec, index)?;
            programs.push(program);
        }
    }

    Ok(Compiled {
        programs,
        maps: layout.maps,
        user_maps: layout.user_maps,
        printfs: layout.printfs,
        time_formats: layout.time_formats,
        prints: layout.prints,
        print_values: layout.print_values,
        probe_names: layout.probe_names,
        lost_map: layout.lost_map,
        stack_map: layout.stack_map,
        joins: layout.joins,
        warnings: t.warnings,
        helper_errors: t.helper_errors,
    })
}

/// What one generated program serves.
struct ProgramSpec {
    kind: ProbeKind,
    /// Tracepoint record fields (empty for other kinds and for syscall groups).
    fields: Vec<TpField>,
    /// The `probe` builtin's id (of the first member, for a syscall group).
    probe_id: usize,
    syscall: Option<SyscallGroup>,
    target: Attach,
    probe_name: String,
    points: usize,
    /// A USDT marker's arguments (empty for other kinds).
    usdt_args: Vec<Result<UsdtArg, String>>,
}

/// Generate one program: prologue (scope filters, syscall number filter), predicate,
/// body and exit.
#[allow(clippy::too_many_arguments)]
fn build_program(
    t: &mut Tables,
    layout: &Layout,
    plan: &ProgramPlan,
    env: &dyn NodeFacts,
    opts: &CodegenOptions,
    probe: &trace_lang::ast::Probe,
    spec: ProgramSpec,
    index: usize,
) -> Result<CompiledProgram, Diagnostic> {
    let ProgramSpec {
        kind,
        fields,
        probe_id,
        syscall,
        target,
        probe_name,
        points,
        usdt_args,
    } = spec;
    let mut asm = Asm::default();
    let exit = asm.new_label();
    let mut g = ProgGen {
        asm,
        t,
        layout,
        sites: &plan.sites,
        visits: HashMap::new(),
        env,
        opts,
        kind,
        fields,
        probe_id,
        vars: HashMap::new(),
        stack: 0,
        exit,
        syscall,
        loops: Vec::new(),
        loop_spans: Vec::new(),
        probe_name: &probe_name,
        usdt_args,
    };
    g.prologue();
    match &target {
        Attach::WatchpointSetup { arg, stop, .. } => {
            g.watchpoint_setup(*arg, *stop, index, probe.span)?
        }
        _ => g.body(probe)?,
    }
    let loops = std::mem::take(&mut g.loop_spans);
    let (insns, map_relocs) = g.asm.finish().map_err(|e| err(probe.span, e))?;
    let name = format!("p{index}");
    Ok(CompiledProgram {
        code: ProgramCode {
            section: section_name(&target, &name),
            name,
            insns,
            map_relocs,
        },
        attach: target,
        probe_name,
        points,
        span: probe.span,
        loops,
    })
}

/// The uprobe program that reports the address a function watchpoint (program
/// `body`, resolved as `[file, function, N, LEN, MODE]`) watches.
fn watchpoint_setup_spec(
    a: &ResolvedAttach,
    probe_id: usize,
    body: usize,
    opts: &CodegenOptions,
) -> ProgramSpec {
    let part = |i: usize| a.parts.get(i).cloned().unwrap_or_default();
    ProgramSpec {
        kind: ProbeKind::Uprobe,
        fields: Vec::new(),
        probe_id,
        syscall: None,
        target: Attach::WatchpointSetup {
            path: part(0),
            symbol: part(1),
            arg: part(2).parse().unwrap_or(0),
            stop: a.kind == ProbeKind::Watchpoint,
            body,
            pid: opts.pid.or(opts.cpid),
        },
        probe_name: a.name.clone(),
        points: 1,
        usdt_args: Vec::new(),
    }
}

fn parse_number(s: &str) -> Option<u64> {
    s.parse().ok()
}

fn attach_target(
    a: &ResolvedAttach,
    span: Span,
    opts: &CodegenOptions,
) -> Result<Attach, Diagnostic> {
    let part = |i: usize| a.parts.get(i).cloned().unwrap_or_default();
    Ok(match a.kind {
        ProbeKind::Begin => Attach::Begin,
        ProbeKind::End => Attach::End,
        ProbeKind::Tracepoint => Attach::Tracepoint {
            category: part(0),
            name: part(1),
        },
        ProbeKind::RawTracepoint => Attach::RawTracepoint {
            name: a.parts.last().cloned().unwrap_or_default(),
        },
        ProbeKind::Kprobe | ProbeKind::Kretprobe => Attach::Kprobe {
            func: a.parts.last().cloned().unwrap_or_default(),
            ret: a.kind == ProbeKind::Kretprobe,
        },
        ProbeKind::Kfunc | ProbeKind::Kretfunc => Attach::Fentry {
            module: if a.parts.len() == 2 {
                part(0)
            } else {
                "vmlinux".into()
            },
            func: a.parts.last().cloned().unwrap_or_default(),
            ret: a.kind == ProbeKind::Kretfunc,
        },
        ProbeKind::Uprobe | ProbeKind::Uretprobe => Attach::Uprobe {
            path: part(0),
            symbol: part(1),
            ret: a.kind == ProbeKind::Uretprobe,
        },
        ProbeKind::Profile | ProbeKind::Interval => {
            let n = parse_number(&part(1))
                .filter(|n| *n > 0)
                .ok_or_else(|| err(span, format!("{}: expected a positive number", a.name)))?;
            let unit = part(0);
            if a.kind == ProbeKind::Profile && unit == "hz" {
                Attach::Profile { hz: n }
            } else {
                let ns = match unit.as_str() {
                    "s" => n * 1_000_000_000,
                    "ms" => n * 1_000_000,
                    "us" => n * 1_000,
                    "hz" => 1_000_000_000 / n,
                    _ => return Err(err(span, format!("{}: unknown unit '{unit}'", a.name))),
                };
                if a.kind == ProbeKind::Profile {
                    Attach::Profile {
                        hz: (1_000_000_000 / ns).max(1),
                    }
                } else {
                    Attach::Interval { period_ns: ns }
                }
            }
        }
        ProbeKind::Watchpoint | ProbeKind::AsyncWatchpoint if a.parts.len() == 5 => {
            Attach::Watchpoint {
                address: 0,
                len: parse_number(&part(3))
                    .ok_or_else(|| err(span, format!("{}: expected a length", a.name)))?,
                mode: part(4),
                pid: opts.pid.or(opts.cpid),
                on_call: true,
            }
        }
        ProbeKind::Watchpoint | ProbeKind::AsyncWatchpoint => Attach::Watchpoint {
            address: part(0)
                .strip_prefix("0x")
                .map_or_else(|| part(0).parse().ok(), |h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| err(span, format!("{}: expected an address", a.name)))?,
            len: parse_number(&part(1))
                .ok_or_else(|| err(span, format!("{}: expected a length", a.name)))?,
            mode: part(2),
            pid: opts.pid.or(opts.cpid),
            on_call: false,
        },
        ProbeKind::Software | ProbeKind::Hardware => {
            let hardware = a.kind == ProbeKind::Hardware;
            let (config, default) =
                crate::abi::perf_counter_event(hardware, &part(0)).ok_or_else(|| {
                    err(
                        span,
                        format!("Invalid {} probe: {}", a.kind.provider(), part(0)),
                    )
                })?;
            let period = match a.parts.get(1) {
                Some(n) => parse_number(n)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| err(span, format!("{}: expected a positive count", a.name)))?,
                None => default,
            };
            Attach::PerfCounter {
                hardware,
                config,
                period,
            }
        }
        ProbeKind::CgroupSkb => Attach::CgroupSkb {
            egress: part(0) == "egress",
        },
        ProbeKind::Usdt => {
            let loc = a.usdt.as_ref().ok_or_else(|| {
                err(
                    span,
                    format!("{}: no USDT probe found for this attach point", a.name),
                )
            })?;
            Attach::Usdt {
                file: loc.file.clone(),
                offset: loc.offset,
                semaphore: loc.semaphore,
                pid: opts.pid.or(opts.cpid),
            }
        }
    })
}

fn section_name(a: &Attach, name: &str) -> String {
    match a {
        Attach::Begin | Attach::End => format!("raw_tp/{name}"),
        Attach::Tracepoint { category, name } => format!("tracepoint/{category}/{name}"),
        Attach::RawTracepoint { name } => format!("raw_tp/{name}"),
        Attach::Kprobe { ret: false, .. } => format!("kprobe/{name}"),
        Attach::Kprobe { ret: true, .. } => format!("kretprobe/{name}"),
        Attach::Fentry { ret: false, .. } => format!("fentry/{name}"),
        Attach::Fentry { ret: true, .. } => format!("fexit/{name}"),
        Attach::Uprobe { ret: false, .. } => format!("uprobe/{name}"),
        Attach::Uprobe { ret: true, .. } => format!("uretprobe/{name}"),
        Attach::Usdt { .. } | Attach::WatchpointSetup { .. } => format!("uprobe/{name}"),
        Attach::Profile { .. }
        | Attach::Interval { .. }
        | Attach::PerfCounter { .. }
        | Attach::Watchpoint { .. } => {
            format!("perf_event/{name}")
        }
        Attach::CgroupSkb { egress: true } => "cgroup_skb/egress".into(),
        Attach::CgroupSkb { egress: false } => "cgroup_skb/ingress".into(),
    }
}

/// The name under which a kretfunc's return value is among a kfunc program's fields.
const KFUNC_RETVAL: &str = "$retval";

/// A kfunc program's context as fields: an array of `u64`, argument `i` at `8 * i` and,
/// for a kretfunc, the return value after the last argument.
pub fn kfunc_fields(sig: &FuncSignature, ret: bool) -> Vec<TpField> {
    let slot = |i: usize, name: &str, ty: &Type| TpField {
        name: name.to_string(),
        offset: 8 * i as u32,
        size: 8,
        ty: ty.clone(),
        data_loc: false,
        array_len: None,
    };
    let mut fields: Vec<TpField> = sig
        .params
        .iter()
        .enumerate()
        .map(|(i, (name, ty))| slot(i, name, ty))
        .collect();
    if ret {
        fields.push(slot(sig.params.len(), KFUNC_RETVAL, &sig.ret));
    }
    fields
}

/// Whether a block reads `args` (typed [`Type::Ctx`] by sema): only then is a uprobe
/// target's debug info wanted.
fn uses_args(probe: &trace_lang::ast::Probe) -> bool {
    let mut found = false;
    probe.each_expr(&mut |e| found |= e.ty == Type::Ctx);
    found
}

/// A uprobe program's parameters (from the binary's debug info) as fields of its
/// context, `struct pt_regs`: each at the offset of its argument register, as wide as
/// its type (the ABI leaves the bits above a narrower argument undefined). Parameters
/// not in a register are left out (sema has reported them).
pub fn uprobe_fields(params: &[Param]) -> Vec<TpField> {
    params
        .iter()
        .filter_map(|p| {
            let reg = *p.reg.as_ref().ok()?;
            Some(TpField {
                name: p.name.clone(),
                offset: *PT_REGS_ARGS.get(usize::from(reg))? as u32,
                size: match p.ty {
                    Type::Int { bytes, .. } => u32::from(bytes),
                    _ => 8,
                },
                ty: p.ty.clone(),
                data_loc: false,
                array_len: None,
            })
        })
        .collect()
}

/// x86-64 `struct pt_regs` offsets of the argument registers, and of the return value.
const PT_REGS_ARGS: [i16; 6] = [112, 104, 96, 88, 72, 64];
const PT_REGS_RAX: i16 = 80;
const PT_REGS_IP: i16 = 128;
const PT_REGS_SP: i16 = 152;

/// The offset in x86-64's `struct pt_regs` of a register as `reg("name")` names it.
fn pt_regs_offset(name: &str) -> Option<i16> {
    const NAMES: [&str; 21] = [
        "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx", "si",
        "di", "orig_ax", "ip", "cs", "flags", "sp", "ss",
    ];
    NAMES.iter().position(|n| *n == name).map(|i| 8 * i as i16)
}

/// Per-program generator state.
struct ProgGen<'a> {
    asm: Asm,
    t: &'a mut Tables,
    /// The script's resources, laid out before generation.
    layout: &'a Layout,
    /// This program's call sites' ids in `layout`.
    sites: &'a SiteIds,
    /// How often each call site has been generated so far (an `unroll` body repeats).
    visits: HashMap<(Site, Span), usize>,
    /// What is known of the node.
    env: &'a dyn NodeFacts,
    opts: &'a CodegenOptions,
    kind: ProbeKind,
    fields: Vec<TpField>,
    probe_id: usize,
    /// Scratch variables: stack offset and type.
    vars: HashMap<String, (i16, Type)>,
    /// Bytes of stack in use.
    stack: i32,
    exit: Label,
    /// Set when this program serves syscall tracepoints from a raw `sys_enter`/`sys_exit`
    /// tracepoint; then R7 holds the syscall number and R8 the `struct pt_regs *`.
    syscall: Option<SyscallGroup>,
    /// `(continue, break)` targets of the enclosing `while` loops, innermost last.
    loops: Vec<(Label, Label)>,
    /// Every `while` loop generated so far, with its instructions.
    loop_spans: Vec<(Span, std::ops::Range<usize>)>,
    /// The attach point(s) served, for messages.
    probe_name: &'a str,
    /// A USDT marker's arguments (`arg0`.. read them).
    usdt_args: Vec<Result<UsdtArg, String>>,
}

/// x86-64 `struct pt_regs` offsets of the six syscall argument registers (di, si, dx,
/// r10, r8, r9) and of `orig_ax` (the syscall number).
const PT_REGS_SYSCALL_ARGS: [i16; 6] = [112, 104, 96, 56, 72, 64];
const PT_REGS_ORIG_AX: i16 = 120;

fn round8(n: usize) -> usize {
    n.div_ceil(8) * 8
}

impl ProgGen<'_> {
    /// The id [`Layout`] gave this visit of a call site.
    fn site(&mut self, site: Site, span: Span) -> Result<usize, Diagnostic> {
        let visit = self.visits.entry((site, span)).or_insert(0);
        let id = self.sites.get(site, span, *visit);
        *visit += 1;
        id.ok_or_else(|| {
            err(
                span,
                format!("internal error: no {site:?} record laid out here"),
            )
        })
    }

    /// Reserve `size` bytes of stack; returns the (negative) offset from the frame pointer.
    fn alloc(&mut self, size: usize, span: Span) -> Result<i16, Diagnostic> {
        let size = round8(size.max(1)) as i32;
        if self.stack + size > STACK_LIMIT {
            return Err(err(span, self.stack_full(size)));
        }
        self.stack += size;
        Ok(-self.stack as i16)
    }

    /// Why `more` bytes do not fit: what holds the stack now.
    fn stack_full(&self, more: i32) -> String {
        let vars = self.vars.len();
        let var_bytes = self.var_stack_top();
        let temp_bytes = self.stack - var_bytes;
        format!(
            "out of BPF stack in {}: this needs {more} more bytes, but {var_bytes} of the \
             kernel's {STACK_LIMIT}-byte limit hold {vars} scratch variable{} and {temp_bytes} \
             hold temporaries of this statement (strings, map keys, printf arguments); use \
             fewer variables or shorter strings (str(x, N))",
            self.probe_name,
            if vars == 1 { "" } else { "s" }
        )
    }

    fn zero(&mut self, off: i16, size: usize) {
        for i in (0..round8(size)).step_by(8) {
            self.asm.store_imm(Size::DW, FP, off + i as i16, 0);
        }
    }

    /// `reg = FP + off`
    fn stack_ptr(&mut self, reg: Reg, off: i16) {
        self.asm.mov(reg, FP);
        self.asm.alu_imm(Alu::Add, reg, i32::from(off));
    }

    fn task_context(&self) -> bool {
        !matches!(
            self.kind,
            ProbeKind::Begin | ProbeKind::End | ProbeKind::Interval | ProbeKind::CgroupSkb
        )
    }

    /// Jump to the exit. Through a conditional jump: code after `exit()` or `return` is
    /// then dead but not unreachable, which the verifier would refuse.
    fn leave(&mut self) {
        let exit = self.exit;
        self.asm.mov_imm(R0, 0);
        self.asm.jump_imm(Cond::Eq, R0, 0, exit);
    }

    /// A function watchpoint's setup probe: stop the process unless the watchpoint is
    /// async, then send argument `arg` (the address to watch) as an
    /// [`EventKind::WatchpointAttach`] event of program `index`, and the common exit.
    fn watchpoint_setup(
        &mut self,
        arg: u8,
        stop: bool,
        index: usize,
        span: Span,
    ) -> Result<(), Diagnostic> {
        const SIGSTOP: i32 = 19;
        if stop {
            self.asm.mov_imm(R1, SIGSTOP);
            self.asm.call(helper::SEND_SIGNAL);
        }
        let off = self.alloc(16, span)?;
        self.asm.load_const(
            R1,
            ((EventKind::WatchpointAttach as i64) << 32) | index as i64,
        );
        self.asm.store(Size::DW, FP, off, R1);
        self.asm
            .load(Size::DW, R1, R6, PT_REGS_ARGS[usize::from(arg.min(5))]);
        self.asm.store(Size::DW, FP, off + 8, R1);
        self.output_flags(off, 16, BPF_RB_FORCE_WAKEUP);
        let exit = self.exit;
        self.asm.bind(exit);
        self.asm.mov_imm(R0, 0);
        self.asm.exit();
        Ok(())
    }

    /// Predicate, statements and the common exit.
    fn body(&mut self, probe: &trace_lang::ast::Probe) -> Result<(), Diagnostic> {
        if let Some(pred) = &probe.predicate {
            self.gen_int(pred)?;
            let exit = self.exit;
            self.asm.jump_imm(Cond::Eq, R0, 0, exit);
        }
        self.stmts(&probe.body)?;
        let exit = self.exit;
        self.asm.bind(exit);
        self.asm.mov_imm(
            R0,
            if matches!(self.kind, ProbeKind::CgroupSkb) {
                1
            } else {
                0
            },
        );
        self.asm.exit();
        Ok(())
    }

    /// Raw `sys_enter(regs, id)` / `sys_exit(regs, ret)`: load the syscall number into R7
    /// and the registers pointer into R8, and leave unless the number is one of ours.
    fn syscall_prologue(&mut self) {
        let Some(group) = self.syscall.clone() else {
            return;
        };
        let exit = self.exit;
        self.asm.load(Size::DW, R8, R6, 0);
        if group.exit {
            self.stack = self.stack.max(16);
            self.asm.store_imm(Size::DW, FP, -16, 0);
            self.asm.mov(R1, FP);
            self.asm.alu_imm(Alu::Add, R1, -16);
            self.asm.mov_imm(R2, 8);
            self.asm.mov(R3, R8);
            self.asm.alu_imm(Alu::Add, R3, i32::from(PT_REGS_ORIG_AX));
            self.asm.call(helper::PROBE_READ_KERNEL);
            self.asm.load(Size::DW, R7, FP, -16);
        } else {
            self.asm.load(Size::DW, R7, R6, 8);
        }
        if group.members.len() <= 8 {
            let ours = self.asm.new_label();
            for (nr, _, _) in &group.members {
                self.asm.jump_imm(Cond::Eq, R7, *nr as i32, ours);
            }
            self.asm.jump(exit);
            self.asm.bind(ours);
        } else {
            // A 512-bit set of syscall numbers: word nr >> 6, bit nr & 63.
            let mut words = [0u64; 8];
            for (nr, _, _) in &group.members {
                if let Some(w) = words.get_mut(*nr as usize / 64) {
                    *w |= 1 << (nr % 64);
                }
            }
            let a = &mut self.asm;
            let test = a.new_label();
            a.jump_imm(Cond::Ge, R7, 512, exit);
            a.mov(R2, R7);
            a.alu_imm(Alu::Rsh, R2, 6);
            a.mov_imm(R1, 0);
            for (i, w) in words.iter().enumerate() {
                let next = a.new_label();
                a.jump_imm(Cond::Ne, R2, i as i32, next);
                a.load_const(R1, *w as i64);
                a.jump(test);
                a.bind(next);
            }
            a.bind(test);
            a.mov(R2, R7);
            a.alu_imm(Alu::And, R2, 63);
            a.alu_reg(Alu::Rsh, R1, R2);
            a.alu_imm(Alu::And, R1, 1);
            a.jump_imm(Cond::Eq, R1, 0, exit);
        }
    }

    /// `args->field` of a syscall tracepoint served from the raw tracepoint.
    fn syscall_field(&mut self, field: &str, span: Span) -> Result<(), Diagnostic> {
        let group = self
            .syscall
            .clone()
            .ok_or_else(|| err(span, "internal error: not a syscall probe"))?;
        // Where each member finds the field: None = the syscall number, Some(k) = argument k
        // (or the return value in sys_exit).
        let mut places: Vec<(u32, Option<usize>, TpField)> = Vec::new();
        for (nr, _, fields) in &group.members {
            let args: Vec<&TpField> = fields
                .iter()
                .filter(|f| !f.name.starts_with("common_"))
                .collect();
            let index = args.iter().position(|f| f.name == field).ok_or_else(|| {
                err(
                    span,
                    format!("this syscall tracepoint has no field '{field}'"),
                )
            })?;
            let here = if args[index].name == "__syscall_nr" {
                None
            } else {
                Some(index - 1)
            };
            places.push((*nr, here, args[index].clone()));
        }
        let Some((_, first, f)) = places.first().cloned() else {
            return Err(err(span, "internal error: empty syscall group"));
        };
        if places.iter().all(|(_, p, _)| *p == first) {
            self.syscall_arg(first, group.exit, span)?;
        } else {
            // The field is a different argument in different syscalls (`filename` of
            // open and openat): pick by syscall number.
            let done = self.asm.new_label();
            for (nr, place, _) in &places {
                let next = self.asm.new_label();
                self.asm.jump_imm(Cond::Ne, R7, *nr as i32, next);
                self.syscall_arg(*place, group.exit, span)?;
                self.asm.jump(done);
                self.asm.bind(next);
            }
            self.asm.mov_imm(R0, 0);
            self.asm.bind(done);
        }
        if let Type::Int { bytes, signed } = f.ty {
            let bytes = if f.size > 0 && (f.size as u8) < bytes {
                f.size as u8
            } else {
                bytes
            };
            self.asm.extend(R0, bytes, signed);
        }
        Ok(())
    }

    /// r0 = argument `which` of the syscall (None: its number; in sys_exit: the return value).
    fn syscall_arg(
        &mut self,
        which: Option<usize>,
        exit: bool,
        span: Span,
    ) -> Result<(), Diagnostic> {
        match which {
            None => self.asm.mov(R0, R7),
            Some(_) if exit => self.asm.load(Size::DW, R0, R6, 8),
            Some(k) => {
                let off = *PT_REGS_SYSCALL_ARGS
                    .get(k)
                    .ok_or_else(|| err(span, "a syscall has at most six arguments"))?;
                let tmp = self.alloc(8, span)?;
                self.asm.store_imm(Size::DW, FP, tmp, 0);
                self.stack_ptr(R1, tmp);
                self.asm.mov_imm(R2, 8);
                self.asm.mov(R3, R8);
                self.asm.alu_imm(Alu::Add, R3, i32::from(off));
                self.asm.call(helper::PROBE_READ_KERNEL);
                self.asm.load(Size::DW, R0, FP, tmp);
            }
        }
        Ok(())
    }

    fn prologue(&mut self) {
        self.asm.mov(R6, R1);
        self.syscall_prologue();
        if !self.task_context() {
            return;
        }
        let exit = self.exit;
        if !self.opts.cgroups.is_empty() {
            // In scope when the ancestor at some target's level is that target.
            let mut levels: Vec<u32> = self.opts.cgroups.iter().map(|c| c.1).collect();
            levels.sort_unstable();
            levels.dedup();
            let in_scope = self.asm.new_label();
            for level in levels {
                self.asm.mov_imm(R1, level as i32);
                self.asm.call(helper::GET_CURRENT_ANCESTOR_CGROUP_ID);
                for (id, _) in self.opts.cgroups.iter().filter(|c| c.1 == level) {
                    self.asm.load_const(R1, *id as i64);
                    self.asm.jump_reg(Cond::Eq, R0, R1, in_scope);
                }
            }
            self.asm.jump(exit);
            self.asm.bind(in_scope);
        }
        if let Some(map) = self.layout.pid_set_map {
            let key = -8;
            self.stack = self.stack.max(8);
            self.asm.call(helper::GET_CURRENT_PID_TGID);
            self.asm.alu_imm(Alu::Rsh, R0, 32);
            self.asm.store(Size::W, FP, key, R0);
            self.asm.load_map(R1, map);
            self.stack_ptr(R2, key);
            self.asm.call(helper::MAP_LOOKUP_ELEM);
            self.asm.jump_imm(Cond::Eq, R0, 0, exit);
        }
        if let Some(pid) = self.opts.pid {
            self.asm.call(helper::GET_CURRENT_PID_TGID);
            self.asm.alu_imm(Alu::Rsh, R0, 32);
            self.asm.load_const(R1, i64::from(pid));
            self.asm.jump_reg(Cond::Ne, R0, R1, exit);
        }
    }

    fn stmts(&mut self, stmts: &[Stmt]) -> Result<(), Diagnostic> {
        for s in stmts {
            let mark = self.stack;
            self.stmt(s)?;
            // Temporaries die with their statement; variables keep their slots.
            self.stack = mark.max(self.var_stack_top());
            // Checked as we go: nested `unroll`s multiply, and would otherwise take
            // minutes and gigabytes before the kernel refused the program.
            if self.asm.insns.len() > MAX_INSNS {
                return Err(err(
                    s.span,
                    format!(
                        "the program for {} has more than {} instructions, the kernel's limit \
                         (BPF_COMPLEXITY_LIMIT_INSNS), with this statement; unroll less",
                        self.probe_name,
                        thousands(MAX_INSNS)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn var_stack_top(&self) -> i32 {
        self.vars
            .values()
            .map(|(off, _)| -i32::from(*off))
            .max()
            .unwrap_or(0)
    }

    fn var_slot(&mut self, name: &str, ty: &Type, span: Span) -> Result<i16, Diagnostic> {
        if let Some((off, existing)) = self.vars.get(name) {
            if existing.size() >= ty.size() {
                return Ok(*off);
            }
        }
        let off = self.alloc(ty.size(), span)?;
        self.zero(off, ty.size());
        self.vars.insert(name.to_string(), (off, ty.clone()));
        Ok(off)
    }

    fn stmt(&mut self, s: &Stmt) -> Result<(), Diagnostic> {
        match &s.kind {
            StmtKind::Expr(e) => self.effect(e),
            StmtKind::MapAssign { map, value } => self.map_assign(map, value),
            StmtKind::MapCompound { map, op, value } => {
                let info = self.user_map(map)?;
                if !matches!(info.value, MapValue::Value(_)) {
                    return Err(err(
                        s.span,
                        "compound assignment needs a map of plain values",
                    ));
                }
                let key = self.build_key(map, None)?;
                self.map_read_int(info.kernel_map, key, None)?;
                let scale = match &info.value {
                    MapValue::Value(t) => self.pointer_step(t, *op, s.span)?,
                    _ => 1,
                };
                let signed = scale == 1 && is_signed(&value.ty);
                self.binary_with_rhs_scaled(*op, value, signed, scale)?;
                let val = self.alloc(8, s.span)?;
                self.asm.store(Size::DW, FP, val, R0);
                self.map_update(info.kernel_map, key, val, 0);
                Ok(())
            }
            StmtKind::VarAssign { name, value } => {
                let ty = if value.ty == Type::None {
                    Type::I64
                } else {
                    value.ty.clone()
                };
                let off = self.var_slot(name, &ty, s.span)?;
                let size = self.vars[name].1.size();
                if ty.is_str() && size > ty.size() {
                    self.zero(off, size);
                }
                self.gen_into(value, off)
            }
            StmtKind::VarCompound { name, op, value } => {
                let (off, ty) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(s.span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                self.asm.load(Size::DW, R0, FP, off);
                let scale = self.pointer_step(&ty, *op, s.span)?;
                let signed = scale == 1 && is_signed(&value.ty);
                self.binary_with_rhs_scaled(*op, value, signed, scale)?;
                self.asm.store(Size::DW, FP, off, R0);
                Ok(())
            }
            StmtKind::If { cond, then, els } => {
                let else_label = self.asm.new_label();
                let end = self.asm.new_label();
                self.gen_int(cond)?;
                self.asm.jump_imm(Cond::Eq, R0, 0, else_label);
                self.stmts(then)?;
                self.asm.jump(end);
                self.asm.bind(else_label);
                self.stmts(els)?;
                self.asm.bind(end);
                Ok(())
            }
            StmtKind::Unroll { count, body } => {
                for _ in 0..*count {
                    self.stmts(body)?;
                }
                Ok(())
            }
            StmtKind::Return => {
                self.leave();
                Ok(())
            }
            StmtKind::While { cond, body } => {
                let first = self.asm.insns.len();
                let top = self.asm.new_label();
                let end = self.asm.new_label();
                self.asm.bind(top);
                let mark = self.stack;
                self.gen_int(cond)?;
                self.stack = mark;
                self.asm.jump_imm(Cond::Eq, R0, 0, end);
                self.loops.push((top, end));
                let body = self.stmts(body);
                self.loops.pop();
                body?;
                self.asm.jump(top);
                self.asm.bind(end);
                self.loop_spans.push((s.span, first..self.asm.insns.len()));
                Ok(())
            }
            StmtKind::Break | StmtKind::Continue => {
                let (top, end) = *self.loops.last().ok_or_else(|| {
                    err(
                        s.span,
                        "'break' and 'continue' need an enclosing while loop",
                    )
                })?;
                // Conditional, like `leave`: code after it is dead, not unreachable.
                self.asm.mov_imm(R0, 0);
                let target = if s.kind == StmtKind::Break { end } else { top };
                self.asm.jump_imm(Cond::Eq, R0, 0, target);
                Ok(())
            }
        }
    }

    fn user_map(&self, map: &MapRef) -> Result<UserMap, Diagnostic> {
        self.layout
            .by_name
            .get(&map.name)
            .map(|i| self.layout.user_maps[*i].clone())
            .ok_or_else(|| err(map.span, format!("Undefined map: @{}", map.name)))
    }

    /// Build a map's key on the stack (plus room for a bucket when `bucket` is given).
    fn build_key(&mut self, map: &MapRef, bucket_room: Option<()>) -> Result<i16, Diagnostic> {
        let info = self.user_map(map)?;
        if info.array {
            let off = self.alloc(8, map.span)?;
            self.asm.store_imm(Size::DW, FP, off, 0);
            return Ok(off);
        }
        let key_size: usize = info.keys.iter().map(Type::size).sum();
        let total = key_size + if bucket_room.is_some() { 8 } else { 0 };
        let off = self.alloc(total.max(8), map.span)?;
        self.zero(off, total.max(8));
        let mut at = off;
        for (k, ty) in map.keys.iter().zip(&info.keys) {
            self.gen_into_sized(k, at, ty)?;
            at += ty.size() as i16;
        }
        Ok(off)
    }

    /// `r0 = value` of an integer-valued map entry, 0 when absent.
    /// `check`: the map read's place, for `-kk` to report a failed lookup there.
    fn map_read_int(
        &mut self,
        map: usize,
        key: i16,
        check: Option<Span>,
    ) -> Result<(), Diagnostic> {
        let info = self
            .layout
            .user_maps
            .iter()
            .find(|m| m.kernel_map == map)
            .cloned();
        self.asm.load_map(R1, map);
        self.stack_ptr(R2, key);
        self.asm.call(helper::MAP_LOOKUP_ELEM);
        if let Some(span) = check {
            self.check_helper(2, "map_lookup_elem", Cond::Eq, span)?;
        }
        let done = self.asm.new_label();
        self.asm.jump_imm(Cond::Eq, R0, 0, done);
        match info.map(|i| i.value) {
            Some(MapValue::Avg) => {
                self.asm.load(Size::DW, R1, R0, 0);
                self.asm.load(Size::DW, R0, R0, 8);
                let nonzero = self.asm.new_label();
                self.asm.jump_imm(Cond::Ne, R1, 0, nonzero);
                self.asm.mov_imm(R0, 0);
                self.asm.jump(done);
                self.asm.bind(nonzero);
                self.asm.alu_reg(Alu::Div, R0, R1);
            }
            Some(MapValue::Value(Type::Int { bytes, signed })) => {
                self.asm.load(Size::from_bytes(bytes as usize), R0, R0, 0);
                self.asm.extend(R0, bytes, signed);
            }
            _ => self.asm.load(Size::DW, R0, R0, 0),
        }
        self.asm.bind(done);
        Ok(())
    }

    fn map_update(&mut self, map: usize, key: i16, value: i16, flags: i32) {
        self.asm.load_map(R1, map);
        self.stack_ptr(R2, key);
        self.stack_ptr(R3, value);
        self.asm.mov_imm(R4, flags);
        self.asm.call(helper::MAP_UPDATE_ELEM);
    }

    fn map_assign(&mut self, map: &MapRef, value: &Expr) -> Result<(), Diagnostic> {
        let info = self.user_map(map)?;
        let agg_arg = |i: usize| -> Result<&Expr, Diagnostic> {
            match &value.kind {
                ExprKind::Call { args, .. } => args
                    .get(i)
                    .ok_or_else(|| err(value.span, "missing argument")),
                _ => Err(err(value.span, "expected an aggregation call")),
            }
        };
        match &info.value {
            MapValue::Value(ty) => {
                // The value before the key, as bpftrace: `@m[$i++] = $i` stores the old $i.
                let val = self.alloc(ty.size(), value.span)?;
                self.zero(val, ty.size());
                self.gen_into_sized(value, val, ty)?;
                let key = self.build_key(map, None)?;
                self.map_update(info.kernel_map, key, val, 0);
                Ok(())
            }
            MapValue::Count => {
                let key = self.build_key(map, None)?;
                self.agg_update(&info, key, None, value.span)
            }
            MapValue::Sum | MapValue::Avg | MapValue::Stats | MapValue::Min | MapValue::Max => {
                let arg = agg_arg(0)?.clone();
                let x = self.alloc(8, value.span)?;
                self.gen_int(&arg)?;
                self.asm.store(Size::DW, FP, x, R0);
                let key = self.build_key(map, None)?;
                self.agg_update(&info, key, Some(x), value.span)
            }
            MapValue::Hist | MapValue::Lhist { .. } => {
                let arg = agg_arg(0)?.clone();
                let x = self.alloc(8, value.span)?;
                self.gen_int(&arg)?;
                if let MapValue::Lhist { min, max, step } = info.value {
                    self.lhist_index(min, max, step);
                } else {
                    self.hist_index();
                }
                self.asm.store(Size::DW, FP, x, R0);
                let key = self.build_key(map, Some(()))?;
                let key_size: usize = info.keys.iter().map(Type::size).sum();
                self.asm.load(Size::DW, R0, FP, x);
                self.asm.store(Size::DW, FP, key + key_size as i16, R0);
                self.agg_update(&info, key, None, value.span)
            }
        }
    }

    /// `r0 = bucket index` of `r0` for hist, as bpftrace 0.17 computes it (and as
    /// [`crate::abi::hist_index`] documents): 0 negative, 1 zero, `2 + log2(v)` capped at 33.
    fn hist_index(&mut self) {
        let a = &mut self.asm;
        let done = a.new_label();
        a.mov(R1, R0);
        a.mov_imm(R0, 0);
        a.jump_imm(Cond::Slt, R1, 0, done);
        a.mov_imm(R0, 1);
        a.jump_imm(Cond::Eq, R1, 0, done);
        a.mov_imm(R0, 2);
        for shift in [32, 16, 8, 4, 2, 1] {
            let skip = a.new_label();
            a.load_const(R2, 1i64 << shift);
            a.jump_reg(Cond::Lt, R1, R2, skip);
            a.alu_imm(Alu::Rsh, R1, shift);
            a.alu_imm(Alu::Add, R0, shift);
            a.bind(skip);
        }
        a.jump_imm(Cond::Le, R0, 33, done);
        a.mov_imm(R0, 33);
        a.bind(done);
    }

    /// `r0 = bucket index` of `r0` for lhist ([`crate::abi::lhist_index`]): 0 below
    /// min, `1 + (max - min) / step` above max, else `1 + (v - min) / step`.
    fn lhist_index(&mut self, min: i64, max: i64, step: i64) {
        let a = &mut self.asm;
        let done = a.new_label();
        let not_low = a.new_label();
        let not_high = a.new_label();
        a.mov(R1, R0);
        a.load_const(R2, min);
        a.jump_reg(Cond::Sge, R1, R2, not_low);
        a.mov_imm(R0, 0);
        a.jump(done);
        a.bind(not_low);
        a.load_const(R2, max);
        a.jump_reg(Cond::Sle, R1, R2, not_high);
        a.load_const(R0, 1 + (max - min) / step);
        a.jump(done);
        a.bind(not_high);
        a.mov(R0, R1);
        a.load_const(R2, min);
        a.alu_reg(Alu::Sub, R0, R2);
        a.load_const(R2, step);
        a.alu_reg(Alu::Div, R0, R2);
        a.alu_imm(Alu::Add, R0, 1);
        a.bind(done);
    }

    /// Look up (creating as zero) the entry at `key` and fold in `x` (a stack slot).
    fn agg_update(
        &mut self,
        info: &UserMap,
        key: i16,
        x: Option<i16>,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let map = info.kernel_map;
        let zero = self.alloc(16, span)?;
        let have = self.asm.new_label();
        let done = self.asm.new_label();
        self.asm.load_map(R1, map);
        self.stack_ptr(R2, key);
        self.asm.call(helper::MAP_LOOKUP_ELEM);
        self.asm.jump_imm(Cond::Ne, R0, 0, have);
        if let (MapValue::Max, Some(x)) = (&info.value, x) {
            // bpftrace 0.17 starts max() at 0: values <= 0 never create an entry.
            self.asm.load(Size::DW, R1, FP, x);
            self.asm.jump_imm(Cond::Sle, R1, 0, done);
        }
        self.zero(zero, 16);
        self.map_update(map, key, zero, 1);
        self.asm.load_map(R1, map);
        self.stack_ptr(R2, key);
        self.asm.call(helper::MAP_LOOKUP_ELEM);
        self.asm.jump_imm(Cond::Eq, R0, 0, done);
        self.asm.bind(have);
        let load_x = |a: &mut Asm, reg: Reg| {
            if let Some(x) = x {
                a.load(Size::DW, reg, FP, x);
            }
        };
        let a = &mut self.asm;
        match info.value {
            MapValue::Count | MapValue::Hist | MapValue::Lhist { .. } => {
                a.load(Size::DW, R1, R0, 0);
                a.alu_imm(Alu::Add, R1, 1);
                a.store(Size::DW, R0, 0, R1);
            }
            MapValue::Sum => {
                a.load(Size::DW, R1, R0, 0);
                load_x(a, R2);
                a.alu_reg(Alu::Add, R1, R2);
                a.store(Size::DW, R0, 0, R1);
            }
            MapValue::Avg | MapValue::Stats => {
                a.load(Size::DW, R1, R0, 0);
                a.alu_imm(Alu::Add, R1, 1);
                a.store(Size::DW, R0, 0, R1);
                a.load(Size::DW, R1, R0, 8);
                load_x(a, R2);
                a.alu_reg(Alu::Add, R1, R2);
                a.store(Size::DW, R0, 8, R1);
            }
            MapValue::Min => {
                let set = a.new_label();
                load_x(a, R1);
                a.load(Size::DW, R2, R0, 8);
                a.jump_imm(Cond::Eq, R2, 0, set);
                a.load(Size::DW, R3, R0, 0);
                a.jump_reg(Cond::Sge, R1, R3, done);
                a.bind(set);
                a.store(Size::DW, R0, 0, R1);
                a.store_imm(Size::DW, R0, 8, 1);
            }
            MapValue::Max => {
                // Starts at 0 (bpftrace 0.17), so only larger positive values count.
                load_x(a, R1);
                a.load(Size::DW, R3, R0, 0);
                a.jump_reg(Cond::Sle, R1, R3, done);
                a.store(Size::DW, R0, 0, R1);
                a.store_imm(Size::DW, R0, 8, 1);
            }
            MapValue::Value(_) => return Err(err(span, "internal error: not an aggregation")),
        }
        self.asm.bind(done);
        Ok(())
    }

    /// Emit an event record laid out at `off` (`size` bytes) into the ring buffer,
    /// counting a failure as a lost event.
    fn output(&mut self, off: i16, size: usize) {
        self.output_flags(off, size, BPF_RB_NO_WAKEUP);
    }

    /// [`Self::output`] with the ring buffer flags given.
    fn output_flags(&mut self, off: i16, size: usize, flags: i32) {
        let events = self.layout.events_map;
        let lost = self.layout.lost_map;
        let a = &mut self.asm;
        let ok = a.new_label();
        a.load_map(R1, events);
        a.mov(R2, FP);
        a.alu_imm(Alu::Add, R2, i32::from(off));
        a.mov_imm(R3, size as i32);
        // No wake-up per record (but where asked): user space polls the ring every few
        // milliseconds (see runtime::event_loop), which costs far less than a wake-up per
        // event.
        a.mov_imm(R4, flags);
        a.call(helper::RINGBUF_OUTPUT);
        a.jump_imm(Cond::Eq, R0, 0, ok);
        a.store_imm(Size::W, FP, off, 0);
        a.load_map(R1, lost);
        a.mov(R2, FP);
        a.alu_imm(Alu::Add, R2, i32::from(off));
        a.call(helper::MAP_LOOKUP_ELEM);
        a.jump_imm(Cond::Eq, R0, 0, ok);
        a.load(Size::DW, R1, R0, 0);
        a.alu_imm(Alu::Add, R1, 1);
        a.store(Size::DW, R0, 0, R1);
        a.bind(ok);
    }

    /// Emit an argument-less event `kind << 32 | index`.
    /// With a helper's return value in r0: under `-k` (`level` 1) or `-kk` (2), when
    /// `r0 <failed> 0` send an [`EventKind::HelperError`] with it for user space to warn.
    fn check_helper(
        &mut self,
        level: u8,
        helper: &str,
        failed: Cond,
        span: Span,
    ) -> Result<(), Diagnostic> {
        if self.opts.helper_checks < level {
            return Ok(());
        }
        let index = self.t.helper_errors.len();
        self.t.helper_errors.push(HelperCheck {
            helper: helper.to_string(),
            span,
            location: String::new(),
            line: 0,
            col: 0,
        });
        let off = self.alloc(16, span)?;
        let ok = self.asm.new_label();
        let failed = match failed {
            Cond::Ne => Cond::Eq,
            Cond::Slt => Cond::Sge,
            _ => Cond::Ne,
        };
        self.asm.jump_imm(failed, R0, 0, ok);
        self.asm.store(Size::DW, FP, off + 8, R0);
        self.asm
            .load_const(R1, ((EventKind::HelperError as i64) << 32) | index as i64);
        self.asm.store(Size::DW, FP, off, R1);
        self.output(off, 16);
        // The helper's result again (the output call clobbered r0).
        self.asm.load(Size::DW, R0, FP, off + 8);
        self.asm.bind(ok);
        Ok(())
    }

    fn simple_event(
        &mut self,
        kind: EventKind,
        index: usize,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let off = self.alloc(8, span)?;
        self.asm
            .load_const(R1, ((kind as i64) << 32) | index as i64);
        self.asm.store(Size::DW, FP, off, R1);
        self.output(off, 8);
        Ok(())
    }

    fn map_arg(&self, e: &Expr) -> Result<UserMap, Diagnostic> {
        match &e.kind {
            ExprKind::Map(m) => self.user_map(m),
            _ => Err(err(e.span, "expected a map")),
        }
    }

    /// A call or expression evaluated for its effect.
    fn effect(&mut self, e: &Expr) -> Result<(), Diagnostic> {
        if let ExprKind::Ternary { cond, then, els } = &e.kind {
            if e.ty == Type::None {
                // `c ? printf(..) : printf(..)`: a statement that runs one of two calls.
                let else_label = self.asm.new_label();
                let end = self.asm.new_label();
                self.gen_int(cond)?;
                self.asm.jump_imm(Cond::Eq, R0, 0, else_label);
                self.effect(then)?;
                self.asm.jump(end);
                self.asm.bind(else_label);
                self.effect(els)?;
                self.asm.bind(end);
                return Ok(());
            }
        }
        let ExprKind::Call { func, args, .. } = &e.kind else {
            return if e.ty.is_int() {
                self.gen_int(e)
            } else {
                Ok(())
            };
        };
        let func = resolved(*func, e.span)?;
        match func {
            Func::Printf => self.printf(e, args, PrintfAction::Print),
            Func::Cat => self.printf(e, args, PrintfAction::Cat),
            Func::System if !self.opts.unsafe_actions => Err(err(
                e.span,
                "system() runs commands on the node: it is only allowed with --unsafe",
            )),
            Func::System => self.printf(e, args, PrintfAction::System),
            Func::Join => self.gen_join(e, args),
            Func::Debugf => self.gen_debugf(e, args),
            Func::Unwatch => {
                let addr = args
                    .first()
                    .ok_or_else(|| err(e.span, "unwatch() needs an address"))?;
                self.gen_int(addr)?;
                let off = self.alloc(16, e.span)?;
                self.asm.store(Size::DW, FP, off + 8, R0);
                self.asm
                    .load_const(R1, (EventKind::WatchpointDetach as i64) << 32);
                self.asm.store(Size::DW, FP, off, R1);
                self.output_flags(off, 16, BPF_RB_FORCE_WAKEUP);
                Ok(())
            }
            Func::Signal => self.gen_signal(e, args),
            Func::Exit => {
                self.simple_event(EventKind::Exit, 0, e.span)?;
                self.leave();
                Ok(())
            }
            Func::Print if !matches!(args.first().map(|a| &a.kind), Some(ExprKind::Map(m)) if m.keys.is_empty()) =>
            {
                let value = args
                    .first()
                    .ok_or_else(|| err(e.span, "print() needs an argument"))?;
                let ty = if value.ty == Type::None {
                    Type::I64
                } else {
                    value.ty.clone()
                };
                let off = self.alloc(8 + ty.size(), e.span)?;
                self.zero(off, 8 + ty.size());
                self.gen_into_sized(value, off + 8, &ty)?;
                let index = self.site(Site::PrintValue, e.span)?;
                self.asm
                    .load_const(R1, ((EventKind::PrintValue as i64) << 32) | index as i64);
                self.asm.store(Size::DW, FP, off, R1);
                self.output(off, 8 + ty.size());
                Ok(())
            }
            Func::Print | Func::Clear | Func::Zero => {
                let map = args
                    .first()
                    .ok_or_else(|| err(e.span, format!("{func}() needs a map")))?;
                let info = self.map_arg(map)?;
                let index = self
                    .layout
                    .user_maps
                    .iter()
                    .position(|m| m.name == info.name)
                    .unwrap_or(0);
                let kind = match func {
                    Func::Print => EventKind::Print,
                    Func::Clear => EventKind::Clear,
                    _ => EventKind::Zero,
                };
                let index = if kind == EventKind::Print {
                    let literal = |i: usize| {
                        matches!(args.get(i).map(|a| &a.kind), None | Some(ExprKind::Int(_)))
                    };
                    if !literal(1) || !literal(2) {
                        return Err(err(
                            e.span,
                            "print(@m, top, div): top and div must be integer literals",
                        ));
                    }
                    self.site(Site::Print, e.span)?
                } else {
                    index
                };
                self.simple_event(kind, index, e.span)
            }
            Func::Time => {
                if !matches!(args.first().map(|a| &a.kind), None | Some(ExprKind::Str(_))) {
                    return Err(err(e.span, "time() takes a string literal"));
                }
                let index = self.site(Site::Time, e.span)?;
                self.simple_event(EventKind::Time, index, e.span)
            }
            Func::Delete => {
                let Some(Expr {
                    kind: ExprKind::Map(m),
                    ..
                }) = args.first()
                else {
                    return Err(err(
                        e.span,
                        "delete() takes a map element, e.g. delete(@m[key])",
                    ));
                };
                let info = self.user_map(m)?;
                if info.array {
                    // A keyless aggregation lives in a (per-CPU) array, whose element
                    // cannot be deleted, nor zeroed for every CPU from here: user space
                    // clears it, as for clear().
                    let index = self
                        .layout
                        .user_maps
                        .iter()
                        .position(|u| u.name == info.name)
                        .unwrap_or(0);
                    return self.simple_event(EventKind::Clear, index, e.span);
                }
                let key = self.build_key(m, None)?;
                self.asm.load_map(R1, info.kernel_map);
                self.stack_ptr(R2, key);
                self.asm.call(helper::MAP_DELETE_ELEM);
                self.check_helper(1, "map_delete_elem", Cond::Ne, e.span)
            }
            _ => {
                if e.ty.is_int() || e.ty == Type::None {
                    if e.ty.is_int() {
                        self.gen_int(e)?;
                    }
                    Ok(())
                } else {
                    let off = self.alloc(e.ty.size(), e.span)?;
                    self.gen_into(e, off)
                }
            }
        }
    }

    /// `printf()`, `cat()` and `system()`: a record of the format's id and its arguments,
    /// formatted (and acted on) in user space.
    fn printf(&mut self, e: &Expr, args: &[Expr], action: PrintfAction) -> Result<(), Diagnostic> {
        if !matches!(args.first().map(|a| &a.kind), Some(ExprKind::Str(_))) {
            let name = match action {
                PrintfAction::Print => Func::Printf,
                PrintfAction::Cat => Func::Cat,
                PrintfAction::System => Func::System,
            };
            return Err(err(
                e.span,
                format!("{name}: the first argument must be a string literal"),
            ));
        }
        let index = self.site(Site::Printf, e.span)?;
        let layout = self.layout.printfs[index].args.clone();
        let size = layout.last().map_or(8, |(ty, at)| at + round8(ty.size()));
        let off = self.alloc(size, e.span)?;
        for ((ty, at), a) in layout.iter().zip(&args[1..]) {
            if ty.is_str() {
                self.zero(off + *at as i16, ty.size());
            }
            self.gen_into_sized(a, off + *at as i16, ty)?;
        }
        self.asm.load_const(R1, index as i64);
        self.asm.store(Size::DW, FP, off, R1);
        self.output(off, size);
        Ok(())
    }

    /// Write `e` (of type `ty`) at `off`; strings shorter than `ty` stay NUL-padded.
    /// Write a tuple literal laid out as `types` (the map's or variable's tuple type,
    /// whose elements may be wider than the literal's).
    fn gen_tuple_into(
        &mut self,
        items: &[Expr],
        types: &[Type],
        off: i16,
    ) -> Result<(), Diagnostic> {
        // Laid out as a C struct; the padding is zeroed (tuples can be map keys).
        let (offsets, size) = trace_lang::types::tuple_layout(types);
        self.zero(off, size);
        for ((item, ty), at) in items.iter().zip(types).zip(offsets) {
            let at = off + at as i16;
            match ty {
                Type::Int { bytes, .. } if *bytes < 8 => {
                    self.gen_int(item)?;
                    self.asm
                        .store(Size::from_bytes(usize::from(*bytes)), FP, at, R0);
                }
                _ if at % 8 != 0 => {
                    // Written aligned, then copied to its place.
                    let tmp = self.alloc(ty.size(), item.span)?;
                    self.zero(tmp, ty.size());
                    self.gen_into_sized(item, tmp, ty)?;
                    self.copy_stack(tmp, at, ty.memory_size());
                }
                _ => self.gen_into_sized(item, at, ty)?,
            }
        }
        Ok(())
    }

    fn gen_into_sized(&mut self, e: &Expr, off: i16, ty: &Type) -> Result<(), Diagnostic> {
        if let (Type::Tuple(target), ExprKind::Tuple(items)) = (ty, &e.kind) {
            if items.len() == target.len() {
                return self.gen_tuple_into(items, target, off);
            }
        }
        if let Type::Str(n) = ty {
            if let Type::Str(m) = e.ty {
                if m > *n {
                    // Copy through a temporary of the source size, then truncate.
                    let tmp = self.alloc(m, e.span)?;
                    self.zero(tmp, m);
                    self.gen_into(e, tmp)?;
                    self.copy_stack(tmp, off, *n);
                    self.asm.store_imm(Size::B, FP, off + *n as i16 - 1, 0);
                    return Ok(());
                }
            }
        }
        self.gen_into(e, off)
    }

    fn copy_stack(&mut self, from: i16, to: i16, size: usize) {
        let mut i = 0;
        while i < size {
            // The verifier refuses misaligned stack accesses (tuple members may be at
            // any offset): the widest chunk both addresses are aligned to.
            let aligned = |n: usize| {
                size - i >= n
                    && (from as i32 + i as i32).rem_euclid(n as i32) == 0
                    && (to as i32 + i as i32).rem_euclid(n as i32) == 0
            };
            let chunk = if aligned(8) {
                8
            } else if aligned(4) {
                4
            } else if aligned(2) {
                2
            } else {
                1
            };
            let sz = Size::from_bytes(chunk);
            self.asm.load(sz, R1, FP, from + i as i16);
            self.asm.store(sz, FP, to + i as i16, R1);
            i += chunk;
        }
    }

    /// Write the value of `e` at `FP + off` (`e.ty.size()` bytes).
    fn gen_into(&mut self, e: &Expr, off: i16) -> Result<(), Diagnostic> {
        match (&e.ty, &e.kind) {
            (Type::Str(n), ExprKind::Str(s)) => {
                let mut bytes = s.as_bytes().to_vec();
                bytes.resize(round8(*n), 0);
                if bytes.len() > *n {
                    bytes[*n - 1] = 0;
                }
                for (i, chunk) in bytes.chunks(8).enumerate() {
                    let v = i64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                    self.asm.load_const(R1, v);
                    self.asm.store(Size::DW, FP, off + 8 * i as i16, R1);
                }
                Ok(())
            }
            (Type::Str(n), ExprKind::Builtin(Builtin::Comm)) => {
                self.stack_ptr(R1, off);
                self.asm.mov_imm(R2, *n as i32);
                self.asm.call(helper::GET_CURRENT_COMM);
                Ok(())
            }
            (
                Type::Str(n),
                ExprKind::Call {
                    func: Some(Func::Str),
                    args,
                    ..
                },
            ) => {
                let p = args
                    .first()
                    .ok_or_else(|| err(e.span, "str() needs an argument"))?;
                if p.ty.is_str() {
                    return self.gen_into_sized(p, off, &e.ty);
                }
                if let Some(text) = self.positional_text_offset(p) {
                    // `str($1 + 2)` of a parameter that is not a number: its text from
                    // the third byte on (the parameter is a string literal, as in bpftrace).
                    let literal = Expr {
                        kind: ExprKind::Str(text),
                        span: p.span,
                        ty: e.ty.clone(),
                    };
                    return self.gen_into(&literal, off);
                }
                if let ExprKind::Positional(i) = p.kind {
                    // `str($1)`: the positional parameter's text, as bpftrace does.
                    let text = self
                        .opts
                        .params
                        .get(i as usize - 1)
                        .cloned()
                        .unwrap_or_default();
                    let literal = Expr {
                        kind: ExprKind::Str(text),
                        span: p.span,
                        ty: e.ty.clone(),
                    };
                    return self.gen_into(&literal, off);
                }
                self.zero(off, *n);
                self.gen_int(p)?;
                let user = matches!(p.ty, Type::Ptr { user: true, .. });
                self.read_str(off, *n, user, e.span)?;
                Ok(())
            }
            (
                Type::Str(_) | Type::Array { .. } | Type::Struct(_) | Type::Tuple(_),
                ExprKind::Var(name),
            ) => {
                let (from, _) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(e.span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                self.copy_stack(from, off, e.ty.size());
                Ok(())
            }
            (
                Type::Str(_) | Type::Array { .. } | Type::Struct(_) | Type::Tuple(_),
                ExprKind::Map(m),
            ) => {
                let n = &e.ty.size();
                let info = self.user_map(m)?;
                let key = self.build_key(m, None)?;
                self.zero(off, *n);
                self.asm.load_map(R1, info.kernel_map);
                self.stack_ptr(R2, key);
                self.asm.call(helper::MAP_LOOKUP_ELEM);
                let done = self.asm.new_label();
                self.asm.jump_imm(Cond::Eq, R0, 0, done);
                let mut i = 0;
                while i + 8 <= *n {
                    self.asm.load(Size::DW, R1, R0, i as i16);
                    self.asm.store(Size::DW, FP, off + i as i16, R1);
                    i += 8;
                }
                while i < *n {
                    self.asm.load(Size::B, R1, R0, i as i16);
                    self.asm.store(Size::B, FP, off + i as i16, R1);
                    i += 1;
                }
                self.asm.bind(done);
                Ok(())
            }
            (Type::Str(n), ExprKind::Field { expr, field, .. }) if expr.ty == Type::Ctx => {
                let f = self.field(field, e.span)?;
                if f.data_loc {
                    self.asm.load(Size::W, R0, R6, f.offset as i16);
                    self.asm.alu_imm(Alu::And, R0, 0xffff);
                    self.asm.mov(R3, R6);
                    self.asm.alu_reg(Alu::Add, R3, R0);
                    self.zero(off, *n);
                    self.stack_ptr(R1, off);
                    self.asm.mov_imm(R2, *n as i32);
                    self.asm.call(helper::PROBE_READ_KERNEL_STR);
                } else {
                    self.asm.mov(R3, R6);
                    self.asm.alu_imm(Alu::Add, R3, f.offset as i32);
                    self.stack_ptr(R1, off);
                    self.asm.mov_imm(R2, (*n).min(f.size as usize) as i32);
                    self.asm.call(helper::PROBE_READ_KERNEL);
                }
                Ok(())
            }
            (Type::Str(_), ExprKind::Ternary { cond, then, els }) => {
                let else_label = self.asm.new_label();
                let end = self.asm.new_label();
                self.gen_int(cond)?;
                self.asm.jump_imm(Cond::Eq, R0, 0, else_label);
                self.zero(off, e.ty.size());
                self.gen_into_sized(then, off, &e.ty)?;
                self.asm.jump(end);
                self.asm.bind(else_label);
                self.zero(off, e.ty.size());
                self.gen_into_sized(els, off, &e.ty)?;
                self.asm.bind(end);
                Ok(())
            }
            (Type::Tuple(types), ExprKind::Tuple(items)) => self.gen_tuple_into(items, types, off),
            (_, ExprKind::Field { expr, field, .. }) if matches!(expr.ty, Type::Tuple(_)) => {
                let (at, size) = self.tuple_element(expr, field, e.span)?;
                self.copy_stack(at, off, size);
                Ok(())
            }
            (Type::Str(_) | Type::Array { .. } | Type::Struct(_), _) if Self::is_memory(e) => {
                self.gen_memory_into(e, off)
            }
            // The value kinds user space decodes in `values` (stacks, addresses, ...).
            (
                Type::Array { .. },
                ExprKind::Call {
                    func: Some(Func::Pton),
                    args,
                    ..
                },
            ) => {
                let text = match args.first().map(|a| &a.kind) {
                    Some(ExprKind::Str(s)) => s.as_str(),
                    _ => "",
                };
                let bytes = trace_lang::sema::pton_bytes(text)
                    .ok_or_else(|| err(e.span, "pton() expects an IP address literal"))?;
                let mut padded = bytes.clone();
                padded.resize(round8(bytes.len()), 0);
                let size = e.ty.size();
                for (i, chunk) in padded.chunks(8).enumerate() {
                    let v = i64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
                    let at = off + 8 * i as i16;
                    if 8 * i + 8 <= size {
                        self.asm.load_const(R1, v);
                        self.asm.store(Size::DW, FP, at, R1);
                    } else {
                        // The tail of a 4-byte address: a word store.
                        self.asm.store_imm(Size::W, FP, at, v as i32);
                    }
                }
                Ok(())
            }
            (t, _) if crate::abi::finished_in_user_space(t) => self.gen_value_into(e, off),
            (Type::Str(_), _) | (Type::Tuple(_), _) => {
                Err(err(e.span, "this string expression is not supported yet"))
            }
            _ => {
                self.gen_int(e)?;
                self.asm.store(Size::DW, FP, off, R0);
                Ok(())
            }
        }
    }

    /// Read a NUL-terminated string from the address in r0 into `FP + off` (a failure
    /// reported under `-kk`, located at `span`).
    fn read_str(&mut self, off: i16, n: usize, user: bool, span: Span) -> Result<(), Diagnostic> {
        self.asm.mov(R3, R0);
        self.stack_ptr(R1, off);
        self.asm.mov_imm(R2, n as i32);
        let (read, name) = if user {
            (helper::PROBE_READ_USER_STR, "probe_read_user_str")
        } else if self.kind == ProbeKind::CgroupSkb {
            // The legacy bpf_probe_read_str is only given to tracing programs.
            (helper::PROBE_READ_KERNEL_STR, "probe_read_kernel_str")
        } else {
            (helper::PROBE_READ_STR, "probe_read_str")
        };
        self.asm.call(read);
        self.check_helper(2, name, Cond::Slt, span)
    }

    fn field(&self, name: &str, span: Span) -> Result<TpField, Diagnostic> {
        self.fields
            .iter()
            .find(|f| f.name == name)
            .cloned()
            .ok_or_else(|| {
                let msg = match self.kind {
                    ProbeKind::Kfunc | ProbeKind::Kretfunc => format!(
                        "{} has no parameter '{name}' (or its BTF is unknown)",
                        self.probe_name
                    ),
                    ProbeKind::Uprobe => format!(
                        "{} has no parameter '{name}' in a register (or its debug info is unknown)",
                        self.probe_name
                    ),
                    _ => format!("this tracepoint has no field '{name}'"),
                };
                err(span, msg)
            })
    }

    fn builtin(&mut self, b: Builtin, span: Span) -> Result<(), Diagnostic> {
        let a = &mut self.asm;
        match b {
            Builtin::Pid => {
                a.call(helper::GET_CURRENT_PID_TGID);
                a.alu_imm(Alu::Rsh, R0, 32);
            }
            Builtin::Tid => {
                a.call(helper::GET_CURRENT_PID_TGID);
                a.extend(R0, 4, false);
            }
            Builtin::Uid => {
                a.call(helper::GET_CURRENT_UID_GID);
                a.extend(R0, 4, false);
            }
            Builtin::Gid => {
                a.call(helper::GET_CURRENT_UID_GID);
                a.alu_imm(Alu::Rsh, R0, 32);
            }
            Builtin::Nsecs => a.call(helper::KTIME_GET_NS),
            Builtin::Elapsed => {
                a.call(helper::KTIME_GET_NS);
                a.load_const(R1, self.opts.start_ns as i64);
                a.alu_reg(Alu::Sub, R0, R1);
            }
            Builtin::Cpid => match self.opts.cpid {
                Some(p) => a.load_const(R0, i64::from(p)),
                None => return Err(err(span, "cpid cannot be used without child command (-c)")),
            },
            Builtin::Cpu => a.call(helper::GET_SMP_PROCESSOR_ID),
            Builtin::Rand => a.call(helper::GET_PRANDOM_U32),
            Builtin::Numaid => a.call(helper::GET_NUMA_NODE_ID),
            Builtin::Cgroup => a.call(helper::GET_CURRENT_CGROUP_ID),
            Builtin::Curtask => a.call(helper::GET_CURRENT_TASK),
            Builtin::Probe => match &self.syscall {
                Some(group) if group.members.len() > 1 => {
                    let done = a.new_label();
                    a.load_const(R0, self.probe_id as i64);
                    for (nr, id, _) in &group.members {
                        let next = a.new_label();
                        a.jump_imm(Cond::Ne, R7, *nr as i32, next);
                        a.load_const(R0, *id as i64);
                        a.jump(done);
                        a.bind(next);
                    }
                    a.bind(done);
                }
                // A k(ret)probe wildcard: the function hit (see runtime::maps::probe_name).
                _ if matches!(self.kind, ProbeKind::Kprobe | ProbeKind::Kretprobe)
                    && self.layout.probe_names[self.probe_id].contains('*') =>
                {
                    a.mov(R1, R6);
                    a.call(helper::GET_FUNC_IP);
                    if self.kind == ProbeKind::Kretprobe {
                        a.alu_imm(Alu::Lsh, R0, 1);
                        a.alu_imm(Alu::Rsh, R0, 1);
                    }
                }
                _ => a.load_const(R0, self.probe_id as i64),
            },
            Builtin::ParamCount => a.load_const(R0, self.opts.params.len() as i64),
            Builtin::Retval => match self.kind {
                ProbeKind::Kretprobe | ProbeKind::Uretprobe => {
                    a.load(Size::DW, R0, R6, PT_REGS_RAX)
                }
                ProbeKind::Kretfunc => {
                    let f = self.fields.iter().find(|f| f.name == KFUNC_RETVAL).cloned();
                    let f = f.ok_or_else(|| {
                        err(
                            span,
                            format!("the return type of {} is unknown", self.probe_name),
                        )
                    })?;
                    self.kfunc_slot(&f, span)?;
                }
                _ => {
                    return Err(err(
                        span,
                        "retval is only available in kretprobe and uretprobe",
                    ))
                }
            },
            Builtin::Func => match self.kind {
                ProbeKind::Kprobe
                | ProbeKind::Kretprobe
                | ProbeKind::Kfunc
                | ProbeKind::Kretfunc => {
                    a.mov(R1, R6);
                    a.call(helper::GET_FUNC_IP);
                }
                ProbeKind::Uprobe => a.load(Size::DW, R0, R6, PT_REGS_IP),
                _ => return Err(err(span, "func is only available in kprobes and uprobes")),
            },
            Builtin::Sarg(n) => {
                // Arguments passed on the stack (x86-64): sargN is the 8 bytes at
                // sp + 8 * (N + 1), above the return address.
                let n = i32::from(n);
                let user = match self.kind {
                    ProbeKind::Uprobe | ProbeKind::Uretprobe => true,
                    ProbeKind::Kprobe | ProbeKind::Kretprobe => false,
                    _ => return Err(err(span, format!("{b} is not available in this probe"))),
                };
                a.load(Size::DW, R0, R6, PT_REGS_SP);
                a.alu_imm(Alu::Add, R0, 8 * (n + 1));
                self.probe_read_int(8, false, user, span)?;
            }
            // The program's context pointer (what `(struct x *)ctx` reads through).
            Builtin::Ctx => a.mov(R0, R6),
            Builtin::Arg(n) => {
                let n = usize::from(n);
                match self.kind {
                    ProbeKind::Kprobe
                    | ProbeKind::Uprobe
                    | ProbeKind::Kretprobe
                    | ProbeKind::Uretprobe => {
                        let off = *PT_REGS_ARGS.get(n).ok_or_else(|| {
                            err(span, format!("{b}: only arg0..arg5 are in registers"))
                        })?;
                        a.load(Size::DW, R0, R6, off);
                    }
                    ProbeKind::RawTracepoint => a.load(Size::DW, R0, R6, 8 * n as i16),
                    ProbeKind::Usdt => self.usdt_arg(n, span)?,
                    _ => return Err(err(span, format!("{b} is not available in this probe"))),
                }
            }
            _ => return Err(err(span, format!("the builtin '{b}' is not supported yet"))),
        }
        Ok(())
    }

    /// Evaluate an integer expression into r0.
    fn gen_int(&mut self, e: &Expr) -> Result<(), Diagnostic> {
        match &e.kind {
            ExprKind::Int(v) => self.asm.load_const(R0, *v),
            ExprKind::Positional(n) => {
                let text = self
                    .opts
                    .params
                    .get(*n as usize - 1)
                    .map(String::as_str)
                    .unwrap_or("0");
                let v: i64 = parse_int(text).ok_or_else(|| {
                    err(
                        e.span,
                        format!("positional parameter ${n} is not a number: '{text}'"),
                    )
                })?;
                self.asm.load_const(R0, v);
            }
            ExprKind::Builtin(b) => self.builtin(*b, e.span)?,
            ExprKind::Var(name) => {
                let (off, ty) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(e.span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                if !ty.is_int()
                    && !matches!(ty, Type::Ptr { .. } | Type::Probe | Type::Ksym | Type::Usym)
                {
                    return Err(err(e.span, format!("${name} is not an integer")));
                }
                self.asm.load(Size::DW, R0, FP, off);
            }
            ExprKind::Map(m) => {
                let info = self.user_map(m)?;
                let key = self.build_key(m, None)?;
                self.map_read_int(info.kernel_map, key, Some(m.span))?;
            }
            ExprKind::Call { func, args, .. } => {
                self.int_call(e, resolved(*func, e.span)?, args)?
            }
            ExprKind::Unary { op, expr } => {
                self.gen_int(expr)?;
                match op {
                    UnOp::Not => {
                        let a = &mut self.asm;
                        let zero = a.new_label();
                        let done = a.new_label();
                        a.jump_imm(Cond::Eq, R0, 0, zero);
                        a.mov_imm(R0, 0);
                        a.jump(done);
                        a.bind(zero);
                        a.mov_imm(R0, 1);
                        a.bind(done);
                    }
                    UnOp::BitNot => self.asm.alu_imm(Alu::Xor, R0, -1),
                    UnOp::Neg => self.asm.neg(R0),
                    UnOp::Deref => {
                        let (size, signed, user) = match &expr.ty {
                            Type::Ptr { to, user } => match **to {
                                Type::Int { bytes, signed } => (bytes, signed, *user),
                                _ => (8, false, *user),
                            },
                            _ => (8, false, false),
                        };
                        self.probe_read_int(size, signed, user, e.span)?;
                    }
                    UnOp::AddrOf => return Err(err(e.span, "'&' is not supported yet")),
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                if lhs.ty.is_str() && rhs.ty.is_str() {
                    return self.gen_str_equality(*op, lhs, rhs, e.span);
                }
                if matches!(
                    lhs.ty,
                    Type::Array { .. } | Type::Struct(_) | Type::Buf(_) | Type::Tuple(_)
                ) {
                    return self.gen_bytes_equality(*op, lhs, rhs, e.span);
                }
                if matches!(e.ty, Type::Ptr { .. }) && matches!(op, BinOp::Add | BinOp::Sub) {
                    return self.gen_pointer_arith(e, *op, lhs, rhs);
                }
                // The operands' temporaries (the spilled left operand, ...) are dead
                // once the result is in r0: a chain `a + b + c + ...` reuses one slot.
                let mark = self.stack;
                self.gen_int(lhs)?;
                let signed = is_signed(&lhs.ty) && is_signed(&rhs.ty);
                // Pointer arithmetic counts in elements: `p + n` adds n * sizeof(*p).
                let rhs_scale = if rhs.ty.is_int() {
                    self.pointer_step(&lhs.ty, *op, e.span)?
                } else {
                    1
                };
                if lhs.ty.is_int() && *op == BinOp::Add {
                    let lhs_scale = self.pointer_step(&rhs.ty, *op, e.span)?;
                    if lhs_scale != 1 {
                        self.asm.alu_imm(Alu::Mul, R0, lhs_scale as i32);
                    }
                }
                self.binary_with_rhs_scaled(*op, rhs, signed, rhs_scale)?;
                self.stack = mark;
            }
            ExprKind::IncDec { target, inc, post } => {
                self.gen_inc_dec(target, *inc, *post, e.span)?;
            }
            ExprKind::Ternary { cond, then, els } => {
                let else_label = self.asm.new_label();
                let end = self.asm.new_label();
                self.gen_int(cond)?;
                self.asm.jump_imm(Cond::Eq, R0, 0, else_label);
                self.gen_int(then)?;
                self.asm.jump(end);
                self.asm.bind(else_label);
                self.gen_int(els)?;
                self.asm.bind(end);
            }
            ExprKind::Field { expr, field, .. } if matches!(expr.ty, Type::Tuple(_)) => {
                let (at, _) = self.tuple_element(expr, field, e.span)?;
                let (bytes, signed) = match e.ty {
                    Type::Int { bytes, signed } => (bytes, signed),
                    _ => (8, false),
                };
                self.asm
                    .load(Size::from_bytes(usize::from(bytes)), R0, FP, at);
                self.asm.extend(R0, bytes, signed);
            }
            ExprKind::Field { expr, field, .. }
                if matches!(&expr.kind, ExprKind::Builtin(Builtin::Skb)) =>
            {
                self.skb_field(field, e.span)?;
            }
            ExprKind::Field { expr, field, .. }
                if expr.ty == Type::Ctx && self.syscall.is_some() =>
            {
                self.syscall_field(field, e.span)?;
            }
            ExprKind::Field { expr, field, .. }
                if expr.ty == Type::Ctx
                    && matches!(self.kind, ProbeKind::Kfunc | ProbeKind::Kretfunc) =>
            {
                let f = self.field(field, e.span)?;
                self.kfunc_slot(&f, e.span)?;
            }
            ExprKind::Field { expr, field, .. } if expr.ty == Type::Ctx => {
                let f = self.field(field, e.span)?;
                let (bytes, signed) = match f.ty {
                    Type::Int { bytes, signed } => (bytes, signed),
                    _ => (8, false),
                };
                let bytes = if f.size as u8 != bytes && f.size <= 8 {
                    f.size as u8
                } else {
                    bytes
                };
                self.asm
                    .load(Size::from_bytes(bytes as usize), R0, R6, f.offset as i16);
                self.asm.extend(R0, bytes, signed);
            }
            ExprKind::Cast { expr, .. } => {
                self.gen_int(expr)?;
                if let Type::Int { bytes, signed } = e.ty {
                    self.asm.extend(R0, bytes, signed);
                }
            }
            ExprKind::Sizeof(ty) => {
                let size = scalar_type_size(ty)
                    .ok_or_else(|| err(e.span, format!("sizeof({ty}) is not supported yet")))?;
                self.asm.load_const(R0, size as i64);
            }
            _ if Self::is_memory(e) => self.gen_memory_int(e)?,
            _ => return Err(err(e.span, "this expression is not supported yet")),
        }
        Ok(())
    }

    /// r0 = a kfunc argument (or a kretfunc's return value): one 8-byte slot of the
    /// context, cut to its type's width. A pointer is read with the probe-read helper, so
    /// that it is a plain number to the verifier (a direct load would make it a BTF
    /// pointer, on which the verifier refuses much of the arithmetic scripts do).
    fn kfunc_slot(&mut self, f: &TpField, span: Span) -> Result<(), Diagnostic> {
        match f.ty {
            Type::Int { bytes, signed } => {
                self.asm.load(Size::DW, R0, R6, f.offset as i16);
                self.asm.extend(R0, bytes, signed);
                Ok(())
            }
            Type::Ptr { .. } => {
                self.asm.mov(R0, R6);
                self.asm.alu_imm(Alu::Add, R0, f.offset as i32);
                self.probe_read_int(8, false, false, span)
            }
            _ => Err(err(
                span,
                format!(
                    "{} of {} is passed by value as {}, which is not supported yet",
                    if f.name == KFUNC_RETVAL {
                        "the return value"
                    } else {
                        f.name.as_str()
                    },
                    self.probe_name,
                    f.ty
                ),
            )),
        }
    }

    /// r0 = argument `n` of a USDT marker, extended to 64 bits as its spec says.
    fn usdt_arg(&mut self, n: usize, span: Span) -> Result<(), Diagnostic> {
        let arg = match self.usdt_args.get(n) {
            Some(Ok(arg)) => arg.clone(),
            Some(Err(why)) => return Err(err(span, format!("{}: {why}", self.probe_name))),
            None => {
                return Err(err(
                    span,
                    format!(
                        "arg{n}: {} has {} argument{}",
                        self.probe_name,
                        self.usdt_args.len(),
                        if self.usdt_args.len() == 1 { "" } else { "s" }
                    ),
                ))
            }
        };
        let reg = |r: UsdtReg| r.pt_regs_offset();
        match arg.loc {
            ArgLocation::Const(v) => self.asm.load_const(R0, v),
            ArgLocation::Reg(r) => self.asm.load(Size::DW, R0, R6, reg(r)),
            ArgLocation::Mem {
                base,
                offset,
                index,
            } => {
                self.asm.load(Size::DW, R0, R6, reg(base));
                if offset != 0 {
                    self.asm.load_const(R1, offset);
                    self.asm.alu_reg(Alu::Add, R0, R1);
                }
                if let Some((idx, scale)) = index {
                    self.asm.load(Size::DW, R1, R6, reg(idx));
                    if scale > 1 {
                        self.asm.alu_imm(Alu::Mul, R1, i32::from(scale));
                    }
                    self.asm.alu_reg(Alu::Add, R0, R1);
                }
                return self.probe_read_int(arg.size, arg.signed, true, span);
            }
        }
        self.asm.extend(R0, arg.size, arg.signed);
        Ok(())
    }

    /// The probe-read helper of a read of user (`user`) or kernel memory, and its name as
    /// bpftrace reports it under `-kk`. Probes in neither a kernel nor a user context
    /// (BEGIN, END, interval, profile, software, hardware, watchpoint) use the legacy
    /// `bpf_probe_read` (user memory below TASK_SIZE, kernel memory above), as bpftrace
    /// 0.17 does for them ("Addrspace is not set").
    pub(super) fn read_helper(&self, user: bool) -> (i32, &'static str) {
        if user {
            return (helper::PROBE_READ_USER, "probe_read_user");
        }
        match self.kind {
            ProbeKind::Begin
            | ProbeKind::End
            | ProbeKind::Interval
            | ProbeKind::Profile
            | ProbeKind::Software
            | ProbeKind::Hardware
            | ProbeKind::Watchpoint
            | ProbeKind::AsyncWatchpoint => (helper::PROBE_READ, "probe_read"),
            _ => (helper::PROBE_READ_KERNEL, "probe_read_kernel"),
        }
    }

    /// r0 = *(intN *)r0, read with the probe-read helper.
    fn probe_read_int(
        &mut self,
        bytes: u8,
        signed: bool,
        user: bool,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let tmp = self.alloc(8, span)?;
        self.asm.store_imm(Size::DW, FP, tmp, 0);
        self.asm.mov(R3, R0);
        self.stack_ptr(R1, tmp);
        self.asm.mov_imm(R2, i32::from(bytes));
        let (read, name) = self.read_helper(user);
        self.asm.call(read);
        self.check_helper(2, name, Cond::Ne, span)?;
        self.asm.load(Size::from_bytes(bytes as usize), R0, FP, tmp);
        self.asm.extend(R0, bytes, signed);
        Ok(())
    }

    fn int_call(&mut self, e: &Expr, func: Func, args: &[Expr]) -> Result<(), Diagnostic> {
        match func {
            Func::Cgroupid => {
                let Some(Expr {
                    kind: ExprKind::Str(path),
                    ..
                }) = args.first()
                else {
                    return Err(err(e.span, "cgroupid() takes a string literal path"));
                };
                let id = self
                    .opts
                    .cgroup_id_of
                    .and_then(|f| f(path))
                    .ok_or_else(|| err(e.span, format!("cgroupid: cannot find cgroup '{path}'")))?;
                self.asm.load_const(R0, id as i64);
            }
            Func::Kaddr => self.gen_kaddr(e, args)?,
            Func::Strncmp => self.gen_strncmp(e, args)?,
            Func::Bswap => {
                let arg = args
                    .first()
                    .ok_or_else(|| err(e.span, "bswap() needs an argument"))?;
                self.gen_int(arg)?;
                let bytes = match arg.ty {
                    Type::Int { bytes, .. } => bytes,
                    _ => 8,
                };
                if bytes > 1 {
                    self.asm.bswap(R0, i32::from(bytes) * 8);
                }
            }
            Func::Reg => {
                let Some(Expr {
                    kind: ExprKind::Str(reg),
                    ..
                }) = args.first()
                else {
                    return Err(err(e.span, "reg() takes a register name"));
                };
                let off = pt_regs_offset(reg)
                    .ok_or_else(|| err(e.span, format!("'{reg}' is not a register on x86-64")))?;
                self.asm.load(Size::DW, R0, R6, off);
            }
            Func::Uaddr => {
                // Resolved by the front end when the symbol is found (see sema).
                return Err(err(
                    e.span,
                    "uaddr(): no such symbol in the probed executable, or it is position-independent (a PIE or library, whose addresses are only known at run time)",
                ));
            }
            Func::Ksym | Func::Usym | Func::Uptr | Func::Kptr => {
                let arg = args
                    .first()
                    .ok_or_else(|| err(e.span, format!("{func}() needs an argument")))?;
                self.gen_int(arg)?;
            }
            _ => {
                return Err(err(
                    e.span,
                    format!("{func}() cannot be used as a value here"),
                ))
            }
        }
        Ok(())
    }

    /// `$N + k` (or `k + $N`) where parameter N is not a number: its text from byte k.
    fn positional_text_offset(&self, e: &Expr) -> Option<String> {
        let ExprKind::Binary {
            op: BinOp::Add,
            lhs,
            rhs,
        } = &e.kind
        else {
            return None;
        };
        let (n, k) = match (&lhs.kind, &rhs.kind) {
            (ExprKind::Positional(n), ExprKind::Int(k))
            | (ExprKind::Int(k), ExprKind::Positional(n)) => (*n, *k),
            _ => return None,
        };
        let text = self.opts.params.get((n as usize).checked_sub(1)?)?;
        if parse_int(text).is_some() {
            return None;
        }
        let k = usize::try_from(k).ok()?.min(text.len());
        Some(String::from_utf8_lossy(&text.as_bytes()[k..]).into_owned())
    }

    /// What one unit added to (or taken from) a value of type `t` adds: the size of the
    /// pointee for a pointer and `+`/`-`, else 1.
    fn pointer_step(&self, t: &Type, op: BinOp, span: Span) -> Result<i64, Diagnostic> {
        match t {
            Type::Ptr { to, .. } if matches!(op, BinOp::Add | BinOp::Sub) => {
                let size = match to.as_ref() {
                    Type::None => 1,
                    t => self.memory_size(t, span)?.max(1),
                };
                i64::try_from(size)
                    .ok()
                    .filter(|n| *n <= i64::from(i32::MAX))
                    .ok_or_else(|| {
                        err(
                            span,
                            "pointer arithmetic on a type this large is not supported",
                        )
                    })
            }
            _ => Ok(1),
        }
    }

    /// `x++`, `++x`, `x--`, `--x` on a variable or map: r0 = the old value (post) or the
    /// new one.
    fn gen_inc_dec(
        &mut self,
        target: &Expr,
        inc: bool,
        post: bool,
        span: Span,
    ) -> Result<(), Diagnostic> {
        let op = if inc { BinOp::Add } else { BinOp::Sub };
        let step = self.pointer_step(&target.ty, op, span)? as i32;
        let delta = if inc { step } else { -step };
        let old = self.alloc(8, span)?;
        let new = self.alloc(8, span)?;
        match &target.kind {
            ExprKind::Var(name) => {
                let (off, _) = self.vars.get(name).cloned().ok_or_else(|| {
                    err(span, format!("Undefined or undeclared variable: ${name}"))
                })?;
                self.asm.load(Size::DW, R0, FP, off);
                self.asm.store(Size::DW, FP, old, R0);
                self.asm.alu_imm(Alu::Add, R0, delta);
                self.asm.store(Size::DW, FP, off, R0);
                self.asm.store(Size::DW, FP, new, R0);
            }
            ExprKind::Map(map) => {
                let info = self.user_map(map)?;
                if !matches!(info.value, MapValue::Value(_)) {
                    return Err(err(span, "++ and -- need a map of plain values"));
                }
                let key = self.build_key(map, None)?;
                self.map_read_int(info.kernel_map, key, None)?;
                self.asm.store(Size::DW, FP, old, R0);
                self.asm.alu_imm(Alu::Add, R0, delta);
                self.asm.store(Size::DW, FP, new, R0);
                self.map_update(info.kernel_map, key, new, 0);
            }
            _ => return Err(err(span, "++ and -- apply to a variable or a map")),
        }
        self.asm
            .load(Size::DW, R0, FP, if post { old } else { new });
        Ok(())
    }

    /// With the left operand in r0, evaluate `rhs`, multiply it by `scale` (pointer
    /// arithmetic) and apply `op`; result in r0.
    fn binary_with_rhs_scaled(
        &mut self,
        op: BinOp,
        rhs: &Expr,
        signed: bool,
        scale: i64,
    ) -> Result<(), Diagnostic> {
        if matches!(op, BinOp::And | BinOp::Or) {
            let a = &mut self.asm;
            let short = a.new_label();
            let done = a.new_label();
            // && : if lhs == 0 -> 0 ; || : if lhs != 0 -> 1
            let (cond, short_value) = if op == BinOp::And {
                (Cond::Eq, 0)
            } else {
                (Cond::Ne, 1)
            };
            a.jump_imm(cond, R0, 0, short);
            self.gen_int(rhs)?;
            let a = &mut self.asm;
            let t = a.new_label();
            a.jump_imm(Cond::Ne, R0, 0, t);
            a.mov_imm(R0, 0);
            a.jump(done);
            a.bind(t);
            a.mov_imm(R0, 1);
            a.jump(done);
            a.bind(short);
            a.mov_imm(R0, short_value);
            a.bind(done);
            return Ok(());
        }
        let lhs = self.alloc(8, rhs.span)?;
        self.asm.store(Size::DW, FP, lhs, R0);
        self.gen_int(rhs)?;
        if scale != 1 {
            self.asm.alu_imm(Alu::Mul, R0, scale as i32);
        }
        self.asm.mov(R2, R0);
        self.asm.load(Size::DW, R1, FP, lhs);
        let a = &mut self.asm;
        let alu = match op {
            BinOp::Add => Some(Alu::Add),
            BinOp::Sub => Some(Alu::Sub),
            BinOp::Mul => Some(Alu::Mul),
            BinOp::Div => Some(Alu::Div),
            BinOp::Mod => Some(Alu::Mod),
            BinOp::BitAnd => Some(Alu::And),
            BinOp::BitOr => Some(Alu::Or),
            BinOp::BitXor => Some(Alu::Xor),
            BinOp::Shl => Some(Alu::Lsh),
            BinOp::Shr => Some(Alu::Rsh),
            _ => None,
        };
        if let Some(alu) = alu {
            a.alu_reg(alu, R1, R2);
            a.mov(R0, R1);
            return Ok(());
        }
        let cond = match (op, signed) {
            (BinOp::Eq, _) => Cond::Eq,
            (BinOp::Ne, _) => Cond::Ne,
            (BinOp::Lt, true) => Cond::Slt,
            (BinOp::Lt, false) => Cond::Lt,
            (BinOp::Le, true) => Cond::Sle,
            (BinOp::Le, false) => Cond::Le,
            (BinOp::Gt, true) => Cond::Sgt,
            (BinOp::Gt, false) => Cond::Gt,
            (BinOp::Ge, true) => Cond::Sge,
            (BinOp::Ge, false) => Cond::Ge,
            _ => return Err(err(rhs.span, "internal error: unexpected operator")),
        };
        let t = a.new_label();
        let done = a.new_label();
        a.jump_reg(cond, R1, R2, t);
        a.mov_imm(R0, 0);
        a.jump(done);
        a.bind(t);
        a.mov_imm(R0, 1);
        a.bind(done);
        Ok(())
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Size of a C scalar type name, for `sizeof`.
fn scalar_type_size(ty: &str) -> Option<usize> {
    let ty = ty.trim();
    if ty.ends_with('*') {
        return Some(8);
    }
    Some(match ty {
        "char" | "int8" | "uint8" | "u8" | "s8" | "bool" => 1,
        "short" | "int16" | "uint16" | "u16" | "s16" => 2,
        "int" | "int32" | "uint32" | "u32" | "s32" | "unsigned int" => 4,
        "long" | "int64" | "uint64" | "u64" | "s64" | "unsigned long" | "long long" => 8,
        _ => return None,
    })
}

fn is_signed(ty: &Type) -> bool {
    matches!(ty, Type::Int { signed: true, .. })
}

/// A positional parameter's integer value: decimal, `0x` hex or `0` octal, as bpftrace.
fn parse_int(s: &str) -> Option<i64> {
    trace_lang::parser::parse_int_text(s)
}

#[cfg(test)]
mod kfunc_tests {
    use super::*;
    use trace_lang::sema::ProbeEnv;
    use trace_lang::tracepoint_format::TpField;

    /// Knows `m:f(void *p, int n)` returning `int`.
    struct Env;

    impl NodeFacts for Env {}

    impl ProbeEnv for Env {
        fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
            None
        }
        fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
            None
        }
        fn kfuncs(&self, _: bool, _: Option<&str>, _: &str) -> Option<Vec<(String, String)>> {
            Some(vec![("m".into(), "f".into())])
        }
        fn kfunc_signature(&self, module: &str, func: &str) -> Option<FuncSignature> {
            let int = Type::Int {
                bytes: 4,
                signed: true,
            };
            let ptr = Type::Ptr {
                to: Box::new(Type::Int {
                    bytes: 8,
                    signed: false,
                }),
                user: false,
            };
            (module == "m" && func == "f").then(|| FuncSignature {
                params: vec![("p".into(), ptr), ("n".into(), int.clone())],
                ret: int,
            })
        }
    }

    fn compile(src: &str) -> Compiled {
        let (program, analysis) = trace_lang::check(src, &Env).unwrap();
        generate(&program, &analysis, &Env, &CodegenOptions::default()).unwrap()
    }

    /// `ldx dst, [src + off]` of `bytes` as its encoding's first four bytes.
    fn ldx(dst: u8, src: u8, off: i16, size: u8) -> [u8; 4] {
        let off = off.to_le_bytes();
        [0x61 | size, (src << 4) | dst, off[0], off[1]]
    }

    fn has(p: &CompiledProgram, want: [u8; 4]) -> bool {
        p.code.insns.iter().any(|i| i.to_bytes()[..4] == want)
    }

    #[test]
    fn kretfunc_reads_args_and_retval_from_the_context_slots() {
        let c =
            compile("kretfunc:m:f { @n = sum(args->n); @r = sum(retval); @p[args->p] = count(); }");
        let [p] = &c.programs[..] else {
            panic!("{} programs", c.programs.len());
        };
        assert_eq!(
            p.attach,
            Attach::Fentry {
                module: "m".into(),
                func: "f".into(),
                ret: true
            }
        );
        assert_eq!(p.code.section, "fexit/p0");
        assert_eq!(p.probe_name, "kretfunc:m:f");
        // R6 holds the context: `n` is slot 1 and the return value slot 2, each loaded
        // as 8 bytes (the verifier's rule for tracing contexts) and then cut to an int.
        const DW: u8 = 0x18;
        assert!(has(p, ldx(0, 6, 8, DW)), "no load of args->n");
        assert!(has(p, ldx(0, 6, 16, DW)), "no load of retval");
        // The pointer in slot 0 is read with the probe-read helper, never loaded.
        assert!(!has(p, ldx(0, 6, 0, DW)));
        assert!(
            p.code.insns.iter().any(|i| {
                let b = i.to_bytes();
                b[0] == 0x85 && b[4..8] == helper::PROBE_READ_KERNEL.to_le_bytes()
            }),
            "no probe read"
        );
    }

    #[test]
    fn kfunc_is_a_fentry_program() {
        let c = compile("kfunc:m:f { @ = count(); }");
        assert_eq!(c.programs[0].code.section, "fentry/p0");
        assert!(matches!(
            c.programs[0].attach,
            Attach::Fentry { ret: false, .. }
        ));
    }
}
