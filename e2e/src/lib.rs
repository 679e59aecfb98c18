//! Hermetic end-to-end harness for kubectl-trace: a fake Kubernetes API server on
//! loopback ([`server`] over the object [`store`]), a node agent acting as Job
//! controller and kubelet ([`node`]) that runs the real `trace-runner` binary as a local
//! process (and `pods/exec` commands in a running pod's mount namespace), keeping the
//! kubelet's `/var/log/pods` and `/var/log/containers` in a directory of its own, and
//! workloads standing in for pods ([`workload`]): real processes in cgroup v2
//! directories laid out as the kubelet lays them out. In containerd mode
//! ([`cluster::FakeCluster::start_with`], `fake-cluster --runtime containerd`) the kubelet
//! runs pods as containers of a private containerd instead ([`containerd`]).
//! [`listing`] shapes lists (pages, kubectl's Table). [`cluster::FakeCluster`] ties them
//! together; [`host`] has the machine-level helpers the tests need (binaries, BPF, root).

pub mod cluster;
pub mod containerd;
pub mod host;
pub mod listing;
pub mod node;
pub mod resources;
pub mod selectors;
pub mod server;
pub mod store;
pub mod util;
pub mod workload;

pub use cluster::FakeCluster;
