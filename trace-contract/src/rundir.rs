//! The layout of persisted output (`--output-dir`): each run gets
//! `<output-dir>/<trace-id>/<run>/` holding [`OUTPUT_FILE`] and [`META_FILE`], where
//! `<run>` is the run's start in UTC, `2026-11-25T15-04-05Z` ([`run_dir_name`]), with
//! `-1`, `-2`, ... appended when runs start in the same second ([`run_dir_candidate`]).
//! [`run_key`] orders run names in time order. UTC formatting is done here
//! (days-from-civil arithmetic), without a date crate.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The run's output, line by line.
pub const OUTPUT_FILE: &str = "output.txt";
/// The run's metadata ([`crate::Meta`]).
pub const META_FILE: &str = "meta.json";

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (proleptic Gregorian),
/// H. Hinnant's `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// UTC broken-down time of `t`: (year, month, day, hour, minute, second, millisecond).
fn utc_parts(t: SystemTime) -> (i64, u32, u32, u32, u32, u32, u32) {
    // Whole seconds rounded down (also before 1970) and the milliseconds past them.
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_millis()),
        Err(e) => {
            let d = e.duration();
            let ceil = d.as_secs() as i64 + i64::from(d.subsec_nanos() > 0);
            let rem = Duration::from_secs(ceil as u64) - d;
            (-ceil, rem.subsec_millis())
        }
    };
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400) as u32;
    let (y, m, d) = civil_from_days(days);
    (y, m, d, sod / 3600, sod / 60 % 60, sod % 60, millis)
}

/// The run directory name: `2026-11-25T15-04-05Z` (RFC 3339 with `-` for `:`, valid on any
/// filesystem, sorting in time order).
pub fn run_dir_name(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, _) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z")
}

/// The `n`th candidate name of a run directory: [`run_dir_name`] itself for 0, then
/// `<name>-1`, `<name>-2`, ... for runs that started in the same second.
pub fn run_dir_candidate(name: &str, n: u32) -> String {
    if n == 0 {
        name.to_string()
    } else {
        format!("{name}-{n}")
    }
}

/// Sort key of a run directory name: `2026-11-25T15-04-05Z`, then `...Z-1`, `...Z-2`, ...
pub fn run_key(run: &str) -> (String, u64) {
    match run.rsplit_once("Z-") {
        Some((base, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
            (format!("{base}Z"), n.parse().unwrap_or(u64::MAX))
        }
        _ => (run.to_string(), 0),
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-25T15:04:05.123Z` (times in `meta.json`).
pub fn rfc3339(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s, ms) = utc_parts(t);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// Why `id` cannot be a trace id, if it cannot: ids name a directory on the output volume
/// and are passed on command lines, so they are one non-empty path component without
/// control characters (newlines included) that does not start with `-`.
pub fn trace_id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id == "." || id == ".." {
        Some("it names a directory's parent or itself")
    } else if id.contains('/') {
        Some("it contains '/'")
    } else if id.chars().any(char::is_control) {
        Some("it contains a control character (e.g. a newline)")
    } else if id.starts_with('-') {
        Some("it starts with '-'")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs as u64)
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    #[test]
    fn civil_from_days_known_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(59), (1970, 3, 1));
        assert_eq!(civil_from_days(10_957), (2000, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29)); // divisible by 400: leap
        assert_eq!(civil_from_days(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
        // Every day from 1900 to 2199 follows its predecessor.
        let mut prev = civil_from_days(-25_568);
        assert_eq!(prev, (1899, 12, 31));
        for d in -25_567..84_000 {
            let cur = civil_from_days(d);
            let dim = match prev.1 {
                2 if prev.0 % 4 == 0 && (prev.0 % 100 != 0 || prev.0 % 400 == 0) => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expect = if prev.2 < dim {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expect, "day {d}");
            prev = cur;
        }
    }

    #[test]
    fn time_formats() {
        // date -u -d @1795619045 → Wed Nov 25 15:04:05 UTC 2026
        let t = at(1_795_619_045);
        assert_eq!(run_dir_name(t), "2026-11-25T15-04-05Z");
        assert_eq!(
            rfc3339(t + Duration::from_millis(123)),
            "2026-11-25T15:04:05.123Z"
        );
        assert_eq!(run_dir_name(UNIX_EPOCH), "1970-01-01T00-00-00Z");
        assert_eq!(rfc3339(at(951_782_399)), "2000-02-28T23:59:59.000Z");
        assert_eq!(rfc3339(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(at(-1)), "1969-12-31T23:59:59.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH - Duration::from_millis(1)),
            "1969-12-31T23:59:59.999Z"
        );
        // Names sort in time order, suffixes included.
        assert!(run_dir_name(at(1_795_619_045)) < run_dir_name(at(1_795_619_046)));
        assert!(format!("{}-1", run_dir_name(t)) < run_dir_name(at(1_795_619_046)));
    }

    #[test]
    fn names_sort_in_time_order() {
        // 2026-11-25T15:04:05Z, the same second again twice, then a later second and a
        // later day: the candidates' keys sort as the runs started.
        let t = 1_795_619_045;
        let base = run_dir_name(at(t));
        assert_eq!(base, "2026-11-25T15-04-05Z");
        let mut names = vec![
            run_dir_name(at(t + 86_400)),
            run_dir_candidate(&base, 10),
            run_dir_candidate(&base, 2),
            run_dir_name(at(t + 1)),
            run_dir_candidate(&base, 0),
            run_dir_candidate(&base, 1),
        ];
        names.sort_by_key(|n| run_key(n));
        assert_eq!(
            names,
            [
                "2026-11-25T15-04-05Z",
                "2026-11-25T15-04-05Z-1",
                "2026-11-25T15-04-05Z-2",
                "2026-11-25T15-04-05Z-10",
                "2026-11-25T15-04-06Z",
                "2026-11-26T15-04-05Z",
            ]
        );
        assert_eq!(
            rfc3339(at(t) + Duration::from_millis(123)),
            "2026-11-25T15:04:05.123Z"
        );
    }

    #[test]
    fn trace_ids() {
        assert_eq!(trace_id_problem("abc123"), None);
        for bad in ["", ".", "..", "a/b", "a\nb", "-x"] {
            assert!(trace_id_problem(bad).is_some(), "{bad:?}");
        }
    }
}
