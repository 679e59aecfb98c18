//! The subcommands of `kubectl trace`, one module each: run, attach, get, logs, delete,
//! completion and version. Shared Kubernetes logic lives outside (client, manifest, target).

pub mod attach;
pub mod completion;
pub mod delete;
pub mod get;
pub mod logs;
pub mod run;
pub mod version;
