//! Semantic analysis: expands attach points, types every expression, decides each
//! map's key and value types, and checks calls, printf formats and arguments.
//!
//! Like bpftrace, the analysis runs several passes over the program: maps may be
//! read in one probe before the probe that assigns them, so early passes only
//! collect map shapes (errors suppressed, unknown types are `Type::None`), until the
//! map table stops changing; a final pass reports every error (each message once per
//! probe, so an unknown variable is one error, not one per use; at most
//! [`crate::diag::MAX_ERRORS`]). Warnings are values: the environment's (a probe that
//! matches nothing and is skipped) come back in [`Analysis::warnings`], or with the errors.
//!
//! Rewrites done in place besides filling `ty`: `sizeof(T)` becomes `ExprKind::Int`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use crate::ast::{self, BinOp, Expr, ExprKind, MapRef, ProbeKind, Stmt, StmtKind, UnOp};
use crate::cdecl::CTypes;
use crate::debuginfo::DebugInfo;
use crate::diag::{Diagnostic, Diagnostics};
use crate::names::{Builtin, Func};
use crate::span::Span;
use crate::tracepoint_format::TpField;
use crate::types::{MapValue, StackMode, Type};

/// What the node offers; `None` answers mean "this environment cannot tell"
/// (e.g. the plugin on a laptop), in which case analysis accepts the probe and types
/// unknown tracepoint fields as signed 64-bit integers.
pub trait ProbeEnv {
    /// Concrete `(category, name)` tracepoints matching the pattern (`*` wildcards).
    fn tracepoints(&self, category: &str, name: &str) -> Option<Vec<(String, String)>>;
    /// The fields of a tracepoint record (common_* fields included).
    fn tracepoint_fields(&self, category: &str, name: &str) -> Option<Vec<TpField>>;
    /// Existing tracepoints whose names are close to a missing one, for "did you mean".
    fn suggest_tracepoints(&self, _category: &str, _name: &str) -> Vec<String> {
        Vec::new()
    }

    /// Whether `symbol` (no wildcards) exists in the binary or library `path` of a uprobe
    /// (`/bin/bash`, or a library name such as `libssl`): `None` when this environment
    /// cannot tell. Missing ones are skipped, as bpftrace does.
    fn uprobe_exists(&self, _path: &str, _symbol: &str) -> Option<bool> {
        None
    }

    /// The file a uprobe target names as this mount namespace reaches it, when that is
    /// another path (a binary inside the traced process's root, or the target
    /// container's): `Ok(None)` to keep it, `Err` (the message) when the target names a
    /// file that is nowhere.
    fn uprobe_path(&self, _path: &str) -> Result<Option<String>, String> {
        Ok(None)
    }

    /// The files a uprobe target with wildcards in its file name (`/usr/bin/ap*`)
    /// matches and that define `function` (a name, maybe with wildcards, or a location
    /// as a uprobe's last part takes it), each as `(name its probes show, path to read
    /// and attach)`: `None` when this environment cannot tell, `Err` (the message) when
    /// the pattern matches no file. Files without the function are left out silently,
    /// as bpftrace does.
    fn uprobe_files(
        &self,
        _pattern: &str,
        _function: &str,
    ) -> Option<Result<Vec<(String, String)>, String>> {
        None
    }

    /// The functions of the binary or library `path` of a uprobe whose names match
    /// `pattern` (`*` and `?` wildcards): `None` when this environment cannot tell.
    fn uprobe_functions(&self, _path: &str, _pattern: &str) -> Option<Vec<String>> {
        None
    }

    /// The traced process's binary for function watchpoints
    /// (`watchpoint:FUNC+argN:LEN:MODE`): `(name, file)`, the name as the `probe` builtin
    /// shows it (the command of `-c` as written, or `/proc/PID/exe` of `-p`) and the file
    /// to probe. `None` when there is no traced process (no `-p` or `-c`).
    fn traced_binary(&self) -> Option<(String, String)> {
        None
    }

    /// How many kernel functions a k(ret)probe on `[module:]func` (`*` wildcards) attaches
    /// to: `None` when this environment cannot tell, `Err` (the message) for a function
    /// that may not be traced. Points matching nothing are skipped, as bpftrace does.
    fn kprobe_matches(
        &self,
        _ret: bool,
        _module: Option<&str>,
        _func: &str,
    ) -> Option<Result<usize, String>> {
        None
    }

    /// USDT probes matching `usdt:TARGET:PROVIDER:NAME` (`*` wildcards in each; an empty
    /// target, or `*`, means every file mapped by the traced process; an empty provider
    /// matches any), each with its locations. `None` when this environment cannot tell,
    /// `Err` (the message) when the target cannot be searched.
    fn usdt_probes(
        &self,
        _target: &str,
        _provider: &str,
        _name: &str,
    ) -> Option<Result<Vec<crate::usdt::UsdtProbe>, String>> {
        None
    }

    // ---- kernel types (BTF); the defaults describe an environment without them ----

    /// Whether this environment knows the kernel's types. When it does not (the plugin
    /// on a laptop), struct fields and enum constants are accepted unchecked and typed
    /// as 64-bit integers; when it does, unknown ones are errors.
    fn has_kernel_types(&self) -> bool {
        false
    }
    /// A member of a struct or union named like `struct sock` / `union bpf_attr` (or a
    /// name returned in an earlier [`Type::Record`]); members of anonymous inner
    /// structs and unions are found too, as in C.
    fn record_field(&self, _record: &str, _field: &str) -> Option<FieldInfo> {
        None
    }
    /// `sizeof(struct X)` and the size of named types such as `pid_t`.
    fn type_size(&self, _name: &str) -> Option<u64> {
        None
    }
    /// The type a kernel typedef name stands for (`pid_t`, `sector_t`), for casts.
    fn typedef(&self, _name: &str) -> Option<Type> {
        None
    }
    /// The value of a kernel enum constant (`TCP_FIN_WAIT1`, `SKB_DROP_REASON_NOT_SPECIFIED`).
    fn enum_value(&self, _name: &str) -> Option<i64> {
        None
    }
    /// Parameters of a kernel function (for `kfunc:` probes' `args->name`), and its
    /// return type; `None` if the function is unknown. `module` is `vmlinux` for the
    /// kernel's own functions, else the module whose BTF describes the function.
    fn kfunc_signature(&self, _module: &str, _func: &str) -> Option<FuncSignature> {
        None
    }
    /// The functions a kfunc (or, `ret`, kretfunc) attach point `[module:]func` (`*`
    /// wildcards) names,
    /// as `(module, function)` pairs (module `vmlinux` for the kernel's own), sorted:
    /// `None` when this environment cannot tell. A point matching nothing is skipped (the
    /// environment warns), as bpftrace does.
    fn kfuncs(
        &self,
        _ret: bool,
        _module: Option<&str>,
        _func: &str,
    ) -> Option<Vec<(String, String)>> {
        None
    }
    /// The debug info (DWARF) of the binary or library `path` of a uprobe: its
    /// functions' parameters and its C types. `None` when this environment cannot tell;
    /// an empty [`DebugInfo`] when the file has none.
    fn debug_info(&self, _path: &str) -> Option<Arc<DebugInfo>> {
        None
    }
    /// The address and size of a symbol of a uprobe's binary (`uaddr("GLOBAL")`);
    /// `None` if unknown.
    fn user_symbol(&self, _file: &str, _symbol: &str) -> Option<(u64, u64)> {
        None
    }
    /// The warnings the answers above gave since the last call (e.g. a uprobe target
    /// that does not exist, so its probes are skipped), as the lines to print, in order.
    /// The analysis takes them into [`Analysis::warnings`].
    fn take_warnings(&self) -> Vec<String> {
        Vec::new()
    }
}

/// A member of a kernel struct or union.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldInfo {
    /// Byte offset from the start of the record (for a bitfield: of the unit to load).
    pub offset: u32,
    /// The member's type (for a bitfield: an integer as wide as the unit to load).
    pub ty: Type,
    /// For a bitfield: `(shift, bits)` to extract it from the loaded unit.
    pub bitfield: Option<(u8, u8)>,
}

/// The parameters and return type of a kernel function, from BTF.
#[derive(Debug, Clone, PartialEq)]
pub struct FuncSignature {
    pub params: Vec<(String, Type)>,
    pub ret: Type,
}

/// An environment that knows nothing about the node.
pub struct NoEnv;

impl ProbeEnv for NoEnv {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
}

/// One concrete attach point after wildcard expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttach {
    pub kind: ProbeKind,
    /// Concrete parts, e.g. ["syscalls", "sys_enter_openat"].
    pub parts: Vec<String>,
    /// Full name as bpftrace prints it for `probe`, e.g. "tracepoint:syscalls:sys_enter_openat".
    pub name: String,
    /// For a `usdt` probe: the one marker this attach point stands for (a probe with
    /// several markers resolves to one attach point each, as bpftrace counts them).
    pub usdt: Option<crate::usdt::UsdtLocation>,
}

/// A map's shape, fixed by its first use.
#[derive(Debug, Clone, PartialEq)]
pub struct MapInfo {
    /// Name as written without '@' ("" for the anonymous map).
    pub name: String,
    /// Key types, empty for a keyless map; two or more for a tuple key.
    /// Integers are normalised to 8 bytes; strings have the largest size used
    /// (a key expression may be a smaller `Str`, to be NUL-padded).
    pub keys: Vec<Type>,
    pub value: MapValue,
}

/// The tables code generation needs beyond the typed AST.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    /// Maps by name (without '@'), so iteration is in bpftrace's print order.
    pub maps: BTreeMap<String, MapInfo>,
    /// For each probe block (same index as `Program::probes`), its concrete attach points.
    pub attach: Vec<Vec<ResolvedAttach>>,
    /// Types of scratch variables per probe block (same index as `Program::probes`).
    /// Integers are 8 bytes; strings have the largest size assigned.
    pub vars: Vec<BTreeMap<String, Type>>,
    /// The C types the script defines (empty for most scripts).
    pub types: CTypes,
    /// Warnings, as the lines to print (before running), in the order found.
    pub warnings: Vec<String>,
}

/// The environment as the script sees it: its own C definitions first, then the
/// node's (BTF) types, so a script's `struct task_struct` overrides the kernel's.
struct Layered<'e> {
    script: &'e CTypes,
    env: &'e dyn ProbeEnv,
}

impl ProbeEnv for Layered<'_> {
    fn tracepoints(&self, category: &str, name: &str) -> Option<Vec<(String, String)>> {
        self.env.tracepoints(category, name)
    }
    fn tracepoint_fields(&self, category: &str, name: &str) -> Option<Vec<TpField>> {
        self.env.tracepoint_fields(category, name)
    }
    fn suggest_tracepoints(&self, category: &str, name: &str) -> Vec<String> {
        self.env.suggest_tracepoints(category, name)
    }
    fn uprobe_exists(&self, path: &str, symbol: &str) -> Option<bool> {
        self.env.uprobe_exists(path, symbol)
    }
    fn uprobe_functions(&self, path: &str, pattern: &str) -> Option<Vec<String>> {
        self.env.uprobe_functions(path, pattern)
    }
    fn uprobe_path(&self, path: &str) -> Result<Option<String>, String> {
        self.env.uprobe_path(path)
    }
    fn uprobe_files(
        &self,
        pattern: &str,
        function: &str,
    ) -> Option<Result<Vec<(String, String)>, String>> {
        self.env.uprobe_files(pattern, function)
    }
    fn kprobe_matches(
        &self,
        ret: bool,
        module: Option<&str>,
        func: &str,
    ) -> Option<Result<usize, String>> {
        self.env.kprobe_matches(ret, module, func)
    }
    fn has_kernel_types(&self) -> bool {
        self.env.has_kernel_types()
    }
    fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
        if self.script.record_def(record).is_some() {
            return self.script.record_field(record, field);
        }
        self.env.record_field(record, field)
    }
    fn type_size(&self, name: &str) -> Option<u64> {
        self.script
            .type_size(name)
            .or_else(|| self.env.type_size(name))
    }
    fn typedef(&self, name: &str) -> Option<Type> {
        self.script.typedef(name).or_else(|| self.env.typedef(name))
    }
    fn enum_value(&self, name: &str) -> Option<i64> {
        self.script
            .enum_value(name)
            .or_else(|| self.env.enum_value(name))
    }
    fn kfunc_signature(&self, module: &str, func: &str) -> Option<FuncSignature> {
        self.env.kfunc_signature(module, func)
    }
    fn kfuncs(&self, ret: bool, module: Option<&str>, func: &str) -> Option<Vec<(String, String)>> {
        self.env.kfuncs(ret, module, func)
    }
    fn usdt_probes(
        &self,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Option<Result<Vec<crate::usdt::UsdtProbe>, String>> {
        self.env.usdt_probes(target, provider, name)
    }
    fn user_symbol(&self, file: &str, symbol: &str) -> Option<(u64, u64)> {
        self.env.user_symbol(file, symbol)
    }
    fn debug_info(&self, path: &str) -> Option<Arc<DebugInfo>> {
        self.env.debug_info(path)
    }
    fn take_warnings(&self) -> Vec<String> {
        self.env.take_warnings()
    }
}

/// Type the program in place and build the tables. On error, every error found (see
/// the module doc), with the warnings found before.
pub fn analyse(program: &mut ast::Program, env: &dyn ProbeEnv) -> Result<Analysis, Diagnostics> {
    let mut warnings = Vec::new();
    let result = analyse_collecting(program, env, &mut warnings);
    warnings.extend(env.take_warnings());
    match result {
        Ok(mut analysis) => {
            analysis.warnings = warnings;
            Ok(analysis)
        }
        Err(errors) => Err(errors.with_warnings(warnings)),
    }
}

fn analyse_collecting(
    program: &mut ast::Program,
    env: &dyn ProbeEnv,
    warnings: &mut Vec<String>,
) -> Result<Analysis, Diagnostics> {
    // The passes below recurse over the tree: refuse one too deep for the stack (the
    // parser already stops at its limit; this covers trees built otherwise).
    if let Some(span) = program.node_deeper_than(ast::MAX_TREE_DEPTH) {
        return Err(Diagnostic::new(
            span,
            format!("nested too deeply (limit {} levels)", ast::MAX_TREE_DEPTH),
        )
        .into());
    }
    // Attach points first, all of them: the bodies are typed against what they resolve
    // to, so errors here stop the analysis (reported together).
    let mut attach = Vec::with_capacity(program.probes.len());
    let mut attach_errors = Vec::new();
    for probe in &program.probes {
        match resolve_probe(probe, env) {
            Ok(resolved) => attach.push(resolved),
            Err(e) => attach_errors.push(e),
        }
    }
    warnings.extend(env.take_warnings());
    if let Some(errors) = Diagnostics::from_errors(attach_errors) {
        return Err(errors);
    }
    let mut types = match CTypes::build(&program.c_defs, &|name| env.type_size(name)) {
        Ok(t) => t,
        // Without the kernel's types (the plugin on a laptop) a definition that uses
        // one by value cannot be laid out here; the node checks it again.
        Err(_) if !env.has_kernel_types() => CTypes::default(),
        Err(e) => return Err(e.into()),
    };
    import_debug_types(program, &attach, env, &mut types);
    let layered = Layered {
        script: &types,
        env,
    };
    let mut a = Analyser {
        env: &layered,
        types: &types,
        maps: BTreeMap::new(),
        final_pass: false,
        errors: Vec::new(),
        probe: 0,
        reported: HashSet::new(),
        tp_cache: HashMap::new(),
        unknown_fields: HashSet::new(),
    };
    for _ in 0..10 {
        let before = a.maps.clone();
        a.run(program, &attach);
        if a.maps == before {
            break;
        }
    }
    a.final_pass = true;
    let vars = a.run(program, &attach);
    if let Some(errors) = Diagnostics::from_errors(a.errors) {
        return Err(errors);
    }
    Ok(Analysis {
        maps: a.maps,
        attach,
        vars,
        types,
        warnings: Vec::new(),
    })
}

/// The C types of the binaries of uprobe blocks that may use them (through `args`, a
/// cast or `sizeof` of a name that is no scalar), added after the script's own, before
/// the kernel's (see [`crate::debuginfo::import`]).
fn import_debug_types(
    program: &ast::Program,
    attach: &[Vec<ResolvedAttach>],
    env: &dyn ProbeEnv,
    types: &mut CTypes,
) {
    let mut paths: Vec<&str> = Vec::new();
    for (probe, points) in program.probes.iter().zip(attach) {
        let binaries = points
            .iter()
            .filter(|ra| matches!(ra.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe))
            .filter_map(|ra| ra.parts.first());
        let binaries: Vec<&str> = binaries.map(String::as_str).collect();
        if binaries.is_empty() {
            continue;
        }
        let mut wants = false;
        probe.each_expr(&mut |e| {
            wants |= match &e.kind {
                ExprKind::Builtin(b) => *b == Builtin::Args,
                ExprKind::Cast { ty, .. } | ExprKind::Sizeof(ty) => {
                    !matches!(parse_type_name(ty), Some(t) if scalar_cast(&t))
                }
                _ => false,
            }
        });
        if wants {
            paths.extend(binaries);
        }
    }
    paths.sort_unstable();
    paths.dedup();
    for path in paths {
        if let Some(info) = env.debug_info(path) {
            crate::debuginfo::import(types, &info);
        }
    }
}

/// Whether a cast's type involves no named type (an integer, or pointers to one).
fn scalar_cast(t: &Type) -> bool {
    match t {
        Type::Ptr { to, .. } => scalar_cast(to),
        Type::Record(_) => false,
        _ => true,
    }
}

// ---- attach points ------------------------------------------------------------

fn has_wildcard(s: &str) -> bool {
    s.contains('*') || s.contains('?')
}

fn resolve_probe(
    probe: &ast::Probe,
    env: &dyn ProbeEnv,
) -> Result<Vec<ResolvedAttach>, Diagnostic> {
    let mut out = Vec::new();
    let mut points = Vec::new();
    for written in &probe.attach {
        check_attach(written)?;
        points.extend(uprobe_files(written, env)?);
    }
    for (ap, target) in &points {
        if ap.kind == ProbeKind::Tracepoint {
            let (cat, name) = (&ap.parts[0], &ap.parts[1]);
            if let Some(found) = env.tracepoints(cat, name) {
                if found.is_empty() {
                    let near = env.suggest_tracepoints(cat, name);
                    let hint = if near.is_empty() {
                        String::new()
                    } else {
                        format!(" (did you mean {}?)", near.join(", "))
                    };
                    return Err(Diagnostic::new(
                        ap.span,
                        format!("tracepoint not found: {cat}:{name}{hint}"),
                    ));
                }
                for (c, n) in found {
                    out.push(ResolvedAttach {
                        kind: ap.kind,
                        name: format!("tracepoint:{c}:{n}"),
                        parts: vec![c, n],
                        usdt: None,
                    });
                }
                continue;
            }
        }
        if let (ProbeKind::Kprobe | ProbeKind::Kretprobe, Some(func)) = (ap.kind, ap.parts.last()) {
            let module = (ap.parts.len() == 2).then(|| ap.parts[0].as_str());
            match env.kprobe_matches(ap.kind == ProbeKind::Kretprobe, module, func) {
                Some(Err(why)) => return Err(Diagnostic::new(ap.span, why)),
                Some(Ok(0)) => continue,
                _ => {}
            }
        }
        if let (ProbeKind::Kfunc | ProbeKind::Kretfunc, Some(func)) = (ap.kind, ap.parts.last()) {
            let module = (ap.parts.len() == 2).then(|| ap.parts[0].as_str());
            if let Some(found) = env.kfuncs(ap.kind == ProbeKind::Kretfunc, module, func) {
                for (m, f) in found {
                    out.push(ResolvedAttach {
                        kind: ap.kind,
                        name: kfunc_probe_name(ap.kind, &m, &f),
                        parts: vec![m, f],
                        usdt: None,
                    });
                }
                continue;
            }
        }
        if matches!(ap.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe) && has_wildcard(&ap.parts[1])
        {
            if let Some(funcs) = env.uprobe_functions(&ap.parts[0], &ap.parts[1]) {
                for f in funcs {
                    out.push(ResolvedAttach {
                        kind: ap.kind,
                        name: format!("{}:{target}:{f}", ap.kind.provider()),
                        parts: vec![ap.parts[0].clone(), f],
                        usdt: None,
                    });
                }
                continue;
            }
        }
        if matches!(ap.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe)
            && !has_wildcard(&ap.parts[1])
            && env.uprobe_exists(&ap.parts[0], &ap.parts[1]) == Some(false)
        {
            continue;
        }
        if matches!(ap.kind, ProbeKind::Watchpoint | ProbeKind::AsyncWatchpoint) {
            if let Some((func, arg)) = watchpoint_func_arg(&ap.parts[0]) {
                out.extend(resolve_func_watchpoint(ap, func, arg, env)?);
                continue;
            }
        }
        if ap.kind == ProbeKind::Usdt {
            if let Some(found) = resolve_usdt(ap, env)? {
                out.extend(found);
                continue;
            }
        }
        out.push(ResolvedAttach {
            kind: ap.kind,
            parts: ap.parts.clone(),
            name: ap.text.clone(),
            usdt: None,
        });
    }
    Ok(out)
}

/// A uprobe's attach point with its file as this mount namespace reaches it, and the
/// target its probes' names show: for a file name with wildcards (`/usr/bin/ap*`), one
/// per file the environment finds ([`ProbeEnv::uprobe_files`]), named by that file;
/// otherwise the point itself, its file moved by [`ProbeEnv::uprobe_path`] (a binary
/// inside the traced process's root, the container's or the node's) and named as
/// written. Any other attach point is itself.
fn uprobe_files(
    ap: &ast::AttachPoint,
    env: &dyn ProbeEnv,
) -> Result<Vec<(ast::AttachPoint, String)>, Diagnostic> {
    let target = ap.parts.first().cloned().unwrap_or_default();
    if !matches!(ap.kind, ProbeKind::Uprobe | ProbeKind::Uretprobe) {
        return Ok(vec![(ap.clone(), target)]);
    }
    let (dir, name) = target.rsplit_once('/').unwrap_or(("", &target));
    let found = if has_wildcard(name) && !has_wildcard(dir) {
        env.uprobe_files(&target, ap.parts.last().map_or("", String::as_str))
    } else {
        None
    };
    if let Some(found) = found {
        let found = found.map_err(|why| Diagnostic::new(ap.span, why))?;
        return Ok(found
            .into_iter()
            .map(|(shown, path)| {
                let mut one = ap.clone();
                one.parts[0] = path;
                let rest = &ap.parts[1..];
                one.text = format!("{}:{shown}:{}", ap.kind.provider(), rest.join(":"));
                (one, shown)
            })
            .collect());
    }
    let moved = env
        .uprobe_path(&target)
        .map_err(|why| Diagnostic::new(ap.span, why))?;
    let mut one = ap.clone();
    if let Some(path) = moved {
        one.parts[0] = path;
    }
    Ok(vec![(one, target)])
}

/// `watchpoint:FUNC+argN:LEN:MODE` (or `asyncwatchpoint:`): one attach point per
/// function of the traced binary matching FUNC, with parts `[file, function, N, LEN,
/// MODE]` and bpftrace 0.17's name `watchpoint:BINARY:FUNC[:N]:LEN:MODE` (`:N` only when
/// N is not 0).
fn resolve_func_watchpoint(
    ap: &ast::AttachPoint,
    func: &str,
    arg: u8,
    env: &dyn ProbeEnv,
) -> Result<Vec<ResolvedAttach>, Diagnostic> {
    let Some((shown, file)) = env.traced_binary() else {
        return Err(Diagnostic::new(
            ap.span,
            format!("-p PID or -c CMD required for {}", ap.kind.provider()),
        ));
    };
    let funcs = if has_wildcard(func) {
        env.uprobe_functions(&file, func).unwrap_or_default()
    } else {
        vec![func.to_string()]
    };
    let (len, mode) = (&ap.parts[1], &ap.parts[2]);
    let n = if arg == 0 {
        String::new()
    } else {
        format!(":{arg}")
    };
    Ok(funcs
        .into_iter()
        .map(|f| ResolvedAttach {
            kind: ap.kind,
            name: format!("{}:{shown}:{f}{n}:{len}:{mode}", ap.kind.provider()),
            parts: vec![file.clone(), f, arg.to_string(), len.clone(), mode.clone()],
            usdt: None,
        })
        .collect())
}

/// The `probe` name of one kfunc/kretfunc function, as bpftrace 0.17 prints it.
fn kfunc_probe_name(kind: ProbeKind, module: &str, func: &str) -> String {
    format!("{}:{module}:{func}", kind.provider())
}

/// `usdt:TARGET:[PROVIDER:]NAME` (or `usdt:*`): one attach point per marker of every
/// matching probe (none: the point is skipped; the environment warns, as for uprobes);
/// `None` when the environment cannot tell. Without a provider, a name
/// without wildcards must be unique, as in bpftrace.
fn resolve_usdt(
    ap: &ast::AttachPoint,
    env: &dyn ProbeEnv,
) -> Result<Option<Vec<ResolvedAttach>>, Diagnostic> {
    let (target, provider, name) = match ap.parts.as_slice() {
        [t] => (t.as_str(), "", "*"),
        [t, n] => (t.as_str(), "", n.as_str()),
        [t, p, n] => (t.as_str(), p.as_str(), n.as_str()),
        _ => return Ok(None),
    };
    let found = match env.usdt_probes(target, provider, name) {
        None => return Ok(None),
        Some(Err(why)) => return Err(Diagnostic::new(ap.span, why)),
        Some(Ok(found)) => found,
    };
    if ap.parts.len() == 2 && !has_wildcard(name) {
        let mut providers: Vec<&str> = found.iter().map(|p| p.provider.as_str()).collect();
        providers.sort_unstable();
        providers.dedup();
        if providers.len() > 1 {
            return Err(Diagnostic::new(
                ap.span,
                format!(
                    "namespace for {} not specified, matched {} probes (name a provider, e.g. usdt:{target}:{}:{name}, or use '*')",
                    ap.text,
                    found.len(),
                    providers[0]
                ),
            ));
        }
    }
    let mut out = Vec::new();
    for p in found {
        let full = format!("usdt:{}:{}:{}", p.path, p.provider, p.name);
        for loc in p.locations {
            out.push(ResolvedAttach {
                kind: ProbeKind::Usdt,
                parts: vec![p.path.clone(), p.provider.clone(), p.name.clone()],
                name: full.clone(),
                usdt: Some(loc),
            });
        }
    }
    Ok(Some(out))
}

const SOFTWARE_EVENTS: &[&str] = &[
    "cpu-clock",
    "cpu",
    "task-clock",
    "page-faults",
    "faults",
    "context-switches",
    "cs",
    "cpu-migrations",
    "minor-faults",
    "major-faults",
    "alignment-faults",
    "emulation-faults",
    "dummy",
    "bpf-output",
];

const HARDWARE_EVENTS: &[&str] = &[
    "cpu-cycles",
    "cycles",
    "instructions",
    "cache-references",
    "cache-misses",
    "branch-instructions",
    "branches",
    "branch-misses",
    "bus-cycles",
    "frontend-stalls",
    "backend-stalls",
    "ref-cycles",
];

fn check_attach(ap: &ast::AttachPoint) -> Result<(), Diagnostic> {
    let provider = ap.kind.provider();
    let n = ap.parts.len();
    let err = |msg: String| Err(Diagnostic::new(ap.span, msg));
    let count_err = |want: &str| {
        Err(Diagnostic::new(
            ap.span,
            format!("{provider} probe type requires {want} arguments"),
        ))
    };
    // A USDT target may be empty (every file of the traced process), and so may its
    // provider (any).
    let may_be_empty = |i: usize| ap.kind == ProbeKind::Usdt && i + 1 < n;
    if (0..n).any(|i| ap.parts[i].is_empty() && !may_be_empty(i)) && n > 0 {
        return err(format!(
            "{provider} probe has an empty argument: '{}'",
            ap.text
        ));
    }
    match ap.kind {
        ProbeKind::Begin | ProbeKind::End => {}
        ProbeKind::Tracepoint => {
            if n != 2 {
                return count_err("2");
            }
        }
        ProbeKind::RawTracepoint => {
            if n != 1 {
                return count_err("1");
            }
        }
        ProbeKind::Kprobe | ProbeKind::Kretprobe | ProbeKind::Kfunc | ProbeKind::Kretfunc => {
            if !(1..=2).contains(&n) {
                return count_err("1 or 2");
            }
        }
        ProbeKind::Uprobe | ProbeKind::Uretprobe => {
            if n != 2 {
                return count_err("2");
            }
        }
        ProbeKind::Usdt => {
            if !(n == 2 || n == 3 || (n == 1 && ap.parts[0] == "*")) {
                return count_err("2 or 3");
            }
        }
        ProbeKind::Profile | ProbeKind::Interval => {
            if n != 2 {
                return count_err("2");
            }
            let unit = ap.parts[0].as_str();
            if !matches!(unit, "hz" | "s" | "ms" | "us") {
                return err(format!(
                    "Invalid unit '{unit}' for {provider} probe (expected hz, s, ms or us)"
                ));
            }
            match parse_u64(&ap.parts[1]) {
                Some(v) if v > 0 => {}
                _ => {
                    return err(format!(
                        "Invalid rate of {provider} probe: '{}'",
                        ap.parts[1]
                    ))
                }
            }
        }
        ProbeKind::Watchpoint | ProbeKind::AsyncWatchpoint => {
            if n != 3 {
                return count_err("3");
            }
            let func_arg = watchpoint_func_arg(&ap.parts[0]);
            if parse_u64(&ap.parts[0]).is_none() && func_arg.is_none() {
                return err(format!(
                    "{provider}: expected an address or FUNCTION+argN (N from 0 to 5), not '{}'",
                    ap.parts[0]
                ));
            }
            if ap.kind == ProbeKind::AsyncWatchpoint && func_arg.is_none() {
                return err(format!(
                    "{provider} needs a function argument (FUNCTION+argN), not an address"
                ));
            }
            if !matches!(ap.parts[1].as_str(), "1" | "2" | "4" | "8") {
                return err("watchpoint length must be one of (1,2,4,8)".into());
            }
            let mode = ap.parts[2].as_str();
            if mode.is_empty() || !mode.chars().all(|c| "rwx".contains(c)) {
                return err("watchpoint mode must be combination of (r,w,x)".into());
            }
            let mut seen = String::new();
            for c in mode.chars() {
                if seen.contains(c) {
                    return err("watchpoint modes may not be duplicated".into());
                }
                seen.push(c);
            }
            if mode.contains('x') && mode.len() > 1 {
                return err(format!("invalid watchpoint mode: {mode}"));
            }
        }
        ProbeKind::Software | ProbeKind::Hardware => {
            if !(1..=2).contains(&n) {
                return count_err("1 or 2");
            }
            let events = if ap.kind == ProbeKind::Software {
                SOFTWARE_EVENTS
            } else {
                HARDWARE_EVENTS
            };
            if !events.contains(&ap.parts[0].as_str()) {
                return err(format!("Invalid {provider} probe: {}", ap.parts[0]));
            }
            if n == 2 && parse_u64(&ap.parts[1]).is_none_or(|v| v == 0) {
                return err(format!(
                    "Invalid count for {provider} probe: '{}'",
                    ap.parts[1]
                ));
            }
        }
        ProbeKind::CgroupSkb => {
            if n != 1 {
                return count_err("1");
            }
            if !matches!(ap.parts[0].as_str(), "ingress" | "egress") {
                return err(format!(
                    "Invalid cgroup_skb attach type '{}' (expected ingress or egress)",
                    ap.parts[0]
                ));
            }
        }
    }
    Ok(())
}

/// `FUNC+argN` of a function watchpoint: the function (maybe with wildcards) and N.
pub fn watchpoint_func_arg(s: &str) -> Option<(&str, u8)> {
    let (func, arg) = s.rsplit_once('+')?;
    let n = arg.strip_prefix("arg")?;
    match n.as_bytes() {
        [d @ b'0'..=b'5'] if !func.is_empty() => Some((func, d - b'0')),
        _ => None,
    }
}

fn parse_u64(s: &str) -> Option<u64> {
    let s: String = s.chars().filter(|&c| c != '_').collect();
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    if let Some((m, e)) = s.split_once('e') {
        let m: u64 = m.parse().ok()?;
        let e: u32 = e.parse().ok()?;
        return 10u64.checked_pow(e)?.checked_mul(m);
    }
    s.parse().ok()
}

// ---- printf formats -------------------------------------------------------------

/// What a printf conversion accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormatArgKind {
    /// `%d %i %u %x %X %o %c %p` (with any length modifier).
    Integer,
    /// `%s`: strings, and symbolized values (`ksym`, `usym`, `probe`, stacks).
    String,
}

/// One conversion of a printf-style format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatSpec {
    /// Byte range of the conversion in the format string, e.g. `%-10.10s`.
    pub start: usize,
    pub end: usize,
    /// The conversion character (`d`, `s`, `x`, ...).
    pub conv: char,
    pub kind: FormatArgKind,
}

/// Parse a printf format string into its conversions (`%%` is not one). Flags
/// `-+ #0`, a width, a precision and length modifiers `hh h l ll z j t` are allowed.
pub fn parse_format_string(fmt: &str) -> Result<Vec<FormatSpec>, String> {
    let b = fmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'%' {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        if i < b.len() && b[i] == b'%' {
            i += 1;
            continue;
        }
        while i < b.len() && matches!(b[i], b'-' | b'+' | b' ' | b'#' | b'0') {
            i += 1;
        }
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
        }
        if i < b.len() && b[i] == b'*' {
            return Err("printf: '*' width or precision is not supported".into());
        }
        while i < b.len() && matches!(b[i], b'h' | b'l' | b'z' | b'j' | b't') {
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return Err(format!(
                "printf: Invalid format string: '{}' has no conversion",
                &fmt[start..]
            ));
        };
        let kind = match c {
            b'd' | b'i' | b'u' | b'x' | b'X' | b'o' | b'c' | b'p' => FormatArgKind::Integer,
            b's' | b'r' => FormatArgKind::String,
            _ => {
                let ch = fmt[i..].chars().next().unwrap();
                return Err(format!(
                    "printf: Unknown format string token: %{}",
                    &fmt[start + 1..i + ch.len_utf8()]
                ));
            }
        };
        i += 1;
        out.push(FormatSpec {
            start,
            end: i,
            conv: c as char,
            kind,
        });
    }
    Ok(out)
}

// ---- types ------------------------------------------------------------------------

/// The type a cast such as `(uint32)` or `(struct sock *)` names, if it is one.
pub fn parse_type_name(text: &str) -> Option<Type> {
    let stars = text.matches('*').count();
    let base = text.replace('*', " ");
    let words: Vec<&str> = base
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile"))
        .collect();
    let base_ty = match words.as_slice() {
        [] => return None,
        ["struct" | "union" | "enum", name] => {
            if words[0] == "enum" {
                Type::Int {
                    bytes: 4,
                    signed: false,
                }
            } else {
                Type::Record(format!("{} {name}", words[0]))
            }
        }
        ["void"] => Type::Int {
            bytes: 1,
            signed: false,
        },
        [single] => int_type_word(single)?,
        _ => c_int_words(&words)?,
    };
    let mut ty = base_ty;
    if stars == 0 && words == ["void"] {
        return None;
    }
    for _ in 0..stars {
        ty = Type::Ptr {
            to: Box::new(ty),
            user: false,
        };
    }
    Some(ty)
}

fn int_type_word(w: &str) -> Option<Type> {
    let (bytes, signed) = match w {
        "int8" | "s8" | "__s8" | "char" => (1, true),
        "uint8" | "u8" | "__u8" | "bool" => (1, false),
        "int16" | "s16" | "__s16" | "short" => (2, true),
        "uint16" | "u16" | "__u16" => (2, false),
        "int32" | "s32" | "__s32" | "int" | "pid_t" | "signed" => (4, true),
        "uint32" | "u32" | "__u32" | "unsigned" => (4, false),
        "int64" | "s64" | "__s64" | "long" => (8, true),
        "uint64" | "u64" | "__u64" | "size_t" => (8, false),
        _ => return None,
    };
    Some(Type::Int { bytes, signed })
}

/// Multi-word C integer types: `unsigned int`, `long long`, `unsigned char`.
fn c_int_words(words: &[&str]) -> Option<Type> {
    let mut signed = true;
    let mut bytes = 4;
    let mut longs = 0;
    for w in words {
        match *w {
            "unsigned" => signed = false,
            "signed" => signed = true,
            "char" => bytes = 1,
            "short" => bytes = 2,
            "int" => {}
            "long" => longs += 1,
            _ => return None,
        }
    }
    if longs > 0 {
        bytes = 8;
    }
    Some(Type::Int { bytes, signed })
}

/// `sizeof(T)` for the types the front end knows without BTF.
pub fn sizeof_type(text: &str) -> Option<u64> {
    match parse_type_name(text)? {
        Type::Record(_) => None,
        Type::Int { bytes, .. } => Some(bytes as u64),
        t => Some(t.size() as u64),
    }
}

/// Integers are kept in 8 bytes in variables, map keys and map values.
fn normalise(t: &Type) -> Type {
    match t {
        Type::Int { signed, .. } => Type::Int {
            bytes: 8,
            signed: *signed,
        },
        // Tuple elements keep their widths: a tuple is laid out as a C struct.
        Type::Tuple(_) => t.clone(),
        t => t.clone(),
    }
}

/// Combine a stored type with a newly assigned one; `None` if incompatible.
fn merge(old: &Type, new: &Type) -> Option<Type> {
    match (old, new) {
        (Type::None, t) | (t, Type::None) => Some(t.clone()),
        (Type::Int { .. }, Type::Int { .. }) => Some(old.clone()),
        (Type::Str(a), Type::Str(b)) => Some(Type::Str((*a).max(*b))),
        (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len() => Some(Type::Tuple(
            a.iter()
                .zip(b)
                .map(|(x, y)| match (x, y) {
                    // Tuple elements keep their widths: the wider one holds both.
                    (Type::Int { bytes: m, signed }, Type::Int { bytes: n, .. }) => {
                        Some(Type::Int {
                            bytes: (*m).max(*n),
                            signed: *signed,
                        })
                    }
                    _ => merge(x, y),
                })
                .collect::<Option<Vec<_>>>()?,
        )),
        (Type::Ptr { .. }, Type::Ptr { .. } | Type::Int { .. }) => Some(old.clone()),
        (a, b) if a == b => Some(a.clone()),
        _ => None,
    }
}

fn agg_value(func: Func) -> Option<MapValue> {
    Some(match func {
        Func::Count => MapValue::Count,
        Func::Sum => MapValue::Sum,
        Func::Avg => MapValue::Avg,
        Func::Min => MapValue::Min,
        Func::Max => MapValue::Max,
        Func::Stats => MapValue::Stats,
        Func::Hist => MapValue::Hist,
        Func::Lhist => MapValue::Lhist {
            min: 0,
            max: 0,
            step: 0,
        },
        _ => return None,
    })
}

/// The bytes of `pton("addr")`: 4 for an IPv4 address, 16 for IPv6, in network order.
pub fn pton_bytes(text: &str) -> Option<Vec<u8>> {
    match text.parse::<std::net::IpAddr>().ok()? {
        std::net::IpAddr::V4(a) => Some(a.octets().to_vec()),
        std::net::IpAddr::V6(a) => Some(a.octets().to_vec()),
    }
}

/// `t` with every pointer level in user memory.
fn user_pointer(t: Type) -> Type {
    match t {
        Type::Ptr { to, .. } => Type::Ptr {
            to: Box::new(user_pointer(*to)),
            user: true,
        },
        t => t,
    }
}

/// A one-byte integer (an element of `u8 addr[16]`).
fn is_byte(t: &Type) -> bool {
    matches!(t, Type::Int { bytes: 1, .. })
}

/// Constants that C scripts get from headers (`#define`s, so not in BTF), e.g.
/// `EPERM`, `AF_INET` or `TASK_RUNNING`: the table in [`crate::constants`].
pub fn known_constant(name: &str) -> Option<i64> {
    crate::constants::lookup(name)
}

/// The number of a signal name without its `SIG` prefix (x86-64 numbering).
pub fn signal_number(name: &str) -> Option<i64> {
    crate::constants::signal_number(name)
}

/// Is this an aggregation function (`count`, `sum`, `avg`, `min`, `max`, `stats`,
/// `hist`, `lhist`), only valid as the value of a map assignment?
pub fn is_aggregation(name: &str) -> bool {
    Func::from_name(name).is_some_and(Func::is_aggregation)
}

/// Real bpftrace functions this implementation does not support yet.
fn is_unsupported_fn(name: &str) -> bool {
    matches!(
        name,
        "path"
            | "override"
            | "skboutput"
            | "uptr_"
            | "printf_"
            | "offsetof"
            | "len"
            | "percpu_kaddr"
            | "errorf"
    )
}

/// The type reading a map gives, or an error for values that cannot be read.
fn map_read_type(v: &MapValue) -> Result<Type, &'static str> {
    match v {
        MapValue::Count => Ok(Type::U64),
        MapValue::Sum | MapValue::Min | MapValue::Max | MapValue::Avg => Ok(Type::I64),
        MapValue::Stats => Err("stats"),
        MapValue::Hist => Err("hist"),
        MapValue::Lhist { .. } => Err("lhist"),
        MapValue::Value(t) => Ok(t.clone()),
    }
}

fn literal_int(e: &Expr) -> Option<i64> {
    match &e.kind {
        ExprKind::Int(v) => Some(*v),
        _ => None,
    }
}

fn literal_str(e: &Expr) -> Option<&str> {
    match &e.kind {
        ExprKind::Str(s) => Some(s),
        _ => None,
    }
}

fn map_name(m: &MapRef) -> String {
    format!("@{}", m.name)
}

fn type_list(ts: &[Type]) -> String {
    let v: Vec<String> = ts.iter().map(|t| t.to_string()).collect();
    format!("[{}]", v.join(", "))
}

fn binop_str(op: BinOp) -> &'static str {
    match op {
        BinOp::Add => "+",
        BinOp::Sub => "-",
        BinOp::Mul => "*",
        BinOp::Div => "/",
        BinOp::Mod => "%",
        BinOp::BitAnd => "&",
        BinOp::BitOr => "|",
        BinOp::BitXor => "^",
        BinOp::Shl => "<<",
        BinOp::Shr => ">>",
        BinOp::Eq => "==",
        BinOp::Ne => "!=",
        BinOp::Lt => "<",
        BinOp::Le => "<=",
        BinOp::Gt => ">",
        BinOp::Ge => ">=",
        BinOp::And => "&&",
        BinOp::Or => "||",
    }
}

/// A struct member or array element (rather than a computed value): a `char` array
/// member is typed as a string but its bytes can be taken as they are.
fn is_memory_read(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Field { .. } | ExprKind::Index { .. })
}

/// A type read from user memory: the pointers in it (and behind them) point at user
/// memory too.
fn in_user_memory(t: Type) -> Type {
    match t {
        Type::Ptr { to, .. } => Type::Ptr {
            to: Box::new(in_user_memory(*to)),
            user: true,
        },
        Type::Array { elem, len } => Type::Array {
            elem: Box::new(in_user_memory(*elem)),
            len,
        },
        t => t,
    }
}

/// `char s[N]` (or `uint8_t`): printed with `%s` as a string, as bpftrace does.
pub fn is_char_array(t: &Type) -> bool {
    matches!(t, Type::Array { elem, .. } if matches!(elem.as_ref(), Type::Int { bytes: 1, .. }))
}

/// Types that behave as opaque tokens: comparable with `==`/`!=` to the same type.
fn is_opaque(t: &Type) -> bool {
    matches!(
        t,
        Type::Array { .. }
            | Type::Struct(_)
            | Type::Probe
            | Type::Ksym
            | Type::Usym
            | Type::Stack { .. }
            | Type::Tuple(_)
            | Type::Inet
            | Type::MacAddr
            | Type::Buf(_)
            | Type::Timestamp
            | Type::CgroupPath
            | Type::Username
            | Type::Strerror
    )
}

// ---- the analyser --------------------------------------------------------------------

struct Analyser<'e> {
    env: &'e dyn ProbeEnv,
    /// The script's own C types (also answered through `env`).
    types: &'e CTypes,
    maps: BTreeMap<String, MapInfo>,
    final_pass: bool,
    errors: Vec<Diagnostic>,
    /// The index of the probe being analysed.
    probe: usize,
    /// `(probe, message)` of the errors reported: a message is given once per probe.
    reported: HashSet<(usize, String)>,
    tp_cache: HashMap<(String, String), Option<Vec<TpField>>>,
    /// Spans of `args->field` expressions whose type the environment could not tell
    /// (typed I64; indexing them is allowed and gives I64).
    unknown_fields: HashSet<Span>,
}

/// Per-probe state.
struct Cx<'p> {
    kinds: Vec<ProbeKind>,
    attach: &'p [ResolvedAttach],
    vars: BTreeMap<String, Type>,
    /// How many `while` loops enclose the statement being analysed.
    loops: usize,
}

impl Cx<'_> {
    fn first_not_in(&self, allowed: &[ProbeKind]) -> Option<ProbeKind> {
        self.kinds.iter().copied().find(|k| !allowed.contains(k))
    }
}

fn kind_name(k: ProbeKind) -> &'static str {
    k.provider()
}

impl Analyser<'_> {
    /// `what` needs a helper that `cgroup_skb` programs do not get from the kernel.
    fn cgroup_skb_unavailable(&mut self, what: &str, helper: &str, span: Span) {
        let msg = format!(
            "{what} is not available in cgroup_skb probes (the kernel does not give cgroup_skb programs {helper})"
        );
        self.error(span, msg);
    }

    fn error(&mut self, span: Span, msg: impl Into<String>) {
        if self.final_pass {
            let msg = msg.into();
            if self.reported.insert((self.probe, msg.clone())) {
                self.errors.push(Diagnostic::new(span, msg));
            }
        }
    }

    fn run(
        &mut self,
        program: &mut ast::Program,
        attach: &[Vec<ResolvedAttach>],
    ) -> Vec<BTreeMap<String, Type>> {
        let mut all_vars = Vec::new();
        for (i, (probe, resolved)) in program.probes.iter_mut().zip(attach).enumerate() {
            self.probe = i;
            let mut cx = Cx {
                kinds: probe.attach.iter().map(|a| a.kind).collect(),
                attach: resolved,
                vars: BTreeMap::new(),
                loops: 0,
            };
            if let Some(pred) = &mut probe.predicate {
                let t = self.expr(pred, &mut cx);
                if !t.is_integral() && t != Type::None {
                    self.error(pred.span, format!("Invalid type for predicate: {t}"));
                } else if t == Type::None {
                    self.check_value(pred);
                }
            }
            self.stmts(&mut probe.body, &mut cx);
            all_vars.push(cx.vars);
        }
        all_vars
    }

    fn stmts(&mut self, stmts: &mut [Stmt], cx: &mut Cx) {
        for s in stmts {
            self.stmt(s, cx);
        }
    }

    fn stmt(&mut self, s: &mut Stmt, cx: &mut Cx) {
        match &mut s.kind {
            StmtKind::Expr(e) => {
                self.expr(e, cx);
            }
            StmtKind::MapAssign { map, value } => {
                let keys = self.map_keys(map, cx);
                let mv = match &value.kind {
                    ExprKind::Call { name, .. } if is_aggregation(name) => {
                        self.aggregation(value, cx)
                    }
                    _ => {
                        let t = self.expr(value, cx);
                        if self.check_value(value) {
                            Some(MapValue::Value(normalise(&t)))
                        } else {
                            None
                        }
                    }
                };
                if let Some(mv) = mv {
                    self.define_map(map, keys, mv, value.span);
                }
            }
            StmtKind::MapCompound { map, op: _, value } => {
                let keys = self.map_keys(map, cx);
                let t = self.expr(value, cx);
                if !t.is_integral() && t != Type::None {
                    self.error(
                        value.span,
                        format!(
                            "Compound assignment to {} requires an integer, got '{t}'",
                            map_name(map)
                        ),
                    );
                }
                if let Some(info) = self.maps.get(&map.name) {
                    if let MapValue::Value(Type::Int { .. } | Type::Ptr { .. } | Type::None) =
                        info.value
                    {
                    } else {
                        let msg = format!(
                            "Type mismatch for {}: trying to assign value of type 'int64' when map already contains a value of type '{}'",
                            map_name(map),
                            info.value
                        );
                        self.error(map.span, msg);
                        return;
                    }
                }
                self.define_map(map, keys, MapValue::Value(Type::I64), map.span);
            }
            StmtKind::VarAssign { name, value } => {
                let t = self.expr(value, cx);
                if !self.check_value(value) {
                    return;
                }
                // Integers keep their width (for bswap() and printing); a variable's
                // slot is 8 bytes whatever the width.
                let t = if t.is_int() { t } else { normalise(&t) };
                match cx.vars.get(name.as_str()) {
                    None => {
                        cx.vars.insert(name.clone(), t);
                    }
                    Some(old) => match merge(old, &t) {
                        Some(m) => {
                            cx.vars.insert(name.clone(), m);
                        }
                        None => {
                            let msg = format!(
                                "Type mismatch for ${name}: trying to assign value of type '{t}' when variable already contains a value of type '{old}'"
                            );
                            self.error(s.span, msg);
                        }
                    },
                }
            }
            StmtKind::VarCompound { name, op: _, value } => {
                let t = self.expr(value, cx);
                if !t.is_integral() && t != Type::None {
                    self.error(
                        value.span,
                        format!("Compound assignment to ${name} requires an integer, got '{t}'"),
                    );
                }
                match cx.vars.get(name.as_str()) {
                    None => {
                        self.error(s.span, format!("Undefined or undeclared variable: ${name}"));
                    }
                    Some(old) if !old.is_integral() && *old != Type::None => {
                        let msg = format!(
                            "The {} operator can not be used on a variable of type '{old}'",
                            "compound assignment"
                        );
                        self.error(s.span, msg);
                    }
                    _ => {}
                }
            }
            StmtKind::If { cond, then, els } => {
                let t = self.expr(cond, cx);
                if !t.is_integral() && t != Type::None {
                    self.error(cond.span, format!("Invalid condition in if(): {t}"));
                } else if t == Type::None {
                    self.check_value(cond);
                }
                self.stmts(then, cx);
                self.stmts(els, cx);
            }
            StmtKind::Unroll { body, .. } => self.stmts(body, cx),
            StmtKind::While { cond, body } => {
                let t = self.expr(cond, cx);
                if !t.is_integral() && t != Type::None {
                    self.error(cond.span, format!("Invalid condition in while(): {t}"));
                } else if t == Type::None {
                    self.check_value(cond);
                }
                cx.loops += 1;
                self.stmts(body, cx);
                cx.loops -= 1;
            }
            StmtKind::Break | StmtKind::Continue if cx.loops == 0 => {
                let word = if s.kind == StmtKind::Break {
                    "break"
                } else {
                    "continue"
                };
                self.error(
                    s.span,
                    format!("'{word}' can only be used inside a while loop"),
                );
            }
            StmtKind::Break | StmtKind::Continue | StmtKind::Return => {}
        }
    }

    /// Errors for expressions that are not values (void calls, bare `args`).
    /// Returns whether the expression is usable as a value.
    fn check_value(&mut self, e: &Expr) -> bool {
        match (&e.ty, &e.kind) {
            (Type::None, ExprKind::Call { func: Some(f), .. }) if f.is_void() => {
                self.error(e.span, format!("{f}() does not return a value"));
                false
            }
            (Type::Ctx, ExprKind::Builtin(Builtin::Skb)) => {
                self.error(
                    e.span,
                    "The skb builtin can only be used to access fields, e.g. skb->len",
                );
                false
            }
            (Type::Ctx, _) => {
                self.error(
                    e.span,
                    "The args builtin can only be used to access fields, e.g. args->name",
                );
                false
            }
            (Type::Record(r), _) => {
                self.error(
                    e.span,
                    format!("A value of type '{r}' can not be used here"),
                );
                false
            }
            _ => true,
        }
    }

    /// Type the key expressions of a map access; ints normalised to 8 bytes.
    fn map_keys(&mut self, m: &mut MapRef, cx: &mut Cx) -> Vec<Type> {
        let mut out = Vec::new();
        for k in &mut m.keys {
            let t = self.expr(k, cx);
            self.check_value(k);
            out.push(normalise(&t));
        }
        out
    }

    /// Check access keys against the map's keys, widening strings. Returns false
    /// on mismatch (error reported).
    fn check_keys(&mut self, m: &MapRef, keys: &[Type]) -> bool {
        let Some(info) = self.maps.get(&m.name) else {
            return true;
        };
        let mismatch = || {
            format!(
                "Argument mismatch for {}: trying to access with arguments: {} when map expects arguments: {}",
                map_name(m),
                type_list(keys),
                type_list(&info.keys)
            )
        };
        if info.keys.len() != keys.len() {
            let msg = mismatch();
            self.error(m.span, msg);
            return false;
        }
        let mut merged = Vec::new();
        for (old, new) in info.keys.iter().zip(keys) {
            match merge(old, new) {
                Some(t) => merged.push(t),
                None => {
                    let msg = mismatch();
                    self.error(m.span, msg);
                    return false;
                }
            }
        }
        self.maps.get_mut(&m.name).unwrap().keys = merged;
        true
    }

    /// Record an assignment of a value kind to a map.
    fn define_map(&mut self, m: &MapRef, keys: Vec<Type>, value: MapValue, vspan: Span) {
        if !self.maps.contains_key(&m.name) {
            self.maps.insert(
                m.name.clone(),
                MapInfo {
                    name: m.name.clone(),
                    keys,
                    value,
                },
            );
            return;
        }
        if !self.check_keys(m, &keys) {
            return;
        }
        let old = self.maps[&m.name].value.clone();
        let merged = match (&old, &value) {
            (MapValue::Value(a), MapValue::Value(b)) => merge(a, b).map(MapValue::Value),
            (MapValue::Value(Type::None), v) => Some(v.clone()),
            (
                MapValue::Lhist { min, max, step },
                MapValue::Lhist {
                    min: b,
                    max: c,
                    step: d,
                },
            ) => {
                if (min, max, step) != (b, c, d) {
                    self.error(
                        vspan,
                        format!(
                            "Different lhist bounds in a single map unsupported: {} already uses lhist(x, {min}, {max}, {step})",
                            map_name(m)
                        ),
                    );
                    return;
                }
                Some(old.clone())
            }
            (a, b) if std::mem::discriminant(a) == std::mem::discriminant(b) => Some(old.clone()),
            _ => None,
        };
        match merged {
            Some(v) => self.maps.get_mut(&m.name).unwrap().value = v,
            None => {
                let msg = format!(
                    "Type mismatch for {}: trying to assign value of type '{value}' when map already contains a value of type '{old}'",
                    map_name(m)
                );
                self.error(vspan, msg);
            }
        }
    }

    /// `@m = count()` etc.: check the arguments and give the value kind.
    fn aggregation(&mut self, call: &mut Expr, cx: &mut Cx) -> Option<MapValue> {
        let span = call.span;
        let ExprKind::Call { name, func, args } = &mut call.kind else {
            return None;
        };
        let f = Func::from_name(name).filter(|f| f.is_aggregation())?;
        *func = Some(f);
        let name = f.name();
        let mut types = Vec::new();
        for a in args.iter_mut() {
            let t = self.expr(a, cx);
            self.check_value(a);
            types.push(t);
        }
        let (want, _) = f.arity();
        if args.len() != want {
            let need = match want {
                0 => "no arguments".to_string(),
                1 => "one argument".to_string(),
                n => format!("{n} arguments"),
            };
            self.error(
                span,
                format!("{name}() requires {need} ({} provided)", args.len()),
            );
            return None;
        }
        if want >= 1 && !types[0].is_integral() && types[0] != Type::None {
            self.error(
                args[0].span,
                format!(
                    "{name}() expects an integer argument ({} provided)",
                    types[0]
                ),
            );
        }
        let mut value = agg_value(f)?;
        if f == Func::Lhist {
            let mut lits = [0i64; 3];
            for (i, what) in ["min", "max", "step"].iter().enumerate() {
                match literal_int(&args[i + 1]) {
                    Some(v) => lits[i] = v,
                    None => {
                        self.error(
                            args[i + 1].span,
                            format!("lhist: invalid {what} value (must be an integer literal)"),
                        );
                        return None;
                    }
                }
            }
            let [min, max, step] = lits;
            if min < 0 {
                self.error(
                    args[1].span,
                    format!("lhist() min must be non-negative (provided min {min})"),
                );
                return None;
            }
            if max <= min {
                self.error(
                    args[2].span,
                    format!("lhist() max must be greater than min (provided min {min}, max {max})"),
                );
                return None;
            }
            if step <= 0 {
                self.error(
                    args[3].span,
                    format!("lhist() step must be >= 1 ({step} provided)"),
                );
                return None;
            }
            value = MapValue::Lhist { min, max, step };
        }
        call.ty = map_read_type(&value).unwrap_or(Type::None);
        Some(value)
    }

    fn expr(&mut self, e: &mut Expr, cx: &mut Cx) -> Type {
        let t = self.expr_inner(e, cx);
        // A script-defined struct read as a whole is a value with its layout.
        let t = if self.types.is_empty() {
            t
        } else {
            self.types.value_type(&t)
        };
        e.ty = t.clone();
        t
    }

    fn expr_inner(&mut self, e: &mut Expr, cx: &mut Cx) -> Type {
        let span = e.span;
        match &mut e.kind {
            ExprKind::Int(_) => Type::I64,
            ExprKind::Str(s) => Type::Str((s.len() + 1).max(64)),
            ExprKind::Positional(_) => Type::I64,
            ExprKind::Builtin(b) => {
                let b = *b;
                self.builtin(b, span, cx)
            }
            ExprKind::Ident(name) => {
                let name = name.clone();
                match known_constant(&name).or_else(|| self.env.enum_value(&name)) {
                    Some(v) => {
                        e.kind = ExprKind::Int(v);
                        Type::I64
                    }
                    None if !self.env.has_kernel_types() => {
                        // Probably an enum constant of the kernel's; cannot tell here.
                        self.unknown_fields.insert(span);
                        Type::I64
                    }
                    None => {
                        let msg = format!("Unknown identifier: '{name}'");
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::Var(name) => match cx.vars.get(name.as_str()) {
                Some(t) => t.clone(),
                None => {
                    let msg = format!("Undefined or undeclared variable: ${name}");
                    self.error(span, msg);
                    Type::None
                }
            },
            ExprKind::Map(m) => {
                let keys = self.map_keys(m, cx);
                match self.maps.get(&m.name) {
                    None => {
                        let msg = format!("Undefined map: {}", map_name(m));
                        self.error(m.span, msg);
                        Type::None
                    }
                    Some(info) => {
                        let v = info.value.clone();
                        if !self.check_keys(m, &keys) {
                            return Type::None;
                        }
                        match map_read_type(&v) {
                            Ok(t) => t,
                            Err(kind) => {
                                let msg = format!(
                                    "Map {} of type '{kind}' can not be used as a value (only printed, cleared or deleted)",
                                    map_name(m)
                                );
                                self.error(m.span, msg);
                                Type::None
                            }
                        }
                    }
                }
            }
            ExprKind::Call { name, args, .. }
                if Func::from_name(name) == Some(Func::Strcontains)
                    && args.len() == 2
                    && args.iter().all(|a| literal_str(a).is_some()) =>
            {
                let (hay, needle) = (literal_str(&args[0]), literal_str(&args[1]));
                let found = hay.zip(needle).is_some_and(|(h, n)| h.contains(n));
                e.kind = ExprKind::Int(i64::from(found));
                Type::I64
            }
            ExprKind::Call { name, args, .. }
                if Func::from_name(name) == Some(Func::Uaddr)
                    && args.len() == 1
                    && literal_str(&args[0]).is_some() =>
            {
                // The symbol's address in the probed binary, as a pointer to an integer
                // as wide as the symbol (bpftrace's typing): `(uint32 *)0x404018`.
                let symbol = literal_str(&args[0]).unwrap_or_default().to_string();
                let file = cx.attach.first().and_then(|a| a.parts.first()).cloned();
                let found = file.and_then(|f| self.env.user_symbol(&f, &symbol));
                match found {
                    Some((addr, size))
                        if cx
                            .first_not_in(&[ProbeKind::Uprobe, ProbeKind::Uretprobe])
                            .is_none() =>
                    {
                        let bits = match size {
                            1 | 2 | 4 | 8 => size * 8,
                            _ => 64,
                        };
                        e.kind = ExprKind::Cast {
                            ty: format!("uint{bits} *"),
                            expr: Box::new(Expr::new(ExprKind::Int(addr as i64), span)),
                        };
                        self.expr_inner(e, cx)
                    }
                    _ => self.call(e, cx),
                }
            }
            ExprKind::Call { .. } => self.call(e, cx),
            ExprKind::Unary { op, expr } => {
                let op = *op;
                let t = self.expr(expr, cx);
                if t == Type::None {
                    self.check_value(expr);
                    return Type::None;
                }
                let sym = match op {
                    UnOp::Not => "!",
                    UnOp::BitNot => "~",
                    UnOp::Neg => "-",
                    UnOp::Deref => "*",
                    UnOp::AddrOf => "&",
                };
                match op {
                    UnOp::Not if t.is_integral() => Type::I64,
                    UnOp::BitNot | UnOp::Neg if t.is_int() => normalise(&t),
                    UnOp::Deref => match &t {
                        Type::Ptr { to, user: true } => in_user_memory(to.as_ref().clone()),
                        Type::Ptr { to, .. } => to.as_ref().clone(),
                        Type::Int { .. } => Type::I64,
                        _ => {
                            let msg = format!(
                                "The * operator can not be used on expressions of type '{t}'"
                            );
                            self.error(span, msg);
                            Type::None
                        }
                    },
                    UnOp::AddrOf => {
                        self.error(span, "The & operator is not supported yet");
                        Type::None
                    }
                    _ => {
                        let msg = format!(
                            "The {sym} operator can not be used on expressions of type '{t}'"
                        );
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::IncDec { target, inc, .. } => {
                let sym = if *inc { "++" } else { "--" };
                if let ExprKind::Map(m) = &mut target.kind {
                    if !self.maps.contains_key(&m.name) {
                        let keys = self.map_keys(m, cx);
                        self.define_map(m, keys, MapValue::Value(Type::I64), m.span);
                    }
                }
                let t = self.expr(target, cx);
                match t {
                    Type::Int { .. } => normalise(&t),
                    Type::Ptr { .. } | Type::None => t,
                    _ => {
                        let msg = format!(
                            "The {sym} operator can not be used on expressions of type '{t}'"
                        );
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::Binary { op, lhs, rhs } => {
                let op = *op;
                let lt = self.expr(lhs, cx);
                let rt = self.expr(rhs, cx);
                let lok = self.check_value(lhs);
                let rok = self.check_value(rhs);
                if !lok || !rok || lt == Type::None || rt == Type::None {
                    return if lt.is_str() && rt.is_str() || !op_is_arith(op) {
                        Type::I64
                    } else {
                        Type::None
                    };
                }
                self.binary(op, &lt, &rt, span, lhs.span, rhs.span)
            }
            ExprKind::Ternary { cond, then, els } => {
                let ct = self.expr(cond, cx);
                if !ct.is_integral() && ct != Type::None {
                    let msg = format!("Invalid condition in ternary: {ct}");
                    self.error(cond.span, msg);
                }
                let a = self.expr(then, cx);
                let b = self.expr(els, cx);
                if a == Type::None && b == Type::None {
                    return Type::None;
                }
                if !self.check_value(then) || !self.check_value(els) {
                    return Type::None;
                }
                match merge(&normalise(&a), &normalise(&b)) {
                    Some(t) => {
                        if a == Type::None || b == Type::None {
                            return Type::None;
                        }
                        t
                    }
                    None => {
                        let msg = format!(
                            "Ternary operator must return the same type: have '{a}' and '{b}'"
                        );
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::Field { expr, field, arrow } => {
                let field = field.clone();
                let arrow = *arrow;
                let base_is_args = matches!(&expr.kind, ExprKind::Builtin(Builtin::Args));
                let base_is_skb = matches!(&expr.kind, ExprKind::Builtin(Builtin::Skb));
                let t = self.expr(expr, cx);
                match &t {
                    Type::None => Type::None,
                    Type::Ctx if base_is_skb => {
                        if !arrow {
                            self.error(span, "Use skb->field to access packet fields");
                            return Type::None;
                        }
                        match crate::skb::skb_field(&field) {
                            Some(f) => Type::Int {
                                bytes: f.size,
                                signed: false,
                            },
                            None => {
                                let msg = format!(
                                    "struct __sk_buff has no readable field '{field}' (readable: {})",
                                    crate::skb::skb_field_names()
                                );
                                self.error(span, msg);
                                Type::None
                            }
                        }
                    }
                    Type::Ctx if base_is_args => {
                        if !arrow {
                            self.error(span, "Use args->field to access tracepoint arguments");
                            return Type::None;
                        }
                        self.args_field(&field, span, cx)
                    }
                    Type::Tuple(items) if !arrow => match field.parse::<usize>() {
                        Ok(i) if i < items.len() => items[i].clone(),
                        Ok(i) => {
                            let msg = format!(
                                "Tuple index {i} is out of bounds for tuple of size {}",
                                items.len()
                            );
                            self.error(span, msg);
                            Type::None
                        }
                        Err(_) => {
                            let msg = format!("Can not access field '{field}' on a tuple");
                            self.error(span, msg);
                            Type::None
                        }
                    },
                    Type::Record(r) => self.record_field(r, &field, span, false),
                    Type::Struct(st) if !arrow => {
                        let name = st.name.clone();
                        self.record_field(&name, &field, span, false)
                    }
                    Type::Int { .. } if self.unknown_fields.contains(&expr.span) => {
                        // A field of a record the environment could not describe.
                        self.unknown_fields.insert(span);
                        Type::I64
                    }
                    Type::Ptr { to, user } if matches!(to.as_ref(), Type::Record(_)) => {
                        let Type::Record(r) = to.as_ref() else {
                            return Type::None;
                        };
                        self.record_field(r, &field, span, *user)
                    }
                    _ => {
                        let msg =
                            format!("Can not access field '{field}' on expression of type '{t}'");
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::Index { expr, index } => {
                let t = self.expr(expr, cx);
                let it = self.expr(index, cx);
                if !it.is_integral() && it != Type::None {
                    let msg = format!("The array index must be an integer, got '{it}'");
                    self.error(index.span, msg);
                    return Type::None;
                }
                match &t {
                    Type::None => Type::None,
                    Type::Array { elem, len } => {
                        if let Some(i) = literal_int(index) {
                            if i < 0 || i >= *len as i64 {
                                let msg = format!(
                                    "the index {i} is out of bounds for array of size {len}"
                                );
                                self.error(index.span, msg);
                                return Type::None;
                            }
                        }
                        elem.as_ref().clone()
                    }
                    Type::Ptr { to, .. }
                        if !matches!(to.as_ref(), Type::Record(r) if self.types.record_def(r).is_none())
                            || self.env.has_kernel_types() =>
                    {
                        match &t {
                            Type::Ptr { user: true, .. } => in_user_memory(to.as_ref().clone()),
                            _ => to.as_ref().clone(),
                        }
                    }
                    Type::Int { .. } if self.unknown_fields.contains(&expr.span) => {
                        self.unknown_fields.insert(span);
                        Type::I64
                    }
                    _ => {
                        let msg = format!(
                            "The array index operator [] can only be used on arrays and pointers, found {t}"
                        );
                        self.error(span, msg);
                        Type::None
                    }
                }
            }
            ExprKind::Cast { ty, expr } => {
                let text = ty.clone();
                let t = self.expr(expr, cx);
                let Some(mut target) = parse_type_name(&text).or_else(|| self.typedef_cast(&text))
                else {
                    let msg = format!("Unknown type in cast: '{text}'");
                    self.error(span, msg);
                    return Type::None;
                };
                // In a uprobe, a pointer made from an argument points at user memory
                // (and so do the pointers read through it).
                if matches!(target, Type::Ptr { .. })
                    && (matches!(t, Type::Ptr { user: true, .. })
                        || (!cx.kinds.is_empty()
                            && cx
                                .first_not_in(&[ProbeKind::Uprobe, ProbeKind::Uretprobe])
                                .is_none()))
                {
                    target = in_user_memory(target);
                }
                if let Type::Record(r) = &target {
                    let msg = format!("Cannot cast to struct type '{r}'");
                    self.error(span, msg);
                    return Type::None;
                }
                if t != Type::None && !t.is_integral() {
                    if self.check_value(expr) {
                        let msg = format!("Cannot cast from '{t}' to '{target}'");
                        self.error(span, msg);
                    }
                    return Type::None;
                }
                // In uprobes an address is the process's (bpftrace's user address
                // space), as is one already known to be user memory.
                let user_probe = cx
                    .first_not_in(&[ProbeKind::Uprobe, ProbeKind::Uretprobe])
                    .is_none();
                let from_user = matches!(t, Type::Ptr { user: true, .. });
                if user_probe || from_user {
                    user_pointer(target)
                } else {
                    target
                }
            }
            ExprKind::Tuple(items) => {
                let mut ts = Vec::new();
                for it in items.iter_mut() {
                    let mut t = self.expr(it, cx);
                    // As in bpftrace 0.17, a string literal in a tuple takes its own
                    // length (and its NUL), not a whole string buffer.
                    if let ExprKind::Str(s) = &it.kind {
                        t = Type::Str(s.len() + 1);
                        it.ty = t.clone();
                    }
                    self.check_value(it);
                    ts.push(t);
                }
                Type::Tuple(ts)
            }
            ExprKind::Sizeof(text) => {
                let text = text.clone();
                let size = match sizeof_type(&text) {
                    Some(n) => Some(n),
                    None => match parse_type_name(&text) {
                        Some(Type::Record(r)) => {
                            if !self.env.has_kernel_types() && self.types.record_def(&r).is_none() {
                                // Cannot tell here; the runner resolves it from BTF.
                                return Type::I64;
                            }
                            match self.env.type_size(&r) {
                                Some(n) => Some(n),
                                None => {
                                    let msg = format!("sizeof: unknown kernel type '{r}'");
                                    self.error(span, msg);
                                    return Type::None;
                                }
                            }
                        }
                        _ => self
                            .env
                            .type_size(&text)
                            .or_else(|| self.sizeof_expr(&text, cx)),
                    },
                };
                match size {
                    Some(n) => {
                        e.kind = ExprKind::Int(n as i64);
                        Type::I64
                    }
                    None => {
                        self.error(span, format!("sizeof: unknown type or expression '{text}'"));
                        Type::None
                    }
                }
            }
        }
    }

    /// A cast to a typedef name, possibly with `*`s: `(pid_t)`, `(point_t *)`.
    fn typedef_cast(&self, text: &str) -> Option<Type> {
        let stars = text.matches('*').count();
        let name = text.replace('*', " ");
        let words: Vec<&str> = name
            .split_whitespace()
            .filter(|w| !matches!(*w, "const" | "volatile"))
            .collect();
        let [name] = words.as_slice() else {
            return None;
        };
        let mut ty = self.env.typedef(name)?;
        for _ in 0..stars {
            ty = Type::Ptr {
                to: Box::new(ty),
                user: false,
            };
        }
        Some(ty)
    }

    /// `sizeof(expr)`: the size of the expression's type (its own errors are
    /// reported as one error at the `sizeof`, since its spans are not in the script).
    fn sizeof_expr(&mut self, text: &str, cx: &mut Cx) -> Option<u64> {
        let mut sub = crate::parser::parse_expr(text).ok()?;
        let before = self.errors.len();
        let was_final = self.final_pass;
        self.final_pass = true;
        let reported = std::mem::take(&mut self.reported);
        let t = self.expr(&mut sub, cx);
        self.reported = reported;
        self.final_pass = was_final;
        if self.errors.len() > before {
            self.errors.truncate(before);
            return None;
        }
        match t {
            Type::Int { bytes, .. } => Some(bytes as u64),
            Type::None | Type::Ctx | Type::Record(_) => None,
            t => Some(t.size() as u64),
        }
    }

    fn binary(
        &mut self,
        op: BinOp,
        lt: &Type,
        rt: &Type,
        span: Span,
        lspan: Span,
        rspan: Span,
    ) -> Type {
        let sym = binop_str(op);
        let cmp = matches!(
            op,
            BinOp::Eq | BinOp::Ne | BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge
        );
        let logic = matches!(op, BinOp::And | BinOp::Or);
        if lt.is_integral() && rt.is_integral() {
            if cmp || logic {
                return Type::I64;
            }
            if let Type::Ptr { .. } = lt {
                if matches!(op, BinOp::Add | BinOp::Sub) && rt.is_int() {
                    return lt.clone();
                }
            }
            if let Type::Ptr { .. } = rt {
                if op == BinOp::Add && lt.is_int() {
                    return rt.clone();
                }
            }
            let unsigned = matches!(lt, Type::Int { signed: false, .. } | Type::Ptr { .. })
                || matches!(rt, Type::Int { signed: false, .. } | Type::Ptr { .. });
            return if unsigned { Type::U64 } else { Type::I64 };
        }
        let same_kind = (lt.is_str() && rt.is_str())
            || (is_opaque(lt) && lt == rt)
            || (matches!((lt, rt), (Type::Tuple(a), Type::Tuple(b)) if a.len() == b.len()))
            || matches!((lt, rt), (Type::Buf(_), Type::Buf(_)));
        if !same_kind {
            let msg = format!("Type mismatch for '{sym}': comparing '{lt}' with '{rt}'");
            self.error(lspan.to(rspan), msg);
            return Type::None;
        }
        if matches!(op, BinOp::Eq | BinOp::Ne) {
            return Type::I64;
        }
        let msg = format!("The {sym} operator can not be used on expressions of types {lt}, {rt}");
        self.error(span, msg);
        Type::None
    }

    fn builtin(&mut self, b: Builtin, span: Span, cx: &mut Cx) -> Type {
        use ProbeKind::*;
        let name = b.to_string();
        match b {
            Builtin::Pid
            | Builtin::Tid
            | Builtin::Uid
            | Builtin::Gid
            | Builtin::Cpu
            | Builtin::Nsecs
            | Builtin::Elapsed
            | Builtin::Cgroup
            | Builtin::Numaid
            | Builtin::Jiffies
            | Builtin::Cpid
            | Builtin::Rand
            | Builtin::Ctx => Type::U64,
            Builtin::Curtask if self.env.has_kernel_types() => Type::Ptr {
                to: Box::new(Type::Record("struct task_struct".into())),
                user: false,
            },
            Builtin::Curtask => {
                // Without kernel types (a local check), `curtask->...` cannot be typed:
                // accept it as an integer, as other fields of unknown records.
                self.unknown_fields.insert(span);
                Type::U64
            }
            Builtin::ParamCount => Type::I64,
            Builtin::Comm => Type::Str(16),
            Builtin::Probe => Type::Probe,
            Builtin::Kstack | Builtin::Ustack if cx.kinds.contains(&CgroupSkb) => {
                self.cgroup_skb_unavailable(&name, "bpf_get_stackid", span);
                Type::None
            }
            Builtin::Kstack => Type::Stack {
                user: false,
                limit: 127,
                mode: StackMode::Bpftrace,
            },
            Builtin::Ustack => Type::Stack {
                user: true,
                limit: 127,
                mode: StackMode::Bpftrace,
            },
            Builtin::Skb => {
                if let Some(k) = cx.first_not_in(&[CgroupSkb]) {
                    let msg = format!(
                        "The skb builtin can only be used with 'cgroup_skb' probes ({} used here)",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    return Type::None;
                }
                Type::Ctx
            }
            Builtin::Func => {
                let kernel = [Kprobe, Kretprobe, Kfunc, Kretfunc];
                let user = [Uprobe, Uretprobe];
                if cx.first_not_in(&kernel).is_none() {
                    Type::Ksym
                } else if cx.first_not_in(&user).is_none() {
                    Type::Usym
                } else {
                    let k = cx
                        .first_not_in(&[Kprobe, Kretprobe, Kfunc, Kretfunc, Uprobe, Uretprobe])
                        .unwrap_or(cx.kinds[0]);
                    let msg = format!(
                        "The func builtin can not be used with '{}' probes",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    Type::None
                }
            }
            Builtin::Retval => {
                if let Some(k) = cx.first_not_in(&[Kretprobe, Uretprobe, Kretfunc]) {
                    let msg = format!(
                        "The retval builtin can only be used with 'kretprobe', 'uretprobe' and 'kretfunc' probes ({} used here)",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    return Type::None;
                }
                self.kretfunc_retval(cx)
            }
            Builtin::Args => {
                if let Some(k) = cx.first_not_in(&[Tracepoint, Kfunc, Kretfunc, Uprobe]) {
                    let msg = format!(
                        "The args builtin can only be used with 'tracepoint', 'kfunc' and 'uprobe' probes ({} used here)",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    return Type::None;
                }
                Type::Ctx
            }
            Builtin::Username => Type::Username,
            Builtin::Usermode => Type::U64,
            Builtin::Arg(_) if cx.first_not_in(&[Usdt]).is_none() => {
                // USDT arguments are sign- or zero-extended to 64 bits from their size.
                Type::I64
            }
            Builtin::Sarg(_) => {
                // Stack arguments: not of usdt probes (their arguments have specs).
                if let Some(k) = cx.first_not_in(&[Kprobe, Kretprobe, Uprobe, Uretprobe]) {
                    let msg = format!(
                        "The {name} builtin can only be used with 'kprobes' and 'uprobes' probes ({} used here)",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    return Type::None;
                }
                Type::U64
            }
            Builtin::Arg(_) => {
                if let Some(k) = cx.first_not_in(&[Kprobe, Kretprobe, Uprobe, Uretprobe, Usdt]) {
                    let msg = format!(
                        "The {name} builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes ({} used here)",
                        kind_name(k)
                    );
                    self.error(span, msg);
                    return Type::None;
                }
                Type::U64
            }
        }
    }

    /// The type of `record.field` (or `ptr->field`); `user` when the record is in user
    /// memory, so that pointers read from it point at user memory too.
    fn record_field(&mut self, record: &str, field: &str, span: Span, user: bool) -> Type {
        if !self.env.has_kernel_types() && self.types.record_def(record).is_none() {
            self.unknown_fields.insert(span);
            return Type::I64;
        }
        match self.env.record_field(record, field) {
            Some(f) => {
                if user {
                    in_user_memory(f.ty)
                } else {
                    f.ty
                }
            }
            None => {
                let msg = if self.env.type_size(record).is_none() && user {
                    // Read through a uprobe's pointer: the program's own type, most likely.
                    format!("Unknown struct/union '{record}' (not defined by the script, nor in the uprobe binary's debug info or this kernel's BTF)")
                } else if self.env.type_size(record).is_none() {
                    format!("Unknown kernel type '{record}' (not in this kernel's BTF)")
                } else {
                    format!("'{record}' has no field named '{field}'")
                };
                self.error(span, msg);
                Type::None
            }
        }
    }

    fn tp_fields(&mut self, cat: &str, name: &str) -> Option<Vec<TpField>> {
        let key = (cat.to_string(), name.to_string());
        if let Some(v) = self.tp_cache.get(&key) {
            return v.clone();
        }
        let v = self.env.tracepoint_fields(cat, name);
        self.tp_cache.insert(key, v.clone());
        v
    }

    /// `retval`'s type: a kretfunc's return type from BTF when every attach point of the
    /// block agrees on it (a 64-bit integer otherwise, and in other probes).
    fn kretfunc_retval(&self, cx: &Cx) -> Type {
        let mut found: Option<Type> = None;
        for ra in cx.attach {
            if ra.kind != ProbeKind::Kretfunc || ra.parts.len() != 2 {
                return Type::I64;
            }
            let Some(sig) = self.env.kfunc_signature(&ra.parts[0], &ra.parts[1]) else {
                return Type::I64;
            };
            match &found {
                None => found = Some(sig.ret),
                Some(t) if *t == sig.ret => {}
                Some(_) => return Type::I64,
            }
        }
        match found {
            Some(Type::Int { .. } | Type::Ptr { .. }) => found.unwrap_or(Type::I64),
            _ => Type::I64,
        }
    }

    /// The type of parameter `field` of `func` in the uprobe binary `path`, from its
    /// debug info: `None` when the environment cannot tell, `Err` the error to print.
    fn uprobe_param(&self, path: &str, func: &str, field: &str) -> Result<Option<Type>, String> {
        let Some(info) = self.env.debug_info(path) else {
            return Ok(None);
        };
        if info.is_empty() {
            return Err(format!("No debuginfo found for {path}"));
        }
        let Some(params) = info.functions.get(func) else {
            return Err(
                if func.contains('+') || func.starts_with(|c: char| c.is_ascii_digit()) {
                    format!("The args builtin needs a uprobe at a function's entry (uprobe:{path}:{func})")
                } else {
                    format!("No debuginfo found for function {func} in {path}")
                },
            );
        };
        let Some(param) = params.iter().find(|p| p.name == field) else {
            return Err(format!("Can't find function parameter {field}"));
        };
        param.reg.as_ref().map_err(Clone::clone)?;
        Ok(Some(in_user_memory(param.ty.clone())))
    }

    /// `args->field`: the field's type in every attach point of the block.
    fn args_field(&mut self, field: &str, span: Span, cx: &mut Cx) -> Type {
        let mut result: Option<(Type, String)> = None;
        for ra in cx.attach {
            let t = match ra.kind {
                ProbeKind::Tracepoint => {
                    let (cat, name) = (&ra.parts[0], &ra.parts[1]);
                    if has_wildcard(cat) || has_wildcard(name) {
                        self.unknown_fields.insert(span);
                        Type::I64
                    } else {
                        match self.tp_fields(cat, name) {
                            None => {
                                self.unknown_fields.insert(span);
                                Type::I64
                            }
                            Some(fields) => match fields.iter().find(|f| f.name == field) {
                                Some(f) => match f.array_len {
                                    Some(len) => Type::Array {
                                        elem: Box::new(f.ty.clone()),
                                        len,
                                    },
                                    None => f.ty.clone(),
                                },
                                None => {
                                    let msg =
                                        format!("tracepoint '{cat}:{name}' has no field '{field}'");
                                    self.error(span, msg);
                                    return Type::None;
                                }
                            },
                        }
                    }
                }
                ProbeKind::Kfunc | ProbeKind::Kretfunc if ra.parts.len() == 2 => {
                    match self.env.kfunc_signature(&ra.parts[0], &ra.parts[1]) {
                        None => {
                            self.unknown_fields.insert(span);
                            Type::I64
                        }
                        Some(sig) => match sig.params.iter().find(|(n, _)| n == field) {
                            Some((_, ty)) => ty.clone(),
                            None => {
                                self.error(span, format!("Can't find function parameter {field}"));
                                return Type::None;
                            }
                        },
                    }
                }
                ProbeKind::Uprobe if ra.parts.len() == 2 => {
                    match self.uprobe_param(&ra.parts[0], &ra.parts[1], field) {
                        Ok(Some(t)) => t,
                        Ok(None) => {
                            self.unknown_fields.insert(span);
                            Type::I64
                        }
                        Err(msg) => {
                            self.error(span, msg);
                            return Type::None;
                        }
                    }
                }
                _ => {
                    self.unknown_fields.insert(span);
                    Type::I64
                }
            };
            match &result {
                None => result = Some((t, ra.name.clone())),
                Some((first, first_name)) => {
                    if merge(&normalise(first), &normalise(&t)).is_none() {
                        let msg = format!(
                            "args->{field} has different types in {first_name} ({first}) and {} ({t})",
                            ra.name
                        );
                        self.error(span, msg);
                        return Type::None;
                    }
                }
            }
        }
        result.map(|(t, _)| t).unwrap_or(Type::I64)
    }

    /// Check a printf-style call's format and arguments (`printf`, `system`, `cat`).
    fn check_format(&mut self, fname: &str, args: &[Expr], types: &[Type], span: Span) {
        let Some(first) = args.first() else {
            self.error(
                span,
                format!("{fname}() requires at least one argument (0 provided)"),
            );
            return;
        };
        let Some(fmt) = literal_str(first) else {
            self.error(
                first.span,
                format!("{fname}() expects a string literal as the first argument"),
            );
            return;
        };
        let specs = match parse_format_string(fmt) {
            Ok(s) => s,
            Err(msg) => {
                let msg = msg.replacen("printf", fname, 1);
                self.error(first.span, msg);
                return;
            }
        };
        let supplied = args.len() - 1;
        if supplied > specs.len() {
            self.error(
                span,
                format!(
                    "{fname}: Too many arguments for format string ({supplied} supplied, {} expected)",
                    specs.len()
                ),
            );
            return;
        }
        if supplied < specs.len() {
            self.error(
                span,
                format!(
                    "{fname}: Not enough arguments for format string ({supplied} supplied, {} expected)",
                    specs.len()
                ),
            );
            return;
        }
        for (i, spec) in specs.iter().enumerate() {
            let t = &types[i + 1];
            if *t == Type::None || self.unknown_fields.contains(&args[i + 1].span) {
                continue;
            }
            let ok = match spec.kind {
                FormatArgKind::Integer => t.is_integral(),
                FormatArgKind::String => {
                    t.is_str()
                        || is_char_array(t)
                        || matches!(
                            t,
                            Type::Ksym
                                | Type::Usym
                                | Type::Probe
                                | Type::Stack { .. }
                                | Type::Inet
                                | Type::MacAddr
                                | Type::Buf(_)
                                | Type::Timestamp
                                | Type::CgroupPath
                                | Type::Username
                                | Type::Strerror
                        )
                }
            };
            if !ok {
                let want = match spec.kind {
                    FormatArgKind::Integer => "integer",
                    FormatArgKind::String => "string",
                };
                let spec_text = &fmt[spec.start..spec.end];
                self.error(
                    args[i + 1].span,
                    format!(
                        "{fname}: {spec_text} specifier expects a value of type {want} ({t} supplied)"
                    ),
                );
                return;
            }
        }
    }

    /// Whether a call of `func` has as many arguments as it takes (an error if not).
    fn nargs(&mut self, func: Func, n: usize, span: Span) -> bool {
        let (name, (min, max)) = (func.name(), func.arity());
        if n >= min && n <= max {
            return true;
        }
        let need = if min == max {
            match min {
                0 => "no arguments".to_string(),
                1 => "one argument".to_string(),
                k => format!("{k} arguments"),
            }
        } else {
            format!("{min} to {max} arguments")
        };
        self.error(span, format!("{name}() requires {need} ({n} provided)"));
        false
    }

    /// A map argument of print/clear/zero/delete: its keys are checked, its value
    /// is not read. `whole` requires no keys.
    fn map_arg(&mut self, fname: &str, arg: &mut Expr, cx: &mut Cx, whole: bool) -> bool {
        let ExprKind::Map(m) = &mut arg.kind else {
            self.error(arg.span, format!("{fname}() expects a map to be provided"));
            return false;
        };
        let keys = self.map_keys(m, cx);
        let Some(info) = self.maps.get(&m.name) else {
            let msg = format!("Undefined map: {}", map_name(m));
            self.error(m.span, msg);
            return false;
        };
        let value = info.value.clone();
        let info_keys = info.keys.len();
        if whole {
            if !m.keys.is_empty() {
                let msg = format!(
                    "{fname}() expects a map with no keys, e.g. {fname}({})",
                    map_name(m)
                );
                self.error(arg.span, msg);
                return false;
            }
        } else if (!m.keys.is_empty() || info_keys != 0) && !self.check_keys(m, &keys) {
            return false;
        }
        if !whole && m.keys.is_empty() && info_keys > 0 {
            let msg = format!(
                "{fname}() expects a map element, e.g. {fname}({}[key])",
                map_name(m)
            );
            self.error(arg.span, msg);
            return false;
        }
        arg.ty = map_read_type(&value).unwrap_or(Type::None);
        true
    }

    fn call(&mut self, e: &mut Expr, cx: &mut Cx) -> Type {
        let span = e.span;
        let ExprKind::Call { name, func, args } = &mut e.kind else {
            return Type::None;
        };
        let Some(f) = Func::from_name(name) else {
            let name = name.clone();
            // The arguments' own errors first.
            for a in args.iter_mut() {
                self.expr(a, cx);
            }
            if is_unsupported_fn(&name) {
                self.error(span, format!("{name}() is not supported yet"));
            } else {
                let name_span = Span::new(span.start, span.start + name.len());
                self.error(name_span, format!("Unknown function: {name}"));
            }
            return Type::None;
        };
        *func = Some(f);
        let name = f.name();
        let n = args.len();

        // Functions whose arguments are not plain values.
        match f {
            Func::Offsetof => {
                let texts: Vec<String> = args
                    .iter()
                    .filter_map(|a| match &a.kind {
                        ExprKind::Str(s) => Some(s.clone()),
                        _ => None,
                    })
                    .collect();
                let [ty, path] = texts.as_slice() else {
                    self.error(
                        span,
                        "offsetof takes a type and a member: offsetof(struct X, member)",
                    );
                    return Type::None;
                };
                if !self.env.has_kernel_types() {
                    // Cannot tell here; the runner resolves it from BTF.
                    return Type::I64;
                }
                let mut record = match parse_type_name(ty) {
                    Some(Type::Record(r)) => r,
                    _ => {
                        self.error(span, format!("offsetof: '{ty}' is not a struct or union"));
                        return Type::None;
                    }
                };
                let mut offset = 0u64;
                let members: Vec<&str> = path.split('.').collect();
                for (i, member) in members.iter().enumerate() {
                    let Some(f) = self.env.record_field(&record, member) else {
                        self.error(
                            span,
                            format!("offsetof: '{record}' has no member '{member}'"),
                        );
                        return Type::None;
                    };
                    offset += u64::from(f.offset);
                    match f.ty {
                        Type::Record(r) => record = r,
                        _ if i + 1 < members.len() => {
                            self.error(
                                span,
                                format!("offsetof: '{member}' is not a struct or union"),
                            );
                            return Type::None;
                        }
                        _ => {}
                    }
                }
                e.kind = ExprKind::Int(offset as i64);
                return Type::I64;
            }
            Func::Clear | Func::Zero => {
                if self.nargs(f, n, span) {
                    self.map_arg(name, &mut args[0], cx, true);
                }
                return Type::None;
            }
            Func::Delete => {
                if self.nargs(f, n, span) {
                    self.map_arg(name, &mut args[0], cx, false);
                }
                return Type::None;
            }
            Func::Print => {
                if !self.nargs(f, n, span) {
                    return Type::None;
                }
                // `print(@m)` prints the whole map; `print(@m[k])` and
                // `print(expr)` print a value.
                let whole_map = matches!(&args[0].kind, ExprKind::Map(m) if m.keys.is_empty());
                if whole_map || (n > 1 && matches!(args[0].kind, ExprKind::Map(_))) {
                    self.map_arg(name, &mut args[0], cx, true);
                } else {
                    if n > 1 {
                        self.error(
                            args[1].span,
                            "print(): top and div arguments are only allowed for maps",
                        );
                    }
                    self.expr(&mut args[0], cx);
                    self.check_value(&args[0]);
                }
                for a in args.iter_mut().skip(1) {
                    self.expr(a, cx);
                    if literal_int(a).is_none_or(|v| v < 0) {
                        self.error(
                            a.span,
                            "print(): top and div arguments must be non-negative integer literals",
                        );
                    }
                }
                return Type::None;
            }
            Func::Kstack | Func::Ustack if cx.kinds.contains(&ProbeKind::CgroupSkb) => {
                self.cgroup_skb_unavailable(name, "bpf_get_stackid", span);
                return Type::None;
            }
            Func::Kstack | Func::Ustack => {
                let user = name == "ustack";
                let mut mode = StackMode::Bpftrace;
                let mut limit = 127u32;
                if !self.nargs(f, n, span) {
                    return Type::None;
                }
                for (i, a) in args.iter_mut().enumerate() {
                    match &a.kind {
                        ExprKind::Ident(m) if i == 0 => {
                            mode = match m.as_str() {
                                "bpftrace" => StackMode::Bpftrace,
                                "perf" => StackMode::Perf,
                                "raw" => StackMode::Raw,
                                _ => {
                                    let msg = format!("{name}: Unknown stack mode: '{m}'");
                                    self.error(a.span, msg);
                                    return Type::None;
                                }
                            };
                        }
                        ExprKind::Int(v) if *v >= 1 && *v <= 1024 => limit = *v as u32,
                        _ => {
                            self.error(
                                a.span,
                                format!(
                                    "{name}: expected a stack mode or a limit between 1 and 1024"
                                ),
                            );
                            return Type::None;
                        }
                    }
                    a.ty = Type::I64;
                }
                return Type::Stack { user, limit, mode };
            }
            _ => {}
        }

        let mut types = Vec::with_capacity(n);
        for a in args.iter_mut() {
            let t = self.expr(a, cx);
            types.push(t);
        }
        let args: &[Expr] = args;
        let value_args_ok = |s: &mut Self| args.iter().all(|a| s.check_value(a));
        let int_arg = |s: &mut Self, i: usize| {
            let t = &types[i];
            if !t.is_integral() && *t != Type::None {
                s.error(
                    args[i].span,
                    format!("{name}() expects an integer argument ({t} provided)"),
                );
            }
        };
        let str_literal_arg = |s: &mut Self, i: usize| -> bool {
            if literal_str(&args[i]).is_none() {
                s.error(
                    args[i].span,
                    format!("{name}() expects a string literal argument"),
                );
                return false;
            }
            true
        };

        if f.is_aggregation() {
            self.error(
                span,
                format!("{name}() should be directly assigned to a map"),
            );
            return Type::None;
        }
        match f {
            Func::Printf | Func::System | Func::Cat | Func::Debugf => {
                if value_args_ok(self) {
                    self.check_format(name, args, &types, span);
                }
                Type::None
            }
            Func::Time => {
                if self.nargs(f, n, span) && n == 1 {
                    str_literal_arg(self, 0);
                }
                Type::None
            }
            Func::Exit => {
                self.nargs(f, n, span);
                Type::None
            }
            Func::Unwatch => {
                if self.nargs(f, n, span) && !(types[0].is_int() || types[0] == Type::None) {
                    self.error(args[0].span, "unwatch() expects an integer address");
                }
                Type::None
            }
            Func::Signal if cx.kinds.contains(&ProbeKind::CgroupSkb) => {
                self.cgroup_skb_unavailable("signal()", "bpf_send_signal", span);
                Type::None
            }
            Func::Signal => {
                if self.nargs(f, n, span) {
                    match (&args[0].kind, &types[0]) {
                        (ExprKind::Str(s), _) => {
                            let s = s.strip_prefix("SIG").unwrap_or(s);
                            if !is_signal_name(s) {
                                self.error(args[0].span, format!("signal(): unknown signal '{s}'"));
                            }
                        }
                        (_, t) if t.is_int() || *t == Type::None => {}
                        _ => self.error(args[0].span, "signal() expects a signal name or number"),
                    }
                }
                Type::None
            }
            Func::Str => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                let t0 = &types[0];
                if !(t0.is_integral() || t0.is_str() || *t0 == Type::None) {
                    self.error(
                        args[0].span,
                        format!("str() expects an integer or a pointer type as first argument ({t0} provided)"),
                    );
                    return Type::None;
                }
                if n == 2 {
                    int_arg(self, 1);
                    if let Some(v) = literal_int(&args[1]) {
                        if v < 1 {
                            self.error(args[1].span, "str(): length must be positive");
                            return Type::None;
                        }
                        return Type::Str((v as usize).min(1024));
                    }
                }
                match t0 {
                    Type::Str(s) => Type::Str(*s),
                    _ => Type::Str(64),
                }
            }
            Func::Cgroupid => {
                if self.nargs(f, n, span) {
                    str_literal_arg(self, 0);
                }
                Type::U64
            }
            Func::Kaddr => {
                // A literal, or `str($N)`: a positional parameter's text.
                let positional = matches!(&args.first().map(|a| &a.kind),
                    Some(ExprKind::Call { func: Some(Func::Str), args: inner, .. })
                        if matches!(inner.first().map(|a| &a.kind), Some(ExprKind::Positional(_))));
                if self.nargs(f, n, span) && !positional {
                    str_literal_arg(self, 0);
                }
                Type::U64
            }
            Func::Reg => {
                if self.nargs(f, n, span) && str_literal_arg(self, 0) {
                    if let Some(k) = cx.first_not_in(&[
                        ProbeKind::Kprobe,
                        ProbeKind::Kretprobe,
                        ProbeKind::Uprobe,
                        ProbeKind::Uretprobe,
                    ]) {
                        let msg = format!(
                            "reg can only be used with kprobes and uprobes ({} used here)",
                            kind_name(k)
                        );
                        self.error(span, msg);
                    }
                }
                Type::U64
            }
            Func::Strcontains => {
                // Two literals were folded to a constant before; other strings need a
                // search loop in the kernel, which is not written yet.
                if self.nargs(f, n, span) {
                    self.error(
                        span,
                        "strcontains() is supported on string literals only for now",
                    );
                }
                Type::I64
            }
            Func::Uaddr => {
                if self.nargs(f, n, span) && str_literal_arg(self, 0) {
                    if let Some(k) = cx.first_not_in(&[ProbeKind::Uprobe, ProbeKind::Uretprobe]) {
                        self.error(
                            span,
                            format!(
                                "uaddr can only be used with uprobes ({} used here)",
                                kind_name(k)
                            ),
                        );
                    }
                }
                Type::U64
            }
            Func::Ksym | Func::Usym => {
                if self.nargs(f, n, span) && value_args_ok(self) {
                    int_arg(self, 0);
                }
                if name == "ksym" {
                    Type::Ksym
                } else {
                    Type::Usym
                }
            }
            Func::Bswap => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                int_arg(self, 0);
                match &types[0] {
                    t @ Type::Int { .. } => t.clone(),
                    _ => Type::None,
                }
            }
            Func::Kptr | Func::Uptr => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                int_arg(self, 0);
                match &types[0] {
                    Type::Ptr { to, .. } => Type::Ptr {
                        to: to.clone(),
                        user: name == "uptr",
                    },
                    t => t.clone(),
                }
            }
            Func::Strncmp => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::I64;
                }
                for i in 0..2 {
                    let t = &types[i];
                    if !t.is_str() && *t != Type::None {
                        self.error(
                            args[i].span,
                            format!("strncmp() expects a string argument ({t} provided)"),
                        );
                    }
                }
                let positional = matches!(args[2].kind, ExprKind::Positional(_));
                if !positional && literal_int(&args[2]).is_none_or(|v| v < 0) {
                    self.error(
                        args[2].span,
                        "strncmp() expects a non-negative integer literal (or a positional parameter) as third argument",
                    );
                }
                Type::I64
            }
            Func::Ntop => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                if n == 2 {
                    int_arg(self, 0);
                }
                let t = &types[n - 1];
                let ok = t.is_integral()
                    || *t == Type::None
                    || matches!(t, Type::Array { elem, len: 4 | 16 } if is_byte(elem));
                if !ok {
                    self.error(
                        args[n - 1].span,
                        format!(
                            "ntop() expects an integer or an array of 4 or 16 bytes ({t} provided)"
                        ),
                    );
                }
                Type::Inet
            }
            Func::Macaddr => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                let t = &types[0];
                let ok = t.is_integral()
                    || *t == Type::None
                    || matches!(t, Type::Array { elem, len } if is_byte(elem) && *len >= 6)
                    || matches!(t, Type::Str(len) if *len >= 6 && is_memory_read(&args[0]));
                if !ok {
                    self.error(
                        args[0].span,
                        format!(
                            "macaddr() expects a pointer or an array of 6 bytes ({t} provided)"
                        ),
                    );
                }
                Type::MacAddr
            }
            Func::Buf => {
                if !self.nargs(f, n, span) || !value_args_ok(self) {
                    return Type::None;
                }
                let t = &types[0];
                let fixed = match t {
                    Type::Array { elem, len } => Some(elem.size() * *len as usize),
                    Type::Str(len) => Some(*len),
                    _ => None,
                };
                if !(t.is_integral() || *t == Type::None || fixed.is_some()) {
                    self.error(
                        args[0].span,
                        format!("buf() expects a pointer or an array ({t} provided)"),
                    );
                    return Type::None;
                }
                if n == 2 {
                    int_arg(self, 1);
                } else if fixed.is_none() && *t != Type::None {
                    self.error(span, "buf() of a pointer requires a length: buf(p, n)");
                    return Type::None;
                }
                let len = match (n, literal_int(args.get(1).unwrap_or(&args[0]))) {
                    (2, Some(v)) if v > 0 => v as usize,
                    (2, _) => 64,
                    _ => fixed.unwrap_or(64),
                };
                Type::Buf(len.min(256))
            }
            Func::Strftime => {
                if self.nargs(f, n, span) && value_args_ok(self) {
                    str_literal_arg(self, 0);
                    int_arg(self, 1);
                }
                Type::Timestamp
            }
            Func::CgroupPath => {
                if self.nargs(f, n, span) && value_args_ok(self) {
                    int_arg(self, 0);
                }
                Type::CgroupPath
            }
            Func::Pton => {
                if !self.nargs(f, n, span) || !str_literal_arg(self, 0) {
                    return Type::None;
                }
                match pton_bytes(literal_str(&args[0]).unwrap_or_default()) {
                    Some(bytes) => Type::Array {
                        elem: Box::new(Type::Int {
                            bytes: 1,
                            signed: false,
                        }),
                        len: bytes.len() as u32,
                    },
                    None => {
                        self.error(
                            args[0].span,
                            "pton() expects an IPv4 or IPv6 address, e.g. \"127.0.0.1\" or \"::1\"",
                        );
                        Type::None
                    }
                }
            }
            Func::Strerror => {
                if self.nargs(f, n, span) && value_args_ok(self) {
                    int_arg(self, 0);
                }
                Type::Strerror
            }
            Func::Join => {
                if self.nargs(f, n, span) && value_args_ok(self) {
                    int_arg(self, 0);
                    if n == 2 {
                        str_literal_arg(self, 1);
                    }
                }
                Type::None
            }
            // Checked before their arguments were typed (above).
            Func::Offsetof
            | Func::Clear
            | Func::Zero
            | Func::Delete
            | Func::Print
            | Func::Kstack
            | Func::Ustack => Type::None,
            // Aggregations: reported above.
            Func::Count
            | Func::Sum
            | Func::Avg
            | Func::Min
            | Func::Max
            | Func::Stats
            | Func::Hist
            | Func::Lhist => Type::None,
        }
    }
}

fn op_is_arith(op: BinOp) -> bool {
    !matches!(
        op,
        BinOp::Eq
            | BinOp::Ne
            | BinOp::Lt
            | BinOp::Le
            | BinOp::Gt
            | BinOp::Ge
            | BinOp::And
            | BinOp::Or
    )
}

fn is_signal_name(s: &str) -> bool {
    signal_number(s).is_some()
}
