//! The plugin checks scripts locally with the language front end: deeply nested ones
//! must give the located "nested too deeply" error and exit 2, not overflow the stack.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-trace");

fn dry_run(script: &str) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(["run", "node/x", "--dry-run=client", "-e", script])
        .env("KUBECONFIG", "/nonexistent/config")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn deeply_nested_scripts_give_a_located_error() {
    let n = 3_000;
    let scripts = [
        format!("BEGIN {{ $x = {}1{}; }}", "(".repeat(n), ")".repeat(n)),
        format!(
            "BEGIN {{ {}{} }}",
            "if (1) { ".repeat(10_000),
            "}".repeat(10_000)
        ),
        format!("BEGIN {{ $x = {}1{}; }}", "bswap(".repeat(n), ")".repeat(n)),
        format!("BEGIN {{ $x = {}1; }}", "!".repeat(n)),
        format!("BEGIN {{ $x = 1{}; }}", " + 1".repeat(20_000)),
        format!("BEGIN {{ {}{} }}", "while (1) { ".repeat(n), "}".repeat(n)),
    ];
    for src in &scripts {
        let (code, err) = dry_run(src);
        assert_eq!(code, Some(2), "{}", &err[..err.len().min(300)]);
        let first = err.lines().next().unwrap_or("");
        assert!(first.starts_with("<expression>:1:"), "{first}");
        assert!(first.contains("nested too deeply (limit "), "{first}");
        assert!(err
            .lines()
            .nth(2)
            .unwrap_or("")
            .trim_start()
            .starts_with('^'));
    }
}
