//! The hermetic end-to-end scenarios: the real `kubectl-trace` binary (and `kubectl trace`
//! through kubectl's plugin mechanism) against the fake cluster, whose node agent runs
//! the real `trace-runner` on this machine against workload pods in kubelet-style
//! cgroups. Needs root and BPF: skipped without them, except under `CI=true` where it
//! fails. Scenarios run one at a time (they share the kernel's BPF state). Two test
//! binaries run them: `hermetic` with pods as local processes, `hermetic_containerd` with
//! pods as containers of a private containerd (each binary's `RUNTIME`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use e2e::cluster::PodSpec;
use e2e::host::{self, Binaries};
use e2e::FakeCluster;
use serde_json::{json, Value};

static SERIAL: Mutex<()> = Mutex::new(());

/// Counts getppid(2) calls; a getpgid(2) call ends the trace.
const COUNT_UNTIL_MARK: &str =
    "tracepoint:syscalls:sys_enter_getppid { @calls = count(); } tracepoint:syscalls:sys_enter_getpgid { exit(); }";
/// Counts getppid(2) calls until stopped.
const COUNT: &str = "tracepoint:syscalls:sys_enter_getppid { @calls = count(); }";

struct Env {
    cluster: FakeCluster,
    bins: Binaries,
    home: PathBuf,
    kubeconfig: PathBuf,
    _serial: MutexGuard<'static, ()>,
}

impl Drop for Env {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn setup(test: &str) -> Option<Env> {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !host::require_privileges(test) || !host::require_runtime(test, crate::RUNTIME) {
        return None;
    }
    let bins = host::binaries().unwrap_or_else(|e| panic!("{test}: {e}"));
    let cluster = FakeCluster::start_with(
        &bins.trace_runner,
        Path::new(env!("CARGO_BIN_EXE_e2e-workload")),
        crate::RUNTIME,
    )
    .expect("fake cluster");
    let home = cluster.workdir.join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = home.join("kubeconfig");
    cluster.write_kubeconfig(&kubeconfig, "default").unwrap();
    Some(Env {
        cluster,
        bins,
        home,
        kubeconfig,
        _serial: serial,
    })
}

/// A running command whose output is collected as it comes.
struct Running {
    child: Child,
    out: Arc<Mutex<String>>,
    err: Arc<Mutex<String>>,
}

fn collect(mut r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            b.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&chunk[..n]));
        }
    });
    buf
}

impl Running {
    fn output(&self) -> String {
        format!("{}{}", self.out.lock().unwrap(), self.err.lock().unwrap())
    }

    /// Wait until the combined output holds `text` `times` times.
    fn wait_for(&mut self, text: &str, times: usize, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if self.output().matches(text).count() >= times {
                return;
            }
            if let Ok(Some(s)) = self.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                panic!("exited ({s}) before printing {text:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        panic!("no {text:?} after {timeout:?}:\n{}", self.output());
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Wait for the exit: (status, stdout, stderr).
    fn finish(mut self, timeout: Duration) -> (ExitStatus, String, String) {
        let start = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(200));
                let out = self.out.lock().unwrap().clone();
                let err = self.err.lock().unwrap().clone();
                return (s, out, err);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("still running after {timeout:?}:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Env {
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(program);
        c.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", &self.home)
            .env("NO_COLOR", "1")
            .env(
                "PATH",
                format!(
                    "{}:{}",
                    self.bins.dir.display(),
                    std::env::var("PATH").unwrap_or_default()
                ),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    fn spawn_with(&self, program: &Path, args: &[&str]) -> Running {
        let mut child = self.command(program, args).spawn().expect("spawn");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Running { child, out, err }
    }

    /// `kubectl-trace ARGS`, running.
    fn spawn(&self, args: &[&str]) -> Running {
        self.spawn_with(&self.bins.kubectl_trace, args)
    }

    /// `kubectl-trace ARGS` to the end.
    fn run(&self, args: &[&str]) -> (ExitStatus, String, String) {
        self.spawn(args).finish(Duration::from_secs(60))
    }

    /// `kubectl trace ARGS` through kubectl's plugin mechanism.
    fn kubectl_trace(&self, args: &[&str]) -> (ExitStatus, String, String) {
        let mut all = vec!["trace"];
        all.extend_from_slice(args);
        self.spawn_with(Path::new("/usr/bin/kubectl"), &all)
            .finish(Duration::from_secs(60))
    }

    fn jobs(&self, selector: &str) -> Vec<Value> {
        self.cluster.list("batch", "jobs", "", selector)
    }

    /// Wait until `cond` holds, polling.
    fn eventually(&self, what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if cond() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("{what}: not so after {timeout:?}");
    }

    fn creates(&self) -> Vec<String> {
        self.cluster
            .requests()
            .into_iter()
            .filter(|r| r.verb == "create")
            .map(|r| r.path)
            .collect()
    }
}

/// The trace id from `trace ID created ...`.
fn trace_id(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| {
            l.strip_prefix("trace ")
                .and_then(|r| r.split_whitespace().next())
        })
        .map(str::to_string)
        .unwrap_or_else(|| panic!("no `trace ID created` line in:\n{stdout}"))
}

fn job_active(j: &Value) -> bool {
    let finished = j["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| (c["type"] == "Complete" || c["type"] == "Failed") && c["status"] == "True")
    });
    !finished
}

/// Give the runner a moment between "Attaching N probes..." and the attach itself.
fn settle() {
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn run_pod_counts_exactly_that_pods_events() {
    let Some(env) = setup("run_pod_counts_exactly_that_pods_events") else {
        return;
    };
    let mut x = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let mut y = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "y", "node-a"))
        .unwrap();
    let mut run = env.spawn(&["run", "pod/x", "-a", "-e", COUNT_UNTIL_MARK]);
    run.wait_for("Attaching", 1, Duration::from_secs(60));
    settle();
    y.container("app").getppid(700);
    x.container("app").getppid(1000);
    y.container("app").getpgid();
    x.container("app").getpgid();
    let (status, out, err) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.lines().any(|l| l.trim() == "@calls: 1000"),
        "stdout:\n{out}\nstderr:\n{err}"
    );
    assert!(!out.contains("700"), "another pod's events leaked:\n{out}");
    // One Job, on the pod's node, scoped to its uid and container.
    let jobs = env.jobs("app.kubernetes.io/name=kubectl-trace");
    assert_eq!(jobs.len(), 1);
    let spec = &jobs[0]["spec"]["template"]["spec"];
    assert_eq!(spec["nodeName"], "node-a");
    let args = spec["containers"][0]["args"].to_string();
    assert!(args.contains(&x.uid), "{args}");
    assert!(args.contains(&x.containers[0].id), "{args}");
}

#[test]
fn ctrl_c_prints_the_maps_and_leaves_nothing_running() {
    let Some(env) = setup("ctrl_c_prints_the_maps_and_leaves_nothing_running") else {
        return;
    };
    let progs_before = host::bpf_prog_ids().unwrap().len();
    let mut x = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let mut run = env.spawn(&["run", "pod/x", "-a", "--grace", "10s", "-e", COUNT]);
    run.wait_for("Attaching", 1, Duration::from_secs(60));
    settle();
    x.container("app").getppid(500);
    run.signal(libc::SIGINT);
    let (status, out, err) = run.finish(Duration::from_secs(30));
    assert!(
        out.lines().any(|l| l.trim() == "@calls: 500"),
        "{status}\nstdout:\n{out}\nstderr:\n{err}"
    );
    env.eventually("no trace Job left running", Duration::from_secs(15), || {
        env.jobs("app.kubernetes.io/name=kubectl-trace")
            .iter()
            .all(|j| !job_active(j))
    });
    env.eventually("no trace container left", Duration::from_secs(15), || {
        env.cluster.running_containers().is_empty()
    });
    env.eventually(
        "no trace-runner process left",
        Duration::from_secs(15),
        || host::children_named("trace-runner").is_empty(),
    );
    env.eventually(
        "BPF programs back to their count before the trace",
        Duration::from_secs(15),
        || host::bpf_prog_ids().unwrap().len() <= progs_before,
    );
}

#[test]
fn deployment_on_two_nodes_merges_prefixed_outputs() {
    let Some(env) = setup("deployment_on_two_nodes_merges_prefixed_outputs") else {
        return;
    };
    let mut pods = env
        .cluster
        .add_deployment("default", "web", &["node-a", "node-b"])
        .unwrap();
    let mut run = env.spawn(&["run", "deploy/web", "-a", "-e", COUNT_UNTIL_MARK]);
    run.wait_for("Attaching", 2, Duration::from_secs(60));
    settle();
    pods[0].container("app").getppid(300);
    pods[1].container("app").getppid(500);
    pods[0].container("app").getpgid();
    pods[1].container("app").getpgid();
    let (status, out, err) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    for (pod, n) in [(&pods[0].name, 300), (&pods[1].name, 500)] {
        let want = format!("[pod/{pod}] @calls: {n}");
        assert!(
            out.lines().any(|l| l.trim() == want),
            "no {want:?} in stdout:\n{out}\nstderr:\n{err}"
        );
    }
    let mut nodes: Vec<String> = env
        .jobs("app.kubernetes.io/name=kubectl-trace")
        .iter()
        .map(|j| {
            j["spec"]["template"]["spec"]["nodeName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["node-a", "node-b"]);
}

#[test]
fn deployment_merge_adds_the_pods_exact_counts() {
    let Some(env) = setup("deployment_merge_adds_the_pods_exact_counts") else {
        return;
    };
    let mut pods = env
        .cluster
        .add_deployment("default", "web", &["node-a", "node-b"])
        .unwrap();
    // One pod is no merge: refused in one line, before anything is created.
    let pod = format!("pod/{}", pods[0].name);
    let (status, out, err) = env.run(&["run", &pod, "--merge", "-a", "-e", COUNT_UNTIL_MARK]);
    assert_eq!(status.code(), Some(1), "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("--merge combines the maps of several"),
        "{err}"
    );
    assert!(env.creates().is_empty(), "{:?}", env.creates());

    let mut run = env.spawn(&["run", "deploy/web", "--merge", "-a", "-e", COUNT_UNTIL_MARK]);
    run.wait_for("Attaching", 2, Duration::from_secs(60));
    settle();
    pods[0].container("app").getppid(300);
    pods[1].container("app").getppid(500);
    pods[0].container("app").getpgid();
    pods[1].container("app").getpgid();
    let (status, out, err) = run.finish(Duration::from_secs(30));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let check = |out: &str, err: &str| {
        let lines: Vec<&str> = out.lines().collect();
        let mut last_prefixed = 0;
        for (pod, n) in [(&pods[0].name, 300), (&pods[1].name, 500)] {
            let want = format!("[pod/{pod}] @calls: {n}");
            let at = lines.iter().position(|l| l.trim() == want);
            let at = at.unwrap_or_else(|| panic!("no {want:?} in stdout:\n{out}\nstderr:\n{err}"));
            last_prefixed = last_prefixed.max(at);
        }
        // The merged map, as bpftrace prints it, after every pod's lines.
        let merged = lines.iter().position(|l| *l == "@calls: 800");
        assert!(
            merged.is_some_and(|m| m > last_prefixed),
            "no merged `@calls: 800` after the pods' lines:\n{out}\nstderr:\n{err}"
        );
        assert!(
            !out.contains("__KUBECTL_TRACE_MAPS__") && !err.contains("__KUBECTL_TRACE_MAPS__"),
            "the maps line showed:\n{out}\n{err}"
        );
        assert!(err.contains("merged maps of 2 runners"), "{err}");
    };
    check(&out, &err);
    for job in env.jobs("app.kubernetes.io/name=kubectl-trace") {
        let args = job["spec"]["template"]["spec"]["containers"][0]["args"].to_string();
        assert!(args.contains("--emit-maps"), "{args}");
    }
    // Later, from the finished pods' logs.
    let id = trace_id(&out);
    let (status, out, err) = env.run(&["logs", &id, "--merge"]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    check(&out, &err);
}

#[test]
fn nodes_targets_make_one_trace_with_a_row_per_node() {
    let Some(env) = setup("nodes_targets_make_one_trace_with_a_row_per_node") else {
        return;
    };
    const HELLO: &str = r#"BEGIN { printf("hello\n"); exit(); }"#;
    // `get -w` meanwhile: the (empty) table, then a row each time a trace changes.
    let mut watch = env.spawn(&["get", "-w"]);
    watch.wait_for("NAME", 1, Duration::from_secs(30));

    // Every node: one trace id, a Job per node, the output prefixed per node.
    let (status, out, err) = env.run(&["run", "nodes", "-a", "-e", HELLO]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let id = trace_id(&out);
    for n in e2e::cluster::NODES {
        let want = format!("[node/{n}] hello");
        assert!(
            out.lines().any(|l| l.trim() == want),
            "no {want:?} in stdout:\n{out}\nstderr:\n{err}"
        );
    }
    let (status, out, err) = env.run(&["get"]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(&id)).collect();
    assert_eq!(rows.len(), 1, "one row per trace:\n{out}");
    assert!(
        rows[0].starts_with(&format!("kubectl-trace-{id} ")) && rows[0].contains(" 2 nodes "),
        "{out}"
    );
    let (status, out, err) = env.run(&["get", "-o", "wide"]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let mut nodes: Vec<&str> = out
        .lines()
        .filter(|l| l.split_whitespace().any(|c| c == id))
        .map(|l| l.split_whitespace().nth(2).unwrap_or(""))
        .collect();
    nodes.sort();
    assert_eq!(nodes, e2e::cluster::NODES, "a row per node:\n{out}");
    let (status, out, err) = env.run(&[
        "get",
        &id,
        "-o",
        r#"jsonpath={range .items[*]}{.spec.template.spec.nodeName}{"\n"}{end}"#,
    ]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let mut nodes: Vec<&str> = out.lines().collect();
    nodes.sort();
    assert_eq!(nodes, e2e::cluster::NODES, "{out}");

    // By label: only node-b.
    let (status, out, err) = env.run(&[
        "run",
        "nodes",
        "-l",
        "kubernetes.io/hostname=node-b",
        "-a",
        "-e",
        HELLO,
    ]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let id2 = trace_id(&out);
    assert!(out.lines().any(|l| l.trim() == "hello"), "{out}");
    let nodes: Vec<String> = env
        .jobs(&format!("kubectl-trace/id={id2}"))
        .iter()
        .map(|j| {
            j["spec"]["template"]["spec"]["nodeName"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect();
    assert_eq!(nodes, ["node-b"]);

    // The watch saw both traces; Ctrl-C ends it cleanly.
    watch.wait_for(&format!("kubectl-trace-{id2} "), 1, Duration::from_secs(30));
    watch.signal(libc::SIGINT);
    let (status, out, err) = watch.finish(Duration::from_secs(10));
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains(&format!("kubectl-trace-{id} ")), "{out}");
}

/// A scheduled node trace writing to claim `traces`, run twice: its id and the run
/// directories on the claim (sorted: oldest first), each with output.txt and meta.json.
fn scheduled_pvc_trace_run_twice(env: &Env) -> (String, Vec<PathBuf>) {
    env.cluster
        .create("", "persistentvolumeclaims", "default", json!({"metadata": {"name": "traces"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}))
        .unwrap();
    let (status, out, err) = env.run(&[
        "run",
        "node/node-a",
        "--schedule",
        "*/30 * * * *",
        "--deadline",
        "2s",
        "--output",
        "pvc:traces",
        "-e",
        "BEGIN { printf(\"run started\\n\"); } interval:ms:500 { @ticks = count(); }",
    ]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let id = trace_id(&out);
    let cj = env.cronjob_of(&id);
    for run in 1..=2 {
        let job = env.trigger_and_wait(&cj, run);
        let j = env.cluster.get("batch", "jobs", "default", &job).unwrap();
        assert_eq!(j["status"]["succeeded"], 1, "run {run}: {}", j["status"]);
    }
    // The runner wrote <trace-id>/<run-start>/output.txt on the claim, once per run.
    let mut runs: Vec<PathBuf> =
        std::fs::read_dir(env.cluster.claim_dir("default", "traces").join(&id))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
    runs.sort();
    assert_eq!(runs.len(), 2, "run directories on the claim: {runs:?}");
    for r in &runs {
        let text = std::fs::read_to_string(r.join("output.txt")).unwrap_or_default();
        assert!(text.contains("run started"), "{}: {text}", r.display());
        assert!(text.contains("@ticks: "), "{}: {text}", r.display());
        assert!(r.join("meta.json").exists(), "{}", r.display());
    }
    (id, runs)
}

fn file_name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

impl Env {
    /// The CronJob of scheduled trace `id`.
    fn cronjob_of(&self, id: &str) -> String {
        let cronjobs = self.cluster.list(
            "batch",
            "cronjobs",
            "default",
            &format!("kubectl-trace/id={id}"),
        );
        assert_eq!(cronjobs.len(), 1, "one CronJob for the trace");
        cronjobs[0]["metadata"]["name"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Run CronJob `cj` now; wait for its Job to finish; returns the Job's name.
    fn trigger_and_wait(&self, cj: &str, run: usize) -> String {
        let job = self.cluster.trigger_cronjob("default", cj).unwrap();
        self.wait_job(&job, run);
        job
    }

    fn wait_job(&self, job: &str, run: usize) {
        self.eventually(
            &format!("run {run} ({job}) finished"),
            Duration::from_secs(30),
            || {
                self.cluster
                    .get("batch", "jobs", "default", job)
                    .is_some_and(|j| !job_active(&j))
            },
        );
    }

    /// The pod of Job `job`, once it exists.
    fn job_pod(&self, job: &str) -> String {
        let mut name = String::new();
        self.eventually(&format!("a pod for {job}"), Duration::from_secs(30), || {
            let pods = self
                .cluster
                .list("", "pods", "default", &format!("job-name={job}"));
            if let Some(p) = pods.first() {
                name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            }
            !name.is_empty()
        });
        name
    }

    /// The exec requests received (`pods/NAME/exec`), as `path?query`.
    fn execs(&self) -> Vec<String> {
        self.cluster
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/exec"))
            .map(|r| format!("{}?{}", r.path, r.query))
            .collect()
    }

    /// Reader pods of trace `id` are gone (the plugin deletes them after use).
    fn readers_gone(&self, id: &str) {
        let sel = format!("kubectl-trace/id={id},kubectl-trace/component=reader");
        self.eventually("the reader pod deleted", Duration::from_secs(15), || {
            self.cluster.list("", "pods", "default", &sel).is_empty()
        });
    }
}

/// `logs --all-runs` reads the claim through the reader pod (`pods/exec`: find + stat,
/// then tar): the run Jobs and their pods are deleted first, so the fallback to pod logs
/// cannot be what answers.
#[test]
fn scheduled_trace_to_a_pvc_runs_twice_and_logs_all_runs() {
    let Some(env) = setup("scheduled_trace_to_a_pvc_runs_twice_and_logs_all_runs") else {
        return;
    };
    let (id, runs) = scheduled_pvc_trace_run_twice(&env);
    let sel = format!("kubectl-trace/id={id}");
    let jobs = env.jobs(&sel);
    assert_eq!(jobs.len(), 2);
    for j in &jobs {
        let name = j["metadata"]["name"].as_str().unwrap();
        env.cluster
            .delete("batch", "jobs", "default", name)
            .unwrap();
    }
    env.eventually("the runs' pods deleted", Duration::from_secs(15), || {
        env.cluster.list("", "pods", "default", &sel).is_empty()
    });

    let (status, out, err) = env.run(&["logs", &id, "--all-runs"]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    assert!(
        !err.contains("kept as pods"),
        "fell back to pod logs:\n{err}"
    );
    // Each run: its header, then its output.txt exactly as on the claim.
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in out.split_inclusive('\n') {
        if let Some(h) = line.strip_prefix("==> RUN ") {
            sections.push((h.trim_end().to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
        } else {
            panic!("output before the first header:\n{out}");
        }
    }
    assert_eq!(sections.len(), 2, "stdout:\n{out}\nstderr:\n{err}");
    for ((header, body), run) in sections.iter().zip(&runs) {
        let name = file_name(run);
        assert!(
            header.starts_with(&format!("{name} (succeeded, ")) && header.ends_with(" <=="),
            "{header:?} for run {name}; meta.json: {}",
            std::fs::read_to_string(run.join("meta.json")).unwrap_or_default()
        );
        assert_eq!(
            *body,
            std::fs::read_to_string(run.join("output.txt")).unwrap(),
            "run {name}"
        );
        assert_eq!(body.matches("run started").count(), 1, "{body}");
        assert_eq!(body.matches("@ticks: ").count(), 1, "{body}");
    }
    // Read through the reader pod: find + stat, then tar, in pods/exec.
    let execs = env.execs();
    assert!(
        execs.iter().any(|e| e.contains("command=find"))
            && execs.iter().any(|e| e.contains("command=tar")),
        "{execs:?}"
    );
    env.readers_gone(&id);
}

/// `logs TRACE -O DIR` downloads every run kept on the claim (output.txt and meta.json,
/// byte for byte) through the reader pod.
#[test]
fn scheduled_trace_to_a_pvc_downloads_its_runs() {
    let Some(env) = setup("scheduled_trace_to_a_pvc_downloads_its_runs") else {
        return;
    };
    let (id, runs) = scheduled_pvc_trace_run_twice(&env);
    let dest = env.home.join("runs");
    let (status, out, err) = env.run(&["logs", &id, "-O", dest.to_str().unwrap()]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let mut got: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .flatten()
        .map(|e| file_name(&e.path()))
        .collect();
    got.sort();
    let want: Vec<String> = runs.iter().map(|r| file_name(r)).collect();
    assert_eq!(got, want, "stdout:\n{out}\nstderr:\n{err}");
    for run in &runs {
        let name = file_name(run);
        let mut files: Vec<String> = std::fs::read_dir(dest.join(&name))
            .unwrap()
            .flatten()
            .map(|e| file_name(&e.path()))
            .collect();
        files.sort();
        assert_eq!(files, ["meta.json", "output.txt"], "run {name}");
        for f in &files {
            assert_eq!(
                std::fs::read(dest.join(&name).join(f)).unwrap(),
                std::fs::read(run.join(f)).unwrap(),
                "{name}/{f}"
            );
        }
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dest.join(&name).join("meta.json")).unwrap())
                .unwrap();
        assert!(meta.is_object(), "{meta}");
    }
    assert!(
        env.execs().iter().any(|e| e.contains("command=tar")),
        "{:?}",
        env.execs()
    );
    env.readers_gone(&id);
}

/// A scheduled pod trace finds its pod by namespace and name at each run (the kubelet's
/// /var/log/pods and /var/log/containers): after the pod is recreated (new uid, new
/// cgroups, new container id, same name), the next run counts the new pod's events, not
/// the old one's.
#[test]
fn scheduled_pod_trace_follows_a_recreated_pod() {
    let Some(env) = setup("scheduled_pod_trace_follows_a_recreated_pod") else {
        return;
    };
    let mut old = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let (status, out, err) = env.run(&[
        "run",
        "pod/x",
        "--schedule",
        "*/30 * * * *",
        "--deadline",
        "2s",
        "-e",
        "BEGIN { printf(\"attached\\n\"); } tracepoint:syscalls:sys_enter_getppid { @calls = count(); }",
    ]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let id = trace_id(&out);
    let cj = env.cronjob_of(&id);
    let cronjob = env
        .cluster
        .get("batch", "cronjobs", "default", &cj)
        .unwrap();
    let args = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(
        args.contains(r#""--pod","default/x""#) && !args.contains(&old.uid),
        "{args}"
    );

    // One run: `calls` events of the pods in `busy` (each after the probes are attached).
    let run = |n: usize, busy: &mut [(&mut e2e::node::workload::WorkloadPod, u64)]| -> String {
        let job = env.cluster.trigger_cronjob("default", &cj).unwrap();
        let pod = env.job_pod(&job);
        env.eventually(
            &format!("run {n}: the probes attached"),
            Duration::from_secs(30),
            || {
                env.cluster
                    .pod_log("default", &pod)
                    .is_some_and(|l| l.contains("attached\n"))
            },
        );
        for (p, calls) in busy.iter_mut() {
            p.container("app").getppid(*calls);
        }
        env.wait_job(&job, n);
        let log = env.cluster.pod_log("default", &pod).unwrap_or_default();
        let j = env.cluster.get("batch", "jobs", "default", &job).unwrap();
        assert_eq!(
            j["status"]["succeeded"], 1,
            "run {n}: {}\n{log}",
            j["status"]
        );
        log
    };
    let log = run(1, &mut [(&mut old, 300)]);
    assert!(log.contains("@calls: 300\n"), "run 1:\n{log}");

    // Recreated: the old pod leaves the API (its processes stay, busy, in its cgroup).
    env.cluster.delete_pod("default", "x").unwrap();
    let mut new = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    assert_ne!(new.uid, old.uid);
    assert_ne!(new.containers[0].id, old.containers[0].id);
    let log = run(2, &mut [(&mut old, 500), (&mut new, 700)]);
    assert!(log.contains("@calls: 700\n"), "run 2:\n{log}");
    assert!(
        !log.contains("500") && !log.contains("1200"),
        "run 2:\n{log}"
    );
}

#[test]
fn bad_script_creates_nothing() {
    let Some(env) = setup("bad_script_creates_nothing") else {
        return;
    };
    let (status, out, err) = env.run(&[
        "run",
        "node/node-a",
        "-e",
        "tracepoint:syscalls:sys_enter_getppid { @ = count( }",
    ]);
    assert_eq!(status.code(), Some(2), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        err.contains(":1:") && err.contains('^'),
        "expected FILE:LINE:COL and a caret:\n{err}"
    );
    assert!(env.creates().is_empty(), "created: {:?}", env.creates());
    assert!(env.jobs("").is_empty());
}

#[test]
fn pod_forbidden_by_admission_is_explained() {
    let Some(env) = setup("pod_forbidden_by_admission_is_explained") else {
        return;
    };
    // A cluster-wide PodSecurity default: the Job is created, its pod is not (FailedCreate).
    env.cluster.reject_privileged("default");
    let (status, out, err) = env.run(&[
        "run",
        "node/node-a",
        "-a",
        "--pod-running-timeout",
        "40s",
        "-e",
        COUNT,
    ]);
    assert!(!status.success(), "stdout:\n{out}\nstderr:\n{err}");
    assert!(err.contains("PodSecurity"), "stderr:\n{err}");
    assert!(
        err.contains("pod-security.kubernetes.io/enforce=privileged"),
        "stderr:\n{err}"
    );
    assert!(
        !err.contains("panicked") && err.lines().filter(|l| l.starts_with("error")).count() == 1,
        "stderr:\n{err}"
    );
    assert!(env
        .cluster
        .list(
            "",
            "pods",
            "default",
            "app.kubernetes.io/name=kubectl-trace"
        )
        .is_empty());

    // A namespace labelled for baseline: refused before anything is created there.
    env.cluster.add_namespace(
        "locked",
        &[("pod-security.kubernetes.io/enforce", "baseline")],
    );
    let (status, _, err) = env.run(&["run", "node/node-a", "-n", "locked", "-e", COUNT]);
    assert!(!status.success());
    assert!(
        err.contains("pod-security.kubernetes.io/enforce=privileged"),
        "stderr:\n{err}"
    );
    assert!(
        env.creates()
            .iter()
            .all(|p| !p.contains("/namespaces/locked/")),
        "{:?}",
        env.creates()
    );
}

#[test]
fn get_and_delete_show_and_remove_what_was_created() {
    let Some(env) = setup("get_and_delete_show_and_remove_what_was_created") else {
        return;
    };
    let _x = env
        .cluster
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let (status, out, err) = env.run(&["run", "pod/x", "-e", COUNT]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let id = trace_id(&out);
    env.eventually("the trace runs", Duration::from_secs(30), || {
        !env.cluster.running_containers().is_empty()
    });

    let (status, out, err) = env.kubectl_trace(&["get"]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let header = out.lines().next().unwrap_or("");
    for col in ["NAME", "TARGET", "NODE", "STATUS", "AGE"] {
        assert!(header.contains(col), "header {header:?}");
    }
    let row = out
        .lines()
        .find(|l| l.contains(&id))
        .unwrap_or_else(|| panic!("no row for {id}:\n{out}"));
    assert!(
        (row.contains(" pod/x ") || row.contains(" pod/default/x "))
            && row.contains("node-a")
            && row.contains("Running"),
        "{row}"
    );

    let (status, out, err) = env.kubectl_trace(&["delete", &id]);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    let sel = format!("kubectl-trace/id={id}");
    env.eventually(
        "Job, ConfigMap and pod removed",
        Duration::from_secs(40),
        || {
            env.jobs(&sel).is_empty()
                && env
                    .cluster
                    .list("", "configmaps", "default", &sel)
                    .is_empty()
                && env.cluster.list("", "pods", "default", &sel).is_empty()
        },
    );
    assert!(env.cluster.running_containers().is_empty());
    let (status, out, _) = env.kubectl_trace(&["get"]);
    assert!(status.success());
    assert!(!out.contains(&id), "{out}");
}
