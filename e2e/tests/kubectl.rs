//! The real `kubectl` (v1.32) against the fake API server: `get` (Table output, short
//! names, `-o wide`, pages with `--chunk-size`, `-w`), `describe`, `logs`, `exec` over
//! the v5 websocket protocol, server-side dry runs of delete and patch, pod deletion
//! through Terminating, Jobs' `spec.selector`, and `/healthz` and `/readyz`; with the
//! kubelet running pods as local processes, then as containers of a private containerd.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use e2e::cluster::PodSpec;
use e2e::node::containerd::CgroupLayout;
use e2e::{host, FakeCluster};
use serde_json::json;

struct Kubectl {
    bin: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .output()
            .expect("run kubectl")
    }

    /// Run and expect success: stdout.
    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "kubectl {}: {}\nstdout:\n{out}\nstderr:\n{}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The columns of the line of `name` in a `kubectl get` table.
fn row<'a>(table: &'a str, name: &str) -> Vec<&'a str> {
    let line = table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in:\n{table}"));
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect()
}

#[test]
fn real_kubectl_gets_describes_logs_and_execs() {
    real_kubectl("real_kubectl_gets_describes_logs_and_execs", None);
}

/// The same with the kubelet running the Job's pod as a containerd container.
#[test]
fn real_kubectl_gets_describes_logs_and_execs_under_containerd() {
    real_kubectl(
        "real_kubectl_gets_describes_logs_and_execs_under_containerd",
        Some(CgroupLayout::Cgroupfs),
    );
}

fn real_kubectl(test: &str, runtime: Option<CgroupLayout>) {
    if !host::require_privileges(test) || !host::require_runtime(test, runtime) {
        return;
    }
    let Some(bin) = host::require_tool(test, "kubectl") else {
        return;
    };
    let dir = host::profile_dir();
    let cluster = FakeCluster::start_with(
        &dir.join("trace-runner"),
        Path::new(env!("CARGO_BIN_EXE_e2e-workload")),
        runtime,
    )
    .expect("fake cluster");
    let kubeconfig = cluster.workdir.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig, "default").unwrap();
    let k = Kubectl { bin, kubeconfig };
    let _web = cluster
        .add_workload_pod(&PodSpec::new("default", "web-0", "node-a"))
        .unwrap();
    cluster
        .create(
            "batch",
            "jobs",
            "default",
            json!({"metadata": {"name": "hello"}, "spec": {"backoffLimit": 0, "template": {"spec": {
                "restartPolicy": "Never", "nodeName": "node-b", "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "busybox",
                    "command": ["sh", "-c", "echo hello-from-job; exec sleep 60"]}]}}}}),
        )
        .unwrap();
    let mut pod = String::new();
    eventually("the Job's pod running", || {
        let pods = cluster.list("", "pods", "default", "job-name=hello");
        match pods.first() {
            Some(p) if p["status"]["phase"] == "Running" => {
                pod = p["metadata"]["name"].as_str().unwrap().to_string();
                true
            }
            _ => false,
        }
    });

    // Health endpoints.
    assert_eq!(k.ok(&["get", "--raw", "/healthz"]), "ok");
    assert_eq!(k.ok(&["get", "--raw", "/readyz"]), "ok");

    // Table output, through a short name.
    let out = k.ok(&["get", "po"]);
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(row(&out, "web-0")[1..4], ["1/1", "Running", "0"], "{out}");
    assert_eq!(row(&out, &pod)[1..4], ["1/1", "Running", "0"], "{out}");
    let wide = k.ok(&["get", "pods", "-o", "wide"]);
    assert!(wide.lines().next().unwrap().contains("NODE"), "{wide}");
    assert_eq!(row(&wide, &pod)[6], "node-b", "{wide}");
    assert!(
        !k.run(&["get", "pods", "-v=6"])
            .stderr
            .windows(b"Unable to decode server response into a Table".len())
            .any(|w| w == b"Unable to decode server response into a Table"),
        "kubectl fell back to its own printing"
    );

    // Jobs: the selector the Job controller's pods match.
    let uid = cluster.get("batch", "jobs", "default", "hello").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    let jobs = k.ok(&["get", "jobs", "-o", "wide"]);
    let r = row(&jobs, "hello");
    assert_eq!(r[1..3], ["Running", "0/1"], "{jobs}");
    assert_eq!(
        r.last().unwrap(),
        &format!("batch.kubernetes.io/controller-uid={uid}"),
        "{jobs}"
    );

    // Pages: every pod once, fetched one per request.
    let before = cluster.requests().len();
    let names = k.ok(&["get", "pods", "--chunk-size=1", "-o", "name"]);
    let mut names: Vec<&str> = names.lines().collect();
    names.sort();
    let mut want = vec![format!("pod/{pod}"), "pod/web-0".to_string()];
    want.sort();
    assert_eq!(names, want);
    let pages = cluster.requests()[before..]
        .iter()
        .filter(|r| r.verb == "list" && r.query.contains("limit=1"))
        .count();
    assert_eq!(pages, 2, "one request per pod");

    // describe and logs.
    let d = k.ok(&["describe", "pod", &pod]);
    let field = |name: &str| {
        d.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("describe lacks {name}:\n{d}"))
    };
    assert_eq!(field("Status:"), "Running");
    assert_eq!(field("Controlled By:"), "Job/hello");
    for want in [
        format!("controller-uid={uid}"),
        "job-name=hello".to_string(),
    ] {
        assert!(d.contains(&want), "describe lacks {want:?}:\n{d}");
    }
    assert_eq!(k.ok(&["logs", &pod]), "hello-from-job\n");
    assert_eq!(k.ok(&["logs", "job/hello"]), "hello-from-job\n");

    // exec over v5.channel.k8s.io: output, exit code, no stream error.
    let o = k.run(&[
        "exec",
        &pod,
        "-v=6",
        "--",
        "sh",
        "-c",
        "echo in-pod; exit 3",
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "in-pod\n");
    assert_eq!(o.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("The subprotocol is v5.channel.k8s.io"),
        "{stderr}"
    );
    assert!(!stderr.contains("error reading"), "{stderr}");

    // Server-side dry runs change nothing.
    let o = k.ok(&["delete", "pod", &pod, "--dry-run=server"]);
    assert!(o.contains("(server dry run)"), "{o}");
    let o = k.ok(&["label", "pod", &pod, "dry=run", "--dry-run=server"]);
    assert!(o.contains("(server dry run)"), "{o}");
    std::thread::sleep(Duration::from_millis(300));
    let p = cluster.get("", "pods", "default", &pod).expect("pod kept");
    assert!(p["metadata"].get("deletionTimestamp").is_none(), "{p}");
    assert!(p["metadata"]["labels"].get("dry").is_none(), "{p}");

    // Deletion goes through Terminating, seen by `get -w`.
    let mut watch = Command::new(&k.bin)
        .args(["get", "pods", "-w", "--no-headers"])
        .env("KUBECONFIG", &k.kubeconfig)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    k.ok(&["delete", "pod", "web-0", "--wait=false"]);
    k.ok(&["delete", "pod", &pod]);
    eventually("the pods gone", || {
        cluster.get("", "pods", "default", &pod).is_none()
            && cluster.get("", "pods", "default", "web-0").is_none()
    });
    std::thread::sleep(Duration::from_millis(300));
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let seen = String::from_utf8_lossy(&out.stdout);
    for name in ["web-0", pod.as_str()] {
        assert!(
            seen.lines()
                .any(|l| l.starts_with(name) && l.contains("Terminating")),
            "{name} never Terminating:\n{seen}"
        );
    }
}
