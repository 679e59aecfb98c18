//! Uprobe targets: finds the file behind a library name (`libssl` →
//! `/usr/lib/x86_64-linux-gnu/libssl.so.3`) and whether a symbol is defined in it
//! (`.symtab` or `.dynsym`), so that attach points of missing functions are skipped
//! with a warning, as bpftrace does, instead of failing the whole script. It also
//! resolves the forms of a uprobe's location bpftrace accepts (`func`, `func+OFFSET`,
//! an address) to a function and an offset in it. With a pod target, an absolute path
//! names a file of the target container ([`in_container`]): it is resolved inside the
//! container's root, its symbolic links included ([`resolve_in_root`]).

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
    let prefix = if name.contains(".so") {
        name.to_string()
    } else {
        format!("{name}.so")
    };
    for dir in LIB_DIRS {
        let Some(Ok(rd)) = reach(dir).map(std::fs::read_dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}.")))
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

/// [`find_library`] in the filesystem whose root this process reaches as `root`, links
/// followed inside it ([`resolve_in_root`]).
fn library_in_root(name: &str, root: &Path) -> Option<PathBuf> {
    find_library(name, |p| resolve_in_root(root, p))
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

/// Where an attach point's file is read and attached in a trace of a pod's container
/// whose root this process reaches as `root` (`HOST_PROC/PID/root`): an absolute path
/// is the container's file when the container has it, else this node's; so is a
/// library name (`libssl`), searched in the container's library directories first. A
/// path under `/proc/` (`/proc/$container_pid/exe`) and a relative path are left as
/// they are (`Ok(None)`: keep the path). An absolute path in neither place is an error
/// (a library in neither is skipped with a warning later, as without a pod).
pub fn in_container(path: &str, root: &Path) -> Result<Option<PathBuf>, String> {
    if !path.contains('/') {
        return Ok(library_in_root(path, root));
    }
    if !path.starts_with('/') || path.starts_with("/proc/") {
        return Ok(None);
    }
    if let Some(inside) = resolve_in_root(root, path) {
        return Ok(Some(inside));
    }
    if Path::new(path).exists() {
        return Ok(None);
    }
    Err(format!(
        "uprobe target '{path}' does not exist in the target container (looked in {}) nor on this node",
        root.display()
    ))
}

/// The files a uprobe target names, each with the name it is shown under: a file name
/// with `*` wildcards (`./testprogs/uprobe*`) matches the ELF files of its directory,
/// sorted; any other target is [`resolve_target`].
pub fn resolve_targets(target: &str) -> Vec<(String, PathBuf)> {
    let (dir, name) = target.rsplit_once('/').unwrap_or((".", target));
    if !name.contains('*') || dir.contains('*') {
        return resolve_target(target)
            .map(|f| vec![(target.to_string(), f)])
            .unwrap_or_default();
    }
    let Ok(rd) = std::fs::read_dir(if dir.is_empty() { "/" } else { dir }) else {
        return Vec::new();
    };
    let mut found: Vec<(String, PathBuf)> = rd
        .flatten()
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            trace_lang::glob::glob_match(name, &n).then(|| (format!("{dir}/{n}"), e.path()))
        })
        .filter(|(_, p)| p.is_file() && is_elf(p))
        .collect();
    found.sort();
    found
}

fn is_elf(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && magic == *b"\x7fELF"
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
