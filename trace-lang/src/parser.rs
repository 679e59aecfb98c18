//! The parser: recursive descent for probes and statements, Pratt (precedence
//! climbing) for expressions with C precedence, producing an [`ast::Program`]
//! with spans on every node. Errors are [`Diagnostic`]s in bpftrace's wording
//! (`syntax error, unexpected }`, `unknown probe type 'foo'`, ...).
//!
//! Nesting is limited to [`MAX_DEPTH`] levels (blocks, parentheses, calls, indexing,
//! unary operators and operator chains all count), so that neither this recursive
//! parser nor the recursive passes after it (sema, code generation) can overflow a
//! thread's stack: past the limit the parse fails with a located error.

use crate::ast::{
    self, AttachPoint, BinOp, Expr, ExprKind, MapRef, Probe, ProbeKind, Stmt, StmtKind, UnOp,
};
use crate::diag::Diagnostic;
use crate::lexer::{Lexer, Token, TokenKind};
use crate::names::Builtin;
use crate::span::Span;
use std::collections::HashMap;

/// How deeply statements and expressions may nest. Every level of a block (`if`,
/// `while`, `unroll`, `else if`), of an expression in parentheses, a call, an index, a
/// map key, a tuple or a ternary branch, of a unary operator or a cast, and every
/// operator of a left-associative chain (`a + b + c`, `x->a.b[1]`) counts one.
///
/// bpftrace's own tools nest less than 20 deep, but a long `||` chain in a predicate is
/// an ordinary thing to write, and each of its operators counts: 256 levels leave room for
/// that. The cost of one level through the parser and sema is up to ~22 KiB of stack in a
/// debug build (an `if` block; measured with `ulimit -s`): 256 levels need ~6 MiB, which
/// is why [`crate::parse`] and [`crate::check`] run on a thread with
/// [`crate::STACK_SIZE`] of stack (and the runner's code generator too).
pub const MAX_DEPTH: usize = 256;

/// Parse a whole script.
pub fn parse(src: &str) -> Result<ast::Program, Diagnostic> {
    let masked = crate::preproc::mask_inactive(src);
    Parser::new(masked.as_deref().unwrap_or(src)).program()
}

/// Parse a whole script given its positional parameters (`$1` is `params[0]`): those
/// written in attach points (`interval:ms:$1`, `BEG$1`) and as an `unroll` count are
/// replaced by their values here, as bpftrace does; elsewhere `$N` stays a node that
/// code generation resolves.
pub fn parse_with_params(src: &str, params: &[String]) -> Result<ast::Program, Diagnostic> {
    let masked = crate::preproc::mask_inactive(src);
    let mut p = Parser::new(masked.as_deref().unwrap_or(src));
    p.params = Some(params.to_vec());
    p.program()
}

/// Parse a whole script given its predefined values: the positional parameters as
/// [`parse_with_params`] takes them, and `$container_pid` (see [`crate::Predefined`]),
/// which becomes an integer literal where it is read and the pid's digits in attach
/// points (`uprobe:/proc/$container_pid/exe:main`). Spans stay those of the text as
/// written. Without a pid, a use of `$container_pid` is an error at the use.
pub fn parse_predefined(
    src: &str,
    predefined: &crate::Predefined,
) -> Result<ast::Program, Diagnostic> {
    let masked = crate::preproc::mask_inactive(src);
    let mut p = Parser::new(masked.as_deref().unwrap_or(src));
    p.params = Some(predefined.params.clone());
    p.container_pid = ContainerPid::Given(predefined.container_pid);
    p.program()
}

/// Object-like `#define NAME BODY` lines of a script: each name with the byte range of
/// its body in `src` (function-like macros, `#define F(x) ...`, are not recorded).
pub fn scan_defines(src: &str) -> HashMap<String, (usize, usize)> {
    let mut out = HashMap::new();
    let mut at = 0;
    for line in src.split_inclusive('\n') {
        let start = at;
        at += line.len();
        let body = line.trim_end_matches(['\n', '\r']);
        let trimmed = body.trim_start();
        let Some(rest) = trimmed.strip_prefix('#') else {
            continue;
        };
        let rest_trim = rest.trim_start();
        let Some(after) = rest_trim.strip_prefix("define") else {
            continue;
        };
        if !after.starts_with([' ', '\t']) {
            continue;
        }
        let after_ws = after.trim_start();
        let name_len = after_ws
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'_')
            .count();
        if name_len == 0 || after_ws.as_bytes()[0].is_ascii_digit() {
            continue;
        }
        let name = &after_ws[..name_len];
        if after_ws[name_len..].starts_with('(') {
            continue;
        }
        let body_start = start + (body.len() - after_ws.len()) + name_len;
        out.insert(name.to_string(), (body_start, start + body.len()));
    }
    out
}

/// An integer written as C's `strtoll(s, 0)` reads it: decimal, `0x` hex or `0` octal,
/// with an optional sign (positional parameters, `#define` bodies).
pub fn parse_int_text(s: &str) -> Option<i64> {
    let s = s.trim();
    let (neg, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        u64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse::<u64>().ok()?
    } as i64;
    Some(if neg { v.wrapping_neg() } else { v })
}

/// `$N` in attach-point text replaced by the positional parameters' values.
fn substitute_positionals(text: &str, params: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let digits = rest[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
        match rest[i + 1..i + 1 + digits].parse::<usize>() {
            Ok(n) if n >= 1 => out.push_str(params.get(n - 1).map_or("", String::as_str)),
            _ => out.push_str(&rest[i..i + 1 + digits]),
        }
        rest = &rest[i + 1 + digits..];
    }
    out.push_str(rest);
    out
}

fn container_pid_missing(span: Span) -> Diagnostic {
    Diagnostic::new(span, "$container_pid needs a pod target")
}

/// Parse a single expression (used by tests and tools).
pub fn parse_expr(src: &str) -> Result<Expr, Diagnostic> {
    let mut p = Parser::new(src);
    let e = p.expr()?;
    let t = p.next()?;
    if t.kind != TokenKind::Eof {
        return Err(unexpected(&t));
    }
    Ok(e)
}

/// Words that bpftrace's lexer reserves as builtins (everything else that is a bare
/// identifier becomes [`ExprKind::Ident`]).
pub fn is_builtin(name: &str) -> bool {
    Builtin::from_name(name).is_some()
}

/// Map a provider as written (long or short alias) to its kind.
pub fn probe_kind(provider: &str) -> Option<ProbeKind> {
    Some(match provider {
        "tracepoint" | "t" => ProbeKind::Tracepoint,
        "rawtracepoint" | "rt" => ProbeKind::RawTracepoint,
        "kprobe" | "k" => ProbeKind::Kprobe,
        "kretprobe" | "kr" => ProbeKind::Kretprobe,
        "uprobe" | "u" => ProbeKind::Uprobe,
        "uretprobe" | "ur" => ProbeKind::Uretprobe,
        "usdt" | "U" => ProbeKind::Usdt,
        "profile" | "p" => ProbeKind::Profile,
        "interval" | "i" => ProbeKind::Interval,
        "kfunc" | "fentry" | "f" => ProbeKind::Kfunc,
        "kretfunc" | "fexit" | "fr" => ProbeKind::Kretfunc,
        "software" | "s" => ProbeKind::Software,
        "hardware" | "h" => ProbeKind::Hardware,
        "cgroup_skb" => ProbeKind::CgroupSkb,
        "watchpoint" | "w" => ProbeKind::Watchpoint,
        "asyncwatchpoint" | "aw" => ProbeKind::AsyncWatchpoint,
        _ => return None,
    })
}

/// Split attach point text into an [`AttachPoint`], normalising the provider.
pub fn parse_attach_point(text: &str, span: Span) -> Result<AttachPoint, Diagnostic> {
    if text == "BEGIN" || text == "END" {
        return Ok(AttachPoint {
            kind: if text == "BEGIN" {
                ProbeKind::Begin
            } else {
                ProbeKind::End
            },
            parts: vec![],
            text: text.to_string(),
            span,
        });
    }
    let (provider, rest) = match text.split_once(':') {
        Some(x) => x,
        None => (text, ""),
    };
    let kind = match probe_kind(provider) {
        Some(k) => k,
        None => {
            let pspan = Span::new(span.start, span.start + provider.len());
            let msg = match provider {
                "iter" | "it" | "kprobe_multi" => {
                    format!("probe type '{provider}' is not supported")
                }
                _ => format!("unknown probe type '{provider}'"),
            };
            return Err(Diagnostic::new(pspan, msg));
        }
    };
    if !text.contains(':') {
        return Err(Diagnostic::new(
            span,
            format!("{} probe type requires arguments", kind.provider()),
        ));
    }
    Ok(AttachPoint {
        kind,
        parts: rest.split(':').map(str::to_string).collect(),
        text: format!("{}:{}", kind.provider(), rest),
        span,
    })
}

fn unexpected(t: &Token) -> Diagnostic {
    Diagnostic::new(
        t.span,
        format!("syntax error, unexpected {}", t.kind.describe()),
    )
}

fn binop(sym: &str) -> Option<(BinOp, u8)> {
    Some(match sym {
        "||" => (BinOp::Or, 2),
        "&&" => (BinOp::And, 3),
        "|" => (BinOp::BitOr, 4),
        "^" => (BinOp::BitXor, 5),
        "&" => (BinOp::BitAnd, 6),
        "==" => (BinOp::Eq, 7),
        "!=" => (BinOp::Ne, 7),
        "<" => (BinOp::Lt, 8),
        "<=" => (BinOp::Le, 8),
        ">" => (BinOp::Gt, 8),
        ">=" => (BinOp::Ge, 8),
        "<<" => (BinOp::Shl, 9),
        ">>" => (BinOp::Shr, 9),
        "+" => (BinOp::Add, 10),
        "-" => (BinOp::Sub, 10),
        "*" => (BinOp::Mul, 11),
        "/" => (BinOp::Div, 11),
        "%" => (BinOp::Mod, 11),
        _ => return None,
    })
}

fn compound_op(sym: &str) -> Option<BinOp> {
    Some(match sym {
        "+=" => BinOp::Add,
        "-=" => BinOp::Sub,
        "*=" => BinOp::Mul,
        "/=" => BinOp::Div,
        "%=" => BinOp::Mod,
        "&=" => BinOp::BitAnd,
        "|=" => BinOp::BitOr,
        "^=" => BinOp::BitXor,
        "<<=" => BinOp::Shl,
        ">>=" => BinOp::Shr,
        _ => return None,
    })
}

/// C type words that may start a cast `(type)expr`.
fn is_type_word(w: &str) -> bool {
    matches!(
        w,
        "int8"
            | "int16"
            | "int32"
            | "int64"
            | "uint8"
            | "uint16"
            | "uint32"
            | "uint64"
            | "char"
            | "short"
            | "int"
            | "long"
            | "unsigned"
            | "signed"
            | "bool"
            | "void"
            | "u8"
            | "u16"
            | "u32"
            | "u64"
            | "s8"
            | "s16"
            | "s32"
            | "s64"
            | "size_t"
            | "pid_t"
    )
}

struct Parser<'a> {
    lx: Lexer<'a>,
    peeked: Option<Token>,
    /// End offset of the last consumed token.
    prev_end: usize,
    /// Current nesting depth (see [`MAX_DEPTH`]).
    depth: usize,
    /// `#define NAME BODY` of the script: the byte range of each body.
    defines: HashMap<String, (usize, usize)>,
    /// The positional parameters, when known (see [`parse_with_params`]).
    params: Option<Vec<String>>,
    /// What `$container_pid` is (see [`parse_predefined`]).
    container_pid: ContainerPid,
}

/// `$container_pid` as the parser sees it.
#[derive(Clone, Copy)]
enum ContainerPid {
    /// Not predefined ([`parse`]): a scratch variable like any other.
    Variable,
    /// Predefined: this pid, or none (no target, so using it is an error).
    Given(Option<u32>),
}

/// The spelling of the predefined variable, without `$`.
const CONTAINER_PID: &str = "container_pid";

#[derive(Clone)]
struct Snapshot {
    pos: usize,
    peeked: Option<Token>,
    prev_end: usize,
}

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> Self {
        Parser {
            lx: Lexer::new(src),
            peeked: None,
            prev_end: 0,
            depth: 0,
            defines: scan_defines(src),
            params: None,
            container_pid: ContainerPid::Variable,
        }
    }

    /// Go one level deeper; past [`MAX_DEPTH`] an error at the next token.
    fn enter(&mut self, what: &str) -> Result<(), Diagnostic> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let at = self.peek()?.span;
            return Err(Diagnostic::new(
                at,
                format!("{what} nested too deeply (limit {MAX_DEPTH})"),
            ));
        }
        Ok(())
    }

    fn leave(&mut self, levels: usize) {
        self.depth -= levels;
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            pos: self.lx.pos(),
            peeked: self.peeked.clone(),
            prev_end: self.prev_end,
        }
    }

    fn restore(&mut self, s: Snapshot) {
        self.lx.set_pos(s.pos);
        self.peeked = s.peeked;
        self.prev_end = s.prev_end;
    }

    fn peek(&mut self) -> Result<&Token, Diagnostic> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lx.next_token()?);
        }
        Ok(self.peeked.as_ref().unwrap())
    }

    /// The token after the peeked one.
    fn peek2(&mut self) -> Result<Token, Diagnostic> {
        self.peek()?;
        let mut lx = self.lx.clone();
        lx.next_token()
    }

    fn next(&mut self) -> Result<Token, Diagnostic> {
        let t = match self.peeked.take() {
            Some(t) => t,
            None => self.lx.next_token()?,
        };
        if t.kind != TokenKind::Eof {
            self.prev_end = t.span.end;
        }
        Ok(t)
    }

    fn peek_is_sym(&mut self, s: &str) -> Result<bool, Diagnostic> {
        Ok(matches!(&self.peek()?.kind, TokenKind::Sym(x) if *x == s))
    }

    fn peek_is_ident(&mut self, s: &str) -> Result<bool, Diagnostic> {
        Ok(matches!(&self.peek()?.kind, TokenKind::Ident(x) if x == s))
    }

    fn eat_sym(&mut self, s: &str) -> Result<bool, Diagnostic> {
        if self.peek_is_sym(s)? {
            self.next()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn expect_sym(&mut self, s: &str) -> Result<Token, Diagnostic> {
        let t = self.next()?;
        match &t.kind {
            TokenKind::Sym(x) if *x == s => Ok(t),
            _ => Err(Diagnostic::new(
                t.span,
                format!(
                    "syntax error, unexpected {}, expecting {s}",
                    t.kind.describe()
                ),
            )),
        }
    }

    // ---- top level ----------------------------------------------------------

    fn program(&mut self) -> Result<ast::Program, Diagnostic> {
        let mut probes = Vec::new();
        let mut c_defs = Vec::new();
        loop {
            debug_assert!(self.peeked.is_none());
            if let Some(w) = self.lx.peek_word()? {
                if matches!(w, "struct" | "union" | "enum" | "typedef") {
                    let toks = self.c_definition_tokens()?;
                    c_defs.push(crate::cdecl::parse_definition(&toks)?);
                    continue;
                }
            }
            match self.lx.attach_point()? {
                Some((text, span)) => probes.push(self.probe(text, span)?),
                None => {
                    let t = self.next()?;
                    if t.kind == TokenKind::Eof {
                        break;
                    }
                    return Err(unexpected(&t));
                }
            }
        }
        Ok(ast::Program { probes, c_defs })
    }

    /// The tokens of a top-level C definition: up to a `;` outside braces, or the `}`
    /// that closes the outermost braces (and a `;` right after it). bpftrace's tests
    /// write `struct A { int x[4]; } uprobe:...` without the final `;`.
    fn c_definition_tokens(&mut self) -> Result<Vec<Token>, Diagnostic> {
        let mut toks = Vec::new();
        let mut depth = 0usize;
        loop {
            let t = self.next()?;
            match &t.kind {
                TokenKind::Eof => return Err(unexpected(&t)),
                TokenKind::Sym("{") => depth += 1,
                TokenKind::Sym("}") => {
                    if depth == 0 {
                        return Err(unexpected(&t));
                    }
                    depth -= 1;
                    if depth == 0 {
                        toks.push(t);
                        let before = self.snapshot();
                        let semi = self.next()?;
                        if semi.kind == TokenKind::Sym(";") {
                            toks.push(semi);
                        } else {
                            self.restore(before);
                        }
                        return Ok(toks);
                    }
                }
                TokenKind::Sym(";") if depth == 0 => {
                    toks.push(t);
                    return Ok(toks);
                }
                _ => {}
            }
            toks.push(t);
        }
    }

    /// An attach point's text, with `$container_pid` and the positional parameters
    /// substituted when known.
    fn attach_text(&self, text: String, span: Span) -> Result<String, Diagnostic> {
        let var = format!("${CONTAINER_PID}");
        let text = match self.container_pid {
            ContainerPid::Given(pid) if text.contains(&var) => {
                let pid = pid.ok_or_else(|| container_pid_missing(span))?;
                text.replace(&var, &pid.to_string())
            }
            _ => text,
        };
        Ok(match &self.params {
            Some(params) if text.contains('$') => substitute_positionals(&text, params),
            _ => text,
        })
    }

    /// A read of `$NAME`: `$container_pid`'s value when it is predefined.
    fn var_expr(&self, name: String, span: Span) -> Result<Expr, Diagnostic> {
        match self.container_pid {
            ContainerPid::Given(pid) if name == CONTAINER_PID => {
                let pid = pid.ok_or_else(|| container_pid_missing(span))?;
                Ok(Expr::new(ExprKind::Int(pid.into()), span))
            }
            _ => Ok(Expr::new(ExprKind::Var(name), span)),
        }
    }

    fn probe(&mut self, first: String, first_span: Span) -> Result<Probe, Diagnostic> {
        let first = self.attach_text(first, first_span)?;
        let mut attach = vec![parse_attach_point(&first, first_span)?];
        loop {
            if self.eat_sym(",")? {
                debug_assert!(self.peeked.is_none());
                match self.lx.attach_point()? {
                    Some((text, span)) => {
                        let text = self.attach_text(text, span)?;
                        attach.push(parse_attach_point(&text, span)?)
                    }
                    None => {
                        let t = self.next()?;
                        return Err(unexpected(&t));
                    }
                }
            } else {
                break;
            }
        }
        let mut predicate = None;
        if self.eat_sym("/")? {
            let e = self.expr()?;
            self.expect_sym("/")?;
            predicate = Some(e);
        }
        if !self.peek_is_sym("{")? {
            let t = self.next()?;
            return Err(Diagnostic::new(
                t.span,
                format!(
                    "syntax error, unexpected {}, expecting {{",
                    t.kind.describe()
                ),
            ));
        }
        let body = self.block()?;
        Ok(Probe {
            attach,
            predicate,
            body,
            span: Span::new(first_span.start, self.prev_end),
        })
    }

    // ---- statements ---------------------------------------------------------

    fn block(&mut self) -> Result<Vec<Stmt>, Diagnostic> {
        self.enter("blocks")?;
        let stmts = self.block_inner()?;
        self.leave(1);
        Ok(stmts)
    }

    fn block_inner(&mut self) -> Result<Vec<Stmt>, Diagnostic> {
        self.expect_sym("{")?;
        let mut stmts = Vec::new();
        loop {
            if self.eat_sym("}")? {
                return Ok(stmts);
            }
            if self.eat_sym(";")? {
                continue;
            }
            let (stmt, is_block) = self.stmt()?;
            stmts.push(stmt);
            if is_block {
                continue;
            }
            if self.eat_sym(";")? {
                continue;
            }
            if self.peek_is_sym("}")? {
                continue;
            }
            let t = self.next()?;
            return Err(unexpected(&t));
        }
    }

    /// One statement; the flag says it ended with a block (no `;` needed).
    fn stmt(&mut self) -> Result<(Stmt, bool), Diagnostic> {
        let t = self.peek()?.clone();
        let start = t.span.start;
        match &t.kind {
            TokenKind::Ident(w) if w == "if" => return Ok((self.if_stmt()?, true)),
            TokenKind::Ident(w) if w == "unroll" => {
                self.next()?;
                self.expect_sym("(")?;
                let n = self.next()?;
                let count = self.unroll_count(&n)?;
                if count < 1 {
                    return Err(Diagnostic::new(n.span, "unroll minimum value is 1"));
                }
                if count > 100 {
                    return Err(Diagnostic::new(n.span, "unroll maximum value is 100"));
                }
                self.expect_sym(")")?;
                let body = self.block()?;
                return Ok((
                    Stmt {
                        kind: StmtKind::Unroll {
                            count: count as u64,
                            body,
                        },
                        span: Span::new(start, self.prev_end),
                    },
                    true,
                ));
            }
            TokenKind::Ident(w) if w == "return" => {
                self.next()?;
                return Ok((
                    Stmt {
                        kind: StmtKind::Return,
                        span: t.span,
                    },
                    false,
                ));
            }
            TokenKind::Ident(w) if w == "while" => {
                self.next()?;
                self.expect_sym("(")?;
                let cond = self.expr()?;
                self.expect_sym(")")?;
                let body = self.block()?;
                let span = Span::new(start, self.prev_end);
                return Ok((
                    Stmt {
                        kind: StmtKind::While { cond, body },
                        span,
                    },
                    true,
                ));
            }
            TokenKind::Ident(w) if matches!(w.as_str(), "break" | "continue") => {
                self.next()?;
                let kind = if w == "break" {
                    StmtKind::Break
                } else {
                    StmtKind::Continue
                };
                return Ok((Stmt { kind, span: t.span }, false));
            }
            TokenKind::Ident(w) if w == "for" => {
                return Err(Diagnostic::new(
                    t.span,
                    "'for' is not supported (bpftrace 0.17 has no for loops; use while)",
                ));
            }
            TokenKind::Sym(s @ ("++" | "--")) => {
                let op = if *s == "++" { BinOp::Add } else { BinOp::Sub };
                self.next()?;
                let target = self.next()?;
                let one = Expr::new(ExprKind::Int(1), t.span);
                let kind = match target.kind {
                    TokenKind::Map(name) => {
                        let map = self.map_ref(name, target.span)?;
                        StmtKind::MapCompound {
                            map,
                            op,
                            value: one,
                        }
                    }
                    TokenKind::Var(name) => StmtKind::VarCompound {
                        name,
                        op,
                        value: one,
                    },
                    _ => return Err(unexpected(&target)),
                };
                return Ok((
                    Stmt {
                        kind,
                        span: Span::new(start, self.prev_end),
                    },
                    false,
                ));
            }
            TokenKind::Map(name) => {
                let snap = self.snapshot();
                self.next()?;
                let map = self.map_ref(name.clone(), t.span)?;
                if let Some(kind) = self.assignment_tail(AssignTarget::Map(map))? {
                    return Ok((
                        Stmt {
                            kind,
                            span: Span::new(start, self.prev_end),
                        },
                        false,
                    ));
                }
                self.restore(snap);
            }
            TokenKind::Var(name) => {
                let snap = self.snapshot();
                self.next()?;
                let target = AssignTarget::Var(name.clone(), t.span);
                if matches!(self.container_pid, ContainerPid::Given(_)) && name == CONTAINER_PID {
                    if self.assignment_tail(target)?.is_some() {
                        return Err(Diagnostic::new(
                            t.span,
                            "$container_pid is predefined (the target container's main process) and cannot be assigned",
                        ));
                    }
                } else if let Some(kind) = self.assignment_tail(target)? {
                    return Ok((
                        Stmt {
                            kind,
                            span: Span::new(start, self.prev_end),
                        },
                        false,
                    ));
                }
                self.restore(snap);
            }
            _ => {}
        }
        let e = self.expr()?;
        let span = e.span;
        Ok((
            Stmt {
                kind: StmtKind::Expr(e),
                span,
            },
            false,
        ))
    }

    /// The count of `unroll (N)`: an integer literal, a `#define`d one, or a positional
    /// parameter whose value is known.
    fn unroll_count(&self, n: &Token) -> Result<i64, Diagnostic> {
        let bad = || Diagnostic::new(n.span, "unroll count must be an integer literal");
        match &n.kind {
            TokenKind::Int(v) => Ok(*v),
            TokenKind::Positional(i) => {
                let params = self.params.as_ref().ok_or_else(bad)?;
                let text = params.get(*i as usize - 1).map_or("", String::as_str);
                parse_int_text(text).ok_or_else(|| {
                    Diagnostic::new(
                        n.span,
                        format!(
                            "unroll count: positional parameter ${i} is not a number: '{text}'"
                        ),
                    )
                })
            }
            TokenKind::Ident(w) => {
                let (start, end) = *self.defines.get(w).ok_or_else(bad)?;
                parse_int_text(self.lx.src()[start..end].trim()).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }

    /// After `@m[k]` or `$x`: `= v`, `op= v`, `++`, `--`; `None` if none follows.
    fn assignment_tail(&mut self, target: AssignTarget) -> Result<Option<StmtKind>, Diagnostic> {
        let t = self.peek()?.clone();
        let sym = match t.kind {
            TokenKind::Sym(s) => s,
            _ => return Ok(None),
        };
        let (op, value) = if sym == "=" {
            self.next()?;
            (None, self.expr()?)
        } else if let Some(op) = compound_op(sym) {
            self.next()?;
            (Some(op), self.expr()?)
        } else if sym == "++" || sym == "--" {
            self.next()?;
            let op = if sym == "++" { BinOp::Add } else { BinOp::Sub };
            (Some(op), Expr::new(ExprKind::Int(1), t.span))
        } else {
            return Ok(None);
        };
        Ok(Some(match (target, op) {
            (AssignTarget::Map(map), None) => StmtKind::MapAssign { map, value },
            (AssignTarget::Map(map), Some(op)) => StmtKind::MapCompound { map, op, value },
            (AssignTarget::Var(name, _), None) => StmtKind::VarAssign { name, value },
            (AssignTarget::Var(name, _), Some(op)) => StmtKind::VarCompound { name, op, value },
        }))
    }

    fn if_stmt(&mut self) -> Result<Stmt, Diagnostic> {
        let kw = self.next()?; // if
        self.expect_sym("(")?;
        let cond = self.expr()?;
        self.expect_sym(")")?;
        let then = self.block()?;
        let mut els = Vec::new();
        if self.peek_is_ident("else")? {
            self.next()?;
            if self.peek_is_ident("if")? {
                // `else if` nests an `if` in the `else` branch.
                self.enter("blocks")?;
                els.push(self.if_stmt()?);
                self.leave(1);
            } else {
                els = self.block()?;
            }
        }
        Ok(Stmt {
            kind: StmtKind::If { cond, then, els },
            span: Span::new(kw.span.start, self.prev_end),
        })
    }

    /// `@name` was consumed (span `at`); read optional `[k1, k2]`.
    fn map_ref(&mut self, name: String, at: Span) -> Result<MapRef, Diagnostic> {
        let mut keys = Vec::new();
        if self.eat_sym("[")? {
            keys.push(self.expr()?);
            while self.eat_sym(",")? {
                keys.push(self.expr()?);
            }
            self.expect_sym("]")?;
        }
        Ok(MapRef {
            name,
            keys,
            span: Span::new(at.start, self.prev_end),
        })
    }

    // ---- expressions --------------------------------------------------------

    fn expr(&mut self) -> Result<Expr, Diagnostic> {
        self.enter("expression")?;
        let e = self.ternary()?;
        self.leave(1);
        Ok(e)
    }

    fn ternary(&mut self) -> Result<Expr, Diagnostic> {
        let cond = self.binary(2)?;
        if self.eat_sym("?")? {
            let then = self.expr()?;
            self.expect_sym(":")?;
            let els = self.expr()?;
            let span = cond.span.to(els.span);
            return Ok(Expr::new(
                ExprKind::Ternary {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    els: Box::new(els),
                },
                span,
            ));
        }
        Ok(cond)
    }

    fn binary(&mut self, min: u8) -> Result<Expr, Diagnostic> {
        let mut lhs = self.unary()?;
        // Each operator of a chain puts the tree so far one level deeper.
        let mut levels = 0;
        while let TokenKind::Sym(sym) = self.peek()?.kind {
            let Some((op, prec)) = binop(sym) else { break };
            if prec < min {
                break;
            }
            if sym == "/" && matches!(self.peek2()?.kind, TokenKind::Sym("{")) {
                // The `/` closing a predicate.
                break;
            }
            self.enter("expression")?;
            levels += 1;
            self.next()?;
            let rhs = self.binary(prec + 1)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            );
        }
        self.leave(levels);
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<Expr, Diagnostic> {
        let t = self.peek()?.clone();
        if let TokenKind::Sym(sym @ ("++" | "--")) = t.kind {
            self.next()?;
            self.enter("expression")?;
            let target = self.unary()?;
            self.leave(1);
            return self.inc_dec(target, sym == "++", false, t.span);
        }
        let op = match t.kind {
            TokenKind::Sym("!") => Some(UnOp::Not),
            TokenKind::Sym("~") => Some(UnOp::BitNot),
            TokenKind::Sym("-") => Some(UnOp::Neg),
            TokenKind::Sym("*") => Some(UnOp::Deref),
            TokenKind::Sym("&") => Some(UnOp::AddrOf),
            _ => None,
        };
        if let Some(op) = op {
            self.next()?;
            self.enter("expression")?;
            let e = self.unary()?;
            self.leave(1);
            let span = t.span.to(e.span);
            // Fold negative literals so `-1` is a plain Int.
            if op == UnOp::Neg {
                if let ExprKind::Int(v) = e.kind {
                    return Ok(Expr::new(ExprKind::Int(v.wrapping_neg()), span));
                }
            }
            return Ok(Expr::new(
                ExprKind::Unary {
                    op,
                    expr: Box::new(e),
                },
                span,
            ));
        }
        if t.kind == TokenKind::Sym("(") {
            if let Some(ty) = self.try_cast_type()? {
                self.enter("expression")?;
                let e = self.unary()?;
                self.leave(1);
                let span = t.span.to(e.span);
                return Ok(Expr::new(
                    ExprKind::Cast {
                        ty,
                        expr: Box::new(e),
                    },
                    span,
                ));
            }
        }
        let p = self.primary()?;
        self.postfix(p)
    }

    /// At `(`: if a cast type follows, consume `(type)` and return the type text.
    /// `++x`, `x++`, `--x`, `x--` as an expression: `x` must be a variable or a map.
    fn inc_dec(
        &mut self,
        target: Expr,
        inc: bool,
        post: bool,
        op: Span,
    ) -> Result<Expr, Diagnostic> {
        if !matches!(target.kind, ExprKind::Var(_) | ExprKind::Map(_)) {
            let sym = if inc { "++" } else { "--" };
            return Err(Diagnostic::new(
                target.span,
                format!("The {sym} operator must be applied to a map or variable"),
            ));
        }
        let span = target.span.to(op);
        Ok(Expr::new(
            ExprKind::IncDec {
                target: Box::new(target),
                inc,
                post,
            },
            span,
        ))
    }

    fn try_cast_type(&mut self) -> Result<Option<String>, Diagnostic> {
        let snap = self.snapshot();
        self.next()?; // (
        let mut words: Vec<String> = Vec::new();
        let mut stars = 0;
        let mut ok = false;
        loop {
            let t = self.next()?;
            match t.kind {
                TokenKind::Ident(w) if stars == 0 => {
                    let tagged = matches!(
                        words.first().map(String::as_str),
                        Some("struct" | "union" | "enum")
                    );
                    if tagged && words.len() >= 2 {
                        break;
                    }
                    words.push(w);
                }
                TokenKind::Sym("*") if !words.is_empty() => stars += 1,
                TokenKind::Sym(")") if !words.is_empty() => {
                    let first = words[0].as_str();
                    let tagged = matches!(first, "struct" | "union" | "enum");
                    ok = if tagged {
                        words.len() == 2
                    } else {
                        words.iter().all(|w| is_type_word(w)) || (words.len() == 1 && stars > 0)
                    };
                    break;
                }
                _ => break,
            }
        }
        if !ok {
            self.restore(snap);
            return Ok(None);
        }
        let mut text = words.join(" ");
        if stars > 0 {
            text.push(' ');
            text.push_str(&"*".repeat(stars));
        }
        Ok(Some(text))
    }

    fn primary(&mut self) -> Result<Expr, Diagnostic> {
        let t = self.next()?;
        let span = t.span;
        let e = |kind| Ok(Expr::new(kind, span));
        match t.kind {
            TokenKind::Int(v) => e(ExprKind::Int(v)),
            TokenKind::Str(s) => e(ExprKind::Str(s)),
            TokenKind::Positional(n) => e(ExprKind::Positional(n)),
            TokenKind::ParamCount => e(ExprKind::Builtin(Builtin::ParamCount)),
            TokenKind::Var(v) => self.var_expr(v, span),
            TokenKind::Map(name) => {
                let m = self.map_ref(name, span)?;
                let span = m.span;
                Ok(Expr::new(ExprKind::Map(m), span))
            }
            TokenKind::Ident(w) => {
                match w.as_str() {
                    "if" | "else" | "unroll" | "return" | "while" | "for" | "break"
                    | "continue" => {
                        return Err(Diagnostic::new(
                            span,
                            format!("syntax error, unexpected {w}"),
                        ))
                    }
                    "sizeof" => return self.sizeof(span),
                    "offsetof" => return self.offsetof(span),
                    _ => {}
                }
                if self.peek_is_sym("(")? {
                    self.next()?;
                    let mut args = Vec::new();
                    if !self.eat_sym(")")? {
                        args.push(self.expr()?);
                        while self.eat_sym(",")? {
                            args.push(self.expr()?);
                        }
                        self.expect_sym(")")?;
                    }
                    return Ok(Expr::new(
                        ExprKind::Call {
                            name: w,
                            func: None,
                            args,
                        },
                        Span::new(span.start, self.prev_end),
                    ));
                }
                if let Some(&(start, end)) = self.defines.get(&w) {
                    return self.expand_define(&w, start, end, span);
                }
                match Builtin::from_name(&w) {
                    Some(b) => e(ExprKind::Builtin(b)),
                    None => e(ExprKind::Ident(w)),
                }
            }
            TokenKind::Sym("(") => {
                let first = self.expr()?;
                if self.eat_sym(",")? {
                    let mut items = vec![first];
                    items.push(self.expr()?);
                    while self.eat_sym(",")? {
                        items.push(self.expr()?);
                    }
                    self.expect_sym(")")?;
                    return Ok(Expr::new(
                        ExprKind::Tuple(items),
                        Span::new(span.start, self.prev_end),
                    ));
                }
                self.expect_sym(")")?;
                // Parentheses are not a node; widen the span to include them.
                let mut inner = first;
                inner.span = Span::new(span.start, self.prev_end);
                Ok(inner)
            }
            _ => Err(unexpected(&t)),
        }
    }

    /// The body of `#define NAME BODY` (bytes `start..end` of the script), parsed as an
    /// expression where `NAME` is used: its nodes keep the spans of the definition.
    fn expand_define(
        &mut self,
        name: &str,
        start: usize,
        end: usize,
        at: Span,
    ) -> Result<Expr, Diagnostic> {
        let src = self.lx.src();
        if src[start..end].trim().is_empty() {
            return Err(Diagnostic::new(
                at,
                format!("'{name}' is defined without a value (#define {name})"),
            ));
        }
        let mut sub = Parser::new(&src[..end]);
        sub.lx.set_pos(start);
        // A macro is not expanded inside its own body (as in C): no endless recursion.
        sub.defines = self.defines.clone();
        sub.defines.remove(name);
        sub.params = self.params.clone();
        sub.container_pid = self.container_pid;
        sub.depth = self.depth;
        let e = sub.expr()?;
        let t = sub.next()?;
        if t.kind != TokenKind::Eof {
            return Err(unexpected(&t));
        }
        Ok(e)
    }

    /// `offsetof(struct X, a.b)`: a call of `offsetof` on two string literals, the record
    /// type and the member path (sema turns it into the offset).
    fn offsetof(&mut self, kw: Span) -> Result<Expr, Diagnostic> {
        let Expr {
            kind: ExprKind::Sizeof(text),
            span,
            ..
        } = self.sizeof(kw)?
        else {
            return Err(Diagnostic::new(kw, "offsetof(TYPE, MEMBER) expected"));
        };
        let Some((ty, member)) = text.rsplit_once(',') else {
            return Err(Diagnostic::new(
                span,
                "offsetof takes a type and a member: offsetof(struct X, member)",
            ));
        };
        let arg = |t: &str| Expr::new(ExprKind::Str(t.trim().replace(' ', "")), span);
        let ty = Expr::new(ExprKind::Str(ty.trim().to_string()), span);
        let args = vec![ty, arg(member)];
        Ok(Expr::new(
            ExprKind::Call {
                name: "offsetof".into(),
                func: None,
                args,
            },
            span,
        ))
    }

    /// `sizeof(...)`: the text between the parentheses, whitespace collapsed.
    fn sizeof(&mut self, kw: Span) -> Result<Expr, Diagnostic> {
        let open = self.expect_sym("(")?;
        let mut depth = 0usize;
        let close = loop {
            let t = self.next()?;
            match t.kind {
                TokenKind::Eof => return Err(unexpected(&t)),
                TokenKind::Sym("(") => depth += 1,
                TokenKind::Sym(")") if depth == 0 => break t,
                TokenKind::Sym(")") => depth -= 1,
                _ => {}
            }
        };
        let raw = &self.lx.src()[open.span.end..close.span.start];
        let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            return Err(unexpected(&close));
        }
        Ok(Expr::new(
            ExprKind::Sizeof(text),
            Span::new(kw.start, close.span.end),
        ))
    }

    fn postfix(&mut self, mut e: Expr) -> Result<Expr, Diagnostic> {
        // Each `.f`, `->f` or `[i]` puts the expression so far one level deeper.
        let mut levels = 0;
        loop {
            if self.peek_is_sym("->")? || self.peek_is_sym(".")? || self.peek_is_sym("[")? {
                self.enter("expression")?;
                levels += 1;
            }
            if self.eat_sym("->")? || self.peek_is_sym(".")? {
                let arrow = !self.eat_sym(".")?;
                let t = self.next()?;
                let field = match t.kind {
                    TokenKind::Ident(f) => f,
                    TokenKind::Int(n) if !arrow => n.to_string(),
                    _ => {
                        return Err(Diagnostic::new(
                            t.span,
                            format!(
                                "syntax error, unexpected {}, expecting identifier",
                                t.kind.describe()
                            ),
                        ))
                    }
                };
                let span = Span::new(e.span.start, t.span.end);
                e = Expr::new(
                    ExprKind::Field {
                        expr: Box::new(e),
                        field,
                        arrow,
                    },
                    span,
                );
            } else if self.eat_sym("[")? {
                let index = self.expr()?;
                let close = self.expect_sym("]")?;
                let span = Span::new(e.span.start, close.span.end);
                e = Expr::new(
                    ExprKind::Index {
                        expr: Box::new(e),
                        index: Box::new(index),
                    },
                    span,
                );
            } else if let TokenKind::Sym(sym @ ("++" | "--")) = self.peek()?.kind {
                if !matches!(e.kind, ExprKind::Var(_) | ExprKind::Map(_)) {
                    self.leave(levels);
                    return Ok(e);
                }
                let t = self.next()?;
                e = self.inc_dec(e, sym == "++", true, t.span)?;
            } else {
                self.leave(levels);
                return Ok(e);
            }
        }
    }
}

enum AssignTarget {
    Map(MapRef),
    Var(String, #[allow(dead_code)] Span),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(src: &str) -> ast::Program {
        match parse(src) {
            Ok(p) => p,
            Err(e) => panic!("{}", e.render("t", src)),
        }
    }

    /// Render an expression in fully parenthesised form to check precedence.
    fn show(e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(v) => v.to_string(),
            ExprKind::Str(s) => format!("{s:?}"),
            ExprKind::Positional(n) => format!("${n}"),
            ExprKind::Builtin(b) => b.to_string(),
            ExprKind::Ident(b) => b.clone(),
            ExprKind::Var(v) => format!("${v}"),
            ExprKind::Map(m) => format!(
                "@{}[{}]",
                m.name,
                m.keys.iter().map(show).collect::<Vec<_>>().join(",")
            ),
            ExprKind::Call { name, args, .. } => format!(
                "{name}({})",
                args.iter().map(show).collect::<Vec<_>>().join(",")
            ),
            ExprKind::Unary { op, expr } => format!("({op:?} {})", show(expr)),
            ExprKind::Binary { op, lhs, rhs } => {
                format!("({} {op:?} {})", show(lhs), show(rhs))
            }
            ExprKind::Ternary { cond, then, els } => {
                format!("({} ? {} : {})", show(cond), show(then), show(els))
            }
            ExprKind::Field { expr, field, arrow } => {
                format!("{}{}{field}", show(expr), if *arrow { "->" } else { "." })
            }
            ExprKind::Index { expr, index } => format!("{}[{}]", show(expr), show(index)),
            ExprKind::Cast { ty, expr } => format!("(cast {ty} {})", show(expr)),
            ExprKind::Tuple(items) => format!(
                "({})",
                items.iter().map(show).collect::<Vec<_>>().join(", ")
            ),
            ExprKind::Sizeof(t) => format!("sizeof({t})"),
            ExprKind::IncDec { target, inc, post } => {
                let op = if *inc { "++" } else { "--" };
                if *post {
                    format!("({}{op})", show(target))
                } else {
                    format!("({op}{})", show(target))
                }
            }
        }
    }

    fn pe(src: &str) -> String {
        show(&parse_expr(src).unwrap())
    }

    #[test]
    fn precedence() {
        assert_eq!(pe("1 + 2 * 3"), "(1 Add (2 Mul 3))");
        assert_eq!(pe("1 - 2 - 3"), "((1 Sub 2) Sub 3)");
        assert_eq!(pe("a || b && c"), "(a Or (b And c))");
        assert_eq!(pe("1 | 2 ^ 3 & 4"), "(1 BitOr (2 BitXor (3 BitAnd 4)))");
        assert_eq!(pe("1 == 2 < 3"), "(1 Eq (2 Lt 3))");
        assert_eq!(pe("1 << 2 + 3"), "(1 Shl (2 Add 3))");
        assert_eq!(
            pe("pid == 1 ? 2 : 3 ? 4 : 5"),
            "((pid Eq 1) ? 2 : (3 ? 4 : 5))"
        );
        assert_eq!(pe("!a == b"), "((Not a) Eq b)");
        assert_eq!(pe("-1"), "-1");
        assert_eq!(pe("-pid * 2"), "((Neg pid) Mul 2)");
        assert_eq!(pe("*$p + 1"), "((Deref $p) Add 1)");
        assert_eq!(pe("(1 + 2) * 3"), "((1 Add 2) Mul 3)");
    }

    #[test]
    fn postfix_casts_calls() {
        assert_eq!(
            pe("((struct sock *)arg0)->__sk_common.skc_num"),
            "(cast struct sock * arg0)->__sk_common.skc_num"
        );
        assert_eq!(pe("(uint32)x"), "(cast uint32 x)");
        assert_eq!(pe("(unsigned int)pid"), "(cast unsigned int pid)");
        assert_eq!(
            pe("(struct task_struct *)curtask"),
            "(cast struct task_struct * curtask)"
        );
        assert_eq!(pe("(x)"), "x");
        assert_eq!(pe("args->argv[0]"), "args->argv[0]");
        assert_eq!(pe("str(args->filename, 16)"), "str(args->filename,16)");
        assert_eq!(pe("@m[1, comm]"), "@m[1,comm]");
        assert_eq!(pe("@[pid]"), "@[pid]");
        assert_eq!(pe("kstack"), "kstack");
        assert_eq!(pe("kstack(5)"), "kstack(5)");
        assert_eq!(pe("sizeof(struct  sock)"), "sizeof(struct sock)");
        assert_eq!(pe("(1, \"a\")"), "(1, \"a\")");
        assert_eq!(pe("$t.0"), "$t.0");
        assert_eq!(pe("exit()"), "exit()");
        assert_eq!(pe("TCP_CLOSE"), "TCP_CLOSE");
        assert!(matches!(
            parse_expr("TCP_CLOSE").unwrap().kind,
            ExprKind::Ident(_)
        ));
    }

    #[test]
    fn probes_and_attach_points() {
        let prog = p("t:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /pid == 1/ { @[probe] = count(); }\n\
                     uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc {}\n\
                     BEGIN { } END{}\n\
                     k:tcp_*{} kr:vfs_read {} f:vmlinux:tcp_connect{} fr:x {} i:s:1 {} p:hz:99 {} ur:/bin/bash:readline {}\n\
                     s:cpu-clock:1000 {} h:cache-misses {} rt:sched_switch {} fentry:a {} fexit:b {}");
        let a: Vec<(ProbeKind, String, Vec<String>)> = prog
            .probes
            .iter()
            .flat_map(|p| p.attach.iter())
            .map(|a| (a.kind, a.text.clone(), a.parts.clone()))
            .collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            a[0],
            (
                ProbeKind::Tracepoint,
                "tracepoint:syscalls:sys_enter_read".into(),
                s(&["syscalls", "sys_enter_read"])
            )
        );
        assert_eq!(a[1].1, "tracepoint:syscalls:sys_enter_write");
        assert_eq!(
            a[2],
            (
                ProbeKind::Uprobe,
                "uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc".into(),
                s(&["/lib/x86_64-linux-gnu/libc.so.6", "malloc"])
            )
        );
        assert_eq!(a[3], (ProbeKind::Begin, "BEGIN".into(), vec![]));
        assert_eq!(a[4], (ProbeKind::End, "END".into(), vec![]));
        assert_eq!(a[5].1, "kprobe:tcp_*");
        assert_eq!(a[6].1, "kretprobe:vfs_read");
        assert_eq!(
            a[7],
            (
                ProbeKind::Kfunc,
                "kfunc:vmlinux:tcp_connect".into(),
                s(&["vmlinux", "tcp_connect"])
            )
        );
        assert_eq!(a[8].1, "kretfunc:x");
        assert_eq!(
            a[9],
            (ProbeKind::Interval, "interval:s:1".into(), s(&["s", "1"]))
        );
        assert_eq!(a[10].1, "profile:hz:99");
        assert_eq!(a[11].1, "uretprobe:/bin/bash:readline");
        assert_eq!(a[12].1, "software:cpu-clock:1000");
        assert_eq!(a[13].1, "hardware:cache-misses");
        assert_eq!(a[14].1, "rawtracepoint:sched_switch");
        assert_eq!(a[15].0, ProbeKind::Kfunc);
        assert_eq!(a[16].0, ProbeKind::Kretfunc);
        assert!(prog.probes[0].predicate.is_some());
        assert_eq!(prog.probes[0].attach.len(), 2);
    }

    #[test]
    fn predicate_with_division() {
        let prog = p("kprobe:f / pid / 2 == 1 / { }");
        let pred = prog.probes[0].predicate.as_ref().unwrap();
        assert_eq!(show(pred), "((pid Div 2) Eq 1)");
        // `/` ends an attach point except inside a uprobe's path.
        let prog = p("uprobe:/bin/bash:readline/pid/{ }");
        assert_eq!(prog.probes[0].attach[0].text, "uprobe:/bin/bash:readline");
        assert!(prog.probes[0].predicate.is_some());
        let prog = p("BEGIN/1/{} kprobe:f/pid == 1/{}");
        assert_eq!(prog.probes[0].attach[0].text, "BEGIN");
        assert_eq!(prog.probes[1].attach[0].text, "kprobe:f");
        assert!(prog.probes[1].predicate.is_some());
    }

    #[test]
    fn statements() {
        let prog = p("BEGIN { $x = 1; if ($x > 0) { $x++; } else if ($x < 0) { $x--; } else { $x = 2; } \
                      unroll(3) { $x = $x * 2; } @r = $x > 4 ? 1 : 0; @c[1] += 2; @d++; ++@e; $x <<= 1; \
                      delete(@c[1]); return; printf(\"x\") }");
        let body = &prog.probes[0].body;
        assert!(matches!(body[0].kind, StmtKind::VarAssign { .. }));
        match &body[1].kind {
            StmtKind::If { then, els, .. } => {
                assert!(matches!(
                    then[0].kind,
                    StmtKind::VarCompound { op: BinOp::Add, .. }
                ));
                assert!(matches!(els[0].kind, StmtKind::If { .. }));
            }
            k => panic!("{k:?}"),
        }
        assert!(matches!(body[2].kind, StmtKind::Unroll { count: 3, .. }));
        assert!(matches!(body[3].kind, StmtKind::MapAssign { .. }));
        assert!(matches!(
            body[4].kind,
            StmtKind::MapCompound { op: BinOp::Add, .. }
        ));
        assert!(matches!(
            body[5].kind,
            StmtKind::MapCompound { op: BinOp::Add, .. }
        ));
        assert!(matches!(
            body[6].kind,
            StmtKind::MapCompound { op: BinOp::Add, .. }
        ));
        assert!(matches!(
            body[7].kind,
            StmtKind::VarCompound { op: BinOp::Shl, .. }
        ));
        assert!(matches!(body[8].kind, StmtKind::Expr(_)));
        assert!(matches!(body[9].kind, StmtKind::Return));
        assert!(matches!(body[10].kind, StmtKind::Expr(_)));
        assert_eq!(body.len(), 11);
    }

    #[test]
    fn map_statement_that_is_an_expression() {
        let prog = p("BEGIN { @x[1] == 2; @y; }");
        assert!(matches!(prog.probes[0].body[0].kind, StmtKind::Expr(_)));
        assert!(matches!(prog.probes[0].body[1].kind, StmtKind::Expr(_)));
    }

    #[test]
    fn skips_preprocessor_and_struct_definitions() {
        let prog = p("#!/usr/bin/env bpftrace\n#include <linux/sched.h>\nstruct cfs_rq {\n\tstruct load_weight load;\n\tunsigned long x[4];\n};\n\
                      BEGIN { }\n");
        assert_eq!(prog.probes.len(), 1);
    }

    #[test]
    fn spans_cover_nodes() {
        let src = "BEGIN { @x[pid] = count(); }";
        let prog = p(src);
        let st = &prog.probes[0].body[0];
        assert_eq!(&src[st.span.start..st.span.end], "@x[pid] = count()");
        match &st.kind {
            StmtKind::MapAssign { map, value } => {
                assert_eq!(&src[map.span.start..map.span.end], "@x[pid]");
                assert_eq!(&src[value.span.start..value.span.end], "count()");
            }
            _ => panic!(),
        }
        assert_eq!(prog.probes[0].span, Span::new(0, src.len()));
    }

    #[test]
    fn errors() {
        let e = parse("BEGIN { printf(\"x\") }}").unwrap_err();
        assert_eq!(e.message, "syntax error, unexpected }");
        let e = parse("foo:bar { }").unwrap_err();
        assert_eq!(e.message, "unknown probe type 'foo'");
        assert_eq!(e.span, Span::new(0, 3));
        let e = parse("BEGIN { $x = ; }").unwrap_err();
        assert_eq!(e.message, "syntax error, unexpected ;");
        let e = parse("BEGIN { printf(\"x) }").unwrap_err();
        assert_eq!(e.message, "unterminated string");
        let e = parse("BEGIN { 1 2 }").unwrap_err();
        assert_eq!(e.message, "syntax error, unexpected integer");
        let e = parse("BEGIN {").unwrap_err();
        assert_eq!(e.message, "syntax error, unexpected end of file");
        let e = parse("BEGIN").unwrap_err();
        assert_eq!(
            e.message,
            "syntax error, unexpected end of file, expecting {"
        );
    }

    #[test]
    fn increment_and_decrement_are_expressions() {
        assert_eq!(pe("$x++"), "($x++)");
        assert_eq!(pe("++$x"), "(++$x)");
        assert_eq!(pe("@m[1]--"), "(@m[1]--)");
        assert_eq!(pe("--@m + 1"), "((--@m[]) Add 1)");
        assert_eq!(pe("avg($a++)"), "avg(($a++))");
        let e = parse_expr("++1").unwrap_err();
        assert_eq!(
            e.message,
            "The ++ operator must be applied to a map or variable"
        );
        // As statements they stay compound assignments.
        let prog = p("BEGIN { $x = 1; $x++; --@y; }");
        assert!(matches!(
            prog.probes[0].body[1].kind,
            StmtKind::VarCompound { op: BinOp::Add, .. }
        ));
        assert!(matches!(
            prog.probes[0].body[2].kind,
            StmtKind::MapCompound { op: BinOp::Sub, .. }
        ));
    }

    fn printf_arg(prog: &ast::Program, i: usize) -> String {
        match &prog.probes[0].body[0].kind {
            StmtKind::Expr(Expr {
                kind: ExprKind::Call { args, .. },
                ..
            }) => show(&args[i]),
            k => panic!("{k:?}"),
        }
    }

    #[test]
    fn object_like_defines_expand_where_used() {
        let src = "#define _UNDERSCORE 314\n#define TWICE (_UNDERSCORE * 2)\n#define EPERM 99\n#define F(x) x\n\
                   BEGIN { printf(\"%d %d %d\\n\", _UNDERSCORE, TWICE, EPERM); unroll(_UNDERSCORE2) {} }\n";
        let src = src.replace("_UNDERSCORE2", "TWO");
        let src = format!("#define TWO 2\n{src}");
        let prog = p(&src);
        assert_eq!(printf_arg(&prog, 1), "314");
        assert_eq!(printf_arg(&prog, 2), "(314 Mul 2)");
        // A script's definition shadows the built-in constant of the same name.
        assert_eq!(printf_arg(&prog, 3), "99");
        assert!(matches!(
            prog.probes[0].body[1].kind,
            StmtKind::Unroll { count: 2, .. }
        ));
        // The body's nodes point into the #define line.
        match &prog.probes[0].body[0].kind {
            StmtKind::Expr(Expr {
                kind: ExprKind::Call { args, .. },
                ..
            }) => assert_eq!(&src[args[1].span.start..args[1].span.end], "314"),
            k => panic!("{k:?}"),
        }
        // Function-like macros are not expanded; a self-reference is not expanded again.
        assert!(!scan_defines(&src).contains_key("F"));
        let prog = p("#define SELF SELF\nBEGIN { printf(\"%d\", SELF); }");
        assert_eq!(printf_arg(&prog, 1), "SELF");
        let e = parse("#define EMPTY\nBEGIN { printf(\"%d\", EMPTY); }").unwrap_err();
        assert_eq!(
            e.message,
            "'EMPTY' is defined without a value (#define EMPTY)"
        );
    }

    #[test]
    fn positional_parameters_in_attach_points_and_unroll() {
        let params = ["IN".to_string(), "10".to_string(), "hz".to_string()];
        let prog = parse_with_params(
            "BEG$1 { unroll($2) { } } interval:ms:$2, profile:$3:99 { }",
            &params,
        )
        .unwrap();
        assert_eq!(prog.probes[0].attach[0].kind, ProbeKind::Begin);
        assert!(matches!(
            prog.probes[0].body[0].kind,
            StmtKind::Unroll { count: 10, .. }
        ));
        assert_eq!(prog.probes[1].attach[0].parts, ["ms", "10"]);
        assert_eq!(prog.probes[1].attach[1].parts, ["hz", "99"]);
        let e = parse_with_params("BEGIN { unroll($1) { } }", &["x".to_string()]).unwrap_err();
        assert_eq!(
            e.message,
            "unroll count: positional parameter $1 is not a number: 'x'"
        );
    }

    #[test]
    fn integers_in_c_bases() {
        assert_eq!(parse_int_text("123"), Some(123));
        assert_eq!(parse_int_text("0775"), Some(0o775));
        assert_eq!(parse_int_text("0x123"), Some(0x123));
        assert_eq!(parse_int_text("-0x10"), Some(-16));
        assert_eq!(parse_int_text("0"), Some(0));
        assert_eq!(parse_int_text("09"), None);
        assert_eq!(parse_int_text("hello"), None);
    }
}
