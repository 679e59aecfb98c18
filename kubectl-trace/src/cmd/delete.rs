//! `kubectl trace delete TRACE... | --all [-A]`: removes the traces' Jobs, CronJobs,
//! ConfigMaps (and the reader pods of `logs`) with background propagation (so the pods go too; without a propagation
//! policy a deleted Job would orphan its pods).

use std::collections::BTreeSet;

use clap::Args;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams};

use crate::client::{is_not_found, Ctx};
use crate::errors::{fail, Op, Result};
use crate::kubeconfig::GlobalArgs;
use crate::persisted::{COMPONENT_READER, LABEL_COMPONENT};
use crate::progress::Out;
use crate::tracejob::{self, trace_key};

pub const EXAMPLES: &str = "\
Examples:
  # Delete one trace (by id or name)
  kubectl trace delete k3x9q2m7fa

  # Delete every trace of the namespace, or of all namespaces
  kubectl trace delete --all
  kubectl trace delete --all -A";

#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Traces to delete: ids or names
    #[arg(value_name = "TRACE", required_unless_present = "all")]
    pub traces: Vec<String>,
    /// Delete every trace
    #[arg(long, conflicts_with = "traces")]
    pub all: bool,
    /// With --all: in every namespace
    #[arg(short = 'A', long, requires = "all")]
    pub all_namespaces: bool,
}

pub async fn execute(args: DeleteArgs, global: &GlobalArgs) -> Result<()> {
    let ctx = Ctx::connect(global).await?;
    delete_with(&ctx, &args, &Out::stdout()).await
}

/// (namespace, trace id) of the objects matching `selector`, and the deletions done.
async fn delete_matching(
    ctx: &Ctx,
    ns: Option<&str>,
    selector: &str,
) -> Result<BTreeSet<(String, String)>> {
    let lp = ListParams::default().labels(selector);
    let dp = DeleteParams::background();
    let mut seen = BTreeSet::new();
    let key = trace_key;

    let tracejob::Workloads { jobs, cronjobs } = tracejob::workloads(ctx, ns, selector).await?;
    for c in &cronjobs {
        let (cns, _) = key(&c.metadata);
        let name = c.metadata.name.clone().unwrap_or_default();
        let a: Api<CronJob> = Api::namespaced(ctx.client.clone(), &cns);
        match a.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(ctx
                    .err(Op::new("delete", "cronjobs.batch", Some(&cns)).named(&name))(
                    e,
                ))
            }
        }
        seen.insert(key(&c.metadata));
    }

    for j in &jobs {
        let (jns, _) = key(&j.metadata);
        let name = j.metadata.name.clone().unwrap_or_default();
        let a: Api<Job> = Api::namespaced(ctx.client.clone(), &jns);
        match a.delete(&name, &dp).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(ctx
                    .err(Op::new("delete", "jobs.batch", Some(&jns)).named(&name))(
                    e
                ))
            }
        }
        seen.insert(key(&j.metadata));
    }

    let cms: Vec<ConfigMap> = ctx.list(ns, &lp, Op::new("list", "configmaps", ns)).await?;
    for c in &cms {
        let (cns, _) = key(&c.metadata);
        let name = c.metadata.name.clone().unwrap_or_default();
        let a: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &cns);
        match a.delete(&name, &dp).await {
            Ok(_) => {}
            // Already collected with its owner.
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                return Err(ctx
                    .err(Op::new("delete", "configmaps", Some(&cns)).named(&name))(
                    e
                ))
            }
        }
        seen.insert(key(&c.metadata));
    }

    // Reader pods left by `logs` on a volume (they also end by themselves). A user who
    // may not list or delete pods still gets the rest deleted.
    let readers = format!("{selector},{LABEL_COMPONENT}={COMPONENT_READER}");
    let lp = ListParams::default().labels(&readers);
    if let Ok(pods) = ctx.list::<Pod>(ns, &lp, Op::new("list", "pods", ns)).await {
        let dp = DeleteParams {
            grace_period_seconds: Some(0),
            ..Default::default()
        };
        for p in &pods {
            let (pns, _) = key(&p.metadata);
            let name = p.metadata.name.clone().unwrap_or_default();
            let a: Api<Pod> = Api::namespaced(ctx.client.clone(), &pns);
            match a.delete(&name, &dp).await {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                Err(e) => eprintln!(
                    "note: {}",
                    ctx.err(Op::new("delete", "pods", Some(&pns)).named(&name))(e)
                ),
            }
            seen.insert(key(&p.metadata));
        }
    }
    Ok(seen)
}

pub async fn delete_with(ctx: &Ctx, args: &DeleteArgs, out: &Out) -> Result<()> {
    let ns = ctx.namespace.as_str();
    if args.all {
        let scope = (!args.all_namespaces).then_some(ns);
        let done = delete_matching(ctx, scope, &tracejob::selector(None)).await?;
        if done.is_empty() {
            eprintln!("No traces found.");
        }
        for (tns, id) in done {
            if args.all_namespaces {
                out.line("", &format!("trace {id} deleted (namespace {tns})"));
            } else {
                out.line("", &format!("trace {id} deleted"));
            }
        }
        return Ok(());
    }
    // Every id is checked before anything is deleted.
    let ids = args
        .traces
        .iter()
        .map(|t| crate::names::trace_id(t))
        .collect::<Result<Vec<_>>>()?;
    let mut missing = Vec::new();
    for id in ids {
        let done = delete_matching(ctx, Some(ns), &tracejob::selector(Some(&id))).await?;
        if done.is_empty() {
            missing.push(id);
        } else {
            out.line("", &format!("trace {id} deleted"));
        }
    }
    match missing.len() {
        0 => Ok(()),
        1 => Err(fail(format!(
            "trace {} not found in namespace {ns}",
            missing[0]
        ))),
        _ => Err(fail(format!(
            "traces {} not found in namespace {ns}",
            missing.join(", ")
        ))),
    }
}
