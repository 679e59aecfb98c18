//! Fuzzing the front end on stable Rust (proptest): parse + analyse scripts generated
//! from the grammar, mutations of the repository's scripts, and nesting and size
//! extremes. No panic, no stack overflow (the test threads have 2 MiB stacks, like a
//! tokio worker), and every error located inside the script.
//!
//! `FUZZ_CASES=N` sets the cases per strategy (default 3000 grammar, 6000 mutations,
//! 800 extremes: 10-20 s in a debug build on 2 cores).

mod fuzz_gen;

use proptest::test_runner::TestRunner;
use trace_lang::sema::NoEnv;

use fuzz_gen::{assert_located, config};

fn front_end(src: &str) -> Result<(), proptest::test_runner::TestCaseError> {
    match trace_lang::check(src, &NoEnv) {
        Ok(_) => Ok(()),
        Err(d) => assert_located(&d, src),
    }
}

fn run<S: proptest::strategy::Strategy<Value = String>>(name: &str, default: u32, s: S) {
    let cfg = config(default);
    let cases = cfg.cases;
    let mut runner = TestRunner::new(cfg);
    let started = std::time::Instant::now();
    if let Err(e) = runner.run(&s, |src| front_end(&src)) {
        panic!("{name}: {e}");
    }
    eprintln!("{name}: {cases} scripts in {:.1?}", started.elapsed());
}

#[test]
fn fuzz_grammar() {
    run("grammar", 3000, fuzz_gen::script());
}

#[test]
fn fuzz_typed() {
    run("typed", 1000, fuzz_gen::typed_script());
}

#[test]
fn fuzz_mutations() {
    run("mutations", 6000, fuzz_gen::mutated(fuzz_gen::corpus()));
}

#[test]
fn fuzz_extremes() {
    run("extremes", 800, fuzz_gen::extreme());
}

#[test]
fn the_corpus_analyses() {
    // The mutations start from scripts the front end takes (a sanity check of the
    // corpus, not of the fuzzing).
    let corpus = fuzz_gen::corpus();
    let ok = corpus
        .iter()
        .filter(|s| trace_lang::parse(s).is_ok())
        .count();
    assert_eq!(ok, corpus.len());
}
