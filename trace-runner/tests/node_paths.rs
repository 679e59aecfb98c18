//! Node traces (no pod target) name the node's files: with `--host-proc` whose pid 1
//! has another root than the runner's (as in the privileged pod, whose own root is the
//! runner image), absolute uprobe paths, wildcard file names and library names are
//! looked up in that root, links included, and counted exactly.

mod common;

use std::process::Command;

use common::*;

fn run_to_end(node: &FakeNode, script: &str) -> (String, String, Option<i32>) {
    let out = Command::new(runner())
        .arg("run")
        .arg("--host-proc")
        .arg(&node.proc)
        .args(["-e", script])
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn absolute_paths_are_the_nodes_files() {
    if !require_bpf() {
        return;
    }
    let node = FakeNode::new("abs");
    // /usr/bin/app is only the node's; /bin is a link to /usr/bin inside its root.
    assert!(!std::path::Path::new("/usr/bin/app").exists());
    let script = "BEGIN { printf(\"ready\\n\"); } \
        uprobe:/usr/bin/app:echo_builtin { @direct = count(); } \
        uprobe:/bin/app:echo_builtin { @linked = count(); }";
    let proc = node.proc.display().to_string();
    let trace = Trace::start(&["--host-proc", &proc, "-e", script]);
    node.echo_loop(50);
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("@direct: 50\n"), "{out}");
    assert!(out.contains("@linked: 50\n"), "{out}");
}

#[test]
fn a_path_the_node_does_not_have_is_one_error() {
    if !require_bpf() {
        return;
    }
    let node = FakeNode::new("missing");
    // This machine has /usr/bin/env, the node does not: the node's answer counts.
    assert!(std::path::Path::new("/usr/bin/env").exists());
    let (_, err, code) = run_to_end(&node, "uprobe:/usr/bin/env:main { @ = count(); }");
    assert_eq!(code, Some(2), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.contains("error: uprobe target '/usr/bin/env' does not exist on this node"),
        "{err}"
    );
    assert!(
        first.contains(&node.proc.join("1/root").display().to_string()),
        "{err}"
    );
}

#[test]
fn wildcard_file_names_expand_in_the_nodes_root() {
    if !require_bpf() {
        return;
    }
    let node = FakeNode::new("glob");
    // `ap*` matches app (ELF) and apscript (not ELF: skipped); nothing here matches.
    let script = "BEGIN { printf(\"ready\\n\"); } \
        uprobe:/usr/bin/ap*:echo_builtin { @[probe] = count(); }";
    let proc = node.proc.display().to_string();
    let trace = Trace::start(&["--host-proc", &proc, "-e", script]);
    assert!(
        trace.head.contains("Attaching 2 probes..."),
        "{}",
        trace.head
    );
    node.echo_loop(30);
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("@[uprobe:/usr/bin/app:echo_builtin]: 30\n"),
        "{out}"
    );

    // A pattern that matches no file of the node: one error, as bpftrace gives.
    let (_, err, code) = run_to_end(&node, "uprobe:/usr/bin/zz*:main { @ = count(); }");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.contains("error: uprobe target '/usr/bin/zz*' matches no file")),
        "{err}"
    );
}

#[test]
fn library_names_are_the_nodes_libraries() {
    if !require_bpf() {
        return;
    }
    let node = FakeNode::new("lib");
    // This machine's libc is another file: before, the probe went there and the node's
    // 40 calls were not seen.
    let script = "BEGIN { printf(\"ready\\n\"); } uprobe:libc:getppid { @ = count(); }";
    let proc = node.proc.display().to_string();
    let trace = Trace::start(&["--host-proc", &proc, "-e", script]);
    node.getppid_loop(40);
    let (out, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("@: 40\n"), "the node's libc, exactly:\n{out}");
}
