//! Every raw system call the runner makes for BPF, perf events, polling and signals, each
//! behind a typed, safe wrapper: [`bpf`] (the `bpf(2)` commands aya 0.14 does not expose
//! for byte-level use), [`fentry`] (fentry/fexit programs on a BTF id, and module BTF),
//! [`perf`] (kprobe perf events and their ioctls), [`uprobe`] (uprobe perf events with a
//! USDT semaphore's `ref_ctr_offset`), [`signal`]
//! (handlers, default actions, `kill`), [`process`] (the held child of `-c`) and
//! [`poll_readable`]. The `unsafe` blocks and the
//! kernel's attr layouts live here and nowhere else; callers pass slices and get fds.

pub(crate) mod bpf;
pub mod fentry;
pub(crate) mod perf;
pub(crate) mod process;
pub(crate) mod signal;
pub mod uprobe;

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
