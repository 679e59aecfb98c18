//! Golden tests of code generation: every bundled script (`bpf-scripts/`), every output
//! fixture script (`tests/fixtures/output/`), the uprobe scripts typed from debug info
//! (`tests/fixtures/uprobe/`) and every tool of Debian's bpftrace package
//! (`/usr/sbin/*.bt`) is compiled against fixed node facts ([`FixedFacts`], test data in
//! `tests/golden/facts/`) and its resources and instruction listing compared with
//! `tests/golden/GROUP/NAME.txt` (for a script that does not compile: its error).
//! `UPDATE_GOLDEN=1 cargo test -p trace-runner golden` rewrites the files. Needs no
//! privileges. Without the bpftrace package the corpus group is skipped, except under
//! `CI=true`, where that fails.

use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::abi::Compiled;
use crate::compile::codegen::CodegenOptions;
use crate::compile::disasm::disassemble;
use crate::facts::fixed::FixedFacts;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn facts() -> &'static FixedFacts {
    static FACTS: OnceLock<FixedFacts> = OnceLock::new();
    FACTS.get_or_init(|| FixedFacts::load(&manifest_dir().join("tests/golden/facts")))
}

/// Resources and listings of a compiled script, one fact per line.
pub fn render(c: &Compiled) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "## maps");
    for (i, m) in c.maps.iter().enumerate() {
        let _ = writeln!(
            o,
            "{i} {} type {} key {} value {} entries {} flags {}",
            m.name, m.map_type, m.key_size, m.value_size, m.max_entries, m.flags
        );
    }
    let _ = writeln!(o, "lost {} stacks {:?}", c.lost_map, c.stack_map);
    let _ = writeln!(o, "## user maps");
    for m in &c.user_maps {
        let _ = writeln!(
            o,
            "@{} map {} keys {:?} value {:?} per_cpu {} array {}",
            m.name, m.kernel_map, m.keys, m.value, m.per_cpu, m.array
        );
    }
    let _ = writeln!(o, "## printfs");
    for (i, p) in c.printfs.iter().enumerate() {
        let _ = writeln!(o, "{i} {:?} {:?} args {:?}", p.action, p.format, p.args);
    }
    for (title, items) in [
        ("time formats", &c.time_formats),
        ("joins", &c.joins),
        ("probe names", &c.probe_names),
        ("warnings", &c.warnings),
    ] {
        if !items.is_empty() {
            let _ = writeln!(o, "## {title}");
            for (i, s) in items.iter().enumerate() {
                let _ = writeln!(o, "{i} {s:?}");
            }
        }
    }
    if !c.prints.is_empty() || !c.print_values.is_empty() {
        let _ = writeln!(o, "## prints");
        for p in &c.prints {
            let _ = writeln!(o, "map {} top {} div {}", p.map, p.top, p.div);
        }
        for t in &c.print_values {
            let _ = writeln!(o, "value {t:?}");
        }
    }
    for p in &c.programs {
        let _ = writeln!(
            o,
            "## program {} section {} points {} probe {:?}",
            p.code.name, p.code.section, p.points, p.probe_name
        );
        let _ = writeln!(o, "attach {:?}", p.attach);
        for (span, range) in &p.loops {
            let _ = writeln!(o, "loop {span:?} insns {range:?}");
        }
        o.push_str(&disassemble(&p.code, &c.maps));
    }
    o
}

/// Positional parameters a script needs to compile (as its tests run it).
fn params(file: &str) -> Vec<String> {
    match file {
        "opens-by-prefix.bt" => vec!["/tmp/kt-".into(), "8".into()],
        _ => Vec::new(),
    }
}

/// What a script compiles to against the fixed facts: [`render`], or the error.
fn generate(name: &str, src: &str) -> String {
    let opts = CodegenOptions::default();
    let predefined = trace_lang::Predefined {
        params: params(name),
        container_pid: Some(1),
    };
    match crate::commands::compile_source(name, src, &predefined, facts(), opts) {
        Ok(c) => render(&c),
        Err(e) => format!("## error (exit {})\n{}\n", e.1, e.0),
    }
}

/// The `.bt` files of a directory, sorted.
fn scripts(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("bt"));
    v.sort();
    v
}

/// Compare (or with `UPDATE_GOLDEN=1` rewrite) the goldens of `scripts` in
/// `tests/golden/GROUP/`; returns how many were checked. Goldens without a script fail.
fn check_group(group: &str, scripts: &[PathBuf]) -> usize {
    let dir = manifest_dir().join("tests/golden").join(group);
    let update = std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1");
    if update {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut failures = Vec::new();
    let mut names = Vec::new();
    for script in scripts {
        let stem = script.file_stem().unwrap().to_string_lossy().into_owned();
        let file = script.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(script)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", script.display()));
        let got = generate(&file, &src);
        let golden = dir.join(format!("{stem}.txt"));
        names.push(format!("{stem}.txt"));
        if update {
            std::fs::write(&golden, &got).unwrap();
            continue;
        }
        match std::fs::read_to_string(&golden) {
            Err(_) => failures.push(format!("{stem}: no golden {}", golden.display())),
            Ok(want) if want != got => {
                let (n, (w, g)) = want
                    .lines()
                    .chain(std::iter::repeat("<end>"))
                    .zip(got.lines().chain(std::iter::repeat("<end>")))
                    .enumerate()
                    .find(|(_, (w, g))| w != g)
                    .unwrap_or((0, ("?", "?")));
                failures.push(format!(
                    "{stem}: line {}: golden `{w}`, generated `{g}`",
                    n + 1
                ));
            }
            Ok(_) => {}
        }
    }
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !names.contains(&name) {
            failures.push(format!("{group}/{name}: a golden without its script"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {group} goldens differ (UPDATE_GOLDEN=1 rewrites them):\n{}",
        failures.len(),
        scripts.len(),
        failures.join("\n")
    );
    scripts.len()
}

#[test]
fn golden_bundled_scripts() {
    let n = check_group("bundled", &scripts(&manifest_dir().join("../bpf-scripts")));
    assert!(n >= 20, "only {n} bundled scripts");
}

#[test]
fn golden_output_fixture_scripts() {
    let n = check_group(
        "fixtures",
        &scripts(&manifest_dir().join("tests/fixtures/output")),
    );
    assert!(n >= 30, "only {n} fixture scripts");
}

#[test]
fn golden_uprobe_scripts_typed_from_debug_info() {
    // Scripts on the fixed facts' uprobe target with debug info (`args->NAME`, the
    // binary's `struct Foo`), and on one without (the error).
    let n = check_group(
        "uprobe",
        &scripts(&manifest_dir().join("tests/fixtures/uprobe")),
    );
    assert!(n >= 2, "only {n} uprobe scripts");
}

#[test]
fn golden_corpus_tools() {
    let tools = scripts(Path::new("/usr/sbin"));
    if tools.is_empty() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "no /usr/sbin/*.bt: the bpftrace package is missing and CI=true"
        );
        eprintln!("skipping: the bpftrace package (its /usr/sbin/*.bt tools) is not installed");
        return;
    }
    let n = check_group("corpus", &tools);
    assert_eq!(n, 38, "Debian's bpftrace 0.17 package has 38 tools");
}

/// The goldens are the code of the scripts, not of the machine: the same script
/// generates the same listing twice, and the fixed facts reach code generation.
#[test]
fn golden_generation_is_deterministic_and_uses_the_fixed_facts() {
    let src = r#"kprobe:vfs_read { @[kstack] = count(); printf("%d\n", ((struct task_struct *)curtask)->pid); $a = kaddr("avenrun"); }"#;
    let first = generate("t.bt", src);
    assert_eq!(first, generate("t.bt", src));
    // kaddr("avenrun") is the address in tests/golden/facts/kallsyms.txt ...
    assert!(first.contains("r0 = -2103200576\n"), "{first}");
    // ... and a kernel symbol missing there is an error, not this machine's address.
    let missing = generate("t.bt", r#"BEGIN { $a = kaddr("no_such_symbol_here"); }"#);
    assert!(
        missing.contains("Failed to resolve kernel symbol: no_such_symbol_here"),
        "{missing}"
    );
}
