//! The fake node's self-tests ([`api_scenarios`]) with the kubelet running each pod as a
//! container of a private containerd (the runner image imported from the xtask archive,
//! other images on this host's `/usr`), placed in the kubelet's cgroupfs layout:
//! containers and their execs as the `securityContext` user, logs, deletion and
//! deadlines, volumes and the runner scoped to a workload pod. containerd comes from
//! `.ci/run`; without it the scenarios fail under `CI=true`.

use e2e::node::containerd::CgroupLayout;

/// Pods as containerd containers.
const RUNTIME: Option<CgroupLayout> = Some(CgroupLayout::Cgroupfs);

#[path = "api_scenarios/mod.rs"]
mod api_scenarios;
