//! Up-front validation of a compiled BPF object (`trace-runner run prog.o`) before aya-obj
//! sees it. aya-obj 0.3 trusts many offsets, sizes and indexes of the ELF, its `.BTF` and
//! its `.BTF.ext` (it slices, indexes and unwraps them), so a corrupt object would panic
//! inside it, and the release build aborts on a panic. [`check`] walks the same structures
//! and rejects everything aya-obj (and the runner's own BTF reader) would trip over, with a
//! one-line [`Defect`] naming the section and offset.
//!
//! Pure: bytes in, verdict out. Only 64-bit little-endian `ET_REL` objects for `EM_BPF`
//! pass (what clang `-target bpf` and aya-ebpf emit).

use std::collections::HashSet;
use std::fmt;

const EM_BPF: u16 = 247;
const ET_REL: u16 = 1;

const SHT_NULL: u32 = 0;
const SHT_PROGBITS: u32 = 1;
const SHT_SYMTAB: u32 = 2;
const SHT_STRTAB: u32 = 3;
const SHT_RELA: u32 = 4;
const SHT_NOBITS: u32 = 8;
const SHT_REL: u32 = 9;
const SHT_SYMTAB_SHNDX: u32 = 18;
const SHF_EXECINSTR: u64 = 4;

const SHN_UNDEF: u16 = 0;
const SHN_LORESERVE: u16 = 0xff00;
const SHN_ABS: u16 = 0xfff1;
const SHN_COMMON: u16 = 0xfff2;

const STT_FUNC: u8 = 2;
const STT_SECTION: u8 = 3;
const STT_GNU_IFUNC: u8 = 10;

const R_BPF_64_64: u32 = 1;
const R_BPF_64_32: u32 = 10;

const BPF_LD_IMM64: u8 = 0x18;
const BPF_CALL: u8 = 0x85;
/// `src_reg` of a BPF-to-BPF call.
const BPF_PSEUDO_CALL: u8 = 1;

use super::object_btf::BTF_MAGIC;
/// `struct btf_header`.
const BTF_HEADER_LEN: usize = 24;
/// `struct btf_ext_header` as aya-obj reads it (func, line and CO-RE relocation info).
const BTF_EXT_HEADER_LEN: usize = 32;
/// aya-obj follows type chains at most this deep.
const MAX_RESOLVE_DEPTH: usize = 32;
/// The largest CO-RE relocation kind aya-obj knows (`BPF_CORE_TYPE_MATCHES`).
const MAX_CORE_RELO_KIND: u32 = 13;
/// aya-obj's limit on the parts of a CO-RE access string.
const MAX_SPEC_LEN: usize = 64;
/// Larger than any access index a real type has; keeps aya-obj's offset arithmetic exact.
const MAX_ACCESS_INDEX: u64 = 1 << 24;
/// A `.bss`/`.data`/`.rodata` section becomes one array map value of that size: far above
/// what the kernel accepts, and low enough that aya-obj's allocation cannot fail.
const MAX_DATA_SECTION: u64 = 1 << 30;
/// `struct bpf_map_def` up to `map_flags`: the least aya-obj reads from a `maps` entry.
const MIN_LEGACY_MAP_DEF: u64 = 20;

/// What is wrong with an object, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defect {
    pub what: String,
    /// The section's name (or `#N` when the name itself is unreadable); `None` for the ELF
    /// header and the section header table.
    pub section: Option<String>,
    /// Byte offset: within the section when there is one, in the file otherwise.
    pub offset: u64,
}

impl fmt::Display for Defect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.section {
            Some(s) => write!(f, "{} (section {s}, offset {:#x})", self.what, self.offset),
            None => write!(f, "{} (file offset {:#x})", self.what, self.offset),
        }
    }
}

fn u16_at(b: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn u32_at(b: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

fn u64_at(b: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

fn slice(b: &[u8], start: u64, len: u64) -> Option<&[u8]> {
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    b.get(start..end)
}

/// The NUL-terminated string at `off` of a string table (which ends with a NUL).
fn cstr(table: &[u8], off: u64) -> Option<&[u8]> {
    let rest = table.get(usize::try_from(off).ok()?..)?;
    let end = rest.iter().position(|&c| c == 0)?;
    Some(&rest[..end])
}

struct SectionHeader {
    name: String,
    ty: u32,
    flags: u64,
    addr: u64,
    offset: u64,
    size: u64,
    link: u32,
    info: u32,
    entsize: u64,
}

impl SectionHeader {
    /// Whether aya-obj treats the section as code (`.text*`, or an executable section whose
    /// name is no other special section's).
    fn is_code(&self) -> bool {
        if self.name.starts_with(".text") {
            return true;
        }
        const SPECIAL: &[&str] = &["license", "version", "maps", ".maps", ".bss", ".data"];
        self.ty == SHT_PROGBITS
            && self.flags & SHF_EXECINSTR != 0
            && self.size > 0
            && !SPECIAL.iter().any(|p| self.name.starts_with(p))
            && !self.name.starts_with(".rodata")
            && self.name != ".BTF"
            && self.name != ".BTF.ext"
    }

    fn is_data_map(&self) -> bool {
        [".bss", ".data", ".rodata"]
            .iter()
            .any(|p| self.name.starts_with(p))
    }
}

struct Symbol {
    name: String,
    kind: u8,
    shndx: u16,
    value: u64,
    size: u64,
}

/// The parsed skeleton of an object, for the checks that follow the headers.
struct Elf<'a> {
    bytes: &'a [u8],
    sections: Vec<SectionHeader>,
    symbols: Vec<Symbol>,
    /// The index of the symbol table.
    symtab: Option<usize>,
}

fn at_file(what: impl Into<String>, offset: u64) -> Defect {
    Defect {
        what: what.into(),
        section: None,
        offset,
    }
}

impl Elf<'_> {
    fn defect(&self, index: usize, what: impl Into<String>, offset: u64) -> Defect {
        let section = match self.sections.get(index) {
            Some(s) if !s.name.is_empty() => s.name.clone(),
            _ => format!("#{index}"),
        };
        Defect {
            what: what.into(),
            section: Some(section),
            offset,
        }
    }

    fn data(&self, index: usize) -> &[u8] {
        let s = &self.sections[index];
        if s.ty == SHT_NOBITS {
            return &[];
        }
        // Bounds were checked when the headers were read.
        slice(self.bytes, s.offset, s.size).unwrap_or(&[])
    }
}

/// Check a (decompressed) object; `Ok` means aya-obj can parse and relocate it without
/// tripping over its structure (whether the kernel accepts it is another matter).
pub fn check(bytes: &[u8]) -> Result<(), Defect> {
    let mut elf = headers(bytes)?;
    symbols(&mut elf)?;
    let btf = match find(&elf, ".BTF") {
        Some(i) => Some(check_btf(&elf, i)?),
        None => None,
    };
    relocations(&elf, btf.as_ref())?;
    if let (Some(btf), Some(i)) = (&btf, find(&elf, ".BTF.ext")) {
        check_btf_ext(&elf, i, btf)?;
    }
    Ok(())
}

fn find(elf: &Elf, name: &str) -> Option<usize> {
    elf.sections.iter().position(|s| s.name == name)
}

fn headers(bytes: &[u8]) -> Result<Elf<'_>, Defect> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" {
        return Err(at_file(
            "not an ELF object, or shorter than an ELF header",
            0,
        ));
    }
    if bytes[4] != 2 || bytes[5] != 1 {
        return Err(at_file("not a 64-bit little-endian ELF object", 4));
    }
    let e_type = u16_at(bytes, 16).unwrap_or(0);
    if e_type != ET_REL {
        return Err(at_file(
            format!("ELF type {e_type} is not a relocatable object (ET_REL), as BPF objects are"),
            16,
        ));
    }
    let machine = u16_at(bytes, 18).unwrap_or(0);
    if machine != EM_BPF {
        return Err(at_file(
            format!("e_machine is {machine}, not BPF ({EM_BPF})"),
            18,
        ));
    }
    let shoff = u64_at(bytes, 0x28).unwrap_or(0);
    let shentsize = u16_at(bytes, 0x3a).unwrap_or(0);
    let shnum = u16_at(bytes, 0x3c).unwrap_or(0);
    let shstrndx = u16_at(bytes, 0x3e).unwrap_or(0);
    if shnum == 0 {
        return Err(at_file(
            "no section headers (e_shnum is 0; extended numbering is not supported)",
            0x3c,
        ));
    }
    if shnum >= SHN_LORESERVE {
        return Err(at_file(format!("e_shnum {shnum} is out of range"), 0x3c));
    }
    if shentsize != 64 {
        return Err(at_file(format!("e_shentsize is {shentsize}, not 64"), 0x3a));
    }
    let table_end = shoff.checked_add(u64::from(shnum) * 64);
    if !shoff.is_multiple_of(8) || table_end.is_none_or(|e| e > bytes.len() as u64) {
        return Err(at_file(
            format!(
                "the section header table (e_shoff {shoff:#x}, {shnum} entries) lies outside the file ({} bytes) or is misaligned",
                bytes.len()
            ),
            0x28,
        ));
    }
    if shstrndx >= shnum {
        return Err(at_file(
            format!("e_shstrndx {shstrndx} is not a section (e_shnum {shnum})"),
            0x3e,
        ));
    }
    let mut sections = Vec::with_capacity(usize::from(shnum));
    for i in 0..u64::from(shnum) {
        let h = shoff + i * 64;
        let r32 = |o| u32_at(bytes, h + o).unwrap_or(0);
        let r64 = |o| u64_at(bytes, h + o).unwrap_or(0);
        sections.push(SectionHeader {
            name: String::new(),
            ty: r32(4),
            flags: r64(8),
            addr: r64(16),
            offset: r64(24),
            size: r64(32),
            link: r32(40),
            info: r32(44),
            entsize: r64(56),
        });
    }
    let mut elf = Elf {
        bytes,
        sections,
        symbols: Vec::new(),
        symtab: None,
    };
    let header_offset = |i: usize| shoff + i as u64 * 64;
    // Section data first (the name table is a section too).
    for (i, s) in elf.sections.iter().enumerate() {
        let at = header_offset(i);
        if i == 0 {
            if s.ty != SHT_NULL {
                return Err(at_file("section 0 is not the null section", at));
            }
            continue;
        }
        if s.ty == SHT_NOBITS || s.ty == SHT_NULL {
            continue;
        }
        let end = s.offset.checked_add(s.size);
        if end.is_none_or(|e| e > bytes.len() as u64) {
            return Err(at_file(
                format!(
                    "section #{i}'s data (sh_offset {:#x}, sh_size {:#x}) lies outside the file ({} bytes)",
                    s.offset,
                    s.size,
                    bytes.len()
                ),
                at + 24,
            ));
        }
    }
    let shstr = &elf.sections[usize::from(shstrndx)];
    if shstr.ty != SHT_STRTAB {
        return Err(at_file(
            format!("e_shstrndx {shstrndx} is not a string table"),
            0x3e,
        ));
    }
    let names = slice(bytes, shstr.offset, shstr.size).unwrap_or(&[]);
    if names.last() != Some(&0) {
        return Err(at_file(
            "the section name table is empty or not NUL-terminated",
            shstr.offset,
        ));
    }
    for i in 1..elf.sections.len() {
        let name_off = u32_at(bytes, header_offset(i)).unwrap_or(0);
        let name = cstr(names, u64::from(name_off)).ok_or_else(|| {
            at_file(
                format!(
                    "section #{i}'s name offset {name_off} is outside the section name table ({} bytes)",
                    names.len()
                ),
                header_offset(i),
            )
        })?;
        let name = std::str::from_utf8(name).map_err(|_| {
            at_file(
                format!("section #{i}'s name is not UTF-8"),
                header_offset(i),
            )
        })?;
        elf.sections[i].name = name.to_string();
    }
    let mut symtab = None;
    for i in 1..elf.sections.len() {
        let s = &elf.sections[i];
        let bad = |what: String, field: u64| Err(elf.defect(i, what, field));
        if s.addr != 0 {
            return bad(
                format!(
                    "sh_addr is {:#x}; a relocatable object's sections are at 0",
                    s.addr
                ),
                0,
            );
        }
        match s.ty {
            SHT_NOBITS if s.name.starts_with("maps") => {
                return bad(
                    "a `maps` section without data (SHT_NOBITS): aya-obj reads each map definition from it".into(),
                    0,
                );
            }
            SHT_NOBITS if s.is_data_map() && s.size > MAX_DATA_SECTION => {
                return bad(
                    format!(
                        "the section is {} bytes, more than a BPF map value can hold",
                        s.size
                    ),
                    0,
                );
            }
            SHT_STRTAB if s.size > 0 && elf.data(i).last() != Some(&0) => {
                return bad(
                    "the string table does not end with a NUL".into(),
                    s.size - 1,
                );
            }
            SHT_SYMTAB => {
                if symtab.is_some() {
                    return bad("a second symbol table".into(), 0);
                }
                symtab = Some(i);
                if s.entsize != 24 || !s.size.is_multiple_of(24) || !s.offset.is_multiple_of(8) {
                    return bad(
                        format!(
                            "symbol table entry size {} / size {} / offset {:#x} is not that of 24-byte ELF64 symbols",
                            s.entsize, s.size, s.offset
                        ),
                        0,
                    );
                }
                let link = s.link as usize;
                if link == 0 || link >= elf.sections.len() || elf.sections[link].ty != SHT_STRTAB {
                    return bad(
                        format!(
                            "sh_link {} of the symbol table is not a string table",
                            s.link
                        ),
                        0,
                    );
                }
            }
            SHT_SYMTAB_SHNDX => {
                return bad(
                    "extended section indexes (SHT_SYMTAB_SHNDX) are not supported".into(),
                    0,
                );
            }
            SHT_REL | SHT_RELA => {
                let want = if s.ty == SHT_REL { 16 } else { 24 };
                if s.entsize != want || !s.size.is_multiple_of(want) || !s.offset.is_multiple_of(8)
                {
                    return bad(
                        format!(
                            "relocation entry size {} / size {} / offset {:#x} is not that of {want}-byte entries",
                            s.entsize, s.size, s.offset
                        ),
                        0,
                    );
                }
                let target = s.info as usize;
                if target == 0 || target >= elf.sections.len() {
                    return bad(
                        format!("sh_info {} does not name the section to relocate", s.info),
                        0,
                    );
                }
                if matches!(elf.sections[target].ty, SHT_NOBITS | SHT_NULL) {
                    return bad(format!("relocates section #{target}, which has no data"), 0);
                }
            }
            SHT_PROGBITS if s.is_data_map() && s.size > MAX_DATA_SECTION => {
                return bad(
                    format!(
                        "the section is {} bytes, more than a BPF map value can hold",
                        s.size
                    ),
                    0,
                );
            }
            _ => {}
        }
        if s.is_code() && !s.size.is_multiple_of(8) {
            return bad(
                format!(
                    "a program section of {} bytes, not a whole number of 8-byte instructions",
                    s.size
                ),
                s.size,
            );
        }
    }
    // Relocation sections refer to the symbol table.
    for i in 1..elf.sections.len() {
        let s = &elf.sections[i];
        if matches!(s.ty, SHT_REL | SHT_RELA) && Some(s.link as usize) != symtab {
            return Err(elf.defect(
                i,
                format!(
                    "sh_link {} of a relocation section is not the symbol table",
                    s.link
                ),
                0,
            ));
        }
    }
    elf.symtab = symtab;
    Ok(elf)
}

fn symbols(elf: &mut Elf) -> Result<(), Defect> {
    let Some(st) = elf.symtab else {
        return Ok(());
    };
    let nsec = elf.sections.len();
    let data = elf.data(st);
    let strings = elf.data(elf.sections[st].link as usize);
    let mut out = Vec::with_capacity(data.len() / 24);
    for (i, e) in data.chunks_exact(24).enumerate() {
        let at = i as u64 * 24;
        let name_off = u32_at(e, 0).unwrap_or(0);
        let info = e[4];
        let shndx = u16_at(e, 6).unwrap_or(0);
        let value = u64_at(e, 8).unwrap_or(0);
        let size = u64_at(e, 16).unwrap_or(0);
        let name = cstr(strings, u64::from(name_off)).ok_or_else(|| {
            elf.defect(
                st,
                format!("symbol #{i}'s name offset {name_off} is outside its string table"),
                at,
            )
        })?;
        let name = std::str::from_utf8(name)
            .map_err(|_| elf.defect(st, format!("symbol #{i}'s name is not UTF-8"), at))?
            .to_string();
        let sym = Symbol {
            name,
            kind: info & 0xf,
            shndx,
            value,
            size,
        };
        if i > 0 {
            check_symbol(elf, st, nsec, i, &sym, at)?;
            // aya-obj keys maps by name: a second map of a name would take the first's
            // relocations.
            let in_maps = |s: &Symbol| {
                let sec = elf
                    .sections
                    .get(usize::from(s.shndx))
                    .map(|x| x.name.as_str());
                s.kind != STT_SECTION
                    && s.shndx != SHN_UNDEF
                    && sec.is_some_and(|n| n.starts_with("maps") || n.starts_with(".maps"))
            };
            if in_maps(&sym)
                && out
                    .iter()
                    .any(|o: &Symbol| o.name == sym.name && in_maps(o))
            {
                return Err(elf.defect(
                    st,
                    format!("symbol #{i}: a second map named `{}`", sym.name),
                    at,
                ));
            }
        }
        out.push(sym);
    }
    elf.symbols = out;
    Ok(())
}

fn check_symbol(
    elf: &Elf,
    st: usize,
    nsec: usize,
    i: usize,
    sym: &Symbol,
    at: u64,
) -> Result<(), Defect> {
    let name = &sym.name;
    let bad = |what: String| Err(elf.defect(st, what, at));
    match sym.shndx {
        SHN_UNDEF | SHN_ABS | SHN_COMMON => return Ok(()),
        n if n >= SHN_LORESERVE => {
            return bad(format!(
                "symbol #{i} `{name}` has the reserved section index {n:#x}"
            ))
        }
        n if usize::from(n) >= nsec => {
            return bad(format!(
                "symbol #{i} `{name}` is in section {n}, but the object has {nsec} sections"
            ))
        }
        _ => {}
    }
    let sec = &elf.sections[usize::from(sym.shndx)];
    let end = sym.value.checked_add(sym.size);
    if end.is_none_or(|e| e > sec.size) {
        return bad(format!(
            "symbol #{i} `{name}` (value {:#x}, size {:#x}) extends past the end of section `{}` ({:#x} bytes)",
            sym.value, sym.size, sec.name, sec.size
        ));
    }
    if sec.is_code()
        && matches!(sym.kind, STT_FUNC | STT_GNU_IFUNC)
        && (!sym.value.is_multiple_of(8) || !sym.size.is_multiple_of(8))
    {
        return bad(format!(
            "function `{name}` (value {:#x}, size {:#x}) is not aligned to 8-byte instructions",
            sym.value, sym.size
        ));
    }
    if sec.name.starts_with("maps") && sym.kind != STT_SECTION && sym.size < MIN_LEGACY_MAP_DEF {
        return bad(format!(
            "map definition `{name}` is {} bytes; a `maps` entry (struct bpf_map_def) has at least {MIN_LEGACY_MAP_DEF}",
            sym.size
        ));
    }
    Ok(())
}

fn insn(code: &[u8], at: u64) -> Option<(u8, u8, u8, i16, i32)> {
    let b = slice(code, at, 8)?;
    Some((
        b[0],
        b[1] & 0xf,
        b[1] >> 4,
        i16::from_le_bytes([b[2], b[3]]),
        i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    ))
}

/// aya-obj's test for a BPF-to-BPF call.
fn is_pseudo_call(i: (u8, u8, u8, i16, i32)) -> bool {
    let (code, dst, src, off, _) = i;
    code == BPF_CALL && src == BPF_PSEUDO_CALL && dst == 0 && off == 0
}

fn relocations(elf: &Elf, btf: Option<&BtfFacts>) -> Result<(), Defect> {
    let nsec = elf.sections.len();
    // Calls without a relocation are resolved pc-relatively: `imm + 1` must not overflow.
    for i in 1..nsec {
        if !elf.sections[i].is_code() {
            continue;
        }
        let code = elf.data(i);
        for at in (0..code.len() as u64).step_by(8) {
            if let Some(ins) = insn(code, at) {
                if is_pseudo_call(ins) && ins.4 == i32::MAX {
                    return Err(elf.defect(i, "a call whose target is out of range", at));
                }
            }
        }
    }
    for i in 1..nsec {
        let s = &elf.sections[i];
        if !matches!(s.ty, SHT_REL | SHT_RELA) {
            continue;
        }
        let entsize = s.entsize;
        let target = s.info as usize;
        let data = elf.data(i);
        for (n, e) in data.chunks_exact(entsize as usize).enumerate() {
            let at = n as u64 * entsize;
            let offset = u64_at(e, 0).unwrap_or(0);
            let info = u64_at(e, 8).unwrap_or(0);
            let sym_index = (info >> 32) as usize;
            let r_type = info as u32;
            let bad = |what: String| Err(elf.defect(i, format!("relocation #{n}: {what}"), at));
            if sym_index >= elf.symbols.len().max(1) {
                return bad(format!(
                    "symbol index {sym_index} is outside the symbol table ({} symbols)",
                    elf.symbols.len()
                ));
            }
            let t = &elf.sections[target];
            if offset >= t.size {
                return bad(format!(
                    "offset {offset:#x} is outside section `{}` ({:#x} bytes)",
                    t.name, t.size
                ));
            }
            if !t.is_code() {
                continue;
            }
            check_code_relocation(elf, btf, target, offset, r_type, sym_index).or_else(bad)?;
        }
    }
    Ok(())
}

/// What aya-obj's map and call relocation assume of a relocation in a program section.
fn check_code_relocation(
    elf: &Elf,
    btf: Option<&BtfFacts>,
    target: usize,
    offset: u64,
    r_type: u32,
    sym_index: usize,
) -> Result<(), String> {
    let t = &elf.sections[target];
    if !offset.is_multiple_of(8) || offset + 8 > t.size {
        return Err(format!(
            "offset {offset:#x} in `{}` is not at an 8-byte instruction",
            t.name
        ));
    }
    if r_type != R_BPF_64_64 && r_type != R_BPF_64_32 {
        return Err(format!(
            "type {r_type} in a program section (only R_BPF_64_64 and R_BPF_64_32 apply to code)"
        ));
    }
    let code = elf.data(target);
    let ins = insn(code, offset).ok_or("instruction outside the section")?;
    let call = is_pseudo_call(ins);
    if ins.0 == BPF_LD_IMM64 {
        // Both halves must lie in every function that holds the first.
        for f in elf.symbols.iter().filter(|f| {
            usize::from(f.shndx) == target
                && matches!(f.kind, STT_FUNC | STT_GNU_IFUNC)
                && f.value <= offset
                && offset < f.value + f.size
        }) {
            if offset + 16 > f.value + f.size {
                return Err(format!(
                    "the 16-byte load at {offset:#x} runs past the end of function `{}`",
                    f.name
                ));
            }
        }
        if offset + 16 > t.size {
            return Err(format!(
                "the 16-byte load at {offset:#x} runs past the end of `{}`",
                t.name
            ));
        }
    } else if ins.0 != BPF_CALL {
        return Err(format!(
            "relocates instruction code {:#04x} at {offset:#x}; only 64-bit loads (0x18) and calls (0x85) are relocated",
            ins.0
        ));
    }
    let Some(sym) = elf.symbols.get(sym_index) else {
        return Ok(());
    };
    let is_func = matches!(sym.kind, STT_FUNC | STT_GNU_IFUNC);
    let regular = sym.shndx != SHN_UNDEF && sym.shndx < SHN_LORESERVE;
    if sym_index != 0 && (sym.shndx == SHN_UNDEF || (is_func && !regular)) {
        return Err(format!(
            "refers to `{}`, which the object does not define (extern functions such as kfuncs and extern variables such as __kconfig cannot be linked by the runner)",
            sym.name
        ));
    }
    if !regular {
        return Ok(());
    }
    if elf.sections[usize::from(sym.shndx)].is_code() {
        // A call or a function address: aya-obj computes the callee's address.
        if !is_func && sym.kind != STT_SECTION {
            return Err(format!(
                "refers to `{}`, a symbol in code that is neither a function nor a section",
                sym.name
            ));
        }
        if sym.kind == STT_SECTION {
            let ok = match r_type {
                R_BPF_64_32 => ins.4 >= -1 && ins.4 < i32::MAX,
                _ => ins.4 >= 0,
            };
            if !ok {
                return Err(format!(
                    "the call or function address at {offset:#x} has an out-of-range target ({})",
                    ins.4
                ));
            }
        }
    } else if !call {
        if ins.4.checked_add(sym.value as i32).is_none() {
            return Err(format!(
                "the load at {offset:#x} of `{}` has an out-of-range offset",
                sym.name
            ));
        }
        // A load from a map section must name a map: aya-obj would otherwise pick the
        // section's first map (a debug assertion; the wrong map in release).
        let sec = &elf.sections[usize::from(sym.shndx)].name;
        let is_map = if sec.starts_with(".maps") {
            sym.kind != STT_SECTION
                && btf.is_some_and(|b| b.maps.contains(&(sec.clone(), sym.name.clone())))
        } else if sec.starts_with("maps") {
            sym.kind != STT_SECTION
        } else {
            true
        };
        if !is_map {
            return Err(format!(
                "the load at {offset:#x} refers to `{}` in map section `{sec}`, which is not a map definition",
                sym.name
            ));
        }
    }
    Ok(())
}

/// Facts about `.BTF` that `.BTF.ext` is checked against.
struct BtfFacts {
    /// Number of type ids (including void).
    types: u32,
    strings: Vec<u8>,
    /// `(section, variable)` of every BTF-defined map (the variables of the `.maps*`
    /// DATASECs).
    maps: HashSet<(String, String)>,
}

#[derive(Clone, Copy)]
struct BtfType {
    name_off: u32,
    kind: u32,
    vlen: u32,
    kind_flag: bool,
    size_or_type: u32,
    /// Offset of the record in the type area.
    at: u64,
}

use super::object_btf::{
    KIND_ARRAY, KIND_CONST, KIND_DATASEC, KIND_DECL_TAG, KIND_ENUM, KIND_ENUM64, KIND_FLOAT,
    KIND_FUNC, KIND_FUNC_PROTO, KIND_INT, KIND_PTR, KIND_RESTRICT, KIND_STRUCT, KIND_TYPEDEF,
    KIND_TYPE_TAG, KIND_UNION, KIND_VAR, KIND_VOLATILE,
};

fn check_btf(elf: &Elf, sec: usize) -> Result<BtfFacts, Defect> {
    let d = elf.data(sec);
    let bad = |what: String, at: u64| Err(elf.defect(sec, what, at));
    if d.len() < BTF_HEADER_LEN {
        return bad(format!("{} bytes, shorter than a BTF header", d.len()), 0);
    }
    if u16_at(d, 0) != Some(BTF_MAGIC) {
        return bad("bad BTF magic".into(), 0);
    }
    let hdr_len = u64::from(u32_at(d, 4).unwrap_or(0));
    let type_off = u64::from(u32_at(d, 8).unwrap_or(0));
    let type_len = u64::from(u32_at(d, 12).unwrap_or(0));
    let str_off = u64::from(u32_at(d, 16).unwrap_or(0));
    let str_len = u64::from(u32_at(d, 20).unwrap_or(0));
    let len = d.len() as u64;
    if hdr_len < BTF_HEADER_LEN as u64 || hdr_len > len {
        return bad(format!("BTF header length {hdr_len} is out of range"), 4);
    }
    if hdr_len + type_off + type_len > len || hdr_len + type_off + type_len > u64::from(u32::MAX) {
        return bad(
            format!("BTF types (offset {type_off}, {type_len} bytes) lie outside the section"),
            8,
        );
    }
    if hdr_len + str_off + str_len > len || hdr_len + str_off + str_len > u64::from(u32::MAX) {
        return bad(
            format!("BTF strings (offset {str_off}, {str_len} bytes) lie outside the section"),
            16,
        );
    }
    let strings = slice(d, hdr_len + str_off, str_len).unwrap_or(&[]);
    if strings.first() != Some(&0) || strings.last() != Some(&0) {
        return bad(
            "the BTF string table does not start and end with a NUL".into(),
            hdr_len + str_off,
        );
    }
    let types_base = hdr_len + type_off;
    let area = slice(d, types_base, type_len).unwrap_or(&[]);
    let name_ok = |off: u32| u64::from(off) < str_len;
    // First pass: record layout and names.
    let mut types = vec![BtfType {
        name_off: 0,
        kind: 0,
        vlen: 0,
        kind_flag: false,
        size_or_type: 0,
        at: 0,
    }];
    let mut at = 0u64;
    while at < type_len {
        let id = types.len();
        let abs = types_base + at;
        let (Some(name_off), Some(info), Some(sot)) =
            (u32_at(area, at), u32_at(area, at + 4), u32_at(area, at + 8))
        else {
            return bad(format!("BTF type #{id} is truncated"), abs);
        };
        let kind = (info >> 24) & 0x1f;
        let vlen = info & 0xffff;
        let extra = u64::from(vlen)
            * match kind {
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12,
                KIND_ENUM | KIND_FUNC_PROTO => 8,
                _ => 0,
            }
            + match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                _ => 0,
            };
        if kind == 0 || kind > KIND_ENUM64 {
            return bad(format!("BTF type #{id} has unknown kind {kind}"), abs);
        }
        if at + 12 + extra > type_len {
            return bad(
                format!("BTF type #{id} runs past the end of the types"),
                abs,
            );
        }
        if !name_ok(name_off) {
            return bad(
                format!("BTF type #{id}'s name offset {name_off} is outside the strings ({str_len} bytes)"),
                abs,
            );
        }
        let named_entries = match kind {
            KIND_STRUCT | KIND_UNION | KIND_ENUM64 => Some(12),
            KIND_ENUM | KIND_FUNC_PROTO => Some(8),
            _ => None,
        };
        if let Some(stride) = named_entries {
            for k in 0..u64::from(vlen) {
                let o = at + 12 + k * stride;
                let n = u32_at(area, o).unwrap_or(0);
                if !name_ok(n) {
                    return bad(
                        format!(
                            "BTF type #{id}, member {k}: name offset {n} is outside the strings"
                        ),
                        types_base + o,
                    );
                }
            }
        }
        types.push(BtfType {
            name_off,
            kind,
            vlen,
            kind_flag: info >> 31 == 1,
            size_or_type: sot,
            at,
        });
        at += 12 + extra;
        if types.len() > u32::MAX as usize / 2 {
            return bad("too many BTF types".into(), abs);
        }
    }
    let n = types.len() as u32;
    let name_of = |off: u32| {
        String::from_utf8_lossy(cstr(strings, u64::from(off)).unwrap_or(&[])).into_owned()
    };
    let mut maps = HashSet::new();
    // Second pass: references, array sizes, bitfields.
    for (id, t) in types.iter().enumerate().skip(1) {
        let abs = types_base + t.at;
        let refs_ok = |r: u32| r < n;
        let bad_ref = |r: u32, what: &str| {
            bad(
                format!("BTF type #{id}: {what} refers to type {r}, but there are {n} types"),
                abs,
            )
        };
        let body = t.at + 12;
        match t.kind {
            KIND_PTR | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_FUNC
            | KIND_VAR | KIND_DECL_TAG | KIND_TYPE_TAG | KIND_FUNC_PROTO
                if !refs_ok(t.size_or_type) =>
            {
                return bad_ref(t.size_or_type, "its type");
            }
            KIND_ARRAY => {
                let elem = u32_at(area, body).unwrap_or(0);
                let index = u32_at(area, body + 4).unwrap_or(0);
                let len = u32_at(area, body + 8).unwrap_or(0);
                if !refs_ok(elem) || !refs_ok(index) {
                    return bad_ref(elem.max(index), "the array");
                }
                if let Some(size) = leaf_size(&types, elem) {
                    if u64::from(size) * u64::from(len) > u64::from(u32::MAX) {
                        return bad(
                            format!("BTF type #{id}: an array of {len} elements of {size} bytes is larger than 4 GiB"),
                            abs,
                        );
                    }
                }
            }
            KIND_STRUCT | KIND_UNION => {
                for k in 0..u64::from(t.vlen) {
                    let o = body + k * 12;
                    let ty = u32_at(area, o + 4).unwrap_or(0);
                    if !refs_ok(ty) {
                        return bad_ref(ty, "a member");
                    }
                    let offset = u32_at(area, o + 8).unwrap_or(0);
                    let bits = if t.kind_flag { offset >> 24 } else { 0 };
                    if bits > 0 && !bitfield_type_ok(&types, ty) {
                        return bad(
                            format!("BTF type #{id}, member {k}: a {bits}-bit bitfield of a type without a size"),
                            types_base + o,
                        );
                    }
                }
            }
            KIND_FUNC_PROTO => {
                for k in 0..u64::from(t.vlen) {
                    let ty = u32_at(area, body + k * 8 + 4).unwrap_or(0);
                    if !refs_ok(ty) {
                        return bad_ref(ty, "a parameter");
                    }
                }
            }
            KIND_DATASEC => {
                for k in 0..u64::from(t.vlen) {
                    let o = body + k * 12;
                    let ty = u32_at(area, o).unwrap_or(0);
                    let offset = u32_at(area, o + 4).unwrap_or(0);
                    if !refs_ok(ty) {
                        return bad_ref(ty, "a section variable");
                    }
                    if offset > u32::MAX / 8 {
                        return bad(
                            format!("BTF type #{id}: variable offset {offset} is out of range"),
                            types_base + o,
                        );
                    }
                    let sec = name_of(t.name_off);
                    let var = &types[ty as usize];
                    if sec.starts_with(".maps") && var.kind == KIND_VAR {
                        maps.insert((sec, name_of(var.name_off)));
                    }
                }
            }
            _ => {}
        }
    }
    Ok(BtfFacts {
        types: n,
        strings: strings.to_vec(),
        maps,
    })
}

/// The size aya-obj's `type_size` multiplies an array's length by: that of the first
/// sized type down the chain of arrays, modifiers and typedefs (`None` when there is none
/// within its depth limit: aya-obj then returns an error).
fn leaf_size(types: &[BtfType], mut id: u32) -> Option<u32> {
    for _ in 0..MAX_RESOLVE_DEPTH {
        let t = types.get(id as usize)?;
        match t.kind {
            KIND_INT | KIND_FLOAT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION
            | KIND_DATASEC => return Some(t.size_or_type),
            KIND_PTR => return Some(8),
            KIND_ARRAY => {
                // The element type sits first in the array record; the caller checked it.
                return None;
            }
            KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPEDEF | KIND_FUNC_PROTO
            | KIND_VAR | KIND_DECL_TAG | KIND_TYPE_TAG => id = t.size_or_type,
            _ => return None,
        }
    }
    None
}

/// A bitfield's type must resolve (through modifiers and typedefs) to a type with a size:
/// aya-obj's CO-RE field relocation unwraps that size and divides by it.
fn bitfield_type_ok(types: &[BtfType], mut id: u32) -> bool {
    for _ in 0..MAX_RESOLVE_DEPTH {
        let Some(t) = types.get(id as usize) else {
            return false;
        };
        match t.kind {
            KIND_INT | KIND_FLOAT | KIND_ENUM | KIND_ENUM64 | KIND_STRUCT | KIND_UNION
            | KIND_DATASEC => return t.size_or_type > 0,
            KIND_PTR => return true,
            KIND_CONST | KIND_VOLATILE | KIND_RESTRICT | KIND_TYPEDEF | KIND_TYPE_TAG => {
                id = t.size_or_type;
            }
            _ => return false,
        }
    }
    false
}

fn check_btf_ext(elf: &Elf, sec: usize, btf: &BtfFacts) -> Result<(), Defect> {
    let d = elf.data(sec);
    let bad = |what: String, at: u64| Err(elf.defect(sec, what, at));
    if d.len() < 8 {
        return bad(
            format!("{} bytes, shorter than a BTF.ext header", d.len()),
            0,
        );
    }
    if u16_at(d, 0) != Some(BTF_MAGIC) {
        return bad("bad BTF.ext magic".into(), 0);
    }
    let hdr_len = u64::from(u32_at(d, 4).unwrap_or(0));
    let len = d.len() as u64;
    if hdr_len > len {
        return bad(
            format!("BTF.ext header length {hdr_len} is past the end of the section"),
            4,
        );
    }
    // Fields the header does not cover read as 0, as aya-obj reads them.
    let field = |at: u64| {
        if at + 4 <= hdr_len.min(BTF_EXT_HEADER_LEN as u64) {
            u64::from(u32_at(d, at).unwrap_or(0))
        } else {
            0
        }
    };
    let str_len = btf.strings.len() as u64;
    // (header field offset, what, least record size)
    for (field_at, what, min_rec) in [
        (8u64, "func_info", 8u64),
        (16, "line_info", 16),
        (24, "core_relo", 16),
    ] {
        let off = field(field_at);
        let blen = field(field_at + 4);
        let start = hdr_len + off;
        if blen == 0 {
            continue;
        }
        if blen < 4 || start + blen > len || start > u64::from(u32::MAX) {
            return bad(
                format!("{what} (offset {off}, {blen} bytes) lies outside the section"),
                field_at,
            );
        }
        let rec = u64::from(u32_at(d, start).unwrap_or(0));
        if rec < min_rec {
            return bad(
                format!("{what} record size {rec} is smaller than {min_rec}"),
                start,
            );
        }
        let block = slice(d, start + 4, blen - 4).unwrap_or(&[]);
        let block_at = start + 4;
        let mut o = 0u64;
        // aya-obj reads section entries while more than 8 bytes remain.
        while o + 8 < block.len() as u64 {
            let name_off = u32_at(block, o).unwrap_or(0);
            let num = u64::from(u32_at(block, o + 4).unwrap_or(0));
            let need = rec * num;
            if o + 8 + need > block.len() as u64 {
                return bad(
                    format!("{what}: {num} records of {rec} bytes run past the end of the block"),
                    block_at + o,
                );
            }
            if u64::from(name_off) >= str_len {
                return bad(
                    format!("{what}: section name offset {name_off} is outside the BTF strings"),
                    block_at + o,
                );
            }
            let recs = slice(block, o + 8, need).unwrap_or(&[]);
            let mut last_insn = 0u32;
            for (k, r) in recs.chunks_exact(rec as usize).enumerate() {
                let r_at = block_at + o + 8 + k as u64 * rec;
                let insn_off = u32_at(r, 0).unwrap_or(0);
                match what {
                    "line_info" => {
                        if insn_off < last_insn {
                            return bad(
                                format!("{what}: record {k} is out of instruction order"),
                                r_at,
                            );
                        }
                        last_insn = insn_off;
                    }
                    "core_relo" => check_core_relo(btf, r)
                        .or_else(|e| bad(format!("{what}: record {k}: {e}"), r_at))?,
                    _ => {}
                }
            }
            o += 8 + need;
        }
    }
    Ok(())
}

fn check_core_relo(btf: &BtfFacts, r: &[u8]) -> Result<(), String> {
    let insn_off = u32_at(r, 0).unwrap_or(0);
    let type_id = u32_at(r, 4).unwrap_or(0);
    let access = u32_at(r, 8).unwrap_or(0);
    let kind = u32_at(r, 12).unwrap_or(0);
    if !insn_off.is_multiple_of(8) {
        return Err(format!(
            "instruction offset {insn_off} is not a multiple of 8"
        ));
    }
    if kind > MAX_CORE_RELO_KIND {
        return Err(format!("unknown relocation kind {kind}"));
    }
    if type_id >= btf.types {
        return Err(format!(
            "type {type_id} does not exist ({} types)",
            btf.types
        ));
    }
    let spec = cstr(&btf.strings, u64::from(access))
        .ok_or_else(|| format!("access string offset {access} is outside the BTF strings"))?;
    let mut parts = 0;
    for p in spec.split(|&c| c == b':') {
        parts += 1;
        let ok = !p.is_empty()
            && p.len() <= 8
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .is_some_and(|v| v < MAX_ACCESS_INDEX);
        if !ok || parts > MAX_SPEC_LEN {
            return Err(format!(
                "bad access string `{}`",
                String::from_utf8_lossy(spec)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write;

    /// A small BPF object: `license`, one program section with a function symbol.
    fn minimal() -> Vec<u8> {
        let mut o = write::Object::new(
            object::BinaryFormat::Elf,
            object::Architecture::Bpf,
            object::Endianness::Little,
        );
        let lic = o.add_section(Vec::new(), b"license".to_vec(), object::SectionKind::Data);
        o.append_section_data(lic, b"GPL\0", 1);
        let text = o.add_section(
            Vec::new(),
            b"tracepoint/syscalls/sys_enter_getppid".to_vec(),
            object::SectionKind::Text,
        );
        // r0 = 0; exit
        let code = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];
        let off = o.append_section_data(text, &code, 8);
        o.add_symbol(write::Symbol {
            name: b"prog".to_vec(),
            value: off,
            size: 16,
            kind: object::SymbolKind::Text,
            scope: object::SymbolScope::Linkage,
            weak: false,
            section: write::SymbolSection::Section(text),
            flags: object::SymbolFlags::None,
        });
        o.write().unwrap()
    }

    fn defect(b: &[u8]) -> String {
        check(b).unwrap_err().to_string()
    }

    #[test]
    fn a_well_formed_object_passes() {
        assert_eq!(check(&minimal()), Ok(()));
    }

    #[test]
    fn header_defects_name_the_field() {
        let good = minimal();
        assert!(defect(&good[..40]).contains("shorter than an ELF header"));
        let mut b = good.clone();
        b[18] = 62;
        assert_eq!(
            defect(&b),
            "e_machine is 62, not BPF (247) (file offset 0x12)"
        );
        let mut b = good.clone();
        b[0x3e] = 0xee;
        assert!(defect(&b).contains("e_shstrndx 238 is not a section"));
        let mut b = good.clone();
        b[0x3c..0x3e].copy_from_slice(&0u16.to_le_bytes());
        assert!(defect(&b).contains("no section headers"));
        let mut b = good;
        b.truncate(b.len() - 1);
        assert!(defect(&b).contains("section header table"));
    }

    #[test]
    fn a_program_section_of_partial_instructions_is_rejected() {
        let mut b = minimal();
        let shoff = u64_at(&b, 0x28).unwrap() as usize;
        let shnum = u16_at(&b, 0x3c).unwrap() as usize;
        let prog = (0..shnum)
            .map(|i| shoff + i * 64)
            .find(|&h| u64_at(&b, h as u64 + 8).unwrap() & SHF_EXECINSTR != 0)
            .unwrap();
        b[prog + 32..prog + 40].copy_from_slice(&12u64.to_le_bytes());
        let d = defect(&b);
        assert!(
            d.contains("not a whole number of 8-byte instructions"),
            "{d}"
        );
        assert!(
            d.contains("(section tracepoint/syscalls/sys_enter_getppid, offset 0xc)"),
            "{d}"
        );
    }
}
