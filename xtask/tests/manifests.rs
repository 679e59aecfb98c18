//! Validates `manifests/*.yaml` against the official Kubernetes OpenAPI schema with
//! the PyPI tool `kubernetes-validate` (`--strict`: unknown fields are errors), for
//! the oldest and newest Kubernetes versions we target, and checks what the
//! manifests promise (privileged namespace, no runner token by default, the user
//! roles' exact rules: reads cluster-wide, writes in the trace namespace only) and
//! the example bindings in `manifests/examples/`. `manifests/plugins/trace.yaml` is a
//! krew manifest, not a Kubernetes object: it is checked for krew's required fields.
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

/// The YAML files of a directory.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    files
}

/// `manifests/*.yaml` (what `kubectl apply -f manifests/` applies) and the examples.
fn kubernetes_manifests() -> Vec<PathBuf> {
    let mut files = yaml_files(&manifests_dir());
    assert!(!files.is_empty(), "no manifests found");
    files.extend(yaml_files(&manifests_dir().join("examples")));
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
        "Role",
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
    // The runner needs no API access: no binding names its account.
    for o in &objects {
        for s in o["subjects"].as_array().into_iter().flatten() {
            assert_ne!(s["name"], "trace-runner", "a binding for the runner: {o}");
        }
    }

    // The user's roles: exactly these grants, nothing broader. Reads cluster-wide ...
    let cluster = grants(object(&objects, "ClusterRole", "kubectl-trace-user"));
    let mut expected = BTreeSet::new();
    add(&mut expected, "", &["pods"], &["get", "list"]);
    add(
        &mut expected,
        "apps",
        &["deployments", "statefulsets", "daemonsets"],
        &["get"],
    );
    add(&mut expected, "", &["nodes"], &["get", "list"]);
    add(
        &mut expected,
        "batch",
        &["jobs", "cronjobs"],
        &["list", "watch"],
    );
    assert_eq!(cluster, expected);
    // ... and every write (pods, pods/exec included) only in the trace namespace.
    let role = object(&objects, "Role", "kubectl-trace-user");
    assert_eq!(role["metadata"]["namespace"], "kubectl-trace");
    let mut expected = BTreeSet::new();
    add(
        &mut expected,
        "batch",
        &["jobs"],
        &["create", "get", "list", "watch", "delete"],
    );
    add(
        &mut expected,
        "batch",
        &["cronjobs"],
        &["create", "list", "watch", "delete"],
    );
    add(
        &mut expected,
        "",
        &["configmaps"],
        &["create", "list", "delete"],
    );
    add(
        &mut expected,
        "",
        &["pods"],
        &["get", "list", "watch", "create", "delete"],
    );
    add(&mut expected, "", &["pods/exec"], &["create"]);
    add(&mut expected, "", &["pods/log"], &["get"]);
    add(&mut expected, "", &["persistentvolumeclaims"], &["get"]);
    add(&mut expected, "", &["events"], &["list"]);
    assert_eq!(grants(role), expected);

    // The example bindings bind exactly these two roles, the Role in its namespace.
    let crb = object(&objects, "ClusterRoleBinding", "kubectl-trace-user-alice");
    assert_eq!(crb["roleRef"]["kind"], "ClusterRole");
    assert_eq!(crb["roleRef"]["name"], "kubectl-trace-user");
    let rb = object(&objects, "RoleBinding", "kubectl-trace-user-alice");
    assert_eq!(rb["roleRef"]["kind"], "Role");
    assert_eq!(rb["roleRef"]["name"], "kubectl-trace-user");
    assert_eq!(rb["metadata"]["namespace"], role["metadata"]["namespace"]);
    // ... and are not applied by `kubectl apply -f manifests/`.
    let applied: Vec<Value> = yaml_files(&manifests_dir())
        .iter()
        .flat_map(|p| docs(p))
        .collect();
    assert!(applied
        .iter()
        .all(|o| o["kind"] != "RoleBinding" && o["kind"] != "ClusterRoleBinding"));

    // Every rule of the user roles carries a comment saying what it is for, and each file
    // says what the role amounts to.
    for (file, says) in [
        ("user-clusterrole.yaml", "nothing here starts a pod"),
        ("user-role.yaml", "ROOT ON EVERY NODE"),
    ] {
        let text = std::fs::read_to_string(manifests_dir().join(file)).unwrap();
        assert!(
            text.contains(says),
            "{file} does not say what it amounts to"
        );
        let lines: Vec<_> = text.lines().collect();
        for (i, l) in lines.iter().enumerate() {
            if l.trim_start().starts_with("- apiGroups:") {
                assert!(
                    i > 0 && lines[i - 1].trim_start().starts_with('#'),
                    "{file}: rule at line {} has no comment",
                    i + 1
                );
            }
        }
    }
}

/// A role's rules as `group/resource:verb`, with no wildcards.
fn grants(role: &Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for g in rule["apiGroups"].as_array().unwrap() {
            for r in rule["resources"].as_array().unwrap() {
                for v in rule["verbs"].as_array().unwrap() {
                    assert_ne!(v, "*", "no wildcard verbs");
                    assert_ne!(r, "*", "no wildcard resources");
                    out.insert(format!(
                        "{}/{}:{}",
                        g.as_str().unwrap(),
                        r.as_str().unwrap(),
                        v.as_str().unwrap()
                    ));
                }
            }
        }
    }
    out
}

fn add(set: &mut BTreeSet<String>, group: &str, resources: &[&str], verbs: &[&str]) {
    for r in resources {
        for v in verbs {
            set.insert(format!("{group}/{r}:{v}"));
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
