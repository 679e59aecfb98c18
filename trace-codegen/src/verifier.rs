//! Explains the kernel's refusal of a generated program as a located script error:
//! which limit was hit (the program size or the verifier's 1,000,000-instruction walk,
//! both `BPF_COMPLEXITY_LIMIT_INSNS`), for which probe, and where in the script (the
//! loop the verifier was stuck in, else the probe). Pure: it reads the loader's message
//! and what code generation recorded about each program.

use std::ops::Range;

use trace_lang::span::Span;
use trace_lang::Diagnostic;

use super::codegen::{thousands, CompiledProgram, MAX_INSNS};

const E2BIG: i32 = 7;
const EINVAL: i32 = 22;
const ENOSPC: i32 = 28;

/// What is known of one generated program when the kernel refuses it.
#[derive(Debug, Clone)]
pub struct ProgramFacts {
    pub probe_name: String,
    pub insns: usize,
    pub span: Span,
    pub loops: Vec<(Span, Range<usize>)>,
}

impl ProgramFacts {
    pub fn of(programs: &[CompiledProgram]) -> Vec<ProgramFacts> {
        programs
            .iter()
            .map(|p| ProgramFacts {
                probe_name: p.probe_name.clone(),
                insns: p.code.insns.len(),
                span: p.span,
                loops: p.loops.clone(),
            })
            .collect()
    }
}

/// The loader's message `the kernel's verifier rejected PROBE: ERROR (os error N)\n
/// verifier log (end):\n...` as a located error, when it is one of the limits.
pub fn explain(message: &str, programs: &[ProgramFacts]) -> Option<Diagnostic> {
    let rest = message.split("verifier rejected ").nth(1)?;
    // The longest name that matches (names may be prefixes of each other).
    let program = programs
        .iter()
        .filter(|p| rest.starts_with(&format!("{}: ", p.probe_name)))
        .max_by_key(|p| p.probe_name.len())?;
    let errno = os_error(rest)?;
    let log = message
        .split_once("verifier log (end):")
        .map(|(_, l)| l)
        .unwrap_or("");
    let probe = &program.probe_name;
    let limit = thousands(MAX_INSNS);
    let loop_at = stuck_loop(program, log);
    match errno {
        E2BIG if program.insns > MAX_INSNS => Some(Diagnostic::new(
            program.span,
            format!(
                "the program for {probe} has {} instructions, more than the kernel's limit of \
                 {limit} (BPF_COMPLEXITY_LIMIT_INSNS)",
                thousands(program.insns)
            ),
        )),
        E2BIG | ENOSPC => {
            // E2BIG: the verifier stopped after walking MAX_INSNS instructions. ENOSPC: its
            // log of that walk did not fit the largest buffer; same cause.
            let why = if errno == E2BIG {
                format!("it walked {limit} instructions, its limit (BPF_COMPLEXITY_LIMIT_INSNS)")
            } else {
                format!(
                    "its log overflowed on the way to its limit of {limit} instructions \
                     (BPF_COMPLEXITY_LIMIT_INSNS)"
                )
            };
            Some(match loop_at {
                Some(span) => Diagnostic::new(
                    span,
                    format!(
                        "the kernel's verifier gave up on {probe}: it could not prove that this \
                         loop ends and followed it iteration by iteration until {why}; give the \
                         loop a small constant bound, e.g. while ($i < 100)"
                    ),
                ),
                None => Diagnostic::new(
                    program.span,
                    format!(
                        "the kernel's verifier gave up on {probe}: the program has too many \
                         paths to check ({why}); unroll less or split the probe"
                    ),
                ),
            })
        }
        EINVAL if log.contains("infinite loop detected") => Some(Diagnostic::new(
            loop_at.unwrap_or(program.span),
            format!(
                "the kernel's verifier rejected {probe}: this loop never ends (the verifier \
                 found it back in the same state: infinite loop detected)"
            ),
        )),
        _ => None,
    }
}

/// `... (os error N)` -> N.
fn os_error(text: &str) -> Option<i32> {
    let at = text.find("(os error ")?;
    let digits: String = text[at + 10..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The innermost loop holding the instruction the verifier was at (the last numbered
/// line of its log, or `infinite loop detected at insn N`); else the first loop.
fn stuck_loop(program: &ProgramFacts, log: &str) -> Option<Span> {
    let insn = log
        .split("infinite loop detected at insn ")
        .nth(1)
        .and_then(|t| {
            t.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse::<usize>()
                .ok()
        })
        .or_else(|| {
            log.lines().rev().find_map(|l| {
                let (n, _) = l.trim_start().split_once(": ")?;
                n.parse::<usize>().ok()
            })
        });
    let innermost = insn.and_then(|i| {
        program
            .loops
            .iter()
            .filter(|(_, r)| r.contains(&i))
            .min_by_key(|(_, r)| r.len())
    });
    innermost.or(program.loops.first()).map(|(s, _)| *s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(loops: Vec<(Span, Range<usize>)>, insns: usize) -> Vec<ProgramFacts> {
        vec![
            ProgramFacts {
                probe_name: "BEGIN".into(),
                insns,
                span: Span::new(0, 5),
                loops,
            },
            ProgramFacts {
                probe_name: "tracepoint:syscalls:sys_enter_read".into(),
                insns: 10,
                span: Span::new(30, 40),
                loops: vec![],
            },
        ]
    }

    #[test]
    fn state_limit_points_at_the_innermost_loop_of_the_last_insn() {
        let outer = Span::new(8, 60);
        let inner = Span::new(20, 50);
        let msg = "the kernel's verifier rejected BEGIN: No space left on device (os error 28)\n\
                   verifier log (end):\n12: (b7) r0 = 1 ; R0=1\n13: (15) if r0 == 0x0 goto pc+9";
        let d = explain(msg, &facts(vec![(inner, 10..20), (outer, 5..30)], 40)).unwrap();
        assert_eq!(d.span, inner);
        assert!(d.message.contains("gave up on BEGIN"), "{}", d.message);
        assert!(d.message.contains("1,000,000"), "{}", d.message);
        assert!(d.message.contains("BPF_COMPLEXITY_LIMIT_INSNS"));
        // Outside the inner loop: the outer one.
        let msg = msg.replace("13: (15)", "25: (15)");
        let d = explain(&msg, &facts(vec![(inner, 10..20), (outer, 5..30)], 40)).unwrap();
        assert_eq!(d.span, outer);
    }

    #[test]
    fn too_many_instructions_names_the_count_and_the_probe() {
        let msg = "the kernel's verifier rejected BEGIN: Argument list too long (os error 7)\n\
                   verifier log (end):\n";
        let d = explain(msg, &facts(vec![], 1_234_567)).unwrap();
        assert_eq!(
            d.message,
            "the program for BEGIN has 1,234,567 instructions, more than the kernel's limit \
             of 1,000,000 (BPF_COMPLEXITY_LIMIT_INSNS)"
        );
        assert_eq!(d.span, Span::new(0, 5));
        // Small program: the verifier's walk hit the limit.
        let d = explain(msg, &facts(vec![], 500)).unwrap();
        assert!(
            d.message.contains("walked 1,000,000 instructions"),
            "{}",
            d.message
        );
    }

    #[test]
    fn infinite_loop_and_other_probes() {
        let lp = Span::new(8, 20);
        let msg = "the kernel's verifier rejected BEGIN: Invalid argument (os error 22)\n\
                   verifier log (end):\ninfinite loop detected at insn 3\n";
        let d = explain(msg, &facts(vec![(lp, 1..4)], 10)).unwrap();
        assert_eq!(d.span, lp);
        assert!(d.message.contains("never ends"));
        let msg = "the kernel's verifier rejected tracepoint:syscalls:sys_enter_read: \
                   Argument list too long (os error 7)\nverifier log (end):\n";
        let d = explain(msg, &facts(vec![], 10)).unwrap();
        assert_eq!(d.span, Span::new(30, 40));
        // Other refusals are left as they are.
        let msg = "the kernel's verifier rejected BEGIN: Permission denied (os error 13)\n\
                   verifier log (end):\ninvalid mem access 'scalar'";
        assert!(explain(msg, &facts(vec![], 10)).is_none());
        assert_eq!(os_error("x (os error 28)"), Some(28));
    }
}
