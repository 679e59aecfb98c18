//! `meta.json`: what the runner records about one run next to its output (written as
//! `running` at the start, replaced when the run ends), and what `kubectl trace logs`
//! reads back. Versioned by [`META_VERSION`]; files written before the version field
//! existed read as version 0, and fields a reader does not know are ignored.

use serde::{Deserialize, Serialize};

/// Version of the `meta.json` layout written by this runner.
pub const META_VERSION: u32 = 1;

/// How a run stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Succeeded,
    Failed,
    /// Missing, or a status this reader does not know.
    #[default]
    #[serde(other)]
    Unknown,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Succeeded => "succeeded",
            Status::Failed => "failed",
            Status::Unknown => "unknown",
        }
    }

    /// The status of a run from how it ended: `running` with no end yet, `succeeded` with
    /// exit 0 and no error, `failed` otherwise.
    pub fn of(ended: bool, exit_status: Option<i64>, error: Option<&str>) -> Status {
        match (ended, exit_status, error) {
            (false, _, _) => Status::Running,
            (true, Some(0), None) => Status::Succeeded,
            _ => Status::Failed,
        }
    }
}

/// One run's `meta.json`; keys are written in this order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Meta {
    /// [`META_VERSION`] when written; 0 for files from before the field existed.
    pub version: u32,
    pub trace_id: String,
    /// What was traced, e.g. `node/worker-1` or `pod/default/web-0`.
    pub target: String,
    pub node: String,
    pub script_sha256: String,
    pub status: Status,
    /// RFC 3339 UTC with milliseconds ([`crate::rundir::rfc3339`]).
    pub start: String,
    /// `None` while running.
    pub end: Option<String>,
    /// The runner's exit code, `None` while running.
    pub exit_status: Option<i64>,
    pub lost_events: u64,
    /// Why the run failed (including a full volume), if it did.
    pub error: Option<String>,
}

impl Meta {
    /// The file's text: one object, two-space indented, keys in a fixed order, a
    /// trailing newline.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("meta.json serializes");
        s.push('\n');
        s
    }

    /// Read a `meta.json` of any version; `None` when it is not a JSON object of this
    /// shape. An empty `error` reads as none.
    pub fn parse(text: &str) -> Option<Meta> {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        if !v.is_object() {
            return None;
        }
        let mut m: Meta = serde_json::from_value(v).ok()?;
        m.error = m.error.filter(|e| !e.is_empty());
        Some(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Meta {
        Meta {
            version: META_VERSION,
            trace_id: "abc".into(),
            target: "pod/shop/web-0".into(),
            node: "worker-1".into(),
            script_sha256: "00ff".into(),
            status: Status::Failed,
            start: "2026-11-25T15:04:05.123Z".into(),
            end: Some("2026-11-25T15:05:05.000Z".into()),
            exit_status: Some(1),
            lost_events: 3,
            error: Some("error: \"x\"\n\ttab \u{1}".into()),
        }
    }

    #[test]
    fn layout_and_round_trip() {
        let m = sample();
        let text = m.to_json();
        assert_eq!(
            text,
            "{\n  \"version\": 1,\n  \"trace_id\": \"abc\",\n  \"target\": \"pod/shop/web-0\",\n  \
             \"node\": \"worker-1\",\n  \"script_sha256\": \"00ff\",\n  \"status\": \"failed\",\n  \
             \"start\": \"2026-11-25T15:04:05.123Z\",\n  \"end\": \"2026-11-25T15:05:05.000Z\",\n  \
             \"exit_status\": 1,\n  \"lost_events\": 3,\n  \"error\": \"error: \\\"x\\\"\\n\\ttab \\u0001\"\n}\n"
        );
        assert_eq!(Meta::parse(&text), Some(m));
        let running = Meta {
            status: Status::Running,
            end: None,
            exit_status: None,
            error: None,
            ..sample()
        };
        assert!(running
            .to_json()
            .contains("\"end\": null,\n  \"exit_status\": null"));
        assert_eq!(Meta::parse(&running.to_json()), Some(running));
    }

    #[test]
    fn older_and_newer_files_are_read() {
        // Before the version field: version 0, the rest as written.
        let old = r#"{"trace_id": "abc", "status": "succeeded", "start": "s", "end": "e",
                      "exit_status": 0, "lost_events": 0, "error": ""}"#;
        let m = Meta::parse(old).unwrap();
        assert_eq!(m.version, 0);
        assert_eq!(m.status, Status::Succeeded);
        assert_eq!(m.end.as_deref(), Some("e"));
        assert_eq!(m.error, None);
        // A later version with a status and a field this reader does not know.
        let new = r#"{"version": 7, "status": "paused", "start": "s", "extra": [1]}"#;
        let m = Meta::parse(new).unwrap();
        assert_eq!((m.version, m.status), (7, Status::Unknown));
        // Missing fields take their defaults; what is not an object is not meta.json.
        assert_eq!(Meta::parse("{}").unwrap(), Meta::default());
        assert_eq!(Meta::parse("[1]"), None);
        assert_eq!(Meta::parse("{\"version\": 1"), None);
    }

    #[test]
    fn status_of_an_ending() {
        assert_eq!(Status::of(false, None, None), Status::Running);
        assert_eq!(Status::of(true, Some(0), None), Status::Succeeded);
        assert_eq!(Status::of(true, Some(0), Some("full")), Status::Failed);
        assert_eq!(Status::of(true, Some(2), None), Status::Failed);
    }
}
