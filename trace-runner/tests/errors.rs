//! Bad scripts: each gives `FILE:LINE:COL: error: ...`, the line and a caret, and exit 2.

mod common;

use std::process::Command;

use common::runner;

fn check(src: &str) -> (i32, String) {
    let out = Command::new(runner())
        .args(["check", "-e", src])
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn malformed_scripts_give_located_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "tracepoint:syscalls:sys_enter_openat { @ = count() ",
            "stdin:1:",
        ),
        ("BEGIN { printf(\"%d\\n\"); }", "stdin:1:"),
        ("BEGIN { printf(\"%d %d\\n\", 1); }", "stdin:1:"),
        ("BEGIN { $x = 1 + ; }", "stdin:1:"),
        ("BEGIN { @x = count(); @x = 5; }", "stdin:1:"),
        ("BEGIN { nosuchfunc(1); }", "stdin:1:"),
        ("BEGIN { print($y); }", "stdin:1:"),
        ("BEGIN {\n  @a[1] = 1;\n  @a[1, 2] = 2;\n}", "stdin:3:"),
        ("BEGIN { \"unterminated }", "stdin:1:"),
        ("foo:bar { }", "stdin:1:"),
        ("BEGIN { count(); }", "stdin:1:"),
        ("BEGIN { @h = lhist(1, 10, 0, 1); }", "stdin:1:"),
        ("BEGIN { if (1) { exit(); }", "stdin:1:"),
        ("BEGIN\n{\n  @x = (1 + 2;\n}", "stdin:3:"),
        ("BEGIN { @x = \"a\" + 1; }", "stdin:1:"),
    ];
    for (src, location) in cases {
        let (code, err) = check(src);
        assert_eq!(code, 2, "exit code for {src:?}: {err}");
        assert!(err.starts_with(location), "location for {src:?}: {err}");
        assert!(err.contains(": error: "), "message for {src:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines.len() >= 3, "source line and caret for {src:?}: {err}");
        assert!(
            lines[2].trim_start().starts_with('^'),
            "caret for {src:?}: {err}"
        );
        assert!(!err.contains("panicked"), "no panic for {src:?}: {err}");
    }
}

/// `$container_pid` becomes a number in the front end; the errors after it on its line
/// still point at the column the user wrote.
#[test]
fn errors_after_container_pid_keep_their_column() {
    let src = "BEGIN { @x = $container_pid; nosuchfunc(1); }";
    let col = src.find("nosuchfunc").unwrap() + 1;
    let (code, err) = check(src);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with(&format!("stdin:1:{col}: error: ")),
        "expected column {col}: {err}"
    );
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[2].find('^'), lines[1].find("nosuchfunc"), "{err}");
}

/// Every independent error is printed, each located with its line and caret; an
/// unknown variable once however often it is used.
#[test]
fn every_error_is_printed() {
    let src = "BEGIN { foo(1); @x = 1; @x = \"s\"; print($y); print($y); }";
    let (code, err) = check(src);
    assert_eq!(code, 2, "{err}");
    let located: Vec<&str> = err.lines().filter(|l| l.starts_with("stdin:1:")).collect();
    assert_eq!(located.len(), 3, "{err}");
    assert_eq!(located[0], "stdin:1:9: error: Unknown function: foo");
    assert!(located[1].contains("Type mismatch for @x"), "{err}");
    assert_eq!(
        located[2],
        "stdin:1:41: error: Undefined or undeclared variable: $y"
    );
    assert_eq!(err.lines().count(), 9, "{err}");
    for pair in err.lines().collect::<Vec<_>>().chunks(3) {
        assert_eq!(pair[1], src, "{err}");
        assert!(pair[2].trim_start().starts_with('^'), "{err}");
    }
}

/// The analysis' warnings are printed as before, ahead of the errors.
#[test]
fn warnings_come_before_the_errors() {
    let (code, err) = check("uprobe:/nonexistent/kt:f { } BEGIN { foo(); }");
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().take(2).collect::<Vec<_>>(),
        [
            "warning: uprobe target '/nonexistent/kt' not found; its probes are skipped",
            "stdin:1:38: error: Unknown function: foo",
        ],
        "{err}"
    );
}

/// Without a target, `$container_pid` is an error at the use, not a failure of the
/// whole script without a location.
#[test]
fn container_pid_without_a_target_is_located() {
    let out = Command::new(runner())
        .args([
            "run",
            "-e",
            "BEGIN { printf(\"%d\\n\", $container_pid); exit(); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("stdin:1:24: error: $container_pid needs a pod target\n"),
        "{err}"
    );
}

/// `$container_pid` in an attach point is the pid's digits (it was padded with spaces
/// to its width, which broke the attach point's syntax).
#[test]
fn container_pid_in_an_attach_point() {
    let (code, err) = check("uprobe:/proc/$container_pid/exe:main { @[tid] = count(); }");
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("error"), "{err}");
}

#[test]
fn unknown_tracepoint_suggests_names() {
    if !common::require_bpf() {
        return;
    }
    let (code, err) = check("tracepoint:syscalls:sys_enter_opnat { }");
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("sys_enter_openat"),
        "suggestion expected: {err}"
    );
}

#[test]
fn script_file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("kt-err-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.bt");
    std::fs::write(&file, "BEGIN {\n  @x = ;\n}\n").unwrap();
    let out = Command::new(runner())
        .arg("check")
        .arg(&file)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.starts_with(&format!("{}:2:", file.display())), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_script_whose_every_probe_is_skipped_is_an_error_not_a_hang() {
    if !common::require_bpf() {
        return;
    }
    let out = Command::new(runner())
        .args([
            "run",
            "-e",
            "uprobe:/nonexistent/binary:foo { @ = count(); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("nothing to trace"), "{err}");
}
