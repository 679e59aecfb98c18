//! The checks the kernel matrix runs inside each kernel, all in one boot: [`CASES`], a
//! list of (name, bash snippet run in the guest, check of its output and exit status);
//! the job script that runs them one after the other, each under a timeout, writing
//! `cases/NN-NAME.{out,status,ms}` into the share; and reading those results back.
//!
//! To add a check, add a [`Case`]: its script runs with bash in the guest's chroot (the
//! host's root, read-only, with a fresh tmpfs `/tmp`), after `guest.sh` (helpers such as
//! `trace_while`) is sourced, with `$TRACE_RUNNER`, `$WORKLOAD`, `$CALLS`, `$BPFTRACE`
//! and `$BPF_SCRIPTS` (the bundled scripts' directory) set; its check gets everything
//! the script printed (stdout and stderr) and its status.

use std::path::Path;

use crate::initramfs::GUEST_SHARE;

/// How many times the workload calls getppid(2).
pub const CALLS: u64 = 1000;

/// The bundled scripts' directory (this machine's root is the guest's).
pub const BPF_SCRIPTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../bpf-scripts");

/// The shell helpers every case may use (sourced first).
pub const HELPERS: &str = include_str!("guest.sh");

/// Seconds a case may run in the guest before it is killed.
pub const CASE_TIMEOUT_SECS: u32 = 240;

/// What a case printed, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseOutput {
    /// The exit status, or `None` when the case left no status (the guest stopped first).
    pub status: Option<i32>,
    /// stdout and stderr.
    pub text: String,
    /// How long it ran in the guest.
    pub millis: Option<u64>,
}

/// One check run inside each kernel.
#[derive(Clone, Copy)]
pub struct Case {
    /// A short name (letters, digits, `_`), unique in [`CASES`].
    pub name: &'static str,
    /// The bash snippet run in the guest.
    pub script: &'static str,
    /// Whether its output is right; `Err` says what is wrong.
    pub check: fn(&CaseOutput) -> Result<(), String>,
}

/// The checks, in the order they run.
pub const CASES: &[Case] = &[
    Case {
        name: "kprobe_count",
        script: r#"trace_while "$TRACE_RUNNER" run -e 'kprobe:__x64_sys_getppid /comm == "km-workload"/ { @ = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| expect_maps(out, &[format!("@: {CALLS}")]),
    },
    Case {
        name: "kretprobe_retval",
        script: r#"trace_while "$TRACE_RUNNER" run -e 'kretprobe:__x64_sys_getppid /comm == "km-workload"/ { @[retval] = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| {
            let ppid = workload_ppid(&out.text)?;
            expect_maps(out, &[format!("@[{ppid}]: {CALLS}")])
        },
    },
    Case {
        name: "kprobe_kstack",
        script: r#"trace_while "$TRACE_RUNNER" run -e 'kprobe:__x64_sys_getppid /comm == "km-workload"/ { @[kstack] = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| {
            expect_status(out)?;
            expect_stacks(&out.text, "__x64_sys_getppid", &["do_syscall_64"], CALLS)
        },
    },
    Case {
        name: "tracepoint_count",
        script: r#"trace_while "$TRACE_RUNNER" run -e 'tracepoint:syscalls:sys_enter_getppid /comm == "km-workload"/ { @ = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| expect_maps(out, &[format!("@: {CALLS}")]),
    },
    Case {
        name: "kprobe_wildcards",
        // One run (each start costs seconds under emulation): vfs_fsync_range and
        // vfs_fsync match vfs_fsync*, but fsync(2) calls only the first (vfs_fsync is
        // inlined into do_fsync on Debian's 6.1 and 6.12); vfs_* matches some 70.
        script: r#"trace_while "$TRACE_RUNNER" run -e '
            kprobe:vfs_fsync* /comm == "km-workload"/ { @k[probe, func] = count(); }
            kretprobe:vfs_fsync* /comm == "km-workload"/ { @r[probe, func, retval] = count(); }
            kprobe:vfs_* /comm == "km-workload"/ { @v[func] = count(); }' -- "$WORKLOAD" "$CALLS" fsync"#,
        check: |out| {
            expect_status(out)?;
            let probes = attached_probes(&out.text)?;
            if probes < 24 {
                return Err(format!("the wildcards attached only {probes} functions"));
            }
            expect_lines(
                &out.text,
                &[
                    format!("@k[kprobe:vfs_fsync_range, vfs_fsync_range]: {CALLS}"),
                    format!("@r[kretprobe:vfs_fsync_range, vfs_fsync_range, 0]: {CALLS}"),
                    format!("@v[vfs_fsync_range]: {CALLS}"),
                ],
            )?;
            // The fsync* probes hit vfs_fsync_range only: nothing else in @k and @r.
            let extra: Vec<&str> = out
                .text
                .lines()
                .filter(|l| {
                    (l.starts_with("@k[") || l.starts_with("@r[")) && !l.contains("vfs_fsync_range")
                })
                .collect();
            if extra.is_empty() {
                Ok(())
            } else {
                Err(format!("unexpected entries {extra:?}"))
            }
        },
    },
    Case {
        name: "kprobe_list_with_missing",
        script: r#"trace_while "$TRACE_RUNNER" run -e 'kprobe:__x64_sys_getppid, kprobe:km_no_such_function, kprobe:km_none_* /comm == "km-workload"/ { @ = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| {
            expect_status(out)?;
            expect_lines(
                &out.text,
                &[
                    format!("@: {CALLS}"),
                    "Attaching 2 probes...".into(),
                    "WARNING: km_no_such_function is not traceable (either non-existing, inlined, or marked as \"notrace\"); attaching to it will likely fail".into(),
                    "WARNING: could not attach probe kprobe:km_no_such_function, skipping.".into(),
                    "WARNING: could not attach probe kprobe:km_none_*, skipping.".into(),
                ],
            )
        },
    },
    Case {
        name: "kprobe_only_missing_fails",
        script: r#""$TRACE_RUNNER" run -e 'kprobe:km_no_such_function { @ = count(); }'"#,
        check: |out| {
            if out.status != Some(1) || !out.text.contains("nothing to trace") {
                return Err(format!(
                    "expected exit 1 and `nothing to trace`, got {:?}",
                    out.status
                ));
            }
            Ok(())
        },
    },
    Case {
        name: "kretprobe_banned",
        script: r#""$TRACE_RUNNER" run -e 'kretprobe:_raw_spin_lock { exit(); }'"#,
        check: |out| {
            let want =
                "error: kretprobe:_raw_spin_lock can't be used as it might lock up your system.";
            if out.status != Some(2) || !out.text.contains(want) {
                return Err(format!(
                    "expected exit 2 and `{want}`, got {:?}",
                    out.status
                ));
            }
            Ok(())
        },
    },
    Case {
        name: "kfunc_counts",
        // One run: kfunc with a BTF-typed integer argument and a pointer chain, kretfunc
        // with retval, a kfunc wildcard, and a function of the 9p module (the guest's root
        // is 9p: each stat of /etc/passwd runs its getattr once). Maps are keyed by file
        // name: the dynamic loader also reads and stats the workload's libraries. A
        // wildcard matching nothing is skipped with a warning. And a kprobe on the same
        // module function, named within its module, with a BTF cast of its argument.
        script: r#"trace_while "$TRACE_RUNNER" run -e '
            kfunc:vfs_read /comm == "km-workload"/ {
                @n[str(args->file->f_path.dentry->d_name.name)] = count();
                @s[str(args->file->f_path.dentry->d_name.name)] = sum(args->count); }
            kretfunc:vfs_read /comm == "km-workload"/ {
                @r[str(args->file->f_path.dentry->d_name.name), retval] = count(); }
            kfunc:vfs_fsync*, kretfunc:km_none_* /comm == "km-workload"/ { @f[probe] = count(); }
            kfunc:9p:v9fs_vfs_getattr* /comm == "km-workload"/ {
                @m[probe, str(args->path->dentry->d_name.name)] = count(); }
            kprobe:9p:v9fs_vfs_getattr_dotl /comm == "km-workload"/ {
                @k[str(((struct path *)arg1)->dentry->d_name.name)] = count(); }' \
            -- sh -c "$WORKLOAD $CALLS read && $WORKLOAD $CALLS stat && $WORKLOAD $CALLS fsync""#,
        check: |out| {
            expect_status(out)?;
            expect_lines(
                &out.text,
                &[
                    format!("@n[zero]: {CALLS}"),
                    format!("@s[zero]: {}", CALLS * 100),
                    format!("@r[zero, 100]: {CALLS}"),
                    format!("@f[kfunc:vmlinux:vfs_fsync_range]: {CALLS}"),
                    format!("@m[kfunc:9p:v9fs_vfs_getattr_dotl, passwd]: {CALLS}"),
                    format!("@k[passwd]: {CALLS}"),
                    "WARNING: could not attach probe kretfunc:km_none_*, skipping.".into(),
                ],
            )?;
            // fsync(2) runs vfs_fsync_range only (vfs_fsync is inlined into do_fsync).
            let extra: Vec<&str> = out
                .text
                .lines()
                .filter(|l| l.starts_with("@f[") && !l.contains("vfs_fsync_range"))
                .collect();
            if extra.is_empty() {
                Ok(())
            } else {
                Err(format!("unexpected entries {extra:?}"))
            }
        },
    },
    Case {
        name: "all_tools",
        // Every tool of Debian's bpftrace package and every bundled script, compiled,
        // loaded, attached and detached by one trace-runner process (the kernel's BTF is
        // parsed once). opens-by-prefix needs its parameters written in, as its header
        // says. Each file's warnings (skipped alternatives) come before its line. Without
        // Debian's bpftrace package (its tools) the case skips, which fails under CI.
        script: r#"require_program /usr/sbin/vfscount.bt
echo "kernel $(uname -r)"
mkdir -p /tmp/bpf-scripts
cp "$BPF_SCRIPTS"/*.bt /tmp/bpf-scripts/
sed -i -e 's|str($1)|"/etc"|g' -e 's|$2)|4)|' /tmp/bpf-scripts/opens-by-prefix.bt
"$TRACE_RUNNER" check --attach /usr/sbin/*.bt /tmp/bpf-scripts/*.bt 2>&1
echo "check exit $?""#,
        check: check_all_tools,
    },
    Case {
        name: "bpftrace_kprobe_count",
        script: r#"require_program "$BPFTRACE"; trace_while "$BPFTRACE" -e 'kprobe:__x64_sys_getppid /comm == "km-workload"/ { @ = count(); }' -- "$WORKLOAD" "$CALLS""#,
        check: |out| expect_maps(out, &[format!("@: {CALLS}")]),
    },
];

/// The 38 tools of Debian's bpftrace 0.17 package (`/usr/sbin/NAME.bt`).
pub const TOOLS: [&str; 38] = [
    "bashreadline",
    "biolatency",
    "biosnoop",
    "biostacks",
    "bitesize",
    "capable",
    "cpuwalk",
    "dcsnoop",
    "execsnoop",
    "gethostlatency",
    "killsnoop",
    "loads",
    "mdflush",
    "naptime",
    "oomkill",
    "opensnoop",
    "pidpersec",
    "runqlat",
    "runqlen",
    "setuids",
    "ssllatency",
    "sslsnoop",
    "statsnoop",
    "swapin",
    "syncsnoop",
    "syscount",
    "tcpaccept",
    "tcpconnect",
    "tcpdrop",
    "tcplife",
    "tcpretrans",
    "tcpsynbl",
    "threadsnoop",
    "undump",
    "vfscount",
    "vfsstat",
    "writeback",
    "xfsdist",
];

/// The bundled scripts (`bpf-scripts/NAME.bt`).
pub const SCRIPTS: [&str; 20] = [
    "biolatency",
    "capable",
    "dns-latency",
    "execsnoop",
    "killsnoop",
    "oomkill",
    "opens-by-prefix",
    "opensnoop",
    "profile",
    "readsize",
    "runqlat",
    "setuids",
    "syscount",
    "tcpaccept",
    "tcpconnect",
    "tcplife",
    "tcpretrans",
    "threadsnoop",
    "unexpected-exec",
    "vfsstat",
];

/// The tools and bundled scripts the `all_tools` case does not require to attach on a
/// kernel series, because bpftrace 0.17 itself does not attach them there, measured by
/// running bpftrace on each in the same guests (2026-11-30): `(series, name, why)`.
/// Whatever trace-runner does with them is reported, not judged (it attaches mdflush and
/// vfsstat: see docs/kernel-support.md).
pub const NOT_ATTACHED_BY_BPFTRACE: &[(&str, &str, &str)] = &[
    (
        "6.1",
        "mdflush",
        "bpftrace exits 255: Error attaching probe: 'kprobe:md_flush_request' (the md module is not loaded in the guest)",
    ),
    (
        "6.12",
        "mdflush",
        "bpftrace exits 255: Error attaching probe: 'kprobe:md_flush_request' (the md module is not loaded in the guest)",
    ),
    (
        "6.12",
        "vfsstat",
        "bpftrace exits 255: Error attaching probe: 'kprobe:vfs_write*'",
    ),
    (
        "6.1",
        "bpf-scripts/capable",
        "bpftrace exits 1: tracepoint not found: capability:cap_capable (the tracepoint is newer than 6.12)",
    ),
    (
        "6.12",
        "bpf-scripts/capable",
        "bpftrace exits 1: tracepoint not found: capability:cap_capable (the tracepoint is newer than 6.12)",
    ),
];

/// The kernel series (`6.1`, `6.12`) of the case's `kernel RELEASE` line.
pub fn kernel_series(text: &str) -> Result<String, String> {
    let release = text
        .lines()
        .find_map(|l| l.strip_prefix("kernel "))
        .ok_or("no `kernel RELEASE` line")?;
    let mut parts = release.split(['.', '-', '+']);
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => Ok(format!("{major}.{minor}")),
        _ => Err(format!("cannot read the kernel release `{release}`")),
    }
}

/// `check --attach`'s line for each file, by name: `TOOL` for `/usr/sbin/TOOL.bt`,
/// `bpf-scripts/NAME` for a bundled script; the value is what follows `FILE: ` (or the
/// `LINE:COL: error: ...` of a located error).
pub fn tool_results(text: &str) -> std::collections::BTreeMap<String, String> {
    let mut results = std::collections::BTreeMap::new();
    for line in text.lines() {
        let (name, rest) = if let Some(rest) = line.strip_prefix("/usr/sbin/") {
            (String::new(), rest)
        } else if let Some(rest) = line.strip_prefix("/tmp/bpf-scripts/") {
            ("bpf-scripts/".to_string(), rest)
        } else {
            continue;
        };
        let Some((file, verdict)) = rest.split_once(".bt:") else {
            continue;
        };
        results.insert(name + file, verdict.trim_start().to_string());
    }
    results
}

/// Every tool and bundled script attached (`ok (N probes)`), except those bpftrace 0.17
/// does not attach on this kernel ([`NOT_ATTACHED_BY_BPFTRACE`]); each has its line, no
/// file is unlisted, and the runner's exit status agrees.
fn check_all_tools(out: &CaseOutput) -> Result<(), String> {
    expect_status(out)?;
    let series = kernel_series(&out.text)?;
    let results = tool_results(&out.text);
    let names: Vec<String> = TOOLS
        .iter()
        .map(|t| t.to_string())
        .chain(SCRIPTS.iter().map(|s| format!("bpf-scripts/{s}")))
        .collect();
    let mut problems = Vec::new();
    for name in &names {
        let excused = NOT_ATTACHED_BY_BPFTRACE
            .iter()
            .any(|(s, t, _)| *s == series && *t == name);
        match results.get(name) {
            None => problems.push(format!("{name}: no result line")),
            Some(v) if !v.starts_with("ok (") && !excused => problems.push(format!("{name}: {v}")),
            Some(_) => {}
        }
    }
    problems.extend(
        results
            .keys()
            .filter(|n| !names.contains(n))
            .map(|n| format!("{n}: not in TOOLS or SCRIPTS")),
    );
    let all_ok = results.values().all(|v| v.starts_with("ok ("));
    let status = out
        .text
        .lines()
        .find_map(|l| l.strip_prefix("check exit ")?.trim().parse::<i32>().ok());
    if status.map(|s| s == 0) != Some(all_ok) {
        problems.push(format!(
            "the runner exited {status:?} while its lines say all ok: {all_ok}"
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("on {series}: {}", problems.join("; ")))
    }
}

/// The cases named in `names` (comma-separated, as `KERNEL_MATRIX_CASES` gives them),
/// in [`CASES`] order; every case for `None`. An unknown name is an error naming the
/// known ones.
pub fn select(names: Option<&str>) -> Result<Vec<Case>, String> {
    let Some(names) = names else {
        return Ok(CASES.to_vec());
    };
    let wanted: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if let Some(unknown) = wanted.iter().find(|n| !CASES.iter().any(|c| c.name == **n)) {
        let known: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        return Err(format!(
            "KERNEL_MATRIX_CASES: no case named `{unknown}` (cases: {})",
            known.join(", ")
        ));
    }
    Ok(CASES
        .iter()
        .filter(|c| wanted.contains(&c.name))
        .copied()
        .collect())
}

/// A case measuring rows of `support.sh`: `$call` after its definitions, `$rows` rows.
macro_rules! support_case {
    ($name:literal, $call:literal, $rows:literal) => {
        Case {
            name: $name,
            script: concat!(include_str!("support.sh"), "\n", $call, "\n"),
            check: |out| expect_rows(out, $rows),
        }
    };
}

/// A case running `bench/vm-attach.sh` on one wildcard.
macro_rules! attach_case {
    ($name:literal, $pattern:literal) => {
        Case {
            name: $name,
            script: concat!(
                "ATTACH_PATTERN='",
                $pattern,
                "'\n",
                include_str!("../../bench/vm-attach.sh")
            ),
            check: |out| {
                expect_status(out)?;
                let runs = out.text.lines().filter(|l| l.starts_with("bench ")).count();
                if runs == 0 {
                    return Err("no `bench` line".into());
                }
                Ok(())
            },
        }
    };
}

/// The measurements of docs/kernel-support.md and bench/RESULTS.md, run by the ignored
/// `support_table` test rather than with [`CASES`]: `support.sh`'s rows (one `row NAME:
/// yes|no (DETAIL)` line per probe type, feature and bpftrace tool), one trace-runner
/// or bpftrace run a case, to fit the case time limit on a loaded machine, then
/// `bench/vm-attach.sh` (one `bench WILDCARD TOOL: MS ms, ...` line per run).
pub const SUPPORT: &[Case] = &[
    support_case!("support_kprobe", "support kprobe", 1),
    support_case!("support_kretprobe", "support kretprobe", 1),
    support_case!("support_kfunc", "support kfunc", 1),
    support_case!("support_kretfunc", "support kretfunc", 1),
    support_case!("support_kprobe_multi", "support kprobe_multi", 1),
    support_case!("support_tracepoint", "support tracepoint", 1),
    support_case!("support_rawtracepoint", "support rawtracepoint", 1),
    support_case!("support_uprobe", "support uprobe", 1),
    support_case!("support_profile", "support profile", 1),
    support_case!("support_interval", "support interval", 1),
    support_case!("support_btf", "support btf", 1),
    support_case!("support_ringbuf", "support ringbuf", 1),
    support_case!("support_vfscount", "support_bpftrace vfscount", 1),
    support_case!("support_vfsstat", "support_bpftrace vfsstat", 1),
    support_case!("support_dcsnoop", "support_bpftrace dcsnoop", 1),
    support_case!("support_biolatency", "support_bpftrace biolatency", 1),
    support_case!("support_biosnoop", "support_bpftrace biosnoop", 1),
    support_case!("support_biostacks", "support_bpftrace biostacks", 1),
    support_case!("support_mdflush", "support_bpftrace mdflush", 1),
    support_case!("support_xfsdist", "support_bpftrace xfsdist", 1),
    attach_case!("attach_vfs", "vfs_*"),
    attach_case!("attach_syscalls", "__x64_sys_*"),
];

/// `support.sh` finished and printed `n` rows.
fn expect_rows(out: &CaseOutput, n: usize) -> Result<(), String> {
    expect_status(out)?;
    let rows = support_rows(&out.text);
    if rows.len() != n {
        return Err(format!("expected {n} rows, got {rows:?}"));
    }
    Ok(())
}

/// The `(name, verdict)` rows that `support.sh` printed.
pub fn support_rows(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("row ")?.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The file name stem of the `index`th case (`03-kprobe_kstack`).
pub fn stem(index: usize, case: &Case) -> String {
    format!("{index:02}-{}", case.name)
}

/// The job run inside the guest: sets the environment and runs every case script under
/// `cases/` in the share in order, each under `timeout`, recording output, status and
/// duration next to it, and a `=== case` line per case on the console.
pub fn job_script() -> String {
    format!(
        r#"# The kernel matrix's job (generated by kernel-matrix's cases.rs).
S={GUEST_SHARE}
export TRACE_RUNNER=$S/bin/trace-runner WORKLOAD=$S/bin/km-workload CALLS={CALLS} BPFTRACE=/usr/bin/bpftrace
export BPF_SCRIPTS='{BPF_SCRIPTS}'
cd /tmp
for case in "$S"/cases/*.sh; do
    base=${{case%.sh}}
    start=$(date +%s%N)
    timeout -s KILL {CASE_TIMEOUT_SECS} bash -c 'source "$1"; source "$2"' case "$S/helpers.sh" "$case" >"$base.out" 2>&1
    echo $? >"$base.status"
    echo $(( ($(date +%s%N) - start) / 1000000 )) >"$base.ms"
    echo "=== case $(basename "$base"): exit $(cat "$base.status") in $(cat "$base.ms") ms"
done
"#
    )
}

/// Write the job, the helpers and the case scripts into `share` (the binaries go in
/// `share/bin`, put there by the caller).
pub fn write_job(share: &Path, cases: &[Case]) -> std::io::Result<()> {
    std::fs::create_dir_all(share.join("cases"))?;
    std::fs::write(share.join("job.sh"), job_script())?;
    std::fs::write(share.join("helpers.sh"), HELPERS)?;
    for (i, case) in cases.iter().enumerate() {
        let file = share.join("cases").join(format!("{}.sh", stem(i, case)));
        std::fs::write(file, format!("{}\n", case.script))?;
    }
    Ok(())
}

/// The results of `cases` as the job left them in `share`.
pub fn read_results(share: &Path, cases: &[Case]) -> Vec<CaseOutput> {
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let base = share.join("cases").join(stem(i, case));
            let read = |ext: &str| std::fs::read_to_string(base.with_extension(ext)).ok();
            CaseOutput {
                status: read("status").and_then(|s| s.trim().parse().ok()),
                text: read("out").unwrap_or_default(),
                millis: read("ms").and_then(|s| s.trim().parse().ok()),
            }
        })
        .collect()
}

/// The exit status by which a case says it cannot run here (a program it needs is
/// missing; see `require_program` in `guest.sh`), after a `SKIP: REASON` line.
pub const SKIP_STATUS: i32 = 77;

/// How a case went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// It could not run here, and this is not CI: the reason.
    Skipped(String),
    Failed(String),
}

/// Judge one case's output: it must have finished and pass its check. A case that
/// skipped itself ([`SKIP_STATUS`]) fails when `ci` (`CI=true`).
pub fn evaluate(case: &Case, out: &CaseOutput, ci: bool) -> Verdict {
    match out.status {
        None => Verdict::Failed("did not finish (no exit status)".into()),
        Some(SKIP_STATUS) => {
            let reason = out
                .text
                .lines()
                .rev()
                .find_map(|l| l.strip_prefix("SKIP: "))
                .unwrap_or("no reason given")
                .to_string();
            if ci {
                Verdict::Failed(format!("skipped under CI=true: {reason}"))
            } else {
                Verdict::Skipped(reason)
            }
        }
        Some(_) => match (case.check)(out) {
            Ok(()) => Verdict::Pass,
            Err(e) => Verdict::Failed(e),
        },
    }
}

/// The case exited 0.
pub fn expect_status(out: &CaseOutput) -> Result<(), String> {
    match out.status {
        Some(0) => Ok(()),
        Some(124) => Err("the tracer never attached".into()),
        Some(125) => Err("the workload failed".into()),
        Some(s) => Err(format!("exit status {s}")),
        None => Err("no exit status".into()),
    }
}

/// The case exited 0 and its one-line map entries (lines starting with `@`) are exactly
/// `expected`, in that order.
pub fn expect_maps(out: &CaseOutput, expected: &[String]) -> Result<(), String> {
    expect_status(out)?;
    let maps: Vec<&str> = out
        .text
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with('@'))
        .collect();
    if maps == expected {
        Ok(())
    } else {
        Err(format!("expected the maps {expected:?}, got {maps:?}"))
    }
}

/// Every line of `expected` is a line of `text` (in any order).
pub fn expect_lines(text: &str, expected: &[String]) -> Result<(), String> {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|want| !text.lines().any(|l| l.trim_end() == want.as_str()))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing the lines {missing:?}"))
    }
}

/// N of the tracer's `Attaching N probes...` line.
pub fn attached_probes(text: &str) -> Result<u64, String> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("Attaching ")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| "no `Attaching N probes...` line".to_string())
}

/// The parent pid km-workload printed (`getppid=PPID calls=N`).
pub fn workload_ppid(text: &str) -> Result<i64, String> {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("getppid=")?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .ok_or_else(|| "the workload printed no getppid= line".to_string())
}

/// The text holds stack map entries (`@[` NL frames NL `]: COUNT`) whose counts add up
/// to `total`; each stack's innermost frame is `top` (`top+OFFSET`) and each also holds
/// every frame of `callers`.
pub fn expect_stacks(text: &str, top: &str, callers: &[&str], total: u64) -> Result<(), String> {
    let mut sum = 0;
    let mut stacks = 0;
    let mut frames: Option<Vec<&str>> = None;
    let symbol = |frame: &str| frame.split('+').next().unwrap_or(frame).to_string();
    for line in text.lines().map(str::trim) {
        if line == "@[" {
            frames = Some(Vec::new());
        } else if let Some(count) = line.strip_prefix("]: ") {
            let stack = frames
                .take()
                .ok_or_else(|| format!("`{line}` without a stack before it"))?;
            let count: u64 = count
                .parse()
                .map_err(|_| format!("bad count in `{line}`"))?;
            let symbols: Vec<String> = stack.iter().map(|f| symbol(f)).collect();
            if symbols.first().map(String::as_str) != Some(top) {
                return Err(format!("a stack does not start at {top}: {stack:?}"));
            }
            for caller in callers {
                if !symbols.iter().any(|s| s == caller) {
                    return Err(format!("a stack lacks {caller}: {stack:?}"));
                }
            }
            sum += count;
            stacks += 1;
        } else if let Some(stack) = frames.as_mut() {
            stack.push(line);
        }
    }
    if stacks == 0 {
        return Err("no stack in the output".into());
    }
    if sum != total {
        return Err(format!("the stacks count {sum} calls, expected {total}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_selected_by_name_in_list_order() {
        let names = |v: Vec<Case>| v.iter().map(|c| c.name).collect::<Vec<_>>();
        assert_eq!(select(None).unwrap().len(), CASES.len());
        assert_eq!(
            names(select(Some("kfunc_counts, kprobe_count")).unwrap()),
            ["kprobe_count", "kfunc_counts"]
        );
        let e = select(Some("kprobe_count,nope")).err().unwrap();
        assert!(
            e.starts_with("KERNEL_MATRIX_CASES: no case named `nope` (cases: kprobe_count, "),
            "{e}"
        );
    }

    fn out(status: i32, text: &str) -> CaseOutput {
        CaseOutput {
            status: Some(status),
            text: text.into(),
            millis: Some(1),
        }
    }

    /// The verdict of a case that must not skip, as a `Result`.
    fn judge(case: &Case, out: &CaseOutput) -> Result<(), String> {
        match evaluate(case, out, false) {
            Verdict::Pass => Ok(()),
            Verdict::Failed(e) => Err(e),
            Verdict::Skipped(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn a_case_that_skips_itself_fails_under_ci() {
        let c = case("bpftrace_kprobe_count");
        let skipped = out(SKIP_STATUS, "SKIP: /usr/bin/bpftrace is not installed\n");
        assert_eq!(
            evaluate(c, &skipped, false),
            Verdict::Skipped("/usr/bin/bpftrace is not installed".into())
        );
        assert_eq!(
            evaluate(c, &skipped, true),
            Verdict::Failed("skipped under CI=true: /usr/bin/bpftrace is not installed".into())
        );
        assert_eq!(
            evaluate(c, &out(SKIP_STATUS, ""), false),
            Verdict::Skipped("no reason given".into())
        );
    }

    fn case(name: &str) -> &'static Case {
        CASES.iter().find(|c| c.name == name).unwrap()
    }

    // Real trace-runner output from Debian's 6.12 kernel.
    const KSTACK: &str = "getppid=149 calls=1000\nAttaching 1 probe...\n\n\n@[\n    __x64_sys_getppid+5\n    do_syscall_64+135\n    entry_SYSCALL_64_after_hwframe+118\n]: 1000\n";

    #[test]
    fn counts_must_be_exact() {
        let c = case("kprobe_count");
        assert_eq!(
            judge(
                c,
                &out(0, "getppid=7 calls=1000\nAttaching 1 probe...\n\n@: 1000\n")
            ),
            Ok(())
        );
        let err = judge(c, &out(0, "Attaching 1 probe...\n@: 1001\n")).unwrap_err();
        assert!(err.contains("[\"@: 1001\"]"), "{err}");
        assert!(judge(c, &out(0, "Attaching 1 probe...\n")).is_err());
        assert_eq!(judge(c, &out(1, "@: 1000\n")), Err("exit status 1".into()));
        assert_eq!(
            judge(c, &out(124, "")),
            Err("the tracer never attached".into())
        );
        let unfinished = CaseOutput {
            status: None,
            text: "@: 1000\n".into(),
            millis: None,
        };
        assert!(judge(c, &unfinished)
            .unwrap_err()
            .contains("did not finish"));
    }

    #[test]
    fn the_return_value_is_the_workloads_parent_pid() {
        let c = case("kretprobe_retval");
        let good = "getppid=149 calls=1000\nAttaching 1 probe...\n@[149]: 1000\n";
        assert_eq!(judge(c, &out(0, good)), Ok(()));
        let wrong_value = "getppid=149 calls=1000\n@[0]: 1000\n";
        assert!(judge(c, &out(0, wrong_value)).is_err());
        assert_eq!(
            judge(c, &out(0, "@[149]: 1000\n")),
            Err("the workload printed no getppid= line".into())
        );
    }

    #[test]
    fn stacks_start_at_the_probed_function_and_add_up() {
        let c = case("kprobe_kstack");
        assert_eq!(judge(c, &out(0, KSTACK)), Ok(()));
        let short = KSTACK.replace("]: 1000", "]: 999");
        assert_eq!(
            judge(c, &out(0, &short)),
            Err("the stacks count 999 calls, expected 1000".into())
        );
        let other_top = KSTACK.replace("__x64_sys_getppid+5", "__x64_sys_getpid+5");
        assert!(judge(c, &out(0, &other_top))
            .unwrap_err()
            .contains("does not start at"));
        let no_caller = KSTACK.replace("do_syscall_64+135", "x64_sys_call+20");
        assert!(judge(c, &out(0, &no_caller))
            .unwrap_err()
            .contains("lacks do_syscall_64"));
        assert_eq!(
            judge(c, &out(0, "@: 1000\n")),
            Err("no stack in the output".into())
        );
        let two = format!(
            "{KSTACK}{}",
            KSTACK.replace("+135", "+140").replace("]: 1000", "]: 0")
        );
        assert_eq!(judge(c, &out(0, &two)), Ok(()));
    }

    // Real trace-runner output from Debian's 6.1 kernel.
    const MISSING: &str = "getppid=473 calls=1000\nWARNING: __x64_sys_getppid is not traceable (either non-existing, inlined, or marked as \"notrace\"); attaching to it will likely fail\nWARNING: km_no_such_function is not traceable (either non-existing, inlined, or marked as \"notrace\"); attaching to it will likely fail\nWARNING: could not attach probe kprobe:km_none_*, skipping.\nWARNING: could not attach probe kprobe:km_no_such_function, skipping.\nAttaching 2 probes...\n\n\n@: 1000\n";

    #[test]
    fn missing_functions_need_their_warnings_and_the_count() {
        let c = case("kprobe_list_with_missing");
        assert_eq!(judge(c, &out(0, MISSING)), Ok(()));
        let no_skip = MISSING.replace(
            "WARNING: could not attach probe kprobe:km_none_*, skipping.\n",
            "",
        );
        assert!(judge(c, &out(0, &no_skip))
            .unwrap_err()
            .contains("km_none_*"));
        assert!(judge(c, &out(0, &MISSING.replace("@: 1000", "@: 999"))).is_err());
        assert_eq!(judge(c, &out(1, MISSING)), Err("exit status 1".into()));
    }

    #[test]
    fn wildcards_count_exactly_and_name_the_function() {
        let c = case("kprobe_wildcards");
        // Real trace-runner output from Debian's 6.1 kernel (most of @v left out).
        let good = "fsync calls=1000\nAttaching 77 probes...\n\n\n@k[kprobe:vfs_fsync_range, vfs_fsync_range]: 1000\n\n@r[kretprobe:vfs_fsync_range, vfs_fsync_range, 0]: 1000\n\n@v[vfs_write]: 1\n@v[vfs_fsync_range]: 1000\n";
        assert_eq!(judge(c, &out(0, good)), Ok(()));
        let unnamed = good.replace("@k[kprobe:vfs_fsync_range,", "@k[kprobe:vfs_fsync*,");
        assert!(judge(c, &out(0, &unnamed)).is_err());
        let short = good.replace("0]: 1000", "0]: 999");
        assert!(judge(c, &out(0, &short)).unwrap_err().contains("@r["));
        let extra = format!("{good}@k[kprobe:vfs_fsync, vfs_fsync]: 1\n");
        assert!(judge(c, &out(0, &extra))
            .unwrap_err()
            .contains("unexpected"));
        assert_eq!(
            judge(c, &out(0, &good.replace("Attaching 77", "Attaching 4"))),
            Err("the wildcards attached only 4 functions".into())
        );
        assert_eq!(attached_probes("Attaching 1 probe...\n"), Ok(1));
    }

    /// `all_tools` output where every file attached, on `release`.
    fn all_ok(release: &str) -> String {
        let mut text = format!("kernel {release}\ncheck exit 0\n");
        for t in TOOLS {
            text.push_str(&format!("/usr/sbin/{t}.bt: ok (2 probes)\n"));
        }
        for s in SCRIPTS {
            text.push_str(&format!("/tmp/bpf-scripts/{s}.bt: ok (1 probe)\n"));
        }
        text.push_str(
            "--- warnings and errors:\nWARNING: could not attach probe kprobe:x, skipping.\n",
        );
        text
    }

    #[test]
    fn every_tool_and_script_must_attach_but_those_bpftrace_cannot() {
        let c = case("all_tools");
        assert_eq!(judge(c, &out(0, &all_ok("6.1.0-57-amd64"))), Ok(()));
        // A tool that does not attach fails the case, with its error.
        let failed = all_ok("6.1.0-57-amd64")
            .replace("check exit 0", "check exit 1")
            .replace(
                "/usr/sbin/swapin.bt: ok (2 probes)",
                "/usr/sbin/swapin.bt: error: nothing to trace",
            );
        assert_eq!(
            judge(c, &out(0, &failed)),
            Err("on 6.1: swapin: error: nothing to trace".into())
        );
        // A located error of a bundled script names it.
        let located = all_ok("6.12.117+deb12-amd64")
            .replace("check exit 0", "check exit 2")
            .replace(
                "/tmp/bpf-scripts/opens-by-prefix.bt: ok (1 probe)",
                "/tmp/bpf-scripts/opens-by-prefix.bt:32:40: error: strncmp() needs",
            );
        assert_eq!(
            judge(c, &out(0, &located)),
            Err("on 6.12: bpf-scripts/opens-by-prefix: 32:40: error: strncmp() needs".into())
        );
        // What bpftrace 0.17 cannot attach on that kernel may fail (vfsstat on 6.12 only).
        let vfsstat = |release: &str| {
            all_ok(release)
                .replace("check exit 0", "check exit 1")
                .replace(
                    "/usr/sbin/vfsstat.bt: ok (2 probes)",
                    "/usr/sbin/vfsstat.bt: error: x",
                )
        };
        assert_eq!(judge(c, &out(0, &vfsstat("6.12.117+deb12-amd64"))), Ok(()));
        assert!(judge(c, &out(0, &vfsstat("6.1.0-57-amd64"))).is_err());
        // Every file has its line; no unlisted file; the exit status agrees.
        let missing = all_ok("6.1.0-57-amd64").replace("/usr/sbin/xfsdist.bt: ok (2 probes)\n", "");
        assert_eq!(
            judge(c, &out(0, &missing)),
            Err("on 6.1: xfsdist: no result line".into())
        );
        let extra = format!(
            "{}/usr/sbin/new.bt: ok (1 probe)\n",
            all_ok("6.1.0-57-amd64")
        );
        assert!(judge(c, &out(0, &extra))
            .unwrap_err()
            .contains("new: not in TOOLS"));
        let status = all_ok("6.1.0-57-amd64").replace("check exit 0", "check exit 1");
        assert!(judge(c, &out(0, &status))
            .unwrap_err()
            .contains("exited Some(1)"));
        assert!(judge(c, &out(0, "check exit 0\n"))
            .unwrap_err()
            .contains("no `kernel"));
    }

    #[test]
    fn the_lists_are_the_bundled_scripts_and_debians_tools() {
        let names = |dir: &str| {
            let mut v: Vec<String> = std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".bt")
                        .map(String::from)
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(BPF_SCRIPTS), SCRIPTS);
        // Debian's bpftrace package, where it is installed (CI installs it).
        let tools = names("/usr/sbin");
        if tools.is_empty() {
            assert!(
                !crate::vm::ci(),
                "bpftrace's tools are not in /usr/sbin and CI=true"
            );
            eprintln!("skipped: bpftrace's tools are not in /usr/sbin");
            return;
        }
        assert_eq!(tools, TOOLS);
    }

    #[test]
    fn case_names_are_unique_file_stems() {
        let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        assert!(names
            .iter()
            .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
        assert_eq!(stem(3, &CASES[2]), "03-kprobe_kstack");
    }

    #[test]
    fn results_are_read_back_per_case() {
        let share = crate::vm::Scratch::new("cases-unit").unwrap();
        write_job(&share.path, CASES).unwrap();
        let first = share.path.join("cases").join(stem(0, &CASES[0]));
        assert!(first.with_extension("sh").is_file());
        std::fs::write(first.with_extension("out"), "@: 1000\n").unwrap();
        std::fs::write(first.with_extension("status"), "0\n").unwrap();
        std::fs::write(first.with_extension("ms"), "1234\n").unwrap();
        let results = read_results(&share.path, CASES);
        assert_eq!(results[0], out(0, "@: 1000\n").clone_with_millis(1234));
        assert_eq!(results[1].status, None);
        assert!(job_script().contains("for case in \"$S\"/cases/*.sh"));
    }

    impl CaseOutput {
        fn clone_with_millis(mut self, millis: u64) -> CaseOutput {
            self.millis = Some(millis);
            self
        }
    }

    /// Run `script` with bash after the guest helpers, as the job runs a case.
    fn run_with_helpers(script: &str) -> (Option<i32>, String) {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(format!("{HELPERS}\n{script}"))
            .output()
            .unwrap();
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    }

    #[test]
    fn trace_while_runs_the_command_between_attach_and_interrupt() {
        // A stand-in tracer: attaches, then prints its map when interrupted (perl, as a
        // program may handle the SIGINT that bash ignores in background jobs).
        let tracer = r#"perl -e '$|=1; $SIG{INT}=sub{print "\n\@: 3\n"; exit 0}; print "Attaching 1 probe...\n"; sleep 1 while 1'"#;
        let (status, text) =
            run_with_helpers(&format!("trace_while {tracer} -- echo workload ran"));
        assert_eq!(status, Some(0), "{text}");
        assert_eq!(text, "workload ran\nAttaching 1 probe...\n\n@: 3\n");

        let (status, text) =
            run_with_helpers("trace_while bash -c 'echo no such probe; exit 3' -- echo never");
        assert_eq!(status, Some(124), "{text}");
        assert!(
            text.contains("did not attach") && text.contains("no such probe"),
            "{text}"
        );
        assert!(!text.contains("never"), "{text}");

        let (status, text) = run_with_helpers(&format!("trace_while {tracer} -- false"));
        assert_eq!(status, Some(125), "{text}");

        // A tracer that ignores SIGINT is killed after the grace period.
        let deaf = r#"bash -c 'echo "Attaching 1 probe..."; exec sleep 600'"#;
        let (status, text) = run_with_helpers(&format!("STOP_GRACE=1; trace_while {deaf} -- true"));
        assert_eq!(status, Some(137), "{text}");
        assert!(text.contains("did not stop on SIGINT"), "{text}");

        let (status, text) =
            run_with_helpers("require_program /nonexistent/bpftrace; echo went on");
        assert_eq!(status, Some(SKIP_STATUS));
        assert_eq!(text, "SKIP: /nonexistent/bpftrace is not installed\n");
    }
}
