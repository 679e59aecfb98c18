//! The eBPF instruction set: encodings, helper ids, and a small assembler with labels
//! and map relocations. Code generation emits through [`Asm`]; object emission
//! serialises the result.

pub use crate::abi::Insn;

/// A register r0..r10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reg(pub u8);

pub const R0: Reg = Reg(0);
pub const R1: Reg = Reg(1);
pub const R2: Reg = Reg(2);
pub const R3: Reg = Reg(3);
pub const R4: Reg = Reg(4);
pub const R5: Reg = Reg(5);
pub const R6: Reg = Reg(6);
pub const R7: Reg = Reg(7);
pub const R8: Reg = Reg(8);
pub const R9: Reg = Reg(9);
/// The read-only frame pointer.
pub const FP: Reg = Reg(10);

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const ST: u8 = 0x02;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Sizes and modes.
const DW: u8 = 0x18;
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
// Sources.
const K: u8 = 0x00;
const X: u8 = 0x08;

/// Memory access width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    B,
    H,
    W,
    DW,
}

impl Size {
    fn bits(self) -> u8 {
        match self {
            Size::W => 0x00,
            Size::H => 0x08,
            Size::B => 0x10,
            Size::DW => 0x18,
        }
    }

    pub fn from_bytes(n: usize) -> Size {
        match n {
            1 => Size::B,
            2 => Size::H,
            4 => Size::W,
            _ => Size::DW,
        }
    }
}

/// 64-bit ALU operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alu {
    Add = 0x00,
    Sub = 0x10,
    Mul = 0x20,
    Div = 0x30,
    Or = 0x40,
    And = 0x50,
    Lsh = 0x60,
    Rsh = 0x70,
    Mod = 0x90,
    Xor = 0xa0,
    Mov = 0xb0,
    Arsh = 0xc0,
}

/// Conditional jumps (64-bit compares).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cond {
    Eq = 0x10,
    Gt = 0x20,
    Ge = 0x30,
    Ne = 0x50,
    Sgt = 0x60,
    Sge = 0x70,
    Lt = 0xa0,
    Le = 0xb0,
    Slt = 0xc0,
    Sle = 0xd0,
}

/// Kernel helper function ids used by the code generator.
pub mod helper {
    pub const MAP_LOOKUP_ELEM: i32 = 1;
    pub const MAP_UPDATE_ELEM: i32 = 2;
    pub const MAP_DELETE_ELEM: i32 = 3;
    pub const PROBE_READ: i32 = 4;
    pub const KTIME_GET_NS: i32 = 5;
    pub const TRACE_PRINTK: i32 = 6;
    pub const GET_PRANDOM_U32: i32 = 7;
    pub const GET_SMP_PROCESSOR_ID: i32 = 8;
    pub const GET_CURRENT_PID_TGID: i32 = 14;
    pub const GET_CURRENT_UID_GID: i32 = 15;
    pub const GET_CURRENT_COMM: i32 = 16;
    pub const GET_CURRENT_TASK: i32 = 35;
    pub const GET_NUMA_NODE_ID: i32 = 42;
    pub const PROBE_READ_STR: i32 = 45;
    pub const GET_CURRENT_CGROUP_ID: i32 = 80;
    pub const SEND_SIGNAL: i32 = 109;
    pub const PROBE_READ_USER: i32 = 112;
    pub const PROBE_READ_KERNEL: i32 = 113;
    pub const PROBE_READ_USER_STR: i32 = 114;
    pub const PROBE_READ_KERNEL_STR: i32 = 115;
    pub const GET_CURRENT_ANCESTOR_CGROUP_ID: i32 = 123;
    pub const RINGBUF_OUTPUT: i32 = 130;
    pub const GET_FUNC_IP: i32 = 173;
}

/// Finished code: the instructions and `(instruction index, map index)` relocations.
pub type Assembled = (Vec<Insn>, Vec<(usize, usize)>);

/// A jump target, bound later with [`Asm::bind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Label(usize);

/// An instruction stream under construction.
#[derive(Debug, Default)]
pub struct Asm {
    pub insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
    /// `(instruction index, map index)` for each `ld_imm64` of a map's address.
    pub map_relocs: Vec<(usize, usize)>,
}

impl Asm {
    fn push(&mut self, code: u8, dst: Reg, src: Reg, off: i16, imm: i32) {
        self.insns.push(Insn {
            code,
            dst: dst.0,
            src: src.0,
            off,
            imm,
        });
    }

    pub fn new_label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    pub fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    pub fn alu_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.push(ALU64 | op as u8 | K, dst, Reg(0), 0, imm);
    }

    pub fn alu_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.push(ALU64 | op as u8 | X, dst, src, 0, 0);
    }

    /// Swap the byte order of the low `bits` (16, 32 or 64) of `dst` (`BPF_END | BPF_TO_BE`
    /// on little-endian: a byte swap), zeroing the rest.
    pub fn bswap(&mut self, dst: Reg, bits: i32) {
        self.insns.push(Insn {
            code: 0x04 | 0xd0 | 0x08,
            dst: dst.0,
            src: 0,
            off: 0,
            imm: bits,
        });
    }

    pub fn neg(&mut self, dst: Reg) {
        self.push(ALU64 | 0x80, dst, Reg(0), 0, 0);
    }

    pub fn mov_imm(&mut self, dst: Reg, imm: i32) {
        self.alu_imm(Alu::Mov, dst, imm);
    }

    pub fn mov(&mut self, dst: Reg, src: Reg) {
        self.alu_reg(Alu::Mov, dst, src);
    }

    /// Load any 64-bit constant (one instruction when it fits in i32).
    pub fn load_const(&mut self, dst: Reg, value: i64) {
        if let Ok(v) = i32::try_from(value) {
            self.mov_imm(dst, v);
        } else {
            self.push(LD | DW | IMM, dst, Reg(0), 0, value as i32);
            self.push(0, Reg(0), Reg(0), 0, (value >> 32) as i32);
        }
    }

    /// `dst = &map` (relocated by the loader).
    pub fn load_map(&mut self, dst: Reg, map: usize) {
        self.map_relocs.push((self.insns.len(), map));
        self.push(LD | DW | IMM, dst, Reg(1), 0, 0);
        self.push(0, Reg(0), Reg(0), 0, 0);
    }

    /// `dst = *(size *)(src + off)`
    pub fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.push(LDX | MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = src`
    pub fn store(&mut self, size: Size, dst: Reg, off: i16, src: Reg) {
        self.push(STX | MEM | size.bits(), dst, src, off, 0);
    }

    /// `*(size *)(dst + off) = imm`
    pub fn store_imm(&mut self, size: Size, dst: Reg, off: i16, imm: i32) {
        self.push(ST | MEM | size.bits(), dst, Reg(0), off, imm);
    }

    pub fn call(&mut self, helper: i32) {
        self.push(JMP | 0x80, Reg(0), Reg(0), 0, helper);
    }

    pub fn exit(&mut self) {
        self.push(JMP | 0x90, Reg(0), Reg(0), 0, 0);
    }

    pub fn jump(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(JMP, Reg(0), Reg(0), 0, 0);
    }

    pub fn jump_imm(&mut self, cond: Cond, dst: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(JMP | cond as u8 | K, dst, Reg(0), 0, imm);
    }

    pub fn jump_reg(&mut self, cond: Cond, dst: Reg, src: Reg, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.push(JMP | cond as u8 | X, dst, src, 0, 0);
    }

    /// Sign- or zero-extend the low `bytes` of `reg` to 64 bits.
    pub fn extend(&mut self, reg: Reg, bytes: u8, signed: bool) {
        if bytes >= 8 {
            return;
        }
        let shift = 64 - 8 * i32::from(bytes);
        self.alu_imm(Alu::Lsh, reg, shift);
        self.alu_imm(if signed { Alu::Arsh } else { Alu::Rsh }, reg, shift);
    }

    /// Resolve jumps; fails only on an internal error (unbound label, jump too far).
    pub fn finish(mut self) -> Result<Assembled, String> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].ok_or("internal error: unbound label")?;
            let off = target as i64 - at as i64 - 1;
            self.insns[at].off =
                i16::try_from(off).map_err(|_| "program too large: jump out of range")?;
        }
        Ok((self.insns, self.map_relocs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_mov_and_exit() {
        let mut a = Asm::default();
        a.mov_imm(R0, 7);
        a.exit();
        let (insns, _) = a.finish().unwrap();
        assert_eq!(insns[0].to_bytes(), [0xb7, 0x00, 0, 0, 7, 0, 0, 0]);
        assert_eq!(insns[1].to_bytes(), [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn resolves_forward_jumps() {
        let mut a = Asm::default();
        let l = a.new_label();
        a.jump_imm(Cond::Eq, R1, 0, l);
        a.mov_imm(R0, 1);
        a.bind(l);
        a.exit();
        let (insns, _) = a.finish().unwrap();
        assert_eq!(insns[0].off, 1);
        assert_eq!(insns[0].code, 0x15);
    }

    #[test]
    fn wide_constants_take_two_slots() {
        let mut a = Asm::default();
        a.load_const(R1, 0x1_0000_0002);
        let (insns, _) = a.finish().unwrap();
        assert_eq!(insns.len(), 2);
        assert_eq!(insns[0].imm, 2);
        assert_eq!(insns[1].imm, 1);
    }
}
