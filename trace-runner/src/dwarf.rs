//! DWARF debug info of uprobe targets (read with `gimli`): the parameters of each
//! function, named and typed in C as bpftrace's `-lv` prints them (`int argc`,
//! `struct Foo* foo1`), and, for scripts, the file's [`DebugInfo`]: each function's
//! parameters as script types with the argument register that holds them at entry
//! (x86-64 System V), and its structs, unions and typedefs laid out. A stripped file's
//! separate debug file is found by build id or `.gnu_debuglink`, as gdb finds it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;

use gimli::{AttributeValue, DwTag, EndianSlice, RunTimeEndian, UnitOffset};
use object::{Object, ObjectSection};
use trace_lang::cdecl::{Member, RecordDef};
use trace_lang::debuginfo::{DebugInfo, Param};
use trace_lang::types::Type;

type R<'a> = EndianSlice<'a, RunTimeEndian>;

/// Where distributions install separate debug info (`/usr/lib/debug/.build-id/...`).
const DEBUG_DIR: &str = "/usr/lib/debug";

/// Run `f` over the DWARF of an ELF file (empty sections without debug info), or of its
/// separate debug file when it has none of its own; `Err` when the file is unreadable
/// or not ELF.
fn with_dwarf<T>(file: &Path, f: impl FnOnce(&gimli::Dwarf<R>) -> T) -> Result<T, String> {
    let data = std::fs::read(file).map_err(|e| e.to_string())?;
    let elf = object::File::parse(&*data).map_err(|e| e.to_string())?;
    if elf.section_by_name(".debug_info").is_none() {
        if let Some(separate) = separate_debug_file(file, &elf) {
            if let Ok(debug) = object::File::parse(&*separate) {
                return dwarf_of(&debug, f);
            }
        }
    }
    dwarf_of(&elf, f)
}

fn dwarf_of<T>(elf: &object::File, f: impl FnOnce(&gimli::Dwarf<R>) -> T) -> Result<T, String> {
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
    Ok(f(&dwarf))
}

/// The bytes of a stripped file's separate debug info, found as gdb finds it: by build
/// id under [`DEBUG_DIR`], else by its `.gnu_debuglink` name (beside the file, in its
/// `.debug/` directory, or under [`DEBUG_DIR`]) with a matching CRC.
fn separate_debug_file(file: &Path, elf: &object::File) -> Option<Vec<u8>> {
    if let Ok(Some(id)) = elf.build_id() {
        let hex: String = id.iter().map(|b| format!("{b:02x}")).collect();
        if hex.len() > 2 {
            let path = format!("{DEBUG_DIR}/.build-id/{}/{}.debug", &hex[..2], &hex[2..]);
            if let Ok(data) = std::fs::read(path) {
                return Some(data);
            }
        }
    }
    let (name, crc) = elf.gnu_debuglink().ok()??;
    let name = std::str::from_utf8(name).ok()?;
    if name.is_empty() || name.contains('/') {
        return None;
    }
    let dir = file.parent()?;
    let under_debug_dir = Path::new(DEBUG_DIR).join(dir.strip_prefix("/").unwrap_or(dir));
    [
        dir.join(name),
        dir.join(".debug").join(name),
        under_debug_dir.join(name),
    ]
    .into_iter()
    .filter(|candidate| candidate != file)
    .filter_map(|candidate| std::fs::read(candidate).ok())
    .find(|data| {
        let mut sum = flate2::Crc::new();
        sum.update(data);
        sum.sum() == crc
    })
}

/// `{function: ["TYPE NAME", ...]}` for every function the file's DWARF describes
/// (empty without debug info); `Err` when the file is unreadable or not ELF.
pub fn function_params(file: &Path) -> Result<HashMap<String, Vec<String>>, String> {
    with_dwarf(file, |dwarf| {
        let mut out = HashMap::new();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            collect_unit(dwarf, &unit, &mut out).map_err(|e| e.to_string())?;
        }
        Ok(out)
    })?
}

/// The file's [`DebugInfo`] (empty without debug info); `Err` when the file is
/// unreadable or not ELF. A unit that cannot be parsed is left out.
pub fn debug_info(file: &Path) -> Result<DebugInfo, String> {
    with_dwarf(file, |dwarf| {
        let mut info = DebugInfo::default();
        let mut headers = dwarf.units();
        while let Ok(Some(header)) = headers.next() {
            let Ok(unit) = dwarf.unit(header) else {
                continue;
            };
            let mut reader = Reader {
                dwarf,
                unit: &unit,
                info: &mut info,
            };
            // A malformed unit keeps what was read before the error.
            let _ = reader.unit();
        }
        set_alignments(&mut info);
        info
    })
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

/// How the x86-64 System V calling convention passes a parameter.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Class {
    /// An integer, pointer or enum of up to 8 bytes: the next integer register.
    Integer,
    /// `__int128`: two integer registers.
    Wide,
    /// `float`/`double`: an SSE register.
    Sse,
    /// `long double`: on the stack.
    X87,
    /// A struct or union of this many bytes, passed by value.
    Aggregate(u64),
}

/// The integer argument register of each parameter at a function's entry (`0` is
/// `rdi`, `arg0`), or why a script cannot read it there. Structs of more than 16 bytes
/// are passed on the stack; smaller ones in registers whose assignment this does not
/// work out, so the registers of later parameters are unknown.
fn assign_registers(params: &[(String, Class)]) -> Vec<Result<u8, String>> {
    let mut next = 0u8;
    let mut lost = false;
    let mut out = Vec::with_capacity(params.len());
    for (name, class) in params {
        let arg = format!("args->{name}");
        let reg = match class {
            Class::Sse => Err(format!(
                "{arg} is a floating-point argument (passed in an SSE register), which is not supported"
            )),
            Class::X87 => Err(format!(
                "{arg} is a long double (passed on the stack), which is not supported"
            )),
            Class::Aggregate(size) => {
                if *size <= 16 {
                    lost = true;
                }
                Err(format!(
                    "{arg} is a struct or union passed by value, which is not supported"
                ))
            }
            Class::Integer | Class::Wide if lost => Err(format!(
                "{arg}: its register is unknown (an earlier parameter is a struct passed by value)"
            )),
            Class::Wide => {
                next = next.saturating_add(2);
                Err(format!(
                    "{arg} is a 128-bit integer (two registers), which is not supported"
                ))
            }
            Class::Integer if next >= 6 => Err(format!(
                "{arg} is passed on the stack (a 7th or later integer argument), which is not supported"
            )),
            Class::Integer => {
                next += 1;
                Ok(next - 1)
            }
        };
        out.push(reg);
    }
    out
}

/// Fill in the alignment of every record from its members (DWARF gives sizes only).
fn set_alignments(info: &mut DebugInfo) {
    fn align(info: &DebugInfo, t: &Type, depth: u32) -> u32 {
        match t {
            Type::Int { bytes, .. } => u32::from(*bytes).max(1),
            Type::Str(_) => 1,
            Type::Array { elem, .. } => align(info, elem, depth),
            Type::Record(name) if depth < 32 => info
                .records
                .get(name)
                .map(|r| {
                    r.members
                        .iter()
                        .map(|m| align(info, &m.ty, depth + 1))
                        .max()
                        .unwrap_or(1)
                })
                .unwrap_or(1),
            _ => 8,
        }
    }
    let aligns: Vec<(String, u32)> = info
        .records
        .keys()
        .map(|name| {
            let a = align(info, &Type::Record(name.clone()), 0);
            (name.clone(), a)
        })
        .collect();
    for (name, a) in aligns {
        if let Some(r) = info.records.get_mut(&name) {
            r.align = a;
        }
    }
}

/// Reads one unit's functions and types into a [`DebugInfo`].
struct Reader<'a, 'd> {
    dwarf: &'a gimli::Dwarf<R<'d>>,
    unit: &'a gimli::Unit<R<'d>>,
    info: &'a mut DebugInfo,
}

type Entry<'d> = gimli::DebuggingInformationEntry<R<'d>>;

/// How deep type references are followed (a chain of pointers, typedefs, arrays).
const MAX_TYPE_DEPTH: u32 = 32;

impl<'d> Reader<'_, 'd> {
    fn unit(&mut self) -> gimli::Result<()> {
        let mut entries = self.unit.entries();
        while let Some(entry) = entries.next_dfs()? {
            if !matches!(
                entry.tag(),
                gimli::DW_TAG_subprogram
                    | gimli::DW_TAG_structure_type
                    | gimli::DW_TAG_class_type
                    | gimli::DW_TAG_union_type
                    | gimli::DW_TAG_typedef
            ) {
                continue;
            }
            let entry = entry.clone();
            let declaration = matches!(
                entry.attr_value(gimli::DW_AT_declaration),
                Some(AttributeValue::Flag(true))
            );
            if declaration {
                continue;
            }
            match entry.tag() {
                gimli::DW_TAG_subprogram => self.function(&entry)?,
                gimli::DW_TAG_structure_type
                | gimli::DW_TAG_class_type
                | gimli::DW_TAG_union_type => self.record(&entry)?,
                gimli::DW_TAG_typedef => {
                    if let Some(name) = self.name(&entry) {
                        if !self.info.typedefs.contains_key(&name) {
                            let ty = self.type_of(&entry, 0);
                            self.info.typedefs.insert(name, ty);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn name(&self, entry: &Entry<'d>) -> Option<String> {
        entry
            .attr_value(gimli::DW_AT_name)
            .and_then(|v| self.dwarf.attr_string(self.unit, v).ok())
            .map(|s| s.to_string_lossy().into_owned())
    }

    /// The entry an attribute refers to within this unit.
    fn referred(&self, entry: &Entry<'d>, at: gimli::DwAt) -> Option<Entry<'d>> {
        match entry.attr_value(at) {
            Some(AttributeValue::UnitRef(off)) => self.unit.entry(off).ok(),
            _ => None,
        }
    }

    /// An entry's own attribute, or that of the entry it is a concrete instance or the
    /// definition of (`DW_AT_abstract_origin`, `DW_AT_specification`).
    fn origin(&self, entry: &Entry<'d>) -> Option<Entry<'d>> {
        self.referred(entry, gimli::DW_AT_abstract_origin)
            .or_else(|| self.referred(entry, gimli::DW_AT_specification))
    }

    fn udata(entry: &Entry<'d>, at: gimli::DwAt) -> Option<u64> {
        entry.attr_value(at).and_then(|v| v.udata_value())
    }

    fn function(&mut self, entry: &Entry<'d>) -> gimli::Result<()> {
        let origin = self.origin(entry);
        let Some(name) = self
            .name(entry)
            .or_else(|| origin.as_ref().and_then(|o| self.name(o)))
        else {
            return Ok(());
        };
        if self.info.functions.contains_key(&name) {
            return Ok(());
        }
        let mut params: Vec<(String, Type, Class)> = Vec::new();
        let mut tree = self.unit.entries_tree(Some(entry.offset()))?;
        let mut children = tree.root()?.children();
        while let Some(child) = children.next()? {
            let p = child.entry();
            if p.tag() != gimli::DW_TAG_formal_parameter {
                continue;
            }
            let p_origin = self.origin(p);
            let name = self
                .name(p)
                .or_else(|| p_origin.as_ref().and_then(|o| self.name(o)))
                .unwrap_or_default();
            let typed = if p.attr_value(gimli::DW_AT_type).is_some() {
                Some(p.clone())
            } else {
                p_origin
            };
            let (ty, class) = match &typed {
                Some(t) => (self.type_of(t, 0), self.class_of(t)),
                None => (Type::U64, Class::Integer),
            };
            params.push((name, ty, class));
        }
        let classes: Vec<(String, Class)> =
            params.iter().map(|(n, _, c)| (n.clone(), *c)).collect();
        let regs = assign_registers(&classes);
        let params = params
            .into_iter()
            .zip(regs)
            .map(|((name, ty, _), reg)| Param { name, ty, reg })
            .collect();
        self.info.functions.insert(name, params);
        Ok(())
    }

    /// `struct Foo` / `union U`, or a name of its own for an anonymous one.
    fn record_name(&self, entry: &Entry<'d>) -> String {
        let kw = if entry.tag() == gimli::DW_TAG_union_type {
            "union"
        } else {
            "struct"
        };
        match self.name(entry) {
            Some(n) => format!("{kw} {n}"),
            None => {
                let at = entry
                    .offset()
                    .to_debug_info_offset(&self.unit.header)
                    .map_or(entry.offset().0, |o| o.0);
                format!("{kw} (anonymous@{at:#x})")
            }
        }
    }

    fn record(&mut self, entry: &Entry<'d>) -> gimli::Result<()> {
        let Some(size) = Self::udata(entry, gimli::DW_AT_byte_size) else {
            return Ok(());
        };
        let name = self.record_name(entry);
        if self.info.records.contains_key(&name) {
            return Ok(());
        }
        let mut members = Vec::new();
        let mut tree = self.unit.entries_tree(Some(entry.offset()))?;
        let mut children = tree.root()?.children();
        while let Some(child) = children.next()? {
            let m = child.entry();
            if m.tag() != gimli::DW_TAG_member
                || matches!(
                    m.attr_value(gimli::DW_AT_external),
                    Some(AttributeValue::Flag(true))
                )
            {
                continue;
            }
            let ty = self.type_of(m, 0);
            let byte = Self::udata(m, gimli::DW_AT_data_member_location).unwrap_or(0);
            let mut member = Member {
                name: self.name(m),
                offset: byte as u32,
                ty,
                bitfield: None,
            };
            if let Some(bits) = Self::udata(m, gimli::DW_AT_bit_size) {
                let Type::Int { bytes, .. } = member.ty else {
                    continue;
                };
                let unit_bits = u64::from(bytes) * 8;
                // DWARF 4+: bits from the record's start; DWARF 2/3: the unit's byte
                // offset, and bits from its most significant end.
                let at = match Self::udata(m, gimli::DW_AT_data_bit_offset) {
                    Some(at) => at,
                    None => match Self::udata(m, gimli::DW_AT_bit_offset) {
                        Some(hi) => (byte * 8 + unit_bits).saturating_sub(hi + bits),
                        None => byte * 8,
                    },
                };
                let unit_start = at / unit_bits * unit_bits;
                member.offset = (unit_start / 8) as u32;
                member.bitfield = Some(((at - unit_start) as u8, bits as u8));
            }
            members.push(member);
        }
        self.info.records.insert(
            name.clone(),
            RecordDef {
                name,
                size: size as u32,
                align: 1,
                members,
            },
        );
        Ok(())
    }

    /// The entry's `DW_AT_type` with typedefs and qualifiers stripped.
    fn stripped_type(&self, entry: &Entry<'d>) -> Option<Entry<'d>> {
        let mut t = self.referred(entry, gimli::DW_AT_type)?;
        for _ in 0..MAX_TYPE_DEPTH {
            match t.tag() {
                gimli::DW_TAG_typedef
                | gimli::DW_TAG_const_type
                | gimli::DW_TAG_volatile_type
                | gimli::DW_TAG_restrict_type
                | gimli::DW_TAG_atomic_type => t = self.referred(&t, gimli::DW_AT_type)?,
                _ => return Some(t),
            }
        }
        None
    }

    /// How a parameter of the entry's type is passed.
    fn class_of(&self, entry: &Entry<'d>) -> Class {
        let Some(t) = self.stripped_type(entry) else {
            return Class::Integer;
        };
        let size = Self::udata(&t, gimli::DW_AT_byte_size).unwrap_or(8);
        match t.tag() {
            gimli::DW_TAG_base_type => {
                let float = matches!(
                    t.attr_value(gimli::DW_AT_encoding),
                    Some(AttributeValue::Encoding(
                        gimli::DW_ATE_float | gimli::DW_ATE_complex_float
                    ))
                );
                match (float, size) {
                    (true, 16..) => Class::X87,
                    (true, _) => Class::Sse,
                    (false, 9..) => Class::Wide,
                    (false, _) => Class::Integer,
                }
            }
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                Class::Aggregate(size)
            }
            _ => Class::Integer,
        }
    }

    /// The script type of the entry's `DW_AT_type` (`void` when it has none).
    fn type_of(&self, entry: &Entry<'d>, depth: u32) -> Type {
        match self.referred(entry, gimli::DW_AT_type) {
            Some(t) if depth < MAX_TYPE_DEPTH => self.script_type(&t, depth + 1),
            Some(_) => Type::U64,
            None => Type::None,
        }
    }

    /// A type entry as a script type, as the kernel's BTF types are converted: `char
    /// x[N]` is a string, a `void *` points at bytes, floats are integers of their size.
    fn script_type(&self, t: &Entry<'d>, depth: u32) -> Type {
        let size = Self::udata(t, gimli::DW_AT_byte_size).unwrap_or(8);
        let int_bytes = |n: u64| {
            let n = n.clamp(1, 8) as u8;
            if n.is_power_of_two() {
                n
            } else {
                8
            }
        };
        match t.tag() {
            gimli::DW_TAG_base_type => {
                let signed = matches!(
                    t.attr_value(gimli::DW_AT_encoding),
                    Some(AttributeValue::Encoding(
                        gimli::DW_ATE_signed
                            | gimli::DW_ATE_signed_char
                            | gimli::DW_ATE_float
                            | gimli::DW_ATE_complex_float
                    ))
                );
                Type::Int {
                    bytes: int_bytes(size),
                    signed,
                }
            }
            gimli::DW_TAG_pointer_type
            | gimli::DW_TAG_reference_type
            | gimli::DW_TAG_rvalue_reference_type => {
                let to = match self.stripped_type(t) {
                    None => Type::Int {
                        bytes: 1,
                        signed: false,
                    },
                    Some(f) if f.tag() == gimli::DW_TAG_subroutine_type => return Type::U64,
                    Some(_) => match self.type_of(t, depth) {
                        Type::None => Type::Int {
                            bytes: 1,
                            signed: false,
                        },
                        to => to,
                    },
                };
                Type::Ptr {
                    to: Box::new(to),
                    user: false,
                }
            }
            gimli::DW_TAG_typedef
            | gimli::DW_TAG_const_type
            | gimli::DW_TAG_volatile_type
            | gimli::DW_TAG_restrict_type
            | gimli::DW_TAG_atomic_type => self.type_of(t, depth),
            gimli::DW_TAG_structure_type | gimli::DW_TAG_class_type | gimli::DW_TAG_union_type => {
                Type::Record(self.record_name(t))
            }
            gimli::DW_TAG_enumeration_type => {
                let signed = matches!(
                    self.stripped_type(t)
                        .and_then(|u| u.attr_value(gimli::DW_AT_encoding)),
                    Some(AttributeValue::Encoding(
                        gimli::DW_ATE_signed | gimli::DW_ATE_signed_char
                    ))
                );
                Type::Int {
                    bytes: int_bytes(Self::udata(t, gimli::DW_AT_byte_size).unwrap_or(4)),
                    signed,
                }
            }
            gimli::DW_TAG_array_type => self.array(t, depth),
            _ => Type::U64,
        }
    }

    /// `T x[A][B]`: arrays of arrays, outermost first; `char x[N]` ends in a string.
    fn array(&self, t: &Entry<'d>, depth: u32) -> Type {
        let mut dims = Vec::new();
        if let Ok(mut tree) = self.unit.entries_tree(Some(t.offset())) {
            if let Ok(root) = tree.root() {
                let mut children = root.children();
                while let Ok(Some(child)) = children.next() {
                    let s = child.entry();
                    if s.tag() != gimli::DW_TAG_subrange_type {
                        continue;
                    }
                    let len = Self::udata(s, gimli::DW_AT_count)
                        .or_else(|| Self::udata(s, gimli::DW_AT_upper_bound).map(|u| u + 1))
                        .unwrap_or(0);
                    dims.push(len as u32);
                }
            }
        }
        if dims.is_empty() {
            dims.push(0);
        }
        let is_char = self.stripped_type(t).is_some_and(|e| {
            e.tag() == gimli::DW_TAG_base_type
                && Self::udata(&e, gimli::DW_AT_byte_size) == Some(1)
                && self.name(&e).as_deref() == Some("char")
        });
        let mut ty = self.type_of(t, depth);
        if is_char {
            if let Some(last) = dims.pop() {
                ty = Type::Str(last as usize);
            }
        }
        for len in dims.into_iter().rev() {
            ty = Type::Array {
                elem: Box::new(ty),
                len,
            };
        }
        ty
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;
    use trace_lang::cdecl::CTypes;

    /// A program whose `struct Outer` has members of every kind the reader converts;
    /// it prints each member's `offsetof` and the struct's size.
    const OUTER: &str = r#"
#include <stddef.h>
#include <stdio.h>
enum Color { RED, GREEN = 5 };
struct Inner { short s; unsigned char bytes[3]; };
struct Outer {
  int a;
  char name[8];
  long grid[2][3];
  struct Inner in;
  union { int i; char c; };
  unsigned flag : 3;
  unsigned more : 5;
  enum Color color;
  void *opaque;
  char **argv;
  int (*fn)(int);
};
typedef struct Outer outer_t;
int take(outer_t *o, float f, long n, struct Inner by_value, int after)
{ return o->a + (int)f + (int)n + by_value.s + after; }
int main(void)
{
  outer_t o = { 0 };
  struct Inner in = { 0 };
  printf("a %zu\nname %zu\ngrid %zu\nin %zu\ni %zu\nc %zu\ncolor %zu\nopaque %zu\nargv %zu\nfn %zu\n",
    offsetof(struct Outer, a), offsetof(struct Outer, name), offsetof(struct Outer, grid),
    offsetof(struct Outer, in), offsetof(struct Outer, i), offsetof(struct Outer, c),
    offsetof(struct Outer, color), offsetof(struct Outer, opaque), offsetof(struct Outer, argv),
    offsetof(struct Outer, fn));
  printf("sizeof %zu\n", sizeof(struct Outer));
  return take(&o, 1.0f, 2, in, 3) == 1000;
}
"#;

    /// Build and run [`OUTER`] with gcc: the executable and what it printed; `None`
    /// (skipped with a message) without gcc, except under `CI=true`.
    fn build_outer(dir: &Path) -> Option<(std::path::PathBuf, String)> {
        let src = dir.join("outer.c");
        std::fs::write(&src, OUTER).unwrap();
        let exe = dir.join("outer");
        let built = Command::new("gcc")
            .args(["-g", "-O0", "-o"])
            .arg(&exe)
            .arg(&src)
            .status();
        match built {
            Ok(status) => assert!(status.success(), "gcc failed"),
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "gcc is missing ({e}) and CI=true"
                );
                eprintln!("skipping: gcc is not installed ({e})");
                return None;
            }
        }
        let out = Command::new(&exe).output().unwrap();
        Some((exe, String::from_utf8(out.stdout).unwrap()))
    }

    #[test]
    fn a_stripped_programs_debug_info_is_found_through_its_debuglink() {
        let dir =
            std::env::temp_dir().join(format!("trace-runner-debuglink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let Some((exe, _)) = build_outer(&dir) else {
            let _ = std::fs::remove_dir_all(&dir);
            return;
        };
        let run = |cmd: &str, args: &[&str]| {
            let out = Command::new(cmd)
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("{cmd} (binutils): {e}"));
            assert!(
                out.status.success(),
                "{cmd}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        // As distributions ship it: the debug info in outer.debug, the program stripped
        // of it and pointing at it (name and CRC).
        run("objcopy", &["--only-keep-debug", "outer", "outer.debug"]);
        run("strip", &["--strip-debug", "outer"]);
        run("objcopy", &["--add-gnu-debuglink=outer.debug", "outer"]);
        let found = debug_info(&exe).unwrap();
        // A debug file whose CRC does not match (another build) is not used.
        std::fs::write(dir.join("outer.debug"), b"not this build").unwrap();
        let stale = debug_info(&exe).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            found.records.contains_key("struct Outer"),
            "{:?}",
            found.records.keys()
        );
        assert_eq!(found.functions["take"][2].reg, Ok(1));
        assert!(stale.is_empty());
    }

    #[test]
    fn a_gcc_built_programs_types_and_parameters() {
        let dir =
            std::env::temp_dir().join(format!("trace-runner-dwarf-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let built = build_outer(&dir);
        let info = built.as_ref().map(|(exe, _)| debug_info(exe).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
        let (Some((_, printed)), Some(info)) = (built, info) else {
            return;
        };
        let mut types = CTypes::default();
        trace_lang::debuginfo::import(&mut types, &info);
        let field = |name: &str| {
            types
                .record_field("struct Outer", name)
                .unwrap_or_else(|| panic!("no field {name}"))
        };
        // Offsets and size as the compiler laid them out.
        for line in printed.lines() {
            let (name, n) = line.split_once(' ').unwrap();
            let n: u64 = n.parse().unwrap();
            if name == "sizeof" {
                assert_eq!(types.type_size("struct Outer"), Some(n));
            } else {
                assert_eq!(u64::from(field(name).offset), n, "{name}");
            }
        }
        let int = |bytes, signed| Type::Int { bytes, signed };
        let ptr = |to: Type| Type::Ptr {
            to: Box::new(to),
            user: false,
        };
        assert_eq!(field("a").ty, int(4, true));
        assert_eq!(field("name").ty, Type::Str(8));
        assert_eq!(
            field("grid").ty,
            Type::Array {
                elem: Box::new(Type::Array {
                    elem: Box::new(int(8, true)),
                    len: 3
                }),
                len: 2
            }
        );
        assert_eq!(field("in").ty, Type::Record("struct Inner".into()));
        assert_eq!(
            types.record_field("struct Inner", "bytes").unwrap().ty,
            Type::Array {
                elem: Box::new(int(1, false)),
                len: 3
            }
        );
        assert_eq!(field("c").ty, int(1, true));
        assert_eq!(field("color").ty, int(4, false));
        assert_eq!(field("opaque").ty, ptr(int(1, false)));
        assert_eq!(field("argv").ty, ptr(ptr(int(1, true))));
        assert_eq!(field("fn").ty, Type::U64);
        // Bitfields: the unit after the union (at 76), bits 0-2 and 3-7.
        let (flag, more) = (field("flag"), field("more"));
        assert_eq!((flag.offset, flag.bitfield), (76, Some((0, 3))));
        assert_eq!((more.offset, more.bitfield), (76, Some((3, 5))));
        assert_eq!(
            types.typedef("outer_t"),
            Some(Type::Record("struct Outer".into()))
        );
        // Parameters: o in rdi, the float in xmm0, n in rsi, then a struct by value.
        let take = &info.functions["take"];
        let names: Vec<&str> = take.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["o", "f", "n", "by_value", "after"]);
        assert_eq!(take[0].ty, ptr(Type::Record("struct Outer".into())));
        assert_eq!(take[0].reg, Ok(0));
        assert!(take[1].reg.is_err());
        assert_eq!((&take[2].ty, &take[2].reg), (&int(8, true), &Ok(1)));
        assert!(take[3]
            .reg
            .as_ref()
            .unwrap_err()
            .contains("passed by value"));
        assert!(take[4]
            .reg
            .as_ref()
            .unwrap_err()
            .contains("register is unknown"));
        assert!(info.functions["main"].is_empty());
    }

    fn classes(list: &[Class]) -> Vec<Result<u8, String>> {
        let named: Vec<(String, Class)> = list
            .iter()
            .enumerate()
            .map(|(i, c)| (format!("p{i}"), *c))
            .collect();
        assign_registers(&named)
    }

    #[test]
    fn integers_take_the_argument_registers_in_order_and_floats_do_not() {
        use Class::*;
        let regs = classes(&[Integer, Sse, Integer, X87, Aggregate(24), Integer]);
        assert_eq!(regs[0], Ok(0));
        assert!(regs[1].as_ref().unwrap_err().contains("SSE register"));
        assert_eq!(regs[2], Ok(1));
        assert!(regs[3].is_err());
        assert!(regs[4].as_ref().unwrap_err().contains("passed by value"));
        // A struct larger than 16 bytes goes on the stack and takes no register.
        assert_eq!(regs[5], Ok(2));
    }

    #[test]
    fn a_seventh_integer_is_on_the_stack() {
        let regs = classes(&[Class::Integer; 7]);
        assert_eq!(regs[5], Ok(5));
        assert_eq!(
            regs[6],
            Err("args->p6 is passed on the stack (a 7th or later integer argument), which is not supported".into())
        );
    }

    #[test]
    fn registers_after_a_small_struct_by_value_are_unknown() {
        let regs = classes(&[Class::Integer, Class::Aggregate(16), Class::Integer]);
        assert_eq!(regs[0], Ok(0));
        assert!(regs[2]
            .as_ref()
            .unwrap_err()
            .contains("register is unknown"));
        let regs = classes(&[Class::Wide, Class::Integer]);
        assert!(regs[0].is_err());
        assert_eq!(regs[1], Ok(2));
    }
}
