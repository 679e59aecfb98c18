//! How the kubelet starts a container. Local processes: in a private mount namespace
//! whose root (pivot_root, as a runtime does) is made of this host's top-level
//! directories (directories the host lacks, such as /var/log/pods, made on a tmpfs
//! there), with the pod's volumes bound at their mount paths, so `trace-runner` sees
//! `/programs`, `/host/proc` and `/output` as in a real pod. containerd mode: the same
//! plan as a `ctr run` of the private containerd ([`containerd_spec`]). Either way
//! containers run as their `securityContext`'s `runAsUser`/`runAsGroup` (`fsGroup` and
//! `supplementalGroups` as groups; root without `runAsUser`).

use std::collections::HashSet;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, Pod};

use super::kubelet::Volumes;
use super::objects;
use super::Agent;
use crate::api::store::Creds;
use crate::node::containerd::{cgroup_path, ContainerRuntime, Root, RunSpec};

/// One step of building a container's root, in its own mount namespace.
enum MountOp {
    Bind {
        src: CString,
        dst: CString,
        recursive: bool,
        read_only: bool,
    },
    /// An empty tmpfs over a directory (to make mount points the host lacks).
    Tmpfs(CString),
    Mkdir(CString),
    /// An empty file (a mount point for a file).
    Touch(CString),
}

/// How to start one container, all resolved in the parent.
pub(super) struct Launch {
    argv: Vec<CString>,
    pub(super) env: Vec<(String, String)>,
    rootfs: CString,
    workdir: CString,
    ops: Vec<MountOp>,
    /// The container's user (`securityContext.runAsUser`...); `None`: root.
    pub(super) creds: Option<Creds>,
}

fn cstr(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("no NUL in paths")
}

/// Lay out the container's root: the host's top-level directories, its volumes at their
/// mount paths, and the runner binary.
pub(super) fn plan_launch(
    agent: &Agent,
    pod: &Pod,
    container: &Container,
    vols: &Volumes,
    poddir: &Path,
) -> Result<Launch, String> {
    let rootfs = poddir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    let mut ops = Vec::new();
    let bind = |src: &Path, dst: &Path, recursive: bool, read_only: bool| MountOp::Bind {
        src: cstr(src),
        dst: cstr(dst),
        recursive,
        read_only,
    };
    let mut host_tops = HashSet::new();
    for entry in std::fs::read_dir("/").map_err(|e| e.to_string())?.flatten() {
        let name = entry.file_name();
        let target = rootfs.join(&name);
        let ft = entry.file_type().map_err(|e| e.to_string())?;
        if ft.is_symlink() {
            let to = std::fs::read_link(entry.path()).map_err(|e| e.to_string())?;
            let _ = std::os::unix::fs::symlink(to, &target);
        } else if ft.is_dir() {
            let _ = std::fs::create_dir_all(&target);
            if name == "tmp" {
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o1777));
                continue;
            }
            host_tops.insert(name.to_string_lossy().into_owned());
            ops.push(bind(&entry.path(), &target, true, false));
        }
    }
    let mut mounts: Vec<(String, PathBuf, bool)> = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let vname = m.name.as_str();
        let mut src = vols
            .get(vname)
            .cloned()
            .ok_or_else(|| format!("volume {vname:?} not found in the pod"))?;
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            src = src.join(sub);
            if !src.exists() {
                let _ = std::fs::create_dir_all(&src);
            }
        }
        mounts.push((m.mount_path.clone(), src, m.read_only.unwrap_or(false)));
    }
    mounts.sort_by_key(|(p, _, _)| Path::new(p).components().count());
    let under_host_top = |mpath: &str| {
        let top = mpath
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("");
        host_tops.contains(top)
    };
    // Mount paths in the host's directories that this host lacks (/var/log/pods on a
    // machine without a kubelet): a tmpfs over their deepest existing ancestor, in the
    // container's mount namespace only, with the missing directories made in it. The
    // host is never changed.
    let mut shadowed: Vec<PathBuf> = Vec::new();
    for (mpath, _, _) in &mounts {
        let p = Path::new(mpath);
        if !under_host_top(mpath) || p.exists() {
            continue;
        }
        let mut a = p.parent();
        while let Some(x) = a.filter(|x| !x.is_dir()) {
            a = x.parent();
        }
        let a = a.unwrap_or(Path::new("/")).to_path_buf();
        if a.components().count() < 2 {
            return Err(format!(
                "mount path {mpath}: no directory of this host to put it in"
            ));
        }
        if !shadowed.iter().any(|s| a.starts_with(s)) {
            shadowed.retain(|s| !s.starts_with(&a));
            shadowed.push(a);
        }
    }
    for a in &shadowed {
        ops.push(MountOp::Tmpfs(cstr(
            &rootfs.join(a.strip_prefix("/").unwrap_or(a)),
        )));
    }
    for (mpath, src, ro) in mounts {
        let rel = mpath.trim_start_matches('/');
        let target = rootfs.join(rel);
        if under_host_top(&mpath) {
            if let Some(a) = shadowed.iter().find(|a| Path::new(&mpath).starts_with(a)) {
                let mut cur = rootfs.join(a.strip_prefix("/").unwrap_or(a));
                let rest: Vec<_> = Path::new(&mpath)
                    .strip_prefix(a)
                    .map(|r| r.components().collect())
                    .unwrap_or_default();
                for (i, c) in rest.iter().enumerate() {
                    cur = cur.join(c);
                    ops.push(if i + 1 < rest.len() || src.is_dir() {
                        MountOp::Mkdir(cstr(&cur))
                    } else {
                        MountOp::Touch(cstr(&cur))
                    });
                }
            }
        } else if src.is_dir() {
            std::fs::create_dir_all(&target).map_err(|e| e.to_string())?;
        } else {
            if let Some(p) = target.parent() {
                std::fs::create_dir_all(p).map_err(|e| e.to_string())?;
            }
            std::fs::write(&target, b"").map_err(|e| e.to_string())?;
        }
        ops.push(bind(&src, &target, true, ro));
    }
    // The runner binary, as the image's /usr/local/bin/trace-runner would be.
    let bindir = rootfs.join(".e2e-bin");
    std::fs::create_dir_all(&bindir).map_err(|e| e.to_string())?;
    std::fs::write(bindir.join("trace-runner"), b"").map_err(|e| e.to_string())?;
    ops.push(bind(
        &agent.cfg.runner,
        &bindir.join("trace-runner"),
        false,
        true,
    ));

    let image = container.image.as_deref().unwrap_or("");
    let args: Vec<String> = container.args.clone().unwrap_or_default();
    let mut argv: Vec<String> = match &container.command {
        Some(c) => c.iter().cloned().chain(args).collect(),
        None if image.contains("trace-runner") => std::iter::once("trace-runner".to_string())
            .chain(args)
            .collect(),
        None => args,
    };
    if argv.is_empty() {
        return Err(format!("image {image:?}: no command (the fake kubelet knows no image entrypoints besides trace-runner's)"));
    }
    argv[0] = if argv[0] == "trace-runner" || argv[0].ends_with("/trace-runner") {
        "/.e2e-bin/trace-runner".to_string()
    } else if argv[0].contains('/') {
        argv[0].clone()
    } else {
        let found = [
            "/usr/local/sbin",
            "/usr/local/bin",
            "/usr/sbin",
            "/usr/bin",
            "/sbin",
            "/bin",
        ]
        .iter()
        .map(|d| Path::new(d).join(&argv[0]))
        .find(|p| p.exists())
        .ok_or_else(|| format!("executable file not found in $PATH: {:?}", argv[0]))?;
        found.display().to_string()
    };

    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/.e2e-bin".to_string(),
        ),
        (
            "HOSTNAME".to_string(),
            pod.metadata.name.clone().unwrap_or_default(),
        ),
    ];
    for var in ["TRACE_RUNNER_DEBUG", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(var) {
            env.push((var.to_string(), v));
        }
    }
    // fieldRef paths (`metadata.name`, `spec.nodeName`...) are looked up in the pod's JSON.
    let pod_json = objects::json(pod);
    for e in container.env.iter().flatten() {
        let field = e
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        let value = match (&e.value, field) {
            (Some(v), _) => v.clone(),
            (None, Some(fp)) => pod_json
                .pointer(&format!("/{}", fp.replace('.', "/")))
                .and_then(serde_json::Value::as_str)
                .unwrap_or("")
                .to_string(),
            (None, None) => String::new(),
        };
        env.push((e.name.clone(), value));
    }
    Ok(Launch {
        argv: argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).unwrap_or_default())
            .collect(),
        env,
        rootfs: cstr(&rootfs),
        workdir: CString::new(container.working_dir.as_deref().unwrap_or("/")).unwrap_or_default(),
        ops,
        creds: Creds::of(pod, container),
    })
}

pub(super) fn spawn(l: Launch) -> std::io::Result<tokio::process::Child> {
    let program = std::ffi::OsStr::from_bytes(l.argv[0].as_bytes()).to_owned();
    let mut cmd = tokio::process::Command::new(program);
    for a in &l.argv[1..] {
        cmd.arg(std::ffi::OsStr::from_bytes(a.as_bytes()));
    }
    cmd.env_clear();
    for (k, v) in &l.env {
        cmd.env(k, v);
    }
    cmd.stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(false);
    let (rootfs, workdir, ops, creds) = (l.rootfs, l.workdir, l.ops, l.creds);
    // SAFETY: only async-signal-safe syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let err = || Err(std::io::Error::last_os_error());
            if libc::unshare(libc::CLONE_NEWNS) != 0 {
                return err();
            }
            let root = c"/";
            if libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ) != 0
            {
                return err();
            }
            // The root: a mount point of its own, so that it can become the namespace's
            // root (pivot_root, as container runtimes do: under a chroot the namespace's
            // root would stay the host's, and setns(2) back to it would leave the pod).
            if libc::mount(
                rootfs.as_ptr(),
                rootfs.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND | libc::MS_REC,
                std::ptr::null(),
            ) != 0
            {
                return err();
            }
            for op in &ops {
                match op {
                    MountOp::Bind {
                        src,
                        dst,
                        recursive,
                        read_only,
                    } => {
                        let flags = libc::MS_BIND | if *recursive { libc::MS_REC } else { 0 };
                        if libc::mount(
                            src.as_ptr(),
                            dst.as_ptr(),
                            std::ptr::null(),
                            flags,
                            std::ptr::null(),
                        ) != 0
                        {
                            return err();
                        }
                        if *read_only {
                            libc::mount(
                                std::ptr::null(),
                                dst.as_ptr(),
                                std::ptr::null(),
                                libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY,
                                std::ptr::null(),
                            );
                        }
                    }
                    MountOp::Tmpfs(dst) => {
                        if libc::mount(
                            c"tmpfs".as_ptr(),
                            dst.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_NOSUID | libc::MS_NODEV,
                            c"mode=755".as_ptr().cast(),
                        ) != 0
                        {
                            return err();
                        }
                    }
                    MountOp::Mkdir(dst) => {
                        libc::mkdir(dst.as_ptr(), 0o755);
                    }
                    MountOp::Touch(dst) => {
                        let fd = libc::open(
                            dst.as_ptr(),
                            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                            0o644,
                        );
                        if fd >= 0 {
                            libc::close(fd);
                        }
                    }
                }
            }
            // pivot_root(".", "."): the old root lands on top of the new one; detach it.
            let dot = c".";
            if libc::chdir(rootfs.as_ptr()) != 0
                || libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) != 0
                || libc::umount2(dot.as_ptr(), libc::MNT_DETACH) != 0
                || libc::chdir(c"/".as_ptr()) != 0
                || libc::chdir(workdir.as_ptr()) != 0
            {
                return err();
            }
            if let Some(c) = &creds {
                c.apply()?;
            }
            libc::setsid();
            Ok(())
        });
    }
    cmd.spawn()
}

/// containerd mode: the container of `launch` as `ctr run` runs it. The runner image's
/// trace-runner runs from the imported image; other images run on this host's `/usr`.
/// Volumes are bind mounts at their mount paths; `privileged`, `hostPID` and the pod's
/// QoS class (its cgroup, in the runtime's layout) come from the pod spec, and so does
/// the user (`runAsUser`, `runAsGroup`, `fsGroup`, `supplementalGroups`), as for a
/// local process.
pub(super) fn containerd_spec(
    rt: &ContainerRuntime,
    pod: &Pod,
    container: &Container,
    vols: &Volumes,
    l: &Launch,
    cid: &str,
) -> Result<RunSpec, String> {
    let mut argv: Vec<String> = l
        .argv
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let mut mounts = Vec::new();
    let root = if argv.first().is_some_and(|a| a == "/.e2e-bin/trace-runner") {
        if l.creds.is_some() {
            // The runner image has no setpriv to become the user with.
            return Err(
                "runAsUser for the runner image is not supported by the fake kubelet's containerd mode"
                    .to_string(),
            );
        }
        argv[0] = xtask::oci::BINARY_PATH.to_string();
        Root::Image(rt.runner_image.clone())
    } else {
        mounts.extend(rt.host_image_mounts());
        Root::Dir(rt.rootfs.clone())
    };
    for m in container.volume_mounts.iter().flatten() {
        let vname = m.name.as_str();
        let mut src = vols
            .get(vname)
            .cloned()
            .ok_or_else(|| format!("volume {vname:?} not found in the pod"))?;
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            src = src.join(sub);
        }
        mounts.push((src, m.mount_path.clone(), m.read_only.unwrap_or(false)));
    }
    let qos = pod
        .status
        .as_ref()
        .and_then(|s| s.qos_class.as_deref())
        .unwrap_or("Burstable");
    Ok(RunSpec {
        id: cid.to_string(),
        root,
        argv,
        env: l.env.clone(),
        mounts,
        cgroup: cgroup_path(
            rt.layout,
            qos,
            pod.metadata.uid.as_deref().unwrap_or_default(),
            cid,
        ),
        privileged: container
            .security_context
            .as_ref()
            .and_then(|s| s.privileged)
            == Some(true),
        host_pid_ns: (pod.spec.as_ref().and_then(|s| s.host_pid) == Some(true))
            .then(|| PathBuf::from("/proc/self/ns/pid")),
        workdir: container.working_dir.clone(),
        user: l.creds.clone(),
    })
}
