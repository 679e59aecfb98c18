//! perf_event system calls: opening a kprobe (or kretprobe) event on the kprobe PMU and
//! running a BPF program on it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `PERF_ATTR_SIZE_VER5`: every field used here, understood by every kernel with kprobes.
const ATTR_SIZE: usize = 112;

/// `perf_event_attr` (its first [`ATTR_SIZE`] bytes) of a kprobe on `func` for PMU type
/// `perf_type`, with `config` (the retprobe bit or 0).
fn kprobe_attr(perf_type: u32, config: u64, func: &CStr) -> [u8; ATTR_SIZE] {
    let mut attr = [0u8; ATTR_SIZE];
    let mut put32 = |at: usize, v: u32| attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    put32(0, perf_type); // type
    put32(4, ATTR_SIZE as u32); // size
    put32(48, 1); // wakeup_events
    let mut put64 = |at: usize, v: u64| attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put64(8, config); // config
    put64(16, 1); // sample_period
    put64(56, func.as_ptr() as u64); // config1: kprobe_func
    put64(64, 0); // config2: probe_offset
    attr
}

/// Open a kprobe perf event on kernel function `func` (all CPUs, any task) on the kprobe
/// PMU of type `perf_type`, with `config` set (the PMU's retprobe bit for a kretprobe).
pub(crate) fn open_kprobe(perf_type: u32, config: u64, func: &CStr) -> io::Result<OwnedFd> {
    let attr = kprobe_attr(perf_type, config, func);
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
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Run BPF program `prog_fd` on perf event `event` and enable the event.
pub(crate) fn attach_bpf_and_enable(event: &OwnedFd, prog_fd: RawFd) -> io::Result<()> {
    let raw = event.as_raw_fd();
    // SAFETY: ioctls on an open perf event fd with integer arguments.
    unsafe {
        if libc::ioctl(raw, PERF_EVENT_IOC_SET_BPF as _, prog_fd) < 0
            || libc::ioctl(raw, PERF_EVENT_IOC_ENABLE as _, 0) < 0
        {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kprobe_attr_layout() {
        let a = kprobe_attr(6, 1, c"vfs_read");
        let u32_at = |at: usize| u32::from_ne_bytes(a[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_ne_bytes(a[at..at + 8].try_into().unwrap());
        assert_eq!((u32_at(0), u32_at(4)), (6, ATTR_SIZE as u32));
        assert_eq!((u64_at(8), u64_at(16), u32_at(48)), (1, 1, 1));
        assert_ne!(u64_at(56), 0);
        assert_eq!(u64_at(64), 0);
    }
}
