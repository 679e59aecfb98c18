//! Live comparisons with the reference: the same script, run by bpftrace 0.17 and by
//! `trace-runner` at the same time over the same deterministic workload, must print
//! the same thing (byte for byte after the `Attaching N probes...` and `ready` lines:
//! printf output, then the maps at exit).
//!
//! The workload is a small C program compiled with `cc` once per test run. It opens
//! `/dev/zero` and `/dev/null`, pins itself to its current CPU (so printf records reach
//! both tracers in one order), renames itself with `prctl(PR_SET_NAME)` to the comm
//! the test chose, and only then performs the syscalls listed on its command line
//! (`read:N`, `write:N`, `getppid`, `lseek:OFF[:WHENCE]`, `open:PATH`, `close:FD`, each
//! optionally repeated with `*K`). Every script filters on that comm, and each test has
//! its own (`ktwl1`, `ktwl2`, ...), so tests can run in parallel and nothing from the
//! loader or other processes enters the maps. bpftrace orders ties in count/sum/value
//! maps by hash order, so each workload gives distinct values per key.
//!
//! Both tracers are started together; the workload runs once both printed `ready`
//! from BEGIN; then both get SIGINT.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// The workload's source: see the module doc for its command line.
const WORKLOAD_C: &str = r#"
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

static char buf[1 << 16];

int main(int argc, char **argv) {
    int zero = open("/dev/zero", O_RDONLY);
    int null = open("/dev/null", O_WRONLY);
    if (argc < 2 || zero < 0 || null < 0) _exit(2);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(sched_getcpu(), &set);
    sched_setaffinity(0, sizeof set, &set);
    if (prctl(PR_SET_NAME, argv[1], 0, 0, 0) != 0) _exit(2);
    for (int i = 2; i < argc; i++) {
        char *op = argv[i];
        long times = 1;
        char *star = strrchr(op, '*');
        if (star) { *star = 0; times = strtol(star + 1, 0, 10); }
        char *arg = strchr(op, ':');
        if (arg) *arg++ = 0;
        for (long t = 0; t < times; t++) {
            if (!strcmp(op, "read")) {
                if (read(zero, buf, strtol(arg, 0, 10)) < 0) _exit(3);
            } else if (!strcmp(op, "write")) {
                if (write(null, buf, strtol(arg, 0, 10)) < 0) _exit(3);
            } else if (!strcmp(op, "getppid")) {
                getppid();
            } else if (!strcmp(op, "lseek")) {
                char *w = strchr(arg, ':');
                lseek(zero, strtol(arg, 0, 10), w ? atoi(w + 1) : SEEK_SET);
            } else if (!strcmp(op, "open")) {
                int fd = open(arg, O_RDONLY);
                if (fd >= 0) close(fd);
            } else if (!strcmp(op, "close")) {
                close(atoi(arg));
            } else {
                _exit(4);
            }
        }
    }
    _exit(0);
}
"#;

/// The compiled workload (built once per test binary run).
fn workload_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir =
            Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("ktwl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("ktwl.c");
        std::fs::write(&src, WORKLOAD_C).unwrap();
        let bin = dir.join("ktwl-bin");
        let out = Command::new("cc")
            .args(["-O1", "-Wall", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run cc (needed to build the workload)");
        assert!(
            out.status.success(),
            "cc failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Run the workload as `comm` with the given operations; it must exit 0.
fn run_workload(comm: &str, ops: &[&str]) {
    assert!(comm.len() <= 15, "comm {comm:?} is longer than 15 bytes");
    let status = Command::new(workload_bin())
        .arg(comm)
        .args(ops)
        .status()
        .expect("start workload");
    assert!(status.success(), "workload {ops:?} failed: {status}");
}

/// The `ready` line under `-f json` / `--format json`.
const READY_JSON: &str = "{\"type\": \"printf\", \"data\": \"ready\\n\"}\n";

/// A tracer process whose stdout is read by a thread: it signals `ready` and returns
/// everything printed after the `ready` line.
struct Tracer {
    name: &'static str,
    child: Child,
    ready: mpsc::Receiver<String>,
    out: JoinHandle<String>,
    err: JoinHandle<String>,
}

impl Tracer {
    fn spawn(name: &'static str, mut cmd: Command) -> Tracer {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let (tx, ready) = mpsc::channel();
        let out = std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    // Ended before `ready`: the receiver sees the channel close.
                    return head;
                }
                head.push_str(&line);
                if line == "ready\n" || line == READY_JSON {
                    break;
                }
            }
            let _ = tx.send(head);
            let mut rest = Vec::new();
            r.read_to_end(&mut rest).unwrap();
            String::from_utf8_lossy(&rest).into_owned()
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        Tracer {
            name,
            child,
            ready,
            out,
            err,
        }
    }

    /// Wait until BEGIN printed `ready` (every probe attached); returns the header.
    fn wait_ready(&mut self, deadline: Instant) -> Result<String, String> {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.ready.recv_timeout(left) {
            Ok(head) => Ok(head),
            Err(e) => Err(format!("{} was not ready ({e:?})", self.name)),
        }
    }

    fn kill(&mut self, sig: i32) {
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// After a signal: wait (at most `limit`) for the exit, sending `resend` again
    /// every second meanwhile if given; returns (stdout after `ready`, stderr, exit
    /// code).
    fn finish(mut self, limit: Duration, resend: Option<i32>) -> (String, String, Option<i32>) {
        let end = Instant::now() + limit;
        let mut next = Instant::now() + Duration::from_secs(1);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if let Some(sig) = resend.filter(|_| Instant::now() > next) {
                self.kill(sig);
                next = Instant::now() + Duration::from_secs(1);
            }
            if Instant::now() > end {
                let state = process_state(self.child.id());
                self.kill(libc::SIGKILL);
                let _ = self.child.wait();
                let out = self.out.join().unwrap();
                let err = self.err.join().unwrap();
                panic!(
                    "{} did not exit after the signal:\n{state}\n--- stdout:\n{out}\n--- stderr:\n{err}",
                    self.name
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = self.out.join().unwrap();
        let err = self.err.join().unwrap();
        (out, err, status.code())
    }
}

/// Where a process that does not exit is stuck: per thread, its state and wait
/// channel, plus the signal masks.
fn process_state(pid: u32) -> String {
    let mut report = String::new();
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status
            .lines()
            .filter(|l| l.starts_with("Sig") || l.starts_with("State"))
        {
            report.push_str(line);
            report.push('\n');
        }
    }
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let p = task.path();
            let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
            report.push_str(&format!(
                "task {}: {} wchan={} stack:\n{}",
                task.file_name().to_string_lossy(),
                read("comm").trim(),
                read("wchan"),
                read("stack")
            ));
        }
    }
    report
}

/// What both tracers printed after `ready`.
struct Outputs {
    bpftrace: String,
    ours: String,
}

/// Run `script` (with `"COMM"` replaced by `"<comm>"` and a BEGIN that prints
/// `ready`) in bpftrace and in trace-runner at once, run the workload, SIGINT both.
fn run_both(comm: &str, script: &str, ops: &[&str], json: bool) -> Option<Outputs> {
    if !require_bpf() || !require_bpftrace() {
        return None;
    }
    let bin = workload_bin();
    assert!(bin.exists());
    // Preprocessor lines must come before any probe for bpftrace: they stay first.
    let script = script.replace("\"COMM\"", &format!("\"{comm}\""));
    let split = script
        .lines()
        .take_while(|l| l.trim_start().starts_with('#'))
        .map(|l| l.len() + 1)
        .sum::<usize>()
        .min(script.len());
    let (directives, probes) = script.split_at(split);
    let program = format!("{directives}BEGIN {{ printf(\"ready\\n\"); }}\n{probes}");
    let mut bt = Command::new(BPFTRACE);
    if json {
        bt.args(["-f", "json"]);
    }
    bt.args(["-e", &program]);
    let mut tr = Command::new(runner());
    tr.arg("run");
    if json {
        tr.args(["--format", "json"]);
    }
    tr.args(["-e", &program]);
    let mut bt = Tracer::spawn("bpftrace", bt);
    let mut tr = Tracer::spawn("trace-runner", tr);

    let deadline = Instant::now() + Duration::from_secs(60);
    let readiness = [bt.wait_ready(deadline), tr.wait_ready(deadline)];
    if readiness.iter().any(Result::is_err) {
        bt.kill(libc::SIGKILL);
        tr.kill(libc::SIGKILL);
        let (bo, be, _) = bt.finish(Duration::from_secs(10), None);
        let (to, te, _) = tr.finish(Duration::from_secs(10), None);
        panic!(
            "{readiness:?}\nscript:\n{program}\n--- bpftrace stdout:\n{bo}\n--- stderr:\n{be}\n--- trace-runner stdout:\n{to}\n--- stderr:\n{te}"
        );
    }

    run_workload(comm, ops);
    // printf records travel through per-CPU buffers read asynchronously: let both
    // tracers drain them before the exit.
    std::thread::sleep(Duration::from_millis(300));
    bt.kill(libc::SIGINT);
    tr.kill(libc::SIGINT);
    // bpftrace 0.17 only checks for SIGINT when it interrupts its epoll_wait: one
    // that lands while it handles events (more likely on a loaded machine) is lost
    // and it keeps running. Repeat it for bpftrace, never for trace-runner.
    let (bpftrace, bt_err, bt_code) = bt.finish(Duration::from_secs(20), Some(libc::SIGINT));
    let (ours, tr_err, tr_code) = tr.finish(Duration::from_secs(20), None);
    assert_eq!(bt_code, Some(0), "bpftrace failed:\n{bt_err}");
    assert_eq!(tr_code, Some(0), "trace-runner failed:\n{tr_err}");
    Some(Outputs { bpftrace, ours })
}

/// Side by side, with invisible characters shown, marking the lines that differ.
fn diff(bpftrace: &str, ours: &str) -> String {
    let b: Vec<&str> = bpftrace.split_inclusive('\n').collect();
    let o: Vec<&str> = ours.split_inclusive('\n').collect();
    let mut report = String::new();
    for i in 0..b.len().max(o.len()) {
        let (bl, ol) = (b.get(i).copied(), o.get(i).copied());
        let mark = if bl == ol { ' ' } else { '!' };
        report.push_str(&format!(
            "{mark} {i:3} bpftrace     {bl:?}\n        trace-runner {ol:?}\n"
        ));
    }
    report
}

/// The comparison: both print the same after `ready`, and something at all (so a
/// filter that matches nothing does not pass vacuously). Returns the common output.
fn compare_format(comm: &str, script: &str, ops: &[&str], json: bool) -> Option<String> {
    let out = run_both(comm, script, ops, json)?;
    assert!(
        !out.bpftrace.trim().is_empty(),
        "bpftrace printed nothing for the workload: filter or workload broken"
    );
    assert!(
        out.bpftrace == out.ours,
        "trace-runner differs from bpftrace 0.17 (comm {comm}, workload {ops:?}):\n{}",
        diff(&out.bpftrace, &out.ours)
    );
    // Shown with --nocapture: what both printed.
    eprintln!("--- {comm} (identical in both):\n{}", out.ours);
    Some(out.ours)
}

/// Text-format comparison (the default output of both tools).
fn compare(comm: &str, script: &str, ops: &[&str]) -> Option<String> {
    compare_format(comm, script, ops, false)
}

/// Assert the common output holds `needle`: a check that the workload did what the
/// test means (as well as both tools agreeing on it).
fn expect(out: Option<String>, needles: &[&str]) {
    if let Some(out) = out {
        for needle in needles {
            assert!(out.contains(needle), "expected {needle:?} in:\n{out}");
        }
    }
}

#[test]
fn count_keyless() {
    let out = compare(
        "ktwl1",
        r#"tracepoint:syscalls:sys_enter_getppid /comm == "COMM"/ { @ = count(); }
           tracepoint:syscalls:sys_enter_read /comm == "COMM"/ { @reads = count(); }
           tracepoint:syscalls:sys_enter_close /comm == "COMM"/ { @closes = count(); }"#,
        &["getppid*37", "read:1*5", "close:-1*2"],
    );
    expect(out, &["@: 37\n", "@reads: 5\n", "@closes: 2\n"]);
}

#[test]
fn count_keyed_by_arg() {
    let out = compare(
        "ktwl2",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ { @[args->count] = count(); }"#,
        &[
            "read:65536*1",
            "read:1*6",
            "read:4096*2",
            "read:7*5",
            "read:100*3",
            "read:0*4",
            "read:64*7",
        ],
    );
    expect(
        out,
        &["@[65536]: 1\n@[4096]: 2\n@[100]: 3\n@[0]: 4\n@[7]: 5\n@[1]: 6\n@[64]: 7\n"],
    );
}

#[test]
fn sum_keyless_keyed_and_negative() {
    let out = compare(
        "ktwl3",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               @total = sum(args->count); @byfd[args->fd] = sum(args->count);
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ {
               @off = sum(args->offset); @offk[args->whence] = sum(args->offset);
           }"#,
        &[
            "read:100*3",
            "write:1000*2",
            "read:5",
            "lseek:-50:1",
            "lseek:-70:1",
            "lseek:30:0",
            "lseek:7:2*2",
        ],
    );
    expect(out, &["@total: 2305\n", "@off: -76\n"]);
}

#[test]
fn avg_min_max() {
    let out = compare(
        "ktwl4",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               @a = avg(args->count); @mn = min(args->count); @mx = max(args->count);
               @ak[args->fd] = avg(args->count); @mnk[args->fd] = min(args->count);
               @mxk[args->fd] = max(args->count);
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ {
               @aneg = avg(args->offset); @mnneg = min(args->offset); @mxneg = max(args->offset);
           }"#,
        &[
            "read:10",
            "read:20",
            "read:33",
            "write:2",
            "write:900",
            "write:1001",
            "lseek:-10:1",
            "lseek:-3:1",
            "lseek:-8:1",
        ],
    );
    expect(out, &["@mn: 2\n", "@mx: 1001\n", "@mnneg: -10\n"]);
}

#[test]
fn stats_keyless_and_keyed() {
    let out = compare(
        "ktwl5",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               @s = stats(args->count); @sk[args->fd] = stats(args->count);
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ { @sneg = stats(args->offset); }"#,
        &[
            "read:10*3",
            "read:17",
            "write:1",
            "write:4095*2",
            "lseek:-5",
            "lseek:2",
        ],
    );
    expect(out, &["@s: count 7, average 1176, total 8238\n"]);
}

#[test]
fn hist_powers_of_two_and_negative() {
    let out = compare(
        "ktwl6",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ { @h = hist(args->count); }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ { @neg = hist(args->offset); }
           tracepoint:syscalls:sys_enter_getppid /comm == "COMM"/ { @one = hist(1); }"#,
        &[
            "read:0*3",
            "read:1*2",
            "read:2",
            "read:3*4",
            "read:1000",
            "read:1024*2",
            "read:65536",
            "lseek:-5:1",
            "lseek:-1:1*3",
            "lseek:0:1",
            "lseek:1099511627776:0",
            "getppid*9",
        ],
    );
    expect(out, &["[1K, 2K)", "[64K, 128K)", "(..., 0)"]);
}

#[test]
fn lhist_ranges_and_outliers() {
    let out = compare(
        "ktwl7",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               @l1 = lhist(args->count, 0, 100, 10);
               @l2 = lhist(args->count, 1000, 5000, 1000);
               @l3 = lhist(args->count, 10, 105, 10);
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ { @l4 = lhist(args->offset, 0, 100, 25); }"#,
        &[
            "read:0",
            "read:5*2",
            "read:15",
            "read:55*3",
            "read:99",
            "read:100",
            "read:104",
            "read:105*2",
            "read:999",
            "read:2500*4",
            "read:5000",
            "read:60000",
            "lseek:-5:1*2",
            "lseek:30:0",
            "lseek:100:0",
        ],
    );
    expect(
        out,
        &[
            "(..., 1000)",
            "[5000, ...)",
            "[100, ...)",
            "(..., 10)",
            "(..., 0)",
        ],
    );
}

#[test]
fn string_keys_comm_and_filename() {
    let out = compare(
        "ktwl8",
        r#"tracepoint:syscalls:sys_enter_openat /comm == "COMM"/ {
               @open[str(args->filename)] = count(); @bycomm[comm] = count();
           }"#,
        &[
            "open:/etc/hostname",
            "open:/etc/passwd*2",
            "open:/dev/null*3",
            "open:/nonexistent/kt-compare*4",
            "open:/proc/self/stat*5",
        ],
    );
    expect(
        out,
        &[
            "@open[/etc/hostname]: 1\n",
            "@open[/nonexistent/kt-compare]: 4\n",
            "@bycomm[ktwl8]: 15\n",
        ],
    );
}

#[test]
fn tuple_keys() {
    let out = compare(
        "ktwl9",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               @[comm, args->count] = count();
               @t[args->fd, probe, args->count] = sum(args->count);
           }"#,
        &[
            "read:8*3",
            "read:16*2",
            "write:8*2",
            "write:300*6",
            "read:2000*4",
        ],
    );
    expect(
        out,
        &[
            "@[ktwl9, 2000]: 4\n",
            "@t[4, tracepoint:syscalls:sys_enter_write, 300]: 1800\n",
        ],
    );
}

#[test]
fn printf_ints_strings_widths() {
    let out = compare(
        "ktwl10",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               printf("%-8s %5d %x\n", comm, args->count, args->count);
           }
           tracepoint:syscalls:sys_enter_openat /comm == "COMM"/ {
               printf("open %s|%10s|%-12s|%d\n", str(args->filename), comm, probe, args->flags);
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ {
               printf("%d %u %08X %-4d| %s\n", args->offset, args->whence, args->offset, args->fd, "lit");
           }"#,
        &[
            "read:5",
            "read:100*2",
            "open:/etc/hostname",
            "read:3000",
            "lseek:-2:1",
            "lseek:255:0",
            "open:/nonexistent",
            "read:65535",
        ],
    );
    expect(out, &["ktwl10       5 5\n", "ktwl10    3000 bb8\n"]);
}

#[test]
fn plain_values() {
    let out = compare(
        "ktwl11",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               @x[args->count] = args->count; @last = args->count; @neg[args->count] = -(int64)args->count;
           }
           tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ { @w[args->whence] = args->offset; @p = probe; }"#,
        &[
            "read:40",
            "read:7",
            "read:900",
            "read:12",
            "lseek:9:1",
            "lseek:4:0",
            "lseek:77:2",
        ],
    );
    expect(out, &["@last: 12\n", "@x[7]: 7\n"]);
}

#[test]
fn signed_tracepoint_field() {
    // `off_t offset` is signed for bpftrace (it reads the C type; tracefs says
    // `signed:0` for every syscall argument): a plain value, a comparison and a key.
    let out = compare(
        "ktwl18",
        r#"tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ {
               @off[args->whence] = args->offset; @neg[args->offset < 0] = sum(args->offset);
               @k[args->offset] = count();
           }"#,
        &["lseek:-9:1", "lseek:4:0*2", "lseek:-77:2*3"],
    );
    expect(out, &["@off[1]: -9\n", "@k[-77]: 3\n"]);
}

#[test]
fn count_by_probe_over_multi_probe_block() {
    let out = compare(
        "ktwl12",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_lseek /comm == "COMM"/ {
               @[probe] = count(); @h[probe] = hist(2);
           }
           tracepoint:syscalls:sys_enter_getppid, tracepoint:syscalls:sys_enter_close /comm == "COMM"/ {
               @other[probe] = count();
           }"#,
        &["read:1*4", "lseek:0*7", "getppid*2", "close:-1*5"],
    );
    expect(
        out,
        &["@[tracepoint:syscalls:sys_enter_read]: 4\n@[tracepoint:syscalls:sys_enter_lseek]: 7\n"],
    );
}

#[test]
fn ternary_and_if_else() {
    let out = compare(
        "ktwl13",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               @kind[args->count > 100 ? "big" : "small"] = count();
               @sz[args->count < 10 ? 1 : 2] = sum(args->count);
               if (args->count < 10) {
                   @tiny = count();
               } else if (args->count < 1000) {
                   @mid = sum(args->count);
               } else {
                   @large = max(args->count);
               }
               if (args->count == 5) { @five = count(); }
               $v = args->count % 3 == 0 ? args->count / 3 : 0;
               @third[$v] = sum(args->count);
           }"#,
        &[
            "read:5*3",
            "read:9",
            "read:150*2",
            "read:999",
            "read:4000",
            "read:3",
            "read:12*4",
        ],
    );
    expect(
        out,
        &[
            "@kind[big]: 4\n",
            "@kind[small]: 9\n",
            "@five: 3\n",
            "@large: 4000\n",
        ],
    );
}

#[test]
fn delete_entries() {
    let out = compare(
        "ktwl14",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               @m[args->count] = count(); @s[args->count] = sum(args->count); @v = args->count;
           }
           tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               delete(@m[args->count]); delete(@s[args->count]);
           }
           tracepoint:syscalls:sys_enter_getppid /comm == "COMM"/ { delete(@v); }"#,
        &[
            "read:10",
            "read:20*2",
            "read:30*3",
            "read:40*4",
            "write:20",
            "write:40",
            "getppid",
            "write:11",
        ],
    );
    if let Some(out) = &out {
        assert!(!out.contains("@m[20]") && !out.contains("@v:"), "{out}");
    }
    expect(out, &["@m[10]: 1\n@m[30]: 3\n"]);
}

#[test]
fn hist_and_lhist_keyed_by_string() {
    let out = compare(
        "ktwl15",
        r#"tracepoint:syscalls:sys_enter_read, tracepoint:syscalls:sys_enter_write /comm == "COMM"/ {
               @h[probe] = hist(args->count);
               @c[comm] = lhist(args->count, 0, 50, 10);
           }
           tracepoint:syscalls:sys_enter_openat /comm == "COMM"/ { @f[str(args->filename)] = hist(args->flags); }"#,
        &[
            "read:3*2",
            "read:40",
            "write:17*3",
            "write:100",
            "open:/etc/hostname",
            "open:/etc/passwd*2",
        ],
    );
    expect(
        out,
        &[
            "@h[tracepoint:syscalls:sys_enter_read]: \n",
            "@c[ktwl15]: \n",
        ],
    );
}

#[test]
fn arithmetic_bitwise_and_casts() {
    let out = compare(
        "ktwl16",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM" && args->count > 1/ {
               @bits[args->count & 0xff, args->count >> 8] = count();
               @calc = sum(args->count * 2 + 1);
               @neg = sum(-(int64)args->count);
               @div[args->count / 100] = sum(args->count % 7);
               @u32 = max((uint32)args->count);
           }"#,
        &[
            "read:1*9",
            "read:2",
            "read:257*2",
            "read:513*3",
            "read:5000*4",
        ],
    );
    expect(out, &["@bits[136, 19]: 4\n"]);
}

#[test]
fn json_output_of_every_map_kind() {
    let out = compare_format(
        "ktwl17",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               @c[args->count] = count(); @s = sum(args->count); @a[comm] = avg(args->count);
               @mn = min(args->count); @mx = max(args->count); @st = stats(args->count);
               @h = hist(args->count); @l = lhist(args->count, 0, 200, 50);
               @t[comm, args->count] = count(); @v[probe] = args->count;
               printf("r %s %d\n", comm, args->count);
           }"#,
        &["read:3*3", "read:180*2", "read:999"],
        true,
    );
    expect(
        out,
        &[
            "{\"type\": \"printf\", \"data\": \"r ktwl17 3\\n\"}\n",
            "\"@c\"",
        ],
    );
}

#[test]
fn cat_prints_the_files_events_name() {
    // cat() formats its path like printf and prints the file's contents in user space.
    let out = compare(
        "ktwl20",
        r#"tracepoint:syscalls:sys_enter_openat /comm == "COMM"/ {
               printf("[%s]\n", str(args->filename));
               cat("%s", str(args->filename));
           }"#,
        &["open:/proc/sys/kernel/ostype", "open:/etc/hostname"],
    );
    expect(out, &["[/proc/sys/kernel/ostype]\nLinux\n"]);
}

#[test]
fn increment_decrement_and_pointer_arithmetic() {
    // `++`/`--` as expressions on variables and maps, pointers stepping by the size of
    // what they point to, and a `#define` used in a predicate.
    let out = compare(
        "ktwl61",
        r#"#define SMALL 100
tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               $c = args->count;
               @seen[++@calls] = $c--;
               @after[$c++] = $c;
               $p = (int32 *)args->count;
               @ptr[args->count] = $p + 3;
               $q = (int64 *)args->count; $q -= 2;
               @ptr64[args->count] = $q;
               @small[args->count < SMALL] = sum(args->count);
               @left = @calls--;
           }"#,
        &["read:10", "read:2000*2", "read:77"],
    );
    expect(
        out,
        &[
            "@after[9]: 9\n",
            "@ptr[10]: 22\n",
            "@ptr64[77]: 61\n",
            "@seen[1]: 77\n",
        ],
    );
}

#[test]
fn kernel_constants_and_strerror() {
    // bpftrace takes the names from the headers; trace-runner has them built in (and
    // skips the #include lines).
    let out = compare(
        "ktwl62",
        r#"#include <errno.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <signal.h>
           tracepoint:syscalls:sys_enter_openat /comm == "COMM"/ {
               printf("%d %d %d %d %d %s\n", args->flags & O_ACCMODE, O_RDONLY, EPERM + EINPROGRESS,
                      AF_INET6 + SIGTERM, (args->flags & O_CREAT) == 0, strerror(ENOENT));
               args->flags & O_CREAT ? printf("create\n") : printf("no create\n");
           }"#,
        &["open:/dev/null", "open:/etc/hostname"],
    );
    expect(
        out,
        &["0 0 116 25 1 No such file or directory\nno create\n"],
    );
}

#[test]
fn json_records_of_actions() {
    // time() with a constant format, cat() and printf of buf() with %rx/%rh, in -f json.
    let out = compare_format(
        "ktwl63",
        r#"tracepoint:syscalls:sys_enter_read /comm == "COMM"/ {
               time("read\n");
               cat("/proc/sys/kernel/ostype");
               printf("%rx %rh\n", buf("ab\0", 3), buf("cd", 2));
           }"#,
        &["read:3"],
        true,
    );
    expect(
        out,
        &[
            "{\"type\": \"time\", \"data\": \"read\\n\"}\n",
            "{\"type\": \"cat\", \"data\": \"Linux\\n\"}\n",
        ],
    );
}

/// The path of the C library this test (and so the workload) is linked with.
fn libc_path() -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libc.so.6"))
        .expect("libc.so.6 in /proc/self/maps")
        .to_string()
}

#[test]
fn user_stacks_as_map_keys_in_both_modes() {
    // At exit the workload is gone, so both tools print its frames unresolved: the
    // addresses, and `([unknown])` for the module in perf mode.
    let libc = libc_path();
    let out = compare(
        "ktwl64",
        &format!(
            r#"uprobe:{libc}:getppid /comm == "COMM"/ {{
                   @[ustack] = count(); @p[ustack(perf)] = count(); @d[ustack(2)] = count();
               }}"#
        ),
        &["getppid*3"],
    );
    expect(out, &["]: 3\n", " ([unknown])\n"]);
}
