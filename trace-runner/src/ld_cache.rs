//! glibc's `/etc/ld.so.cache`, as the dynamic loader (and bpftrace) find libraries by
//! name: reads its current format (`glibc-ld.so.cache1.1`, alone or after the old
//! `ld.so-1.7.0` part) into `(soname, path)` entries for this machine's architecture.
//! Pure: the caller reads the file (from the node's or a container's root).

/// `FLAG_ELF_LIBC6`: the entry is a glibc ELF library (the low byte is the type).
const ELF_LIBC6: u32 = 0x0003;

/// The architecture bits (`0xff00`) of this machine's 64-bit libraries; `None` where
/// they are not known here (every entry's architecture is then accepted).
const ARCH: Option<u32> = if cfg!(target_arch = "x86_64") {
    Some(0x0300) // FLAG_X8664_LIB64
} else if cfg!(target_arch = "aarch64") {
    Some(0x0a00) // FLAG_AARCH64_LIB64
} else {
    None
};

const MAGIC: &[u8] = b"glibc-ld.so.cache1.1";
/// magic and version (20), nlibs, len_strings, flags + 3 padding, extension_offset,
/// 3 unused words.
const HEADER: usize = 48;
/// flags, key, value, osversion (4 bytes each), hwcap (8).
const ENTRY: usize = 24;

/// The `(soname, path)` entries of a cache's contents, in the cache's order (the
/// loader's preference); empty when it is not a cache this parser knows.
pub fn entries(data: &[u8]) -> Vec<(String, String)> {
    // The current format starts the file, or follows the old one.
    let Some(start) = data.windows(MAGIC.len()).position(|w| w == MAGIC) else {
        return Vec::new();
    };
    let new = &data[start..];
    let word = |at: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(new.get(at..at + 4)?.try_into().ok()?))
    };
    // Offsets of strings are from the start of the current format's header.
    let string = |at: u32| -> Option<String> {
        let rest = new.get(at as usize..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(String::from_utf8_lossy(&rest[..end]).into_owned())
    };
    let Some(nlibs) = word(20) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for i in 0..nlibs as usize {
        let at = HEADER + i * ENTRY;
        let (Some(flags), Some(key), Some(value)) = (word(at), word(at + 4), word(at + 8)) else {
            break;
        };
        if flags & 0xff != ELF_LIBC6 || ARCH.is_some_and(|a| flags & 0xff00 != a) {
            continue;
        }
        if let (Some(k), Some(v)) = (string(key), string(value)) {
            out.push((k, v));
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A cache in the current format listing `(flags, soname, path)`.
    pub(crate) fn cache(libs: &[(u32, &str, &str)]) -> Vec<u8> {
        let mut strings = Vec::new();
        let base = HEADER + libs.len() * ENTRY;
        let mut entries = Vec::new();
        for (flags, key, value) in libs {
            let k = base + strings.len();
            strings.extend_from_slice(key.as_bytes());
            strings.push(0);
            let v = base + strings.len();
            strings.extend_from_slice(value.as_bytes());
            strings.push(0);
            for w in [*flags, k as u32, v as u32, 0] {
                entries.extend_from_slice(&w.to_ne_bytes());
            }
            entries.extend_from_slice(&0u64.to_ne_bytes());
        }
        let mut out = MAGIC.to_vec();
        for w in [libs.len() as u32, strings.len() as u32, 0, 0, 0, 0, 0] {
            out.extend_from_slice(&w.to_ne_bytes());
        }
        assert_eq!(out.len(), HEADER);
        out.extend(entries);
        out.extend(strings);
        out
    }

    /// This machine's architecture bits with the glibc type.
    pub(crate) fn native() -> u32 {
        ARCH.unwrap_or(0) | ELF_LIBC6
    }

    #[test]
    fn entries_of_this_architecture_in_order() {
        let other_arch = if ARCH == Some(0x0300) { 0x0a03 } else { 0x0303 };
        let data = cache(&[
            (native(), "libvend.so.1", "/opt/vendor/lib/libvend.so.1"),
            (other_arch, "libc.so.6", "/lib/other/libc.so.6"),
            (0x0001, "libold.so", "/lib/libold.so"),
            (native(), "libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6"),
        ]);
        let want: Vec<(String, String)> = vec![
            ("libvend.so.1".into(), "/opt/vendor/lib/libvend.so.1".into()),
            ("libc.so.6".into(), "/lib/x86_64-linux-gnu/libc.so.6".into()),
        ];
        if ARCH.is_some() {
            assert_eq!(entries(&data), want);
        }
        // After an old-format part, at any offset.
        let mut both = b"ld.so-1.7.0\0\0\0\0\0".to_vec();
        both.extend_from_slice(&data);
        assert_eq!(entries(&both), entries(&data));
        // Not a cache, or cut short: nothing, no panic.
        assert_eq!(entries(b"not a cache"), Vec::new());
        assert!(entries(&data[..HEADER + 10]).len() < 2);
        let mut bad = data.clone();
        bad[HEADER + 4..HEADER + 8].copy_from_slice(&u32::MAX.to_ne_bytes());
        assert!(entries(&bad).len() <= 1);
    }

    #[test]
    fn this_machines_cache_lists_its_libc() {
        let Ok(data) = std::fs::read("/etc/ld.so.cache") else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "no /etc/ld.so.cache and CI=true: failing instead of skipping"
            );
            eprintln!("skipping: no /etc/ld.so.cache here");
            return;
        };
        let found = entries(&data);
        let libc = found.iter().find(|(k, _)| k == "libc.so.6");
        assert!(
            libc.is_some_and(|(_, p)| std::path::Path::new(p).exists()),
            "{found:?}"
        );
    }
}
