//! `kubectl-trace`: the kubectl plugin that runs bpftrace-language traces (or compiled
//! eBPF objects) on Kubernetes nodes and pods. kubectl finds it on PATH, so
//! `kubectl trace ...` works. This file holds the command line, the dispatch and the
//! error printing: one clear line on stderr, exit 2 for script errors, 1 otherwise.

mod client;
mod cmd;
mod errors;
mod jsonpath;
mod kubeconfig;
mod kubectl_complete;
mod manifest;
mod merge;
mod names;
mod persisted;
mod progress;
mod reply;
mod script;
mod target;
mod tracejob;
mod util;

#[cfg(test)]
mod exec_tests;
#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod mock_tests;
#[cfg(test)]
mod rbac_tests;
#[cfg(test)]
mod schema_tests;

use std::process::ExitCode;

use cmd::{attach, completion, delete, get, logs, run, version};

use clap::{Parser, Subcommand};

use crate::errors::Error;
use crate::kubeconfig::GlobalArgs;

const ABOUT: &str = "Run bpftrace-language traces on Kubernetes nodes and pods.";

const LONG_ABOUT: &str = "\
Run bpftrace-language traces on Kubernetes nodes and pods.

The script is checked locally, then a privileged Job running the trace-runner image is
created on each node concerned (pinned with nodeName), and its output is read through
the pod logs. Traces are addressed by their id (or name, kubectl-trace-<id>).";

const EXAMPLES: &str = "\
Examples:
  # Count syscalls per process on a node for 30s and print the result
  kubectl trace run node/worker-1 -a --deadline 30s \\
    -e 'tracepoint:raw_syscalls:sys_enter { @[comm] = count(); }'

  # Trace a pod's containers with a script file, and follow the output
  kubectl trace run pod/web-0 -n prod -f opensnoop.bt -a

  # List, read and delete traces
  kubectl trace get
  kubectl trace logs k3x9q2m7fa
  kubectl trace delete k3x9q2m7fa";

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-trace",
    bin_name = "kubectl trace",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a trace on a node, a pod, a workload's pods or pods selected by label
    #[command(after_help = run::EXAMPLES)]
    Run(Box<run::RunArgs>),
    /// List traces
    #[command(after_help = get::EXAMPLES)]
    Get(get::GetArgs),
    /// Print the output of a trace
    #[command(after_help = logs::EXAMPLES, visible_alias = "log")]
    Logs(logs::LogsArgs),
    /// Follow the output of a running trace (Ctrl-C stops it gracefully)
    #[command(after_help = attach::EXAMPLES)]
    Attach(attach::AttachArgs),
    /// Delete traces (their Jobs, CronJobs, ConfigMaps and pods)
    #[command(after_help = delete::EXAMPLES)]
    Delete(delete::DeleteArgs),
    /// Print the plugin version and its default runner image
    #[command(after_help = "Examples:\n  kubectl trace version\n  kubectl trace version -o json")]
    Version(version::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell)
    #[command(after_help = completion::EXAMPLES)]
    Completion(completion::CompletionArgs),
}

async fn dispatch(cli: Cli) -> Result<(), Error> {
    let g = &cli.global;
    match cli.command {
        Command::Run(a) => run::execute(*a, g).await,
        Command::Get(a) => get::execute(a, g).await,
        Command::Logs(a) => logs::execute(a, g).await,
        Command::Attach(a) => attach::execute(a, g).await,
        Command::Delete(a) => delete::execute(a, g).await,
        Command::Version(a) => version::execute(a, &progress::Out::stdout()),
        Command::Completion(a) => completion::execute(a, &progress::Out::stdout()),
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::from(errors::EXIT_FAILURE as u8);
        }
    };
    // Run as `kubectl_complete-trace` (a link): kubectl asks for completions.
    let argv0 = std::env::args_os().next().unwrap_or_default();
    let invoked = std::path::Path::new(&argv0)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if invoked == kubectl_complete::EXECUTABLE {
        let words: Vec<String> = std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        print!("{}", runtime.block_on(kubectl_complete::complete(words)));
        return ExitCode::SUCCESS;
    }
    let cli = Cli::parse();
    match runtime.block_on(dispatch(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match &e {
                // Already `FILE:LINE:COL: error: ...` with the line and the caret.
                Error::Script(s) => eprintln!("{s}"),
                other => eprintln!("error: {other}"),
            }
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn hidden_aliases_parse() {
        let cli = Cli::try_parse_from([
            "kubectl-trace",
            "run",
            "node/n1",
            "-e",
            "BEGIN {}",
            "--imagename",
            "img:1",
            "--deadline",
            "120",
            "--deadline-grace-period",
            "15s",
            "--fetch-headers",
            "--serviceaccount",
            "tracer",
            "--target-namespace",
            "apps",
            "-n",
            "tracing",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.image.as_deref(), Some("img:1"));
        assert_eq!(r.deadline.as_deref(), Some("120"));
        assert_eq!(r.grace, "15s");
        assert!(r.fetch_headers);
        assert_eq!(r.service_account.as_deref(), Some("tracer"));
        assert_eq!(r.target_namespace.as_deref(), Some("apps"));
        assert_eq!(cli.global.namespace.as_deref(), Some("tracing"));
        let cli = Cli::try_parse_from(["kubectl-trace", "run", "node/n1", "-e", "x", "--dry-run"])
            .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.dry_run.as_deref(), Some("client"));
        let cli =
            Cli::try_parse_from(["kubectl-trace", "-n", "x", "get", "-A", "-o", "wide"]).unwrap();
        assert!(matches!(cli.command, Command::Get(_)));
        // kubectl's and iovisor's forms: `log`, `run NODE`, `run pod/NAME CONTAINER`.
        let cli = Cli::try_parse_from(["kubectl-trace", "log", "abc", "-f"]).unwrap();
        assert!(matches!(cli.command, Command::Logs(l) if l.follow && l.trace == "abc"));
        let cli = Cli::try_parse_from([
            "kubectl-trace",
            "run",
            "pod/web-0",
            "nginx",
            "-e",
            "x",
            "--",
            "7",
        ])
        .unwrap();
        let Command::Run(r) = cli.command else {
            panic!()
        };
        assert_eq!(r.target.as_deref(), Some("pod/web-0"));
        assert_eq!(r.container_arg.as_deref(), Some("nginx"));
        assert_eq!(r.program_args, ["7"]);
    }
}
