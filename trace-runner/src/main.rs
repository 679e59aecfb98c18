//! `trace-runner`: compiles bpftrace-language scripts to eBPF in-process and runs
//! them against the local kernel (no LLVM, clang, headers or bpftrace needed).
//!
//! Pipeline: `trace_lang` (lex, parse, analyse) → [`compile`] (codegen, object
//! emission) → [`runtime`] (aya load/attach, events, maps) → [`output`] (bpftrace's
//! text or JSON) through a [`sink::Sink`].

mod btf;
mod cli;
mod commands;
mod compile;
mod flame;
mod output;
mod persist;
mod pod;
mod pod_names;
mod run;
mod runtime;
mod scope;
mod sink;
mod stacks;
mod symbols;
#[cfg(test)]
mod test_util;
mod tracefs;
mod uprobes;
mod values;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, Failure};

fn main() -> ExitCode {
    // First of all: a SIGINT or SIGTERM from now on ends a run cleanly (see there).
    runtime::install_signal_handlers();
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Run(_)) {
        runtime::release_signal_handlers();
    }
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Check {
            script,
            load,
            unsafe_actions,
        } => commands::check(script, load, unsafe_actions),
        Command::List { pattern } => commands::list(pattern),
        Command::Build { script, output } => commands::build(script, output),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
