//! The C printf engine of `printf()`: splits a format into conversions and formats each
//! argument as glibc's snprintf would (with bpftrace 0.17's argument widths and its `%r`
//! buffer conversions), byte-exact.

use crate::{until_nul, val_text, Val};

/// One conversion specification as C printf parses it.
struct CSpec {
    left: bool,
    plus: bool,
    space: bool,
    alt: bool,
    zero: bool,
    width: usize,
    precision: Option<usize>,
    length: &'static str,
    conv: u8,
}

/// Parse a C conversion spec starting just after a '%'. Returns it and the bytes consumed.
fn parse_c_spec(b: &[u8]) -> Option<(CSpec, usize)> {
    let mut i = 0;
    let mut s = CSpec {
        left: false,
        plus: false,
        space: false,
        alt: false,
        zero: false,
        width: 0,
        precision: None,
        length: "",
        conv: 0,
    };
    while i < b.len() {
        match b[i] {
            b'-' => s.left = true,
            b'+' => s.plus = true,
            b' ' => s.space = true,
            b'#' => s.alt = true,
            b'0' => s.zero = true,
            _ => break,
        }
        i += 1;
    }
    while i < b.len() && b[i].is_ascii_digit() {
        s.width = s
            .width
            .saturating_mul(10)
            .saturating_add((b[i] - b'0') as usize);
        i += 1;
    }
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let mut p = 0usize;
        while i < b.len() && b[i].is_ascii_digit() {
            p = p.saturating_mul(10).saturating_add((b[i] - b'0') as usize);
            i += 1;
        }
        s.precision = Some(p);
    }
    for l in ["hh", "h", "ll", "l", "q", "L", "j", "z", "Z", "t"] {
        if b[i..].starts_with(l.as_bytes()) {
            s.length = l;
            i += l.len();
            break;
        }
    }
    let conv = *b.get(i)?;
    if !b"diouxXcspn%".contains(&conv) {
        return None;
    }
    s.conv = conv;
    Some((s, i + 1))
}

/// bpftrace's printf tokens: `%-?[0-9]*(\.[0-9]+)?` then one of s, c, r, rx or
/// `(hh|h|l|ll|j|z|t)?[duoxXp]`. Returns the end of the match starting at `p` (a '%').
fn bpftrace_spec_end(b: &[u8], p: usize) -> Option<usize> {
    let mut i = p + 1;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    while b.get(i).is_some_and(|c| c.is_ascii_digit()) {
        i += 1;
    }
    if b.get(i) == Some(&b'.') {
        let mut j = i + 1;
        while b.get(j).is_some_and(|c| c.is_ascii_digit()) {
            j += 1;
        }
        if j == i + 1 {
            return None;
        }
        i = j;
    }
    let rest = &b[i..];
    if rest.starts_with(b"rx") || rest.starts_with(b"rh") {
        return Some(i + 2);
    }
    if rest.starts_with(b"s") || rest.starts_with(b"c") || rest.starts_with(b"r") {
        return Some(i + 1);
    }
    for l in ["hh", "h", "ll", "l", "j", "z", "t", ""] {
        if rest.starts_with(l.as_bytes()) {
            if let Some(c) = rest.get(l.len()) {
                if b"duoxXp".contains(c) {
                    return Some(i + l.len() + 1);
                }
            }
        }
    }
    None
}

/// bpftrace's `FormatString::split`: each part ends with one format token; a last part holds
/// any text after the last token.
fn split_format(fmt: &[u8]) -> Vec<&[u8]> {
    let mut parts = Vec::new();
    let mut last = 0;
    let mut p = 0;
    while p < fmt.len() {
        if fmt[p] == b'%' {
            if let Some(end) = bpftrace_spec_end(fmt, p) {
                parts.push(&fmt[last..end]);
                last = end;
                p = end;
                continue;
            }
        }
        p += 1;
    }
    if last != fmt.len() {
        parts.push(&fmt[last..]);
    }
    parts
}

/// Bit width the value is cast to before snprintf (bpftrace's `get_expected_argument_type`:
/// the first `%-?[0-9.]*(hh|h|l|ll|j|z|t)?[cduoxXp]` in the part). None: no cast.
fn expected_bits(part: &[u8]) -> Option<u32> {
    let mut p = 0;
    while p < part.len() {
        if part[p] == b'%' {
            let mut i = p + 1;
            if part.get(i) == Some(&b'-') {
                i += 1;
            }
            while part
                .get(i)
                .is_some_and(|c| c.is_ascii_digit() || *c == b'.')
            {
                i += 1;
            }
            let rest = &part[i..];
            for l in ["hh", "h", "ll", "l", "j", "z", "t", ""] {
                if rest.starts_with(l.as_bytes()) {
                    if let Some(c) = rest.get(l.len()) {
                        if b"cduoxXp".contains(c) {
                            return Some(match (*c, l) {
                                (b'p', _) => 64,
                                (b'c', _) | (_, "hh") => 8,
                                (_, "h") => 16,
                                (_, "") => 32,
                                _ => 64,
                            });
                        }
                    }
                }
            }
        }
        p += 1;
    }
    None
}

fn truncate_signed(v: u64, bits: u32) -> i64 {
    match bits {
        8 => v as i8 as i64,
        16 => v as i16 as i64,
        32 => v as i32 as i64,
        _ => v as i64,
    }
}

fn truncate_unsigned(v: u64, bits: u32) -> u64 {
    match bits {
        8 => v as u8 as u64,
        16 => v as u16 as u64,
        32 => v as u32 as u64,
        _ => v,
    }
}

fn length_bits(length: &str) -> u32 {
    match length {
        "hh" => 8,
        "h" => 16,
        "" => 32,
        _ => 64,
    }
}

fn pad(body: Vec<u8>, s: &CSpec) -> Vec<u8> {
    if body.len() >= s.width {
        return body;
    }
    let fill = vec![b' '; s.width - body.len()];
    if s.left {
        [body, fill].concat()
    } else {
        [fill, body].concat()
    }
}

fn format_c_int(s: &CSpec, raw: u64) -> Vec<u8> {
    let bits = length_bits(s.length);
    let (neg, mag) = match s.conv {
        b'd' | b'i' => {
            let v = truncate_signed(raw, bits);
            (v < 0, v.unsigned_abs())
        }
        _ => (false, truncate_unsigned(raw, bits)),
    };
    let mut digits = match s.conv {
        b'o' => format!("{:o}", mag),
        b'x' => format!("{:x}", mag),
        b'X' => format!("{:X}", mag),
        _ => mag.to_string(),
    };
    if s.precision == Some(0) && mag == 0 {
        digits.clear();
    }
    if let Some(p) = s.precision {
        if digits.len() < p {
            digits = "0".repeat(p - digits.len()) + &digits;
        }
    }
    if s.alt && s.conv == b'o' && !digits.starts_with('0') {
        digits.insert(0, '0');
    }
    let prefix = match s.conv {
        b'd' | b'i' if neg => "-",
        b'd' | b'i' if s.plus => "+",
        b'd' | b'i' if s.space => " ",
        b'x' if s.alt && mag != 0 => "0x",
        b'X' if s.alt && mag != 0 => "0X",
        _ => "",
    };
    if s.zero && !s.left && s.precision.is_none() {
        let len = prefix.len() + digits.len();
        if len < s.width {
            digits = "0".repeat(s.width - len) + &digits;
        }
    }
    pad(format!("{}{}", prefix, digits).into_bytes(), s)
}

fn format_c_conv(s: &CSpec, arg: &Val, cast_bits: Option<u32>) -> Vec<u8> {
    let raw = match (arg, cast_bits) {
        (Val::Int(i), Some(b)) => truncate_signed(*i as u64, b) as u64,
        (Val::Uint(u), Some(b)) => truncate_unsigned(*u, b),
        (Val::Int(i), None) => *i as u64,
        (Val::Uint(u), None) => *u,
        _ => 0,
    };
    let is_int = matches!(arg, Val::Int(_) | Val::Uint(_));
    match s.conv {
        b's' => {
            let text = if is_int {
                raw.to_string().into_bytes()
            } else {
                val_text(arg, None, 1).into_bytes()
            };
            let text = match s.precision {
                Some(p) if p < text.len() => text[..p].to_vec(),
                _ => text,
            };
            pad(text, s)
        }
        _ if !is_int => {
            // A string where an integer is expected (the type checker prevents this): print it.
            pad(val_text(arg, None, 1).into_bytes(), s)
        }
        b'c' => pad(vec![raw as u8], s),
        b'p' => {
            if raw == 0 {
                pad(b"(nil)".to_vec(), s)
            } else {
                let spec = CSpec {
                    alt: true,
                    conv: b'x',
                    length: "l",
                    ..*s
                };
                format_c_int(&spec, raw)
            }
        }
        b'n' => Vec::new(),
        _ => format_c_int(s, raw),
    }
}

/// snprintf(part, arg) as glibc would do it, for a part holding one conversion (plus text and
/// `%%`s before it).
fn c_format_part(part: &[u8], arg: &Val, cast_bits: Option<u32>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut used = false;
    let mut i = 0;
    while i < part.len() {
        if part[i] != b'%' {
            out.push(part[i]);
            i += 1;
            continue;
        }
        match parse_c_spec(&part[i + 1..]) {
            Some((spec, n)) => {
                if spec.conv == b'%' {
                    out.push(b'%');
                } else if !used {
                    used = true;
                    out.extend(format_c_conv(&spec, arg, cast_bits));
                } else {
                    out.extend_from_slice(&part[i..i + 1 + n]);
                }
                i += 1 + n;
            }
            None => {
                out.push(b'%');
                i += 1;
            }
        }
    }
    out
}

/// C printf semantics as bpftrace 0.17 applies them to `printf()` / `system()` / `cat()`
/// formats: the format is split into parts each ending with one bpftrace token (`%s`, `%c`,
/// `%d`, `%u`, `%x`, `%X`, `%o`, `%p`, with an optional `hh`/`h`/`l`/`ll`/`j`/`z`/`t` length,
/// `-`, a width (a leading `0` pads with zeros) and a `.precision`); each part is run through
/// snprintf with its argument cast to the length modifier's C type (so `%d` of `1 << 40` is
/// 0 and `%u` of -1 is 4294967295), and the output of a part stops at a NUL (`%c` of 0). Text
/// after the last token is copied raw, so a trailing `%%` stays `%%` (bpftrace's behaviour).
///
/// The text is returned lossily as UTF-8; [`format_printf_bytes`] gives the exact bytes (they
/// differ only when a `%c` produces a byte >= 0x80).
pub fn format_printf(fmt: &str, args: &[Val]) -> String {
    String::from_utf8_lossy(&format_printf_bytes(fmt, args)).into_owned()
}

/// [`format_printf`] as the exact bytes bpftrace would write.
pub fn format_printf_bytes(fmt: &str, args: &[Val]) -> Vec<u8> {
    let parts = split_format(fmt.as_bytes());
    let mut out: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < args.len() && i < parts.len() {
        let modifier = [&b"%rx"[..], &b"%rh"[..]]
            .into_iter()
            .find_map(|m| parts[i].strip_suffix(m).map(|text| (text, m[2])));
        if let (Some((text, mode)), Val::Str(s)) = (modifier, &args[i]) {
            // `%rx` / `%rh` of a buf(): every byte as `\xNN`, or as `NN` separated by
            // spaces (bpftrace 0.17's modifiers of %r).
            let bytes = unescape_buf(s);
            let hex: Vec<String> = bytes
                .iter()
                .map(|b| match mode {
                    b'x' => format!("\\x{b:02x}"),
                    _ => format!("{b:02x}"),
                })
                .collect();
            out.extend_from_slice(text);
            out.extend_from_slice(hex.join(if mode == b'x' { "" } else { " " }).as_bytes());
            i += 1;
            continue;
        }
        let formatted = c_format_part(parts[i], &args[i], expected_bits(parts[i]));
        out.extend_from_slice(until_nul(&formatted));
        i += 1;
    }
    if i < parts.len() {
        out.extend_from_slice(parts[i]);
    }
    out
}

/// The bytes of a `buf()` value from its `%r` text (printable bytes as is, others `\xNN`).
fn unescape_buf(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
            if let Some(v) = s
                .get(i + 2..i + 4)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn i(v: i64) -> Val {
        Val::Int(v)
    }
    fn s(v: &str) -> Val {
        Val::Str(v.to_string())
    }

    #[test]
    fn buf_hex_modifiers() {
        let hello = Val::Str("Hello\\x00".to_string());
        assert_eq!(
            // (code generation turns a plain `%r` into `%s`)
            format_printf_bytes("%rx|%rh|%s\n", &[hello.clone(), hello.clone(), hello]),
            b"\\x48\\x65\\x6c\\x6c\\x6f\\x00|48 65 6c 6c 6f 00|Hello\\x00\n"
        );
    }

    #[test]
    fn printf_edge_cases() {
        assert_eq!(format_printf("", &[]), "");
        assert_eq!(format_printf("100%", &[]), "100%");
        assert_eq!(format_printf("%s", &[s("ab\0cd")]), "ab");
        assert_eq!(format_printf("%-4s|", &[s("ab")]), "ab  |");
        assert_eq!(format_printf("%d%d", &[i(1), i(2)]), "12");
        assert_eq!(format_printf("%.0d|", &[i(0)]), "|");
        assert_eq!(
            format_printf("%08d|%-8d|", &[i(-42), i(-42)]),
            "-0000042|-42     |"
        );
        assert_eq!(format_printf("%lu", &[i(-1)]), "18446744073709551615");
        assert_eq!(format_printf("%10p|", &[i(0)]), "     (nil)|");
    }
}
