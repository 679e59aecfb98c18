//! Completion through kubectl (1.26+): kubectl runs an executable named
//! `kubectl_complete-trace` (a link to this binary) with the words typed after
//! `kubectl trace`, the last one being completed, and reads Cobra's `__complete` answer:
//! one candidate per line, then `:DIRECTIVE`. Offered: subcommands, trace ids (from the
//! API), `node/NAME` and `pod/NAME` targets (from the API), bundled script names.
//! What to complete is decided by [`need`] (pure); only the lookups touch the API.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;

use crate::client::Ctx;
use crate::errors::Op;
use crate::kubeconfig::GlobalArgs;
use crate::manifest::{app_selector, LABEL_ID};

/// The executable name kubectl looks for.
pub const EXECUTABLE: &str = "kubectl_complete-trace";

/// Cobra's directives: no file completion; no space after the candidate.
const NO_FILE: u8 = 4;
const NO_SPACE: u8 = 2;

const SUBCOMMANDS: &[&str] = &[
    "run",
    "get",
    "logs",
    "log",
    "attach",
    "delete",
    "version",
    "completion",
];
const TARGET_KINDS: &[&str] = &["node/", "pod/", "deploy/", "sts/", "ds/"];

/// What the word being typed is.
#[derive(Debug, Clone, PartialEq)]
pub enum Need {
    /// Fixed candidates (subcommands, target kinds, script names); `no_space` after kinds.
    Fixed(Vec<String>, bool),
    /// Trace ids in the namespace.
    Traces,
    /// Node names, each written `PREFIX` + name.
    Nodes(String),
    /// Pod names in the namespace, each written `PREFIX` + name.
    Pods(String),
    Nothing,
}

/// Flags whose value is the next word.
const VALUE_FLAGS: &[&str] = &[
    "-n",
    "--namespace",
    "--context",
    "--cluster",
    "--user",
    "--kubeconfig",
    "-e",
    "--program",
    "-f",
    "--filename",
    "--script",
    "-c",
    "--container",
    "-l",
    "--selector",
    "--target-namespace",
    "--deadline",
    "--grace",
    "--ttl",
    "--image",
    "--serviceaccount",
    "--patch",
    "--patch-type",
    "-o",
    "--output",
    "--schedule",
    "--pod-running-timeout",
    "--request-timeout",
    "--as",
    "--as-group",
    "--as-uid",
    "-s",
    "--server",
    "--token",
    "--certificate-authority",
    "--tail",
    "--run",
    "-O",
    "--download",
    "--from",
    "--reader-image",
    "--image-pull-policy",
    "--starting-deadline",
    "--time-zone",
    "--history",
];

/// What to complete for `words` (the last is the word being typed).
pub fn need(words: &[String]) -> Need {
    let Some((current, before)) = words.split_last() else {
        return Need::Fixed(SUBCOMMANDS.iter().map(|s| s.to_string()).collect(), false);
    };
    if before.last().map(String::as_str) == Some("--script") {
        let names = crate::script::BUILTIN_SCRIPTS
            .iter()
            .map(|(n, _, _)| n.to_string());
        return Need::Fixed(names.collect(), false);
    }
    if before
        .last()
        .is_some_and(|w| VALUE_FLAGS.contains(&w.as_str()))
        || current.starts_with('-')
    {
        return Need::Nothing;
    }
    // The words that are not flags or their values: the subcommand, then its operands.
    let mut operands = Vec::new();
    let mut skip = false;
    for w in before {
        if skip {
            skip = false;
        } else if w == "--" {
            return Need::Nothing; // script arguments
        } else if w.starts_with('-') {
            skip = VALUE_FLAGS.contains(&w.as_str());
        } else {
            operands.push(w.as_str());
        }
    }
    match operands.as_slice() {
        [] => Need::Fixed(SUBCOMMANDS.iter().map(|s| s.to_string()).collect(), false),
        ["logs" | "log" | "attach" | "get", ..] if operands.len() == 1 => Need::Traces,
        ["delete", ..] => Need::Traces,
        ["run"] => match current.split_once('/') {
            Some((kind @ ("node" | "nodes" | "no"), _)) => Need::Nodes(format!("{kind}/")),
            Some((kind @ ("pod" | "pods" | "po"), _)) => Need::Pods(format!("{kind}/")),
            Some(_) => Need::Nothing,
            None => Need::Fixed(TARGET_KINDS.iter().map(|s| s.to_string()).collect(), true),
        },
        _ => Need::Nothing,
    }
}

/// The connection flags among the words, for the lookups.
fn global_args(words: &[String]) -> GlobalArgs {
    let mut g = GlobalArgs::default();
    let value = |i: usize| words.get(i + 1).cloned();
    for (i, w) in words.iter().enumerate() {
        match w.as_str() {
            "-n" | "--namespace" => g.namespace = value(i),
            "--context" => g.context = value(i),
            "--kubeconfig" => g.kubeconfig = value(i).map(Into::into),
            "--cluster" => g.cluster = value(i),
            "--user" => g.user = value(i),
            "-s" | "--server" => g.server = value(i),
            "--token" => g.token = value(i),
            _ => {}
        }
    }
    g.request_timeout = Some("5s".into());
    g
}

async fn lookup(need: &Need, words: &[String]) -> Vec<String> {
    let g = global_args(words);
    let Ok(ctx) = Ctx::connect(&g).await else {
        return vec![];
    };
    let ns = ctx.namespace.clone();
    let op = |r| Op::new("list", r, Some(&ns));
    match need {
        Need::Traces => {
            let lp = ListParams::default().labels(&app_selector());
            let jobs: Vec<Job> = ctx
                .list(Some(&ns), &lp, op("jobs.batch"))
                .await
                .unwrap_or_default();
            let crons: Vec<CronJob> = ctx
                .list(Some(&ns), &lp, op("cronjobs.batch"))
                .await
                .unwrap_or_default();
            let mut ids: Vec<String> = jobs
                .iter()
                .map(|j| &j.metadata)
                .chain(crons.iter().map(|c| &c.metadata))
                .filter_map(|m| m.labels.as_ref()?.get(LABEL_ID).cloned())
                .collect();
            ids.sort();
            ids.dedup();
            ids
        }
        Need::Nodes(prefix) => {
            let nodes: Vec<Node> = ctx
                .list(None, &ListParams::default(), Op::new("list", "nodes", None))
                .await
                .unwrap_or_default();
            nodes
                .iter()
                .filter_map(|n| Some(format!("{prefix}{}", n.metadata.name.as_ref()?)))
                .collect()
        }
        Need::Pods(prefix) => {
            let target_ns = words
                .iter()
                .position(|w| w == "--target-namespace")
                .and_then(|i| words.get(i + 1).cloned())
                .unwrap_or(ns.clone());
            let pods: Vec<Pod> = ctx
                .list(Some(&target_ns), &ListParams::default(), op("pods"))
                .await
                .unwrap_or_default();
            pods.iter()
                .filter_map(|p| Some(format!("{prefix}{}", p.metadata.name.as_ref()?)))
                .collect()
        }
        _ => vec![],
    }
}

/// Cobra's answer: the candidates starting with the typed word, then `:DIRECTIVE`.
pub fn answer(candidates: &[String], current: &str, no_space: bool) -> String {
    let mut out = String::new();
    for c in candidates.iter().filter(|c| c.starts_with(current)) {
        out.push_str(c);
        out.push('\n');
    }
    let directive = NO_FILE | if no_space { NO_SPACE } else { 0 };
    out.push_str(&format!(":{directive}\n"));
    out
}

/// Run as `kubectl_complete-trace WORDS...`.
pub async fn complete(words: Vec<String>) -> String {
    let current = words.last().cloned().unwrap_or_default();
    let need = need(&words);
    let (candidates, no_space) = match &need {
        Need::Fixed(c, ns) => (c.clone(), *ns),
        Need::Nothing => (vec![], false),
        other => {
            let found = tokio::time::timeout(Duration::from_secs(10), lookup(other, &words))
                .await
                .unwrap_or_default();
            (found, false)
        }
    };
    answer(&candidates, &current, no_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn what_each_position_completes() {
        assert!(
            matches!(need(&w(&[""])), Need::Fixed(c, false) if c.contains(&"logs".to_string()))
        );
        assert!(
            matches!(need(&w(&["-n", "x", "at"])), Need::Fixed(c, _) if c.contains(&"attach".to_string()))
        );
        assert_eq!(need(&w(&["logs", ""])), Need::Traces);
        assert_eq!(need(&w(&["-n", "apps", "log", "k3"])), Need::Traces);
        assert_eq!(need(&w(&["logs", "abc", ""])), Need::Nothing);
        assert_eq!(need(&w(&["delete", "abc", ""])), Need::Traces);
        assert_eq!(need(&w(&["run", "node/w"])), Need::Nodes("node/".into()));
        assert_eq!(
            need(&w(&["run", "-n", "x", "po/"])),
            Need::Pods("po/".into())
        );
        assert!(matches!(need(&w(&["run", ""])), Need::Fixed(c, true) if c[0] == "node/"));
        assert!(matches!(need(&w(&["run", "node/a", "--script", "sys"])),
            Need::Fixed(c, false) if c.contains(&"syscount".to_string())));
        assert_eq!(need(&w(&["run", "node/a", "-e", ""])), Need::Nothing);
        assert_eq!(need(&w(&["run", "node/a", "--", ""])), Need::Nothing);
    }

    #[test]
    fn cobra_answer() {
        let c = w(&["opensnoop", "oomkill", "syscount"]);
        assert_eq!(answer(&c, "o", false), "opensnoop\noomkill\n:4\n");
        assert_eq!(
            answer(&w(&["node/", "pod/"]), "", true),
            "node/\npod/\n:6\n"
        );
        assert_eq!(answer(&[], "x", false), ":4\n");
    }
}
