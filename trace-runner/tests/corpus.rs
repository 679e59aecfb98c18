//! The bpftrace tools corpus: every `/usr/sbin/*.bt` that Debian's `bpftrace` package
//! installs must pass `trace-runner check --load` (parse, analyse, generate, verifier
//! load), and every one whose probes exist on this kernel (all but the kprobe-based
//! tools: this machine has no CONFIG_KPROBES) must run for a few seconds under
//! `trace-runner run --deadline` and exit 0. The test prints a per-tool report and
//! fails below the expected numbers (38 loaded, 21 run). A tool that reads a kernel
//! variable through `kaddr()` (loads.bt) cannot load on a kernel whose /proc/kallsyms
//! lists no data symbols (CONFIG_KALLSYMS_ALL off, as here); bpftrace 0.17 refuses it
//! there too, so that refusal, with its reason, counts as the expected result. Without
//! the bpftrace package it skips, except under `CI=true` (`.ci/run` installs it) where
//! that is a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const EXPECTED_TOOLS: usize = 38;
const EXPECTED_RUNNABLE: usize = 21;

fn tools() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/usr/sbin")
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("bt"));
    v.sort();
    v
}

/// Tools that need kprobes (absent here): they can only be loaded, not attached.
fn needs_kprobes(src: &str) -> bool {
    src.lines()
        .map(str::trim_start)
        .any(|l| l.starts_with("kprobe:") || l.starts_with("kretprobe:"))
}

fn first_error(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .find(|l| l.contains("error"))
        .or_else(|| text.lines().last())
        .unwrap_or("(no output)")
        .to_string()
}

#[test]
fn bpftrace_tools_corpus() {
    let tools = tools();
    if tools.is_empty() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("no /usr/sbin/*.bt: the bpftrace package is missing and CI=true");
        }
        eprintln!("skipping: the bpftrace package (its /usr/sbin/*.bt tools) is not installed");
        return;
    }
    if !common::require_bpf() {
        return;
    }
    // Each tool: its load result, and its run result when its probes exist here.
    let check = |tool: &PathBuf| -> (String, Result<(), String>, Option<Result<(), String>>) {
        let name = tool.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(tool).unwrap_or_default();
        let out = Command::new(common::runner())
            .args(["check", "--load"])
            .arg(tool)
            .output()
            .unwrap();
        if !out.status.success() {
            return (name, Err(first_error(&out.stderr)), None);
        }
        if needs_kprobes(&src) {
            return (name, Ok(()), None);
        }
        (name, Ok(()), Some(common_run(tool, Duration::from_secs(3))))
    };
    // Four at a time: most of each run is its 3 s deadline.
    let mut results = Vec::new();
    for chunk in tools.chunks(4) {
        let outcomes: Vec<_> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|tool| scope.spawn(|| check(tool)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        results.extend(outcomes);
    }
    let mut report = Vec::new();
    let (mut loaded, mut runnable, mut ran, mut refused) = (0, 0, 0, 0);
    for (name, load, run) in results {
        match (load, run) {
            (Err(e), _)
                if e.contains("Failed to resolve kernel symbol")
                    && e.contains("CONFIG_KALLSYMS_ALL is off") =>
            {
                refused += 1;
                report.push(format!(
                    "refused   {name}, as bpftrace refuses it here: {e}"
                ));
            }
            (Err(e), _) => report.push(format!("LOAD FAIL {name}: {e}")),
            (Ok(()), None) => {
                loaded += 1;
                report.push(format!("loaded    {name} (kprobes: not run here)"));
            }
            (Ok(()), Some(Ok(()))) => {
                loaded += 1;
                runnable += 1;
                ran += 1;
                report.push(format!("ran       {name}"));
            }
            (Ok(()), Some(Err(e))) => {
                loaded += 1;
                runnable += 1;
                report.push(format!("RUN FAIL  {name}: {e}"));
            }
        }
    }
    let summary = format!(
        "corpus: {loaded}/{} loaded, {ran}/{runnable} of the runnable ones ran\n{}",
        tools.len(),
        report.join("\n")
    );
    eprintln!("{summary}");
    assert!(
        tools.len() >= EXPECTED_TOOLS,
        "expected {EXPECTED_TOOLS} tools\n{summary}"
    );
    assert!(
        loaded + refused >= EXPECTED_TOOLS,
        "fewer than {EXPECTED_TOOLS} tools loaded\n{summary}"
    );
    assert!(
        runnable + refused >= EXPECTED_RUNNABLE,
        "fewer than {EXPECTED_RUNNABLE} runnable tools\n{summary}"
    );
    assert!(
        ran + refused >= EXPECTED_RUNNABLE,
        "fewer than {EXPECTED_RUNNABLE} tools ran\n{summary}"
    );
}

/// `trace-runner run --deadline D TOOL`, which must exit 0 by itself.
fn common_run(tool: &PathBuf, deadline: Duration) -> Result<(), String> {
    let mut child = Command::new(common::runner())
        .arg("run")
        .arg("--deadline")
        .arg(format!("{}s", deadline.as_secs()))
        .arg(tool)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    let limit = std::time::Instant::now() + deadline + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            let mut err = Vec::new();
            if let Some(mut s) = child.stderr.take() {
                use std::io::Read;
                let _ = s.read_to_end(&mut err);
            }
            return if status.success() {
                Ok(())
            } else {
                Err(format!("{status}: {}", first_error(&err)))
            };
        }
        if std::time::Instant::now() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err("did not stop after its deadline".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
