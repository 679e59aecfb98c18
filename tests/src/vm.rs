//! Effects of the kernel matrix: finding the newest Debian kernel package of a series
//! (`apt-cache search`), fetching it into a cache reused between runs (`apt-get download`
//! and `dpkg-deb -x`, never installed), writing the initramfs, and booting QEMU with TCG
//! under a timeout, with this machine's root shared read-only and a scratch directory
//! shared writable for the job and its results.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::initramfs::{self, Entry};
use crate::packages;

/// Why a run could not happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A prerequisite of this machine is missing (QEMU, busybox, the kernel package):
    /// the test skips with this message, or fails under `CI=true`.
    Missing(String),
    /// Anything else: the test fails with this message.
    Failed(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Missing(m) => write!(f, "missing prerequisite: {m}"),
            Error::Failed(m) => f.write_str(m),
        }
    }
}

fn failed(what: impl std::fmt::Display) -> Error {
    Error::Failed(what.to_string())
}

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";

/// The static busybox the initramfs runs (Debian's `busybox-static`).
pub const BUSYBOX: &str = "/bin/busybox";

/// The modules the guest needs for the 9p shares (with their dependencies; those built
/// into the kernel are skipped).
pub const MODULES: [&str; 3] = ["virtio_pci", "9pnet_virtio", "9p"];

/// Is this a CI run (`CI=true`), where missing prerequisites fail instead of skipping?
pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The cargo target directory this executable was built in (`target/debug/deps/X` gives
/// `target`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe has a parent").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir.pop();
    dir
}

/// Where kernel packages are extracted and kept between runs: `$KERNEL_MATRIX_CACHE`, or
/// `target/vm-kernels`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("KERNEL_MATRIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join("vm-kernels"))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// QEMU and a static busybox are there.
pub fn check_tools() -> Result<(), Error> {
    if !on_path(QEMU) {
        return Err(Error::Missing(format!(
            "{QEMU} is not installed (apt-get install qemu-system-x86)"
        )));
    }
    let busybox = std::fs::read(BUSYBOX)
        .map_err(|e| Error::Missing(format!("{BUSYBOX}: {e} (apt-get install busybox-static)")))?;
    match initramfs::elf_is_dynamic(&busybox) {
        Some(false) => Ok(()),
        Some(true) => Err(Error::Missing(format!(
            "{BUSYBOX} is dynamically linked; the initramfs needs a static one (apt-get install busybox-static)"
        ))),
        None => Err(Error::Missing(format!("{BUSYBOX} is not an x86-64 ELF program"))),
    }
}

/// The package to boot for `series` (`6.1`, `6.12`): the newest generic amd64 image
/// `apt-cache` knows, or else the newest one already in `cache`.
pub fn choose_package(series: &str, cache: &Path) -> Result<String, Error> {
    let search = Command::new("apt-cache")
        .args([
            "search",
            "--names-only",
            &format!("^linux-image-{series}\\."),
        ])
        .stderr(Stdio::null())
        .output();
    if let Ok(out) = &search {
        let text = String::from_utf8_lossy(&out.stdout);
        if let Some(name) = packages::newest(packages::search_names(&text), series) {
            return Ok(name.to_string());
        }
    }
    let cached: Vec<String> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("root/boot").is_dir())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    if let Some(name) = packages::newest(cached.iter().map(String::as_str), series) {
        return Ok(name.to_string());
    }
    Err(Error::Missing(format!(
        "no linux-image-{series}.*-amd64 package in apt-cache (run apt-get update) nor in {}",
        cache.display()
    )))
}

/// An extracted kernel package.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub package: String,
    /// `uname -r` of the kernel (the directory under `lib/modules`).
    pub release: String,
    /// The extracted package.
    pub root: PathBuf,
}

impl Kernel {
    pub fn vmlinuz(&self) -> PathBuf {
        self.root
            .join("boot")
            .join(format!("vmlinuz-{}", self.release))
    }

    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }
}

/// `apt-get download` is not safe to run twice at once in one directory tree: one at a time.
static FETCH: Mutex<()> = Mutex::new(());

fn run(cmd: &mut Command) -> Result<(), Error> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Missing(format!("cannot run {cmd:?}: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.lines().rfind(|l| !l.trim().is_empty()).unwrap_or("");
    Err(failed(format!("{cmd:?} failed ({}): {err}", out.status)))
}

/// Download `package` into `into` (made afresh) and extract it to `into/root`.
fn download(package: &str, into: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(into);
    std::fs::create_dir_all(into).map_err(|e| failed(format!("{}: {e}", into.display())))?;
    run(Command::new("apt-get")
        .args(["download", "-q", package])
        .current_dir(into))
    .map_err(|e| {
        Error::Missing(format!(
            "cannot download {package} (stale apt lists? run apt-get update): {e}"
        ))
    })?;
    let deb = std::fs::read_dir(into)
        .map_err(|e| failed(format!("{}: {e}", into.display())))?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| failed(format!("apt-get download {package} left no .deb")))?;
    run(Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(into.join("root")))?;
    std::fs::remove_file(&deb).map_err(|e| failed(format!("{}: {e}", deb.display())))
}

/// The kernel of `package`, downloaded and extracted into `cache/PACKAGE` unless already
/// there, with its `modules.dep` (made by `depmod -b` when the package has none).
pub fn fetch(cache: &Path, package: &str) -> Result<Kernel, Error> {
    let _one_at_a_time = FETCH.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache.join(package);
    if !dir.join("root/boot").is_dir() {
        if !on_path("apt-get") || !on_path("dpkg-deb") {
            return Err(Error::Missing(format!(
                "{package} is not in {} and apt-get/dpkg-deb are not there to fetch it",
                cache.display()
            )));
        }
        let partial = cache.join(format!(".{package}.partial-{}", std::process::id()));
        let fetched = download(package, &partial).and_then(|()| {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&partial, &dir)
                .map_err(|e| failed(format!("{} -> {}: {e}", partial.display(), dir.display())))
        });
        if fetched.is_err() {
            let _ = std::fs::remove_dir_all(&partial);
        }
        fetched?;
    }
    let root = dir.join("root");
    let release = std::fs::read_dir(root.join("lib/modules"))
        .map_err(|e| failed(format!("{package}: no lib/modules: {e}")))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .next()
        .ok_or_else(|| failed(format!("{package}: lib/modules is empty")))?;
    let kernel = Kernel {
        package: package.to_string(),
        release,
        root,
    };
    if !kernel.vmlinuz().is_file() {
        return Err(failed(format!(
            "{package}: no {}",
            kernel.vmlinuz().display()
        )));
    }
    if !kernel.modules_dir().join("modules.dep").is_file() {
        if !on_path("depmod") {
            return Err(Error::Missing(format!(
                "{package} has no modules.dep and depmod is not installed (apt-get install kmod)"
            )));
        }
        run(Command::new("depmod")
            .arg("-b")
            .arg(&kernel.root)
            .arg(&kernel.release))?;
    }
    Ok(kernel)
}

/// Remove the kernels of `series` in `cache` other than `keep` (older ones: a 6.1
/// package takes 400 MB extracted).
pub fn prune(cache: &Path, series: &str, keep: &str) {
    let names: Vec<String> = std::fs::read_dir(cache)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    for old in packages::superseded(names.iter().map(String::as_str), series, keep) {
        let _ = std::fs::remove_dir_all(cache.join(old));
    }
}

/// The initramfs of `kernel` (see [`initramfs`]): busybox, the 9p modules in load order,
/// `/dev/console`, and an `/init` that runs `job` (a path in the guest's chroot).
pub fn build_initramfs(kernel: &Kernel, job: &str) -> Result<Vec<u8>, Error> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| failed(format!("{}: {e}", p.display())));
    let dir = kernel.modules_dir();
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap_or_default();
    let builtin = std::fs::read_to_string(dir.join("modules.builtin")).unwrap_or_default();
    let order = packages::load_order(&dep, &builtin, &MODULES)
        .map_err(|e| failed(format!("{}: {e}", kernel.package)))?;
    let mut entries: Vec<Entry> = ["bin", "dev", "proc", "sys", "host", "mods"]
        .into_iter()
        .map(|d| Entry::Dir(d.into()))
        .collect();
    entries.push(Entry::CharDev {
        path: "dev/console".into(),
        major: 5,
        minor: 1,
    });
    entries.push(Entry::File {
        path: "bin/busybox".into(),
        mode: 0o755,
        data: read(Path::new(BUSYBOX))?,
    });
    let mut guest_modules = Vec::new();
    for path in &order {
        let file = path.rsplit('/').next().unwrap_or(path);
        let inside = format!("mods/{file}");
        entries.push(Entry::File {
            path: inside.clone(),
            mode: 0o644,
            data: read(&dir.join(path))?,
        });
        guest_modules.push(format!("/{inside}"));
    }
    entries.push(Entry::File {
        path: "init".into(),
        mode: 0o755,
        data: initramfs::init_script(&guest_modules, job).into_bytes(),
    });
    Ok(initramfs::cpio(&entries))
}

/// A directory under `target/kernel-matrix/`, removed on drop unless
/// `KERNEL_MATRIX_KEEP=1` (to look at a failed run).
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> Result<Scratch, Error> {
        static SEQ: AtomicUsize = AtomicUsize::new(0);
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = target_dir()
            .join("kernel-matrix")
            .join(format!("{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
        Ok(Scratch { path })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("KERNEL_MATRIX_KEEP").is_none() {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// How to boot.
#[derive(Debug, Clone)]
pub struct BootOptions {
    pub memory_mib: u32,
    pub cpus: u32,
    /// Until the guest prints [`initramfs::START_MARKER`].
    pub boot_timeout: Duration,
    /// Until QEMU exits, boot included.
    pub timeout: Duration,
}

impl Default for BootOptions {
    /// 1.5 GiB, one vCPU, 4 minutes to boot and `$KERNEL_MATRIX_TIMEOUT` seconds (default
    /// 600) in all: TCG on a busy 2-core machine is slow.
    fn default() -> Self {
        let timeout = std::env::var("KERNEL_MATRIX_TIMEOUT")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(600);
        BootOptions {
            memory_mib: 1536,
            cpus: 1,
            boot_timeout: Duration::from_secs(240),
            timeout: Duration::from_secs(timeout),
        }
    }
}

/// What a boot gave.
#[derive(Debug, Clone)]
pub struct Boot {
    /// The serial console, carriage returns removed.
    pub console: String,
    /// `uname -r` in the guest, from the start marker.
    pub guest_release: String,
    /// The job's exit status.
    pub status: i32,
    /// From starting QEMU to the start marker.
    pub boot_time: Duration,
    /// From starting QEMU to its exit.
    pub total_time: Duration,
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The kernel release the guest printed after [`initramfs::START_MARKER`] on its console
/// (anywhere in the line: the firmware's terminal escapes may come first).
pub fn guest_release(console: &str) -> Option<String> {
    console
        .lines()
        .find_map(|l| l.split_once(initramfs::START_MARKER))
        .map(|(_, release)| release.trim().to_string())
}

/// The guest kernel's command line. `no_timer_check`: under emulation on a loaded host
/// the kernel's check that the IO-APIC timer ticks can fail, and 6.1 then panics at boot
/// ("IO-APIC + timer doesn't work!"); the check proves nothing about an emulated timer.
pub const KERNEL_CMDLINE: &str = "console=ttyS0 quiet panic=-1 no_timer_check";

/// Boot `kernel` with `initrd`, `share` as the writable share the initramfs mounts at
/// [`initramfs::GUEST_SHARE`]; wait for QEMU to exit (killing it on a timeout) and return
/// the console and the job's status (which `/init` writes into the share).
pub fn boot(
    kernel: &Kernel,
    initrd: &Path,
    share: &Path,
    opts: &BootOptions,
) -> Result<Boot, Error> {
    let console_path = share.join("console.log");
    let console_file = std::fs::File::create(&console_path)
        .map_err(|e| failed(format!("{}: {e}", console_path.display())))?;
    let console_err = console_file
        .try_clone()
        .map_err(|e| failed(format!("{}: {e}", console_path.display())))?;
    let started = Instant::now();
    let mut child = Command::new(QEMU)
        .args(["-accel", "tcg", "-cpu", "max", "-nographic", "-no-reboot"])
        .args([
            "-m",
            &opts.memory_mib.to_string(),
            "-smp",
            &opts.cpus.to_string(),
        ])
        .arg("-kernel")
        .arg(kernel.vmlinuz())
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", KERNEL_CMDLINE])
        .args([
            "-virtfs",
            "local,path=/,mount_tag=host,security_model=none,readonly=on,multidevs=remap",
        ])
        .arg("-virtfs")
        .arg(format!(
            "local,path={},mount_tag=out,security_model=none,multidevs=remap",
            share.display()
        ))
        .stdin(Stdio::null())
        .stdout(console_file)
        .stderr(console_err)
        .spawn()
        .map_err(|e| Error::Missing(format!("cannot start {QEMU}: {e}")))?;
    let read_console = || {
        std::fs::read_to_string(&console_path)
            .unwrap_or_default()
            .replace('\r', "")
    };
    let mut boot_time = None;
    let exit = loop {
        if let Some(status) = child.try_wait().map_err(failed)? {
            break status;
        }
        let elapsed = started.elapsed();
        if boot_time.is_none() && read_console().contains(initramfs::START_MARKER) {
            boot_time = Some(elapsed);
        }
        let limit = if boot_time.is_none() {
            opts.boot_timeout
        } else {
            opts.timeout
        };
        if elapsed > limit {
            let _ = child.kill();
            let _ = child.wait();
            let stage = if boot_time.is_none() {
                "to boot"
            } else {
                "to run the job"
            };
            return Err(failed(format!(
                "{}: QEMU killed after {} s: took too long {stage}; console tail:\n{}",
                kernel.package,
                elapsed.as_secs(),
                tail(&read_console(), 30)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let total_time = started.elapsed();
    let console = read_console();
    let guest_release = guest_release(&console);
    let status = std::fs::read_to_string(share.join(initramfs::STATUS_FILE))
        .ok()
        .and_then(|s| s.trim().parse().ok());
    match (guest_release, status) {
        (Some(guest_release), Some(status)) => Ok(Boot {
            console,
            guest_release,
            status,
            boot_time: boot_time.unwrap_or(total_time),
            total_time,
        }),
        _ => Err(failed(format!(
            "{}: the guest did not finish its job (QEMU {exit}); console tail:\n{}",
            kernel.package,
            tail(&console, 30)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guest_skips_the_timer_check_that_panics_under_load() {
        // Seen on a loaded host: "Kernel panic - not syncing: IO-APIC + timer doesn't work!"
        let words: Vec<&str> = KERNEL_CMDLINE.split(' ').collect();
        assert!(words.contains(&"no_timer_check"), "{KERNEL_CMDLINE}");
        assert!(words.contains(&"console=ttyS0"), "{KERNEL_CMDLINE}");
    }

    #[test]
    fn the_guest_release_follows_the_start_marker_even_after_terminal_escapes() {
        // Real console of Debian's 6.1: SeaBIOS's screen-clearing escapes share the line.
        let console = "Booting from ROM...\nc\x1b[?7l\x1b[2J=== kmatrix guest start 6.1.0-57-amd64\n=== case 00-x: exit 0 in 1 ms\n";
        assert_eq!(guest_release(console).as_deref(), Some("6.1.0-57-amd64"));
        assert_eq!(
            guest_release("=== kmatrix guest start 6.12.1\n").as_deref(),
            Some("6.12.1")
        );
        assert_eq!(guest_release("Booting from ROM...\n"), None);
    }

    #[test]
    fn a_failed_download_is_missing_and_leaves_nothing_behind() {
        let cache = Scratch::new("fetch").unwrap();
        let err = fetch(&cache.path, "linux-image-0.0.0-0-amd64").unwrap_err();
        assert!(
            matches!(&err, Error::Missing(m) if m.contains("linux-image-0.0.0-0-amd64")),
            "{err:?}"
        );
        let left: Vec<_> = std::fs::read_dir(&cache.path).unwrap().flatten().collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }

    #[test]
    fn a_cached_package_is_chosen_when_apt_knows_none() {
        let dir = Scratch::new("choose").unwrap();
        std::fs::create_dir_all(dir.path.join("linux-image-0.7.0-3-amd64/root/boot")).unwrap();
        std::fs::create_dir_all(dir.path.join("linux-image-0.7.0-12-amd64/root/boot")).unwrap();
        // Half-extracted (no root/boot): not a candidate.
        std::fs::create_dir_all(dir.path.join("linux-image-0.7.0-30-amd64")).unwrap();
        assert_eq!(
            choose_package("0.7", &dir.path).unwrap(),
            "linux-image-0.7.0-12-amd64"
        );
        let err = choose_package("0.8", &dir.path).unwrap_err();
        assert!(matches!(err, Error::Missing(m) if m.contains("no linux-image-0.8.*-amd64")));
    }
}
