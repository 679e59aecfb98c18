//! Running a compiled BPF object (`trace-runner run prog.o`): an ELF whose machine is BPF,
//! built by clang (`clang -target bpf -O2 -g -c`) or aya-ebpf, possibly gzip-compressed
//! (`program.o.gz`, as kubectl-trace ships large objects in the ConfigMap).
//!
//! Every program is attached by its section name: `tracepoint/CAT/NAME` (`tp/`),
//! `raw_tp/NAME` (`raw_tracepoint/`), `tp_btf/NAME`, `fentry/FN`, `fexit/FN`, `kprobe/FN`,
//! `kretprobe/FN`, `uprobe/PATH:SYMBOL[+OFF]`, `uretprobe/...` (or a bare `uprobe` with
//! `--uprobe-target PATH:SYMBOL`; PATH is the target container's file, else the node's,
//! reached through `HOST_PROC/PID/root` and `HOST_PROC/1/root`, links followed inside
//! them), `perf_event` (`--sample-hz`, default 99, on every
//! online CPU), and the cgroup programs `cgroup_skb/ingress|egress`, `cgroup/sock_create`,
//! `cgroup/sock_release`, `cgroup/post_bind4|6`, `cgroup/bind4|6`, `cgroup/connect4|6`,
//! `cgroup/sendmsg4|6`, `cgroup/recvmsg4|6`, `cgroup/getpeername4|6`,
//! `cgroup/getsockname4|6`, `cgroup/getsockopt`, `cgroup/setsockopt`, `cgroup/sysctl`,
//! `cgroup/dev` and `sockops`, attached (`CgroupAttachMode::Single`) to each target cgroup
//! directory (`--cgroup PATH`, or the pod's / containers' own directories).
//!
//! Scoping convention: a global `target_cgroup_id` (`volatile const __u64` in `.rodata`,
//! or any 8-byte global; `TARGET_CGROUP_ID` in Rust) or a one-entry ARRAY map of that name
//! receives the target's cgroup v2 id before the programs load (0 when there is no target);
//! `target_cgroup_level` (`TARGET_CGROUP_LEVEL`, 4 or 8 bytes) receives its depth, for
//! `bpf_get_current_ancestor_cgroup_id(level)`.
//!
//! Output: a `RINGBUF` or `PERF_EVENT_ARRAY` map named `events` is streamed, one line per
//! record: `field=value ...` when the object's BTF has a struct named `event` (or `Event`,
//! `events`), hex bytes otherwise. At exit every other hash/array map (plain, per-CPU, LRU)
//! prints bpftrace-style as `@name[key]: value` (`@name: value` for a one-entry array),
//! typed through the key/value types of BTF map definitions; per-CPU values are summed and
//! all-zero array slots skipped. `--format json` prints one JSON object per record and per map.

use std::collections::HashMap;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use aya::maps::perf::{PerfEvent as PerfRecord, PerfEventArrayBuffer};
use aya::maps::{Map, MapData, PerfEventArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{CgroupAttachMode, CgroupSkbAttachType, Program, ProgramError};
use aya::{Btf, Ebpf, EbpfLoader};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind, SymbolKind};

use super::bpf_sys;
use super::elf_check;
use super::error_chain;
use super::object_btf::{self, ObjectBtf, Value};
use crate::output::{Record, RecordMap};
use crate::run_record::{RecordSpec, RunOutput};
use crate::scope::Cgroup;
use crate::sink::{Format, Sink};

/// ELF machine number of BPF.
pub const EM_BPF: u16 = 247;

/// Names of the record struct of the `events` map, in order of preference.
const EVENT_STRUCTS: &[&str] = &["event", "Event", "events"];

/// Globals and the array map that receive the target's cgroup id and level.
const CGROUP_ID_NAMES: &[&str] = &["target_cgroup_id", "TARGET_CGROUP_ID"];
const CGROUP_LEVEL_NAMES: &[&str] = &["target_cgroup_level", "TARGET_CGROUP_LEVEL"];

const DEFAULT_SAMPLE_HZ: u64 = 99;

/// A failed run: the message (one line for everything the user can fix) and exit code.
#[derive(Debug)]
pub struct ObjectError(pub String, pub u8);

/// True when `bytes` is an ELF file whose machine is BPF.
pub fn is_bpf_object(bytes: &[u8]) -> bool {
    elf_machine(bytes) == Some(EM_BPF)
}

fn elf_machine(bytes: &[u8]) -> Option<u16> {
    if bytes.len() < 20 || &bytes[..4] != b"\x7fELF" {
        return None;
    }
    let m = [bytes[18], bytes[19]];
    Some(match bytes[5] {
        2 => u16::from_be_bytes(m),
        _ => u16::from_le_bytes(m),
    })
}

fn machine_name(m: u16) -> String {
    match m {
        3 => "i386".into(),
        40 => "ARM".into(),
        62 => "x86-64".into(),
        183 => "AArch64".into(),
        243 => "RISC-V".into(),
        other => format!("machine {other}"),
    }
}

/// Read the program file of `trace-runner run FILE`: `Ok(Some(object))` when it is a
/// compiled object (ELF, or named `*.o` / `*.o.gz`, or gzip-compressed), `Ok(None)` for a
/// script (or an unreadable file: the script path reports that), `Err` with a one-line
/// message for an object that is not usable (not ELF, not BPF, big-endian, bad gzip, or
/// corrupt: [`elf_check`] rejects what aya-obj would panic on).
pub fn read_object(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let Ok(raw) = std::fs::read(path) else {
        return Ok(None);
    };
    let name = path.display();
    let gz = raw.starts_with(&[0x1f, 0x8b]);
    let bytes = if gz {
        gunzip(&raw, MAX_OBJECT_BYTES).map_err(|e| format!("error: {name}: {e}"))?
    } else {
        raw
    };
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let named_object = file_name.ends_with(".o") || file_name.ends_with(".o.gz");
    let Some(machine) = elf_machine(&bytes) else {
        if gz || named_object {
            return Err(format!(
                "error: {name}: not an ELF object; give a BPF object built with `clang -target bpf -O2 -g -c` or aya-ebpf, or a bpftrace script (e.g. prog.bt)"
            ));
        }
        return Ok(None);
    };
    if !is_bpf_object(&bytes) {
        return Err(format!(
            "error: {name}: an ELF object for {}, not BPF (e_machine {machine}, BPF is {EM_BPF}); build it with `clang -target bpf -O2 -g -c` or aya-ebpf",
            machine_name(machine)
        ));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(format!(
            "error: {name}: a 32-bit or big-endian BPF object; build it for this node with `clang -target bpfel` (or `-target bpf` on a little-endian host)"
        ));
    }
    // aya-obj trusts the object's offsets and indexes: a corrupt one would panic in it.
    elf_check::check(&bytes).map_err(|d| format!("error: {name}: corrupt BPF object: {d}"))?;
    Ok(Some(bytes))
}

/// Far above any BPF object (kilobytes to a few megabytes): a gzip file that inflates past
/// this is not one, and would only exhaust memory.
const MAX_OBJECT_BYTES: u64 = 256 << 20;

/// Decompress `raw`, refusing output longer than `limit` bytes.
fn gunzip(raw: &[u8], limit: u64) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress the gzip data: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "the gzip data decompresses to more than {} MiB, which no BPF object needs",
            limit >> 20
        ));
    }
    Ok(out)
}

/// Everything `trace-runner run prog.o` needs, resolved by the caller.
pub struct ObjectRun<'a> {
    /// The object file as given (for messages).
    pub path: &'a Path,
    /// Its (decompressed) bytes, as returned by [`read_object`].
    pub bytes: Vec<u8>,
    /// The target cgroups: `--cgroup PATH`, or the pod's (or containers') directories.
    pub cgroups: &'a [Cgroup],
    /// A pod target resolved to a set of pids (no cgroup v2 on the node).
    pub pid_fallback: bool,
    /// The target container's main pid (pod targets): uprobe paths resolve in its filesystem.
    pub container_pid: Option<u32>,
    pub host_proc: &'a Path,
    /// `--pid` (not supported for objects).
    pub pid: Option<u32>,
    /// `--uprobe-target PATH[:SYMBOL[+OFF]]`.
    pub uprobe_target: Option<&'a str>,
    /// `--sample-hz` for perf_event programs.
    pub sample_hz: Option<u64>,
    pub deadline: Option<Duration>,
    pub format: Format,
    /// `--output-dir` and `--trace-id`: persist the output too.
    pub output_dir: Option<&'a Path>,
    pub trace_id: Option<&'a str>,
    /// What is traced, for meta.json.
    pub target: Option<&'a str>,
    pub started: SystemTime,
}

/// What a program section attaches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachKind {
    Tracepoint { category: String, name: String },
    RawTracepoint { name: String },
    BtfTracepoint { name: String },
    FEntry { func: String },
    FExit { func: String },
    Kprobe { func: String },
    Uprobe { target: Option<String> },
    PerfEvent,
    CgroupSkb { egress: bool },
    CgroupSock,
    CgroupSockAddr,
    CgroupSockopt,
    CgroupSysctl,
    CgroupDevice,
    SockOps,
}

impl AttachKind {
    fn is_cgroup(&self) -> bool {
        matches!(
            self,
            AttachKind::CgroupSkb { .. }
                | AttachKind::CgroupSock
                | AttachKind::CgroupSockAddr
                | AttachKind::CgroupSockopt
                | AttachKind::CgroupSysctl
                | AttachKind::CgroupDevice
                | AttachKind::SockOps
        )
    }
}

const SUPPORTED: &str = "tracepoint/CAT/NAME, raw_tp/NAME, tp_btf/NAME, fentry/FN, fexit/FN, kprobe/FN, kretprobe/FN, uprobe/PATH:SYM, uretprobe/PATH:SYM, perf_event, cgroup_skb/ingress|egress, cgroup/<sock_create|sock_release|post_bind4|post_bind6|bind4|bind6|connect4|connect6|sendmsg4|sendmsg6|recvmsg4|recvmsg6|getpeername4|getpeername6|getsockname4|getsockname6|getsockopt|setsockopt|sysctl|dev>, sockops";

/// Parse a program section name; `Err` says what is missing (`Ok(None)`-like cases are errors).
pub fn parse_section(section: &str) -> Result<AttachKind, String> {
    let (kind, rest) = section.split_once('/').unwrap_or((section, ""));
    let need = |what: &str| -> Result<String, String> {
        if rest.is_empty() {
            Err(format!(
                "does not say which {what} to attach to: name the section `{kind}/{}`",
                what.to_uppercase().replace(' ', "_")
            ))
        } else {
            Ok(rest.to_string())
        }
    };
    Ok(match kind {
        "tracepoint" | "tp" => {
            let tp = need("category/name")?;
            let (category, name) = tp.split_once('/').ok_or_else(|| {
                format!("names tracepoint `{tp}` without a category: use `{kind}/CATEGORY/NAME`")
            })?;
            AttachKind::Tracepoint {
                category: category.into(),
                name: name.into(),
            }
        }
        "raw_tp" | "raw_tracepoint" => AttachKind::RawTracepoint {
            name: need("tracepoint")?,
        },
        "tp_btf" => AttachKind::BtfTracepoint {
            name: need("tracepoint")?,
        },
        "fentry" => AttachKind::FEntry {
            func: need("function")?,
        },
        "fexit" => AttachKind::FExit {
            func: need("function")?,
        },
        "kprobe" | "kretprobe" => AttachKind::Kprobe {
            func: need("function")?,
        },
        "uprobe" | "uretprobe" => AttachKind::Uprobe {
            target: (!rest.is_empty()).then(|| rest.to_string()),
        },
        "perf_event" => AttachKind::PerfEvent,
        "cgroup_skb" => match rest {
            "ingress" => AttachKind::CgroupSkb { egress: false },
            "egress" => AttachKind::CgroupSkb { egress: true },
            _ => return Err("must be `cgroup_skb/ingress` or `cgroup_skb/egress`".into()),
        },
        "sockops" => AttachKind::SockOps,
        "cgroup" => match rest {
            "sock" | "sock_create" | "sock_release" | "post_bind4" | "post_bind6" => {
                AttachKind::CgroupSock
            }
            "bind4" | "bind6" | "connect4" | "connect6" | "sendmsg4" | "sendmsg6" | "recvmsg4"
            | "recvmsg6" | "getpeername4" | "getpeername6" | "getsockname4" | "getsockname6" => {
                AttachKind::CgroupSockAddr
            }
            "getsockopt" | "setsockopt" => AttachKind::CgroupSockopt,
            "sysctl" => AttachKind::CgroupSysctl,
            "dev" => AttachKind::CgroupDevice,
            "skb" => {
                return Err(
                    "does not say the direction: use `cgroup_skb/ingress` or `cgroup_skb/egress`"
                        .into(),
                )
            }
            _ => {
                return Err(format!(
                    "is a cgroup hook the runner cannot attach (supported: {SUPPORTED})"
                ))
            }
        },
        _ => {
            return Err(format!(
                "is of a kind the runner cannot attach; put it in another object (supported: {SUPPORTED})"
            ))
        }
    })
}

/// `PATH[:SYMBOL[+OFFSET]]` (the symbol part only when it holds no `/`).
fn split_uprobe_target(t: &str) -> (String, Option<String>, u64) {
    let (path, sym) = match t.rsplit_once(':') {
        Some((p, s)) if !s.contains('/') && !s.is_empty() => (p, Some(s)),
        _ => (t, None),
    };
    let (sym, off) = match sym.and_then(|s| s.split_once('+')) {
        Some((s, o)) => {
            let o = o.trim_start_matches("0x");
            (Some(s.to_string()), u64::from_str_radix(o, 16).unwrap_or(0))
        }
        None => (sym.map(str::to_string), 0),
    };
    (path.to_string(), sym, off)
}

/// A program of the object and where it goes.
#[derive(Debug, Clone)]
struct ProgSpec {
    name: String,
    section: String,
    kind: AttachKind,
}

/// What the runner reads from the ELF itself (aya does the rest).
pub(super) struct ElfInfo {
    programs: Vec<ProgSpec>,
    /// Symbol name -> size, for globals.
    globals: HashMap<String, u64>,
    pub(super) btf: Option<ObjectBtf>,
    /// `.BTF.ext` has CO-RE relocations (the kernel's BTF is needed).
    core_relocs: bool,
}

pub(super) fn inspect(bytes: &[u8], name: &str) -> Result<ElfInfo, String> {
    let file = object::File::parse(bytes)
        .map_err(|e| format!("error: {name}: cannot read the ELF object: {e}"))?;
    let mut section_names = HashMap::new();
    for s in file.sections() {
        if s.kind() == SectionKind::Text {
            let sname = s.name().unwrap_or("");
            if sname != ".text" && !sname.is_empty() {
                section_names.insert(s.index(), sname.to_string());
            }
        }
    }
    let mut programs = Vec::new();
    let mut globals = HashMap::new();
    for sym in file.symbols() {
        let Ok(sname) = sym.name() else { continue };
        match sym.kind() {
            SymbolKind::Text => {
                let Some(section) = sym.section_index().and_then(|i| section_names.get(&i)) else {
                    continue;
                };
                if sname.is_empty() || programs.iter().any(|p: &ProgSpec| p.name == sname) {
                    continue;
                }
                let kind = parse_section(section).map_err(|e| {
                    format!("error: {name}: program `{sname}` (section `{section}`) {e}")
                })?;
                programs.push(ProgSpec {
                    name: sname.to_string(),
                    section: section.clone(),
                    kind,
                });
            }
            SymbolKind::Data => {
                globals.insert(sname.to_string(), sym.size());
            }
            _ => {}
        }
    }
    // Executable sections without a function symbol (hand-written objects): aya names such
    // programs after the section.
    for (_, section) in section_names {
        let sym_in = |p: &ProgSpec| p.section == section;
        if !programs.iter().any(sym_in) {
            let kind = parse_section(&section)
                .map_err(|e| format!("error: {name}: program in section `{section}` {e}"))?;
            programs.push(ProgSpec {
                name: section.clone(),
                section,
                kind,
            });
        }
    }
    if programs.is_empty() {
        return Err(format!(
            "error: {name}: the object holds no BPF program (no executable section other than .text); mark the entry points with SEC(\"tracepoint/...\") or aya-ebpf's attributes"
        ));
    }
    let btf = file
        .section_by_name(".BTF")
        .and_then(|s| s.data().ok())
        .and_then(ObjectBtf::parse);
    let core_relocs = file
        .section_by_name(".BTF.ext")
        .and_then(|s| s.data().ok())
        .is_some_and(|d| {
            let hdr_len = d
                .get(4..8)
                .map_or(0, |b| u32::from_le_bytes(b.try_into().unwrap()));
            hdr_len >= 32
                && d.get(28..32)
                    .is_some_and(|b| u32::from_le_bytes(b.try_into().unwrap()) > 0)
        });
    Ok(ElfInfo {
        programs,
        globals,
        btf,
        core_relocs,
    })
}

/// Run a compiled object until a signal or the deadline, then print its maps.
pub fn run_object(run: ObjectRun) -> Result<(), ObjectError> {
    let mut output = RunOutput::open(
        run.format,
        &[],
        RecordSpec {
            persist: run.output_dir.zip(run.trace_id),
            target: run.target,
            // meta.json digests the program: here the object's bytes.
            program: &run.bytes,
            started: run.started,
        },
    )
    .map_err(|(msg, code)| ObjectError(msg, code))?;
    let result = trace_object(&run, &mut output.sink);
    output
        .finish(result.map_err(|ObjectError(msg, code)| (msg, code)))
        .map_err(|(msg, code)| ObjectError(msg, code))
}

/// Where each event record comes from.
enum EventSource {
    Ring(RingBuf<MapData>),
    Perf(Vec<PerfEventArrayBuffer<MapData>>),
    None,
}

fn load_error(prog: &str, section: &str, e: ProgramError) -> String {
    match e {
        ProgramError::LoadError {
            io_error,
            verifier_log,
        } => {
            let tail = super::verifier_log_tail(&verifier_log.to_string());
            format!(
                "error: the kernel's verifier rejected program `{prog}` (section `{section}`): {io_error}\nverifier log (end):\n{tail}"
            )
        }
        other => format!(
            "error: cannot load program `{prog}` (section `{section}`): {}",
            error_chain(&other)
        ),
    }
}

fn trace_object(run: &ObjectRun, sink: &mut Sink) -> Result<u64, ObjectError> {
    let name = run.path.display().to_string();
    let fail = |msg: String| ObjectError(msg, 1);
    let usage = |msg: String| ObjectError(msg, 2);
    if run.pid.is_some() {
        return Err(usage(format!(
            "error: {name}: --pid applies to scripts; a compiled object filters itself through target_cgroup_id (use --cgroup PATH or a pod target)"
        )));
    }
    let info = inspect(&run.bytes, &name).map_err(usage)?;

    // Targets every program needs, checked before anything is loaded.
    let cgroup_prog = info.programs.iter().find(|p| p.kind.is_cgroup());
    if let (Some(p), true) = (cgroup_prog, run.cgroups.is_empty()) {
        let why = if run.pid_fallback {
            "the pod has no cgroup v2 directory on this node, and cgroup programs need one"
        } else {
            "it needs a target cgroup: run it against a pod (kubectl trace run pod/NAME -f prog.o) or pass --cgroup PATH"
        };
        return Err(usage(format!(
            "error: {name}: cgroup program `{}` (section `{}`): {why}",
            p.name, p.section
        )));
    }
    let mut uprobes: HashMap<String, (PathBuf, String, u64)> = HashMap::new();
    // Paths name the target container's files, then the node's.
    let roots = crate::uprobes::Roots::new(
        run.container_pid
            .map(|pid| crate::pod::container_root(run.host_proc, pid)),
        run.host_proc,
    );
    for p in &info.programs {
        let AttachKind::Uprobe { target } = &p.kind else {
            continue;
        };
        let (mut path, mut sym, mut off) = target
            .as_deref()
            .map(split_uprobe_target)
            .unwrap_or_default();
        // A section that names only the symbol (`uprobe/readline`): no path part.
        if target.is_some() && sym.is_none() && !path.contains('/') {
            sym = Some(std::mem::take(&mut path));
        }
        if let Some(t) = run.uprobe_target {
            let (p2, s2, o2) = split_uprobe_target(t);
            path = p2;
            if s2.is_some() {
                sym = s2;
                off = o2;
            }
        }
        let (true, Some(sym)) = (!path.is_empty(), sym) else {
            return Err(usage(format!(
                "error: {name}: uprobe program `{}` (section `{}`) has no target: name the section `uprobe/PATH:SYMBOL` or pass --uprobe-target PATH:SYMBOL",
                p.name, p.section
            )));
        };
        let path = match roots.lookup(&path, "uprobe target") {
            Ok(found) => found.unwrap_or_else(|| PathBuf::from(&path)),
            Err(why) => return Err(usage(format!("error: {name}: {why}"))),
        };
        uprobes.insert(p.name.clone(), (path, sym, off));
    }

    // The target's cgroup id and level, for the scoping convention.
    let target_cg = run.cgroups.first();
    if run.cgroups.len() > 1 {
        eprintln!(
            "note: target_cgroup_id holds the first of {} target cgroups ({}); cgroup programs attach to all of them",
            run.cgroups.len(),
            run.cgroups[0].path.display()
        );
    }
    let cg_id = target_cg.map_or(0, |c| c.id);
    let cg_level = target_cg.map_or(0, |c| u64::from(c.level));
    let declares_id = CGROUP_ID_NAMES
        .iter()
        .any(|n| info.globals.contains_key(*n));
    let task_progs = info.programs.iter().any(|p| !p.kind.is_cgroup());
    if target_cg.is_some() && task_progs && !declares_id {
        eprintln!(
            "note: {name} declares no target_cgroup_id: its tracing programs see every process on the node, not only the target"
        );
    }
    if run.pid_fallback && declares_id {
        eprintln!(
            "note: the pod has no cgroup v2 directory on this node: target_cgroup_id stays 0 (no filter)"
        );
    }

    super::raise_memlock();
    let needs_kernel_btf = info.core_relocs
        || info.programs.iter().any(|p| {
            matches!(
                p.kind,
                AttachKind::BtfTracepoint { .. }
                    | AttachKind::FEntry { .. }
                    | AttachKind::FExit { .. }
            )
        });
    let kernel_btf = if needs_kernel_btf {
        Btf::from_sys_fs().ok()
    } else {
        None
    };
    let id_bytes = cg_id.to_ne_bytes();
    let level8 = cg_level.to_ne_bytes();
    let level4 = (cg_level as u32).to_ne_bytes();
    let mut loader = EbpfLoader::new();
    loader.btf(kernel_btf.as_ref());
    for n in CGROUP_ID_NAMES {
        if info.globals.get(*n) == Some(&8) {
            loader.override_global(n, &id_bytes[..], true);
        }
    }
    for n in CGROUP_LEVEL_NAMES {
        match info.globals.get(*n) {
            Some(8) => {
                loader.override_global(n, &level8[..], true);
            }
            Some(4) => {
                loader.override_global(n, &level4[..], true);
            }
            _ => {}
        }
    }
    let mut ebpf = loader.load(&run.bytes).map_err(|e| {
        fail(format!(
            "error: {name}: cannot load the object (maps, relocations): {}",
            error_chain(&e)
        ))
    })?;

    // The one-entry array form of the convention.
    for n in CGROUP_ID_NAMES {
        if let Some(Map::Array(data)) = ebpf.map(n) {
            let fd = data.fd().as_fd().as_raw_fd();
            let size = data.info().map(|i| i.value_size()).unwrap_or(8) as usize;
            let value = &id_bytes[..size.min(8)];
            bpf_sys::update(fd, &0u32.to_ne_bytes(), value)
                .map_err(|e| fail(format!("error: {name}: cannot write the {n} map: {e}")))?;
        }
    }

    for p in &info.programs {
        load_program(&mut ebpf, p, kernel_btf.as_ref()).map_err(fail)?;
    }
    let cpus = aya::util::online_cpus().map_err(|(what, e)| fail(format!("error: {what}: {e}")))?;
    for p in &info.programs {
        attach_program(&mut ebpf, p, run, &uprobes, &cpus).map_err(fail)?;
    }

    // The event stream.
    let event_type = info
        .btf
        .as_ref()
        .and_then(|b| b.record_named(EVENT_STRUCTS));
    let mut source = match ebpf.take_map("events") {
        Some(m @ Map::RingBuf(_)) => EventSource::Ring(
            RingBuf::try_from(m)
                .map_err(|e| fail(format!("error: {name}: cannot open the events ring: {e}")))?,
        ),
        Some(m @ Map::PerfEventArray(_)) => {
            let mut arr = PerfEventArray::try_from(m).map_err(|e| {
                fail(format!(
                    "error: {name}: cannot open the events perf array: {e}"
                ))
            })?;
            let mut bufs = Vec::new();
            for cpu in &cpus {
                bufs.push(arr.open(*cpu, Some(64)).map_err(|e| {
                    fail(format!(
                        "error: {name}: cannot open the events perf buffer of CPU {cpu}: {e}"
                    ))
                })?);
            }
            EventSource::Perf(bufs)
        }
        Some(_) => {
            eprintln!(
                "note: {name}: the map `events` is neither a RINGBUF nor a PERF_EVENT_ARRAY; it prints at exit like the other maps"
            );
            EventSource::None
        }
        None => EventSource::None,
    };

    super::install_signal_handlers();
    sink.attached(info.programs.len());
    let mut printer = Printer {
        sink,
        btf: info.btf.as_ref(),
        event_type,
        lost: 0,
    };
    let start = Instant::now();
    loop {
        printer.drain(&mut source);
        printer.sink.flush();
        if super::stop_requested() {
            break;
        }
        let mut timeout = Duration::from_millis(200);
        if let Some(d) = run.deadline {
            let elapsed = start.elapsed();
            if elapsed >= d {
                break;
            }
            timeout = timeout.min(d - elapsed);
        }
        poll(&source, timeout);
    }
    printer.drain(&mut source);

    // Detach and unload every program (dropping the loader), keeping the maps.
    let names: Vec<String> = ebpf.maps().map(|(n, _)| n.to_string()).collect();
    let maps: Vec<(String, Map)> = names
        .into_iter()
        .filter_map(|n| ebpf.take_map(&n).map(|m| (n, m)))
        .collect();
    drop(ebpf);
    let map_types = info
        .btf
        .as_ref()
        .map(ObjectBtf::map_types)
        .unwrap_or_default();
    let mut dumps: Vec<MapDump> = maps
        .iter()
        .filter(|(n, _)| {
            !n.starts_with('.')
                && !n.contains(".rodata")
                && !n.contains(".bss")
                && !n.contains(".data")
                && !CGROUP_ID_NAMES.contains(&n.as_str())
        })
        .filter_map(|(n, m)| {
            let types = map_types.get(n).copied().unwrap_or((None, None));
            read_map(n, m, info.btf.as_ref(), types)
        })
        .collect();
    dumps.sort_by(|a, b| a.name.cmp(&b.name));
    printer.print_maps(&dumps);
    let lost = printer.lost;
    if lost > 0 {
        printer.sink.lost(lost);
    }
    printer.sink.flush();
    Ok(lost)
}

fn load_program(ebpf: &mut Ebpf, p: &ProgSpec, btf: Option<&Btf>) -> Result<(), String> {
    let prog = ebpf.program_mut(&p.name).ok_or_else(|| {
        format!(
            "error: program `{}` (section `{}`) was not found by the loader",
            p.name, p.section
        )
    })?;
    let err = |e: ProgramError| load_error(&p.name, &p.section, e);
    let no_btf = || {
        format!(
            "error: program `{}` (section `{}`) needs the kernel's BTF (/sys/kernel/btf/vmlinux), which this node does not publish",
            p.name, p.section
        )
    };
    match (prog, &p.kind) {
        (Program::TracePoint(x), _) => x.load().map_err(err),
        (Program::RawTracePoint(x), _) => x.load().map_err(err),
        (Program::BtfTracePoint(x), AttachKind::BtfTracepoint { name }) => {
            x.load(name, btf.ok_or_else(no_btf)?).map_err(err)
        }
        (Program::FEntry(x), AttachKind::FEntry { func }) => {
            x.load(func, btf.ok_or_else(no_btf)?).map_err(err)
        }
        (Program::FExit(x), AttachKind::FExit { func }) => {
            x.load(func, btf.ok_or_else(no_btf)?).map_err(err)
        }
        (Program::KProbe(x), _) => x.load().map_err(err),
        (Program::UProbe(x), _) => x.load().map_err(err),
        (Program::PerfEvent(x), _) => x.load().map_err(err),
        (Program::CgroupSkb(x), _) => x.load().map_err(err),
        (Program::CgroupSock(x), _) => x.load().map_err(err),
        (Program::CgroupSockAddr(x), _) => x.load().map_err(err),
        (Program::CgroupSockopt(x), _) => x.load().map_err(err),
        (Program::CgroupSysctl(x), _) => x.load().map_err(err),
        (Program::CgroupDevice(x), _) => x.load().map_err(err),
        (Program::SockOps(x), _) => x.load().map_err(err),
        _ => Err(format!(
            "error: program `{}` (section `{}`) is of a kind the runner cannot attach ({SUPPORTED})",
            p.name, p.section
        )),
    }
}

fn attach_program(
    ebpf: &mut Ebpf,
    p: &ProgSpec,
    run: &ObjectRun,
    uprobes: &HashMap<String, (PathBuf, String, u64)>,
    cpus: &[u32],
) -> Result<(), String> {
    let Some(prog) = ebpf.program_mut(&p.name) else {
        return Ok(());
    };
    let err = |e: ProgramError| {
        format!(
            "error: cannot attach program `{}` (section `{}`): {}",
            p.name,
            p.section,
            error_chain(&e)
        )
    };
    let open_cgroups = || -> Result<Vec<std::fs::File>, String> {
        run.cgroups
            .iter()
            .map(|c| {
                std::fs::File::open(&c.path)
                    .map_err(|e| format!("error: cannot open cgroup {}: {e}", c.path.display()))
            })
            .collect()
    };
    let single = CgroupAttachMode::Single;
    match (prog, &p.kind) {
        (Program::TracePoint(x), AttachKind::Tracepoint { category, name }) => {
            x.attach(category, name).map(drop).map_err(err)
        }
        (Program::RawTracePoint(x), AttachKind::RawTracepoint { name }) => {
            x.attach(name).map(drop).map_err(err)
        }
        (Program::BtfTracePoint(x), _) => x.attach().map(drop).map_err(err),
        (Program::FEntry(x), _) => x.attach().map(drop).map_err(err),
        (Program::FExit(x), _) => x.attach().map(drop).map_err(err),
        (Program::KProbe(x), AttachKind::Kprobe { func }) => {
            x.attach(func, 0).map(drop).map_err(err)
        }
        (Program::UProbe(x), _) => {
            let (path, sym, off) = uprobes
                .get(&p.name)
                .ok_or_else(|| format!("error: uprobe program `{}` has no target", p.name))?;
            let loc = if *off > 0 {
                aya::programs::uprobe::UProbeAttachLocation::SymbolOffset(sym, *off)
            } else {
                aya::programs::uprobe::UProbeAttachLocation::Symbol(sym)
            };
            x.attach(loc, path, aya::programs::uprobe::UProbeScope::AllProcesses)
                .map(drop)
                .map_err(|e| {
                    format!(
                        "error: cannot attach uprobe program `{}` to {sym} in {}: {}",
                        p.name,
                        path.display(),
                        error_chain(&e)
                    )
                })
        }
        (Program::PerfEvent(x), _) => {
            let hz = run.sample_hz.unwrap_or(DEFAULT_SAMPLE_HZ);
            for cpu in cpus {
                x.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu: *cpu },
                    SamplePolicy::Frequency(hz),
                    false,
                )
                .map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupSkb(x), AttachKind::CgroupSkb { egress }) => {
            let kind = if *egress {
                CgroupSkbAttachType::Egress
            } else {
                CgroupSkbAttachType::Ingress
            };
            for f in open_cgroups()? {
                x.attach(f, kind, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupSock(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupSockAddr(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupSockopt(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupSysctl(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::CgroupDevice(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        (Program::SockOps(x), _) => {
            for f in open_cgroups()? {
                x.attach(f, single).map_err(err)?;
            }
            Ok(())
        }
        _ => Err(format!(
            "error: program `{}` (section `{}`) is of a kind the runner cannot attach ({SUPPORTED})",
            p.name, p.section
        )),
    }
}

fn poll(source: &EventSource, timeout: Duration) {
    let fds: Vec<RawFd> = match source {
        EventSource::Ring(r) => vec![r.as_raw_fd()],
        EventSource::Perf(bufs) => bufs.iter().map(|b| b.as_raw_fd()).collect(),
        EventSource::None => Vec::new(),
    };
    crate::sys::poll_readable(&fds, timeout);
}

/// A map as read at exit.
struct MapDump {
    name: String,
    /// One-entry arrays print without a key.
    keyless: bool,
    entries: Vec<(Value, Value)>,
}

struct Printer<'a> {
    sink: &'a mut Sink,
    btf: Option<&'a ObjectBtf>,
    event_type: Option<u32>,
    lost: u64,
}

impl Printer<'_> {
    fn drain(&mut self, source: &mut EventSource) {
        match source {
            EventSource::Ring(ring) => loop {
                let mut records = Vec::new();
                while let Some(item) = ring.next() {
                    records.push(item.to_vec());
                    if records.len() >= 256 {
                        break;
                    }
                }
                if records.is_empty() {
                    return;
                }
                for r in records {
                    self.record(&r);
                }
            },
            EventSource::Perf(bufs) => {
                for b in bufs.iter_mut() {
                    let mut records = Vec::new();
                    let mut lost = 0;
                    b.for_each(|ev| match ev {
                        PerfRecord::Sample { head, tail } => {
                            let mut r = head.to_vec();
                            r.extend_from_slice(tail);
                            records.push(r);
                        }
                        PerfRecord::Lost { count } => lost += count,
                    });
                    self.lost += lost;
                    for r in records {
                        self.record(&r);
                    }
                }
            }
            EventSource::None => {}
        }
    }

    fn record(&mut self, bytes: &[u8]) {
        let value = match (self.btf, self.event_type) {
            (Some(btf), Some(ty)) if bytes.len() >= btf.size_of(ty) => btf.decode(ty, bytes),
            _ => Value::Hex(bytes.to_vec()),
        };
        self.sink.event(&value);
    }

    fn print_maps(&mut self, maps: &[MapDump]) {
        let maps: Vec<RecordMap<'_>> = maps
            .iter()
            .map(|m| {
                let name = format!("@{}", m.name);
                RecordMap {
                    name_json: object_btf::json_string(&name),
                    name,
                    keyless: m.keyless,
                    entries: m
                        .entries
                        .iter()
                        .map(|(k, v)| (k as &dyn Record, v as &dyn Record))
                        .collect(),
                }
            })
            .collect();
        self.sink.record_maps(&maps);
    }
}

/// A BTF-typed value prints as bpftrace would print its fields.
impl Record for Value {
    fn text(&self) -> String {
        self.fields_text()
    }
    fn json(&self) -> String {
        Value::json(self)
    }
    fn key_text(&self) -> String {
        Value::key_text(self)
    }
    fn key_json(&self) -> String {
        object_btf::json_string(&Value::key_text(self))
    }
}

/// Read a hash or array map (plain, per-CPU or LRU); `None` for other kinds.
fn read_map(
    name: &str,
    map: &Map,
    btf: Option<&ObjectBtf>,
    (key_ty, value_ty): (Option<u32>, Option<u32>),
) -> Option<MapDump> {
    let (data, percpu, array) = match map {
        Map::Array(d) => (d, false, true),
        Map::PerCpuArray(d) => (d, true, true),
        Map::HashMap(d) | Map::LruHashMap(d) => (d, false, false),
        Map::PerCpuHashMap(d) | Map::PerCpuLruHashMap(d) => (d, true, false),
        _ => return None,
    };
    let info = data.info().ok()?;
    let fd = data.fd().as_fd().as_raw_fd();
    let key_size = info.key_size() as usize;
    let value_size = info.value_size() as usize;
    let cpus = if percpu { bpf_sys::possible_cpus() } else { 1 };
    let stride = if percpu {
        value_size.div_ceil(8) * 8
    } else {
        value_size
    };
    let decode = |ty: Option<u32>, b: &[u8]| match (btf, ty) {
        (Some(btf), Some(t)) if btf.size_of(t) == b.len() => btf.decode(t, b),
        _ => object_btf::untyped(b),
    };
    let keys = bpf_sys::keys(fd, key_size).ok()?;
    let mut entries = Vec::new();
    let mut buf = vec![0u8; stride * cpus];
    for key in keys {
        if !matches!(bpf_sys::lookup(fd, &key, &mut buf), Ok(true)) {
            continue;
        }
        let mut value = decode(value_ty, &buf[..value_size]);
        for cpu in 1..cpus {
            let v = decode(value_ty, &buf[cpu * stride..cpu * stride + value_size]);
            value.add(&v);
        }
        if array && info.max_entries() > 1 && value.is_zero() {
            continue;
        }
        entries.push((decode(key_ty, &key), value));
    }
    // Integer values sort ascending (as bpftrace prints counts); others by key.
    if entries.iter().all(|(_, v)| v.as_number().is_some()) {
        entries.sort_by_key(|(_, v)| v.as_number());
    } else if entries.iter().all(|(k, _)| k.as_number().is_some()) {
        entries.sort_by_key(|(k, _)| k.as_number());
    }
    Some(MapDump {
        name: name.to_string(),
        keyless: array && info.max_entries() == 1,
        entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections() {
        assert_eq!(
            parse_section("tracepoint/syscalls/sys_enter_getppid").unwrap(),
            AttachKind::Tracepoint {
                category: "syscalls".into(),
                name: "sys_enter_getppid".into()
            }
        );
        assert_eq!(
            parse_section("cgroup_skb/egress").unwrap(),
            AttachKind::CgroupSkb { egress: true }
        );
        assert_eq!(
            parse_section("cgroup/connect4").unwrap(),
            AttachKind::CgroupSockAddr
        );
        assert_eq!(
            parse_section("uprobe//usr/bin/bash:readline").unwrap(),
            AttachKind::Uprobe {
                target: Some("/usr/bin/bash:readline".into())
            }
        );
        assert_eq!(
            parse_section("uprobe").unwrap(),
            AttachKind::Uprobe { target: None }
        );
        assert!(parse_section("xdp").unwrap_err().contains("cannot attach"));
        assert!(parse_section("cgroup/foo")
            .unwrap_err()
            .contains("cannot attach"));
        assert!(parse_section("kprobe")
            .unwrap_err()
            .contains("kprobe/FUNCTION"));
        assert!(parse_section("tracepoint/foo").is_err());
        assert!(parse_section("cgroup/skb").is_err());
    }

    #[test]
    fn uprobe_targets() {
        assert_eq!(
            split_uprobe_target("/usr/bin/bash:readline"),
            ("/usr/bin/bash".into(), Some("readline".into()), 0)
        );
        assert_eq!(
            split_uprobe_target("/lib/libc.so.6:malloc+0x10"),
            ("/lib/libc.so.6".into(), Some("malloc".into()), 16)
        );
        assert_eq!(split_uprobe_target("/bin/sh"), ("/bin/sh".into(), None, 0));
    }

    #[test]
    fn gzip_output_is_bounded() {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &vec![0u8; 3 << 20]).unwrap();
        let gz = enc.finish().unwrap();
        assert_eq!(gunzip(&gz, 3 << 20).unwrap().len(), 3 << 20);
        let e = gunzip(&gz, 2 << 20).unwrap_err();
        assert_eq!(
            e,
            "the gzip data decompresses to more than 2 MiB, which no BPF object needs"
        );
        assert!(gunzip(&gz[..gz.len() / 2], 3 << 20)
            .unwrap_err()
            .starts_with("cannot decompress the gzip data"));
    }

    #[test]
    fn object_detection() {
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[18] = 247;
        assert!(is_bpf_object(&elf));
        elf[18] = 62;
        assert!(!is_bpf_object(&elf));
        assert!(!is_bpf_object(b"BEGIN { exit(); }"));
    }
}
