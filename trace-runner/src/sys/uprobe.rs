//! Attaching a loaded uprobe program to a USDT marker: a uprobe perf event opened on the
//! uprobe PMU (`perf_event_open`, then `PERF_EVENT_IOC_SET_BPF`), with the marker's
//! semaphore given to the kernel as `ref_ctr_offset` (in the high config bits, Linux
//! 4.20+), so the kernel counts it up in every process that maps the file, now and
//! later, and down again when the event is closed. aya 0.14's uprobe attach has no
//! `ref_ctr_offset`. Closing the returned fd detaches.

use std::ffi::CString;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::Path;

const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 8;
const PERF_EVENT_IOC_ENABLE: libc::c_ulong = 0x2400;
const PERF_EVENT_IOC_SET_BPF: libc::c_ulong = 0x4004_2408;
const ATTR_SIZE: usize = 112;
const PMU_DIR: &str = "/sys/bus/event_source/devices/uprobe";

/// The uprobe PMU: its perf type and, when the kernel has it, the first config bit of
/// `ref_ctr_offset`.
#[derive(Debug, Clone, Copy)]
pub struct UprobePmu {
    pub perf_type: u32,
    pub ref_ctr_shift: Option<u32>,
}

impl UprobePmu {
    /// Read from sysfs; `None` when this kernel has no uprobe PMU.
    pub fn system() -> Option<UprobePmu> {
        let dir = Path::new(PMU_DIR);
        let perf_type = std::fs::read_to_string(dir.join("type"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let ref_ctr_shift = std::fs::read_to_string(dir.join("format/ref_ctr_offset"))
            .ok()
            .and_then(|t| parse_bit_range(&t));
        Some(UprobePmu {
            perf_type,
            ref_ctr_shift,
        })
    }
}

/// `config:32-63` (a PMU format file) → 32.
pub fn parse_bit_range(text: &str) -> Option<u32> {
    let bits = text.trim().strip_prefix("config:")?;
    bits.split('-').next()?.parse().ok()
}

/// Open a uprobe at `offset` of `file` (only in `pid` when given) with the semaphore at
/// file offset `semaphore` (0: none), and run `prog_fd` on it.
pub fn attach(
    pmu: UprobePmu,
    prog_fd: RawFd,
    file: &str,
    offset: u64,
    semaphore: u64,
    pid: Option<u32>,
) -> io::Result<OwnedFd> {
    let path = CString::new(file).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let config = match (semaphore, pmu.ref_ctr_shift) {
        (0, _) => 0,
        (s, Some(shift)) => s << shift,
        (_, None) => {
            return Err(io::Error::other(
                "this kernel cannot enable USDT semaphores (no ref_ctr_offset in the uprobe PMU; Linux 4.20+ has it)",
            ))
        }
    };
    let mut attr = [0u8; ATTR_SIZE];
    let put32 = |a: &mut [u8; ATTR_SIZE], at: usize, v: u32| {
        a[at..at + 4].copy_from_slice(&v.to_ne_bytes())
    };
    let put64 = |a: &mut [u8; ATTR_SIZE], at: usize, v: u64| {
        a[at..at + 8].copy_from_slice(&v.to_ne_bytes())
    };
    put32(&mut attr, 0, pmu.perf_type); // type
    put32(&mut attr, 4, ATTR_SIZE as u32); // size
    put64(&mut attr, 8, config); // config: ref_ctr_offset
    put64(&mut attr, 16, 1); // sample_period
    put32(&mut attr, 48, 1); // wakeup_events
    put64(&mut attr, 56, path.as_ptr() as u64); // config1: uprobe_path
    put64(&mut attr, 64, offset); // config2: probe_offset
    let (pid, cpu) = match pid {
        Some(p) => (p as libc::pid_t, -1),
        None => (-1, 0),
    };
    // SAFETY: `attr` is a zero-filled perf_event_attr of the size it declares, and the
    // path it points to lives until the call returns.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_perf_event_open,
            attr.as_ptr(),
            pid,
            cpu as libc::c_int,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_bit_ranges() {
        assert_eq!(parse_bit_range("config:32-63\n"), Some(32));
        assert_eq!(parse_bit_range("config:0"), Some(0));
        assert_eq!(parse_bit_range("config1:0-63"), None);
    }
}
