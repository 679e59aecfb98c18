//! Hermetic end-to-end harness for kubectl-trace, in three places: the fake Kubernetes
//! API server on loopback ([`api`]: the HTTP [`api::server`] over the object
//! [`api::store`]); the fake node ([`node`]): the Job and CronJob controllers, a
//! scheduler and a kubelet that runs the real `trace-runner` binary as a local process
//! (and `pods/exec` commands in a running pod's mount namespace), keeping the kubelet's
//! `/var/log/pods` and `/var/log/containers` in a directory of its own, or in containerd
//! mode ([`cluster::FakeCluster::start_with`], `fake-cluster --runtime containerd`) as
//! containers of a private containerd ([`node::containerd`]), and workloads standing in
//! for pods ([`node::workload`]): real processes in cgroup v2 directories laid out as the
//! kubelet lays them out; and the scenarios, in `tests/`. [`cluster::FakeCluster`] ties
//! the first two together; [`host`] has the machine-level helpers the tests need
//! (binaries, BPF, root).

pub mod api;
pub mod cluster;
pub mod host;
pub mod node;
pub mod util;

pub use cluster::FakeCluster;
