//! Fuzzing code generation (pure instruction generation and object emission, no kernel):
//! the fuzz generators of trace-lang's tests, and every script that analyses cleanly
//! goes through [`codegen::generate`] and [`object_file::emit`]. No panic, no stack
//! overflow on the runner's 8 MiB main-thread stack, errors located in the script, and
//! no program over the kernel's instruction limit. `FUZZ_CASES=N` as in trace-lang.

#[path = "../../trace-lang/tests/fuzz_gen/mod.rs"]
mod fuzz_gen;

use proptest::strategy::Strategy;
use proptest::test_runner::{TestCaseError, TestRunner};
use trace_lang::sema::NoEnv;

use super::codegen::{self, CodegenOptions, MAX_INSNS};
use super::object_file;
use fuzz_gen::assert_located;

/// Returns whether code was generated.
fn compile(src: &str) -> Result<bool, TestCaseError> {
    let (program, analysis) = match trace_lang::check(src, &NoEnv) {
        Ok(x) => x,
        Err(d) => {
            assert_located(&d, src)?;
            return Ok(false);
        }
    };
    let opts = CodegenOptions {
        params: vec!["1".into(), "x".into()],
        ..Default::default()
    };
    match codegen::generate(&program, &analysis, &NoEnv, &opts) {
        Ok(compiled) => {
            for p in &compiled.programs {
                proptest::prop_assert!(p.code.insns.len() <= MAX_INSNS);
            }
            let programs: Vec<_> = compiled.programs.iter().map(|p| p.code.clone()).collect();
            object_file::emit(&programs, &compiled.maps)
                .map_err(|e| TestCaseError::fail(format!("emit: {e}")))?;
            Ok(true)
        }
        Err(d) => {
            assert_located(&d, src)?;
            Ok(false)
        }
    }
}

/// Runs on a thread with the stack the runner compiles on ([`trace_lang::STACK_SIZE`]).
fn run<S, F>(name: &'static str, default: u32, make: F)
where
    S: Strategy<Value = String>,
    F: FnOnce() -> S + Send + 'static,
{
    let t = std::thread::Builder::new()
        .stack_size(trace_lang::STACK_SIZE)
        .spawn(move || {
            let s = make();
            let cfg = fuzz_gen::config(default);
            let cases = cfg.cases;
            let mut runner = TestRunner::new(cfg);
            let generated = std::cell::Cell::new(0u32);
            let started = std::time::Instant::now();
            let r = runner.run(&s, |src| {
                if compile(&src)? {
                    generated.set(generated.get() + 1);
                }
                Ok(())
            });
            if let Err(e) = r {
                panic!("{name}: {e}");
            }
            eprintln!(
                "codegen {name}: {cases} scripts, {} compiled, in {:.1?}",
                generated.get(),
                started.elapsed()
            );
        })
        .unwrap();
    t.join().unwrap();
}

#[test]
fn fuzz_codegen_grammar() {
    run("grammar", 800, fuzz_gen::script);
}

#[test]
fn fuzz_codegen_typed() {
    run("typed", 1000, fuzz_gen::typed_script);
}

#[test]
fn fuzz_codegen_mutations() {
    run("mutations", 1500, || fuzz_gen::mutated(fuzz_gen::corpus()));
}

#[test]
fn fuzz_codegen_extremes() {
    run("extremes", 200, fuzz_gen::extreme);
}
