//! Stacks as typed values: a [`Stack`] is its [`Frame`]s (innermost first), each an
//! address with the symbol it resolved to, if any. This module owns how bpftrace 0.17
//! prints one ([`Stack::render`], for each [`StackMode`] and the indentation of map keys,
//! values and printf) and the folded form flame graphs read ([`Stack::folded`]).
//! Resolving ids into stacks (the stack map, kallsyms, symbolizers) is the runner's job.

use trace_lang::types::StackMode;

/// Indentation of a stack printed as a map key part (`@[kstack]`).
pub const KEY_INDENT: usize = 4;
/// Indentation of a stack printed anywhere else (a map value, printf's `%s`, a tuple).
pub const VALUE_INDENT: usize = 8;

/// The function a frame's address falls in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Symbol {
    pub name: String,
    /// Bytes from the function's start.
    pub offset: u64,
    /// The path of the executable or library the function is in (user frames).
    pub module: Option<String>,
}

/// One return address of a stack.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Frame {
    pub addr: u64,
    /// `None` when the address did not resolve (or was not resolved: `raw` mode).
    pub symbol: Option<Symbol>,
    /// A kernel frame (`kstack`), else a user one (`ustack`).
    pub kernel: bool,
}

impl Frame {
    /// A frame whose address did not resolve.
    pub fn unknown(addr: u64, kernel: bool) -> Frame {
        Frame {
            addr,
            symbol: None,
            kernel,
        }
    }

    /// A frame inside function `name`, `offset` bytes from its start.
    pub fn in_function(addr: u64, name: &str, offset: u64, kernel: bool) -> Frame {
        Frame {
            addr,
            symbol: Some(Symbol {
                name: name.to_string(),
                offset,
                module: None,
            }),
            kernel,
        }
    }

    /// This frame, its symbol found in the file at `path`.
    pub fn in_module(mut self, path: &str) -> Frame {
        if let Some(s) = &mut self.symbol {
            s.module = Some(path.to_string());
        }
        self
    }

    /// The frame as bpftrace names it: `func+off`, or the address in hex (`0x7f12...`).
    pub fn name(&self) -> String {
        match &self.symbol {
            Some(s) => format!("{}+{}", s.name, s.offset),
            None => format!("0x{:x}", self.addr),
        }
    }

    /// The frame in folded output: the function without its offset (`;` becomes `:`,
    /// control characters spaces), `[unknown]` when unresolved.
    pub fn folded_name(&self) -> String {
        match &self.symbol {
            Some(s) => folded_frame_name(&s.name),
            None => "[unknown]".to_string(),
        }
    }
}

/// A name as a folded frame: trimmed, `;` as `:`, newlines and tabs as spaces,
/// `[unknown]` when empty.
pub fn folded_frame_name(name: &str) -> String {
    let name = name.trim();
    if name.is_empty() {
        return "[unknown]".into();
    }
    name.replace(';', ":").replace(['\n', '\r', '\t'], " ")
}

/// A `kstack`/`ustack` value: its frames, innermost first, and how it prints.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Stack {
    pub mode: StackMode,
    pub frames: Vec<Frame>,
}

impl Stack {
    /// bpftrace 0.17's text of the stack: a newline, then one line per frame, innermost
    /// first: `bpftrace` mode indents `func+off` by `indent` spaces ([`KEY_INDENT`] in map
    /// keys, [`VALUE_INDENT`] elsewhere); `perf` mode is `\t<hex addr> <name>`, followed
    /// for a user frame by ` (<module path>)` (`([unknown])` when not known), and `raw`
    /// the bare hex address, whatever the indent.
    pub fn render(&self, indent: usize) -> String {
        let mut out = String::from("\n");
        for f in &self.frames {
            match self.mode {
                StackMode::Bpftrace => {
                    out.push_str(&" ".repeat(indent));
                    out.push_str(&f.name());
                }
                StackMode::Perf => {
                    out.push_str(&format!("\t{:x} {}", f.addr, f.name()));
                    if !f.kernel {
                        let module = f.symbol.as_ref().and_then(|s| s.module.as_deref());
                        out.push_str(&format!(" ({})", module.unwrap_or("[unknown]")));
                    }
                }
                StackMode::Raw => out.push_str(&format!("{:x}", f.addr)),
            }
            out.push('\n');
        }
        out
    }

    /// The folded frames, outermost first (the order of `a;b;c 12` lines). A `raw` stack
    /// is printed without symbols, so all its frames fold to `[unknown]`.
    pub fn folded(&self) -> Vec<String> {
        self.frames
            .iter()
            .rev()
            .map(|f| match self.mode {
                StackMode::Raw => "[unknown]".to_string(),
                _ => f.folded_name(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

    /// A user stack of `getpid` called from a small C program's `main`, as bpftrace 0.17
    /// printed it (`uprobe:/lib/x86_64-linux-gnu/libc.so.6:getpid { printf("%s", ustack);
    /// printf("%s", ustack(perf)); @[ustack] = count(); @p[ustack(perf)] = count(); }`),
    /// plus a frame that did not resolve.
    fn user_stack(mode: StackMode) -> Stack {
        Stack {
            mode,
            frames: vec![
                Frame::in_function(0x7fed_9dfc_84e0, "__getpid", 0, false).in_module(LIBC),
                Frame::in_function(0x55c1_0183_2177, "main", 19, false).in_module("/tmp/stk/stk"),
                Frame::in_function(0x7fed_9df1_a24a, "__libc_start_call_main", 122, false)
                    .in_module(LIBC),
                Frame::unknown(0x7f5a_985d_54e0, false),
            ],
        }
    }

    #[test]
    fn bpftrace_mode_indents_by_context() {
        let s = user_stack(StackMode::Bpftrace);
        // printf("%s", ustack) and `@v = ustack`.
        assert_eq!(
            s.render(VALUE_INDENT),
            "\n        __getpid+0\n        main+19\n        __libc_start_call_main+122\n        0x7f5a985d54e0\n"
        );
        // `@[ustack]`.
        assert_eq!(
            s.render(KEY_INDENT),
            "\n    __getpid+0\n    main+19\n    __libc_start_call_main+122\n    0x7f5a985d54e0\n"
        );
    }

    #[test]
    fn perf_mode_names_the_module_of_user_frames() {
        let s = user_stack(StackMode::Perf);
        let text = "\n\t7fed9dfc84e0 __getpid+0 (/usr/lib/x86_64-linux-gnu/libc.so.6)\n\t55c101832177 main+19 (/tmp/stk/stk)\n\t7fed9df1a24a __libc_start_call_main+122 (/usr/lib/x86_64-linux-gnu/libc.so.6)\n\t7f5a985d54e0 0x7f5a985d54e0 ([unknown])\n";
        // The indent does not apply: keys and values print alike.
        assert_eq!(s.render(KEY_INDENT), text);
        assert_eq!(s.render(VALUE_INDENT), text);
        // A user symbol whose module is not known.
        let s = Stack {
            mode: StackMode::Perf,
            frames: vec![Frame::in_function(0x4011d6, "main", 16, false)],
        };
        assert_eq!(s.render(KEY_INDENT), "\n\t4011d6 main+16 ([unknown])\n");
        // Kernel frames name no module.
        let k = Stack {
            mode: StackMode::Perf,
            frames: vec![
                Frame::in_function(0xffff_ffff_8100_1234, "ksys_read", 5, true),
                Frame::unknown(0xffff_ffff_c000_0000, true),
            ],
        };
        assert_eq!(
            k.render(VALUE_INDENT),
            "\n\tffffffff81001234 ksys_read+5\n\tffffffffc0000000 0xffffffffc0000000\n"
        );
    }

    #[test]
    fn raw_mode_prints_addresses() {
        let raw = user_stack(StackMode::Raw);
        assert_eq!(
            raw.render(KEY_INDENT),
            "\n7fed9dfc84e0\n55c101832177\n7fed9df1a24a\n7f5a985d54e0\n"
        );
    }

    #[test]
    fn kernel_frames_and_empty_stacks() {
        let k = Stack {
            mode: StackMode::Bpftrace,
            frames: vec![
                Frame::in_function(0xffff_ffff_8100_1234, "ksys_read", 5, true),
                Frame::in_function(
                    0xffff_ffff_8200_0074,
                    "entry_SYSCALL_64_after_hwframe",
                    118,
                    true,
                ),
            ],
        };
        assert_eq!(
            k.render(KEY_INDENT),
            "\n    ksys_read+5\n    entry_SYSCALL_64_after_hwframe+118\n"
        );
        let empty = Stack {
            mode: StackMode::Bpftrace,
            frames: Vec::new(),
        };
        assert_eq!(empty.render(VALUE_INDENT), "\n");
        assert!(empty.folded().is_empty());
    }

    #[test]
    fn folded_frames_outermost_first_without_offsets() {
        assert_eq!(
            user_stack(StackMode::Bpftrace).folded(),
            ["[unknown]", "__libc_start_call_main", "main", "__getpid"]
        );
        assert_eq!(
            user_stack(StackMode::Perf).folded(),
            user_stack(StackMode::Bpftrace).folded()
        );
        assert_eq!(user_stack(StackMode::Raw).folded(), ["[unknown]"; 4]);
        let odd = Stack {
            mode: StackMode::Bpftrace,
            frames: vec![
                Frame::in_function(1, "operator+", 3, false),
                Frame::in_function(2, "a;b", 0, false),
                Frame::in_function(3, "f(int, char)", 12, false),
                Frame::in_function(4, " ", 0, false),
            ],
        };
        assert_eq!(
            odd.folded(),
            ["[unknown]", "f(int, char)", "a:b", "operator+"]
        );
    }
}

/// Stacks inside printed maps, checked against bpftrace 0.17 printing the same stack (the
/// [`tests`] one, in bpftrace mode) for `printf("%s|\n", ustack)` and
/// `@[ustack, 1] = count(); @v = ustack; @t = (ustack, 2);`, in text and with `-f json`.
#[cfg(test)]
mod map_tests {
    use super::*;
    use crate::{write_exit_maps_json, write_exit_maps_text, Entry, EntryValue, MapDump, Val};
    use trace_lang::types::{MapValue, Type};

    fn stack() -> Val {
        Val::Stack(Stack {
            mode: StackMode::Bpftrace,
            frames: vec![
                Frame::in_function(0x7fed_9dfc_84e0, "__getpid", 0, false),
                Frame::in_function(0x55c1_0183_2177, "main", 19, false),
                Frame::in_function(0x7fed_9df1_a24a, "__libc_start_call_main", 122, false),
            ],
        })
    }

    fn maps() -> Vec<MapDump> {
        let ty = Type::Stack {
            user: true,
            limit: 127,
            mode: StackMode::Bpftrace,
        };
        let value = |name: &str, ty: Type, v: Val| MapDump {
            name: name.into(),
            value: MapValue::Value(ty),
            entries: vec![Entry {
                key: Vec::new(),
                value: EntryValue::Scalar(v),
            }],
        };
        vec![
            MapDump {
                name: String::new(),
                value: MapValue::Count,
                entries: vec![Entry {
                    key: vec![stack(), Val::Int(1)],
                    value: EntryValue::Scalar(Val::Uint(1)),
                }],
            },
            value(
                "t",
                Type::Tuple(vec![ty.clone(), Type::I64]),
                Val::Tuple(vec![stack(), Val::Int(2)]),
            ),
            value("v", ty, stack()),
        ]
    }

    #[test]
    fn keys_indent_by_4_values_and_tuples_by_8() {
        let mut out = Vec::new();
        write_exit_maps_text(&mut out, &maps()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n\n@[\n    __getpid+0\n    main+19\n    __libc_start_call_main+122\n, 1]: 1\n@t: (\n        __getpid+0\n        main+19\n        __libc_start_call_main+122\n, 2)\n@v: \n        __getpid+0\n        main+19\n        __libc_start_call_main+122\n\n"
        );
    }

    #[test]
    fn json_keys_and_values() {
        let mut out = Vec::new();
        write_exit_maps_json(&mut out, &maps()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\n\n{\"type\": \"map\", \"data\": {\"@\": {\"\\n    __getpid+0\\n    main+19\\n    __libc_start_call_main+122\\n,1\": 1}}}\n{\"type\": \"map\", \"data\": {\"@t\": [\"\\n        __getpid+0\\n        main+19\\n        __libc_start_call_main+122\\n\",2]}}\n{\"type\": \"map\", \"data\": {\"@v\": \"\\n        __getpid+0\\n        main+19\\n        __libc_start_call_main+122\\n\"}}\n"
        );
    }

    #[test]
    fn printf_indents_by_8() {
        assert_eq!(
            crate::format_printf("%s|\n", &[stack()]),
            "\n        __getpid+0\n        main+19\n        __libc_start_call_main+122\n|\n"
        );
    }

    #[test]
    fn stacks_travel_as_their_printed_text() {
        let record = crate::wire::record(&maps()[..1]);
        let back = crate::wire::aggregation_from_wire(&record.maps[0]).unwrap();
        let mut a = Vec::new();
        let mut b = Vec::new();
        crate::write_map_text(&mut a, &maps()[0]).unwrap();
        crate::write_map_text(&mut b, &back).unwrap();
        assert_eq!(a, b);
        assert_eq!(
            back.entries[0].key[0],
            Val::Sym("\n    __getpid+0\n    main+19\n    __libc_start_call_main+122\n".into())
        );
    }
}
