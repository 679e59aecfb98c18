//! `bench/run.sh --smoke` runs from a checkout and prints every section of its report
//! (each measurement once, small counts: this checks the script, not speed).

use std::path::{Path, PathBuf};
use std::process::Command;

fn in_ci() -> bool {
    std::env::var("CI").as_deref() == Ok("true")
}

/// `target/<profile>/NAME`, next to this test's own directory (built by the workspace test run).
fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let bin = exe.parent()?.parent()?.join(name);
    bin.is_file().then_some(bin)
}

#[test]
fn benchmark_script_smoke_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let runner = sibling_binary("trace-runner");
    let plugin = sibling_binary("kubectl-trace");
    let have_bpftrace = Path::new("/usr/bin/bpftrace").exists();
    let is_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false);
    let (Some(runner), Some(plugin), true, true) = (runner, plugin, have_bpftrace, is_root) else {
        assert!(
            !in_ci(),
            "the benchmark smoke run needs root, bpftrace and the built binaries under CI=true"
        );
        eprintln!(
            "skipping: needs root, bpftrace, and target/debug/{{trace-runner,kubectl-trace}}"
        );
        return;
    };
    let out = Command::new("bash")
        .arg(root.join("bench/run.sh"))
        .arg("--smoke")
        .env("TRACE_RUNNER", &runner)
        .env("KUBECTL_TRACE", &plugin)
        .output()
        .expect("run bench/run.sh");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "bench/run.sh --smoke failed:\n{stdout}\n{stderr}"
    );
    for section in ["Start-up", "Peak RSS", "Per-event cost", "Size", "Plugin"] {
        assert!(
            stdout.contains(section),
            "no '{section}' section in:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("faster"),
        "start-up ratios are printed:\n{stdout}"
    );
}
