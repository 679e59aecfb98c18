//! Workloads standing in for pods: real processes (the `e2e-workload` binary) placed in
//! cgroup v2 directories laid out as the kubelet's systemd driver lays them out,
//! `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid with _>.slice/
//! cri-containerd-<id>.scope`, one process per container. Each does a known number of
//! system calls when told to through its stdin, so that a trace can be attached first.

use std::ffi::CString;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use crate::host::cgroup2_mount;

/// One container's process.
pub struct WorkloadContainer {
    pub name: String,
    /// The 64-hex container id (without the `containerd://` prefix).
    pub id: String,
    pub cgroup: PathBuf,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl WorkloadContainer {
    /// Send a command, wait for its `ok` line.
    pub fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("workload stdin");
        self.stdin.flush().expect("workload stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("workload stdout");
        assert!(
            line.starts_with("ok"),
            "workload answered {line:?} to {cmd:?}"
        );
        line.trim_end().to_string()
    }

    /// Do `n` getppid(2) calls.
    pub fn getppid(&mut self, n: u64) {
        self.command(&format!("getppid {n}"));
    }

    /// Do one getpgid(2) call (scripts use it as an end marker).
    pub fn getpgid(&mut self) {
        self.command("getpgid");
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A pod whose containers are processes of this host.
pub struct WorkloadPod {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub node: String,
    pub containers: Vec<WorkloadContainer>,
    pub pod_cgroup: PathBuf,
}

impl WorkloadPod {
    pub fn container(&mut self, name: &str) -> &mut WorkloadContainer {
        self.containers
            .iter_mut()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no container {name}"))
    }
}

impl Drop for WorkloadPod {
    fn drop(&mut self) {
        for c in &mut self.containers {
            let _ = c.child.kill();
            let _ = c.child.wait();
            let _ = std::fs::remove_dir(&c.cgroup);
        }
        let _ = std::fs::remove_dir(&self.pod_cgroup);
    }
}

/// The pod-level cgroup directory of a burstable pod (systemd driver).
pub fn pod_cgroup_dir(root: &Path, uid: &str) -> PathBuf {
    root.join("kubepods.slice")
        .join("kubepods-burstable.slice")
        .join(format!(
            "kubepods-burstable-pod{}.slice",
            uid.replace('-', "_")
        ))
}

/// Start one container process in `<pod cgroup>/cri-containerd-<id>.scope`.
pub fn start_container(
    bin: &Path,
    pod_cgroup: &Path,
    name: &str,
    id: &str,
) -> std::io::Result<WorkloadContainer> {
    let cgroup = pod_cgroup.join(format!("cri-containerd-{id}.scope"));
    std::fs::create_dir_all(&cgroup)?;
    let procs = CString::new(cgroup.join("cgroup.procs").as_os_str().as_bytes()).expect("path");
    let mut cmd = Command::new(bin);
    cmd.arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // SAFETY: open/write/close only, on a path prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            let r = libc::write(fd, b"0".as_ptr().cast(), 1);
            libc::close(fd);
            if r != 1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    let stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut ready = String::new();
    stdout.read_line(&mut ready)?;
    if !ready.starts_with("ready") {
        return Err(std::io::Error::other(format!(
            "workload did not start: {ready:?}"
        )));
    }
    Ok(WorkloadContainer {
        name: name.to_string(),
        id: id.to_string(),
        cgroup,
        child,
        stdin,
        stdout,
    })
}

/// The cgroup v2 root, or an error naming what is missing.
pub fn cgroup_root() -> std::io::Result<PathBuf> {
    cgroup2_mount().ok_or_else(|| std::io::Error::other("no cgroup v2 hierarchy is mounted"))
}
