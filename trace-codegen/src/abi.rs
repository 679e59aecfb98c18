//! The contract between the BPF programs code generation emits and the user space that
//! loads them and reads what they produce: instruction and map definitions, event kinds
//! and record layouts, value layouts, stack and join limits, hist/lhist bucket indexes,
//! and [`Compiled`], the programs plus the resources a script needs (what bpftrace calls
//! RequiredResources: maps, printf/cat/system/time/join formats, print sites, probe names).
//! Both code generation and the user side (trace-runner's `runtime`, `output`, `values`,
//! `stacks`, `flame`) depend on this module; it depends on neither.
//!
//! Records and values:
//! - Every event in the `events` ring buffer starts with a `u64` id: `kind << 32 | index`
//!   ([`EventKind`]); printf arguments follow, each at an 8-byte aligned offset (integers
//!   as 8 bytes, strings as their fixed buffer size rounded up to 8).
//! - Aggregations live in per-CPU maps (a one-entry per-CPU array when keyless), summed
//!   in user space. Keys are the key expressions' values laid end to end (integers 8 bytes,
//!   strings their buffer size); `hist`/`lhist` maps append an 8-byte bucket index.
//! - Values: count/sum `u64`; min/max `{i64 value; u64 set}`; avg/stats `{u64 count; i64 total}`.
//! - Values user space finishes ([`finished_in_user_space`]): inet `{u64 af; u8 addr[16]}`,
//!   macaddr `u8[6]` padded to 8, buffer `{u64 len; u8 data[n]}`, timestamp
//!   `{u64 format index; u64 ns}`, cgroup path `u64 id`, usym `{u64 addr; u64 pid}`,
//!   stack `{i64 stack id; u64 pid}` (pid 0 for kernel stacks).

use trace_lang::span::Span;
use trace_lang::types::{MapValue, Type};

/// Kernel map types used here.
pub const MAP_HASH: u32 = 1;
pub const MAP_PERCPU_HASH: u32 = 5;
pub const MAP_PERCPU_ARRAY: u32 = 6;
pub const MAP_RINGBUF: u32 = 27;

/// The hash map of allowed tgids for pid-set scoping (code generation's `pid_set` option).
pub const SCOPE_PIDS_MAP: &str = "scope_pids";

/// Entries of a keyed map (bpftrace's default map size; `BPFTRACE_MAP_KEYS_MAX` changes
/// it, as for bpftrace).
pub const MAX_MAP_ENTRIES: u32 = 4096;

/// Size of the ring buffer that carries printf and other events.
pub const RINGBUF_BYTES: u32 = 1 << 21;

/// The most instructions the kernel takes in one program, and the most it walks while
/// verifying one (`BPF_COMPLEXITY_LIMIT_INSNS`).
pub const MAX_INSNS: usize = 1_000_000;

/// What the high 32 bits of an event id say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum EventKind {
    Printf = 0,
    Exit = 1,
    Print = 2,
    Clear = 3,
    Zero = 4,
    Time = 5,
    /// `print(value)` of a non-map value: the value follows the id.
    PrintValue = 6,
    /// `join(argv)`: [`JOIN_MAX_ARGS`] strings of [`JOIN_ARG_LEN`] bytes follow the id.
    Join = 7,
    /// A map helper failed (`-k`/`-kk`): its return value (i64) follows the id; the
    /// index is into [`Compiled::helper_errors`].
    HelperError = 8,
    /// A function watchpoint's setup probe saw the address to watch (u64, after the id);
    /// the index is the setup program's (`p{index}`, [`Attach::WatchpointSetup`]).
    WatchpointAttach = 9,
    /// `unwatch(addr)`: remove every watchpoint on the address (u64, after the id).
    WatchpointDetach = 10,
}

/// A call site whose helper's failure is reported (`-k`/`-kk`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCheck {
    /// The helper as bpftrace names it: `map_delete_elem`, `map_update_elem`, ...
    pub helper: String,
    /// Where in the script.
    pub span: Span,
    /// The location rendered against the script (`FILE:LINE:COL: WARNING: `, the line
    /// and a marker) with [`HelperCheck::MESSAGE`] where the message goes; filled by the
    /// caller that has the source (see `commands::compile_source`), empty until then.
    pub location: String,
    /// The 1-based line and column of `span`, for `-f json`'s `helper_error` records;
    /// filled with `location` (0 until then).
    pub line: usize,
    pub col: usize,
}

impl HelperCheck {
    /// Where the message goes in [`HelperCheck::location`].
    pub const MESSAGE: char = '\u{1}';

    /// The `-f json` record of a helper that returned `ret`, as bpftrace 0.17 prints it:
    /// `{"type": "helper_error", "helper": "probe_read", "retcode": -14, "line": 1, "col": 37}`.
    pub fn json(&self, ret: i64) -> String {
        format!(
            "{{\"type\": \"helper_error\", \"helper\": \"{}\", \"retcode\": {ret}, \"line\": {}, \"col\": {}}}\n",
            self.helper, self.line, self.col
        )
    }

    /// The warning for a helper that returned `ret`, as bpftrace 0.17 words it:
    /// `Failed to map_delete_elem: No such file or directory (-2)`, or
    /// `Failed to map_lookup_elem: 0` for a lookup that found nothing.
    pub fn warning(&self, ret: i64) -> String {
        let what = if ret < 0 {
            format!(
                "{} ({ret})",
                std::io::Error::from_raw_os_error(-ret as i32)
                    .to_string()
                    .split(" (os error")
                    .next()
                    .unwrap_or_default()
            )
        } else {
            ret.to_string()
        };
        let msg = format!("Failed to {}: {what}", self.helper);
        if self.location.is_empty() {
            format!("WARNING: {msg}\n")
        } else {
            self.location.replacen(Self::MESSAGE, &msg, 1)
        }
    }
}

/// A `print(@m[, top[, div]])` call site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintSpec {
    /// Index into [`Compiled::user_maps`].
    pub map: usize,
    pub top: u32,
    pub div: u32,
}

/// Where and how a generated program attaches.
#[derive(Debug, Clone, PartialEq)]
pub enum Attach {
    Begin,
    End,
    Tracepoint {
        category: String,
        name: String,
    },
    RawTracepoint {
        name: String,
    },
    Kprobe {
        func: String,
        ret: bool,
    },
    /// fentry (`kfunc`) or fexit (`kretfunc`, `ret`) on `func`, described by the BTF of
    /// `module` (`vmlinux` for the kernel's own functions).
    Fentry {
        module: String,
        func: String,
        ret: bool,
    },
    Uprobe {
        path: String,
        symbol: String,
        ret: bool,
    },
    /// A USDT marker: a uprobe at a file offset, with the semaphore (file offset, 0 for
    /// none) the kernel increments while it is attached; only in `pid` when one is given.
    Usdt {
        file: String,
        offset: u64,
        semaphore: u64,
        pid: Option<u32>,
    },
    Profile {
        hz: u64,
    },
    Interval {
        period_ns: u64,
    },
    /// `watchpoint:ADDR:LEN:MODE`: a hardware breakpoint (`PERF_TYPE_BREAKPOINT`) on
    /// `len` bytes at `address`, `mode` a combination of `r`, `w` (or `x` alone); in the
    /// traced process when there is one, else kernel-wide on every CPU.
    ///
    /// With `on_call`, a function watchpoint's body: not attached at start but each time
    /// its [`Attach::WatchpointSetup`] probe reports a new address (`address` is 0).
    Watchpoint {
        address: u64,
        len: u64,
        mode: String,
        pid: Option<u32>,
        on_call: bool,
    },
    /// The uprobe behind `watchpoint:FUNC+argN:LEN:MODE`: on each call of `symbol` in
    /// `path` it sends argument `arg` ([`EventKind::WatchpointAttach`]) for user space to
    /// set the breakpoint of program `p{body}` on; with `stop`, it first stops the process
    /// (SIGSTOP), and user space resumes it (SIGCONT) once the breakpoint is set.
    WatchpointSetup {
        path: String,
        symbol: String,
        arg: u8,
        stop: bool,
        body: usize,
        pid: Option<u32>,
    },
    /// `software:EVENT:COUNT` / `hardware:EVENT:COUNT`: a perf counter on every CPU
    /// (`PERF_TYPE_SOFTWARE` or `PERF_TYPE_HARDWARE`, event `config`) that runs the
    /// program every `period` events.
    PerfCounter {
        hardware: bool,
        config: u64,
        period: u64,
    },
    CgroupSkb {
        egress: bool,
    },
}

/// A generated program and where it goes.
#[derive(Debug, Clone)]
pub struct CompiledProgram {
    pub code: ProgramCode,
    pub attach: Attach,
    /// The attach point's full name (`tracepoint:syscalls:sys_enter_openat`).
    pub probe_name: String,
    /// How many of the script's attach points this program serves (one, except for
    /// syscall tracepoints grouped onto one raw `sys_enter`/`sys_exit` program).
    pub points: usize,
    /// The probe block this program was generated from, in the script.
    pub span: Span,
    /// The `while` loops of the program: where they are in the script and the range of
    /// instructions each became (to place the verifier's complaints).
    pub loops: Vec<(Span, std::ops::Range<usize>)>,
}

/// A script map as user space must read it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserMap {
    /// Name as written without '@'.
    pub name: String,
    /// Index into [`Compiled::maps`].
    pub kernel_map: usize,
    pub keys: Vec<Type>,
    pub value: MapValue,
    /// The kernel map is a per-CPU one.
    pub per_cpu: bool,
    /// Keyless aggregation stored in a one-entry array.
    pub array: bool,
}

/// A printf call site.
#[derive(Debug, Clone, PartialEq)]
pub struct PrintfSpec {
    /// What user space does with the formatted text.
    pub action: PrintfAction,
    pub format: String,
    /// Argument types and their offsets from the start of the record (the id is at 0).
    pub args: Vec<(Type, usize)>,
}

/// What a printf-like record asks of user space, once its format is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrintfAction {
    /// `printf()`: print the text.
    Print,
    /// `cat()`: print the contents of the file the text names.
    Cat,
    /// `system()` (only with `--unsafe`): run the text as a shell command, print its output.
    System,
}

/// Everything the loader and the output need.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub programs: Vec<CompiledProgram>,
    pub maps: Vec<MapDef>,
    pub user_maps: Vec<UserMap>,
    pub printfs: Vec<PrintfSpec>,
    pub time_formats: Vec<String>,
    pub prints: Vec<PrintSpec>,
    /// Types of `print(value)` call sites.
    pub print_values: Vec<Type>,
    pub probe_names: Vec<String>,
    /// Index of the per-CPU lost-event counter in `maps`.
    pub lost_map: usize,
    /// Index of the stack-trace map in `maps`, when the script uses stacks.
    pub stack_map: Option<usize>,
    /// Delimiters of `join()` call sites ([`EventKind::Join`] events).
    pub joins: Vec<String>,
    /// Warnings from code generation, for the caller to print (one line each).
    pub warnings: Vec<String>,
    /// Call sites of [`EventKind::HelperError`] events.
    pub helper_errors: Vec<HelperCheck>,
}

/// `BPF_MAP_TYPE_STACK_TRACE`.
pub const MAP_STACK_TRACE: u32 = 7;
/// Frames kept per stack (bpftrace's default limit).
pub const STACK_MAX_FRAMES: usize = 127;

/// `join()` reads at most this many arguments ...
pub const JOIN_MAX_ARGS: usize = 16;
/// ... of at most this many bytes each (bpftrace's defaults).
pub const JOIN_ARG_LEN: usize = 64;

/// A map as the legacy `maps` section describes it (`struct bpf_map_def`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    /// A plain identifier (the kernel refuses names such as `@x`).
    pub name: String,
    pub map_type: u32,
    pub key_size: u32,
    pub value_size: u32,
    pub max_entries: u32,
    pub flags: u32,
}

/// One program: its section name tells aya its kind (`tracepoint/syscalls/sys_enter_openat`).
#[derive(Debug, Clone)]
pub struct ProgramCode {
    pub section: String,
    /// Function symbol name; aya looks programs up by it.
    pub name: String,
    pub insns: Vec<Insn>,
    /// `(instruction index, index into the map list)` for each map load.
    pub map_relocs: Vec<(usize, usize)>,
}

/// One 8-byte instruction (an `ld_imm64` takes two).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// The hist/lhist bucket indexes the BPF code computes are defined once, with the labels that
// print them, in trace-output.
pub use trace_output::buckets::{hist_index, lhist_buckets, lhist_index, HIST_MAX_INDEX};

/// Whether values of this type leave the kernel unfinished, in one of the layouts above,
/// for user space to decode (`values::decode`).
pub fn finished_in_user_space(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Inet
            | Type::MacAddr
            | Type::Buf(_)
            | Type::Timestamp
            | Type::CgroupPath
            | Type::Username
            | Type::Strerror
            | Type::Usym
            | Type::Stack { .. }
    )
}

/// bpftrace 0.17's software events: name, alias, `PERF_COUNT_SW_*` and default count.
pub const SOFTWARE_EVENTS: &[(&str, &str, u64, u64)] = &[
    ("alignment-faults", "", 7, 1),
    ("bpf-output", "", 10, 1),
    ("context-switches", "cs", 3, 1000),
    ("cpu-clock", "cpu", 0, 1_000_000),
    ("cpu-migrations", "", 4, 1),
    ("dummy", "", 9, 1),
    ("emulation-faults", "", 8, 1),
    ("major-faults", "", 6, 1),
    ("minor-faults", "", 5, 100),
    ("page-faults", "faults", 2, 100),
    ("task-clock", "", 1, 1),
];

/// bpftrace 0.17's hardware events: name, alias, `PERF_COUNT_HW_*` and default count.
pub const HARDWARE_EVENTS: &[(&str, &str, u64, u64)] = &[
    ("backend-stalls", "", 8, 1_000_000),
    ("branch-instructions", "branches", 4, 100_000),
    ("branch-misses", "", 5, 100_000),
    ("bus-cycles", "", 6, 100_000),
    ("cache-misses", "", 3, 1_000_000),
    ("cache-references", "", 2, 1_000_000),
    ("cpu-cycles", "cycles", 0, 1_000_000),
    ("frontend-stalls", "", 7, 1_000_000),
    ("instructions", "", 1, 1_000_000),
    ("ref-cycles", "", 9, 1_000_000),
];

/// The perf `config` and default count of a software or hardware event (or its alias).
pub fn perf_counter_event(hardware: bool, name: &str) -> Option<(u64, u64)> {
    let table = if hardware {
        HARDWARE_EVENTS
    } else {
        SOFTWARE_EVENTS
    };
    table
        .iter()
        .find(|(n, alias, _, _)| *n == name || (!alias.is_empty() && *alias == name))
        .map(|&(_, _, config, period)| (config, period))
}

#[cfg(test)]
mod perf_counter_tests {
    use super::perf_counter_event;

    #[test]
    fn events_and_aliases_map_to_perf_configs_and_default_counts() {
        assert_eq!(perf_counter_event(false, "faults"), Some((2, 100)));
        assert_eq!(perf_counter_event(false, "page-faults"), Some((2, 100)));
        assert_eq!(perf_counter_event(false, "cs"), Some((3, 1000)));
        assert_eq!(perf_counter_event(true, "cycles"), Some((0, 1_000_000)));
        assert_eq!(perf_counter_event(true, "faults"), None);
        assert_eq!(perf_counter_event(false, ""), None);
    }
}
