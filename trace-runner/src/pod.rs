//! Pod targets on the node: from a pod UID and container IDs (as the API reports them,
//! e.g. `containerd://0123…`) to the cgroup v2 directories the kernel-side filter
//! compares against, the container's main process for `$container_pid`, and, on nodes
//! without cgroup v2, the set of host pids that belong to the target (kept current by
//! [`PidSet::refresh`]).
//!
//! Layouts recognised below the cgroup v2 root (`<uid_>` is the UID with `-` → `_`):
//! - systemd driver: `kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_>.slice/<runtime>-<id>.scope`
//!   with `<runtime>` one of `cri-containerd`, `crio`, `docker`; guaranteed pods sit directly
//!   in `kubepods.slice/kubepods-pod<uid_>.slice`;
//! - cgroupfs driver: `kubepods/<qos>/pod<uid>/<id>`, guaranteed `kubepods/pod<uid>/<id>`;
//! - anything else (a kubelet `--cgroup-root`, kind's `kubelet.slice/kubelet-kubepods.slice/…`):
//!   a bounded search for a directory named `pod<uid>` or `*-pod<uid_>.slice`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::scope::{self, Cgroup};

/// What to trace: a pod (by UID) and optionally some of its containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodTarget {
    pub uid: String,
    /// Container IDs, with or without a runtime prefix (`containerd://`, `cri-o://`, `docker://`).
    pub container_ids: Vec<String>,
}

/// The cgroup v2 directories of a pod found on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodCgroups {
    /// The pod-level directory (an ancestor of all of its containers).
    pub pod: PathBuf,
    /// The directories of the requested containers, in the order they were asked for.
    pub containers: Vec<PathBuf>,
}

/// Runtime prefixes of container IDs in pod status (`containerStatuses[].containerID`).
const ID_PREFIXES: &[&str] = &[
    "containerd://",
    "cri-o://",
    "docker://",
    "crio://",
    "cri-containerd://",
];

/// Container scope prefixes used by the systemd cgroup driver.
const SCOPE_RUNTIMES: &[&str] = &["cri-containerd", "crio", "docker"];

const QOS_CLASSES: &[&str] = &["burstable", "besteffort"];

/// Depth and size bounds of the fallback search for unknown layouts.
const SEARCH_DEPTH: usize = 6;
const SEARCH_MAX_DIRS: usize = 50_000;

/// `containerd://abc` → `abc`.
pub fn strip_runtime_prefix(id: &str) -> &str {
    let id = id.trim();
    for p in ID_PREFIXES {
        if let Some(rest) = id.strip_prefix(p) {
            return rest;
        }
    }
    id
}

fn check_uid(uid: &str) -> Result<(), String> {
    if uid.is_empty()
        || !uid
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!("invalid pod UID '{uid}'"));
    }
    Ok(())
}

fn check_container_id(raw: &str, id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        return Err(format!("invalid container ID '{raw}'"));
    }
    Ok(())
}

/// The pod directories a kubelet creates for `uid`, relative to the cgroup v2 root, in search order.
pub fn pod_dir_patterns(uid: &str) -> Vec<PathBuf> {
    let us = uid.replace('-', "_");
    let mut out = vec![PathBuf::from(format!(
        "kubepods.slice/kubepods-pod{us}.slice"
    ))];
    for q in QOS_CLASSES {
        out.push(PathBuf::from(format!(
            "kubepods.slice/kubepods-{q}.slice/kubepods-{q}-pod{us}.slice"
        )));
    }
    out.push(PathBuf::from(format!("kubepods/pod{uid}")));
    for q in QOS_CLASSES {
        out.push(PathBuf::from(format!("kubepods/{q}/pod{uid}")));
    }
    out
}

/// Whether a directory name is the pod-level cgroup of `uid` in any layout.
fn is_pod_dir_name(name: &str, uid: &str) -> bool {
    let us = uid.replace('-', "_");
    name == format!("pod{uid}")
        || name == format!("pod{us}")
        || name.ends_with(&format!("-pod{us}.slice"))
        || name.ends_with(&format!("-pod{uid}.slice"))
}

/// The container ID a container directory stands for (`cri-containerd-<id>.scope`,
/// `crio-<id>.scope`, `docker-<id>.scope`, or a bare `<id>` with the cgroupfs driver).
/// `None` for other entries (e.g. `crio-conmon-<id>.scope`).
pub fn container_id_of_dir(name: &str) -> Option<&str> {
    if let Some(stem) = name.strip_suffix(".scope") {
        if stem.starts_with("crio-conmon-") {
            return None;
        }
        return SCOPE_RUNTIMES
            .iter()
            .find_map(|r| stem.strip_prefix(r)?.strip_prefix('-'));
    }
    if name.ends_with(".slice") || name.contains('.') {
        return None;
    }
    Some(name)
}

fn subdirs(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    out.sort();
    out
}

/// Breadth-first search below `root` for the pod-level directory of `uid`.
fn search_pod_dir(root: &Path, uid: &str) -> Option<PathBuf> {
    let mut queue = std::collections::VecDeque::from([(root.to_path_buf(), 0usize)]);
    let mut seen = 0usize;
    while let Some((dir, depth)) = queue.pop_front() {
        for name in subdirs(&dir) {
            seen += 1;
            if seen > SEARCH_MAX_DIRS {
                return None;
            }
            let path = dir.join(&name);
            if is_pod_dir_name(&name, uid) {
                return Some(path);
            }
            // Container-level directories hold no pods.
            if depth + 1 < SEARCH_DEPTH && !name.ends_with(".scope") {
                queue.push_back((path, depth + 1));
            }
        }
    }
    None
}

/// Find the pod-level cgroup directory of `target.uid` and the directories of its
/// requested containers below `cgroup_root` (the cgroup v2 mount, or any directory to
/// search from). Errors name what was searched, or the containers the pod does have.
pub fn find_pod_cgroups(target: &PodTarget, cgroup_root: &Path) -> Result<PodCgroups, String> {
    check_uid(&target.uid)?;
    let patterns = pod_dir_patterns(&target.uid);
    let pod = patterns
        .iter()
        .map(|p| cgroup_root.join(p))
        .find(|p| p.is_dir())
        .or_else(|| search_pod_dir(cgroup_root, &target.uid))
        .ok_or_else(|| {
            let mut msg = format!(
                "pod {} is not on this node: no cgroup found under {}; searched:",
                target.uid,
                cgroup_root.display()
            );
            for p in &patterns {
                msg.push_str(&format!("\n  {}", p.display()));
            }
            let us = target.uid.replace('-', "_");
            msg.push_str(&format!(
                "\n  any directory named pod{} or *-pod{us}.slice up to {SEARCH_DEPTH} levels deep",
                target.uid
            ));
            msg
        })?;

    let entries = subdirs(&pod);
    let mut containers = Vec::new();
    for raw in &target.container_ids {
        let id = strip_runtime_prefix(raw);
        check_container_id(raw, id)?;
        containers.push(pod.join(find_container_dir(&pod, &entries, raw, id)?));
    }
    Ok(PodCgroups { pod, containers })
}

fn find_container_dir(
    pod: &Path,
    entries: &[String],
    raw: &str,
    id: &str,
) -> Result<String, String> {
    let known: Vec<(&str, &String)> = entries
        .iter()
        .filter_map(|n| Some((container_id_of_dir(n)?, n)))
        .collect();
    if let Some((_, name)) = known.iter().find(|(cid, _)| *cid == id) {
        return Ok((*name).clone());
    }
    // A unique abbreviation (like `docker ps` shows) is accepted too.
    let prefixed: Vec<&String> = known
        .iter()
        .filter(|(cid, _)| cid.starts_with(id))
        .map(|(_, n)| *n)
        .collect();
    if id.len() >= 6 && prefixed.len() == 1 {
        return Ok(prefixed[0].clone());
    }
    let list = if entries.is_empty() {
        "  (none)".to_string()
    } else {
        entries
            .iter()
            .map(|n| format!("  {n}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let why = if prefixed.len() > 1 {
        "is ambiguous"
    } else {
        "not found"
    };
    Err(format!(
        "container {raw} {why} in pod cgroup {}; it holds:\n{list}",
        pod.display()
    ))
}

/// The cgroups to filter on: the requested containers' directories, or, when no container
/// was named, the pod-level directory (as an ancestor it covers every container).
/// `hierarchy_root` is the top of the cgroup v2 hierarchy (levels are counted from it).
pub fn scope_cgroups(found: &PodCgroups, hierarchy_root: &Path) -> Result<Vec<Cgroup>, String> {
    if found.containers.is_empty() {
        return Ok(vec![scope::resolve_cgroup_in(hierarchy_root, &found.pod)?]);
    }
    found
        .containers
        .iter()
        .map(|c| scope::resolve_cgroup_in(hierarchy_root, c))
        .collect()
}

/// The host's cgroup v2 hierarchy as this process can reach it. With `hostPID` the host's
/// mounts are visible through `<proc_root>/1/root` even when the pod has its own mount or
/// cgroup namespace (where `/sys/fs/cgroup` shows only the pod's own subtree); falls back to
/// this process's own cgroup2 mount. Only mounts of the hierarchy's top (`/`) are used.
pub fn host_cgroup2_root(proc_root: &Path) -> Option<PathBuf> {
    let host = proc_root.join("1");
    if let Some(mount) = std::fs::read_to_string(host.join("mountinfo"))
        .ok()
        .and_then(|t| cgroup2_top_mount(&t))
    {
        let path = host
            .join("root")
            .join(mount.strip_prefix("/").unwrap_or(&mount));
        if path.join("cgroup.procs").is_file() {
            return Some(path);
        }
    }
    let own = std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| cgroup2_top_mount(&t))?;
    own.join("cgroup.procs").is_file().then_some(own)
}

/// The mount point of a cgroup2 mount whose root is the top of the hierarchy.
fn cgroup2_top_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut f = left.split_whitespace();
        let root = f.nth(3)?;
        let mount = f.next()?;
        (right.split_whitespace().next()? == "cgroup2" && root == "/")
            .then(|| PathBuf::from(unescape_mount(mount)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            if let Some(v) = s
                .get(i + 1..i + 4)
                .and_then(|o| u8::from_str_radix(o, 8).ok())
            {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every pid in a cgroup v2 directory and its descendants (`cgroup.procs` lists thread-group ids).
pub fn pids_in_cgroup(dir: &Path) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(text) = std::fs::read_to_string(d.join("cgroup.procs")) {
            out.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        }
        stack.extend(subdirs(&d).into_iter().map(|n| d.join(n)));
    }
    out
}

/// Parent pid from `<proc_root>/<pid>/stat` (the field after the parenthesised comm).
pub fn parent_pid(proc_root: &Path, pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(proc_root.join(pid.to_string()).join("stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

fn comm(proc_root: &Path, pid: u32) -> Option<String> {
    std::fs::read_to_string(proc_root.join(pid.to_string()).join("comm"))
        .ok()
        .map(|s| s.trim_end().to_string())
}

/// The main process of a set of pids: the one whose parent is outside the set (lowest
/// pid among several), skipping pod sandbox `pause` processes; the lowest pid when the
/// parents cannot be read.
pub fn main_pid_of(pids: &BTreeSet<u32>, proc_root: &Path) -> Option<u32> {
    let candidates: Vec<u32> = pids
        .iter()
        .copied()
        .filter(|p| comm(proc_root, *p).as_deref() != Some("pause"))
        .collect();
    candidates
        .iter()
        .copied()
        .find(|p| parent_pid(proc_root, *p).is_some_and(|pp| !pids.contains(&pp)))
        .or_else(|| candidates.first().copied())
}

/// `$container_pid`: the main process of the container whose cgroup is `dir` (host pid as
/// seen in `proc_root`, which is `--host-proc`).
pub fn container_main_pid(dir: &Path, proc_root: &Path) -> Option<u32> {
    main_pid_of(&pids_in_cgroup(dir), proc_root)
}

/// `$container_pid` for a pod target: the first requested container, or without
/// containers, the main process of the pod's first non-sandbox container.
pub fn target_main_pid(found: &PodCgroups, proc_root: &Path) -> Option<u32> {
    if let Some(first) = found.containers.first() {
        return container_main_pid(first, proc_root);
    }
    subdirs(&found.pod)
        .into_iter()
        .find_map(|n| container_main_pid(&found.pod.join(n), proc_root))
}

/// The root of the container's filesystem as the host reaches it (`/proc/PID/root`), in
/// which uprobe targets of pod traces are looked up ([`crate::uprobes::Roots`]).
pub fn container_root(proc_root: &Path, pid: u32) -> PathBuf {
    proc_root.join(pid.to_string()).join("root")
}

/// Matches `/proc/PID/cgroup` lines (any hierarchy, v1 or v2) of a pod target.
#[derive(Debug, Clone)]
struct CgroupLineMatcher {
    pod_names: Vec<String>,
    container_ids: Vec<String>,
}

impl CgroupLineMatcher {
    fn new(target: &PodTarget) -> CgroupLineMatcher {
        let uid = &target.uid;
        let us = uid.replace('-', "_");
        CgroupLineMatcher {
            pod_names: vec![format!("pod{uid}"), format!("pod{us}")],
            container_ids: target
                .container_ids
                .iter()
                .map(|c| strip_runtime_prefix(c).to_string())
                .filter(|c| !c.is_empty())
                .collect(),
        }
    }

    fn matches_line(&self, path: &str) -> bool {
        let mut comps = path.split('/');
        let Some(pos) = comps.position(|c| {
            let c = c.strip_suffix(".slice").unwrap_or(c);
            self.pod_names
                .iter()
                .any(|p| c == p || c.ends_with(&format!("-{p}")))
        }) else {
            return false;
        };
        if self.container_ids.is_empty() {
            return true;
        }
        let below: Vec<&str> = path.split('/').skip(pos + 1).collect();
        below.iter().any(|c| {
            container_id_of_dir(c).is_some_and(|cid| {
                self.container_ids
                    .iter()
                    .any(|want| cid.starts_with(want.as_str()))
            })
        })
    }

    fn matches_file(&self, text: &str) -> bool {
        // `hierarchy-id:controllers:path`; the path may itself contain ':'.
        text.lines()
            .filter_map(|l| l.splitn(3, ':').nth(2))
            .any(|p| self.matches_line(p))
    }
}

fn all_pids(proc_root: &Path) -> Vec<u32> {
    std::fs::read_dir(proc_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Host pids (thread-group ids) whose `<proc_root>/PID/cgroup` `m` matches: the target pod
/// (and, when container IDs are given, one of those containers), on any v1 controller line
/// or the v2 line. The fallback for nodes without cgroup v2.
fn scan_matching(m: &CgroupLineMatcher, proc_root: &Path) -> BTreeSet<u32> {
    all_pids(proc_root)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(proc_root.join(pid.to_string()).join("cgroup"))
                .is_ok_and(|t| m.matches_file(&t))
        })
        .collect()
}

/// The allowed-tgid set of the pid filter (nodes without cgroup v2). User space calls
/// [`PidSet::refresh`] about once a second and mirrors the changes into the BPF hash map,
/// so processes started later in the container (children inherit its cgroups) join the set.
#[derive(Debug, Clone)]
pub struct PidSet {
    matcher: CgroupLineMatcher,
    pids: BTreeSet<u32>,
}

impl PidSet {
    /// An empty set for `target`; call [`PidSet::refresh`] to fill it.
    pub fn new(target: &PodTarget) -> PidSet {
        PidSet {
            matcher: CgroupLineMatcher::new(target),
            pids: BTreeSet::new(),
        }
    }

    /// Rescan `proc_root`; returns the pids that joined and those that left since the last
    /// call (both sorted), to be inserted into and deleted from the BPF map.
    pub fn refresh(&mut self, proc_root: &Path) -> (Vec<u32>, Vec<u32>) {
        let now = scan_matching(&self.matcher, proc_root);
        let added = now.difference(&self.pids).copied().collect();
        let removed = self.pids.difference(&now).copied().collect();
        self.pids = now;
        (added, removed)
    }

    pub fn pids(&self) -> &BTreeSet<u32> {
        &self.pids
    }

    pub fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// `$container_pid` under the pid filter.
    pub fn main_pid(&self, proc_root: &Path) -> Option<u32> {
        main_pid_of(&self.pids, proc_root)
    }
}

/// How a pod trace is scoped on this node.
#[derive(Debug)]
pub enum ScopeKind {
    /// cgroup v2: filter on these cgroups (each `(id, level)` via `bpf_get_current_ancestor_cgroup_id`).
    Cgroups { cgroups: Vec<Cgroup> },
    /// No cgroup v2 (or the pod is not in it): filter on a set of host tgids.
    Pids(PidSet),
}

/// A resolved pod target: the filter, `$container_pid`, and a note for stderr.
#[derive(Debug)]
pub struct ResolvedScope {
    pub kind: ScopeKind,
    pub main_pid: Option<u32>,
    /// Something the user should know (the pid fallback is in use), printed on stderr.
    pub note: Option<String>,
}

/// Resolve a pod target on this node: cgroup v2 when the node has it (searched from
/// `cgroup_root`, default [`host_cgroup2_root`]), otherwise the pid-set fallback when the
/// target's processes are found through `<proc_root>/PID/cgroup`.
pub fn resolve_scope(
    target: &PodTarget,
    proc_root: &Path,
    cgroup_root: Option<&Path>,
) -> Result<ResolvedScope, String> {
    let root = cgroup_root
        .map(Path::to_path_buf)
        .or_else(|| host_cgroup2_root(proc_root));
    let v2_error = match &root {
        Some(root) => match find_pod_cgroups(target, root) {
            Ok(found) => {
                let cgroups = scope_cgroups(&found, root)?;
                let main_pid = target_main_pid(&found, proc_root);
                return Ok(ResolvedScope {
                    kind: ScopeKind::Cgroups { cgroups },
                    main_pid,
                    note: None,
                });
            }
            Err(e) => e,
        },
        None => "no cgroup v2 hierarchy is mounted on this node".to_string(),
    };
    let mut set = PidSet::new(target);
    set.refresh(proc_root);
    if set.is_empty() {
        return Err(format!(
            "{v2_error}\nno process in {} has a cgroup of the pod{}",
            proc_root.display(),
            if target.container_ids.is_empty() {
                ""
            } else {
                "'s requested containers"
            }
        ));
    }
    let main_pid = set.main_pid(proc_root);
    let note = format!(
        "note: {}; filtering on the pod's {} host process id(s) instead (refreshed every second)",
        v2_error.lines().next().unwrap_or_default(),
        set.pids().len()
    );
    Ok(ResolvedScope {
        kind: ScopeKind::Pids(set),
        main_pid,
        note: Some(note),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::process::{Child, Command, Stdio};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const UID: &str = "6f0c1d2e-3a4b-4c5d-8e9f-0a1b2c3d4e5f";
    const OTHER_UID: &str = "11111111-2222-4333-8444-555555555555";
    /// Its own UID: the pid set also matches the v2 line, so it must not see the v2 test's pods.
    const V1_UID: &str = "99999999-8888-4777-8666-555555555555";
    const C1: &str = "aaaa1111bbbb2222cccc3333dddd4444eeee5555ffff6666aaaa7777bbbb8888";
    const C2: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const SANDBOX: &str = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

    use crate::test_util::TempDir;

    fn unique_uid() -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        format!("7e57c0de-{:04x}-4000-8000-{:012x}", n, std::process::id())
    }

    fn mkdirs(root: &Path, rel: &str) -> PathBuf {
        let p = root.join(rel);
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// Pod directory (relative to the root) for a qos class ("guaranteed", "burstable", "besteffort").
    fn systemd_pod(qos: &str, uid: &str) -> String {
        let us = uid.replace('-', "_");
        if qos == "guaranteed" {
            format!("kubepods.slice/kubepods-pod{us}.slice")
        } else {
            format!("kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{us}.slice")
        }
    }

    fn cgroupfs_pod(qos: &str, uid: &str) -> String {
        if qos == "guaranteed" {
            format!("kubepods/pod{uid}")
        } else {
            format!("kubepods/{qos}/pod{uid}")
        }
    }

    fn api_prefix(runtime: &str) -> &'static str {
        match runtime {
            "cri-containerd" => "containerd://",
            "crio" => "cri-o://",
            _ => "docker://",
        }
    }

    #[test]
    fn pod_strip_runtime_prefixes() {
        assert_eq!(strip_runtime_prefix("containerd://abc"), "abc");
        assert_eq!(strip_runtime_prefix("cri-o://abc"), "abc");
        assert_eq!(strip_runtime_prefix("docker://abc"), "abc");
        assert_eq!(strip_runtime_prefix(" abc "), "abc");
        assert_eq!(container_id_of_dir("cri-containerd-abc.scope"), Some("abc"));
        assert_eq!(container_id_of_dir("crio-abc.scope"), Some("abc"));
        assert_eq!(container_id_of_dir("docker-abc.scope"), Some("abc"));
        assert_eq!(container_id_of_dir("crio-conmon-abc.scope"), None);
        assert_eq!(container_id_of_dir("abc"), Some("abc"));
        assert_eq!(container_id_of_dir("kubepods-besteffort.slice"), None);
    }

    #[test]
    fn pod_systemd_layout_every_qos_and_runtime() {
        for qos in ["guaranteed", "burstable", "besteffort"] {
            for runtime in SCOPE_RUNTIMES {
                let t = TempDir::new("sd");
                let pod = mkdirs(&t.0, &systemd_pod(qos, UID));
                for c in [C1, C2, SANDBOX] {
                    mkdirs(&pod, &format!("{runtime}-{c}.scope"));
                }
                mkdirs(&pod, &format!("crio-conmon-{C1}.scope"));
                // Another pod in another qos class, and the same container ids nowhere else.
                mkdirs(
                    &t.0,
                    &format!(
                        "{}/{runtime}-{SANDBOX}.scope",
                        systemd_pod("besteffort", OTHER_UID)
                    ),
                );

                let target = PodTarget {
                    uid: UID.into(),
                    container_ids: vec![format!("{}{C2}", api_prefix(runtime)), C1.to_string()],
                };
                let found = find_pod_cgroups(&target, &t.0)
                    .unwrap_or_else(|e| panic!("{qos}/{runtime}: {e}"));
                assert_eq!(found.pod, pod, "{qos}/{runtime}");
                assert_eq!(
                    found.containers,
                    vec![
                        pod.join(format!("{runtime}-{C2}.scope")),
                        pod.join(format!("{runtime}-{C1}.scope"))
                    ]
                );
                let whole = find_pod_cgroups(
                    &PodTarget {
                        uid: UID.into(),
                        container_ids: vec![],
                    },
                    &t.0,
                )
                .unwrap();
                assert_eq!(
                    whole,
                    PodCgroups {
                        pod: pod.clone(),
                        containers: vec![]
                    }
                );
            }
        }
    }

    #[test]
    fn pod_cgroupfs_layout_every_qos() {
        for qos in ["guaranteed", "burstable", "besteffort"] {
            for prefix in ["containerd://", "cri-o://", "docker://", ""] {
                let t = TempDir::new("cgfs");
                let pod = mkdirs(&t.0, &cgroupfs_pod(qos, UID));
                for c in [C1, C2, SANDBOX] {
                    mkdirs(&pod, c);
                }
                mkdirs(
                    &t.0,
                    &format!("{}/{C1}x", cgroupfs_pod("burstable", OTHER_UID)),
                );
                let target = PodTarget {
                    uid: UID.into(),
                    container_ids: vec![format!("{prefix}{C1}")],
                };
                let found =
                    find_pod_cgroups(&target, &t.0).unwrap_or_else(|e| panic!("{qos}: {e}"));
                assert_eq!(
                    found,
                    PodCgroups {
                        pod: pod.clone(),
                        containers: vec![pod.join(C1)]
                    }
                );
            }
        }
    }

    #[test]
    fn pod_nested_unknown_layout_found_by_search() {
        // kind nodes: kubelet runs with a cgroup root inside the node container's slice.
        let t = TempDir::new("kind");
        let us = UID.replace('-', "_");
        let pod = mkdirs(
            &t.0,
            &format!(
                "kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod{us}.slice"
            ),
        );
        mkdirs(&pod, &format!("cri-containerd-{C1}.scope"));
        let found = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec![C1.into()],
            },
            &t.0,
        )
        .unwrap();
        assert_eq!(found.pod, pod);
        assert_eq!(
            found.containers,
            vec![pod.join(format!("cri-containerd-{C1}.scope"))]
        );

        // cgroupfs driver under a custom --cgroup-root.
        let t2 = TempDir::new("custom");
        let pod2 = mkdirs(&t2.0, &format!("custom/kubepods/burstable/pod{UID}"));
        mkdirs(&pod2, C2);
        let found = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec![C2.into()],
            },
            &t2.0,
        )
        .unwrap();
        assert_eq!(found.containers, vec![pod2.join(C2)]);
    }

    #[test]
    fn pod_not_on_node_lists_patterns() {
        let t = TempDir::new("missing");
        mkdirs(
            &t.0,
            &format!(
                "{}/cri-containerd-{C1}.scope",
                systemd_pod("burstable", OTHER_UID)
            ),
        );
        let err = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec![],
            },
            &t.0,
        )
        .unwrap_err();
        assert!(
            err.contains(&format!("pod {UID} is not on this node")),
            "{err}"
        );
        for p in pod_dir_patterns(UID) {
            assert!(err.contains(&p.display().to_string()), "{err}");
        }
        let us = UID.replace('-', "_");
        assert!(err.contains(&format!(
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{us}.slice"
        )));
        assert!(err.contains(&format!("kubepods/pod{UID}")), "{err}");
        assert!(err.contains("levels deep"), "{err}");
    }

    #[test]
    fn pod_container_not_found_lists_containers() {
        let t = TempDir::new("nocont");
        let pod = mkdirs(&t.0, &systemd_pod("burstable", UID));
        mkdirs(&pod, &format!("crio-{C1}.scope"));
        mkdirs(&pod, &format!("crio-{SANDBOX}.scope"));
        let err = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec![format!("cri-o://{C2}")],
            },
            &t.0,
        )
        .unwrap_err();
        assert!(
            err.contains(&format!("container cri-o://{C2} not found")),
            "{err}"
        );
        assert!(err.contains(&format!("crio-{C1}.scope")), "{err}");
        assert!(err.contains(&format!("crio-{SANDBOX}.scope")), "{err}");

        // Unique abbreviations work, ambiguous ones do not.
        let found = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec!["aaaa1111".into()],
            },
            &t.0,
        )
        .unwrap();
        assert_eq!(found.containers, vec![pod.join(format!("crio-{C1}.scope"))]);
        mkdirs(&pod, "crio-aaaa1111ffff.scope");
        let err = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec!["aaaa1111".into()],
            },
            &t.0,
        )
        .unwrap_err();
        assert!(err.contains("ambiguous"), "{err}");
    }

    #[test]
    fn pod_rejects_path_tricks() {
        let t = TempDir::new("tricks");
        assert!(find_pod_cgroups(
            &PodTarget {
                uid: "../x".into(),
                container_ids: vec![]
            },
            &t.0
        )
        .is_err());
        mkdirs(&t.0, &cgroupfs_pod("burstable", UID));
        let err = find_pod_cgroups(
            &PodTarget {
                uid: UID.into(),
                container_ids: vec!["../../etc".into()],
            },
            &t.0,
        )
        .unwrap_err();
        assert!(err.contains("invalid container ID"), "{err}");
    }

    #[test]
    fn pod_mountinfo_cgroup2_top() {
        let text = "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n\
                    40 31 0:35 /sub /mnt/ns rw - cgroup2 cgroup2 rw\n\
                    41 31 0:35 / /sys/fs/cgroup/uni\\040fied rw,nosuid - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup2_top_mount(text),
            Some(PathBuf::from("/sys/fs/cgroup/uni fied"))
        );
        assert_eq!(
            cgroup2_top_mount("31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"),
            None
        );
    }

    #[test]
    fn pod_cgroup_line_matcher() {
        let us = UID.replace('-', "_");
        let pod = PodTarget {
            uid: UID.into(),
            container_ids: vec![],
        };
        let cont = PodTarget {
            uid: UID.into(),
            container_ids: vec![format!("containerd://{C1}")],
        };
        let systemd = format!(
            "4:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice/cri-containerd-{C1}.scope\n"
        );
        let cgroupfs = format!("7:pids:/kubepods/besteffort/pod{UID}/{C1}\n1:name=systemd:/\n");
        let guaranteed = format!("3:cpu,cpuacct:/kubepods/pod{UID}/{C2}\n");
        let other = format!("4:memory:/kubepods/burstable/pod{OTHER_UID}/{C1}\n0::/\n");
        let pm = CgroupLineMatcher::new(&pod);
        let cm = CgroupLineMatcher::new(&cont);
        assert!(pm.matches_file(&systemd) && cm.matches_file(&systemd));
        assert!(pm.matches_file(&cgroupfs) && cm.matches_file(&cgroupfs));
        assert!(pm.matches_file(&guaranteed) && !cm.matches_file(&guaranteed));
        assert!(!pm.matches_file(&other) && !cm.matches_file(&other));
        assert!(!pm.matches_file("0::/user.slice/session-1.scope\n"));
    }

    /// A fake `/proc` with `cgroup`, `stat` and `comm` for each pid.
    fn fake_proc(root: &Path, pid: u32, ppid: u32, comm: &str, cgroup: &str) {
        let d = mkdirs(root, &pid.to_string());
        std::fs::write(d.join("cgroup"), cgroup).unwrap();
        std::fs::write(
            d.join("stat"),
            format!("{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560\n"),
        )
        .unwrap();
        std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
    }

    #[test]
    fn pod_pidset_refresh_fake_proc() {
        let t = TempDir::new("proc");
        let line = |uid: &str, c: &str| format!("5:pids:/kubepods/burstable/pod{uid}/{c}\n0::/\n");
        fake_proc(&t.0, 1, 0, "init", "0::/\n");
        fake_proc(&t.0, 9, 5, "pause", &line(UID, SANDBOX));
        // A child with a lower pid than its parent (pid wrap-around): the main process is 20.
        fake_proc(&t.0, 12, 20, "worker (x) y", &line(UID, C1));
        fake_proc(&t.0, 20, 5, "nginx", &line(UID, C1));
        fake_proc(&t.0, 30, 5, "sidecar", &line(UID, C2));
        fake_proc(&t.0, 40, 5, "other", &line(OTHER_UID, C1));
        std::fs::create_dir_all(t.0.join("self")).unwrap();

        let cont = PodTarget {
            uid: UID.into(),
            container_ids: vec![format!("containerd://{C1}")],
        };
        let proc_root = t.0.clone();
        let pids_of =
            |target: &PodTarget| scan_matching(&CgroupLineMatcher::new(target), &proc_root);
        assert_eq!(pids_of(&cont), BTreeSet::from([12, 20]));
        let pod = PodTarget {
            uid: UID.into(),
            container_ids: vec![],
        };
        assert_eq!(pids_of(&pod), BTreeSet::from([9, 12, 20, 30]));

        let mut set = PidSet::new(&cont);
        assert_eq!(set.refresh(&t.0), (vec![12, 20], vec![]));
        assert_eq!(set.main_pid(&t.0), Some(20));
        assert_eq!(set.refresh(&t.0), (vec![], vec![]));
        // A new child joins, an old one exits.
        fake_proc(&t.0, 21, 20, "nginx", &line(UID, C1));
        std::fs::remove_dir_all(t.0.join("12")).unwrap();
        assert_eq!(set.refresh(&t.0), (vec![21], vec![12]));
        assert_eq!(set.pids(), &BTreeSet::from([20, 21]));

        // The pod's main pid skips the sandbox.
        let mut whole = PidSet::new(&pod);
        whole.refresh(&t.0);
        assert_eq!(whole.main_pid(&t.0), Some(20));
        assert_eq!(container_root(&t.0, 20), t.0.join("20/root"));
    }

    // ---- tests on the real kernel ----

    fn in_ci() -> bool {
        std::env::var("CI").is_ok_and(|v| v == "true")
    }

    /// `None` (skip) when the test cannot run here; under CI=true that is a failure.
    fn require(ok: bool, what: &str) -> bool {
        if !ok {
            if in_ci() {
                panic!("CI=true and this test needs {what}");
            }
            eprintln!("skipped: needs {what}");
        }
        ok
    }

    fn is_root() -> bool {
        crate::sys::process::is_root()
    }

    /// A cgroup subtree for the test, emptied and removed on drop (children first).
    struct CgroupTree {
        root: PathBuf,
        children: Vec<Child>,
    }

    impl CgroupTree {
        fn new(parent: &Path, tag: &str) -> CgroupTree {
            static N: AtomicUsize = AtomicUsize::new(0);
            let root = parent.join(format!(
                "ktrace-test-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
            CgroupTree {
                root,
                children: Vec::new(),
            }
        }

        fn mkdir(&self, rel: &str) -> PathBuf {
            let mut p = self.root.clone();
            for c in Path::new(rel).components() {
                p.push(c);
                if !p.exists() {
                    std::fs::create_dir(&p)
                        .unwrap_or_else(|e| panic!("mkdir {}: {e}", p.display()));
                }
            }
            p
        }

        /// Start `sh -c 'read x; sleep 1000 & exec sleep 1000'` in `dir`: once released it
        /// forks a child (inside the cgroup) and becomes a `sleep` itself.
        fn spawn_in(&mut self, dir: &Path) -> u32 {
            let child = Command::new("sh")
                .args(["-c", "read x; sleep 1000 & exec sleep 1000"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            let pid = child.id();
            std::fs::write(dir.join("cgroup.procs"), pid.to_string()).unwrap();
            self.children.push(child);
            pid
        }

        fn release_all(&mut self) {
            use std::io::Write;
            for c in &mut self.children {
                let _ = c.stdin.take().unwrap().write_all(b"go\n");
            }
        }
    }

    fn kill_pids(pids: impl IntoIterator<Item = u32>) {
        for p in pids {
            // Pids this test started.
            crate::sys::signal::kill(p as i32, crate::sys::signal::SIGKILL);
        }
    }

    fn rmdir_tree(dir: &Path) {
        for n in subdirs(dir) {
            rmdir_tree(&dir.join(n));
        }
        for _ in 0..50 {
            if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("warning: could not remove {}", dir.display());
    }

    impl Drop for CgroupTree {
        fn drop(&mut self) {
            kill_pids(pids_in_cgroup(&self.root));
            for c in &mut self.children {
                let _ = c.kill();
                let _ = c.wait();
            }
            rmdir_tree(&self.root);
        }
    }

    /// Wait until `f` holds (the released shells fork their children asynchronously).
    fn wait_for(mut f: impl FnMut() -> bool) -> bool {
        for _ in 0..200 {
            if f() {
                return true;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        false
    }

    #[test]
    fn pod_real_cgroup2_scope_and_main_pid() {
        let mount = scope::cgroup2_mount();
        if !require(is_root() && mount.is_some(), "root and a cgroup v2 mount") {
            return;
        }
        let mount = mount.unwrap();
        let mut tree = CgroupTree::new(&mount, "pod");
        // A UID of this process only: resolve_scope below searches the whole hierarchy.
        let uid = unique_uid();
        let us = uid.replace('-', "_");
        let ous = OTHER_UID.replace('-', "_");
        let pod_rel =
            format!("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{us}.slice");
        let a = tree.mkdir(&format!("{pod_rel}/cri-containerd-{C1}.scope"));
        let b = tree.mkdir(&format!("{pod_rel}/cri-containerd-{C2}.scope"));
        let other = tree.mkdir(&format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{ous}.slice/cri-containerd-{C1}.scope"
        ));
        let pa = tree.spawn_in(&a);
        let pb = tree.spawn_in(&b);
        let po = tree.spawn_in(&other);
        tree.release_all();
        assert!(
            wait_for(|| pids_in_cgroup(&a).len() == 2 && pids_in_cgroup(&b).len() == 2),
            "children did not start"
        );

        // The kernel agrees on membership: /proc/PID/cgroup names the directory.
        let v2_line = std::fs::read_to_string(format!("/proc/{pa}/cgroup")).unwrap();
        let rel_a = a.strip_prefix(&mount).unwrap();
        assert!(
            v2_line.contains(&format!("0::/{}", rel_a.display())),
            "{v2_line}"
        );

        let target = PodTarget {
            uid: uid.clone(),
            container_ids: vec![format!("containerd://{C1}"), C2.into()],
        };
        let found = find_pod_cgroups(&target, &tree.root).unwrap();
        assert_eq!(found.pod, tree.root.join(&pod_rel));
        let cgroups = scope_cgroups(&found, &mount).unwrap();
        let base_level = tree.root.strip_prefix(&mount).unwrap().components().count() as u32;
        assert_eq!(cgroups.len(), 2);
        for (cg, dir) in cgroups.iter().zip([&a, &b]) {
            assert_eq!(cg.id, std::fs::metadata(dir).unwrap().ino());
            assert_eq!(cg.level, base_level + 4);
            assert_eq!(&cg.path, dir);
            // Same as the lead's resolver through this process's own mount.
            assert_eq!(scope::resolve_cgroup(dir).unwrap(), *cg);
        }

        // Without containers: the pod-level cgroup, one level up.
        let whole = find_pod_cgroups(
            &PodTarget {
                uid: uid.clone(),
                container_ids: vec![],
            },
            &tree.root,
        )
        .unwrap();
        let pod_scope = scope_cgroups(&whole, &mount).unwrap();
        assert_eq!(pod_scope.len(), 1);
        assert_eq!(
            pod_scope[0].id,
            std::fs::metadata(tree.root.join(&pod_rel)).unwrap().ino()
        );
        assert_eq!(pod_scope[0].level, base_level + 3);

        // $container_pid: the released shell (now `sleep`), not its child.
        assert_eq!(container_main_pid(&a, Path::new("/proc")), Some(pa));
        assert_eq!(container_main_pid(&b, Path::new("/proc")), Some(pb));
        assert_eq!(container_main_pid(&other, Path::new("/proc")), Some(po));
        assert_eq!(target_main_pid(&found, Path::new("/proc")), Some(pa));
        let child_a: Vec<u32> = pids_in_cgroup(&a)
            .into_iter()
            .filter(|p| *p != pa)
            .collect();
        assert_eq!(child_a.len(), 1);
        assert_eq!(parent_pid(Path::new("/proc"), child_a[0]), Some(pa));
        let all_pod = pids_in_cgroup(&whole.pod);
        assert_eq!(all_pod.len(), 4);
        assert!(!all_pod.contains(&po));

        // Through resolve_scope from the top of the hierarchy (found by the bounded search).
        let resolved = resolve_scope(&target, Path::new("/proc"), Some(&mount)).unwrap();
        assert_eq!(resolved.main_pid, Some(pa));
        assert!(resolved.note.is_none());
        match resolved.kind {
            ScopeKind::Cgroups { cgroups: got } => assert_eq!(got, cgroups),
            ScopeKind::Pids(_) => panic!("expected cgroup scope"),
        }
    }

    #[test]
    fn pod_host_cgroup2_root_is_the_mount() {
        let mount = scope::cgroup2_mount();
        if !require(is_root() && mount.is_some(), "root and a cgroup v2 mount") {
            return;
        }
        let root = host_cgroup2_root(Path::new("/proc")).expect("host cgroup2 root");
        let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
        assert_eq!(ino(&root), ino(&mount.unwrap()));
    }

    #[test]
    fn pod_real_v1_pidset_follows_children() {
        let v1 = PathBuf::from("/sys/fs/cgroup/pids");
        if !require(
            is_root() && v1.join("cgroup.procs").is_file(),
            "root and the cgroup v1 pids controller",
        ) {
            return;
        }
        let mut tree = CgroupTree::new(&v1, "v1");
        let a = tree.mkdir(&format!("kubepods/burstable/pod{V1_UID}/{C1}"));
        let o = tree.mkdir(&format!("kubepods/burstable/pod{OTHER_UID}/{C1}"));
        let pa = tree.spawn_in(&a);
        let po = tree.spawn_in(&o);
        let proc_root = Path::new("/proc");
        let target = PodTarget {
            uid: V1_UID.into(),
            container_ids: vec![format!("docker://{C1}")],
        };

        let mut set = PidSet::new(&target);
        assert_eq!(set.refresh(proc_root), (vec![pa], vec![]));
        // Released, the shell forks a child inside the cgroup: the next refresh adds it.
        tree.release_all();
        let mut added = Vec::new();
        assert!(wait_for(|| {
            added.extend(set.refresh(proc_root).0);
            set.pids().len() == 2
        }));
        let child = *set.pids().iter().find(|p| **p != pa).unwrap();
        assert_eq!(added, vec![child]);
        assert!(!set.pids().contains(&po));
        assert_eq!(set.main_pid(proc_root), Some(pa));
        assert_eq!(
            scan_matching(&CgroupLineMatcher::new(&target), proc_root),
            BTreeSet::from([pa, child])
        );

        // The pod is not in the cgroup v2 hierarchy: resolve_scope falls back to the pid set.
        let v2 = scope::cgroup2_mount();
        let resolved = resolve_scope(&target, proc_root, v2.as_deref()).unwrap();
        assert_eq!(resolved.main_pid, Some(pa));
        let note = resolved.note.expect("a note about the fallback");
        assert!(note.contains("host process id"), "{note}");
        match resolved.kind {
            ScopeKind::Pids(p) => assert_eq!(p.pids(), &BTreeSet::from([pa, child])),
            ScopeKind::Cgroups { .. } => panic!("expected the pid fallback"),
        }
        let missing = PodTarget {
            uid: unique_uid(),
            container_ids: vec![],
        };
        let err = resolve_scope(&missing, proc_root, v2.as_deref()).unwrap_err();
        assert!(
            err.contains("is not on this node") && err.contains("no process in /proc"),
            "{err}"
        );

        // The main process exits (and is reaped): it leaves the set, its orphan stays.
        let main = &mut tree.children[0];
        main.kill().unwrap();
        main.wait().unwrap();
        let mut removed = Vec::new();
        assert!(wait_for(|| {
            removed.extend(set.refresh(proc_root).1);
            set.pids().len() == 1
        }));
        assert_eq!(removed, vec![pa]);
        assert_eq!(set.pids(), &BTreeSet::from([child]));
    }
}
