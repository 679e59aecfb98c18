//! Attach-point forms and probe types end to end through the binary, against real
//! attaches: uprobe locations `func+N` and addresses (with bpftrace's bounds and
//! resolution errors), the order in which several blocks on one uprobe run, and
//! `software:` perf-event probes with their listing.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Runs `trace-runner run -e script` while bash's `echo` builtin runs every 100 ms.
fn run_with_bash_echo(script: &str) -> Output {
    let mut child = Command::new(runner())
        .args(["run", "-e", script])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "{script}: did not end in time");
        Command::new("/bin/bash")
            .args(["-c", "echo lala"])
            .stdout(Stdio::null())
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn uprobe_at_a_function_offset_fires() {
    if !require_bpf() {
        return;
    }
    // Before: "symbol 'echo_builtin+0' not found ... is skipped", nothing to trace.
    for script in [
        r#"uprobe:/bin/bash:echo_builtin+0 { printf("hit %d\n", arg0 != 0); exit(); }"#,
        r#"uprobe:/bin/bash:"echo_builtin"+4 { printf("hit %d\n", 1); exit(); }"#,
    ] {
        let out = run_with_bash_echo(script);
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("hit 1\n"),
            "{}",
            text(&out.stdout)
        );
    }
}

#[test]
fn uprobe_offset_past_the_function_and_unresolved_address_are_errors() {
    if !require_bpf() {
        return;
    }
    for (script, want) in [
        (
            "uprobe:/bin/bash:echo_builtin+1000000 { exit(); }",
            "error: Offset outside the function bounds ('echo_builtin' size is ",
        ),
        (
            "uprobe:/bin/bash:10 { exit(); }",
            "error: Could not resolve address: /bin/bash:0xa\n",
        ),
    ] {
        let out = Command::new(runner())
            .args(["run", "-e", script])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{script}: {err}");
        assert!(err.contains(want), "{script}: {err}");
        assert_eq!(err.lines().count(), 1, "{script}: {err}");
    }
}

#[test]
fn uprobe_at_a_function_address_fires() {
    if !require_bpf() {
        return;
    }
    // The address of echo_builtin + 4, as `nm -D` prints it.
    let nm = Command::new("nm")
        .args(["-D", "/bin/bash"])
        .output()
        .unwrap();
    let addr = text(&nm.stdout)
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "echo_builtin").then(|| u64::from_str_radix(f[0], 16).unwrap())
        })
        .expect("echo_builtin in /bin/bash's symbols");
    let script = format!(
        r#"uprobe:/bin/bash:{:#x} {{ printf("%s\n", probe); exit(); }}"#,
        addr + 4
    );
    let out = run_with_bash_echo(&script);
    assert!(out.status.success(), "{script}: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("uprobe:/bin/bash:{:#x}\n", addr + 4)),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn blocks_on_one_uprobe_run_in_script_order() {
    if !require_bpf() {
        return;
    }
    // Before: the kernel ran the last-attached block first ("second" without "first").
    for kind in ["uprobe", "uretprobe"] {
        let script = format!(
            r#"{kind}:/bin/bash:echo_builtin {{ @r1 = 1; if (@go == 1) {{ printf("first"); }} }}
               {kind}:/bin/bash:echo_builtin {{ @r2 = 1; if (@go == 1) {{ printf(" second\n"); exit(); }} }}
               {kind}:/bin/bash:echo_builtin {{ if (@r1 == 1 && @r2 == 1) {{ @go = 1; }} }}"#
        );
        let out = run_with_bash_echo(&script);
        assert!(out.status.success(), "{script}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).contains("first second\n"),
            "{kind}: {}",
            text(&out.stdout)
        );
    }
}

#[test]
fn software_probes_fire_and_run_in_script_order() {
    if !require_bpf() {
        return;
    }
    // Before: "Software probes are not supported yet".
    let out = run_with_bash_echo(r#"software:page-faults:1 { printf("%s\n", probe); exit(); }"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Attaching 1 probe...\nsoftware:page-faults:1\n"),
        "{}",
        text(&out.stdout)
    );
    let out = run_with_bash_echo(
        r#"software:faults:1 { @r1 = 1; if (@go == 1) { printf("first"); } }
           software:faults:1 { @r2 = 1; if (@go == 1) { printf(" second\n"); exit(); } }
           software:faults:1 { if (@r1 == 1 && @r2 == 1) { @go = 1; } }"#,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("first second\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn software_and_hardware_events_are_listed() {
    let list = |pattern: &str| {
        let out = Command::new(runner())
            .args(["bpftrace", "-l", pattern])
            .output()
            .unwrap();
        assert!(out.status.success(), "{pattern}: {}", text(&out.stderr));
        text(&out.stdout)
    };
    let sw = list("software:*");
    assert!(sw.lines().any(|l| l == "software:page-faults:"), "{sw}");
    assert!(sw.lines().all(|l| l.starts_with("software:")), "{sw}");
    let both = list("*ware:*");
    assert!(
        both.lines().any(|l| l == "hardware:cache-misses:"),
        "{both}"
    );
    assert!(both.lines().any(|l| l == "software:cpu-clock:"), "{both}");
}

#[test]
fn banned_kretprobes_and_non_module_kprobe_parts_are_refused_before_kprobe_checks() {
    // Before, on a kernel without kprobes: "this kernel has no kprobes" or "nothing to
    // trace", not bpftrace's refusal.
    for (script, want) in [
        (
            "kretprobe:queued_spin_lock_slowpath { exit(); }",
            "stdin:1:1: error: kretprobe:queued_spin_lock_slowpath can't be used as it might lock up your system.",
        ),
        (
            "kretprobe:_raw_spin_lock { exit(); }",
            "stdin:1:1: error: kretprobe:_raw_spin_lock can't be used as it might lock up your system.",
        ),
        (
            "kprobe:syscalls:sys_exit_nanosleep { exit(); }",
            "stdin:1:1: ERROR: kprobe probe type requires 1 argument ('syscalls' is not a loaded kernel module)",
        ),
    ] {
        let out = Command::new(runner())
            .args(["bpftrace", "-e", script])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{script}: {err}");
        assert_eq!(err.lines().next(), Some(want), "{script}: {err}");
    }
}

#[test]
fn uprobe_function_wildcards_expand_to_each_function() {
    if !require_bpf() {
        return;
    }
    // Before: "cannot attach uprobe:/bin/bash:echo_bui*ltin: ... unknown symbol".
    let out =
        run_with_bash_echo(r#"uprobe:/bin/bash:echo_bui*ltin { printf("%s\n", probe); exit(); }"#);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Attaching 1 probe...\nuprobe:/bin/bash:echo_builtin\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn uprobe_listing_with_a_wildcarded_file() {
    // Before: "error: uprobe target '/bin/ba*' not found".
    let out = Command::new(runner())
        .args(["bpftrace", "-l", "uprobe:/bin/ba*:echo_builtin"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout)
            .lines()
            .any(|l| l == "uprobe:/bin/bash:echo_builtin"),
        "{}",
        text(&out.stdout)
    );
    assert!(text(&out.stdout)
        .lines()
        .all(|l| l.starts_with("uprobe:/bin/ba")));
}

#[test]
fn uprobe_on_a_binary_in_another_mount_namespace() {
    if !require_bpf() {
        return;
    }
    // A bash that exists only in a private mount namespace (a tmpfs over an empty dir),
    // running its `echo` builtin in a loop. Before: "uprobe target ... not found".
    let dir = format!("/tmp/trace-runner-mntns-{}", std::process::id());
    std::fs::create_dir_all(&dir).unwrap();
    let inner = format!(
        "mount -t tmpfs none {dir} && cp /bin/bash {dir}/bash && exec {dir}/bash -c 'while :; do echo lala >/dev/null; sleep 0.1; done'"
    );
    let mut ns = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &inner])
        .spawn()
        .expect("unshare (util-linux)");
    let pid = ns.id();
    let inside = format!("/proc/{pid}/root{dir}/bash");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::path::Path::new(&inside).exists() {
        assert!(
            Instant::now() < deadline,
            "the namespace's bash did not appear"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!std::path::Path::new(&format!("{dir}/bash")).exists());
    let script = format!(r#"uprobe:{dir}/bash:echo_builtin {{ printf("%s\n", probe); exit(); }}"#);
    let out = Command::new(runner())
        .args(["bpftrace", "-p", &pid.to_string(), "-e", &script])
        .output()
        .unwrap();
    let _ = ns.kill();
    let _ = ns.wait();
    let _ = std::fs::remove_dir(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains(&format!("uprobe:{dir}/bash:echo_builtin\n")),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn verbose_uprobe_listing_shows_dwarf_parameters() {
    // A small C program built with debug info. Before: the names only, no parameters.
    let dir = std::env::temp_dir().join(format!("trace-runner-dwarf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("prog.c");
    std::fs::write(
        &src,
        "struct Pair { int a; long b; };\n\
         union U { int i; char c; };\n\
         int __attribute__((noinline)) take(const char *name, struct Pair *p, union U u, unsigned long n[]) { return name[0] + p->a + u.i + (int)n[0]; }\n\
         int main(int argc, char **argv) { struct Pair p = {1, 2}; union U u = {3}; unsigned long n[1] = {4}; return take(argv[0], &p, u, n) + argc; }\n",
    )
    .unwrap();
    let exe = dir.join("prog");
    let cc = Command::new("cc")
        .args(["-g", "-O0", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler (cc)");
    assert!(cc.success());
    let pattern = format!("uprobe:{}:*", exe.display());
    let out = Command::new(runner())
        .args(["bpftrace", "-lv", &pattern])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let listing = text(&out.stdout);
    let exe = exe.display();
    assert!(
        listing.contains(&format!(
            "uprobe:{exe}:main\n    int argc\n    char** argv\n"
        )),
        "{listing}"
    );
    assert!(
        listing.contains(&format!(
            "uprobe:{exe}:take\n    const char* name\n    struct Pair* p\n    union U u\n    long unsigned int* n\n"
        )),
        "{listing}"
    );
}

#[test]
fn watchpoint_on_an_absolute_address_of_the_command() {
    if !require_bpf() {
        return;
    }
    // A program that writes to a fixed address in a loop. Before: "probe type
    // 'watchpoint' is not supported".
    let dir = std::env::temp_dir().join(format!("trace-runner-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("w.c");
    std::fs::write(
        &src,
        "#include <sys/mman.h>\n\
         int main(void) { volatile unsigned char *p = mmap((void *)0x10000000, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);\n\
         if (p == MAP_FAILED) return 1; for (unsigned i = 0; i < 2000000000u; i++) p[0] = i; return 0; }\n",
    )
    .unwrap();
    let exe = dir.join("w");
    let cc = Command::new("cc")
        .args(["-O0", "-o"])
        .arg(&exe)
        .arg(&src)
        .status()
        .expect("a C compiler (cc)");
    assert!(cc.success());
    let out = Command::new(runner())
        .args([
            "bpftrace",
            "-e",
            r#"watchpoint:0x10000000:8:w { printf("hit %s\n", probe); exit() }"#,
            "-c",
        ])
        .arg(&exe)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("Attaching 1 probe...\nhit watchpoint:0x10000000:8:w\n"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn watchpoint_attach_points_are_checked_as_bpftrace_checks_them() {
    for (point, want) in [
        (
            "watchpoint:0x1000:3:w",
            "watchpoint length must be one of (1,2,4,8)",
        ),
        (
            "watchpoint:0x1000:4:q",
            "watchpoint mode must be combination of (r,w,x)",
        ),
        (
            "watchpoint:0x1000:4",
            "watchpoint probe type requires 3 arguments",
        ),
        (
            "watchpoint:0x1000:4:rr",
            "watchpoint modes may not be duplicated",
        ),
        ("watchpoint:0x1000:4:rx", "invalid watchpoint mode: rx"),
    ] {
        let out = Command::new(runner())
            .args(["bpftrace", "-e", &format!("{point} {{ }}")])
            .output()
            .unwrap();
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{point}: {err}");
        assert_eq!(
            err.lines().next(),
            Some(format!("stdin:1:1: ERROR: {want}").as_str()),
            "{point}: {err}"
        );
    }
}
