//! One kernel of the matrix, end to end: check the tools, choose and fetch the newest
//! package of a series, fill a scratch share with the binaries, the job and the cases,
//! build the initramfs, boot once, and judge every case's results ([`run`]); plus the
//! report of a run ([`Report`], a table of cases with their times and verdicts).

use std::path::Path;
use std::time::{Duration, Instant};

use crate::cases::{self, Case, CaseOutput, Verdict};
use crate::initramfs::GUEST_SHARE;
use crate::vm::{self, BootOptions, Error, Scratch};

/// What one kernel's run gave.
#[derive(Debug, Clone)]
pub struct Report {
    pub package: String,
    /// Choosing, fetching (when not cached), and writing the share and the initramfs.
    pub prepare_time: Duration,
    pub boot: vm::Boot,
    /// Each case's name, output and verdict, in order.
    pub cases: Vec<(&'static str, CaseOutput, Verdict)>,
}

impl Report {
    /// The cases that failed, each with its reason and the tail of its output.
    pub fn failures(&self) -> Vec<String> {
        self.cases
            .iter()
            .filter_map(|(name, out, verdict)| {
                let Verdict::Failed(e) = verdict else {
                    return None;
                };
                Some(format!("--- {name}: {e}\n{}", vm::tail(&out.text, 40)))
            })
            .collect()
    }
}

impl std::fmt::Display for Report {
    /// A summary line with the times, then one line per case.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{}: prepared in {:.1} s, booted in {:.1} s, QEMU ran {:.1} s, job exit {}",
            self.package,
            self.prepare_time.as_secs_f64(),
            self.boot.boot_time.as_secs_f64(),
            self.boot.total_time.as_secs_f64(),
            self.boot.status
        )?;
        for (name, out, verdict) in &self.cases {
            let time = out
                .millis
                .map_or("-".into(), |ms| format!("{:.1} s", ms as f64 / 1000.0));
            let verdict = match verdict {
                Verdict::Pass => "ok".to_string(),
                Verdict::Skipped(why) => format!("skipped: {why}"),
                Verdict::Failed(e) => format!("FAILED: {e}"),
            };
            writeln!(f, "  {name:<24} {time:>8}  {verdict}")?;
        }
        Ok(())
    }
}

/// Put `from` at `to`: a hard link when they share a file system, else a copy.
fn place(from: &Path, to: &Path) -> Result<(), Error> {
    std::fs::hard_link(from, to)
        .or_else(|_| std::fs::copy(from, to).map(drop))
        .map_err(|e| Error::Failed(format!("{} -> {}: {e}", from.display(), to.display())))
}

/// Boot the newest kernel of `series` (`6.1`, `6.12`) once and run `cases` inside it.
/// `binaries` (name, path) are placed in the share's `bin/`, which the guest sees as
/// `/tmp/kmatrix/bin/NAME`. Errors are a missing prerequisite, or a boot that failed
/// (timeout, no result); failed cases are in the report.
pub fn run(
    series: &str,
    cases: &'static [Case],
    binaries: &[(&str, &Path)],
    opts: &BootOptions,
) -> Result<Report, Error> {
    let started = Instant::now();
    vm::check_tools()?;
    let cache = vm::cache_dir();
    let package = vm::choose_package(series, &cache)?;
    let kernel = vm::fetch(&cache, &package)?;
    vm::prune(&cache, series, &package);
    let share = Scratch::new(&format!("kernel-{series}"))?;
    let io = |e: std::io::Error| Error::Failed(format!("{}: {e}", share.path.display()));
    std::fs::create_dir_all(share.path.join("bin")).map_err(io)?;
    for (name, path) in binaries {
        place(path, &share.path.join("bin").join(name))?;
    }
    cases::write_job(&share.path, cases).map_err(io)?;
    let initrd = share.path.join("initrd.cpio");
    let bytes = vm::build_initramfs(&kernel, &format!("{GUEST_SHARE}/job.sh"))?;
    std::fs::write(&initrd, bytes).map_err(io)?;
    let prepare_time = started.elapsed();

    let boot = vm::boot(&kernel, &initrd, &share.path, opts)?;
    if boot.guest_release != kernel.release {
        return Err(Error::Failed(format!(
            "{package}: the guest runs {} instead of {}",
            boot.guest_release, kernel.release
        )));
    }
    let outputs = cases::read_results(&share.path, cases);
    let cases = cases
        .iter()
        .zip(outputs)
        .map(|(case, out)| {
            let verdict = cases::evaluate(case, &out, vm::ci());
            (case.name, out, verdict)
        })
        .collect();
    Ok(Report {
        package,
        prepare_time,
        boot,
        cases,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_a_summary_line_and_a_line_per_case() {
        let out = |millis, text: &str| CaseOutput {
            status: Some(0),
            text: text.into(),
            millis,
        };
        let report = Report {
            package: "linux-image-6.1.0-57-amd64".into(),
            prepare_time: Duration::from_millis(7600),
            boot: vm::Boot {
                console: String::new(),
                guest_release: "6.1.0-57-amd64".into(),
                status: 0,
                boot_time: Duration::from_millis(43_800),
                total_time: Duration::from_millis(118_300),
            },
            cases: vec![
                ("kprobe_count", out(Some(4000), "@: 1000\n"), Verdict::Pass),
                (
                    "bpftrace",
                    out(Some(10), "SKIP: no\n"),
                    Verdict::Skipped("no".into()),
                ),
                (
                    "tracepoint_count",
                    out(None, "a\nb\n@: 7\n"),
                    Verdict::Failed("bad".into()),
                ),
            ],
        };
        assert_eq!(
            report.to_string(),
            "linux-image-6.1.0-57-amd64: prepared in 7.6 s, booted in 43.8 s, QEMU ran 118.3 s, job exit 0\n\
             \x20 kprobe_count                4.0 s  ok\n\
             \x20 bpftrace                    0.0 s  skipped: no\n\
             \x20 tracepoint_count                -  FAILED: bad\n"
        );
        assert_eq!(report.failures(), ["--- tracepoint_count: bad\na\nb\n@: 7"]);
    }
}
