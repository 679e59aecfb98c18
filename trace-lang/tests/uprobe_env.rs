//! Uprobe blocks typed from their binary's debug info as the environment gives it:
//! `args->NAME` has the parameter's type (pointers into user memory), the binary's
//! structs and typedefs are usable in casts after the script's own definitions, and a
//! binary without debug info, an unknown parameter or one not in a register is one
//! error. The debug info is asked for only when a block may need it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use trace_lang::cdecl::{Member, RecordDef};
use trace_lang::debuginfo::{DebugInfo, Param};
use trace_lang::tracepoint_format::TpField;
use trace_lang::types::Type;
use trace_lang::ProbeEnv;

/// `/bin/prog` has `take(int x, double d, struct Rec *r)` and `struct Rec { int a;
/// char name[8]; long vals[3]; }`, `typedef struct Rec rec_t`; `/bin/stripped` has no
/// debug info.
#[derive(Default)]
struct Prog {
    asked: AtomicUsize,
}

fn int(bytes: u8, signed: bool) -> Type {
    Type::Int { bytes, signed }
}

fn ptr(to: Type) -> Type {
    Type::Ptr {
        to: Box::new(to),
        user: false,
    }
}

fn prog() -> DebugInfo {
    let member = |name: &str, offset, ty| Member {
        name: Some(name.into()),
        offset,
        ty,
        bitfield: None,
    };
    let rec = RecordDef {
        name: "struct Rec".into(),
        size: 40,
        align: 8,
        members: vec![
            member("a", 0, int(4, true)),
            member("name", 4, Type::Str(8)),
            member(
                "vals",
                16,
                Type::Array {
                    elem: Box::new(int(8, true)),
                    len: 3,
                },
            ),
        ],
    };
    let param = |name: &str, ty, reg| Param {
        name: name.into(),
        ty,
        reg,
    };
    DebugInfo {
        functions: HashMap::from([(
            "take".to_string(),
            vec![
                param("x", int(4, true), Ok(0)),
                param(
                    "d",
                    int(8, true),
                    Err("args->d is a floating-point argument (passed in an SSE register), which is not supported".into()),
                ),
                param("r", ptr(Type::Record("struct Rec".into())), Ok(1)),
            ],
        )]),
        records: HashMap::from([("struct Rec".to_string(), rec)]),
        typedefs: HashMap::from([("rec_t".to_string(), Type::Record("struct Rec".into()))]),
    }
}

impl ProbeEnv for Prog {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn has_kernel_types(&self) -> bool {
        true
    }
    fn debug_info(&self, path: &str) -> Option<Arc<DebugInfo>> {
        self.asked.fetch_add(1, Ordering::Relaxed);
        match path {
            "/bin/prog" => Some(Arc::new(prog())),
            _ => Some(Arc::new(DebugInfo::default())),
        }
    }
}

fn error(src: &str) -> String {
    match trace_lang::check(src, &Prog::default()) {
        Ok(_) => panic!("{src}: no error"),
        Err(e) => e
            .render("t.bt", src)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn var(src: &str, name: &str) -> Type {
    let (_, analysis) = trace_lang::check(src, &Prog::default())
        .unwrap_or_else(|e| panic!("{}", e.render("t.bt", src)));
    let vars = &analysis.vars[0];
    vars.get(name)
        .or_else(|| vars.get(name.trim_start_matches('$')))
        .unwrap_or_else(|| panic!("{src}: no {name} in {vars:?}"))
        .clone()
}

#[test]
fn args_have_the_parameters_types_with_pointers_into_user_memory() {
    assert_eq!(
        var("uprobe:/bin/prog:take { $x = args->x; }", "$x"),
        int(4, true)
    );
    assert_eq!(
        var("uprobe:/bin/prog:take { $r = args->r; }", "$r"),
        Type::Ptr {
            to: Box::new(Type::Record("struct Rec".into())),
            user: true
        }
    );
    assert_eq!(
        var("uprobe:/bin/prog:take { $n = args->r->name; }", "$n"),
        Type::Str(8)
    );
    assert_eq!(
        var("uprobe:/bin/prog:take { $v = args->r->vals[2]; }", "$v"),
        int(8, true)
    );
    // A struct read whole carries its layout.
    let Type::Struct(s) = var("uprobe:/bin/prog:take { $s = *args->r; }", "$s") else {
        panic!("not a struct value");
    };
    assert_eq!(
        (s.name.as_str(), s.size, s.fields.len()),
        ("struct Rec", 40, 3)
    );
}

#[test]
fn the_binarys_structs_and_typedefs_serve_casts_after_the_scripts_own() {
    assert_eq!(
        var(
            "uprobe:/bin/prog:take { $a = ((struct Rec *)arg1)->a; }",
            "$a"
        ),
        int(4, true)
    );
    assert_eq!(
        var(
            "uprobe:/bin/prog:take { $n = ((rec_t *)arg1)->name; }",
            "$n"
        ),
        Type::Str(8)
    );
    assert_eq!(
        var(
            "struct Rec { char z; } uprobe:/bin/prog:take { $z = ((struct Rec *)arg1)->z; }",
            "$z"
        ),
        int(1, true)
    );
    assert_eq!(
        error("struct Rec { char z; } uprobe:/bin/prog:take { $a = ((struct Rec *)arg1)->a; }"),
        "t.bt:1:53: error: 'struct Rec' has no field named 'a'"
    );
}

#[test]
fn missing_debug_info_and_unreadable_parameters_are_errors() {
    assert_eq!(
        error("uprobe:/bin/stripped:take { print(args->x); }"),
        "t.bt:1:35: error: No debuginfo found for /bin/stripped"
    );
    assert_eq!(
        error("uprobe:/bin/prog:take { print(args->nope); }"),
        "t.bt:1:31: error: Can't find function parameter nope"
    );
    assert_eq!(
        error("uprobe:/bin/prog:take { print(args->d); }"),
        "t.bt:1:31: error: args->d is a floating-point argument (passed in an SSE register), which is not supported"
    );
    assert_eq!(
        error("uprobe:/bin/prog:other { print(args->x); }"),
        "t.bt:1:32: error: No debuginfo found for function other in /bin/prog"
    );
    assert_eq!(
        error("uprobe:/bin/prog:take+4 { print(args->x); }"),
        "t.bt:1:33: error: The args builtin needs a uprobe at a function's entry (uprobe:/bin/prog:take+4)"
    );
    assert_eq!(
        error("uretprobe:/bin/prog:take { print(args->x); }"),
        "t.bt:1:34: error: The args builtin can only be used with 'tracepoint', 'kfunc' and 'uprobe' probes (uretprobe used here)"
    );
    // A struct that neither the script, the binary nor BTF defines.
    assert_eq!(
        error("uprobe:/bin/stripped:take { print(((struct Nope *)arg0)->a); }"),
        "t.bt:1:35: error: Unknown struct/union 'struct Nope' (not defined by the script, nor in the uprobe binary's debug info or this kernel's BTF)"
    );
    // Every attach point of the block must have it.
    assert_eq!(
        error("uprobe:/bin/prog:take, uprobe:/bin/stripped:take { print(args->x); }"),
        "t.bt:1:58: error: No debuginfo found for /bin/stripped"
    );
}

#[test]
fn debug_info_is_read_only_for_blocks_that_may_use_it() {
    for (src, reads) in [
        (
            "uprobe:/bin/prog:take { print(arg0); } kprobe:f { print(arg0); }",
            false,
        ),
        ("uprobe:/bin/prog:take { print((uint32)arg0); }", false),
        (
            "uprobe:/bin/prog:take { print(((struct Rec *)arg1)->a); }",
            true,
        ),
        ("uprobe:/bin/prog:take { print(sizeof(rec_t)); }", true),
        ("uprobe:/bin/prog:take { print(args->x); }", true),
    ] {
        let env = Prog::default();
        trace_lang::check(src, &env).unwrap_or_else(|e| panic!("{}", e.render("t.bt", src)));
        assert_eq!(env.asked.load(Ordering::Relaxed) > 0, reads, "{src}");
    }
}
