//! Code generation never matches builtin or function names: semantic analysis
//! resolves them to `trace_lang::names::{Builtin, Func}` and the emitter matches the
//! enums. Text check: no string literal in the crate's non-test code is a builtin or
//! function name (or the `arg`/`sarg` prefix of the numbered builtins).

#[path = "../../tests/shared/source_scan.rs"]
mod source_scan;

use source_scan::{code_lines, rust_files};
use std::path::Path;
use trace_lang::names::{Builtin, Func};

/// The string literals of one line of code (char literals such as `'"'` skipped).
fn string_literals(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                // A char literal `'x'` or `'\x'`; a lifetime `'a` has no closing quote
                // right after, which this leaves alone.
                let rest: String = chars.clone().take(3).collect();
                if rest.starts_with('\\') && rest.chars().nth(2) == Some('\'') {
                    chars.nth(2);
                } else if rest.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            '"' => {
                let mut lit = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            lit.push(c);
                            lit.extend(chars.next());
                        }
                        '"' => break,
                        c => lit.push(c),
                    }
                }
                out.push(lit);
            }
            _ => {}
        }
    }
    out
}

/// The names code generation must not spell.
fn forbidden() -> Vec<String> {
    let mut names: Vec<String> = Builtin::names();
    names.extend(Func::names().map(String::from));
    names.extend(["arg".to_string(), "sarg".to_string()]);
    names
}

/// `file:line: literal` for each name literal in the non-test code of `text`.
fn name_literals(file: &str, text: &str, names: &[String]) -> Vec<String> {
    let mut found = Vec::new();
    for (n, line) in code_lines(text) {
        for lit in string_literals(&line) {
            if names.contains(&lit) {
                found.push(format!("{file}:{n}: \"{lit}\" in {}", line.trim()));
            }
        }
    }
    found
}

#[test]
fn code_generation_matches_no_builtin_or_function_names() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() >= 8, "only {} files", files.len());
    let names = forbidden();
    let mut found = Vec::new();
    for file in &files {
        // Tables of other names that happen to coincide: syscall names (`exit`,
        // `time`), instruction mnemonics (`exit`), perf event names (`cpu`).
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if ["syscalls.rs", "disasm.rs", "abi.rs"].contains(&name) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        found.extend(name_literals(&file.display().to_string(), &text, &names));
    }
    assert!(
        found.is_empty(),
        "trace-codegen spells builtin/function names (match on trace_lang::names instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_finds_name_literals_in_code_only() {
    let names = forbidden();
    let code = r#"match name.as_str() { "printf" => 1, _ => 0 }
let b = name.starts_with("sarg"); let c = '"'; let d = "comm";
let ok = "map_lookup_elem"; // "count" in a comment
fn f<'a>(x: &'a str) -> &'a str { "$#" }
#[cfg(test)]
mod tests {
    fn t() { let _ = "hist"; }
}
"#;
    let found = name_literals("x.rs", code, &names);
    let lits: Vec<&str> = found.iter().map(|f| f.split('"').nth(1).unwrap()).collect();
    assert_eq!(lits, ["printf", "sarg", "comm", "$#"], "{found:#?}");
    assert_eq!(string_literals(r#"x("a\"b", 'c')"#), [r#"a\"b"#]);
}
