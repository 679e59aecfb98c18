//! The live node's facts for code generation ([`NodeFacts`]): tracepoint formats and
//! kernel types come from [`Tracefs`]'s [`trace_lang::ProbeEnv`] (tracefs and BTF, cached
//! there), kernel symbols from `/proc/kallsyms` ([`crate::symbols`]), the pid namespace
//! from `/proc/self/ns/pid`.

use crate::compile::node_facts::NodeFacts;
use crate::tracefs::Tracefs;

/// The inode number of the initial pid namespace (`PROC_PID_INIT_INO`).
const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// `(dev, inode)` of this process's pid namespace when it is not the initial one.
fn own_pid_namespace() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata("/proc/self/ns/pid").ok()?;
    (m.ino() != INIT_PID_NS_INO).then(|| (m.dev(), m.ino()))
}

impl NodeFacts for Tracefs {
    fn kernel_symbol(&self, name: &str) -> Option<u64> {
        crate::symbols::kernel_address(name)
    }

    fn kallsyms_lists_functions_only(&self) -> bool {
        crate::symbols::kernel_lists_functions_only()
    }

    fn pid_namespace(&self) -> Option<(u64, u64)> {
        own_pid_namespace()
    }
}

/// Fixed node facts read from test data (`tests/golden/facts/`): a kernel BTF
/// (`vmlinux.btf.gz`), tracepoint format files (`tracepoints.txt.gz`: each one after a
/// `=== category:name` line), kernel symbols (`kallsyms.txt`, `/proc/kallsyms` lines) and
/// the initial pid namespace, so code generated against them depends on nothing of the
/// machine running the test. One uprobe target has debug info, [`fixed::UPROBE_TEST`]
/// (bpftrace's `testprogs/uprobe_test`); every other has none.
#[cfg(test)]
pub mod fixed {
    use std::collections::{BTreeMap, HashMap};
    use std::io::Read;
    use std::path::Path;
    use std::sync::Arc;

    use trace_lang::cdecl::{Member, RecordDef};
    use trace_lang::debuginfo::{DebugInfo, Param};

    use trace_lang::sema::{FieldInfo, FuncSignature};
    use trace_lang::tracepoint_format::{parse_format, TpField};
    use trace_lang::types::Type;
    use trace_lang::ProbeEnv;

    use crate::btf::KernelTypes;
    use crate::compile::node_facts::NodeFacts;
    use crate::tracefs::glob_match;

    pub struct FixedFacts {
        btf: KernelTypes,
        /// Format file text by `(category, name)`.
        formats: BTreeMap<(String, String), String>,
        symbols: HashMap<String, u64>,
    }

    fn gunzip(path: &Path) -> Vec<u8> {
        let file = std::fs::File::open(path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(file)
            .read_to_end(&mut out)
            .unwrap_or_else(|e| panic!("cannot decompress {}: {e}", path.display()));
        out
    }

    /// The `(category, name) -> format` table of a `=== category:name` separated text.
    pub fn parse_formats(text: &str) -> BTreeMap<(String, String), String> {
        let mut formats = BTreeMap::new();
        for chunk in text.split("=== ").filter(|c| !c.is_empty()) {
            let (head, body) = chunk.split_once('\n').unwrap_or((chunk, ""));
            if let Some((category, name)) = head.split_once(':') {
                formats.insert((category.to_string(), name.to_string()), body.to_string());
            }
        }
        formats
    }

    /// `name -> address` of `/proc/kallsyms` lines.
    pub fn parse_kallsyms(text: &str) -> HashMap<String, u64> {
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let _kind = parts.next()?;
                Some((parts.next()?.to_string(), addr))
            })
            .collect()
    }

    /// The uprobe target with debug info: `int function1(int *n, char c)`,
    /// `struct Foo *function2(struct Foo *foo1, struct Foo *foo2)` and `struct Foo {
    /// int a; char b[10]; int c[3]; }`, as gcc describes bpftrace's `uprobe_test`.
    pub const UPROBE_TEST: &str = "/fixtures/uprobe_test";

    fn uprobe_test() -> DebugInfo {
        let int = Type::Int {
            bytes: 4,
            signed: true,
        };
        let foo = Type::Ptr {
            to: Box::new(Type::Record("struct Foo".into())),
            user: false,
        };
        let param = |name: &str, ty: &Type, reg| Param {
            name: name.into(),
            ty: ty.clone(),
            reg: Ok(reg),
        };
        let member = |name: &str, offset, ty| Member {
            name: Some(name.into()),
            offset,
            ty,
            bitfield: None,
        };
        let int_ptr = Type::Ptr {
            to: Box::new(int.clone()),
            user: false,
        };
        let char_ty = Type::Int {
            bytes: 1,
            signed: true,
        };
        DebugInfo {
            functions: HashMap::from([
                (
                    "function1".into(),
                    vec![param("n", &int_ptr, 0), param("c", &char_ty, 1)],
                ),
                (
                    "function2".into(),
                    vec![param("foo1", &foo, 0), param("foo2", &foo, 1)],
                ),
            ]),
            records: HashMap::from([(
                "struct Foo".into(),
                RecordDef {
                    name: "struct Foo".into(),
                    size: 28,
                    align: 4,
                    members: vec![
                        member("a", 0, int.clone()),
                        member("b", 4, Type::Str(10)),
                        member(
                            "c",
                            16,
                            Type::Array {
                                elem: Box::new(int.clone()),
                                len: 3,
                            },
                        ),
                    ],
                },
            )]),
            typedefs: HashMap::new(),
        }
    }

    impl FixedFacts {
        pub fn load(dir: &Path) -> FixedFacts {
            let btf = KernelTypes::parse(gunzip(&dir.join("vmlinux.btf.gz")))
                .expect("tests/golden/facts/vmlinux.btf.gz is not valid BTF");
            let formats = String::from_utf8(gunzip(&dir.join("tracepoints.txt.gz")))
                .expect("tracepoints.txt.gz is not UTF-8");
            let kallsyms = std::fs::read_to_string(dir.join("kallsyms.txt"))
                .expect("cannot read tests/golden/facts/kallsyms.txt");
            FixedFacts {
                btf,
                formats: parse_formats(&formats),
                symbols: parse_kallsyms(&kallsyms),
            }
        }
    }

    impl ProbeEnv for FixedFacts {
        fn tracepoints(&self, category: &str, name: &str) -> Option<Vec<(String, String)>> {
            Some(
                self.formats
                    .keys()
                    .filter(|(c, n)| glob_match(category, c) && glob_match(name, n))
                    .cloned()
                    .collect(),
            )
        }

        fn tracepoint_fields(&self, category: &str, name: &str) -> Option<Vec<TpField>> {
            let text = self
                .formats
                .get(&(category.to_string(), name.to_string()))?;
            Some(parse_format(text, category == "syscalls"))
        }

        fn has_kernel_types(&self) -> bool {
            true
        }

        fn record_field(&self, record: &str, field: &str) -> Option<FieldInfo> {
            self.btf.record_field(record, field)
        }

        fn type_size(&self, name: &str) -> Option<u64> {
            self.btf.type_size(name)
        }

        fn typedef(&self, name: &str) -> Option<Type> {
            self.btf.typedef(name)
        }

        fn enum_value(&self, name: &str) -> Option<i64> {
            self.btf.enum_value(name)
        }

        fn debug_info(&self, path: &str) -> Option<Arc<DebugInfo>> {
            Some(Arc::new(if path == UPROBE_TEST {
                uprobe_test()
            } else {
                DebugInfo::default()
            }))
        }

        fn kfunc_signature(&self, module: &str, func: &str) -> Option<FuncSignature> {
            // The fixed facts hold the kernel's own BTF only.
            (module == "vmlinux")
                .then(|| self.btf.func_signature(func))
                .flatten()
        }
    }

    impl NodeFacts for FixedFacts {
        fn kernel_symbol(&self, name: &str) -> Option<u64> {
            self.symbols.get(name).copied()
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn formats_split_on_their_headers() {
            let t = parse_formats("=== a:b\nname: b\nformat:\n=== sched:x_y\nname: x_y\n");
            assert_eq!(t.len(), 2);
            assert_eq!(t[&("a".into(), "b".into())], "name: b\nformat:\n");
            assert_eq!(t[&("sched".into(), "x_y".into())], "name: x_y\n");
        }

        #[test]
        fn kallsyms_lines_give_addresses() {
            let s = parse_kallsyms("ffffffff81000000 T _stext\nffffffff82a3b4c0 D avenrun\n");
            assert_eq!(s["avenrun"], 0xffff_ffff_82a3_b4c0);
            assert_eq!(s.len(), 2);
        }
    }
}
