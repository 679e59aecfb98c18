//! `cargo xtask release`: the plugin's release archives and its krew manifest.
//!
//! For each target, the `kubectl-trace` binary and `LICENSE` go into
//! `kubectl-trace_v<version>_<os>_<arch>.tar.gz` (reproducible: fixed owner, modes and
//! mtime); `sha256sums.txt` lists the archives' sums; the krew manifest (metadata from
//! `manifests/plugins/trace.yaml`) gets one platform per archive, with its release URI
//! (`<repository>/releases/download/v<version>/<archive>`) and sum. [`validate`] then
//! checks the manifest as krew's plugin schema does (apiVersion, kind, name, semver
//! version, platforms with selector, uri, sha256, files and bin, no duplicate platform)
//! and that each sha256 is the sum of the archive it names, which holds its `bin`.
//! Everything but [`write_archive`] and [`read_archive`] is pure.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// krew's manifest apiVersion and kind.
pub const KREW_API_VERSION: &str = "krew.googlecontainertools.github.com/v1alpha2";
pub const KREW_KIND: &str = "Plugin";
/// The plugin's executable name (kubectl finds `kubectl-trace` as `kubectl trace`).
pub const BIN: &str = "kubectl-trace";

/// A krew plugin manifest, as krew's `index.Plugin` reads it (unknown fields refused).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Plugin {
    pub api_version: String,
    pub kind: String,
    pub metadata: Metadata,
    pub spec: PluginSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PluginSpec {
    pub version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub homepage: String,
    pub short_description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caveats: String,
    #[serde(default)]
    pub platforms: Vec<Platform>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Platform {
    pub selector: Selector,
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileOperation>,
    #[serde(default)]
    pub bin: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOperation {
    pub from: String,
    pub to: String,
}

/// What a Rust target triple is to krew: its `os` and `arch` labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetPlatform {
    pub triple: String,
    pub os: &'static str,
    pub arch: &'static str,
}

impl TargetPlatform {
    /// The krew platform of `triple`; an error for targets the plugin is not released for.
    pub fn of(triple: &str) -> Result<TargetPlatform, String> {
        let arch = match triple.split('-').next().unwrap_or("") {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            _ => return Err(format!("release: no krew platform for target '{triple}'")),
        };
        let os = if triple.contains("-linux-") {
            "linux"
        } else if triple.ends_with("-apple-darwin") {
            "darwin"
        } else if triple.contains("-windows-") {
            return Err(format!(
                "release: target '{triple}': windows archives are zip files, which this task does not write"
            ));
        } else {
            return Err(format!("release: no krew platform for target '{triple}'"));
        };
        Ok(TargetPlatform {
            triple: triple.to_string(),
            os,
            arch,
        })
    }

    /// `kubectl-trace_v0.1.0_linux_amd64.tar.gz`.
    pub fn archive_name(&self, version: &str) -> String {
        format!("{BIN}_{}_{}_{}.tar.gz", tag(version), self.os, self.arch)
    }
}

/// The release tag of a version: `v0.1.0`.
pub fn tag(version: &str) -> String {
    if version.starts_with('v') {
        version.to_string()
    } else {
        format!("v{version}")
    }
}

/// Where a release's archive is downloaded from.
pub fn release_uri(repository: &str, version: &str, archive: &str) -> String {
    format!(
        "{}/releases/download/{}/{archive}",
        repository.trim_end_matches('/'),
        tag(version)
    )
}

/// One packed archive: its platform, file name and sha256 (lower-case hex).
#[derive(Debug, Clone, PartialEq)]
pub struct Archive {
    pub platform: TargetPlatform,
    pub file: String,
    pub sha256: String,
}

/// The release manifest: `template`'s metadata and texts, the release's version, and one
/// platform per archive.
pub fn manifest(
    template: &Plugin,
    repository: &str,
    version: &str,
    archives: &[Archive],
) -> Plugin {
    let mut p = template.clone();
    p.spec.version = tag(version);
    p.spec.platforms = archives
        .iter()
        .map(|a| Platform {
            selector: Selector {
                match_labels: BTreeMap::from([
                    ("os".to_string(), a.platform.os.to_string()),
                    ("arch".to_string(), a.platform.arch.to_string()),
                ]),
            },
            uri: release_uri(repository, version, &a.file),
            sha256: a.sha256.clone(),
            files: vec![
                FileOperation {
                    from: BIN.into(),
                    to: ".".into(),
                },
                FileOperation {
                    from: "LICENSE".into(),
                    to: ".".into(),
                },
            ],
            bin: BIN.into(),
        })
        .collect();
    p
}

/// `sha256sums.txt`, as `sha256sum` writes it.
pub fn sha256sums(archives: &[Archive]) -> String {
    archives
        .iter()
        .map(|a| format!("{}  {}\n", a.sha256, a.file))
        .collect()
}

/// The manifest as YAML, with a header saying where it comes from.
pub fn render(p: &Plugin) -> Result<String, String> {
    let yaml = serde_saphyr::to_string(p).map_err(|e| format!("release: manifest: {e}"))?;
    Ok(format!(
        "# krew plugin manifest of release {}, written by `cargo xtask release`.\n{yaml}",
        p.spec.version
    ))
}

/// Parse a krew manifest (YAML), refusing fields krew does not know.
pub fn parse(text: &str) -> Result<Plugin, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("not a krew plugin manifest: {e}"))
}

fn is_semver_tag(v: &str) -> bool {
    let Some(rest) = v.strip_prefix('v') else {
        return false;
    };
    let core = rest.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

fn is_plugin_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !n.starts_with('-')
        && !n.ends_with('-')
}

/// What an archive holds, for [`validate`]: its sha256 and the paths of its files.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveFacts {
    pub sha256: String,
    pub files: Vec<String>,
}

/// Check `p` as krew validates a plugin manifest, and each platform against the archive
/// its URI names (`archive(file name)`: `None` when there is no such archive). Every
/// problem found, one line each.
pub fn validate(
    p: &Plugin,
    archive: &dyn Fn(&str) -> Option<ArchiveFacts>,
) -> Result<(), Vec<String>> {
    let mut errs = Vec::new();
    if p.api_version != KREW_API_VERSION {
        errs.push(format!(
            "apiVersion is '{}', not '{KREW_API_VERSION}'",
            p.api_version
        ));
    }
    if p.kind != KREW_KIND {
        errs.push(format!("kind is '{}', not '{KREW_KIND}'", p.kind));
    }
    if !is_plugin_name(&p.metadata.name) {
        errs.push(format!(
            "metadata.name '{}' is not a valid plugin name",
            p.metadata.name
        ));
    }
    if !is_semver_tag(&p.spec.version) {
        errs.push(format!(
            "spec.version '{}' is not a semantic version with a leading v",
            p.spec.version
        ));
    }
    if p.spec.short_description.trim().is_empty() {
        errs.push("spec.shortDescription is empty".into());
    }
    if p.spec.platforms.is_empty() {
        errs.push("spec.platforms is empty".into());
    }
    let mut seen = Vec::new();
    for (i, pl) in p.spec.platforms.iter().enumerate() {
        let at = format!("spec.platforms[{i}]");
        let labels = &pl.selector.match_labels;
        match (labels.get("os"), labels.get("arch")) {
            (Some(os), Some(arch)) => {
                let key = format!("{os}/{arch}");
                if seen.contains(&key) {
                    errs.push(format!("{at}: a second platform for {key}"));
                }
                seen.push(key);
            }
            _ => errs.push(format!("{at}: selector.matchLabels needs os and arch")),
        }
        if pl.bin.is_empty() {
            errs.push(format!("{at}: bin is empty"));
        }
        if pl
            .files
            .iter()
            .any(|f| f.from.is_empty() || f.to.is_empty())
        {
            errs.push(format!("{at}: a files entry without from or to"));
        }
        if !pl.uri.starts_with("https://") {
            errs.push(format!("{at}: uri '{}' is not https", pl.uri));
        }
        if pl.sha256.len() != 64
            || !pl
                .sha256
                .chars()
                .all(|c| matches!(c, '0'..='9' | 'a'..='f'))
        {
            errs.push(format!(
                "{at}: sha256 '{}' is not 64 lower-case hex digits",
                pl.sha256
            ));
        }
        let file = pl.uri.rsplit('/').next().unwrap_or("");
        match archive(file) {
            None => errs.push(format!("{at}: no archive {file} for uri {}", pl.uri)),
            Some(facts) => {
                if facts.sha256 != pl.sha256 {
                    errs.push(format!(
                        "{at}: sha256 {} is not that of {file} ({})",
                        pl.sha256, facts.sha256
                    ));
                }
                let holds = |f: &str| facts.files.iter().any(|x| x.trim_start_matches("./") == f);
                for f in &pl.files {
                    if !holds(&f.from) {
                        errs.push(format!("{at}: {file} has no file {}", f.from));
                    }
                }
                if pl.files.is_empty() && !holds(&pl.bin) {
                    errs.push(format!("{at}: {file} has no file {}", pl.bin));
                }
            }
        }
    }
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Write a reproducible tar.gz of `files` (name in the archive, contents, mode) to `out`;
/// returns its sha256 (hex).
pub fn write_archive(
    out: &Path,
    files: &[(&str, &[u8], u32)],
    epoch: u64,
) -> Result<String, String> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let mut tar = tar::Builder::new(gz);
    for (name, data, mode) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(*mode);
        h.set_mtime(epoch);
        h.set_uid(0);
        h.set_gid(0);
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, name, *data)
            .map_err(|e| format!("{}: {e}", out.display()))?;
    }
    let bytes = tar
        .into_inner()
        .and_then(|gz| gz.finish())
        .map_err(|e| format!("{}: {e}", out.display()))?;
    std::fs::write(out, &bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))?;
    Ok(sha256_hex(&bytes))
}

/// The sha256 and the file paths of the tar.gz at `path`.
pub fn read_archive(path: &Path) -> Result<ArchiveFacts, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut files = Vec::new();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
    for entry in tar
        .entries()
        .map_err(|e| format!("{}: {e}", path.display()))?
    {
        let mut entry = entry.map_err(|e| format!("{}: {e}", path.display()))?;
        let name = entry
            .path()
            .map_err(|e| format!("{}: {e}", path.display()))?
            .display()
            .to_string();
        // Read it through, so that a truncated archive is an error.
        std::io::copy(&mut entry.by_ref(), &mut std::io::sink())
            .map_err(|e| format!("{}: {e}", path.display()))?;
        files.push(name);
    }
    Ok(ArchiveFacts {
        sha256: sha256_hex(&bytes),
        files,
    })
}

/// Lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    crate::hex(&Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template() -> Plugin {
        parse(
            "apiVersion: krew.googlecontainertools.github.com/v1alpha2\nkind: Plugin\n\
             metadata:\n  name: trace\nspec:\n  version: v0.0.0\n  homepage: https://example.com\n\
             \x20 shortDescription: Trace\n  description: |\n    Traces.\n  platforms: []\n",
        )
        .unwrap()
    }

    fn linux_amd64() -> Archive {
        Archive {
            platform: TargetPlatform::of("x86_64-unknown-linux-gnu").unwrap(),
            file: "kubectl-trace_v1.2.3_linux_amd64.tar.gz".into(),
            sha256: "ab".repeat(32),
        }
    }

    fn facts(sha: &str) -> impl Fn(&str) -> Option<ArchiveFacts> + '_ {
        move |f| {
            (f == "kubectl-trace_v1.2.3_linux_amd64.tar.gz").then(|| ArchiveFacts {
                sha256: sha.to_string(),
                files: vec!["kubectl-trace".into(), "LICENSE".into()],
            })
        }
    }

    #[test]
    fn targets_map_to_krew_platforms() {
        let p = TargetPlatform::of("aarch64-unknown-linux-musl").unwrap();
        assert_eq!((p.os, p.arch), ("linux", "arm64"));
        let p = TargetPlatform::of("x86_64-apple-darwin").unwrap();
        assert_eq!((p.os, p.arch), ("darwin", "amd64"));
        assert_eq!(
            p.archive_name("0.1.0"),
            "kubectl-trace_v0.1.0_darwin_amd64.tar.gz"
        );
        assert!(TargetPlatform::of("x86_64-pc-windows-msvc")
            .unwrap_err()
            .contains("zip"));
        assert!(TargetPlatform::of("riscv64gc-unknown-linux-gnu").is_err());
    }

    #[test]
    fn manifest_names_the_release_uri_and_sum_and_round_trips() {
        let m = manifest(
            &template(),
            "https://github.com/o/r/",
            "1.2.3",
            &[linux_amd64()],
        );
        assert_eq!(m.spec.version, "v1.2.3");
        let pl = &m.spec.platforms[0];
        assert_eq!(
            pl.uri,
            "https://github.com/o/r/releases/download/v1.2.3/kubectl-trace_v1.2.3_linux_amd64.tar.gz"
        );
        assert_eq!(pl.sha256, "ab".repeat(32));
        assert_eq!(pl.selector.match_labels["os"], "linux");
        assert_eq!(pl.selector.match_labels["arch"], "amd64");
        let text = render(&m).unwrap();
        assert_eq!(parse(&text).unwrap(), m);
        validate(&m, &facts(&"ab".repeat(32))).unwrap();
        assert_eq!(
            sha256sums(&[linux_amd64()]),
            format!(
                "{}  kubectl-trace_v1.2.3_linux_amd64.tar.gz\n",
                "ab".repeat(32)
            )
        );
    }

    #[test]
    fn validation_reports_each_problem() {
        let good = manifest(
            &template(),
            "https://github.com/o/r",
            "1.2.3",
            &[linux_amd64()],
        );
        // A sum that is not the archive's.
        let e = validate(&good, &facts(&"cd".repeat(32))).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("is not that of kubectl-trace_v1.2.3_linux_amd64.tar.gz"),
            "{e:?}"
        );
        // No archive at all.
        let e = validate(&good, &|_: &str| None).unwrap_err();
        assert!(e[0].contains("no archive"), "{e:?}");
        // Schema problems.
        let mut bad = good.clone();
        bad.api_version = "v1".into();
        bad.kind = "Pod".into();
        bad.spec.version = "1.2".into();
        bad.spec.platforms[0].bin.clear();
        bad.spec.platforms[0].sha256 = "0".into();
        bad.spec.platforms.push(bad.spec.platforms[0].clone());
        let e = validate(&bad, &facts(&"ab".repeat(32))).unwrap_err();
        for want in [
            "apiVersion is 'v1'",
            "kind is 'Pod'",
            "spec.version '1.2'",
            "spec.platforms[0]: bin is empty",
            "spec.platforms[0]: sha256 '0' is not 64",
            "spec.platforms[1]: a second platform for linux/amd64",
        ] {
            assert!(e.iter().any(|l| l.contains(want)), "{want}: {e:?}");
        }
        // An archive without the binary it names.
        let e = validate(&good, &|_: &str| {
            Some(ArchiveFacts {
                sha256: "ab".repeat(32),
                files: vec!["LICENSE".into()],
            })
        })
        .unwrap_err();
        assert!(e[0].contains("has no file kubectl-trace"), "{e:?}");
        // Fields krew does not know are refused.
        let text = render(&good)
            .unwrap()
            .replace("  shortDescription", "  shortDesc: x\n  shortDescription");
        assert!(parse(&text).is_err());
    }
}
