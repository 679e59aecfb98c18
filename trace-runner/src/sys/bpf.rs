//! The `bpf(2)` commands the runner issues itself (aya 0.14 loads and attaches the rest):
//! map element lookup/iteration/update/delete on arbitrary key and value sizes,
//! `BPF_PROG_TEST_RUN` (which runs BEGIN and END programs once), loading a program with an
//! expected attach type and a verifier log, creating a map, `BPF_MAP_LOOKUP_BATCH`, and
//! kprobe_multi links. [`bpf`] is the one raw call; each command has a typed wrapper and
//! its own attr struct (a prefix of the kernel's `union bpf_attr`: the kernel takes the
//! size given and zero-fills the rest).

use std::ffi::CStr;
use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_LOOKUP_ELEM: u32 = 1;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_MAP_DELETE_ELEM: u32 = 3;
const BPF_MAP_GET_NEXT_KEY: u32 = 4;
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_MAP_LOOKUP_BATCH: u32 = 24;
const BPF_LINK_CREATE: u32 = 28;

/// `expected_attach_type` and link type of kprobe_multi links.
pub(crate) const BPF_TRACE_KPROBE_MULTI: u32 = 42;
const BPF_F_KPROBE_MULTI_RETURN: u32 = 1;

#[repr(C)]
#[derive(Default)]
struct MapElemAttr {
    map_fd: u32,
    _pad: u32,
    key: u64,
    value: u64,
    flags: u64,
}

#[repr(C)]
#[derive(Default)]
struct TestRunAttr {
    prog_fd: u32,
    retval: u32,
    data_size_in: u32,
    data_size_out: u32,
    data_in: u64,
    data_out: u64,
    repeat: u32,
    duration: u32,
    ctx_size_in: u32,
    ctx_size_out: u32,
    ctx_in: u64,
    ctx_out: u64,
    flags: u32,
    cpu: u32,
    batch_size: u32,
    _pad: u32,
}

/// `BPF_PROG_LOAD`, up to `attach_btf_obj_fd` (the fields after `expected_attach_type`
/// stay zero except for fentry/fexit programs).
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
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_btf_obj_fd: u32,
    _pad: u32,
}

/// `BPF_MAP_CREATE`, up to `max_entries`.
#[repr(C)]
#[derive(Default)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
}

/// `BPF_MAP_*_BATCH`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `BPF_LINK_CREATE` of a kprobe_multi link.
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

/// The raw call: the syscall's return value (an fd for commands that create one).
///
/// # Safety
/// `attr` must be laid out as the prefix of `union bpf_attr` that `cmd` reads, and every
/// pointer inside it must point at a live buffer of the size the kernel expects for as
/// long as the call runs (the kernel writes through the output ones).
pub(crate) unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: as the caller promised.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A command that returns a new fd.
///
/// # Safety
/// As for [`bpf`].
pub(crate) unsafe fn bpf_fd<T>(cmd: u32, attr: &mut T) -> io::Result<OwnedFd> {
    // SAFETY: as the caller promised.
    let fd = unsafe { bpf(cmd, attr)? };
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Look up `key`; `value` must hold the map's value size (times the CPU count for
/// per-CPU maps, each value rounded up to 8 bytes). Returns false when absent.
pub fn lookup(fd: RawFd, key: &[u8], value: &mut [u8]) -> io::Result<bool> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.as_ptr() as u64,
        value: value.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the attr of this command; key and value are live slices the caller sized
    // for the map (the kernel reads key_size and writes value_size bytes).
    match unsafe { bpf(BPF_MAP_LOOKUP_ELEM, &mut attr) } {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn update(fd: RawFd, key: &[u8], value: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.as_ptr() as u64,
        value: value.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the attr of this command, pointing at live slices (only read).
    unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) }.map(drop)
}

pub fn delete(fd: RawFd, key: &[u8]) -> io::Result<()> {
    let mut attr = MapElemAttr {
        map_fd: fd as u32,
        key: key.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the attr of this command, pointing at a live key (only read).
    match unsafe { bpf(BPF_MAP_DELETE_ELEM, &mut attr) } {
        Err(e) if e.raw_os_error() != Some(libc::ENOENT) => Err(e),
        _ => Ok(()),
    }
}

/// Every key of a hash map (`key_size` bytes each).
pub fn keys(fd: RawFd, key_size: usize) -> io::Result<Vec<Vec<u8>>> {
    let mut out: Vec<Vec<u8>> = Vec::new();
    let mut next = vec![0u8; key_size];
    loop {
        let mut attr = MapElemAttr {
            map_fd: fd as u32,
            key: out.last().map_or(0, |k| k.as_ptr() as u64),
            value: next.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: the attr of this command; the previous key (or none) and the buffer
        // for the next one are `key_size` bytes and live.
        match unsafe { bpf(BPF_MAP_GET_NEXT_KEY, &mut attr) } {
            Ok(_) => out.push(next.clone()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(out),
            Err(e) => return Err(e),
        }
        if out.len() > 10_000_000 {
            return Ok(out);
        }
    }
}

/// Run a loaded program once (BEGIN/END are raw tracepoint programs run this way).
pub fn test_run(prog_fd: RawFd) -> io::Result<u32> {
    let mut ctx = [0u64; 1];
    let mut attr = TestRunAttr {
        prog_fd: prog_fd as u32,
        ctx_size_in: std::mem::size_of_val(&ctx) as u32,
        ctx_in: ctx.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the attr of this command; the context buffer is live and of the size given.
    unsafe { bpf(BPF_PROG_TEST_RUN, &mut attr)? };
    Ok(attr.retval)
}

/// The number of possible CPUs (the stride of per-CPU map values).
pub fn possible_cpus() -> usize {
    aya::util::nr_cpus().unwrap_or(1)
}

/// A program to load with [`prog_load`].
pub(crate) struct ProgLoad<'a> {
    pub(crate) prog_type: u32,
    pub(crate) expected_attach_type: u32,
    /// The instructions, 8 bytes each.
    pub(crate) insns: &'a [[u8; 8]],
    /// A buffer for the verifier's log (level 1), NUL-terminated by the kernel.
    pub(crate) log: Option<&'a mut [u8]>,
    /// fentry/fexit: the BTF FUNC id of the traced function, and the fd of the module
    /// BTF object it is in (0: the kernel's own BTF). 0 for other programs.
    pub(crate) attach_btf_id: u32,
    pub(crate) attach_btf_obj_fd: u32,
}

/// Load a GPL-licensed program.
pub(crate) fn prog_load(p: ProgLoad<'_>) -> io::Result<OwnedFd> {
    let license = c"GPL";
    let (log_level, log_size, log_buf) = match p.log {
        Some(buf) => (1, buf.len() as u32, buf.as_mut_ptr() as u64),
        None => (0, 0, 0),
    };
    let mut attr = ProgLoadAttr {
        prog_type: p.prog_type,
        insn_cnt: p.insns.len() as u32,
        insns: p.insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level,
        log_size,
        log_buf,
        expected_attach_type: p.expected_attach_type,
        attach_btf_id: p.attach_btf_id,
        attach_btf_obj_fd: p.attach_btf_obj_fd,
        ..Default::default()
    };
    // SAFETY: the attr of this command; instructions, license and log buffer are live
    // and of the sizes given.
    unsafe { bpf_fd(BPF_PROG_LOAD, &mut attr) }
}

/// Create a map of `max_entries` entries.
pub(crate) fn map_create(
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> io::Result<OwnedFd> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries,
    };
    // SAFETY: the attr of this command, without pointers.
    unsafe { bpf_fd(BPF_MAP_CREATE, &mut attr) }
}

/// Whether the kernel has the BPF ring buffer (`BPF_MAP_TYPE_RINGBUF`, Linux 5.8).
pub(crate) fn ringbuf_ok() -> bool {
    map_create(27, 0, 0, 4096).is_ok()
}

/// `BPF_MAP_LOOKUP_BATCH` from the start of map `fd` into `keys` and `values` (room for
/// `count` entries each): the number of entries read.
pub(crate) fn lookup_batch(
    fd: RawFd,
    keys: &mut [u8],
    values: &mut [u8],
    count: u32,
) -> io::Result<u32> {
    let mut out_batch = [0u8; 8];
    let mut attr = BatchAttr {
        out_batch: out_batch.as_mut_ptr() as u64,
        keys: keys.as_mut_ptr() as u64,
        values: values.as_mut_ptr() as u64,
        count,
        map_fd: fd as u32,
        ..Default::default()
    };
    // SAFETY: the attr of this command; the buffers are live (the caller sized them for
    // `count` entries of the map's key and value sizes) and out_batch holds a batch token.
    unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr)? };
    Ok(attr.count)
}

/// Attach program `prog_fd` (loaded with [`BPF_TRACE_KPROBE_MULTI`]) to every function of
/// `funcs` with one kprobe_multi link (kretprobes with `ret`); closing the link detaches.
pub(crate) fn link_kprobe_multi(prog_fd: RawFd, funcs: &[&CStr], ret: bool) -> io::Result<OwnedFd> {
    let syms: Vec<u64> = funcs.iter().map(|n| n.as_ptr() as u64).collect();
    let mut attr = KprobeMultiLinkAttr {
        prog_fd: prog_fd as u32,
        attach_type: BPF_TRACE_KPROBE_MULTI,
        multi_flags: if ret { BPF_F_KPROBE_MULTI_RETURN } else { 0 },
        cnt: syms.len() as u32,
        syms: syms.as_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: the attr of this command; `syms` holds `cnt` pointers to NUL-terminated
    // names, all alive until the call returns.
    unsafe { bpf_fd(BPF_LINK_CREATE, &mut attr) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attr_layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<MapElemAttr>(), 32);
        assert_eq!(std::mem::size_of::<TestRunAttr>(), 80);
        // offsetof(union bpf_attr, expected_attach_type) is 68, attach_btf_id 108,
        // attach_btf_obj_fd 112.
        assert_eq!(std::mem::size_of::<ProgLoadAttr>(), 120);
        let a = ProgLoadAttr::default();
        let base = &a as *const _ as usize;
        assert_eq!(&a.expected_attach_type as *const _ as usize - base, 68);
        assert_eq!(&a.attach_btf_id as *const _ as usize - base, 108);
        assert_eq!(&a.attach_btf_obj_fd as *const _ as usize - base, 112);
        assert_eq!(std::mem::size_of::<MapCreateAttr>(), 16);
        assert_eq!(std::mem::size_of::<BatchAttr>(), 56);
        assert_eq!(std::mem::size_of::<KprobeMultiLinkAttr>(), 48);
    }
}
