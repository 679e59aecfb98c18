//! Kernel constants without headers: a script written against a node with kernel types
//! (so unknown identifiers are errors) uses errno, address-family and open-flag names
//! with no `#include`, and a script's own `#define` takes precedence.

use trace_lang::ast::{ExprKind, StmtKind};
use trace_lang::sema::ProbeEnv;
use trace_lang::tracepoint_format::TpField;

/// A node with kernel types but no tracepoints: every identifier must resolve.
struct Kernel;
impl ProbeEnv for Kernel {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        Some(vec![])
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn has_kernel_types(&self) -> bool {
        true
    }
}

/// The integer values the `@v[...] = X` assignments of a checked script got.
fn assigned_values(src: &str) -> Vec<i64> {
    let (prog, _) =
        trace_lang::check(src, &Kernel).unwrap_or_else(|d| panic!("{}", d.render("t.bt", src)));
    prog.probes[0]
        .body
        .iter()
        .filter_map(|s| match &s.kind {
            StmtKind::MapAssign { value, .. } => match value.kind {
                ExprKind::Int(v) => Some(v),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

#[test]
fn published_style_script_compiles_without_headers() {
    // As tools write it: errno, AF_* and O_* from headers a node does not have.
    let src = "BEGIN {\n  @v[0] = EPERM;\n  @v[1] = AF_INET;\n  @v[2] = O_CREAT;\n  @v[3] = EINPROGRESS;\n  @v[4] = AF_INET6;\n  @v[5] = DT_DIR;\n  @v[6] = TCP_LISTEN;\n  @v[7] = IPPROTO_UDP;\n  @v[8] = ICMP_ECHO;\n  @v[9] = SIGKILL;\n  if (O_CREAT & 0x41) { exit(); }\n}\n";
    assert_eq!(
        assigned_values(src),
        [1, 2, 0o100, 115, 10, 4, 10, 17, 8, 9]
    );
}

#[test]
fn script_definitions_shadow_built_in_constants() {
    let src = "#define EPERM 42\nBEGIN { @v[0] = EPERM; @v[1] = ENOENT; }\n";
    assert_eq!(assigned_values(src), [42, 2]);
}

#[test]
fn unknown_names_are_still_errors() {
    let src = "BEGIN { @v = EPERMX; }";
    let e = trace_lang::check(src, &Kernel).unwrap_err();
    assert_eq!(e.message, "Unknown identifier: 'EPERMX'");
}
