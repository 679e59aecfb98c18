//! The bpftrace language front end shared by `trace-runner` (which compiles and runs
//! scripts) and `kubectl-trace` (which checks scripts before it creates anything).
//!
//! Passes, one module each: [`lexer`] → [`parser`] (an [`ast::Program`] with spans) →
//! [`sema`] (types, map value kinds, probe arguments). Nothing here touches the kernel;
//! what is node-specific (which tracepoints exist and their fields) comes through the
//! [`sema::ProbeEnv`] trait, which the runner implements from tracefs and BTF.

pub mod ast;
pub mod cdecl;
pub mod constants;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod preproc;
pub mod sema;
pub mod skb;
pub mod span;
pub mod tracepoint_format;
pub mod types;
pub mod usdt;

pub use diag::Diagnostic;
pub use sema::{Analysis, MapInfo, NoEnv, ProbeEnv};

/// The stack the recursive passes run on. Nesting is bounded ([`parser::MAX_DEPTH`]);
/// each level costs up to ~22 KiB through parser and sema in a debug build (less in a
/// release build), so the deepest accepted script needs a few MiB: more than a 2 MiB
/// thread (tokio's workers, the test harness) has. [`parse`] and [`check`] therefore run
/// on a thread of their own with this much stack (reserved address space, only touched
/// pages are used), whatever thread calls them; callers that run other recursive passes
/// over the tree (code generation) use [`with_stack`] too.
pub const STACK_SIZE: usize = 64 << 20;

/// Run `f` on a thread with [`STACK_SIZE`] bytes of stack and wait for it.
pub fn with_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|scope| {
        let worker = std::thread::Builder::new()
            .name("trace-lang".into())
            .stack_size(STACK_SIZE)
            .spawn_scoped(scope, f)
            .unwrap_or_else(|e| {
                eprintln!("error: cannot start a thread for the compiler: {e}");
                std::process::exit(1)
            });
        worker
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// Parse a script into its syntax tree (on a thread with [`STACK_SIZE`] of stack).
pub fn parse(src: &str) -> Result<ast::Program, Diagnostic> {
    with_stack(|| parser::parse(src))
}

/// Parse and analyse a script: the AST comes back with every expression typed (on a
/// thread with [`STACK_SIZE`] of stack).
pub fn check(
    src: &str,
    env: &(dyn ProbeEnv + Sync),
) -> Result<(ast::Program, Analysis), Diagnostic> {
    with_stack(|| {
        let mut program = parser::parse(src)?;
        let analysis = sema::analyse(&mut program, env)?;
        Ok((program, analysis))
    })
}
