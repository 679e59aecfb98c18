//! Attaching one loaded kprobe program to many kernel functions: one kprobe perf event
//! per function (`perf_event_open` on the kprobe PMU, then `PERF_EVENT_IOC_SET_BPF`),
//! opened side by side on a few threads, since each registration waits on the kernel
//! (ftrace updates, RCU) far more than it computes; or, for a wildcard on a kernel with
//! kprobe_multi links (5.18+), one `BPF_LINK_CREATE` of type `BPF_TRACE_KPROBE_MULTI`
//! for all of them, on a copy of the program loaded with that expected attach type (aya
//! 0.14 can neither load nor attach it). Closing the returned fds detaches.

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

const BPF_PROG_LOAD: u32 = 5;
const BPF_LINK_CREATE: u32 = 28;
const BPF_PROG_TYPE_KPROBE: u32 = 2;
const BPF_TRACE_KPROBE_MULTI: u32 = 42;
const BPF_F_KPROBE_MULTI_RETURN: u32 = 1;
const BPF_PSEUDO_MAP_FD: u8 = 1;

/// The start of `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_LINK_CREATE` of a kprobe_multi link.
#[repr(C)]
#[derive(Default)]
struct KprobeMultiLinkAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    multi_flags: u32,
    cnt: u32,
    syms: u64,
    addrs: u64,
    cookies: u64,
}

fn bpf_fd<T>(cmd: u32, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: `attr` is a bpf_attr prefix laid out for `cmd`, and every pointer in it
    // points at a buffer that lives until the call returns.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

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
    let license = c"GPL";
    let mut load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_KPROBE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        expected_attach_type: BPF_TRACE_KPROBE_MULTI,
        ..Default::default()
    };
    let prog = bpf_fd(BPF_PROG_LOAD, &mut load)?;
    let names: Vec<CString> = funcs
        .iter()
        .map(|f| CString::new(f.as_str()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput)))
        .collect::<io::Result<_>>()?;
    let syms: Vec<u64> = names.iter().map(|n| n.as_ptr() as u64).collect();
    let mut link = KprobeMultiLinkAttr {
        prog_fd: std::os::fd::AsRawFd::as_raw_fd(&prog) as u32,
        attach_type: BPF_TRACE_KPROBE_MULTI,
        multi_flags: if ret { BPF_F_KPROBE_MULTI_RETURN } else { 0 },
        cnt: syms.len() as u32,
        syms: syms.as_ptr() as u64,
        ..Default::default()
    };
    let link = bpf_fd(BPF_LINK_CREATE, &mut link)?;
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
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 72);
        assert_eq!(std::mem::size_of::<KprobeMultiLinkAttr>(), 48);
    }

    #[test]
    fn pmu_format_bits() {
        assert_eq!(parse_format_bit("config:0\n"), Some(0));
        assert_eq!(parse_format_bit("config:9"), Some(9));
        assert_eq!(parse_format_bit("config1:0-63"), None);
    }
}
