//! The HTTP/1.1 front of the fake API server (hyper): routes `/api/v1/...` and
//! `/apis/GROUP/VERSION/...` to the store with the verbs get, list, watch (`?watch=true`,
//! JSON lines), create, update, patch (merge, strategic as merge, JSON patch), delete and
//! deletecollection; `pods/NAME/log` (follow, tailLines, timestamps); `pods/NAME/exec`
//! over a websocket (`v5.channel.k8s.io` or `v4.channel.k8s.io`, the command run in the container by the node
//! agent); discovery
//! (`/api`, `/apis`, `/version`, short names), `/healthz`, `/readyz` and `/livez`; list
//! pages, Table output and server-side dry runs ([`crate::api::listing`]); errors as `Status` objects. Test knobs live under
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

use crate::api::listing::{self, Include};
use crate::api::resources::{self, Resource, RESOURCES};
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{meta_str, ApiError, DeleteOpts, RequestRecord, Store, WatchEvent};
use crate::node;
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
                .with_upgrades()
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
    if let ["api", "v1", "namespaces", ns, "pods", name, "exec"] =
        path.trim_matches('/').split('/').collect::<Vec<_>>()[..]
    {
        if matches!(method.as_str(), "GET" | "POST") {
            let (ns, name) = (ns.to_string(), name.to_string());
            return exec(&store, req, &ns, &name, &query);
        }
    }
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let as_table = req
        .headers()
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(listing::wants_table);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let watch = matches!(q("watch").as_deref(), Some("true" | "1"));

    if segs.first() == Some(&"_e2e") {
        return knob(&store, &method, &segs[1..]);
    }
    if let ["healthz" | "readyz" | "livez"] = segs[..] {
        return Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(full("ok"))
            .expect("response");
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
    // Server-side dry run: everything is checked, nothing is stored.
    let dry_run = match q("dryRun").as_deref() {
        None | Some("") => false,
        Some("All") => true,
        Some(v) => {
            return error(&ApiError::bad_request(format!(
                "dryRun: Unsupported value: {v:?}: supported values: \"All\""
            )))
        }
    };
    let include = Include::parse(q("includeObject").as_deref());

    match verb {
        "list" => {
            let st = store.lock();
            let items = st.list(t.res, list_ns, &labels, &fields);
            let limit = q("limit").and_then(|l| l.parse().ok());
            let page = match listing::paginate(items, limit, q("continue").as_deref()) {
                Ok(p) => p,
                Err(e) => return error(&e),
            };
            let mut meta = json!({"resourceVersion": st.resource_version().to_string()});
            if let Some(c) = page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(n) = page.remaining {
                meta["remainingItemCount"] = json!(n);
            }
            if as_table {
                let now = crate::util::epoch_now();
                return json_response(200, &listing::table(t.res, &page.items, meta, include, now));
            }
            json_response(
                200,
                &json!({
                    "apiVersion": t.res.api_version(),
                    "kind": format!("{}List", t.res.kind),
                    "metadata": meta,
                    "items": page.items,
                }),
            )
        }
        "watch" => {
            let table = as_table.then_some(include);
            watch_stream(&store, t.res, list_ns, labels, fields, &query, table)
        }
        "get" => {
            let name = t.name.as_deref().unwrap_or("");
            if t.sub.as_deref() == Some("log") && t.res.plural == "pods" {
                return logs(&store, &ns, name, &query).await;
            }
            match store.lock().get(t.res, &ns, name) {
                Some(o) if as_table => {
                    let now = crate::util::epoch_now();
                    let meta = json!({"resourceVersion": meta_str(o, "resourceVersion")});
                    json_response(
                        200,
                        &listing::table(t.res, std::slice::from_ref(o), meta, include, now),
                    )
                }
                Some(o) => json_response(200, o),
                None => error(&ApiError::not_found(t.res, name)),
            }
        }
        "create" => {
            if content_type.contains("protobuf") {
                return error(&unsupported_media(&content_type));
            }
            let obj: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                Err(e) => {
                    return error(&ApiError::bad_request(format!(
                        "error decoding the body: {e}"
                    )))
                }
            };
            if dry_run {
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
            if content_type.contains("protobuf") {
                return error(&unsupported_media(&content_type));
            }
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
            let result = if dry_run {
                store.lock().check_replace(t.res, &ns, &name, new)
            } else {
                store.with(|st| st.replace(t.res, &ns, &name, new))
            };
            match result {
                Ok(o) => json_response(200, &o),
                Err(e) => error(&e),
            }
        }
        "delete" | "deletecollection" => {
            let opts_body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            // kubectl sends the dry run in the body's DeleteOptions.
            let dry_run = match opts_body.get("dryRun").and_then(Value::as_array) {
                None => dry_run,
                Some(v) if v.iter().all(|d| d == "All") => dry_run || !v.is_empty(),
                Some(v) => {
                    return error(&ApiError::bad_request(format!(
                        "dryRun: Unsupported value: {}: supported values: \"All\"",
                        Value::Array(v.clone())
                    )))
                }
            };
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
                let result = if dry_run {
                    store.lock().delete_dry_run(t.res, &ns, &name, &opts)
                } else {
                    store.with(|st| st.delete(t.res, &ns, &name, &opts))
                };
                match result {
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
                        .filter_map(|(n, name)| {
                            if dry_run {
                                st.delete_dry_run(t.res, &n, &name, &opts).ok()
                            } else {
                                st.delete(t.res, &n, &name, &opts).ok()
                            }
                        })
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

/// Protobuf bodies (kubectl's typed `create job`/`create cm`) are not decoded here.
fn unsupported_media(content_type: &str) -> ApiError {
    ApiError {
        code: 415,
        reason: "UnsupportedMediaType",
        message: format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type}; this fake API server does not decode protobuf)"),
        details: Value::Null,
    }
}

fn watch_stream(
    store: &Arc<Store>,
    res: &'static Resource,
    ns: Option<&str>,
    labels: LabelSelector,
    fields: FieldSelector,
    query: &[(String, String)],
    table: Option<Include>,
) -> Response<Body> {
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    // A watch asked for as Table (`kubectl get -w`): each object becomes a one-row Table.
    let event = move |type_: &str, obj: &Value| match table {
        Some(inc) => {
            let meta = json!({"resourceVersion": meta_str(obj, "resourceVersion")});
            let now = crate::util::epoch_now();
            json!({"type": type_, "object": listing::table(res, std::slice::from_ref(obj), meta, inc, now)})
        }
        None => json!({"type": type_, "object": obj}),
    };
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
                .map(|(o, _)| event("ADDED", &o))
                .collect();
            let (_, rx) = st.watch_from(now);
            (added, rx, now)
        } else {
            let (past, rx) = st.watch_from(rv);
            let ev = past
                .iter()
                .filter(|e| matches(e))
                .map(|e| event(e.type_, &e.object))
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
                        if tx.send(line(&event(e.type_, &e.object))).await.is_err() {
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
    let render = move |l: &crate::api::store::LogLine| {
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
                "shortNames": r.short_names(), "categories": r.categories(),
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
                resources.push(
                    json!({"name": "pods/exec", "singularName": "", "namespaced": true,
                    "kind": "PodExecOptions", "verbs": ["create", "get"]}),
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

/// The subprotocols of `pods/exec` served, preferred first: binary messages whose first
/// byte is the channel (0 stdin, 1 stdout, 2 stderr, 3 the final `Status` as JSON, 4
/// resize); v5 adds channel 255, the client's "stdin closed" signal (kubectl 1.30+).
pub const EXEC_PROTOCOLS: [&str; 2] = ["v5.channel.k8s.io", "v4.channel.k8s.io"];

/// The exec subprotocol to answer with: the first of the client's offers this server speaks.
pub fn exec_protocol(offered: &str) -> Option<&'static str> {
    offered
        .split(',')
        .map(str::trim)
        .find_map(|p| EXEC_PROTOCOLS.iter().find(|s| **s == p).copied())
}

/// `pods/NAME/exec?command=...&container=...&stdout=true&stderr=true`: checks as the API
/// does (RBAC `create pods/exec`, the pod, the container, the upgrade), answers 101, and
/// runs the command in the container ([`node::exec_in_container`]) over the websocket.
fn exec(
    store: &Arc<Store>,
    req: Request<Incoming>,
    ns: &str,
    name: &str,
    query: &[(String, String)],
) -> Response<Body> {
    let pods = resources::get("", "pods");
    let target = {
        let mut st = store.lock();
        st.requests.push(RequestRecord {
            method: req.method().to_string(),
            path: req.uri().path().to_string(),
            query: query
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&"),
            verb: "create".into(),
        });
        let denied = st
            .knobs
            .forbidden
            .iter()
            .any(|(v, r)| (v == "create" || v == "*") && (r == "pods/exec" || r == "*"));
        if denied {
            return error(&ApiError::forbidden(
                pods,
                name,
                format!("pods {name:?} is forbidden: User \"e2e-user\" cannot create resource \"pods/exec\" in API group \"\" in the namespace {ns:?}"),
            ));
        }
        let container = query
            .iter()
            .find(|(k, _)| k == "container")
            .map_or("", |(_, v)| v.as_str());
        node::exec_target(&st, ns, name, container)
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => return error(&e),
    };
    let argv: Vec<String> = query
        .iter()
        .filter(|(k, _)| k == "command")
        .map(|(_, v)| v.clone())
        .collect();
    if argv.is_empty() {
        return error(&ApiError::bad_request(
            "you must specify at least 1 command",
        ));
    }
    let header = |h: &str| {
        req.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let key = header("sec-websocket-key");
    if !header("upgrade").eq_ignore_ascii_case("websocket") || key.is_empty() {
        return error(&ApiError::bad_request("Upgrade request required"));
    }
    let Some(protocol) = exec_protocol(&header("sec-websocket-protocol")) else {
        return error(&ApiError::bad_request(format!(
            "this fake API server speaks only the {} exec protocols",
            EXEC_PROTOCOLS.join(" and ")
        )));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    tokio::spawn(async move {
        let Ok(upgraded) = hyper::upgrade::on(req).await else {
            return;
        };
        let ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        run_exec(ws, target, argv).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-accept", accept)
        .header("sec-websocket-protocol", protocol)
        .body(full(Bytes::new()))
        .expect("response")
}

/// A close frame with status 1000: kubectl reports a close without a status (1005) as an
/// error after the command's output.
fn normal_close() -> tokio_tungstenite::tungstenite::Message {
    use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
    tokio_tungstenite::tungstenite::Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Run the command and stream it: stdout on channel 1, stderr on 2 as they come, then its
/// end as a `Status` on channel 3, then close. A client going away kills the command.
async fn run_exec<S>(
    ws: tokio_tungstenite::WebSocketStream<S>,
    target: crate::api::store::ExecTarget,
    argv: Vec<String>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures::{SinkExt, StreamExt};
    use tokio::io::AsyncReadExt;
    use tokio_tungstenite::tungstenite::Message;

    let (mut sink, mut incoming) = ws.split();
    let status_msg = |v: Value| {
        let mut m = vec![3u8];
        m.extend_from_slice(v.to_string().as_bytes());
        Message::binary(m)
    };
    let mut child = match node::exec_in_container(&target, &argv) {
        Ok(c) => c,
        Err(e) => {
            let msg = format!(
                "failed to exec in container: failed to start exec: OCI runtime exec failed: exec failed: unable to start container process: {e}: unknown"
            );
            let _ = sink
                .send(status_msg(json!({"metadata": {}, "status": "Failure",
                    "message": msg, "reason": "InternalError",
                    "details": {"causes": [{"message": msg}]}, "code": 500})))
                .await;
            let _ = sink.send(normal_close()).await;
            let _ = sink.close().await;
            return;
        }
    };
    let pgid = child.id().map_or(0, |p| p as i32);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(8);
    let pipes: [(u8, Option<Box<dyn tokio::io::AsyncRead + Unpin + Send>>); 2] = [
        (1, child.stdout.take().map(|s| Box::new(s) as _)),
        (2, child.stderr.take().map(|s| Box::new(s) as _)),
    ];
    for (channel, pipe) in pipes {
        let Some(mut pipe) = pipe else { continue };
        let tx = tx.clone();
        tokio::spawn(async move {
            loop {
                let mut buf = vec![0u8; 32 * 1024 + 1];
                buf[0] = channel;
                match pipe.read(&mut buf[1..]).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        buf.truncate(n + 1);
                        if tx.send(buf).await.is_err() {
                            return;
                        }
                    }
                }
            }
        });
    }
    drop(tx);
    let kill = || {
        if pgid > 0 {
            // SAFETY: kill(2) on the exec'd command's own process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
    };
    loop {
        tokio::select! {
            chunk = rx.recv() => match chunk {
                Some(c) => {
                    if sink.send(Message::binary(c)).await.is_err() {
                        kill();
                        return;
                    }
                }
                None => break,
            },
            m = incoming.next() => match m {
                // stdin (0), resize (4) and v5's stdin close (255) are not used: ignored.
                Some(Ok(Message::Binary(_) | Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => {
                    kill();
                    return;
                }
            },
        }
    }
    let code = match child.wait().await {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(9))
        }
        Err(_) => 137,
    };
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
               "message": format!("command terminated with non-zero exit code: error executing command [{}], exit code {code}", argv.join(" ")),
               "reason": "NonZeroExitCode",
               "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    let _ = sink.send(status_msg(status)).await;
    let _ = sink.send(normal_close()).await;
    let _ = sink.close().await;
}
