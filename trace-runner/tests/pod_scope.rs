//! Pod-scoped traces through the binary: a kubelet-like systemd cgroup layout with two
//! containers in one pod and one in another; `--pod-uid` counts exactly the pod's
//! events, `--container-id` exactly that container's, and `$container_pid` works.

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use common::*;

const COUNT: &str =
    "BEGIN { printf(\"ready\\n\"); } tracepoint:syscalls:sys_enter_getppid { @ = count(); }";

/// Layouts made so far by this process: each test's gets its own names, since tests run
/// in parallel and one's cleanup must not remove another's directories.
static LAYOUTS: AtomicU64 = AtomicU64::new(0);

struct Layout {
    dirs: Vec<PathBuf>,
    uid: String,
    other_uid: String,
    /// Makes this layout's pod UIDs and container IDs unique.
    tag: u64,
}

impl Layout {
    /// `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<id>.scope`
    fn new() -> Layout {
        let n = u64::from(std::process::id()) * 1000 + LAYOUTS.fetch_add(1, Ordering::SeqCst);
        let uid = format!("1b4e28ba-2fa1-11d2-883f-{n:012}");
        let other_uid = format!("6fa459ea-ee8a-3ca4-894e-{n:012}");
        let mut l = Layout {
            dirs: Vec::new(),
            uid,
            other_uid,
            tag: n,
        };
        for (uid, ids) in [
            (l.uid.clone(), vec!["aaaa1111", "bbbb2222"]),
            (l.other_uid.clone(), vec!["cccc3333"]),
        ] {
            for id in ids {
                l.container_dir(&uid, id);
            }
        }
        l
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        cgroup2_root()
            .join("kubepods.slice/kubepods-burstable.slice")
            .join(format!(
                "kubepods-burstable-pod{}.slice",
                uid.replace('-', "_")
            ))
    }

    fn container_dir(&mut self, uid: &str, id: &str) -> PathBuf {
        let dir = self
            .pod_dir(uid)
            .join(format!("cri-containerd-{id}{}.scope", self.tag));
        if !dir.exists() {
            std::fs::create_dir_all(&dir).unwrap();
            self.dirs.push(dir.clone());
        }
        dir
    }

    fn container_id(&self, id: &str) -> String {
        format!("containerd://{id}{}", self.tag)
    }

    /// Run `n` getppid calls inside a container's cgroup.
    fn workload(&self, uid: &str, id: &str, n: usize) {
        let dir = self
            .pod_dir(uid)
            .join(format!("cri-containerd-{id}{}.scope", self.tag));
        let cmd = format!(
            "echo $$ > {}/cgroup.procs && exec /usr/bin/python3 -c 'import os\nfor _ in range({n}): os.getppid()'",
            dir.display()
        );
        run_ok(Command::new("sh").arg("-c").arg(cmd));
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        for uid in [&self.uid, &self.other_uid] {
            let _ = std::fs::remove_dir(self.pod_dir(uid));
        }
    }
}

#[test]
fn pod_and_container_scopes_count_exactly_their_events() {
    if !require_bpf() {
        return;
    }
    let l = Layout::new();
    let pod = Trace::start(&["--pod-uid", &l.uid, "-e", COUNT]);
    let a = l.container_id("aaaa1111");
    let container = Trace::start(&["--pod-uid", &l.uid, "--container-id", &a, "-e", COUNT]);
    l.workload(&l.uid, "aaaa1111", 300);
    l.workload(&l.uid, "bbbb2222", 40);
    l.workload(&l.other_uid, "cccc3333", 5000);
    let (pod_out, _) = pod.stop(libc::SIGINT);
    let (container_out, _) = container.stop(libc::SIGINT);
    assert!(
        pod_out.contains("@: 340\n"),
        "pod scope: both containers, not the other pod:\n{pod_out}"
    );
    assert!(
        container_out.contains("@: 300\n"),
        "container scope:\n{container_out}"
    );
}

#[test]
fn pod_not_on_node_is_a_clear_error() {
    if !require_bpf() {
        return;
    }
    let out = Command::new(runner())
        .args([
            "run",
            "--pod-uid",
            "00000000-0000-0000-0000-000000000000",
            "-e",
            "BEGIN { exit(); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not on this node"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn container_pid_is_the_containers_main_process() {
    if !require_bpf() {
        return;
    }
    let mut l = Layout::new();
    let dir = l.container_dir(&l.uid.clone(), "dddd4444");
    let mut sleeper = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs && exec sleep 30",
            dir.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let id = l.container_id("dddd4444");
    let out = Command::new(runner())
        .args([
            "run",
            "--pod-uid",
            &l.uid,
            "--container-id",
            &id,
            "-e",
            "BEGIN { printf(\"%d\\n\", $container_pid); exit(); }",
        ])
        .output()
        .unwrap();
    sleeper.kill().unwrap();
    sleeper.wait().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("\n{}\n", sleeper.id())),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A pod's container with its own mount namespace, in which a tmpfs over `dir` holds
/// its own copy of bash at `dir/app`; it waits for a line on stdin, then runs `n` `echo`
/// builtins in that bash.
struct MountNsContainer {
    child: std::process::Child,
}

impl MountNsContainer {
    fn start(cgroup: &std::path::Path, dir: &std::path::Path, n: usize) -> MountNsContainer {
        use std::io::BufRead;
        let (cg, dir) = (cgroup.display(), dir.display());
        let script = format!(
            "echo $$ > {cg}/cgroup.procs && mount -t tmpfs none {dir} && cp /bin/bash {dir}/app && echo ready && read go && exec {dir}/app -c 'for i in $(seq 1 {n}); do echo x >/dev/null; done'"
        );
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("unshare (util-linux)");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line, "ready\n", "the container did not start");
        MountNsContainer { child }
    }

    fn go(&mut self) {
        use std::io::Write;
        let mut stdin = self.child.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        drop(stdin);
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for MountNsContainer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed when the test ends, also when it fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn uprobe_paths_of_a_pod_target_are_its_containers_files() {
    if !require_bpf() {
        return;
    }
    let mut l = Layout::new();
    let cg = l.container_dir(&l.uid.clone(), "aaaa1111");
    // This node has its own file at the same path (another inode): before, the probe
    // went there, and the container's 50 calls were not seen.
    let dir = std::env::temp_dir().join(format!("trace-runner-podfs-{}", l.tag));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::copy("/bin/bash", dir.join("app")).unwrap();
    let mut container = MountNsContainer::start(&cg, &dir, 50);

    // A path that is neither the container's nor this node's: one line, exit 2.
    let missing = dir.join("missing");
    let out = Command::new(runner())
        .args(["run", "--pod-uid", &l.uid, "-e"])
        .arg(format!(
            "uprobe:{}:echo_builtin {{ @ = count(); }}",
            missing.display()
        ))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.lines().next().is_some_and(|l| l.contains(&format!(
            "error: uprobe target '{}' does not exist in the target container",
            missing.display()
        ))),
        "{err}"
    );

    let script = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} uprobe:{}/app:echo_builtin {{ @ = count(); }}",
        dir.display()
    );
    let trace = Trace::start(&["--pod-uid", &l.uid, "-e", &script]);
    container.go();
    let (out, _) = trace.stop(libc::SIGINT);
    drop(container);
    assert!(
        out.contains("@: 50\n"),
        "the container's own binary, exactly:\n{out}"
    );
}

#[test]
fn wildcard_file_names_of_a_pod_target_expand_in_its_container() {
    if !require_bpf() {
        return;
    }
    let mut l = Layout::new();
    let cg = l.container_dir(&l.uid.clone(), "aaaa1111");
    // The node has `dir/app` and `dir/apnode`, the container (a tmpfs over `dir`) only its
    // own `dir/app`: the pattern matches the container's files, so one probe, on its app.
    let dir = std::env::temp_dir().join(format!("trace-runner-podglob-{}", l.tag));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = RemoveOnDrop(dir.clone());
    std::fs::copy("/bin/bash", dir.join("app")).unwrap();
    std::fs::copy("/bin/bash", dir.join("apnode")).unwrap();
    let mut container = MountNsContainer::start(&cg, &dir, 40);
    let script = format!(
        "BEGIN {{ printf(\"ready\\n\"); }} uprobe:{}/ap*:echo_builtin {{ @[probe] = count(); }}",
        dir.display()
    );
    let trace = Trace::start(&["--pod-uid", &l.uid, "-e", &script]);
    let head = trace.head.clone();
    container.go();
    let (out, _) = trace.stop(libc::SIGINT);
    drop(container);
    assert!(head.contains("Attaching 2 probes..."), "{head}");
    assert!(
        out.contains(&format!(
            "@[uprobe:{}/app:echo_builtin]: 40\n",
            dir.display()
        )),
        "the container's own binary, exactly:\n{out}"
    );
}
