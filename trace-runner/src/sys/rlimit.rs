//! Resource limits: lifting RLIMIT_MEMLOCK, which kernels before 5.11 charge BPF maps
//! and programs to.

/// Set RLIMIT_MEMLOCK (soft and hard) to unlimited.
pub(crate) fn raise_memlock() -> std::io::Result<()> {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit with a valid pointer.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
