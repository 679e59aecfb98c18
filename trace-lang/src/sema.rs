//! Semantic analysis: expands attach points, types every expression, decides each
//! map's key and value types, and checks calls, printf formats and arguments.
//! TODO(helper): implement `analyse`.

use std::collections::BTreeMap;

use crate::ast::{self, ProbeKind};
use crate::diag::Diagnostic;
use crate::tracepoint_format::TpField;
use crate::types::{MapValue, Type};

/// What the node offers; `None` answers mean "this environment cannot tell"
/// (e.g. the plugin on a laptop), in which case analysis accepts the probe and types
/// unknown tracepoint fields as signed 64-bit integers.
pub trait ProbeEnv {
    /// Concrete `(category, name)` tracepoints matching the pattern (`*` wildcards).
    fn tracepoints(&self, category: &str, name: &str) -> Option<Vec<(String, String)>>;
    /// The fields of a tracepoint record (common_* fields included).
    fn tracepoint_fields(&self, category: &str, name: &str) -> Option<Vec<TpField>>;
}

/// An environment that knows nothing about the node.
pub struct NoEnv;

impl ProbeEnv for NoEnv {
    fn tracepoints(&self, _: &str, _: &str) -> Option<Vec<(String, String)>> {
        None
    }
    fn tracepoint_fields(&self, _: &str, _: &str) -> Option<Vec<TpField>> {
        None
    }
}

/// One concrete attach point after wildcard expansion.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedAttach {
    pub kind: ProbeKind,
    /// Concrete parts, e.g. ["syscalls", "sys_enter_openat"].
    pub parts: Vec<String>,
    /// Full name as bpftrace prints it for `probe`, e.g. "tracepoint:syscalls:sys_enter_openat".
    pub name: String,
}

/// A map's shape, fixed by its first use.
#[derive(Debug, Clone, PartialEq)]
pub struct MapInfo {
    /// Name as written without '@' ("" for the anonymous map).
    pub name: String,
    /// Key types, empty for a keyless map; two or more for a tuple key.
    pub keys: Vec<Type>,
    pub value: MapValue,
}

/// The tables code generation needs beyond the typed AST.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Analysis {
    /// Maps by name (without '@'), so iteration is in bpftrace's print order.
    pub maps: BTreeMap<String, MapInfo>,
    /// For each probe block (same index as `Program::probes`), its concrete attach points.
    pub attach: Vec<Vec<ResolvedAttach>>,
    /// Types of scratch variables per probe block (same index as `Program::probes`).
    pub vars: Vec<BTreeMap<String, Type>>,
}

/// Type the program in place and build the tables.
pub fn analyse(program: &mut ast::Program, env: &dyn ProbeEnv) -> Result<Analysis, Diagnostic> {
    let _ = (program, env);
    todo!()
}
