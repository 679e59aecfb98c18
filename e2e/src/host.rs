//! Machine-level helpers for the tests: where the binaries are (and building them),
//! whether this host can run the suite (root, BPF, cgroup v2, tracefs), the cgroup v2
//! mount, the BPF programs loaded in the kernel, and processes by name.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` or `/sys/fs/cgroup/unified`).
pub fn cgroup2_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount))
    })
}

/// The cargo target profile directory this executable lives in (`target/debug`).
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().expect("deps has a parent").to_path_buf()
    } else {
        dir
    }
}

/// Paths of the binaries under test.
#[derive(Debug, Clone)]
pub struct Binaries {
    pub kubectl_trace: PathBuf,
    pub trace_runner: PathBuf,
    /// The directory holding them (put first on PATH so kubectl finds the plugin).
    pub dir: PathBuf,
}

/// Build `kubectl-trace` and `trace-runner` (once per process; cargo makes it a no-op
/// when they are fresh) and return their paths. `E2E_NO_BUILD=1` skips the build.
pub fn binaries() -> Result<Binaries, String> {
    static BUILT: OnceLock<Result<Binaries, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let dir = profile_dir();
            if std::env::var_os("E2E_NO_BUILD").is_none() {
                let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join("Cargo.toml");
                let mut cmd = std::process::Command::new(cargo);
                cmd.args([
                    "build",
                    "-q",
                    "-p",
                    "kubectl-trace",
                    "-p",
                    "trace-runner",
                    "--manifest-path",
                ])
                .arg(&manifest);
                if dir.file_name().is_some_and(|n| n == "release") {
                    cmd.arg("--release");
                }
                if let Some(target) = dir.parent() {
                    cmd.env("CARGO_TARGET_DIR", target);
                }
                let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
                if !status.success() {
                    return Err(format!(
                        "cargo build -p kubectl-trace -p trace-runner failed: {status}"
                    ));
                }
            }
            let b = Binaries {
                kubectl_trace: dir.join("kubectl-trace"),
                trace_runner: dir.join("trace-runner"),
                dir: dir.clone(),
            };
            for p in [&b.kubectl_trace, &b.trace_runner] {
                if !p.exists() {
                    return Err(format!("{} is missing", p.display()));
                }
            }
            Ok(b)
        })
        .clone()
}

/// Why this host cannot run the suite, if it cannot: root, cgroup v2, BTF, the bpf
/// syscall, tracefs (mounted here when missing, as on a real node).
pub fn missing_privileges() -> Option<String> {
    // SAFETY: plain getters and syscalls with valid arguments.
    unsafe {
        if libc::geteuid() != 0 {
            return Some("not running as root".into());
        }
    }
    if cgroup2_mount().is_none() {
        return Some("no cgroup v2 hierarchy mounted".into());
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        return Some("no kernel BTF at /sys/kernel/btf/vmlinux".into());
    }
    if let Err(e) = bpf_prog_ids() {
        return Some(format!("the bpf syscall is not usable: {e}"));
    }
    if !Path::new("/sys/kernel/tracing/events").exists() {
        // SAFETY: mount(2) with valid C strings.
        let r = unsafe {
            libc::mount(
                c"tracefs".as_ptr(),
                c"/sys/kernel/tracing".as_ptr(),
                c"tracefs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if r != 0 {
            return Some(format!(
                "tracefs is not mounted and cannot be: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
    None
}

/// Gate for a test that needs root and BPF: `true` to go on. Without them the test is
/// skipped with a note, except under `CI=true`, where it fails.
pub fn require_privileges(test: &str) -> bool {
    match missing_privileges() {
        None => true,
        Some(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: this host cannot run the hermetic e2e suite: {why}")
        }
        Some(why) => {
            eprintln!("{test}: SKIPPED: {why} (under CI=true this fails)");
            false
        }
    }
}

/// IDs of every BPF program loaded in the kernel.
pub fn bpf_prog_ids() -> Result<Vec<u32>, std::io::Error> {
    const BPF_PROG_GET_NEXT_ID: libc::c_long = 11;
    let mut ids = Vec::new();
    let mut attr = [0u32; 4];
    loop {
        attr[1] = 0;
        // SAFETY: bpf(2) with a zeroed attr union large enough for start_id/next_id.
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_PROG_GET_NEXT_ID,
                attr.as_mut_ptr(),
                std::mem::size_of_val(&attr),
            )
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return if e.raw_os_error() == Some(libc::ENOENT) {
                Ok(ids)
            } else {
                Err(e)
            };
        }
        ids.push(attr[1]);
        attr[0] = attr[1];
    }
}

/// Pids of processes whose `comm` is `name`.
pub fn processes_named(name: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == name) {
            pids.push(pid);
        }
    }
    pids
}

/// Pids of this process's children whose `comm` is `name` (the containers the fake
/// kubelet started; other users of the machine may run their own).
pub fn children_named(name: &str) -> Vec<i32> {
    let me = std::process::id().to_string();
    processes_named(name)
        .into_iter()
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                // pid (comm) state ppid ...
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(|p| p == me))
                    .unwrap_or(false)
            })
        })
        .collect()
}

/// A tool a test needs, found on PATH: `None` (the test skips with a note) when missing,
/// except under `CI=true`, where a missing tool fails the test.
pub fn require_tool(test: &str, name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(p) => Some(p),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: {name} is not installed (.ci/run installs it)")
        }
        None => {
            eprintln!("{test}: SKIPPED: {name} is not installed (under CI=true this fails)");
            None
        }
    }
}

/// Whether the kubelet's runtime can run here: nothing for local processes; `containerd`,
/// `ctr` and `runc` for containerd mode (a missing one skips the test with a message,
/// and fails it under `CI=true`).
pub fn require_runtime(test: &str, runtime: Option<crate::node::containerd::CgroupLayout>) -> bool {
    runtime.is_none()
        || ["containerd", "ctr", "runc"]
            .iter()
            .all(|tool| require_tool(test, tool).is_some())
}
