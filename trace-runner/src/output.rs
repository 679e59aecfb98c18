//! Output as the runner prints it: bpftrace 0.17's formatting is the pure `trace-output`
//! crate (re-exported here, so `crate::output::...` names it), plus what needs the
//! system: `time()`'s local wall-clock time.

pub use trace_output::*;

/// bpftrace's `time(fmt)`: strftime of the local time now into a 64-byte buffer; None when
/// strftime returns 0 (result empty or 64 bytes or longer), where bpftrace logs
/// `ERROR: strftime returned 0` to stderr and prints nothing.
pub fn try_format_time(fmt: &str) -> Option<String> {
    let cfmt = std::ffi::CString::new(fmt.replace('\0', "")).ok()?;
    let mut buf = [0u8; 64];
    // SAFETY: plain libc calls on valid, owned buffers; `tm` is fully written by localtime_r.
    let n = unsafe {
        let t = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return None;
        }
        libc::strftime(buf.as_mut_ptr().cast(), buf.len(), cfmt.as_ptr(), &tm)
    };
    if n == 0 {
        return None;
    }
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

/// [`try_format_time`], with "" on failure.
pub fn format_time(fmt: &str) -> String {
    try_format_time(fmt).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formats_as_strftime() {
        assert_eq!(format_time("x%%y"), "x%y");
        assert_eq!(format_time("%H:%M:%S\n").len(), 9);
        assert_eq!(try_format_time(""), None);
        assert_eq!(try_format_time(&"a".repeat(64)), None);
        assert_eq!(try_format_time(&"a".repeat(63)).unwrap().len(), 63);
    }
}
