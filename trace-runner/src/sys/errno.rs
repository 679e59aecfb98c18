//! errno values the runner tells apart, and the C library's message for one
//! (`strerror`), which bpftrace prints without Rust's "(os error N)".

pub(crate) const ENOENT: i32 = libc::ENOENT;
#[cfg(test)]
pub(crate) const EIO: i32 = libc::EIO;
pub(crate) const ESRCH: i32 = libc::ESRCH;
pub(crate) const ENOSPC: i32 = libc::ENOSPC;
pub(crate) const EDQUOT: i32 = libc::EDQUOT;

/// `strerror(n)`: the C library's message for errno value `n` (any value).
pub(crate) fn strerror(n: i32) -> String {
    // SAFETY: strerror returns a valid NUL-terminated string for any value; it is copied
    // before anything else may call strerror.
    unsafe { std::ffi::CStr::from_ptr(libc::strerror(n)) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn messages_are_the_c_librarys() {
        assert_eq!(super::strerror(super::ENOENT), "No such file or directory");
        assert!(super::strerror(-12345).contains("Unknown error"));
    }
}
