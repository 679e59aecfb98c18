//! Finding a pod by namespace and name on the node, without the Kubernetes API: the
//! kubelet names its log directories `/var/log/pods/<namespace>_<name>_<uid>/` and its
//! container log links `/var/log/containers/<name>_<namespace>_<container>-<id>.log`.
//! Scheduled traces use this, so each run finds the pod again after it was recreated
//! with a new UID (and new container IDs).

use std::path::Path;

use crate::pod::PodTarget;

/// Candidate targets for pod `namespace/name` (several when an old pod's logs linger),
/// newest first, each with the IDs of the named containers (all containers when none).
pub fn find_pod_by_name(
    log_root: &Path,
    namespace: &str,
    name: &str,
    containers: &[String],
) -> Result<Vec<PodTarget>, String> {
    let pods_dir = log_root.join("pods");
    let prefix = format!("{namespace}_{name}_");
    let entries = std::fs::read_dir(&pods_dir).map_err(|e| {
        format!(
            "cannot list {} to find pod {namespace}/{name}: {e}",
            pods_dir.display()
        )
    })?;
    let mut found: Vec<(std::time::SystemTime, String)> = entries
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().to_string_lossy().into_owned();
            let uid = file.strip_prefix(&prefix)?.to_string();
            let modified = e
                .metadata()
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            Some((modified, uid))
        })
        .collect();
    if found.is_empty() {
        return Err(format!(
            "pod {namespace}/{name} is not on this node (no {}/{prefix}<uid>)",
            pods_dir.display()
        ));
    }
    found.sort_by_key(|b| std::cmp::Reverse(b.0));
    let ids = container_ids(log_root, namespace, name, containers)?;
    Ok(found
        .into_iter()
        .map(|(_, uid)| PodTarget {
            uid,
            container_ids: ids.clone(),
        })
        .collect())
}

/// IDs of the named containers of pod `namespace/name` (every restart's ID: the cgroup
/// search keeps the ones that exist).
fn container_ids(
    log_root: &Path,
    namespace: &str,
    name: &str,
    containers: &[String],
) -> Result<Vec<String>, String> {
    if containers.is_empty() {
        return Ok(Vec::new());
    }
    let dir = log_root.join("containers");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let mut ids = Vec::new();
    for container in containers {
        let prefix = format!("{name}_{namespace}_{container}-");
        let before = ids.len();
        ids.extend(
            files
                .iter()
                .filter_map(|f| f.strip_prefix(&prefix)?.strip_suffix(".log"))
                .filter(|id| id.len() >= 12 && id.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_string),
        );
        if ids.len() == before {
            return Err(format!(
                "container {container} of pod {namespace}/{name} not found in {}",
                dir.display()
            ));
        }
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(p: &Path) {
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }

    #[test]
    fn finds_uid_and_container_ids_from_kubelet_logs() {
        let root = std::env::temp_dir().join(format!("kt-podnames-{}", std::process::id()));
        let id = "a".repeat(64);
        let old = "b".repeat(64);
        std::fs::create_dir_all(root.join("pods/shop_web-0_1111-2222")).unwrap();
        std::fs::create_dir_all(root.join("pods/shop_web-01_9999")).unwrap();
        touch(&root.join(format!("containers/web-0_shop_nginx-{id}.log")));
        touch(&root.join(format!("containers/web-0_shop_nginx-{old}.log")));
        touch(&root.join(format!(
            "containers/web-0_shop_sidecar-{}.log",
            "c".repeat(64)
        )));

        let all = find_pod_by_name(&root, "shop", "web-0", &[]).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].uid, "1111-2222");
        assert!(all[0].container_ids.is_empty());

        let nginx = find_pod_by_name(&root, "shop", "web-0", &["nginx".to_string()]).unwrap();
        let mut ids = nginx[0].container_ids.clone();
        ids.sort();
        assert_eq!(ids, vec![id, old]);

        let err = find_pod_by_name(&root, "shop", "web-1", &[]).unwrap_err();
        assert!(err.contains("not on this node"), "{err}");
        let err = find_pod_by_name(&root, "shop", "web-0", &["db".to_string()]).unwrap_err();
        assert!(err.contains("container db"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
