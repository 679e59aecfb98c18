//! The hermetic end-to-end scenarios ([`scenarios`]) with the fake kubelet running pods as
//! local processes in kubelet-style cgroups.

use e2e::node::containerd::CgroupLayout;

/// Pods as local processes.
const RUNTIME: Option<CgroupLayout> = None;

mod scenarios;
