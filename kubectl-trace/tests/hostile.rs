//! The real binary against hostile or broken API servers on loopback (plain HTTP): huge
//! list replies (memory must stay bounded), paged lists, a server that accepts and never
//! answers, malformed JSON and invalid UTF-8, objects without a name, and names given
//! by the user that are not valid Kubernetes names. Every failure must be one line.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-trace");

/// What the fake server does with one request.
enum Reply {
    /// A status and a body.
    Body(u16, Vec<u8>),
    /// A 200 whose body never ends (`{"items":[{},{},...`).
    Endless,
    /// Nothing at all: the connection stays open and silent.
    Silent,
}

type Handler = dyn Fn(&str) -> Reply + Send + Sync;

struct FakeApi {
    url: String,
    paths: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    fn start(handler: impl Fn(&str) -> Reply + Send + Sync + 'static) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = paths.clone();
        let handler: Arc<Handler> = Arc::new(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                let (seen, handler) = (seen.clone(), handler.clone());
                thread::spawn(move || serve(stream, &seen, &*handler));
            }
        });
        FakeApi { url, paths }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, seen: &Mutex<Vec<String>>, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h.trim_end().is_empty() {
                break;
            }
        }
        seen.lock().unwrap().push(path.clone());
        match handler(&path) {
            Reply::Body(status, body) => {
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                // One write: head and body in separate packets would wait for
                // delayed ACKs (Nagle), 40 ms a request.
                let mut all = head.into_bytes();
                all.extend_from_slice(&body);
                if out.write_all(&all).is_err() {
                    return;
                }
            }
            Reply::Endless => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000000000\r\n\r\n{\"items\":[";
                let chunk = "{},".repeat(64 * 1024);
                if out.write_all(head.as_bytes()).is_err() {
                    return;
                }
                // Until the client gives up (or 10 GB, which it must never read).
                for _ in 0..(10usize << 30) / chunk.len() {
                    if out.write_all(chunk.as_bytes()).is_err() {
                        return;
                    }
                }
                return;
            }
            Reply::Silent => {
                thread::sleep(Duration::from_secs(120));
                return;
            }
        }
    }
}

fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: {server}\nusers:\n- name: test\n  user:\n    token: t0ken\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n    namespace: default\n"
    );
    let p = dir.join("config");
    std::fs::write(&p, text).unwrap();
    p
}

fn command(args: &[&str], kc: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .stdin(Stdio::null())
        .env("KUBECONFIG", kc)
        .env("HOME", "/nonexistent-home");
    c
}

fn plugin(args: &[&str], kc: &Path) -> Output {
    command(args, kc).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The single line of stderr (asserting there is exactly one).
fn one_line(out: &Output) -> String {
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "not one line: {err:?}");
    assert!(err.ends_with('\n'), "{err:?}");
    err.trim_end().to_string()
}

const MIB: u64 = 1 << 20;

/// Run the plugin, sampling its peak resident memory (VmHWM, Linux) until it exits; it
/// is killed when it passes `kill_above` bytes. Returns the output and the peak.
fn run_measured(args: &[&str], kc: &Path, kill_above: u64) -> (Output, u64) {
    let mut child = command(args, kc)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_path = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    let start = Instant::now();
    loop {
        if let Ok(s) = std::fs::read_to_string(&status_path) {
            if let Some(kb) = s
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kb * 1024);
            }
        }
        if peak > kill_above || start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        thread::sleep(Duration::from_millis(5));
    }
    (child.wait_with_output().unwrap(), peak)
}

fn job(name: &str) -> String {
    format!(
        r#"{{"metadata":{{"name":"{name}","namespace":"default","creationTimestamp":"2025-01-01T00:00:00Z","labels":{{"kubectl-trace/id":"{name}"}},"annotations":{{"kubectl-trace/target":"node/n1","kubectl-trace/node":"n1"}}}},"status":{{"active":1,"ready":1}}}}"#
    )
}

fn list(items: &[String], cont: &str) -> Vec<u8> {
    format!(
        r#"{{"kind":"List","apiVersion":"v1","metadata":{{"continue":"{cont}"}},"items":[{}]}}"#,
        items.join(",")
    )
    .into_bytes()
}

#[test]
#[cfg(target_os = "linux")]
fn a_list_of_millions_of_items_is_refused_in_bounded_memory() {
    // 2,000,000 tiny items in one 16 MB reply, the page size ignored.
    let huge = format!(r#"{{"items":[{}{{}}]}}"#, "{},".repeat(1_999_999)).into_bytes();
    let api = FakeApi::start(move |p| {
        if p.starts_with("/apis/batch/v1/namespaces/default/jobs") {
            Reply::Body(200, huge.clone())
        } else {
            Reply::Body(200, list(&[], ""))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let (out, peak) = run_measured(&["get"], &kc, 400 * MIB);
    eprintln!("peak RSS: {} MiB", peak / MIB);
    assert!(peak > 0, "no memory measured");
    assert!(peak < 200 * MIB, "peak RSS {} MiB", peak / MIB);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} answered more than 20000 jobs.batch for GET /apis/batch/v1/namespaces/default/jobs; refusing them",
            api.url
        )
    );
}

#[test]
#[cfg(target_os = "linux")]
fn an_endless_reply_is_cut_at_the_size_bound() {
    let api = FakeApi::start(|_| Reply::Endless);
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let (out, peak) = run_measured(&["get"], &kc, 400 * MIB);
    eprintln!("peak RSS: {} MiB", peak / MIB);
    assert!(peak > 0, "no memory measured");
    assert!(peak < 200 * MIB, "peak RSS {} MiB", peak / MIB);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} answered more than 64 MiB for one page (GET /apis/batch/v1/namespaces/default/jobs); refusing it",
            api.url
        )
    );
}

#[test]
fn lists_are_read_page_by_page() {
    let api = FakeApi::start(|p| {
        if !p.starts_with("/apis/batch/v1/namespaces/default/jobs") {
            return Reply::Body(200, list(&[], ""));
        }
        let (items, next) = if p.contains("continue=page3") {
            (vec![job("kubectl-trace-e"), job("kubectl-trace-f")], "")
        } else if p.contains("continue=page2") {
            (
                vec![job("kubectl-trace-c"), job("kubectl-trace-d")],
                "page3",
            )
        } else {
            (
                vec![job("kubectl-trace-a"), job("kubectl-trace-b")],
                "page2",
            )
        };
        Reply::Body(200, list(&items, next))
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let out = plugin(&["get"], &kc);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let names: Vec<&str> = stdout
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        names,
        [
            "kubectl-trace-a",
            "kubectl-trace-b",
            "kubectl-trace-c",
            "kubectl-trace-d",
            "kubectl-trace-e",
            "kubectl-trace-f"
        ]
    );
    let jobs: Vec<String> = api
        .paths()
        .into_iter()
        .filter(|p| p.contains("/jobs"))
        .collect();
    assert_eq!(jobs.len(), 3, "{jobs:?}");
    assert!(jobs.iter().all(|p| p.contains("limit=500")), "{jobs:?}");
}

#[test]
fn a_silent_server_times_out_with_one_line() {
    let api = FakeApi::start(|_| Reply::Silent);
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let start = Instant::now();
    let (out, _) = run_measured(&["get", "--request-timeout", "2s"], &kc, 1 << 40);
    let took = start.elapsed();
    assert!(took < Duration::from_secs(20), "took {took:?}");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} accepted the connection but did not answer within 2s (--request-timeout to change)",
            api.url
        )
    );
}

#[test]
fn the_default_request_timeout_is_in_the_help() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "http://127.0.0.1:1");
    let out = plugin(&["get", "--help"], &kc);
    let help = text(&out.stdout);
    assert!(help.contains("[default: 30s, and 10s to connect"), "{help}");
}

#[test]
fn malformed_replies_are_one_clear_line() {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            br#"{"items":[{1:2}]}"#.to_vec(),
            "key must be a string at line 1 column 12",
        ),
        (
            b"{\"items\":[{\"metadata\":{\"name\":\"a\xff\"}}]}".to_vec(),
            "invalid UTF-8 at byte 32",
        ),
        (b"{\"items\":[".to_vec(), "the reply ends early"),
        (
            br#"{"items":[{"metadata":{"name":"a","labels":"x"}}]}"#.to_vec(),
            "unexpected content: invalid type: string \"x\", expected a map at line 1 column 46",
        ),
    ];
    for (body, why) in cases {
        let api = FakeApi::start(move |p| {
            if p.starts_with("/apis/batch/v1/namespaces/default/jobs") {
                Reply::Body(200, body.clone())
            } else {
                Reply::Body(200, list(&[], ""))
            }
        });
        let dir = tempfile::tempdir().unwrap();
        let kc = kubeconfig(dir.path(), &api.url);
        let out = plugin(&["get"], &kc);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            one_line(&out),
            format!(
                "error: the API server at {} sent a reply that is not valid Kubernetes JSON (GET /apis/batch/v1/namespaces/default/jobs): {why}",
                api.url
            )
        );
    }
}

#[test]
fn a_pod_without_a_name_is_named_as_the_fault() {
    let api = FakeApi::start(|p| {
        if p.starts_with("/api/v1/namespaces/default/pods") {
            Reply::Body(
                200,
                list(
                    &[r#"{"metadata":{"labels":{"kubectl-trace/id":"abc"}},"spec":{"nodeName":"n1"}}"#.to_string()],
                    "",
                ),
            )
        } else {
            Reply::Body(200, list(&[], ""))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let out = plugin(&["logs", "abc"], &kc);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} sent a pod without metadata.name (GET /api/v1/namespaces/default/pods); it is not a valid Kubernetes object",
            api.url
        )
    );
}

#[test]
fn bad_names_are_refused_before_any_request() {
    let api = FakeApi::start(|_| Reply::Body(200, list(&[], "")));
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["get", "ab\ncd"], "error: invalid trace id \"ab\\ncd\": it contains the control character '\\n'"),
        (vec!["logs", "--", "-rf"], "error: invalid trace id \"-rf\": it must start and end with a letter or a digit"),
        (vec!["attach", "--", "-rf"], "error: invalid trace id \"-rf\""),
        (vec!["delete", "abc", "x\ny"], "error: invalid trace id \"x\\ny\""),
        (vec!["logs", "ab/../../etc"], "error: invalid trace id \"ab/../../etc\""),
        (vec!["-n", "a\nb", "get"], "error: invalid -n/--namespace \"a\\nb\": it contains the control character '\\n' (a namespace is an RFC 1123 label)"),
        (vec!["run", "pod/web\n0", "-e", "BEGIN { exit(); }"], "error: invalid pod name in TARGET \"web\\n0\""),
        (vec!["run", "node/-n1", "-e", "BEGIN { exit(); }"], "error: invalid node name in TARGET \"-n1\""),
        (vec!["run", "pod/web", "-c", "a\tb", "-e", "BEGIN { exit(); }"], "error: invalid -c/--container \"a\\tb\""),
        (vec!["run", "node/n1", "-o", "pvc:traces/-x", "-e", "BEGIN { exit(); }"], "error: invalid --output \"pvc:traces/-x\": the subdirectory part \"-x\""),
        (vec!["logs", "abc", "--from", "pvc:traces/a\nb"], "error: invalid --from \"pvc:traces/a\\nb\": it contains the control character '\\n'"),
    ];
    for (args, want) in cases {
        let out = plugin(&args, &kc);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?}: {}",
            text(&out.stderr)
        );
        let line = one_line(&out);
        assert!(line.starts_with(want), "{args:?}:\n{line}\nwanted {want}");
    }
    assert_eq!(api.paths(), Vec::<String>::new());
}

#[test]
fn endless_pages_are_refused() {
    // Full pages forever: the total bound stops it.
    let api = FakeApi::start(|p| {
        if p.starts_with("/apis/batch/v1/namespaces/default/jobs") {
            let items: Vec<String> = (0..500).map(|i| job(&format!("j{i}"))).collect();
            Reply::Body(200, list(&items, "more"))
        } else {
            Reply::Body(200, list(&[], ""))
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &api.url);
    let out = plugin(&["get"], &kc);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} answered more than 20000 jobs.batch for GET /apis/batch/v1/namespaces/default/jobs; refusing them",
            api.url
        )
    );
    assert_eq!(api.paths().len(), 41);

    // Empty pages forever: the page bound stops it.
    let api = FakeApi::start(|_| Reply::Body(200, list(&[], "again")));
    let kc = kubeconfig(dir.path(), &api.url);
    let out = plugin(&["get"], &kc);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!(
            "error: the API server at {} answered more than 1000 pages for GET /apis/batch/v1/namespaces/default/jobs; refusing it",
            api.url
        )
    );
}

#[test]
#[cfg(target_os = "linux")]
fn a_server_that_takes_no_connection_times_out_connecting() {
    // A listener that never accepts: once its queue is full, Linux drops new SYNs.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    let full =
        (0..4096).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => {
                    held.push(s);
                    false
                }
                Err(_) => true,
            },
        );
    assert!(full, "the listen queue never filled");
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), &format!("http://{addr}"));
    let start = Instant::now();
    let out = plugin(&["get", "--request-timeout", "1s"], &kc);
    assert!(start.elapsed() < Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        one_line(&out),
        format!("error: cannot reach the API server at http://{addr}: no connection within 1s")
    );
    drop(listener);
}
