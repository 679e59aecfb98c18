//! SIGINT and SIGTERM at any moment of a run, start-up included (parsing, compile, load,
//! attach, BEGIN, the event loop, END): the runner ends within 2 s, exit 0; if BEGIN ran,
//! END ran and the maps printed.

mod common;

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const SCRIPT: &str = "BEGIN { printf(\"begin\\n\"); @a = 1; } \
    tracepoint:syscalls:sys_enter_getppid { @n = count(); } \
    tracepoint:syscalls:sys_enter_openat { @o[comm] = count(); } \
    END { printf(\"end\\n\"); }";

/// A small xorshift generator: delays differ from trial to trial, the same every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn spawn(blocked: bool) -> Child {
    let mut cmd = Command::new(runner());
    cmd.args(["run", "-e", SCRIPT])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if blocked {
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, libc::SIGINT);
                libc::sigaddset(&mut set, libc::SIGTERM);
                libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
    }
    cmd.spawn().expect("start trace-runner")
}

/// Whether the process catches SIGINT and SIGTERM (its SigCgt mask in /proc).
fn catches_signals(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|m| {
            let bit = |s: i32| 1u64 << (s - 1);
            m & bit(libc::SIGINT) != 0 && m & bit(libc::SIGTERM) != 0
        })
}

/// Wait for the child at most `limit` after `since`; kill it if it is still running.
fn finish(mut child: Child, limit: Duration, since: Instant) -> (Option<i32>, String, String) {
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if since.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("trace-runner still running {limit:?} after the signal");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), out, err)
}

#[test]
fn signals_at_any_moment_end_the_run_cleanly() {
    if !require_bpf() {
        return;
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let started = Instant::now();
    let mut stages = [0usize; 2];
    for trial in 0..40 {
        let sig = if trial % 2 == 0 {
            libc::SIGINT
        } else {
            libc::SIGTERM
        };
        // 0-80 ms, and in two trials of three 0-8 ms: start-up (parse, compile, load,
        // attach, BEGIN) takes a few ms here.
        let delay = if trial % 3 == 0 {
            Duration::from_millis(rng.below(81))
        } else {
            Duration::from_micros(rng.below(8000))
        };
        // Half the trials start with both signals blocked, as a supervisor may leave them:
        // a signal sent at any moment after spawn, before main() even, stays pending, and
        // the runner must take it once it runs. The other half send the signal once the
        // runner's handlers exist (the instant between exec and main() is the dynamic
        // loader's, where no program can catch anything).
        let blocked = trial % 4 < 2;
        let child = spawn(blocked);
        let spawned = Instant::now();
        std::thread::sleep(delay);
        if !blocked {
            while !catches_signals(child.id()) {
                assert!(
                    spawned.elapsed() < Duration::from_secs(10),
                    "no signal handlers after 10 s"
                );
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        unsafe { libc::kill(child.id() as i32, sig) };
        let sent = Instant::now();
        let (code, out, err) = finish(child, Duration::from_secs(2), sent);
        let what = format!(
            "trial {trial}: signal {sig} {:?} after spawn ({}): exit {code:?}\nstdout:\n{out}\nstderr:\n{err}",
            sent - spawned,
            if blocked { "blocked at exec" } else { "handlers installed" },
        );
        assert_eq!(code, Some(0), "{what}");
        assert!(err.is_empty(), "{what}");
        if out.contains("begin\n") {
            stages[1] += 1;
            assert!(
                out.contains("end\n") && out.contains("@a: 1\n"),
                "BEGIN ran, so END ran and the maps printed: {what}"
            );
        } else {
            stages[0] += 1;
            assert!(
                !out.contains("end\n") && !out.contains("@a"),
                "no END without BEGIN: {what}"
            );
        }
    }
    eprintln!(
        "40 trials in {:?}: {} stopped before BEGIN, {} after",
        started.elapsed(),
        stages[0],
        stages[1]
    );
}
