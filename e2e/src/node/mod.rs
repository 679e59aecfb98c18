//! The fake node: the controllers (Job, CronJob, a tiny scheduler), the kubelet that
//! runs pods, and the runtimes it runs them with: local processes in a mount namespace of
//! their own, or containers of a private containerd ([`containerd`]); [`workload`] has the
//! processes that stand in for application pods.

pub mod containerd;
mod kubelet;
pub mod workload;

pub use kubelet::*;
