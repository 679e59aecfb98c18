//! The kernel matrix: boots each of Debian's 6.1 and 6.12 kernels once under QEMU (TCG)
//! and runs every case of `kernel_matrix::cases::CASES` inside it (kprobe, kretprobe,
//! kstack, tracepoint with the project's trace-runner, and a kprobe with bpftrace),
//! printing the boot and run times. Without QEMU, busybox-static or the kernel package
//! it skips with a message, except under `CI=true`, where it fails.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kernel_matrix::cases::{self, Case};
use kernel_matrix::initramfs::GUEST_SHARE;
use kernel_matrix::matrix;
use kernel_matrix::vm::{self, BootOptions, Error, Scratch};

/// The trace-runner binary of this workspace, built (once per process; a no-op when it
/// is fresh) into the target directory of this test.
fn trace_runner() -> Result<PathBuf, String> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let target = vm::target_dir();
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            let release = exe
                .ancestors()
                .any(|p| p.file_name().is_some_and(|n| n == "release"));
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
            let mut cmd = std::process::Command::new(cargo);
            cmd.args(["build", "-q", "-p", "trace-runner", "--bin", "trace-runner"])
                .arg("--manifest-path")
                .arg(&manifest)
                .env("CARGO_TARGET_DIR", &target);
            if release {
                cmd.arg("--release");
            }
            let status = cmd.status().map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() {
                return Err(format!("cargo build -p trace-runner failed: {status}"));
            }
            let bin = target
                .join(if release { "release" } else { "debug" })
                .join("trace-runner");
            bin.is_file()
                .then_some(bin.clone())
                .ok_or_else(|| format!("{} is missing after the build", bin.display()))
        })
        .clone()
}

/// The cases to run: those `KERNEL_MATRIX_CASES` names (comma-separated), or all.
fn cases() -> &'static [Case] {
    static SELECTED: OnceLock<Vec<Case>> = OnceLock::new();
    SELECTED.get_or_init(|| {
        let names = std::env::var("KERNEL_MATRIX_CASES").ok();
        cases::select(names.as_deref()).unwrap_or_else(|e| panic!("{e}"))
    })
}

/// Skip (with a message) on a missing prerequisite, except under CI=true.
fn skip_or_fail(test: &str, err: Error) {
    match err {
        Error::Missing(why) if !vm::ci() => {
            eprintln!("{test}: SKIPPED: {why} (under CI=true this fails)");
        }
        Error::Missing(why) => panic!("{test}: {why} and CI=true: failing instead of skipping"),
        Error::Failed(why) => panic!("{test}: {why}"),
    }
}

/// Boot the newest kernel of `series` once, run every case inside it, print the report,
/// and fail with the failed cases' output and the console's tail if any failed.
fn run_series(series: &str) {
    let test = format!("kernel {series}");
    let run = || -> Result<matrix::Report, Error> {
        // Fail early on missing tools, before building trace-runner.
        vm::check_tools()?;
        let runner = trace_runner().map_err(Error::Failed)?;
        let workload = Path::new(env!("CARGO_BIN_EXE_km-workload"));
        let binaries = [
            ("trace-runner", runner.as_path()),
            ("km-workload", workload),
        ];
        matrix::run(series, cases(), &binaries, &BootOptions::default())
    };
    let report = match run() {
        Ok(report) => report,
        Err(e) => return skip_or_fail(&test, e),
    };
    eprint!("{report}");
    let failures = report.failures();
    assert!(
        failures.is_empty(),
        "{test}: {} of {} cases failed:\n{report}{}\n--- console tail:\n{}",
        failures.len(),
        cases().len(),
        failures.join("\n"),
        vm::tail(&report.boot.console, 20)
    );
}

/// The measurements of docs/kernel-support.md and bench/RESULTS.md
/// ([`cases::SUPPORT`]: each probe type and feature with trace-runner, each of Debian's
/// bpftrace tools with bpftrace 0.17, the attach speed of kprobe wildcards against
/// bpftrace), both kernels side by side, one boot each; prints the rows.
#[test]
#[ignore = "measurements for docs/kernel-support.md and bench/RESULTS.md (about 15 minutes)"]
fn support_table() {
    let measure = |series: &'static str| {
        std::thread::spawn(move || -> Result<matrix::Report, Error> {
            vm::check_tools()?;
            let runner = trace_runner().map_err(Error::Failed)?;
            let workload = Path::new(env!("CARGO_BIN_EXE_km-workload"));
            let binaries = [
                ("trace-runner", runner.as_path()),
                ("km-workload", workload),
            ];
            matrix::run(series, cases::SUPPORT, &binaries, &BootOptions::default())
        })
    };
    let runs = [("6.1", measure("6.1")), ("6.12", measure("6.12"))];
    let mut failures = Vec::new();
    for (series, run) in runs {
        match run.join().expect("measurement thread") {
            Ok(report) => {
                eprint!("{report}");
                for (_, out, _) in &report.cases {
                    for (name, verdict) in cases::support_rows(&out.text) {
                        println!("{series}\t{name}\t{verdict}");
                    }
                    for line in out.text.lines().filter(|l| l.starts_with("bench ")) {
                        println!("{series}\t{line}");
                    }
                }
                failures.extend(report.failures());
            }
            Err(e) => skip_or_fail(&format!("support table {series}"), e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn debian_6_1() {
    run_series("6.1");
}

#[test]
fn debian_6_12() {
    run_series("6.12");
}

/// A boot that takes too long is killed: QEMU is gone when `boot` returns, and the
/// error says so with the tail of the console.
#[test]
fn a_boot_over_its_timeout_kills_qemu() {
    let run = || -> Result<(), Error> {
        vm::check_tools()?;
        let cache = vm::cache_dir();
        let kernel = vm::fetch(&cache, &vm::choose_package("6.12", &cache)?)?;
        let share = Scratch::new("timeout")?;
        let initrd = share.path.join("initrd.cpio");
        let bytes = vm::build_initramfs(&kernel, &format!("{GUEST_SHARE}/job.sh"))?;
        std::fs::write(&initrd, bytes).map_err(|e| Error::Failed(e.to_string()))?;
        let opts = BootOptions {
            boot_timeout: std::time::Duration::from_secs(1),
            ..BootOptions::default()
        };
        let err = vm::boot(&kernel, &initrd, &share.path, &opts).unwrap_err();
        let Error::Failed(message) = err else {
            panic!("expected a failure, got {err:?}");
        };
        // "QEMU killed after N s" (N is 1 unless this machine stalls for seconds).
        assert!(
            message.contains("QEMU killed after ")
                && message.contains(" s: took too long to boot; console tail:"),
            "{message}"
        );
        // No process is left with this run's initrd on its command line.
        let needle = initrd.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&cmdline).contains(&needle),
                "QEMU still runs: {}",
                entry.path().display()
            );
        }
        Ok(())
    };
    if let Err(e) = run() {
        skip_or_fail("boot timeout", e);
    }
}
