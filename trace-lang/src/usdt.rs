//! USDT (SystemTap SDT) probe descriptions as analysis and code generation receive
//! them: a probe's locations (file offset, semaphore, arguments) and the typed form of
//! an x86-64 argument spec (`-4@%eax`, `8@-8(%rbp)`, `4@$5`, `-2@16(%rsp,%rax,8)`),
//! with its parser. Reading the notes out of ELF files is the runner's business.

/// One probe as found in a file: `usdt:PATH:PROVIDER:NAME`, and where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct UsdtProbe {
    /// The file as the probe's name shows it (as written, or `/proc/PID/root/...`).
    pub path: String,
    pub provider: String,
    pub name: String,
    /// One per marker in the code (an inlined function has several); each is a uprobe.
    pub locations: Vec<UsdtLocation>,
}

/// One marker of a probe.
#[derive(Debug, Clone, PartialEq)]
pub struct UsdtLocation {
    /// The file to attach to (may differ from the displayed path, e.g. inside a container).
    pub file: String,
    /// Offset of the marker in the file (what a uprobe takes).
    pub offset: u64,
    /// Offset in the file of the semaphore (a u16 counter enabling the probe), 0 for none.
    pub semaphore: u64,
    /// The arguments, parsed from the note's argument string.
    pub args: Vec<Result<UsdtArg, String>>,
}

/// Where an argument's value is at the marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgLocation {
    /// `$N`: a constant.
    Const(i64),
    /// `%reg`: the value of a register (its 64-bit parent; `size` says how much of it).
    Reg(Reg),
    /// `off(%base[,%index[,scale]])`: a value in the process's memory at
    /// `base + index * scale + offset`.
    Mem {
        base: Reg,
        offset: i64,
        index: Option<(Reg, u8)>,
    },
}

/// An x86-64 general purpose register, by its 64-bit name (`%eax` is [`Reg::Rax`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reg {
    Rax,
    Rbx,
    Rcx,
    Rdx,
    Rsi,
    Rdi,
    Rbp,
    Rsp,
    R8,
    R9,
    R10,
    R11,
    R12,
    R13,
    R14,
    R15,
    Rip,
}

impl Reg {
    /// Offset of the register in the kernel's x86-64 `struct pt_regs`.
    pub fn pt_regs_offset(self) -> i16 {
        match self {
            Reg::R15 => 0,
            Reg::R14 => 8,
            Reg::R13 => 16,
            Reg::R12 => 24,
            Reg::Rbp => 32,
            Reg::Rbx => 40,
            Reg::R11 => 48,
            Reg::R10 => 56,
            Reg::R9 => 64,
            Reg::R8 => 72,
            Reg::Rax => 80,
            Reg::Rcx => 88,
            Reg::Rdx => 96,
            Reg::Rsi => 104,
            Reg::Rdi => 112,
            Reg::Rip => 128,
            Reg::Rsp => 152,
        }
    }
}

/// One argument: `[-]SIZE@LOCATION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsdtArg {
    /// Bytes: 1, 2, 4 or 8.
    pub size: u8,
    /// A negative size in the spec: the value is sign-extended to 64 bits.
    pub signed: bool,
    pub loc: ArgLocation,
}

/// A register by any of its names (`%rax`, `%eax`, `%ax`, `%al`, `%r8d`, ...): the
/// 64-bit register and how many low bytes the name covers (`%ah` is refused: it is not
/// the low byte).
fn register(name: &str) -> Option<(Reg, u8)> {
    use Reg::*;
    let legacy = [
        (Rax, ["rax", "eax", "ax", "al"]),
        (Rbx, ["rbx", "ebx", "bx", "bl"]),
        (Rcx, ["rcx", "ecx", "cx", "cl"]),
        (Rdx, ["rdx", "edx", "dx", "dl"]),
        (Rsi, ["rsi", "esi", "si", "sil"]),
        (Rdi, ["rdi", "edi", "di", "dil"]),
        (Rbp, ["rbp", "ebp", "bp", "bpl"]),
        (Rsp, ["rsp", "esp", "sp", "spl"]),
    ];
    for (reg, names) in legacy {
        if let Some(i) = names.iter().position(|n| *n == name) {
            return Some((reg, [8, 4, 2, 1][i]));
        }
    }
    if name == "rip" {
        return Some((Rip, 8));
    }
    let n = name.strip_prefix('r')?;
    let digits: String = n.chars().take_while(|c| c.is_ascii_digit()).collect();
    let reg = match digits.as_str() {
        "8" => R8,
        "9" => R9,
        "10" => R10,
        "11" => R11,
        "12" => R12,
        "13" => R13,
        "14" => R14,
        "15" => R15,
        _ => return None,
    };
    let width = match &n[digits.len()..] {
        "" => 8,
        "d" => 4,
        "w" => 2,
        "b" => 1,
        _ => return None,
    };
    Some((reg, width))
}

fn parse_int(s: &str) -> Option<i64> {
    let (neg, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let v = if let Some(h) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        u64::from_str_radix(h, 16).ok()?
    } else {
        digits.parse::<u64>().ok()?
    };
    // Constants may be written as unsigned 64-bit values: keep their bits.
    Some(if neg {
        (v as i64).wrapping_neg()
    } else {
        v as i64
    })
}

fn parse_reg(s: &str) -> Result<(Reg, u8), String> {
    let name = s
        .strip_prefix('%')
        .ok_or_else(|| format!("expected a register, found '{s}'"))?;
    register(name).ok_or_else(|| format!("unknown register '%{name}'"))
}

/// Parse one argument spec, e.g. `-4@-8(%rbp)`.
pub fn parse_arg(spec: &str) -> Result<UsdtArg, String> {
    let bad = |why: String| format!("argument '{spec}': {why}");
    let (size, loc) = spec
        .split_once('@')
        .ok_or_else(|| bad("expected SIZE@LOCATION".into()))?;
    let n: i32 = size
        .parse()
        .map_err(|_| bad(format!("invalid size '{size}'")))?;
    let signed = n < 0;
    let size = n.unsigned_abs();
    if ![1, 2, 4, 8].contains(&size) {
        return Err(bad(format!("invalid size {n}")));
    }
    let loc = if let Some(c) = loc.strip_prefix('$') {
        ArgLocation::Const(parse_int(c).ok_or_else(|| bad(format!("invalid constant '{c}'")))?)
    } else if loc.starts_with('%') {
        ArgLocation::Reg(parse_reg(loc).map_err(bad)?.0)
    } else if let Some(open) = loc.find('(') {
        let inner = loc[open + 1..]
            .strip_suffix(')')
            .ok_or_else(|| bad("missing ')'".into()))?;
        let disp = &loc[..open];
        let offset = if disp.is_empty() {
            0
        } else {
            parse_int(disp).ok_or_else(|| {
                bad(format!(
                    "unsupported displacement '{disp}' (only numbers are)"
                ))
            })?
        };
        let mut regs = inner.split(',');
        let base = parse_reg(regs.next().unwrap_or("")).map_err(bad)?.0;
        let index = match regs.next() {
            None => None,
            Some(r) => {
                let idx = parse_reg(r).map_err(bad)?.0;
                let scale = match regs.next() {
                    None => 1,
                    Some(s) => match s.parse::<u8>() {
                        Ok(v @ (1 | 2 | 4 | 8)) => v,
                        _ => return Err(bad(format!("invalid scale '{s}'"))),
                    },
                };
                Some((idx, scale))
            }
        };
        if regs.next().is_some() {
            return Err(bad("too many registers".into()));
        }
        ArgLocation::Mem {
            base,
            offset,
            index,
        }
    } else {
        return Err(bad(format!("unsupported location '{loc}'")));
    };
    Ok(UsdtArg {
        size: size as u8,
        signed,
        loc,
    })
}

/// Parse a note's argument string (specs separated by spaces), one result per argument.
pub fn parse_args(text: &str) -> Vec<Result<UsdtArg, String>> {
    text.split_whitespace().map(parse_arg).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arg(size: u8, signed: bool, loc: ArgLocation) -> Result<UsdtArg, String> {
        Ok(UsdtArg { size, signed, loc })
    }

    #[test]
    fn registers_by_every_name() {
        assert_eq!(
            parse_arg("-4@%eax"),
            arg(4, true, ArgLocation::Reg(Reg::Rax))
        );
        assert_eq!(
            parse_arg("8@%rdi"),
            arg(8, false, ArgLocation::Reg(Reg::Rdi))
        );
        assert_eq!(
            parse_arg("1@%r9b"),
            arg(1, false, ArgLocation::Reg(Reg::R9))
        );
        assert_eq!(
            parse_arg("-2@%r12w"),
            arg(2, true, ArgLocation::Reg(Reg::R12))
        );
        assert_eq!(
            parse_arg("4@%r15d"),
            arg(4, false, ArgLocation::Reg(Reg::R15))
        );
        assert_eq!(
            parse_arg("1@%sil"),
            arg(1, false, ArgLocation::Reg(Reg::Rsi))
        );
        assert!(parse_arg("1@%ah")
            .unwrap_err()
            .contains("unknown register '%ah'"));
        assert!(parse_arg("8@%r16").is_err());
    }

    #[test]
    fn constants_memory_and_index() {
        assert_eq!(parse_arg("4@$5"), arg(4, false, ArgLocation::Const(5)));
        assert_eq!(parse_arg("-1@$-16"), arg(1, true, ArgLocation::Const(-16)));
        assert_eq!(
            parse_arg("8@$-579005069656919568"),
            arg(8, false, ArgLocation::Const(-579005069656919568))
        );
        assert_eq!(
            parse_arg("8@$0xf7f6f5f4f3f2f1f0"),
            arg(8, false, ArgLocation::Const(-579005069656919568))
        );
        assert_eq!(
            parse_arg("8@-8(%rbp)"),
            arg(
                8,
                false,
                ArgLocation::Mem {
                    base: Reg::Rbp,
                    offset: -8,
                    index: None
                }
            )
        );
        assert_eq!(
            parse_arg("-4@(%rsp)"),
            arg(
                4,
                true,
                ArgLocation::Mem {
                    base: Reg::Rsp,
                    offset: 0,
                    index: None
                }
            )
        );
        assert_eq!(
            parse_arg("-2@16(%rsp,%rax,8)"),
            arg(
                2,
                true,
                ArgLocation::Mem {
                    base: Reg::Rsp,
                    offset: 16,
                    index: Some((Reg::Rax, 8))
                }
            )
        );
        assert_eq!(
            parse_arg("1@0x10(%rdx,%rcx)"),
            arg(
                1,
                false,
                ArgLocation::Mem {
                    base: Reg::Rdx,
                    offset: 16,
                    index: Some((Reg::Rcx, 1))
                }
            )
        );
    }

    #[test]
    fn bad_specs_say_why() {
        assert!(parse_arg("%eax").unwrap_err().contains("SIZE@LOCATION"));
        assert!(parse_arg("3@%eax").unwrap_err().contains("invalid size 3"));
        assert!(parse_arg("8@counter(%rip)")
            .unwrap_err()
            .contains("unsupported displacement 'counter'"));
        assert!(parse_arg("8@-8(%rbp").unwrap_err().contains("missing ')'"));
        assert!(parse_arg("8@8(%rbp,%rax,3)")
            .unwrap_err()
            .contains("invalid scale"));
        let all = parse_args("-4@%eax 8@%rdx  4@$1");
        assert_eq!(all.len(), 3);
        assert!(all.iter().all(Result::is_ok));
        assert!(parse_args("").is_empty());
    }
}
