//! The guest's initramfs: an uncompressed `newc` cpio archive (which every kernel
//! accepts) holding a static busybox, the kernel's own 9p modules and an `/init` that
//! mounts this machine's root read-only over virtio-9p, mounts fresh proc, sys, dev,
//! tmpfs, tracefs, debugfs, bpffs and cgroup2 inside it, mounts the writable results
//! share at [`GUEST_SHARE`], and runs the job there in a chroot. Pure: builds bytes.

/// Where the writable host share (the job, its inputs and its results) is mounted,
/// as seen inside the chroot.
pub const GUEST_SHARE: &str = "/tmp/kmatrix";

/// The console line the guest prints when it is about to run the job; the kernel
/// version follows it.
pub const START_MARKER: &str = "=== kmatrix guest start";

/// The console line the guest prints when the job has ended.
pub const END_MARKER: &str = "=== kmatrix guest end";

/// The file (in the share) where `/init` writes the job's exit status.
pub const STATUS_FILE: &str = "job.status";

/// One entry of a cpio archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir(String),
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    CharDev {
        path: String,
        major: u32,
        minor: u32,
    },
}

/// Write `entries` as a `newc` cpio archive, with its trailer.
pub fn cpio(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match entry {
            Entry::Dir(path) => header(&mut out, ino, 0o040755, 2, 0, (0, 0), path, &[]),
            Entry::File { path, mode, data } => {
                header(&mut out, ino, 0o100000 | mode, 1, 0, (0, 0), path, data)
            }
            Entry::CharDev { path, major, minor } => {
                header(&mut out, ino, 0o020600, 1, 0, (*major, *minor), path, &[])
            }
        }
    }
    header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!", &[]);
    out
}

#[allow(clippy::too_many_arguments)]
fn header(
    out: &mut Vec<u8>,
    ino: u32,
    mode: u32,
    nlink: u32,
    mtime: u32,
    rdev: (u32, u32),
    path: &str,
    data: &[u8],
) {
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        mtime,
        data.len() as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        path.len() as u32 + 1,
        0,
    ];
    out.extend_from_slice(b"070701");
    for field in fields {
        out.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    out.extend_from_slice(path.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// The `/init` script: load `modules` (paths inside the initramfs, in order), mount the
/// host root and the share, run `job` (a path inside the share) with bash in the chroot,
/// and power off.
pub fn init_script(modules: &[String], job: &str) -> String {
    let insmods: String = modules
        .iter()
        .map(|m| format!("insmod {m} || echo \"kmatrix: insmod {m} failed\"\n"))
        .collect();
    format!(
        r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
{insmods}mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 host /host || echo "kmatrix: cannot mount the host root"
mount -t proc proc /host/proc; mount -t sysfs sys /host/sys; mount -t devtmpfs dev /host/dev
mount -t tmpfs tmpfs /host/tmp; mount -t tmpfs tmpfs /host/run
mount -t tracefs tracefs /host/sys/kernel/tracing; mount -t debugfs debugfs /host/sys/kernel/debug
mount -t bpf bpf /host/sys/fs/bpf; mount -t cgroup2 cgroup2 /host/sys/fs/cgroup
mkdir -p /host{share}
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 out /host{share} || echo "kmatrix: cannot mount the results share"
echo "{START_MARKER} $(uname -r)"
chroot /host /bin/sh -c 'cd /tmp && HOME=/tmp PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin exec /bin/bash {job}' 2>&1
echo $? > /host{share}/{STATUS_FILE}
sync
echo "{END_MARKER}"
poweroff -f
"#,
        share = GUEST_SHARE,
    )
}

/// Does this ELF file ask for a program interpreter (is it dynamically linked)? `None`
/// when it is not a 64-bit little-endian ELF file. The initramfs has no libraries, so
/// its busybox must be static.
pub fn elf_is_dynamic(bytes: &[u8]) -> Option<bool> {
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 || bytes[5] != 1 {
        return None;
    }
    let u16_at = |at: usize| Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?));
    let u32_at = |at: usize| Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    let u64_at = |at: usize| Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?));
    let phoff = usize::try_from(u64_at(0x20)?).ok()?;
    let phentsize = usize::from(u16_at(0x36)?);
    let phnum = usize::from(u16_at(0x38)?);
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32_at(phoff + i * phentsize)? == PT_INTERP {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(header: &[u8], index: usize) -> u32 {
        let at = 6 + index * 8;
        u32::from_str_radix(std::str::from_utf8(&header[at..at + 8]).unwrap(), 16).unwrap()
    }

    #[test]
    fn cpio_entries_are_newc_headers_padded_to_four_bytes() {
        let archive = cpio(&[
            Entry::Dir("bin".into()),
            Entry::File {
                path: "init".into(),
                mode: 0o755,
                data: b"abcde".to_vec(),
            },
            Entry::CharDev {
                path: "dev/console".into(),
                major: 5,
                minor: 1,
            },
        ]);
        assert_eq!(archive.len() % 4, 0);
        // bin: 110-byte header + "bin\0" = 114, padded to 116.
        assert_eq!(&archive[..6], b"070701");
        assert_eq!(field(&archive, 1), 0o040755);
        assert_eq!(&archive[110..114], b"bin\0");
        let init = &archive[116..];
        assert_eq!(field(init, 1), 0o100755);
        assert_eq!(field(init, 6), 5);
        assert_eq!(field(init, 11), 5); // "init\0"
                                        // header 110 + name 5 = 115 -> 116; data 5 -> 8.
        assert_eq!(&init[116..121], b"abcde");
        let console = &init[124..];
        assert_eq!(field(console, 1), 0o020600);
        assert_eq!((field(console, 9), field(console, 10)), (5, 1));
        let text = String::from_utf8_lossy(&archive);
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!\0"));
    }

    #[test]
    fn init_loads_modules_in_order_then_runs_the_job_in_the_chroot() {
        let init = init_script(
            &["/mods/a.ko".into(), "/mods/b.ko.xz".into()],
            "/tmp/kmatrix/job.sh",
        );
        let a = init.find("insmod /mods/a.ko ").unwrap();
        let b = init.find("insmod /mods/b.ko.xz ").unwrap();
        let mount = init.find("mount -t 9p").unwrap();
        assert!(a < b && b < mount);
        assert!(init.contains("exec /bin/bash /tmp/kmatrix/job.sh"));
        assert!(init.contains("echo $? > /host/tmp/kmatrix/job.status"));
        assert!(init.find(START_MARKER).unwrap() < init.find(END_MARKER).unwrap());
    }

    fn elf(program_types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64 + 56 * program_types.len()];
        bytes[..6].copy_from_slice(b"\x7fELF\x02\x01");
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(program_types.len() as u16).to_le_bytes());
        for (i, t) in program_types.iter().enumerate() {
            bytes[64 + 56 * i..68 + 56 * i].copy_from_slice(&t.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn a_program_interpreter_header_means_dynamic() {
        assert_eq!(elf_is_dynamic(&elf(&[6, 3, 1])), Some(true));
        assert_eq!(elf_is_dynamic(&elf(&[1, 1, 4])), Some(false));
        assert_eq!(elf_is_dynamic(b"#!/bin/sh\n"), None);
        let mut truncated = elf(&[1, 3]);
        truncated.truncate(100);
        assert_eq!(elf_is_dynamic(&truncated), None);
    }
}
