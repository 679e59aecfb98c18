//! A readable listing of generated instructions, in the kernel verifier's notation
//! (`r1 = *(u64 *)(r10 - 8)`, `if r0 == 0x0 goto +3`, `call bpf_map_lookup_elem`), with
//! map loads named by map (`r1 = map[events]`) instead of file descriptors, so a listing
//! depends on nothing but the code. Covers the instruction set [`super::insn`] emits;
//! anything else is shown as its raw fields. Used by the golden code-generation tests.

use std::fmt::Write;

use super::insn::{helper, Insn};
use super::object_file::{MapDef, ProgramCode};

/// The name of a helper the code generator calls (ids outside [`helper`] are named in
/// the modules that use them).
fn helper_name(id: i32) -> String {
    let name = match id {
        helper::MAP_LOOKUP_ELEM => "map_lookup_elem",
        helper::MAP_UPDATE_ELEM => "map_update_elem",
        helper::MAP_DELETE_ELEM => "map_delete_elem",
        4 => "probe_read",
        helper::KTIME_GET_NS => "ktime_get_ns",
        6 => "trace_printk",
        7 => "get_prandom_u32",
        helper::GET_SMP_PROCESSOR_ID => "get_smp_processor_id",
        helper::GET_CURRENT_PID_TGID => "get_current_pid_tgid",
        helper::GET_CURRENT_UID_GID => "get_current_uid_gid",
        helper::GET_CURRENT_COMM => "get_current_comm",
        26 => "skb_load_bytes",
        27 => "get_stackid",
        helper::GET_CURRENT_TASK => "get_current_task",
        helper::PROBE_READ_STR => "probe_read_str",
        helper::GET_CURRENT_CGROUP_ID => "get_current_cgroup_id",
        helper::SEND_SIGNAL => "send_signal",
        helper::PROBE_READ_USER => "probe_read_user",
        helper::PROBE_READ_KERNEL => "probe_read_kernel",
        helper::PROBE_READ_USER_STR => "probe_read_user_str",
        helper::PROBE_READ_KERNEL_STR => "probe_read_kernel_str",
        120 => "get_ns_current_pid_tgid",
        helper::GET_CURRENT_ANCESTOR_CGROUP_ID => "get_current_ancestor_cgroup_id",
        125 => "ktime_get_boot_ns",
        helper::RINGBUF_OUTPUT => "ringbuf_output",
        helper::GET_FUNC_IP => "get_func_ip",
        _ => return format!("helper#{id}"),
    };
    format!("bpf_{name}")
}

fn size_name(code: u8) -> &'static str {
    match code & 0x18 {
        0x00 => "u32",
        0x08 => "u16",
        0x10 => "u8",
        _ => "u64",
    }
}

fn alu_op(op: u8) -> Option<&'static str> {
    Some(match op {
        0x00 => "+=",
        0x10 => "-=",
        0x20 => "*=",
        0x30 => "/=",
        0x40 => "|=",
        0x50 => "&=",
        0x60 => "<<=",
        0x70 => ">>=",
        0x90 => "%=",
        0xa0 => "^=",
        0xb0 => "=",
        0xc0 => "s>>=",
        _ => return None,
    })
}

fn jmp_op(op: u8) -> Option<&'static str> {
    Some(match op {
        0x10 => "==",
        0x20 => ">",
        0x30 => ">=",
        0x40 => "&",
        0x50 => "!=",
        0x60 => "s>",
        0x70 => "s>=",
        0xa0 => "<",
        0xb0 => "<=",
        0xc0 => "s<",
        0xd0 => "s<=",
        _ => return None,
    })
}

/// `(r10 - 8)`-style operand.
fn mem(reg: u8, off: i16) -> String {
    match off {
        0 => format!("(r{reg} + 0)"),
        o if o < 0 => format!("(r{reg} - {})", -i32::from(o)),
        o => format!("(r{reg} + {o})"),
    }
}

fn imm_hex(imm: i64) -> String {
    if imm < 0 {
        format!("-{:#x}", imm.unsigned_abs())
    } else {
        format!("{imm:#x}")
    }
}

/// One instruction (`next` is the following slot, for a 64-bit immediate load).
fn insn_text(insn: &Insn, next: Option<&Insn>, map: Option<&str>) -> String {
    let (code, dst, src, off, imm) = (insn.code, insn.dst, insn.src, insn.off, insn.imm);
    let class = code & 0x07;
    let raw = || format!("raw code={code:#04x} dst=r{dst} src=r{src} off={off} imm={imm}");
    match class {
        // ld_imm64
        0x00 if code == 0x18 => match map {
            Some(name) => format!("r{dst} = map[{name}]"),
            None => {
                let high = next.map_or(0, |n| n.imm);
                let value = (i64::from(high) << 32) | i64::from(imm as u32);
                format!("r{dst} = {} ll", imm_hex(value))
            }
        },
        // ldx
        0x01 if code & 0xe0 == 0x60 => {
            format!("r{dst} = *({} *){}", size_name(code), mem(src, off))
        }
        // st
        0x02 if code & 0xe0 == 0x60 => {
            format!("*({} *){} = {}", size_name(code), mem(dst, off), imm)
        }
        // stx
        0x03 if code & 0xe0 == 0x60 => {
            format!("*({} *){} = r{src}", size_name(code), mem(dst, off))
        }
        // byte swap (BPF_END | BPF_TO_BE)
        0x04 if code == 0xdc => format!("r{dst} = be{imm} r{dst}"),
        0x05 => match code & 0xf0 {
            0x00 => format!("goto {off:+}"),
            0x80 => format!("call {}", helper_name(imm)),
            0x90 => "exit".to_string(),
            op => match jmp_op(op) {
                Some(op) if code & 0x08 != 0 => format!("if r{dst} {op} r{src} goto {off:+}"),
                Some(op) => format!("if r{dst} {op} {} goto {off:+}", imm_hex(imm.into())),
                None => raw(),
            },
        },
        0x07 if code & 0xf0 == 0x80 => format!("r{dst} = -r{dst}"),
        0x07 => match alu_op(code & 0xf0) {
            Some(op) if code & 0x08 != 0 => format!("r{dst} {op} r{src}"),
            Some(op) => format!("r{dst} {op} {imm}"),
            None => raw(),
        },
        _ => raw(),
    }
}

/// The listing of one program: one line per instruction, numbered by slot (a 64-bit
/// immediate load takes two slots and one line).
pub fn disassemble(code: &ProgramCode, maps: &[MapDef]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < code.insns.len() {
        let insn = &code.insns[i];
        let map = code
            .map_relocs
            .iter()
            .find(|(at, _)| *at == i)
            .map(|(_, m)| maps.get(*m).map_or("?", |d| d.name.as_str()));
        let text = insn_text(insn, code.insns.get(i + 1), map);
        let _ = writeln!(out, "{i:5}: {text}");
        i += if insn.code == 0x18 { 2 } else { 1 };
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::insn::{Alu, Asm, Cond, Size, FP, R0, R1, R2};

    fn listing(build: impl FnOnce(&mut Asm)) -> String {
        let mut a = Asm::default();
        build(&mut a);
        let (insns, map_relocs) = a.finish().unwrap();
        let code = ProgramCode {
            section: "s".into(),
            name: "p".into(),
            insns,
            map_relocs,
        };
        let maps = [MapDef {
            name: "events".into(),
            map_type: 27,
            key_size: 0,
            value_size: 0,
            max_entries: 1,
            flags: 0,
        }];
        disassemble(&code, &maps)
    }

    #[test]
    fn memory_alu_and_calls_read_like_the_verifier_log() {
        let text = listing(|a| {
            a.load(Size::DW, R1, FP, -8);
            a.store(Size::W, FP, -16, R0);
            a.store_imm(Size::B, R1, 4, 7);
            a.alu_imm(Alu::Add, R1, -3);
            a.alu_reg(Alu::Mov, R2, R1);
            a.neg(R2);
            a.bswap(R2, 16);
            a.call(helper::GET_CURRENT_PID_TGID);
            a.exit();
        });
        let expected = "    0: r1 = *(u64 *)(r10 - 8)\n    1: *(u32 *)(r10 - 16) = r0\n    \
                        2: *(u8 *)(r1 + 4) = 7\n    3: r1 += -3\n    4: r2 = r1\n    \
                        5: r2 = -r2\n    6: r2 = be16 r2\n    7: call bpf_get_current_pid_tgid\n    \
                        8: exit\n";
        assert_eq!(text, expected);
    }

    #[test]
    fn wide_loads_take_two_slots_and_maps_are_named() {
        let text = listing(|a| {
            a.load_map(R1, 0);
            a.load_const(R2, -0x1_0000_0000);
            let l = a.new_label();
            a.jump_imm(Cond::Sgt, R2, -1, l);
            a.jump_reg(Cond::Ne, R1, R2, l);
            a.jump(l);
            a.bind(l);
            a.exit();
        });
        let expected = "    0: r1 = map[events]\n    2: r2 = -0x100000000 ll\n    \
                        4: if r2 s> -0x1 goto +2\n    5: if r1 != r2 goto +1\n    \
                        6: goto +0\n    7: exit\n";
        assert_eq!(text, expected);
    }
}
