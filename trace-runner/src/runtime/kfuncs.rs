//! The kernel functions kprobes and kretprobes may attach to, and the expansion of a
//! kprobe attach point (`kprobe:vfs_*`, `kprobe:MODULE:FUNC`) into them, following
//! bpftrace 0.17: a function is traceable when tracefs's `available_filter_functions`
//! lists it (`name` or `name [module]`; others are notrace), and bpftrace's banned
//! kretprobes are refused when named and left out of wildcards. The parsing and matching
//! are pure ([`FuncList`]); [`FuncList::system`] reads the node's list once.

use std::sync::OnceLock;

/// Functions whose kretprobe can lock up the machine: bpftrace refuses them.
pub const BANNED_KRETPROBES: &[&str] = &[
    "_raw_spin_lock",
    "_raw_spin_lock_irqsave",
    "_raw_spin_unlock_irqrestore",
    "queued_spin_lock_slowpath",
];

/// One traceable function: its name and, for a module's, the module.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Func {
    pub name: String,
    pub module: Option<String>,
}

/// The traceable functions of a kernel: the text of `available_filter_functions`, kept
/// as read and searched on demand (parsing all 40,000 lines up front cost seconds per run
/// in the kernel matrix's unoptimised builds under emulation).
#[derive(Debug, Clone, Default)]
pub struct FuncList {
    /// The text with a leading newline, so that every line starts after a `\n`.
    text: String,
}

/// `name` or `name [module]` → (name, module).
fn parse_line(line: &str) -> Option<(&str, Option<&str>)> {
    let mut words = line.split_whitespace();
    let name = words.next()?;
    let module = words
        .next()
        .and_then(|m| m.strip_prefix('[')?.strip_suffix(']'));
    Some((name, module))
}

/// What one attach point expands to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expansion {
    /// The functions a wildcard matches, sorted (maybe none: the point is skipped).
    Funcs(Vec<String>),
    /// A function named without wildcards that is not in `available_filter_functions`
    /// (missing, inlined, notrace, or simply not ftrace-able like some syscall wrappers):
    /// bpftrace warns and tries anyway, since a kprobe can attach where ftrace cannot.
    Unlisted(String),
    /// The point names a function that may not be traced: bpftrace's error.
    Banned(String),
}

impl FuncList {
    /// Take `available_filter_functions` (`name` or `name [module]` per line). A name
    /// listed twice (static functions of several files) counts once: a kprobe by name
    /// attaches to its first address.
    pub fn parse(text: &str) -> FuncList {
        FuncList {
            text: format!("\n{text}"),
        }
    }

    fn entries(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.text.lines().filter_map(parse_line)
    }

    /// The node's traceable functions, read once; `None` when this kernel has no kprobes
    /// (or tracefs is not there), so nothing can be said about a kprobe's function.
    pub fn system() -> Option<&'static FuncList> {
        if !std::path::Path::new("/sys/bus/event_source/devices/kprobe").exists() {
            return None;
        }
        FuncList::traceable()
    }

    /// The node's traceable functions (kprobes or not: fentry needs only ftrace), read
    /// once; `None` without tracefs.
    pub fn traceable() -> Option<&'static FuncList> {
        static LIST: OnceLock<Option<FuncList>> = OnceLock::new();
        LIST.get_or_init(|| {
            let root = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]
                .into_iter()
                .map(std::path::Path::new)
                .find(|p| p.join("available_filter_functions").is_file())?;
            let text = std::fs::read_to_string(root.join("available_filter_functions")).ok()?;
            Some(FuncList::parse(&text))
        })
        .as_ref()
    }

    /// Every function, sorted by name, each name once.
    pub fn all(&self) -> Vec<Func> {
        let mut funcs: Vec<Func> = self
            .entries()
            .map(|(name, module)| Func {
                name: name.to_string(),
                module: module.map(str::to_string),
            })
            .collect();
        funcs.sort_unstable();
        funcs.dedup_by(|a, b| a.name == b.name);
        funcs
    }

    /// The modules (`None`: the kernel's own) of the lines naming `name`.
    fn lines_of<'a>(&'a self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + 'a {
        let needle = format!("\n{name}");
        self.text
            .match_indices(needle.as_str())
            .filter_map(move |(at, _)| {
                let rest = &self.text[at + 1..];
                let line = rest.split('\n').next().unwrap_or_default();
                parse_line(line).filter(|(n, _)| *n == name).map(|(_, m)| m)
            })
            .collect::<Vec<_>>()
            .into_iter()
    }

    /// Expand the function part of `kprobe:[MODULE:]FUNC` (`ret`: a kretprobe). A name
    /// without `*` stands for itself only (`lookup_fast` does not match
    /// `lookup_fast.constprop.0`, as in bpftrace; `lookup_fast.*` does).
    pub fn expand(&self, ret: bool, module: Option<&str>, func: &str) -> Expansion {
        let in_module =
            |m: Option<&str>| module.is_none_or(|want| glob_match(want, m.unwrap_or("vmlinux")));
        let banned = |name: &str| ret && BANNED_KRETPROBES.contains(&name);
        if !func.contains('*') {
            if banned(func) {
                return Expansion::Banned(format!(
                    "kretprobe:{func} can't be used as it might lock up your system."
                ));
            }
            return if self.lines_of(func).any(in_module) {
                Expansion::Funcs(vec![func.to_string()])
            } else {
                Expansion::Unlisted(func.to_string())
            };
        }
        let mut found: Vec<String> = self
            .entries()
            .filter(|(name, m)| in_module(*m) && !banned(name) && glob_match(func, name))
            .map(|(name, _)| name.to_string())
            .collect();
        found.sort_unstable();
        found.dedup();
        Expansion::Funcs(found)
    }
}

impl FuncList {
    /// Expand `kfunc:[MODULE:]FUNC` (`*` wildcards in both): the traceable functions
    /// that `has_btf(module, function)` says BTF describes, as `(module, function)` pairs
    /// (module `vmlinux` for the kernel's own), sorted, each once. Without a module, the
    /// kernel's and every module's functions match, as in bpftrace.
    pub fn expand_kfunc(
        &self,
        module: Option<&str>,
        func: &str,
        has_btf: impl Fn(&str, &str) -> bool,
    ) -> Vec<(String, String)> {
        let candidates: Vec<(&str, Option<&str>)> = if func.contains('*') {
            self.entries()
                .filter(|(name, _)| glob_match(func, name))
                .collect()
        } else {
            self.lines_of(func).map(|m| (func, m)).collect()
        };
        let mut found: Vec<(String, String)> = candidates
            .into_iter()
            .map(|(name, m)| (m.unwrap_or("vmlinux"), name))
            .filter(|(m, name)| module.is_none_or(|want| glob_match(want, m)) && has_btf(m, name))
            .map(|(m, name)| (m.to_string(), name.to_string()))
            .collect();
        found.sort_unstable();
        found.dedup();
        found
    }
}

/// The kprobe names of `funcs` found in `module`: `MODULE:FUNC` for a module named
/// without wildcards (the kernel then resolves the name within that module, not the
/// kernel's or another module's function of the same name), the bare names otherwise.
pub fn qualify(module: Option<&str>, funcs: Vec<String>) -> Vec<String> {
    match module {
        Some(m) if m != "vmlinux" && !m.contains('*') => {
            funcs.into_iter().map(|f| format!("{m}:{f}")).collect()
        }
        _ => funcs,
    }
}

/// The function of a kprobe name that [`qualify`] may have prefixed with its module.
pub fn unqualified(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, f)| f)
}

/// The module and function parts of a kprobe attach point's name
/// (`kprobe:vfs_read`, `kretprobe:ext4:ext4_*`, `k:f`).
pub fn split_probe_name(probe_name: &str) -> (Option<&str>, &str) {
    let mut parts = probe_name.splitn(3, ':').skip(1);
    match (parts.next(), parts.next()) {
        (Some(module), Some(func)) => (Some(module), func),
        (Some(func), None) => (None, func),
        _ => (None, probe_name),
    }
}

/// The warning for a kprobe attach point skipped (a wildcard matching no traceable
/// function, or a function the kernel would not probe), worded as bpftrace 0.17 words it.
pub fn skip_warning(ret: bool, module: Option<&str>, func: &str) -> String {
    skip_warning_for(if ret { "kretprobe" } else { "kprobe" }, module, func)
}

/// [`skip_warning`] for any probe type (`kfunc`).
pub fn skip_warning_for(kind: &str, module: Option<&str>, func: &str) -> String {
    match module {
        Some(m) => format!("WARNING: could not attach probe {kind}:{m}:{func}, skipping."),
        None => format!("WARNING: could not attach probe {kind}:{func}, skipping."),
    }
}

/// Shell-style match with `*` only (in trace-lang: the front end and every node-fact
/// module use it).
pub use trace_lang::glob::glob_match;

#[cfg(test)]
mod tests {
    use super::*;

    // The shape of a real available_filter_functions (Debian 6.1): duplicates, suffixed
    // clones and module functions.
    const AFF: &str = "\
vfs_read
vfs_write
vfs_readv
vfs_fsync_range
lookup_fast.constprop.0
lookup_fast.constprop.0
__x64_sys_getppid
__x64_sys_getpid
_raw_spin_lock
_raw_spin_lock_irqsave
_raw_spin_lock_bh
queued_spin_lock_slowpath
xfs_file_read_iter [xfs]
xfs_file_write_iter [xfs]
ext4_file_read_iter [ext4]
vfs_read_dup_in_mod [xfs]
";

    #[test]
    fn kfuncs_expand_to_traceable_functions_with_btf() {
        let list = FuncList::parse(AFF);
        // BTF describes every function but the kernel's vfs_readv.
        let btf = |m: &str, f: &str| !(m == "vmlinux" && f == "vfs_readv");
        let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
            v.iter()
                .map(|(m, f)| (m.to_string(), f.to_string()))
                .collect()
        };
        assert_eq!(
            list.expand_kfunc(None, "vfs_read*", btf),
            pairs(&[("vmlinux", "vfs_read"), ("xfs", "vfs_read_dup_in_mod")])
        );
        assert_eq!(
            list.expand_kfunc(Some("vmlinux"), "vfs_read*", btf),
            pairs(&[("vmlinux", "vfs_read")])
        );
        assert_eq!(
            list.expand_kfunc(Some("xfs"), "*", btf),
            pairs(&[
                ("xfs", "vfs_read_dup_in_mod"),
                ("xfs", "xfs_file_read_iter"),
                ("xfs", "xfs_file_write_iter")
            ])
        );
        assert_eq!(
            list.expand_kfunc(None, "xfs_file_read_iter", btf),
            pairs(&[("xfs", "xfs_file_read_iter")])
        );
        assert_eq!(
            list.expand_kfunc(Some("x*"), "xfs_file_*_iter", btf).len(),
            2
        );
        // Listed twice, described once; not listed; listed but without BTF.
        assert_eq!(
            list.expand_kfunc(None, "lookup_fast.constprop.0", btf),
            pairs(&[("vmlinux", "lookup_fast.constprop.0")])
        );
        assert!(list.expand_kfunc(None, "no_such", btf).is_empty());
        assert!(list.expand_kfunc(None, "vfs_readv", btf).is_empty());
        assert!(list.expand_kfunc(Some("ext4"), "vfs_read", btf).is_empty());
    }

    fn funcs(e: Expansion) -> Vec<String> {
        match e {
            Expansion::Funcs(f) => f,
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn wildcards_expand_to_the_listed_functions_sorted_once_each() {
        let l = FuncList::parse(AFF);
        assert_eq!(
            funcs(l.expand(false, None, "vfs_*")),
            [
                "vfs_fsync_range",
                "vfs_read",
                "vfs_read_dup_in_mod",
                "vfs_readv",
                "vfs_write"
            ]
        );
        assert_eq!(
            funcs(l.expand(false, None, "vfs_read*")),
            ["vfs_read", "vfs_read_dup_in_mod", "vfs_readv"]
        );
        assert_eq!(
            funcs(l.expand(false, None, "__x64_sys_getpp*")),
            ["__x64_sys_getppid"]
        );
        assert_eq!(
            funcs(l.expand(false, None, "nothing_*")),
            Vec::<String>::new()
        );
    }

    #[test]
    fn suffixed_clones_match_only_with_their_suffix() {
        let l = FuncList::parse(AFF);
        assert_eq!(
            funcs(l.expand(false, None, "lookup_fast.constprop.*")),
            ["lookup_fast.constprop.0"]
        );
        assert_eq!(
            funcs(l.expand(false, None, "lookup_fast.constprop.0")),
            ["lookup_fast.constprop.0"]
        );
        assert_eq!(
            l.expand(false, None, "lookup_fast"),
            Expansion::Unlisted("lookup_fast".into())
        );
        assert_eq!(
            funcs(l.expand(false, None, "lookup_fast*")),
            ["lookup_fast.constprop.0"]
        );
    }

    #[test]
    fn unlisted_functions_are_tried_by_name_and_never_matched_by_wildcards() {
        let l = FuncList::parse(AFF);
        // Not in available_filter_functions (missing, notrace, or not ftrace-able, like
        // __x64_sys_getppid on Debian's kernels): tried as named, as bpftrace does.
        assert_eq!(
            l.expand(false, None, "__blk_account_io_start"),
            Expansion::Unlisted("__blk_account_io_start".into())
        );
        assert_eq!(
            funcs(l.expand(false, None, "__blk_account_io_st*")),
            Vec::<String>::new()
        );
        assert_eq!(funcs(l.expand(false, None, "vfs_read")), ["vfs_read"]);
        // A prefix of a listed name is not that name.
        assert_eq!(
            l.expand(false, None, "vfs_rea"),
            Expansion::Unlisted("vfs_rea".into())
        );
    }

    #[test]
    fn banned_kretprobes_are_refused_by_name_and_skipped_in_wildcards() {
        let l = FuncList::parse(AFF);
        assert_eq!(
            l.expand(true, None, "_raw_spin_lock"),
            Expansion::Banned(
                "kretprobe:_raw_spin_lock can't be used as it might lock up your system.".into()
            )
        );
        assert!(matches!(
            l.expand(true, None, "queued_spin_lock_slowpath"),
            Expansion::Banned(_)
        ));
        // A kprobe (not a kretprobe) on them is allowed.
        assert_eq!(
            funcs(l.expand(false, None, "_raw_spin_lock")),
            ["_raw_spin_lock"]
        );
        assert_eq!(
            funcs(l.expand(true, None, "_raw_spin_lock*")),
            ["_raw_spin_lock_bh"]
        );
        assert_eq!(
            funcs(l.expand(false, None, "_raw_spin_lock*")),
            [
                "_raw_spin_lock",
                "_raw_spin_lock_bh",
                "_raw_spin_lock_irqsave"
            ]
        );
    }

    #[test]
    fn module_functions_match_by_module() {
        let l = FuncList::parse(AFF);
        assert_eq!(
            funcs(l.expand(false, Some("xfs"), "*")),
            [
                "vfs_read_dup_in_mod",
                "xfs_file_read_iter",
                "xfs_file_write_iter"
            ]
        );
        assert_eq!(
            funcs(l.expand(false, None, "xfs_file_*")),
            ["xfs_file_read_iter", "xfs_file_write_iter"]
        );
        assert_eq!(
            l.expand(false, Some("ext4"), "xfs_file_read_iter"),
            Expansion::Unlisted("xfs_file_read_iter".into())
        );
        assert_eq!(
            funcs(l.expand(false, Some("vmlinux"), "vfs_read*")),
            ["vfs_read", "vfs_readv"]
        );
        assert_eq!(
            l.all()
                .iter()
                .find(|f| f.name == "ext4_file_read_iter")
                .unwrap()
                .module
                .as_deref(),
            Some("ext4")
        );
    }

    #[test]
    fn module_functions_are_named_within_their_module() {
        let f = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(qualify(Some("9p"), f(&["a", "b"])), ["9p:a", "9p:b"]);
        assert_eq!(qualify(Some("vmlinux"), f(&["a"])), ["a"]);
        assert_eq!(qualify(Some("x*"), f(&["a"])), ["a"]);
        assert_eq!(qualify(None, f(&["a"])), ["a"]);
        assert_eq!(unqualified("9p:a"), "a");
        assert_eq!(unqualified("a"), "a");
    }

    #[test]
    fn probe_names_split_into_module_and_function() {
        assert_eq!(split_probe_name("kprobe:vfs_read"), (None, "vfs_read"));
        assert_eq!(
            split_probe_name("kretprobe:xfs:xfs_*"),
            (Some("xfs"), "xfs_*")
        );
        assert_eq!(split_probe_name("k:f"), (None, "f"));
    }
}
