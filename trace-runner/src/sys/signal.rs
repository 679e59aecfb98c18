//! Signal system calls: installing a handler (with SA_RESTART, signals unblocked), giving a
//! signal its default action back, raising and sending signals, and the signal numbers
//! the runner uses.

pub(crate) const SIGINT: libc::c_int = libc::SIGINT;
pub(crate) const SIGTERM: libc::c_int = libc::SIGTERM;
pub(crate) const SIGUSR1: libc::c_int = libc::SIGUSR1;
#[cfg(test)]
pub(crate) const SIGKILL: libc::c_int = libc::SIGKILL;
/// Continue a stopped process (a function watchpoint's setup probe stops it).
pub(crate) const SIGCONT: libc::c_int = libc::SIGCONT;

/// A signal handler: it may only do async-signal-safe things (store to atomics).
pub(crate) type Handler = extern "C" fn(libc::c_int);

/// Run `handler` on each of `signals` (SA_RESTART: reads and writes interrupted by the
/// signal are restarted, `poll` is not), replacing an inherited "ignore", and unblock them
/// in this thread (a signal already pending is then handled at once).
pub(crate) fn install(handler: Handler, signals: &[libc::c_int]) {
    // SAFETY: a zeroed sigaction filled in before use, the sigsets initialised by
    // sigemptyset; the handler is a plain extern "C" fn.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = handler as *const () as usize;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        for &sig in signals {
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &sig in signals {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
    }
}

/// Give `sig` its default action back. Async-signal-safe (usable between fork and exec).
pub(crate) fn set_default(sig: libc::c_int) {
    // SAFETY: restoring the default disposition of a signal number.
    unsafe { libc::signal(sig, libc::SIG_DFL) };
}

/// Send `sig` to this process.
pub(crate) fn raise(sig: libc::c_int) {
    // SAFETY: raise(3) with a signal number.
    unsafe { libc::raise(sig) };
}

/// Send `sig` to process `pid`; errors (no such process) are ignored.
pub(crate) fn kill(pid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory arguments.
    unsafe { libc::kill(pid, sig) };
}

/// Send `sig` to process `pid`, reporting failure (no such process: `ESRCH`).
pub(crate) fn send(pid: libc::pid_t, sig: libc::c_int) -> std::io::Result<()> {
    // SAFETY: kill(2) has no memory arguments.
    if unsafe { libc::kill(pid, sig) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
