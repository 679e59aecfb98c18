//! `fake-cluster`: the hermetic e2e cluster for manual use. Starts the fake API server
//! and node agent, writes a kubeconfig, optionally creates demo workloads, and runs
//! until Ctrl-C or SIGTERM; `--runtime containerd` runs pods under a private
//! containerd. Knobs over HTTP: `POST /_e2e/cronjobs/NS/NAME/trigger`,
//! `POST /_e2e/reject-privileged/NS`, `POST /_e2e/forbid/VERB/RESOURCE`, `GET /_e2e/requests`.

use std::path::PathBuf;

use e2e::cluster::PodSpec;
use e2e::node::containerd::CgroupLayout;
use e2e::FakeCluster;

const USAGE: &str = "usage: fake-cluster [--runner PATH] [--kubeconfig PATH] [--demo]
                    [--runtime local|containerd] [--cgroup-driver cgroupfs|systemd]
  --runner PATH      the trace-runner binary (default: next to this binary)
  --runtime R        how the fake kubelet runs pods: local processes (default) or
                     containers of a private containerd, the runner image imported from
                     an xtask archive of --runner
  --cgroup-driver D  containerd mode: the kubelet's cgroup layout (default: cgroupfs)
  --kubeconfig PATH  where to write the kubeconfig (default: ./fake-cluster.kubeconfig)
  --demo             create pod/web-0 on node-a and deployment/api on node-a and node-b";

fn main() {
    let exe_dir = e2e::host::profile_dir();
    let mut runner = exe_dir.join("trace-runner");
    let mut kubeconfig = PathBuf::from("fake-cluster.kubeconfig");
    let mut demo = false;
    let mut containerd = false;
    let mut layout = CgroupLayout::Cgroupfs;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runner" => runner = args.next().map(PathBuf::from).unwrap_or_else(|| die(USAGE)),
            "--kubeconfig" => {
                kubeconfig = args.next().map(PathBuf::from).unwrap_or_else(|| die(USAGE))
            }
            "--demo" => demo = true,
            "--runtime" => match args.next().as_deref() {
                Some("local") => containerd = false,
                Some("containerd") => containerd = true,
                _ => die(USAGE),
            },
            "--cgroup-driver" => match args.next().as_deref() {
                Some("cgroupfs") => layout = CgroupLayout::Cgroupfs,
                Some("systemd") => layout = CgroupLayout::Systemd,
                _ => die(USAGE),
            },
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            _ => die(USAGE),
        }
    }
    let cluster = FakeCluster::start_with(
        &runner,
        &exe_dir.join("e2e-workload"),
        containerd.then_some(layout),
    )
    .unwrap_or_else(|e| die(&format!("cannot start: {e}")));
    cluster
        .write_kubeconfig(&kubeconfig, "default")
        .unwrap_or_else(|e| die(&format!("cannot write {}: {e}", kubeconfig.display())));
    let mut keep = Vec::new();
    if demo {
        keep.push(
            cluster
                .add_workload_pod(&PodSpec::new("default", "web-0", "node-a"))
                .unwrap_or_else(|e| die(&e.to_string())),
        );
        keep.extend(
            cluster
                .add_deployment("default", "api", &["node-a", "node-b"])
                .unwrap_or_else(|e| die(&e.to_string())),
        );
    }
    println!(
        "fake cluster at {} (export KUBECONFIG={})",
        cluster.url(),
        kubeconfig.display()
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Ctrl-C or SIGTERM: stop cleanly (containerd mode stops its containerd too).
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
    drop(keep);
    drop(cluster);
}

fn die(msg: &str) -> ! {
    eprintln!("{msg}");
    std::process::exit(2)
}
