//! User-space halves of the values the kernel side leaves unfinished (layouts in
//! [`crate::abi`]): addresses from `ntop()`, MAC
//! addresses, `buf()` bytes, `strftime()` timestamps, `cgroup_path()` ids, `usym()`
//! addresses and stacks, decoded into printable [`Val`]s.

use trace_lang::types::Type;

use crate::abi::Compiled;
use crate::output::Val;

pub use crate::abi::finished_in_user_space as handles;

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8)
        .map_or(0, |s| u64::from_ne_bytes(s.try_into().unwrap_or([0; 8])))
}

/// Decode a value of one of the [`handles`] types.
pub fn decode(ty: &Type, b: &[u8], compiled: &Compiled) -> Val {
    match ty {
        Type::Inet => Val::Str(inet(u64_at(b, 0), b.get(8..24).unwrap_or(&[]))),
        Type::MacAddr => {
            let m: Vec<String> = b.iter().take(6).map(|x| format!("{x:02X}")).collect();
            Val::Str(m.join(":"))
        }
        Type::Buf(n) => {
            let len = (u64_at(b, 0) as usize).min(*n);
            let data = b.get(8..8 + len).unwrap_or(&[]);
            Val::Str(escape_bytes(data))
        }
        Type::Timestamp => {
            let fmt = compiled
                .time_formats
                .get(u64_at(b, 0) as usize)
                .cloned()
                .unwrap_or_default();
            Val::Str(strftime_boot_ns(&fmt, u64_at(b, 8)))
        }
        Type::CgroupPath => Val::Str(cgroup_path(u64_at(b, 0))),
        Type::Username => Val::Str(username(u64_at(b, 0) as u32)),
        Type::Strerror => Val::Str(strerror(u64_at(b, 0) as i32)),
        Type::Usym => {
            let (addr, pid) = (u64_at(b, 0), u64_at(b, 8) as u32);
            Val::Sym(crate::stacks::user_function(pid, addr))
        }
        Type::Stack { user, limit, mode } => {
            let (id, pid) = (u64_at(b, 0) as i64, u64_at(b, 8) as u32);
            Val::Stack(crate::stacks::resolve(id, pid, *user, *limit, *mode))
        }
        _ => Val::Uint(u64_at(b, 0)),
    }
}

/// `username`: the name of a uid in this system's user database, or the number when it
/// has none (as bpftrace prints it).
fn username(uid: u32) -> String {
    crate::sys::user::user_name(uid).unwrap_or_else(|| uid.to_string())
}

/// `strerror(n)`: the C library's message for an errno value.
pub fn strerror(n: i32) -> String {
    crate::sys::errno::strerror(n)
}

/// `ntop()`: dotted quad for AF_INET, RFC 5952 text for AF_INET6.
fn inet(af: u64, addr: &[u8]) -> String {
    if af == 10 && addr.len() >= 16 {
        let mut a = [0u8; 16];
        a.copy_from_slice(&addr[..16]);
        return std::net::Ipv6Addr::from(a).to_string();
    }
    let mut a = [0u8; 4];
    a.copy_from_slice(addr.get(..4).unwrap_or(&[0; 4]));
    std::net::Ipv4Addr::from(a).to_string()
}

/// bpftrace's `%r`: printable ASCII as is, other bytes as `\xNN`.
fn escape_bytes(data: &[u8]) -> String {
    let mut s = String::new();
    for &c in data {
        if (0x20..0x7f).contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("\\x{c:02x}"));
        }
    }
    s
}

/// `strftime(fmt, nsecs)`: `nsecs` counts from boot (CLOCK_MONOTONIC, as the `nsecs`
/// builtin); shown as local wall-clock time. `%f` gives microseconds, as in bpftrace.
fn strftime_boot_ns(fmt: &str, ns: u64) -> String {
    use crate::sys::time::{now_ns, strftime_local, Clock};
    let wall = now_ns(Clock::Realtime) - now_ns(Clock::Monotonic) + ns as i128;
    let secs = wall.div_euclid(1_000_000_000) as i64;
    let micros = wall.rem_euclid(1_000_000_000) / 1000;
    let fmt = fmt.replace("%f", &format!("{micros:06}"));
    strftime_local(&fmt, secs, 256).unwrap_or_default()
}

/// The path of the cgroup v2 directory with this id (its inode number), relative to
/// the cgroup2 mount; the id in decimal when not found.
fn cgroup_path(id: u64) -> String {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let found: Vec<String> = cgroup_hierarchies(&mounts)
        .into_iter()
        .filter_map(|(name, root)| find_cgroup(&root, id).map(|path| format!("{name}:{path}")))
        .collect();
    if found.is_empty() {
        return id.to_string();
    }
    found.join(",")
}

/// The cgroup hierarchies mounted, as bpftrace 0.17 names them in `cgroup_path()`: the
/// cgroup2 one "unified" first, then each cgroup v1 one by its mount point's name, in
/// name order. `mounts` is the text of `/proc/self/mounts`.
fn cgroup_hierarchies(mounts: &str) -> Vec<(String, std::path::PathBuf)> {
    let mut unified = Vec::new();
    let mut v1 = Vec::new();
    for line in mounts.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, dir, fstype, ..] = fields[..] else {
            continue;
        };
        let dir = std::path::PathBuf::from(dir.replace("\\040", " "));
        match fstype {
            "cgroup2" => unified.push(("unified".to_string(), dir)),
            "cgroup" => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                v1.push((name, dir));
            }
            _ => {}
        }
    }
    unified.truncate(1);
    v1.sort();
    v1.dedup_by(|a, b| a.0 == b.0);
    unified.extend(v1);
    unified
}

/// The path under `root` of the cgroup directory whose inode is `id`.
fn find_cgroup(root: &std::path::Path, id: u64) -> Option<String> {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![root.to_path_buf()];
    let mut seen = 0;
    while let Some(dir) = stack.pop() {
        seen += 1;
        if seen > 100_000 {
            break;
        }
        if std::fs::metadata(&dir).is_ok_and(|m| m.ino() == id) {
            let rel = dir.strip_prefix(root).unwrap_or(&dir).display().to_string();
            return Some(format!("/{}", rel.trim_start_matches('/')));
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            stack.extend(
                rd.flatten()
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path()),
            );
        }
    }
    None
}

/// The text of a `join()` event: its non-empty arguments joined by the call site's
/// delimiter, and a newline (bpftrace 0.17 prints it like that).
pub fn join_record(compiled: &Compiled, index: usize, record: &[u8]) -> Option<String> {
    use crate::abi::{JOIN_ARG_LEN, JOIN_MAX_ARGS};
    let delim = compiled.joins.get(index)?;
    let mut parts = Vec::new();
    for i in 0..JOIN_MAX_ARGS {
        let at = 8 + i * JOIN_ARG_LEN;
        let Some(raw) = record.get(at..at + JOIN_ARG_LEN) else {
            break;
        };
        let end = raw.iter().position(|c| *c == 0).unwrap_or(raw.len());
        if end == 0 {
            break;
        }
        parts.push(String::from_utf8_lossy(&raw[..end]).into_owned());
    }
    Some(format!("{}\n", parts.join(delim)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_hierarchies_as_bpftrace_names_them() {
        let mounts = "sysfs /sys sysfs rw 0 0\n\
            cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n\
            cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,cpu,cpuacct 0 0\n\
            cgroup /sys/fs/cgroup/systemd cgroup rw,name=systemd 0 0\n\
            cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
        let names: Vec<String> = cgroup_hierarchies(mounts)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["unified", "cpu,cpuacct", "pids", "systemd"]);
        let pure_v2 = "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n";
        assert_eq!(
            cgroup_hierarchies(pure_v2),
            [(
                "unified".to_string(),
                std::path::PathBuf::from("/sys/fs/cgroup")
            )]
        );
    }

    #[test]
    fn addresses() {
        assert_eq!(inet(2, &[127, 0, 0, 1]), "127.0.0.1");
        let mut v6 = [0u8; 16];
        v6[15] = 1;
        assert_eq!(inet(10, &v6), "::1");
        assert_eq!(escape_bytes(b"ab\x00\n"), "ab\\x00\\x0a");
    }
}
