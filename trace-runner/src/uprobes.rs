//! Uprobe targets: finds the file behind a library name (`libssl` →
//! `/usr/lib/x86_64-linux-gnu/libssl.so.3`) and whether a symbol is defined in it
//! (`.symtab` or `.dynsym`), so that attach points of missing functions are skipped
//! with a warning, as bpftrace does, instead of failing the whole script.

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
    let prefix = if target.contains(".so") {
        target.to_string()
    } else {
        format!("{target}.so")
    };
    for dir in LIB_DIRS {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n == &prefix || n.starts_with(&format!("{prefix}.")))
            // `libc.so` is often a linker script: only ELF files are libraries.
            .filter(|n| is_elf(&Path::new(dir).join(n)))
            .collect();
        names.sort();
        if let Some(n) = names.first() {
            return Some(Path::new(dir).join(n));
        }
    }
    None
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

/// `Some(Err(warning))` when the target or the symbol is missing (the probe is
/// skipped), `None` when the target cannot be read.
pub fn exists(target: &str, symbol: &str) -> Option<Result<(), String>> {
    let Some(file) = resolve_target(target) else {
        return Some(Err(format!(
            "warning: uprobe target '{target}' not found; its probes are skipped"
        )));
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
