//! Script-defined C types side by side with bpftrace 0.17: the same script, with its own
//! `struct`/`union`/`enum` definitions, run by bpftrace and by `trace-runner` over the same
//! user program, must print the same thing (text and `-f json`), byte for byte after the
//! attach line. Covers member access through user pointers (nested structs, bitfields,
//! multi-dimensional arrays, anonymous unions, a pointer to a second struct), `sizeof`,
//! enum constants, structs and arrays as values of variables and maps, as map keys and
//! inside tuples, `print()` of non-map values, array comparison and pointer arithmetic.
//! Located errors for bad definitions and out-of-bounds indexes are checked too.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::*;

/// The traced program: `visit()` gets two records, linked, and an int array.
const PROG_C: &str = r#"
struct Inner { short a; char tag[6]; };
struct Rec {
  int id;
  unsigned int lo:4, mid:8, hi:3;
  struct Inner in;
  int grid[2][3];
  union { long l; int i[2]; } u;
  unsigned char bytes[4];
  struct Rec *next;
};
__attribute__((noinline)) int visit(struct Rec *r, int *arr) { return r->id + arr[0]; }
int main(void) {
  struct Rec b = { 2, 1, 2, 3, { -7, "bee" }, { { 1, 2, 3 }, { 4, 5, 6 } }, { .l = 99 }, { 9, 8, 7, 6 }, 0 };
  struct Rec a = { 1, 15, 200, 5, { 300, "alpha" }, { { 1, 2, 3 }, { 40, 50, 60 } }, { .i = { 3, 4 } }, { 1, 2, 3, 4 }, &b };
  int arr[3] = { 7, 8, 9 };
  return visit(&a, arr) == 0;
}
"#;

/// The script, with `BIN` for the program's path.
const SCRIPT: &str = r#"
struct Inner { short a; char tag[6]; };
struct Rec {
  int id;
  unsigned int lo:4, mid:8, hi:3;
  struct Inner in;
  int grid[2][3];
  union { long l; int i[2]; } u;
  unsigned char bytes[4];
  struct Rec *next;
};
enum Color { RED, GREEN = 5, BLUE };
uprobe:BIN:visit {
  $r = (struct Rec *)arg0;
  printf("%d %d %d %d %s %d %d %d %d\n", $r->id, $r->lo, $r->mid, $r->hi, $r->in.tag, $r->grid[1][2], $r->next->id, $r->next->in.a, BLUE);
  printf("%d %d %d\n", sizeof(struct Rec), sizeof(struct Inner), $r->u.i[1]);
  $in = $r->in;
  @in = $in;
  @grid = $r->grid;
  @bytes[$r->bytes] = 1;
  @rec[$r->next->in, $r->id] = $r->grid[0];
  @t = ((int8)1, $r->in, (int16)-2, $r->grid[1]);
  print(($r->id, $in));
  print(sizeof(((int8)1, (int64)2, (int16)3)));
  $p = (int32 *)arg1;
  printf("%d %d %d\n", $p[2], *($p + 1), $in.a);
  if ($r->grid[0] == $r->next->grid[0]) { printf("same\n"); }
  if ($r->grid[1] != $r->next->grid[1]) { printf("differ\n"); }
  exit();
}
"#;

fn prog_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("script-types-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("prog.c");
        std::fs::write(&src, PROG_C).unwrap();
        let bin = dir.join("prog");
        // -O0: the records must be in memory as written (an optimiser may drop the
        // stores `visit` does not read).
        let out = Command::new("cc")
            .args(["-O0", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("run cc (needed to build the traced program)");
        assert!(
            out.status.success(),
            "cc failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// Run `cmd` (a tracer given the script), start the program once it has attached, and
/// return what it printed after its attach line.
fn trace(mut cmd: Command) -> String {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the tracer");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out = String::new();
    let mut attached = false;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(line) => {
                if !attached
                    && (line.starts_with("Attaching") || line.contains("\"attached_probes\""))
                {
                    attached = true;
                    // bpftrace prints its attach line before it attaches: give it a
                    // moment, or on a loaded machine the program runs unseen.
                    std::thread::sleep(Duration::from_secs(1));
                    let status = Command::new(prog_bin()).status().expect("run the program");
                    assert!(status.success(), "the traced program failed: {status}");
                    continue;
                }
                out.push_str(&line);
                out.push('\n');
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        attached && status.success(),
        "{cmd:?} did not attach or failed ({status}):\n{out}{err}"
    );
    out
}

fn compare(json: bool) {
    if !require_bpf() || !require_bpftrace() {
        return;
    }
    let script = SCRIPT.replace("BIN", prog_bin().to_str().unwrap());
    let format: &[&str] = if json { &["-f", "json"] } else { &[] };
    let mut theirs = Command::new(BPFTRACE);
    theirs.args(format).arg("-e").arg(&script);
    let mut ours = Command::new(runner());
    ours.arg("bpftrace").args(format).arg("-e").arg(&script);
    let (theirs, ours) = (trace(theirs), trace(ours));
    assert!(
        theirs.contains("alpha"),
        "bpftrace printed no record:\n{theirs}"
    );
    assert_eq!(
        ours, theirs,
        "trace-runner (left) and bpftrace (right) differ"
    );
}

#[test]
fn structs_arrays_and_tuples_print_as_in_bpftrace() {
    compare(false);
}

#[test]
fn structs_arrays_and_tuples_print_as_in_bpftrace_json() {
    compare(true);
}

/// Tuples without user memory: C layout sizes, nested tuples, element access; a string
/// literal in a tuple is sized by its length, as bpftrace sizes it (before: a 64-byte
/// buffer, so `sizeof` said 80 where bpftrace says 6), and a later, longer literal
/// widens the element.
#[test]
fn tuples_as_in_bpftrace() {
    if !require_bpf() || !require_bpftrace() {
        return;
    }
    let script = r#"BEGIN { $t = ((int8)-1, (int16)300, (1, (int32)-2)); print($t); print(sizeof($t));
        $s = ((int8)-3, "ab", (int16)-4); printf("%d %d %d %s %d\n", $t.0, $t.1, $t.2.1, $s.1, $s.2);
        print(sizeof($s)); $c = ("xy", 1); $c = ("wxyz", 2); print($c); print(sizeof($c));
        @ = ((int32)5, (int8)6, "x"); @u[1] = $t; print($s); print(sizeof(@)); exit(); }"#;
    let run = |bin: &str, pre: &[&str]| {
        let out = Command::new(bin)
            .args(pre)
            .arg("-e")
            .arg(script)
            .output()
            .expect("run a tracer");
        assert!(out.status.success(), "{bin}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default()
    };
    let theirs = run(BPFTRACE, &[]);
    let ours = run(runner(), &["bpftrace"]);
    assert!(theirs.contains("300"), "bpftrace printed:\n{theirs}");
    assert_eq!(ours, theirs);
}

fn check_error(script: &str) -> String {
    let out = Command::new(runner())
        .args(["bpftrace", "-e", script])
        .output()
        .expect("run trace-runner");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Bad definitions and indexes are one located error, before anything loads.
#[test]
fn errors_are_located() {
    let err = check_error("struct A { int x[4]; } BEGIN { $a = (struct A *)0; $x = $a->x[5]; }");
    assert!(
        err.starts_with("stdin:1:63: ERROR: the index 5 is out of bounds for array of size 4\n"),
        "{err}"
    );
    let err = check_error("struct A {\n  int x;\n  foo_t y;\n};\nBEGIN { }");
    assert_eq!(
        err,
        "stdin:3:3: error: unknown type name 'foo_t'\n  foo_t y;\n  ^~~~~\n"
    );
    let err = check_error("struct A { int x[; } BEGIN { }");
    assert!(
        err.starts_with(
            "stdin:1:18: error: syntax error in C definition, unexpected ;, expecting integer"
        ),
        "{err}"
    );
}

/// A map's tuple elements keep their widths, and a later, wider value widens them
/// (bpftrace refuses the script; this runner keeps both values whole rather than
/// truncating 300 to a byte).
#[test]
fn tuple_elements_widen() {
    if !require_bpf() {
        return;
    }
    let out = Command::new(runner())
        .args([
            "bpftrace",
            "-e",
            "BEGIN { @t = (1, (int8)2, \"a\"); @t = (1, 300, \"bcd\"); @u = ((int8)-1, \"x\"); exit(); }",
        ])
        .output()
        .expect("run trace-runner");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("\n@t: (1, 300, bcd)\n"), "{text}");
    assert!(text.contains("\n@u: (-1, x)\n"), "{text}");
}
