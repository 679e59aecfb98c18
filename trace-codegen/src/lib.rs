//! `trace-codegen`, the compiler back end: resource layout (`layout`: maps, programs,
//! call-site records), then code generation ([`codegen`]) over the
//! instruction set ([`insn`]), then object emission ([`object_file`]), and [`abi`], the
//! contract between the generated programs and the user space that loads them and reads
//! their output. The front end (lexer, parser, semantic analysis) lives in `trace-lang`.
//!
//! Pure: a typed AST and [`node_facts::NodeFacts`] (what is known of the node) in;
//! programs, the resources they need, ELF bytes and warnings out. No file system, no
//! processes, no globals, no printing (`tests/purity.rs` checks it), so every test here
//! runs without privileges. [`disasm`] lists generated code for golden tests.

pub mod abi;
pub mod codegen;
pub mod disasm;
pub mod insn;
mod layout;
pub mod node_facts;
pub mod object_file;
pub mod syscalls;
pub mod verifier;

#[cfg(test)]
mod codegen_fuzz;

/// The `crate::compile::...` paths of code written while this crate was trace-runner's
/// `compile` module, so branches from then still build once merged; remove afterwards.
#[doc(hidden)]
#[allow(unused_imports)]
pub(crate) mod compile {
    pub(crate) use crate::{codegen, disasm, insn, node_facts, object_file, syscalls, verifier};
}
