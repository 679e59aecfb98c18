//! Deeply nested scripts: past `parser::MAX_DEPTH` a located "nested too deeply" error,
//! never a stack overflow; at the limit, parse and analysis fit a 2 MiB thread (the
//! stack of a tokio worker, where kubectl-trace may run the front end).

use trace_lang::parser::MAX_DEPTH;
use trace_lang::sema::NoEnv;

/// Nested constructs, each as a function of the nesting count.
/// A named script maker: the script for a nesting count.
type Maker = (&'static str, fn(usize) -> String);

fn constructs() -> Vec<Maker> {
    fn wrap(pre: &str, body: String) -> String {
        format!("BEGIN {{ $y = 1; @a[1] = 1; {pre}{body} }}")
    }
    vec![
        ("parentheses", |n| {
            wrap("", format!("$x = {}$y{};", "(".repeat(n), ")".repeat(n)))
        }),
        ("if blocks", |n| {
            wrap("", format!("{}{}", "if ($y) { ".repeat(n), "}".repeat(n)))
        }),
        ("else if chain", |n| {
            wrap(
                "",
                format!("if ($y) {{ }}{}", " else if ($y) { $y = 2; }".repeat(n)),
            )
        }),
        ("while blocks", |n| {
            wrap(
                "",
                format!("{}{}", "while ($y < 1) { ".repeat(n), "}".repeat(n)),
            )
        }),
        ("unroll blocks", |n| {
            wrap(
                "",
                format!("{}{}", "unroll (1) { ".repeat(n), "}".repeat(n)),
            )
        }),
        ("calls", |n| {
            wrap(
                "",
                format!("$x = {}$y{};", "bswap(".repeat(n), ")".repeat(n)),
            )
        }),
        ("map keys", |n| {
            wrap("", format!("$x = {}1{};", "@a[".repeat(n), "]".repeat(n)))
        }),
        ("tuples", |n| {
            wrap("", format!("$x = {}1{};", "(1, ".repeat(n), ")".repeat(n)))
        }),
        ("ternary (else)", |n| {
            wrap("", format!("$x = {}1;", "$y ? 1 : ".repeat(n)))
        }),
        ("ternary (then)", |n| {
            wrap(
                "",
                format!("$x = {}1{};", "$y ? ".repeat(n), " : 1".repeat(n)),
            )
        }),
        ("not", |n| wrap("", format!("$x = {}$y;", "!".repeat(n)))),
        ("negation", |n| {
            wrap("", format!("$x = {}$y;", "- ".repeat(n)))
        }),
        ("casts", |n| {
            wrap("", format!("$x = {}$y;", "(uint64)".repeat(n)))
        }),
        ("sum", |n| {
            wrap("", format!("$x = $y{};", " + $y".repeat(n)))
        }),
        ("right-nested sum", |n| {
            wrap(
                "",
                format!("$x = {}1{};", "$y + (".repeat(n), ")".repeat(n)),
            )
        }),
        ("or chain", |n| {
            wrap("", format!("$x = $y{};", " || $y == 2".repeat(n)))
        }),
        ("tuple fields", |n| {
            let tuple = format!("{}1{}", "(".repeat(n), ", 2)".repeat(n));
            wrap("", format!("$x = {tuple}{};", ".0".repeat(n)))
        }),
        ("predicate", |n| {
            format!("BEGIN /{}1{}/ {{ }}", "(".repeat(n), ")".repeat(n))
        }),
    ]
}

/// The largest count that parses (found by bisection; the limit makes it finite).
fn largest_parsing(make: fn(usize) -> String) -> usize {
    let (mut ok, mut bad) = (0, 4 * MAX_DEPTH);
    assert!(trace_lang::parse(&make(bad)).is_err());
    while bad - ok > 1 {
        let mid = (ok + bad) / 2;
        if trace_lang::parse(&make(mid)).is_ok() {
            ok = mid;
        } else {
            bad = mid;
        }
    }
    ok
}

#[test]
fn far_too_deep_is_a_located_error() {
    for (name, make) in constructs() {
        for n in [3_000, 10_000] {
            let src = make(n);
            let e = trace_lang::check(&src, &NoEnv).expect_err(name);
            assert!(
                e.message
                    .ends_with(&format!("nested too deeply (limit {MAX_DEPTH})")),
                "{name}: {}",
                e.message
            );
            let rendered = e.render("t.bt", &src);
            let first = rendered.lines().next().unwrap();
            assert!(first.starts_with("t.bt:1:"), "{name}: {first}");
            // The caret is inside the nested part of the script.
            assert!(e.span.start > 8 && e.span.start < src.len(), "{name}");
        }
    }
}

#[test]
fn the_error_points_at_the_level_past_the_limit() {
    let n = MAX_DEPTH + 36;
    let src = format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(n), ")".repeat(n));
    let e = trace_lang::parse(&src).unwrap_err();
    assert_eq!(
        e.render("t.bt", &src).lines().next().unwrap(),
        format!(
            "t.bt:1:{}: error: expression nested too deeply (limit {MAX_DEPTH})",
            "BEGIN { $x = ".len() + MAX_DEPTH
        )
    );
    let src = format!("BEGIN {{ {}{} }}", "if (1) { ".repeat(n), "}".repeat(n));
    let e = trace_lang::parse(&src).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{}", e.message);
}

#[test]
fn realistic_nesting_passes() {
    // Twenty levels of everything (bpftrace's tools nest less deeply).
    for (name, make) in constructs() {
        let src = make(20);
        if let Err(e) = trace_lang::check(&src, &NoEnv) {
            panic!("{name}: {}", e.render("t.bt", &src));
        }
    }
}

#[test]
fn deepest_accepted_scripts_pass_the_front_end_from_a_2_mib_thread() {
    for (name, make) in constructs() {
        let n = largest_parsing(make);
        assert!(n >= 20, "{name}: only {n} levels accepted");
        let src = make(n);
        let handle = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || {
                // Errors are fine (e.g. a tuple that is too big); a stack overflow
                // aborts the test binary.
                let _ = trace_lang::check(&src, &NoEnv);
            })
            .unwrap();
        handle.join().unwrap();
    }
}

#[test]
fn trees_built_without_the_parser_are_checked_too() {
    use trace_lang::ast::{Expr, ExprKind, Program, Stmt, StmtKind, UnOp, MAX_TREE_DEPTH};
    use trace_lang::span::Span;
    // 2,000 nested `!` built by hand: sema would recurse 2,000 deep.
    let mut e = Expr::new(ExprKind::Int(1), Span::new(8, 9));
    for _ in 0..2_000 {
        e = Expr::new(
            ExprKind::Unary {
                op: UnOp::Not,
                expr: Box::new(e),
            },
            Span::new(8, 9),
        );
    }
    let mut program = trace_lang::parse("BEGIN { 1; }").unwrap();
    program.probes[0].body = vec![Stmt {
        kind: StmtKind::Expr(e),
        span: Span::new(8, 9),
    }];
    assert!(program.node_deeper_than(MAX_TREE_DEPTH).is_some());
    let e = trace_lang::sema::analyse(&mut program, &NoEnv).unwrap_err();
    assert_eq!(
        e.message,
        format!("nested too deeply (limit {MAX_TREE_DEPTH} levels)")
    );
    // Every parsed script is within the tree limit.
    for (name, make) in constructs() {
        let src = make(largest_parsing(make));
        let program: Program = trace_lang::parse(&src).unwrap();
        assert_eq!(program.node_deeper_than(MAX_TREE_DEPTH), None, "{name}");
    }
}

#[test]
fn long_operator_chains_pass() {
    // A predicate listing 200 pids is an ordinary thing to write; every `||` counts a level.
    let terms: Vec<String> = (0..200).map(|i| format!("pid == {i}")).collect();
    let src = format!(
        "tracepoint:syscalls:sys_enter_openat /{}/ {{ @[comm] = count(); }}",
        terms.join(" || ")
    );
    if let Err(e) = trace_lang::check(&src, &NoEnv) {
        panic!("{}", e.render("t.bt", &src));
    }
    let sum = format!("BEGIN {{ @x = {}; exit(); }}", vec!["1"; 200].join(" + "));
    if let Err(e) = trace_lang::check(&sum, &NoEnv) {
        panic!("{}", e.render("t.bt", &sum));
    }
}
