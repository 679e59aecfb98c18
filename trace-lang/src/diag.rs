//! Diagnostics: one located error message, rendered clang/bpftrace style with the
//! offending source line and a `^~~~` marker under the span.

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
}
