//! Script generators for the fuzz tests (proptest strategies): scripts built from the
//! grammar, mutations of real scripts, and nesting and size extremes. Shared by
//! trace-lang's `fuzz` test (parse + analyse) and trace-runner's codegen fuzz test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

/// The proptest configuration: `FUZZ_CASES` cases per strategy (default `default`), from
/// the seed `FUZZ_SEED` (default fixed, so that a CI run is repeatable; set another seed
/// to explore further, and make what it finds a named test).
pub fn config(default: u32) -> Config {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b74_7261_6365);
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    Config {
        cases,
        // Failures are reported with the shrunk script; nothing is written to disk.
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..Config::default()
    }
}

const BUILTINS: &[&str] = &[
    "pid",
    "tid",
    "uid",
    "gid",
    "cpu",
    "nsecs",
    "elapsed",
    "numaid",
    "cgroup",
    "comm",
    "kstack",
    "ustack",
    "retval",
    "func",
    "probe",
    "args",
    "ctx",
    "curtask",
    "rand",
    "username",
    "cpid",
    "jiffies",
    "usermode",
    "skb",
    "arg0",
    "arg1",
    "arg5",
    "sarg0",
    "$#",
    "$1",
    "$2",
    "TCP_CLOSE",
];
const VARS: &[&str] = &["$a", "$b", "$s", "$t", "$container_pid"];
const MAPS: &[&str] = &["@", "@m", "@n", "@h", "@s"];
const FUNCS: &[&str] = &[
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "stats",
    "hist",
    "lhist",
    "clear",
    "zero",
    "delete",
    "print",
    "kstack",
    "ustack",
    "printf",
    "system",
    "cat",
    "time",
    "exit",
    "signal",
    "str",
    "cgroupid",
    "kaddr",
    "uaddr",
    "ksym",
    "usym",
    "bswap",
    "kptr",
    "uptr",
    "strncmp",
    "ntop",
    "macaddr",
    "buf",
    "strftime",
    "cgroup_path",
    "join",
    "offsetof",
    "sizeof",
    "reg",
    "override",
    "nosuch",
];
const CASTS: &[&str] = &[
    "uint8",
    "int16",
    "uint32",
    "int64",
    "unsigned int",
    "struct sock *",
    "struct task_struct *",
    "char",
    "u64",
    "int8 *",
    "void *",
];
const UNOPS: &[&str] = &["!", "~", "-", "*", "&", "- "];
const BINOPS: &[&str] = &[
    "+", "-", "*", "/", "%", "&", "|", "^", "<<", ">>", "==", "!=", "<", "<=", ">", ">=", "&&",
    "||",
];
const FIELDS: &[&str] = &[
    "->filename",
    "->fd",
    ".0",
    ".1",
    "->sk_common.skc_num",
    ".x",
];
const ATTACH: &[&str] = &[
    "BEGIN",
    "END",
    "tracepoint:syscalls:sys_enter_openat",
    "t:syscalls:sys_exit_read",
    "tracepoint:sched:sched_switch",
    "tracepoint:syscalls:sys_enter_*",
    "rawtracepoint:sched_switch",
    "kprobe:tcp_connect",
    "kretprobe:vfs_read",
    "uprobe:/bin/sh:main",
    "uretprobe:/bin/bash:readline",
    "profile:hz:99",
    "interval:s:1",
    "interval:ms:0",
    "kfunc:tcp_sendmsg",
    "fexit:vfs_write",
    "software:cpu-clock:1000",
    "hardware:cache-misses",
    "cgroup_skb:ingress",
    "cgroup_skb:egress",
    "usdt:/bin/x:p",
    "nosuch:x",
];
const ESCAPES: &[&str] = &[
    "a", "Z", " ", "%d", "%s", "%-8s", "%lu", "%x", "%5d", "%%", "%", "\\n", "\\t", "\\\\", "\\\"",
    "\\x41", "\\101", "\\0", "\\q", "é", "→",
];
const AGGS: &[&str] = &[
    "count()",
    "sum(1)",
    "avg(pid)",
    "min(tid)",
    "max(nsecs)",
    "stats(2)",
    "hist(pid)",
    "lhist(pid, 0, 100, 10)",
    "lhist(1, 10, 0, 1)",
    "count(1)",
];

fn string_lit() -> impl Strategy<Value = String> {
    prop::collection::vec(select(ESCAPES), 0..6).prop_map(|v| format!("\"{}\"", v.concat()))
}

fn int_lit() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..200).prop_map(|v| v.to_string()),
        any::<i64>().prop_map(|v| v.to_string()),
        any::<u64>().prop_map(|v| format!("0x{v:x}")),
        Just("99999999999999999999999".to_string()),
        Just("1_000".to_string()),
    ]
}

/// Expressions from the grammar (typed or not: sema's errors are welcome too).
pub fn expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        int_lit(),
        string_lit(),
        select(BUILTINS).prop_map(str::to_string),
        select(VARS).prop_map(str::to_string),
        select(MAPS).prop_map(str::to_string),
        select(FIELDS).prop_map(|f| format!("args{f}")),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (select(UNOPS), inner.clone()).prop_map(|(o, e)| format!("{o}{e}")),
            (inner.clone(), select(BINOPS), inner.clone())
                .prop_map(|(a, o, b)| format!("{a} {o} {b}")),
            (inner.clone(), select(BINOPS), inner.clone())
                .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, t, e)| format!("{c} ? {t} : {e}")),
            (select(FUNCS), prop::collection::vec(inner.clone(), 0..4))
                .prop_map(|(f, a)| format!("{f}({})", a.join(", "))),
            (select(CASTS), inner.clone()).prop_map(|(t, e)| format!("({t}){e}")),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| format!("({})", v.join(", "))),
            (inner.clone(), select(FIELDS)).prop_map(|(e, f)| format!("{e}{f}")),
            (select(MAPS), prop::collection::vec(inner.clone(), 1..3))
                .prop_map(|(m, k)| format!("{m}[{}]", k.join(", "))),
            (inner.clone(), inner.clone()).prop_map(|(a, i)| format!("{a}[{i}]")),
            inner.clone().prop_map(|e| format!("({e})")),
            (string_lit(), prop::collection::vec(inner, 0..4)).prop_map(|(f, a)| format!(
                "printf({f}{})",
                a.iter().map(|x| format!(", {x}")).collect::<String>()
            )),
        ]
    })
}

/// Statements from the grammar, blocks included.
pub fn stmt() -> impl Strategy<Value = String> {
    let simple = prop_oneof![
        (select(VARS), expr()).prop_map(|(v, e)| format!("{v} = {e};")),
        (select(MAPS), expr()).prop_map(|(m, e)| format!("{m} = {e};")),
        (select(MAPS), expr(), select(AGGS)).prop_map(|(m, k, a)| format!("{m}[{k}] = {a};")),
        (select(MAPS), select(AGGS)).prop_map(|(m, a)| format!("{m} = {a};")),
        (
            select(MAPS),
            expr(),
            select(&["+=", "-=", "<<=", "|=", "%="][..]),
            expr()
        )
            .prop_map(|(m, k, o, e)| format!("{m}[{k}] {o} {e};")),
        (select(VARS), select(&["++", "--", " += 2", " >>= 1"][..]))
            .prop_map(|(v, o)| format!("{v}{o};")),
        (select(&["++", "--"][..]), select(MAPS)).prop_map(|(o, m)| format!("{o}{m};")),
        expr().prop_map(|e| format!("{e};")),
        (select(MAPS), prop::collection::vec(expr(), 0..3)).prop_map(|(m, a)| format!(
            "print({m}{});",
            a.iter().map(|x| format!(", {x}")).collect::<String>()
        )),
        select(MAPS).prop_map(|m| format!("clear({m}); zero({m}); delete({m}[1]);")),
        Just("exit();".to_string()),
        Just("return;".to_string()),
        Just("break;".to_string()),
        Just("continue;".to_string()),
        Just(";".to_string()),
    ];
    simple.prop_recursive(3, 16, 3, |inner| {
        let block = prop::collection::vec(inner, 0..4).prop_map(|v| v.join(" "));
        prop_oneof![
            (expr(), block.clone()).prop_map(|(c, b)| format!("if ({c}) {{ {b} }}")),
            (expr(), block.clone(), block.clone())
                .prop_map(|(c, t, e)| format!("if ({c}) {{ {t} }} else {{ {e} }}")),
            (expr(), block.clone(), expr(), block.clone())
                .prop_map(|(c, t, c2, e)| format!("if ({c}) {{ {t} }} else if ({c2}) {{ {e} }}")),
            (
                prop_oneof![1u64..5, Just(0), Just(100), Just(101)],
                block.clone()
            )
                .prop_map(|(n, b)| format!("unroll({n}) {{ {b} }}")),
            (expr(), block.clone()).prop_map(|(c, b)| format!("while ({c}) {{ {b} }}")),
            block.prop_map(|b| format!("$i = 0; while ($i < 3) {{ $i++; {b} }}")),
        ]
    })
}

/// Whole scripts from the grammar.
pub fn script() -> impl Strategy<Value = String> {
    let probe = (
        prop::collection::vec(select(ATTACH), 1..3),
        prop::option::of(expr()),
        prop::collection::vec(stmt(), 0..5),
    )
        .prop_map(|(attach, pred, body)| {
            let pred = pred.map(|p| format!(" /{p}/")).unwrap_or_default();
            format!(
                "{}{pred} {{\n  {}\n}}\n",
                attach.join(", "),
                body.join("\n  ")
            )
        });
    (
        prop::option::of(Just("#include <linux/sched.h>\nstruct x { int a; };\n")),
        prop::collection::vec(probe, 1..4),
    )
        .prop_map(|(pre, probes)| format!("{}{}", pre.unwrap_or(""), probes.concat()))
}

/// Every `.bt` script of the repository: the bundled ones and the tests' fixtures.
pub fn corpus() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = Vec::new();
    let mut dirs: Vec<PathBuf> = vec![root.join("bpf-scripts"), root.join("trace-runner/tests")];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "bt") {
                files.push(p);
            }
        }
    }
    files.sort();
    let scripts: Vec<String> = files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .collect();
    assert!(
        scripts.len() >= 20,
        "corpus: only {} scripts",
        scripts.len()
    );
    scripts
}

const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    "/",
    ";",
    ",",
    ":",
    "?",
    "\"",
    "$",
    "@",
    "->",
    ".",
    "++",
    "if",
    "else",
    "unroll(3)",
    "while",
    "$x",
    "@m",
    "pid",
    "printf(\"%d\\n\", ",
    "0x",
    "\\",
    "//",
    "/*",
    "*/",
    "#",
    "\n",
    "\t",
    "struct",
    "BEGIN",
    "kprobe:",
    "é",
    "\0",
];

/// One edit of a script.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit(usize, u8),
    Insert(usize, &'static str),
    Delete(usize, usize),
    Truncate(usize),
    /// Insert `len` bytes from `at` of another corpus script.
    Splice {
        pos: usize,
        other: usize,
        at: usize,
        len: usize,
    },
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<usize>();
    prop_oneof![
        (pos, 0u8..7).prop_map(|(p, b)| Mutation::FlipBit(p, b)),
        (pos, select(TOKENS)).prop_map(|(p, t)| Mutation::Insert(p, t)),
        (pos, 1usize..20).prop_map(|(p, n)| Mutation::Delete(p, n)),
        pos.prop_map(Mutation::Truncate),
        (pos, any::<usize>(), any::<usize>(), 1usize..200).prop_map(|(pos, other, at, len)| {
            Mutation::Splice {
                pos,
                other,
                at,
                len,
            }
        }),
        (pos, 1usize..100).prop_map(|(p, n)| Mutation::Duplicate(p, n)),
    ]
}

/// A corpus script with 1..6 edits (byte-level; the result is read as lossy UTF-8).
pub fn mutated(corpus: Vec<String>) -> impl Strategy<Value = String> {
    let n = corpus.len();
    (0..n, prop::collection::vec(mutation(), 1..6)).prop_map(move |(i, ms)| {
        let mut b = corpus[i].clone().into_bytes();
        for m in ms {
            let len = b.len().max(1);
            match m {
                Mutation::FlipBit(p, bit) => {
                    if !b.is_empty() {
                        b[p % len] ^= 1 << bit;
                    }
                }
                Mutation::Insert(p, t) => {
                    let p = p % (b.len() + 1);
                    b.splice(p..p, t.bytes());
                }
                Mutation::Delete(p, k) => {
                    let p = p % (b.len() + 1);
                    let e = (p + k).min(b.len());
                    b.drain(p..e);
                }
                Mutation::Truncate(p) => b.truncate(p % (b.len() + 1)),
                Mutation::Splice {
                    pos,
                    other,
                    at,
                    len: k,
                } => {
                    let o = corpus[other % n].as_bytes();
                    let at = at % (o.len() + 1);
                    let piece = o[at..(at + k).min(o.len())].to_vec();
                    let p = pos % (b.len() + 1);
                    b.splice(p..p, piece);
                }
                Mutation::Duplicate(p, k) => {
                    let p = p % (b.len() + 1);
                    let piece = b[p..(p + k).min(b.len())].to_vec();
                    b.splice(p..p, piece);
                }
            }
        }
        String::from_utf8_lossy(&b).into_owned()
    })
}

const WRAPPERS: &[(&str, &str)] = &[
    ("(", ")"),
    ("!", ""),
    ("-", ""),
    ("~", ""),
    ("(uint32)", ""),
    ("bswap(", ")"),
    ("@m[", "]"),
    ("(1, ", ")"),
    ("$a ? ", " : 1"),
    ("$a ? 1 : ", ""),
    ("1 + ", ""),
    ("", " + 1"),
    ("", " || $a"),
    ("", ".0"),
    ("str(", ")"),
];
const BLOCKS: &[(&str, &str)] = &[
    ("if ($a) { ", " }"),
    ("if ($a) { } else { ", " }"),
    ("while ($a < 1) { ", " }"),
    ("unroll(1) { ", " }"),
    ("if ($a) { } else if ($a) { ", " }"),
];

/// Nesting and size extremes: random mixes of nested constructs up to hundreds of
/// levels, and long scripts (many probes, statements, arguments, long strings).
pub fn extreme() -> impl Strategy<Value = String> {
    let nested_expr = prop::collection::vec(select(WRAPPERS), 0..300).prop_map(|ws| {
        let pre: String = ws.iter().map(|w| w.0).collect();
        let post: String = ws.iter().rev().map(|w| w.1).collect();
        format!("BEGIN {{ $a = 1; @m[1] = 1; $x = {pre}$a{post}; }}")
    });
    let nested_blocks =
        (prop::collection::vec(select(BLOCKS), 0..200), expr()).prop_map(|(bs, e)| {
            let pre: String = bs.iter().map(|w| w.0).collect();
            let post: String = bs.iter().rev().map(|w| w.1).collect();
            format!("BEGIN {{ $a = 1; @m[1] = 1; {pre}$x = {e};{post} }}")
        });
    let sizes = prop_oneof![
        (1usize..400).prop_map(|n| "BEGIN { @c = count(); }\n".repeat(n)),
        (1usize..3000).prop_map(|n| format!("BEGIN {{ {} }}", "$a = 1; ".repeat(n))),
        (1usize..600).prop_map(|n| format!(
            "BEGIN {{ printf(\"{}\\n\"{}); }}",
            "%d ".repeat(n),
            ", 1".repeat(n)
        )),
        (1usize..100_000).prop_map(|n| format!("BEGIN {{ printf(\"{}\"); }}", "x".repeat(n))),
        (1usize..10_000).prop_map(|n| format!("BEGIN {{ $a = {}; }}", "9".repeat(n))),
        (1usize..5_000).prop_map(|n| format!("BEGIN {{ ${} = 1; }}", "v".repeat(n))),
        (1usize..200).prop_map(|n| format!("BEGIN {{ @m[{}] = 1; }}", vec!["1"; n].join(", "))),
        (1usize..500).prop_map(|n| format!("BEGIN {{ $x = ({}); }}", vec!["1"; n].join(", "))),
        (1usize..2000).prop_map(|n| format!("{} {{ }}", vec!["BEGIN"; n].join(", "))),
        (1usize..200).prop_map(|n| format!("BEGIN {{ $a = 1; $x = $a{}; }}", " + $a".repeat(n))),
    ];
    prop_oneof![nested_expr, nested_blocks, sizes]
}

/// A diagnostic must point inside the script and render without panicking, as
/// `f.bt:LINE:COL: error: ...`, the line and a caret.
pub fn assert_located(d: &trace_lang::Diagnostic, src: &str) -> Result<(), TestCaseError> {
    prop_assert!(
        d.span.start <= d.span.end && d.span.end <= src.len(),
        "span {:?} outside a script of {} bytes: {}",
        d.span,
        src.len(),
        d.message
    );
    let r = d.render("f.bt", src);
    let lines: Vec<&str> = r.lines().collect();
    prop_assert!(lines[0].starts_with("f.bt:"), "{}", lines[0]);
    prop_assert!(lines[0].contains(": error: "), "{}", lines[0]);
    prop_assert!(!d.message.is_empty());
    prop_assert!(lines.len() >= 2, "{r}");
    prop_assert!(r.trim_end().ends_with(['^', '~']), "{r}");
    Ok(())
}

/// Integer expressions that analyse cleanly (so that code generation runs on them).
pub fn int_expr() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        (0i64..1000).prop_map(|v| v.to_string()),
        any::<i32>().prop_map(|v| v.to_string()),
        select(&["pid", "tid", "cpu", "nsecs", "uid", "$a", "$b", "@n", "@m[1]", "$1"][..])
            .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (inner.clone(), select(BINOPS), inner.clone())
                .prop_map(|(a, o, b)| format!("({a} {o} {b})")),
            (select(&["!", "~", "-"][..]), inner.clone()).prop_map(|(o, e)| format!("{o}({e})")),
            (inner.clone(), inner.clone(), inner.clone())
                .prop_map(|(c, t, e)| format!("({c} ? {t} : {e})")),
            (
                select(&["uint8", "int16", "uint32", "int64"][..]),
                inner.clone()
            )
                .prop_map(|(t, e)| format!("(({t}){e})")),
            inner.clone().prop_map(|e| format!("bswap({e})")),
            inner.prop_map(|e| format!("@m[{e}]")),
        ]
    })
}

/// Scripts that mostly analyse cleanly: integer variables and maps, aggregations,
/// printf, bounded loops, `unroll`, `if`/`else`.
pub fn typed_script() -> impl Strategy<Value = String> {
    let simple = prop_oneof![
        int_expr().prop_map(|e| format!("$a = {e};")),
        int_expr().prop_map(|e| format!("$b = {e};")),
        int_expr().prop_map(|e| format!("@n = {e};")),
        (int_expr(), int_expr()).prop_map(|(k, e)| format!("@m[{k}] = {e};")),
        (
            int_expr(),
            select(
                &[
                    "count()",
                    "sum(1)",
                    "hist($a)",
                    "lhist($a, 0, 100, 10)",
                    "min(pid)",
                    "avg(2)"
                ][..]
            )
        )
            .prop_map(|(k, a)| format!("@agg{}[{k}] = {a};", a.len())),
        prop::collection::vec(int_expr(), 0..4).prop_map(|a| format!(
            "printf(\"{}\\n\"{});",
            "%d ".repeat(a.len()),
            a.iter().map(|x| format!(", {x}")).collect::<String>()
        )),
        Just("printf(\"%s %s\\n\", comm, str(\"abc\"));".to_string()),
        Just("$a++; @n++;".to_string()),
    ];
    let stmt = simple.prop_recursive(3, 12, 3, |inner| {
        let block = prop::collection::vec(inner, 0..3).prop_map(|v| v.join(" "));
        prop_oneof![
            (int_expr(), block.clone(), block.clone())
                .prop_map(|(c, t, e)| format!("if ({c}) {{ {t} }} else {{ {e} }}")),
            (1u64..4, block.clone()).prop_map(|(n, b)| format!("unroll({n}) {{ {b} }}")),
            (1u64..5, block)
                .prop_map(|(n, b)| format!("$i{n} = 0; while ($i{n} < {n}) {{ $i{n}++; {b} }}")),
        ]
    });
    (
        select(&["BEGIN", "tracepoint:sched:sched_switch", "interval:s:1", "profile:hz:99"][..]),
        prop::option::of(int_expr()),
        prop::collection::vec(stmt, 1..5),
    )
        .prop_map(|(attach, pred, body)| {
            let pred = pred.map(|p| format!(" /{p}/")).unwrap_or_default();
            format!("BEGIN {{ $a = 1; $b = 2; @n = 0; @m[0] = 0; }}\n{attach}{pred} {{ $a = 1; $b = 2; {} }}\n", body.join(" "))
        })
}
