//! The kubelet's log directories: `/var/log/pods/<ns>_<name>_<uid>/` and
//! `/var/log/containers/<name>_<ns>_<container>-<id>.log` for its pods and the workload
//! pods, in [`super::AgentConfig::log_dir`], removed after pods gone from the API.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::api::resources;
use crate::api::selectors::{FieldSelector, LabelSelector};
use crate::api::store::{meta_str, Store};

/// Make the kubelet's log directories for a pod under `log_dir` (the fake node's
/// `/var/log`): `pods/<ns>_<name>_<uid>/<container>/0.log`, and for each container
/// `containers/<name>_<ns>_<container>-<id>.log`, a link to the former as the node sees
/// it (`/var/log/pods/...`).
pub fn write_pod_logs(
    log_dir: &Path,
    ns: &str,
    name: &str,
    uid: &str,
    containers: &[(String, String)],
) -> std::io::Result<()> {
    let pod_dir = format!("{ns}_{name}_{uid}");
    std::fs::create_dir_all(log_dir.join("containers"))?;
    for (c, id) in containers {
        let dir = log_dir.join("pods").join(&pod_dir).join(c);
        std::fs::create_dir_all(&dir)?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("0.log"))?;
        let link = log_dir
            .join("containers")
            .join(format!("{name}_{ns}_{c}-{id}.log"));
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(format!("/var/log/pods/{pod_dir}/{c}/0.log"), &link)?;
    }
    Ok(())
}

/// The uid in a pod log directory's name (`<ns>_<name>_<uid>`).
fn uid_of_pod_dir(dir: &str) -> Option<&str> {
    dir.rsplit_once('_').map(|(_, uid)| uid)
}

/// Remove the log directories and container links of pods gone from the API, as the
/// kubelet cleans up after a deleted pod.
pub fn gc_pod_logs(store: &Store, log_dir: &Path) {
    // List first, then look the uids up: a directory listed was made after its pod.
    let list = |sub: &str| -> Vec<PathBuf> {
        std::fs::read_dir(log_dir.join(sub))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect()
    };
    let dirs = list("pods");
    let links = list("containers");
    if dirs.is_empty() && links.is_empty() {
        return;
    }
    let uids: HashSet<String> = {
        let st = store.lock();
        st.list(
            resources::get("", "pods"),
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
        )
        .iter()
        .map(|p| meta_str(p, "uid").to_string())
        .collect()
    };
    let gone = |dir: &str| uid_of_pod_dir(dir).is_some_and(|u| !uids.contains(u));
    for d in dirs {
        if d.file_name().and_then(|n| n.to_str()).is_some_and(gone) {
            let _ = std::fs::remove_dir_all(&d);
        }
    }
    for l in links {
        let target = std::fs::read_link(&l).unwrap_or_default();
        let dir = target
            .strip_prefix("/var/log/pods")
            .ok()
            .and_then(|r| r.components().next())
            .and_then(|c| c.as_os_str().to_str().map(str::to_string));
        if dir.as_deref().is_some_and(gone) {
            let _ = std::fs::remove_file(&l);
        }
    }
}
