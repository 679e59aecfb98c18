//! Object emission: packs generated programs and map definitions into an in-memory
//! ELF relocatable object of the shape clang produces for BPF (a `license` section, a
//! legacy `maps` section with one symbol per map, one executable section per program,
//! and an `R_BPF_64_64` relocation at every `ld_imm64` of a map), which aya loads.

use object::write::{Object, Relocation, StandardSection, Symbol, SymbolSection};
use object::{
    Architecture, BinaryFormat, Endianness, RelocationFlags, SectionKind, SymbolFlags, SymbolKind,
    SymbolScope,
};

pub use crate::abi::{MapDef, ProgramCode};

/// `R_BPF_64_64`: the relocation of a 64-bit immediate load of a map address.
const R_BPF_64_64: u32 = 1;

/// Serialise programs and maps into an ELF object.
pub fn emit(programs: &[ProgramCode], maps: &[MapDef]) -> Result<Vec<u8>, String> {
    let mut obj = Object::new(BinaryFormat::Elf, Architecture::Bpf, Endianness::Little);

    let license = obj.add_section(Vec::new(), b"license".to_vec(), SectionKind::Data);
    obj.append_section_data(license, b"GPL\0", 1);
    let _ = StandardSection::Data;

    let mut map_symbols = Vec::with_capacity(maps.len());
    if !maps.is_empty() {
        let section = obj.add_section(Vec::new(), b"maps".to_vec(), SectionKind::Data);
        for map in maps {
            let mut def = Vec::with_capacity(20);
            for field in [
                map.map_type,
                map.key_size,
                map.value_size,
                map.max_entries,
                map.flags,
            ] {
                def.extend_from_slice(&field.to_le_bytes());
            }
            let offset = obj.append_section_data(section, &def, 4);
            map_symbols.push(obj.add_symbol(Symbol {
                name: map.name.as_bytes().to_vec(),
                value: offset,
                size: def.len() as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Dynamic,
                weak: false,
                section: SymbolSection::Section(section),
                flags: SymbolFlags::None,
            }));
        }
    }

    for program in programs {
        let section = obj.add_section(
            Vec::new(),
            program.section.as_bytes().to_vec(),
            SectionKind::Text,
        );
        let code: Vec<u8> = program.insns.iter().flat_map(|i| i.to_bytes()).collect();
        obj.append_section_data(section, &code, 8);
        obj.add_symbol(Symbol {
            name: program.name.as_bytes().to_vec(),
            value: 0,
            size: code.len() as u64,
            kind: SymbolKind::Text,
            scope: SymbolScope::Dynamic,
            weak: false,
            section: SymbolSection::Section(section),
            flags: SymbolFlags::None,
        });
        for &(at, map) in &program.map_relocs {
            let symbol = *map_symbols
                .get(map)
                .ok_or("internal error: relocation to an unknown map")?;
            obj.add_relocation(
                section,
                Relocation {
                    offset: at as u64 * 8,
                    symbol,
                    addend: 0,
                    flags: RelocationFlags::Elf {
                        r_type: R_BPF_64_64,
                    },
                },
            )
            .map_err(|e| format!("internal error: {e}"))?;
        }
    }

    obj.write()
        .map_err(|e| format!("internal error writing the object: {e}"))
}
