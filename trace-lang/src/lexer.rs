//! The lexer: turns script text into tokens with spans.
//!
//! It is driven on demand by the parser because bpftrace's grammar is context
//! sensitive: at the start of a probe the parser asks for raw attach-point text
//! ([`Lexer::attach_point`]), which may contain `/`, `*`, `:` and `.`; everywhere
//! else ordinary tokens are produced by [`Lexer::next_token`]. Whitespace, `//` and
//! `/* */` comments and preprocessor lines (`#include`, `#ifndef`, `#!` ...) are
//! skipped.

use crate::diag::Diagnostic;
use crate::span::Span;

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenKind {
    /// An identifier or keyword (`if`, `else`, `unroll`, `return`, `sizeof`, builtins).
    Ident(String),
    /// An integer literal (values above `i64::MAX` keep their bits).
    Int(i64),
    /// A string literal with escapes decoded.
    Str(String),
    /// `@name`, or `@` alone (name "").
    Map(String),
    /// `$name`
    Var(String),
    /// `$1`, `$2`, ...
    Positional(u32),
    /// `$#`
    ParamCount,
    /// An operator or punctuation, e.g. `"->"`, `"+="`, `"{"`.
    Sym(&'static str),
    /// End of input.
    Eof,
}

impl TokenKind {
    /// How bpftrace names the token in `syntax error, unexpected X`.
    pub fn describe(&self) -> String {
        match self {
            TokenKind::Ident(_) => "identifier".into(),
            TokenKind::Int(_) => "integer".into(),
            TokenKind::Str(_) => "string".into(),
            TokenKind::Map(_) => "map".into(),
            TokenKind::Var(_) => "variable".into(),
            TokenKind::Positional(_) | TokenKind::ParamCount => "positional parameter".into(),
            TokenKind::Sym(s) => (*s).to_string(),
            TokenKind::Eof => "end of file".into(),
        }
    }
}

/// A token and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

/// Operators, longest first so that maximal munch works by trying them in order.
const SYMS: &[&str] = &[
    "<<=", ">>=", "->", "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "==", "!=",
    "<=", ">=", "&&", "||", "<<", ">>", "!", "~", "?", ":", ";", ",", ".", "(", ")", "{", "}", "[",
    "]", "/", "*", "+", "-", "%", "&", "|", "^", "<", ">", "=",
];

/// An on-demand lexer over a script. Cloning it is cheap (used for lookahead).
#[derive(Debug, Clone)]
pub struct Lexer<'a> {
    src: &'a str,
    pos: usize,
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_'
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer { src, pos: 0 }
    }

    /// The byte offset the next token will be read from (before trivia).
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Move back (or forward) to a byte offset, e.g. the start of a peeked token.
    pub fn set_pos(&mut self, pos: usize) {
        self.pos = pos;
    }

    pub fn src(&self) -> &'a str {
        self.src
    }

    fn peek_byte(&self, off: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + off).copied()
    }

    fn at_line_start(&self) -> bool {
        let before = &self.src.as_bytes()[..self.pos];
        for &b in before.iter().rev() {
            match b {
                b'\n' => return true,
                b' ' | b'\t' | b'\r' => continue,
                _ => return false,
            }
        }
        true
    }

    /// Skip whitespace, comments and preprocessor lines.
    pub fn skip_trivia(&mut self) -> Result<(), Diagnostic> {
        loop {
            match self.peek_byte(0) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) => self.pos += 1,
                Some(b'/') if self.peek_byte(1) == Some(b'/') => {
                    while let Some(c) = self.peek_byte(0) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                Some(b'/') if self.peek_byte(1) == Some(b'*') => {
                    let start = self.pos;
                    match self.src[self.pos + 2..].find("*/") {
                        Some(i) => self.pos += 2 + i + 2,
                        None => {
                            return Err(Diagnostic::new(
                                Span::new(start, start + 2),
                                "end of file during comment",
                            ))
                        }
                    }
                }
                Some(b'#') if self.at_line_start() => {
                    // A preprocessor line (with `\` continuations) or a `#!` line.
                    while let Some(c) = self.peek_byte(0) {
                        if c == b'\n' {
                            let prev = self.src.as_bytes()[..self.pos]
                                .iter()
                                .rev()
                                .find(|&&b| b != b'\r');
                            if prev == Some(&b'\\') {
                                self.pos += 1;
                                continue;
                            }
                            break;
                        }
                        self.pos += 1;
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// The offset of the end of the last non-whitespace text, where an
    /// "unexpected end of file" is reported.
    fn eof_pos(&self) -> usize {
        self.src.trim_end().len()
    }

    /// Is the next thing (after trivia) the start of an identifier-like word?
    /// Returns the word without consuming it.
    pub fn peek_word(&mut self) -> Result<Option<&'a str>, Diagnostic> {
        self.skip_trivia()?;
        let bytes = self.src.as_bytes();
        let start = self.pos;
        if start >= bytes.len() || !is_ident_start(bytes[start]) {
            return Ok(None);
        }
        let mut end = start;
        while end < bytes.len() && is_ident_char(bytes[end]) {
            end += 1;
        }
        Ok(Some(&self.src[start..end]))
    }

    /// Read raw attach point text at the start of a probe: characters up to
    /// whitespace, `,` or `{` (a `"quoted"` section may contain anything but a
    /// newline). Returns `None` (consuming nothing) if the next character cannot
    /// start an attach point.
    pub fn attach_point(&mut self) -> Result<Option<(String, Span)>, Diagnostic> {
        self.skip_trivia()?;
        let bytes = self.src.as_bytes();
        let start = self.pos;
        if start >= bytes.len() || !is_ident_start(bytes[start]) {
            return Ok(None);
        }
        let mut text = String::new();
        let mut i = start;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_whitespace() || c == b',' || c == b'{' {
                break;
            }
            if c == b'/' && matches!(bytes.get(i + 1), Some(b'/' | b'*')) {
                // A comment right after the attach point.
                break;
            }
            if c == b'/' && !in_uprobe_path(&text) {
                // Only a uprobe's binary path may contain `/`; elsewhere it starts
                // the predicate, e.g. `kprobe:f/pid == 1/`.
                break;
            }
            if c == b'"' {
                let qstart = i;
                i += 1;
                loop {
                    match bytes.get(i) {
                        None | Some(b'\n') => {
                            return Err(Diagnostic::new(
                                Span::new(qstart, i),
                                "unterminated string",
                            ))
                        }
                        Some(b'"') => {
                            i += 1;
                            break;
                        }
                        // `\"` and `\\` stand for themselves (a USDT probe name may
                        // contain quotes: `usdt:BIN:test:"\"probe1\""`).
                        Some(b'\\') if matches!(bytes.get(i + 1), Some(b'"' | b'\\')) => {
                            text.push(bytes[i + 1] as char);
                            i += 2;
                        }
                        Some(&c) if c.is_ascii_control() => {
                            return Err(control_in_attach_point(i, c))
                        }
                        Some(_) => {
                            let ch = self.src[i..].chars().next().unwrap();
                            text.push(ch);
                            i += ch.len_utf8();
                        }
                    }
                }
                continue;
            }
            if c.is_ascii_control() {
                // A NUL or other control byte names no probe (and cannot be a section
                // or file name further down).
                return Err(control_in_attach_point(i, c));
            }
            let ch = self.src[i..].chars().next().unwrap();
            text.push(ch);
            i += ch.len_utf8();
        }
        self.pos = i;
        Ok(Some((text, Span::new(start, i))))
    }

    /// Read the next ordinary token.
    pub fn next_token(&mut self) -> Result<Token, Diagnostic> {
        self.skip_trivia()?;
        let bytes = self.src.as_bytes();
        let start = self.pos;
        if start >= bytes.len() {
            let p = self.eof_pos();
            return Ok(Token {
                kind: TokenKind::Eof,
                span: Span::new(p, p),
            });
        }
        let c = bytes[start];
        let tok = |kind, end| Token {
            kind,
            span: Span::new(start, end),
        };
        if is_ident_start(c) {
            let mut end = start;
            while end < bytes.len() && is_ident_char(bytes[end]) {
                end += 1;
            }
            self.pos = end;
            return Ok(tok(TokenKind::Ident(self.src[start..end].to_string()), end));
        }
        if c.is_ascii_digit() {
            return self.number();
        }
        if c == b'"' {
            return self.string();
        }
        if c == b'@' {
            let mut end = start + 1;
            while end < bytes.len() && is_ident_char(bytes[end]) {
                end += 1;
            }
            self.pos = end;
            return Ok(tok(
                TokenKind::Map(self.src[start + 1..end].to_string()),
                end,
            ));
        }
        if c == b'$' {
            let next = bytes.get(start + 1).copied();
            match next {
                Some(b'#') => {
                    self.pos = start + 2;
                    return Ok(tok(TokenKind::ParamCount, start + 2));
                }
                Some(d) if d.is_ascii_digit() => {
                    let mut end = start + 1;
                    while end < bytes.len() && bytes[end].is_ascii_digit() {
                        end += 1;
                    }
                    self.pos = end;
                    let n: u32 = self.src[start + 1..end].parse().map_err(|_| {
                        Diagnostic::new(Span::new(start, end), "invalid positional parameter")
                    })?;
                    return Ok(tok(TokenKind::Positional(n), end));
                }
                Some(d) if is_ident_start(d) => {
                    let mut end = start + 1;
                    while end < bytes.len() && is_ident_char(bytes[end]) {
                        end += 1;
                    }
                    self.pos = end;
                    return Ok(tok(
                        TokenKind::Var(self.src[start + 1..end].to_string()),
                        end,
                    ));
                }
                _ => {
                    return Err(Diagnostic::new(
                        Span::new(start, start + 1),
                        "syntax error, unexpected $",
                    ))
                }
            }
        }
        for s in SYMS {
            if self.src[start..].starts_with(s) {
                self.pos = start + s.len();
                return Ok(tok(TokenKind::Sym(s), self.pos));
            }
        }
        let ch = self.src[start..].chars().next().unwrap();
        Err(Diagnostic::new(
            Span::new(start, start + ch.len_utf8()),
            format!("invalid character '{ch}'"),
        ))
    }

    fn number(&mut self) -> Result<Token, Diagnostic> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut end = start;
        while end < bytes.len() && (is_ident_char(bytes[end])) {
            end += 1;
        }
        self.pos = end;
        let span = Span::new(start, end);
        let text: String = self.src[start..end].chars().filter(|&c| c != '_').collect();
        let bad = || Diagnostic::new(span, format!("invalid integer: {}", &self.src[start..end]));
        let value: u64 =
            if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
                u64::from_str_radix(hex, 16).map_err(|_| bad())?
            } else if text.len() > 1
                && text.starts_with('0')
                && text.bytes().all(|c| c.is_ascii_digit())
            {
                // C-style octal, e.g. `0755`.
                u64::from_str_radix(&text[1..], 8).map_err(|_| bad())?
            } else if let Some((mant, exp)) = text.split_once(['e', 'E']) {
                let m: u64 = mant.parse().map_err(|_| bad())?;
                let e: u32 = exp.parse().map_err(|_| bad())?;
                10u64
                    .checked_pow(e)
                    .and_then(|p| p.checked_mul(m))
                    .ok_or_else(bad)?
            } else {
                text.parse().map_err(|_| bad())?
            };
        Ok(Token {
            kind: TokenKind::Int(value as i64),
            span,
        })
    }

    fn string(&mut self) -> Result<Token, Diagnostic> {
        let bytes = self.src.as_bytes();
        let start = self.pos;
        let mut i = start + 1;
        let mut out = String::new();
        let unterminated = |i: usize| Diagnostic::new(Span::new(start, i), "unterminated string");
        loop {
            match bytes.get(i) {
                None | Some(b'\n') => return Err(unterminated(i)),
                Some(b'"') => {
                    i += 1;
                    break;
                }
                Some(b'\\') => {
                    let esc_start = i;
                    i += 1;
                    match bytes.get(i) {
                        None => return Err(unterminated(i)),
                        Some(b'n') => out.push('\n'),
                        Some(b't') => out.push('\t'),
                        Some(b'r') => out.push('\r'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'"') => out.push('"'),
                        Some(b'\'') => out.push('\''),
                        Some(b'x') => {
                            let mut v: u32 = 0;
                            let mut n = 0;
                            while n < 2 {
                                match bytes.get(i + 1) {
                                    Some(d) if d.is_ascii_hexdigit() => {
                                        v = v * 16 + (*d as char).to_digit(16).unwrap();
                                        i += 1;
                                        n += 1;
                                    }
                                    _ => break,
                                }
                            }
                            if n == 0 {
                                return Err(Diagnostic::new(
                                    Span::new(esc_start, i + 1),
                                    "invalid escape character '\\x'",
                                ));
                            }
                            out.push(char::from_u32(v).unwrap());
                        }
                        Some(d @ b'0'..=b'7') => {
                            let mut v: u32 = (*d - b'0') as u32;
                            let mut n = 1;
                            while n < 3 {
                                match bytes.get(i + 1) {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + (*d - b'0') as u32;
                                        i += 1;
                                        n += 1;
                                    }
                                    _ => break,
                                }
                            }
                            if v > 0xff {
                                return Err(Diagnostic::new(
                                    Span::new(esc_start, i + 1),
                                    "octal escape sequence out of range",
                                ));
                            }
                            out.push(char::from_u32(v).unwrap());
                        }
                        Some(_) => {
                            let ch = self.src[i..].chars().next().unwrap();
                            return Err(Diagnostic::new(
                                Span::new(esc_start, i + ch.len_utf8()),
                                format!("invalid escape character '\\{ch}'"),
                            ));
                        }
                    }
                    i += 1;
                }
                Some(_) => {
                    let ch = self.src[i..].chars().next().unwrap();
                    out.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        self.pos = i;
        Ok(Token {
            kind: TokenKind::Str(out),
            span: Span::new(start, i),
        })
    }
}

fn control_in_attach_point(at: usize, byte: u8) -> Diagnostic {
    Diagnostic::new(
        Span::new(at, at + 1),
        format!("invalid character in attach point (control byte 0x{byte:02x})"),
    )
}

/// Is attach text read so far inside the path part of a uprobe-like provider
/// (`uprobe:/bin/bash` — exactly one `:` seen)?
fn in_uprobe_path(text: &str) -> bool {
    let mut parts = text.split(':');
    let provider = parts.next().unwrap_or("");
    matches!(provider, "uprobe" | "u" | "uretprobe" | "ur" | "usdt" | "U")
        && text.matches(':').count() == 1
}

/// Lex a whole text as ordinary tokens (no attach-point mode), ending with `Eof`.
pub fn tokenize(src: &str) -> Result<Vec<Token>, Diagnostic> {
    let mut lx = Lexer::new(src);
    let mut out = Vec::new();
    loop {
        let t = lx.next_token()?;
        let eof = t.kind == TokenKind::Eof;
        out.push(t);
        if eof {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<TokenKind> {
        tokenize(src).unwrap().into_iter().map(|t| t.kind).collect()
    }

    #[test]
    fn operators_maximal_munch() {
        use TokenKind::Sym;
        assert_eq!(
            kinds("<<= >>= -> ++ -- += == != <= && || << >> ! ~ ? : ; , . / % ^ |= &="),
            vec![
                Sym("<<="),
                Sym(">>="),
                Sym("->"),
                Sym("++"),
                Sym("--"),
                Sym("+="),
                Sym("=="),
                Sym("!="),
                Sym("<="),
                Sym("&&"),
                Sym("||"),
                Sym("<<"),
                Sym(">>"),
                Sym("!"),
                Sym("~"),
                Sym("?"),
                Sym(":"),
                Sym(";"),
                Sym(","),
                Sym("."),
                Sym("/"),
                Sym("%"),
                Sym("^"),
                Sym("|="),
                Sym("&="),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(
            kinds("1000000 1_000 0x1F 1e6 0 0755"),
            vec![
                TokenKind::Int(1_000_000),
                TokenKind::Int(1000),
                TokenKind::Int(31),
                TokenKind::Int(1_000_000),
                TokenKind::Int(0),
                TokenKind::Int(0o755),
                TokenKind::Eof
            ]
        );
        assert!(tokenize("12abc").is_err());
        assert!(tokenize("09").is_err());
    }

    #[test]
    fn strings_and_escapes() {
        assert_eq!(
            kinds(r#""a\n\t\\\"\0\x41\101z""#),
            vec![TokenKind::Str("a\n\t\\\"\0AAz".into()), TokenKind::Eof]
        );
        let e = tokenize("\"abc").unwrap_err();
        assert_eq!(e.message, "unterminated string");
        assert_eq!(e.span.start, 0);
    }

    #[test]
    fn maps_vars_positionals() {
        assert_eq!(
            kinds("@ @x $y $1 $# @a_1"),
            vec![
                TokenKind::Map("".into()),
                TokenKind::Map("x".into()),
                TokenKind::Var("y".into()),
                TokenKind::Positional(1),
                TokenKind::ParamCount,
                TokenKind::Map("a_1".into()),
                TokenKind::Eof
            ]
        );
    }

    #[test]
    fn comments_and_preprocessor() {
        let src =
            "#!/usr/bin/env bpftrace\n#include <linux/sched.h>\n  // c\n/* x\n y */ foo # bar";
        let toks = tokenize(src);
        // `#` not at line start is an invalid character.
        assert!(toks.is_err());
        let src = "#include <a.h>\n#define X \\\n  1\n/* x */ foo // c\n";
        assert_eq!(
            kinds(src),
            vec![TokenKind::Ident("foo".into()), TokenKind::Eof]
        );
        assert_eq!(
            tokenize("/* abc").unwrap_err().message,
            "end of file during comment"
        );
    }

    #[test]
    fn control_bytes_in_attach_points_are_errors() {
        for src in [
            "tracepoint:\0syscalls:x { }",
            "uprobe:\"/bin/a\x01b\":f { }",
        ] {
            let mut lx = Lexer::new(src);
            let e = lx.attach_point().unwrap_err();
            assert!(
                e.message.starts_with("invalid character in attach point"),
                "{src:?}"
            );
        }
    }

    #[test]
    fn attach_points() {
        let mut lx = Lexer::new("uprobe:/bin/bash:readline,k:tcp_* /pid/ {");
        let (t, s) = lx.attach_point().unwrap().unwrap();
        assert_eq!(t, "uprobe:/bin/bash:readline");
        assert_eq!(s, Span::new(0, 25));
        assert_eq!(lx.next_token().unwrap().kind, TokenKind::Sym(","));
        assert_eq!(lx.attach_point().unwrap().unwrap().0, "k:tcp_*");
        assert_eq!(lx.next_token().unwrap().kind, TokenKind::Sym("/"));
        let mut lx = Lexer::new("}");
        assert_eq!(lx.attach_point().unwrap(), None);
        // Escaped quotes and backslashes inside a quoted section.
        let mut lx = Lexer::new(r#"usdt:./bin:test:"\"probe1\"\\" {"#);
        assert_eq!(
            lx.attach_point().unwrap().unwrap().0,
            r#"usdt:./bin:test:"probe1"\"#
        );
    }

    #[test]
    fn spans() {
        let toks = tokenize("  foo->bar").unwrap();
        assert_eq!(toks[0].span, Span::new(2, 5));
        assert_eq!(toks[1].span, Span::new(5, 7));
        assert_eq!(toks[2].span, Span::new(7, 10));
        assert_eq!(toks[3].span, Span::new(10, 10));
    }
}
