//! perf_event system calls for probe PMUs: one `perf_event_attr` builder for the kprobe
//! and the uprobe PMU (both name their target in `config1` and an offset in `config2`),
//! opening the event, and running a BPF program on it.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
/// `PERF_ATTR_SIZE_VER5`: every field used here, understood by every kernel with kprobes.
const ATTR_SIZE: usize = 112;

/// A probe event on a dynamic PMU (kprobe or uprobe).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProbeEvent<'a> {
    /// The PMU's perf type (its sysfs `type`).
    pub(crate) perf_type: u32,
    /// `config`: the PMU's retprobe bit, or a uprobe's `ref_ctr_offset` in its high bits.
    pub(crate) config: u64,
    /// `config1`: the kernel function (kprobe) or the file (uprobe).
    pub(crate) target: &'a CStr,
    /// `config2`: the offset in the function (kprobe) or in the file (uprobe).
    pub(crate) offset: u64,
}

/// `perf_event_attr` (its first [`ATTR_SIZE`] bytes) of `event`: one sample per hit, a
/// wakeup per event. Its `config1` points at `event.target`, which must outlive the call
/// the attr is passed to.
fn probe_attr(event: &ProbeEvent) -> [u8; ATTR_SIZE] {
    let mut attr = [0u8; ATTR_SIZE];
    let mut put32 = |at: usize, v: u32| attr[at..at + 4].copy_from_slice(&v.to_ne_bytes());
    put32(0, event.perf_type); // type
    put32(4, ATTR_SIZE as u32); // size
    put32(48, 1); // wakeup_events
    let mut put64 = |at: usize, v: u64| attr[at..at + 8].copy_from_slice(&v.to_ne_bytes());
    put64(8, event.config); // config
    put64(16, 1); // sample_period
    put64(56, event.target.as_ptr() as u64); // config1: kprobe_func / uprobe_path
    put64(64, event.offset); // config2: probe_offset
    attr
}

/// Open `event`: in process `pid` only (any CPU) when given, else for every task (the
/// kernel then wants one CPU named; the probe fires on all of them).
pub(crate) fn open_probe(event: &ProbeEvent, pid: Option<u32>) -> io::Result<OwnedFd> {
    let attr = probe_attr(event);
    let (pid, cpu): (libc::pid_t, libc::c_int) = match pid {
        Some(p) => (p as libc::pid_t, -1),
        None => (-1, 0),
    };
    // SAFETY: `attr` is a zero-filled perf_event_attr of the size it declares, and the
    // name it points to (`event.target`) lives until the call returns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            pid,
            cpu,
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

/// Open a kprobe perf event on kernel function `func` (all CPUs, any task) on the kprobe
/// PMU of type `perf_type`, with `config` set (the PMU's retprobe bit for a kretprobe).
pub(crate) fn open_kprobe(perf_type: u32, config: u64, func: &CStr) -> io::Result<OwnedFd> {
    let event = ProbeEvent {
        perf_type,
        config,
        target: func,
        offset: 0,
    };
    open_probe(&event, None)
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

    fn fields(a: &[u8; ATTR_SIZE]) -> (u32, u32, u64, u64, u32, u64, u64) {
        let u32_at = |at: usize| u32::from_ne_bytes(a[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_ne_bytes(a[at..at + 8].try_into().unwrap());
        (
            u32_at(0),
            u32_at(4),
            u64_at(8),
            u64_at(16),
            u32_at(48),
            u64_at(56),
            u64_at(64),
        )
    }

    #[test]
    fn kprobe_attr_layout() {
        let name = c"vfs_read";
        let a = probe_attr(&ProbeEvent {
            perf_type: 6,
            config: 1,
            target: name,
            offset: 0,
        });
        let (ty, size, config, period, wakeup, config1, config2) = fields(&a);
        assert_eq!((ty, size), (6, ATTR_SIZE as u32));
        assert_eq!((config, period, wakeup), (1, 1, 1));
        assert_eq!(config1, name.as_ptr() as u64);
        assert_eq!(config2, 0);
    }

    #[test]
    fn uprobe_attr_layout() {
        let file = c"/usr/bin/app";
        let a = probe_attr(&ProbeEvent {
            perf_type: 9,
            config: 0x40 << 32,
            target: file,
            offset: 0x1234,
        });
        let (ty, size, config, period, wakeup, config1, config2) = fields(&a);
        assert_eq!((ty, size), (9, ATTR_SIZE as u32));
        assert_eq!((config, period, wakeup), (0x40 << 32, 1, 1));
        assert_eq!((config1, config2), (file.as_ptr() as u64, 0x1234));
        // Everything past the fields set is zero (no flags, no sample type).
        assert!(a[24..48]
            .iter()
            .chain(&a[52..56])
            .chain(&a[72..])
            .all(|b| *b == 0));
    }
}
