//! `kubectl trace get [TRACE] [-A] [-w] [-o wide|json|yaml|name|jsonpath=T] [--no-headers]`:
//! traces as a table (NAMESPACE, NAME, TARGET, NODE, STATUS, AGE; SCHEDULE and LAST RUN
//! for scheduled traces), from the Jobs and CronJobs labelled
//! `app.kubernetes.io/name=kubectl-trace`. One row per trace (a trace on several nodes
//! shows `N nodes` and a combined status); `-o wide` shows a row per node (per Job or
//! CronJob) with the trace id. `-w` prints the table, then a row each time a trace
//! changes, until Ctrl-C.

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::Api;
use kube::runtime::watcher;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::attach::Interrupts;
use crate::client::Ctx;
use crate::errors::{fail, Result};
use crate::jsonpath::Template;
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{self, ANN_NODE, ANN_PODS, ANN_TARGET, LABEL_ID};
use crate::progress::Out;
use crate::tracejob::{self, annotation, is_scheduled_run, job_status, label, owned_by};
use crate::util::format_age;

pub const EXAMPLES: &str = "\
Examples:
  # Traces in the current namespace
  kubectl trace get

  # All namespaces, a row per node, with ids, traced pods and images
  kubectl trace get -A -o wide

  # One trace as YAML
  kubectl trace get k3x9q2m7fa -o yaml

  # Watch traces change (Ctrl-C to stop)
  kubectl trace get -w

  # The node of every Job of a trace, with kubectl's JSONPath
  kubectl trace get k3x9q2m7fa -o jsonpath='{range .items[*]}{.metadata.annotations.kubectl-trace/node}{\"\\n\"}{end}'";

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Only this trace (id or name)
    #[arg(value_name = "TRACE")]
    pub trace: Option<String>,
    /// Traces of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format: wide (a row per node), json, yaml, name (TYPE/NAME per object, as
    /// kubectl) or jsonpath=TEMPLATE (kubectl's JSONPath, over the objects -o json prints)
    #[arg(short = 'o', long, value_name = "FORMAT")]
    pub output: Option<String>,
    /// Print the table without its header line
    #[arg(long)]
    pub no_headers: bool,
    /// After the table, print a row each time a trace changes (Ctrl-C stops)
    #[arg(short = 'w', long)]
    pub watch: bool,
}

/// The parsed `-o` of `get`.
#[derive(Debug, Clone, PartialEq)]
pub enum Format {
    Table,
    Wide,
    Json,
    Yaml,
    Name,
    JsonPath(Template),
}

impl Format {
    /// Parse `-o FORMAT`; the error is the user's one line.
    pub fn parse(o: Option<&str>) -> Result<Format> {
        Ok(match o {
            None => Format::Table,
            Some("wide") => Format::Wide,
            Some("json") => Format::Json,
            Some("yaml") => Format::Yaml,
            Some("name") => Format::Name,
            Some(o) => match o.strip_prefix("jsonpath=") {
                Some(t) => Format::JsonPath(
                    Template::parse(t)
                        .map_err(|e| fail(format!("invalid -o jsonpath template: {e}")))?,
                ),
                None => {
                    return Err(fail(format!(
                        "invalid -o {o:?}: use wide, json, yaml, name or jsonpath=TEMPLATE"
                    )))
                }
            },
        })
    }
}

pub async fn execute(args: GetArgs, global: &GlobalArgs) -> Result<()> {
    // A bad -o is the user's to fix before any connection.
    Format::parse(args.output.as_deref())?;
    let ctx = Ctx::connect(global).await?;
    get_with(&ctx, &args, &Out::stdout()).await
}

/// One line of the table.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub id: String,
    pub target: String,
    pub node: String,
    pub status: String,
    pub age: String,
    pub schedule: Option<String>,
    pub last_run: Option<String>,
    pub pods: String,
    pub image: String,
    /// When the Job or CronJob was created (for a trace's AGE: its oldest).
    pub created: Option<jiff::Timestamp>,
}

fn age(t: Option<&Time>, now: jiff::Timestamp) -> String {
    match t {
        Some(t) => format_age(now.duration_since(t.0).as_secs()),
        None => "<unknown>".into(),
    }
}

fn image_of(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> String {
    spec.and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}

fn pods_column(meta: &ObjectMeta) -> String {
    let p = annotation(meta, ANN_PODS);
    if p.is_empty() {
        "<all>".into()
    } else {
        p
    }
}

/// Build the rows from the listed objects (pure, for tests).
pub fn rows(jobs: &[Job], cronjobs: &[CronJob], now: jiff::Timestamp) -> Vec<Row> {
    let mut rows = Vec::new();
    for cj in cronjobs {
        let m = &cj.metadata;
        let uid = m.uid.clone().unwrap_or_default();
        let spec = cj.spec.clone();
        let st = cj.status.clone().unwrap_or_default();
        let last_child = jobs.iter().filter(|j| owned_by(j, &uid)).max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        });
        let status = if spec.suspend == Some(true) {
            "Suspended".to_string()
        } else if !st.active.clone().unwrap_or_default().is_empty() {
            "Running".to_string()
        } else if let Some(j) = last_child {
            job_status(j)
        } else {
            "Scheduled".to_string()
        };
        rows.push(Row {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            id: label(m, LABEL_ID),
            target: annotation(m, ANN_TARGET),
            node: annotation(m, ANN_NODE),
            status,
            age: age(m.creation_timestamp.as_ref(), now),
            created: m.creation_timestamp.as_ref().map(|t| t.0),
            schedule: Some(spec.schedule.clone()),
            last_run: Some(match &st.last_schedule_time {
                Some(t) => format!("{} ago", age(Some(t), now)),
                None => "<none>".into(),
            }),
            pods: pods_column(m),
            image: image_of(
                spec.job_template
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.spec.as_ref()),
            ),
        });
    }
    let cron_uids: Vec<String> = cronjobs
        .iter()
        .filter_map(|c| c.metadata.uid.clone())
        .collect();
    for j in jobs {
        if cron_uids.iter().any(|u| owned_by(j, u)) || is_scheduled_run(j) {
            continue;
        }
        let m = &j.metadata;
        rows.push(Row {
            namespace: m.namespace.clone().unwrap_or_default(),
            name: m.name.clone().unwrap_or_default(),
            id: label(m, LABEL_ID),
            target: annotation(m, ANN_TARGET),
            node: annotation(m, ANN_NODE),
            status: job_status(j),
            age: age(m.creation_timestamp.as_ref(), now),
            created: m.creation_timestamp.as_ref().map(|t| t.0),
            schedule: None,
            last_run: None,
            pods: pods_column(m),
            image: image_of(j.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
        });
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// One row per trace from the per-node rows of [`rows`] (pure): NAME is the trace's
/// name (`kubectl-trace-ID`, which every command accepts), NODE the node or `N nodes`,
/// STATUS the common status or the count of each (`2 Running, 1 Completed`), AGE the
/// oldest, PODS every traced pod.
pub fn trace_rows(rows: &[Row]) -> Vec<Row> {
    let mut groups: Vec<Vec<&Row>> = Vec::new();
    for r in rows {
        let same = |g: &Vec<&Row>| {
            !r.id.is_empty()
                && g[0].id == r.id
                && g[0].namespace == r.namespace
                && g[0].schedule.is_some() == r.schedule.is_some()
        };
        match groups.iter_mut().find(|g| same(g)) {
            Some(g) => g.push(r),
            None => groups.push(vec![r]),
        }
    }
    let mut out: Vec<Row> = groups
        .into_iter()
        .map(|g| {
            if g.len() == 1 {
                // One Job or CronJob: its name is the trace's (`kubectl-trace-ID`).
                return g[0].clone();
            }
            let oldest = g.iter().min_by_key(|r| r.created).copied().unwrap_or(g[0]);
            let mut statuses: Vec<(String, usize)> = Vec::new();
            for r in &g {
                match statuses.iter_mut().find(|(s, _)| *s == r.status) {
                    Some((_, n)) => *n += 1,
                    None => statuses.push((r.status.clone(), 1)),
                }
            }
            let status = if statuses.len() == 1 {
                statuses[0].0.clone()
            } else {
                statuses
                    .iter()
                    .map(|(s, n)| format!("{n} {s}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut nodes: Vec<&str> = g.iter().map(|r| r.node.as_str()).collect();
            nodes.sort();
            nodes.dedup();
            let pods: Vec<&str> = g
                .iter()
                .filter(|r| r.pods != "<all>")
                .map(|r| r.pods.as_str())
                .collect();
            Row {
                name: format!("{}{}", manifest::NAME_PREFIX, g[0].id),
                node: if nodes.len() == 1 {
                    nodes[0].to_string()
                } else {
                    format!("{} nodes", nodes.len())
                },
                status,
                age: oldest.age.clone(),
                created: oldest.created,
                pods: if pods.is_empty() {
                    "<all>".into()
                } else {
                    pods.join(",")
                },
                ..g[0].clone()
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

/// The column widths of a table (header included), for [`render_lines`].
pub fn widths(lines: &[Vec<String>]) -> Vec<usize> {
    let cols = lines.first().map_or(0, Vec::len);
    (0..cols)
        .map(|i| {
            lines
                .iter()
                .map(|l| l.get(i).map_or(0, |c| c.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect()
}

/// Lines padded to `widths` (wider cells push their line out), 3 spaces apart.
pub fn render_lines(lines: &[Vec<String>], widths: &[usize]) -> String {
    let mut out = String::new();
    for l in lines {
        let mut s = String::new();
        for (i, cell) in l.iter().enumerate() {
            if i + 1 == l.len() {
                s.push_str(cell);
            } else {
                let w = widths.get(i).copied().unwrap_or(0);
                s.push_str(&format!("{cell:<w$}   "));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

/// The header and cells of a table.
pub fn cells(rows: &[Row], all_namespaces: bool, wide: bool, scheduled: bool) -> Vec<Vec<String>> {
    let mut header: Vec<&str> = Vec::new();
    if all_namespaces {
        header.push("NAMESPACE");
    }
    header.extend(["NAME", "TARGET", "NODE", "STATUS", "AGE"]);
    if scheduled {
        header.extend(["SCHEDULE", "LAST RUN"]);
    }
    if wide {
        header.extend(["ID", "PODS", "IMAGE"]);
    }
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for r in rows {
        let mut l = Vec::new();
        if all_namespaces {
            l.push(r.namespace.clone());
        }
        l.extend([
            r.name.clone(),
            r.target.clone(),
            r.node.clone(),
            r.status.clone(),
            r.age.clone(),
        ]);
        if scheduled {
            l.push(r.schedule.clone().unwrap_or_else(|| "<none>".into()));
            l.push(r.last_run.clone().unwrap_or_else(|| "<none>".into()));
        }
        if wide {
            l.extend([r.id.clone(), r.pods.clone(), r.image.clone()]);
        }
        lines.push(l);
    }
    lines
}

/// Render rows as kubectl does: upper-case headers, columns padded, 3 spaces apart.
#[cfg(test)]
pub fn table(rows: &[Row], all_namespaces: bool, wide: bool) -> String {
    let scheduled = rows.iter().any(|r| r.schedule.is_some());
    let lines = cells(rows, all_namespaces, wide, scheduled);
    render_lines(&lines, &widths(&lines))
}

pub async fn get_with(ctx: &Ctx, args: &GetArgs, out: &Out) -> Result<()> {
    let mut interrupts = crate::attach::ctrl_c_stream();
    get_with_interrupts(ctx, args, out, &mut *interrupts).await
}

/// `get`; with `-w`, the watch ends at the first of `interrupts` (a test feeds its own).
pub async fn get_with_interrupts(
    ctx: &Ctx,
    args: &GetArgs,
    out: &Out,
    interrupts: Interrupts<'_>,
) -> Result<()> {
    let format = Format::parse(args.output.as_deref())?;
    let ns = ctx.namespace.as_str();
    let id = args
        .trace
        .as_deref()
        .map(crate::names::trace_id)
        .transpose()?;
    let scope = (!args.all_namespaces).then_some(ns);
    let selector = tracejob::selector(id.as_deref());
    let tracejob::Workloads { jobs, cronjobs } = tracejob::workloads(ctx, scope, &selector).await?;
    if let Some(id) = &id {
        if jobs.is_empty() && cronjobs.is_empty() && !args.watch {
            return Err(fail(format!(
                "trace {id} not found {}",
                if args.all_namespaces {
                    "in any namespace".to_string()
                } else {
                    format!("in namespace {ns}")
                }
            )));
        }
    }
    let items = || -> Vec<Value> {
        cronjobs
            .iter()
            .map(manifest::to_value)
            .chain(jobs.iter().map(manifest::to_value))
            .collect()
    };
    let mut widths_seen = Vec::new();
    match &format {
        Format::Json => out.write(&manifest::to_json_list(items())),
        Format::Yaml => out.write(&yaml_list(items())),
        Format::JsonPath(t) => out.write(&t.render(&list_value(items()))),
        Format::Name => {
            for c in &cronjobs {
                out.line("", &object_name("cronjob.batch", &c.metadata));
            }
            for j in &jobs {
                out.line("", &object_name("job.batch", &j.metadata));
            }
        }
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let mut rows = rows(&jobs, &cronjobs, jiff::Timestamp::now());
            if !wide {
                rows = trace_rows(&rows);
            }
            if rows.is_empty() && !args.watch {
                if args.all_namespaces {
                    eprintln!("No traces found.");
                } else {
                    eprintln!("No traces found in namespace {ns}.");
                }
                return Ok(());
            }
            // Under -w the SCHEDULE columns are always there: later rows may need them.
            let scheduled = args.watch || rows.iter().any(|r| r.schedule.is_some());
            let lines = cells(&rows, args.all_namespaces, wide, scheduled);
            widths_seen = widths(&lines);
            let skip = usize::from(args.no_headers);
            out.write(&render_lines(&lines[skip..], &widths_seen));
        }
    }
    if !args.watch {
        return Ok(());
    }
    let mut w = Watch {
        format,
        all_namespaces: args.all_namespaces,
        widths: widths_seen,
        jobs: jobs.into_iter().filter_map(keyed).collect(),
        cronjobs: cronjobs.into_iter().filter_map(keyed).collect(),
        shown: BTreeMap::new(),
    };
    w.shown = w.current_rows();
    watch(ctx, scope, &selector, &mut w, out, interrupts).await
}

/// What `-w` keeps: the objects as they are now and the rows last printed.
struct Watch {
    format: Format,
    all_namespaces: bool,
    widths: Vec<usize>,
    jobs: BTreeMap<String, Job>,
    cronjobs: BTreeMap<String, CronJob>,
    /// (namespace, name) -> the row last printed.
    shown: BTreeMap<(String, String), Row>,
}

fn keyed<K: kube::Resource>(k: K) -> Option<(String, K)> {
    Some((k.meta().uid.clone()?, k))
}

/// A change seen by the watches of `-w`.
enum Change {
    Job(Box<watcher::Event<Job>>),
    CronJob(Box<watcher::Event<CronJob>>),
}

impl Watch {
    fn current_rows(&self) -> BTreeMap<(String, String), Row> {
        let jobs: Vec<Job> = self.jobs.values().cloned().collect();
        let cronjobs: Vec<CronJob> = self.cronjobs.values().cloned().collect();
        let mut rows = rows(&jobs, &cronjobs, jiff::Timestamp::now());
        if self.format != Format::Wide {
            rows = trace_rows(&rows);
        }
        rows.into_iter()
            .map(|r| ((r.namespace.clone(), r.name.clone()), r))
            .collect()
    }

    /// The lines to print after a change: each row that changed (AGE aside), and
    /// `Deleted` for a trace whose objects are all gone.
    fn changed_rows(&mut self) -> Vec<Row> {
        let now = self.current_rows();
        let mut changed = Vec::new();
        let same = |a: &Row, b: &Row| {
            Row {
                age: String::new(),
                created: None,
                ..a.clone()
            } == Row {
                age: String::new(),
                created: None,
                ..b.clone()
            }
        };
        for (k, r) in &now {
            if !self.shown.get(k).is_some_and(|old| same(old, r)) {
                changed.push(r.clone());
            }
        }
        for (k, old) in &self.shown {
            if !now.contains_key(k) {
                changed.push(Row {
                    status: "Deleted".into(),
                    ..old.clone()
                });
            }
        }
        self.shown = now;
        changed
    }

    fn print_rows(&mut self, rows: &[Row], out: &Out) {
        let wide = self.format == Format::Wide;
        let lines = cells(rows, self.all_namespaces, wide, true);
        if self.widths.is_empty() {
            self.widths = widths(&lines);
        }
        out.write(&render_lines(&lines[1..], &self.widths));
    }

    /// One object changed (`deleted`: it is gone): print what the format prints.
    fn object(&mut self, v: Value, kind: &str, meta: &ObjectMeta, out: &Out) {
        match &self.format {
            Format::Json => out.write(&format!(
                "{}\n",
                serde_json::to_string_pretty(&v).unwrap_or_default()
            )),
            Format::Yaml => {
                let y = serde_saphyr::to_string(&v).unwrap_or_default();
                out.write(&format!("---\n{y}"));
                if !y.ends_with('\n') {
                    out.write("\n");
                }
            }
            Format::JsonPath(t) => out.write(&t.render(&v)),
            Format::Name => out.line("", &object_name(kind, meta)),
            Format::Table | Format::Wide => {}
        }
    }

    fn apply(&mut self, change: Change, out: &Out) {
        use watcher::Event;
        let table = matches!(self.format, Format::Table | Format::Wide);
        match change {
            Change::Job(e) => match *e {
                Event::Apply(j) | Event::InitApply(j) => {
                    let show = self.jobs.get(j.metadata.uid.as_deref().unwrap_or("")) != Some(&j);
                    if show && !table {
                        self.object(manifest::to_value(&j), "job.batch", &j.metadata, out);
                    }
                    if let Some((uid, j)) = keyed(j) {
                        self.jobs.insert(uid, j);
                    }
                }
                Event::Delete(j) => {
                    if let Some(uid) = &j.metadata.uid {
                        self.jobs.remove(uid);
                    }
                }
                Event::Init | Event::InitDone => {}
            },
            Change::CronJob(e) => match *e {
                Event::Apply(c) | Event::InitApply(c) => {
                    let show =
                        self.cronjobs.get(c.metadata.uid.as_deref().unwrap_or("")) != Some(&c);
                    if show && !table {
                        self.object(manifest::to_value(&c), "cronjob.batch", &c.metadata, out);
                    }
                    if let Some((uid, c)) = keyed(c) {
                        self.cronjobs.insert(uid, c);
                    }
                }
                Event::Delete(c) => {
                    if let Some(uid) = &c.metadata.uid {
                        self.cronjobs.remove(uid);
                    }
                }
                Event::Init | Event::InitDone => {}
            },
        }
        if table {
            let rows = self.changed_rows();
            if !rows.is_empty() {
                self.print_rows(&rows, out);
            }
        }
    }
}

/// Watch the Jobs and CronJobs of `selector` until an interrupt; print each change.
async fn watch(
    ctx: &Ctx,
    scope: Option<&str>,
    selector: &str,
    w: &mut Watch,
    out: &Out,
    interrupts: Interrupts<'_>,
) -> Result<()> {
    // Watches stay quiet for long: the client without a read timeout.
    let client = ctx.stream_client.clone();
    let (jobs, cronjobs): (Api<Job>, Api<CronJob>) = match scope {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client, ns),
        ),
        None => (Api::all(client.clone()), Api::all(client)),
    };
    let config = watcher::Config::default().labels(selector);
    let jobs = watcher::watcher(jobs, config.clone())
        .map(|e| (e.map(|e| Change::Job(Box::new(e))), "jobs.batch"));
    let cronjobs = watcher::watcher(cronjobs, config)
        .map(|e| (e.map(|e| Change::CronJob(Box::new(e))), "cronjobs.batch"));
    let mut changes = std::pin::pin!(futures::stream::select(jobs, cronjobs));
    loop {
        tokio::select! {
            _ = interrupts.next() => return Ok(()),
            c = changes.next() => match c {
                None => return Ok(()),
                Some((Ok(change), _)) => w.apply(change, out),
                Some((Err(e), resource)) => {
                    return Err(fail(format!("watching {resource} failed: {e}")));
                }
            },
        }
    }
}

fn object_name(kind: &str, meta: &ObjectMeta) -> String {
    format!("{kind}/{}", meta.name.clone().unwrap_or_default())
}

fn list_value(items: Vec<Value>) -> Value {
    serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items})
}

fn yaml_list(items: Vec<Value>) -> String {
    let mut y = serde_saphyr::to_string(&list_value(items)).unwrap_or_default();
    if !y.ends_with('\n') {
        y.push('\n');
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn job(name: &str, status: Value, owner: Option<&str>) -> Job {
        let mut meta = json!({
            "name": name, "namespace": "default",
            "creationTimestamp": "2025-01-01T00:00:00Z",
            "labels": {"kubectl-trace/id": "abc"},
            "annotations": {"kubectl-trace/target": "node/n1", "kubectl-trace/node": "n1"}
        });
        if let Some(o) = owner {
            meta["ownerReferences"] =
                json!([{"apiVersion": "batch/v1", "kind": "CronJob", "name": "c", "uid": o}]);
        }
        serde_json::from_value(json!({"metadata": meta, "status": status})).unwrap()
    }

    #[test]
    fn table_with_schedule() {
        let now: jiff::Timestamp = "2025-01-01T01:00:00Z".parse().unwrap();
        let cj: CronJob = serde_json::from_value(json!({
            "metadata": {"name": "kubectl-trace-sch", "namespace": "default", "uid": "cu",
                         "creationTimestamp": "2025-01-01T00:00:00Z",
                         "annotations": {"kubectl-trace/target": "node/n2", "kubectl-trace/node": "n2"}},
            "spec": {"schedule": "*/5 * * * *", "jobTemplate": {}},
            "status": {"lastScheduleTime": "2025-01-01T00:55:00Z"}
        }))
        .unwrap();
        let jobs = vec![
            job("kubectl-trace-abc", json!({"active": 1, "ready": 1}), None),
            job(
                "kubectl-trace-sch-29000",
                json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}),
                Some("cu"),
            ),
        ];
        let rows = rows(&jobs, &[cj], now);
        assert_eq!(rows.len(), 2);
        let t = table(&rows, false, false);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            vec!["NAME", "TARGET", "NODE", "STATUS", "AGE", "SCHEDULE", "LAST", "RUN"]
        );
        assert!(lines[1].starts_with("kubectl-trace-abc "), "{t}");
        assert!(lines[1].contains("Running"), "{t}");
        assert!(lines[1].contains("60m"), "{t}");
        assert!(lines[2].contains("Completed"), "{t}");
        assert!(lines[2].contains("*/5 * * * *"), "{t}");
        assert!(lines[2].contains("5m ago"), "{t}");
        let w = table(&rows, true, true);
        assert!(w.starts_with("NAMESPACE "), "{w}");
        assert!(w.lines().next().unwrap().ends_with("IMAGE"), "{w}");
    }
}
