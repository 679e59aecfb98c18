//! Process system calls: for `-c CMD`, a child forked at once and held before `execv`
//! until the parent releases it, and waiting for it; and whether this process runs as
//! root.

use std::ffi::CString;
use std::io;

/// A forked child waiting on a pipe before it execs; `go` is the pipe's write end.
pub(crate) struct Held {
    pub(crate) pid: libc::pid_t,
    pub(crate) go: libc::c_int,
}

/// Fork a child that waits until [`release`] (then execs `path` with `argv`, with SIGINT
/// and SIGTERM back at their default action) or until `go` is closed unreleased (then
/// exits 0 without running anything).
pub(crate) fn spawn_held(path: &CString, argv: &[CString]) -> io::Result<Held> {
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 fills two descriptors. After fork the child only calls
    // async-signal-safe functions (close, read, signal, execv, _exit) on memory prepared
    // before the fork.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        let pid = libc::fork();
        if pid < 0 {
            let e = io::Error::last_os_error();
            libc::close(fds[0]);
            libc::close(fds[1]);
            return Err(e);
        }
        if pid == 0 {
            libc::close(fds[1]);
            let mut b = 0u8;
            let n = loop {
                let n = libc::read(fds[0], (&mut b as *mut u8).cast(), 1);
                if n >= 0 || *libc::__errno_location() != libc::EINTR {
                    break n;
                }
            };
            if n != 1 {
                libc::_exit(0);
            }
            super::signal::set_default(libc::SIGINT);
            super::signal::set_default(libc::SIGTERM);
            libc::execv(path.as_ptr(), argv_ptrs.as_ptr());
            libc::_exit(127);
        }
        libc::close(fds[0]);
        Ok(Held { pid, go: fds[1] })
    }
}

/// Let a held child exec: one byte down the pipe, then close it.
pub(crate) fn release(go: libc::c_int) {
    // SAFETY: writing one byte to, then closing, our end of the pipe.
    unsafe {
        libc::write(go, [1u8].as_ptr().cast(), 1);
        libc::close(go);
    }
}

/// Close a held child's pipe unreleased (it exits without running the command).
pub(crate) fn cancel(go: libc::c_int) {
    // SAFETY: our descriptor.
    unsafe { libc::close(go) };
}

/// Wait for child `pid` to end (retrying on EINTR) and reap it.
pub(crate) fn wait(pid: libc::pid_t) {
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid status pointer.
    while unsafe { libc::waitpid(pid, &mut status, 0) } < 0
        && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted
    {}
}

/// Whether this process's effective uid is root's (tests that need root check it).
#[cfg(test)]
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}
