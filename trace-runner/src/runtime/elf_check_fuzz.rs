//! Bounded in-process fuzzing of [`super::elf_check`]: objects the runner builds itself
//! and objects clang builds are mutated (bit flips, byte overwrites, truncations at every
//! section boundary, and targeted header, section header, symbol, relocation, instruction,
//! BTF and BTF.ext field mutations); each mutant goes through the validator, the runner's
//! own reading of the object, and, when the validator accepts it, through everything
//! aya-obj does before the kernel is involved (parse, global patching, BTF fixup, CO-RE
//! relocation against this kernel's BTF, map and call relocation). No mutant may panic.
//!
//! `FUZZ_CASES` sets the number of mutants (default [`DEFAULT_CASES`], ~20 s in a debug
//! build on 2 cores); `FUZZ_SEED` the xorshift seed.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use super::elf_check;
use super::object_btf::ObjectBtf;

const DEFAULT_CASES: u64 = 8000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// A section header's position and the fields the mutations aim at.
#[derive(Clone)]
struct Sec {
    hdr: usize,
    name: String,
    ty: u32,
    offset: usize,
    size: usize,
}

fn rd32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_le_bytes(s.try_into().unwrap()))
}
fn rd64(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_le_bytes(s.try_into().unwrap()))
}

/// The sections of a well-formed seed object.
fn layout(b: &[u8]) -> Vec<Sec> {
    let shoff = rd64(b, 0x28) as usize;
    let shnum = u16::from_le_bytes([b[0x3c], b[0x3d]]) as usize;
    let shstrndx = u16::from_le_bytes([b[0x3e], b[0x3f]]) as usize;
    let hdr = |i: usize| shoff + i * 64;
    let stroff = rd64(b, hdr(shstrndx) + 24) as usize;
    (0..shnum)
        .map(|i| {
            let h = hdr(i);
            let name_at = stroff + rd32(b, h) as usize;
            let end = b[name_at..].iter().position(|&c| c == 0).unwrap();
            Sec {
                hdr: h,
                name: String::from_utf8_lossy(&b[name_at..name_at + end]).into_owned(),
                ty: rd32(b, h + 4),
                offset: rd64(b, h + 24) as usize,
                size: rd64(b, h + 32) as usize,
            }
        })
        .collect()
}

fn put(b: &mut [u8], at: usize, v: &[u8]) {
    if at < b.len() {
        let n = v.len().min(b.len() - at);
        b[at..at + n].copy_from_slice(&v[..n]);
    }
}

/// Values likely to sit on a boundary of something.
fn interesting(rng: &mut Rng, near: u64) -> u64 {
    match rng.below(10) {
        0 => 0,
        1 => 1,
        2 => near.wrapping_add(1),
        3 => near.wrapping_sub(1),
        4 => u64::from(u32::MAX),
        5 => u64::MAX,
        6 => 1 << rng.below(64),
        7 => near.wrapping_add(rng.below(64)),
        8 => u64::from(u32::MAX) - rng.below(16),
        _ => rng.next(),
    }
}

/// One mutation of `seed`, and what it was.
fn mutate(rng: &mut Rng, seed: &[u8], secs: &[Sec]) -> (Vec<u8>, String) {
    let mut b = seed.to_vec();
    let len = b.len();
    let sec = secs[1 + rng.below(secs.len() as u64 - 1) as usize].clone();
    let in_sec = |rng: &mut Rng, align: usize| {
        sec.offset + (rng.below(sec.size.max(1) as u64) as usize) / align * align
    };
    match rng.below(12) {
        0 => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = rng.below(len as u64) as usize;
                b[at] ^= 1 << rng.below(8);
            }
            (b, format!("{n} bit flips"))
        }
        1 => {
            let at = rng.below(len as u64) as usize;
            let r = rng.next() as u8;
            let v = rng.pick(&[0u8, 0xff, 0x7f, 0x80, r]);
            let n = 1 + rng.below(8) as usize;
            for i in 0..n.min(len - at) {
                b[at + i] = v;
            }
            (b, format!("{n} bytes at {at:#x} := {v:#x}"))
        }
        2 => {
            let cut = match rng.below(4) {
                0 => sec.offset,
                1 => sec.offset + sec.size,
                2 => sec.offset + sec.size / 2,
                _ => rng.below(len as u64) as usize,
            }
            .min(len);
            b.truncate(cut);
            (b, format!("truncated at {cut:#x} (section {})", sec.name))
        }
        3 => {
            let (at, size, what) = rng.pick(&[
                (0x28usize, 8usize, "e_shoff"),
                (0x3c, 2, "e_shnum"),
                (0x3e, 2, "e_shstrndx"),
                (0x3a, 2, "e_shentsize"),
                (0x10, 2, "e_type"),
            ]);
            let v = interesting(rng, rd64(&b, at) & (u64::MAX >> (64 - size * 8)));
            put(&mut b, at, &v.to_le_bytes()[..size]);
            (b, format!("{what} := {v:#x}"))
        }
        4 => {
            let (field, size, what) = rng.pick(&[
                (24usize, 8usize, "sh_offset"),
                (32, 8, "sh_size"),
                (40, 4, "sh_link"),
                (44, 4, "sh_info"),
                (0, 4, "sh_name"),
                (4, 4, "sh_type"),
                (56, 8, "sh_entsize"),
                (8, 8, "sh_flags"),
            ]);
            let cur = if size == 8 {
                rd64(&b, sec.hdr + field)
            } else {
                u64::from(rd32(&b, sec.hdr + field))
            };
            let v = if rng.below(3) == 0 {
                rng.below(secs.len() as u64 + 2)
            } else {
                interesting(rng, cur)
            };
            put(&mut b, sec.hdr + field, &v.to_le_bytes()[..size]);
            (b, format!("{} of section {} := {v:#x}", what, sec.name))
        }
        5 => {
            // A symbol field.
            let Some(st) = secs.iter().find(|s| s.ty == 2) else {
                return (b, "no symbol table".into());
            };
            let n = st.size / 24;
            let at = st.offset + 24 * (rng.below(n as u64) as usize);
            let (field, size, what) = rng.pick(&[
                (6usize, 2usize, "st_shndx"),
                (8, 8, "st_value"),
                (16, 8, "st_size"),
                (0, 4, "st_name"),
                (4, 1, "st_info"),
            ]);
            let v = if rng.below(2) == 0 {
                rng.below(secs.len() as u64 + 2)
            } else {
                interesting(rng, rd64(&b, at + field))
            };
            put(&mut b, at + field, &v.to_le_bytes()[..size]);
            (b, format!("{what} of symbol at {at:#x} := {v:#x}"))
        }
        6 => {
            // A relocation field.
            let rels: Vec<&Sec> = secs.iter().filter(|s| s.ty == 9 && s.size > 0).collect();
            if rels.is_empty() {
                return (b, "no relocations".into());
            }
            let r = rels[rng.below(rels.len() as u64) as usize];
            let at = r.offset + 16 * (rng.below((r.size / 16) as u64) as usize);
            let (field, what) =
                rng.pick(&[(12usize, "symbol index"), (8, "type"), (0, "r_offset")]);
            let v = if field == 0 {
                interesting(rng, rd64(&b, at))
            } else {
                let v = interesting(rng, u64::from(rd32(&b, at + field)));
                if rng.below(2) == 0 {
                    v % 64
                } else {
                    v
                }
            };
            let size = if field == 0 { 8 } else { 4 };
            put(&mut b, at + field, &v.to_le_bytes()[..size]);
            (b, format!("relocation {what} at {at:#x} := {v:#x}"))
        }
        7 | 8 => {
            // A BTF or BTF.ext header field or record word.
            let name = if rng.below(2) == 0 {
                ".BTF"
            } else {
                ".BTF.ext"
            };
            let Some(s) = secs.iter().find(|s| s.name == name) else {
                return (b, format!("no {name}"));
            };
            let word = if rng.below(2) == 0 {
                4 * (1 + rng.below(7) as usize)
            } else {
                4 * rng.below((s.size / 4) as u64) as usize
            };
            let at = s.offset + word;
            let v = interesting(rng, u64::from(rd32(&b, at))) as u32;
            put(&mut b, at, &v.to_le_bytes());
            (b, format!("{name} word {word:#x} := {v:#x}"))
        }
        9 => {
            // An instruction field in a code section.
            let code: Vec<&Sec> = secs
                .iter()
                .filter(|s| {
                    s.ty == 1 && s.size >= 8 && s.size % 8 == 0 && !s.name.starts_with('.')
                        || s.name.starts_with(".text")
                })
                .collect();
            if code.is_empty() {
                return (b, "no code".into());
            }
            let c = code[rng.below(code.len() as u64) as usize];
            let at = c.offset + 8 * rng.below((c.size / 8).max(1) as u64) as usize;
            let (field, size) = rng.pick(&[(0usize, 1usize), (1, 1), (2, 2), (4, 4)]);
            let v = if field == 0 {
                let r = rng.next() & 0xff;
                rng.pick(&[0x18u64, 0x85, 0x95, 0x07, r])
            } else {
                interesting(rng, 0)
            };
            put(&mut b, at + field, &v.to_le_bytes()[..size]);
            (b, format!("instruction at {at:#x} field {field} := {v:#x}"))
        }
        _ => {
            let at = in_sec(rng, 4);
            let v = interesting(rng, u64::from(rd32(&b, at))) as u32;
            put(&mut b, at, &v.to_le_bytes());
            (
                b,
                format!("word at {at:#x} in section {} := {v:#x}", sec.name),
            )
        }
    }
}

/// What the runner and aya-obj do with an object before the kernel sees it.
fn exercise(bytes: &[u8], kernel_btf: Option<&aya_obj::btf::Btf>) {
    // The runner's own reading (program list, globals, BTF for printing).
    if let Ok(info) = super::object::inspect(bytes, "fuzz.o") {
        if let Some(btf) = &info.btf {
            exercise_object_btf(btf);
        }
    }
    let Ok(mut obj) = aya_obj::Object::parse(bytes) else {
        return;
    };
    let id = 0u64.to_ne_bytes();
    let mut globals = HashMap::new();
    globals.insert("target_cgroup_id", (&id[..], false));
    let _ = obj.patch_map_data(globals);
    let features = aya_obj::btf::BtfFeatures::new(true, true, true, true, true, true, true, true);
    let _ = obj.fixup_and_sanitize_btf(&features);
    if let Some(k) = kernel_btf {
        if obj.has_btf_relocations() && obj.relocate_btf(k).is_err() {
            return;
        }
    }
    let maps: Vec<(String, aya_obj::Map)> = obj
        .maps
        .iter()
        .map(|(n, m)| (n.clone(), m.clone()))
        .collect();
    let text: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    let fds = maps
        .iter()
        .enumerate()
        .map(|(i, (n, m))| (n.as_str(), 100 + i as i32, m));
    if obj.relocate_maps(fds, &text).is_err() || obj.relocate_calls(&text).is_err() {
        return;
    }
    for p in obj.programs.values() {
        if let Some(f) = obj.functions.get(&p.function_key()) {
            let _ = f.func_info.func_info_bytes();
            let _ = f.line_info.line_info_bytes();
        }
    }
}

fn exercise_object_btf(btf: &ObjectBtf) {
    let _ = btf.map_types();
    let _ = btf.record_named(&["event", "Event"]);
    for id in 0..4096u32 {
        if matches!(btf.kind(id), super::object_btf::Kind::Void) && id > 0 {
            break;
        }
        let size = btf.size_of(id);
        if size <= 1 << 16 {
            let _ = btf.decode(id, &vec![0xa5; size]);
        }
    }
}

/// Whether aya-obj, reading `bytes` unvalidated, would allocate a `.bss*` section's size
/// (more than 1 GiB: the allocation may abort the test process).
fn allocates_a_huge_bss(bytes: &[u8]) -> bool {
    use object::{Object, ObjectSection};
    object::File::parse(bytes).is_ok_and(|f| {
        f.sections()
            .any(|s| s.name().is_ok_and(|n| n.starts_with(".bss")) && s.size() > 1 << 30)
    })
}

/// Seed objects: built by the runner's own compiler, and by clang when installed.
fn seeds() -> Vec<(String, Vec<u8>)> {
    use crate::compile::object_file;
    let env = crate::tracefs::Tracefs::open();
    let scripts = [
        "BEGIN { @start = nsecs; printf(\"hello %d\\n\", 42); } END { clear(@start); }",
        "tracepoint:syscalls:sys_enter_openat { @opens[comm] = count(); @flags = sum(args->flags); }",
        "tracepoint:syscalls:sys_enter_getppid /pid > 1/ { @last[tid, comm] = max(nsecs); @h = hist(nsecs % 1000); }",
        "interval:ms:100 { @ticks = count(); if (@ticks > 3) { exit(); } }",
        "kprobe:vfs_read { @reads[pid] = count(); } kretprobe:vfs_read { @ret = lhist(retval, 0, 100, 10); }",
    ];
    let mut out = Vec::new();
    for (i, src) in scripts.iter().enumerate() {
        let opts = crate::commands::base_options();
        let compiled =
            crate::commands::compile_source("seed.bt", src, &Default::default(), &env, opts)
                .unwrap_or_else(|e| panic!("seed script {i} does not compile: {}", e.0));
        let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
        let elf = object_file::emit(&programs, &compiled.maps).unwrap();
        out.push((format!("runner#{i}"), elf));
    }
    if require_clang() {
        for (name, src) in CLANG_SEEDS {
            out.push((format!("clang:{name}"), clang_object(name, src)));
        }
    }
    out
}

const CLANG: &str = "/usr/bin/clang";

fn require_clang() -> bool {
    if Path::new(CLANG).exists() {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!(
            "{CLANG} is missing and CI=true: failing instead of skipping (apt-get install clang)"
        );
    }
    eprintln!("note: {CLANG} is not installed: fuzzing only runner-built objects");
    false
}

fn clang_object(name: &str, src: &str) -> Vec<u8> {
    let dir = crate::test_util::TempDir::new("elf-fuzz");
    let c = dir.0.join(format!("{name}.c"));
    let o = dir.0.join(format!("{name}.o"));
    std::fs::write(&c, format!("{CLANG_PRELUDE}\n{src}")).unwrap();
    let st = Command::new(CLANG)
        .args(["-target", "bpf", "-O2", "-g", "-c"])
        .arg(&c)
        .arg("-o")
        .arg(&o)
        .status()
        .unwrap();
    assert!(st.success(), "clang failed on {name}");
    std::fs::read(&o).unwrap()
}

const CLANG_PRELUDE: &str = r#"
typedef unsigned long long __u64; typedef unsigned int __u32;
#define SEC(n) __attribute__((section(n), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static __u64 (*bpf_get_current_pid_tgid)(void) = (void *)14;
static __u64 (*bpf_get_current_cgroup_id)(void) = (void *)80;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;
static void *(*bpf_get_current_task)(void) = (void *)35;
static long (*bpf_probe_read_kernel)(void *dst, __u32 size, const void *src) = (void *)113;
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, 2); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
"#;

const CLANG_SEEDS: &[(&str, &str)] = &[
    (
        "ring_rodata_subprog",
        r#"
volatile const __u64 target_cgroup_id = 0;
__u64 hits = 0;
struct event { __u32 pid; __u32 seq; char comm[16]; };
struct { __uint(type, 27); __uint(max_entries, 65536); } events SEC(".maps");
static __attribute__((noinline)) int bump(__u32 k) {
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v) __sync_fetch_and_add(v, 1);
    return k + 1;
}
SEC("tracepoint/syscalls/sys_enter_getppid")
int record(void *ctx) {
    if (target_cgroup_id && bpf_get_current_cgroup_id() != target_cgroup_id) return 0;
    hits++;
    struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
    if (!e) return bump(1);
    e->pid = bpf_get_current_pid_tgid() >> 32;
    e->seq = bump(0);
    bpf_ringbuf_submit(e, 0);
    return 0;
}
"#,
    ),
    (
        "core_and_kinds",
        r#"
struct task_struct { int tgid; int pid; } __attribute__((preserve_access_index));
struct flags { unsigned a : 3; unsigned b : 5; };
struct flags shared_flags;
SEC("raw_tp/sys_enter")
int on_raw(void *ctx) {
    struct task_struct *t = bpf_get_current_task();
    int tgid = 0, pid = 0;
    bpf_probe_read_kernel(&tgid, sizeof(tgid), &t->tgid);
    bpf_probe_read_kernel(&pid, sizeof(pid), &t->pid);
    __u32 k = tgid == pid;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v) __sync_fetch_and_add(v, shared_flags.a + shared_flags.b);
    return 0;
}
SEC("perf_event")
int on_sample(void *ctx) {
    __u32 k = 3;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v) __sync_fetch_and_add(v, 1);
    return 0;
}
"#,
    ),
    (
        "globals_and_subprograms",
        r#"
static long (*bpf_trace_printk)(const char *fmt, __u32 fmt_size, ...) = (void *)6;
__u64 data_var = 5;
const volatile __u32 ro = 7;
char msg[] = "hi %d\n";
__attribute__((noinline)) int global_helper(int x) {
    __u32 k = x & 3;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    if (v) *v += data_var + ro;
    return x * 2;
}
static __attribute__((noinline)) int static_helper(int x) { return global_helper(x) + 1; }
SEC("tracepoint/syscalls/sys_enter_getppid")
int p1(void *ctx) {
    bpf_trace_printk(msg, sizeof(msg), 1);
    for (int i = 0; i < 4; i++) static_helper(i);
    return 0;
}
SEC("tracepoint/syscalls/sys_enter_getppid")
int p2(void *ctx) { return global_helper(3) & 0; }
SEC("raw_tp/sys_enter")
int p3(void *ctx) { bpf_trace_printk("const %d\n", 10, 2); return 0; }
"#,
    ),
];

/// Found crashes, kept short for the failure message.
static CRASHES: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[test]
fn mutated_objects_never_panic() {
    let cases: u64 = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x9e37_79b9_7f4a_7c15);
    let seeds = seeds();
    // CO-RE relocation needs the kernel's BTF; without it that step is skipped (noted).
    let kernel_btf = aya_obj::btf::Btf::from_sys_fs().ok();
    if kernel_btf.is_none() {
        eprintln!("note: no /sys/kernel/btf/vmlinux: CO-RE relocation is not exercised");
    }
    for (name, s) in &seeds {
        assert_eq!(elf_check::check(s), Ok(()), "seed {name} is rejected");
    }
    let layouts: Vec<Vec<Sec>> = seeds.iter().map(|(_, s)| layout(s)).collect();
    let mut rng = Rng(seed | 1);
    let _g = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        let mut c = CRASHES.lock().unwrap_or_else(|e| e.into_inner());
        c.push(info.to_string());
    }));
    let (mut accepted, mut rejected, mut prevented) = (0u64, 0u64, 0u64);
    let mut by_check: HashMap<String, u64> = HashMap::new();
    let mut failures = Vec::new();
    for case in 0..cases {
        let k = rng.below(seeds.len() as u64) as usize;
        let Ok((m, what)) = catch_unwind(AssertUnwindSafe(|| {
            mutate(&mut rng, &seeds[k].1, &layouts[k])
        })) else {
            failures.push(format!("case {case}: the mutator itself panicked"));
            continue;
        };
        let verdict = catch_unwind(|| elf_check::check(&m));
        let ok = match verdict {
            Ok(Ok(())) => true,
            // What the validator saves the loader from (not for huge `.bss` sections:
            // aya-obj's allocation of those aborts rather than panics).
            Ok(Err(d)) => {
                if !allocates_a_huge_bss(&m)
                    && catch_unwind(AssertUnwindSafe(|| exercise(&m, kernel_btf.as_ref()))).is_err()
                {
                    prevented += 1;
                    // Which check stopped it: the defect's wording without its numbers.
                    let kind: String = d
                        .what
                        .split(['`', '('])
                        .next()
                        .unwrap_or("")
                        .chars()
                        .filter(|c| !c.is_ascii_digit())
                        .collect();
                    *by_check.entry(kind).or_insert(0u64) += 1;
                }
                false
            }
            Err(_) => {
                failures.push(format!(
                    "case {case} ({}: {what}): the validator panicked",
                    seeds[k].0
                ));
                continue;
            }
        };
        if ok {
            accepted += 1;
            let r = catch_unwind(AssertUnwindSafe(|| exercise(&m, kernel_btf.as_ref())));
            if r.is_err() {
                failures.push(format!(
                    "case {case} ({}: {what}): accepted, then panicked",
                    seeds[k].0
                ));
            }
        } else {
            rejected += 1;
        }
    }
    std::panic::set_hook(hook);
    let crashes: Vec<String> = CRASHES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .drain(..)
        .collect();
    eprintln!(
        "elf_check fuzz: {cases} mutants of {} seeds (seed {seed:#x}): {accepted} accepted and exercised, {rejected} rejected ({prevented} of which panic aya-obj unvalidated), {} panics",
        seeds.len(),
        failures.len()
    );
    let mut by_check: Vec<_> = by_check.into_iter().collect();
    by_check.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (kind, n) in by_check.iter().take(12) {
        eprintln!("  {n:5}  {kind}");
    }
    assert!(
        failures.is_empty(),
        "{} mutants panicked:\n{}\npanics:\n{}",
        failures.len(),
        failures
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        crashes
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

// Named regressions: each object below panicked inside aya-obj 0.3 (or the runner's BTF
// reader) before the validator rejected it; `aya_panics` shows the case is still real.

/// Serializes the tests that swap the panic hook.
static HOOK: Mutex<()> = Mutex::new(());

/// Whether aya-obj (and the runner's reading) panics on `bytes`, with no validation.
fn aya_panics(bytes: &[u8]) -> bool {
    let _g = HOOK.lock().unwrap_or_else(|e| e.into_inner());
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = catch_unwind(|| exercise(bytes, None));
    std::panic::set_hook(hook);
    r.is_err()
}

fn rejected(bytes: &[u8], needles: &[&str]) {
    let d = elf_check::check(bytes).expect_err("the validator accepted a corrupt object");
    let msg = d.to_string();
    for n in needles {
        assert!(msg.contains(n), "missing {n:?} in: {msg}");
    }
    assert!(!msg.contains('\n'), "one line expected: {msg}");
}

fn runner_seed() -> Vec<u8> {
    let env = crate::tracefs::Tracefs::open();
    let src = "BEGIN { @a = count(); @b[1] = sum(2); }";
    let compiled = crate::commands::compile_source(
        "seed.bt",
        src,
        &Default::default(),
        &env,
        crate::commands::base_options(),
    )
    .unwrap_or_else(|e| panic!("{}", e.0));
    let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
    crate::compile::object_file::emit(&programs, &compiled.maps).unwrap()
}

/// Symbol table entries `(file offset, name, st_info, st_shndx)`.
fn symbols_of(b: &[u8]) -> Vec<(usize, String, u8, u16)> {
    let secs = layout(b);
    let st = secs.iter().find(|s| s.ty == 2).unwrap();
    let strtab = &secs[rd32(b, st.hdr + 40) as usize];
    (0..st.size / 24)
        .map(|i| {
            let at = st.offset + 24 * i;
            let n = strtab.offset + rd32(b, at) as usize;
            let end = b[n..].iter().position(|&c| c == 0).unwrap();
            (
                at,
                String::from_utf8_lossy(&b[n..n + end]).into_owned(),
                b[at + 4],
                u16::from_le_bytes([b[at + 6], b[at + 7]]),
            )
        })
        .collect()
}

#[test]
fn two_maps_of_one_name_are_rejected() {
    // Found by the fuzzer: renaming map `m1` to `m0` made aya-obj relocate `m1`'s loads
    // through the section and trip a debug assertion (in release: the wrong map).
    let mut b = runner_seed();
    let syms = symbols_of(&b);
    let (m0_at, ..) = syms.iter().find(|s| s.1 == "m0").unwrap().clone();
    let (m1_at, ..) = syms.iter().find(|s| s.1 == "m1").unwrap().clone();
    let name_m0 = rd32(&b, m0_at);
    put(&mut b, m1_at, &name_m0.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(&b, &["second map named `m0`", "section .symtab"]);
}

#[test]
fn maps_section_without_data_is_rejected() {
    // Found by the fuzzer (60000 mutants, seed 99): the legacy `maps` section re-typed
    // SHT_NOBITS; aya-obj slices each map definition out of its (empty) data.
    let mut b = runner_seed();
    let maps = layout(&b).into_iter().find(|s| s.name == "maps").unwrap();
    put(&mut b, maps.hdr + 4, &8u32.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(
        &b,
        &[
            "a `maps` section without data",
            "(section maps, offset 0x0)",
        ],
    );
}

#[test]
fn program_symbol_past_its_section_is_rejected() {
    let mut b = runner_seed();
    let secs = layout(&b);
    let syms = symbols_of(&b);
    let (at, _, _, shndx) = syms.iter().find(|s| s.2 & 0xf == 2).unwrap().clone();
    let size = secs[shndx as usize].size as u64 + 8;
    put(&mut b, at + 16, &size.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(
        &b,
        &["extends past the end of section", "section .symtab, offset"],
    );
}

/// `.BTF.ext`'s func_info block: (file offset of its rec_size word).
fn func_info_at(b: &[u8]) -> usize {
    let secs = layout(b);
    let ext = secs.iter().find(|s| s.name == ".BTF.ext").unwrap();
    ext.offset + rd32(b, ext.offset + 4) as usize + rd32(b, ext.offset + 8) as usize
}

#[test]
fn btf_ext_section_name_outside_the_strings_is_rejected() {
    if !require_clang() {
        return;
    }
    let mut b = clang_object("ext_name", CLANG_SEEDS[0].1);
    let at = func_info_at(&b) + 4;
    put(&mut b, at, &0x00ff_fff0u32.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(&b, &["func_info: section name offset", "section .BTF.ext"]);
}

#[test]
fn btf_ext_record_count_past_the_block_is_rejected() {
    if !require_clang() {
        return;
    }
    let mut b = clang_object("ext_count", CLANG_SEEDS[0].1);
    let at = func_info_at(&b) + 8;
    put(&mut b, at, &0x0100_0000u32.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(
        &b,
        &[
            "func_info",
            "run past the end of the block",
            "section .BTF.ext",
        ],
    );
}

#[test]
fn btf_ext_zero_record_size_is_rejected() {
    if !require_clang() {
        return;
    }
    let mut b = clang_object("ext_rec", CLANG_SEEDS[0].1);
    let at = func_info_at(&b);
    put(&mut b, at, &0u32.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(&b, &["func_info record size 0", "section .BTF.ext"]);
}

#[test]
fn call_relocated_against_an_untyped_symbol_is_rejected() {
    // The `.text` section symbol (which the call to `bump` is relocated against) re-typed
    // to NOTYPE: aya-obj reaches a `todo!()`.
    if !require_clang() {
        return;
    }
    let mut b = clang_object("label", CLANG_SEEDS[0].1);
    let text = layout(&b).iter().position(|s| s.name == ".text").unwrap() as u16;
    let syms = symbols_of(&b);
    let (at, ..) = syms
        .iter()
        .find(|s| s.2 & 0xf == 3 && s.3 == text)
        .unwrap()
        .clone();
    b[at + 4] &= 0xf0;
    assert!(aya_panics(&b));
    rejected(&b, &["neither a function nor a section", "relocation #"]);
}

const KFUNC_CALL: &str = r#"
extern void bpf_rcu_read_lock(void) __attribute__((section(".ksyms")));
SEC("raw_tp/sys_enter")
int on_raw(void *ctx) { bpf_rcu_read_lock(); return 0; }
"#;

#[test]
fn call_to_an_undefined_function_symbol_is_rejected() {
    // The kfunc's symbol typed FUNC (as other toolchains emit it): aya-obj unwraps the
    // undefined symbol's section.
    if !require_clang() {
        return;
    }
    let mut b = clang_object("kfunc_func", KFUNC_CALL);
    let syms = symbols_of(&b);
    let (at, ..) = syms
        .iter()
        .find(|s| s.1 == "bpf_rcu_read_lock")
        .unwrap()
        .clone();
    b[at + 4] = (b[at + 4] & 0xf0) | 2;
    assert!(aya_panics(&b));
    rejected(&b, &["bpf_rcu_read_lock", "does not define", "kfuncs"]);
}

#[test]
fn kfunc_call_is_a_clear_error() {
    // clang's own form (NOTYPE): aya-obj would turn the call into a call of the program
    // itself, which the verifier then rejects with a confusing message.
    if !require_clang() {
        return;
    }
    let b = clang_object("kfunc", KFUNC_CALL);
    rejected(&b, &["bpf_rcu_read_lock", "does not define", "kfuncs"]);
}

#[test]
fn map_value_array_over_4_gib_is_rejected() {
    // aya-obj's type_size multiplies in u32: a debug build panics, a release one wraps.
    if !require_clang() {
        return;
    }
    let b = clang_object(
        "huge_value",
        r#"
struct { __uint(type, 2); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64[1 << 30]); } huge SEC(".maps");
SEC("raw_tp/sys_enter")
int on_raw(void *ctx) { __u32 k = 0; return bpf_map_lookup_elem(&huge, &k) != 0; }
"#,
    );
    assert!(aya_panics(&b));
    rejected(&b, &["larger than 4 GiB", "section .BTF"]);
}

#[test]
fn huge_bss_is_rejected() {
    // aya-obj allocates a `.bss` section's size in zeroes: 2^60 bytes cannot be had.
    if !require_clang() {
        return;
    }
    let mut b = clang_object("bss", CLANG_SEEDS[0].1);
    let bss = layout(&b).into_iter().find(|s| s.name == ".bss").unwrap();
    put(&mut b, bss.hdr + 32, &(1u64 << 60).to_le_bytes());
    rejected(&b, &["more than a BPF map value can hold", "section .bss"]);
}
#[test]
fn load_of_a_global_moved_into_the_maps_section_is_rejected() {
    // Found by the fuzzer (40000 mutants, seed 4242): `shared_flags` (a .bss global) given
    // the `.maps` section index. aya-obj relocates its load to the section's first map
    // (`counts`): a debug assertion, and in release a program reading the wrong map.
    if !require_clang() {
        return;
    }
    let mut b = clang_object("moved_global", CLANG_SEEDS[1].1);
    let maps = layout(&b).iter().position(|s| s.name == ".maps").unwrap() as u16;
    let syms = symbols_of(&b);
    let (at, ..) = syms.iter().find(|s| s.1 == "shared_flags").unwrap().clone();
    put(&mut b, at + 6, &maps.to_le_bytes());
    assert!(aya_panics(&b));
    rejected(
        &b,
        &[
            "`shared_flags` in map section `.maps`",
            "not a map definition",
        ],
    );
}
