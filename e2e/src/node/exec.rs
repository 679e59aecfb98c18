//! `pods/exec`: commands run in a running container's mount namespace, with its
//! environment, as its user.

use std::ffi::CString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

use super::objects::{self, Object as _};
use crate::api::store::{ApiError, ExecTarget, State};

/// Where to run `pods/exec` for container `container` (empty: the only one) of pod
/// `ns/name`, with the errors the API gives for a missing pod, a wrong container name and
/// a container that does not run (workload pods are not exec'd into).
pub fn exec_target(
    st: &State,
    ns: &str,
    name: &str,
    container: &str,
) -> Result<ExecTarget, ApiError> {
    let pod = objects::get::<Pod>(st, ns, name)
        .ok_or_else(|| ApiError::not_found(Pod::resource(), name))?;
    let containers: Vec<&str> = pod
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .map(|c| c.name.as_str())
        .collect();
    let container = match container {
        "" if containers.len() == 1 => containers[0],
        "" => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {name}, choose one of: [{}]",
                containers.join(" ")
            )))
        }
        c if containers.contains(&c) => c,
        c => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )))
        }
    };
    match st.exec.get(pod.metadata.uid.as_deref().unwrap_or_default()) {
        Some(t) if t.container == container => Ok(t.clone()),
        _ => Err(ApiError::bad_request(format!(
            "unable to upgrade connection: container not found (\"{container}\")"
        ))),
    }
}

/// Start `argv` in a running container as a runtime's exec does: in the mount namespace
/// of the container's main process (whose root is the container's), with its environment, in a
/// process group of its own (`-pid` kills it and its children). The program is looked up
/// in the container's PATH, in the container's view of the files.
pub fn exec_in_container(
    t: &ExecTarget,
    argv: &[String],
) -> std::io::Result<tokio::process::Child> {
    let not_found = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("exec: {what:?}: executable file not found in $PATH"),
        )
    };
    let first = argv.first().ok_or_else(|| not_found(""))?;
    let view = PathBuf::from(format!("/proc/{}/root", t.pid));
    let program = if first.contains('/') {
        first.clone()
    } else {
        let path = t
            .env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or("/usr/local/bin:/usr/bin:/bin", |(_, v)| v.as_str());
        path.split(':')
            .map(|d| Path::new(d).join(first))
            .find(|p| {
                view.join(p.strip_prefix("/").unwrap_or(p))
                    .metadata()
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            })
            .ok_or_else(|| not_found(first))?
            .display()
            .to_string()
    };
    let mnt = std::fs::File::open(format!("/proc/{}/ns/mnt", t.pid))?;
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(&argv[1..])
        .env_clear()
        .envs(t.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let fd = std::os::fd::AsRawFd::as_raw_fd(&mnt);
    let workdir = CString::new(t.workdir.as_bytes()).unwrap_or_default();
    let creds = t.creds.clone();
    // SAFETY: only async-signal-safe syscalls on data prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            // Entering the namespace sets the root to its root: the container's.
            if libc::setns(fd, libc::CLONE_NEWNS) != 0 || libc::chdir(workdir.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // As the container's user, as a runtime's exec does.
            if let Some(c) = &creds {
                c.apply()?;
            }
            libc::setsid();
            Ok(())
        });
    }
    let child = cmd.spawn();
    drop(mnt);
    child
}
