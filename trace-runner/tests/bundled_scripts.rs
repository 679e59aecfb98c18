//! The bundled scripts (`bpf-scripts/*.bt`, shipped by the plugin as `--script NAME`):
//! every one passes `trace-runner check --load` (verifier included), and every one runs
//! under `trace-runner run --deadline` and exits 0, all at once in parallel, while a
//! small Python workload makes each of them see at least one event where that is
//! possible here (an exec, an open, a `kill -0`, a capability check, a setuid, a
//! thread, a getaddrinfo, a TCP connection on loopback); the output must have the
//! script's header line and the event, or the map the script prints at exit.
//! Scripts whose events cannot be provoked safely here (OOM kills, retransmits, disk
//! I/O) are checked for their header only. Under `CI=true` missing BPF is a failure.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// Prefix of the files the workload creates (opens-by-prefix watches it).
const PREFIX: &str = "/tmp/kt-bundled-";

/// Every bundled script with what its output must contain (compared with runs of
/// spaces collapsed to one). `{pid}` stands for the workload's pid.
const EXPECTED: &[(&str, &[&str])] = &[
    ("biolatency", &["Tracing block device I/O"]),
    ("capable", &["TIME(ms) UID", "python3", "CAP_CHOWN"]),
    ("dns-latency", &["PID COMM", "localhost"]),
    ("execsnoop", &["TIME(ms) PID", "/tmp/kt-bundled-true-{pid}"]),
    ("killsnoop", &["TIME(ms) PID", "python3 0 {pid}"]),
    ("oomkill", &["TRIGGER VICTIM"]),
    (
        "opens-by-prefix",
        &[
            "Tracing opens under /tmp/kt-bundled-",
            "/tmp/kt-bundled-marker-{pid}",
            "@opens[python3]",
        ],
    ),
    ("opensnoop", &["PID COMM", "/tmp/kt-bundled-marker-{pid}"]),
    ("profile", &["@["]),
    ("readsize", &["@bytes["]),
    ("runqlat", &["@usecs:"]),
    ("setuids", &["TIME(ms) PID", "{pid} python3 0 setuid"]),
    (
        "syscount",
        &["Top 10 syscall ids:", "@syscall[", "@process["],
    ),
    ("tcpaccept", &["RADDR", "127.0.0.1"]),
    ("tcpconnect", &["DADDR", "{pid} python3", "127.0.0.1"]),
    ("tcplife", &["LADDR", "{pid} python3", "127.0.0.1"]),
    ("tcpretrans", &["TIME(ms) LADDR"]),
    ("threadsnoop", &["TIME(ms) PID", "{pid} python3"]),
    (
        "unexpected-exec",
        &["TIME(ms) PID", "/tmp/kt-bundled-true-{pid}", "@unexpected["],
    ),
    ("vfsstat", &["@[tracepoint:syscalls:sys_enter_"]),
];

/// Scripts without a BEGIN block: they are ready once they printed "Attaching".
const NO_BEGIN: &[&str] = &["profile", "readsize"];

const WORKLOAD: &str = r#"
import os, socket, threading
pid = os.getpid()
marker = "/tmp/kt-bundled-marker-%d" % pid
open(marker, "w").close()
os.chown(marker, 1, 1)
os.kill(pid, 0)
os.setuid(0)
socket.getaddrinfo("localhost", 80)
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen()
c = socket.create_connection(s.getsockname())
a, _ = s.accept()
c.close()
a.close()
s.close()
t = threading.Thread(target=lambda: None)
t.start()
t.join()
exe = "/tmp/kt-bundled-true-%d" % pid
os.system("cp /bin/true %s && %s" % (exe, exe))
os.unlink(exe)
os.unlink(marker)
print(pid)
"#;

/// Runs of whitespace collapsed to one space.
fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn scripts_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bpf-scripts")
}

fn script(name: &str) -> PathBuf {
    scripts_dir().join(format!("{name}.bt"))
}

/// Positional parameters a script needs.
fn params(name: &str) -> Vec<String> {
    match name {
        "opens-by-prefix" => vec![PREFIX.to_string(), PREFIX.len().to_string()],
        _ => Vec::new(),
    }
}

#[test]
fn every_script_is_listed_and_documented() {
    let mut files: Vec<String> = std::fs::read_dir(scripts_dir())
        .unwrap()
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_suffix(".bt")
                .map(String::from)
        })
        .collect();
    files.sort();
    let listed: Vec<String> = EXPECTED.iter().map(|(n, _)| n.to_string()).collect();
    assert_eq!(files, listed, "bpf-scripts/ and this test's list differ");
    let readme = std::fs::read_to_string(scripts_dir().join("README.md")).unwrap();
    for name in &files {
        let src = std::fs::read_to_string(script(name)).unwrap();
        assert!(
            src.contains(&format!("// {name}: ")),
            "{name}: no header line"
        );
        for part in ["Example output", "Probes:", "Run:"] {
            assert!(src.contains(part), "{name}: header lacks '{part}'");
        }
        assert!(
            readme.contains(&format!("[{name}]({name}.bt)")),
            "README lacks {name}"
        );
    }
}

#[test]
fn every_script_loads_through_the_verifier() {
    if !common::require_bpf() {
        return;
    }
    let handles: Vec<_> = EXPECTED
        .iter()
        .map(|(name, _)| {
            let name = name.to_string();
            thread::spawn(move || {
                let out = Command::new(common::runner())
                    .args(["check", "--load"])
                    .arg(script(&name))
                    .args(params(&name))
                    .output()
                    .unwrap();
                (name, out)
            })
        })
        .collect();
    let mut failures = Vec::new();
    for h in handles {
        let (name, out) = h.join().unwrap();
        if !out.status.success() {
            failures.push(format!("{name}: {}", String::from_utf8_lossy(&out.stderr)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

struct Running {
    name: &'static str,
    child: std::process::Child,
    stdout: Arc<Mutex<(String, usize)>>,
    stderr: thread::JoinHandle<String>,
    reader: thread::JoinHandle<()>,
}

fn start(name: &'static str, deadline: &str) -> Running {
    let mut child = Command::new(common::runner())
        .args(["run", "--deadline", deadline])
        .arg(script(name))
        .args(params(name))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = Arc::new(Mutex::new((String::new(), 0usize)));
    let out = BufReader::new(child.stdout.take().unwrap());
    let shared = Arc::clone(&stdout);
    let reader = thread::spawn(move || {
        for line in out.lines() {
            let Ok(line) = line else { break };
            let mut s = shared.lock().unwrap();
            s.0.push_str(&line);
            s.0.push('\n');
            s.1 += 1;
        }
    });
    let mut err = child.stderr.take().unwrap();
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    Running {
        name,
        child,
        stdout,
        stderr,
        reader,
    }
}

#[test]
fn every_script_runs_and_sees_its_events() {
    if !common::require_bpf() {
        return;
    }
    // Long enough for twenty scripts to compile, load and attach side by side on two
    // cores, and for the workload to run after all of them are ready.
    let deadline = "8s";
    let started = Instant::now();
    let mut running: Vec<Running> = EXPECTED.iter().map(|(n, _)| start(n, deadline)).collect();
    // Ready: the BEGIN block's header is out (so every probe is attached).
    let ready_by = Instant::now() + Duration::from_secs(7);
    loop {
        let waiting: Vec<&str> = running
            .iter()
            .filter(|r| {
                let lines = r.stdout.lock().unwrap().1;
                lines < if NO_BEGIN.contains(&r.name) { 1 } else { 2 }
            })
            .map(|r| r.name)
            .collect();
        if waiting.is_empty() {
            break;
        }
        assert!(
            Instant::now() < ready_by,
            "not attached after {:?}: {waiting:?}",
            started.elapsed()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let ready_after = started.elapsed();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", WORKLOAD])
        .output()
        .expect("run the workload with /usr/bin/python3");
    assert!(
        out.status.success(),
        "workload: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();

    let mut failures = Vec::new();
    for r in running.iter_mut() {
        let end = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = r.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > end {
                let _ = r.child.kill();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let _ = r.child.wait();
        let reader = std::mem::replace(&mut r.reader, thread::spawn(|| {}));
        reader.join().unwrap();
        let stderr = std::mem::replace(&mut r.stderr, thread::spawn(String::new))
            .join()
            .unwrap();
        let stdout = r.stdout.lock().unwrap().0.clone();
        let squeezed: String = stdout.lines().map(squeeze).collect::<Vec<_>>().join("\n");
        let expected = EXPECTED.iter().find(|(n, _)| *n == r.name).unwrap().1;
        let missing: Vec<String> = expected
            .iter()
            .map(|e| squeeze(&e.replace("{pid}", &pid)))
            .filter(|e| !squeezed.contains(e.as_str()))
            .collect();
        match status {
            Some(s) if s.success() && missing.is_empty() => {}
            Some(s) => failures.push(format!(
                "{}: exit {s}, missing {missing:?}\n--- stdout:\n{stdout}--- stderr:\n{stderr}",
                r.name
            )),
            None => failures.push(format!("{}: did not stop at its deadline", r.name)),
        }
    }
    eprintln!(
        "{} scripts ran; all attached after {ready_after:?}; total {:?}",
        running.len(),
        started.elapsed()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
