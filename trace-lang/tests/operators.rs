//! Semantic analysis of operators and functions: the types `++`/`--` and casts get
//! (pointers in uprobes are user memory, as bpftrace's address spaces), string
//! literals folded by `strcontains()`, and where `reg()` may be used.

use trace_lang::ast::{Expr, ExprKind, StmtKind};
use trace_lang::types::Type;
use trace_lang::NoEnv;

/// The value of the first `$v = ...` assignment of the first probe.
fn first_value(src: &str) -> Expr {
    let (prog, _) =
        trace_lang::check(src, &NoEnv).unwrap_or_else(|d| panic!("{}", d.render("t.bt", src)));
    prog.probes[0]
        .body
        .iter()
        .find_map(|s| match &s.kind {
            StmtKind::VarAssign { name, value } if name == "v" => Some(value.clone()),
            _ => None,
        })
        .expect("no $v assignment")
}

fn ptr(to: Type, user: bool) -> Type {
    Type::Ptr {
        to: Box::new(to),
        user,
    }
}

#[test]
fn casts_in_uprobes_point_at_user_memory() {
    let i32_ = Type::Int {
        bytes: 4,
        signed: true,
    };
    let v = first_value("uprobe:/bin/sh:main { $v = (int32 **)arg0; }");
    assert_eq!(v.ty, ptr(ptr(i32_.clone(), true), true));
    let v = first_value("kprobe:vfs_read { $v = (int32 *)arg0; }");
    assert_eq!(v.ty, ptr(i32_, false));
}

#[test]
fn increment_keeps_the_type_of_what_it_changes() {
    let v = first_value("BEGIN { $p = (int16 *)8; $v = $p++; }");
    assert!(matches!(
        v.kind,
        ExprKind::IncDec {
            post: true,
            inc: true,
            ..
        }
    ));
    assert_eq!(
        v.ty,
        ptr(
            Type::Int {
                bytes: 2,
                signed: true
            },
            false
        )
    );
    let v = first_value("BEGIN { @m = 1; $v = --@m; }");
    assert_eq!(v.ty, Type::I64);
    let e = trace_lang::check("BEGIN { $s = \"a\"; $v = $s++; }", &NoEnv).unwrap_err();
    assert_eq!(
        e.message,
        "The ++ operator can not be used on expressions of type 'string[64]'"
    );
}

#[test]
fn strcontains_of_literals_is_a_constant() {
    let v = first_value(r#"BEGIN { $v = strcontains("haystack", "st"); }"#);
    assert_eq!(v.kind, ExprKind::Int(1));
    let v = first_value(r#"BEGIN { $v = strcontains("haystack", "x"); }"#);
    assert_eq!(v.kind, ExprKind::Int(0));
    let e = trace_lang::check("BEGIN { $v = strcontains(comm, \"x\"); }", &NoEnv).unwrap_err();
    assert_eq!(
        e.message,
        "strcontains() is supported on string literals only for now"
    );
}

#[test]
fn reg_needs_a_kprobe_or_uprobe() {
    first_value(r#"kprobe:vfs_read { $v = reg("sp"); }"#);
    let e = trace_lang::check(r#"BEGIN { $v = reg("sp"); }"#, &NoEnv).unwrap_err();
    assert_eq!(
        e.message,
        "reg can only be used with kprobes and uprobes (BEGIN used here)"
    );
}

#[test]
fn pton_gives_the_address_bytes() {
    let byte = Type::Int {
        bytes: 1,
        signed: false,
    };
    let v = first_value(r#"BEGIN { $v = pton("127.0.0.1"); }"#);
    assert_eq!(
        v.ty,
        Type::Array {
            elem: Box::new(byte.clone()),
            len: 4
        }
    );
    let v = first_value(r#"BEGIN { $v = pton("fe80::1"); }"#);
    assert_eq!(
        v.ty,
        Type::Array {
            elem: Box::new(byte),
            len: 16
        }
    );
    assert_eq!(
        trace_lang::sema::pton_bytes("10.1.2.3"),
        Some(vec![10, 1, 2, 3])
    );
    let e = trace_lang::check(r#"BEGIN { $v = pton("1.2.3"); }"#, &NoEnv).unwrap_err();
    assert_eq!(
        e.message,
        "pton() expects an IPv4 or IPv6 address, e.g. \"127.0.0.1\" or \"::1\""
    );
}
