//! Attaching one loaded kprobe program to many kernel functions: one kprobe perf event
//! per function (`perf_event_open` on the kprobe PMU, then `PERF_EVENT_IOC_SET_BPF`),
//! opened side by side on a few threads, since each registration waits on the kernel
//! (ftrace updates, RCU) far more than it computes; or, for a wildcard on a kernel with
//! kprobe_multi links (5.18+), one `BPF_LINK_CREATE` of type `BPF_TRACE_KPROBE_MULTI`
//! for all of them, on a copy of the program loaded with that expected attach type (aya
//! 0.14 can neither load nor attach it). Closing the returned fds detaches. The system
//! calls are [`crate::sys`]'s.

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use crate::sys::{bpf, perf};

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
    let config = if ret { 1 << pmu.retprobe_bit } else { 0 };
    let fd = perf::open_kprobe(pmu.perf_type, config, &name)?;
    perf::attach_bpf_and_enable(&fd, prog_fd)?;
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

const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// The program's instructions with each map load pointing at its map's fd.
pub fn relocate(
    code: &[[u8; 8]],
    map_relocs: &[(usize, usize)],
    map_fds: &[RawFd],
) -> Vec<[u8; 8]> {
    let mut insns = code.to_vec();
    for &(at, map) in map_relocs {
        if let (Some(insn), Some(fd)) = (insns.get_mut(at), map_fds.get(map)) {
            insn[1] = (insn[1] & 0x0f) | (BPF_PSEUDO_MAP_FD << 4);
            insn[4..8].copy_from_slice(&fd.to_ne_bytes());
        }
    }
    insns
}

/// Load `insns` (relocated) as a kprobe program for kprobe_multi links and attach it to
/// every function of `funcs` (sorted, each once) with one link. Returns the program and
/// the link; closing the link detaches.
pub fn attach_multi(insns: &[[u8; 8]], funcs: &[String], ret: bool) -> io::Result<[OwnedFd; 2]> {
    let prog = bpf::prog_load(bpf::ProgLoad {
        prog_type: BPF_PROG_TYPE_KPROBE,
        expected_attach_type: bpf::BPF_TRACE_KPROBE_MULTI,
        insns,
        log: None,
        attach_btf_id: 0,
        attach_btf_obj_fd: 0,
    })?;
    let names: Vec<CString> = funcs
        .iter()
        .map(|f| CString::new(f.as_str()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
        .collect::<io::Result<_>>()?;
    let names: Vec<&CStr> = names.iter().map(CString::as_c_str).collect();
    let link = bpf::link_kprobe_multi(prog.as_raw_fd(), &names, ret)?;
    Ok([link, prog])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_loads_are_relocated_to_map_fds() {
        // ld_imm64 r1, map #1 (two slots), then exit.
        let code = [
            [0x18, 0x01, 0, 0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0, 0, 0, 0],
            [0x95, 0, 0, 0, 0, 0, 0, 0],
        ];
        let out = relocate(&code, &[(0, 1)], &[7, 42]);
        assert_eq!(out[0], [0x18, 0x11, 0, 0, 42, 0, 0, 0]);
        assert_eq!(out[1..], code[1..]);
    }

    #[test]
    fn pmu_format_bits() {
        assert_eq!(parse_format_bit("config:0\n"), Some(0));
        assert_eq!(parse_format_bit("config:9"), Some(9));
        assert_eq!(parse_format_bit("config1:0-63"), None);
    }
}
