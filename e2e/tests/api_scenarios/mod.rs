//! Self-tests of the fake node through kube-rs (the plugin's client), run by two test
//! binaries with the kubelet's runtime as their `RUNTIME`: `fake_api` (local processes)
//! and `fake_api_containerd` (containers of a private containerd). The Job controller
//! and kubelet running a container and its logs, graceful deletion and deadlines,
//! containers and `pods/exec` as the `securityContext` user, `pods/exec` over a
//! websocket in the pod's view of the files (claim, the kubelet's log directories), and
//! the runner scoped to a workload pod.

use std::time::Duration;

use e2e::cluster::PodSpec;
use e2e::{host, FakeCluster};
use futures::{AsyncBufReadExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, DeleteParams, ListParams, LogParams, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Client, Config};
use serde_json::json;
use tokio::io::AsyncReadExt;

/// Whether this host can run a scenario: root, BPF, and the binary's `RUNTIME`.
fn ready(test: &str) -> bool {
    host::require_privileges(test) && host::require_runtime(test, crate::RUNTIME)
}

/// A fake cluster whose kubelet runs pods with the test binary's `RUNTIME`.
pub fn cluster() -> FakeCluster {
    let dir = host::profile_dir();
    FakeCluster::start_with(
        &dir.join("trace-runner"),
        env!("CARGO_BIN_EXE_e2e-workload").as_ref(),
        crate::RUNTIME,
    )
    .expect("start")
}

pub fn client(c: &FakeCluster) -> Client {
    Client::try_from(Config::new(c.url().parse().unwrap())).unwrap()
}

pub fn job(name: &str, cmd: &str, grace: i64) -> Job {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "t"}},
        "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app": "t"}}, "spec": {
            "restartPolicy": "Never", "nodeName": "node-b", "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", cmd]}]}}}
    }))
    .unwrap()
}

pub async fn job_pod(pods: &Api<Pod>, job: &str) -> Pod {
    for _ in 0..100 {
        if let Some(p) = pods
            .list(&ListParams::default().labels(&format!("job-name={job}")))
            .await
            .unwrap()
            .items
            .pop()
        {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no pod for job {job}");
}

#[tokio::test]
async fn job_runs_a_container_and_logs_stream() {
    if !ready("job_runs_a_container_and_logs_stream") {
        return;
    }
    let c = cluster();
    let client = client(&c);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    jobs.create(
        &PostParams::default(),
        &job(
            "hello",
            "echo out; echo err >&2; test -d /host-none || echo isolated; sleep 0.5; exit 3",
            1,
        ),
    )
    .await
    .unwrap();
    let pod = job_pod(&pods, "hello").await;
    let name = pod.metadata.name.clone().unwrap();
    assert!(
        name.starts_with("hello-") && name.len() == "hello-".len() + 5,
        "{name}"
    );
    assert_eq!(pod.metadata.labels.as_ref().unwrap()["app"], "t");
    // Follow the log until the container ends (retry while it is being created).
    let mut lines = Vec::new();
    for _ in 0..50 {
        match pods
            .log_stream(
                &name,
                &LogParams {
                    follow: true,
                    ..Default::default()
                },
            )
            .await
        {
            Ok(s) => {
                let mut s = s.lines();
                while let Some(l) = s.try_next().await.unwrap() {
                    lines.push(l);
                }
                break;
            }
            Err(kube::Error::Api(s)) if s.code == 400 => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    lines.sort();
    assert_eq!(lines, ["err", "isolated", "out"]);
    let done = await_condition(jobs.clone(), "hello", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.failed)
            .unwrap_or(0)
            > 0
    });
    let j = tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let cond = j.status.unwrap().conditions.unwrap();
    assert!(cond
        .iter()
        .any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("BackoffLimitExceeded")));
    let p = pods.get(&name).await.unwrap();
    let st = p.status.unwrap();
    assert_eq!(st.phase.as_deref(), Some("Failed"));
    let term = st.container_statuses.unwrap()[0]
        .state
        .clone()
        .unwrap()
        .terminated
        .unwrap();
    assert_eq!(term.exit_code, 3);
    // Background deletion takes the pod with it.
    jobs.delete("hello", &DeleteParams::background())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(pods
        .list(&ListParams::default().labels("job-name=hello"))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn deletion_and_deadline_stop_containers() {
    if !ready("deletion_and_deadline_stop_containers") {
        return;
    }
    let c = cluster();
    let client = client(&c);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    // SIGTERM is trapped: printed, then exit 0 within the grace period.
    jobs.create(
        &PostParams::default(),
        &job(
            "graceful",
            "trap 'echo got TERM; exit 0' TERM; echo up; while true; do sleep 0.1; done",
            5,
        ),
    )
    .await
    .unwrap();
    let pod = job_pod(&pods, "graceful").await;
    let name = pod.metadata.name.unwrap();
    let running = await_condition(pods.clone(), &name, |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Running")
    });
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut follow = pods
        .log_stream(
            &name,
            &LogParams {
                follow: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .lines();
    pods.delete(
        &name,
        &DeleteParams {
            grace_period_seconds: Some(5),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut lines = Vec::new();
    while let Some(l) = tokio::time::timeout(Duration::from_secs(10), follow.try_next())
        .await
        .unwrap()
        .unwrap()
    {
        lines.push(l);
    }
    assert_eq!(lines, ["up", "got TERM"]);
    let gone = await_condition(pods.clone(), &name, |p: Option<&Pod>| p.is_none());
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .unwrap()
        .unwrap();
    let j = jobs.get("graceful").await.unwrap();
    assert_eq!(j.status.unwrap().succeeded, Some(1));

    // activeDeadlineSeconds: SIGTERM ignored, SIGKILL after the 1 s grace.
    let mut dl = job(
        "deadline",
        "trap '' TERM; while true; do sleep 0.1; done",
        1,
    );
    dl.spec.as_mut().unwrap().active_deadline_seconds = Some(2);
    jobs.create(&PostParams::default(), &dl).await.unwrap();
    let failed = await_condition(jobs.clone(), "deadline", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| {
                c.iter()
                    .any(|c| c.type_ == "Failed" && c.reason.as_deref() == Some("DeadlineExceeded"))
            })
    });
    tokio::time::timeout(Duration::from_secs(10), failed)
        .await
        .unwrap()
        .unwrap();
    for _ in 0..50 {
        if c.running_containers().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        c.running_containers().is_empty(),
        "the deadline left a container running"
    );
}

/// The runner, run by the fake kubelet, scoped with its current `--cgroup` flag to a
/// workload pod's cgroup: counts exactly that pod's calls.
#[tokio::test]
async fn runner_counts_one_workload_pod() {
    if !ready("runner_counts_one_workload_pod") {
        return;
    }
    let bins = host::binaries().expect("binaries");
    let c = FakeCluster::start_with(
        &bins.trace_runner,
        env!("CARGO_BIN_EXE_e2e-workload").as_ref(),
        crate::RUNTIME,
    )
    .unwrap();
    let mut x = c
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let mut y = c
        .add_workload_pod(&PodSpec::new("default", "y", "node-a"))
        .unwrap();
    let client = client(&c);
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let script = "tracepoint:syscalls:sys_enter_getppid { @calls = count(); } tracepoint:syscalls:sys_enter_getpgid { exit(); }";
    let j: Job = serde_json::from_value(json!({
        "metadata": {"name": "runner"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "nodeName": "node-a", "hostPID": true,
            "containers": [{"name": "trace-runner", "image": "ghcr.io/kubectl-trace/trace-runner:test",
                "securityContext": {"privileged": true},
                "args": ["run", "--cgroup", x.pod_cgroup.display().to_string(), "/programs/program.bt"],
                "volumeMounts": [{"name": "programs", "mountPath": "/programs", "readOnly": true},
                                 {"name": "sys", "mountPath": "/sys"}]}],
            "volumes": [{"name": "programs", "configMap": {"name": "runner"}},
                        {"name": "sys", "hostPath": {"path": "/sys", "type": "Directory"}}]}}}
    }))
    .unwrap();
    jobs.create(&PostParams::default(), &j).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "runner"}, "data": {"program.bt": script}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let pod = job_pod(&pods, "runner").await.metadata.name.unwrap();
    // Wait for "Attaching" in the log, then let the attach finish.
    let mut attached = false;
    for _ in 0..100 {
        if c.pod_log("default", &pod)
            .is_some_and(|l| l.contains("Attaching"))
        {
            attached = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        attached,
        "runner never attached: {:?}",
        c.pod_log("default", &pod)
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    y.container("app").getppid(700);
    x.container("app").getppid(1000);
    y.container("app").getpgid();
    x.container("app").getpgid();
    let done = await_condition(jobs.clone(), "runner", |j: Option<&Job>| {
        j.and_then(|j| j.status.as_ref())
            .is_some_and(|s| s.succeeded == Some(1) || s.failed == Some(1))
    });
    tokio::time::timeout(Duration::from_secs(20), done)
        .await
        .unwrap()
        .unwrap();
    let log = c.pod_log("default", &pod).unwrap_or_default();
    assert!(log.contains("@calls: 1000\n"), "{log}");
    assert_eq!(
        jobs.get("runner").await.unwrap().status.unwrap().succeeded,
        Some(1),
        "{log}"
    );
}

/// `pods/exec` through kube-rs: (stdout, stderr, the final Status).
async fn exec(pods: &Api<Pod>, pod: &str, argv: &[&str]) -> (String, String, Option<Status>) {
    let mut p = pods
        .exec(pod, argv.to_vec(), &AttachParams::default())
        .await
        .unwrap_or_else(|e| panic!("exec {argv:?}: {e}"));
    let (mut out, mut err) = (p.stdout().unwrap(), p.stderr().unwrap());
    let status = p.take_status().unwrap();
    let (mut o, mut e) = (String::new(), String::new());
    let (r1, r2) = tokio::join!(out.read_to_string(&mut o), err.read_to_string(&mut e));
    r1.unwrap();
    r2.unwrap();
    let status = status.await;
    p.join().await.unwrap();
    (o, e, status)
}

/// A pod like the plugin's reader (busybox `sleep`, a claim at /output read-only), plus
/// the kubelet's log directories as hostPath volumes: `pods/exec` runs host binaries in
/// the pod's view of the files, over the v4.channel.k8s.io websocket.
/// Containers and their execs run as the pod's `securityContext` user (the plugin's
/// reader pod runs as nobody); without one, as root.
#[tokio::test]
async fn containers_and_execs_run_as_the_security_context_user() {
    if !ready("containers_and_execs_run_as_the_security_context_user") {
        return;
    }
    let c = cluster();
    let pods: Api<Pod> = Api::namespaced(client(&c), "default");
    for (name, sc, want) in [
        (
            "nobody",
            json!({"runAsNonRoot": true, "runAsUser": 65534, "runAsGroup": 65534, "fsGroup": 1234}),
            "65534 65534 65534 1234\n",
        ),
        ("root", json!({}), "0 0 0\n"),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                "securityContext": sc,
                "containers": [{"name": "c", "image": "busybox:1.36",
                    "command": ["sh", "-c", "id -u > /tmp/uid; exec sleep 600"]}]}
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        let running = await_condition(pods.clone(), name, |p: Option<&Pod>| {
            p.and_then(|p| p.status.as_ref())
                .and_then(|s| s.phase.as_deref())
                == Some("Running")
        });
        tokio::time::timeout(Duration::from_secs(10), running)
            .await
            .unwrap()
            .unwrap();
        // The container's own process, then an exec in it.
        let mut out = String::new();
        for _ in 0..50 {
            out = exec(&pods, name, &["sh", "-c", "cat /tmp/uid"]).await.0;
            if !out.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (ids, err, _) = exec(&pods, name, &["sh", "-c", "echo $(id -u) $(id -G)"]).await;
        assert_eq!(format!("{} {ids}", out.trim()), want, "pod {name}: {err}");
        pods.delete(name, &Default::default()).await.unwrap();
    }
}

#[tokio::test]
async fn exec_runs_in_the_pods_view_over_a_websocket() {
    if !ready("exec_runs_in_the_pods_view_over_a_websocket") {
        return;
    }
    let host_has_pod_logs = std::path::Path::new("/var/log/pods").exists();
    let c = cluster();
    let x = c
        .add_workload_pod(&PodSpec::new("default", "x", "node-a"))
        .unwrap();
    c.create(
        "",
        "persistentvolumeclaims",
        "default",
        json!({"metadata": {"name": "claim"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}),
    )
    .unwrap();
    std::fs::create_dir_all(c.claim_dir("default", "claim")).unwrap();
    std::fs::write(
        c.claim_dir("default", "claim").join("f.txt"),
        "on the claim\n",
    )
    .unwrap();
    let client = client(&c);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let reader: Pod = serde_json::from_value(json!({
        "metadata": {"name": "reader"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "reader", "image": "busybox:1.36", "command": ["sleep", "600"],
                "volumeMounts": [
                    {"name": "output", "mountPath": "/output", "readOnly": true},
                    {"name": "pod-logs", "mountPath": "/var/log/pods", "readOnly": true},
                    {"name": "container-logs", "mountPath": "/var/log/containers", "readOnly": true}]}],
            "volumes": [
                {"name": "output", "persistentVolumeClaim": {"claimName": "claim", "readOnly": true}},
                {"name": "pod-logs", "hostPath": {"path": "/var/log/pods", "type": "Directory"}},
                {"name": "container-logs", "hostPath": {"path": "/var/log/containers"}}]}
    }))
    .unwrap();
    pods.create(&PostParams::default(), &reader).await.unwrap();
    let running = await_condition(pods.clone(), "reader", |p: Option<&Pod>| {
        p.and_then(|p| p.status.as_ref())
            .and_then(|s| s.phase.as_deref())
            == Some("Running")
    });
    tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .unwrap()
        .unwrap();

    let (out, err, st) = exec(&pods, "reader", &["cat", "/output/f.txt"]).await;
    assert_eq!((out.as_str(), err.as_str()), ("on the claim\n", ""));
    assert_eq!(st.unwrap().status.as_deref(), Some("Success"));

    // The exact commands of the plugin's reader (GNU find, stat and tar of this host).
    let (out, _, st) = exec(
        &pods,
        "reader",
        &[
            "find", "/output", "-type", "f", "-exec", "stat", "-c", "%s %n", "{}", "+",
        ],
    )
    .await;
    assert_eq!(out, "13 /output/f.txt\n");
    assert_eq!(st.unwrap().status.as_deref(), Some("Success"));
    let (out, _, _) = exec(
        &pods,
        "reader",
        &["sh", "-c", "tar czf - -C /output f.txt | tar tzf -"],
    )
    .await;
    assert_eq!(out, "f.txt\n");

    // stdout and stderr apart; a non-zero exit as the API reports it.
    let (out, err, st) = exec(
        &pods,
        "reader",
        &["sh", "-c", "echo out; echo err >&2; exit 3"],
    )
    .await;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    let st = st.unwrap();
    assert_eq!(st.status.as_deref(), Some("Failure"));
    assert_eq!(st.reason.as_deref(), Some("NonZeroExitCode"));
    assert!(st.message.unwrap().ends_with("exit code 3"));
    // The claim is read-only; a missing program fails the exec.
    let (_, err, st) = exec(&pods, "reader", &["touch", "/output/new"]).await;
    assert!(err.contains("Read-only file system"), "{err}");
    assert_eq!(st.unwrap().status.as_deref(), Some("Failure"));
    let (_, _, st) = exec(&pods, "reader", &["no-such-program"]).await;
    let msg = st.unwrap().message.unwrap_or_default();
    assert!(msg.contains("executable file not found in $PATH"), "{msg}");

    // The kubelet's log directories, as the node's /var/log shows them to the pod.
    let (out, _, _) = exec(
        &pods,
        "reader",
        &["ls", "/var/log/pods", "/var/log/containers"],
    )
    .await;
    assert!(out.contains(&format!("default_x_{}\n", x.uid)), "{out}");
    assert!(
        out.contains(&format!("x_default_app-{}.log\n", x.containers[0].id)),
        "{out}"
    );
    let reader_uid = pods.get("reader").await.unwrap().metadata.uid.unwrap();
    assert!(
        out.contains(&format!("default_reader_{reader_uid}\n")),
        "{out}"
    );
    assert_eq!(
        std::path::Path::new("/var/log/pods").exists(),
        host_has_pod_logs,
        "the host's /var/log was changed"
    );
    // A deleted pod's directories go.
    c.delete_pod("default", "x").unwrap();
    let (out, _, _) = exec(
        &pods,
        "reader",
        &["ls", "/var/log/pods", "/var/log/containers"],
    )
    .await;
    assert!(
        !out.contains(&x.uid) && !out.contains(&x.containers[0].id),
        "{out}"
    );

    // Errors before the upgrade: a missing pod, a wrong container.
    match pods
        .exec("nope", vec!["true"], &AttachParams::default())
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 404),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("exec in a missing pod"),
    }
    match pods
        .exec(
            "reader",
            vec!["true"],
            &AttachParams::default().container("other"),
        )
        .await
    {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 400, "{s:?}"),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("exec in a missing container"),
    }
    pods.delete("reader", &DeleteParams::default())
        .await
        .unwrap();
}
