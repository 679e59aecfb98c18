//! Repository tasks for kubectl-trace, run as `cargo xtask <task>`.
//!
//! - [`binary`]: builds trace-runner for the image (static when the toolchain
//!   allows it) and finds the shared libraries a dynamic build needs.
//! - [`oci`]: assembles a one-layer OCI image archive that is at the same time
//!   a docker-archive (`docker load`, `podman load`, `kind load image-archive`,
//!   `skopeo copy oci-archive:` / `docker-archive:` all accept it), and
//!   re-checks an archive's digests.
//! - [`release`]: the plugin's release archives and its krew manifest, validated.

pub mod binary;
pub mod oci;
pub mod release;

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

/// A size in bytes for people: `12.3 MiB`.
pub fn human_size(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_input() {
        assert_eq!(
            sha256_digest(b""),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(3 * 1024 * 1024 / 2), "1.5 MiB");
    }
}
