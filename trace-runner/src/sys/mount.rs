//! Mounts and mount namespaces: mounting a filesystem (tracefs where it is missing), and
//! a throw-away private mount namespace in which one file is hidden behind `/dev/null`
//! while a closure runs, after which the process returns to its own namespace, root and
//! working directory.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

fn check(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// `mount -t FSTYPE SOURCE TARGET` with no flags and no options.
pub(crate) fn mount_fs(source: &CStr, target: &CStr, fstype: &CStr) -> io::Result<()> {
    // SAFETY: valid NUL-terminated strings and no data.
    check(unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    })
}

fn open_dir(path: &CStr, extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: opening a NUL-terminated path; the fd is owned by the result.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC | extra) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh fd owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Where the process was before entering a private mount namespace: its namespace, root
/// and working directory (`setns` resets the last two to the namespace's, so a chroot's,
/// in a container without pivot_root, would be lost).
struct Origin {
    ns: OwnedFd,
    root: OwnedFd,
    cwd: OwnedFd,
}

impl Origin {
    fn save() -> io::Result<Origin> {
        Ok(Origin {
            ns: open_dir(c"/proc/self/ns/mnt", 0)?,
            root: open_dir(c"/", libc::O_DIRECTORY)?,
            cwd: open_dir(c".", libc::O_DIRECTORY)?,
        })
    }

    fn restore(&self) -> io::Result<()> {
        // SAFETY: setns/fchdir/chroot on fds we own and a static path.
        unsafe {
            check(libc::setns(self.ns.as_raw_fd(), libc::CLONE_NEWNS))?;
            check(libc::fchdir(self.root.as_raw_fd()))?;
            check(libc::chroot(c".".as_ptr()))?;
            check(libc::fchdir(self.cwd.as_raw_fd()))
        }
    }
}

/// A new private mount namespace for this process in which `hidden` is `/dev/null`.
fn enter_hiding(hidden: &CStr) -> io::Result<()> {
    // SAFETY: unshare and mounts with valid NUL-terminated paths and no data.
    unsafe {
        check(libc::unshare(libc::CLONE_NEWNS))?;
        check(libc::mount(
            std::ptr::null(),
            c"/".as_ptr(),
            std::ptr::null(),
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"/dev/null".as_ptr(),
            hidden.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND,
            std::ptr::null(),
        ))
    }
}

/// Run `f` with `hidden` bound over by `/dev/null`, in a private mount namespace that is
/// left again afterwards. When the namespace cannot be entered (not privileged, several
/// threads), `f` runs where the process is, with the file visible. A failure to return
/// is printed as a warning (the process stays in the private namespace).
pub(crate) fn with_file_hidden<T>(hidden: &CStr, f: impl FnOnce() -> T) -> T {
    let Ok(origin) = Origin::save() else {
        return f();
    };
    let entered = enter_hiding(hidden).is_ok();
    let out = f();
    // Return even from a half-entered namespace (unshare done, a mount refused).
    if let Err(e) = origin.restore() {
        if entered {
            eprintln!("warning: could not return to the original mount namespace: {e}");
        }
    }
    out
}
