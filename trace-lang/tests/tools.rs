//! Every bpftrace tool installed on this machine (`/usr/sbin/*.bt`) must parse.

use std::fs;

#[test]
fn installed_tools_parse() {
    let Ok(dir) = fs::read_dir("/usr/sbin") else {
        return;
    };
    let mut failures = Vec::new();
    let mut count = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("bt") {
            continue;
        }
        let Ok(src) = fs::read_to_string(&path) else {
            continue;
        };
        count += 1;
        if let Err(e) = trace_lang::parse(&src) {
            failures.push(e.render(&path.display().to_string(), &src));
        }
    }
    eprintln!("parsed {count} tools");
    assert!(
        failures.is_empty(),
        "{count} tools, failures:\n{}",
        failures.join("\n")
    );
}

/// Not asserted: which installed tools sema accepts without BTF (most use struct
/// field access or enum constants, which need BTF/C definitions). Run with
/// `--nocapture` to see the first error of each.
#[test]
fn installed_tools_analyse_report() {
    let Ok(dir) = fs::read_dir("/usr/sbin") else {
        return;
    };
    let mut paths: Vec<_> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("bt"))
        .collect();
    paths.sort();
    for path in paths {
        let Ok(src) = fs::read_to_string(&path) else {
            continue;
        };
        match trace_lang::check(&src, &trace_lang::NoEnv) {
            Ok(_) => eprintln!("ok   {}", path.display()),
            Err(e) => eprint!("FAIL {}", e.render(&path.display().to_string(), &src)),
        }
    }
}

/// Truncated and mangled tool sources never make the front end panic.
#[test]
fn truncated_sources_do_not_panic() {
    let Ok(dir) = fs::read_dir("/usr/sbin") else {
        return;
    };
    let mut sources: Vec<String> = dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("bt"))
        .filter_map(|p| fs::read_to_string(p).ok())
        .collect();
    sources.push("BEGIN { @x[1] = \"é\"; printf(\"%s ü\\n\", @x[1]); }".into());
    for src in &sources {
        let mut cut = 0;
        while cut < src.len() {
            if src.is_char_boundary(cut) {
                let _ = trace_lang::check(&src[..cut], &trace_lang::NoEnv);
                let mangled = format!("{}}}{}", &src[..cut], &src[cut..]);
                let _ = trace_lang::check(&mangled, &trace_lang::NoEnv);
            }
            cut += 13;
        }
    }
}
