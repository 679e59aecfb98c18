//! Resource layout, what bpftrace calls RequiredResources: the kernel maps with their ids
//! and key/value layouts, the programs to build and the probe ids they report, and the
//! record user space gets from each call site (printf/cat/system formats and argument
//! layouts, `time`/`strftime` formats, `print` specs and value types, `join`
//! delimiters), with the stack and scratch maps made on first use.
//!
//! One pass over the analysed AST, before any instruction is emitted; the emitter
//! ([`crate::codegen`]) only reads the result. It visits the call sites in the order the
//! emitter generates them (a block once per program, an `unroll` body once per
//! iteration), so the ids are those the emitter numbered when it made the tables
//! itself; the emitter looks each site's id up by its kind and span ([`SiteIds`]).

use std::collections::HashMap;

use trace_lang::ast::{Expr, ExprKind, Probe, Program, Stmt, StmtKind};
use trace_lang::names::{Builtin, Func};
use trace_lang::sema::{Analysis, ResolvedAttach};
use trace_lang::span::Span;
use trace_lang::types::{MapValue, Type};

use crate::abi::{
    PrintSpec, PrintfAction, PrintfSpec, UserMap, JOIN_ARG_LEN, JOIN_MAX_ARGS, MAP_HASH,
    MAP_PERCPU_ARRAY, MAP_PERCPU_HASH, MAP_RINGBUF, MAP_STACK_TRACE, MAX_MAP_ENTRIES,
    RINGBUF_BYTES, SCOPE_PIDS_MAP, STACK_MAX_FRAMES,
};
use crate::object_file::MapDef;

/// Entries of the stack-trace map.
const STACK_ENTRIES: u32 = 16384;

/// What a call site asks user space to keep a record of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Site {
    /// `printf`/`cat`/`system`: an index into [`Layout::printfs`].
    Printf,
    /// `time()` and `strftime()`: an index into [`Layout::time_formats`].
    Time,
    /// `print(@map)`: an index into [`Layout::prints`].
    Print,
    /// `print(value)`: an index into [`Layout::print_values`].
    PrintValue,
    /// `join()`: an index into [`Layout::joins`].
    Join,
}

/// The ids of one program's call sites, by kind and span. A site visited more than once
/// (an `unroll` body, a `#define` used twice) has one id per visit, in visit order.
#[derive(Debug, Clone, Default)]
pub(crate) struct SiteIds {
    ids: HashMap<(Site, Span), Vec<usize>>,
}

impl SiteIds {
    fn push(&mut self, site: Site, span: Span, id: usize) {
        self.ids.entry((site, span)).or_default().push(id);
    }

    /// The id of the `visit`-th visit of a site (the last one's for further visits,
    /// which describe the same record).
    pub(crate) fn get(&self, site: Site, span: Span, visit: usize) -> Option<usize> {
        let ids = self.ids.get(&(site, span))?;
        ids.get(visit).or(ids.last()).copied()
    }
}

/// Syscall tracepoints served by one raw `sys_enter`/`sys_exit` program.
#[derive(Debug, Clone)]
pub(crate) struct SyscallPlan {
    pub exit: bool,
    /// Each member's (syscall number, probe id, index in the block's attach points).
    pub members: Vec<(u32, usize, usize)>,
}

/// One program to build.
#[derive(Debug, Clone)]
pub(crate) struct ProgramPlan {
    /// Index of the probe block in [`Program::probes`].
    pub block: usize,
    /// Set for a group of syscall tracepoints.
    pub syscall: Option<SyscallPlan>,
    /// The attach point served (its index in the block's attach points); the first
    /// member's for a syscall group.
    pub attach: usize,
    /// The `probe` builtin's id (the first member's, for a syscall group).
    pub probe_id: usize,
    pub sites: SiteIds,
}

/// Every resource of a script.
#[derive(Debug, Clone, Default)]
pub(crate) struct Layout {
    pub maps: Vec<MapDef>,
    pub user_maps: Vec<UserMap>,
    /// Index into `user_maps` by map name.
    pub by_name: HashMap<String, usize>,
    pub events_map: usize,
    pub lost_map: usize,
    pub pid_set_map: Option<usize>,
    /// The `BPF_MAP_TYPE_STACK_TRACE` map of `kstack`/`ustack`.
    pub stack_map: Option<usize>,
    /// A one-entry per-CPU array used as scratch space larger than the BPF stack.
    pub scratch_map: Option<usize>,
    pub printfs: Vec<PrintfSpec>,
    pub time_formats: Vec<String>,
    pub prints: Vec<PrintSpec>,
    pub print_values: Vec<Type>,
    pub joins: Vec<String>,
    pub probe_names: Vec<String>,
    pub programs: Vec<ProgramPlan>,
}

/// What lays out the maps and programs, beyond the script.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayoutOptions {
    /// Whether to make the `scope_pids` map.
    pub pid_set: bool,
    /// Entries of keyed maps, when not [`MAX_MAP_ENTRIES`].
    pub map_entries: Option<u32>,
}

/// `sys_enter_NAME` / `sys_exit_NAME` of the syscalls category → (exit?, number).
pub(crate) fn syscall_tracepoint(a: &ResolvedAttach) -> Option<(bool, u32)> {
    if a.kind != trace_lang::ast::ProbeKind::Tracepoint
        || a.parts.len() != 2
        || a.parts[0] != "syscalls"
    {
        return None;
    }
    let name = &a.parts[1];
    let (exit, call) = match (
        name.strip_prefix("sys_enter_"),
        name.strip_prefix("sys_exit_"),
    ) {
        (Some(call), _) => (false, call),
        (_, Some(call)) => (true, call),
        _ => return None,
    };
    crate::syscalls::syscall_nr(call).map(|nr| (exit, nr))
}

/// Lay out the resources of an analysed program. Never fails: a call site the emitter
/// will reject (a format that is not a literal, ...) gets no record, and the emitter
/// reports it.
pub(crate) fn layout(program: &Program, analysis: &Analysis, opts: LayoutOptions) -> Layout {
    let mut l = Layout::default();
    l.maps_of(analysis, opts);
    for (block, probe) in program.probes.iter().enumerate() {
        let attaches = analysis.attach.get(block).map_or(&[][..], Vec::as_slice);
        let mut groups: Vec<SyscallPlan> = Vec::new();
        let mut rest = Vec::new();
        for (i, attach) in attaches.iter().enumerate() {
            let Some((exit, nr)) = syscall_tracepoint(attach) else {
                rest.push(i);
                continue;
            };
            let probe_id = l.probe_names.len();
            l.probe_names.push(attach.name.clone());
            match groups.iter_mut().find(|g| g.exit == exit) {
                Some(g) => g.members.push((nr, probe_id, i)),
                None => groups.push(SyscallPlan {
                    exit,
                    members: vec![(nr, probe_id, i)],
                }),
            }
        }
        for group in groups {
            let (_, probe_id, attach) = group.members[0];
            l.plan(probe, block, Some(group), attach, probe_id);
        }
        for i in rest {
            let probe_id = l.probe_names.len();
            l.probe_names.push(attaches[i].name.clone());
            l.plan(probe, block, None, i, probe_id);
        }
    }
    l
}

impl Layout {
    /// The fixed maps, then one per script map (in name order, as sema lists them).
    fn maps_of(&mut self, analysis: &Analysis, opts: LayoutOptions) {
        self.events_map = self.maps.len();
        self.maps.push(MapDef {
            name: "events".into(),
            map_type: MAP_RINGBUF,
            key_size: 0,
            value_size: 0,
            max_entries: RINGBUF_BYTES,
            flags: 0,
        });
        self.lost_map = self.maps.len();
        self.maps.push(MapDef {
            name: "lost".into(),
            map_type: MAP_PERCPU_ARRAY,
            key_size: 4,
            value_size: 8,
            max_entries: 1,
            flags: 0,
        });
        if opts.pid_set {
            self.pid_set_map = Some(self.maps.len());
            self.maps.push(MapDef {
                name: SCOPE_PIDS_MAP.into(),
                map_type: MAP_HASH,
                key_size: 4,
                value_size: 1,
                max_entries: 65536,
                flags: 0,
            });
        }
        for (i, info) in analysis.maps.values().enumerate() {
            let key_size: usize = info.keys.iter().map(Type::size).sum();
            let aggregate = !matches!(info.value, MapValue::Value(_));
            let bucketed = matches!(info.value, MapValue::Hist | MapValue::Lhist { .. });
            let array = aggregate && !bucketed && info.keys.is_empty();
            let value_size = match &info.value {
                MapValue::Count | MapValue::Sum | MapValue::Hist | MapValue::Lhist { .. } => 8,
                MapValue::Min | MapValue::Max | MapValue::Avg | MapValue::Stats => 16,
                MapValue::Value(ty) => ty.size().max(1),
            };
            let (map_type, key_size) = if array {
                (MAP_PERCPU_ARRAY, 4)
            } else if aggregate {
                (MAP_PERCPU_HASH, key_size + if bucketed { 8 } else { 0 })
            } else {
                (MAP_HASH, key_size.max(8))
            };
            self.by_name.insert(info.name.clone(), self.user_maps.len());
            self.user_maps.push(UserMap {
                name: info.name.clone(),
                kernel_map: self.maps.len(),
                keys: info.keys.clone(),
                value: info.value.clone(),
                per_cpu: aggregate,
                array,
            });
            self.maps.push(MapDef {
                name: format!("m{i}"),
                map_type,
                key_size: key_size.max(1) as u32,
                value_size: value_size as u32,
                max_entries: if array {
                    1
                } else {
                    opts.map_entries.unwrap_or(MAX_MAP_ENTRIES)
                },
                flags: 0,
            });
        }
    }

    /// One program of `probe`'s block: its call sites, in the emitter's order.
    fn plan(
        &mut self,
        probe: &Probe,
        block: usize,
        syscall: Option<SyscallPlan>,
        attach: usize,
        probe_id: usize,
    ) {
        let mut sites = SiteIds::default();
        if let Some(pred) = &probe.predicate {
            self.expr(pred, &mut sites);
        }
        self.stmts(&probe.body, &mut sites);
        self.programs.push(ProgramPlan {
            block,
            syscall,
            attach,
            probe_id,
            sites,
        });
    }

    fn stmts(&mut self, stmts: &[Stmt], sites: &mut SiteIds) {
        for s in stmts {
            self.stmt(s, sites);
        }
    }

    fn stmt(&mut self, s: &Stmt, sites: &mut SiteIds) {
        match &s.kind {
            StmtKind::Expr(e) => self.effect(e, sites),
            // The value before the key, as the emitter.
            StmtKind::MapAssign { map, value } => {
                self.expr(value, sites);
                self.exprs(&map.keys, sites);
            }
            StmtKind::MapCompound { map, value, .. } => {
                self.exprs(&map.keys, sites);
                self.expr(value, sites);
            }
            StmtKind::VarAssign { value, .. } | StmtKind::VarCompound { value, .. } => {
                self.expr(value, sites)
            }
            StmtKind::If { cond, then, els } => {
                self.expr(cond, sites);
                self.stmts(then, sites);
                self.stmts(els, sites);
            }
            StmtKind::Unroll { count, body } => {
                for _ in 0..*count {
                    self.stmts(body, sites);
                }
            }
            StmtKind::While { cond, body } => {
                self.expr(cond, sites);
                self.stmts(body, sites);
            }
            StmtKind::Break | StmtKind::Continue | StmtKind::Return => {}
        }
    }

    /// A statement's expression: the actions, whose records are laid out here.
    fn effect(&mut self, e: &Expr, sites: &mut SiteIds) {
        if let ExprKind::Ternary { cond, then, els } = &e.kind {
            if e.ty == Type::None {
                self.expr(cond, sites);
                self.effect(then, sites);
                self.effect(els, sites);
                return;
            }
        }
        let ExprKind::Call {
            func: Some(func),
            args,
            ..
        } = &e.kind
        else {
            return self.expr(e, sites);
        };
        match func {
            Func::Printf => self.printf(e.span, args, PrintfAction::Print, sites),
            Func::Cat => self.printf(e.span, args, PrintfAction::Cat, sites),
            Func::System => self.printf(e.span, args, PrintfAction::System, sites),
            Func::Join => {
                let delim = match args.get(1).map(|a| &a.kind) {
                    Some(ExprKind::Str(d)) => d.clone(),
                    None => " ".to_string(),
                    Some(_) => return,
                };
                sites.push(Site::Join, e.span, self.joins.len());
                self.joins.push(delim);
                self.scratch();
                self.exprs(args.get(..1).unwrap_or_default(), sites);
            }
            Func::Print => match args.first() {
                Some(Expr {
                    kind: ExprKind::Map(m),
                    ..
                }) if m.keys.is_empty() => {
                    let literal = |i: usize| match args.get(i).map(|a| &a.kind) {
                        Some(ExprKind::Int(v)) => Some(*v as u32),
                        None => Some(0),
                        Some(_) => None,
                    };
                    let (Some(&map), Some(top), Some(div)) =
                        (self.by_name.get(&m.name), literal(1), literal(2))
                    else {
                        return;
                    };
                    sites.push(Site::Print, e.span, self.prints.len());
                    self.prints.push(PrintSpec { map, top, div });
                }
                Some(value) => {
                    self.expr(value, sites);
                    let ty = match &value.ty {
                        Type::None => Type::I64,
                        t => t.clone(),
                    };
                    sites.push(Site::PrintValue, e.span, self.print_values.len());
                    self.print_values.push(ty);
                }
                None => {}
            },
            Func::Time => {
                let fmt = match args.first().map(|a| &a.kind) {
                    Some(ExprKind::Str(s)) => s.clone(),
                    None => "%H:%M:%S\n".to_string(),
                    _ => return,
                };
                sites.push(Site::Time, e.span, self.time_formats.len());
                self.time_formats.push(fmt);
            }
            Func::Clear | Func::Zero => {}
            _ => self.expr(e, sites),
        }
    }

    /// `printf()`, `cat()`, `system()`: the arguments, then the record's layout (the
    /// format's id at offset 0, then each argument 8-byte aligned).
    fn printf(&mut self, span: Span, args: &[Expr], action: PrintfAction, sites: &mut SiteIds) {
        let Some(Expr {
            kind: ExprKind::Str(format),
            ..
        }) = args.first()
        else {
            return;
        };
        let mut layout = Vec::new();
        let mut size = 8usize;
        for a in &args[1..] {
            let ty = match &a.ty {
                Type::None => Type::I64,
                t => t.clone(),
            };
            let at = size;
            size += ty.size().div_ceil(8) * 8;
            layout.push((ty, at));
        }
        self.exprs(&args[1..], sites);
        sites.push(Site::Printf, span, self.printfs.len());
        self.printfs.push(PrintfSpec {
            action,
            // `%r` (a buf() value) arrives already escaped: print it as a string;
            // `%rx` and `%rh` stay, for the output to print the bytes in hex.
            format: format
                .split("%r")
                .enumerate()
                .map(|(i, piece)| match i {
                    0 => piece.to_string(),
                    _ if piece.starts_with(['x', 'h']) => format!("%r{piece}"),
                    _ => format!("%s{piece}"),
                })
                .collect(),
            args: layout,
        });
    }

    fn exprs(&mut self, es: &[Expr], sites: &mut SiteIds) {
        for e in es {
            self.expr(e, sites);
        }
    }

    /// An expression's values that need records or maps: `strftime()` formats and
    /// stacks; other calls' arguments.
    fn expr(&mut self, e: &Expr, sites: &mut SiteIds) {
        match &e.kind {
            ExprKind::Builtin(Builtin::Kstack | Builtin::Ustack) => self.stacks(),
            ExprKind::Call { func, args, .. } => {
                match func {
                    Some(Func::Kstack | Func::Ustack) => self.stacks(),
                    Some(Func::Strftime) if e.ty == Type::Timestamp => {
                        if let Some(ExprKind::Str(fmt)) = args.first().map(|a| &a.kind) {
                            sites.push(Site::Time, e.span, self.time_formats.len());
                            self.time_formats.push(fmt.clone());
                        }
                    }
                    _ => {}
                }
                self.exprs(args, sites);
            }
            ExprKind::Map(m) => self.exprs(&m.keys, sites),
            ExprKind::Tuple(items) => self.exprs(items, sites),
            ExprKind::Unary { expr, .. }
            | ExprKind::IncDec { target: expr, .. }
            | ExprKind::Field { expr, .. }
            | ExprKind::Cast { expr, .. } => self.expr(expr, sites),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs, sites);
                self.expr(rhs, sites);
            }
            ExprKind::Ternary { cond, then, els } => {
                self.expr(cond, sites);
                self.expr(then, sites);
                self.expr(els, sites);
            }
            ExprKind::Index { expr, index } => {
                self.expr(expr, sites);
                self.expr(index, sites);
            }
            ExprKind::Int(_)
            | ExprKind::Str(_)
            | ExprKind::Positional(_)
            | ExprKind::Builtin(_)
            | ExprKind::Ident(_)
            | ExprKind::Var(_)
            | ExprKind::Sizeof(_) => {}
        }
    }

    /// The stack-trace map, made on first use.
    fn stacks(&mut self) {
        if self.stack_map.is_none() {
            self.stack_map = Some(self.maps.len());
            self.maps.push(MapDef {
                name: "stacks".into(),
                map_type: MAP_STACK_TRACE,
                key_size: 4,
                value_size: (8 * STACK_MAX_FRAMES) as u32,
                max_entries: STACK_ENTRIES,
                flags: 0,
            });
        }
    }

    /// The scratch map, made on first use.
    fn scratch(&mut self) {
        if self.scratch_map.is_none() {
            self.scratch_map = Some(self.maps.len());
            self.maps.push(MapDef {
                name: "scratch".into(),
                map_type: MAP_PERCPU_ARRAY,
                key_size: 4,
                value_size: (8 + JOIN_MAX_ARGS * JOIN_ARG_LEN) as u32,
                max_entries: 1,
                flags: 0,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_lang::NoEnv;

    fn laid_out(src: &str) -> (Program, Layout) {
        let (program, analysis) =
            trace_lang::check(src, &NoEnv).unwrap_or_else(|e| panic!("{}", e.render("t.bt", src)));
        let opts = LayoutOptions {
            pid_set: false,
            map_entries: None,
        };
        let l = layout(&program, &analysis, opts);
        (program, l)
    }

    /// The span of the `n`-th occurrence of `text` in `src`.
    fn span_of(src: &str, text: &str, n: usize) -> Span {
        let start = src.match_indices(text).nth(n).expect(text).0;
        Span::new(start, start + text.len())
    }

    #[test]
    fn an_unrolled_body_gets_a_record_per_iteration() {
        let src =
            r#"BEGIN { unroll(2) { printf("%d %s\n", pid, strftime("%H", nsecs)); } time(); }"#;
        let (_, l) = laid_out(src);
        assert_eq!(l.printfs.len(), 2);
        assert_eq!(l.time_formats, ["%H", "%H", "%H:%M:%S\n"]);
        let sites = &l.programs[0].sites;
        let printf = span_of(src, r#"printf("%d %s\n", pid, strftime("%H", nsecs))"#, 0);
        let strftime = span_of(src, r#"strftime("%H", nsecs)"#, 0);
        let time = span_of(src, "time()", 0);
        assert_eq!(sites.get(Site::Printf, printf, 0), Some(0));
        assert_eq!(sites.get(Site::Printf, printf, 1), Some(1));
        // A further visit describes the same record: the last id.
        assert_eq!(sites.get(Site::Printf, printf, 2), Some(1));
        assert_eq!(sites.get(Site::Time, strftime, 1), Some(1));
        assert_eq!(sites.get(Site::Time, time, 0), Some(2));
        assert_eq!(sites.get(Site::Join, printf, 0), None);
    }

    #[test]
    fn printf_records_lay_arguments_out_8_byte_aligned() {
        let (_, l) = laid_out(r#"BEGIN { printf("%s %d %d\n", comm, (uint8)1, 2); }"#);
        let spec = &l.printfs[0];
        assert_eq!(spec.action, PrintfAction::Print);
        let offsets: Vec<usize> = spec.args.iter().map(|(_, at)| *at).collect();
        assert_eq!(offsets, [8, 24, 32]);
        assert_eq!(spec.args[0].0, Type::Str(16));
    }

    #[test]
    fn each_attach_point_is_a_program_with_its_own_records() {
        let src = r#"kprobe:a, kprobe:b { printf("x\n"); print(@n, 2); } BEGIN { @n[1] = 1; }"#;
        let (_, l) = laid_out(src);
        assert_eq!(l.probe_names, ["kprobe:a", "kprobe:b", "BEGIN"]);
        let plans: Vec<(usize, usize, usize)> = l
            .programs
            .iter()
            .map(|p| (p.block, p.attach, p.probe_id))
            .collect();
        assert_eq!(plans, [(0, 0, 0), (0, 1, 1), (1, 0, 2)]);
        let printf = span_of(src, r#"printf("x\n")"#, 0);
        assert_eq!(l.programs[1].sites.get(Site::Printf, printf, 0), Some(1));
        assert_eq!(l.printfs.len(), 2);
        let print = span_of(src, "print(@n, 2)", 0);
        assert_eq!(l.programs[1].sites.get(Site::Print, print, 0), Some(1));
        let spec = PrintSpec {
            map: 0,
            top: 2,
            div: 0,
        };
        assert_eq!(l.prints, [spec.clone(), spec]);
    }

    #[test]
    fn maps_are_numbered_fixed_ones_first_then_script_maps_then_on_first_use() {
        let join_first =
            r#"BEGIN { join((uint8 **)0, ","); } kprobe:f { @b[kstack] = count(); @a = 1; }"#;
        let (_, l) = laid_out(join_first);
        let names: Vec<&str> = l.maps.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["events", "lost", "m0", "m1", "scratch", "stacks"]);
        assert_eq!((l.events_map, l.lost_map), (0, 1));
        assert_eq!((l.scratch_map, l.stack_map), (Some(4), Some(5)));
        assert_eq!(l.joins, [","]);
        assert_eq!(l.user_maps[0].name, "a");
        assert_eq!(l.user_maps[1].kernel_map, 3);
        let stacks_first = r#"kprobe:f { @b[kstack] = count(); } BEGIN { join((uint8 **)0); }"#;
        let (_, l) = laid_out(stacks_first);
        assert_eq!((l.stack_map, l.scratch_map), (Some(3), Some(4)));
        assert_eq!(l.joins, [" "]);
        let (_, l) = laid_out("BEGIN { @x = count(); }");
        assert_eq!(
            (l.stack_map, l.scratch_map, l.pid_set_map),
            (None, None, None)
        );
    }
}
