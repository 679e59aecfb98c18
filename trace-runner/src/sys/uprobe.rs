//! Attaching a loaded uprobe program to a USDT marker: a uprobe perf event opened on the
//! uprobe PMU (`perf_event_open`, then `PERF_EVENT_IOC_SET_BPF`), with the marker's
//! semaphore given to the kernel as `ref_ctr_offset` (in the high config bits, Linux
//! 4.20+), so the kernel counts it up in every process that maps the file, now and
//! later, and down again when the event is closed. aya 0.14's uprobe attach has no
//! `ref_ctr_offset`. The event's attr is [`super::perf`]'s, shared with kprobes. Closing
//! the returned fd detaches.

use std::ffi::CString;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::Path;

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
    let event = super::perf::ProbeEvent {
        perf_type: pmu.perf_type,
        config,
        target: &path,
        offset,
    };
    let fd = super::perf::open_probe(&event, pid)?;
    super::perf::attach_bpf_and_enable(&fd, prog_fd)?;
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
