//! `cargo xtask release` end to end, on its fast path: it packs an already-built binary
//! (`--bin TRIPLE=PATH`; the xtask binary stands in for the plugin, an x86-64 ELF like
//! it) instead of building the plugin in release mode, and writes the archive, its sum
//! and the krew manifest with the release URI, which it validates. Then the files are
//! checked from outside: the sum is the archive's, the archive holds the binary and
//! LICENSE, the manifest names the archive by its release URI.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use xtask::release;

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("run xtask")
}

fn host_is_x86_64_linux() -> bool {
    cfg!(all(target_arch = "x86_64", target_os = "linux"))
}

#[test]
fn release_packs_a_given_binary_and_writes_a_valid_krew_manifest() {
    assert!(
        host_is_x86_64_linux(),
        "this test packs the xtask binary as x86_64-unknown-linux-gnu"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    let bin = env!("CARGO_BIN_EXE_xtask");
    let o = xtask(&[
        "release",
        "--out",
        out.to_str().unwrap(),
        &format!("--bin=x86_64-unknown-linux-gnu={bin}"),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.contains("valid: 1 platform(s), sums checked"),
        "{stdout}"
    );

    let version = env!("CARGO_PKG_VERSION");
    let file = format!("kubectl-trace_v{version}_linux_amd64.tar.gz");
    let archive = std::fs::read(out.join(&file)).unwrap();
    let sha = release::sha256_hex(&archive);
    assert_eq!(
        std::fs::read_to_string(out.join("sha256sums.txt")).unwrap(),
        format!("{sha}  {file}\n")
    );

    // The archive: the binary as given (executable) and the repository's LICENSE.
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&archive[..]));
    let mut entries = Vec::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let name = e.path().unwrap().display().to_string();
        let mode = e.header().mode().unwrap();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        entries.push((name, mode, data));
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0].0, "kubectl-trace");
    assert_eq!(entries[0].1, 0o755);
    assert!(entries[0].2 == std::fs::read(bin).unwrap());
    assert_eq!(entries[1].0, "LICENSE");
    assert_eq!(entries[1].2, std::fs::read(root.join("LICENSE")).unwrap());

    // The manifest, read as YAML from outside the task.
    let text = std::fs::read_to_string(out.join("trace.yaml")).unwrap();
    let m: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    assert_eq!(
        m["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(m["kind"], "Plugin");
    assert_eq!(m["metadata"]["name"], "trace");
    assert_eq!(m["spec"]["version"], format!("v{version}"));
    let platforms = m["spec"]["platforms"].as_array().unwrap();
    assert_eq!(platforms.len(), 1);
    let p = &platforms[0];
    assert_eq!(p["selector"]["matchLabels"]["os"], "linux");
    assert_eq!(p["selector"]["matchLabels"]["arch"], "amd64");
    assert_eq!(
        p["uri"],
        format!(
            "{}/releases/download/v{version}/{file}",
            env!("CARGO_PKG_REPOSITORY")
        )
    );
    assert_eq!(p["sha256"], sha);
    assert_eq!(p["bin"], "kubectl-trace");
    // The texts come from the repository's manifest.
    let repo_manifest: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(root.join("manifests/plugins/trace.yaml")).unwrap(),
    )
    .unwrap();
    for f in ["shortDescription", "description", "caveats", "homepage"] {
        assert_eq!(m["spec"][f], repo_manifest["spec"][f], "spec.{f}");
    }

    // Packing twice gives the same bytes (fixed mtime, owner and modes).
    let again = xtask(&[
        "release",
        "--out",
        out.to_str().unwrap(),
        &format!("--bin=x86_64-unknown-linux-gnu={bin}"),
    ]);
    assert!(again.status.success());
    assert_eq!(std::fs::read(out.join(&file)).unwrap(), archive);
}

#[test]
fn release_refuses_a_binary_of_another_architecture_and_bad_options() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("dist");
    // An x86-64 binary offered as the arm64 one.
    let o = xtask(&[
        "release",
        "--out",
        out.to_str().unwrap(),
        "--bin",
        &format!("aarch64-unknown-linux-gnu={}", env!("CARGO_BIN_EXE_xtask")),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(
        err.contains("is a linux/amd64 binary, not one for aarch64-unknown-linux-gnu"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(!out.join("trace.yaml").exists());
    for (args, want) in [
        (
            vec!["release", "--bin", "nopath"],
            "--bin needs TRIPLE=PATH",
        ),
        (
            vec!["release", "--target", "x86_64-pc-windows-msvc"],
            "windows archives are zip files",
        ),
        (
            vec!["release", "--frobnicate"],
            "unknown option '--frobnicate'",
        ),
    ] {
        let o = xtask(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}
