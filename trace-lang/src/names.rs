//! The language's builtin variables ([`Builtin`]) and functions ([`Func`]) as enums:
//! the one place their names are spelled. The parser turns a builtin word into a
//! [`Builtin`]; semantic analysis resolves each call's name to a [`Func`] (an unknown
//! name is its error) and checks the argument count from [`Func::arity`]; code
//! generation matches on the enums and never on names.

use std::fmt;

/// A builtin variable: `pid`, `comm`, `arg0`, `$#`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Builtin {
    Pid,
    Tid,
    Uid,
    Gid,
    Cpu,
    Nsecs,
    Elapsed,
    Numaid,
    Cgroup,
    Comm,
    Kstack,
    Ustack,
    Retval,
    Func,
    Probe,
    Args,
    Ctx,
    Curtask,
    Rand,
    Username,
    Cpid,
    Jiffies,
    Usermode,
    Skb,
    /// `$#`: the number of positional parameters.
    ParamCount,
    /// `arg0` .. `arg9`.
    Arg(u8),
    /// `sarg0` .. `sarg9`: stack arguments.
    Sarg(u8),
}

/// The builtins without a number, with their names.
const NAMED: &[(&str, Builtin)] = &[
    ("pid", Builtin::Pid),
    ("tid", Builtin::Tid),
    ("uid", Builtin::Uid),
    ("gid", Builtin::Gid),
    ("cpu", Builtin::Cpu),
    ("nsecs", Builtin::Nsecs),
    ("elapsed", Builtin::Elapsed),
    ("numaid", Builtin::Numaid),
    ("cgroup", Builtin::Cgroup),
    ("comm", Builtin::Comm),
    ("kstack", Builtin::Kstack),
    ("ustack", Builtin::Ustack),
    ("retval", Builtin::Retval),
    ("func", Builtin::Func),
    ("probe", Builtin::Probe),
    ("args", Builtin::Args),
    ("ctx", Builtin::Ctx),
    ("curtask", Builtin::Curtask),
    ("rand", Builtin::Rand),
    ("username", Builtin::Username),
    ("cpid", Builtin::Cpid),
    ("jiffies", Builtin::Jiffies),
    ("usermode", Builtin::Usermode),
    ("skb", Builtin::Skb),
    ("$#", Builtin::ParamCount),
];

impl Builtin {
    /// The builtin a word names (the words bpftrace's lexer reserves as builtins, and
    /// `$#`); `None` for any other identifier.
    pub fn from_name(name: &str) -> Option<Builtin> {
        if let Some(&(_, b)) = NAMED.iter().find(|(n, _)| *n == name) {
            return Some(b);
        }
        let digit = |prefix: &str| {
            let d = name.strip_prefix(prefix)?.as_bytes();
            (d.len() == 1 && d[0].is_ascii_digit()).then(|| d[0] - b'0')
        };
        digit("sarg")
            .map(Builtin::Sarg)
            .or_else(|| digit("arg").map(Builtin::Arg))
    }

    /// Every name [`Builtin::from_name`] accepts.
    pub fn names() -> Vec<String> {
        let numbered = (0..10u8).flat_map(|i| [Builtin::Arg(i), Builtin::Sarg(i)]);
        NAMED
            .iter()
            .map(|(_, b)| *b)
            .chain(numbered)
            .map(|b| b.to_string())
            .collect()
    }
}

impl fmt::Display for Builtin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Builtin::Arg(i) => write!(f, "arg{i}"),
            Builtin::Sarg(i) => write!(f, "sarg{i}"),
            b => {
                let name = NAMED.iter().find(|(_, x)| x == b).map_or("?", |(n, _)| n);
                f.write_str(name)
            }
        }
    }
}

/// A function the language has: `printf`, `count`, `str`, `kstack`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Func {
    // Aggregations (only as the value of a map assignment).
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Stats,
    Hist,
    Lhist,
    // Actions (no value).
    Printf,
    System,
    Cat,
    Debugf,
    Print,
    Time,
    Exit,
    Clear,
    Zero,
    Delete,
    Signal,
    Join,
    Unwatch,
    // Functions with a value.
    Offsetof,
    Kstack,
    Ustack,
    Str,
    Cgroupid,
    Kaddr,
    Reg,
    Strcontains,
    Uaddr,
    Ksym,
    Usym,
    Bswap,
    Kptr,
    Uptr,
    Strncmp,
    Ntop,
    Macaddr,
    Buf,
    Strftime,
    CgroupPath,
    Pton,
    Strerror,
}

/// Every function with its name and argument count (least, most).
const FUNCS: &[(Func, &str, usize, usize)] = &[
    (Func::Count, "count", 0, 0),
    (Func::Sum, "sum", 1, 1),
    (Func::Avg, "avg", 1, 1),
    (Func::Min, "min", 1, 1),
    (Func::Max, "max", 1, 1),
    (Func::Stats, "stats", 1, 1),
    (Func::Hist, "hist", 1, 1),
    (Func::Lhist, "lhist", 4, 4),
    (Func::Printf, "printf", 0, usize::MAX),
    (Func::System, "system", 0, usize::MAX),
    (Func::Cat, "cat", 0, usize::MAX),
    (Func::Debugf, "debugf", 0, usize::MAX),
    (Func::Print, "print", 1, 3),
    (Func::Time, "time", 0, 1),
    (Func::Exit, "exit", 0, 0),
    (Func::Clear, "clear", 1, 1),
    (Func::Zero, "zero", 1, 1),
    (Func::Delete, "delete", 1, 1),
    (Func::Signal, "signal", 1, 1),
    (Func::Join, "join", 1, 2),
    (Func::Unwatch, "unwatch", 1, 1),
    (Func::Offsetof, "offsetof", 2, 2),
    (Func::Kstack, "kstack", 0, 2),
    (Func::Ustack, "ustack", 0, 2),
    (Func::Str, "str", 1, 2),
    (Func::Cgroupid, "cgroupid", 1, 1),
    (Func::Kaddr, "kaddr", 1, 1),
    (Func::Reg, "reg", 1, 1),
    (Func::Strcontains, "strcontains", 2, 2),
    (Func::Uaddr, "uaddr", 1, 1),
    (Func::Ksym, "ksym", 1, 1),
    (Func::Usym, "usym", 1, 1),
    (Func::Bswap, "bswap", 1, 1),
    (Func::Kptr, "kptr", 1, 1),
    (Func::Uptr, "uptr", 1, 1),
    (Func::Strncmp, "strncmp", 3, 3),
    (Func::Ntop, "ntop", 1, 2),
    (Func::Macaddr, "macaddr", 1, 1),
    (Func::Buf, "buf", 1, 2),
    (Func::Strftime, "strftime", 2, 2),
    (Func::CgroupPath, "cgroup_path", 1, 2),
    (Func::Pton, "pton", 1, 1),
    (Func::Strerror, "strerror", 1, 1),
];

impl Func {
    /// The function a call's name resolves to; `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Func> {
        FUNCS.iter().find(|e| e.1 == name).map(|e| e.0)
    }

    fn entry(self) -> &'static (Func, &'static str, usize, usize) {
        FUNCS
            .iter()
            .find(|e| e.0 == self)
            .expect("every Func is in FUNCS (checked by a test)")
    }

    /// The name as written in scripts.
    pub fn name(self) -> &'static str {
        self.entry().1
    }

    /// How many arguments a call takes: (least, most).
    pub fn arity(self) -> (usize, usize) {
        let e = self.entry();
        (e.2, e.3)
    }

    /// Every function name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        FUNCS.iter().map(|e| e.1)
    }

    /// An aggregation (`count`, `sum`, `avg`, `min`, `max`, `stats`, `hist`, `lhist`),
    /// only valid as the value of a map assignment.
    pub fn is_aggregation(self) -> bool {
        use Func::*;
        matches!(self, Count | Sum | Avg | Min | Max | Stats | Hist | Lhist)
    }

    /// A function that returns no value.
    pub fn is_void(self) -> bool {
        use Func::*;
        matches!(
            self,
            Printf
                | Print
                | Time
                | Exit
                | Clear
                | Zero
                | Delete
                | System
                | Cat
                | Signal
                | Join
                | Debugf
                | Unwatch
        )
    }
}

impl fmt::Display for Func {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_names_round_trip() {
        let names = Builtin::names();
        assert_eq!(names.len(), 25 + 20);
        for name in &names {
            let b = Builtin::from_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(&b.to_string(), name);
        }
        assert_eq!(Builtin::from_name("arg10"), None);
        assert_eq!(Builtin::from_name("sarg"), None);
        assert_eq!(Builtin::from_name("argv"), None);
        assert_eq!(Builtin::from_name("sarg3"), Some(Builtin::Sarg(3)));
        assert_eq!(Builtin::from_name("TCP_CLOSE"), None);
    }

    #[test]
    fn func_names_round_trip_and_are_distinct() {
        let names: Vec<&str> = Func::names().collect();
        for (i, name) in names.iter().enumerate() {
            let f = Func::from_name(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(f.name(), *name);
            assert!(!names[..i].contains(name), "{name} twice");
            let (min, max) = f.arity();
            assert!(min <= max, "{name}");
            assert!(!FUNCS[..i].iter().any(|e| e.0 == f), "{f:?} twice");
        }
        // Distinct entries, as many as `Func` has variants: every variant is listed.
        assert_eq!(FUNCS.len(), 43);
        assert_eq!(Func::from_name("printf_"), None);
        assert_eq!(Func::Lhist.arity(), (4, 4));
        assert!(Func::Hist.is_aggregation() && !Func::Str.is_aggregation());
        assert!(Func::Printf.is_void() && !Func::Count.is_void());
    }
}
