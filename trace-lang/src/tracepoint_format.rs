//! Parsing of tracefs `events/CATEGORY/NAME/format` files into typed fields.
//!
//! Each `field:TYPE NAME;\toffset:N;\tsize:N;\tsigned:N;` line becomes a [`TpField`];
//! other lines (`name:`, `ID:`, `format:`, `print fmt:`) are ignored.

use crate::types::Type;

/// One field of a tracepoint record.
#[derive(Debug, Clone, PartialEq)]
pub struct TpField {
    pub name: String,
    /// Byte offset in the record the program's context points at.
    pub offset: u32,
    /// Size in bytes as the format file gives it.
    pub size: u32,
    /// `Int` for integers, `Str(n)` for `char x[n]` arrays and `__data_loc char[]`,
    /// `Ptr` for pointers (`const char *` in syscalls is `Ptr { to: Int 1, user: true }`).
    /// For a non-char array (`unsigned long args[6]`) this is the element type and
    /// `array_len` is set.
    pub ty: Type,
    /// `__data_loc`: the u32 at `offset` holds (len << 16 | offset of the data).
    pub data_loc: bool,
    /// `Some(n)` for an integer (or pointer) array `T name[n]`; `ty` is the element.
    pub array_len: Option<u32>,
}

/// Parse a format file. `user_pointers` says whether pointer fields point at user
/// memory (true for the `syscalls` category).
pub fn parse_format(text: &str, user_pointers: bool) -> Vec<TpField> {
    text.lines()
        .filter_map(|l| parse_field_line(l, user_pointers))
        .collect()
}

fn parse_field_line(line: &str, user_pointers: bool) -> Option<TpField> {
    let mut decl = None;
    let mut offset = None;
    let mut size = None;
    let mut signed = None;
    for part in line.split(';') {
        let part = part.trim();
        if let Some(d) = part.strip_prefix("field:") {
            decl = Some(d.trim());
        } else if let Some(v) = part.strip_prefix("offset:") {
            offset = v.trim().parse::<u32>().ok();
        } else if let Some(v) = part.strip_prefix("size:") {
            size = v.trim().parse::<u32>().ok();
        } else if let Some(v) = part.strip_prefix("signed:") {
            signed = Some(v.trim() == "1");
        }
    }
    let decl = decl?;
    let offset = offset?;
    let size = size?;
    let signed = signed.unwrap_or(false);

    if decl.starts_with("__data_loc") {
        // `__data_loc char[] name`: the brackets come before the name.
        let name = decl
            .rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .unwrap_or("")
            .to_string();
        return Some(TpField {
            name,
            offset,
            size,
            ty: Type::Str(64),
            data_loc: true,
            array_len: None,
        });
    }
    // Split "TYPE NAME[dims]" into the type words and the name.
    let (decl, dims) = match decl.find('[') {
        Some(i) => (&decl[..i], Some(&decl[i..])),
        None => (decl, None),
    };
    let decl = decl.trim_end();
    let name_start = decl
        .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .map(|i| i + 1)
        .unwrap_or(0);
    let name = decl[name_start..].to_string();
    let ctype = decl[..name_start].trim().to_string();
    let pointer_depth = ctype.matches('*').count();
    let base = ctype.replace('*', " ");
    let base_words: Vec<&str> = base
        .split_whitespace()
        .filter(|w| !matches!(*w, "const" | "volatile" | "struct" | "enum" | "__user"))
        .collect();
    let is_char = base_words.last() == Some(&"char");
    // bpftrace types fields by their C type; tracefs says `signed:0` for every syscall
    // argument, `off_t` and `long` included.
    let signed = c_signedness(&base_words).unwrap_or(signed);
    let array_len = dims.and_then(|d| {
        d.trim_start_matches('[')
            .split(']')
            .next()
            .and_then(|n| n.trim().parse::<u32>().ok())
    });

    if pointer_depth > 0 {
        let tag = ctype
            .split_whitespace()
            .position(|w| w == "struct" || w == "union");
        let to = if is_char {
            Type::Int {
                bytes: 1,
                signed: true,
            }
        } else if let (Some(i), Some(name)) = (tag, base_words.last()) {
            // `struct __kernel_timespec *`: a kernel type, resolved through BTF.
            let words: Vec<&str> = ctype.split_whitespace().collect();
            Type::Record(format!("{} {name}", words[i]))
        } else {
            pointee_int(&base_words)
        };
        let mut ty = Type::Ptr {
            to: Box::new(to),
            user: user_pointers,
        };
        for _ in 1..pointer_depth {
            ty = Type::Ptr {
                to: Box::new(ty),
                user: user_pointers,
            };
        }
        return Some(TpField {
            name,
            offset,
            size,
            ty,
            data_loc: false,
            array_len,
        });
    }
    if let Some(n) = array_len {
        if is_char {
            return Some(TpField {
                name,
                offset,
                size,
                ty: Type::Str(n as usize),
                data_loc: false,
                array_len: None,
            });
        }
        let elem = size.checked_div(n).unwrap_or(size);
        return Some(TpField {
            name,
            offset,
            size,
            ty: int_of(elem, signed),
            data_loc: false,
            array_len: Some(n),
        });
    }
    Some(TpField {
        name,
        offset,
        size,
        ty: int_of(size, signed),
        data_loc: false,
        array_len: None,
    })
}

/// Whether a C integer type is signed, when the type words tell.
fn c_signedness(words: &[&str]) -> Option<bool> {
    let last = *words.last()?;
    if words.contains(&"unsigned") || last.starts_with("__u") || last == "bool" || last == "_Bool" {
        return Some(false);
    }
    if words.contains(&"signed") || last.starts_with("__s") {
        return Some(true);
    }
    match last {
        "char" | "short" | "int" | "long" | "s8" | "s16" | "s32" | "s64" | "off_t" | "loff_t"
        | "pid_t" | "ssize_t" | "time_t" | "time64_t" | "clockid_t" | "timer_t"
        | "key_serial_t" | "mqd_t" | "ktime_t" => Some(true),
        "u8" | "u16" | "u32" | "u64" | "size_t" | "umode_t" | "uid_t" | "gid_t" | "qid_t"
        | "dev_t" | "gfp_t" | "aio_context_t" | "cap_user_header_t" | "cap_user_data_t"
        | "key_t" | "rwf_t" => Some(false),
        _ => None,
    }
}

fn int_of(size: u32, signed: bool) -> Type {
    let bytes = match size {
        1 | 2 | 4 | 8 => size as u8,
        _ => 8,
    };
    Type::Int { bytes, signed }
}

/// Best-effort integer type a pointer points at, from the C type words.
fn pointee_int(words: &[&str]) -> Type {
    let unsigned = words.iter().any(|w| *w == "unsigned" || w.starts_with('u'));
    let bytes = match words.last().copied().unwrap_or("") {
        "char" | "u8" | "s8" | "__u8" | "__s8" => 1,
        "short" | "u16" | "s16" | "__u16" | "__s16" => 2,
        "int" | "u32" | "s32" | "__u32" | "__s32" | "pid_t" | "uid_t" | "gid_t" => 4,
        _ => 8,
    };
    Type::Int {
        bytes,
        signed: !unsigned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAT: &str = "name: sys_enter_openat
ID: 633
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:int dfd;\toffset:16;\tsize:8;\tsigned:0;
\tfield:const char * filename;\toffset:24;\tsize:8;\tsigned:0;
\tfield:int flags;\toffset:32;\tsize:8;\tsigned:0;
\tfield:umode_t mode;\toffset:40;\tsize:8;\tsigned:0;

print fmt: \"dfd: 0x%08lx, filename: 0x%08lx\", ((unsigned long)(REC->dfd)), ((unsigned long)(REC->filename))
";

    #[test]
    fn syscalls_openat() {
        let f = parse_format(OPENAT, true);
        assert_eq!(f.len(), 9);
        assert_eq!(f[0].name, "common_type");
        assert_eq!(
            f[0].ty,
            Type::Int {
                bytes: 2,
                signed: false
            }
        );
        assert_eq!(
            f[3].ty,
            Type::Int {
                bytes: 4,
                signed: true
            }
        );
        assert_eq!(f[4].name, "__syscall_nr");
        let fname = &f[6];
        assert_eq!(fname.name, "filename");
        assert_eq!(fname.offset, 24);
        assert_eq!(fname.size, 8);
        assert_eq!(
            fname.ty,
            Type::Ptr {
                to: Box::new(Type::Int {
                    bytes: 1,
                    signed: true
                }),
                user: true
            }
        );
        // `int dfd` with size 8: typed by its C type (signed), as bpftrace does.
        assert_eq!(f[5].ty, Type::I64);
    }

    #[test]
    fn arrays_and_data_loc() {
        let text = "\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:1;
\tfield:__data_loc char[] name;\toffset:24;\tsize:4;\tsigned:1;
\tfield:pid_t pid;\toffset:28;\tsize:4;\tsigned:1;
\tfield:u64 x;\toffset:32;\tsize:8;\tsigned:0;
\tfield:unsigned long args[6];\toffset:40;\tsize:48;\tsigned:0;
\tfield:long ret;\toffset:88;\tsize:8;\tsigned:1;
";
        let f = parse_format(text, false);
        assert_eq!(f[0].name, "comm");
        assert_eq!(f[0].ty, Type::Str(16));
        assert_eq!(f[1].name, "name");
        assert!(f[1].data_loc);
        assert_eq!(f[1].ty, Type::Str(64));
        assert_eq!(
            f[2].ty,
            Type::Int {
                bytes: 4,
                signed: true
            }
        );
        assert_eq!(f[3].ty, Type::U64);
        assert_eq!(f[4].name, "args");
        assert_eq!(f[4].ty, Type::U64);
        assert_eq!(f[4].array_len, Some(6));
        assert_eq!(f[5].ty, Type::I64);
    }
}
