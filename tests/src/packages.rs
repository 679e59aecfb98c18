//! Pure logic about Debian kernel packages: which package of `apt-cache search` output
//! is the newest generic amd64 kernel of a series (`6.1`, `6.12`), and in which order
//! a kernel's modules must be loaded (from its `modules.dep`).

use std::collections::{HashMap, HashSet};

/// The package names in `apt-cache search` output (`NAME - DESCRIPTION` per line).
pub fn search_names(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|line| line.split(" - ").next())
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .collect()
}

/// The version part of a generic amd64 kernel image of `series`, or `None` for any other
/// package: `linux-image-6.1.0-57-amd64` gives `6.1.0-57`, `linux-image-6.12.117+deb12-amd64`
/// gives `6.12.117+deb12`; the cloud and rt flavours, meta-packages (`linux-image-6.12-amd64`),
/// `-dbg` and `-unsigned` packages give `None`.
pub fn series_version<'a>(package: &'a str, series: &str) -> Option<&'a str> {
    let version = package
        .strip_prefix("linux-image-")?
        .strip_suffix("-amd64")?;
    let rest = version.strip_prefix(series)?.strip_prefix('.')?;
    let plain = match rest.split_once("+deb") {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        Some(_) => return None,
        None => rest,
    };
    let valid = !plain.is_empty()
        && plain.starts_with(|c: char| c.is_ascii_digit())
        && plain
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-');
    valid.then_some(version)
}

/// The numbers of a version, in order, for comparing versions numerically
/// (`6.12.117+deb12` gives `[6, 12, 117, 12]`).
pub fn version_key(version: &str) -> Vec<u64> {
    version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect()
}

/// The newest generic amd64 kernel image of `series` among `names`.
pub fn newest<'a>(names: impl IntoIterator<Item = &'a str>, series: &str) -> Option<&'a str> {
    names
        .into_iter()
        .filter_map(|name| Some((version_key(series_version(name, series)?), name)))
        .max()
        .map(|(_, name)| name)
}

/// The packages of `series` in `names` other than `keep`: older kernels of the series
/// to remove from the cache once `keep` is there.
pub fn superseded<'a>(
    names: impl IntoIterator<Item = &'a str>,
    series: &str,
    keep: &str,
) -> Vec<&'a str> {
    names
        .into_iter()
        .filter(|name| *name != keep && series_version(name, series).is_some())
        .collect()
}

/// The module name of a path in `modules.dep` (`kernel/net/9p/9pnet_virtio.ko.xz` gives
/// `9pnet_virtio`; dashes count as underscores, as for modprobe).
pub fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split_once(".ko").map_or(file, |(stem, _)| stem);
    stem.replace('-', "_")
}

/// The module files (paths relative to `/lib/modules/VERSION`) to load, in order, so that
/// every module in `wanted` is loaded after its dependencies. A wanted module missing
/// from `modules.dep` is skipped when `builtin` (the text of `modules.builtin`) lists
/// it, and is an error otherwise.
pub fn load_order(
    modules_dep: &str,
    builtin: &str,
    wanted: &[&str],
) -> Result<Vec<String>, String> {
    let mut deps: HashMap<String, (String, Vec<String>)> = HashMap::new();
    for line in modules_dep.lines() {
        let Some((path, rest)) = line.split_once(':') else {
            continue;
        };
        let needs = rest.split_whitespace().map(String::from).collect();
        deps.insert(module_name(path), (path.to_string(), needs));
    }
    let builtin: HashSet<String> = builtin.lines().map(module_name).collect();
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    fn visit(
        name: &str,
        deps: &HashMap<String, (String, Vec<String>)>,
        seen: &mut HashSet<String>,
        order: &mut Vec<String>,
    ) {
        if !seen.insert(name.to_string()) {
            return;
        }
        let Some((path, needs)) = deps.get(name) else {
            return;
        };
        // modules.dep lists the dependencies of a dependency after it: load from the end.
        for need in needs.iter().rev() {
            visit(&module_name(need), deps, seen, order);
        }
        order.push(path.clone());
    }
    for want in wanted {
        let name = module_name(want);
        if !deps.contains_key(&name) {
            if builtin.contains(&name) {
                continue;
            }
            return Err(format!(
                "module {want} is neither in modules.dep nor built in"
            ));
        }
        visit(&name, &deps, &mut seen, &mut order);
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEARCH: &str = "\
linux-image-6.1.0-47-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.1.0-57-cloud-amd64 - Linux 6.1 for x86-64 cloud (signed)
linux-image-6.1.0-9-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.12-amd64 - Linux for 64-bit PCs (meta-package)
linux-image-6.12.117+deb12-rt-amd64 - Linux 6.12 for 64-bit PCs (signed), PREEMPT_RT
linux-image-6.12.99+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64 - Linux 6.12 for 64-bit PCs (signed)
linux-image-6.12.117+deb12-amd64-dbg - Linux 6.12 debug
linux-image-6.1.0-56-amd64 - Linux 6.1 for 64-bit PCs (signed)
linux-image-6.10.1-amd64 - not a 6.1 kernel
";

    #[test]
    fn picks_the_newest_generic_image_of_each_series() {
        let names = search_names(SEARCH);
        assert_eq!(names.len(), 10);
        assert_eq!(
            newest(names.iter().copied(), "6.1"),
            Some("linux-image-6.1.0-56-amd64")
        );
        assert_eq!(
            newest(names.iter().copied(), "6.12"),
            Some("linux-image-6.12.117+deb12-amd64")
        );
        assert_eq!(newest(names.iter().copied(), "6.6"), None);
    }

    #[test]
    fn flavours_and_meta_packages_are_not_kernels_of_a_series() {
        assert_eq!(
            series_version("linux-image-6.1.0-57-amd64", "6.1"),
            Some("6.1.0-57")
        );
        assert_eq!(
            series_version("linux-image-6.12.117+deb12-amd64", "6.12"),
            Some("6.12.117+deb12")
        );
        for other in [
            "linux-image-6.1.0-57-cloud-amd64",
            "linux-image-6.1.0-57-rt-amd64",
            "linux-image-6.12-amd64",
            "linux-image-6.12.117+deb12-amd64-unsigned",
            "linux-image-6.12.117+debx-amd64",
            "linux-image-6.10.1-amd64",
            "linux-headers-6.1.0-57-amd64",
        ] {
            assert_eq!(series_version(other, "6.1"), None, "{other}");
            assert_eq!(series_version(other, "6.12"), None, "{other}");
        }
    }

    #[test]
    fn older_kernels_of_the_series_are_superseded() {
        let cached = [
            "linux-image-6.1.0-56-amd64",
            "linux-image-6.1.0-57-amd64",
            "linux-image-6.12.117+deb12-amd64",
            ".linux-image-6.1.0-58-amd64.partial-12",
            "notes.txt",
        ];
        assert_eq!(
            superseded(cached, "6.1", "linux-image-6.1.0-57-amd64"),
            ["linux-image-6.1.0-56-amd64"]
        );
        assert!(superseded(cached, "6.12", "linux-image-6.12.117+deb12-amd64").is_empty());
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("6.1.0-57") > version_key("6.1.0-9"));
        assert_eq!(version_key("6.12.117+deb12"), vec![6, 12, 117, 12]);
    }

    const DEP: &str = "\
kernel/fs/9p/9p.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/fs/netfs/netfs.ko.xz
kernel/net/9p/9pnet_virtio.ko.xz: kernel/net/9p/9pnet.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/net/9p/9pnet.ko.xz:
kernel/fs/netfs/netfs.ko.xz:
kernel/drivers/virtio/virtio_ring.ko.xz:
kernel/drivers/virtio/virtio_pci.ko.xz: kernel/drivers/virtio/virtio-pci-modern-dev.ko.xz kernel/drivers/virtio/virtio_ring.ko.xz
kernel/drivers/virtio/virtio-pci-modern-dev.ko.xz:
";

    #[test]
    fn modules_load_after_their_dependencies_once_each() {
        let order = load_order(DEP, "", &["virtio_pci", "9pnet_virtio", "9p"]).unwrap();
        assert_eq!(
            order,
            [
                "kernel/drivers/virtio/virtio_ring.ko.xz",
                "kernel/drivers/virtio/virtio-pci-modern-dev.ko.xz",
                "kernel/drivers/virtio/virtio_pci.ko.xz",
                "kernel/net/9p/9pnet.ko.xz",
                "kernel/net/9p/9pnet_virtio.ko.xz",
                "kernel/fs/netfs/netfs.ko.xz",
                "kernel/fs/9p/9p.ko.xz",
            ]
        );
    }

    #[test]
    fn built_in_modules_are_skipped_and_unknown_ones_are_errors() {
        let builtin = "kernel/drivers/virtio/virtio_blk.ko\n";
        let order = load_order(DEP, builtin, &["virtio_blk", "9pnet"]).unwrap();
        assert_eq!(order, ["kernel/net/9p/9pnet.ko.xz"]);
        let err = load_order(DEP, builtin, &["nosuch"]).unwrap_err();
        assert_eq!(err, "module nosuch is neither in modules.dep nor built in");
    }
}
