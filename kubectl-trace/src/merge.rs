//! `--merge` (on `run -a`, `attach` and `logs`): one answer for a trace of many pods.
//! Each runner, started with `--emit-maps`, ends its output with one machine-readable
//! line of its final maps (`trace_contract::maps`); [`Out`] takes that line out of what
//! it shows and hands it to a [`Collector`]; once every pod has ended, [`finish`] merges
//! the records (`trace_output::merge`: counts and sums add, buckets add, min/max/avg/stats
//! combine) and prints the merged maps exactly as bpftrace prints maps at exit, after
//! the per-pod lines. Notes (a pod that sent no maps, a map that cannot be merged) go to
//! stderr, one line each.

use std::sync::{Arc, Mutex};

use k8s_openapi::api::batch::v1::Job;
use trace_contract::maps::{MapsRecord, MAPS_LINE_PREFIX};

use crate::errors::{fail, Result};
use crate::manifest::{Program, LABEL_TARGET_KIND};
use crate::progress::Out;
use crate::target::TargetRef;

/// One maps line: the stream it came in (`node/x`), and its record or why it is unreadable.
pub type Received = (String, std::result::Result<MapsRecord, String>);

/// The maps lines seen.
#[derive(Clone, Default)]
pub struct Collector(Arc<Mutex<Vec<Received>>>);

impl Collector {
    /// Keep the record of a maps line (see [`maps_payload`]) from the stream `prefix`.
    pub fn add(&self, prefix: &str, line: &str) {
        let Some(payload) = maps_payload(line) else {
            return;
        };
        let Some(record) = trace_contract::maps::parse_line(payload) else {
            return;
        };
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((source_name(prefix), record));
    }

    fn take(&self) -> Vec<Received> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The maps line in an output line: the line itself, or what follows the RFC 3339
/// timestamp that `logs --timestamps` puts first. `None` for every other line.
pub fn maps_payload(line: &str) -> Option<&str> {
    if line.starts_with(MAPS_LINE_PREFIX) {
        return Some(line);
    }
    let (stamp, rest) = line.split_once(' ')?;
    let is_stamp = stamp.len() >= 20 && stamp.as_bytes()[0].is_ascii_digit() && stamp.contains('T');
    (is_stamp && rest.starts_with(MAPS_LINE_PREFIX)).then_some(rest)
}

/// `node/x` for the stream prefix `[node/x] `; "the trace's pod" for the only stream.
fn source_name(prefix: &str) -> String {
    let name = prefix.trim().trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        "the trace's pod".to_string()
    } else {
        name.to_string()
    }
}

/// `run --merge`: refused, before anything is created, where there is nothing to merge
/// or no maps to read.
pub fn check_run(target: &TargetRef, program: &Program, scheduled: bool) -> Result<()> {
    if matches!(program, Program::Object { .. }) {
        return Err(fail(
            "--merge needs a bpftrace-language script: a compiled object's maps carry no script types to merge by",
        ));
    }
    if scheduled {
        return Err(fail(
            "--merge cannot be used with --schedule: each scheduled run stands alone",
        ));
    }
    match target {
        TargetRef::Pod(_) | TargetRef::Node(_) => Err(fail(format!(
            "--merge combines the maps of several pods or nodes; {}/{} is one (use a deployment, statefulset, daemonset, -l or several nodes)",
            target.kind(),
            target.name()
        ))),
        _ => Ok(()),
    }
}

/// `attach --merge` / `logs --merge`: refused for a trace of one pod or one node.
pub fn check_trace(id: &str, jobs: &[Job]) -> Result<()> {
    let kind = jobs
        .first()
        .and_then(|j| j.metadata.labels.as_ref())
        .and_then(|l| l.get(LABEL_TARGET_KIND))
        .map(String::as_str)
        .unwrap_or("");
    if jobs.len() <= 1 && (kind == "pod" || kind == "node") {
        return Err(fail(format!(
            "--merge combines the maps of several pods or nodes; trace {id} traces one {kind}"
        )));
    }
    Ok(())
}

/// What [`finish`] prints: the merged maps (stdout) and the notes (stderr).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub text: String,
    pub notes: Vec<String>,
}

/// Merge the records of `expected` streams (the prefixes the pods' output came under).
/// An error when no stream sent its maps.
pub fn report(id: &str, records: Vec<Received>, expected: usize) -> Result<Report> {
    let mut notes = Vec::new();
    let mut good = Vec::new();
    let mut sources = Vec::new();
    for (source, record) in records {
        match record {
            Ok(r) => {
                sources.push(source);
                good.push(r);
            }
            Err(e) => notes.push(format!("{source}: {e}; its maps are not merged")),
        }
    }
    if good.is_empty() {
        return Err(fail(format!(
            "no pod of trace {id} wrote its maps for --merge (was it started with kubectl trace run --merge?)"
        )));
    }
    if good.len() < expected {
        notes.push(format!(
            "maps of {} of the trace's {expected} runners merged ({}): the others ended without writing them (see their output above)",
            good.len(),
            sources.join(", ")
        ));
    } else {
        notes.push(format!(
            "merged maps of {} runners ({}):",
            good.len(),
            sources.join(", ")
        ));
    }
    let merged = trace_output::merge::merge(&good);
    notes.extend(merged.notes);
    let mut text = Vec::new();
    let _ = trace_output::write_exit_maps_text(&mut text, &merged.maps);
    Ok(Report {
        text: String::from_utf8_lossy(&text).into_owned(),
        notes,
    })
}

/// Print the merged maps of what `collector` gathered from `expected` streams.
pub fn finish(id: &str, collector: &Collector, expected: usize, out: &Out) -> Result<()> {
    let r = report(id, collector.take(), expected)?;
    for n in &r.notes {
        eprintln!("{n}");
    }
    out.write(&r.text);
    Ok(())
}

/// [`finish`] after following the trace ended with `followed`: its error, if any, wins
/// (the maps that did come are still printed).
pub fn finish_after(
    followed: Result<()>,
    id: &str,
    collector: &Collector,
    expected: usize,
    out: &Out,
) -> Result<()> {
    match followed {
        Ok(()) => finish(id, collector, expected, out),
        Err(e) => {
            if !collector
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_empty()
            {
                let _ = finish(id, collector, expected, out);
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use trace_contract::maps::{MapKind, WireEntry, WireMap, WireVal, WireValue};

    fn counts(pairs: &[(&str, u64)]) -> MapsRecord {
        MapsRecord::new(vec![WireMap {
            name: "".into(),
            kind: MapKind::Count,
            entries: pairs
                .iter()
                .map(|(k, n)| WireEntry {
                    key: vec![WireVal::Str(k.to_string())],
                    value: WireValue::Scalar(WireVal::Uint(*n)),
                })
                .collect(),
        }])
    }

    #[test]
    fn collected_lines_merge_into_bpftrace_text() {
        let c = Collector::default();
        c.add("[node/a] ", &counts(&[("x", 2), ("y", 5)]).to_line());
        c.add(
            "[node/b] ",
            &format!(
                "2026-11-30T10:00:00.000000000Z {}",
                counts(&[("x", 4), ("z", 1)]).to_line().trim_end()
            ),
        );
        c.add("[node/b] ", "@[x]: 4");
        let r = report("abc", c.take(), 2).unwrap();
        assert_eq!(r.text, "\n\n@[z]: 1\n@[y]: 5\n@[x]: 6\n");
        assert_eq!(r.notes, ["merged maps of 2 runners (node/a, node/b):"]);
    }

    #[test]
    fn missing_and_unreadable_records_are_noted() {
        let bad = format!("{MAPS_LINE_PREFIX}{{\"version\":1}}");
        let c = Collector::default();
        c.add("[pod/a] ", &counts(&[("x", 1)]).to_line());
        c.add("[pod/b] ", &bad);
        let r = report("abc", c.take(), 3).unwrap();
        assert_eq!(r.notes.len(), 2, "{:?}", r.notes);
        assert!(r.notes[0].starts_with("pod/b: unreadable maps record"));
        assert!(r.notes[1].starts_with("maps of 1 of the trace's 3 runners merged (pod/a)"));
        let e = report("abc", Vec::new(), 2).unwrap_err().to_string();
        assert!(e.contains("no pod of trace abc wrote its maps") && !e.contains('\n'));
    }

    #[test]
    fn single_targets_and_objects_are_refused() {
        let script = Program::Script {
            source: "BEGIN {}".into(),
        };
        for t in [TargetRef::Pod("web-0".into()), TargetRef::Node("n1".into())] {
            let e = check_run(&t, &script, false).unwrap_err().to_string();
            assert!(e.contains("--merge combines") && !e.contains('\n'), "{e}");
        }
        let deploy = TargetRef::Deployment("api".into());
        assert!(check_run(&deploy, &script, false).is_ok());
        let object = Program::Object { bytes: vec![0x7f] };
        assert!(check_run(&deploy, &object, false)
            .unwrap_err()
            .to_string()
            .contains("compiled object"));
        assert!(check_run(&deploy, &script, true).is_err());
    }

    #[test]
    fn out_never_shows_a_maps_line_and_hands_it_to_the_collector() {
        let line = counts(&[("x", 1)]).to_line();
        let (out, buf) = Out::buffer();
        out.line("[node/a] ", "@[x]: 1");
        out.line("[node/a] ", line.trim_end());
        out.write(&line);
        assert_eq!(buf.text(), "[node/a] @[x]: 1\n");
        let c = Collector::default();
        let collecting = out.with_maps(&c);
        collecting.line("[node/b] ", line.trim_end());
        collecting.write(&line);
        assert_eq!(buf.text(), "[node/a] @[x]: 1\n");
        let got = c.take();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, "node/b");
        assert_eq!(got[1].0, "the trace's pod");
        assert_eq!(got[0].1, Ok(counts(&[("x", 1)])));
    }

    #[test]
    fn attach_and_logs_refuse_a_trace_of_one_pod_or_node() {
        let job = |kind: &str| {
            let mut j = Job::default();
            j.metadata.labels = Some([(LABEL_TARGET_KIND.to_string(), kind.to_string())].into());
            j
        };
        for kind in ["pod", "node"] {
            let e = check_trace("abc", &[job(kind)]).unwrap_err().to_string();
            assert!(e.contains(&format!("trace abc traces one {kind}")), "{e}");
        }
        assert!(check_trace("abc", &[job("deployment")]).is_ok());
        assert!(check_trace("abc", &[job("node"), job("node")]).is_ok());
    }

    #[test]
    fn only_maps_lines_are_taken() {
        assert!(maps_payload("@: 1").is_none());
        assert!(maps_payload("a b c").is_none());
        // A printf of the marker after other words is the program's output, not a record.
        let shown = format!("x {MAPS_LINE_PREFIX}{{}}");
        assert!(maps_payload(&shown).is_none());
        let stamped = format!("2026-11-30T10:00:00.123456789Z {MAPS_LINE_PREFIX}{{}}");
        assert!(maps_payload(&stamped).is_some());
        let line = counts(&[]).to_line();
        assert_eq!(maps_payload(&line), Some(line.as_str()));
    }
}
