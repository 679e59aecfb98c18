//! Every raw system call and C library call the runner makes, each behind a typed, safe
//! wrapper: [`bpf`] (the `bpf(2)` commands aya 0.14 does not expose for byte-level use),
//! [`fentry`] (fentry/fexit programs on a BTF id, and module BTF), [`perf`] (probe perf
//! events, kprobe and uprobe, one attr builder, and their ioctls), [`uprobe`] (the uprobe
//! PMU and a USDT semaphore's `ref_ctr_offset`), [`signal`] (handlers, default actions,
//! `kill`), [`process`] (the held child of `-c`, the effective uid), [`mount`] (tracefs,
//! a throw-away mount namespace), [`rlimit`] (RLIMIT_MEMLOCK), [`time`] (clocks,
//! `strftime`), [`user`] (uid to name), [`errno`] (errno values, `strerror`), [`uname`],
//! [`stdio`] (stdout redirection) and [`poll_readable`]. The `unsafe` blocks, the `libc`
//! crate and the kernel's attr layouts live here and nowhere else (a test,
//! `tests/syscalls_in_sys.rs`, checks it); callers pass slices and get fds.

pub(crate) mod bpf;
pub(crate) mod errno;
pub mod fentry;
pub(crate) mod mount;
pub(crate) mod perf;
pub(crate) mod process;
pub(crate) mod rlimit;
pub(crate) mod signal;
pub(crate) mod stdio;
pub(crate) mod time;
pub(crate) mod uname;
pub mod uprobe;
pub(crate) mod user;

use std::os::fd::RawFd;
use std::time::Duration;

/// Wait until one of `fds` is readable, at most `timeout` (at least 1 ms), or a signal
/// comes. No fds: just sleep. Errors (EINTR included) count as "look again".
pub(crate) fn poll_readable(fds: &[RawFd], timeout: Duration) {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    // SAFETY: a valid array of pollfds of the length given (or none, which just sleeps).
    unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
}
