//! Stacks: reading `kstack`/`ustack` ids back from the stack-trace map and symbolizing
//! their frames (kernel ones from `/proc/kallsyms`, user ones with `blazesym` through
//! `/proc/PID/...`, so containerised processes resolve too, including functions only
//! named in a separate debug file under `/usr/lib/debug`) into typed
//! [`Stack`](crate::output::Stack)s. How a stack prints (and folds) is `trace-output`'s.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::OnceLock;

use trace_lang::types::StackMode;

use crate::abi::STACK_MAX_FRAMES;
use crate::output::{Frame, Stack, Symbol};

/// Looks a key up in a map: `(fd, key, value buffer) -> found?` (the loader's syscall).
pub type MapLookup = fn(i32, &[u8], &mut [u8]) -> std::io::Result<bool>;

static STACK_MAP_FD: AtomicI32 = AtomicI32::new(-1);
static LOOKUP: OnceLock<MapLookup> = OnceLock::new();

/// Called by the loader with the fd of the script's stack-trace map and the function
/// that reads a map element.
pub fn register_map(fd: i32, lookup: MapLookup) {
    let _ = LOOKUP.set(lookup);
    STACK_MAP_FD.store(fd, Ordering::SeqCst);
}

/// The addresses of stack `id`, innermost first.
fn addresses(id: i64) -> Vec<u64> {
    let fd = STACK_MAP_FD.load(Ordering::SeqCst);
    let Some(lookup) = LOOKUP.get() else {
        return Vec::new();
    };
    if id < 0 || fd < 0 {
        return Vec::new();
    }
    let mut buf = vec![0u8; 8 * STACK_MAX_FRAMES];
    match lookup(fd, &(id as u32).to_ne_bytes(), &mut buf) {
        Ok(true) => buf
            .chunks(8)
            .map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8])))
            .take_while(|a| *a != 0)
            .collect(),
        _ => Vec::new(),
    }
}

type UserCache = HashMap<(u32, u64), Option<Symbol>>;

thread_local! {
    /// The symbolizer (it caches parsed ELF files) and the answers, per thread.
    static USER_SYMBOLS: RefCell<Option<(blazesym::symbolize::Symbolizer, UserCache)>> =
        const { RefCell::new(None) };
}

/// The function (with the offset and the file it is in) of a user address in process
/// `pid`, if it resolves.
fn user_symbol(pid: u32, addr: u64) -> Option<Symbol> {
    use blazesym::symbolize::source::{Process, Source};
    use blazesym::symbolize::{Input, Symbolized, Symbolizer};
    USER_SYMBOLS.with(|cell| {
        let mut guard = cell.borrow_mut();
        let (symbolizer, cache) = guard.get_or_insert_with(|| {
            // Functions only, no source lines.
            let symbolizer = Symbolizer::builder()
                .enable_code_info(false)
                .enable_inlined_fns(false)
                .build();
            (symbolizer, HashMap::new())
        });
        if let Some(hit) = cache.get(&(pid, addr)) {
            return hit.clone();
        }
        // The ELF symbol tables first (the names bpftrace prints); for a function they
        // lack (a local one of a stripped distribution library), the debug info, also
        // from a `-dbg` package's separate file found by build id under /usr/lib/debug.
        let found = [false, true].into_iter().find_map(|debug_syms| {
            let mut process = Process::new(blazesym::Pid::from(pid));
            process.debug_syms = debug_syms;
            match symbolizer.symbolize_single(&Source::Process(process), Input::AbsAddr(addr)) {
                Ok(Symbolized::Sym(sym)) => Some(Symbol {
                    name: sym.name.to_string(),
                    offset: sym.offset as u64,
                    module: sym.module.map(|m| m.to_string_lossy().into_owned()),
                }),
                _ => None,
            }
        });
        cache.insert((pid, addr), found.clone());
        found
    })
}

/// `usym()` / `func` of a uprobe: the function name (no offset), or the address in hex.
pub fn user_function(pid: u32, addr: u64) -> String {
    match user_symbol(pid, addr) {
        Some(sym) => sym.name,
        // bpftrace prints an unknown null address as plain 0.
        None if addr == 0 => "0".to_string(),
        None => format!("0x{addr:x}"),
    }
}

/// A kernel frame of the BPF machinery that ran the probe.
fn is_tracer_frame(symbol: &str) -> bool {
    ["bpf_prog_", "bpf_trace_run", "__bpf_trace_"]
        .iter()
        .any(|p| symbol.starts_with(p))
}

/// Stack `id` (of process `pid` for user stacks), at most `limit` frames, with its frames
/// symbolized (except in `raw` mode, which prints addresses only).
pub fn resolve(id: i64, pid: u32, user: bool, limit: u32, mode: StackMode) -> Stack {
    let mut addrs = addresses(id);
    if !user {
        // Our own frames on top of a kernel stack (the program and the raw tracepoint
        // glue that runs it) say nothing about the traced code: start below them.
        let ours = addrs
            .iter()
            .take_while(|a| is_tracer_frame(&crate::symbols::kernel_symbol(**a)))
            .count();
        addrs.drain(..ours);
    }
    let frames = addrs
        .into_iter()
        .take(limit as usize)
        .map(|addr| {
            let symbol = match (mode, user) {
                (StackMode::Raw, _) => None,
                (_, true) => user_symbol(pid, addr),
                (_, false) => crate::symbols::kernel_function(addr).map(|(name, offset)| Symbol {
                    name,
                    offset,
                    module: None,
                }),
            };
            Frame {
                addr,
                symbol,
                kernel: !user,
            }
        })
        .collect();
    Stack { mode, frames }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A local function of libc, absent from its dynamic symbols, resolves from the separate
    /// debug file of libc6-dbg (found by build id), as bpftrace resolves
    /// `__libc_start_call_main+122` at the bottom of every C program's `ustack`.
    #[test]
    fn user_functions_resolve_from_separate_debug_files() {
        use object::{Object, ObjectSymbol};
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
        let (base, path) = maps
            .lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                let path = f.get(5)?;
                (path.ends_with("/libc.so.6") && f[2] == "00000000").then(|| {
                    let start = f[0].split('-').next().unwrap();
                    (u64::from_str_radix(start, 16).unwrap(), path.to_string())
                })
            })
            .expect("libc.so.6 mapped at offset 0 in /proc/self/maps");
        let libc = std::fs::read(&path).unwrap();
        let id = object::File::parse(&*libc)
            .unwrap()
            .build_id()
            .unwrap()
            .expect("libc has a build id");
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let debug = format!("/usr/lib/debug/.build-id/{}/{}.debug", &hex[..2], &hex[2..]);
        let Ok(data) = std::fs::read(&debug) else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{debug} is missing and CI=true: install libc6-dbg");
            }
            eprintln!("skipping: {debug} is missing (install libc6-dbg)");
            return;
        };
        let file = object::File::parse(&*data).unwrap();
        let start = file
            .symbols()
            .find(|s| s.name() == Ok("__libc_start_call_main"))
            .expect("__libc_start_call_main in libc's debug file")
            .address();
        let sym = user_symbol(std::process::id(), base + start + 7).expect("resolved");
        assert_eq!(sym.name, "__libc_start_call_main");
        assert_eq!(sym.offset, 7);
        assert_eq!(sym.module.as_deref(), Some(path.as_str()));
    }
}
