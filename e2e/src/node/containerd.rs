//! A private containerd for the e2e suite, driven through `ctr`: its own root, state and
//! socket under a directory of the test's (`containerd --config FILE`, no CRI plugin),
//! images imported from archives (`ctr images import`: the xtask runner image, a busybox
//! image built here), and containers run as a kubelet would run a pod's: privileged
//! (runc grants what this machine's bounding set has), in the host's pid namespace for
//! `hostPID`, with bind mounts, env and args, in the kubelet's cgroup layouts
//! ([`cgroup_path`]: cgroupfs `kubepods/<qos>/pod<UID>/<id>` or the systemd driver's
//! `kubepods.slice/.../cri-containerd-<id>.scope`). Dropping the instance removes its
//! containers, stops containerd, removes the cgroups it made and its directory.
//! [`run_args`] and [`cgroup_path`] are pure, so they are unit-tested without root.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::api::store::Creds;

/// The containerd namespace the kubelet's CRI uses.
pub const NAMESPACE: &str = "k8s.io";

/// The kubelet's cgroup drivers, as they name a container's cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupLayout {
    /// `kubepods/<qos>/pod<UID>/<id>` (`kubepods/pod<UID>/<id>` for Guaranteed).
    Cgroupfs,
    /// `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<UID_>.slice/cri-containerd-<id>.scope`.
    Systemd,
}

/// The cgroup path (relative to a hierarchy's root) of container `id` of pod `uid` with
/// QoS class `qos` (`Guaranteed`, `Burstable`, `BestEffort`).
pub fn cgroup_path(layout: CgroupLayout, qos: &str, uid: &str, id: &str) -> String {
    let qos = qos.to_ascii_lowercase();
    let guaranteed = qos == "guaranteed";
    match layout {
        CgroupLayout::Cgroupfs if guaranteed => format!("kubepods/pod{uid}/{id}"),
        CgroupLayout::Cgroupfs => format!("kubepods/{qos}/pod{uid}/{id}"),
        CgroupLayout::Systemd => {
            let uid = uid.replace('-', "_");
            if guaranteed {
                format!("kubepods.slice/kubepods-pod{uid}.slice/cri-containerd-{id}.scope")
            } else {
                format!(
                    "kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice/cri-containerd-{id}.scope"
                )
            }
        }
    }
}

/// What a container runs from.
#[derive(Debug, Clone, PartialEq)]
pub enum Root {
    /// An imported image, by reference.
    Image(String),
    /// A directory used as the root file system as it is.
    Dir(PathBuf),
}

/// One container to run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The containerd container id (the `containerd://` id in pod status).
    pub id: String,
    pub root: Root,
    /// The command and its arguments (empty: the image's entrypoint).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Bind mounts: host path, container path, read-only.
    pub mounts: Vec<(PathBuf, String, bool)>,
    /// The cgroup path, relative to the hierarchies' roots ([`cgroup_path`]).
    pub cgroup: String,
    pub privileged: bool,
    /// `hostPID`: join this pid namespace (a `/proc/PID/ns/pid` path).
    pub host_pid_ns: Option<PathBuf>,
    pub workdir: Option<String>,
    /// The container's user (`securityContext.runAsUser`...; `None`: the image's, root).
    /// ctr 1.6's `run` has no `--user`, so the command runs through the host's
    /// `setpriv` (util-linux), which sets the groups, gid and uid and then execs it: the
    /// root must have the host's `/usr` ([`ContainerRuntime::host_image_mounts`]).
    pub user: Option<Creds>,
}

/// Where `setpriv` is in a container that has the host's `/usr`.
pub const SETPRIV: &str = "/usr/bin/setpriv";

/// `argv` run as `user`: through [`SETPRIV`], which execs it (the container's main
/// process stays the command's pid).
pub fn as_user(user: &Creds, argv: &[String]) -> Vec<String> {
    let groups = if user.groups.is_empty() {
        "--clear-groups".to_string()
    } else {
        let g: Vec<String> = user.groups.iter().map(u32::to_string).collect();
        format!("--groups={}", g.join(","))
    };
    [
        SETPRIV.to_string(),
        format!("--reuid={}", user.uid),
        format!("--regid={}", user.gid),
        groups,
        "--".to_string(),
    ]
    .into_iter()
    .chain(argv.iter().cloned())
    .collect()
}

/// The `ctr run` arguments (after `ctr -a SOCK -n NS`) for `spec`.
pub fn run_args(spec: &RunSpec) -> Vec<String> {
    let mut a = vec!["run".to_string()];
    if matches!(spec.root, Root::Dir(_)) {
        a.push("--rootfs".into());
    }
    if spec.privileged {
        a.push("--privileged".into());
    }
    if let Some(ns) = &spec.host_pid_ns {
        a.push("--with-ns".into());
        a.push(format!("pid:{}", ns.display()));
    }
    a.push("--cgroup".into());
    a.push(spec.cgroup.clone());
    if let Some(w) = &spec.workdir {
        a.push("--cwd".into());
        a.push(w.clone());
    }
    for (k, v) in &spec.env {
        a.push("--env".into());
        a.push(format!("{k}={v}"));
    }
    for (src, dst, ro) in &spec.mounts {
        a.push("--mount".into());
        a.push(format!(
            "type=bind,src={},dst={dst},options=rbind:{}",
            src.display(),
            if *ro { "ro" } else { "rw" }
        ));
    }
    a.push(match &spec.root {
        Root::Image(r) => r.clone(),
        Root::Dir(d) => d.display().to_string(),
    });
    a.push(spec.id.clone());
    match &spec.user {
        Some(u) => a.extend(as_user(u, &spec.argv)),
        None => a.extend(spec.argv.iter().cloned()),
    }
    a
}

/// A running private containerd.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    daemon: Child,
    /// Cgroup paths of the containers run, to remove after them.
    cgroups: std::sync::Mutex<Vec<String>>,
}

/// Whether `containerd` and `ctr` are installed.
pub fn installed() -> bool {
    ["containerd", "ctr", "runc"].iter().all(|t| on_path(t))
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
}

impl Containerd {
    /// Start one with its root, state and socket under `dir` (made); ready when `ctr
    /// version` answers.
    pub fn start(dir: &Path) -> Result<Containerd, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let socket = dir.join("containerd.sock");
        let config = dir.join("config.toml");
        let text = format!(
            "version = 2\nroot = {root:?}\nstate = {state:?}\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = {sock:?}\n[ttrpc]\n  address = {ttrpc:?}\n[debug]\n  address = \"\"\n",
            root = dir.join("root").display().to_string(),
            state = dir.join("state").display().to_string(),
            sock = socket.display().to_string(),
            ttrpc = format!("{}.ttrpc", socket.display()),
        );
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.join("containerd.log")).map_err(|e| e.to_string())?;
        let daemon = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start containerd: {e}"))?;
        let c = Containerd {
            dir: dir.to_path_buf(),
            socket,
            daemon,
            cgroups: Default::default(),
        };
        let start = Instant::now();
        loop {
            let ok = c
                .ctr()
                .arg("version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return Ok(c);
            }
            if start.elapsed() > Duration::from_secs(10) {
                let log = std::fs::read_to_string(dir.join("containerd.log")).unwrap_or_default();
                return Err(format!("containerd did not answer within 10 s:\n{log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `ctr` talking to this instance, in the kubelet's namespace.
    pub fn ctr(&self) -> Command {
        let mut c = Command::new("ctr");
        c.arg("-a").arg(&self.socket).arg("-n").arg(NAMESPACE);
        c
    }

    fn ctr_ok(&self, args: &[&str]) -> Result<String, String> {
        let o = self
            .ctr()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("ctr: {e}"))?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).into_owned())
        } else {
            Err(format!(
                "ctr {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&o.stderr).trim()
            ))
        }
    }

    /// Import an image archive (OCI or docker-archive); returns the image references.
    pub fn import(&self, archive: &Path) -> Result<Vec<String>, String> {
        let path = archive.display().to_string();
        self.ctr_ok(&["images", "import", &path])?;
        let refs = self.ctr_ok(&["images", "ls", "-q"])?;
        Ok(refs.lines().map(str::to_string).collect())
    }

    /// Start a container; the child is `ctr run`, whose stdin, stdout and stderr are the
    /// container's (piped) and whose exit code is the container's.
    pub fn run(&self, spec: &RunSpec) -> std::io::Result<Child> {
        self.cgroups.lock().unwrap().push(spec.cgroup.clone());
        self.ctr()
            .args(run_args(spec))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }

    /// The host pid of a container's main process, once its task runs.
    pub fn task_pid(&self, id: &str, timeout: Duration) -> Option<u32> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(out) = self.ctr_ok(&["tasks", "ls"]) {
                let pid = out.lines().skip(1).find_map(|l| {
                    let f: Vec<&str> = l.split_whitespace().collect();
                    (f.first() == Some(&id) && f.get(2) == Some(&"RUNNING"))
                        .then(|| f.get(1)?.parse().ok())
                        .flatten()
                });
                if pid.is_some() {
                    return pid;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Signal a container's main process (`SIGTERM`, `SIGKILL`).
    pub fn kill(&self, id: &str, signal: &str) -> Result<(), String> {
        self.ctr_ok(&["tasks", "kill", "-s", signal, id])
            .map(|_| ())
    }

    /// Remove a container (its task first, killed if it still runs).
    pub fn remove(&self, id: &str) {
        let _ = self.ctr_ok(&["tasks", "rm", "-f", id]);
        let _ = self.ctr_ok(&["containers", "rm", id]);
    }

    /// Ids of this instance's containers.
    pub fn containers(&self) -> Vec<String> {
        self.ctr_ok(&["containers", "ls", "-q"])
            .map(|o| o.lines().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

/// Remove the cgroup directory of container `path` (runc removes it; this is a safety
/// net) and its pod's, when empty, in every hierarchy mounted here. The shared
/// `kubepods`/QoS levels stay: other pods may be starting in them.
fn remove_cgroup_dirs(path: &str) {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    for line in mounts.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if !matches!(right.split_whitespace().next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        let Some(mp) = left.split_whitespace().nth(4) else {
            continue;
        };
        let leaf = Path::new(mp).join(path);
        let _ = std::fs::remove_dir(&leaf);
        if let Some(pod) = leaf.parent().filter(|p| *p != Path::new(mp)) {
            let _ = std::fs::remove_dir(pod);
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        for id in self.containers() {
            self.remove(&id);
        }
        let pid = self.daemon.id() as i32;
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        for c in self.cgroups.lock().unwrap().iter() {
            remove_cgroup_dirs(c);
        }
        // Nothing of containerd stays mounted once its tasks are gone; check anyway.
        let d = self.dir.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut busy: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter(|m| m.starts_with(&d))
            .collect();
        busy.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in busy {
            if let Ok(c) = std::ffi::CString::new(m) {
                // SAFETY: umount2(2) with a valid C string.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        let _ = std::io::stderr().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_cgroup_layouts() {
        let uid = "1234-abcd";
        assert_eq!(
            cgroup_path(CgroupLayout::Cgroupfs, "Burstable", uid, "c0"),
            "kubepods/burstable/pod1234-abcd/c0"
        );
        assert_eq!(
            cgroup_path(CgroupLayout::Cgroupfs, "Guaranteed", uid, "c0"),
            "kubepods/pod1234-abcd/c0"
        );
        assert_eq!(
            cgroup_path(CgroupLayout::Systemd, "BestEffort", uid, "c0"),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1234_abcd.slice/cri-containerd-c0.scope"
        );
    }

    #[test]
    fn ctr_run_arguments() {
        let spec = RunSpec {
            id: "c0".into(),
            root: Root::Dir("/r".into()),
            argv: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec![("A".into(), "b c".into())],
            mounts: vec![("/host/x".into(), "/x".into(), true)],
            cgroup: "kubepods/burstable/podu/c0".into(),
            privileged: true,
            host_pid_ns: Some("/proc/7/ns/pid".into()),
            workdir: None,
            user: None,
        };
        assert_eq!(
            run_args(&spec),
            [
                "run",
                "--rootfs",
                "--privileged",
                "--with-ns",
                "pid:/proc/7/ns/pid",
                "--cgroup",
                "kubepods/burstable/podu/c0",
                "--env",
                "A=b c",
                "--mount",
                "type=bind,src=/host/x,dst=/x,options=rbind:ro",
                "/r",
                "c0",
                "sh",
                "-c",
                "echo hi"
            ]
        );
        let image = RunSpec {
            root: Root::Image("docker.io/library/x:1".into()),
            host_pid_ns: None,
            privileged: false,
            mounts: vec![],
            env: vec![],
            argv: vec![],
            ..spec
        };
        assert_eq!(
            run_args(&image),
            [
                "run",
                "--cgroup",
                "kubepods/burstable/podu/c0",
                "docker.io/library/x:1",
                "c0"
            ]
        );
    }

    #[test]
    fn ctr_run_as_the_security_context_user() {
        let spec = RunSpec {
            id: "c0".into(),
            root: Root::Dir("/r".into()),
            argv: vec!["/bin/sh".into(), "-c".into(), "id".into()],
            env: vec![],
            mounts: vec![],
            cgroup: "kubepods/burstable/podu/c0".into(),
            privileged: false,
            host_pid_ns: None,
            workdir: None,
            user: Some(Creds {
                uid: 65534,
                gid: 65533,
                groups: vec![1234, 5],
            }),
        };
        let args = run_args(&spec);
        let at = args.iter().position(|a| a == "c0").unwrap();
        assert_eq!(
            args[at + 1..],
            [
                "/usr/bin/setpriv",
                "--reuid=65534",
                "--regid=65533",
                "--groups=1234,5",
                "--",
                "/bin/sh",
                "-c",
                "id"
            ]
        );
        let no_groups = Creds {
            uid: 1,
            gid: 0,
            groups: vec![],
        };
        assert_eq!(
            as_user(&no_groups, &["x".into()]),
            [
                "/usr/bin/setpriv",
                "--reuid=1",
                "--regid=0",
                "--clear-groups",
                "--",
                "x"
            ]
        );
    }
}

/// The fake kubelet's container runtime in containerd mode: the instance, the runner
/// image imported from the xtask archive, the root for other images (this host's `/usr`
/// and `/etc`, read-only, as the fake knows no other image contents) and the cgroup driver.
#[derive(Debug)]
pub struct ContainerRuntime {
    pub ctd: Containerd,
    pub runner_image: String,
    pub rootfs: PathBuf,
    pub layout: CgroupLayout,
}

/// The runner image archive for `runner`, built once per runner binary and kept beside it
/// (`trace-runner.e2e-image.tar`) while it is newer than the binary: every fake cluster of
/// a test run imports the same archive instead of packing 70 MB again.
fn runner_archive(runner: &Path, reference: &str) -> Result<PathBuf, String> {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let archive = runner.with_extension("e2e-image.tar");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if let (Some(a), Some(r)) = (modified(&archive), modified(runner)) {
        if a > r {
            return Ok(archive);
        }
    }
    let elf = xtask::binary::elf_info(runner)?;
    let libs = if elf.is_static() {
        Vec::new()
    } else {
        xtask::binary::shared_libs(runner)?
    };
    let spec = xtask::oci::ImageSpec {
        binary: runner.to_path_buf(),
        libs,
        arch: elf.arch.clone(),
        reference: reference.to_string(),
        version: "e2e".into(),
        epoch: 0,
        gzip_level: 1,
    };
    let partial = runner.with_extension(format!("e2e-image.tar.{}", std::process::id()));
    xtask::oci::write_archive(&spec, &partial)?;
    std::fs::rename(&partial, &archive).map_err(|e| format!("{}: {e}", archive.display()))?;
    Ok(archive)
}

impl ContainerRuntime {
    /// Start containerd under `dir` and import the runner image built from `runner`.
    pub fn start(dir: &Path, runner: &Path, layout: CgroupLayout) -> Result<Self, String> {
        let ctd = Containerd::start(&dir.join("containerd"))?;
        let runner_image = format!("{}:e2e", xtask::oci::DEFAULT_REPOSITORY);
        let archive = runner_archive(runner, &runner_image)?;
        let refs = ctd.import(&archive)?;
        if !refs.contains(&runner_image) {
            return Err(format!("{runner_image} not imported: {refs:?}"));
        }
        let rootfs = dir.join("host-image");
        std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
        // A /tmp anyone can write, as images have (containers of any user write there).
        let tmp = rootfs.join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
        std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .map_err(|e| e.to_string())?;
        for d in ["bin", "sbin", "lib", "lib64", "lib32", "libx32"] {
            if let Ok(to) = std::fs::read_link(Path::new("/").join(d)) {
                let _ = std::os::unix::fs::symlink(to, rootfs.join(d));
            }
        }
        Ok(ContainerRuntime {
            ctd,
            runner_image,
            rootfs,
            layout,
        })
    }

    /// The read-only binds a container of the host image needs.
    pub fn host_image_mounts(&self) -> Vec<(PathBuf, String, bool)> {
        ["/usr", "/etc", "/lib", "/lib64"]
            .iter()
            .filter(|d| Path::new(d).is_dir() && !Path::new(d).is_symlink())
            .map(|d| (PathBuf::from(d), d.to_string(), true))
            .collect()
    }

    /// `ctr run` for `spec`, as a tokio child (stdin null, stdout and stderr piped).
    pub fn spawn(&self, spec: &RunSpec) -> std::io::Result<tokio::process::Child> {
        self.ctd.cgroups.lock().unwrap().push(spec.cgroup.clone());
        let mut cmd = tokio::process::Command::from(self.ctd.ctr());
        cmd.args(run_args(spec))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(false);
        cmd.spawn()
    }
}
