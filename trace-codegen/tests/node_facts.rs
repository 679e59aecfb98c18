//! Code generation learns about the node only through `NodeFacts`, and hands its
//! warnings back instead of printing them: a node whose kallsyms lists no data symbols
//! explains `kaddr()`'s error; a pid namespace makes stored pids that
//! namespace's (`bpf_get_ns_current_pid_tgid` with its device and inode); a known
//! symbol's address is loaded as given; a uprobe's `args->NAME` is read from the
//! register its debug info names, which is asked for only by blocks that use `args`.
//! No kernel, no privileges.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use trace_codegen::codegen::{self, CodegenOptions, Compiled};
use trace_codegen::disasm::disassemble;
use trace_codegen::node_facts::NodeFacts;
use trace_lang::debuginfo::{DebugInfo, Param};
use trace_lang::tracepoint_format::TpField;
use trace_lang::types::Type;
use trace_lang::ProbeEnv;

#[derive(Default)]
struct Facts {
    functions_only: bool,
    pid_namespace: Option<(u64, u64)>,
    symbol: Option<(&'static str, u64)>,
    /// How many times the debug info of a uprobe target was asked for.
    debug_reads: AtomicUsize,
}

impl ProbeEnv for Facts {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    /// Every binary has `f(double d, long a, long b, int x)`: `x` is in rdx.
    fn debug_info(&self, _: &str) -> Option<Arc<DebugInfo>> {
        self.debug_reads.fetch_add(1, Ordering::Relaxed);
        let param = |name: &str, bytes, reg| Param {
            name: name.into(),
            ty: Type::Int {
                bytes,
                signed: true,
            },
            reg,
        };
        let params = vec![
            param("d", 8, Err("args->d is a floating-point argument".into())),
            param("a", 8, Ok(0)),
            param("b", 8, Ok(1)),
            param("x", 4, Ok(2)),
        ];
        Some(Arc::new(DebugInfo {
            functions: HashMap::from([("f".to_string(), params)]),
            ..DebugInfo::default()
        }))
    }
}

impl NodeFacts for Facts {
    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        self.symbol.filter(|(n, _)| *n == name).map(|(_, a)| a)
    }
    fn kallsyms_lists_functions_only(&self) -> bool {
        self.functions_only
    }
    fn pid_namespace(&self) -> Option<(u64, u64)> {
        self.pid_namespace
    }
}

fn generate(src: &str, facts: &Facts) -> Result<Compiled, String> {
    let (program, analysis) = trace_lang::check(src, facts).map_err(|d| d.message.clone())?;
    codegen::generate(&program, &analysis, facts, &CodegenOptions::default())
        .map_err(|d| d.message.clone())
}

fn listing(c: &Compiled) -> String {
    c.programs
        .iter()
        .map(|p| disassemble(&p.code, &c.maps))
        .collect()
}

#[test]
fn kaddr_of_a_missing_symbol_is_an_error_that_says_why_without_data_symbols() {
    // As bpftrace: an error, also where the node's kallsyms lists no data symbols (then
    // the message says so; before, a warning and the address 0).
    let facts = Facts {
        functions_only: true,
        ..Facts::default()
    };
    let err = generate(r#"BEGIN { @a = kaddr("avenrun"); exit(); }"#, &facts).unwrap_err();
    assert_eq!(
        err,
        "Failed to resolve kernel symbol: avenrun (this kernel's /proc/kallsyms lists no \
         data symbols: CONFIG_KALLSYMS_ALL is off)"
    );
    let err = generate(r#"BEGIN { @a = kaddr("avenrun"); }"#, &Facts::default()).unwrap_err();
    assert_eq!(err, "Failed to resolve kernel symbol: avenrun");
}

#[test]
fn kaddr_loads_the_address_the_facts_give() {
    let facts = Facts {
        symbol: Some(("avenrun", 0xffff_ffff_8123_4567)),
        ..Facts::default()
    };
    let c = generate(r#"BEGIN { @a = kaddr("avenrun"); }"#, &facts).unwrap();
    assert!(c.warnings.is_empty());
    // 0xffffffff81234567 fits a sign-extended 32-bit immediate.
    assert!(
        listing(&c).contains("r0 = -2128394905\n"),
        "{}",
        listing(&c)
    );
}

#[test]
fn pids_are_those_of_the_runners_pid_namespace() {
    let src = "profile:hz:99 { @[ustack] = count(); }";
    let plain = listing(&generate(src, &Facts::default()).unwrap());
    assert!(plain.contains("call bpf_get_current_pid_tgid"), "{plain}");
    assert!(!plain.contains("bpf_get_ns_current_pid_tgid"), "{plain}");
    let facts = Facts {
        pid_namespace: Some((4, 0xF000_0123)),
        ..Facts::default()
    };
    let namespaced = listing(&generate(src, &facts).unwrap());
    assert!(
        namespaced.contains("call bpf_get_ns_current_pid_tgid"),
        "{namespaced}"
    );
    assert!(namespaced.contains("r1 = 4\n"), "{namespaced}");
    assert!(namespaced.contains("r2 = 0xf0000123 ll\n"), "{namespaced}");
}

#[test]
fn uprobe_args_come_from_the_register_the_debug_info_names() {
    let facts = Facts::default();
    let c = generate("uprobe:/bin/p:f { @ = sum(args->x); }", &facts).unwrap();
    // rdx is at 96 in `struct pt_regs`; an int is its low 4 bytes, sign-extended.
    let code = listing(&c);
    assert!(
        code.contains("r0 = *(u32 *)(r6 + 96)\n") && code.contains("r0 s>>= 32\n"),
        "{code}"
    );
    assert!(facts.debug_reads.load(Ordering::Relaxed) > 0);

    // A block without `args` does not read the binary's debug info (a big binary's
    // takes seconds), in analysis or in code generation.
    let facts = Facts::default();
    generate("uprobe:/bin/p:f { @ = sum(arg2); }", &facts).unwrap();
    assert_eq!(facts.debug_reads.load(Ordering::Relaxed), 0);
}
