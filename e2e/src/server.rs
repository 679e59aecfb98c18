//! The HTTP/1.1 front of the fake API server (hyper): routes `/api/v1/...` and
//! `/apis/GROUP/VERSION/...` to the store with the verbs get, list, watch (`?watch=true`,
//! JSON lines), create, update, patch (merge, strategic as merge, JSON patch), delete and
//! deletecollection; `pods/NAME/log` (follow, tailLines, timestamps); discovery
//! (`/api`, `/apis`, `/version`); errors as `Status` objects. Test knobs live under
//! `/_e2e/` so that a shell can drive a `fake-cluster` too.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::node;
use crate::resources::{self, Resource, RESOURCES};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{meta_str, ApiError, DeleteOpts, RequestRecord, Store, WatchEvent};
use crate::util::parse_query;

pub type Body = BoxBody<Bytes, Infallible>;

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).boxed()
}

fn json_response(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(full(serde_json::to_vec(v).expect("json")))
        .expect("response")
}

fn error(e: &ApiError) -> Response<Body> {
    json_response(e.code, &e.status())
}

/// A streamed body fed by a channel.
fn streamed(content_type: &str) -> (mpsc::Sender<Bytes>, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let resp = Response::builder()
        .status(200)
        .header("content-type", content_type)
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .expect("response");
    (tx, resp)
}

/// Serve on `listener` until the task is dropped.
pub async fn serve(store: Arc<Store>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let store = store.clone();
        tokio::spawn(async move {
            let io = hyper_util::rt::TokioIo::new(stream);
            let svc = hyper::service::service_fn(move |req| {
                let store = store.clone();
                async move { Ok::<_, Infallible>(handle(store, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, svc)
                .await;
        });
    }
}

/// A parsed resource path.
#[derive(Debug)]
struct Target {
    res: &'static Resource,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(segs: &[&str]) -> Result<Option<Target>, ApiError> {
    let (group, rest) = match segs {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", g, _v, rest @ ..] => (*g, rest),
        _ => return Ok(None),
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, r, more @ ..] if !r.is_empty() => {
            (Some(ns.to_string()), [&[*r][..], more].concat())
        }
        other => (None, other.to_vec()),
    };
    let Some(plural) = rest.first() else {
        return Ok(None);
    };
    let res = resources::find(group, plural).ok_or_else(|| ApiError {
        code: 404,
        reason: "NotFound",
        message: "the server could not find the requested resource".into(),
        details: Value::Null,
    })?;
    Ok(Some(Target {
        res,
        namespace,
        name: rest.get(1).map(|s| s.to_string()),
        sub: rest.get(2).map(|s| s.to_string()),
    }))
}

fn verb_of(method: &Method, t: &Target, watch: bool) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("GET", true) => "get",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn forbidden_message(verb: &str, t: &Target) -> String {
    let resource = match &t.sub {
        Some(s) => format!("{}/{s}", t.res.plural),
        None => t.res.plural.to_string(),
    };
    let what = match &t.name {
        Some(n) if verb != "create" => format!("{} {n:?}", t.res.qualified()),
        _ => t.res.qualified(),
    };
    let scope = match &t.namespace {
        Some(ns) => format!("in the namespace {ns:?}"),
        None => "at the cluster scope".into(),
    };
    format!(
        "{what} is forbidden: User \"e2e-user\" cannot {verb} resource {resource:?} in API group {:?} {scope}",
        t.res.group
    )
}

async fn handle(store: Arc<Store>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let watch = matches!(q("watch").as_deref(), Some("true" | "1"));

    if segs.first() == Some(&"_e2e") {
        return knob(&store, &method, &segs[1..]);
    }
    if let Some(r) = discovery(&segs) {
        return r;
    }
    let t = match parse_target(&segs) {
        Ok(Some(t)) => t,
        Ok(None) => {
            return error(&ApiError {
                code: 404,
                reason: "NotFound",
                message: "the server could not find the requested resource".into(),
                details: Value::Null,
            })
        }
        Err(e) => return error(&e),
    };
    let verb = verb_of(&method, &t, watch);
    {
        let mut st = store.lock();
        st.requests.push(RequestRecord {
            method: method.to_string(),
            path: path.clone(),
            query: query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            verb: verb.to_string(),
        });
        let resource = match &t.sub {
            Some(s) => format!("{}/{s}", t.res.qualified()),
            None => t.res.qualified(),
        };
        let denied = st
            .knobs
            .forbidden
            .iter()
            .any(|(v, r)| (v == verb || v == "*") && (*r == resource || r == "*"));
        if denied {
            return error(&ApiError::forbidden(
                t.res,
                t.name.as_deref().unwrap_or(""),
                forbidden_message(verb, &t),
            ));
        }
    }
    if t.res.namespaced && t.namespace.is_none() && !matches!(verb, "list" | "watch") {
        return error(&ApiError::bad_request(
            "the namespace must be given for this request",
        ));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let labels = match LabelSelector::parse(&q("labelSelector").unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => return error(&ApiError::bad_request(e)),
    };
    let fields = match FieldSelector::parse(&q("fieldSelector").unwrap_or_default()) {
        Ok(s) => s,
        Err(e) => return error(&ApiError::bad_request(e)),
    };
    let list_ns = if t.res.namespaced {
        t.namespace.as_deref()
    } else {
        None
    };

    match verb {
        "list" => {
            let st = store.lock();
            let items = st.list(t.res, list_ns, &labels, &fields);
            json_response(
                200,
                &json!({
                    "apiVersion": t.res.api_version(),
                    "kind": format!("{}List", t.res.kind),
                    "metadata": {"resourceVersion": st.resource_version().to_string()},
                    "items": items,
                }),
            )
        }
        "watch" => watch_stream(&store, t.res, list_ns, labels, fields, &query),
        "get" => {
            let name = t.name.as_deref().unwrap_or("");
            if t.sub.as_deref() == Some("log") && t.res.plural == "pods" {
                return logs(&store, &ns, name, &query).await;
            }
            match store.lock().get(t.res, &ns, name) {
                Some(o) => json_response(200, o),
                None => error(&ApiError::not_found(t.res, name)),
            }
        }
        "create" => {
            let obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(&ApiError::bad_request(format!(
                        "error decoding the body: {e}"
                    )))
                }
            };
            if q("dryRun").is_some() {
                return json_response(201, &obj);
            }
            let result = store.with(|st| {
                let warning = st.admission_warning(t.res, &ns, &obj);
                st.create(t.res, &ns, obj).map(|o| (o, warning))
            });
            match result {
                Ok((o, warning)) => {
                    let mut r = json_response(201, &o);
                    if let Some(w) = warning {
                        if let Ok(h) = format!("299 - {w:?}").parse() {
                            r.headers_mut().insert("warning", h);
                        }
                    }
                    r
                }
                Err(e) => error(&e),
            }
        }
        "update" | "patch" => {
            let name = t.name.clone().unwrap_or_default();
            let Some(current) = store.lock().get(t.res, &ns, &name).cloned() else {
                return error(&ApiError::not_found(t.res, &name));
            };
            let incoming: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(&ApiError::bad_request(format!(
                        "error decoding the body: {e}"
                    )))
                }
            };
            let new = if verb == "update" {
                incoming
            } else if content_type.starts_with("application/json-patch+json") {
                let ops: json_patch::Patch = match serde_json::from_value(incoming) {
                    Ok(p) => p,
                    Err(e) => return error(&ApiError::bad_request(e.to_string())),
                };
                let mut doc = current;
                if let Err(e) = json_patch::patch(&mut doc, &ops) {
                    return error(&ApiError::invalid(
                        t.res,
                        &name,
                        &[("patch".into(), e.to_string())],
                    ));
                }
                doc
            } else if content_type.starts_with("application/merge-patch+json")
                || content_type.starts_with("application/strategic-merge-patch+json")
            {
                let mut doc = current;
                json_patch::merge(&mut doc, &incoming);
                doc
            } else {
                return error(&ApiError {
                    code: 415,
                    reason: "UnsupportedMediaType",
                    message: format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type})"),
                    details: Value::Null,
                });
            };
            match store.with(|st| st.replace(t.res, &ns, &name, new)) {
                Ok(o) => json_response(200, &o),
                Err(e) => error(&e),
            }
        }
        "delete" | "deletecollection" => {
            let opts_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let opts = DeleteOpts {
                propagation: opts_body
                    .get("propagationPolicy")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .or_else(|| q("propagationPolicy"))
                    .or_else(|| {
                        (opts_body.get("orphanDependents") == Some(&json!(true)))
                            .then(|| "Orphan".into())
                    }),
                grace: opts_body
                    .get("gracePeriodSeconds")
                    .and_then(Value::as_u64)
                    .or_else(|| q("gracePeriodSeconds").and_then(|g| g.parse().ok())),
            };
            if verb == "delete" {
                let name = t.name.clone().unwrap_or_default();
                match store.with(|st| st.delete(t.res, &ns, &name, &opts)) {
                    Ok(o) => json_response(200, &o),
                    Err(e) => error(&e),
                }
            } else {
                let deleted = store.with(|st| {
                    let names: Vec<(String, String)> = st
                        .list(t.res, list_ns, &labels, &fields)
                        .iter()
                        .map(|o| {
                            (
                                meta_str(o, "namespace").to_string(),
                                meta_str(o, "name").to_string(),
                            )
                        })
                        .collect();
                    names
                        .into_iter()
                        .filter_map(|(n, name)| st.delete(t.res, &n, &name, &opts).ok())
                        .collect::<Vec<_>>()
                });
                json_response(
                    200,
                    &json!({"apiVersion": t.res.api_version(), "kind": format!("{}List", t.res.kind),
                            "metadata": {}, "items": deleted}),
                )
            }
        }
        _ => error(&ApiError::method_not_allowed()),
    }
}

fn watch_stream(
    store: &Arc<Store>,
    res: &'static Resource,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &[(String, String)],
) -> Response<Body> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let rv: u64 = q("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let timeout = q("timeoutSeconds")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1800u64);
    let initial_events = q("sendInitialEvents").as_deref() == Some("true");
    let ns = ns.map(str::to_string);
    let matches = move |e: &WatchEvent| {
        e.res.group == res.group
            && e.res.plural == res.plural
            && ns.as_ref().is_none_or(|n| *n == e.namespace)
            && labels.matches(&e.object)
            && fields.matches(&e.object)
    };
    let (tx, resp) = streamed("application/json");
    let (mut first, mut rx, current_rv) = {
        let st = store.lock();
        if rv == 0 || initial_events {
            // "Start at most recent": synthetic ADDED for what exists, then changes.
            let now = st.resource_version();
            let items = st.list(
                res,
                None,
                &LabelSelector::default(),
                &FieldSelector::default(),
            );
            let added: Vec<Value> = items
                .into_iter()
                .map(|o| {
                    let ns = meta_str(&o, "namespace").to_string();
                    (o, ns)
                })
                .filter(|(o, n)| {
                    matches(&WatchEvent {
                        rv: now,
                        type_: "ADDED",
                        res,
                        namespace: n.clone(),
                        object: Arc::new(o.clone()),
                    })
                })
                .map(|(o, _)| json!({"type": "ADDED", "object": o}))
                .collect();
            let (_, rx) = st.watch_from(now);
            (added, rx, now)
        } else {
            let (past, rx) = st.watch_from(rv);
            let ev = past
                .iter()
                .filter(|e| matches(e))
                .map(|e| json!({"type": e.type_, "object": *e.object}))
                .collect();
            (ev, rx, st.resource_version())
        }
    };
    if initial_events {
        first.push(json!({"type": "BOOKMARK", "object": {
            "kind": res.kind, "apiVersion": res.api_version(),
            "metadata": {"resourceVersion": current_rv.to_string(),
                         "annotations": {"k8s.io/initial-events-end": "true"}}}}));
    }
    tokio::spawn(async move {
        let line = |v: &Value| {
            let mut b = serde_json::to_vec(v).expect("json");
            b.push(b'\n');
            Bytes::from(b)
        };
        for ev in &first {
            if tx.send(line(ev)).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = tx.closed() => return,
                ev = rx.recv() => match ev {
                    Ok(e) if e.rv > current_rv && matches(&e) => {
                        if tx.send(line(&json!({"type": e.type_, "object": *e.object}))).await.is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        let _ = tx.send(line(&json!({"type": "ERROR", "object": ApiError {
                            code: 410, reason: "Expired", message: "too old resource version".into(), details: Value::Null
                        }.status()}))).await;
                        return;
                    }
                    Err(_) => return,
                }
            }
        }
    });
    resp
}

async fn logs(
    store: &Arc<Store>,
    ns: &str,
    name: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let follow = matches!(q("follow").as_deref(), Some("true" | "1"));
    let timestamps = matches!(q("timestamps").as_deref(), Some("true" | "1"));
    let tail: Option<usize> = q("tailLines").and_then(|v| v.parse().ok());
    let pods = resources::get("", "pods");
    let log = {
        let st = store.lock();
        let Some(pod) = st.get(pods, ns, name) else {
            return error(&ApiError::not_found(pods, name));
        };
        let containers: Vec<String> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let container = match q("container").filter(|c| !c.is_empty()) {
            Some(c) if containers.contains(&c) => c,
            Some(c) => {
                return error(&ApiError::bad_request(format!(
                    "container {c} is not valid for pod {name}"
                )))
            }
            None if containers.len() == 1 => containers[0].clone(),
            None => {
                return error(&ApiError::bad_request(format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    containers.join(" ")
                )))
            }
        };
        let uid = meta_str(pod, "uid");
        match st.logs.get(&format!("{uid}/{container}")) {
            Some(l) => l.clone(),
            None => {
                let reason = pod
                    .pointer("/status/containerStatuses")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|s| s.get("name").and_then(Value::as_str) == Some(&container))
                    .and_then(|s| s.pointer("/state/waiting/reason"))
                    .and_then(Value::as_str)
                    .unwrap_or("ContainerCreating")
                    .to_string();
                return error(&ApiError::bad_request(format!(
                    "container {container:?} in pod {name:?} is waiting to start: {reason}"
                )));
            }
        }
    };
    let render = move |l: &crate::store::LogLine| {
        let mut b = Vec::new();
        if timestamps {
            b.extend_from_slice(l.timestamp.as_bytes());
            b.push(b' ');
        }
        b.extend_from_slice(&l.text);
        Bytes::from(b)
    };
    let (lines, _) = log.read_from(0);
    let start = tail.map_or(0, |t| lines.len().saturating_sub(t));
    if !follow {
        let mut out = Vec::new();
        for l in &lines[start..] {
            out.extend_from_slice(&render(l));
        }
        return Response::builder()
            .status(200)
            .header("content-type", "text/plain")
            .body(full(out))
            .expect("response");
    }
    let (tx, resp) = streamed("text/plain");
    let mut changes = log.subscribe();
    tokio::spawn(async move {
        let mut next = start;
        loop {
            changes.borrow_and_update();
            let (lines, closed) = log.read_from(next);
            next += lines.len();
            for l in &lines {
                if tx.send(render(l)).await.is_err() {
                    return;
                }
            }
            if closed {
                return;
            }
            tokio::select! {
                r = changes.changed() => if r.is_err() { return },
                _ = tx.closed() => return,
            }
        }
    });
    resp
}

fn discovery(segs: &[&str]) -> Option<Response<Body>> {
    let groups = ["batch", "apps"];
    let list = |gv: &str, group: &str| {
        let mut resources = Vec::new();
        for r in RESOURCES.iter().filter(|r| r.group == group) {
            resources.push(json!({"name": r.plural, "singularName": r.kind.to_lowercase(),
                "namespaced": r.namespaced, "kind": r.kind,
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]}));
            if matches!(r.plural, "pods" | "jobs" | "cronjobs" | "deployments") {
                resources.push(
                    json!({"name": format!("{}/status", r.plural), "singularName": "",
                    "namespaced": true, "kind": r.kind, "verbs": ["get", "patch", "update"]}),
                );
            }
            if r.plural == "pods" {
                resources.push(
                    json!({"name": "pods/log", "singularName": "", "namespaced": true,
                    "kind": "Pod", "verbs": ["get"]}),
                );
            }
        }
        json_response(
            200,
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        )
    };
    Some(match segs {
        ["version"] => json_response(
            200,
            &json!({
            "major": "1", "minor": "32", "gitVersion": "v1.32.0-e2e-fake", "gitCommit": "", "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23", "compiler": "gc", "platform": "linux/amd64"}),
        ),
        ["api"] => json_response(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        ["apis"] => json_response(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1",
            "groups": groups.iter().map(|g| json!({"name": g,
                "versions": [{"groupVersion": format!("{g}/v1"), "version": "v1"}],
                "preferredVersion": {"groupVersion": format!("{g}/v1"), "version": "v1"}})).collect::<Vec<_>>()}),
        ),
        ["api", "v1"] => list("v1", ""),
        ["apis", g, "v1"] if groups.contains(g) => list(&format!("{g}/v1"), g),
        _ => return None,
    })
}

/// `/_e2e/...`: knobs for a shell driving `fake-cluster`.
fn knob(store: &Arc<Store>, method: &Method, segs: &[&str]) -> Response<Body> {
    let ok = |v: Value| json_response(200, &v);
    match (method.as_str(), segs) {
        ("POST", ["cronjobs", ns, name, "trigger"]) => match node::trigger_cronjob(store, ns, name)
        {
            Ok(job) => ok(json!({"job": job})),
            Err(e) => error(&e),
        },
        ("POST", ["reject-privileged", ns]) => {
            store.with(|st| st.knobs.reject_privileged.insert(ns.to_string()));
            ok(json!({}))
        }
        ("POST", ["forbid", verb, resource]) => {
            store.with(|st| {
                st.knobs
                    .forbidden
                    .push((verb.to_string(), resource.to_string()))
            });
            ok(json!({}))
        }
        ("GET", ["requests"]) => {
            let st = store.lock();
            ok(json!(st
                .requests
                .iter()
                .map(|r| json!({"method": r.method, "path": r.path, "query": r.query, "verb": r.verb}))
                .collect::<Vec<_>>()))
        }
        _ => Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(full("unknown knob\n"))
            .expect("response"),
    }
}
