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
    assert!(failures.is_empty(), "{count} tools, failures:\n{}", failures.join("\n"));
}
