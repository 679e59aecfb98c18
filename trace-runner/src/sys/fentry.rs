//! Loading and attaching kfunc/kretfunc programs (fentry/fexit): a program of type
//! tracing whose `attach_btf_id` is the function's BTF FUNC id, in the kernel's BTF or,
//! for a module's function, in the module's (`attach_btf_obj_fd` then names the module's
//! BTF object, found by walking the kernel's BTF objects by id). aya 0.14's `FEntry`
//! takes only the kernel's BTF, so the program is loaded with raw `BPF_PROG_LOAD` and
//! attached with `BPF_RAW_TRACEPOINT_OPEN` (5.5+); closing the link detaches.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use super::bpf::{bpf, bpf_fd, prog_load, ProgLoad};

const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_RAW_TRACEPOINT_OPEN: u32 = 17;
const BPF_BTF_GET_FD_BY_ID: u32 = 19;
const BPF_BTF_GET_NEXT_ID: u32 = 23;
const BPF_PROG_TYPE_TRACING: u32 = 26;
const BPF_TRACE_FENTRY: u32 = 24;
const BPF_TRACE_FEXIT: u32 = 25;

/// `union bpf_attr` for the BTF id walk (`start_id`/`btf_id`, `next_id`, `open_flags`).
#[repr(C)]
#[derive(Default)]
struct IdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

/// `union bpf_attr` for `BPF_OBJ_GET_INFO_BY_FD`.
#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// `struct bpf_btf_info`.
#[repr(C)]
#[derive(Default)]
struct BtfInfo {
    btf: u64,
    btf_size: u32,
    id: u32,
    name: u64,
    name_len: u32,
    kernel_btf: u32,
}

/// `union bpf_attr` for `BPF_RAW_TRACEPOINT_OPEN`.
#[repr(C)]
#[derive(Default)]
struct RawTpAttr {
    name: u64,
    prog_fd: u32,
    _pad: u32,
}

/// The fd of the kernel BTF object of module `name` (`/sys/kernel/btf/NAME`).
pub fn module_btf_fd(name: &str) -> io::Result<OwnedFd> {
    let mut id = 0;
    loop {
        let mut next = IdAttr {
            id,
            ..Default::default()
        };
        // SAFETY: the id-walk attr, without pointers.
        unsafe { bpf(BPF_BTF_GET_NEXT_ID, &mut next)? };
        id = next.next_id;
        let mut open = IdAttr {
            id,
            ..Default::default()
        };
        // An object may go away between the two calls (a module unloaded): go on.
        // SAFETY: the id attr, without pointers.
        let Ok(fd) = (unsafe { bpf_fd(BPF_BTF_GET_FD_BY_ID, &mut open) }) else {
            continue;
        };
        let mut buf = [0u8; 64];
        let mut info = BtfInfo {
            name: buf.as_mut_ptr() as u64,
            name_len: buf.len() as u32,
            ..Default::default()
        };
        let mut attr = InfoAttr {
            bpf_fd: fd.as_raw_fd() as u32,
            info_len: std::mem::size_of::<BtfInfo>() as u32,
            info: &mut info as *mut BtfInfo as u64,
        };
        // SAFETY: `info` and its name buffer live through the call, sizes as given.
        if unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr) }.is_err() || info.kernel_btf == 0 {
            continue;
        }
        let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        if &buf[..len] == name.as_bytes() {
            return Ok(fd);
        }
    }
}

/// Load `insns` (relocated) as a fentry (or, `ret`, fexit) program on the BTF FUNC
/// `btf_id` (of the module BTF `btf_obj`, if given). On a verifier rejection the error
/// carries the verifier's log.
pub fn load(
    insns: &[[u8; 8]],
    ret: bool,
    btf_id: u32,
    btf_obj: Option<RawFd>,
) -> Result<OwnedFd, (io::Error, String)> {
    let load = |log: Option<&mut [u8]>| {
        prog_load(ProgLoad {
            prog_type: BPF_PROG_TYPE_TRACING,
            expected_attach_type: if ret {
                BPF_TRACE_FEXIT
            } else {
                BPF_TRACE_FENTRY
            },
            insns,
            log,
            attach_btf_id: btf_id,
            attach_btf_obj_fd: btf_obj.map_or(0, |fd| fd as u32),
        })
    };
    let e = match load(None) {
        Ok(fd) => return Ok(fd),
        Err(e) => e,
    };
    // Again with a log, to say why.
    let mut log = vec![0u8; 1 << 20];
    if let Ok(fd) = load(Some(&mut log)) {
        return Ok(fd);
    }
    let len = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    Err((e, String::from_utf8_lossy(&log[..len]).into_owned()))
}

/// Attach a loaded fentry/fexit program; closing the returned link detaches it.
pub fn attach(prog: RawFd) -> io::Result<OwnedFd> {
    let mut attr = RawTpAttr {
        name: 0,
        prog_fd: prog as u32,
        _pad: 0,
    };
    // SAFETY: the attr of this command; no name (0), the program's fd.
    unsafe { bpf_fd(BPF_RAW_TRACEPOINT_OPEN, &mut attr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<BtfInfo>(), 32);
        assert_eq!(std::mem::size_of::<RawTpAttr>(), 16);
    }
}
