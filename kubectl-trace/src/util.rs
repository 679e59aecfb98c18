//! Small helpers shared by the subcommands: durations, trace ids, label values, ages.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::{SystemTime, UNIX_EPOCH};

/// Parse a duration: plain seconds (`3600`, as iovisor/kubectl-trace took them) or a
/// sum of `<number><unit>` parts with units `s`, `m`, `h`, `d` (`30s`, `5m`, `1h30m`).
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(secs);
    }
    let mut total: u64 = 0;
    let mut num = String::new();
    let mut seen_unit = false;
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let mult = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            _ => {
                return Err(format!(
                    "invalid duration {text:?}: use seconds or a number with s, m, h or d (e.g. 30s, 5m, 1h)"
                ))
            }
        };
        if num.is_empty() {
            return Err(format!(
                "invalid duration {text:?}: a unit needs a number before it"
            ));
        }
        let n: u64 = num
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: number too large"))?;
        total = total
            .checked_add(n.checked_mul(mult).ok_or("duration too large")?)
            .ok_or("duration too large")?;
        num.clear();
        seen_unit = true;
    }
    if !num.is_empty() || !seen_unit {
        return Err(format!(
            "invalid duration {text:?}: a number needs a unit after it (s, m, h or d)"
        ));
    }
    Ok(total)
}

/// Render seconds the short way kubectl does (`90s` -> `90s`, `3600` -> `1h`).
pub fn format_duration(secs: u64) -> String {
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

/// Age as kubectl prints it: `45s`, `12m`, `3h`, `5d`.
pub fn format_age(secs: i64) -> String {
    let secs = secs.max(0);
    if secs < 120 {
        format!("{secs}s")
    } else if secs < 3600 * 2 {
        let (m, s) = (secs / 60, secs % 60);
        if secs < 600 && s != 0 {
            format!("{m}m{s}s")
        } else {
            format!("{m}m")
        }
    } else if secs < 86400 * 2 {
        format!("{}h", secs / 3600)
    } else {
        format!("{}d", secs / 86400)
    }
}

/// A fresh trace id: 10 characters of lowercase base36, starting with a letter, so
/// that `kubectl-trace-<id>` is a valid object name and the id a valid label value.
pub fn new_trace_id() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let mut h = RandomState::new().build_hasher();
    h.write_u128(nanos);
    h.write_u32(std::process::id());
    let mut v = h.finish();
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const ALNUM: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut id = String::with_capacity(10);
    id.push(ALPHA[(v % 26) as usize] as char);
    v /= 26;
    for _ in 0..9 {
        id.push(ALNUM[(v % 36) as usize] as char);
        v /= 36;
    }
    id
}

/// Make any text a valid label value: at most 63 characters of `[A-Za-z0-9-_.]`,
/// starting and ending with an alphanumeric (other characters become `_`).
pub fn sanitize_label_value(text: &str) -> String {
    let mapped: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut s: &str = mapped.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if s.len() > 63 {
        s = &s[..63];
        s = s.trim_end_matches(|c: char| !c.is_ascii_alphanumeric());
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("3600"), Ok(3600));
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("2d"), Ok(172800));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1h30").is_err());
        assert_eq!(format_duration(5400), "1h30m");
        assert_eq!(format_duration(30), "30s");
    }

    #[test]
    fn ids_are_valid_names() {
        for _ in 0..50 {
            let id = new_trace_id();
            assert_eq!(id.len(), 10);
            assert!(id.chars().next().unwrap().is_ascii_lowercase());
            assert!(id
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
        }
    }

    #[test]
    fn label_values() {
        assert_eq!(sanitize_label_value("web-0"), "web-0");
        assert_eq!(
            sanitize_label_value("app=web,tier in (a)"),
            "app_web_tier_in__a"
        );
        assert_eq!(sanitize_label_value(&"a".repeat(80)).len(), 63);
        assert_eq!(sanitize_label_value("--"), "");
    }

    #[test]
    fn ages() {
        assert_eq!(format_age(5), "5s");
        assert_eq!(format_age(150), "2m30s");
        assert_eq!(format_age(3000), "50m");
        assert_eq!(format_age(3 * 3600), "3h");
        assert_eq!(format_age(5 * 86400), "5d");
    }
}
