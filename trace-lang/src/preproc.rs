//! The one preprocessor condition scripts rely on: bpftrace defines `BPFTRACE_HAVE_BTF`
//! when the kernel has BTF, and published tools (runqlen.bt, dcsnoop.bt) guard their
//! fallback struct definitions with `#ifndef BPFTRACE_HAVE_BTF`. Kernel types always come
//! from BTF here, so such blocks are inactive. Other conditions are not evaluated: their
//! lines stay, as before. Inactive lines are blanked (newlines kept), so spans into the
//! masked text are spans into the script.

const MACRO: &str = "BPFTRACE_HAVE_BTF";

/// One open `#if...`: whether it tests [`MACRO`], and whether its current branch is
/// active.
#[derive(Clone, Copy)]
enum Cond {
    Known(bool),
    Unknown,
}

/// The script with inactive lines blanked, or `None` when nothing is inactive.
pub fn mask_inactive(src: &str) -> Option<String> {
    if !src.contains(MACRO) {
        return None;
    }
    let mut out = String::with_capacity(src.len());
    let mut stack: Vec<Cond> = Vec::new();
    let mut changed = false;
    for line in src.split_inclusive('\n') {
        let active = stack.iter().all(|c| !matches!(c, Cond::Known(false)));
        let text = line.trim_start();
        let directive = text.strip_prefix('#').map(|d| d.trim_start()).map(|d| {
            let word_end = d
                .find(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                .unwrap_or(d.len());
            (&d[..word_end], d[word_end..].trim())
        });
        let mut blank = !active;
        match directive {
            Some(("ifdef", arg)) if arg == MACRO => stack.push(Cond::Known(true)),
            Some(("ifndef", arg)) if arg == MACRO => stack.push(Cond::Known(false)),
            Some(("if" | "ifdef" | "ifndef", _)) => stack.push(Cond::Unknown),
            Some(("else", _)) => {
                if let Some(Cond::Known(b)) = stack.last_mut() {
                    *b = !*b;
                    blank = true;
                }
            }
            Some(("endif", _)) => {
                if let Some(Cond::Known(_)) = stack.pop() {
                    blank = true;
                }
            }
            _ => {}
        }
        if blank {
            changed = true;
            out.extend(line.chars().map(|c| if c == '\n' { '\n' } else { ' ' }));
        } else {
            out.push_str(line);
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btf_guarded_blocks_are_blanked() {
        let src = "#ifndef BPFTRACE_HAVE_BTF\nstruct a { int x; };\n#else\nstruct b { int y; };\n#endif\nBEGIN {}\n";
        let out = mask_inactive(src).unwrap();
        assert_eq!(out.len(), src.len());
        assert!(!out.contains("struct a"));
        assert!(out.contains("struct b { int y; };"));
        assert!(out.contains("BEGIN {}"));
        assert_eq!(out.lines().count(), src.lines().count());
        // Other conditions are left alone; nesting is followed.
        let src =
            "#ifdef BPFTRACE_HAVE_BTF\n#if X\nkeep1\n#else\nkeep2\n#endif\n#else\ngone\n#endif\n";
        let out = mask_inactive(src).unwrap();
        assert!(out.contains("#if X") && out.contains("keep1") && out.contains("keep2"));
        assert!(!out.contains("gone"));
        assert_eq!(mask_inactive("#include <x.h>\nBEGIN {}"), None);
    }
}
