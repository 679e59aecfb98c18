//! Replays every captured bpftrace 0.17 output in `tests/fixtures/output/` through the
//! real `trace-runner` binary: for each `NAME.bt` (a BEGIN-only program), `trace-runner
//! run NAME.bt` must print `NAME.txt` byte for byte and `trace-runner run --format json
//! NAME.bt` must print `NAME.json` byte for byte (stdout only; both include bpftrace's
//! `Attaching 1 probe...` / `attached_probes` line). The one difference allowed is the
//! process name: where the captured text shows bpftrace's own `comm`, ours reads
//! `trace-runner`.
//!
//! `misc.bt` is replayed without its `printf("%%d|\n", 5)`: bpftrace 0.17 mis-parses
//! that format (it counts `%d` after `%%` as a conversion and prints `%d|`), a bug we do
//! not mirror (our front end rejects the call as having too many arguments). The
//! statement and its output line are cut from a copy of the program and of both
//! expected outputs; the rest of the fixture is replayed as captured.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// The fixture directory.
fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/output")
}

/// The bpftrace 0.17 bug: `%%d` is taken for a conversion. Cut from `misc.bt`.
const MISC_BUGGY_PRINTF: &str = "printf(\"%%d|\\n\", 5); ";
const MISC_BUGGY_TEXT_LINE: &str = "%d|\n";
const MISC_BUGGY_JSON_LINE: &str = "{\"type\": \"printf\", \"data\": \"%d|\\n\"}\n";

/// One fixture: the program and what bpftrace printed for it (text and JSON), as
/// bytes (captured output is not always UTF-8, e.g. `printf("%c", 200)`).
struct Fixture {
    name: String,
    program: Vec<u8>,
    text: Vec<u8>,
    json: Vec<u8>,
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every fixture, sorted by name, with `misc` patched as described in the module doc.
fn load_fixtures() -> Vec<Fixture> {
    let dir = fixtures();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".bt").map(str::to_string)
        })
        .collect();
    names.sort();
    assert!(
        names.len() >= 20,
        "expected the captured fixtures in {}",
        dir.display()
    );
    names
        .into_iter()
        .map(|name| {
            let mut f = Fixture {
                program: read(&dir.join(format!("{name}.bt"))),
                text: read(&dir.join(format!("{name}.txt"))),
                json: read(&dir.join(format!("{name}.json"))),
                name,
            };
            if f.name == "misc" {
                f.program = replace(&f.program, MISC_BUGGY_PRINTF, "", Some(1));
                f.text = replace(&f.text, MISC_BUGGY_TEXT_LINE, "", Some(1));
                f.json = replace(&f.json, MISC_BUGGY_JSON_LINE, "", Some(1));
            }
            f
        })
        .collect()
}

/// `hay` with every `from` replaced by `to`; with `Some(n)`, `from` must occur
/// exactly `n` times.
fn replace(hay: &[u8], from: &str, to: &str, expect: Option<usize>) -> Vec<u8> {
    let from = from.as_bytes();
    let mut out = Vec::with_capacity(hay.len());
    let (mut i, mut n) = (0, 0);
    while i < hay.len() {
        if hay[i..].starts_with(from) {
            out.extend_from_slice(to.as_bytes());
            i += from.len();
            n += 1;
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    if let Some(want) = expect {
        assert_eq!(
            n,
            want,
            "expected {from:?} {want} time(s) in {:?}",
            hay.escape_ascii().to_string()
        );
    }
    out
}

/// bpftrace's process name, as it appears in captured output (`comm`), becomes ours.
fn expected(captured: &[u8]) -> Vec<u8> {
    replace(captured, "bpftrace", "trace-runner", None)
}

/// Run `trace-runner run [extra] FILE` and return its stdout (asserting exit 0).
fn run(file: &Path, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(runner())
        .arg("run")
        .args(extra)
        .arg(file)
        .output()
        .expect("run trace-runner");
    assert!(
        out.status.success(),
        "trace-runner run {extra:?} {} failed ({}):\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A line-by-line view of a mismatch, with invisible bytes escaped.
fn diff(expected: &[u8], actual: &[u8]) -> String {
    let e: Vec<&[u8]> = expected.split_inclusive(|&b| b == b'\n').collect();
    let a: Vec<&[u8]> = actual.split_inclusive(|&b| b == b'\n').collect();
    let show = |l: Option<&&[u8]>| {
        l.map_or("<none>".to_string(), |l| {
            format!("\"{}\"", l.escape_ascii())
        })
    };
    let mut report = String::new();
    for i in 0..e.len().max(a.len()) {
        let mark = if e.get(i) == a.get(i) { ' ' } else { '!' };
        report.push_str(&format!(
            "{mark} {i:3} expected {}\n        actual   {}\n",
            show(e.get(i)),
            show(a.get(i))
        ));
    }
    report
}

#[test]
fn every_fixture_replays_byte_for_byte() {
    if !require_bpf() {
        return;
    }
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("fixtures-replay-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).unwrap();
    let mut failures = Vec::new();
    let fixtures = load_fixtures();
    for f in &fixtures {
        // Run from a copy so a patched program (misc) and the originals go the same way.
        let file = scratch.join(format!("{}.bt", f.name));
        std::fs::write(&file, &f.program).unwrap();
        let text = run(&file, &[]);
        if text != expected(&f.text) {
            failures.push(format!(
                "{}.txt:\n{}",
                f.name,
                diff(&expected(&f.text), &text)
            ));
        }
        let json = run(&file, &["--format", "json"]);
        if json != expected(&f.json) {
            failures.push(format!(
                "{}.json:\n{}",
                f.name,
                diff(&expected(&f.json), &json)
            ));
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(
        failures.is_empty(),
        "{} of {} outputs differ from bpftrace 0.17's:\n{}",
        failures.len(),
        2 * fixtures.len(),
        failures.join("\n")
    );
}

#[test]
fn misc_patch_matches_the_capture_apart_from_the_cut_line() {
    // The patched `misc` keeps every other statement and output line of the capture.
    let dir = fixtures();
    let f = load_fixtures()
        .into_iter()
        .find(|f| f.name == "misc")
        .expect("misc fixture");
    let lines = |b: &[u8]| b.iter().filter(|&&c| c == b'\n').count();
    assert_eq!(lines(&read(&dir.join("misc.txt"))), lines(&f.text) + 1);
    assert_eq!(lines(&read(&dir.join("misc.json"))), lines(&f.json) + 1);
    let program = String::from_utf8(f.program).unwrap();
    assert!(
        program.contains("printf(\"%% %d|100%%\\n\", 5);"),
        "{program}"
    );
    assert!(!program.contains("%%d"), "{program}");
    assert!(f.json.starts_with(b"{\"type\": \"attached_probes\""));
}
