//! The command line under hostile input: options placed after the script file are
//! honoured (each scope option counts exactly its target's events; `--deadline` stops the
//! run), `--` passes hyphen-leading words as parameters, and bad `--pid`, `--trace-id`
//! and non-UTF-8 scripts get one clear error and load nothing.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

const COUNT: &str =
    "BEGIN { printf(\"ready\\n\"); } tracepoint:syscalls:sys_enter_getppid { @ = count(); }\n";

/// A script file in a fresh directory, removed on drop.
struct Script {
    dir: PathBuf,
    path: String,
}

impl Script {
    fn new(name: &str, text: &[u8]) -> Script {
        let dir = std::env::temp_dir().join(format!("kt-cli-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.bt"));
        std::fs::write(&path, text).unwrap();
        Script {
            path: path.to_str().unwrap().to_string(),
            dir,
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn getppid_loop(n: usize) -> String {
    format!("/usr/bin/python3 -c 'import os\nfor _ in range({n}): os.getppid()'")
}

fn run(args: &[&str]) -> Output {
    Command::new(runner()).args(args).output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn pid_after_the_script_file_scopes_the_trace() {
    if !require_bpf() {
        return;
    }
    let sc = Script::new("pid", COUNT.as_bytes());
    let mut child = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg("import os, sys\nsys.stdin.readline()\nfor _ in range(321): os.getppid()")
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let trace = Trace::start(&[&sc.path, "--pid", &pid]);
    run_ok(Command::new("sh").arg("-c").arg(getppid_loop(99)));
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    child.wait().unwrap();
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@: 321\n"),
        "--pid after the file: only the process's 321 calls, got:\n{out}"
    );
}

#[test]
fn cgroup_after_the_script_file_scopes_the_trace() {
    if !require_bpf() {
        return;
    }
    let sc = Script::new("cgroup", COUNT.as_bytes());
    let target = TestCgroup::new("cli-scope");
    let cg = target.path.to_str().unwrap().to_string();
    let trace = Trace::start(&[&sc.path, "--cgroup", &cg]);
    run_ok(&mut target.command(&getppid_loop(123)));
    run_ok(Command::new("sh").arg("-c").arg(getppid_loop(77)));
    let (out, code) = trace.stop(libc::SIGTERM);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@: 123\n"),
        "--cgroup after the file: only the cgroup's 123 calls, got:\n{out}"
    );
}

/// A kubelet-style pod: `kubepods.slice/kubepods-besteffort.slice/
/// kubepods-besteffort-pod<uid_>.slice/cri-containerd-<id>.scope`, two containers.
struct Pod {
    uid: String,
    dirs: Vec<PathBuf>,
}

impl Pod {
    fn new() -> Pod {
        let n = std::process::id();
        let uid = format!("5e1f0c2a-77b3-4c1e-9d2f-{n:012}");
        let mut pod = Pod {
            uid,
            dirs: Vec::new(),
        };
        for id in ["c1", "c2"] {
            let dir = pod.container_dir(id);
            std::fs::create_dir_all(&dir).unwrap();
            pod.dirs.push(dir);
        }
        pod
    }

    fn pod_dir(&self) -> PathBuf {
        cgroup2_root()
            .join("kubepods.slice/kubepods-besteffort.slice")
            .join(format!(
                "kubepods-besteffort-pod{}.slice",
                self.uid.replace('-', "_")
            ))
    }

    fn container_id(id: &str) -> String {
        format!("{id}cafe{:08}", std::process::id())
    }

    fn container_dir(&self, id: &str) -> PathBuf {
        self.pod_dir()
            .join(format!("cri-containerd-{}.scope", Pod::container_id(id)))
    }

    fn workload(&self, id: &str, n: usize) {
        let cmd = format!(
            "echo $$ > {}/cgroup.procs && exec {}",
            self.container_dir(id).display(),
            getppid_loop(n)
        );
        run_ok(Command::new("sh").arg("-c").arg(cmd));
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        for d in self.dirs.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
        let _ = std::fs::remove_dir(self.pod_dir());
    }
}

#[test]
fn pod_uid_and_container_id_after_the_script_file_scope_the_trace() {
    if !require_bpf() {
        return;
    }
    let sc = Script::new("pod", COUNT.as_bytes());
    let pod = Pod::new();
    let c1 = format!("containerd://{}", Pod::container_id("c1"));
    let whole = Trace::start(&[&sc.path, "--pod-uid", &pod.uid]);
    let one = Trace::start(&[&sc.path, "--pod-uid", &pod.uid, "--container-id", &c1]);
    pod.workload("c1", 250);
    pod.workload("c2", 40);
    run_ok(Command::new("sh").arg("-c").arg(getppid_loop(500)));
    let (whole_out, code) = whole.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{whole_out}");
    let (one_out, code) = one.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{one_out}");
    assert!(
        whole_out.contains("@: 290\n"),
        "--pod-uid after the file: both containers' 290 calls, got:\n{whole_out}"
    );
    assert!(
        one_out.contains("@: 250\n"),
        "--container-id after the file: that container's 250 calls, got:\n{one_out}"
    );
}

#[test]
fn deadline_after_the_script_file_stops_the_run() {
    if !require_bpf() {
        return;
    }
    let sc = Script::new(
        "deadline",
        b"interval:ms:100 { @ticks = count(); } END { printf(\"end ran\\n\"); }\n",
    );
    let t = Instant::now();
    let mut child = Command::new(runner())
        .args(["run", &sc.path, "--deadline", "2s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bounded wait: before the fix the run never ended.
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t.elapsed() > Duration::from_secs(15) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("`run FILE --deadline 2s` did not stop within 15 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let elapsed = t.elapsed();
    let out = child.wait_with_output().unwrap();
    let stdout = text(&out.stdout);
    assert!(status.success(), "{stdout}{}", text(&out.stderr));
    assert!(
        elapsed >= Duration::from_millis(1900) && elapsed < Duration::from_secs(8),
        "stopped after {elapsed:?}"
    );
    assert!(stdout.contains("end ran\n"), "END ran: {stdout}");
    assert!(stdout.contains("@ticks: "), "maps printed: {stdout}");
}

#[test]
fn words_after_double_dash_are_parameters() {
    if !require_bpf() {
        return;
    }
    let sc = Script::new(
        "params",
        b"BEGIN { printf(\"[%d] [%s] [%d]\\n\", $1, str($2), $#); exit(); }\n",
    );
    let out = run(&["run", &sc.path, "--", "-5", "--x"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("[-5] [--x] [2]\n"),
        "{}",
        text(&out.stdout)
    );
    // Options and parameters mixed: the options are taken out wherever they stand.
    let out = run(&[
        "run",
        &sc.path,
        "7",
        "--deadline",
        "5s",
        "y",
        "--format",
        "text",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("[7] [y] [2]\n"),
        "{}",
        text(&out.stdout)
    );
    // Without `--`, a hyphen-leading word is an unknown option: an error, not a parameter.
    let out = run(&["check", &sc.path, "-5"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("'-5'"), "{}", text(&out.stderr));
    // check and build take options after the file too.
    let obj = sc.dir.join("params.o");
    let out = run(&[
        "build",
        &sc.path,
        "-o",
        obj.to_str().unwrap(),
        "--",
        "-1",
        "z",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(obj.is_file());
}

#[test]
fn help_shows_where_options_and_parameters_go() {
    for sub in ["run", "check", "build"] {
        let out = run(&[sub, "--help"]);
        let help = text(&out.stdout);
        assert!(out.status.success());
        assert!(
            help.contains(&format!("trace-runner {sub} [OPTIONS]"))
                && help.contains("(-e PROGRAM | FILE) [[--] ARGS...]"),
            "{help}"
        );
    }
}

/// `err` is one line (plus the newline), and no BPF program was loaded for it.
fn assert_one_line_error(out: &Output, code: i32, needle: &str) {
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err:?}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    assert!(
        !text(&out.stdout).contains("Attaching"),
        "nothing loaded: {}",
        text(&out.stdout)
    );
}

#[test]
fn bad_pid_is_rejected_before_anything_loads() {
    let prog = "BEGIN { printf(\"began\\n\"); exit(); }";
    assert_one_line_error(
        &run(&["run", "-e", prog, "--pid", "0"]),
        2,
        "--pid 0 is not a process",
    );
    // A pid above the kernel's limit (pid_max is at most 2^22): no such process.
    assert_one_line_error(
        &run(&["run", "-e", prog, "--pid", "99999999"]),
        1,
        "--pid 99999999: no such process",
    );
    // Looked up under --host-proc (the host's /proc in a trace pod).
    let fake = std::env::temp_dir().join(format!("kt-cli-proc-{}", std::process::id()));
    std::fs::create_dir_all(&fake).unwrap();
    let own = std::process::id().to_string();
    assert_one_line_error(
        &run(&[
            "run",
            "-e",
            prog,
            "--host-proc",
            fake.to_str().unwrap(),
            "--pid",
            &own,
        ]),
        1,
        "no such process",
    );
    std::fs::remove_dir_all(&fake).unwrap();
}

#[test]
fn bad_trace_id_is_rejected() {
    let base = std::env::temp_dir().join(format!("kt-cli-ids-{}", std::process::id()));
    let prog = "BEGIN { exit(); }";
    for (id, why) in [
        ("a\nb", "control character"),
        ("a/b", "'/'"),
        ("-x", "starts with '-'"),
        ("", "empty"),
        ("..", "parent"),
    ] {
        let arg = format!("--trace-id={id}");
        let out = run(&[
            "run",
            "-e",
            prog,
            "--output-dir",
            base.to_str().unwrap(),
            &arg,
        ]);
        assert_one_line_error(&out, 2, why);
        assert!(!base.exists(), "nothing created for {id:?}");
    }
}

#[test]
fn non_utf8_script_is_located_at_the_bad_byte() {
    let sc = Script::new(
        "latin1",
        b"BEGIN {\n  printf(\"caf\xe9\\n\");\n  exit();\n}\n",
    );
    for args in [
        vec!["run", sc.path.as_str()],
        vec!["check", sc.path.as_str()],
        vec!["build", "-o", "/dev/null", sc.path.as_str()],
    ] {
        let out = run(&args);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(
            lines,
            [
                format!(
                    "{}:2:14: error: invalid UTF-8 (byte 0xe9): scripts must be UTF-8 text",
                    sc.path
                )
                .as_str(),
                "  printf(\"caf\u{fffd}\\n\");",
                "             ^",
            ],
            "{args:?}"
        );
    }
    assert!(Path::new(&sc.path).exists());
}
