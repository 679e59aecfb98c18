//! The runner's top-level modules must form a graph without cycles: the edges are the
//! `crate::MODULE` paths of each module's non-test code (files of `#[cfg(test)]`
//! modules and everything after a file's `#[cfg(test)]` test module are left out),
//! and a cycle between top-level modules fails the test, naming it. Pure text: no
//! privileges needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

#[path = "../../tests/shared/source_scan.rs"]
mod source_scan;
use source_scan::rust_files;

/// Cycles knowingly left in place, each as its sorted module list (none today).
const KNOWN_CYCLES: &[&[&str]] = &[];

/// Names of the modules declared test-only (`#[cfg(test)]` then `mod NAME;`).
fn test_only_modules(src: &str) -> Vec<String> {
    let lines: Vec<&str> = src.lines().map(str::trim).collect();
    lines
        .windows(2)
        .filter(|w| w[0] == "#[cfg(test)]")
        .filter_map(|w| {
            let rest = w[1].strip_prefix("pub ").unwrap_or(w[1]);
            let rest = rest.strip_prefix("pub(crate) ").unwrap_or(rest);
            rest.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect()
}

/// The non-test code of a file, comments removed.
fn code_of(src: &str) -> String {
    let mut out = String::new();
    let mut lines = src.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]"
            && lines.peek().is_some_and(|next| {
                next.trim_start().starts_with("mod ") && next.trim_end().ends_with('{')
            })
        {
            break;
        }
        out.push_str(line.split("//").next().unwrap_or(""));
        out.push('\n');
    }
    out
}

/// Top-level modules named by `crate::NAME` or `crate::{NAME, ...}` (nested groups too).
fn referenced(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level names of the group: split on commas at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                if depth == 0 {
                    item.push(c);
                }
            }
            out.insert(ident(&item));
        } else {
            out.insert(ident(rest));
        }
    }
    out.remove("");
    out
}

fn ident(s: &str) -> String {
    s.trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

/// `module -> modules it uses`, over `src/`.
fn graph(src_dir: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src_dir, &mut files);
    let mut test_only = BTreeSet::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        for m in test_only_modules(&text) {
            let dir = f.parent().unwrap();
            let owner = match f.file_stem().unwrap().to_str().unwrap() {
                "mod" | "main" | "lib" => dir.to_path_buf(),
                stem => dir.join(stem),
            };
            test_only.insert(owner.join(format!("{m}.rs")));
            test_only.insert(owner.join(&m));
        }
    }
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        if test_only.iter().any(|t| f.starts_with(t)) {
            continue;
        }
        let rel = f.strip_prefix(src_dir).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        let uses = g.entry(module.clone()).or_default();
        for m in referenced(&code) {
            if m != module {
                uses.insert(m);
            }
        }
    }
    g
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        for w in s.g.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.stack.contains(&w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out
}

#[test]
fn runner_modules_have_no_import_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let g = graph(&src);
    assert!(
        g.len() > 10,
        "found only {} modules under {}",
        g.len(),
        src.display()
    );
    let found = cycles(&g);
    let unexpected: Vec<String> = found
        .iter()
        .filter(|c| !KNOWN_CYCLES.iter().any(|k| k.iter().eq(c.iter())))
        .map(|c| {
            let edges: Vec<String> = c
                .iter()
                .map(|m| {
                    let inner: Vec<&str> = g[m]
                        .iter()
                        .filter(|n| c.contains(n))
                        .map(String::as_str)
                        .collect();
                    format!("{m} -> {}", inner.join(", "))
                })
                .collect();
            format!("cycle {{{}}}: {}", c.join(", "), edges.join("; "))
        })
        .collect();
    assert!(unexpected.is_empty(), "{}", unexpected.join("\n"));
}

#[test]
fn the_graph_reader_sees_groups_comments_and_test_modules() {
    let code = code_of(
        "use crate::a::X;\nuse crate::{b, c::{D, e}};\n// crate::comment\nfn f() { crate::d::g() }\n#[cfg(test)]\nmod tests {\n use crate::t;\n}\n",
    );
    let names: Vec<String> = referenced(&code).into_iter().collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    assert_eq!(
        test_only_modules("#[cfg(test)]\nmod golden;\nmod x;\n"),
        ["golden"]
    );
    let mut g = BTreeMap::new();
    g.insert("x".to_string(), BTreeSet::from(["y".to_string()]));
    g.insert(
        "y".to_string(),
        BTreeSet::from(["x".to_string(), "z".to_string()]),
    );
    g.insert("z".to_string(), BTreeSet::new());
    assert_eq!(cycles(&g), vec![vec!["x".to_string(), "y".to_string()]]);
}
