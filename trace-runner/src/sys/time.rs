//! Clock and calendar calls: reading the monotonic and real-time clocks, and the C
//! library's `strftime` of a time in the local time zone (what bpftrace's `time()` and
//! `strftime()` print).

use std::ffi::CString;

/// The clocks the runner reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Clock {
    /// Since boot, not counting suspend (the `nsecs` builtin's clock).
    Monotonic,
    /// Wall-clock time since the Unix epoch.
    Realtime,
}

/// Nanoseconds on `clock`.
pub(crate) fn now_ns(clock: Clock) -> i128 {
    let id = match clock {
        Clock::Monotonic => libc::CLOCK_MONOTONIC,
        Clock::Realtime => libc::CLOCK_REALTIME,
    };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec; both clocks always exist.
    unsafe { libc::clock_gettime(id, &mut ts) };
    ts.tv_sec as i128 * 1_000_000_000 + ts.tv_nsec as i128
}

/// Nanoseconds since boot ([`Clock::Monotonic`]).
pub(crate) fn monotonic_ns() -> u64 {
    now_ns(Clock::Monotonic) as u64
}

/// `strftime(fmt)` of `unix_secs` in the local time zone into a buffer of `capacity`
/// bytes, as C does it: `None` when the time cannot be converted, `fmt` holds a NUL, or
/// strftime returns 0 (an empty result, or one that does not fit).
pub(crate) fn strftime_local(fmt: &str, unix_secs: i64, capacity: usize) -> Option<String> {
    let cfmt = CString::new(fmt).ok()?;
    let secs = unix_secs as libc::time_t;
    let mut buf = vec![0u8; capacity];
    // SAFETY: localtime_r fills the zeroed `tm` (checked); strftime writes at most
    // `buf.len()` bytes to `buf` from a NUL-terminated format.
    let n = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return None;
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm)
    };
    if n == 0 {
        return None;
    }
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clocks_advance_and_differ() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(b >= a);
        // The epoch is far behind boot.
        assert!(now_ns(Clock::Realtime) > now_ns(Clock::Monotonic));
    }

    #[test]
    fn strftime_formats_fits_and_refuses() {
        assert_eq!(
            strftime_local("%Y", 86_400 * 400, 64).as_deref(),
            Some("1971")
        );
        assert_eq!(strftime_local("%%", 0, 64).as_deref(), Some("%"));
        assert_eq!(strftime_local("", 0, 64), None);
        assert_eq!(strftime_local("%Y%Y", 0, 4), None);
        assert_eq!(strftime_local("a\0b", 0, 64), None);
    }
}
