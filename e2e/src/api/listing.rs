//! What a list or get answers besides the objects themselves: pages (`limit` and
//! `continue`, with `remainingItemCount`) and the `meta.k8s.io/v1` `Table` form that
//! `kubectl get` asks for (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`), with
//! the columns the real API server prints for pods, Jobs, CronJobs, Deployments,
//! namespaces, nodes, ConfigMaps and events (Name and Age for the others). Pure
//! functions of the objects and the current time.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Event, Namespace, Node, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api::resources::Resource;
use crate::api::store::{meta_str, ApiError};

/// One page of a list: its items, the token of the next page and how many items follow.
#[derive(Debug, PartialEq)]
pub struct Page {
    pub items: Vec<Value>,
    pub continue_token: Option<String>,
    pub remaining: Option<usize>,
}

/// The position after `(namespace, name)`, as an opaque token.
fn encode_token(ns: &str, name: &str) -> String {
    format!("{ns}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_token(token: &str) -> Option<(String, String)> {
    if !token.len().is_multiple_of(2) {
        return None;
    }
    let bytes: Option<Vec<u8>> = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(token.get(i..i + 2)?, 16).ok())
        .collect();
    let text = String::from_utf8(bytes?).ok()?;
    let (ns, name) = text.split_once('/')?;
    Some((ns.to_string(), name.to_string()))
}

/// Cut `items` (in the store's order: by namespace, then name) to the page that
/// `limit` and `continue` ask for. `limit` 0 or absent: everything after the token.
pub fn paginate(
    items: Vec<Value>,
    limit: Option<usize>,
    token: Option<&str>,
) -> Result<Page, ApiError> {
    let after = match token.filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(decode_token(t).ok_or_else(|| {
            ApiError::bad_request(format!(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1): {t:?}"
            ))
        })?),
    };
    let mut rest: Vec<Value> = items
        .into_iter()
        .filter(|o| {
            after.as_ref().is_none_or(|(ns, name)| {
                (meta_str(o, "namespace"), meta_str(o, "name")) > (ns.as_str(), name.as_str())
            })
        })
        .collect();
    let limit = limit.filter(|l| *l > 0);
    match limit {
        Some(l) if rest.len() > l => {
            let remaining = rest.len() - l;
            rest.truncate(l);
            let last = rest.last().expect("limit > 0");
            Ok(Page {
                continue_token: Some(encode_token(
                    meta_str(last, "namespace"),
                    meta_str(last, "name"),
                )),
                remaining: Some(remaining),
                items: rest,
            })
        }
        _ => Ok(Page {
            items: rest,
            continue_token: None,
            remaining: None,
        }),
    }
}

/// Whether an `Accept` header asks for a `meta.k8s.io/v1` Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.iter().all(|p| !p.starts_with("v=") || *p == "v=v1")
    })
}

/// What a Table row carries of its object (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Include {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }
}

/// A column: name, type, priority (0: always shown, 1: with `-o wide`).
type Column = (&'static str, &'static str, u8);

fn columns(res: &Resource) -> Vec<Column> {
    let name = ("Name", "string", 0);
    let age = ("Age", "string", 0);
    match res.plural {
        "pods" => vec![
            name,
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            age,
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "jobs" => vec![
            name,
            ("Status", "string", 0),
            ("Completions", "string", 0),
            ("Duration", "string", 0),
            age,
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "cronjobs" => vec![
            name,
            ("Schedule", "string", 0),
            ("Timezone", "string", 0),
            ("Suspend", "boolean", 0),
            ("Active", "integer", 0),
            ("Last Schedule", "string", 0),
            age,
        ],
        "deployments" => vec![
            name,
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            age,
        ],
        "namespaces" => vec![name, ("Status", "string", 0), age],
        "nodes" => vec![
            name,
            ("Status", "string", 0),
            ("Roles", "string", 0),
            age,
            ("Version", "string", 0),
        ],
        "configmaps" => vec![name, ("Data", "integer", 0), age],
        "events" => vec![
            ("Last Seen", "string", 0),
            ("Type", "string", 0),
            ("Reason", "string", 0),
            ("Object", "string", 0),
            ("Message", "string", 0),
        ],
        _ => vec![name, age],
    }
}

/// Kubernetes' `duration.HumanDuration`: `5s`, `3m20s`, `7h12m`, `4d2h`.
pub fn human_duration(secs: i64) -> String {
    if secs < -1 {
        return "<invalid>".into();
    }
    let s = secs.max(0);
    let (m, h) = (s / 60, s / 3600);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        match s % 60 {
            0 => format!("{m}m"),
            r => format!("{m}m{r}s"),
        }
    } else if m < 180 {
        format!("{m}m")
    } else if h < 8 {
        match m % 60 {
            0 => format!("{h}h"),
            r => format!("{h}h{r}m"),
        }
    } else if h < 48 {
        format!("{h}h")
    } else if h < 24 * 8 {
        match h % 24 {
            0 => format!("{}d", h / 24),
            r => format!("{}d{r}h", h / 24),
        }
    } else if h < 24 * 365 * 2 {
        format!("{}d", h / 24)
    } else {
        let (y, d) = (h / 24 / 365, h / 24 % 365);
        if y < 8 && d > 0 {
            format!("{y}y{d}d")
        } else {
            format!("{y}y")
        }
    }
}

fn since(t: Option<&Time>, now: i64) -> String {
    match t {
        Some(t) => human_duration(now - t.0.as_second()),
        None => "<unknown>".into(),
    }
}

fn typed<T: DeserializeOwned>(obj: &Value) -> Option<T> {
    serde_json::from_value(obj.clone()).ok()
}

fn or_none(s: Option<&str>) -> String {
    s.filter(|s| !s.is_empty()).unwrap_or("<none>").to_string()
}

/// kubectl's STATUS of a pod: the phase, a container's waiting or terminated reason,
/// `Completed`, or `Terminating` while its deletion is under way.
pub fn pod_status(pod: &Pod) -> String {
    let status = pod.status.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .or(status.phase.clone())
        .unwrap_or_else(|| "Pending".into());
    for cs in status.container_statuses.iter().flatten().rev() {
        let Some(state) = &cs.state else { continue };
        if let Some(r) = state.waiting.as_ref().and_then(|w| w.reason.clone()) {
            reason = r;
        } else if let Some(t) = &state.terminated {
            reason = match (&t.reason, t.signal) {
                (Some(r), _) => r.clone(),
                (None, Some(sig)) if sig != 0 => format!("Signal:{sig}"),
                (None, _) => format!("ExitCode:{}", t.exit_code),
            };
        }
    }
    if pod.metadata.deletion_timestamp.is_some() {
        reason = "Terminating".into();
    }
    reason
}

fn cells(res: &Resource, obj: &Value, now: i64) -> Vec<Value> {
    let meta: ObjectMeta = obj
        .get("metadata")
        .and_then(|m| serde_json::from_value(m.clone()).ok())
        .unwrap_or_default();
    let name = json!(meta.name.clone().unwrap_or_default());
    let age = json!(since(meta.creation_timestamp.as_ref(), now));
    match res.plural {
        "pods" => {
            let pod: Pod = typed(obj).unwrap_or_default();
            let status = pod.status.clone().unwrap_or_default();
            let spec = pod.spec.clone().unwrap_or_default();
            let statuses = status.container_statuses.clone().unwrap_or_default();
            let ready = statuses.iter().filter(|c| c.ready).count();
            let restarts: i32 = statuses.iter().map(|c| c.restart_count).sum();
            let gates = spec.readiness_gates.as_ref().map_or(0, Vec::len);
            vec![
                name,
                json!(format!("{ready}/{}", spec.containers.len())),
                json!(pod_status(&pod)),
                json!(restarts.to_string()),
                age,
                json!(or_none(status.pod_ip.as_deref())),
                json!(or_none(spec.node_name.as_deref())),
                json!(or_none(status.nominated_node_name.as_deref())),
                json!(if gates == 0 {
                    "<none>".to_string()
                } else {
                    format!("0/{gates}")
                }),
            ]
        }
        "jobs" => {
            let job: Job = typed(obj).unwrap_or_default();
            let spec = job.spec.clone().unwrap_or_default();
            let status = job.status.clone().unwrap_or_default();
            let cond = |t: &str| {
                status
                    .conditions
                    .iter()
                    .flatten()
                    .any(|c| c.type_ == t && c.status == "True")
            };
            let state = if meta.deletion_timestamp.is_some() {
                "Terminating"
            } else if cond("Complete") {
                "Complete"
            } else if cond("Failed") {
                "Failed"
            } else if cond("FailureTarget") {
                "FailureTarget"
            } else if cond("SuccessCriteriaMet") {
                "SuccessCriteriaMet"
            } else if spec.suspend == Some(true) {
                "Suspended"
            } else {
                "Running"
            };
            let duration = match (&status.start_time, &status.completion_time) {
                (Some(s), Some(c)) => human_duration(c.0.as_second() - s.0.as_second()),
                (Some(s), None) => human_duration(now - s.0.as_second()),
                (None, _) => String::new(),
            };
            let containers = spec
                .template
                .spec
                .as_ref()
                .map(|s| s.containers.clone())
                .unwrap_or_default();
            let selector = spec
                .selector
                .and_then(|s| s.match_labels)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_else(|| "<none>".into());
            vec![
                name,
                json!(state),
                json!(format!(
                    "{}/{}",
                    status.succeeded.unwrap_or(0),
                    spec.completions.unwrap_or(1)
                )),
                json!(duration),
                age,
                json!(containers
                    .iter()
                    .map(|c| c.name.clone())
                    .collect::<Vec<_>>()
                    .join(",")),
                json!(containers
                    .iter()
                    .map(|c| c.image.clone().unwrap_or_default())
                    .collect::<Vec<_>>()
                    .join(",")),
                json!(selector),
            ]
        }
        "cronjobs" => {
            let cj: CronJob = typed(obj).unwrap_or_default();
            let spec = cj.spec.clone();
            let status = cj.status.clone().unwrap_or_default();
            vec![
                name,
                json!(spec.schedule),
                json!(or_none(spec.time_zone.as_deref())),
                json!(spec.suspend.unwrap_or(false)),
                json!(status.active.as_ref().map_or(0, Vec::len)),
                json!(status
                    .last_schedule_time
                    .as_ref()
                    .map_or("<none>".to_string(), |t| since(Some(t), now))),
                age,
            ]
        }
        "deployments" => {
            let d: Deployment = typed(obj).unwrap_or_default();
            let status = d.status.clone().unwrap_or_default();
            let want = d.spec.replicas.unwrap_or(1);
            vec![
                name,
                json!(format!("{}/{want}", status.ready_replicas.unwrap_or(0))),
                json!(status.updated_replicas.unwrap_or(0)),
                json!(status.available_replicas.unwrap_or(0)),
                age,
            ]
        }
        "namespaces" => {
            let n: Namespace = typed(obj).unwrap_or_default();
            let phase = n.status.and_then(|s| s.phase).unwrap_or_default();
            vec![name, json!(phase), age]
        }
        "nodes" => {
            let n: Node = typed(obj).unwrap_or_default();
            let status = n.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let roles: Vec<&str> = meta
                .labels
                .iter()
                .flatten()
                .filter_map(|(k, _)| k.strip_prefix("node-role.kubernetes.io/"))
                .collect();
            let version = status
                .node_info
                .map(|i| i.kubelet_version)
                .unwrap_or_default();
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!(if roles.is_empty() {
                    "<none>".to_string()
                } else {
                    roles.join(",")
                }),
                age,
                json!(version),
            ]
        }
        "configmaps" => {
            let cm: ConfigMap = typed(obj).unwrap_or_default();
            let n = cm.data.as_ref().map_or(0, |d| d.len())
                + cm.binary_data.as_ref().map_or(0, |d| d.len());
            vec![name, json!(n), age]
        }
        "events" => {
            let e: Event = typed(obj).unwrap_or_default();
            let last = e
                .last_timestamp
                .as_ref()
                .or(e.first_timestamp.as_ref())
                .or(meta.creation_timestamp.as_ref());
            let o = &e.involved_object;
            vec![
                json!(since(last, now)),
                json!(e.type_.clone().unwrap_or_default()),
                json!(e.reason.clone().unwrap_or_default()),
                json!(format!(
                    "{}/{}",
                    o.kind.clone().unwrap_or_default().to_lowercase(),
                    o.name.clone().unwrap_or_default()
                )),
                json!(e.message.clone().unwrap_or_default()),
            ]
        }
        _ => vec![name, age],
    }
}

fn row(res: &Resource, obj: &Value, include: Include, now: i64) -> Value {
    let mut r = json!({"cells": cells(res, obj, now)});
    match include {
        Include::None => {}
        Include::Object => r["object"] = obj.clone(),
        Include::Metadata => {
            r["object"] = json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                                 "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
        }
    }
    r
}

/// The Table of `objects` of `res` at time `now` (seconds since the epoch); `list_meta`
/// is the list's metadata (resourceVersion, continue).
pub fn table(
    res: &Resource,
    objects: &[Value],
    list_meta: Value,
    include: Include,
    now: i64,
) -> Value {
    let defs: Vec<Value> = columns(res)
        .into_iter()
        .map(|(name, type_, priority)| {
            let format = if name == "Name" { "name" } else { "" };
            json!({"name": name, "type": type_, "format": format, "description": "", "priority": priority})
        })
        .collect();
    let rows: Vec<Value> = objects.iter().map(|o| row(res, o, include, now)).collect();
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
           "columnDefinitions": defs, "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::resources;

    fn obj(ns: &str, name: &str) -> Value {
        json!({"metadata": {"namespace": ns, "name": name}})
    }

    #[test]
    fn pages_cover_the_list_once() {
        let items: Vec<Value> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|n| obj("default", n))
            .collect();
        let mut seen = Vec::new();
        let mut token: Option<String> = None;
        let mut remaining = Vec::new();
        loop {
            let page = paginate(items.clone(), Some(2), token.as_deref()).unwrap();
            seen.extend(page.items.iter().map(|o| meta_str(o, "name").to_string()));
            remaining.push(page.remaining);
            match page.continue_token {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        assert_eq!(seen, ["a", "b", "c", "d", "e"]);
        assert_eq!(remaining, [Some(3), Some(1), None]);
        let all = paginate(items, None, None).unwrap();
        assert_eq!(all.items.len(), 5);
        assert_eq!(all.continue_token, None);
    }

    #[test]
    fn a_bad_continue_token_is_a_bad_request() {
        let e = paginate(vec![], Some(1), Some("zz")).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message.contains("continue key is not valid"),
            "{}",
            e.message
        );
    }

    #[test]
    fn kubectls_accept_header_asks_for_a_table() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
        assert!(!wants_table(
            "application/json;as=Table;v=v1beta1;g=meta.k8s.io"
        ));
    }

    #[test]
    fn human_durations_match_kubernetes() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (200, "3m20s"),
            (600, "10m"),
            (3 * 3600 + 60, "3h1m"),
            (30 * 3600, "30h"),
            (3 * 86400 + 3600, "3d1h"),
            (40 * 86400, "40d"),
        ] {
            assert_eq!(human_duration(s), want, "{s}");
        }
    }

    #[test]
    fn pod_rows_show_ready_status_and_terminating() {
        let pod = json!({"metadata": {"name": "p", "namespace": "default",
                "creationTimestamp": "2026-01-01T00:00:00Z", "deletionTimestamp": "2026-01-01T00:01:00Z"},
            "spec": {"nodeName": "node-a", "containers": [{"name": "c"}, {"name": "d"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.1", "containerStatuses": [
                {"name": "c", "ready": true, "restartCount": 1, "image": "i", "imageID": "",
                 "state": {"running": {}}},
                {"name": "d", "ready": false, "restartCount": 2, "image": "i", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let now = util_epoch("2026-01-01T00:02:05Z");
        let t = table(
            resources::get("", "pods"),
            &[pod],
            json!({}),
            Include::Metadata,
            now,
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "p",
                "1/2",
                "Terminating",
                "3",
                "2m5s",
                "10.0.0.1",
                "node-a",
                "<none>",
                "<none>"
            ])
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["columnDefinitions"][5]["priority"], 1);
    }

    #[test]
    fn job_rows_show_completions_and_duration() {
        let job = json!({"metadata": {"name": "j", "namespace": "default",
                "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
                "template": {"spec": {"containers": [{"name": "c", "image": "img"}]}}},
            "status": {"succeeded": 1, "startTime": "2026-01-01T00:00:01Z",
                "completionTime": "2026-01-01T00:00:09Z",
                "conditions": [{"type": "Complete", "status": "True"}]}});
        let t = table(
            resources::get("batch", "jobs"),
            &[job],
            json!({}),
            Include::None,
            util_epoch("2026-01-01T00:01:00Z"),
        );
        assert_eq!(
            t["rows"][0]["cells"],
            json!([
                "j",
                "Complete",
                "1/1",
                "8s",
                "60s",
                "c",
                "img",
                "batch.kubernetes.io/controller-uid=u"
            ])
        );
        assert!(t["rows"][0].get("object").is_none());
    }

    fn util_epoch(ts: &str) -> i64 {
        crate::util::epoch_of(ts)
    }
}
