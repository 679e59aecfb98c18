//! The bpftrace language front end shared by `trace-runner` (which compiles and runs
//! scripts) and `kubectl-trace` (which checks scripts before it creates anything).
//!
//! Passes, one module each: [`lexer`] → [`parser`] (an [`ast::Program`] with spans) →
//! [`sema`] (types, map value kinds, probe arguments). Nothing here touches the kernel;
//! what is node-specific (which tracepoints exist and their fields) comes through the
//! [`sema::ProbeEnv`] trait, which the runner implements from tracefs and BTF.

pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod sema;
pub mod skb;
pub mod span;
pub mod tracepoint_format;
pub mod types;

pub use diag::Diagnostic;
pub use sema::{Analysis, MapInfo, NoEnv, ProbeEnv};

/// Parse a script into its syntax tree.
pub fn parse(src: &str) -> Result<ast::Program, Diagnostic> {
    parser::parse(src)
}

/// Parse and analyse a script: the AST comes back with every expression typed.
pub fn check(src: &str, env: &dyn ProbeEnv) -> Result<(ast::Program, Analysis), Diagnostic> {
    let mut program = parse(src)?;
    let analysis = sema::analyse(&mut program, env)?;
    Ok((program, analysis))
}
