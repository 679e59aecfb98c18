//! The runner's `run` arguments as the plugin builds them: the flag names (which the
//! runner's clap parser uses too, so they are written once), [`RunnerArgs`] and its
//! [`RunnerArgs::to_argv`], and [`option_value`] for reading a value back from the argv
//! of an existing Job.

use std::time::Duration;

/// The subcommand that runs a trace.
pub const RUN: &str = "run";

/// Long option names of `trace-runner run` (without the leading `--`).
pub mod flag {
    pub const CGROUP: &str = "cgroup";
    pub const PID: &str = "pid";
    pub const DEADLINE: &str = "deadline";
    pub const FORMAT: &str = "format";
    pub const POD_UID: &str = "pod-uid";
    pub const POD: &str = "pod";
    pub const CONTAINER_ID: &str = "container-id";
    pub const CONTAINER_NAME: &str = "container-name";
    pub const HOST_LOGS: &str = "host-logs";
    pub const HOST_PROC: &str = "host-proc";
    pub const OUTPUT_DIR: &str = "output-dir";
    pub const TRACE_ID: &str = "trace-id";
    pub const TARGET: &str = "target";
    pub const UPROBE_TARGET: &str = "uprobe-target";
    pub const SAMPLE_HZ: &str = "sample-hz";
    pub const FLAMEGRAPH: &str = "flamegraph";
    pub const UNSAFE: &str = "unsafe";
    pub const COMMAND: &str = "command";
    pub const QUIET: &str = "quiet";
    pub const OUTPUT: &str = "output";
    /// After the maps printed at exit, one line with them in machine-readable form
    /// ([`crate::maps`]), for the plugin's `--merge`.
    pub const EMIT_MAPS: &str = "emit-maps";
    /// The program text (a short option only: `-e PROGRAM`).
    pub const PROGRAM: char = 'e';
}

/// Default of `--host-proc`.
pub const DEFAULT_HOST_PROC: &str = "/proc";
/// Default of `--host-logs`.
pub const DEFAULT_HOST_LOGS: &str = "/var/log";

/// `--format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OutputFormat {
    #[default]
    Text,
    Json,
    Folded,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Json => "json",
            OutputFormat::Folded => "folded",
        }
    }
}

/// Where the program comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Program {
    /// `-e PROGRAM`.
    Inline(String),
    /// A script file (or compiled object) on the runner's filesystem.
    File(String),
}

/// `trace-runner run`'s arguments. [`Default`] is what the runner assumes for a flag
/// that is not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnerArgs {
    pub program: Program,
    /// `$1`, `$2`, ...
    pub params: Vec<String>,
    pub cgroup: Option<String>,
    pub pid: Option<u32>,
    pub deadline: Option<Duration>,
    pub format: OutputFormat,
    pub pod_uids: Vec<String>,
    /// `NAMESPACE/NAME`.
    pub pod_names: Vec<String>,
    pub container_ids: Vec<String>,
    pub container_names: Vec<String>,
    pub host_logs: String,
    pub host_proc: String,
    pub output_dir: Option<String>,
    pub trace_id: Option<String>,
    pub target: Option<String>,
    pub uprobe_target: Option<String>,
    pub sample_hz: Option<u64>,
    pub flamegraph: Option<String>,
    pub unsafe_actions: bool,
    pub command: Option<String>,
    pub quiet: bool,
    pub output: Option<String>,
    /// `--emit-maps`: write the [`crate::maps`] line at exit.
    pub emit_maps: bool,
}

impl Default for RunnerArgs {
    fn default() -> Self {
        RunnerArgs {
            program: Program::Inline(String::new()),
            params: Vec::new(),
            cgroup: None,
            pid: None,
            deadline: None,
            format: OutputFormat::Text,
            pod_uids: Vec::new(),
            pod_names: Vec::new(),
            container_ids: Vec::new(),
            container_names: Vec::new(),
            host_logs: DEFAULT_HOST_LOGS.to_string(),
            host_proc: DEFAULT_HOST_PROC.to_string(),
            output_dir: None,
            trace_id: None,
            target: None,
            uprobe_target: None,
            sample_hz: None,
            flamegraph: None,
            unsafe_actions: false,
            command: None,
            quiet: false,
            output: None,
            emit_maps: false,
        }
    }
}

/// A duration as the runner's `--deadline` reads it: whole seconds as `30s`, anything
/// else in milliseconds (`1500ms`; finer parts are dropped).
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

impl RunnerArgs {
    /// The command line, starting with the `run` subcommand: options that differ from the
    /// defaults (as `--flag VALUE`, or `--flag=VALUE` when the value starts with `-`), then
    /// `--` and the script file or nothing, then the parameters, which therefore can never
    /// be taken for options.
    pub fn to_argv(&self) -> Vec<String> {
        let mut a = Argv(vec![RUN.to_string()]);
        a.opt(flag::CGROUP, self.cgroup.as_deref());
        a.opt(flag::PID, self.pid.map(|p| p.to_string()).as_deref());
        a.opt(
            flag::DEADLINE,
            self.deadline.map(format_duration).as_deref(),
        );
        if self.format != OutputFormat::Text {
            a.opt(flag::FORMAT, Some(self.format.as_str()));
        }
        if self.host_logs != DEFAULT_HOST_LOGS {
            a.opt(flag::HOST_LOGS, Some(&self.host_logs));
        }
        if self.host_proc != DEFAULT_HOST_PROC {
            a.opt(flag::HOST_PROC, Some(&self.host_proc));
        }
        a.many(flag::POD, &self.pod_names);
        a.many(flag::CONTAINER_NAME, &self.container_names);
        a.many(flag::POD_UID, &self.pod_uids);
        a.many(flag::CONTAINER_ID, &self.container_ids);
        a.opt(flag::TARGET, self.target.as_deref());
        a.opt(flag::OUTPUT_DIR, self.output_dir.as_deref());
        a.opt(flag::TRACE_ID, self.trace_id.as_deref());
        a.opt(flag::UPROBE_TARGET, self.uprobe_target.as_deref());
        a.opt(
            flag::SAMPLE_HZ,
            self.sample_hz.map(|n| n.to_string()).as_deref(),
        );
        a.opt(flag::FLAMEGRAPH, self.flamegraph.as_deref());
        a.switch(flag::UNSAFE, self.unsafe_actions);
        a.opt(flag::COMMAND, self.command.as_deref());
        a.switch(flag::QUIET, self.quiet);
        a.opt(flag::OUTPUT, self.output.as_deref());
        a.switch(flag::EMIT_MAPS, self.emit_maps);
        let mut argv = a.0;
        match &self.program {
            Program::Inline(text) => {
                // A text that starts with `-` is attached (`-e-x`), or it would read as
                // an option; others are a word of their own (`-e=x` would lose the `=`).
                if text.starts_with('-') {
                    argv.push(format!("-{}{text}", flag::PROGRAM));
                } else {
                    argv.push(format!("-{}", flag::PROGRAM));
                    argv.push(text.clone());
                }
                argv.push("--".to_string());
            }
            Program::File(file) => {
                argv.push("--".to_string());
                argv.push(file.clone());
            }
        }
        argv.extend(self.params.iter().cloned());
        argv
    }
}

struct Argv(Vec<String>);

impl Argv {
    fn opt(&mut self, name: &str, value: Option<&str>) {
        let Some(v) = value else { return };
        if v.starts_with('-') {
            self.0.push(format!("--{name}={v}"));
        } else {
            self.0.push(format!("--{name}"));
            self.0.push(v.to_string());
        }
    }

    fn many(&mut self, name: &str, values: &[String]) {
        for v in values {
            self.opt(name, Some(v));
        }
    }

    fn switch(&mut self, name: &str, on: bool) {
        if on {
            self.0.push(format!("--{name}"));
        }
    }
}

/// The value of option `--name` in a runner argv (as `--name VALUE` or `--name=VALUE`;
/// the last one counts, nothing after `--`).
pub fn option_value<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    let mut found = None;
    let mut words = argv.iter();
    while let Some(w) = words.next() {
        if w == "--" {
            break;
        }
        if *w == long {
            found = words.next().map(String::as_str);
        } else if let Some(v) = w.strip_prefix(&long).and_then(|r| r.strip_prefix('=')) {
            found = Some(v);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_of_a_node_trace() {
        let args = RunnerArgs {
            program: Program::File("/programs/program.bt".into()),
            params: vec!["-5".into(), "--pid".into()],
            deadline: Some(Duration::from_secs(3600)),
            host_proc: "/host/proc".into(),
            target: Some("node/worker-1".into()),
            ..RunnerArgs::default()
        };
        assert_eq!(
            args.to_argv(),
            [
                "run",
                "--deadline",
                "3600s",
                "--host-proc",
                "/host/proc",
                "--target",
                "node/worker-1",
                "--",
                "/programs/program.bt",
                "-5",
                "--pid"
            ]
        );
    }

    #[test]
    fn hyphen_values_and_inline_programs() {
        let args = RunnerArgs {
            program: Program::Inline("-x".into()),
            target: Some("-t".into()),
            deadline: Some(Duration::from_millis(1500)),
            quiet: true,
            emit_maps: true,
            ..RunnerArgs::default()
        };
        let argv = args.to_argv();
        assert_eq!(
            argv,
            [
                "run",
                "--deadline",
                "1500ms",
                "--target=-t",
                "--quiet",
                "--emit-maps",
                "-e-x",
                "--"
            ]
        );
        assert_eq!(option_value(&argv, flag::TARGET), Some("-t"));
        assert_eq!(option_value(&argv, flag::DEADLINE), Some("1500ms"));
        assert_eq!(option_value(&argv, flag::OUTPUT_DIR), None);
        // After `--`, words are parameters.
        let argv: Vec<String> = ["run", "--", "f", "--output-dir", "x"]
            .map(String::from)
            .to_vec();
        assert_eq!(option_value(&argv, flag::OUTPUT_DIR), None);
    }
}
