//! kfunc/kretfunc attach points as the environment resolves them: wildcards expand to
//! one point per function (named `kfunc:MODULE:FUNC`), points matching nothing are
//! dropped, and `args->NAME` and `retval` take their types from the function's BTF
//! prototype.

use trace_lang::sema::FuncSignature;
use trace_lang::tracepoint_format::TpField;
use trace_lang::types::Type;
use trace_lang::ProbeEnv;

/// Knows vmlinux's `vfs_read(struct file *file, char *buf, size_t count, loff_t *pos)`
/// returning `ssize_t`, and `vfs_write` (same), and module `9p`'s `v9fs_open(void)`
/// returning `int`.
struct Kernel;

const FUNCS: [(&str, &str); 3] = [
    ("vmlinux", "vfs_read"),
    ("vmlinux", "vfs_write"),
    ("9p", "v9fs_open"),
];

fn glob(p: &str, s: &str) -> bool {
    match p.strip_suffix('*') {
        Some(prefix) => s.starts_with(prefix),
        None => p == s,
    }
}

impl ProbeEnv for Kernel {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn has_kernel_types(&self) -> bool {
        true
    }
    fn kfuncs(&self, _: bool, module: Option<&str>, func: &str) -> Option<Vec<(String, String)>> {
        Some(
            FUNCS
                .iter()
                .filter(|(m, f)| module.is_none_or(|want| glob(want, m)) && glob(func, f))
                .map(|(m, f)| (m.to_string(), f.to_string()))
                .collect(),
        )
    }
    fn kfunc_signature(&self, module: &str, func: &str) -> Option<FuncSignature> {
        let int = |bytes, signed| Type::Int { bytes, signed };
        let ptr = |to: Type| Type::Ptr {
            to: Box::new(to),
            user: false,
        };
        match (module, func) {
            ("vmlinux", "vfs_read" | "vfs_write") => Some(FuncSignature {
                params: vec![
                    ("file".into(), ptr(Type::Record("struct file".into()))),
                    ("buf".into(), ptr(int(1, true))),
                    ("count".into(), int(8, false)),
                    ("pos".into(), ptr(int(8, true))),
                ],
                ret: int(8, true),
            }),
            ("9p", "v9fs_open") => Some(FuncSignature {
                params: vec![],
                ret: int(4, true),
            }),
            _ => None,
        }
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

fn error(src: &str) -> String {
    match trace_lang::check(src, &Kernel) {
        Ok(_) => panic!("{src}: no error"),
        Err(e) => e
            .render("t.bt", src)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

#[test]
fn wildcards_expand_to_one_point_per_function() {
    assert_eq!(
        points("kfunc:vfs_* { } kretfunc:9p:* { } kfunc:vmlinux:vfs_read, kfunc:nope, kfunc:nope_* { }"),
        [
            vec!["kfunc:vmlinux:vfs_read", "kfunc:vmlinux:vfs_write"],
            vec!["kretfunc:9p:v9fs_open"],
            vec!["kfunc:vmlinux:vfs_read"],
        ]
    );
}

#[test]
fn args_and_retval_are_typed_from_btf() {
    let src = "kretfunc:vfs_read { @s = sum(args->count); @r[retval] = count(); @p[args->buf] = count(); }";
    let (_, analysis) = trace_lang::check(src, &Kernel).unwrap();
    let keys = |m: &str| analysis.maps[m].keys.clone();
    // retval: ssize_t, normalised to an 8-byte signed key.
    assert_eq!(
        keys("r"),
        [Type::Int {
            bytes: 8,
            signed: true
        }]
    );
    // A pointer parameter keeps its pointer type.
    assert!(matches!(keys("p")[0], Type::Ptr { .. }), "{:?}", keys("p"));
    assert_eq!(
        error("kfunc:vfs_read { @ = args->nope; }"),
        "t.bt:1:22: error: Can't find function parameter nope"
    );
    // A wildcard whose functions share a parameter of the same type.
    points("kfunc:vfs_* { @ = sum(args->count); }");
}
