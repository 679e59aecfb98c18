//! `cargo xtask`: repository tasks (see `cargo xtask help`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use xtask::binary::{self, BuildOptions};
use xtask::human_size;
use xtask::oci::{self, ImageSpec};
use xtask::release::{self, Archive, TargetPlatform};

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
  release [--out DIR] [--target TRIPLE]... [--bin TRIPLE=PATH]...
      Build kubectl-trace in release mode for each target (default: every installed
      rustup target that krew has a platform for; the host's at least), pack
      kubectl-trace_vVERSION_OS_ARCH.tar.gz (the binary and LICENSE) for each, and write
      sha256sums.txt and the krew manifest trace.yaml (from manifests/plugins/trace.yaml,
      with the release URIs under the repository's releases/download/vVERSION/ and the
      archives' sums) to DIR; then validate the manifest against krew's plugin schema
      and each sha256 against the archive it names.
        --out      directory (default: target/release-artifacts)
        --target   a target triple to build and pack (repeatable)
        --bin      pack this already-built binary for TRIPLE instead of building it
  help
      This text.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("image") => image(&args[1..]),
        Some("release") => release(&args[1..]),
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

/// `cargo xtask release`: archives, sums and the krew manifest, validated.
fn release(args: &[String]) -> Result<(), String> {
    let root = workspace_root();
    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let mut out = target_dir.join("release-artifacts");
    let mut targets: Vec<String> = Vec::new();
    let mut bins: Vec<(String, PathBuf)> = Vec::new();
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
            "--out" | "-o" => out = PathBuf::from(value()?),
            "--target" => targets.push(value()?),
            "--bin" => {
                let v = value()?;
                let (triple, path) = v
                    .split_once('=')
                    .filter(|(t, p)| !t.is_empty() && !p.is_empty())
                    .ok_or_else(|| format!("--bin needs TRIPLE=PATH, not '{v}'"))?;
                bins.push((triple.to_string(), PathBuf::from(path)));
            }
            _ => return Err(format!("unknown option '{a}' for release\n\n{USAGE}")),
        }
    }
    for (t, _) in &bins {
        if !targets.contains(t) {
            targets.push(t.clone());
        }
    }
    if targets.is_empty() {
        let host = binary::host_triple()?;
        targets = binary::installed_targets()
            .into_iter()
            .filter(|t| TargetPlatform::of(t).is_ok())
            .collect();
        if !targets.contains(&host) {
            targets.insert(0, host);
        }
    }
    let platforms = targets
        .iter()
        .map(|t| TargetPlatform::of(t))
        .collect::<Result<Vec<_>, _>>()?;
    let version = env!("CARGO_PKG_VERSION");
    let repository = env!("CARGO_PKG_REPOSITORY");
    let template_path = root.join("manifests/plugins/trace.yaml");
    let template_text = std::fs::read_to_string(&template_path)
        .map_err(|e| format!("cannot read {}: {e}", template_path.display()))?;
    let template =
        release::parse(&template_text).map_err(|e| format!("{}: {e}", template_path.display()))?;
    let license =
        std::fs::read(root.join("LICENSE")).map_err(|e| format!("cannot read LICENSE: {e}"))?;
    let epoch = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;

    let mut archives = Vec::new();
    for p in platforms {
        let bin = match bins.iter().find(|(t, _)| *t == p.triple) {
            Some((_, b)) => b.clone(),
            None => build_plugin(&root, &target_dir, &p.triple)?,
        };
        if p.os == "linux" {
            let elf = binary::elf_info(&bin)?;
            if elf.arch != p.arch {
                return Err(format!(
                    "{} is a linux/{} binary, not one for {} (linux/{})",
                    bin.display(),
                    elf.arch,
                    p.triple,
                    p.arch
                ));
            }
        }
        let data =
            std::fs::read(&bin).map_err(|e| format!("cannot read {}: {e}", bin.display()))?;
        let file = p.archive_name(version);
        let sha256 = release::write_archive(
            &out.join(&file),
            &[(release::BIN, &data, 0o755), ("LICENSE", &license, 0o644)],
            epoch,
        )?;
        println!(
            "archive:   {} ({})",
            out.join(&file).display(),
            human_size(
                std::fs::metadata(out.join(&file))
                    .map(|m| m.len())
                    .unwrap_or(0)
            )
        );
        println!("           sha256 {sha256}  from {}", bin.display());
        archives.push(Archive {
            platform: p,
            file,
            sha256,
        });
    }
    let sums = out.join("sha256sums.txt");
    std::fs::write(&sums, release::sha256sums(&archives))
        .map_err(|e| format!("cannot write {}: {e}", sums.display()))?;
    let manifest = release::manifest(&template, repository, version, &archives);
    let manifest_path = out.join("trace.yaml");
    std::fs::write(&manifest_path, release::render(&manifest)?)
        .map_err(|e| format!("cannot write {}: {e}", manifest_path.display()))?;

    // Validate what was written, as krew will read it.
    let written = std::fs::read_to_string(&manifest_path)
        .map_err(|e| format!("cannot read {}: {e}", manifest_path.display()))?;
    let parsed =
        release::parse(&written).map_err(|e| format!("{}: {e}", manifest_path.display()))?;
    release::validate(&parsed, &|file: &str| {
        (!file.is_empty() && !file.contains(['/', '\\']))
            .then(|| release::read_archive(&out.join(file)).ok())
            .flatten()
    })
    .map_err(|errs| {
        format!(
            "{} is not valid:\n  {}",
            manifest_path.display(),
            errs.join("\n  ")
        )
    })?;
    println!("sums:      {}", sums.display());
    println!(
        "manifest:  {} (valid: {} platform(s), sums checked)",
        manifest_path.display(),
        parsed.spec.platforms.len()
    );
    Ok(())
}

/// `cargo build --release -p kubectl-trace --target TRIPLE`; the binary's path.
fn build_plugin(root: &Path, target_dir: &Path, triple: &str) -> Result<PathBuf, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("xtask: cargo build --release -p kubectl-trace --target {triple}");
    let status = std::process::Command::new(cargo)
        .current_dir(root)
        .args([
            "build",
            "--release",
            "-p",
            "kubectl-trace",
            "--target",
            triple,
        ])
        .env("CARGO_TARGET_DIR", target_dir)
        .status()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !status.success() {
        return Err(format!(
            "cargo build --release -p kubectl-trace --target {triple} failed: {status}"
        ));
    }
    let exe = if triple.contains("windows") {
        "kubectl-trace.exe"
    } else {
        "kubectl-trace"
    };
    Ok(target_dir.join(triple).join("release").join(exe))
}
