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

/// The address of a kernel symbol of any kind (functions and data, e.g. `avenrun`),
/// from `/proc/kallsyms`, for `kaddr()`. `None` if absent or hidden (kptr_restrict).
pub fn kernel_address(name: &str) -> Option<u64> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split_whitespace();
        let addr = u64::from_str_radix(parts.next()?, 16).ok()?;
        let _kind = parts.next()?;
        (parts.next()? == name && addr != 0).then_some(addr)
    })
}

/// Whether `/proc/kallsyms` lists a function of this name; `None` when it cannot say
/// (unreadable, or addresses hidden by kptr_restrict).
pub fn kernel_function_listed(name: &str) -> Option<bool> {
    let text = std::fs::read_to_string("/proc/kallsyms").ok()?;
    function_listed(&text, name)
}

/// [`kernel_function_listed`] on the text of `/proc/kallsyms`.
fn function_listed(kallsyms: &str, name: &str) -> Option<bool> {
    let mut visible = false;
    for line in kallsyms.lines() {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(kind), Some(sym)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        visible |= addr.bytes().any(|b| b != b'0');
        if sym == name && matches!(kind, "t" | "T") {
            return Some(true);
        }
    }
    visible.then_some(false)
}

/// The kernel symbol at or below `addr` and the offset from it, if any.
pub fn kernel_function(addr: u64) -> Option<(String, u64)> {
    let syms = kallsyms();
    match syms.partition_point(|(a, _)| *a <= addr) {
        0 => None,
        i => Some((syms[i - 1].1.clone(), addr - syms[i - 1].0)),
    }
}

/// Whether `/proc/kallsyms` lacks data symbols (a kernel without `CONFIG_KALLSYMS_ALL`):
/// then `kaddr()` of a variable cannot be resolved on this node.
pub fn kernel_lists_functions_only() -> bool {
    let Ok(text) = std::fs::read_to_string("/proc/kallsyms") else {
        return false;
    };
    // Such kernels still list a few dozen section markers (`__start_rodata`, ...).
    let data = text
        .lines()
        .filter(|l| matches!(l.split_whitespace().nth(1), Some("d" | "D" | "b" | "B")))
        .count();
    data < 1000
}

#[cfg(test)]
mod tests {
    #[test]
    fn functions_listed_in_kallsyms() {
        let text =
            "ffffffff81000000 T _stext\nffffffff81234560 t vfs_read\nffffffff82000000 D avenrun\n";
        assert_eq!(super::function_listed(text, "vfs_read"), Some(true));
        assert_eq!(super::function_listed(text, "avenrun"), Some(false));
        assert_eq!(super::function_listed(text, "zzzzz"), Some(false));
        let hidden = "0000000000000000 T _stext\n0000000000000000 t vfs_read\n";
        assert_eq!(super::function_listed(hidden, "zzzzz"), None);
    }
}
