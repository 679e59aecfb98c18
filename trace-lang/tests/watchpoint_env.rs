//! Function watchpoints as the environment resolves them: one attach point per
//! function of the traced binary matching FUNC, named as bpftrace 0.17 names them
//! (`watchpoint:BINARY:FUNC[:N]:LEN:MODE`); without a traced process, bpftrace's error.

use trace_lang::tracepoint_format::TpField;
use trace_lang::ProbeEnv;

/// A traced process (`-c ./prog`) whose binary has `inc_0`, `inc_1` and `other`.
struct Traced(bool);

impl ProbeEnv for Traced {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn traced_binary(&self) -> Option<(String, String)> {
        self.0
            .then(|| ("./prog".to_string(), "/work/prog".to_string()))
    }
    fn uprobe_functions(&self, path: &str, pattern: &str) -> Option<Vec<String>> {
        assert_eq!(path, "/work/prog");
        let prefix = pattern.strip_suffix('*').unwrap_or(pattern);
        Some(
            ["inc_0", "inc_1", "other"]
                .iter()
                .filter(|f| f.starts_with(prefix))
                .map(|f| f.to_string())
                .collect(),
        )
    }
}

fn names(src: &str, traced: bool) -> Result<Vec<(String, Vec<String>)>, String> {
    let mut prog = trace_lang::parser::parse(src).map_err(|d| d.message.clone())?;
    let a = trace_lang::sema::analyse(&mut prog, &Traced(traced)).map_err(|d| d.message.clone())?;
    Ok(a.attach[0]
        .iter()
        .map(|p| (p.name.clone(), p.parts.clone()))
        .collect())
}

#[test]
fn one_attach_point_per_matching_function() {
    let got = names("watchpoint:inc_*+arg0:4:w { }", true).unwrap();
    let parts = |f: &str, n: &str| -> Vec<String> {
        ["/work/prog", f, n, "4", "w"].map(String::from).to_vec()
    };
    assert_eq!(
        got,
        vec![
            (
                "watchpoint:./prog:inc_0:4:w".to_string(),
                parts("inc_0", "0")
            ),
            (
                "watchpoint:./prog:inc_1:4:w".to_string(),
                parts("inc_1", "0")
            ),
        ]
    );
    let got = names("aw:other+arg2:8:rw { }", true).unwrap();
    assert_eq!(got[0].0, "asyncwatchpoint:./prog:other:2:8:rw");
    assert_eq!(
        got[0].1,
        ["/work/prog", "other", "2", "8", "rw"].map(String::from)
    );
}

#[test]
fn bad_forms_and_no_process_are_errors() {
    assert_eq!(
        names("watchpoint:inc_0+arg0:4:w { }", false).unwrap_err(),
        "-p PID or -c CMD required for watchpoint"
    );
    assert_eq!(
        names("asyncwatchpoint:0x1000:4:w { }", true).unwrap_err(),
        "asyncwatchpoint needs a function argument (FUNCTION+argN), not an address"
    );
    for bad in ["inc_0+arg6", "inc_0+x", "+arg0", "inc_0"] {
        let e = names(&format!("watchpoint:{bad}:4:w {{ }}"), true).unwrap_err();
        assert!(
            e.contains("expected an address or FUNCTION+argN"),
            "{bad}: {e}"
        );
    }
    // An absolute address needs no process.
    assert_eq!(
        names("watchpoint:0x1000:4:w { }", false).unwrap()[0].0,
        "watchpoint:0x1000:4:w"
    );
}

#[test]
fn unwatch_takes_one_integer() {
    assert!(names("watchpoint:inc_0+arg0:4:w { unwatch(0x10); }", true).is_ok());
    let e = names("watchpoint:inc_0+arg0:4:w { unwatch(\"x\"); }", true).unwrap_err();
    assert_eq!(e, "unwatch() expects an integer address");
}
