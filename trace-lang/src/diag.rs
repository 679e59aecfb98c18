//! Diagnostics: one located error message, rendered clang/bpftrace style with the
//! offending source line and a `^~~~` marker under the span; [`Diagnostics`], every
//! error of a script (and the warnings found on the way), rendered one after the other.

use std::fmt;

use crate::span::Span;

/// A located error in a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub span: Span,
    pub message: String,
}

impl Diagnostic {
    pub fn new(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            span,
            message: message.into(),
        }
    }

    /// 1-based (line, column) of the span start in `src`.
    pub fn line_col(&self, src: &str) -> (usize, usize) {
        line_col(src, self.span.start)
    }

    /// Render as
    /// `FILE:LINE:COL: error: MESSAGE\n<source line>\n<marker>\n`
    /// where the marker is `^` under the span start followed by `~` up to the end of
    /// the span (on that line). Tabs in the line are repeated in the marker's prefix.
    pub fn render(&self, file: &str, src: &str) -> String {
        let start = clamp_boundary(src, self.span.start);
        let (line, col) = line_col(src, start);
        let line_start = src[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
        let line_end = src[line_start..]
            .find('\n')
            .map(|i| line_start + i)
            .unwrap_or(src.len());
        let text = src[line_start..line_end].trim_end_matches('\r');
        let mut marker = String::new();
        for c in src[line_start..start].chars() {
            marker.push(if c == '\t' { '\t' } else { ' ' });
        }
        marker.push('^');
        let end = clamp_boundary(src, self.span.end.min(line_end).max(start));
        let width = src[start..end].chars().count();
        for _ in 1..width {
            marker.push('~');
        }
        format!(
            "{file}:{line}:{col}: error: {}\n{text}\n{marker}\n",
            self.message
        )
    }
}

/// 1-based (line, column) of a byte offset; the column counts characters.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = clamp_boundary(src, offset);
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

fn clamp_boundary(src: &str, mut offset: usize) -> usize {
    offset = offset.min(src.len());
    while !src.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", self.message)
    }
}

impl std::error::Error for Diagnostic {}

/// At most this many errors are reported for one script (the rest are counted).
pub const MAX_ERRORS: usize = 20;

/// Every error found in a script, in the order found (never empty), with the warnings
/// printed before them. Derefs to the first error, so code that handles one
/// [`Diagnostic`] keeps working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics {
    /// The errors, at most [`MAX_ERRORS`], first one first.
    pub errors: Vec<Diagnostic>,
    /// How many more errors were found past [`MAX_ERRORS`].
    pub more: usize,
    /// Warnings found before the analysis stopped (printed before the errors, as text).
    pub warnings: Vec<String>,
}

impl Diagnostics {
    /// `errors` (first [`MAX_ERRORS`] kept), or `None` when there are none.
    pub fn from_errors(mut errors: Vec<Diagnostic>) -> Option<Self> {
        if errors.is_empty() {
            return None;
        }
        let more = errors.len().saturating_sub(MAX_ERRORS);
        errors.truncate(MAX_ERRORS);
        Some(Diagnostics {
            errors,
            more,
            warnings: Vec::new(),
        })
    }

    /// The same errors, with `warnings` printed before them.
    pub fn with_warnings(mut self, mut warnings: Vec<String>) -> Self {
        warnings.append(&mut self.warnings);
        self.warnings = warnings;
        self
    }

    /// Every error rendered as [`Diagnostic::render`] does, one after the other, and
    /// a last line when some were left out.
    pub fn render(&self, file: &str, src: &str) -> String {
        let mut out: String = self.errors.iter().map(|d| d.render(file, src)).collect();
        if self.more > 0 {
            out.push_str(&format!(
                "{file}: error: too many errors ({} more not shown)\n",
                self.more
            ));
        }
        out
    }
}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics {
            errors: vec![d],
            more: 0,
            warnings: Vec::new(),
        }
    }
}

impl std::ops::Deref for Diagnostics {
    type Target = Diagnostic;
    fn deref(&self) -> &Diagnostic {
        &self.errors[0]
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_points_at_span() {
        let src = "BEGIN {\n\tfoo(1);\n}\n";
        let start = src.find("foo").unwrap();
        let d = Diagnostic::new(Span::new(start, start + 3), "Unknown function: foo");
        assert_eq!(
            d.render("x.bt", src),
            "x.bt:2:2: error: Unknown function: foo\n\tfoo(1);\n\t^~~\n"
        );
    }

    #[test]
    fn render_empty_span_and_eof() {
        let src = "BEGIN {";
        let d = Diagnostic::new(Span::new(7, 7), "syntax error, unexpected end of file");
        assert_eq!(
            d.render("s", src),
            "s:1:8: error: syntax error, unexpected end of file\nBEGIN {\n       ^\n"
        );
    }

    #[test]
    fn diagnostics_render_each_error_and_the_overflow() {
        let src = "BEGIN { a; b; }";
        let at = |w: &str| Span::new(src.find(w).unwrap(), src.find(w).unwrap() + 1);
        let mut errors = vec![
            Diagnostic::new(at("a"), "first"),
            Diagnostic::new(at("b"), "second"),
        ];
        let two = Diagnostics::from_errors(errors.clone()).unwrap();
        assert_eq!(two.message, "first");
        assert_eq!(
            two.render("x", src),
            "x:1:9: error: first\nBEGIN { a; b; }\n        ^\n\
             x:1:12: error: second\nBEGIN { a; b; }\n           ^\n"
        );
        errors.extend((0..MAX_ERRORS).map(|_| Diagnostic::new(at("b"), "again")));
        let many = Diagnostics::from_errors(errors).unwrap();
        assert_eq!(many.errors.len(), MAX_ERRORS);
        assert!(many
            .render("x", src)
            .ends_with("x: error: too many errors (2 more not shown)\n"));
        assert!(Diagnostics::from_errors(Vec::new()).is_none());
    }
}
