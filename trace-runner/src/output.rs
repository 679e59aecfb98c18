//! Output as the runner prints it: bpftrace 0.17's formatting is the pure `trace-output`
//! crate (re-exported here, so `crate::output::...` names it), plus what needs the
//! system: `time()`'s local wall-clock time.

pub use trace_output::*;

/// bpftrace's `time(fmt)`: strftime of the local time now into a 64-byte buffer; None when
/// strftime returns 0 (result empty or 64 bytes or longer), where bpftrace logs
/// `ERROR: strftime returned 0` to stderr and prints nothing.
pub fn try_format_time(fmt: &str) -> Option<String> {
    use crate::sys::time::{now_ns, strftime_local, Clock};
    let now = now_ns(Clock::Realtime).div_euclid(1_000_000_000) as i64;
    strftime_local(&fmt.replace('\0', ""), now, 64)
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
