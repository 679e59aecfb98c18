//! Every manifest the plugin can generate (node, pod, multi-pod, scheduled, patched,
//! compiled object, volume output), written as YAML and validated against the official
//! Kubernetes schema with the PyPI tool `kubernetes-validate` (strict: unknown fields
//! fail). Without the tool the test is skipped locally, and FAILS when `CI=true`.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::manifest::tests::{node_plan, sample_spec};
use crate::manifest::{
    self, build, parse_patch, set_owner, NodePlan, PatchType, PodScope, Program, PvcOutput,
    Schedule, TargetDesc, TraceObjects, TraceSpec, Workload,
};
use crate::run::{build_all, Format, Prepared};
use crate::target::TargetRef;

/// Kubernetes versions to validate against: the kubectl installed here, and the API
/// version k8s-openapi's `latest` feature builds for.
const VERSIONS: &[&str] = &["1.32.0", "1.37.0"];

fn write_all(dir: &Path, name: &str, objs: &[TraceObjects], owned: bool) -> PathBuf {
    let mut items = Vec::new();
    for o in objs {
        let mut cm = o.config_map.clone();
        if owned {
            set_owner(
                &mut cm,
                "batch/v1",
                o.workload.kind(),
                &o.workload.name(),
                "0b6f3c3e-5a1e-4b8e-9f1e-2d7c6a4b9e10",
            );
        }
        items.push(manifest::to_value(&cm));
        items.push(o.workload.to_value());
    }
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, manifest::to_yaml_documents(&items)).unwrap();
    path
}

fn pod_spec() -> TraceSpec {
    let mut spec = sample_spec();
    spec.target = TargetDesc {
        kind: "pod".into(),
        name: "web-0".into(),
        namespace: Some("prod".into()),
    };
    spec
}

fn pod_plan(node: &str, pods: &[&str]) -> NodePlan {
    NodePlan {
        node: node.into(),
        pods: pods
            .iter()
            .enumerate()
            .map(|(i, p)| PodScope {
                namespace: "prod".into(),
                name: p.to_string(),
                uid: format!("6f1c2b7a-0000-4000-8000-00000000000{i}"),
                container_ids: vec![
                    format!("containerd://{:064x}", i + 1),
                    format!("cri-o://{:064x}", i + 100),
                ],
                container_names: vec![],
            })
            .collect(),
    }
}

fn prepared(spec: TraceSpec, patch: Option<(&str, PatchType)>) -> Prepared {
    Prepared {
        spec,
        target: TargetRef::Node("worker-1".into()),
        target_namespace: "default".into(),
        container: None,
        need_single: false,
        patch: patch.map(|(text, kind)| (parse_patch(text, "patch").unwrap(), kind)),
        dry_run: true,
        format: Format::Yaml,
        attach: false,
        pod_running_timeout: std::time::Duration::from_secs(60),
        script_name: "<expression>".into(),
        concurrency: 8,
    }
}

/// Write every kind of manifest into `dir`; returns the files.
pub fn write_manifests(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();

    // node
    let spec = sample_spec();
    let objs = vec![build(&spec, &node_plan(), 0, 1).unwrap()];
    files.push(write_all(dir, "node", &objs, true));
    files.push(write_all(dir, "node-dry-run", &objs, false));

    // pod
    let spec = pod_spec();
    let objs = vec![build(&spec, &pod_plan("node-7", &["web-0"]), 0, 1).unwrap()];
    files.push(write_all(dir, "pod", &objs, true));

    // multi-pod (a deployment over two nodes)
    let mut spec = pod_spec();
    spec.target = TargetDesc {
        kind: "deployment".into(),
        name: "web".into(),
        namespace: Some("prod".into()),
    };
    let plans = vec![
        pod_plan("n1", &["web-a", "web-c"]),
        pod_plan("n2", &["web-b"]),
    ];
    let objs = build_all(&prepared(spec, None), &plans).unwrap();
    files.push(write_all(dir, "multi-pod", &objs, true));

    // scheduled, with output on a volume and a service account
    let mut spec = pod_spec();
    spec.deadline = 60;
    spec.service_account = Some("kubectl-trace-runner".into());
    spec.output = Some(PvcOutput::parse("pvc:traces/team-a").unwrap());
    spec.schedule = Some(Schedule {
        cron: "*/15 * * * *".into(),
        starting_deadline: 120,
        time_zone: Some("Etc/UTC".into()),
        history_limit: 3,
    });
    let objs = vec![build(&spec, &pod_plan("node-7", &["web-0"]), 0, 1).unwrap()];
    assert!(matches!(objs[0].workload, Workload::CronJob(_)));
    files.push(write_all(dir, "scheduled", &objs, true));

    // scheduled pod trace of named containers (found again by name through the kubelet's
    // /var/log/pods, no service account token)
    let mut spec = pod_spec();
    spec.deadline = 60;
    spec.schedule = Some(Schedule {
        cron: "0 * * * *".into(),
        starting_deadline: 120,
        time_zone: None,
        history_limit: 3,
    });
    spec.output = Some(PvcOutput::parse("pvc:traces").unwrap());
    let mut plan = pod_plan("node-7", &["web-0", "web-1"]);
    for p in &mut plan.pods {
        p.container_names = vec!["app".into()];
    }
    let objs = vec![build(&spec, &plan, 0, 1).unwrap()];
    files.push(write_all(dir, "scheduled-pods", &objs, true));

    // patched (merge and json)
    let merge = "spec:\n  template:\n    spec:\n      priorityClassName: system-node-critical\n";
    let objs = build_all(
        &prepared(sample_spec(), Some((merge, PatchType::Merge))),
        &[node_plan()],
    )
    .unwrap();
    files.push(write_all(dir, "patched-merge", &objs, true));
    let strategic = "spec:\n  template:\n    spec:\n      containers:\n      - name: trace-runner\n        image: registry.local/trace-runner:dev\n        resources:\n          limits:\n            memory: 512Mi\n";
    let objs = build_all(
        &prepared(sample_spec(), Some((strategic, PatchType::Strategic))),
        &[node_plan()],
    )
    .unwrap();
    files.push(write_all(dir, "patched-strategic", &objs, true));
    let json = r#"[{"op": "add", "path": "/spec/template/spec/nodeSelector", "value": {"kubernetes.io/os": "linux"}},
                  {"op": "replace", "path": "/spec/ttlSecondsAfterFinished", "value": 600}]"#;
    let objs = build_all(
        &prepared(sample_spec(), Some((json, PatchType::Json))),
        &[node_plan()],
    )
    .unwrap();
    files.push(write_all(dir, "patched-json", &objs, true));

    // compiled object, small and gzip-compressed
    for (name, size) in [("object", 4096usize), ("object-gz", 100 * 1024)] {
        let mut elf = vec![0u8; size];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[5] = 1;
        elf[18] = 247;
        let mut spec = sample_spec();
        spec.program = Program::Object { bytes: elf };
        let objs = vec![build(&spec, &node_plan(), 0, 1).unwrap()];
        files.push(write_all(dir, name, &objs, true));
    }

    // the reader pod of `logs` on a volume
    let pod = crate::persisted::reader_pod(
        "default",
        "abc123defg",
        "traces",
        crate::persisted::READER_IMAGE,
        "x1y2z",
    );
    let path = dir.join("reader-pod.yaml");
    std::fs::write(
        &path,
        manifest::to_yaml_documents(&[manifest::to_value(&pod)]),
    )
    .unwrap();
    files.push(path);
    files
}

/// The validator's command line: the `kubernetes-validate` script, or the module run by
/// python3 (pip may install scripts to a directory that is not on PATH).
fn validator() -> Option<Vec<String>> {
    let candidates: [&[&str]; 2] = [
        &["kubernetes-validate"],
        &["python3", "-m", "kubernetes_validate"],
    ];
    candidates.into_iter().find_map(|c| {
        let ok = Command::new(c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then(|| c.iter().map(|s| s.to_string()).collect())
    })
}

#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_manifests(dir.path());
    assert!(files.len() >= 10);
    let Some(tool) = validator() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("kubernetes-validate is not installed (pip install kubernetes-validate); CI must run this test");
        }
        eprintln!(
            "SKIPPED: kubernetes-validate is not installed (pip install kubernetes-validate)"
        );
        return;
    };
    for version in VERSIONS {
        let out = Command::new(&tool[0])
            .args(&tool[1..])
            .args(["--strict", "-k", version])
            .args(&files)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "schema {version}:\n{text}");
        assert!(!text.contains("ERROR"), "schema {version}:\n{text}");
        // Every object was checked.
        let objects: usize = files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap().matches("---\n").count())
            .sum();
        let passed = text.matches(" passed for resource ").count();
        assert!(passed >= objects, "only {passed} objects passed:\n{text}");
    }
}

#[test]
fn patched_manifests_carry_the_patch() {
    let dir = tempfile::tempdir().unwrap();
    write_manifests(dir.path());
    let merged = std::fs::read_to_string(dir.path().join("patched-merge.yaml")).unwrap();
    assert!(merged.contains("priorityClassName: system-node-critical"));
    let strategic = std::fs::read_to_string(dir.path().join("patched-strategic.yaml")).unwrap();
    assert!(strategic.contains("registry.local/trace-runner:dev"));
    assert!(strategic.contains("memory: 512Mi"));
    assert!(strategic.contains("privileged: true"));
    let json = std::fs::read_to_string(dir.path().join("patched-json.yaml")).unwrap();
    assert!(json.contains("ttlSecondsAfterFinished: 600"));
    let obj = std::fs::read_to_string(dir.path().join("object-gz.yaml")).unwrap();
    assert!(obj.contains("program.o.gz"));
}
