//! The runner image under a real container runtime: a private containerd imports the
//! image archive xtask writes (from the debug trace-runner), runs two workload pods'
//! containers in the kubelet's two cgroup layouts (cgroupfs and systemd-style names) and
//! one privileged, hostPID runner container per pod, each scoped to its pod's cgroup:
//! each counts exactly its own pod's calls. Then nothing of the instance is left behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::node::containerd::{cgroup_path, CgroupLayout, Containerd, Root, RunSpec};
use e2e::{host, util};

/// The runner image archive, as `cargo xtask image --bin target/debug/trace-runner --fast`.
fn runner_archive(bin: &Path, out: &Path) -> String {
    let elf = xtask::binary::elf_info(bin).unwrap();
    let libs = if elf.is_static() {
        Vec::new()
    } else {
        xtask::binary::shared_libs(bin).unwrap()
    };
    let reference = format!("{}:e2e", xtask::oci::DEFAULT_REPOSITORY);
    let spec = xtask::oci::ImageSpec {
        binary: bin.to_path_buf(),
        libs,
        arch: elf.arch.clone(),
        reference: reference.clone(),
        version: "e2e".into(),
        epoch: 0,
        gzip_level: 1,
    };
    xtask::oci::write_archive(&spec, out).unwrap();
    reference
}

/// A workload container run by containerd, driven through `ctr run`'s stdin.
struct Workload {
    id: String,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    ctr: Child,
}

impl Drop for Workload {
    fn drop(&mut self) {
        let _ = self.ctr.kill();
        let _ = self.ctr.wait();
    }
}

impl Workload {
    fn start(ctd: &Containerd, rootfs: &Path, bin: &Path, cgroup: String) -> Workload {
        // The host's /usr (for the binary's shared libraries) and its top-level links.
        let mut mounts = vec![(bin.to_path_buf(), "/e2e-workload".to_string(), true)];
        for d in ["/usr", "/lib", "/lib64"] {
            let p = Path::new(d);
            if let Ok(to) = std::fs::read_link(p) {
                let _ = std::os::unix::fs::symlink(to, rootfs.join(&d[1..]));
            } else if p.is_dir() {
                mounts.push((p.to_path_buf(), d.to_string(), true));
            }
        }
        Workload::run(
            ctd,
            rootfs,
            vec!["/e2e-workload".into(), "app".into()],
            mounts,
            cgroup,
        )
    }

    /// Run `argv` in a container of `rootfs` with `mounts` (host path, container path,
    /// read-only) in cgroup `cgroup`; ready once it says so.
    fn run(
        ctd: &Containerd,
        rootfs: &Path,
        argv: Vec<String>,
        mounts: Vec<(PathBuf, String, bool)>,
        cgroup: String,
    ) -> Workload {
        let id = util::new_container_id();
        let mut ctr = ctd
            .run(&RunSpec {
                id: id.clone(),
                root: Root::Dir(rootfs.to_path_buf()),
                argv,
                env: vec![],
                mounts,
                cgroup,
                privileged: false,
                host_pid_ns: None,
                workdir: None,
                user: None,
            })
            .unwrap();
        let stdin = ctr.stdin.take().unwrap();
        let mut stdout = BufReader::new(ctr.stdout.take().unwrap());
        let mut ready = String::new();
        stdout.read_line(&mut ready).unwrap();
        if !ready.starts_with("ready") {
            let mut err = String::new();
            let _ = ctr.stderr.take().unwrap().read_to_string(&mut err);
            panic!("workload: {ready:?}: {err}");
        }
        Workload {
            id,
            stdin,
            stdout,
            ctr,
        }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(line.starts_with("ok"), "{cmd}: {line:?}");
    }
}

/// A runner container and its output, collected as it comes.
struct Runner {
    ctr: Child,
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

fn start_runner(ctd: &Containerd, image: &str, programs: &Path, pod_cgroup: &Path) -> Runner {
    let cgroup = pod_cgroup.display().to_string();
    start_runner_with(ctd, image, programs, &["--cgroup", &cgroup])
}

/// A runner container running `/programs/program.bt` with `scope` (its target options).
fn start_runner_with(ctd: &Containerd, image: &str, programs: &Path, scope: &[&str]) -> Runner {
    let mut argv = vec![xtask::oci::BINARY_PATH.to_string(), "run".into()];
    argv.extend(scope.iter().map(|s| s.to_string()));
    argv.push("/programs/program.bt".into());
    let mut ctr = ctd
        .run(&RunSpec {
            id: util::new_container_id(),
            root: Root::Image(image.to_string()),
            argv,
            env: vec![],
            mounts: vec![
                (programs.to_path_buf(), "/programs".into(), true),
                ("/sys".into(), "/sys".into(), false),
            ],
            cgroup: cgroup_path(
                CgroupLayout::Cgroupfs,
                "BestEffort",
                &util::new_uid(),
                &util::new_container_id(),
            ),
            privileged: true,
            host_pid_ns: Some("/proc/self/ns/pid".into()),
            workdir: None,
            user: None,
        })
        .unwrap();
    drop(ctr.stdin.take());
    let out = collect(ctr.stdout.take().unwrap());
    let err = collect(ctr.stderr.take().unwrap());
    Runner { ctr, out, err }
}

#[test]
fn runner_image_counts_pods_exactly_under_containerd() {
    let test = "runner_image_counts_pods_exactly_under_containerd";
    if !host::require_privileges(test) {
        return;
    }
    for tool in ["containerd", "ctr", "runc"] {
        if host::require_tool(test, tool).is_none() {
            return;
        }
    }
    let bins = host::binaries().expect("binaries");
    let dir = std::env::temp_dir().join(format!("e2e-containerd-{}", util::name_suffix()));
    let v2 = host::cgroup2_mount().unwrap();
    let t0 = Instant::now();
    let ctd = Containerd::start(&dir.join("containerd")).unwrap();
    let started = t0.elapsed();
    let archive = dir.join("runner.tar");
    let image = runner_archive(&bins.trace_runner, &archive);
    let packed = t0.elapsed();
    let refs = ctd.import(&archive).unwrap();
    assert!(refs.contains(&image), "{image} not in {refs:?}");
    let imported = t0.elapsed();

    // Two workload pods, one per kubelet cgroup layout.
    let rootfs = dir.join("workload-rootfs");
    std::fs::create_dir_all(&rootfs).unwrap();
    let workload_bin = PathBuf::from(env!("CARGO_BIN_EXE_e2e-workload"));
    let (ux, uy) = (util::new_uid(), util::new_uid());
    let cx = util::new_container_id();
    let x_path = cgroup_path(CgroupLayout::Cgroupfs, "Burstable", &ux, &cx);
    let mut x = Workload::start(&ctd, &rootfs, &workload_bin, x_path.clone());
    let cy = util::new_container_id();
    let y_path = cgroup_path(CgroupLayout::Systemd, "Burstable", &uy, &cy);
    let mut y = Workload::start(&ctd, &rootfs, &workload_bin, y_path.clone());
    // runc placed them where the kubelet's drivers would.
    for (w, path) in [(&x, &x_path), (&y, &y_path)] {
        let pid = ctd.task_pid(&w.id, Duration::from_secs(5)).unwrap();
        let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        assert!(cg.lines().any(|l| l == format!("0::/{path}")), "{cg}");
    }
    assert!(y_path.ends_with(&format!(
        "-pod{}.slice/cri-containerd-{cy}.scope",
        uy.replace('-', "_")
    )));
    let pod_dir = |p: &str| v2.join(Path::new(p).parent().unwrap());

    let programs = dir.join("programs");
    std::fs::create_dir_all(&programs).unwrap();
    std::fs::write(
        programs.join("program.bt"),
        "tracepoint:syscalls:sys_enter_getppid { @calls = count(); } tracepoint:syscalls:sys_enter_getpgid { exit(); }",
    )
    .unwrap();
    let mut rx = start_runner(&ctd, &image, &programs, &pod_dir(&x_path));
    let mut ry = start_runner(&ctd, &image, &programs, &pod_dir(&y_path));
    for r in [&mut rx, &mut ry] {
        let start = Instant::now();
        // ctr hands the container's stderr to its stdout when stdin is not a terminal.
        while !r.err.lock().unwrap().contains("Attaching")
            && !r.out.lock().unwrap().contains("Attaching")
        {
            let exited = r.ctr.try_wait().unwrap();
            assert!(
                exited.is_none() && start.elapsed() < Duration::from_secs(60),
                "runner not attached ({exited:?}):\nstdout:\n{}\nstderr:\n{}",
                r.out.lock().unwrap(),
                r.err.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    std::thread::sleep(Duration::from_millis(1000));
    y.command("getppid 700");
    x.command("getppid 1000");
    y.command("getpgid");
    x.command("getpgid");
    for (r, want) in [(&mut rx, "@calls: 1000\n"), (&mut ry, "@calls: 700\n")] {
        let status = r.ctr.wait().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let (out, err) = (r.out.lock().unwrap().clone(), r.err.lock().unwrap().clone());
        assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(
            out.contains(want),
            "want {want:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
    eprintln!(
        "containerd ready in {:?}, image archive in {:?}, imported in {:?}, whole test {:?}",
        started,
        packed - started,
        imported - packed,
        t0.elapsed()
    );

    // Nothing left: containers, the daemon, the cgroups it made, its directory.
    let daemon_dir = dir.join("containerd");
    drop(ctd);
    drop((x, y));
    assert!(!daemon_dir.exists(), "{} left", daemon_dir.display());
    for p in [&x_path, &y_path] {
        assert!(!v2.join(p).exists(), "cgroup {p} left");
        assert!(!pod_dir(p).exists(), "pod cgroup of {p} left");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `FakeCluster` in containerd mode: a Job of the runner image runs as a real container
/// (privileged, hostPID, the ConfigMap and hostPath volumes bound), counts exactly one
/// workload pod's calls, its log reaches the API, its status names the real container,
/// placed in the systemd-style cgroup; a plain command runs too, its exit code reported.
#[test]
fn fake_cluster_runs_job_pods_under_containerd() {
    let test = "fake_cluster_runs_job_pods_under_containerd";
    if !host::require_privileges(test) {
        return;
    }
    for tool in ["containerd", "ctr", "runc"] {
        if host::require_tool(test, tool).is_none() {
            return;
        }
    }
    let bins = host::binaries().expect("binaries");
    let c = e2e::FakeCluster::start_with(
        &bins.trace_runner,
        env!("CARGO_BIN_EXE_e2e-workload").as_ref(),
        Some(CgroupLayout::Systemd),
    )
    .unwrap();
    let mut x = c
        .add_workload_pod(&e2e::cluster::PodSpec::new("default", "x", "node-a"))
        .unwrap();
    let mut y = c
        .add_workload_pod(&e2e::cluster::PodSpec::new("default", "y", "node-a"))
        .unwrap();
    let script = "tracepoint:syscalls:sys_enter_getppid { @calls = count(); } tracepoint:syscalls:sys_enter_getpgid { exit(); }";
    c.create(
        "",
        "configmaps",
        "default",
        serde_json::json!({"metadata": {"name": "runner"}, "data": {"program.bt": script}}),
    )
    .unwrap();
    c.create("batch", "jobs", "default", serde_json::json!({
        "metadata": {"name": "runner"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never", "nodeName": "node-a", "hostPID": true,
            "containers": [{"name": "trace-runner", "image": "ghcr.io/kubectl-trace/trace-runner:test",
                "args": ["run", "--cgroup", x.pod_cgroup.display().to_string(), "/programs/program.bt"],
                "securityContext": {"privileged": true},
                "volumeMounts": [{"name": "programs", "mountPath": "/programs", "readOnly": true},
                                 {"name": "sys", "mountPath": "/sys"}]}],
            "volumes": [{"name": "programs", "configMap": {"name": "runner"}},
                        {"name": "sys", "hostPath": {"path": "/sys", "type": "Directory"}}]}}}
    })).unwrap();
    let start = Instant::now();
    let pod = loop {
        let pods = c.list("", "pods", "default", "job-name=runner");
        if let Some(p) = pods.first().filter(|p| p["status"]["phase"] == "Running") {
            break p.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "runner pod not running: {pods:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let name = pod["metadata"]["name"].as_str().unwrap().to_string();
    let cid = pod["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap()
        .strip_prefix("containerd://")
        .unwrap()
        .to_string();
    let rt = c.containers.as_ref().unwrap();
    assert!(
        rt.ctd.containers().contains(&cid),
        "{cid} is not a containerd container"
    );
    let pid = rt.ctd.task_pid(&cid, Duration::from_secs(5)).unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().replace('-', "_");
    assert!(
        cg.contains(&format!("-pod{uid}.slice/cri-containerd-{cid}.scope")),
        "{cg}"
    );
    while !c
        .pod_log("default", &name)
        .is_some_and(|l| l.contains("Attaching"))
    {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "never attached: {:?}",
            c.pod_log("default", &name)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(1000));
    y.container("app").getppid(700);
    x.container("app").getppid(1000);
    y.container("app").getpgid();
    x.container("app").getpgid();
    let job = loop {
        let j = c.get("batch", "jobs", "default", "runner").unwrap();
        if j["status"]["succeeded"] == 1 || j["status"]["failed"] == 1 {
            break j;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "runner never ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = c.pod_log("default", &name).unwrap_or_default();
    assert_eq!(job["status"]["succeeded"], 1, "{log}");
    assert!(log.contains("@calls: 1000\n"), "{log}");

    // A plain command on the host image: its output and exit code.
    c.create("batch", "jobs", "default", serde_json::json!({
        "metadata": {"name": "plain"},
        "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "nodeName": "node-b",
            "containers": [{"name": "c", "image": "busybox", "command": ["sh", "-c", "echo from-containerd; exit 4"],
                            "env": [{"name": "X", "value": "1"}]}]}}}
    })).unwrap();
    let pod = loop {
        let pods = c.list("", "pods", "default", "job-name=plain");
        if let Some(p) = pods.first().filter(|p| p["status"]["phase"] == "Failed") {
            break p.clone();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "plain pod did not end: {pods:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let term = &pod["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 4, "{pod}");
    let name = pod["metadata"]["name"].as_str().unwrap();
    assert_eq!(
        c.pod_log("default", name).unwrap_or_default(),
        "from-containerd\n"
    );
    drop(c);
}

/// Uprobes of a pod trace name the target container's files: a binary that exists only
/// in the container's rootfs (`/usr/bin/e2e-app`), the container's main process's
/// executable (`/proc/$container_pid/exe`), and libc, by its path and by its name, where
/// the runner's own image has another copy of it (before: the runner's copy was probed,
/// and the workload's calls were not seen). A runner container scoped with `--pod-uid` counts
/// exactly its pod's calls; a second pod running the same file is not counted.
#[test]
fn pod_uprobes_name_the_containers_files_under_containerd() {
    let test = "pod_uprobes_name_the_containers_files_under_containerd";
    if !host::require_privileges(test) {
        return;
    }
    for tool in ["containerd", "ctr", "runc"] {
        if host::require_tool(test, tool).is_none() {
            return;
        }
    }
    let bins = host::binaries().expect("binaries");
    let libc = xtask::binary::shared_libs(&bins.trace_runner)
        .expect("ldd of trace-runner")
        .into_iter()
        .find(|l| {
            l.image_path
                .rsplit('/')
                .next()
                .unwrap_or("")
                .starts_with("libc.so")
        })
        .expect("a dynamically linked trace-runner (its image carries its own libc)")
        .image_path;
    let dir = std::env::temp_dir().join(format!("e2e-ctd-uprobe-{}", util::name_suffix()));
    let ctd = Containerd::start(&dir.join("containerd")).unwrap();
    let archive = dir.join("runner.tar");
    let image = runner_archive(&bins.trace_runner, &archive);
    ctd.import(&archive).unwrap();
    std::fs::remove_file(&archive).unwrap();

    // One rootfs for both pods: the workload binary at a path this node does not have,
    // the node's libraries under it.
    let app = "/usr/bin/e2e-app";
    assert!(!Path::new(app).exists(), "{app} exists on this node");
    let rootfs = dir.join("app-rootfs");
    std::fs::create_dir_all(rootfs.join("usr/bin")).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_e2e-workload"), rootfs.join(&app[1..])).unwrap();
    let mut mounts = Vec::new();
    for d in ["/usr/lib", "/usr/lib64", "/lib", "/lib64"] {
        let p = Path::new(d);
        if let Ok(to) = std::fs::read_link(p) {
            std::os::unix::fs::symlink(to, rootfs.join(&d[1..])).unwrap();
        } else if p.is_dir() {
            mounts.push((p.to_path_buf(), d.to_string(), true));
        }
    }
    let argv = vec![app.to_string(), "app".to_string()];
    let (ux, uy) = (util::new_uid(), util::new_uid());
    let x_path = cgroup_path(
        CgroupLayout::Cgroupfs,
        "Burstable",
        &ux,
        &util::new_container_id(),
    );
    let y_path = cgroup_path(
        CgroupLayout::Cgroupfs,
        "Burstable",
        &uy,
        &util::new_container_id(),
    );
    let mut x = Workload::run(&ctd, &rootfs, argv.clone(), mounts.clone(), x_path);
    let mut y = Workload::run(&ctd, &rootfs, argv, mounts, y_path);

    let programs = dir.join("programs");
    std::fs::create_dir_all(&programs).unwrap();
    std::fs::write(
        programs.join("program.bt"),
        format!(
            "uprobe:{app}:e2e_workload_mark {{ @app = count(); }}\n\
             uprobe:/proc/$container_pid/exe:e2e_workload_mark {{ @exe = count(); }}\n\
             uprobe:{libc}:syscall {{ @libc = count(); }}\n\
             uprobe:libc:syscall {{ @libname = count(); }}\n\
             tracepoint:syscalls:sys_enter_getpgid {{ exit(); }}\n"
        ),
    )
    .unwrap();
    let mut r = start_runner_with(&ctd, &image, &programs, &["--pod-uid", &ux]);
    let start = Instant::now();
    while !r.err.lock().unwrap().contains("Attaching")
        && !r.out.lock().unwrap().contains("Attaching")
    {
        let exited = r.ctr.try_wait().unwrap();
        assert!(
            exited.is_none() && start.elapsed() < Duration::from_secs(60),
            "runner not attached ({exited:?}):\nstdout:\n{}\nstderr:\n{}",
            r.out.lock().unwrap(),
            r.err.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    y.command("mark 70");
    y.command("getppid 9");
    x.command("mark 300");
    // Each getppid is one call of libc's syscall(); so is the getpgid that ends the run.
    x.command("getppid 40");
    x.command("getpgid");
    let status = r.ctr.wait().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let (out, err) = (r.out.lock().unwrap().clone(), r.err.lock().unwrap().clone());
    drop(ctd);
    drop((x, y));
    let _ = std::fs::remove_dir_all(&dir);
    assert!(status.success(), "{status}\nstdout:\n{out}\nstderr:\n{err}");
    for want in [
        "@app: 300\n",
        "@exe: 300\n",
        "@libc: 41\n",
        "@libname: 41\n",
    ] {
        assert!(
            out.contains(want),
            "want {want:?}\nstdout:\n{out}\nstderr:\n{err}"
        );
    }
}
