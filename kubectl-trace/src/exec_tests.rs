//! `logs` over a real `pods/exec` websocket: a small API server on loopback answers the
//! reader pod's requests (create, get, delete, and the trace's Jobs) over HTTP and its
//! exec requests over the Kubernetes websocket stream protocol (v4.channel.k8s.io:
//! binary messages prefixed by the channel, 1 stdout, 2 stderr, 3 the final Status),
//! running the requested find/stat/tar as local processes over a directory standing for
//! the claim. So the plugin's real exec path (kube's AttachedProcess, raw binary stdout,
//! the bounded bridge to the unpacker) is exercised, which tower-test cannot do (it has
//! no HTTP upgrade).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use futures::SinkExt;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

use crate::client::Ctx;
use crate::logs::{logs_with, LogsArgs};
use crate::manifest::OUTPUT_DIR;
use crate::persisted::tests::{make_runs, meta};
use crate::progress::Out;

/// Request lines seen, e.g. `DELETE /api/v1/namespaces/default/pods/x`.
type Seen = Arc<Mutex<Vec<String>>>;

fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("00");
                out.push(u8::from_str_radix(hex, 16).unwrap_or(b'?'));
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn commands(uri: &str) -> Vec<String> {
    uri.split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.strip_prefix("command="))
        .map(decode)
        .collect()
}

// The callback's error type is tungstenite's (an HTTP response): not ours to shrink.
#[allow(clippy::result_large_err)]
async fn exec(stream: TcpStream, root: PathBuf, seen: Seen) {
    let uri = Arc::new(Mutex::new(String::new()));
    let u = uri.clone();
    let mut ws =
        tokio_tungstenite::accept_hdr_async(stream, move |req: &Request, mut resp: Response| {
            *u.lock().unwrap() = req.uri().to_string();
            resp.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                "v4.channel.k8s.io".parse().unwrap(),
            );
            Ok(resp)
        })
        .await
        .unwrap();
    let uri = uri.lock().unwrap().clone();
    let (path, query) = uri.split_once('?').unwrap_or((&uri, ""));
    crate::rbac_tests::check_seen("GET", path, query);
    seen.lock()
        .unwrap()
        .push(format!("EXEC {}", commands(&uri).join(" ")));
    let root_s = root.display().to_string();
    let argv: Vec<String> = commands(&uri)
        .into_iter()
        .map(|a| match a.strip_prefix(OUTPUT_DIR) {
            Some(rest) => format!("{root_s}{rest}"),
            None => a,
        })
        .collect();
    let mut child = tokio::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut err = Vec::new();
    let errs = async { stderr.read_to_end(&mut err).await };
    let outs = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = stdout.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            let mut msg = vec![1u8];
            // What find prints is shown as the pod would print it.
            if argv[0] == "find" {
                let text = String::from_utf8_lossy(&buf[..n]).replace(&root_s, OUTPUT_DIR);
                msg.extend_from_slice(text.as_bytes());
            } else {
                msg.extend_from_slice(&buf[..n]);
            }
            ws.send(Message::binary(msg)).await.unwrap();
        }
    };
    let (_, _) = tokio::join!(outs, errs);
    if !err.is_empty() {
        let mut msg = vec![2u8];
        msg.extend_from_slice(&err);
        ws.send(Message::binary(msg)).await.unwrap();
    }
    let code = child.wait().await.unwrap().code().unwrap_or(1);
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
               "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", argv.join(" "))})
    };
    let mut msg = vec![3u8];
    msg.extend_from_slice(status.to_string().as_bytes());
    ws.send(Message::binary(msg)).await.unwrap();
    let _ = ws.close(None).await;
}

fn reply(code: u16, v: &Value) -> Vec<u8> {
    let body = v.to_string();
    format!(
        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

async fn http(stream: TcpStream, seen: Seen, jobs: Value) {
    let mut r = BufReader::new(stream);
    let mut line = String::new();
    r.read_line(&mut line).await.unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_string(),
        parts.next().unwrap_or("").to_string(),
    );
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).await.unwrap();
        if h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.unwrap();
    let path = target.split('?').next().unwrap_or("").to_string();
    let query = target.split_once('?').map_or("", |(_, q)| q);
    crate::rbac_tests::check_seen(&method, &path, query);
    seen.lock().unwrap().push(format!("{method} {path}"));
    let list = |kind: &str, items: Value| json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items});
    let reader = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "r", "namespace": "default"},
            "spec": {"containers": [{"name": "reader"}]},
            "status": {"phase": "Running", "containerStatuses": [{"name": "reader", "image": "busybox",
                "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}});
    let resp = match (method.as_str(), path.as_str()) {
        ("POST", "/api/v1/namespaces/default/pods") => {
            reply(201, &serde_json::from_slice::<Value>(&body).unwrap())
        }
        // The wait for the reader pod lists it by name (then would watch it).
        ("GET", "/api/v1/namespaces/default/pods")
            if query.contains("fieldSelector=metadata.name") =>
        {
            reply(200, &list("PodList", json!([reader.clone()])))
        }
        ("GET", "/api/v1/namespaces/default/pods") => reply(200, &list("PodList", json!([]))),
        ("GET", p) if p.starts_with("/api/v1/namespaces/default/pods/") => reply(200, &reader),
        ("DELETE", _) => reply(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
        ),
        ("GET", "/apis/batch/v1/namespaces/default/jobs") => reply(200, &list("JobList", jobs)),
        ("GET", "/apis/batch/v1/namespaces/default/cronjobs") => {
            reply(200, &list("CronJobList", json!([])))
        }
        _ => reply(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound", "message": "not found"}),
        ),
    };
    let mut stream = r.into_inner();
    stream.write_all(&resp).await.unwrap();
    let _ = stream.shutdown().await;
}

/// Start the server over `root` (the claim's content); returns its URL and the requests.
async fn server(root: &Path) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let (root, s) = (root.to_path_buf(), seen.clone());
    let jobs = json!([{
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "kubectl-trace-abc", "namespace": "default",
                     "labels": {"kubectl-trace/id": "abc"},
                     "annotations": {"kubectl-trace/output": "pvc:traces/team-a"}},
        "spec": {"template": {"spec": {"containers": [{"name": "trace-runner"}]}}}
    }]);
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (root, seen, jobs) = (root.clone(), s.clone(), jobs.clone());
            tokio::spawn(async move {
                let mut peek = [0u8; 1024];
                let n = loop {
                    let n = stream.peek(&mut peek).await.unwrap();
                    if n == 0 || peek[..n].contains(&b'\n') {
                        break n;
                    }
                };
                let first = String::from_utf8_lossy(&peek[..n]).into_owned();
                if first.lines().next().unwrap_or("").contains("/exec?") {
                    exec(stream, root, seen).await
                } else {
                    http(stream, seen, jobs).await
                }
            });
        }
    });
    (url, seen)
}

fn ctx(url: &str) -> Ctx {
    Ctx::from_config(kube::Config::new(url.parse().unwrap())).unwrap()
}

/// A claim with two runs; the second's output is binary noise (raw bytes must survive).
fn claim() -> (tempfile::TempDir, Vec<u8>) {
    let vol = tempfile::tempdir().unwrap();
    let base = vol.path().join("team-a");
    make_runs(
        &base,
        "abc",
        &[(
            "2026-11-25T15-04-05Z",
            "Attaching 1 probe...\n@[bash]: 3\n",
            Some(&meta(
                "succeeded",
                "2026-11-25T15:04:05.000Z",
                Some("2026-11-25T15:05:05.000Z"),
                None,
            )),
        )],
    );
    let mut noise = vec![0u8; 3 * 1024 * 1024 + 17];
    let mut x: u64 = 0x2545f4914f6cdd1d;
    for b in noise.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    let d = base.join("abc/2026-11-25T16-04-05Z");
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("output.txt"), &noise).unwrap();
    std::fs::write(
        d.join("meta.json"),
        meta(
            "failed",
            "2026-11-25T16:04:05.000Z",
            Some("2026-11-25T16:04:09.000Z"),
            Some("No space left on device"),
        ),
    )
    .unwrap();
    (vol, noise)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_over_a_real_exec_websocket() {
    let (vol, noise) = claim();
    let (url, seen) = server(vol.path()).await;
    let dest = tempfile::tempdir().unwrap();
    let args = LogsArgs {
        download: Some(dest.path().join("runs")),
        ..LogsArgs::new("abc")
    };
    let (out, _) = Out::buffer();
    logs_with(&ctx(&url), &args, &out).await.unwrap();
    let got = std::fs::read(dest.path().join("runs/2026-11-25T16-04-05Z/output.txt")).unwrap();
    assert_eq!(got.len(), noise.len());
    assert!(got == noise, "the binary output changed on the way");
    assert_eq!(
        std::fs::read_to_string(dest.path().join("runs/2026-11-25T15-04-05Z/output.txt")).unwrap(),
        "Attaching 1 probe...\n@[bash]: 3\n"
    );
    let seen = seen.lock().unwrap().clone();
    let execs: Vec<&String> = seen.iter().filter(|s| s.starts_with("EXEC ")).collect();
    assert_eq!(execs.len(), 2, "{seen:?}");
    assert!(
        execs[0].starts_with(
            "EXEC find /output/team-a/abc -mindepth 2 -maxdepth 2 -type f -exec stat -c %s %n {} +"
        ),
        "{seen:?}"
    );
    assert!(
        execs[1].starts_with("EXEC tar czf - -C /output/team-a -- abc/2026-11-25T15-04-05Z/meta.json abc/2026-11-25T15-04-05Z/output.txt abc/2026-11-25T16-04-05Z/meta.json"),
        "{seen:?}"
    );
    // The reader pod was created first and deleted last.
    assert_eq!(
        seen.first().unwrap(),
        "GET /apis/batch/v1/namespaces/default/jobs"
    );
    assert!(seen.contains(&"POST /api/v1/namespaces/default/pods".to_string()));
    assert!(seen
        .last()
        .unwrap()
        .starts_with("DELETE /api/v1/namespaces/default/pods/kubectl-trace-abc-reader-"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_runs_over_a_real_exec_websocket() {
    let vol = tempfile::tempdir().unwrap();
    make_runs(
        &vol.path().join("team-a"),
        "abc",
        &[
            ("2026-11-25T15-04-05Z", "one\n", None),
            ("2026-11-25T16-04-05Z", "two\n", None),
        ],
    );
    let (url, _) = server(vol.path()).await;
    let (out, buf) = Out::buffer();
    let args = LogsArgs {
        all_runs: true,
        ..LogsArgs::new("abc")
    };
    logs_with(&ctx(&url), &args, &out).await.unwrap();
    assert_eq!(
        buf.text(),
        "==> RUN 2026-11-25T15-04-05Z (no meta.json) <==\none\n==> RUN 2026-11-25T16-04-05Z (no meta.json) <==\ntwo\n"
    );
    // A trace with nothing on the claim: one clear line.
    let (url, _) = server(&vol.path().join("elsewhere")).await;
    let e = logs_with(&ctx(&url), &args, &out)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("no output of trace abc on claim traces (pvc:traces/team-a): "),
        "{e}"
    );
}
