//! A workload process standing in for a container: prints `ready <pid>`, then obeys
//! lines on stdin: `getppid N` (N getppid(2) calls), `getpgid` (one call), `mark N` (N
//! calls of [`e2e_workload_mark`], a function of this binary for uprobes), `pid`, `exit`;
//! each answered by a line starting with `ok`.

use std::io::{BufRead, Write};

/// What `mark N` calls N times: a symbol of this binary's own, for
/// `uprobe:BINARY:e2e_workload_mark`.
#[no_mangle]
#[inline(never)]
pub extern "C" fn e2e_workload_mark(i: u64) -> u64 {
    std::hint::black_box(i).wrapping_add(1)
}

fn main() {
    let stdin = std::io::stdin();
    let mut out = std::io::stdout();
    let _ = writeln!(out, "ready {}", std::process::id());
    let _ = out.flush();
    for line in stdin.lock().lines() {
        let Ok(line) = line else { break };
        let mut words = line.split_whitespace();
        let reply = match (words.next(), words.next()) {
            (Some("getppid"), Some(n)) => {
                let n: u64 = n.parse().unwrap_or(0);
                for _ in 0..n {
                    // SAFETY: getppid has no arguments and cannot fail.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                format!("ok {n}")
            }
            (Some("getpgid"), _) => {
                // SAFETY: getpgid(0) on ourselves.
                unsafe { libc::syscall(libc::SYS_getpgid, 0) };
                "ok".to_string()
            }
            (Some("mark"), Some(n)) => {
                let n: u64 = n.parse().unwrap_or(0);
                for i in 0..n {
                    std::hint::black_box(e2e_workload_mark(i));
                }
                format!("ok {n}")
            }
            (Some("pid"), _) => format!("ok {}", std::process::id()),
            (Some("exit"), _) => break,
            _ => format!("error: unknown command {line:?}"),
        };
        let _ = writeln!(out, "{reply}");
        let _ = out.flush();
    }
}
