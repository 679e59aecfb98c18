//! Hostile scripts through the real binary: deep nesting gives a located "nested too
//! deeply" error and exit 2 (never a stack overflow, exit 134); the deepest accepted
//! scripts compile; the limits of the BPF stack, of the program size and of the
//! verifier's walk are named, with the probe and the place in the script.

mod common;

use std::process::Command;

use trace_lang::parser::MAX_DEPTH;

fn runner_check(args: &[&str], src: &str) -> (Option<i32>, String) {
    let dir = std::env::temp_dir().join(format!("hostile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Through a file: some scripts are too long for an argument.
    let file = dir.join(format!("s{}.bt", src.len()));
    std::fs::write(&file, src).unwrap();
    let out = Command::new(common::runner())
        .arg("check")
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    std::fs::remove_file(&file).ok();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    (
        out.status.code(),
        err.replace(&file.display().to_string(), "s.bt"),
    )
}

/// Deeply nested scripts (the examples of the issue), as a function of the depth.
/// A named script maker: the script for a nesting count.
type Maker = (&'static str, fn(usize) -> String);

fn nested() -> Vec<Maker> {
    vec![
        ("parentheses", |n| {
            format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(n), ")".repeat(n))
        }),
        ("if blocks", |n| {
            format!(
                "BEGIN {{ $y = 1; {}{} }}",
                "if ($y) { ".repeat(n),
                "}".repeat(n)
            )
        }),
        ("calls", |n| {
            format!("BEGIN {{ $x = {}1{}; }}", "bswap(".repeat(n), ")".repeat(n))
        }),
        ("indexing", |n| {
            format!(
                "BEGIN {{ @a[1] = 1; $x = {}1{}; }}",
                "@a[".repeat(n),
                "]".repeat(n)
            )
        }),
        ("tuples", |n| {
            format!("BEGIN {{ $x = {}1{}; }}", "(1, ".repeat(n), ")".repeat(n))
        }),
        ("ternaries", |n| {
            format!("BEGIN {{ $y = 1; $x = {}1; }}", "$y ? 1 : ".repeat(n))
        }),
        ("unroll", |n| {
            format!("BEGIN {{ {}{} }}", "unroll (1) { ".repeat(n), "}".repeat(n))
        }),
        ("while", |n| {
            format!(
                "BEGIN {{ $y = 1; {}{} }}",
                "while ($y < 1) { ".repeat(n),
                "}".repeat(n)
            )
        }),
        ("not", |n| {
            format!("BEGIN {{ $y = 1; $x = {}$y; }}", "!".repeat(n))
        }),
        ("negation", |n| {
            format!("BEGIN {{ $y = 1; $x = {}$y; }}", "- ".repeat(n))
        }),
        ("sum", |n| {
            format!("BEGIN {{ $y = 1; $x = $y{}; }}", " + $y".repeat(n))
        }),
        ("right-nested sum", |n| {
            format!(
                "BEGIN {{ $y = 1; $x = {}1{}; }}",
                "$y + (".repeat(n),
                ")".repeat(n)
            )
        }),
    ]
}

#[test]
fn deep_nesting_is_a_located_error_not_a_crash() {
    for (name, make) in nested() {
        for n in [3_000, 20_000] {
            let (code, err) = runner_check(&[], &make(n));
            assert_eq!(code, Some(2), "{name} x{n}: {err}");
            let lines: Vec<&str> = err.lines().collect();
            assert!(lines[0].starts_with("s.bt:1:"), "{name} x{n}: {}", lines[0]);
            assert!(
                lines[0].ends_with(&format!("nested too deeply (limit {MAX_DEPTH})")),
                "{name} x{n}: {}",
                lines[0]
            );
            assert!(lines[2].trim_start().starts_with('^'), "{name} x{n}");
        }
    }
}

/// The most levels that parse.
fn largest_accepted(make: fn(usize) -> String) -> usize {
    (1..=4 * MAX_DEPTH)
        .take_while(|n| trace_lang::parse(&make(*n)).is_ok())
        .last()
        .unwrap_or(0)
}

#[test]
fn deepest_accepted_scripts_compile() {
    for (name, make) in nested() {
        let n = largest_accepted(make);
        assert!(n >= 20, "{name}: {n}");
        let (code, err) = runner_check(&[], &make(n));
        // Compiles, or a located error (a tuple too big, ...): never a crash.
        assert!(
            code == Some(0) || code == Some(2),
            "{name} x{n}: {code:?} {err}"
        );
        assert!(
            code == Some(0) || err.starts_with("s.bt:1:"),
            "{name} x{n}: {err}"
        );
    }
}

#[test]
fn long_operator_chains_reuse_one_stack_slot() {
    // 60 terms: each spilled left operand used to keep 8 bytes until the statement's
    // end (480 + the variables > 512 bytes).
    let src = format!(
        "BEGIN {{ $y = 1; $z = 2; $x = $y{}; printf(\"%d\\n\", $x); }}",
        " + $z".repeat(59)
    );
    let (code, err) = runner_check(&[], &src);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_predicate_of_200_alternatives_loads() {
    if !common::require_bpf() {
        return;
    }
    // Every `||` counts one nesting level: a predicate listing 200 pids must still pass,
    // through the front end, code generation and the kernel's verifier.
    let terms: Vec<String> = (0..200).map(|i| format!("pid == {i}")).collect();
    let src = format!(
        "tracepoint:syscalls:sys_enter_openat /{}/ {{ @[comm] = count(); }}",
        terms.join(" || ")
    );
    let (code, err) = runner_check(&["--load"], &src);
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn a_full_bpf_stack_says_what_fills_it_and_where() {
    let src = "BEGIN {\n  $s = \"a\"; $t = \"b\"; $u = \"c\"; $v = \"d\";\n  $w = \"e\"; $x = \"f\"; $y = \"g\"; $z = \"h\";\n  $x1 = \"i\";\n}\n";
    let (code, err) = runner_check(&[], src);
    assert_eq!(code, Some(2), "{err}");
    assert_eq!(
        err.lines().next().unwrap(),
        "s.bt:4:3: error: out of BPF stack in BEGIN: this needs 64 more bytes, but 512 of the \
         kernel's 512-byte limit hold 8 scratch variables and 0 hold temporaries of this \
         statement (strings, map keys, printf arguments); use fewer variables or shorter \
         strings (str(x, N))"
    );
    assert_eq!(err.lines().nth(2).unwrap(), "  ^~~~~~~~~", "{err}");
}

#[test]
fn too_many_instructions_is_caught_while_generating() {
    // 100 * 100 * 100 statements: more than the kernel takes, found before the kernel
    // is asked (and before minutes of generation).
    let src =
        "BEGIN {\n  $y = 1;\n  unroll(100) { unroll(100) { unroll(100) { $y = $y + 1; } } }\n}\n";
    let started = std::time::Instant::now();
    let (code, err) = runner_check(&[], src);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "s.bt:3:45: error: the program for BEGIN has more than 1,000,000 instructions, \
             the kernel's limit (BPF_COMPLEXITY_LIMIT_INSNS)"
        ),
        "{err}"
    );
    assert!(started.elapsed().as_secs() < 60);
}

#[test]
fn unbounded_loops_name_the_verifier_limit_and_the_loop() {
    if !common::require_bpf() {
        return;
    }
    let src = "BEGIN {\n  $i = 0;\n  while (1) { $i++; }\n}\n";
    let (code, err) = runner_check(&["--load"], src);
    assert_eq!(code, Some(2), "{err}");
    let first = err.lines().next().unwrap();
    assert!(
        first.starts_with("s.bt:3:3: error: the kernel's verifier gave up on BEGIN: it could not prove that this loop ends"),
        "{err}"
    );
    assert!(
        first.contains("1,000,000 instructions (BPF_COMPLEXITY_LIMIT_INSNS)"),
        "{err}"
    );
    assert_eq!(
        err.lines().nth(2).unwrap(),
        format!("  ^{}", "~".repeat("while (1) { $i++; }".len() - 1)),
        "{err}"
    );

    let src = "BEGIN { while (1) {} }";
    let (code, err) = runner_check(&["--load"], src);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with(
            "s.bt:1:9: error: the kernel's verifier rejected BEGIN: this loop never ends"
        ),
        "{err}"
    );
}

#[test]
fn run_names_the_verifier_limit_as_check_load_does() {
    if !common::require_bpf() {
        return;
    }
    let out = Command::new(common::runner())
        .args(["run", "-e", "BEGIN { while (1) {} }"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with(
            "stdin:1:9: error: the kernel's verifier rejected BEGIN: this loop never ends"
        ),
        "{err}"
    );
}

/// Found by the code-generation fuzz test: a NUL inside an attach point reached the ELF
/// writer (section names cannot hold one) and panicked. Now a located error.
#[test]
fn a_control_byte_in_an_attach_point_is_a_located_error() {
    let (code, err) = runner_check(
        &[],
        "BEGIN { }\ntracepoint:\0syscalls:sys_enter_read { @[probe] = count(); }\n",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("s.bt:2:12: error: invalid character in attach point (control byte 0x00)"),
        "{err}"
    );
}
