//! File-descriptor plumbing for `-o FILE`: pointing stdout at a file while keeping a
//! copy of the original, and writing to such a raw descriptor.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// Point stdout (fd 1) at `file`; returns a close-on-exec copy of the original stdout
/// (a descriptor of at least 3), or -1 when it could not be copied.
pub(crate) fn redirect_stdout(file: &File) -> io::Result<RawFd> {
    // SAFETY: fcntl/dup2 on descriptors this process owns; `file` stays open until dup2
    // is done.
    unsafe {
        let saved = libc::fcntl(libc::STDOUT_FILENO, libc::F_DUPFD_CLOEXEC, 3);
        if libc::dup2(file.as_raw_fd(), libc::STDOUT_FILENO) < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(saved)
    }
}

/// One `write(2)` of `bytes` to `fd`, a descriptor this process owns; errors and short
/// writes are ignored (a best-effort separator).
pub(crate) fn write_raw(fd: RawFd, bytes: &[u8]) {
    // SAFETY: writing a valid buffer of its own length.
    unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
}
