//! `trace-runner` as a library: compiles bpftrace-language scripts to eBPF in-process and runs
//! them against the local kernel (no LLVM, clang, headers or bpftrace needed).
//!
//! Pipeline: `trace_lang` (lex, parse, analyse) → [`compile`] (codegen, object
//! emission) → [`runtime`] (aya load/attach, events, maps) → [`output`] (bpftrace's
//! text or JSON) through a [`sink::Sink`].
//!
//! The binary (`main.rs`) installs the signal handlers, then calls [`main`].

mod bpf_info;
mod bpftrace_cli;
mod btf;
mod cli;
mod commands;
mod dwarf;
mod facts;
mod flame;
mod folded;
#[cfg(test)]
mod golden;
mod ld_cache;
mod output;
mod persist;
mod pod;
mod pod_names;
mod run;
mod run_record;
mod runtime;
mod scope;
mod sink;
mod stacks;
mod symbols;
mod sys;
#[cfg(test)]
mod test_util;
mod tracefs;
mod uprobes;
mod usdt;
mod values;

// The compiler back end and the kernel/user contract are the trace-codegen crate; these
// names keep the `crate::compile::...` and `crate::abi::...` paths.
use trace_codegen as compile;
use trace_codegen::abi;

use std::ffi::OsString;
use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command, Failure};

/// From now on a SIGINT or SIGTERM ends a run cleanly (see [`runtime::install_signal_handlers`]);
/// call it first of all, before any thread starts.
pub fn install_signal_handlers() {
    runtime::install_signal_handlers();
}

/// The command line `argv` (program name first): bpftrace's when invoked under the name
/// `bpftrace` or as `trace-runner bpftrace`, else the runner's subcommands.
pub fn main(argv: Vec<OsString>) -> ExitCode {
    // bpftrace's command line: under the name `bpftrace` (a symlink), or `trace-runner bpftrace`.
    let bpftrace_args = if argv
        .first()
        .is_some_and(|a| bpftrace_cli::invoked_as_bpftrace(a))
    {
        Some(&argv[1..])
    } else if argv.get(1).is_some_and(|a| a == "bpftrace") {
        Some(&argv[2..])
    } else {
        None
    };
    if let Some(args) = bpftrace_args {
        let args: Option<Vec<String>> = args.iter().map(|a| a.clone().into_string().ok()).collect();
        let Some(args) = args else {
            eprintln!("ERROR: arguments must be UTF-8 text");
            return ExitCode::from(trace_contract::exit::FAILURE);
        };
        let name = match &argv[0] {
            a if bpftrace_cli::invoked_as_bpftrace(a) => a.to_string_lossy().into_owned(),
            _ => "bpftrace".to_string(),
        };
        return bpftrace_cli::main(&name, &args);
    }
    let cli = Cli::parse_from(&argv);
    if !matches!(cli.command, Command::Run(_)) {
        runtime::release_signal_handlers();
    }
    let result = match cli.command {
        Command::Run(args) => run::run(*args),
        Command::Check {
            script,
            attach: true,
            unsafe_actions,
            ..
        } => commands::check_attach(script, unsafe_actions),
        Command::Check {
            script,
            load,
            unsafe_actions,
            attach: false,
        } => commands::check(script, load, unsafe_actions),
        Command::List { pattern } => commands::list(pattern),
        Command::Build { script, output } => commands::build(script, output),
        Command::Stop { proc_dir } => commands::stop(&proc_dir),
        // Handled before clap (see above); kept for `--help`.
        Command::Bpftrace { args } => return bpftrace_cli::main("bpftrace", &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(msg, code)) => {
            eprintln!("{msg}");
            ExitCode::from(code)
        }
    }
}
