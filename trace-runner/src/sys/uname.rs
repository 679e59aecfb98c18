//! `uname(2)`: the kernel's name, release, version and machine, for `--info`.

/// What `uname` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Uname {
    pub(crate) sysname: String,
    pub(crate) release: String,
    pub(crate) version: String,
    pub(crate) machine: String,
}

/// This kernel's `uname` (empty fields if the call fails, which it cannot on Linux).
pub(crate) fn uname() -> Uname {
    // SAFETY: uname fills a zeroed struct of NUL-terminated fields.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    unsafe { libc::uname(&mut u) };
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Uname {
        sysname: field(&u.sysname),
        release: field(&u.release),
        version: field(&u.version),
        machine: field(&u.machine),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_is_linux() {
        let u = super::uname();
        assert_eq!(u.sysname, "Linux");
        assert!(!u.release.is_empty() && !u.machine.is_empty());
    }
}
