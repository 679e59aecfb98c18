//! Malformed scripts: each must fail with a located, bpftrace-worded error.

use trace_lang::sema::NoEnv;

/// The first line of the rendered diagnostic, e.g. `t.bt:1:9: error: ...`.
fn first_line(src: &str) -> String {
    let e = match trace_lang::check(src, &NoEnv) {
        Ok(_) => panic!("expected an error for: {src}"),
        Err(e) => e,
    };
    let rendered = e.render("t.bt", src);
    rendered.lines().next().unwrap().to_string()
}

fn assert_err(src: &str, line: usize, col: usize, msg: &str) {
    assert_eq!(
        first_line(src),
        format!("t.bt:{line}:{col}: error: {msg}"),
        "script: {src}"
    );
}

#[test]
fn full_rendering() {
    let src = "BEGIN {\n\t@x = foo(1);\n}\n";
    let e = trace_lang::check(src, &NoEnv).unwrap_err();
    assert_eq!(
        e.render("t.bt", src),
        "t.bt:2:7: error: Unknown function: foo\n\t@x = foo(1);\n\t     ^~~\n"
    );
}

#[test]
fn syntax_errors() {
    assert_err(
        "BEGIN { printf(\"x\") }}",
        1,
        22,
        "syntax error, unexpected }",
    );
    assert_err("BEGIN {\n  $x = ;\n}", 2, 8, "syntax error, unexpected ;");
    assert_err("BEGIN { printf(\"abc); }", 1, 16, "unterminated string");
    assert_err(
        "kprobe:f { $x = 1 $y = 2; }",
        1,
        19,
        "syntax error, unexpected variable",
    );
    assert_err(
        "BEGIN {\n  @x = 1;\n",
        2,
        10,
        "syntax error, unexpected end of file",
    );
    assert_err(
        "BEGIN { if $x { } }",
        1,
        12,
        "syntax error, unexpected variable, expecting (",
    );
    assert_err(
        "BEGIN { @x[1 = 2; }",
        1,
        14,
        "syntax error, unexpected =, expecting ]",
    );
    assert_err(
        "BEGIN { /* never closed }",
        1,
        9,
        "end of file during comment",
    );
    assert_err(
        "BEGIN { unroll(0) { } }",
        1,
        16,
        "unroll minimum value is 1",
    );
    assert_err(
        "BEGIN { unroll(101) { } }",
        1,
        16,
        "unroll maximum value is 100",
    );
    assert_err(
        "BEGIN { printf(\"\\q\"); }",
        1,
        17,
        "invalid escape character '\\q'",
    );
}

#[test]
fn attach_point_errors() {
    assert_err("foo:bar { }", 1, 1, "unknown probe type 'foo'");
    assert_err(
        "BEGIN { }\n\ntracepoint:syscalls { }",
        3,
        1,
        "tracepoint probe type requires 2 arguments",
    );
    assert_err(
        "profile:hz:abc { }",
        1,
        1,
        "Invalid rate of profile probe: 'abc'",
    );
    assert_err(
        "interval:m:1 { }",
        1,
        1,
        "Invalid unit 'm' for interval probe (expected hz, s, ms or us)",
    );
    assert_err(
        "uprobe:readline { }",
        1,
        1,
        "uprobe probe type requires 2 arguments",
    );
    assert_err(
        "usdt:/bin/x { }",
        1,
        1,
        "usdt probe type requires 2 or 3 arguments",
    );
    assert_err(
        "usdt:/bin/x:a:b:c { }",
        1,
        1,
        "usdt probe type requires 2 or 3 arguments",
    );
    assert_err(
        "usdt:/bin/x:p: { }",
        1,
        1,
        "usdt probe has an empty argument: 'usdt:/bin/x:p:'",
    );
}

#[test]
fn semantic_errors() {
    assert_err("BEGIN { @x = foo(1); }", 1, 14, "Unknown function: foo");
    assert_err(
        "BEGIN { printf(\"%d %d\\n\", 1); }",
        1,
        9,
        "printf: Not enough arguments for format string (1 supplied, 2 expected)",
    );
    assert_err(
        "BEGIN { printf(\"%d\\n\", 1, 2); }",
        1,
        9,
        "printf: Too many arguments for format string (2 supplied, 1 expected)",
    );
    assert_err(
        "BEGIN { printf(\"%s\\n\", pid); }",
        1,
        24,
        "printf: %s specifier expects a value of type string (uint64 supplied)",
    );
    assert_err(
        "BEGIN { printf(\"%d\\n\", comm); }",
        1,
        24,
        "printf: %d specifier expects a value of type integer (string[16] supplied)",
    );
    assert_err(
        "BEGIN {\n  $y = $x + 1;\n}",
        2,
        8,
        "Undefined or undeclared variable: $x",
    );
    assert_err("BEGIN { print(@nope); }", 1, 15, "Undefined map: @nope");
    assert_err(
        "kprobe:f { count(); }",
        1,
        12,
        "count() should be directly assigned to a map",
    );
    assert_err(
        "kprobe:f { $x = hist(1); }",
        1,
        17,
        "hist() should be directly assigned to a map",
    );
    assert_err(
        "tracepoint:syscalls:sys_enter_read { @x = arg0; }",
        1,
        43,
        "The arg0 builtin can only be used with 'kprobes', 'uprobes' and 'usdt' probes (tracepoint used here)",
    );
    assert_err(
        "kprobe:f { @x = retval; }",
        1,
        17,
        "The retval builtin can only be used with 'kretprobe', 'uretprobe' and 'kretfunc' probes (kprobe used here)",
    );
    assert_err(
        "kprobe:f { @x = args->foo; }",
        1,
        17,
        "The args builtin can only be used with 'tracepoint', 'kfunc' and 'uprobe' probes (kprobe used here)",
    );
    assert_err(
        "kprobe:f { @x = count(); }\nkprobe:g { @x = 1; }",
        2,
        17,
        "Type mismatch for @x: trying to assign value of type 'int64' when map already contains a value of type 'count'",
    );
    assert_err(
        "kprobe:f { @x[1] = 1; @x[comm] = 2; }",
        1,
        23,
        "Argument mismatch for @x: trying to access with arguments: [string[16]] when map expects arguments: [int64]",
    );
    assert_err(
        "kprobe:f { $x = 1; $x = comm; }",
        1,
        20,
        "Type mismatch for $x: trying to assign value of type 'string[16]' when variable already contains a value of type 'int64'",
    );
    assert_err(
        "kprobe:f { @x = comm + 1; }",
        1,
        17,
        "Type mismatch for '+': comparing 'string[16]' with 'int64'",
    );
    assert_err(
        "kprobe:f { @x = comm < \"a\"; }",
        1,
        17,
        "The < operator can not be used on expressions of types string[16], string[64]",
    );
    assert_err(
        "kprobe:f { @x = pid ? 1 : \"a\"; }",
        1,
        17,
        "Ternary operator must return the same type: have 'int64' and 'string[64]'",
    );
    assert_err(
        "kprobe:f { @x = lhist(pid, 10, 5, 1); }",
        1,
        32,
        "lhist() max must be greater than min (provided min 10, max 5)",
    );
    assert_err(
        "kprobe:f { @x = lhist(pid, 0, 100, 0); }",
        1,
        36,
        "lhist() step must be >= 1 (0 provided)",
    );
    assert_err(
        "kprobe:f { @x = sum(comm); }",
        1,
        21,
        "sum() expects an integer argument (string[16] provided)",
    );
    assert_err(
        "kprobe:f { printf(comm); }",
        1,
        19,
        "printf() expects a string literal as the first argument",
    );
    assert_err(
        "kprobe:f { $x = printf(\"a\"); }",
        1,
        17,
        "printf() does not return a value",
    );
    assert_err(
        "BEGIN { @x = func; }",
        1,
        14,
        "The func builtin can not be used with 'BEGIN' probes",
    );
    assert_err(
        "BEGIN { printf(\"%q\", 1); }",
        1,
        16,
        "printf: Unknown format string token: %q",
    );
    assert_err(
        "BEGIN { @x = 1; clear(@x[1]); }",
        1,
        23,
        "clear() expects a map with no keys, e.g. clear(@x)",
    );
    assert_err(
        "BEGIN { $x++; }",
        1,
        9,
        "Undefined or undeclared variable: $x",
    );
}

mod env {
    use trace_lang::sema::{FieldInfo, ProbeEnv};
    use trace_lang::tracepoint_format::{parse_format, TpField};
    use trace_lang::types::Type;

    pub struct OneTp;
    impl ProbeEnv for OneTp {
        fn tracepoints(&self, c: &str, n: &str) -> Option<Vec<(String, String)>> {
            let ok = c == "sched" && (n == "sched_switch" || n == "sched_*");
            Some(if ok {
                vec![("sched".into(), "sched_switch".into())]
            } else {
                vec![]
            })
        }
        fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
            Some(parse_format(
                "\tfield:char prev_comm[16];\toffset:8;\tsize:16;\tsigned:1;\n\tfield:pid_t prev_pid;\toffset:24;\tsize:4;\tsigned:1;\n",
                false,
            ))
        }
        fn has_kernel_types(&self) -> bool {
            true
        }
        fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
            (record == "struct sock" && field == "skc_num").then_some(FieldInfo {
                offset: 14,
                ty: Type::Int {
                    bytes: 2,
                    signed: false,
                },
                bitfield: None,
            })
        }
        fn type_size(&self, name: &str) -> Option<u64> {
            (name == "struct sock").then_some(776)
        }
    }
}

#[test]
fn environment_errors() {
    let check = |src: &str| {
        let e = trace_lang::check(src, &env::OneTp).unwrap_err();
        e.render("t.bt", src).lines().next().unwrap().to_string()
    };
    assert_eq!(
        check("tracepoint:sched:nope { }"),
        "t.bt:1:1: error: tracepoint not found: sched:nope"
    );
    assert_eq!(
        check("tracepoint:sched:sched_* { @x = args->next_pid; }"),
        "t.bt:1:33: error: tracepoint 'sched:sched_switch' has no field 'next_pid'"
    );
    assert!(trace_lang::check(
        "tracepoint:sched:sched_switch { @[args->prev_comm] = count(); @p = args->prev_pid; }",
        &env::OneTp
    )
    .is_ok());
}

/// Kernel types: with BTF (here a fake one with `struct sock { u16 skc_num; }` only),
/// unknown constants, types and fields are errors; without BTF they are accepted.
#[test]
fn kernel_type_errors() {
    let check = |src: &str| {
        let e = trace_lang::check(src, &env::OneTp).unwrap_err();
        e.render("t.bt", src).lines().next().unwrap().to_string()
    };
    // (TCP_CLOSE itself is a built-in constant: see trace-lang/src/constants.rs)
    assert_eq!(
        check("kprobe:f { @x = NOT_A_CONSTANT_X; }"),
        "t.bt:1:17: error: Unknown identifier: 'NOT_A_CONSTANT_X'"
    );
    assert_eq!(
        check("kprobe:f { $s = (struct sock *)arg0; @x = $s->sk_nope; }"),
        "t.bt:1:43: error: 'struct sock' has no field named 'sk_nope'"
    );
    assert_eq!(
        check("kprobe:f { $s = (struct nope *)arg0; @x = $s->a; }"),
        "t.bt:1:43: error: Unknown kernel type 'struct nope' (not in this kernel's BTF)"
    );
    assert!(trace_lang::check(
        "kprobe:f { $s = (struct sock *)arg0; @x = $s->skc_num + AF_INET + sizeof(struct sock); }",
        &env::OneTp
    )
    .is_ok());
    for src in [
        "kprobe:f { @x = TCP_NOPE; }",
        "kprobe:f { $s = (struct sock *)arg0; @x = $s->sk_num; }",
        "kprobe:f { $s = (struct sock *)arg0; @x = $s->a.b[2]; }",
    ] {
        assert!(trace_lang::check(src, &trace_lang::NoEnv).is_ok(), "{src}");
    }
}
