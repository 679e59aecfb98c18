//! `kubectl trace logs TRACE [-f] [--timestamps] [--tail N]`: the output of a trace's
//! pods (every run of a scheduled trace), prefixed per pod or node when there are several.

use clap::Args;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use crate::attach::{prefix_for, stream_logs};
use crate::client::Ctx;
use crate::errors::{fail, Op, Result};
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{id_selector, trace_id_of, CONTAINER_NAME};
use crate::progress::Out;

pub const EXAMPLES: &str = "\
Examples:
  # The output of a trace
  kubectl trace logs k3x9q2m7fa

  # Follow it, with timestamps, starting from the last 20 lines
  kubectl trace logs -f --timestamps --tail 20 kubectl-trace-k3x9q2m7fa";

#[derive(Debug, Clone, Args)]
pub struct LogsArgs {
    /// The trace: its id or its name
    #[arg(value_name = "TRACE")]
    pub trace: String,
    /// Keep streaming new output
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// Prefix each line with its RFC3339 timestamp
    #[arg(long)]
    pub timestamps: bool,
    /// Lines from the end to show (-1: all)
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
}

pub async fn execute(args: LogsArgs, global: &GlobalArgs) -> Result<()> {
    let ctx = Ctx::connect(global).await?;
    logs_with(&ctx, &args, &Out::stdout()).await
}

/// The pods of a trace, oldest first.
pub async fn trace_pods(ctx: &Ctx, ns: &str, id: &str) -> Result<Vec<Pod>> {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let mut pods = api
        .list(&ListParams::default().labels(&id_selector(id)))
        .await
        .map_err(ctx.err(Op::new("list", "pods", Some(ns))))?
        .items;
    pods.sort_by(|a, b| {
        (
            a.metadata.creation_timestamp.clone(),
            a.metadata.name.clone(),
        )
            .cmp(&(
                b.metadata.creation_timestamp.clone(),
                b.metadata.name.clone(),
            ))
    });
    Ok(pods)
}

pub async fn logs_with(ctx: &Ctx, args: &LogsArgs, out: &Out) -> Result<()> {
    let ns = ctx.namespace.as_str();
    let id = trace_id_of(&args.trace);
    let pods = trace_pods(ctx, ns, &id).await?;
    if pods.is_empty() {
        let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), ns);
        let list = jobs
            .list(&ListParams::default().labels(&id_selector(&id)))
            .await
            .map_err(ctx.err(Op::new("list", "jobs.batch", Some(ns))))?;
        return Err(fail(if list.items.is_empty() {
            format!("trace {id} not found in namespace {ns} (see kubectl trace get)")
        } else {
            format!("trace {id} has no pod: it has not started yet, or its pod was removed")
        }));
    }
    let multi = pods.len() > 1;
    let lp = LogParams {
        follow: args.follow,
        timestamps: args.timestamps,
        tail_lines: (args.tail >= 0).then_some(args.tail),
        container: Some(CONTAINER_NAME.to_string()),
        ..Default::default()
    };
    let prefix = |p: &Pod| {
        if multi {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            prefix_for(&p.metadata, &node)
        } else {
            String::new()
        }
    };
    if args.follow {
        let streams = pods.iter().map(|p| {
            let name = p.metadata.name.clone().unwrap_or_default();
            let pre = prefix(p);
            let lp = lp.clone();
            async move { stream_logs(ctx, ns, &name, &pre, &lp, out).await }
        });
        let errors: Vec<String> = futures::future::join_all(streams)
            .await
            .into_iter()
            .filter_map(|r| r.err().map(|e| e.to_string()))
            .collect();
        return if errors.is_empty() {
            Ok(())
        } else {
            Err(fail(errors.join("\nerror: ")))
        };
    }
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    for p in &pods {
        let name = p.metadata.name.clone().unwrap_or_default();
        let pre = prefix(p);
        match api.logs(&name, &lp).await {
            Ok(text) => {
                for line in text.lines() {
                    out.line(&pre, line);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 400 => {
                eprintln!("note: pod {name} has not started its runner yet");
            }
            Err(e) => {
                return Err(ctx.err(Op::new("get", "pods/log", Some(ns)).named(&name))(
                    e,
                ))
            }
        }
    }
    Ok(())
}
