//! USDT attach points as the environment resolves them: one attach point per marker,
//! named `usdt:PATH:PROVIDER:NAME`; a name without a provider must be unique; the
//! argument builtins are signed 64-bit in usdt probes.

use trace_lang::tracepoint_format::TpField;
use trace_lang::types::Type;
use trace_lang::usdt::{parse_args, UsdtLocation, UsdtProbe};
use trace_lang::ProbeEnv;

/// `./prog` has tracetest:testprobe (two markers), tracetest:testprobe2 and
/// tracetest2:testprobe2.
struct Prog;

fn probe(provider: &str, name: &str, markers: u64) -> UsdtProbe {
    UsdtProbe {
        path: "./prog".into(),
        provider: provider.into(),
        name: name.into(),
        locations: (0..markers)
            .map(|i| UsdtLocation {
                file: "./prog".into(),
                offset: 0x1000 + i,
                semaphore: 0,
                args: parse_args("-8@%rax 8@%rdx"),
            })
            .collect(),
    }
}

impl ProbeEnv for Prog {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
    fn usdt_probes(
        &self,
        target: &str,
        provider: &str,
        name: &str,
    ) -> Option<Result<Vec<UsdtProbe>, String>> {
        if target != "./prog" {
            return Some(Err(format!("usdt target file '{target}' does not exist")));
        }
        let all = [
            probe("tracetest", "testprobe", 2),
            probe("tracetest", "testprobe2", 1),
            probe("tracetest2", "testprobe2", 1),
        ];
        let glob = |p: &str, s: &str| match p.strip_prefix('*') {
            Some(tail) => s.ends_with(tail),
            None => p == s,
        };
        Some(Ok(all
            .into_iter()
            .filter(|p| (provider.is_empty() || glob(provider, &p.provider)) && glob(name, &p.name))
            .collect()))
    }
}

fn analyse(src: &str) -> Result<trace_lang::Analysis, String> {
    let mut prog = trace_lang::parser::parse(src).map_err(|d| d.message.clone())?;
    trace_lang::sema::analyse(&mut prog, &Prog).map_err(|d| d.message.clone())
}

#[test]
fn one_attach_point_per_marker() {
    let a = analyse("usdt:./prog:tracetest:testprobe { @ = count(); }").unwrap();
    let points = &a.attach[0];
    assert_eq!(points.len(), 2);
    assert!(points
        .iter()
        .all(|p| p.name == "usdt:./prog:tracetest:testprobe"));
    let offsets: Vec<u64> = points
        .iter()
        .map(|p| p.usdt.as_ref().unwrap().offset)
        .collect();
    assert_eq!(offsets, vec![0x1000, 0x1001]);
}

#[test]
fn wildcards_and_empty_provider() {
    let a = analyse("usdt:./prog::*probe2 { }").unwrap();
    let names: Vec<&str> = a.attach[0].iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "usdt:./prog:tracetest:testprobe2",
            "usdt:./prog:tracetest2:testprobe2"
        ]
    );
    assert_eq!(analyse("usdt:./prog:* { }").unwrap().attach[0].len(), 4);
}

#[test]
fn a_name_without_provider_must_be_unique() {
    let e = analyse("usdt:./prog:testprobe2 { }").unwrap_err();
    assert!(
        e.starts_with("namespace for usdt:./prog:testprobe2 not specified, matched 2 probes"),
        "{e}"
    );
    assert_eq!(
        analyse("usdt:./prog:testprobe { }").unwrap().attach[0].len(),
        2
    );
    let e = analyse("usdt:./nope:p:n { }").unwrap_err();
    assert_eq!(e, "usdt target file './nope' does not exist");
}

#[test]
fn arguments_are_signed_64_bit() {
    let src = "usdt:./prog:tracetest:testprobe { $a = arg0; @[arg1] = count(); }";
    let a = analyse(src).unwrap();
    assert_eq!(a.vars[0]["a"], Type::I64);
    let e = analyse("tracepoint:a:b { $a = arg0; }").unwrap_err();
    assert!(e.contains("'kprobes', 'uprobes' and 'usdt' probes"), "{e}");
    // Stack arguments are not for usdt probes, as in bpftrace.
    let e = analyse("usdt:./prog:tracetest:testprobe { $a = sarg0; }").unwrap_err();
    assert_eq!(
        e,
        "The sarg0 builtin can only be used with 'kprobes' and 'uprobes' probes (usdt used here)"
    );
}
