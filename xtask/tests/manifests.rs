//! Validates `manifests/*.yaml` against the official Kubernetes OpenAPI schema with
//! the PyPI tool `kubernetes-validate` (`--strict`: unknown fields are errors), for
//! the oldest and newest Kubernetes versions we target, and checks what the
//! manifests promise (privileged namespace, no runner token by default, the user
//! role's exact rules). `manifests/plugins/trace.yaml` is a krew manifest, not a
//! Kubernetes object: it is checked for krew's required fields.
//!
//! Without the validator the schema test is skipped, except under `CI=true`,
//! where it fails (`pip install kubernetes-validate`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Kubernetes versions to validate against (kubectl here is 1.32; the validator's newest is 1.37).
const K8S_VERSIONS: [&str; 2] = ["1.32.0", "1.37.0"];

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join("manifests")
}

fn kubernetes_manifests() -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(manifests_dir())
        .expect("manifests/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests found");
    files
}

fn docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_saphyr::from_multiple::<Value>(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn all_objects() -> Vec<Value> {
    kubernetes_manifests()
        .iter()
        .flat_map(|p| docs(p))
        .collect()
}

fn object<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind}/{name} in manifests/"))
}

/// The validator command: `kubernetes-validate`, or `python3 -m kubernetes_validate`.
fn validator() -> Option<Command> {
    let candidates: [&[&str]; 2] = [
        &["kubernetes-validate"],
        &["python3", "-m", "kubernetes_validate"],
    ];
    candidates.into_iter().find_map(|argv| {
        let cmd = || {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd()
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
            .then(cmd)
    })
}

#[test]
fn manifests_validate_against_the_kubernetes_schema() {
    let Some(_) = validator() else {
        let msg = "kubernetes-validate is not installed (pip install kubernetes-validate)";
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true" && v != "1"),
            "{msg}: required under CI=true"
        );
        eprintln!("skipping: {msg}");
        return;
    };
    let files = kubernetes_manifests();
    for version in K8S_VERSIONS {
        let mut cmd = validator().unwrap();
        cmd.args(["--strict", "--no-warn", "-k", version])
            .args(&files);
        let out = cmd.output().expect("run kubernetes-validate");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "manifests do not validate against Kubernetes {version}:\n{text}"
        );
        // Every object was checked (the tool says "passed" once per resource).
        let passed = text.matches(" passed ").count();
        assert_eq!(
            passed,
            all_objects().len(),
            "kubernetes-validate output:\n{text}"
        );
    }
}

#[test]
fn validator_rejects_unknown_fields() {
    // Guards against a validator that passes everything (e.g. non-strict mode).
    let Some(mut cmd) = validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n  lables: {}\n",
    )
    .unwrap();
    let out = cmd
        .args(["--strict", "--no-warn", "-k", K8S_VERSIONS[1]])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "a misspelt field must fail validation"
    );
}

#[test]
fn manifests_hold_what_they_promise() {
    let objects = all_objects();
    let kinds: BTreeSet<_> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap_or("").to_string())
        .collect();
    for k in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "PersistentVolumeClaim",
    ] {
        assert!(kinds.contains(k), "no {k} in manifests/");
    }

    let ns = object(&objects, "Namespace", "kubectl-trace");
    for mode in ["enforce", "audit", "warn"] {
        assert_eq!(
            ns["metadata"]["labels"][format!("pod-security.kubernetes.io/{mode}")],
            "privileged"
        );
    }

    let sa = object(&objects, "ServiceAccount", "trace-runner");
    assert_eq!(
        sa["automountServiceAccountToken"], false,
        "the runner gets no token by default"
    );
    assert!(
        !kinds.contains("Role") && !kinds.contains("RoleBinding"),
        "the runner needs no API access: no Role for it"
    );

    // The user role: exactly these grants, nothing broader.
    let user = object(&objects, "ClusterRole", "kubectl-trace-user");
    let mut grants = BTreeSet::new();
    for rule in user["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    assert_ne!(v, "*", "no wildcard verbs");
                    assert_ne!(r, "*", "no wildcard resources");
                    grants.insert(format!(
                        "{}/{}:{}",
                        g.as_str().unwrap(),
                        r.as_str().unwrap(),
                        v.as_str().unwrap()
                    ));
                }
            }
        }
    }
    let mut expected = BTreeSet::new();
    let mut add = |group: &str, resources: &[&str], verbs: &[&str]| {
        for r in resources {
            for v in verbs {
                expected.insert(format!("{group}/{r}:{v}"));
            }
        }
    };
    add(
        "batch",
        &["jobs", "cronjobs"],
        &["create", "get", "list", "watch", "delete"],
    );
    add("", &["configmaps"], &["create", "get", "list", "delete"]);
    add("", &["pods"], &["get", "list", "watch", "create", "delete"]);
    add("", &["pods/exec"], &["create"]);
    add("", &["pods/log"], &["get"]);
    add("", &["nodes"], &["get", "list"]);
    add(
        "apps",
        &["deployments", "statefulsets", "daemonsets"],
        &["get"],
    );
    add("", &["persistentvolumeclaims"], &["get"]);
    add("", &["events"], &["list"]);
    assert_eq!(grants, expected);

    // Every rule of the user role carries a comment saying what it is for.
    let text = std::fs::read_to_string(manifests_dir().join("user-clusterrole.yaml")).unwrap();
    let lines: Vec<_> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if l.trim_start().starts_with("- apiGroups:") {
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                "rule at line {} has no comment",
                i + 1
            );
        }
    }
}

#[test]
fn krew_manifest_has_the_required_fields() {
    let path = manifests_dir().join("plugins/trace.yaml");
    let d = docs(&path);
    assert_eq!(d.len(), 1);
    let p = &d[0];
    assert_eq!(
        p["apiVersion"],
        "krew.googlecontainertools.github.com/v1alpha2"
    );
    assert_eq!(p["kind"], "Plugin");
    assert_eq!(p["metadata"]["name"], "trace");
    let spec = &p["spec"];
    let version = spec["version"].as_str().expect("spec.version");
    assert!(
        version.starts_with('v') && version[1..].split('.').count() == 3,
        "semver with a v: {version}"
    );
    for field in ["shortDescription", "homepage", "description"] {
        assert!(
            spec[field].as_str().is_some_and(|s| !s.trim().is_empty()),
            "spec.{field}"
        );
    }
    let mut seen = BTreeSet::new();
    for plat in spec["platforms"].as_array().expect("spec.platforms") {
        let labels = &plat["selector"]["matchLabels"];
        let (os, arch) = (
            labels["os"].as_str().unwrap(),
            labels["arch"].as_str().unwrap(),
        );
        assert!(
            seen.insert(format!("{os}/{arch}")),
            "duplicate platform {os}/{arch}"
        );
        let uri = plat["uri"].as_str().expect("uri");
        assert!(
            uri.starts_with("https://github.com/kubectl-trace/kubectl-trace/releases/download/"),
            "{uri}"
        );
        assert!(
            uri.contains(version) && uri.contains(os) && uri.contains(arch),
            "{uri}"
        );
        let sha = plat["sha256"].as_str().expect("sha256");
        assert!(
            sha.len() == 64 && sha.chars().all(|c| c.is_ascii_hexdigit()),
            "sha256: {sha}"
        );
        let bin = if os == "windows" {
            "kubectl-trace.exe"
        } else {
            "kubectl-trace"
        };
        assert_eq!(plat["bin"], bin);
        assert!(
            uri.ends_with(if os == "windows" { ".zip" } else { ".tar.gz" }),
            "{uri}"
        );
    }
    let want: BTreeSet<_> = ["linux", "darwin", "windows"]
        .iter()
        .flat_map(|os| ["amd64", "arm64"].map(|a| format!("{os}/{a}")))
        .collect();
    assert_eq!(seen, want);
}
