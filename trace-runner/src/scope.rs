//! Scoping a trace to a cgroup v2 directory: finds the cgroup2 mount, and turns a
//! directory into the (id, level) pair the generated filter compares against
//! `bpf_get_current_ancestor_cgroup_id(level)`.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// A resolved cgroup: its id (the directory's inode) and depth below the cgroup2 root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cgroup {
    pub path: PathBuf,
    pub id: u64,
    pub level: u32,
}

/// Resolve a cgroup v2 directory given as an absolute path or relative to the mount.
pub fn resolve_cgroup(path: &Path) -> Result<Cgroup, String> {
    let mount = cgroup2_mount().ok_or("no cgroup v2 hierarchy is mounted on this node")?;
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        mount.join(path)
    };
    let full = full
        .canonicalize()
        .map_err(|e| format!("cgroup {}: {e}", full.display()))?;
    let rel = full.strip_prefix(&mount).map_err(|_| {
        format!(
            "{} is not inside the cgroup v2 hierarchy at {}",
            full.display(),
            mount.display()
        )
    })?;
    let meta = std::fs::metadata(&full).map_err(|e| format!("cgroup {}: {e}", full.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a cgroup directory", full.display()));
    }
    Ok(Cgroup {
        level: rel.components().count() as u32,
        id: meta.ino(),
        path: full,
    })
}

/// `cgroupid("path")` for scripts: the id of a cgroup v2 directory.
pub fn cgroup_id_of(path: &str) -> Option<u64> {
    resolve_cgroup(Path::new(path)).ok().map(|c| c.id)
}

/// Resolve a cgroup v2 directory against a given root of the hierarchy instead of this
/// process's own cgroup2 mount: `root` may be the host's hierarchy seen through
/// `/proc/1/root/sys/fs/cgroup` from a pod with its own mount or cgroup namespace.
/// `path` is absolute (and must lie under `root`) or relative to `root`. The level counts
/// the components below `root`, so `root` must be the top of the hierarchy for the level
/// to match what `bpf_get_current_ancestor_cgroup_id` expects. No symlinks are resolved
/// (canonicalising through `/proc/1/root` would leave the host's view).
pub fn resolve_cgroup_in(root: &Path, path: &Path) -> Result<Cgroup, String> {
    let full = if path.is_absolute() {
        path.to_path_buf()
    } else {
        root.join(path)
    };
    let rel = full.strip_prefix(root).map_err(|_| {
        format!(
            "{} is not inside the cgroup v2 hierarchy at {}",
            full.display(),
            root.display()
        )
    })?;
    let mut level = 0u32;
    for c in rel.components() {
        match c {
            std::path::Component::Normal(_) => level += 1,
            std::path::Component::CurDir => {}
            _ => {
                return Err(format!(
                    "cgroup path {} must not contain '..'",
                    full.display()
                ))
            }
        }
    }
    let meta = std::fs::metadata(&full).map_err(|e| format!("cgroup {}: {e}", full.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a cgroup directory", full.display()));
    }
    Ok(Cgroup {
        level,
        id: meta.ino(),
        path: full,
    })
}
