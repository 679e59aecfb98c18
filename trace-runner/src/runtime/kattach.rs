//! Attaching one loaded kprobe program to many kernel functions: one kprobe perf event
//! per function (`perf_event_open` on the kprobe PMU, then `PERF_EVENT_IOC_SET_BPF`),
//! opened side by side on a few threads, since each registration waits on the kernel
//! (ftrace updates, RCU) far more than it computes. Closing the returned fds detaches.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `PERF_ATTR_SIZE_VER5`: every field used here, understood by every kernel with kprobes.
const ATTR_SIZE: usize = 112;

/// The kprobe PMU: its perf type and the config bit that makes a probe a kretprobe.
#[derive(Debug, Clone, Copy)]
pub struct KprobePmu {
    pub perf_type: u32,
    pub retprobe_bit: u32,
}

impl KprobePmu {
    /// Read from sysfs; `None` when this kernel has no kprobe PMU.
    pub fn system() -> Option<KprobePmu> {
        let dir = std::path::Path::new("/sys/bus/event_source/devices/kprobe");
        let perf_type = std::fs::read_to_string(dir.join("type"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let retprobe = std::fs::read_to_string(dir.join("format/retprobe")).ok()?;
        Some(KprobePmu {
            perf_type,
            retprobe_bit: parse_format_bit(&retprobe)?,
        })
    }
}

/// `config:0` (a PMU format file) → 0.
pub fn parse_format_bit(text: &str) -> Option<u32> {
    text.trim().strip_prefix("config:")?.parse().ok()
}

/// Open a kprobe (or kretprobe) perf event on `func` and run `prog_fd` on it.
fn attach_one(pmu: KprobePmu, prog_fd: RawFd, func: &str, ret: bool) -> io::Result<OwnedFd> {
    let name = CString::new(func).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut attr = [0u8; ATTR_SIZE];
    let put32 = |a: &mut [u8; ATTR_SIZE], at: usize, v: u32| {
        a[at..at + 4].copy_from_slice(&v.to_ne_bytes())
    };
    let put64 = |a: &mut [u8; ATTR_SIZE], at: usize, v: u64| {
        a[at..at + 8].copy_from_slice(&v.to_ne_bytes())
    };
    put32(&mut attr, 0, pmu.perf_type); // type
    put32(&mut attr, 4, ATTR_SIZE as u32); // size
    put64(&mut attr, 8, if ret { 1 << pmu.retprobe_bit } else { 0 }); // config
    put64(&mut attr, 16, 1); // sample_period
    put32(&mut attr, 48, 1); // wakeup_events
    put64(&mut attr, 56, name.as_ptr() as u64); // config1: kprobe_func
    put64(&mut attr, 64, 0); // config2: probe_offset
                             // SAFETY: `attr` is a zero-filled perf_event_attr of the size it declares, and the
                             // name it points to lives until the call returns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            -1 as libc::pid_t,
            0 as libc::c_int,
            -1 as libc::c_int,
            PERF_FLAG_FD_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    // SAFETY: ioctls on our own perf event fd with an integer argument.
    unsafe {
        if libc::ioctl(raw, PERF_EVENT_IOC_SET_BPF as _, prog_fd) < 0
            || libc::ioctl(raw, PERF_EVENT_IOC_ENABLE as _, 0) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// Attach `prog_fd` to every function of `funcs`, side by side; the results in the
/// order of `funcs`.
pub fn attach_all(
    pmu: KprobePmu,
    prog_fd: RawFd,
    funcs: &[String],
    ret: bool,
) -> Vec<io::Result<OwnedFd>> {
    let threads = funcs.len().clamp(1, 16);
    let chunk = funcs.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = funcs
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || {
                    part.iter()
                        .map(|f| attach_one(pmu, prog_fd, f, ret))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(io::Error::other("attach thread panicked"))])
            })
            .collect()
    })
}

/// Close many perf event fds side by side (each close waits for an RCU grace period).
pub fn detach_all(fds: Vec<OwnedFd>) {
    if fds.is_empty() {
        return;
    }
    let threads = fds.len().clamp(1, 16);
    let chunk = fds.len().div_ceil(threads).max(1);
    let mut fds = fds;
    std::thread::scope(|scope| {
        while !fds.is_empty() {
            let part: Vec<OwnedFd> = fds.drain(..chunk.min(fds.len())).collect();
            scope.spawn(move || drop(part));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pmu_format_bits() {
        assert_eq!(parse_format_bit("config:0\n"), Some(0));
        assert_eq!(parse_format_bit("config:9"), Some(9));
        assert_eq!(parse_format_bit("config1:0-63"), None);
    }
}
