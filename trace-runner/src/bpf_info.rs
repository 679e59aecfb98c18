//! `bpftrace --info`: what this kernel supports, in bpftrace 0.17's layout, measured here:
//! program types by loading a two-instruction program of each type, helpers by loading a
//! kprobe program that calls them (the verifier's "unknown func" means absent; any other
//! complaint about the arguments means present), map types by creating a map, the rest
//! read from the kernel (BTF, PMUs), kfunc by loading a fentry program on `vfs_read`.
//! Probe types trace-runner cannot attach (iterators, kprobe_multi) say `no` whatever
//! the kernel offers. The layout is pure
//! ([`render`]); [`report`] measures.

use std::os::fd::AsRawFd;

use crate::sys::bpf;

const PROG_SOCKET_FILTER: u32 = 1;
const PROG_KPROBE: u32 = 2;
const PROG_TRACEPOINT: u32 = 5;
const PROG_PERF_EVENT: u32 = 7;
const PROG_RAW_TRACEPOINT: u32 = 17;

/// One measured line: label and answer.
pub(crate) type Line = (&'static str, bool);

/// Everything `--info` reports.
pub(crate) struct Info {
    pub(crate) os: String,
    pub(crate) arch: String,
    pub(crate) helpers: Vec<Line>,
    pub(crate) insn_limit: u32,
    pub(crate) features: Vec<Line>,
    pub(crate) maps: Vec<Line>,
    pub(crate) probes: Vec<Line>,
}

fn yes(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// bpftrace's `--info` text.
pub(crate) fn render(i: &Info) -> String {
    let mut s = format!(
        "System\n  OS: {}\n  Arch: {}\n\nBuild\n  version: v0.17.0-compatible (trace-runner {})\n  \
         LLVM: none (eBPF generated in-process)\n  unsafe uprobe: no\n  bfd: no\n  \
         libdw (DWARF support): no\n\nKernel helpers\n",
        i.os,
        i.arch,
        env!("CARGO_PKG_VERSION")
    );
    let section = |s: &mut String, lines: &[Line]| {
        for (k, v) in lines {
            s.push_str(&format!("  {k}: {}\n", yes(*v)));
        }
    };
    section(&mut s, &i.helpers);
    s.push_str(&format!(
        "\nKernel features\n  Instruction limit: {}\n",
        i.insn_limit
    ));
    section(&mut s, &i.features);
    s.push_str("\nMap types\n");
    section(&mut s, &i.maps);
    s.push_str("\nProbe types\n");
    section(&mut s, &i.probes);
    s
}

/// Load a program; `Ok` or the errno and the verifier's log.
fn prog_load(prog_type: u32, insns: &[u64]) -> Result<String, (i32, String)> {
    let code: Vec<[u8; 8]> = insns.iter().map(|i| i.to_ne_bytes()).collect();
    let mut log = vec![0u8; 64 * 1024];
    let loaded = bpf::prog_load(bpf::ProgLoad {
        prog_type,
        expected_attach_type: 0,
        insns: &code,
        log: Some(&mut log),
        attach_btf_id: 0,
        attach_btf_obj_fd: 0,
    });
    let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
    let text = String::from_utf8_lossy(&log[..end]).into_owned();
    match loaded {
        Ok(_fd) => Ok(text),
        Err(e) => Err((e.raw_os_error().unwrap_or(0), text)),
    }
}

/// An instruction: opcode, dst, src, offset, immediate.
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    u64::from(code)
        | (u64::from(dst & 0xf) << 8)
        | (u64::from(src & 0xf) << 12)
        | (u64::from(off as u16) << 16)
        | (u64::from(imm as u32) << 32)
}

const MOV_R0_0: (u8, u8, u8, i16, i32) = (0xb7, 0, 0, 0, 0);
const EXIT: (u8, u8, u8, i16, i32) = (0x95, 0, 0, 0, 0);

fn program(parts: &[(u8, u8, u8, i16, i32)]) -> Vec<u64> {
    parts
        .iter()
        .map(|&(c, d, s, o, i)| insn(c, d, s, o, i))
        .collect()
}

fn prog_type_ok(prog_type: u32) -> bool {
    prog_load(prog_type, &program(&[MOV_R0_0, EXIT])).is_ok()
}

/// Whether a kprobe program may call helper `id` (arguments all zero: a complaint about
/// them still means the helper exists for this program type).
fn helper_ok(id: i32) -> bool {
    let mut parts = vec![(0xb7, 1, 0, 0, 0)];
    for r in 2..=5 {
        parts.push((0xb7, r, 0, 0, 0));
    }
    parts.extend([(0x85, 0, 0, 0, id), MOV_R0_0, EXIT]);
    match prog_load(PROG_KPROBE, &program(&parts)) {
        Ok(_) => true,
        Err((_, log)) => {
            if std::env::var_os("TRACE_RUNNER_DEBUG").is_some() {
                eprintln!("helper {id}: {log}");
            }
            !log.contains("unknown func")
                && !log.contains("invalid func")
                && !log.contains("not supported")
                && !log.contains("cannot use helper")
                && !log.is_empty()
        }
    }
}

fn map_ok(map_type: u32, key: u32, value: u32) -> bool {
    bpf::map_create(map_type, key, value, 4).is_ok()
}

/// BPF_MAP_LOOKUP_BATCH on an empty hash map: ENOENT (nothing to return) when supported.
fn map_batch_ok() -> bool {
    let Ok(map) = bpf::map_create(1, 4, 4, 4) else {
        return false;
    };
    let mut keys = [0u8; 16];
    let mut values = [0u8; 16];
    match bpf::lookup_batch(map.as_raw_fd(), &mut keys, &mut values, 4) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(crate::sys::errno::ENOENT),
    }
}

/// The verifier's instruction limit, as its log states it (`processed 2 insns (limit
/// 1000000) ...`); 0 when it says nothing.
fn insn_limit() -> u32 {
    match prog_load(PROG_SOCKET_FILTER, &program(&[MOV_R0_0, EXIT])) {
        Ok(log) | Err((_, log)) => limit_from_log(&log).unwrap_or(0),
    }
}

fn limit_from_log(log: &str) -> Option<u32> {
    let rest = &log[log.find("(limit ")? + 7..];
    rest[..rest.find(')')?].trim().parse().ok()
}

/// A bounded loop (a back edge) passes the verifier.
fn loops_ok() -> bool {
    prog_load(
        PROG_SOCKET_FILTER,
        &program(&[MOV_R0_0, (0x07, 0, 0, 0, 1), (0xa5, 0, 0, -2, 10), EXIT]),
    )
    .is_ok()
}

fn exists(p: &str) -> bool {
    std::path::Path::new(p).exists()
}

fn uname() -> (String, String) {
    let u = crate::sys::uname::uname();
    (
        format!("{} {} {}", u.sysname, u.release, u.version),
        u.machine,
    )
}

/// Measure this kernel.
pub(crate) fn report() -> String {
    crate::runtime::raise_memlock();
    let (os, arch) = uname();
    let kprobe_pmu = exists("/sys/bus/event_source/devices/kprobe");
    let helpers = vec![
        ("probe_read", helper_ok(4)),
        ("probe_read_str", helper_ok(45)),
        ("probe_read_user", helper_ok(112)),
        ("probe_read_user_str", helper_ok(114)),
        ("probe_read_kernel", helper_ok(113)),
        ("probe_read_kernel_str", helper_ok(115)),
        ("get_current_cgroup_id", helper_ok(80)),
        ("send_signal", helper_ok(109)),
        ("override_return", helper_ok(58)),
        ("get_boot_ns", helper_ok(125)),
        ("dpath", helper_ok(147)),
        ("skboutput", helper_ok(111)),
    ];
    let features = vec![
        ("Loop support", loops_ok()),
        ("btf", exists("/sys/kernel/btf/vmlinux")),
        ("map batch", map_batch_ok()),
        (
            "uprobe refcount",
            exists("/sys/bus/event_source/devices/uprobe/format/ref_ctr_offset"),
        ),
    ];
    let maps = vec![
        ("hash", map_ok(1, 8, 8)),
        ("percpu hash", map_ok(5, 8, 8)),
        ("array", map_ok(2, 4, 8)),
        ("percpu array", map_ok(6, 4, 8)),
        ("stack_trace", map_ok(7, 4, 8 * 127)),
        ("perf_event_array", map_ok(4, 4, 4)),
    ];
    let probes = vec![
        // A kprobe program loads even where the kernel has no kprobes to attach it to.
        ("kprobe", kprobe_pmu && prog_type_ok(PROG_KPROBE)),
        ("tracepoint", prog_type_ok(PROG_TRACEPOINT)),
        ("perf_event", prog_type_ok(PROG_PERF_EVENT)),
        ("kfunc", kfunc_ok()),
        ("iter:task", false),
        ("iter:task_file", false),
        ("kprobe_multi", false),
        ("raw_tp_special", prog_type_ok(PROG_RAW_TRACEPOINT)),
    ];
    render(&Info {
        os,
        arch,
        helpers,
        insn_limit: insn_limit(),
        features,
        maps,
        probes,
    })
}

/// Whether a fentry program loads (on `vfs_read`, found in the kernel's BTF).
pub fn kfunc_ok() -> bool {
    // r0 = 0; exit
    let insns = [[0xb7, 0, 0, 0, 0, 0, 0, 0], [0x95, 0, 0, 0, 0, 0, 0, 0]];
    crate::btf::kernel()
        .and_then(|k| k.func_id("vfs_read"))
        .is_some_and(|id| crate::sys::fentry::load(&insns, false, id, None).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_is_bpftraces() {
        let text = render(&Info {
            os: "Linux 6.1 #1".into(),
            arch: "x86_64".into(),
            helpers: vec![("probe_read", true), ("dpath", false)],
            insn_limit: 1_000_000,
            features: vec![("btf", true)],
            maps: vec![("perf_event_array", true)],
            probes: vec![("kfunc", false)],
        });
        assert!(text.starts_with("System\n  OS: Linux 6.1 #1\n  Arch: x86_64\n\nBuild\n"));
        assert!(text.contains("\nKernel helpers\n  probe_read: yes\n  dpath: no\n\n"));
        assert!(text.contains("\nKernel features\n  Instruction limit: 1000000\n  btf: yes\n"));
        assert!(text.contains("\nMap types\n  perf_event_array: yes\n"));
        assert!(text.ends_with("\nProbe types\n  kfunc: no\n"));
    }

    #[test]
    fn verifier_limit_from_its_log() {
        let log = "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0";
        assert_eq!(limit_from_log(log), Some(1_000_000));
        assert_eq!(limit_from_log("nothing"), None);
    }

    #[test]
    fn instruction_encoding() {
        // mov r1, 5: opcode 0xb7, dst 1, imm 5.
        assert_eq!(insn(0xb7, 1, 0, 0, 5), 0x0000_0005_0000_01b7);
        // jlt r0, 10, -2: offset in bits 16..32.
        assert_eq!(insn(0xa5, 0, 0, -2, 10) >> 16 & 0xffff, 0xfffe);
    }
}
