//! The contract between the `kubectl-trace` plugin and `trace-runner`, written once for
//! both: the runner's arguments ([`args`]: flag names and the argv builder the plugin
//! uses; the runner parses them with clap), `meta.json` ([`meta`], versioned), run
//! directory names and their order ([`rundir`]), exit codes ([`exit`]) and the
//! `$container_pid` convention ([`container_pid`]), and the machine-readable form of a run's
//! final maps that `--merge` reads ([`maps`], versioned).
//!
//! Pure data and formatting: no I/O, no kube, no aya, so it builds wherever the plugin does.

pub mod args;
pub mod container_pid;
pub mod exit;
pub mod maps;
pub mod meta;
pub mod rundir;

pub use args::{OutputFormat, Program, RunnerArgs};
pub use meta::{Meta, Status, META_VERSION};
