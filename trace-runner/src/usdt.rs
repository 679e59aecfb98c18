//! USDT probes of binaries and libraries: reads the SystemTap SDT notes
//! (`.note.stapsdt`: provider, name, marker address, semaphore address, argument
//! string), turns addresses into file offsets (after the prelink adjustment against
//! `.stapsdt.base`), and finds the files a `usdt:TARGET:PROVIDER:NAME` attach point
//! names: a path (globbed), a library name, or, for an empty target or `*`, every file
//! the traced process maps (through `/proc/PID/root`, so binaries inside containers
//! are found). [`markers`] and [`maps_files`] are pure; the rest reads files.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSegment};
use trace_lang::usdt::{parse_args, UsdtLocation, UsdtProbe};

use crate::runtime::kfuncs::glob_match;

/// One marker of an SDT note, with addresses turned into file offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Marker {
    pub provider: String,
    pub name: String,
    /// File offset of the marker (what a uprobe takes).
    pub offset: u64,
    /// File offset of the semaphore, 0 for none.
    pub semaphore: u64,
    /// The argument string, e.g. `-4@%eax 8@-8(%rbp)`.
    pub args: String,
}

const NT_STAPSDT: u32 = 3;

/// The SDT markers of an ELF file's contents, in note order (empty when it has none).
pub fn markers(data: &[u8]) -> Result<Vec<Marker>, String> {
    let elf = object::File::parse(data).map_err(|e| format!("not an ELF file ({e})"))?;
    let Some(notes) = elf.section_by_name(".note.stapsdt") else {
        return Ok(Vec::new());
    };
    let notes = notes.data().map_err(|e| e.to_string())?;
    let base_section = elf.section_by_name(".stapsdt.base").map(|s| s.address());
    let little = elf.is_little_endian();
    let wide = elf.is_64();
    let u32_at = |b: &[u8], at: usize| -> Option<u32> {
        let b: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let addr_at = |b: &[u8], at: usize| -> Option<u64> {
        if wide {
            let b: [u8; 8] = b.get(at..at + 8)?.try_into().ok()?;
            Some(if little {
                u64::from_le_bytes(b)
            } else {
                u64::from_be_bytes(b)
            })
        } else {
            u32_at(b, at).map(u64::from)
        }
    };
    // Virtual address → file offset, through the loadable segments.
    let segments: Vec<(u64, u64, u64)> = elf
        .segments()
        .map(|s| (s.address(), s.size(), s.file_range().0))
        .collect();
    let file_offset = |addr: u64| -> Option<u64> {
        segments
            .iter()
            .find(|(start, size, _)| addr >= *start && addr < start + size)
            .map(|(start, _, off)| addr - start + off)
    };
    let bad = || "malformed .note.stapsdt section".to_string();
    let pad4 = |n: usize| n.div_ceil(4) * 4;
    let mut out = Vec::new();
    let mut at = 0;
    while at + 12 <= notes.len() {
        let namesz = u32_at(notes, at).ok_or_else(bad)? as usize;
        let descsz = u32_at(notes, at + 4).ok_or_else(bad)? as usize;
        let kind = u32_at(notes, at + 8).ok_or_else(bad)?;
        let name_start = at + 12;
        let desc_start = name_start
            .checked_add(pad4(namesz))
            .filter(|&d| d <= notes.len())
            .ok_or_else(bad)?;
        let desc_end = desc_start
            .checked_add(descsz)
            .filter(|&d| d <= notes.len())
            .ok_or_else(bad)?;
        let owner = &notes[name_start..name_start + namesz];
        at = desc_start + pad4(descsz);
        if kind != NT_STAPSDT || owner.strip_suffix(b"\0").unwrap_or(owner) != b"stapsdt" {
            continue;
        }
        let desc = &notes[desc_start..desc_end];
        let w = if wide { 8 } else { 4 };
        let (Some(pc), Some(base), Some(sem)) =
            (addr_at(desc, 0), addr_at(desc, w), addr_at(desc, 2 * w))
        else {
            return Err(bad());
        };
        let mut strings = desc[3 * w..].split(|&b| b == 0);
        let mut text = || {
            strings
                .next()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .ok_or_else(bad)
        };
        let (provider, name, args) = (text()?, text()?, text().unwrap_or_default());
        // Prelinked files moved: shift by how far `.stapsdt.base` moved.
        let delta = base_section.map_or(0, |b| b.wrapping_sub(base));
        let pc = pc.wrapping_add(delta);
        let sem = if sem == 0 { 0 } else { sem.wrapping_add(delta) };
        let offset = file_offset(pc).ok_or_else(|| {
            format!("marker {provider}:{name} at {pc:#x} is outside the file's segments")
        })?;
        let semaphore = if sem == 0 {
            0
        } else {
            file_offset(sem).ok_or_else(|| {
                format!("semaphore of {provider}:{name} at {sem:#x} is outside the file's segments")
            })?
        };
        out.push(Marker {
            provider,
            name,
            offset,
            semaphore,
            args,
        });
    }
    Ok(out)
}

/// The probes of one file, grouped by `provider:name` in note order; `display` is the
/// path the probes' names show, `file` the one to read and attach to.
pub fn probes_in_file(display: &str, file: &Path) -> Result<Vec<UsdtProbe>, String> {
    let data = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let found = markers(&data).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut probes: Vec<UsdtProbe> = Vec::new();
    for m in found {
        let loc = UsdtLocation {
            file: file.display().to_string(),
            offset: m.offset,
            semaphore: m.semaphore,
            args: parse_args(&m.args),
        };
        match probes
            .iter_mut()
            .find(|p| p.provider == m.provider && p.name == m.name)
        {
            Some(p) => p.locations.push(loc),
            None => probes.push(UsdtProbe {
                path: display.to_string(),
                provider: m.provider,
                name: m.name,
                locations: vec![loc],
            }),
        }
    }
    Ok(probes)
}

/// The files of a `/proc/PID/maps` text, in order of first appearance, without
/// duplicates, anonymous or deleted mappings.
pub fn maps_files(maps: &str) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for line in maps.lines() {
        let Some(path) = line.split_whitespace().nth(5) else {
            continue;
        };
        if path.starts_with('/')
            && !line.ends_with(" (deleted)")
            && !files.iter().any(|f| f == path)
        {
            files.push(path.to_string());
        }
    }
    files
}

/// Which process a `usdt:` attach point without a file searches: `-p PID`, or the
/// command of `-c` (not running yet: only its executable).
#[derive(Debug, Clone, Default)]
pub struct UsdtScope {
    pub pid: Option<u32>,
    pub command: Option<PathBuf>,
    /// The filesystems absolute uprobe and usdt paths, wildcard file names and
    /// library names name (without `-p`): the target container's, then the node's
    /// (see [`crate::uprobes::Roots`]).
    pub roots: crate::uprobes::Roots,
}

/// `(display, file)` of every file the process maps, reached through its root.
fn process_files(pid: u32) -> Result<Vec<(String, PathBuf)>, String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .map_err(|e| format!("-p {pid}: cannot read the process's maps ({e})"))?;
    Ok(maps_files(&maps)
        .into_iter()
        .map(|f| {
            let shown = format!("/proc/{pid}/root{f}");
            (shown.clone(), PathBuf::from(shown))
        })
        .collect())
}

fn is_elf_file(path: &Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && magic == *b"\x7fELF"
}

/// The files a target names: `(display, file)`.
fn target_files(target: &str, scope: &UsdtScope) -> Result<Vec<(String, PathBuf)>, String> {
    if target.is_empty() || target == "*" {
        if let Some(pid) = scope.pid {
            return process_files(pid);
        }
        if let Some(cmd) = &scope.command {
            let shown = cmd.display().to_string();
            return Ok(vec![(shown, cmd.clone())]);
        }
        return Err(format!(
            "usdt probes with {} file need -p PID or -c CMD",
            if target.is_empty() { "no" } else { "a '*'" }
        ));
    }
    if target.contains('*') || target.contains('?') {
        let (dir, pattern) = match target.rsplit_once('/') {
            Some((d, p)) => (d, p),
            None => (".", target),
        };
        if dir.contains('*') || dir.contains('?') {
            return Err(format!(
                "usdt target '{target}': wildcards are only supported in the file name"
            ));
        }
        // An absolute directory of the container or the node: its files there.
        if target.starts_with('/') && scope.roots != crate::uprobes::Roots::default() {
            let found = scope.roots.expand(target).unwrap_or_default();
            return Ok(found
                .into_iter()
                .filter(|(_, f)| is_executable(f))
                .collect());
        }
        let rd = std::fs::read_dir(if dir.is_empty() { "/" } else { dir })
            .map_err(|e| format!("usdt target '{target}': cannot read {dir}: {e}"))?;
        let mut names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| glob_match(pattern, n))
            .collect();
        names.sort();
        return Ok(names
            .into_iter()
            .map(|n| {
                let shown = if target.contains('/') {
                    format!("{dir}/{n}")
                } else {
                    n
                };
                let file = PathBuf::from(&shown);
                (shown, file)
            })
            .filter(|(_, f)| is_executable(f) && is_elf_file(f))
            .collect());
    }
    // A path of this mount namespace (see below for a traced process's); a bare
    // name is a library (`libc`) or a command on PATH.
    let local = if target.contains('/') {
        Some(PathBuf::from(target)).filter(|p| p.exists())
    } else {
        crate::uprobes::resolve_target(target).or_else(|| {
            crate::uprobes::resolve_program(target, std::env::var("PATH").ok().as_deref()).ok()
        })
    };
    // A pod's container or the node (when its root is not this process's): their file.
    // With a traced process, an absolute path is first the process's file (through its
    // root: inside a container it may differ from the one here).
    let inside = if scope.roots != crate::uprobes::Roots::default() {
        scope.roots.lookup(target, "usdt target file")?
    } else {
        scope
            .pid
            .filter(|_| target.starts_with('/'))
            .map(|pid| PathBuf::from(format!("/proc/{pid}/root{target}")))
            .filter(|p| p.exists())
    };
    let file = inside
        .or(local)
        .ok_or_else(|| format!("usdt target file '{target}' does not exist"))?;
    Ok(vec![(target.to_string(), file)])
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// The probes `usdt:TARGET:PROVIDER:NAME` matches (an empty provider matches any).
pub fn find(
    target: &str,
    provider: &str,
    name: &str,
    scope: &UsdtScope,
) -> Result<Vec<UsdtProbe>, String> {
    let files = target_files(target, scope)?;
    let whole_process = target.is_empty() || target == "*";
    let mut out = Vec::new();
    for (shown, file) in files {
        let probes = match probes_in_file(&shown, &file) {
            Ok(p) => p,
            // A process maps files that are not ELF (locale archives, caches): skipped.
            Err(_) if whole_process => continue,
            Err(e) => return Err(e),
        };
        out.extend(probes.into_iter().filter(|p| {
            (provider.is_empty() || glob_match(provider, &p.provider)) && glob_match(name, &p.name)
        }));
    }
    Ok(out)
}

/// `usdt:PATH:PROVIDER:NAME` names for listing, sorted as bpftrace sorts them, from a
/// `-l` pattern such as `usdt:./prog:*` or `*:./prog:*` (with `-p`, `usdt:*`: the files of
/// the process, whatever the target).
pub fn list(pattern: &str, pid: Option<u32>) -> Result<Vec<String>, String> {
    let parts: Vec<&str> = pattern.splitn(3, ':').collect();
    let (kind, target) = (parts[0], parts.get(1).copied().unwrap_or("*"));
    if !glob_match(kind, "usdt") {
        return Ok(Vec::new());
    }
    let whole_process = pid.is_some() && (target.is_empty() || target == "*");
    let probes = if whole_process {
        find(
            "",
            "",
            "*",
            &UsdtScope {
                pid,
                ..Default::default()
            },
        )?
    } else {
        find(
            target,
            "",
            "*",
            &UsdtScope {
                pid,
                ..Default::default()
            },
        )?
    };
    let rest = parts.get(2).copied().unwrap_or("*");
    let filter = if whole_process {
        format!("{kind}:*:{rest}")
    } else {
        format!("{kind}:{target}:{rest}")
    };
    let mut names: Vec<String> = probes
        .iter()
        .map(|p| format!("usdt:{}:{}:{}", p.path, p.provider, p.name))
        .filter(|n| glob_match(&filter, n))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_of_a_maps_text() {
        let maps = "\
00400000-00401000 r--p 00000000 08:01 123 /usr/bin/prog
00401000-00402000 r-xp 00001000 08:01 123 /usr/bin/prog
7f0000000000-7f0000001000 rw-p 00000000 00:00 0
7f0000001000-7f0000002000 r-xp 00000000 08:01 456 /lib/libc.so.6
7f0000002000-7f0000003000 r-xp 00000000 08:01 789 /tmp/gone (deleted)
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
";
        assert_eq!(maps_files(maps), vec!["/usr/bin/prog", "/lib/libc.so.6"]);
    }

    const PROG: &str = r#"
#include <sys/sdt.h>
volatile long sink;
void gated(long n);
static inline __attribute__((always_inline)) void twice(long v) {
  DTRACE_PROBE1(app, inlined, v);
}
int main(int argc, char **argv) {
  long n = argc;
  int small = (int)(n * 3);
  DTRACE_PROBE2(app, start, n, small);
  DTRACE_PROBE1(app, "quoted", 7);
  twice(n);
  twice(n + 1);
  gated(n);
  DTRACE_PROBE(other, bare);
  sink = n + small;
  return 0;
}
"#;
    /// A probe with a semaphore (every probe of a file built with `_SDT_HAS_SEMAPHORES`
    /// needs one, so it is a file of its own).
    const GATED: &str = r#"
#define _SDT_HAS_SEMAPHORES 1
#include <sys/sdt.h>
__extension__ unsigned short app_gated_semaphore __attribute__((unused))
    __attribute__((section(".probes"))) __attribute__((visibility("hidden")));
void gated(long n) {
  if (app_gated_semaphore) DTRACE_PROBE1(app, gated, n);
}
"#;

    #[test]
    fn markers_of_a_program_built_here() {
        if !crate::test_util::require_sdt_cc() {
            return;
        }
        let dir = crate::test_util::TempDir::new("usdt-notes");
        for pie in [&["-no-pie"][..], &["-fPIE", "-pie"][..]] {
            let bin = crate::test_util::build_c(&dir.0, "prog", &[PROG, GATED], pie);
            let data = std::fs::read(&bin).unwrap();
            let found = markers(&data).unwrap();
            let names: Vec<String> = found
                .iter()
                .map(|m| format!("{}:{}", m.provider, m.name))
                .collect();
            assert_eq!(
                names,
                [
                    "app:start",
                    "app:\"quoted\"",
                    "app:inlined",
                    "app:inlined",
                    "other:bare",
                    "app:gated"
                ],
                "{pie:?}"
            );
            // Every marker is a `nop` at its file offset.
            for m in &found {
                assert_eq!(data[m.offset as usize], 0x90, "{m:?} {pie:?}");
            }
            assert_ne!(found[2].offset, found[3].offset);
            // Only the gated probe has a semaphore: a zero u16 in the file.
            let gated = &found[5];
            assert_ne!(gated.semaphore, 0);
            let at = gated.semaphore as usize;
            assert_eq!(&data[at..at + 2], &[0, 0]);
            assert!(found
                .iter()
                .filter(|m| m.name != "gated")
                .all(|m| m.semaphore == 0));
            // The argument strings parse: a 64-bit and a 32-bit signed argument, a constant.
            let start = trace_lang::usdt::parse_args(&found[0].args);
            let sizes: Vec<(u8, bool)> = start
                .iter()
                .map(|a| a.as_ref().map(|a| (a.size, a.signed)).unwrap())
                .collect();
            assert_eq!(sizes, [(8, true), (4, true)], "{}", found[0].args);
            assert_eq!(
                trace_lang::usdt::parse_args(&found[1].args),
                [Ok(trace_lang::usdt::UsdtArg {
                    size: 4,
                    signed: true,
                    loc: trace_lang::usdt::ArgLocation::Const(7)
                })]
            );
            assert_eq!(found[4].args, "");
            // Grouped by probe: the inlined probe has two locations.
            let probes = probes_in_file("./prog", &bin).unwrap();
            assert_eq!(probes.len(), 5);
            assert_eq!(probes[2].name, "inlined");
            assert_eq!(probes[2].locations.len(), 2);
            assert_eq!(probes[0].path, "./prog");
        }
    }

    #[test]
    fn prelinked_files_are_shifted_by_the_base_section() {
        if !crate::test_util::require_sdt_cc() {
            return;
        }
        let dir = crate::test_util::TempDir::new("usdt-prelink");
        let bin = crate::test_util::build_c(&dir.0, "prog", &[PROG, GATED], &["-no-pie"]);
        let mut data = std::fs::read(&bin).unwrap();
        let before = markers(&data).unwrap();
        // Pretend the notes were written before a prelink moved the file by 0x1000: the
        // addresses they hold (marker, base, semaphore) are 0x1000 lower than the file's.
        let elf = object::File::parse(&*data).unwrap();
        let notes = elf.section_by_name(".note.stapsdt").unwrap();
        let (start, size) = notes.file_range().unwrap();
        drop(elf);
        let mut at = start as usize;
        while at < (start + size) as usize {
            let word =
                |d: &[u8], i: usize| u32::from_le_bytes(d[i..i + 4].try_into().unwrap()) as usize;
            let (namesz, descsz) = (word(&data, at), word(&data, at + 4));
            let desc = at + 12 + namesz.div_ceil(4) * 4;
            for field in [desc, desc + 8, desc + 16] {
                let v = u64::from_le_bytes(data[field..field + 8].try_into().unwrap());
                if v != 0 {
                    data[field..field + 8].copy_from_slice(&(v - 0x1000).to_le_bytes());
                }
            }
            at = desc + descsz.div_ceil(4) * 4;
        }
        // Shifted back by how far `.stapsdt.base` moved: the same file offsets.
        assert_eq!(markers(&data).unwrap(), before);
    }

    #[test]
    fn not_elf_is_an_error_and_no_notes_is_empty() {
        assert!(markers(b"#!/bin/sh\n")
            .unwrap_err()
            .contains("not an ELF file"));
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert_eq!(markers(&me).unwrap(), Vec::new());
    }
}
