//! Kprobe attach points as the environment resolves them: a point matching no traceable
//! function is dropped (the run goes on with the others), and a function that may not be
//! traced is an error located at the attach point.

use trace_lang::sema::{FieldInfo, FuncSignature};
use trace_lang::tracepoint_format::TpField;
use trace_lang::ProbeEnv;

/// Knows `vfs_read` and `vfs_write`; refuses kretprobes on `_raw_spin_lock`.
struct Kernel;

impl ProbeEnv for Kernel {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn record_field(&self, _: &str, _: &str) -> Option<FieldInfo> {
        None
    }
    fn kfunc_signature(&self, _: &str, _: &str) -> Option<FuncSignature> {
        None
    }
    fn kprobe_matches(
        &self,
        ret: bool,
        module: Option<&str>,
        func: &str,
    ) -> Option<Result<usize, String>> {
        if ret && func == "_raw_spin_lock" {
            return Some(Err(format!(
                "kretprobe:{func} can't be used as it might lock up your system."
            )));
        }
        let known = ["vfs_read", "vfs_write"];
        let pattern = func.trim_end_matches('*');
        let n = match (module, func.ends_with('*')) {
            (Some(_), _) => 0,
            (None, true) => known.iter().filter(|k| k.starts_with(pattern)).count(),
            (None, false) => known.iter().filter(|k| **k == func).count(),
        };
        Some(Ok(n))
    }
}

fn points(src: &str) -> Vec<Vec<String>> {
    let (_, analysis) =
        trace_lang::check(src, &Kernel).unwrap_or_else(|e| panic!("{}", e.render("t.bt", src)));
    analysis
        .attach
        .iter()
        .map(|a| a.iter().map(|p| p.name.clone()).collect())
        .collect()
}

#[test]
fn points_matching_nothing_are_dropped() {
    assert_eq!(
        points(
            "kprobe:vfs_read, kprobe:no_such_fn, kprobe:none_*, kretprobe:vfs_* { @ = count(); }"
        ),
        [["kprobe:vfs_read", "kretprobe:vfs_*"]]
    );
    assert_eq!(
        points("kprobe:xfs:vfs_read { } kprobe:no_such { }"),
        [Vec::<String>::new(), Vec::new()]
    );
}

#[test]
fn banned_functions_are_located_errors() {
    let src = "kprobe:vfs_read,\n  kretprobe:_raw_spin_lock { exit(); }";
    let e = trace_lang::check(src, &Kernel).unwrap_err();
    assert_eq!(
        e.render("t.bt", src).lines().next().unwrap(),
        "t.bt:2:3: error: kretprobe:_raw_spin_lock can't be used as it might lock up your system."
    );
}
