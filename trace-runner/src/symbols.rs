//! Symbolization of kernel addresses from `/proc/kallsyms` (loaded once, on first use).

use std::sync::OnceLock;

static KALLSYMS: OnceLock<Vec<(u64, String)>> = OnceLock::new();

fn kallsyms() -> &'static [(u64, String)] {
    KALLSYMS.get_or_init(|| {
        let text = std::fs::read_to_string("/proc/kallsyms").unwrap_or_default();
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W"))
                    .then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable();
        syms
    })
}

/// The kernel function containing `addr`, or the address in hex when unknown.
pub fn kernel_symbol(addr: u64) -> String {
    if addr == 0 {
        return "0".to_string();
    }
    let syms = kallsyms();
    match syms.partition_point(|(a, _)| *a <= addr) {
        0 => format!("0x{addr:x}"),
        i => syms[i - 1].1.clone(),
    }
}
