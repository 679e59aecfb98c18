//! Bounded fuzzing (proptest, stable Rust) of every place the plugin decodes an API
//! server's reply, and of what it then does with the objects: list pages and single
//! objects of Jobs, CronJobs, Pods, ConfigMaps, Events and Nodes; `Status` errors; the
//! reader pod's tar.gz stream and its `meta.json`. Inputs are generated JSON, valid
//! objects with fields removed or retyped, truncated bodies, stray bytes (invalid
//! UTF-8), huge numbers and deep nesting. The property: no panic, and every message
//! one line. `FUZZ_CASES` sets the cases per property (default 1024); the total count
//! of inputs is printed.

use std::io::Read;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Node, Pod};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

use crate::errors::{explain_status, Op};
use crate::reply::{decode_object, decode_page, short_reason, utf8_reason, ReplyError};

/// Inputs each case feeds, per property: mutated objects, generated JSON (alone and
/// in a list), raw bytes, the tar stream.
const INPUTS_PER_CASE: [u32; 4] = [1, 2, 1, 1];

fn cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// A fixed seed unless `FUZZ_SEED` gives another, so that a CI run is repeatable (set
/// another seed to explore further, and make what it finds a named test).
fn config() -> ProptestConfig {
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x6b74_7261_6365);
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        rng_seed: proptest::test_runner::RngSeed::Fixed(seed),
        ..ProptestConfig::default()
    }
}

const KEYS: &[&str] = &[
    "metadata",
    "name",
    "namespace",
    "labels",
    "annotations",
    "uid",
    "creationTimestamp",
    "ownerReferences",
    "kind",
    "uid",
    "spec",
    "status",
    "items",
    "continue",
    "containers",
    "containerStatuses",
    "state",
    "terminated",
    "running",
    "waiting",
    "exitCode",
    "reason",
    "message",
    "phase",
    "nodeName",
    "conditions",
    "type",
    "active",
    "ready",
    "succeeded",
    "failed",
    "schedule",
    "jobTemplate",
    "template",
    "suspend",
    "lastScheduleTime",
    "code",
    "data",
    "involvedObject",
    "lastTimestamp",
    "volumes",
    "args",
    "image",
    "details",
];

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(str::to_string),
        1 => "[a-zA-Z/._\\-]{0,12}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
            .map(Value::Number)
            .unwrap_or(Value::Null)),
        Just(json!(u64::MAX)),
        Just(json!(i64::MIN)),
        "\\PC{0,16}".prop_map(Value::String),
        "[\\x00-\\x1f\\n]{0,4}".prop_map(Value::String),
        Just(json!("2025-01-01T00:00:00Z")),
        Just(json!("True")),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "kubectl-trace-abc", "namespace": "default", "uid": "u1",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"kubectl-trace/id": "abc", "app.kubernetes.io/name": "kubectl-trace"},
            "annotations": {"kubectl-trace/target": "pod/default/web", "kubectl-trace/node": "n1",
                            "kubectl-trace/pods": "default/web", "kubectl-trace/output": "pvc:traces/x"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": "cu"}]},
        "spec": {"template": {"metadata": {"labels": {"a": "b"}}, "spec": {
            "containers": [{"name": "trace-runner", "image": "img", "args": ["--output-dir", "/output/x"]}],
            "volumes": [{"name": "output", "persistentVolumeClaim": {"claimName": "traces"}}]}}},
        "status": {"active": 1, "ready": 0, "failed": 0, "succeeded": 0,
            "conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]}
    })
}

fn cronjob() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "kubectl-trace-sch", "namespace": "default", "uid": "cu",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": {"kubectl-trace/target": "node/n2", "kubectl-trace/node": "n2"}},
        "spec": {"schedule": "*/5 * * * *", "suspend": false, "jobTemplate": {"spec": {"template": {"spec": {
            "containers": [{"name": "trace-runner", "image": "img"}]}}}}},
        "status": {"lastScheduleTime": "2025-01-01T00:55:00Z", "active": [{"name": "x"}]}
    })
}

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default", "uid": "p1",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"job-name": "kubectl-trace-abc", "kubectl-trace/id": "abc"},
            "annotations": {"kubectl-trace/node": "n1", "kubectl-trace/pods": "default/web-0"}},
        "spec": {"nodeName": "n1", "containers": [{"name": "trace-runner", "image": "x"}]},
        "status": {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "False",
                "reason": "Unschedulable", "message": "0/3 nodes"}],
            "containerStatuses": [{"name": "trace-runner", "containerID": "containerd://abc",
                "image": "x", "imageID": "", "ready": true, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "no"},
                          "terminated": {"exitCode": 2, "reason": "Error"}}}]}
    })
}

fn configmap() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kubectl-trace-abc", "namespace": "default"},
        "data": {"program.bt": "BEGIN {}"}})
}

fn event() -> Value {
    json!({"apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "e1", "namespace": "default"},
        "involvedObject": {"kind": "Job", "name": "kubectl-trace-abc"},
        "type": "Warning", "reason": "FailedCreate",
        "message": "pods \"x\" is forbidden: violates PodSecurity \"baseline:latest\": privileged",
        "lastTimestamp": "2025-01-01T00:00:00Z"})
}

fn status() -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 403,
        "reason": "Forbidden",
        "message": "admission webhook \"v.gatekeeper.sh\" denied the request: privileged",
        "details": {"name": "x", "kind": "jobs"}})
}

fn list_of(items: Vec<Value>) -> Value {
    json!({"kind": "List", "apiVersion": "v1", "metadata": {"continue": "c1"}, "items": items})
}

/// One step of a path into a JSON value.
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    At(usize),
}

fn paths(v: &Value, here: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                here.push(Seg::Key(k.clone()));
                paths(c, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                here.push(Seg::At(i));
                paths(c, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'a>(v: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    let mut cur = v;
    for s in path {
        cur = match (s, cur) {
            (Seg::Key(k), Value::Object(m)) => m.get_mut(k)?,
            (Seg::At(i), Value::Array(a)) => a.get_mut(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A mutation of a valid object.
#[derive(Clone, Debug)]
enum Mutation {
    /// Remove the field (or array element) at a path.
    Remove(Index),
    /// Put another value there (retyped, huge, deep...).
    Replace(Index, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), value()).prop_map(|(i, v)| Mutation::Replace(i, v)),
    ]
}

fn apply(base: &mut Value, m: &Mutation) {
    let mut all = Vec::new();
    paths(base, &mut Vec::new(), &mut all);
    match m {
        Mutation::Remove(i) => {
            let path = i.get(&all).clone();
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (last, at_mut(base, parent)) {
                (Seg::Key(k), Some(Value::Object(m))) => {
                    m.remove(k);
                }
                (Seg::At(i), Some(Value::Array(a))) if *i < a.len() => {
                    a.remove(*i);
                }
                _ => {}
            }
        }
        Mutation::Replace(i, v) => {
            let path = i.get(&all).clone();
            if let Some(slot) = at_mut(base, &path) {
                *slot = v.clone();
            }
        }
    }
}

/// What happens to the serialized text.
#[derive(Clone, Debug)]
enum Bytes {
    Keep,
    Truncate(Index),
    Insert(Index, u8),
    Nest(usize),
}

fn bytes_op() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => Just(Bytes::Keep),
        2 => any::<Index>().prop_map(Bytes::Truncate),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Bytes::Insert(i, b)),
        1 => (100usize..5000).prop_map(Bytes::Nest),
    ]
}

fn render(v: &Value, op: &Bytes) -> Vec<u8> {
    let mut b = serde_json::to_vec(v).unwrap();
    match op {
        Bytes::Keep => {}
        Bytes::Truncate(i) => b.truncate(i.index(b.len() + 1)),
        Bytes::Insert(i, x) => b.insert(i.index(b.len() + 1), *x),
        Bytes::Nest(n) => {
            // Deep arrays where a field value goes.
            let at = b
                .iter()
                .position(|c| *c == b':')
                .map(|p| p + 1)
                .unwrap_or(0);
            let mut deep = vec![b'['; *n];
            deep.extend(vec![b']'; *n]);
            deep.push(b',');
            let _ = deep.pop();
            b.splice(at..at, deep.into_iter().chain(std::iter::once(b' ')));
        }
    }
    b
}

fn one_line(s: &str) {
    assert!(
        !s.contains('\n') && !s.contains('\r'),
        "not one line: {s:?}"
    );
}

fn check_error(e: ReplyError) {
    if let ReplyError::NotJson(why) = e {
        one_line(&why);
    }
}

/// Feed a reply body to every decoder as the plugin does, and the decoded objects to
/// what the plugin does with them. Must not panic.
fn feed(body: &[u8]) {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => return one_line(&utf8_reason(&e)),
    };
    let now: jiff::Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
    let jobs = decode_page::<Job>(text, 100).map(|p| p.items);
    let crons = decode_page::<CronJob>(text, 100).map(|p| p.items);
    if let (Ok(j), Ok(c)) = (&jobs, &crons) {
        let rows = crate::get::rows(j, c, now);
        let _ = crate::get::table(&rows, true, true);
        for job in j {
            let _ = crate::tracejob::job_status(job);
            let _ = crate::tracejob::job_prefix(job);
            let t = job.spec.as_ref().map(|s| &s.template);
            let _ = crate::logs::output_of(Some(&job.metadata), None);
            let _ = crate::logs::output_of(
                t.and_then(|t| t.metadata.as_ref()),
                t.and_then(|t| t.spec.as_ref()),
            );
        }
    }
    match decode_page::<Pod>(text, 100) {
        Ok(p) => {
            for pod in &p.items {
                let _ = crate::tracejob::classify(pod, "n1");
                let _ = crate::logs::pod_header(pod);
                if let Err(e) = crate::target::scope_pod(pod, Some("trace-runner"), true) {
                    one_line(&e.to_string());
                }
            }
            if let Err(e) = crate::target::group_pods(&p.items, None, true, "-l app=x") {
                one_line(&e.to_string());
            }
        }
        Err(e) => check_error(e),
    }
    for r in [
        decode_page::<ConfigMap>(text, 100).map(|_| ()),
        decode_page::<Event>(text, 100).map(|_| ()),
        decode_object::<Job>(text).map(|j| {
            crate::tracejob::job_status(&j);
        }),
        decode_object::<CronJob>(text).map(|_| ()),
        decode_object::<Node>(text).map(|_| ()),
        decode_object::<Pod>(text).map(|p| {
            crate::tracejob::classify(&p, "n1");
        }),
        jobs.map(|_| ()),
        crons.map(|_| ()),
    ] {
        if let Err(e) = r {
            check_error(e);
        }
    }
    // An error reply: kube reads it as a Status, the plugin phrases it.
    match serde_json::from_str::<kube::core::Status>(text) {
        Ok(s) => {
            let op = Op::new("create", "jobs.batch", Some("default")).named("kubectl-trace-abc");
            one_line(&explain_status(
                s.code,
                &s.reason,
                &s.message,
                &op,
                "https://k8s",
            ));
        }
        Err(e) => one_line(&short_reason(&e)),
    }
    let _ = crate::persisted::RunMeta::parse(text);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn mutated_objects_and_lists(
        which in 0usize..7,
        muts in prop::collection::vec(mutation(), 1..4),
        op in bytes_op(),
    ) {
        let mut base = match which {
            0 => list_of(vec![job(), job()]),
            1 => list_of(vec![cronjob()]),
            2 => list_of(vec![pod(), pod()]),
            3 => list_of(vec![configmap(), event()]),
            4 => pod(),
            5 => job(),
            _ => status(),
        };
        for m in &muts {
            apply(&mut base, m);
        }
        feed(&render(&base, &op));
    }

    #[test]
    fn generated_json(v in value(), op in bytes_op()) {
        feed(&render(&v, &op));
        feed(&render(&list_of(vec![v]), &op));
    }

    #[test]
    fn raw_bytes(b in prop::collection::vec(any::<u8>(), 0..512)) {
        feed(&b);
    }

    #[test]
    fn reader_tar_stream(
        files in prop::collection::vec(("[a-z0-9:T\\-]{0,24}", "\\PC{0,8}", prop::collection::vec(any::<u8>(), 0..300)), 0..4),
        cut in any::<Index>(),
        flip in prop::option::of((any::<Index>(), any::<u8>())),
    ) {
        let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(enc);
        for (run, name, data) in &files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            let path = format!("abc/{run}/{name}");
            let _ = b.append_data(&mut h, path, data.as_slice());
        }
        let mut gz = b.into_inner().unwrap().finish().unwrap();
        if let Some((i, x)) = flip {
            let i = i.index(gz.len());
            gz[i] ^= x;
        }
        gz.truncate(cut.index(gz.len() + 1));
        let mut sink = Drain(0);
        let report = crate::persisted::unpack_runs(gz.as_slice(), &mut sink);
        if let Some(e) = &report.stream_error {
            one_line(e);
        }
    }
}

/// Reads every file to its end, keeps nothing.
struct Drain(u64);

impl crate::persisted::RunSink for Drain {
    fn file(
        &mut self,
        _run: &str,
        _name: &str,
        _size: u64,
        data: &mut dyn Read,
    ) -> std::io::Result<()> {
        self.0 += std::io::copy(data, &mut std::io::sink())?;
        Ok(())
    }
}

#[test]
fn report_inputs() {
    // What a run covers (shrinking after a failure adds more).
    let per_case: u32 = INPUTS_PER_CASE.iter().sum();
    eprintln!(
        "fuzz: {} cases per property (FUZZ_CASES), {} inputs in all",
        cases(),
        cases() * per_case
    );
}

/// Crashes the fuzzing found, kept as regression tests.
#[test]
fn found_by_fuzzing() {
    // A Status whose message spans lines (an HTML error page from a proxy).
    feed(br#"{"kind":"Status","code":502,"reason":"BadGateway","message":"<html>\n<body>bad gateway</body>\n</html>"}"#);
    // A tar header with a bad checksum whose name holds a carriage return: tar's
    // error quotes the name.
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..7].copy_from_slice(b"abc/\r\nx");
    h.as_old_mut().cksum = *b"zzzzzzz\0";
    let mut raw = h.as_bytes().to_vec();
    raw.extend([0u8; 1024]);
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &raw).unwrap();
    let gz = enc.finish().unwrap();
    let report = crate::persisted::unpack_runs(gz.as_slice(), &mut Drain(0));
    let e = report.stream_error.expect("a corrupt header is an error");
    assert!(e.starts_with("the stream is corrupt or was cut: "), "{e}");
    one_line(&e);
}
