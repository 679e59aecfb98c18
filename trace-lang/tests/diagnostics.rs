//! The front end's reporting: every error of a script (once each, up to the limit),
//! warnings returned as values, and the predefined values (`$container_pid`, positional
//! parameters) put in place by the front end itself.

use std::sync::Mutex;

use trace_lang::ast::ExprKind;
use trace_lang::diag::MAX_ERRORS;
use trace_lang::sema::{NoEnv, ProbeEnv};
use trace_lang::tracepoint_format::TpField;
use trace_lang::Predefined;

/// The `FILE:LINE:COL: error: ...` lines of a rendering.
fn error_lines(rendered: &str) -> Vec<&str> {
    rendered
        .lines()
        .filter(|l| l.contains(": error: "))
        .collect()
}

#[test]
fn every_independent_error_is_reported_in_order() {
    let src = "BEGIN {\n  foo(1);\n  @x = 1;\n  @x = \"s\";\n}\nEND { bar(); }\n";
    let e = trace_lang::check(src, &NoEnv).unwrap_err();
    let rendered = e.render("t.bt", src);
    let lines = error_lines(&rendered);
    assert_eq!(lines.len(), 3, "{rendered}");
    assert_eq!(lines[0], "t.bt:2:3: error: Unknown function: foo");
    assert!(lines[1].starts_with("t.bt:4:"), "{rendered}");
    assert_eq!(lines[2], "t.bt:6:7: error: Unknown function: bar");
    // Each comes with its line and caret.
    assert_eq!(rendered.lines().count(), 9, "{rendered}");
    assert_eq!(rendered.lines().nth(1), Some("  foo(1);"));
    assert_eq!(rendered.lines().nth(2), Some("  ^~~"));
    // The first one is what single-error callers see.
    assert_eq!(e.message, "Unknown function: foo");
}

#[test]
fn an_unknown_variable_is_one_error_not_one_per_use() {
    let src = "BEGIN { print($x); print($x + 1); @a = $x; }";
    let e = trace_lang::check(src, &NoEnv).unwrap_err();
    assert_eq!(e.errors.len(), 1, "{}", e.render("t.bt", src));
    assert_eq!(e.message, "Undefined or undeclared variable: $x");
    // In another probe it is another variable, and another error.
    let src = "BEGIN { print($x); } END { print($x); }";
    let e = trace_lang::check(src, &NoEnv).unwrap_err();
    assert_eq!(e.errors.len(), 2, "{}", e.render("t.bt", src));
}

#[test]
fn errors_stop_at_the_limit() {
    let calls: String = (0..MAX_ERRORS + 5).map(|i| format!("f{i}(); ")).collect();
    let src = format!("BEGIN {{ {calls}}}");
    let e = trace_lang::check(&src, &NoEnv).unwrap_err();
    assert_eq!(e.errors.len(), MAX_ERRORS);
    assert_eq!(e.more, 5);
    let rendered = e.render("t.bt", &src);
    assert_eq!(error_lines(&rendered).len(), MAX_ERRORS + 1);
    assert!(
        rendered.ends_with("t.bt: error: too many errors (5 more not shown)\n"),
        "{rendered}"
    );
}

#[test]
fn attach_point_errors_are_reported_together() {
    let src = "kprobe:a:b:c { }\nBEGIN { }\nuprobe:x { }\n";
    let e = trace_lang::check(src, &NoEnv).unwrap_err();
    let rendered = e.render("t.bt", src);
    let lines = error_lines(&rendered);
    assert_eq!(lines.len(), 2, "{rendered}");
    assert!(lines[0].starts_with("t.bt:1:1: error: "), "{rendered}");
    assert!(lines[1].starts_with("t.bt:3:1: error: "), "{rendered}");
}

/// An environment where no uprobe target exists: it warns, as the runner's does.
#[derive(Default)]
struct NoBinaries {
    warnings: Mutex<Vec<String>>,
}

impl ProbeEnv for NoBinaries {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn uprobe_exists(&self, path: &str, _symbol: &str) -> Option<bool> {
        let line = format!("warning: uprobe target '{path}' not found; its probes are skipped");
        self.warnings.lock().unwrap().push(line);
        Some(false)
    }
    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.warnings.lock().unwrap())
    }
}

#[test]
fn warnings_are_returned_not_printed() {
    let env = NoBinaries::default();
    let (_, analysis) =
        trace_lang::check("uprobe:/nope:f { } uprobe:/gone:g { } BEGIN { }", &env).unwrap();
    assert_eq!(
        analysis.warnings,
        [
            "warning: uprobe target '/nope' not found; its probes are skipped",
            "warning: uprobe target '/gone' not found; its probes are skipped",
        ]
    );
    assert!(analysis.attach[0].is_empty());
    // With an error later on, the warnings come with it.
    let e = trace_lang::check("uprobe:/nope:f { } BEGIN { foo(); }", &env).unwrap_err();
    assert_eq!(
        e.warnings,
        ["warning: uprobe target '/nope' not found; its probes are skipped"]
    );
    assert_eq!(e.message, "Unknown function: foo");
}

fn predefined(params: &[&str], container_pid: Option<u32>) -> Predefined {
    Predefined {
        params: params.iter().map(|p| p.to_string()).collect(),
        container_pid,
    }
}

#[test]
fn container_pid_and_parameters_are_put_in_place() {
    let src = "uprobe:/proc/$container_pid/exe:main /pid == $container_pid/ { @[$container_pid] = count(); }\n\
               interval:ms:$1 { unroll($2) { @n = @n + 1; } exit(); }\n";
    let (program, _) =
        trace_lang::check_with(src, &NoEnv, &predefined(&["100", "3"], Some(4242))).unwrap();
    assert_eq!(program.probes[0].attach[0].parts[0], "/proc/4242/exe");
    assert_eq!(program.probes[1].attach[0].text, "interval:ms:100");
    let pred = program.probes[0].predicate.as_ref().unwrap();
    let ExprKind::Binary { rhs, .. } = &pred.kind else {
        panic!("{pred:?}")
    };
    assert_eq!(rhs.kind, ExprKind::Int(4242));
    // The literal keeps the variable's span: it points at the text as written.
    let at = src.find("== $container_pid").unwrap() + 3;
    assert_eq!(
        (rhs.span.start, rhs.span.end),
        (at, at + "$container_pid".len())
    );
}

#[test]
fn errors_after_container_pid_keep_their_column() {
    let src = "BEGIN { @x = $container_pid; @x = \"s\"; }";
    let e = trace_lang::check_with(src, &NoEnv, &predefined(&[], Some(4294967295))).unwrap_err();
    let col = src.find("\"s\"").unwrap() + 1;
    assert!(
        e.render("t.bt", src)
            .starts_with(&format!("t.bt:1:{col}: error: ")),
        "{}",
        e.render("t.bt", src)
    );
}

#[test]
fn container_pid_without_a_target_is_a_located_error() {
    let src = "BEGIN { printf(\"%d\\n\", $container_pid); }";
    let e = trace_lang::check_with(src, &NoEnv, &predefined(&[], None)).unwrap_err();
    assert_eq!(
        e.render("t.bt", src),
        "t.bt:1:24: error: $container_pid needs a pod target\n\
         BEGIN { printf(\"%d\\n\", $container_pid); }\n                       ^~~~~~~~~~~~~~\n"
    );
    let src = "uprobe:/proc/$container_pid/exe:main { }";
    let e = trace_lang::check_with(src, &NoEnv, &predefined(&[], None)).unwrap_err();
    assert_eq!(e.message, "$container_pid needs a pod target");
    let src = "BEGIN { $container_pid = 1; }";
    let e = trace_lang::check_with(src, &NoEnv, &predefined(&[], Some(1))).unwrap_err();
    assert!(e.message.contains("cannot be assigned"), "{}", e.message);
}
