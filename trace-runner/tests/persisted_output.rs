//! `--output-dir`: the run directory holds every line printed to stdout, and meta.json
//! records the run.

mod common;

use std::process::Command;

use common::*;

#[test]
fn output_dir_gets_output_and_meta() {
    if !require_bpf() {
        return;
    }
    let base = std::env::temp_dir().join(format!("kt-persist-{}", std::process::id()));
    let out = Command::new(runner())
        .args([
            "run",
            "--output-dir",
            base.to_str().unwrap(),
            "--trace-id",
            "abc123",
            "--target",
            "pod/shop/web-0",
        ])
        .args([
            "-e",
            "BEGIN { printf(\"hello %d\\n\", 7); @x = count(); exit(); }",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let runs: Vec<_> = std::fs::read_dir(base.join("abc123"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(runs.len(), 1);
    let dir = runs[0].path();
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.ends_with('Z') && name.len() == 20,
        "run directory named by its UTC start: {name}"
    );
    let text = std::fs::read_to_string(dir.join("output.txt")).unwrap();
    assert_eq!(
        text,
        String::from_utf8_lossy(&out.stdout),
        "the persisted copy equals stdout"
    );
    assert!(
        text.contains("hello 7\n") && text.contains("@x: 1\n"),
        "{text}"
    );
    let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
    for needle in [
        "\"trace_id\": \"abc123\"",
        "\"target\": \"pod/shop/web-0\"",
        "\"status\": \"succeeded\"",
        "\"exit_status\": 0",
    ] {
        assert!(
            meta.replace("\":\"", "\": \"").contains(needle) || meta.contains(needle),
            "{needle} in {meta}"
        );
    }
    std::fs::remove_dir_all(&base).unwrap();
}

#[test]
fn relative_output_dir_is_relative_to_the_working_directory() {
    if !require_bpf() {
        return;
    }
    // The loader briefly switches mount namespaces: the working directory (and root)
    // must be the same after it, or late writes such as the final meta.json go astray.
    let cwd = std::env::temp_dir().join(format!("kt-persist-rel-{}", std::process::id()));
    std::fs::create_dir_all(&cwd).unwrap();
    let out = Command::new(runner())
        .current_dir(&cwd)
        .args([
            "run",
            "--output-dir",
            "runs",
            "--trace-id",
            "rel",
            "-e",
            "BEGIN { exit(); }",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = std::fs::read_dir(cwd.join("runs/rel"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let meta = std::fs::read_to_string(run.join("meta.json")).unwrap();
    assert!(
        meta.contains("succeeded"),
        "the final meta.json was written: {meta}"
    );
    std::fs::remove_dir_all(&cwd).unwrap();
}

/// The reader pod runs as nobody: whatever the runner's umask, what a run leaves on the
/// volume is readable by other users (directories 0755, files 0644).
#[test]
fn persisted_files_are_readable_by_the_non_root_reader() {
    use std::os::unix::fs::PermissionsExt;
    if !require_bpf() {
        return;
    }
    let base = std::env::temp_dir().join(format!("kt-persist-umask-{}", std::process::id()));
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"umask 077; exec "$0" run --output-dir "$1" --trace-id t1 -e 'BEGIN { @x = count(); exit(); }'"#)
        .arg(runner())
        .arg(&base)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let trace_dir = base.join("t1");
    let run_dir = std::fs::read_dir(&trace_dir)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&trace_dir), 0o755, "{}", trace_dir.display());
    assert_eq!(mode(&run_dir), 0o755, "{}", run_dir.display());
    for f in ["output.txt", "meta.json"] {
        assert_eq!(mode(&run_dir.join(f)), 0o644, "{f}");
    }
    let _ = std::fs::remove_dir_all(&base);
}
