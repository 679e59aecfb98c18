//! What the debug info (DWARF) of a uprobe's binary tells the front end: the parameters
//! of its functions (name, script type, argument register) for `args->NAME`, and its C
//! types (structs and unions laid out, typedefs) for casts such as `(struct Foo *)arg0`.
//! Pure data: the runner reads the file ([`crate::sema::ProbeEnv::debug_info`]); sema
//! imports its types into the script's [`CTypes`] (after the script's own definitions,
//! before the kernel's BTF) and types `args` from the parameters.

use std::collections::HashMap;

use crate::cdecl::{CTypes, RecordDef};
use crate::types::Type;

/// The debug info of one binary or library. Empty when the file has none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DebugInfo {
    /// Parameters of each function with code (declarations left out), in order.
    pub functions: HashMap<String, Vec<Param>>,
    /// Structs and unions by name (`struct Foo`; anonymous ones under a name of their
    /// own, `struct (anonymous@0x2d)`), as [`Type::Record`] refers to them.
    pub records: HashMap<String, RecordDef>,
    /// Typedef names and the types they stand for.
    pub typedefs: HashMap<String, Type>,
}

/// One formal parameter of a function.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: String,
    /// Its script type (pointers as in kernel memory; sema marks them user pointers).
    pub ty: Type,
    /// Which integer argument register holds it at the function's entry (`0` is
    /// `arg0`), or why it cannot be read there (passed on the stack, in an SSE register,
    /// a struct by value), as the error to print.
    pub reg: Result<u8, String>,
}

impl DebugInfo {
    /// Whether the file had no debug info at all.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty() && self.records.is_empty() && self.typedefs.is_empty()
    }
}

/// Add `info`'s types to `types`, those the script does not define: the script's
/// definitions come first, then the binary's, then the kernel's BTF (as in bpftrace,
/// where a uprobe's `struct stat` is the program's, not the kernel's).
pub fn import(types: &mut CTypes, info: &DebugInfo) {
    let mut names: Vec<&String> = info.records.keys().collect();
    names.sort();
    for name in names {
        if types.record_def(name).is_none() {
            types.add_record(info.records[name].clone());
        }
    }
    let mut names: Vec<&String> = info.typedefs.keys().collect();
    names.sort();
    for name in names {
        if types.typedef(name).is_none() {
            types.add_typedef(name, info.typedefs[name].clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cdecl::Member;

    fn int() -> Type {
        Type::Int {
            bytes: 4,
            signed: true,
        }
    }

    fn foo(field: &str) -> RecordDef {
        RecordDef {
            name: "struct Foo".into(),
            size: 4,
            align: 4,
            members: vec![Member {
                name: Some(field.into()),
                offset: 0,
                ty: int(),
                bitfield: None,
            }],
        }
    }

    #[test]
    fn the_scripts_definitions_come_before_the_binarys() {
        let mut info = DebugInfo::default();
        info.records.insert("struct Foo".into(), foo("a"));
        info.typedefs
            .insert("foo_t".into(), Type::Record("struct Foo".into()));
        info.typedefs.insert("pid_t".into(), int());

        let mut types = CTypes::default();
        import(&mut types, &info);
        assert!(types.record_field("struct Foo", "a").is_some());
        assert_eq!(
            types.typedef("foo_t"),
            Some(Type::Record("struct Foo".into()))
        );

        // A script's own `struct Foo { int b; }` and typedef stay.
        let mut types = CTypes::default();
        types.add_record(foo("b"));
        types.add_typedef("pid_t", Type::U64);
        import(&mut types, &info);
        assert!(types.record_field("struct Foo", "a").is_none());
        assert!(types.record_field("struct Foo", "b").is_some());
        assert_eq!(types.typedef("pid_t"), Some(Type::U64));
    }

    #[test]
    fn a_file_without_debug_info_is_empty() {
        assert!(DebugInfo::default().is_empty());
        let mut info = DebugInfo::default();
        info.functions.insert("main".into(), Vec::new());
        assert!(!info.is_empty());
    }
}
