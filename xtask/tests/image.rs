//! Builds the runner image archive with `cargo xtask image` and checks it with real
//! tools: `skopeo inspect` (as `oci-archive:` and `docker-archive:`), `skopeo copy`
//! into an OCI layout, `umoci unpack`, and finally runs the unpacked binary in a
//! chroot of the image's root file system.
//!
//! To keep the test fast it packs an existing trace-runner binary (`TRACE_RUNNER_BIN`,
//! or the debug build next to this test, built on demand) instead of a release build;
//! a debug build is dynamic, so this also covers the shared-library path.
//! skopeo and umoci are Debian packages; without them the test is skipped, except
//! under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("JSON output")
}

/// `TRACE_RUNNER_BIN`, else `target/debug/trace-runner` (built if missing).
fn runner_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TRACE_RUNNER_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    // This test runs as target/<profile>/deps/image-<hash>.
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary in target/<profile>/deps");
    let bin = profile_dir.join("trace-runner");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut cmd = Command::new(cargo);
        cmd.current_dir(workspace)
            .args(["build", "-p", "trace-runner"]);
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        run(&mut cmd);
    }
    assert!(bin.is_file(), "{} was not built", bin.display());
    bin
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

#[test]
fn image_archive_is_accepted_by_skopeo_and_umoci() {
    let missing: Vec<_> = ["skopeo", "umoci"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !missing.is_empty() {
        let msg = format!(
            "{} not installed (apt-get install -y skopeo umoci)",
            missing.join(" and ")
        );
        assert!(!in_ci(), "{msg}: required under CI=true");
        eprintln!("skipping: {msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("trace-runner-image.tar");
    // A private copy: target/debug/trace-runner may be rebuilt while the test runs.
    let bin = dir.path().join("trace-runner");
    std::fs::copy(runner_binary(), &bin).unwrap();
    let out = run(Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "image",
            "--fast",
            "--tag",
            "ghcr.io/kubectl-trace/trace-runner:test",
            "--bin",
        ])
        .arg(&bin)
        .arg("--out")
        .arg(&archive));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("archive:"), "{report}");
    eprintln!("{report}");

    let oci_ref = format!("oci-archive:{}", archive.display());
    let docker_ref = format!("docker-archive:{}", archive.display());

    // skopeo reads both views of the archive.
    let info = json(&run(Command::new("skopeo").args(["inspect", &oci_ref])));
    assert_eq!(info["Architecture"], "amd64");
    assert_eq!(info["Os"], "linux");
    assert_eq!(info["Layers"].as_array().map(Vec::len), Some(1), "{info}");
    let config = json(&run(
        Command::new("skopeo").args(["inspect", "--config", &oci_ref])
    ));
    assert_eq!(
        config["config"]["Entrypoint"],
        serde_json::json!(["/usr/local/bin/trace-runner"])
    );
    let dinfo = json(&run(Command::new("skopeo").args(["inspect", &docker_ref])));
    // docker-archive names layers by their uncompressed digest (the diff_id).
    assert_eq!(
        dinfo["Layers"], config["rootfs"]["diff_ids"],
        "both views hold the same layer"
    );
    assert_eq!(dinfo["Architecture"], "amd64");
    let layout = dir.path().join("layout");
    run(Command::new("skopeo")
        .args(["copy", "-q", &docker_ref])
        .arg(format!("oci:{}:from-docker", layout.display())));

    // umoci unpacks the image as a runtime bundle.
    run(Command::new("skopeo")
        .args(["copy", "-q", &oci_ref])
        .arg(format!("oci:{}:test", layout.display())));
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:test", layout.display()))
        .arg(&bundle)
        .args(if is_root() {
            &[][..]
        } else {
            &["--rootless"][..]
        }));
    let rootfs = bundle.join("rootfs");
    let unpacked = rootfs.join("usr/local/bin/trace-runner");
    assert!(
        xtask::sha256_digest(&std::fs::read(&unpacked).unwrap())
            == xtask::sha256_digest(&std::fs::read(&bin).unwrap()),
        "the binary in the unpacked image differs from the one packed"
    );
    let runtime: Value =
        serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        runtime["process"]["args"],
        serde_json::json!(["/usr/local/bin/trace-runner"])
    );

    // The image's root file system is enough to run the binary (its shared libraries
    // are in the layer when it is dynamic).
    if is_root() {
        let out = run(Command::new("chroot")
            .arg(&rootfs)
            .args(["/usr/local/bin/trace-runner", "--version"]));
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("trace-runner "));
    } else {
        eprintln!("not root: skipping the chroot run");
    }
}
