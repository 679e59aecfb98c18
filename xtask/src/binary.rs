//! Building trace-runner for the image and finding what it needs at run time.
//!
//! Preference order for `cargo xtask image`:
//! 1. `<arch>-unknown-linux-musl` when that target is installed (static by default);
//! 2. `<arch>-unknown-linux-gnu` with `-C target-feature=+crt-static` (static glibc,
//!    needs `libc.a`, i.e. Debian's `libc6-dev`);
//! 3. a dynamic gnu build; the image then carries the shared libraries that `ldd`
//!    reports (the loader, libc, libgcc_s, ...).
//!
//! Whatever was built, [`elf_info`] reads the ELF headers to tell static from
//! dynamic and the machine (amd64/arm64), so a binary given with `--bin` is
//! handled the same way.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The crate whose binary goes into the image.
pub const PACKAGE: &str = "trace-runner";

/// What the ELF headers say about a binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    /// OCI architecture name (`amd64`, `arm64`, ...).
    pub arch: String,
    /// The program interpreter (`PT_INTERP`), `None` for a static binary.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    /// No program interpreter: runs on an empty root file system.
    pub fn is_static(&self) -> bool {
        self.interpreter.is_none()
    }
}

/// Reads the ELF header and program headers of a 64-bit little-endian binary.
pub fn elf_info(path: &Path) -> Result<ElfInfo, String> {
    let data = fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_elf(&data).map_err(|e| format!("{}: {e}", path.display()))
}

fn parse_elf(data: &[u8]) -> Result<ElfInfo, String> {
    let u16_at = |o: usize| data.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    let u32_at = |o: usize| {
        data.get(o..o + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    };
    let u64_at = |o: usize| {
        data.get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    };
    if data.get(..4) != Some(b"\x7fELF") {
        return Err("not an ELF file".into());
    }
    if data[4] != 2 || data[5] != 1 {
        return Err("only 64-bit little-endian ELF is supported".into());
    }
    let bad = || "truncated ELF header".to_string();
    let arch = match u16_at(0x12).ok_or_else(bad)? {
        62 => "amd64",
        183 => "arm64",
        243 => "riscv64",
        m => return Err(format!("unsupported ELF machine {m}")),
    };
    let phoff = u64_at(0x20).ok_or_else(bad)? as usize;
    let phentsize = u16_at(0x36).ok_or_else(bad)? as usize;
    let phnum = u16_at(0x38).ok_or_else(bad)? as usize;
    let mut interpreter = None;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        const PT_INTERP: u32 = 3;
        if u32_at(ph).ok_or_else(bad)? == PT_INTERP {
            let off = u64_at(ph + 8).ok_or_else(bad)? as usize;
            let size = u64_at(ph + 32).ok_or_else(bad)? as usize;
            let raw = data.get(off..off + size).ok_or_else(bad)?;
            let s = String::from_utf8_lossy(raw)
                .trim_end_matches('\0')
                .to_string();
            interpreter = Some(s);
        }
    }
    Ok(ElfInfo {
        arch: arch.to_string(),
        interpreter,
    })
}

/// A shared library to place in the image: where it goes and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedLib {
    /// Absolute path inside the image (as the loader looks for it).
    pub image_path: String,
    /// The file on this machine (symlinks are followed when reading).
    pub source: PathBuf,
}

/// The shared libraries `ldd` resolves for `bin`, the program interpreter included.
pub fn shared_libs(bin: &Path) -> Result<Vec<SharedLib>, String> {
    let out = Command::new("ldd")
        .arg(bin)
        .output()
        .map_err(|e| format!("cannot run ldd (needed for a dynamic binary): {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ldd {} failed: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let mut libs = parse_ldd(&String::from_utf8_lossy(&out.stdout));
    if let Some(interp) = elf_info(bin)?.interpreter {
        if !libs.iter().any(|l| l.image_path == interp) {
            libs.push(SharedLib {
                source: PathBuf::from(&interp),
                image_path: interp,
            });
        }
    }
    Ok(libs)
}

/// Parses `ldd` output: `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` and
/// `/lib64/ld-linux-x86-64.so.2 (0x...)`; the vDSO has no file and is skipped.
pub fn parse_ldd(text: &str) -> Vec<SharedLib> {
    let mut libs = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let path = match line.split_once("=>") {
            Some((_, rest)) => rest.split_whitespace().next(),
            None => line.split_whitespace().next(),
        };
        if let Some(p) = path.filter(|p| p.starts_with('/')) {
            if !libs.iter().any(|l: &SharedLib| l.image_path == p) {
                libs.push(SharedLib {
                    image_path: p.to_string(),
                    source: PathBuf::from(p),
                });
            }
        }
    }
    libs
}

/// The host's target triple (`rustc -vV`).
pub fn host_triple() -> Result<String, String> {
    let out = Command::new(rustc())
        .arg("-vV")
        .output()
        .map_err(|e| format!("cannot run rustc: {e}"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| "rustc -vV printed no host triple".to_string())
}

/// Targets installed with rustup (empty when rustup is absent).
pub fn installed_targets() -> Vec<String> {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// musl for the host's architecture when installed, gnu otherwise.
pub fn default_target(host: &str, installed: &[String]) -> String {
    let arch = host.split('-').next().unwrap_or("x86_64");
    let musl = format!("{arch}-unknown-linux-musl");
    if installed.contains(&musl) {
        musl
    } else {
        format!("{arch}-unknown-linux-gnu")
    }
}

fn rustc() -> String {
    std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into())
}

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// Workspace root (where `cargo build` runs).
    pub workspace: PathBuf,
    /// Cargo's target directory.
    pub target_dir: PathBuf,
    /// Target triple.
    pub target: String,
    /// Do not attempt a static glibc build.
    pub dynamic: bool,
}

/// Builds trace-runner in release mode for `opts.target` and returns the binary's path.
///
/// For a gnu target a static (`+crt-static`) build is tried first; if it fails, a
/// dynamic build follows (the caller then adds the shared libraries).
pub fn build(opts: &BuildOptions) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let run = |static_glibc: bool| -> Result<(), String> {
        let mut cmd = Command::new(&cargo);
        cmd.current_dir(&opts.workspace)
            .args([
                "build",
                "--release",
                "-p",
                PACKAGE,
                "--target",
                &opts.target,
            ])
            .env("CARGO_TARGET_DIR", &opts.target_dir);
        if static_glibc {
            let var = format!(
                "CARGO_TARGET_{}_RUSTFLAGS",
                opts.target.to_uppercase().replace(['-', '.'], "_")
            );
            let mut flags = std::env::var(&var).unwrap_or_default();
            flags.push_str(" -C target-feature=+crt-static");
            cmd.env(var, flags.trim());
        }
        eprintln!(
            "xtask: cargo build --release -p {PACKAGE} --target {}{}",
            opts.target,
            if static_glibc {
                " (static glibc: +crt-static)"
            } else {
                ""
            }
        );
        let status = cmd
            .status()
            .map_err(|e| format!("cannot run {cargo}: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("cargo build failed ({status})"))
        }
    };
    let gnu = opts.target.contains("-gnu");
    if gnu && !opts.dynamic {
        if let Err(e) = run(true) {
            eprintln!("xtask: static glibc build failed ({e}); building a dynamic binary instead");
            run(false)?;
        }
    } else {
        run(false)?;
    }
    let bin = opts
        .target_dir
        .join(&opts.target)
        .join("release")
        .join(PACKAGE);
    if !bin.is_file() {
        return Err(format!("build finished but {} is missing", bin.display()));
    }
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ldd_output() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f3c)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f3c)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f3c)\n";
        let paths: Vec<_> = parse_ldd(text).into_iter().map(|l| l.image_path).collect();
        assert_eq!(
            paths,
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }

    #[test]
    fn picks_musl_only_when_installed() {
        let host = "x86_64-unknown-linux-gnu";
        assert_eq!(
            default_target(host, &[host.to_string()]),
            "x86_64-unknown-linux-gnu"
        );
        let both = [host.to_string(), "x86_64-unknown-linux-musl".to_string()];
        assert_eq!(default_target(host, &both), "x86_64-unknown-linux-musl");
    }

    #[test]
    fn reads_this_test_binary() {
        let me = std::env::current_exe().unwrap();
        let info = elf_info(&me).unwrap();
        #[cfg(target_arch = "x86_64")]
        assert_eq!(info.arch, "amd64");
        #[cfg(all(target_env = "gnu", not(target_feature = "crt-static")))]
        assert!(info.interpreter.is_some());
    }

    #[test]
    fn rejects_non_elf() {
        assert!(parse_elf(b"#!/bin/sh\n").is_err());
    }
}
