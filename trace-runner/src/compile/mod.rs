//! The compiler back end: code generation ([`codegen`]) over the instruction set
//! ([`insn`]), then object emission ([`object_file`]). The front end (lexer, parser,
//! semantic analysis) lives in the `trace-lang` crate.

pub mod codegen;
#[cfg(test)]
pub mod disasm;
pub mod insn;
pub mod node_facts;
pub mod object_file;
pub mod syscalls;
pub mod verifier;

#[cfg(test)]
mod codegen_fuzz;
