//! The real binary: through kubectl's plugin mechanism, with `--dry-run=client` (no API
//! server contacted), and against a small HTTP API server on loopback (success, RBAC
//! refusal, unreachable server, multi-path KUBECONFIG).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

const BIN: &str = env!("CARGO_BIN_EXE_kubectl-trace");
const SCRIPT: &str = "tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }";

fn bin_dir() -> PathBuf {
    Path::new(BIN).parent().unwrap().to_path_buf()
}

/// PATH with the plugin's directory first.
fn plugin_path() -> String {
    let old = std::env::var("PATH").unwrap_or_default();
    format!("{}:{old}", bin_dir().display())
}

fn kubeconfig(dir: &Path, name: &str, server: &str, namespace: Option<&str>) -> PathBuf {
    let ns = namespace
        .map(|n| format!("    namespace: {n}\n"))
        .unwrap_or_default();
    let text = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: test\n  cluster:\n    server: {server}\nusers:\n- name: test\n  user:\n    token: t0ken\ncontexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n{ns}"
    );
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn plugin(args: &[&str], kubeconfig: Option<&Path>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args).stdin(Stdio::null());
    c.env_remove("KUBECONFIG");
    if let Some(k) = kubeconfig {
        c.env("KUBECONFIG", k);
    }
    c.env("HOME", "/nonexistent-home");
    c.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A loopback API server: each request is answered by `handler(method, path_and_query,
/// body)` with (status, JSON); every request is recorded.
struct FakeApi {
    url: String,
    requests: Arc<Mutex<Vec<(String, String, String)>>>,
    connections: Arc<AtomicUsize>,
}

type Handler = dyn Fn(&str, &str, &str) -> (u16, String) + Send + Sync;

impl FakeApi {
    fn start(handler: Box<Handler>) -> FakeApi {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (reqs, conns) = (requests.clone(), connections.clone());
        let handler: Arc<Handler> = Arc::from(handler);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { break };
                conns.fetch_add(1, Ordering::SeqCst);
                let (reqs, handler) = (reqs.clone(), handler.clone());
                thread::spawn(move || serve(stream, &reqs, &*handler));
            }
        });
        FakeApi {
            url,
            requests,
            connections,
        }
    }

    fn seen(&self) -> Vec<(String, String, String)> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve(stream: TcpStream, reqs: &Mutex<Vec<(String, String, String)>>, handler: &Handler) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut out = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let path = parts.next().unwrap_or("").to_string();
        let mut len = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body).into_owned();
        let (status, resp) = handler(&method, &path, &body);
        reqs.lock().unwrap().push((method, path, body));
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            resp.len()
        );
        if out
            .write_all(head.as_bytes())
            .and_then(|_| out.write_all(resp.as_bytes()))
            .is_err()
        {
            return;
        }
    }
}

#[test]
fn help_works_through_kubectl_plugin_mechanism() {
    let out = Command::new("kubectl")
        .args(["trace", "--help"])
        .env("PATH", plugin_path())
        .output()
        .expect("kubectl is installed");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Usage: kubectl trace"), "{stdout}");
    for sub in [
        "run",
        "get",
        "logs",
        "attach",
        "delete",
        "version",
        "completion",
    ] {
        assert!(stdout.contains(sub), "{sub} missing:\n{stdout}");
    }
    let out = Command::new("kubectl")
        .args(["trace", "run", "--help"])
        .env("PATH", plugin_path())
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert!(stdout.contains("Examples:"), "{stdout}");
    assert!(stdout.contains("--dry-run"), "{stdout}");
    assert!(
        !stdout.contains("--imagename"),
        "hidden alias shown:\n{stdout}"
    );

    let out = Command::new("kubectl")
        .args(["plugin", "list"])
        .env("PATH", plugin_path())
        .output()
        .unwrap();
    assert!(
        text(&out.stdout).contains("kubectl-trace"),
        "{}",
        text(&out.stdout)
    );

    let out = Command::new("kubectl")
        .args(["trace", "version"])
        .env("PATH", plugin_path())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("ghcr.io/kubectl-trace/trace-runner:"));
}

#[test]
fn bad_script_exits_2_with_located_error_through_kubectl() {
    let out = Command::new("kubectl")
        .args([
            "trace",
            "run",
            "node/worker-1",
            "--dry-run=client",
            "-o",
            "yaml",
            "-e",
            "tracepoint:syscalls:sys_enter_openat {\n  @[comm] = count(;\n}",
        ])
        .env("PATH", plugin_path())
        .env("KUBECONFIG", "/nonexistent/config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines[0].starts_with("<expression>:2:"), "{err}");
    assert!(lines[0].contains(": error: "), "{err}");
    assert_eq!(lines[1], "  @[comm] = count(;", "{err}");
    assert!(lines[2].trim_start().starts_with('^'), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn dry_run_of_a_node_target_contacts_no_api_server() {
    let api = FakeApi::start(Box::new(|_, _, _| (500, "{}".into())));
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "config", &api.url, Some("tracing"));

    let out = plugin(
        &[
            "run",
            "node/worker-1",
            "--dry-run=client",
            "-o",
            "yaml",
            "-e",
            SCRIPT,
        ],
        Some(&kc),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let y = text(&out.stdout);
    assert!(y.starts_with("---\napiVersion: v1\n"), "{y}");
    assert_eq!(y.matches("\n---\n").count() + 1, 2, "{y}");
    assert!(
        y.contains("kind: ConfigMap") && y.contains("kind: Job"),
        "{y}"
    );
    assert!(y.contains("namespace: tracing"), "{y}");
    assert!(y.contains("nodeName: worker-1"), "{y}");

    let out = plugin(
        &[
            "run",
            "node/worker-1",
            "--dry-run=client",
            "-o",
            "json",
            "-e",
            SCRIPT,
        ],
        Some(&kc),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][0]["kind"], "ConfigMap");
    assert_eq!(v["items"][1]["kind"], "Job");

    // Old flag spellings still work.
    let out = plugin(
        &[
            "run",
            "node/w",
            "--dry-run=client",
            "-o",
            "json",
            "-e",
            SCRIPT,
            "--imagename",
            "my/runner:1",
            "--deadline",
            "120",
            "--deadline-grace-period",
            "10",
            "--fetch-headers",
        ],
        Some(&kc),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--fetch-headers"),
        "{}",
        text(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"][1]["spec"]["activeDeadlineSeconds"], 130);
    assert_eq!(
        v["items"][1]["spec"]["template"]["spec"]["containers"][0]["image"],
        "my/runner:1"
    );

    assert_eq!(
        api.connections.load(Ordering::SeqCst),
        0,
        "the API server was contacted"
    );
}

#[test]
fn multi_path_kubeconfig_gives_the_context_namespace() {
    let dir = tempfile::tempdir().unwrap();
    // First file: only the current context's name; second: the context itself.
    let a = dir.path().join("a");
    std::fs::write(
        &a,
        "apiVersion: v1\nkind: Config\ncurrent-context: second\n",
    )
    .unwrap();
    let b = kubeconfig(dir.path(), "b", "http://127.0.0.1:9", None);
    let btext = std::fs::read_to_string(&b)
        .unwrap()
        .replace("- name: test\n  context:", "- name: second\n  context:")
        + "    namespace: from-b\n";
    std::fs::write(&b, btext).unwrap();
    let joined = std::env::join_paths([&a, &b]).unwrap();
    let out = Command::new(BIN)
        .args([
            "run",
            "node/n1",
            "--dry-run=client",
            "-o",
            "json",
            "-e",
            SCRIPT,
        ])
        .env("KUBECONFIG", joined)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["items"][1]["metadata"]["namespace"], "from-b");
}

#[test]
fn unreachable_api_server_is_one_line() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(
        dir.path(),
        "config",
        &format!("http://127.0.0.1:{port}"),
        None,
    );
    let out = plugin(&["get"], Some(&kc));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        format!(
            "error: cannot reach the API server at http://127.0.0.1:{port}: connection refused\n"
        )
    );
}

#[test]
fn missing_and_bad_kubeconfig() {
    let out = plugin(&["get"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: no kubeconfig found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "clusters: [ {").unwrap();
    let out = plugin(&["get"], Some(&bad));
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.starts_with("error: bad kubeconfig"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn run_against_a_loopback_api_server() {
    let api = FakeApi::start(Box::new(|method, path, body| {
        match (method, path) {
        ("GET", p) if p.starts_with("/api/v1/nodes/worker-1") => {
            (200, r#"{"apiVersion":"v1","kind":"Node","metadata":{"name":"worker-1"}}"#.into())
        }
        ("GET", p) if p.starts_with("/api/v1/namespaces/tracing") => {
            (200, r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"tracing"}}"#.into())
        }
        ("POST", p) if p.starts_with("/apis/batch/v1/namespaces/tracing/jobs") => {
            let mut v: serde_json::Value = serde_json::from_str(body).unwrap();
            v["metadata"]["uid"] = "job-uid-9".into();
            (201, v.to_string())
        }
        ("POST", p) if p.starts_with("/api/v1/namespaces/tracing/configmaps") => (201, body.to_string()),
        _ => (404, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":404,"reason":"NotFound","message":"nope"}"#.into()),
    }
    }));
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "config", &api.url, None);
    let out = plugin(
        &[
            "-n",
            "tracing",
            "run",
            "node/worker-1",
            "-e",
            SCRIPT,
            "--ttl",
            "2h",
        ],
        Some(&kc),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with("trace ") && stdout.contains("created (job/kubectl-trace-"),
        "{stdout}"
    );
    let seen = api.seen();
    let verbs: Vec<(&str, &str)> = seen
        .iter()
        .map(|(m, p, _)| (m.as_str(), p.split('?').next().unwrap()))
        .collect();
    assert_eq!(
        verbs,
        [
            ("GET", "/api/v1/nodes/worker-1"),
            ("GET", "/api/v1/namespaces/tracing"),
            ("POST", "/apis/batch/v1/namespaces/tracing/jobs"),
            ("POST", "/api/v1/namespaces/tracing/configmaps"),
        ]
    );
    let cm: serde_json::Value = serde_json::from_str(&seen[3].2).unwrap();
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "job-uid-9");
    let job: serde_json::Value = serde_json::from_str(&seen[2].2).unwrap();
    assert_eq!(job["spec"]["ttlSecondsAfterFinished"], 7200);
}

#[test]
fn forbidden_through_the_real_binary() {
    let api = FakeApi::start(Box::new(|_, _, _| {
        (403, r#"{"kind":"Status","apiVersion":"v1","status":"Failure","code":403,"reason":"Forbidden","message":"jobs.batch is forbidden: User \"dev\" cannot list resource \"jobs\""}"#.into())
    }));
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "config", &api.url, Some("team-a"));
    let out = plugin(&["get"], Some(&kc));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: forbidden: you cannot list jobs.batch in namespace team-a (ask for the kubectl-trace-user ClusterRole, and the Role of that name where traces run, e.g. -n kubectl-trace)\n"
    );
}

#[test]
fn usage_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "config", "http://127.0.0.1:9", None);
    for (args, expect) in [
        (vec!["run", "Worker_1", "-e", SCRIPT, "--dry-run=client"], "error: invalid target \"Worker_1\": write TYPE/NAME, e.g. node/NAME or pod/NAME\n"),
        (vec!["run", "node/n1", "-e", SCRIPT, "--schedule", "0 * * * *", "--dry-run=client"], "error: --schedule needs --deadline: each scheduled run is a bounded trace\n"),
        (vec!["run", "node/n1", "--dry-run=client"], "error: missing program: give -e PROGRAM, -f FILE or --script NAME\n"),
        (vec!["run", "node/n1", "-e", SCRIPT, "--deadline", "5 minutes", "--dry-run=client"], "error: --deadline: invalid duration \"5 minutes\": use seconds or a number with s, m, h or d (e.g. 30s, 5m, 1h)\n"),
    ] {
        let out = plugin(&args, Some(&kc));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr), expect, "{args:?}");
    }
}

#[test]
fn logs_volume_flags() {
    let out = plugin(&["logs", "--help"], None);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for flag in [
        "--all-runs",
        "--run <N|latest>",
        "-O, --download <DIR>",
        "--from <pvc:CLAIM[/SUBDIR]>",
        "--reader-image <IMAGE>",
    ] {
        assert!(help.contains(flag), "no {flag} in:\n{help}");
    }
    assert!(help.contains("[default: busybox:1.36]"), "{help}");
    // Following cannot be combined with reading the volume.
    let out = plugin(&["logs", "abc", "-f", "--all-runs"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'--follow' cannot be used with '--all-runs'"));
    // A bad --run or --from is one line, before any request.
    let dir = tempfile::tempdir().unwrap();
    let kc = kubeconfig(dir.path(), "config", "http://127.0.0.1:9", None);
    let out = plugin(&["logs", "abc", "--run", "0"], Some(&kc));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: invalid --run \"0\": use a run number (1 is the oldest) or latest\n"
    );
    let out = plugin(&["logs", "abc", "--from", "s3:bucket"], Some(&kc));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: invalid --from \"s3:bucket\": expected pvc:CLAIM[/SUBDIR]\n"
    );
}

/// kubectl's connection flags without any kubeconfig (`--server`, `--token`), and `-v 6`
/// logging every request on stderr as kubectl does.
#[test]
fn server_flag_without_kubeconfig_and_request_log() {
    let api = FakeApi::start(Box::new(|_, path, _| {
        let kind = if path.contains("/cronjobs") {
            "CronJobList"
        } else {
            "JobList"
        };
        (
            200,
            format!(r#"{{"apiVersion":"v1","kind":"{kind}","metadata":{{}},"items":[]}}"#),
        )
    }));
    let out = plugin(
        &[
            "get", "--server", &api.url, "--token", "abc", "-n", "tracing", "--v=6",
        ],
        None,
    );
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let seen = api.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0]
            .1
            .starts_with("/apis/batch/v1/namespaces/tracing/jobs?"),
        "{seen:?}"
    );
    let logged: Vec<&str> = err.lines().filter(|l| l.starts_with("GET ")).collect();
    assert_eq!(logged.len(), 2, "{err}");
    assert!(
        logged[0].starts_with(&format!(
            "GET {}/apis/batch/v1/namespaces/tracing/jobs?",
            api.url
        )),
        "{err}"
    );
    assert!(logged[0].contains(" 200 OK in "), "{err}");
    assert!(logged[0].ends_with(" milliseconds"), "{err}");
    assert!(
        err.contains("No traces found in namespace tracing."),
        "{err}"
    );
    // Without -v nothing is logged.
    let out = plugin(&["get", "-s", &api.url, "-n", "tracing"], None);
    assert!(!text(&out.stderr).contains("GET "), "{}", text(&out.stderr));
}

/// A credential plugin (kubeconfig `user.exec`) that is missing or fails: one line naming
/// the command (and its installHint, or its first line of stderr), no debug dump.
#[test]
fn failing_credential_plugin_is_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, exec: &str| {
        let text = format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: t\nclusters:\n- name: t\n  cluster:\n    server: http://127.0.0.1:9\nusers:\n- name: t\n  user:\n    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      interactiveMode: Never\n{exec}contexts:\n- name: t\n  context:\n    cluster: t\n    user: t\n"
        );
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let missing = write(
        "missing",
        "      command: no-such-credential-helper\n      installHint: \"brew install no-such-credential-helper\"\n",
    );
    let out = plugin(&["get"], Some(&missing));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: the kubeconfig's credential plugin \"no-such-credential-helper\" cannot be run: No such file or directory (os error 2); brew install no-such-credential-helper\n"
    );
    let failing = write(
        "failing",
        "      command: sh\n      args: [\"-c\", \"echo token expired >&2; exit 3\"]\n",
    );
    let out = plugin(&["get"], Some(&failing));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: the kubeconfig's credential plugin \"sh\" failed (exit status: 3): token expired\n"
    );
}

/// Completion through kubectl 1.26+: kubectl runs `kubectl_complete-trace WORDS...` and
/// reads Cobra's answer (candidates, then `:DIRECTIVE`).
#[test]
fn kubectl_complete_trace_offers_scripts_and_trace_ids() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("kubectl_complete-trace");
    std::os::unix::fs::symlink(BIN, &link).unwrap();
    let complete = |words: &[&str], kc: Option<&Path>| {
        let mut c = Command::new(&link);
        c.args(words).stdin(Stdio::null()).env_remove("KUBECONFIG");
        if let Some(k) = kc {
            c.env("KUBECONFIG", k);
        }
        c.env("HOME", "/nonexistent-home");
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        text(&out.stdout)
    };
    assert_eq!(
        complete(&["run", "node/a", "--script", "open"], None),
        "opensnoop\nopens-by-prefix\n:4\n"
    );
    assert!(complete(&["at"], None).starts_with("attach\n"));
    let api = FakeApi::start(Box::new(|_, path, _| {
        if path.contains("/cronjobs") {
            return (
                200,
                r#"{"apiVersion":"v1","kind":"CronJobList","metadata":{},"items":[]}"#.into(),
            );
        }
        (
            200,
            r#"{"apiVersion":"v1","kind":"JobList","metadata":{},"items":[
            {"metadata":{"name":"kubectl-trace-abc","labels":{"kubectl-trace/id":"abc"}}},
            {"metadata":{"name":"kubectl-trace-abd","labels":{"kubectl-trace/id":"abd"}}},
            {"metadata":{"name":"kubectl-trace-xyz","labels":{"kubectl-trace/id":"xyz"}}}]}"#
                .into(),
        )
    }));
    let kc = kubeconfig(dir.path(), "config", &api.url, Some("tracing"));
    assert_eq!(complete(&["logs", "ab"], Some(&kc)), "abc\nabd\n:4\n");
    assert!(api.seen()[0]
        .1
        .starts_with("/apis/batch/v1/namespaces/tracing/jobs?"));
    // No cluster: no candidates, still a valid answer.
    assert_eq!(complete(&["attach", ""], None), ":4\n");
}

#[test]
fn a_bad_get_output_is_one_line_before_any_connection() {
    // No kubeconfig at all: the template is refused first, as one line.
    let out = plugin(&["get", "-o", "jsonpath={.items[0"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: invalid -o jsonpath template: unclosed action at column 1\n"
    );
    let out = plugin(&["get", "-o", "tabel"], None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: invalid -o \"tabel\": use wide, json, yaml, name or jsonpath=TEMPLATE\n"
    );
}
