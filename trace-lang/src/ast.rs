//! The abstract syntax tree of a bpftrace-language script.
//!
//! The parser builds it with spans on every node; semantic analysis fills in the
//! `ty` of every expression and the tables in [`crate::sema::Analysis`]; code
//! generation (in trace-runner) walks it.

use crate::names::{Builtin, Func};
use crate::span::Span;
use crate::types::Type;

/// A whole script: probes in source order, and the C type definitions written before
/// them (laid out by sema, see [`crate::cdecl`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Program {
    pub probes: Vec<Probe>,
    pub c_defs: Vec<crate::cdecl::Decl>,
}

/// One block `attach, attach /pred/ { stmts }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    pub attach: Vec<AttachPoint>,
    pub predicate: Option<Expr>,
    pub body: Vec<Stmt>,
    pub span: Span,
}

/// One attach point as written, e.g. `tracepoint:syscalls:sys_enter_*`.
#[derive(Debug, Clone, PartialEq)]
pub struct AttachPoint {
    pub kind: ProbeKind,
    /// The colon-separated parts after the provider, as written (wildcards kept).
    /// `tracepoint:syscalls:sys_enter_openat` -> ["syscalls", "sys_enter_openat"];
    /// `uprobe:/bin/bash:readline` -> ["/bin/bash", "readline"];
    /// `profile:hz:99` -> ["hz", "99"]; BEGIN/END -> [].
    pub parts: Vec<String>,
    /// The whole attach point text, e.g. `tracepoint:syscalls:sys_enter_openat`
    /// (what the `probe` builtin returns; providers normalised to their long names).
    pub text: String,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    Begin,
    End,
    /// `tracepoint:` / `t:`
    Tracepoint,
    /// `rawtracepoint:` / `rt:`
    RawTracepoint,
    /// `kprobe:` / `k:`
    Kprobe,
    /// `kretprobe:` / `kr:`
    Kretprobe,
    /// `uprobe:` / `u:`
    Uprobe,
    /// `uretprobe:` / `ur:`
    Uretprobe,
    /// `usdt:` / `U:`
    Usdt,
    /// `profile:` / `p:`
    Profile,
    /// `interval:` / `i:`
    Interval,
    /// `kfunc:` / `fentry:` / `f:`
    Kfunc,
    /// `kretfunc:` / `fexit:` / `fr:`
    Kretfunc,
    /// `software:` / `s:`
    Software,
    /// `hardware:` / `h:`
    Hardware,
    /// `cgroup_skb:ingress|egress`
    CgroupSkb,
    /// `watchpoint:ADDR:LEN:MODE` / `w:`: a hardware breakpoint on a data address; or
    /// `watchpoint:FUNC+argN:LEN:MODE`: on the address a function of the traced process
    /// (`-p`/`-c`) receives as argument N, the process stopped until it is set.
    Watchpoint,
    /// `asyncwatchpoint:FUNC+argN:LEN:MODE` / `aw:`: as a function watchpoint, without
    /// stopping the process while the breakpoint is set.
    AsyncWatchpoint,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// An expression evaluated for its effect: a call such as `printf(...)`.
    Expr(Expr),
    /// `@m = expr;` / `@m[k] = expr;` — `value` may be an aggregation call
    /// (`count()`, `hist(x)`, ...), which sema records as the map's value kind.
    MapAssign {
        map: MapRef,
        value: Expr,
    },
    /// `@m[k] += expr;` and friends, also `@m++` / `@m--` (op Add/Sub, value 1).
    MapCompound {
        map: MapRef,
        op: BinOp,
        value: Expr,
    },
    /// `$x = expr;`
    VarAssign {
        name: String,
        value: Expr,
    },
    /// `$x += expr;`, `$x++`, `$x--`.
    VarCompound {
        name: String,
        op: BinOp,
        value: Expr,
    },
    If {
        cond: Expr,
        then: Vec<Stmt>,
        els: Vec<Stmt>,
    },
    Unroll {
        count: u64,
        body: Vec<Stmt>,
    },
    /// `while (cond) { ... }` (a bounded loop the kernel's verifier must accept).
    While {
        cond: Expr,
        body: Vec<Stmt>,
    },
    /// `break;` out of the innermost `while`.
    Break,
    /// `continue;` with the innermost `while`'s next iteration.
    Continue,
    /// `return;` ends the probe early.
    Return,
}

/// `@name` or `@name[k1, k2]`; the anonymous map `@` has name "".
#[derive(Debug, Clone, PartialEq)]
pub struct MapRef {
    pub name: String,
    pub keys: Vec<Expr>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// Filled by semantic analysis; `Type::None` until then.
    pub ty: Type,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    Str(String),
    /// `$1`, `$2`, ... (the number); `$#` is `Builtin(Builtin::ParamCount)`.
    Positional(u32),
    /// `pid`, `comm`, `nsecs`, `arg0`, `retval`, `args`, `probe`, ...
    Builtin(Builtin),
    /// Any other bare identifier, e.g. an enum constant such as `TCP_CLOSE` or
    /// `AF_INET` (only resolvable with C definitions/BTF; sema rejects it for now).
    Ident(String),
    Var(String),
    /// A map read `@m` / `@m[k]`.
    Map(MapRef),
    /// `f(args)`: printf, str, count, hist, exit, ...; also `kstack`/`ustack` with args.
    Call {
        /// The name as written.
        name: String,
        /// What the name resolves to: `None` until semantic analysis, which sets it
        /// (or reports the name unknown).
        func: Option<Func>,
        args: Vec<Expr>,
    },
    Unary {
        op: UnOp,
        expr: Box<Expr>,
    },
    Binary {
        op: BinOp,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    Ternary {
        cond: Box<Expr>,
        then: Box<Expr>,
        els: Box<Expr>,
    },
    /// `expr->field` (arrow = true) or `expr.field`.
    Field {
        expr: Box<Expr>,
        field: String,
        arrow: bool,
    },
    /// `expr[index]`
    Index {
        expr: Box<Expr>,
        index: Box<Expr>,
    },
    /// `(type)expr`, type written as text e.g. "struct sock *", "uint32".
    Cast {
        ty: String,
        expr: Box<Expr>,
    },
    /// `(a, b, ...)`
    Tuple(Vec<Expr>),
    /// `sizeof(type or expr)` with the text of the type.
    Sizeof(String),
    /// `++x`, `--x` (`post` false: the new value) or `x++`, `x--` (the old value) on a
    /// variable or map (a pointer steps by the size of what it points to).
    IncDec {
        target: Box<Expr>,
        inc: bool,
        post: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnOp {
    /// `!`
    Not,
    /// `~`
    BitNot,
    /// `-`
    Neg,
    /// `*p`
    Deref,
    /// `&x`
    AddrOf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    BitAnd,
    BitOr,
    BitXor,
    Shl,
    Shr,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    /// `&&` (short-circuit)
    And,
    /// `||` (short-circuit)
    Or,
}

/// The deepest a syntax tree may be for the recursive passes over it (sema, code
/// generation): twice the parser's [`crate::parser::MAX_DEPTH`] (the parser counts
/// levels of the source, which can be a few tree levels each, e.g. operators of rising
/// precedence), so any parsed script passes and a tree built by other means cannot
/// overflow the stack.
pub const MAX_TREE_DEPTH: usize = 2 * crate::parser::MAX_DEPTH;

impl Program {
    /// The first node deeper than `limit` (statements and expressions both count),
    /// found without recursion.
    pub fn node_deeper_than(&self, limit: usize) -> Option<Span> {
        let mut stack: Vec<(Node, usize)> = Vec::new();
        for p in &self.probes {
            stack.extend(p.predicate.iter().map(|e| (Node::Expr(e), 1)));
            stack.extend(p.body.iter().map(|s| (Node::Stmt(s), 1)));
        }
        while let Some((node, depth)) = stack.pop() {
            let (span, children): (Span, Vec<Node>) = match node {
                Node::Stmt(s) => (s.span, stmt_children(s)),
                Node::Expr(e) => (e.span, expr_children(e)),
            };
            if depth > limit {
                return Some(span);
            }
            stack.extend(children.into_iter().map(|c| (c, depth + 1)));
        }
        None
    }
}

impl Probe {
    /// Every expression of the block (predicate and body, nested ones too), found
    /// without recursion.
    pub fn each_expr(&self, f: &mut dyn FnMut(&Expr)) {
        let mut stack: Vec<Node> = Vec::new();
        stack.extend(self.predicate.iter().map(Node::Expr));
        stack.extend(self.body.iter().map(Node::Stmt));
        while let Some(node) = stack.pop() {
            match node {
                Node::Stmt(s) => stack.extend(stmt_children(s)),
                Node::Expr(e) => {
                    f(e);
                    stack.extend(expr_children(e));
                }
            }
        }
    }
}

/// A node of the tree, for walks with an explicit stack.
enum Node<'a> {
    Stmt(&'a Stmt),
    Expr(&'a Expr),
}

fn stmt_children(s: &Stmt) -> Vec<Node<'_>> {
    let mut out = Vec::new();
    match &s.kind {
        StmtKind::Expr(e) => out.push(Node::Expr(e)),
        StmtKind::MapAssign { map, value } | StmtKind::MapCompound { map, value, .. } => {
            out.extend(map.keys.iter().map(Node::Expr));
            out.push(Node::Expr(value));
        }
        StmtKind::VarAssign { value, .. } | StmtKind::VarCompound { value, .. } => {
            out.push(Node::Expr(value))
        }
        StmtKind::If { cond, then, els } => {
            out.push(Node::Expr(cond));
            out.extend(then.iter().chain(els).map(Node::Stmt));
        }
        StmtKind::Unroll { body, .. } => out.extend(body.iter().map(Node::Stmt)),
        StmtKind::While { cond, body } => {
            out.push(Node::Expr(cond));
            out.extend(body.iter().map(Node::Stmt));
        }
        StmtKind::Break | StmtKind::Continue | StmtKind::Return => {}
    }
    out
}

fn expr_children(e: &Expr) -> Vec<Node<'_>> {
    match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Str(_)
        | ExprKind::Positional(_)
        | ExprKind::Builtin(_)
        | ExprKind::Ident(_)
        | ExprKind::Var(_)
        | ExprKind::Sizeof(_) => vec![],
        ExprKind::Map(m) => m.keys.iter().map(Node::Expr).collect(),
        ExprKind::Call { args, .. } | ExprKind::Tuple(args) => {
            args.iter().map(Node::Expr).collect()
        }
        ExprKind::Unary { expr, .. }
        | ExprKind::IncDec { target: expr, .. }
        | ExprKind::Field { expr, .. }
        | ExprKind::Cast { expr, .. } => {
            vec![Node::Expr(expr)]
        }
        ExprKind::Binary { lhs, rhs, .. } => vec![Node::Expr(lhs), Node::Expr(rhs)],
        ExprKind::Ternary { cond, then, els } => {
            vec![Node::Expr(cond), Node::Expr(then), Node::Expr(els)]
        }
        ExprKind::Index { expr, index } => vec![Node::Expr(expr), Node::Expr(index)],
    }
}

impl Expr {
    /// An untyped expression (`ty` is `Type::None` until sema runs).
    pub fn new(kind: ExprKind, span: Span) -> Self {
        Expr {
            kind,
            span,
            ty: Type::None,
        }
    }
}

impl ProbeKind {
    /// The long provider name as bpftrace prints it (`"tracepoint"`, `"BEGIN"`, ...).
    pub fn provider(self) -> &'static str {
        match self {
            ProbeKind::Begin => "BEGIN",
            ProbeKind::End => "END",
            ProbeKind::Tracepoint => "tracepoint",
            ProbeKind::RawTracepoint => "rawtracepoint",
            ProbeKind::Kprobe => "kprobe",
            ProbeKind::Kretprobe => "kretprobe",
            ProbeKind::Uprobe => "uprobe",
            ProbeKind::Uretprobe => "uretprobe",
            ProbeKind::Usdt => "usdt",
            ProbeKind::Profile => "profile",
            ProbeKind::Interval => "interval",
            ProbeKind::Kfunc => "kfunc",
            ProbeKind::Kretfunc => "kretfunc",
            ProbeKind::Software => "software",
            ProbeKind::Hardware => "hardware",
            ProbeKind::CgroupSkb => "cgroup_skb",
            ProbeKind::Watchpoint => "watchpoint",
            ProbeKind::AsyncWatchpoint => "asyncwatchpoint",
        }
    }
}
