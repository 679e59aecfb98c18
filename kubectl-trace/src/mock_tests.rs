//! Request-level tests of every subcommand against a tower-test mock API server: the
//! paths, verbs, query strings and bodies the plugin sends, and what it makes of the
//! answers (including streamed log bodies, as a `StreamBody`).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use http::{Request, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use kube::client::Body;
use serde_json::{json, Value};

use crate::attach::{attach_trace, AttachOptions};
use crate::client::Ctx;
use crate::delete::{delete_with, DeleteArgs};
use crate::get::{get_with, GetArgs};
use crate::logs::{logs_with, LogsArgs};
use crate::progress::Out;
use crate::run::{prepare, run_with, RunArgs};

type MockBody = StreamBody<BoxStream<'static, Result<Frame<Bytes>, Infallible>>>;
type Handle = tower_test::mock::Handle<Request<Body>, Response<MockBody>>;
type Responder = tower_test::mock::SendResponse<Response<MockBody>>;

fn mock() -> (Ctx, Handle) {
    let (svc, handle) = tower_test::mock::pair::<Request<Body>, Response<MockBody>>();
    let client = kube::Client::new(svc, "default");
    (Ctx::with_client(client, "default"), handle)
}

fn body_once(b: Vec<u8>) -> MockBody {
    StreamBody::new(futures::stream::once(async move { Ok(Frame::data(Bytes::from(b))) }).boxed())
}

/// A streamed body: each chunk is sent as its own frame.
fn body_chunks(chunks: Vec<&'static str>) -> MockBody {
    StreamBody::new(
        futures::stream::iter(chunks.into_iter().map(|c| Ok(Frame::data(Bytes::from(c))))).boxed(),
    )
}

/// One request the plugin made.
struct Seen {
    method: String,
    path: String,
    query: String,
    body: Value,
    send: Responder,
}

impl Seen {
    fn json(self, status: u16, v: Value) {
        let b = serde_json::to_vec(&v).unwrap();
        self.send.send_response(
            Response::builder()
                .status(status)
                .header("content-type", "application/json")
                .body(body_once(b))
                .unwrap(),
        );
    }

    fn ok(self, v: Value) {
        self.json(200, v)
    }

    fn status(self, code: u16, reason: &str, message: &str) {
        self.json(
            code,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                   "code": code, "reason": reason, "message": message}),
        )
    }

    fn text(self, body: MockBody) {
        self.send
            .send_response(Response::builder().status(200).body(body).unwrap());
    }
}

/// Query string with the usual escapes undone, for readable assertions.
fn unescape(q: &str) -> String {
    q.replace("%2F", "/")
        .replace("%3D", "=")
        .replace("%2C", ",")
        .replace("%20", " ")
        .replace('+', " ")
}

/// A watch that stays open and quiet (the API server has nothing to report yet).
fn quiet_watch() -> MockBody {
    StreamBody::new(futures::stream::pending().boxed())
}

/// The next request, which must be `method path`. Watches (`?watch=true`) the waits
/// open on the side (kube-runtime's watcher, after its list) are answered as quiet and
/// skipped: their timing against the other requests is the scheduler's.
async fn next(h: &mut Handle, method: &str, path: &str) -> Seen {
    let (req, send) = loop {
        let (req, send) = tokio::time::timeout(Duration::from_secs(10), h.next_request())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {method} {path}"))
            .unwrap_or_else(|| panic!("client gone before {method} {path}"));
        let watch = req
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|kv| kv == "watch=true"));
        if !watch {
            break (req, send);
        }
        crate::rbac_tests::check_seen("GET", req.uri().path(), req.uri().query().unwrap_or(""));
        send.send_response(Response::builder().status(200).body(quiet_watch()).unwrap());
    };
    let (parts, body) = req.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    };
    // Every request must be one the RBAC manifests are checked against.
    crate::rbac_tests::check_seen(
        parts.method.as_str(),
        parts.uri.path(),
        parts.uri.query().unwrap_or(""),
    );
    let seen = Seen {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: unescape(parts.uri.query().unwrap_or("")),
        body,
        send,
    };
    assert_eq!(
        (seen.method.as_str(), seen.path.as_str()),
        (method, path),
        "query: {}",
        seen.query
    );
    seen
}

fn with_uid(mut v: Value, uid: &str) -> Value {
    v["metadata"]["uid"] = json!(uid);
    v
}

fn running_pod(name: &str, ns: &str, node: &str, containers: &[(&str, &str)]) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}"),
                     "labels": {"app": "web"}},
        "spec": {"nodeName": node,
                 "containers": containers.iter().map(|(n, _)| json!({"name": n})).collect::<Vec<_>>()},
        "status": {"phase": "Running",
                   "containerStatuses": containers.iter().map(|(n, id)| json!({
                       "name": n, "containerID": id, "image": "x", "imageID": "",
                       "ready": true, "restartCount": 0, "state": {"running": {}}})).collect::<Vec<_>>()}
    })
}

fn run_args(target: &str) -> RunArgs {
    RunArgs {
        target: Some(target.to_string()),
        expr: Some("tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }".into()),
        grace: "30s".into(),
        ttl: "1h".into(),
        image_pull_policy: "IfNotPresent".into(),
        pod_running_timeout: "5m".into(),
        starting_deadline: "2m".into(),
        history: 3,
        concurrency: 8,
        ..Default::default()
    }
}

/// Answer the PodSecurity pre-check with an unlabelled namespace.
async fn namespace_ok(h: &mut Handle, ns: &str) {
    next(h, "GET", &format!("/api/v1/namespaces/{ns}"))
        .await
        .ok(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
}

/// Answer a Job create by echoing it with a uid; returns the Job sent.
async fn create_job(h: &mut Handle, ns: &str, uid: &str) -> Value {
    let s = next(h, "POST", &format!("/apis/batch/v1/namespaces/{ns}/jobs")).await;
    let job = s.body.clone();
    s.json(201, with_uid(job.clone(), uid));
    job
}

async fn create_cm(h: &mut Handle, ns: &str) -> Value {
    let s = next(h, "POST", &format!("/api/v1/namespaces/{ns}/configmaps")).await;
    let cm = s.body.clone();
    s.json(201, with_uid(cm.clone(), "cm-uid"));
    cm
}

#[tokio::test]
async fn run_node_target_creates_job_then_owned_configmap() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("node/worker-1"), "default").unwrap();
    let id = p.spec.id.clone();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/worker-1")
            .await
            .ok(json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "worker-1"}}));
        namespace_ok(&mut h, "default").await;
        let job = create_job(&mut h, "default", "job-uid-1").await;
        let cm = create_cm(&mut h, "default").await;
        (job, cm)
    });
    let (out, buf) = Out::buffer();
    let created = run_with(&ctx, &p, &out).await.unwrap();
    drop(ctx);
    let (job, cm) = server.await.unwrap();

    assert_eq!(job["kind"], "Job");
    assert_eq!(job["metadata"]["name"], format!("kubectl-trace-{id}"));
    assert_eq!(job["metadata"]["labels"]["kubectl-trace/id"], id.as_str());
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeName"], "worker-1");
    assert_eq!(pod["hostPID"], true);
    assert_eq!(pod["containers"][0]["securityContext"]["privileged"], true);
    assert_eq!(job["spec"]["backoffLimit"], 0);
    assert_eq!(job["spec"]["activeDeadlineSeconds"], 3630);

    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "job-uid-1");
    assert!(cm["data"]["program.bt"]
        .as_str()
        .unwrap()
        .contains("sys_enter_openat"));

    assert_eq!(
        created.workloads,
        vec![(format!("kubectl-trace-{id}"), "worker-1".to_string())]
    );
    assert_eq!(
        buf.text(),
        format!("trace {id} created (job/kubectl-trace-{id} on node/worker-1)\n")
    );
}

#[tokio::test]
async fn run_pod_target_resolves_node_and_containers() {
    let (ctx, mut h) = mock();
    let mut args = run_args("pod/web-0");
    args.target_namespace = Some("prod".into());
    args.container = Some("app".into());
    let p = prepare(&args, "tracing").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/prod/pods/web-0")
            .await
            .ok(running_pod(
                "web-0",
                "prod",
                "node-7",
                &[("app", "containerd://abc"), ("sidecar", "containerd://def")],
            ));
        namespace_ok(&mut h, "tracing").await;
        let job = create_job(&mut h, "tracing", "u1").await;
        create_cm(&mut h, "tracing").await;
        job
    });
    let (out, _) = Out::buffer();
    run_with(&ctx, &p, &out).await.unwrap();
    drop(ctx);
    let job = server.await.unwrap();
    assert_eq!(job["metadata"]["namespace"], "tracing");
    let pod = &job["spec"]["template"]["spec"];
    assert_eq!(pod["nodeName"], "node-7");
    let args: Vec<String> = serde_json::from_value(pod["containers"][0]["args"].clone()).unwrap();
    let joined = args.join(" ");
    assert!(
        joined.contains("--pod-uid uid-web-0 --container-id containerd://abc --target pod/prod/web-0 -- /programs/program.bt"),
        "{joined}"
    );
    assert!(!joined.contains("containerd://def"), "{joined}");
    assert_eq!(
        job["metadata"]["annotations"]["kubectl-trace/target"],
        "pod/prod/web-0"
    );
    assert_eq!(
        job["metadata"]["labels"]["kubectl-trace/target-kind"],
        "pod"
    );
}

#[tokio::test]
async fn run_pod_not_found_is_one_line() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("pod/ghost"), "default").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/default/pods/ghost")
            .await
            .status(404, "NotFound", "pods \"ghost\" not found");
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(e.to_string(), "pod ghost not found in namespace default");
    assert_eq!(e.exit_code(), 1);
}

#[tokio::test]
async fn run_deployment_makes_one_job_per_node() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("deploy/web"), "default").unwrap();
    let id = p.spec.id.clone();
    let server = tokio::spawn(async move {
        next(
            &mut h,
            "GET",
            "/apis/apps/v1/namespaces/default/deployments/web",
        )
        .await
        .ok(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": {}}
        }));
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(s.query.contains("labelSelector=app=web"), "{}", s.query);
        s.ok(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                running_pod("web-a", "default", "n1", &[("app", "containerd://1")]),
                running_pod("web-b", "default", "n2", &[("app", "containerd://2")]),
                running_pod("web-c", "default", "n1", &[("app", "containerd://3")]),
            ]}),
        );
        namespace_ok(&mut h, "default").await;
        // Both Jobs are created at once, then each one's ConfigMap.
        let j1 = create_job(&mut h, "default", "u1").await;
        let j2 = create_job(&mut h, "default", "u2").await;
        let c1 = create_cm(&mut h, "default").await;
        let c2 = create_cm(&mut h, "default").await;
        (j1, c1, j2, c2)
    });
    let (out, buf) = Out::buffer();
    run_with(&ctx, &p, &out).await.unwrap();
    drop(ctx);
    let (j1, c1, j2, c2) = server.await.unwrap();
    assert_eq!(j1["metadata"]["name"], format!("kubectl-trace-{id}-1"));
    assert_eq!(j1["spec"]["template"]["spec"]["nodeName"], "n1");
    assert_eq!(
        j1["metadata"]["annotations"]["kubectl-trace/pods"],
        "default/web-a,default/web-c"
    );
    assert_eq!(j2["spec"]["template"]["spec"]["nodeName"], "n2");
    assert_eq!(c1["metadata"]["ownerReferences"][0]["uid"], "u1");
    assert_eq!(c2["metadata"]["ownerReferences"][0]["uid"], "u2");
    let text = buf.text();
    assert!(
        text.contains(&format!("kubectl-trace-{id}-2 on node/n2 (pods: web-b)")),
        "{text}"
    );
}

fn node_obj(name: &str, ready: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
           "status": {"conditions": [{"type": "Ready", "status": ready}]}})
}

#[tokio::test]
async fn run_nodes_by_label_creates_a_job_per_ready_node_a_few_at_once() {
    let (ctx, mut h) = mock();
    let mut args = run_args("nodes");
    args.selector = Some("pool=gpu".into());
    args.concurrency = 3;
    let p = prepare(&args, "default").unwrap();
    assert_eq!(
        p.target,
        crate::target::TargetRef::Nodes(Some("pool=gpu".into()))
    );
    let id = p.spec.id.clone();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/api/v1/nodes").await;
        assert!(s.query.contains("labelSelector=pool=gpu"), "{}", s.query);
        let mut nodes: Vec<Value> = (1..=10)
            .map(|i| node_obj(&format!("gpu-{i:02}"), "True"))
            .collect();
        nodes.push(node_obj("gpu-99", "False"));
        s.ok(list("NodeList", nodes));
        namespace_ok(&mut h, "default").await;
        // Hold every answer while requests keep coming: the most in flight at once is
        // the bound. Requests stop coming when every slot waits for an answer.
        let (mut jobs, mut done, mut most) = (Vec::new(), 0, 0);
        let mut pending: Vec<Seen> = Vec::new();
        while done < 20 {
            match tokio::time::timeout(Duration::from_millis(150), h.next_request()).await {
                Ok(Some((req, send))) => {
                    let (parts, body) = req.into_parts();
                    let bytes = body.collect().await.unwrap().to_bytes();
                    crate::rbac_tests::check_seen(parts.method.as_str(), parts.uri.path(), "");
                    pending.push(Seen {
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        query: String::new(),
                        body: serde_json::from_slice(&bytes).unwrap(),
                        send,
                    });
                    most = most.max(pending.len());
                }
                Ok(None) => panic!("client gone"),
                Err(_) => {
                    assert!(!pending.is_empty(), "no request in flight after {done}");
                    for s in pending.drain(..) {
                        assert_eq!(s.method, "POST");
                        let body = s.body.clone();
                        if s.path.ends_with("/jobs") {
                            jobs.push(body.clone());
                        }
                        s.json(201, with_uid(body, "u"));
                        done += 1;
                    }
                }
            }
        }
        (jobs, most)
    });
    let (out, buf) = Out::buffer();
    let created = run_with(&ctx, &p, &out).await.unwrap();
    drop(ctx);
    let (jobs, most) = server.await.unwrap();
    assert_eq!(most, 3, "at most --concurrency requests in flight");
    assert_eq!(jobs.len(), 10);
    let mut nodes: Vec<String> = jobs
        .iter()
        .map(|j| {
            j["spec"]["template"]["spec"]["nodeName"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    nodes.sort();
    let want: Vec<String> = (1..=10).map(|i| format!("gpu-{i:02}")).collect();
    assert_eq!(nodes, want, "one Job per Ready node, gpu-99 skipped");
    assert!(jobs.iter().all(
        |j| j["metadata"]["labels"]["kubectl-trace/id"] == id.as_str()
            && j["metadata"]["annotations"]["kubectl-trace/target"] == "nodes/pool=gpu"
    ));
    // Reported in node order, one trace id.
    assert_eq!(created.workloads.len(), 10);
    assert_eq!(
        created.workloads[0],
        (format!("kubectl-trace-{id}-1"), "gpu-01".to_string())
    );
    assert_eq!(created.workloads[9].1, "gpu-10");
    assert!(
        buf.text().starts_with(&format!("trace {id} created\n")),
        "{}",
        buf.text()
    );
}

#[tokio::test]
async fn run_every_node_asks_for_all_nodes() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("nodes"), "default").unwrap();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/api/v1/nodes").await;
        assert!(!s.query.contains("labelSelector"), "{}", s.query);
        s.ok(list("NodeList", vec![node_obj("n1", "Unknown")]));
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(e.to_string(), "none of the nodes of the cluster is Ready");
}

#[tokio::test]
async fn run_forbidden_names_verb_and_resource() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("node/n1"), "default").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/n1").await.status(
            403,
            "Forbidden",
            "nodes \"n1\" is forbidden",
        );
        namespace_ok(&mut h, "default").await;
        next(&mut h, "POST", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .status(
                403,
                "Forbidden",
                "jobs.batch is forbidden: User \"dev\" cannot create resource \"jobs\"",
            );
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        e.to_string(),
        "forbidden: you cannot create jobs.batch in namespace default (ask for the kubectl-trace-user ClusterRole, and the Role of that name where traces run, e.g. -n kubectl-trace)"
    );
}

#[tokio::test]
async fn run_configmap_failure_deletes_the_job() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("node/n1"), "default").unwrap();
    let id = p.spec.id.clone();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/n1")
            .await
            .ok(json!({"metadata": {"name": "n1"}}));
        namespace_ok(&mut h, "default").await;
        create_job(&mut h, "default", "u1").await;
        next(&mut h, "POST", "/api/v1/namespaces/default/configmaps")
            .await
            .status(403, "Forbidden", "no");
        let s = next(
            &mut h,
            "DELETE",
            &format!("/apis/batch/v1/namespaces/default/jobs/kubectl-trace-{id}"),
        )
        .await;
        let body = s.body.clone();
        s.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        body
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err();
    drop(ctx);
    let body = server.await.unwrap();
    assert_eq!(body["propagationPolicy"], "Background");
    assert!(
        e.to_string()
            .contains("cannot create configmaps in namespace default"),
        "{e}"
    );
}

#[tokio::test]
async fn run_refuses_namespace_enforcing_baseline() {
    let (ctx, mut h) = mock();
    let p = prepare(&run_args("node/n1"), "apps").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/n1")
            .await
            .ok(json!({"metadata": {"name": "n1"}}));
        next(&mut h, "GET", "/api/v1/namespaces/apps").await.ok(json!({
            "metadata": {"name": "apps", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}
        }));
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err().to_string();
    drop(ctx);
    server.await.unwrap();
    assert!(
        e.contains("namespace apps enforces PodSecurity \"baseline\""),
        "{e}"
    );
    assert!(
        e.ends_with("kubectl trace run ... -n kubectl-trace --target-namespace apps"),
        "{e}"
    );
}

#[tokio::test]
async fn run_scheduled_creates_cronjob() {
    let (ctx, mut h) = mock();
    let mut args = run_args("node/n1");
    args.schedule = Some("*/15 * * * *".into());
    args.deadline = Some("60".into());
    let p = prepare(&args, "default").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/n1")
            .await
            .ok(json!({"metadata": {"name": "n1"}}));
        namespace_ok(&mut h, "default").await;
        let s = next(&mut h, "POST", "/apis/batch/v1/namespaces/default/cronjobs").await;
        let cj = s.body.clone();
        s.json(201, with_uid(cj.clone(), "cron-uid"));
        let cm = create_cm(&mut h, "default").await;
        (cj, cm)
    });
    let (out, _) = Out::buffer();
    run_with(&ctx, &p, &out).await.unwrap();
    drop(ctx);
    let (cj, cm) = server.await.unwrap();
    assert_eq!(cj["spec"]["schedule"], "*/15 * * * *");
    assert_eq!(cj["spec"]["concurrencyPolicy"], "Forbid");
    assert_eq!(
        cj["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"],
        90
    );
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "CronJob");
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], "cron-uid");
}

fn job_obj(name: &str, id: &str, status: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"app.kubernetes.io/name": "kubectl-trace", "kubectl-trace/id": id},
                     "annotations": {"kubectl-trace/target": "node/n1", "kubectl-trace/node": "n1"}},
        "spec": {"template": {"spec": {"containers": [{"name": "trace-runner", "image": "img:1"}],
                                        "terminationGracePeriodSeconds": 30}}},
        "status": status
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    // A resourceVersion, as every real list has: a watch starts from it.
    json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": "1"}, "items": items})
}

#[tokio::test]
async fn get_lists_jobs_and_cronjobs_by_label() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs").await;
        assert!(
            s.query
                .contains("labelSelector=app.kubernetes.io/name=kubectl-trace"),
            "{}",
            s.query
        );
        s.ok(list(
            "JobList",
            vec![job_obj(
                "kubectl-trace-abc",
                "abc",
                json!({"active": 1, "ready": 1}),
            )],
        ));
        let s = next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs").await;
        assert!(
            s.query
                .contains("labelSelector=app.kubernetes.io/name=kubectl-trace"),
            "{}",
            s.query
        );
        s.ok(list("CronJobList", vec![]));
    });
    let (out, buf) = Out::buffer();
    let args = GetArgs {
        trace: None,
        all_namespaces: false,
        output: None,
        no_headers: false,
        watch: false,
    };
    get_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["NAME", "TARGET", "NODE", "STATUS", "AGE"]
    );
    assert_eq!(
        lines[1].split_whitespace().take(4).collect::<Vec<_>>(),
        ["kubectl-trace-abc", "node/n1", "n1", "Running"]
    );
}

async fn answer_get(h: &mut Handle) {
    next(h, "GET", "/apis/batch/v1/namespaces/default/jobs")
        .await
        .ok(list(
            "JobList",
            vec![
                job_obj("kubectl-trace-abc", "abc", json!({"active": 1, "ready": 1})),
                job_obj(
                    "kubectl-trace-abc-2",
                    "abc",
                    json!({"active": 1, "ready": 1}),
                ),
            ],
        ));
    next(h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
        .await
        .ok(list("CronJobList", vec![]));
}

#[tokio::test]
async fn get_no_headers_and_output_name() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        answer_get(&mut h).await;
        answer_get(&mut h).await;
    });
    let mut args = GetArgs {
        trace: Some("abc".into()),
        all_namespaces: false,
        output: None,
        no_headers: true,
        watch: false,
    };
    let (out, buf) = Out::buffer();
    get_with(&ctx, &args, &out).await.unwrap();
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    // Two Jobs of one trace: one row, named after the trace.
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].starts_with("kubectl-trace-abc "), "{text}");
    args.no_headers = false;
    args.output = Some("name".into());
    let (out, buf) = Out::buffer();
    get_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        buf.text(),
        "job.batch/kubectl-trace-abc\njob.batch/kubectl-trace-abc-2\n"
    );
}

#[tokio::test]
async fn get_all_namespaces_one_trace_as_json() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/apis/batch/v1/jobs").await;
        assert!(
            s.query.contains("labelSelector=kubectl-trace/id=abc"),
            "{}",
            s.query
        );
        s.ok(list(
            "JobList",
            vec![job_obj("kubectl-trace-abc", "abc", json!({}))],
        ));
        next(&mut h, "GET", "/apis/batch/v1/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
    });
    let (out, buf) = Out::buffer();
    let args = GetArgs {
        trace: Some("kubectl-trace-abc".into()),
        all_namespaces: true,
        output: Some("json".into()),
        no_headers: false,
        watch: false,
    };
    get_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    let v: Value = serde_json::from_str(&buf.text()).unwrap();
    assert_eq!(v["kind"], "List");
    assert_eq!(v["items"][0]["metadata"]["name"], "kubectl-trace-abc");
}

fn job_on(name: &str, id: &str, node: &str, status: Value) -> Value {
    let mut j = job_obj(name, id, status);
    j["metadata"]["annotations"]["kubectl-trace/node"] = json!(node);
    j["metadata"]["annotations"]["kubectl-trace/pods"] = json!(format!("default/web-{node}"));
    j
}

fn two_node_trace() -> Vec<Value> {
    vec![
        job_on(
            "kubectl-trace-abc-1",
            "abc",
            "n1",
            json!({"active": 1, "ready": 1}),
        ),
        job_on(
            "kubectl-trace-abc-2",
            "abc",
            "n2",
            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
        ),
    ]
}

fn get_args(output: Option<&str>) -> GetArgs {
    GetArgs {
        trace: None,
        all_namespaces: false,
        output: output.map(str::to_string),
        no_headers: false,
        watch: false,
    }
}

#[tokio::test]
async fn get_shows_a_multi_node_trace_as_one_row_and_a_row_per_node_when_wide() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        for _ in 0..2 {
            next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
                .await
                .ok(list("JobList", two_node_trace()));
            next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
                .await
                .ok(list("CronJobList", vec![]));
        }
    });
    let (out, buf) = Out::buffer();
    get_with(&ctx, &get_args(None), &out).await.unwrap();
    let text = buf.text();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .collect()
        })
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(
        lines[1][..4],
        [
            "kubectl-trace-abc",
            "node/n1",
            "2 nodes",
            "1 Running, 1 Completed"
        ],
        "{text}"
    );
    let (out, buf) = Out::buffer();
    get_with(&ctx, &get_args(Some("wide")), &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    let text = buf.text();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0],
        ["NAME", "TARGET", "NODE", "STATUS", "AGE", "ID", "PODS", "IMAGE"]
    );
    // A row per node, each with the one trace id.
    assert_eq!(
        lines[1][..4],
        ["kubectl-trace-abc-1", "node/n1", "n1", "Running"]
    );
    assert_eq!(
        lines[2][..4],
        ["kubectl-trace-abc-2", "node/n1", "n2", "Completed"]
    );
    assert_eq!((lines[1][5], lines[2][5]), ("abc", "abc"), "{text}");
    assert_eq!(
        (lines[1][6], lines[2][6]),
        ("default/web-n1", "default/web-n2")
    );
}

#[tokio::test]
async fn get_jsonpath_renders_over_the_listed_objects() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", two_node_trace()));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
    });
    let (out, buf) = Out::buffer();
    let t = r#"jsonpath={range .items[*]}{.metadata.name}{"\t"}{.metadata.annotations.kubectl-trace/node}{"\n"}{end}"#;
    get_with(&ctx, &get_args(Some(t)), &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        buf.text(),
        "kubectl-trace-abc-1\tn1\nkubectl-trace-abc-2\tn2\n"
    );
}

#[tokio::test]
async fn get_rejects_a_bad_output_before_any_request() {
    let (ctx, _h) = mock();
    let (out, _) = Out::buffer();
    let e = get_with(&ctx, &get_args(Some("jsonpath={.items[0")), &out)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid -o jsonpath template: unclosed action at column 1"
    );
    let e = get_with(&ctx, &get_args(Some("table")), &out)
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid -o \"table\": use wide, json, yaml, name or jsonpath=TEMPLATE"
    );
}

/// A watch event line as the API server streams it.
fn watch_event(kind: &str, object: Value) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap();
    line.push(b'\n');
    Bytes::from(line)
}

#[tokio::test]
async fn get_watch_prints_the_table_then_a_row_per_change_until_ctrl_c() {
    let (ctx, mut h) = mock();
    let (ctrl_c, mut interrupts) = futures::channel::mpsc::unbounded::<()>();
    let (out, buf) = Out::buffer();
    let watched = buf.clone();
    let server = tokio::spawn(async move {
        let running = || {
            let mut j = job_obj("kubectl-trace-abc", "abc", json!({"active": 1, "ready": 1}));
            j["metadata"]["resourceVersion"] = json!("5");
            j
        };
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![running()]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
        // The two watchers list, then watch, in whatever order they come.
        let mut streams = Vec::new();
        for _ in 0..4 {
            let (req, send) = tokio::time::timeout(Duration::from_secs(10), h.next_request())
                .await
                .expect("the watchers' requests")
                .expect("client alive");
            let (path, query) = (
                req.uri().path().to_string(),
                req.uri().query().unwrap_or("").to_string(),
            );
            crate::rbac_tests::check_seen("GET", &path, &query);
            assert_eq!(req.method(), "GET");
            assert!(
                unescape(&query).contains("labelSelector=app.kubernetes.io/name=kubectl-trace"),
                "{query}"
            );
            let watching = query.contains("watch=true");
            let jobs = path == "/apis/batch/v1/namespaces/default/jobs";
            assert!(
                jobs || path == "/apis/batch/v1/namespaces/default/cronjobs",
                "{path}"
            );
            let seen = Seen {
                method: "GET".into(),
                path: path.clone(),
                query: query.clone(),
                body: Value::Null,
                send,
            };
            match (jobs, watching) {
                (true, false) => {
                    let mut l = list("JobList", vec![running()]);
                    l["metadata"]["resourceVersion"] = json!("5");
                    seen.ok(l);
                }
                (false, false) => {
                    let mut l = list("CronJobList", vec![]);
                    l["metadata"]["resourceVersion"] = json!("5");
                    seen.ok(l);
                }
                (_, true) => {
                    let (tx, body) = body_channel();
                    if jobs {
                        let mut done = job_obj(
                            "kubectl-trace-abc",
                            "abc",
                            json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
                        );
                        done["metadata"]["resourceVersion"] = json!("6");
                        tx.unbounded_send(Ok(Frame::data(watch_event("MODIFIED", done))))
                            .unwrap();
                    }
                    seen.text(body);
                    streams.push(tx);
                }
            }
        }
        // Ctrl-C once the change is printed; the watches stay open until then.
        tokio::time::timeout(Duration::from_secs(10), async {
            while !watched.text().contains("Completed") {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the change is printed");
        ctrl_c.unbounded_send(()).unwrap();
        streams
    });
    let args = GetArgs {
        watch: true,
        ..get_args(None)
    };
    crate::get::get_with_interrupts(&ctx, &args, &out, &mut interrupts)
        .await
        .unwrap();
    drop(ctx);
    server.await.unwrap();
    let text = buf.text();
    let lines: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    // The table (SCHEDULE columns kept for rows to come), then one row: the change.
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(
        lines[0][..5],
        ["NAME", "TARGET", "NODE", "STATUS", "AGE"],
        "{text}"
    );
    assert_eq!(
        lines[1][..4],
        ["kubectl-trace-abc", "node/n1", "n1", "Running"],
        "{text}"
    );
    assert_eq!(
        lines[2][..4],
        ["kubectl-trace-abc", "node/n1", "n1", "Completed"],
        "{text}"
    );
}

#[tokio::test]
async fn delete_uses_background_propagation() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        // The trace's Jobs and CronJobs are listed first (tracejob::workloads).
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({}))],
            ));
        let s = next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs").await;
        assert!(
            s.query.contains("labelSelector=kubectl-trace/id=abc"),
            "{}",
            s.query
        );
        s.ok(list("CronJobList", vec![]));
        let s = next(
            &mut h,
            "DELETE",
            "/apis/batch/v1/namespaces/default/jobs/kubectl-trace-abc",
        )
        .await;
        let job_body = s.body.clone();
        s.ok(job_obj("kubectl-trace-abc", "abc", json!({})));
        next(&mut h, "GET", "/api/v1/namespaces/default/configmaps")
            .await
            .ok(list(
                "ConfigMapList",
                vec![
                    json!({"metadata": {"name": "kubectl-trace-abc", "namespace": "default",
                                     "labels": {"kubectl-trace/id": "abc"}}}),
                ],
            ));
        let s = next(
            &mut h,
            "DELETE",
            "/api/v1/namespaces/default/configmaps/kubectl-trace-abc",
        )
        .await;
        s.status(404, "NotFound", "already collected");
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            s.query
                .contains("labelSelector=kubectl-trace/id=abc,kubectl-trace/component=reader"),
            "{}",
            s.query
        );
        s.ok(list(
            "PodList",
            vec![json!({"metadata": {"name": "kubectl-trace-abc-reader-x1y2z", "namespace": "default",
                                     "labels": {"kubectl-trace/id": "abc"}}})],
        ));
        let s = next(
            &mut h,
            "DELETE",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-reader-x1y2z",
        )
        .await;
        let pod_body = s.body.clone();
        s.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        assert_eq!(pod_body["gracePeriodSeconds"], 0);
        job_body
    });
    let (out, buf) = Out::buffer();
    let args = DeleteArgs {
        traces: vec!["abc".into()],
        all: false,
        all_namespaces: false,
    };
    delete_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    let body = server.await.unwrap();
    assert_eq!(body["propagationPolicy"], "Background");
    assert_eq!(buf.text(), "trace abc deleted\n");
}

#[tokio::test]
async fn delete_unknown_trace_fails() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
        next(&mut h, "GET", "/api/v1/namespaces/default/configmaps")
            .await
            .ok(list("ConfigMapList", vec![]));
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![]));
    });
    let (out, _) = Out::buffer();
    let args = DeleteArgs {
        traces: vec!["nope".into()],
        all: false,
        all_namespaces: false,
    };
    let e = delete_with(&ctx, &args, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(e.to_string(), "trace nope not found in namespace default");
}

fn trace_pod(name: &str, id: &str, node: &str, pods_ann: Option<&str>) -> Value {
    let mut ann = json!({"kubectl-trace/node": node});
    if let Some(p) = pods_ann {
        ann["kubectl-trace/pods"] = json!(p);
    }
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2025-01-01T00:00:00Z",
                     "labels": {"kubectl-trace/id": id, "job-name": "kubectl-trace-abc"},
                     "annotations": ann},
        "spec": {"nodeName": node, "containers": [{"name": "trace-runner"}]},
        "status": {"phase": "Running", "containerStatuses": [{"name": "trace-runner", "image": "img:1",
                   "imageID": "", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    })
}

#[tokio::test]
async fn logs_reads_the_trace_pod() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            s.query.contains("labelSelector=kubectl-trace/id=abc"),
            "{}",
            s.query
        );
        s.ok(list(
            "PodList",
            vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
        ));
        let s = next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await;
        assert!(s.query.contains("container=trace-runner"), "{}", s.query);
        assert!(s.query.contains("tailLines=5"), "{}", s.query);
        assert!(!s.query.contains("follow"), "{}", s.query);
        s.text(body_once(b"Attaching 1 probe...\n@[bash]: 3\n".to_vec()));
    });
    let (out, buf) = Out::buffer();
    let args = LogsArgs {
        trace: "abc".into(),
        follow: false,
        timestamps: false,
        tail: 5,
        ..LogsArgs::new("abc")
    };
    logs_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(buf.text(), "Attaching 1 probe...\n@[bash]: 3\n");
}

#[tokio::test]
async fn logs_of_a_scheduled_trace_separate_its_runs() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let mut first = trace_pod("kubectl-trace-abc-100-x", "abc", "n1", None);
        first["metadata"]["creationTimestamp"] = json!("2025-01-01T00:00:00Z");
        first["status"]["startTime"] = json!("2025-01-01T00:00:00Z");
        let mut second = trace_pod("kubectl-trace-abc-200-y", "abc", "n1", None);
        second["metadata"]["creationTimestamp"] = json!("2025-01-01T01:00:00Z");
        second["status"]["startTime"] = json!("2025-01-01T01:00:00Z");
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![second, first]));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-100-x/log",
        )
        .await
        .text(body_once(b"@[bash]: 1\n".to_vec()));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-200-y/log",
        )
        .await
        .text(body_once(b"@[bash]: 2\n".to_vec()));
    });
    let (out, buf) = Out::buffer();
    logs_with(&ctx, &LogsArgs::new("abc"), &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        buf.text(),
        "==> RUN kubectl-trace-abc-100-x (running, 2025-01-01T00:00:00Z → …) <==\n@[bash]: 1\n\
         ==> RUN kubectl-trace-abc-200-y (running, 2025-01-01T01:00:00Z → …) <==\n@[bash]: 2\n"
    );
}

#[tokio::test]
async fn logs_follow_prefixes_several_pods() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![
                    trace_pod("kubectl-trace-abc-1-x", "abc", "n1", Some("prod/web-0")),
                    trace_pod(
                        "kubectl-trace-abc-2-y",
                        "abc",
                        "n2",
                        Some("prod/web-1,prod/web-2"),
                    ),
                ],
            ));
        for _ in 0..2 {
            let (req, send) = h.next_request().await.unwrap();
            assert!(req.uri().query().unwrap().contains("follow=true"));
            let body = if req.uri().path().contains("-1-x") {
                body_chunks(vec!["one\n", "tw", "o\n"])
            } else {
                body_chunks(vec!["three\n"])
            };
            send.send_response(Response::builder().status(200).body(body).unwrap());
        }
    });
    let (out, buf) = Out::buffer();
    let args = LogsArgs {
        trace: "abc".into(),
        follow: true,
        timestamps: false,
        tail: -1,
        ..LogsArgs::new("abc")
    };
    logs_with(&ctx, &args, &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    let text = buf.text();
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        ["[node/n2] three", "[pod/web-0] one", "[pod/web-0] two"]
    );
}

#[tokio::test]
async fn logs_of_unknown_trace() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
    });
    let (out, _) = Out::buffer();
    let args = LogsArgs {
        trace: "zzz".into(),
        follow: false,
        timestamps: false,
        tail: -1,
        ..LogsArgs::new("abc")
    };
    let e = logs_with(&ctx, &args, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert!(
        e.to_string()
            .starts_with("trace zzz not found in namespace default"),
        "{e}"
    );
}

fn opts() -> AttachOptions {
    AttachOptions {
        pod_running_timeout: Duration::from_secs(30),
        grace: 30,
        script_name: "opens.bt".to_string(),
        concurrency: 8,
    }
}

fn terminated_pod(code: i32) -> Value {
    let mut p = trace_pod("kubectl-trace-abc-x1", "abc", "n1", None);
    p["status"]["phase"] = json!(if code == 0 { "Succeeded" } else { "Failed" });
    p["status"]["containerStatuses"][0]["state"] = json!({"terminated": {"exitCode": code, "reason": if code == 0 { "Completed" } else { "Error" }}});
    p
}

#[tokio::test]
async fn attach_waits_then_streams_the_runner_output() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs").await;
        assert!(
            s.query.contains("labelSelector=kubectl-trace/id=abc"),
            "{}",
            s.query
        );
        s.ok(list(
            "JobList",
            vec![job_obj("kubectl-trace-abc", "abc", json!({"active": 1}))],
        ));
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            s.query.contains("labelSelector=job-name=kubectl-trace-abc"),
            "{}",
            s.query
        );
        s.ok(list(
            "PodList",
            vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
        ));
        let s = next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await;
        assert!(s.query.contains("follow=true"), "{}", s.query);
        assert!(s.query.contains("container=trace-runner"), "{}", s.query);
        s.text(body_chunks(vec![
            "Attaching 1 probe...\n",
            "\n@[sshd]: 1\n",
            "@[bash]: 7\n",
        ]));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await
        .ok(terminated_pod(0));
    });
    let (out, buf) = Out::buffer();
    attach_trace(&ctx, "abc", &opts(), &out).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        buf.text(),
        "Attaching 1 probe...\n\n@[sshd]: 1\n@[bash]: 7\n"
    );
}

#[tokio::test]
async fn attach_waits_for_the_pod_through_a_watch_not_polls() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({"active": 1}))],
            ));
        let mut p = trace_pod("kubectl-trace-abc-x1", "abc", "n1", None);
        p["status"]["phase"] = json!("Pending");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            s.query.contains("labelSelector=job-name=kubectl-trace-abc"),
            "{}",
            s.query
        );
        s.ok(list("PodList", vec![p]));
        // One watch from the list's resourceVersion; the pod starts on it.
        let s = next_watch(&mut h, "/api/v1/namespaces/default/pods").await;
        assert!(s.query.contains("resourceVersion=1"), "{}", s.query);
        assert!(
            s.query.contains("labelSelector=job-name=kubectl-trace-abc"),
            "{}",
            s.query
        );
        let (tx, body) = body_channel();
        s.text(body);
        let mut started = trace_pod("kubectl-trace-abc-x1", "abc", "n1", None);
        started["metadata"]["resourceVersion"] = json!("2");
        tx.unbounded_send(Ok(Frame::data(watch_event("MODIFIED", started))))
            .unwrap();
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await
        .text(body_chunks(vec!["@[bash]: 7\n"]));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await
        .ok(terminated_pod(0));
        tx
    });
    let (out, buf) = Out::buffer();
    attach_trace(&ctx, "abc", &opts(), &out).await.unwrap();
    drop(ctx);
    let _tx = server.await.unwrap();
    assert_eq!(buf.text(), "@[bash]: 7\n");
}

#[tokio::test]
async fn attach_reports_a_failed_runner() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({}))],
            ));
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![terminated_pod(1)]));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await
        .text(body_once(
            b"error: tracepoint syscalls:nope not found\n".to_vec(),
        ));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await
        .ok(terminated_pod(1));
    });
    let (out, buf) = Out::buffer();
    let e = attach_trace(&ctx, "abc", &opts(), &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(buf.text(), "error: tracepoint syscalls:nope not found\n");
    assert_eq!(
        e.to_string(),
        "the trace on node/n1 failed: the runner exited with code 1"
    );
}

#[tokio::test]
async fn attach_explains_pod_security_rejection() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({}))],
            ));
        // The watch of the Job's pods lists none (and stays quiet); the first check
        // finds no failure condition on the Job.
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![]));
        next(
            &mut h,
            "GET",
            "/apis/batch/v1/namespaces/default/jobs/kubectl-trace-abc",
        )
        .await
        .ok(job_obj("kubectl-trace-abc", "abc", json!({})));
        // The second check: the events say why.
        next(
            &mut h,
            "GET",
            "/apis/batch/v1/namespaces/default/jobs/kubectl-trace-abc",
        )
        .await
        .ok(job_obj("kubectl-trace-abc", "abc", json!({})));
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/events").await;
        assert!(
            s.query.contains(
                "fieldSelector=involvedObject.kind=Job,involvedObject.name=kubectl-trace-abc"
            ),
            "{}",
            s.query
        );
        s.ok(list("EventList", vec![json!({
            "metadata": {"name": "e1"}, "involvedObject": {"kind": "Job", "name": "kubectl-trace-abc"},
            "reason": "FailedCreate", "type": "Warning",
            "message": "Error creating: pods \"kubectl-trace-abc-x\" is forbidden: violates PodSecurity \"baseline:latest\": privileged"
        })]));
    });
    let (out, _) = Out::buffer();
    let e = attach_trace(&ctx, "abc", &opts(), &out)
        .await
        .unwrap_err()
        .to_string();
    drop(ctx);
    server.await.unwrap();
    assert!(e.contains("PodSecurity admission (baseline:latest) forbids privileged trace pods in namespace default"), "{e}");
    assert!(
        e.ends_with("kubectl trace run ... -n kubectl-trace --target-namespace default"),
        "{e}"
    );
}

#[tokio::test]
async fn attach_explains_image_pull_failure() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({"active": 1}))],
            ));
        let mut p = trace_pod("kubectl-trace-abc-x1", "abc", "n1", None);
        p["status"]["phase"] = json!("Pending");
        p["status"]["containerStatuses"][0]["image"] =
            json!("ghcr.io/kubectl-trace/trace-runner:9.9.9");
        p["status"]["containerStatuses"][0]["state"] = json!({"waiting": {
            "reason": "ImagePullBackOff", "message": "Back-off pulling image"}});
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![p]));
    });
    let (out, _) = Out::buffer();
    let e = attach_trace(&ctx, "abc", &opts(), &out)
        .await
        .unwrap_err()
        .to_string();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        e,
        "node/n1 cannot pull the runner image ghcr.io/kubectl-trace/trace-runner:9.9.9 (ImagePullBackOff): Back-off pulling image (choose another with --image)"
    );
}

type Frames = futures::channel::mpsc::UnboundedSender<Result<Frame<Bytes>, Infallible>>;

/// A log body the test writes to as it goes (closed when the sender is dropped).
fn body_channel() -> (Frames, MockBody) {
    let (tx, rx) = futures::channel::mpsc::unbounded();
    (tx, StreamBody::new(rx.boxed()))
}

fn push(tx: &Frames, text: &'static str) {
    tx.unbounded_send(Ok(Frame::data(Bytes::from(text))))
        .unwrap();
}

type Calls = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// A stopper that records `NS/POD` and answers `result`.
fn stopper(
    calls: Calls,
    result: Option<&'static str>,
) -> impl Fn(&Ctx, &str, &str) -> futures::future::BoxFuture<'static, crate::errors::Result<()>> + Sync
{
    move |_: &Ctx, ns: &str, pod: &str| {
        calls.lock().unwrap().push(format!("{ns}/{pod}"));
        let r = match result {
            None => Ok(()),
            Some(e) => Err(crate::errors::fail(e)),
        };
        futures::FutureExt::boxed(async move { r })
    }
}

/// After the client is gone: did it make any request the test did not expect?
async fn no_more_requests(h: &mut Handle) {
    if let Ok(Some((req, _))) =
        tokio::time::timeout(Duration::from_secs(10), h.next_request()).await
    {
        panic!("unexpected request {} {}", req.method(), req.uri());
    }
}

#[tokio::test]
async fn ctrl_c_stops_the_runner_in_place_and_keeps_its_pod() {
    let (ctx, mut h) = mock();
    let (ctrl_c, mut interrupts) = futures::channel::mpsc::unbounded::<()>();
    let server = tokio::spawn(async move {
        let mut job = job_obj("kubectl-trace-abc", "abc", json!({"active": 1}));
        job["spec"]["ttlSecondsAfterFinished"] = json!(3600);
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job.clone()]));
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
            ));
        let (tx, body) = body_channel();
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await
        .text(body);
        push(&tx, "Attaching 1 probe...\n");
        ctrl_c.unbounded_send(()).unwrap();
        // The stop: the trace's pods (the runner is running: told to stop, not deleted).
        let s = next(&mut h, "GET", "/api/v1/namespaces/default/pods").await;
        assert!(
            s.query.contains("labelSelector=kubectl-trace/id=abc"),
            "{}",
            s.query
        );
        s.ok(list(
            "PodList",
            vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
        ));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job]));
        // The runner prints END's output and its maps, then ends.
        push(&tx, "\n\n@[bash]: 7\n");
        drop(tx);
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await
        .ok(terminated_pod(0));
        no_more_requests(&mut h).await;
    });
    let calls = Calls::default();
    let stop = stopper(calls.clone(), None);
    let (out, buf) = Out::buffer();
    crate::attach::attach_trace_with(&ctx, "abc", &opts(), &out, &mut interrupts, &stop)
        .await
        .unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(*calls.lock().unwrap(), vec!["default/kubectl-trace-abc-x1"]);
    assert_eq!(buf.text(), "Attaching 1 probe...\n\n\n@[bash]: 7\n");
}

#[tokio::test]
async fn ctrl_c_falls_back_to_deleting_the_pod_when_the_runner_cannot_be_told() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
            ));
        let s = next(
            &mut h,
            "DELETE",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await;
        let body = s.body.clone();
        s.ok(trace_pod("kubectl-trace-abc-x1", "abc", "n1", None));
        // The Job whose pod is stopping is kept (its logs still stream); others go.
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![
                    json!({"metadata": {"name": "kubectl-trace-abc", "namespace": "default",
                                     "annotations": {"kubectl-trace/node": "n1"}}}),
                    json!({"metadata": {"name": "kubectl-trace-abc-2", "namespace": "default",
                                     "annotations": {"kubectl-trace/node": "n2"}}}),
                ],
            ));
        let s = next(
            &mut h,
            "DELETE",
            "/apis/batch/v1/namespaces/default/jobs/kubectl-trace-abc-2",
        )
        .await;
        let job_body = s.body.clone();
        s.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        (body, job_body)
    });
    let calls = Calls::default();
    let stop = stopper(calls.clone(), Some("404 page not found"));
    let report = crate::attach::stop_trace(&ctx, "default", "abc", 45, &stop)
        .await
        .unwrap();
    drop(ctx);
    let (pod_body, job_body) = server.await.unwrap();
    assert_eq!(pod_body["gracePeriodSeconds"], 45);
    assert_eq!(job_body["propagationPolicy"], "Background");
    assert_eq!(*calls.lock().unwrap(), vec!["default/kubectl-trace-abc-x1"]);
    assert_eq!(
        report.deleted_running,
        vec![("n1".to_string(), "404 page not found".to_string())]
    );
    assert_eq!(
        report.cancelled,
        vec![("kubectl-trace-abc-2".to_string(), "n2".to_string())]
    );
}

#[tokio::test]
async fn ctrl_c_while_pending_deletes_the_job_and_fails() {
    let (ctx, mut h) = mock();
    let (ctrl_c, mut interrupts) = futures::channel::mpsc::unbounded::<()>();
    let server = tokio::spawn(async move {
        let job = job_obj("kubectl-trace-abc", "abc", json!({"active": 1}));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job.clone()]));
        let mut p = trace_pod("kubectl-trace-abc-x1", "abc", "n1", None);
        p["status"]["phase"] = json!("Pending");
        p["status"]["containerStatuses"][0]["state"] =
            json!({"waiting": {"reason": "ContainerCreating"}});
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![p.clone()]));
        // The wait has seen the pod (ContainerCreating) when it starts watching.
        next_watch(&mut h, "/api/v1/namespaces/default/pods")
            .await
            .text(quiet_watch());
        ctrl_c.unbounded_send(()).unwrap();
        // Ctrl-C: the stop lists the pods (the pending one is left to the Job's deletion).
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![p]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job]));
        let s = next(
            &mut h,
            "DELETE",
            "/apis/batch/v1/namespaces/default/jobs/kubectl-trace-abc",
        )
        .await;
        assert_eq!(s.body["propagationPolicy"], "Background");
        s.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
        no_more_requests(&mut h).await;
    });
    let calls = Calls::default();
    let stop = stopper(calls.clone(), None);
    let (out, buf) = Out::buffer();
    let e = crate::attach::attach_trace_with(&ctx, "abc", &opts(), &out, &mut interrupts, &stop)
        .await
        .unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert!(calls.lock().unwrap().is_empty());
    assert_eq!(buf.text(), "");
    assert_ne!(e.exit_code(), 0);
    assert_eq!(
        e.to_string(),
        "stopped before the trace pod on node/n1 started (it was: ContainerCreating); nothing was traced there and job kubectl-trace-abc was deleted"
    );
}

#[tokio::test]
async fn second_ctrl_c_leaves_at_once_saying_what_runs() {
    let (ctx, mut h) = mock();
    let (ctrl_c, mut interrupts) = futures::channel::mpsc::unbounded::<()>();
    let server = tokio::spawn(async move {
        let job = job_obj("kubectl-trace-abc", "abc", json!({"active": 1}));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job.clone()]));
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
            ));
        let (tx, body) = body_channel();
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await
        .text(body);
        push(&tx, "Attaching 1 probe...\n");
        ctrl_c.unbounded_send(()).unwrap();
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![trace_pod("kubectl-trace-abc-x1", "abc", "n1", None)],
            ));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job]));
        // The runner takes its time to print; the user presses Ctrl-C again.
        ctrl_c.unbounded_send(()).unwrap();
        tx
    });
    let calls = Calls::default();
    let stop = stopper(calls.clone(), None);
    let (out, _) = Out::buffer();
    let e = crate::attach::attach_trace_with(&ctx, "abc", &opts(), &out, &mut interrupts, &stop)
        .await
        .unwrap_err();
    let _tx = server.await.unwrap();
    assert_eq!(e.exit_code(), 130);
    // One line; the second Ctrl-C may come before or after the stop request is done.
    let e = e.to_string();
    assert!(
        [
            "left trace abc (node/n1 printing its maps); read it with: kubectl trace logs abc, delete it with: kubectl trace delete abc",
            "left trace abc (node/n1 running); read it with: kubectl trace logs abc, delete it with: kubectl trace delete abc",
        ]
        .contains(&e.as_str()),
        "{e}"
    );
}

#[tokio::test]
async fn attach_runner_script_rejection_exits_2() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list(
                "JobList",
                vec![job_obj("kubectl-trace-abc", "abc", json!({}))],
            ));
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![terminated_pod(2)]));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1/log",
        )
        .await
        .text(body_once(
            b"/programs/program.bt:1:1: error: tracepoint not found\n".to_vec(),
        ));
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/pods/kubectl-trace-abc-x1",
        )
        .await
        .ok(terminated_pod(2));
    });
    let (out, buf) = Out::buffer();
    let e = attach_trace(&ctx, "abc", &opts(), &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(e.exit_code(), 2);
    // One line, with the user's file name, not the path inside the trace container.
    assert_eq!(
        e.to_string(),
        "opens.bt:1:1: error: tracepoint not found (reported by node/n1)"
    );
    assert_eq!(buf.text(), "opens.bt:1:1: error: tracepoint not found\n");
}

#[tokio::test]
async fn run_with_volume_output_checks_the_claim() {
    let (ctx, mut h) = mock();
    let mut args = run_args("node/n1");
    args.output = vec!["pvc:traces/team-a".into()];
    let p = prepare(&args, "default").unwrap();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/nodes/n1")
            .await
            .ok(json!({"metadata": {"name": "n1"}}));
        namespace_ok(&mut h, "default").await;
        next(
            &mut h,
            "GET",
            "/api/v1/namespaces/default/persistentvolumeclaims/traces",
        )
        .await
        .status(
            404,
            "NotFound",
            "persistentvolumeclaims \"traces\" not found",
        );
    });
    let (out, _) = Out::buffer();
    let e = run_with(&ctx, &p, &out).await.unwrap_err();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        e.to_string(),
        "persistentvolumeclaim traces not found in namespace default"
    );
}

// --- logs of runs kept on a volume (--output pvc:CLAIM) ---------------------------------
// The reader pod's API requests (create, wait, delete) go through the mock; its commands
// (pods/exec, a websocket upgrade that tower-test cannot answer) run as local processes
// over a directory standing for the claim (`persisted::tests::LocalRemote`).

use crate::logs::logs_with_remote;
use crate::persisted::tests::{make_runs, meta, LocalRemote};
use crate::persisted::{unavailable, Exec, Remote};

fn volume_with_runs() -> tempfile::TempDir {
    let vol = tempfile::tempdir().unwrap();
    make_runs(
        &vol.path().join("team-a"),
        "abc",
        &[
            (
                "2026-11-25T15-04-05Z",
                "Attaching 1 probe...\n@[bash]: 3\n",
                Some(&meta(
                    "succeeded",
                    "2026-11-25T15:04:05.000Z",
                    Some("2026-11-25T15:05:05.000Z"),
                    None,
                )),
            ),
            (
                "2026-11-25T16-04-05Z",
                "Attaching 1 probe...\n@[sshd]: 1\n",
                Some(&meta(
                    "succeeded",
                    "2026-11-25T16:04:05.000Z",
                    Some("2026-11-25T16:05:05.000Z"),
                    None,
                )),
            ),
        ],
    );
    vol
}

fn reader_status(phase: &str, state: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "r", "namespace": "default"},
           "spec": {"containers": [{"name": "reader"}]},
           "status": {"phase": phase, "containerStatuses": [{"name": "reader", "image": "busybox:1.36",
                      "imageID": "", "ready": phase == "Running", "restartCount": 0, "state": state}]}})
}

/// Answer the reader pod's create and start-up; returns (pod sent, its name).
async fn reader_starts(h: &mut Handle) -> (Value, String) {
    let s = next(h, "POST", "/api/v1/namespaces/default/pods").await;
    let pod = s.body.clone();
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    s.json(201, pod.clone());
    // The wait watches that one pod: a list (still creating), then the watch (running).
    let s = next(h, "GET", "/api/v1/namespaces/default/pods").await;
    assert!(
        s.query
            .contains(&format!("fieldSelector=metadata.name={name}")),
        "{}",
        s.query
    );
    let mut pending = reader_status(
        "Pending",
        json!({"waiting": {"reason": "ContainerCreating"}}),
    );
    pending["metadata"]["resourceVersion"] = json!("7");
    let mut l = list("PodList", vec![pending]);
    l["metadata"]["resourceVersion"] = json!("7");
    s.ok(l);
    let s = next_watch(h, "/api/v1/namespaces/default/pods").await;
    let mut running = reader_status("Running", json!({"running": {}}));
    running["metadata"]["resourceVersion"] = json!("8");
    s.text(body_once(watch_event("MODIFIED", running).to_vec()));
    (pod, name)
}

/// The next request, which must be a watch of `path`.
async fn next_watch(h: &mut Handle, path: &str) -> Seen {
    let (req, send) = tokio::time::timeout(Duration::from_secs(10), h.next_request())
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for a watch of {path}"))
        .unwrap_or_else(|| panic!("client gone before a watch of {path}"));
    let query = req.uri().query().unwrap_or("").to_string();
    crate::rbac_tests::check_seen(req.method().as_str(), req.uri().path(), &query);
    assert_eq!((req.method().as_str(), req.uri().path()), ("GET", path));
    assert!(query.contains("watch=true"), "{query}");
    Seen {
        method: "GET".into(),
        path: path.to_string(),
        query: unescape(&query),
        body: Value::Null,
        send,
    }
}

async fn reader_deleted(h: &mut Handle, name: &str) -> Value {
    let s = next(
        h,
        "DELETE",
        &format!("/api/v1/namespaces/default/pods/{name}"),
    )
    .await;
    let body = s.body.clone();
    s.ok(json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}));
    body
}

fn job_with_output(output: &str) -> Value {
    let mut j = job_obj("kubectl-trace-abc", "abc", json!({"succeeded": 1}));
    j["metadata"]["annotations"]["kubectl-trace/output"] = json!(output);
    j
}

#[tokio::test]
async fn logs_reads_the_volume_when_the_pods_are_gone() {
    let vol = volume_with_runs();
    let root = vol.path().to_path_buf();
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list("PodList", vec![]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job_with_output("pvc:traces/team-a")]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
        let (pod, name) = reader_starts(&mut h).await;
        let del = reader_deleted(&mut h, &name).await;
        (pod, del)
    });
    let factory = move |_: &Ctx, _: &str, _: &str| -> Box<dyn Remote + Send> {
        Box::new(LocalRemote {
            root: root.clone(),
            cut_after: None,
        })
    };
    let (out, buf) = Out::buffer();
    logs_with_remote(&ctx, &LogsArgs::new("abc"), &out, &factory)
        .await
        .unwrap();
    drop(ctx);
    let (pod, del) = server.await.unwrap();
    // The latest run only, as printed by the runner.
    assert_eq!(buf.text(), "Attaching 1 probe...\n@[sshd]: 1\n");
    assert!(pod["metadata"]["name"]
        .as_str()
        .unwrap()
        .starts_with("kubectl-trace-abc-reader-"));
    assert_eq!(pod["metadata"]["labels"]["kubectl-trace/id"], "abc");
    assert_eq!(
        pod["metadata"]["labels"]["kubectl-trace/component"],
        "reader"
    );
    let spec = &pod["spec"];
    assert_eq!(spec["restartPolicy"], "Never");
    assert_eq!(spec["activeDeadlineSeconds"], 600);
    assert_eq!(
        spec["volumes"][0]["persistentVolumeClaim"],
        json!({"claimName": "traces", "readOnly": true})
    );
    assert_eq!(spec["containers"][0]["image"], "busybox:1.36");
    assert_eq!(spec["containers"][0]["volumeMounts"][0]["readOnly"], true);
    assert_eq!(del["gracePeriodSeconds"], 0);
}

#[tokio::test]
async fn logs_all_runs_of_a_scheduled_trace_from_the_volume() {
    let vol = volume_with_runs();
    let root = vol.path().to_path_buf();
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![]));
        // An older CronJob without the annotation: the volume comes from its template.
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "kubectl-trace-abc", "namespace": "default",
                         "labels": {"kubectl-trace/id": "abc"}},
            "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
                "containers": [{"name": "trace-runner", "args": ["run", "--output-dir", "/output/team-a", "--trace-id", "abc"]}],
                "volumes": [{"name": "output", "persistentVolumeClaim": {"claimName": "traces"}}]}}}}}});
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![cj]));
        let (_, name) = reader_starts(&mut h).await;
        reader_deleted(&mut h, &name).await;
    });
    let factory = move |_: &Ctx, _: &str, _: &str| -> Box<dyn Remote + Send> {
        Box::new(LocalRemote {
            root: root.clone(),
            cut_after: None,
        })
    };
    let (out, buf) = Out::buffer();
    let args = LogsArgs {
        all_runs: true,
        ..LogsArgs::new("abc")
    };
    logs_with_remote(&ctx, &args, &out, &factory).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        buf.text(),
        "==> RUN 2026-11-25T15-04-05Z (succeeded, 2026-11-25T15:04:05.000Z → 2026-11-25T15:05:05.000Z) <==\n\
         Attaching 1 probe...\n@[bash]: 3\n\
         ==> RUN 2026-11-25T16-04-05Z (succeeded, 2026-11-25T16:04:05.000Z → 2026-11-25T16:05:05.000Z) <==\n\
         Attaching 1 probe...\n@[sshd]: 1\n"
    );
}

#[tokio::test]
async fn logs_download_with_from_needs_no_trace_objects() {
    let vol = volume_with_runs();
    let root = vol.path().to_path_buf();
    let dest = tempfile::tempdir().unwrap();
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let (_, name) = reader_starts(&mut h).await;
        reader_deleted(&mut h, &name).await;
    });
    let factory = move |_: &Ctx, _: &str, _: &str| -> Box<dyn Remote + Send> {
        Box::new(LocalRemote {
            root: root.clone(),
            cut_after: None,
        })
    };
    let (out, _) = Out::buffer();
    let args = LogsArgs {
        from: Some("pvc:traces/team-a".into()),
        download: Some(dest.path().join("runs")),
        ..LogsArgs::new("abc")
    };
    logs_with_remote(&ctx, &args, &out, &factory).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    for run in ["2026-11-25T15-04-05Z", "2026-11-25T16-04-05Z"] {
        for f in ["output.txt", "meta.json"] {
            assert_eq!(
                std::fs::read(dest.path().join("runs").join(run).join(f)).unwrap(),
                std::fs::read(vol.path().join("team-a/abc").join(run).join(f)).unwrap()
            );
        }
    }
}

/// A reader whose exec cannot be used (an API server without pods/exec).
struct NoExec;

impl Remote for NoExec {
    fn exec(&self, _: Vec<String>) -> futures::future::BoxFuture<'_, crate::errors::Result<Exec>> {
        Box::pin(async {
            Err(unavailable(crate::errors::fail(
                "exec in pod r failed: 404 page not found",
            )))
        })
    }
}

#[tokio::test]
async fn logs_all_runs_falls_back_to_pods_without_exec() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/jobs")
            .await
            .ok(list("JobList", vec![job_with_output("pvc:traces")]));
        next(&mut h, "GET", "/apis/batch/v1/namespaces/default/cronjobs")
            .await
            .ok(list("CronJobList", vec![]));
        let (_, name) = reader_starts(&mut h).await;
        reader_deleted(&mut h, &name).await;
        let mut reader = trace_pod(&name, "abc", "n1", None);
        reader["metadata"]["labels"]["kubectl-trace/component"] = json!("reader");
        let mut second = trace_pod("kubectl-trace-abc-2", "abc", "n1", None);
        second["metadata"]["creationTimestamp"] = json!("2025-01-01T01:00:00Z");
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![
                    second,
                    reader,
                    trace_pod("kubectl-trace-abc-1", "abc", "n1", None),
                ],
            ));
        for (pod, text) in [
            ("kubectl-trace-abc-1", "one\n"),
            ("kubectl-trace-abc-2", "two\n"),
        ] {
            next(
                &mut h,
                "GET",
                &format!("/api/v1/namespaces/default/pods/{pod}/log"),
            )
            .await
            .text(body_once(text.as_bytes().to_vec()));
        }
    });
    let (out, buf) = Out::buffer();
    let args = LogsArgs {
        all_runs: true,
        ..LogsArgs::new("abc")
    };
    let factory = |_: &Ctx, _: &str, _: &str| -> Box<dyn Remote + Send> { Box::new(NoExec) };
    logs_with_remote(&ctx, &args, &out, &factory).await.unwrap();
    drop(ctx);
    server.await.unwrap();
    let text = buf.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(
        lines[0].starts_with("==> RUN kubectl-trace-abc-1 (running, "),
        "{text}"
    );
    assert_eq!(lines[1], "one");
    assert!(
        lines[2].starts_with("==> RUN kubectl-trace-abc-2 "),
        "{text}"
    );
    assert_eq!(lines[3], "two");
}

#[tokio::test]
async fn logs_download_explains_a_reader_image_pull_failure() {
    let (ctx, mut h) = mock();
    let server = tokio::spawn(async move {
        let s = next(&mut h, "POST", "/api/v1/namespaces/default/pods").await;
        let pod = s.body.clone();
        let name = pod["metadata"]["name"].as_str().unwrap().to_string();
        s.json(201, pod);
        next(&mut h, "GET", "/api/v1/namespaces/default/pods")
            .await
            .ok(list(
                "PodList",
                vec![reader_status(
                    "Pending",
                    json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}),
                )],
            ));
        reader_deleted(&mut h, &name).await;
    });
    let dest = tempfile::tempdir().unwrap();
    let (out, _) = Out::buffer();
    let args = LogsArgs {
        from: Some("pvc:traces".into()),
        download: Some(dest.path().to_path_buf()),
        reader_image: "registry.local/busybox:1".into(),
        ..LogsArgs::new("abc")
    };
    let factory = |_: &Ctx, _: &str, _: &str| -> Box<dyn Remote + Send> { Box::new(NoExec) };
    let e = logs_with_remote(&ctx, &args, &out, &factory)
        .await
        .unwrap_err()
        .to_string();
    drop(ctx);
    server.await.unwrap();
    assert_eq!(
        e,
        "cannot read the volume: cannot pull the reader image registry.local/busybox:1 (ImagePullBackOff): Back-off pulling image (choose another with --reader-image)"
    );
}

#[test]
fn run_pod_container_positional_as_iovisor() {
    let mut args = run_args("pod/web-0");
    args.container_arg = Some("nginx".into());
    assert_eq!(
        prepare(&args, "default").unwrap().container.as_deref(),
        Some("nginx")
    );
    args.container = Some("sidecar".into());
    assert_eq!(
        prepare(&args, "default").unwrap_err().to_string(),
        "two containers given: -c sidecar and nginx; give one"
    );
    let mut args = run_args("node/n1");
    args.container_arg = Some("nginx".into());
    assert!(prepare(&args, "default")
        .unwrap_err()
        .to_string()
        .contains("needs a pod/NAME target"));
    // A bare node name, as iovisor's `run NODE`.
    let p = prepare(&run_args("worker-1"), "default").unwrap();
    assert_eq!(p.target, crate::target::TargetRef::Node("worker-1".into()));
}
