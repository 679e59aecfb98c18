//! The node's tracing file system: finds (or mounts) tracefs, lists tracepoints and
//! reads their record formats. Implements [`trace_lang::ProbeEnv`] for analysis and
//! code generation, and serves `trace-runner list`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use trace_lang::debuginfo::DebugInfo;
use trace_lang::sema::{FieldInfo, FuncSignature};
use trace_lang::tracepoint_format::{parse_format, TpField};
use trace_lang::types::Type;
use trace_lang::ProbeEnv;

use crate::runtime::kfuncs::Expansion;
// Kprobe matching lives with the function list; the old paths stay.
pub use crate::runtime::kfuncs::{glob_match, skip_warning, skip_warning_for};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Parsed format files by `(category, name)`; `None` when unreadable.
type FormatCache = HashMap<(String, String), Option<Vec<TpField>>>;

/// tracefs as seen by this process.
pub struct Tracefs {
    root: Option<PathBuf>,
    formats: Mutex<FormatCache>,
    /// The process `usdt:` attach points without a file search (`-p` / `-c`).
    usdt_scope: Mutex<crate::usdt::UsdtScope>,
    /// The binary of the process of `-p`/`-c`, for function watchpoints
    /// ([`ProbeEnv::traced_binary`]).
    traced_binary: Mutex<Option<(String, String)>>,
    /// Warnings of the answers given, until the analysis takes them
    /// ([`ProbeEnv::take_warnings`]).
    warnings: Mutex<Vec<String>>,
    /// The debug info of uprobe targets, by path as the script names them.
    debug_info: Mutex<HashMap<String, Arc<DebugInfo>>>,
}

impl Tracefs {
    /// Find tracefs; when it is not mounted and we may mount it (root in a privileged
    /// pod), mount it at /sys/kernel/tracing.
    pub fn open() -> Tracefs {
        let found = |p: &str| Path::new(p).join("events").is_dir();
        let mut root = CANDIDATES.iter().find(|p| found(p)).map(PathBuf::from);
        if root.is_none() && Path::new(CANDIDATES[0]).is_dir() {
            let target = std::ffi::CString::new(CANDIDATES[0]).expect("static path");
            let r = crate::sys::mount::mount_fs(c"tracefs", &target, c"tracefs");
            if r.is_ok() && found(CANDIDATES[0]) {
                root = Some(PathBuf::from(CANDIDATES[0]));
            }
        }
        Tracefs {
            root,
            formats: Mutex::new(HashMap::new()),
            usdt_scope: Mutex::default(),
            traced_binary: Mutex::default(),
            warnings: Mutex::default(),
            debug_info: Mutex::default(),
        }
    }

    /// The process `usdt:` attach points search when they name no file, and the
    /// filesystem absolute uprobe and usdt paths are looked up in first.
    pub fn set_usdt_scope(&self, scope: crate::usdt::UsdtScope) {
        *self.usdt_scope.lock().unwrap_or_else(|e| e.into_inner()) = scope;
    }

    /// The traced process's binary (`(name shown, file)`), for function watchpoints.
    pub fn set_traced_binary(&self, binary: Option<(String, String)>) {
        *self.traced_binary.lock().unwrap_or_else(|e| e.into_inner()) = binary;
    }

    pub fn is_available(&self) -> bool {
        self.root.is_some()
    }

    /// Every `(category, name)` tracepoint, sorted.
    pub fn all_tracepoints(&self) -> Vec<(String, String)> {
        let Some(root) = &self.root else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let Ok(cats) = std::fs::read_dir(root.join("events")) else {
            return out;
        };
        for cat in cats.flatten() {
            if !cat.path().is_dir() {
                continue;
            }
            let cat_name = cat.file_name().to_string_lossy().into_owned();
            let Ok(events) = std::fs::read_dir(cat.path()) else {
                continue;
            };
            for ev in events.flatten() {
                if ev.path().join("format").is_file() {
                    out.push((
                        cat_name.clone(),
                        ev.file_name().to_string_lossy().into_owned(),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    /// The text of a tracepoint's format file.
    pub fn read_format(&self, category: &str, name: &str) -> Option<String> {
        let root = self.root.as_ref()?;
        std::fs::read_to_string(root.join("events").join(category).join(name).join("format")).ok()
    }

    /// Functions kprobes can attach to, when this kernel has kprobes (none otherwise).
    pub fn kprobe_functions(&self) -> Vec<String> {
        crate::runtime::kfuncs::FuncList::system()
            .map(|l| l.all().into_iter().map(|f| f.name).collect())
            .unwrap_or_default()
    }

    /// Tracepoint names closest to `category:name`, for "did you mean" hints.
    fn suggestions(&self, category: &str, name: &str) -> Vec<String> {
        let wanted = format!("{category}:{name}");
        let mut scored: Vec<(usize, String)> = self
            .all_tracepoints()
            .into_iter()
            .map(|(c, n)| format!("{c}:{n}"))
            .map(|full| (edit_distance(&wanted, &full), full))
            .collect();
        scored.sort();
        scored
            .into_iter()
            .take(3)
            .filter(|(d, _)| *d <= wanted.len() / 2 + 2)
            .map(|(_, n)| n)
            .collect()
    }
}

impl Tracefs {
    fn warn(&self, line: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(line);
    }
}

impl ProbeEnv for Tracefs {
    fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn tracepoints(&self, category: &str, name: &str) -> Option<Vec<(String, String)>> {
        self.root.as_ref()?;
        if !category.contains('*') && !name.contains('*') {
            let exists = self
                .root
                .as_ref()?
                .join("events")
                .join(category)
                .join(name)
                .join("format")
                .is_file();
            return Some(if exists {
                vec![(category.to_string(), name.to_string())]
            } else {
                Vec::new()
            });
        }
        Some(
            self.all_tracepoints()
                .into_iter()
                .filter(|(c, n)| glob_match(category, c) && glob_match(name, n))
                .collect(),
        )
    }

    fn tracepoint_fields(&self, category: &str, name: &str) -> Option<Vec<TpField>> {
        let key = (category.to_string(), name.to_string());
        let mut cache = self.formats.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .entry(key)
            .or_insert_with(|| {
                let path = self
                    .root
                    .as_ref()?
                    .join("events")
                    .join(category)
                    .join(name)
                    .join("format");
                let text = std::fs::read_to_string(path).ok()?;
                Some(parse_format(&text, category == "syscalls"))
            })
            .clone()
    }

    fn suggest_tracepoints(&self, category: &str, name: &str) -> Vec<String> {
        self.suggestions(category, name)
            .into_iter()
            .map(|n| format!("tracepoint:{n}"))
            .collect()
    }

    fn uprobe_exists(&self, path: &str, symbol: &str) -> Option<bool> {
        match crate::uprobes::exists(path, symbol)? {
            Ok(()) => Some(true),
            Err(warning) => {
                self.warn(warning);
                Some(false)
            }
        }
    }

    fn uprobe_path(&self, path: &str) -> Result<Option<String>, String> {
        let scope = self
            .usdt_scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // A pod target or the node's root: the container's file first, then the node's,
        // else an error.
        if scope.roots != crate::uprobes::Roots::default() {
            let inside = scope.roots.lookup(path, "uprobe target")?;
            return Ok(inside.map(|p| p.display().to_string()));
        }
        // `-p`: this mount namespace's file first, then the process's.
        if !path.starts_with('/') || Path::new(path).exists() {
            return Ok(None);
        }
        let Some(pid) = scope.pid else {
            return Ok(None);
        };
        let inside = format!("/proc/{pid}/root{path}");
        Ok(Path::new(&inside).exists().then_some(inside))
    }

    fn uprobe_files(
        &self,
        pattern: &str,
        function: &str,
    ) -> Option<Result<Vec<(String, String)>, String>> {
        let scope = self
            .usdt_scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let found = scope.roots.expand(pattern)?;
        if found.is_empty() {
            let places = match (&scope.roots.container, &scope.roots.node) {
                (Some(c), _) => format!(
                    " (looked in the target container, {}, and on this node)",
                    c.display()
                ),
                (None, Some(n)) => format!(" (looked on this node, in {})", n.display()),
                (None, None) => String::new(),
            };
            return Some(Err(format!(
                "uprobe target '{pattern}' matches no file{places}"
            )));
        }
        let defining: Vec<(String, String)> = found
            .into_iter()
            .filter(|(_, file)| crate::uprobes::defines(file, function))
            .map(|(shown, file)| (shown, file.display().to_string()))
            .collect();
        if defining.is_empty() {
            self.warn(format!(
                "warning: no file matching uprobe target '{pattern}' defines '{function}'; its probes are skipped"
            ));
        }
        Some(Ok(defining))
    }

    fn traced_binary(&self) -> Option<(String, String)> {
        self.traced_binary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn uprobe_functions(&self, path: &str, pattern: &str) -> Option<Vec<String>> {
        let file = crate::uprobes::resolve_target(path)?;
        let functions = crate::uprobes::functions(&file).ok()?;
        Some(
            functions
                .into_iter()
                .filter(|f| glob_match(pattern, f))
                .collect(),
        )
    }

    fn usdt_probes(
        &self,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Option<Result<Vec<trace_lang::usdt::UsdtProbe>, String>> {
        let scope = self
            .usdt_scope
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let found = crate::usdt::find(target, provider, name, &scope);
        if found.as_ref().is_ok_and(Vec::is_empty) {
            let provider = if provider.is_empty() { "*" } else { provider };
            self.warn(format!(
                "warning: no USDT probe matches usdt:{target}:{provider}:{name}; it is skipped"
            ));
        }
        Some(found)
    }

    fn kprobe_matches(
        &self,
        ret: bool,
        module: Option<&str>,
        func: &str,
    ) -> Option<Result<usize, String>> {
        if let Some(why) = kprobe_refusal(ret, module, func, |m| {
            Path::new("/sys/module").join(m).is_dir()
        }) {
            return Some(Err(why));
        }
        let list = crate::runtime::kfuncs::FuncList::system()?;
        match list.expand(ret, module, func) {
            Expansion::Banned(why) => Some(Err(why)),
            Expansion::Unlisted(name) => {
                self.warn(format!("WARNING: {name} is not traceable (either non-existing, inlined, or marked as \"notrace\"); attaching to it will likely fail"));
                Some(Ok(1))
            }
            Expansion::Funcs(found) => {
                if found.is_empty() {
                    self.warn(skip_warning(ret, module, func));
                }
                Some(Ok(found.len()))
            }
        }
    }

    // Kernel types come from BTF (parsed on first use, see crate::btf).
    fn has_kernel_types(&self) -> bool {
        crate::btf::available()
    }

    fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
        crate::btf::kernel()?.record_field(record, field)
    }

    fn type_size(&self, name: &str) -> Option<u64> {
        crate::btf::kernel()?.type_size(name)
    }

    fn typedef(&self, name: &str) -> Option<Type> {
        crate::btf::kernel()?.typedef(name)
    }

    fn enum_value(&self, name: &str) -> Option<i64> {
        crate::btf::kernel()?.enum_value(name)
    }

    fn kfunc_signature(&self, module: &str, func: &str) -> Option<FuncSignature> {
        if module == "vmlinux" {
            crate::btf::kernel()?.func_signature(func)
        } else {
            crate::btf::module(module)?.func_signature(func)
        }
    }

    /// Read once per target; a file that cannot be found or read has none.
    fn debug_info(&self, path: &str) -> Option<Arc<DebugInfo>> {
        let mut cache = self.debug_info.lock().unwrap_or_else(|e| e.into_inner());
        let info = cache.entry(path.to_string()).or_insert_with(|| {
            let info = crate::uprobes::resolve_target(path)
                .and_then(|file| crate::dwarf::debug_info(&file).ok())
                .unwrap_or_default();
            Arc::new(info)
        });
        Some(Arc::clone(info))
    }

    fn user_symbol(&self, file: &str, symbol: &str) -> Option<(u64, u64)> {
        let path = crate::uprobes::resolve_target(file)?;
        crate::uprobes::fixed_symbol_address(&path, symbol)
    }

    fn kfuncs(&self, ret: bool, module: Option<&str>, func: &str) -> Option<Vec<(String, String)>> {
        let kernel = crate::btf::kernel()?;
        // Without the list of traceable functions (tracefs unreadable), BTF's functions.
        let listed;
        let list = match crate::runtime::kfuncs::FuncList::traceable() {
            Some(list) => list,
            None => {
                let mut text = String::new();
                for name in kernel.func_names() {
                    text.push_str(name);
                    text.push('\n');
                }
                if let Some(m) = module.filter(|m| !m.contains('*') && *m != "vmlinux") {
                    for name in crate::btf::module(m)
                        .into_iter()
                        .flat_map(|b| b.func_names())
                    {
                        text.push_str(&format!("{name} [{m}]\n"));
                    }
                }
                listed = crate::runtime::kfuncs::FuncList::parse(&text);
                &listed
            }
        };
        let found = list.expand_kfunc(module, func, |m, f| {
            if m == "vmlinux" {
                kernel.func_id(f).is_some()
            } else {
                crate::btf::module(m).is_some_and(|b| b.func_id(f).is_some())
            }
        });
        if found.is_empty() {
            let kind = if ret { "kretfunc" } else { "kfunc" };
            self.warn(skip_warning_for(kind, module, func));
        }
        Some(found)
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A tracepoint's fields as `-lv` prints them: each `field:` declaration of the format
/// file, without the `common_` fields and the `;` (`const char * filename`).
pub(crate) fn format_field_decls(format: &str) -> Vec<String> {
    format
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("field:"))
        .filter_map(|l| l.split(';').next())
        .map(str::trim)
        .filter(|decl| {
            let name = decl.rsplit([' ', '*']).next().unwrap_or("");
            !name.starts_with("common_")
        })
        .map(str::to_string)
        .collect()
}

/// What bpftrace refuses in a k(ret)probe before looking at the kernel's functions: a
/// kretprobe that can lock up the machine, and a `MODULE:` part that names no loaded
/// module (bpftrace 0.17 takes no module at all, so `kprobe:syscalls:sys_exit_read`
/// gets its count error).
fn kprobe_refusal(
    ret: bool,
    module: Option<&str>,
    func: &str,
    module_loaded: impl Fn(&str) -> bool,
) -> Option<String> {
    let kind = if ret { "kretprobe" } else { "kprobe" };
    if let Some(m) = module {
        if m != "vmlinux" && !m.contains(['*', '?']) && !module_loaded(m) {
            return Some(format!(
                "{kind} probe type requires 1 argument ('{m}' is not a loaded kernel module)"
            ));
        }
    }
    (ret && crate::runtime::kfuncs::BANNED_KRETPROBES.contains(&func))
        .then(|| format!("kretprobe:{func} can't be used as it might lock up your system."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banned_kretprobes_and_unknown_modules_are_refused_first() {
        let loaded = |m: &str| m == "xfs";
        assert_eq!(
            kprobe_refusal(true, None, "_raw_spin_lock", loaded).as_deref(),
            Some("kretprobe:_raw_spin_lock can't be used as it might lock up your system.")
        );
        assert_eq!(kprobe_refusal(false, None, "_raw_spin_lock", loaded), None);
        assert_eq!(
            kprobe_refusal(false, Some("syscalls"), "sys_exit_nanosleep", loaded).as_deref(),
            Some(
                "kprobe probe type requires 1 argument ('syscalls' is not a loaded kernel module)"
            )
        );
        assert_eq!(kprobe_refusal(true, Some("xfs"), "xfs_read", loaded), None);
        assert_eq!(
            kprobe_refusal(true, Some("vmlinux"), "vfs_read", loaded),
            None
        );
        assert_eq!(kprobe_refusal(true, Some("x*"), "vfs_read", loaded), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("sys_enter_*", "sys_enter_openat"));
        assert!(glob_match("*open*", "sys_enter_openat"));
        assert!(!glob_match("sys_exit_*", "sys_enter_openat"));
        assert!(glob_match("sys_enter_openat", "sys_enter_openat"));
    }

    #[test]
    fn skip_warnings_are_bpftraces() {
        assert_eq!(
            skip_warning(false, None, "blk_account_io_start"),
            "WARNING: could not attach probe kprobe:blk_account_io_start, skipping."
        );
        assert_eq!(
            skip_warning(true, Some("xfs"), "xfs_*"),
            "WARNING: could not attach probe kretprobe:xfs:xfs_*, skipping."
        );
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("openat", "opena"), 1);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
