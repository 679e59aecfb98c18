//! DWARF debug info of uprobe targets (read with `gimli`): the parameters of each
//! function, named and typed in C as bpftrace's `-lv` prints them (`int argc`,
//! `struct Foo* foo1`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use gimli::{AttributeValue, DwTag, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// `{function: ["TYPE NAME", ...]}` for every function the file's DWARF describes
/// (empty without debug info); `Err` when the file is unreadable or not ELF.
pub fn function_params(file: &Path) -> Result<HashMap<String, Vec<String>>, String> {
    let data = std::fs::read(file).map_err(|e| e.to_string())?;
    let elf = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let endian = if elf.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    };
    let sections = gimli::DwarfSections::load(|id| -> Result<Cow<[u8]>, gimli::Error> {
        Ok(elf
            .section_by_name(id.name())
            .and_then(|s| s.uncompressed_data().ok())
            .unwrap_or(Cow::Borrowed(&[])))
    })
    .map_err(|e| e.to_string())?;
    let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
    let mut out = HashMap::new();
    let mut headers = dwarf.units();
    while let Ok(Some(header)) = headers.next() {
        let Ok(unit) = dwarf.unit(header) else {
            continue;
        };
        collect_unit(&dwarf, &unit, &mut out).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

fn collect_unit(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    out: &mut HashMap<String, Vec<String>>,
) -> gimli::Result<()> {
    let mut entries = unit.entries();
    // The function whose parameters follow (depth of its entry).
    let mut current: Option<(String, isize)> = None;
    while let Some(entry) = entries.next_dfs()? {
        let depth = entry.depth();
        if current.as_ref().is_some_and(|(_, d)| depth <= *d) {
            current = None;
        }
        match entry.tag() {
            gimli::DW_TAG_subprogram => {
                let name = entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| dwarf.attr_string(unit, v).ok())
                    .map(|s| s.to_string_lossy().into_owned());
                // Declarations have no code to probe.
                let declaration = matches!(
                    entry.attr_value(gimli::DW_AT_declaration),
                    Some(AttributeValue::Flag(true))
                );
                current = match name {
                    Some(n) if !declaration => {
                        out.entry(n.clone()).or_default();
                        Some((n, depth))
                    }
                    _ => None,
                };
            }
            gimli::DW_TAG_formal_parameter => {
                let Some((func, d)) = &current else {
                    continue;
                };
                if depth != d + 1 {
                    continue;
                }
                let name = entry
                    .attr_value(gimli::DW_AT_name)
                    .and_then(|v| dwarf.attr_string(unit, v).ok())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let ty = match entry.attr_value(gimli::DW_AT_type) {
                    Some(AttributeValue::UnitRef(off)) => type_name(dwarf, unit, off, 0),
                    _ => "void".into(),
                };
                if let Some(params) = out.get_mut(func) {
                    params.push(format!("{ty} {name}").trim_end().to_string());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// A type as C names it, the way bpftrace prints it (`char**`, `struct Foo*`).
fn type_name(
    dwarf: &gimli::Dwarf<R>,
    unit: &gimli::Unit<R>,
    off: UnitOffset,
    depth: u32,
) -> String {
    let Ok(entry) = unit.entry(off) else {
        return "?".into();
    };
    let name = entry
        .attr_value(gimli::DW_AT_name)
        .and_then(|v| dwarf.attr_string(unit, v).ok())
        .map(|s| s.to_string_lossy().into_owned());
    let inner = || match entry.attr_value(gimli::DW_AT_type) {
        Some(AttributeValue::UnitRef(o)) if depth < 16 => type_name(dwarf, unit, o, depth + 1),
        _ => "void".into(),
    };
    let tagged = |kw: &str| format!("{kw} {}", name.clone().unwrap_or_default());
    let tag: DwTag = entry.tag();
    match tag {
        gimli::DW_TAG_pointer_type => format!("{}*", inner()),
        gimli::DW_TAG_const_type => format!("const {}", inner()),
        gimli::DW_TAG_volatile_type => format!("volatile {}", inner()),
        gimli::DW_TAG_structure_type => tagged("struct"),
        gimli::DW_TAG_union_type => tagged("union"),
        gimli::DW_TAG_enumeration_type => tagged("enum"),
        gimli::DW_TAG_array_type => format!("{}[]", inner()),
        _ => name.unwrap_or_else(inner),
    }
}
