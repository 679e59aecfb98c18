//! `kubectl trace get [TRACE] [-A] [-o wide|json|yaml|name] [--no-headers]`: traces as a table (NAMESPACE,
//! NAME, TARGET, NODE, STATUS, AGE; SCHEDULE and LAST RUN for scheduled traces), from
//! the Jobs and CronJobs labelled `app.kubernetes.io/name=kubectl-trace`.

use clap::Args;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;

use crate::client::Ctx;
use crate::errors::{fail, Result};
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{self, ANN_NODE, ANN_PODS, ANN_TARGET, LABEL_ID};
use crate::progress::Out;
use crate::tracejob::{self, annotation, is_scheduled_run, job_status, label, owned_by};
use crate::util::format_age;

pub const EXAMPLES: &str = "\
Examples:
  # Traces in the current namespace
  kubectl trace get

  # All namespaces, with ids, traced pods and images
  kubectl trace get -A -o wide

  # One trace as YAML
  kubectl trace get k3x9q2m7fa -o yaml";

#[derive(Debug, Clone, Args)]
pub struct GetArgs {
    /// Only this trace (id or name)
    #[arg(value_name = "TRACE")]
    pub trace: Option<String>,
    /// Traces of every namespace
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Output format: wide, json, yaml, or name (TYPE/NAME per object, as kubectl)
    #[arg(short = 'o', long, value_name = "FORMAT", value_parser = ["wide", "json", "yaml", "name"])]
    pub output: Option<String>,
    /// Print the table without its header line
    #[arg(long)]
    pub no_headers: bool,
}

pub async fn execute(args: GetArgs, global: &GlobalArgs) -> Result<()> {
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
            schedule: None,
            last_run: None,
            pods: pods_column(m),
            image: image_of(j.spec.as_ref().and_then(|s| s.template.spec.as_ref())),
        });
    }
    rows.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    rows
}

/// Render rows as kubectl does: upper-case headers, columns padded, 3 spaces apart.
pub fn table(rows: &[Row], all_namespaces: bool, wide: bool) -> String {
    let scheduled = rows.iter().any(|r| r.schedule.is_some());
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
    let cols = lines[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|i| {
            lines
                .iter()
                .map(|l| l[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for l in lines {
        let mut s = String::new();
        for (i, cell) in l.iter().enumerate() {
            if i + 1 == cols {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            }
        }
        out.push_str(s.trim_end());
        out.push('\n');
    }
    out
}

pub async fn get_with(ctx: &Ctx, args: &GetArgs, out: &Out) -> Result<()> {
    let ns = ctx.namespace.as_str();
    let id = args
        .trace
        .as_deref()
        .map(crate::names::trace_id)
        .transpose()?;
    let scope = (!args.all_namespaces).then_some(ns);
    let tracejob::Workloads { jobs, cronjobs } =
        tracejob::workloads(ctx, scope, &tracejob::selector(id.as_deref())).await?;
    if let Some(id) = &id {
        if jobs.is_empty() && cronjobs.is_empty() {
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
    match args.output.as_deref() {
        Some(f @ ("json" | "yaml")) => {
            let items: Vec<Value> = cronjobs
                .iter()
                .map(manifest::to_value)
                .chain(jobs.iter().map(manifest::to_value))
                .collect();
            if f == "json" {
                out.write(&manifest::to_json_list(items));
            } else {
                let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
                let y = serde_saphyr::to_string(&list).unwrap_or_default();
                out.write(&y);
                if !y.ends_with('\n') {
                    out.write("\n");
                }
            }
        }
        Some("name") => {
            let mut names: Vec<String> = cronjobs
                .iter()
                .map(|c| {
                    format!(
                        "cronjob.batch/{}",
                        c.metadata.name.clone().unwrap_or_default()
                    )
                })
                .collect();
            names.extend(
                jobs.iter()
                    .map(|j| format!("job.batch/{}", j.metadata.name.clone().unwrap_or_default())),
            );
            for n in names {
                out.line("", &n);
            }
        }
        o => {
            let rows = rows(&jobs, &cronjobs, jiff::Timestamp::now());
            if rows.is_empty() {
                if args.all_namespaces {
                    eprintln!("No traces found.");
                } else {
                    eprintln!("No traces found in namespace {ns}.");
                }
                return Ok(());
            }
            let t = table(&rows, args.all_namespaces, o == Some("wide"));
            if args.no_headers {
                out.write(t.split_once('\n').map_or("", |(_, rest)| rest));
            } else {
                out.write(&t);
            }
        }
    }
    Ok(())
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
