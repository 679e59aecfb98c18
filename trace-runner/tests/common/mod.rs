//! Helpers shared by the runner's integration tests: BPF availability (fail under
//! CI, skip with a message elsewhere), throwaway cgroup v2 directories, and driving
//! the real `trace-runner` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub fn runner() -> &'static str {
    env!("CARGO_BIN_EXE_trace-runner")
}

/// Can this process load BPF programs? Under `CI=true` a "no" fails the test.
pub fn require_bpf() -> bool {
    let ok = unsafe { libc::geteuid() } == 0 && Path::new("/sys/kernel/btf/vmlinux").exists();
    let tracefs = Path::new("/sys/kernel/tracing/events").is_dir()
        || Command::new("mount")
            .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
            .status()
            .is_ok_and(|s| s.success());
    if ok && tracefs {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("BPF is not available (need root, BTF and tracefs) and CI=true: failing instead of skipping");
    }
    eprintln!("skipping: BPF is not available here (need root and tracefs)");
    false
}

/// Where cgroup v2 is mounted.
pub fn cgroup2_root() -> PathBuf {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in text.lines() {
        let (left, right) = line.split_once(" - ").unwrap();
        if right.starts_with("cgroup2 ") {
            return PathBuf::from(left.split_whitespace().nth(4).unwrap());
        }
    }
    panic!("no cgroup2 mount")
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// A cgroup v2 directory removed (after its processes exit) on drop.
pub struct TestCgroup {
    pub path: PathBuf,
}

impl TestCgroup {
    pub fn new(name: &str) -> TestCgroup {
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let path = cgroup2_root().join(format!("kt-test-{}-{}-{n}", name, std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        TestCgroup { path }
    }

    pub fn child(&self, name: &str) -> TestCgroup {
        let path = self.path.join(name);
        std::fs::create_dir_all(&path).unwrap();
        TestCgroup { path }
    }

    /// A shell command that first moves itself into this cgroup, then execs `cmd`.
    pub fn command(&self, cmd: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c").arg(format!(
            "echo $$ > {}/cgroup.procs && exec {cmd}",
            self.path.display()
        ));
        c
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A running trace: started, waited on until BEGIN printed its marker line.
pub struct Trace {
    pub child: Child,
    stdout: Option<BufReader<std::process::ChildStdout>>,
    pub head: String,
}

impl Trace {
    /// Start `trace-runner run` with the given arguments; the script must print `ready`
    /// from a BEGIN block so the test knows every probe is attached.
    pub fn start(args: &[&str]) -> Trace {
        Trace::start_until(args, |line| line.trim() == "ready")
    }

    /// Start `trace-runner run` and read stdout until a line for which `marker` holds
    /// (e.g. the `Attaching N probes...` line of a compiled object, which has no BEGIN).
    pub fn start_until(args: &[&str], marker: fn(&str) -> bool) -> Trace {
        let mut child = Command::new(runner())
            .arg("run")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start trace-runner");
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut head = String::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut line = String::new();
            if stdout.read_line(&mut line).unwrap() == 0 {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("trace-runner ended before it was ready: {head}{err}");
            }
            head.push_str(&line);
            if marker(&line) {
                break;
            }
            assert!(Instant::now() < deadline, "trace-runner not ready in time");
        }
        Trace {
            child,
            stdout: Some(stdout),
            head,
        }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Send `sig` and collect what follows on stdout, plus the exit status code.
    pub fn stop(mut self, sig: i32) -> (String, Option<i32>) {
        unsafe { libc::kill(self.pid(), sig) };
        let mut rest = String::new();
        self.stdout
            .take()
            .unwrap()
            .read_to_string(&mut rest)
            .unwrap();
        let status = self.child.wait().unwrap();
        (rest, status.code())
    }
}

/// Run a command to completion, panicking on failure.
pub fn run_ok(cmd: &mut Command) {
    let status = cmd.status().expect("spawn workload");
    assert!(status.success(), "workload failed: {status}");
}

/// Count BPF programs loaded in the kernel (BPF_PROG_GET_NEXT_ID).
pub fn loaded_programs() -> usize {
    #[repr(C)]
    struct Attr {
        start_id: u32,
        next_id: u32,
        open_flags: u32,
    }
    let mut n = 0;
    let mut id = 0u32;
    loop {
        let mut attr = Attr {
            start_id: id,
            next_id: 0,
            open_flags: 0,
        };
        let r = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                11,
                &mut attr as *mut Attr,
                std::mem::size_of::<Attr>(),
            )
        };
        if r != 0 {
            return n;
        }
        n += 1;
        id = attr.next_id;
    }
}

/// The reference bpftrace binary the comparison tests run side by side with ours.
pub const BPFTRACE: &str = "/usr/bin/bpftrace";

/// Is bpftrace (the reference) installed? Under `CI=true` a "no" fails the test.
pub fn require_bpftrace() -> bool {
    if Path::new(BPFTRACE).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{BPFTRACE} is missing and CI=true: failing instead of skipping (apt-get install bpftrace)");
    }
    eprintln!("skipping: {BPFTRACE} is not installed");
    false
}

/// A node whose root is not this process's: `root` holds a copy of bash at
/// `/usr/bin/app`, a shell script at `/usr/bin/apscript`, this machine's libc at
/// `/usr/lib/x86_64-linux-gnu/libc.so.6`, and `/bin` and `/lib` as absolute links to
/// their `/usr` directories (which lead nowhere useful if followed outside the root);
/// `proc` is a `--host-proc` whose pid 1 has that root. Removed on drop.
pub struct FakeNode {
    pub dir: PathBuf,
    pub root: PathBuf,
    pub proc: PathBuf,
}

pub const NODE_LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";

impl FakeNode {
    pub fn new(tag: &str) -> FakeNode {
        use std::os::unix::fs::symlink;
        let n = SEQ.fetch_add(1, Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!(
            "trace-runner-node-{tag}-{}-{n}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (root, proc) = (dir.join("root"), dir.join("proc"));
        let libs = root.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(&libs).unwrap();
        std::fs::create_dir_all(proc.join("1")).unwrap();
        symlink(&root, proc.join("1/root")).unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        std::fs::copy("/bin/bash", root.join("usr/bin/app")).unwrap();
        std::fs::write(root.join("usr/bin/apscript"), "#!/bin/sh\n").unwrap();
        std::fs::copy(NODE_LIBC, libs.join("libc.so.6")).unwrap();
        FakeNode { dir, root, proc }
    }

    /// `n` `echo` builtins in the node's bash.
    pub fn echo_loop(&self, n: usize) {
        run_ok(Command::new(self.root.join("usr/bin/app")).args([
            "-c",
            &format!("for i in $(seq 1 {n}); do echo x >/dev/null; done"),
        ]));
    }

    /// `n` `getppid` calls through the node's libc (its copy, not this machine's).
    pub fn getppid_loop(&self, n: usize) {
        run_ok(
            Command::new("/usr/bin/python3")
                .args([
                    "-c",
                    &format!("import os\nfor _ in range({n}): os.getppid()"),
                ])
                .env(
                    "LD_LIBRARY_PATH",
                    self.root.join("usr/lib/x86_64-linux-gnu"),
                ),
        );
    }
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `trace-runner run -e SCRIPT PARAMS...`, which must succeed: its stdout.
pub fn run_script(script: &str, params: &[&str]) -> String {
    let out = Command::new(runner())
        .args(["run", "-e", script])
        .args(params)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
