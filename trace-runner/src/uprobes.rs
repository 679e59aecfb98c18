//! Uprobe targets: finds the file behind a library name (`libssl` →
//! `/usr/lib/x86_64-linux-gnu/libssl.so.3`) and whether a symbol is defined in it
//! (`.symtab` or `.dynsym`), so that attach points of missing functions are skipped
//! with a warning, as bpftrace does, instead of failing the whole script. It also
//! resolves the forms of a uprobe's location bpftrace accepts (`func`, `func+OFFSET`,
//! an address) to a function and an offset in it. A trace's absolute paths, wildcard
//! file names and library names name the files of the target container, else of the
//! node ([`Roots`]), whose roots the runner (in its own image) reaches through
//! `HOST_PROC`: they are resolved inside a root, symbolic links included
//! ([`resolve_in_root`]).

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};

const LIB_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// The file a uprobe target names: a path as is, a library name searched in the
/// usual directories (`libc` → `libc.so.6`).
pub fn resolve_target(target: &str) -> Option<PathBuf> {
    if target.contains('/') {
        return Path::new(target).exists().then(|| PathBuf::from(target));
    }
    find_library(target, |p| Some(PathBuf::from(p)))
}

/// The library `name` names (`libc` → `libc.so.6`) in the first of [`LIB_DIRS`] that
/// holds one: its lowest file name `NAME.so` or `NAME.so.*` that is an ELF file. `reach`
/// turns a path of the filesystem searched into one this process reads (`None`: absent).
fn find_library(name: &str, reach: impl Fn(&str) -> Option<PathBuf>) -> Option<PathBuf> {
    for dir in LIB_DIRS {
        let Some(Ok(rd)) = reach(dir).map(std::fs::read_dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| soname_matches(name, n))
            .collect();
        names.sort();
        // `libc.so` is often a linker script: only ELF files are libraries.
        if let Some(file) = names
            .iter()
            .filter_map(|n| reach(&format!("{dir}/{n}")))
            .find(|f| is_elf(f))
        {
            return Some(file);
        }
    }
    None
}

/// The library `name` names in the filesystem whose root this process reaches as
/// `root`, links followed inside it ([`resolve_in_root`]): the first ELF file its
/// `/etc/ld.so.cache` lists under a matching soname (`NAME.so`, `NAME.so.*`), as its
/// dynamic loader finds it, else [`find_library`] in its library directories.
fn library_in_root(name: &str, root: &Path) -> Option<PathBuf> {
    let reach = |p: &str| resolve_in_root(root, p);
    let cache = reach("/etc/ld.so.cache").and_then(|f| std::fs::read(f).ok());
    let cached = cache
        .map(|data| crate::ld_cache::entries(&data))
        .unwrap_or_default()
        .into_iter()
        .filter(|(soname, _)| soname_matches(name, soname))
        .find_map(|(_, path)| reach(&path).filter(|f| is_elf(f)));
    cached.or_else(|| find_library(name, reach))
}

/// Whether a library file name (or soname) is one the library name `name` names:
/// `libc` names `libc.so` and `libc.so.*`, `libc.so.6` names itself and `libc.so.6.*`.
fn soname_matches(name: &str, file: &str) -> bool {
    let prefix = if name.contains(".so") {
        name.to_string()
    } else {
        format!("{name}.so")
    };
    file == prefix || file.starts_with(&format!("{prefix}."))
}

/// `path` (absolute) inside the filesystem whose root this process reaches as `root`
/// (`/proc/PID/root` of a container's process), as that filesystem's processes see it:
/// symbolic links are followed within it (an absolute link restarts at `root`, `..`
/// stops at it) instead of escaping to this process's files, as the kernel's path walk
/// through `root` would make them. `None` when the file does not exist there.
pub fn resolve_in_root(root: &Path, path: &str) -> Option<PathBuf> {
    use std::path::Component;
    let mut todo: Vec<std::ffi::OsString> = Vec::new();
    let push_all = |todo: &mut Vec<std::ffi::OsString>, p: &Path| {
        let parts: Vec<_> = p
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some("..".into()),
                _ => None,
            })
            .collect();
        todo.extend(parts.into_iter().rev());
    };
    push_all(&mut todo, Path::new(path));
    let mut done: Vec<std::ffi::OsString> = Vec::new();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        if part == ".." {
            done.pop();
            continue;
        }
        let here = done.iter().fold(root.to_path_buf(), |p, c| p.join(c));
        let next = here.join(&part);
        let meta = std::fs::symlink_metadata(&next).ok()?;
        if !meta.file_type().is_symlink() {
            done.push(part);
            continue;
        }
        links += 1;
        if links > 40 {
            return None; // ELOOP
        }
        let target = std::fs::read_link(&next).ok()?;
        if target.is_absolute() {
            done.clear();
        }
        push_all(&mut todo, &target);
    }
    let found = done.iter().fold(root.to_path_buf(), |p, c| p.join(c));
    found.exists().then_some(found)
}

/// The filesystems a trace's file names (uprobe and usdt targets, `--uprobe-target`)
/// are looked up in, as this process reaches their roots: the target container's
/// (`HOST_PROC/PID/root`, pod traces), then the node's (`HOST_PROC/1/root`; `None` when
/// that is this process's own root, as when the runner runs on the machine itself).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roots {
    pub container: Option<PathBuf>,
    pub node: Option<PathBuf>,
}

impl Roots {
    /// The roots a trace looks in, the node's through `host_proc` (see [`node_root`]).
    pub fn new(container: Option<PathBuf>, host_proc: &Path) -> Roots {
        Roots {
            container,
            node: node_root(host_proc),
        }
    }

    fn each(&self) -> impl Iterator<Item = &PathBuf> {
        self.container.iter().chain(self.node.iter())
    }

    /// Where the file `path` names is read and attached: an absolute path is the
    /// container's file when the container has it, else the node's; so is a library
    /// name (`libssl`), searched in the container's `/etc/ld.so.cache` and library
    /// directories, then the node's. `Ok(None)` keeps the path as it is: a path under `/proc/`
    /// (`/proc/$container_pid/exe`), a relative path, a library no root has (it is
    /// skipped with a warning later), and any path when there is no root to look in.
    /// An absolute path in no root is an error: `what` (`uprobe target`) names it.
    pub fn lookup(&self, path: &str, what: &str) -> Result<Option<PathBuf>, String> {
        if !path.contains('/') {
            return Ok(self.each().find_map(|root| library_in_root(path, root)));
        }
        if !path.starts_with('/') || path.starts_with("/proc/") {
            return Ok(None);
        }
        if let Some(found) = self.each().find_map(|root| resolve_in_root(root, path)) {
            return Ok(Some(found));
        }
        let here = self.node.is_none() && Path::new(path).exists();
        match (&self.container, &self.node) {
            (None, None) => Ok(None),
            (Some(_), None) if here => Ok(None),
            (Some(c), None) => Err(format!(
                "{what} '{path}' does not exist in the target container (looked in {}) nor on this node",
                c.display()
            )),
            (Some(c), Some(n)) => Err(format!(
                "{what} '{path}' does not exist in the target container (looked in {}) nor on this node (looked in {})",
                c.display(),
                n.display()
            )),
            (None, Some(n)) => Err(format!(
                "{what} '{path}' does not exist on this node (looked in {})",
                n.display()
            )),
        }
    }

    /// The ELF files a target with `*` wildcards in its file name matches
    /// (`/usr/bin/ap*`), sorted, each as `(name shown, file to read and attach)`: an
    /// absolute directory is the container's when it has it, else the node's (links
    /// followed inside that root, the matched files' too); a relative one, or any
    /// without roots, is this process's. `None` when the target has no wildcard in
    /// its file name (or has one in its directory).
    pub fn expand(&self, target: &str) -> Option<Vec<(String, PathBuf)>> {
        let wild = |s: &str| s.contains('*');
        let (dir, name) = target.rsplit_once('/').unwrap_or((".", target));
        if !wild(name) || wild(dir) {
            return None;
        }
        let shown_dir = if dir.is_empty() { "/" } else { dir };
        let in_roots = if target.starts_with('/') && !target.starts_with("/proc/") {
            self.each()
                .find_map(|root| Some((root, resolve_in_root(root, shown_dir)?)))
        } else {
            None
        };
        let listed = match &in_roots {
            Some((_, d)) => d.clone(),
            None => PathBuf::from(shown_dir),
        };
        let Ok(rd) = std::fs::read_dir(&listed) else {
            return Some(Vec::new());
        };
        let mut found: Vec<(String, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                if !trace_lang::glob::glob_match(name, &n) {
                    return None;
                }
                let shown = format!("{dir}/{n}");
                let file = match &in_roots {
                    Some((root, _)) => resolve_in_root(root, &shown)?,
                    None => e.path(),
                };
                Some((shown, file))
            })
            .filter(|(_, p)| p.is_file() && is_elf(p))
            .collect();
        found.sort();
        Some(found)
    }
}

/// The node's root as this process reaches it: `HOST_PROC/1/root`, or `None` when that
/// is this process's own root (the same directory), or cannot be read.
pub fn node_root(host_proc: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let root = host_proc.join("1").join("root");
    let theirs = std::fs::metadata(&root).ok()?;
    let ours = std::fs::metadata("/").ok()?;
    let same = (theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino());
    (!same).then_some(root)
}

/// The files a uprobe target names, each with the name it is shown under: a file name
/// with `*` wildcards (`./testprogs/uprobe*`) matches the ELF files of its directory,
/// sorted; any other target is [`resolve_target`].
pub fn resolve_targets(target: &str) -> Vec<(String, PathBuf)> {
    Roots::default().expand(target).unwrap_or_else(|| {
        resolve_target(target)
            .map(|f| vec![(target.to_string(), f)])
            .unwrap_or_default()
    })
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
}

/// Whether the ELF file defines a function a uprobe's last part names: `func` or
/// `func+OFFSET` (`*` wildcards in `func`), or any address (checked when the
/// probe attaches). An unreadable file defines nothing.
pub fn defines(file: &Path, function: &str) -> bool {
    match parse_location(function) {
        Location::Address(_) => true,
        Location::Symbol(name) | Location::Offset(name, _) => functions(file)
            .is_ok_and(|all| all.iter().any(|f| trace_lang::glob::glob_match(name, f))),
    }
}

/// Whether `symbol` is defined in the ELF file (`None` if the file cannot be read).
pub fn symbol_defined(file: &Path, symbol: &str) -> Option<bool> {
    let data = std::fs::read(file).ok()?;
    let elf = object::File::parse(&*data).ok()?;
    let found = elf.symbols().chain(elf.dynamic_symbols()).any(|s| {
        s.is_definition()
            && s.name()
                .is_ok_and(|n| n == symbol || n.split('@').next() == Some(symbol))
    });
    Some(found)
}

/// The address and size of a symbol an ELF executable defines (`.symtab` or
/// `.dynsym`), where that address is where it is in every process: not for a
/// position-independent file (a PIE or a library), whose load address varies.
pub fn fixed_symbol_address(file: &Path, symbol: &str) -> Option<(u64, u64)> {
    let data = std::fs::read(file).ok()?;
    let elf = object::File::parse(&*data).ok()?;
    if elf.kind() != object::ObjectKind::Executable {
        return None;
    }
    elf.symbols()
        .chain(elf.dynamic_symbols())
        .find(|s| {
            s.is_definition()
                && s.name()
                    .is_ok_and(|n| n == symbol || n.split('@').next() == Some(symbol))
        })
        .map(|s| (s.address(), s.size()))
}

/// The functions an ELF file defines (`.symtab` and `.dynsym`), sorted, for
/// `trace-runner list 'uprobe:PATH:*'`.
pub fn functions(file: &Path) -> Result<Vec<String>, String> {
    let data = std::fs::read(file).map_err(|e| e.to_string())?;
    let elf = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let mut names: Vec<String> = elf
        .symbols()
        .chain(elf.dynamic_symbols())
        .filter(|s| s.is_definition() && s.kind() == object::SymbolKind::Text)
        .filter_map(|s| {
            s.name()
                .ok()
                .map(|n| n.split('@').next().unwrap_or(n).to_string())
        })
        .filter(|n| !n.is_empty())
        .collect();
    names.sort_unstable();
    names.dedup();
    Ok(names)
}

/// Where a uprobe attach point's last part puts the probe, as bpftrace reads it.
#[derive(Debug, PartialEq, Eq)]
pub enum Location<'a> {
    /// `func`: the function's entry.
    Symbol(&'a str),
    /// `func+N` (or `"func"+N`): N bytes into the function.
    Offset(&'a str, u64),
    /// `N` or `0xN`: a virtual address in the file.
    Address(u64),
}

fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        None => None,
    }
}

/// Reads `func`, `func+N` and an address (decimal or `0x` hex).
pub fn parse_location(s: &str) -> Location<'_> {
    if let Some(a) = parse_number(s) {
        return Location::Address(a);
    }
    match s.rsplit_once('+') {
        Some((func, off)) if !func.is_empty() => match parse_number(off) {
            Some(off) => Location::Offset(func, off),
            None => Location::Symbol(s),
        },
        _ => Location::Symbol(s),
    }
}

/// A function symbol: name, address and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FuncSym {
    pub name: String,
    pub address: u64,
    pub size: u64,
}

/// The function symbols (`.symtab` and `.dynsym`) an ELF file defines.
pub fn function_symbols(file: &Path) -> Result<Vec<FuncSym>, String> {
    let data = std::fs::read(file).map_err(|e| e.to_string())?;
    let elf = object::File::parse(&*data).map_err(|e| e.to_string())?;
    Ok(elf
        .symbols()
        .chain(elf.dynamic_symbols())
        .filter(|s| s.is_definition() && s.kind() == object::SymbolKind::Text)
        .filter_map(|s| {
            let name = s.name().ok()?;
            Some(FuncSym {
                name: name.split('@').next().unwrap_or(name).to_string(),
                address: s.address(),
                size: s.size(),
            })
        })
        .collect())
}

/// The function and the offset in it where a uprobe goes, given the file's function
/// symbols; `shown` is the target as the script names it (for bpftrace's messages).
pub fn resolve_location(
    symbols: &[FuncSym],
    shown: &str,
    loc: &Location,
) -> Result<(String, u64), String> {
    match *loc {
        Location::Symbol(name) => Ok((name.to_string(), 0)),
        Location::Offset(name, off) => {
            match symbols.iter().find(|s| s.name == name) {
                Some(s) if s.size > 0 && off >= s.size => Err(format!(
                    "Offset outside the function bounds ('{name}' size is {})",
                    s.size
                )),
                // A symbol missing here is reported by the attach as before.
                _ => Ok((name.to_string(), off)),
            }
        }
        Location::Address(a) => symbols
            .iter()
            .filter(|s| s.address <= a && a < s.address.saturating_add(s.size.max(1)))
            .min_by_key(|s| a - s.address)
            .map(|s| (s.name.clone(), a - s.address))
            .ok_or_else(|| format!("Could not resolve address: {shown}:{a:#x}")),
    }
}

/// [`resolve_location`] for the file behind `target`.
pub fn attach_location(target: &str, symbol: &str) -> Result<(String, u64), String> {
    let loc = parse_location(symbol);
    if let Location::Symbol(name) = loc {
        return Ok((name.to_string(), 0));
    }
    let file =
        resolve_target(target).ok_or_else(|| format!("uprobe target '{target}' not found"))?;
    let symbols =
        function_symbols(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    resolve_location(&symbols, target, &loc)
}

/// `Some(Err(warning))` when the target or the symbol is missing (the probe is
/// skipped), `None` when the target cannot be read.
pub fn exists(target: &str, symbol: &str) -> Option<Result<(), String>> {
    let Some(file) = resolve_target(target) else {
        return Some(Err(format!(
            "warning: uprobe target '{target}' not found; its probes are skipped"
        )));
    };
    let symbol = match parse_location(symbol) {
        Location::Symbol(name) | Location::Offset(name, _) => name,
        // An address is resolved (or refused) when the probe attaches.
        Location::Address(_) => return Some(Ok(())),
    };
    if !symbol_defined(&file, symbol)? {
        return Some(Err(format!(
            "warning: symbol '{symbol}' not found in {} (no debug symbols?); uprobe:{target}:{symbol} is skipped",
            file.display()
        )));
    }
    Some(Ok(()))
}

/// The program `-c` names: a path (with a `/`) as is, else searched in `$PATH`.
pub fn resolve_program(name: &str, path_var: Option<&str>) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let not_found = || format!("path '{name}' does not exist or is not executable");
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(not_found())
        };
    }
    let dirs = path_var.unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    dirs.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(name))
        .find(|p| executable(p))
        .ok_or_else(not_found)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake container root under a temp dir, removed on drop.
    struct Root(PathBuf);
    impl Drop for Root {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn fake_root(tag: &str) -> Root {
        let root =
            std::env::temp_dir().join(format!("trace-runner-root-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("usr/bin")).unwrap();
        std::fs::create_dir_all(root.join("opt/app/bin")).unwrap();
        std::fs::write(root.join("opt/app/bin/app"), b"app").unwrap();
        std::fs::write(root.join("usr/bin/plain"), b"plain").unwrap();
        Root(root)
    }

    /// A pod trace's lookup on a node whose root is this process's.
    fn in_container(path: &str, root: &Path) -> Result<Option<PathBuf>, String> {
        let roots = Roots {
            container: Some(root.to_path_buf()),
            node: None,
        };
        roots.lookup(path, "uprobe target")
    }

    #[test]
    fn links_in_a_container_root_stay_in_it() {
        use std::os::unix::fs::symlink;
        let r = fake_root("links");
        let root = &r.0;
        // Absolute links restart at the container's root, not at this process's.
        symlink("/opt/app/bin/app", root.join("usr/bin/app")).unwrap();
        symlink("../../opt/app/bin/app", root.join("usr/bin/rel")).unwrap();
        symlink("/usr/bin", root.join("bin")).unwrap();
        symlink("../../../../../../opt/app/bin/app", root.join("usr/bin/up")).unwrap();
        symlink("loop", root.join("usr/bin/loop")).unwrap();
        let app = root.join("opt/app/bin/app");
        assert_eq!(resolve_in_root(root, "/usr/bin/app"), Some(app.clone()));
        assert_eq!(resolve_in_root(root, "/usr/bin/rel"), Some(app.clone()));
        assert_eq!(resolve_in_root(root, "/bin/app"), Some(app.clone()));
        assert_eq!(resolve_in_root(root, "/usr/bin/up"), Some(app.clone()));
        assert_eq!(
            resolve_in_root(root, "/usr/bin/plain"),
            Some(root.join("usr/bin/plain"))
        );
        assert_eq!(resolve_in_root(root, "/usr/bin/none"), None);
        assert_eq!(resolve_in_root(root, "/usr/bin/loop"), None);
    }

    #[test]
    fn a_pod_targets_paths_are_the_containers_first() {
        let r = fake_root("pod");
        let root = &r.0;
        // The container's file wins even where this node has one of the same name.
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/sh"), b"inside").unwrap();
        assert_eq!(in_container("/bin/sh", root), Ok(Some(root.join("bin/sh"))));
        assert_eq!(
            in_container("/usr/bin/plain", root),
            Ok(Some(root.join("usr/bin/plain")))
        );
        // Only on this node: the node's file.
        assert!(Path::new("/proc/self/exe").exists());
        let exe = std::env::current_exe().unwrap();
        let exe = exe.to_str().unwrap();
        assert!(!root.join(exe.trim_start_matches('/')).exists());
        assert_eq!(in_container(exe, root), Ok(None));
        // /proc paths and library names are not the container's files.
        assert_eq!(in_container("/proc/1/exe", root), Ok(None));
        assert_eq!(in_container("./app", root), Ok(None));
        // Nowhere: one line naming both places.
        let e = in_container("/usr/bin/nowhere-at-all", root).unwrap_err();
        assert!(
            e.starts_with(
                "uprobe target '/usr/bin/nowhere-at-all' does not exist in the target container"
            ),
            "{e}"
        );
        assert!(
            e.contains(&root.display().to_string()) && !e.contains('\n'),
            "{e}"
        );
    }

    #[test]
    fn a_pod_targets_library_names_are_its_libraries_first() {
        use std::os::unix::fs::symlink;
        let r = fake_root("libs");
        let root = &r.0;
        // /lib is a link to usr/lib, as on merged-/usr systems.
        std::fs::create_dir_all(root.join("usr/lib")).unwrap();
        symlink("usr/lib", root.join("lib")).unwrap();
        std::fs::write(root.join("usr/lib/libfoo.so"), b"GROUP ( libfoo.so.1 )").unwrap();
        std::fs::write(root.join("usr/lib/libfoo.so.1"), b"\x7fELF...").unwrap();
        std::fs::write(root.join("opt/libbar.so.2.0"), b"\x7fELF...").unwrap();
        symlink("/opt/libbar.so.2.0", root.join("usr/lib/libbar.so.2")).unwrap();
        assert_eq!(
            in_container("libfoo", root),
            Ok(Some(root.join("usr/lib/libfoo.so.1")))
        );
        assert_eq!(
            in_container("libbar.so.2", root),
            Ok(Some(root.join("opt/libbar.so.2.0")))
        );
        // Not the container's: the node's search, as without a pod.
        assert_eq!(in_container("libnothere", root), Ok(None));
    }

    #[test]
    fn a_node_traces_paths_are_the_nodes_files() {
        use std::os::unix::fs::symlink;
        let r = fake_root("node");
        let node = Roots {
            container: None,
            node: Some(r.0.clone()),
        };
        let root = &r.0;
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        symlink("/usr/lib", root.join("lib")).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libz.so.1"), b"\x7fELF").unwrap();
        symlink("/opt/app/bin/app", root.join("usr/bin/app")).unwrap();
        let lookup = |p: &str| node.lookup(p, "uprobe target");
        assert_eq!(
            lookup("/usr/bin/app"),
            Ok(Some(root.join("opt/app/bin/app")))
        );
        assert_eq!(
            lookup("libz"),
            Ok(Some(root.join("usr/lib/x86_64-linux-gnu/libz.so.1")))
        );
        // This process's files are not the node's: its own executable is nowhere.
        let exe = std::env::current_exe().unwrap();
        let e = lookup(exe.to_str().unwrap()).unwrap_err();
        assert_eq!(
            e,
            format!(
                "uprobe target '{}' does not exist on this node (looked in {})",
                exe.display(),
                root.display()
            )
        );
        assert_eq!(lookup("libnothere"), Ok(None));
        assert_eq!(lookup("/proc/1/exe"), Ok(None));
        assert_eq!(lookup("./app"), Ok(None));
        // Without a root of another filesystem, nothing moves.
        assert_eq!(
            Roots::default().lookup("/usr/bin/nowhere-at-all", "uprobe target"),
            Ok(None)
        );
    }

    #[test]
    fn a_pod_trace_falls_back_to_the_nodes_files() {
        let (c, n) = (fake_root("pod2"), fake_root("node2"));
        std::fs::write(n.0.join("usr/bin/onnode"), b"node").unwrap();
        std::fs::write(n.0.join("usr/bin/plain"), b"node's plain").unwrap();
        let roots = Roots {
            container: Some(c.0.clone()),
            node: Some(n.0.clone()),
        };
        let lookup = |p: &str| roots.lookup(p, "usdt target file");
        assert_eq!(
            lookup("/usr/bin/plain"),
            Ok(Some(c.0.join("usr/bin/plain")))
        );
        assert_eq!(
            lookup("/usr/bin/onnode"),
            Ok(Some(n.0.join("usr/bin/onnode")))
        );
        let e = lookup("/usr/bin/nowhere-at-all").unwrap_err();
        assert_eq!(
            e,
            format!(
                "usdt target file '/usr/bin/nowhere-at-all' does not exist in the target container (looked in {}) nor on this node (looked in {})",
                c.0.display(),
                n.0.display()
            )
        );
    }

    #[test]
    fn wildcard_file_names_expand_inside_a_root() {
        use std::os::unix::fs::symlink;
        let (c, n) = (fake_root("globc"), fake_root("globn"));
        let elf = b"\x7fELF...";
        std::fs::write(c.0.join("usr/bin/app1"), elf).unwrap();
        std::fs::write(c.0.join("opt/app/bin/real"), elf).unwrap();
        symlink("/opt/app/bin/real", c.0.join("usr/bin/app2")).unwrap();
        std::fs::write(c.0.join("usr/bin/apscript"), b"#!/bin/sh").unwrap();
        std::fs::create_dir_all(n.0.join("sbin")).unwrap();
        std::fs::write(n.0.join("sbin/apnode"), elf).unwrap();
        std::fs::write(n.0.join("usr/bin/apnode"), elf).unwrap();
        let roots = Roots {
            container: Some(c.0.clone()),
            node: Some(n.0.clone()),
        };
        // The container has /usr/bin: its files only, links followed inside it.
        assert_eq!(
            roots.expand("/usr/bin/ap*"),
            Some(vec![
                ("/usr/bin/app1".into(), c.0.join("usr/bin/app1")),
                ("/usr/bin/app2".into(), c.0.join("opt/app/bin/real")),
            ])
        );
        // It has no /sbin: the node's.
        assert_eq!(
            roots.expand("/sbin/ap*de"),
            Some(vec![("/sbin/apnode".into(), n.0.join("sbin/apnode"))])
        );
        assert_eq!(roots.expand("/nowhere/ap*"), Some(Vec::new()));
        // No wildcard in the file name: not a pattern.
        assert_eq!(roots.expand("/usr/bin/app1"), None);
        assert_eq!(roots.expand("/usr/*/app1"), None);
        // Without roots, this process's directory.
        let here = std::env::current_exe().unwrap();
        let dir = here.parent().unwrap();
        let name = here.file_name().unwrap().to_str().unwrap();
        let rel = format!("{}/{name}*", dir.display());
        let found = Roots::default().expand(&rel).unwrap();
        assert!(found.iter().any(|(_, f)| f == &here), "{found:?}");
    }

    #[test]
    fn wildcard_matches_keep_the_files_that_define_the_function() {
        let me = std::env::current_exe().unwrap();
        assert!(defines(&me, "main"));
        assert!(defines(&me, "ma*n+4"));
        assert!(defines(&me, "mai*"));
        assert!(!defines(&me, "no_such_function_here"));
        // An address is checked at attach time; a file that is not ELF defines nothing.
        assert!(defines(&me, "0x1000"));
        let r = fake_root("defines");
        assert!(!defines(&r.0.join("usr/bin/plain"), "main"));
    }

    #[test]
    fn library_names_follow_the_roots_ld_so_cache_first() {
        use std::os::unix::fs::symlink;
        let r = fake_root("ldcache");
        let root = &r.0;
        let elf = b"\x7fELF...";
        // A vendor directory only the cache knows, and a library both have: the
        // cache's copy wins, as the dynamic loader's would.
        std::fs::create_dir_all(root.join("opt/vendor/lib")).unwrap();
        std::fs::create_dir_all(root.join("usr/lib/x86_64-linux-gnu")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("opt/vendor/lib/libvend.so.1"), elf).unwrap();
        std::fs::write(root.join("opt/vendor/lib/libboth.so.2"), elf).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libboth.so.2"), elf).unwrap();
        std::fs::write(root.join("usr/lib/x86_64-linux-gnu/libdirs.so.3"), elf).unwrap();
        // Absolute links inside the root: /lib, and the cache's path of libgone.
        symlink("/usr/lib", root.join("lib")).unwrap();
        let native = crate::ld_cache::tests::native();
        let cache = crate::ld_cache::tests::cache(&[
            (native, "libvend.so.1", "/opt/vendor/lib/libvend.so.1"),
            (native, "libboth.so.2", "/opt/vendor/lib/libboth.so.2"),
            (native, "libgone.so.1", "/opt/vendor/lib/libgone.so.1"),
        ]);
        std::fs::write(root.join("etc/ld.so.cache"), cache).unwrap();
        assert_eq!(
            library_in_root("libvend", root),
            Some(root.join("opt/vendor/lib/libvend.so.1"))
        );
        assert_eq!(
            library_in_root("libboth.so.2", root),
            Some(root.join("opt/vendor/lib/libboth.so.2"))
        );
        // Listed but not there, or not listed: the library directories.
        assert_eq!(library_in_root("libgone", root), None);
        assert_eq!(
            library_in_root("libdirs", root),
            Some(root.join("usr/lib/x86_64-linux-gnu/libdirs.so.3"))
        );
        assert!(soname_matches("libc", "libc.so.6") && soname_matches("libc", "libc.so"));
        assert!(!soname_matches("libc", "libcrypt.so.1"));
        assert!(
            soname_matches("libc.so.6", "libc.so.6") && !soname_matches("libc.so.6", "libc.so.7")
        );
    }

    #[test]
    fn the_nodes_root_is_pid_1s_unless_it_is_this_processs() {
        let r = fake_root("proc");
        let proc = r.0.join("proc");
        std::fs::create_dir_all(proc.join("1")).unwrap();
        std::os::unix::fs::symlink(r.0.join("opt"), proc.join("1/root")).unwrap();
        assert_eq!(node_root(&proc), Some(proc.join("1/root")));
        std::fs::remove_file(proc.join("1/root")).unwrap();
        std::os::unix::fs::symlink("/", proc.join("1/root")).unwrap();
        assert_eq!(node_root(&proc), None);
        // Unreadable: this process's root.
        assert_eq!(node_root(&r.0.join("none")), None);
    }

    fn sym(name: &str, address: u64, size: u64) -> FuncSym {
        FuncSym {
            name: name.into(),
            address,
            size,
        }
    }

    #[test]
    fn locations_parse_as_bpftrace_reads_them() {
        assert_eq!(parse_location("main"), Location::Symbol("main"));
        assert_eq!(
            parse_location("echo_builtin+0"),
            Location::Offset("echo_builtin", 0)
        );
        assert_eq!(parse_location("f+0x10"), Location::Offset("f", 16));
        assert_eq!(parse_location("10"), Location::Address(10));
        assert_eq!(
            parse_location("0x0000000000401126"),
            Location::Address(0x401126)
        );
        assert_eq!(parse_location("operator+"), Location::Symbol("operator+"));
        assert_eq!(parse_location("a+b"), Location::Symbol("a+b"));
    }

    #[test]
    fn offsets_and_addresses_resolve_to_a_function() {
        let syms = [sym("f", 0x1000, 0x20), sym("g", 0x1020, 0x10)];
        let r = |s: &str| resolve_location(&syms, "/bin/x", &parse_location(s));
        assert_eq!(r("f+4"), Ok(("f".into(), 4)));
        assert_eq!(
            r("f+32"),
            Err("Offset outside the function bounds ('f' size is 32)".into())
        );
        assert_eq!(r("0x1024"), Ok(("g".into(), 4)));
        assert_eq!(r("4128"), Ok(("g".into(), 0)));
        assert_eq!(r("10"), Err("Could not resolve address: /bin/x:0xa".into()));
    }
}
