//! The `trace-runner` binary: see the library ([`trace_runner`]) for what it does.

use std::process::ExitCode;

fn main() -> ExitCode {
    // First of all: a SIGINT or SIGTERM from now on ends a run cleanly (see there).
    trace_runner::install_signal_handlers();
    trace_runner::main(std::env::args_os().collect())
}
