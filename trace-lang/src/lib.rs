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
pub mod debuginfo;
pub mod diag;
pub mod glob;
pub mod lexer;
pub mod names;
pub mod parser;
pub mod preproc;
pub mod sema;
pub mod skb;
pub mod span;
pub mod tracepoint_format;
pub mod types;
pub mod usdt;

pub use diag::{Diagnostic, Diagnostics};
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

/// The values a script may use without defining them, given by whoever runs it: the
/// positional parameters (`$1` is `params[0]`) and `$container_pid`, the target
/// container's main process (scripts written for iovisor/kubectl-trace use it; `None`
/// when there is no target, so a use is an error). The plugin's local check and the
/// runner give the same values to [`check_with`], so a script means the same to both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Predefined {
    pub params: Vec<String>,
    pub container_pid: Option<u32>,
}

/// Parse and analyse a script: the AST comes back with every expression typed (on a
/// thread with [`STACK_SIZE`] of stack). `$container_pid` and positional parameters in
/// attach points are not known: see [`check_with`].
pub fn check(
    src: &str,
    env: &(dyn ProbeEnv + Sync),
) -> Result<(ast::Program, Analysis), Diagnostics> {
    with_stack(|| check_on_this_thread(src, env, None))
}

/// [`check`] with the predefined values: the parser puts them in place
/// ([`parser::parse_predefined`]), then the analysis reports every error it finds.
pub fn check_with(
    src: &str,
    env: &(dyn ProbeEnv + Sync),
    predefined: &Predefined,
) -> Result<(ast::Program, Analysis), Diagnostics> {
    with_stack(|| check_on_this_thread(src, env, Some(predefined)))
}

/// [`check_with`] on the calling thread, for callers already on a thread of
/// [`STACK_SIZE`] (see [`with_stack`]), e.g. to generate code right after.
pub fn check_on_this_thread(
    src: &str,
    env: &dyn ProbeEnv,
    predefined: Option<&Predefined>,
) -> Result<(ast::Program, Analysis), Diagnostics> {
    let mut program = match predefined {
        Some(p) => parser::parse_predefined(src, p)?,
        None => parser::parse(src)?,
    };
    let analysis = sema::analyse(&mut program, env)?;
    Ok((program, analysis))
}
