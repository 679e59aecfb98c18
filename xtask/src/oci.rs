//! A one-layer OCI image archive built without a container engine.
//!
//! The archive is a tar holding an OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/<hex>`) and, beside it, a docker-archive `manifest.json` whose
//! `Config` and `Layers` point at the same blobs (the layout `docker save` writes
//! since Docker 25). So `skopeo copy oci-archive:` and `docker-archive:`,
//! `docker load`, `podman load` and `kind load image-archive` all accept it.
//!
//! The layer is a gzip-compressed tar with `/usr/local/bin/trace-runner`, `/tmp`
//! and, for a dynamic binary, the shared libraries at the paths the loader uses.
//! Entries have uid/gid 0 and a fixed mtime (`SOURCE_DATE_EPOCH`, default 0), so
//! the same binary gives the same digests.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use flate2::{Compression, GzBuilder};
use serde_json::{json, Value};

use crate::binary::SharedLib;
use crate::sha256_digest;

/// Where the runner lives in the image.
pub const BINARY_PATH: &str = "/usr/local/bin/trace-runner";
/// The image's default name (the plugin's `--imagename` default uses the same).
pub const DEFAULT_REPOSITORY: &str = "ghcr.io/kubectl-trace/trace-runner";

const MT_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const MT_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const MT_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const MT_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What goes into the image.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    /// The trace-runner binary.
    pub binary: PathBuf,
    /// Shared libraries for a dynamic binary (empty for a static one).
    pub libs: Vec<SharedLib>,
    /// OCI architecture (`amd64`, `arm64`).
    pub arch: String,
    /// `repository:tag`, e.g. `ghcr.io/kubectl-trace/trace-runner:0.1.0`.
    pub reference: String,
    /// Version label.
    pub version: String,
    /// Seconds since the epoch for `created` and every mtime.
    pub epoch: u64,
    /// gzip level, 0-9.
    pub gzip_level: u32,
}

/// Sizes and digests of a written archive.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// The archive file's size.
    pub archive_size: u64,
    /// Compressed layer size.
    pub layer_size: u64,
    /// Uncompressed layer size.
    pub layer_uncompressed: u64,
    /// Digest of the image manifest (the image's identity in a registry).
    pub manifest_digest: String,
    /// Digest of the config (the image id docker shows).
    pub config_digest: String,
}

/// Writes the archive for `spec` to `out`.
pub fn write_archive(spec: &ImageSpec, out: &Path) -> Result<ImageReport, String> {
    let mut files = vec![(BINARY_PATH.to_string(), read(&spec.binary)?)];
    for lib in &spec.libs {
        files.push((lib.image_path.clone(), read(&lib.source)?));
    }
    let layer_tar = layer_tar(&files, spec.epoch)?;
    let diff_id = sha256_digest(&layer_tar);
    let mut gz = GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), Compression::new(spec.gzip_level.min(9)));
    gz.write_all(&layer_tar).map_err(|e| e.to_string())?;
    let layer = gz.finish().map_err(|e| e.to_string())?;
    let layer_digest = sha256_digest(&layer);

    let created = rfc3339(spec.epoch);
    let linkage = if spec.libs.is_empty() {
        "static binary".to_string()
    } else {
        format!("dynamic binary with {} shared libraries", spec.libs.len())
    };
    let config = json!({
        "created": created,
        "architecture": spec.arch,
        "os": "linux",
        "config": {
            "Entrypoint": [BINARY_PATH],
            "Env": [PATH_ENV],
            "WorkingDir": "/",
            "Labels": {
                "org.opencontainers.image.title": "trace-runner",
                "org.opencontainers.image.description": "Compiles bpftrace-language scripts to eBPF in-process and runs them",
                "org.opencontainers.image.source": "https://github.com/kubectl-trace/kubectl-trace",
                "org.opencontainers.image.licenses": "Apache-2.0",
                "org.opencontainers.image.version": spec.version,
            },
        },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        "history": [{ "created": created, "created_by": format!("cargo xtask image ({linkage})") }],
    });
    let config = to_bytes(&config);
    let config_digest = sha256_digest(&config);

    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": { "mediaType": MT_CONFIG, "digest": config_digest, "size": config.len() },
        "layers": [{ "mediaType": MT_LAYER, "digest": layer_digest, "size": layer.len() }],
    });
    let manifest = to_bytes(&manifest);
    let manifest_digest = sha256_digest(&manifest);

    let tag = spec
        .reference
        .rsplit_once(':')
        .filter(|(_, t)| !t.contains('/'))
        .map_or("latest", |(_, t)| t);
    let index = json!({
        "schemaVersion": 2,
        "mediaType": MT_INDEX,
        "manifests": [{
            "mediaType": MT_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": { "architecture": spec.arch, "os": "linux" },
            "annotations": {
                "io.containerd.image.name": spec.reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    });
    let blob = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let docker_manifest = json!([{
        "Config": blob(&config_digest),
        "RepoTags": [spec.reference],
        "Layers": [blob(&layer_digest)],
    }]);

    let file =
        fs::File::create(out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let mut ar = tar::Builder::new(std::io::BufWriter::new(file));
    let mut put = |path: &str, data: &[u8], dir: bool| -> Result<(), String> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(|e| e.to_string())?;
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(if dir { 0o755 } else { 0o644 });
        h.set_size(data.len() as u64);
        h.set_mtime(spec.epoch);
        h.set_cksum();
        ar.append(&h, data)
            .map_err(|e| format!("cannot write {}: {e}", out.display()))
    };
    put("blobs/", &[], true)?;
    put("blobs/sha256/", &[], true)?;
    put(&blob(&config_digest), &config, false)?;
    put(&blob(&layer_digest), &layer, false)?;
    put(&blob(&manifest_digest), &manifest, false)?;
    put("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#, false)?;
    put("index.json", &to_bytes(&index), false)?;
    put("manifest.json", &to_bytes(&docker_manifest), false)?;
    let w = ar.into_inner().map_err(|e| e.to_string())?;
    w.into_inner()
        .map_err(|e| e.to_string())?
        .sync_all()
        .map_err(|e| e.to_string())?;

    Ok(ImageReport {
        archive_size: fs::metadata(out).map_err(|e| e.to_string())?.len(),
        layer_size: layer.len() as u64,
        layer_uncompressed: layer_tar.len() as u64,
        manifest_digest,
        config_digest,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON values serialize")
}

/// The layer: every parent directory, `/tmp` (mode 1777), then the files (mode 0755).
fn layer_tar(files: &[(String, Vec<u8>)], epoch: u64) -> Result<Vec<u8>, String> {
    let mut dirs = BTreeSet::new();
    for (path, _) in files {
        let mut p = Path::new(path.trim_start_matches('/'));
        while let Some(parent) = p.parent().filter(|p| !p.as_os_str().is_empty()) {
            dirs.insert(format!("{}/", parent.display()));
            p = parent;
        }
    }
    let mut ar = tar::Builder::new(Vec::new());
    let mut put = |path: &str, data: &[u8], mode: u32, dir: bool| -> Result<(), String> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(|e| format!("{path}: {e}"))?;
        h.set_entry_type(if dir {
            tar::EntryType::Directory
        } else {
            tar::EntryType::Regular
        });
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_username("root").map_err(|e| e.to_string())?;
        h.set_groupname("root").map_err(|e| e.to_string())?;
        h.set_size(data.len() as u64);
        h.set_mtime(epoch);
        h.set_cksum();
        ar.append(&h, data).map_err(|e| e.to_string())
    };
    put("tmp/", &[], 0o1777, true)?;
    for d in &dirs {
        put(d, &[], 0o755, true)?;
    }
    for (path, data) in files {
        put(path.trim_start_matches('/'), data, 0o755, false)?;
    }
    ar.into_inner().map_err(|e| e.to_string())
}

/// `1970-01-01T00:00:00Z` for `secs` since the epoch.
pub fn rfc3339(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A file in the image's layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerEntry {
    /// Path without the leading `/` (directories end in `/`).
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
}

/// What [`verify_archive`] found.
#[derive(Debug, Clone)]
pub struct VerifiedImage {
    /// Architecture from the config.
    pub arch: String,
    /// The config's Entrypoint.
    pub entrypoint: Vec<String>,
    /// The docker-archive RepoTags.
    pub repo_tags: Vec<String>,
    /// The layer's entries.
    pub layer: Vec<LayerEntry>,
}

/// Re-reads an archive and checks it the way a loader would: every blob's name
/// is its sha256, index → manifest → config/layers digests and sizes match,
/// each `diff_id` is the sha256 of the uncompressed layer, and the docker
/// `manifest.json` points at existing blobs.
pub fn verify_archive(path: &Path) -> Result<VerifiedImage, String> {
    let file = fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut entries = BTreeMap::new();
    let mut ar = tar::Archive::new(file);
    for e in ar.entries().map_err(|e| e.to_string())? {
        let mut e = e.map_err(|e| e.to_string())?;
        if e.header().entry_type().is_dir() {
            continue;
        }
        let name = e.path().map_err(|e| e.to_string())?.display().to_string();
        let mut data = Vec::new();
        e.read_to_end(&mut data).map_err(|e| e.to_string())?;
        entries.insert(name.trim_start_matches("./").to_string(), data);
    }
    let get = |name: &str| {
        entries
            .get(name)
            .ok_or_else(|| format!("archive has no {name}"))
    };
    let json = |name: &str| -> Result<Value, String> {
        serde_json::from_slice(get(name)?).map_err(|e| format!("{name}: {e}"))
    };
    for (name, data) in &entries {
        if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            if sha256_digest(data) != format!("sha256:{hex}") {
                return Err(format!("{name}: content does not match its digest"));
            }
        }
    }
    let blob_of = |desc: &Value| -> Result<&Vec<u8>, String> {
        let digest = desc["digest"].as_str().ok_or("descriptor without digest")?;
        let data = get(&format!(
            "blobs/sha256/{}",
            digest.trim_start_matches("sha256:")
        ))?;
        if desc["size"].as_u64() != Some(data.len() as u64) {
            return Err(format!(
                "{digest}: size {} in descriptor, {} in blob",
                desc["size"],
                data.len()
            ));
        }
        Ok(data)
    };
    if json("oci-layout")?["imageLayoutVersion"] != "1.0.0" {
        return Err("oci-layout: imageLayoutVersion is not 1.0.0".into());
    }
    let index = json("index.json")?;
    let descs = index["manifests"]
        .as_array()
        .ok_or("index.json has no manifests")?;
    if descs.len() != 1 {
        return Err(format!(
            "index.json lists {} manifests, expected 1",
            descs.len()
        ));
    }
    let manifest: Value = serde_json::from_slice(blob_of(&descs[0])?).map_err(|e| e.to_string())?;
    let config: Value =
        serde_json::from_slice(blob_of(&manifest["config"])?).map_err(|e| e.to_string())?;
    let layers = manifest["layers"]
        .as_array()
        .ok_or("manifest has no layers")?;
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or("config has no diff_ids")?;
    if layers.len() != diff_ids.len() || layers.len() != 1 {
        return Err(format!(
            "{} layers and {} diff_ids, expected 1 of each",
            layers.len(),
            diff_ids.len()
        ));
    }
    let mut layer_tar = Vec::new();
    GzDecoder::new(&blob_of(&layers[0])?[..])
        .read_to_end(&mut layer_tar)
        .map_err(|e| format!("layer is not gzip: {e}"))?;
    if diff_ids[0].as_str() != Some(sha256_digest(&layer_tar).as_str()) {
        return Err("diff_id is not the sha256 of the uncompressed layer".into());
    }
    let mut layer = Vec::new();
    let mut lar = tar::Archive::new(&layer_tar[..]);
    for e in lar.entries().map_err(|e| e.to_string())? {
        let e = e.map_err(|e| e.to_string())?;
        let h = e.header();
        layer.push(LayerEntry {
            path: e.path().map_err(|e| e.to_string())?.display().to_string(),
            mode: h.mode().map_err(|e| e.to_string())?,
            size: h.size().map_err(|e| e.to_string())?,
        });
    }
    let docker = json("manifest.json")?;
    let d = &docker[0];
    if d["Config"].as_str()
        != Some(
            format!(
                "blobs/sha256/{}",
                manifest["config"]["digest"]
                    .as_str()
                    .unwrap_or("")
                    .trim_start_matches("sha256:")
            )
            .as_str(),
        )
    {
        return Err("manifest.json Config is not the OCI config blob".into());
    }
    for l in d["Layers"]
        .as_array()
        .ok_or("manifest.json has no Layers")?
    {
        get(l.as_str().ok_or("manifest.json layer is not a string")?)?;
    }
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Ok(VerifiedImage {
        arch: config["architecture"].as_str().unwrap_or("").to_string(),
        entrypoint: strings(&config["config"]["Entrypoint"]),
        repo_tags: strings(&d["RepoTags"]),
        layer,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn round_trip_is_verified_and_reproducible() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("trace-runner");
        fs::write(&bin, b"\x7fELF fake").unwrap();
        let lib = dir.path().join("libc.so.6");
        fs::write(&lib, b"libc").unwrap();
        let spec = ImageSpec {
            binary: bin,
            libs: vec![SharedLib {
                image_path: "/lib/x86_64-linux-gnu/libc.so.6".into(),
                source: lib,
            }],
            arch: "amd64".into(),
            reference: format!("{DEFAULT_REPOSITORY}:1.2.3"),
            version: "1.2.3".into(),
            epoch: 0,
            gzip_level: 6,
        };
        let a = dir.path().join("a.tar");
        let b = dir.path().join("b.tar");
        let ra = write_archive(&spec, &a).unwrap();
        let rb = write_archive(&spec, &b).unwrap();
        assert_eq!(ra.manifest_digest, rb.manifest_digest);
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());

        let v = verify_archive(&a).unwrap();
        assert_eq!(v.arch, "amd64");
        assert_eq!(v.entrypoint, [BINARY_PATH]);
        assert_eq!(v.repo_tags, ["ghcr.io/kubectl-trace/trace-runner:1.2.3"]);
        let paths: Vec<_> = v.layer.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "tmp/",
                "lib/",
                "lib/x86_64-linux-gnu/",
                "usr/",
                "usr/local/",
                "usr/local/bin/",
                "usr/local/bin/trace-runner",
                "lib/x86_64-linux-gnu/libc.so.6"
            ]
        );
        assert_eq!(v.layer[0].mode, 0o1777);
        assert_eq!(v.layer[6].mode, 0o755);
    }

    #[test]
    fn tampering_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("trace-runner");
        fs::write(&bin, b"x").unwrap();
        let spec = ImageSpec {
            binary: bin,
            libs: vec![],
            arch: "amd64".into(),
            reference: "x:1".into(),
            version: "1".into(),
            epoch: 0,
            gzip_level: 1,
        };
        let a = dir.path().join("a.tar");
        write_archive(&spec, &a).unwrap();
        let mut bytes = fs::read(&a).unwrap();
        // Corrupt the first byte of the first blob's data (after two directory headers and one file header).
        bytes[3 * 512] ^= 0xff;
        fs::write(&a, bytes).unwrap();
        assert!(verify_archive(&a).unwrap_err().contains("digest"));
    }
}
