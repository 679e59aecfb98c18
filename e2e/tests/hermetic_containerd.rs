//! The hermetic end-to-end scenarios ([`scenarios`]) with the fake kubelet running each
//! pod as a container of a private containerd (the runner image imported from the xtask
//! archive), placed in the kubelet's cgroupfs layout. containerd comes from `.ci/run`;
//! without it the scenarios fail under `CI=true`.

use e2e::node::containerd::CgroupLayout;

/// Pods as containerd containers.
const RUNTIME: Option<CgroupLayout> = Some(CgroupLayout::Cgroupfs);

#[path = "scenarios/mod.rs"]
mod scenarios;
