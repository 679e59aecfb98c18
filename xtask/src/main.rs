//! `cargo xtask`: repository tasks (see `cargo xtask help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xtask::binary::{self, BuildOptions};
use xtask::human_size;
use xtask::oci::{self, ImageSpec};

const USAGE: &str = "\
usage: cargo xtask <task>

tasks:
  image [--target TRIPLE] [--out PATH] [--bin PATH] [--tag REPO:TAG] [--dynamic] [--fast]
      Build trace-runner in release mode (static: musl if that target is installed,
      else glibc with +crt-static, else dynamic with its shared libraries) and write
      a one-layer OCI image archive that is also a docker-archive.
        --target   x86_64-unknown-linux-musl | x86_64-unknown-linux-gnu | ...
                   (default: musl when installed, gnu otherwise)
        --out      archive path (default: target/trace-runner-image.tar)
        --bin      use this trace-runner binary instead of building (also TRACE_RUNNER_BIN)
        --tag      image reference (default: ghcr.io/kubectl-trace/trace-runner:VERSION)
        --dynamic  skip the static glibc attempt
        --fast     gzip level 1 instead of 9
      Load it with: docker load -i PATH | podman load -i PATH |
        kind load image-archive PATH | skopeo copy oci-archive:PATH docker://REGISTRY/...
  help
      This text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("image") => image(&args[1..]),
        Some("help" | "--help" | "-h") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown task '{other}'\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn image(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut target = None;
    let mut out = target_dir.join("trace-runner-image.tar");
    let mut bin = std::env::var_os("TRACE_RUNNER_BIN")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut reference = format!("{}:{}", oci::DEFAULT_REPOSITORY, env!("CARGO_PKG_VERSION"));
    let mut dynamic = false;
    let mut gzip_level = 9;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (a.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--target" => target = Some(value()?),
            "--out" | "-o" => out = PathBuf::from(value()?),
            "--bin" => bin = Some(PathBuf::from(value()?)),
            "--tag" => reference = value()?,
            "--dynamic" => dynamic = true,
            "--fast" => gzip_level = 1,
            _ => return Err(format!("unknown option '{a}' for image\n\n{USAGE}")),
        }
    }

    let bin = match bin {
        Some(b) => {
            eprintln!("xtask: using {}", b.display());
            b
        }
        None => {
            let target = match target {
                Some(t) => t,
                None => {
                    binary::default_target(&binary::host_triple()?, &binary::installed_targets())
                }
            };
            binary::build(&BuildOptions {
                workspace: root,
                target_dir,
                target,
                dynamic,
            })?
        }
    };
    let elf = binary::elf_info(&bin)?;
    let libs = if elf.is_static() {
        Vec::new()
    } else {
        binary::shared_libs(&bin)?
    };
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let version = reference
        .rsplit_once(':')
        .map_or("latest", |(_, t)| t)
        .to_string();
    let spec = ImageSpec {
        binary: bin.clone(),
        libs,
        arch: elf.arch.clone(),
        reference,
        version,
        epoch,
        gzip_level,
    };
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    let report = oci::write_archive(&spec, &out)?;
    oci::verify_archive(&out)?;

    let bin_size = std::fs::metadata(&bin).map(|m| m.len()).unwrap_or(0);
    println!("image:     {}", spec.reference);
    println!(
        "archive:   {} ({})",
        out.display(),
        human_size(report.archive_size)
    );
    println!(
        "binary:    {} ({}, {}, linux/{})",
        bin.display(),
        human_size(bin_size),
        if spec.libs.is_empty() {
            "static".to_string()
        } else {
            format!("dynamic + {} shared libraries", spec.libs.len())
        },
        spec.arch
    );
    for lib in &spec.libs {
        println!("           + {}", lib.image_path);
    }
    println!(
        "layer:     {} compressed, {} uncompressed",
        human_size(report.layer_size),
        human_size(report.layer_uncompressed)
    );
    println!("manifest:  {}", report.manifest_digest);
    println!("config:    {}", report.config_digest);
    Ok(())
}
