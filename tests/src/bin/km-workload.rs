//! The kernel matrix's workload: `km-workload N` calls getppid(2) N times (and nothing
//! else calls it in this process), then prints `getppid=PPID calls=N`, so a trace of
//! `__x64_sys_getppid` filtered on `comm == "km-workload"` must count exactly N, with
//! PPID as every return value. `km-workload N fsync` calls fsync(2) N times instead (on
//! a fresh file under /tmp), so `vfs_fsync` and `vfs_fsync_range` run exactly N times.
//! `km-workload N read` reads 100 bytes from `/dev/zero` N times (`vfs_read` on a file
//! named `zero`, count 100, returning 100), and `km-workload N stat` stats `/etc/passwd`
//! N times (on the guest's 9p root: the 9p module's getattr runs N times).

fn main() {
    let calls: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!("usage: km-workload CALLS");
            std::process::exit(2);
        }
    };
    let mode = std::env::args().nth(2);
    if mode.as_deref() == Some("read") {
        use std::io::Read;
        let mut zero = std::fs::File::open("/dev/zero").unwrap_or_else(|e| {
            eprintln!("km-workload: /dev/zero: {e}");
            std::process::exit(1);
        });
        let mut buf = [0u8; 100];
        for _ in 0..calls {
            if let Err(e) = zero.read_exact(&mut buf) {
                eprintln!("km-workload: read: {e}");
                std::process::exit(1);
            }
        }
        println!("read calls={calls}");
        return;
    }
    if mode.as_deref() == Some("stat") {
        for _ in 0..calls {
            if let Err(e) = std::fs::metadata("/etc/passwd") {
                eprintln!("km-workload: stat /etc/passwd: {e}");
                std::process::exit(1);
            }
        }
        println!("stat calls={calls}");
        return;
    }
    if mode.as_deref() == Some("fsync") {
        let path = format!("/tmp/km-workload-{}", std::process::id());
        let file = std::fs::File::create(&path).unwrap_or_else(|e| {
            eprintln!("km-workload: {path}: {e}");
            std::process::exit(1);
        });
        for _ in 0..calls {
            if let Err(e) = file.sync_all() {
                eprintln!("km-workload: fsync: {e}");
                std::process::exit(1);
            }
        }
        let _ = std::fs::remove_file(&path);
        println!("fsync calls={calls}");
        return;
    }
    let mut first = None;
    for _ in 0..calls {
        // SAFETY: getppid takes no arguments and cannot fail.
        let ppid = unsafe { libc::syscall(libc::SYS_getppid) };
        if *first.get_or_insert(ppid) != ppid {
            eprintln!("km-workload: getppid returned {ppid} after {first:?}");
            std::process::exit(1);
        }
    }
    println!("getppid={} calls={calls}", first.unwrap_or(-1));
}
