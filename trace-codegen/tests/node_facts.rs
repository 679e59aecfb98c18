//! Code generation learns about the node only through `NodeFacts`, and hands its
//! warnings back instead of printing them: a node whose kallsyms lists no data symbols
//! explains `kaddr()`'s error; a pid namespace makes stored pids that
//! namespace's (`bpf_get_ns_current_pid_tgid` with its device and inode); a known
//! symbol's address is loaded as given. No kernel, no privileges.

use trace_codegen::codegen::{self, CodegenOptions, Compiled};
use trace_codegen::disasm::disassemble;
use trace_codegen::node_facts::NodeFacts;
use trace_lang::tracepoint_format::TpField;
use trace_lang::ProbeEnv;

#[derive(Default)]
struct Facts {
    functions_only: bool,
    pid_namespace: Option<(u64, u64)>,
    symbol: Option<(&'static str, u64)>,
}

impl ProbeEnv for Facts {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
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
