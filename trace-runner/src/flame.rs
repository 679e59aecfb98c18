//! Folded stacks and flame graphs of a trace's maps (`--format folded`,
//! `--flamegraph FILE.svg`).
//!
//! A map folds when its value is a count, a sum or an integer and it has keys: each entry
//! becomes one line `frame;frame;...;frame COUNT`, outermost frame first, the format
//! `flamegraph.pl` and inferno read. The frames of an entry are, in order: its key parts
//! that are not stacks (e.g. `comm`, one frame each), then its user stacks, then its
//! kernel stacks (user code calls into the kernel, whatever the key order), each stack
//! outermost first. Offsets are dropped (`do_syscall_64+113` → `do_syscall_64`), unknown
//! frames become `[unknown]`, and `;` in a name becomes `:`. When several maps fold, every
//! line starts with the map's name (`@name`) as its root frame.
//!
//! `--format folded` prints the folded maps on stdout at exit and every other map, in
//! bpftrace's text, on stderr (so stdout can be piped straight into a flame graph tool).
//! `--flamegraph FILE.svg` writes an SVG flame graph of the maps that have stacks (or of
//! every folded map when none has), drawn here: nested rectangles, one per frame, widths
//! proportional to the samples, children sorted by name as `flamegraph.pl` does, each with
//! a `<title>` tooltip giving its sample count. User frames are drawn in warm colours,
//! kernel frames in blue-green, other key parts in green.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use trace_lang::types::{MapValue, Type};

use crate::abi::UserMap;
use crate::output::stack::folded_frame_name;
use crate::output::{EntryValue, MapDump, Val};

/// Where a frame comes from (it picks the colour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FrameKind {
    /// A key part that is not a stack (`comm`, a pid, the map's name).
    Key,
    User,
    Kernel,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Frame {
    pub name: String,
    pub kind: FrameKind,
}

/// One folded map: its name and its stacks with their counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folded {
    pub name: String,
    pub has_stacks: bool,
    pub stacks: Vec<(Vec<Frame>, u64)>,
}

fn val_text(v: &Val) -> String {
    match v {
        Val::Int(i) => i.to_string(),
        Val::Uint(u) => u.to_string(),
        Val::Str(s) | Val::Sym(s) => {
            let end = s.find('\0').unwrap_or(s.len());
            s[..end].to_string()
        }
        Val::Stack(st) => st.render(crate::output::stack::VALUE_INDENT),
        Val::Tuple(items) => items.iter().map(val_text).collect::<Vec<_>>().join(", "),
        Val::Array(items) => format!(
            "[{}]",
            items.iter().map(val_text).collect::<Vec<_>>().join(",")
        ),
        Val::Struct(fields) => format!(
            "{{ {} }}",
            fields
                .iter()
                .map(|(n, v)| format!(".{n} = {}", val_text(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The folded form of one map, if it folds (see the module doc).
fn fold_map(map: &UserMap, dump: &MapDump) -> Option<Folded> {
    let scalar = matches!(map.value, MapValue::Count | MapValue::Sum)
        || matches!(&map.value, MapValue::Value(t) if t.is_int());
    if !scalar || map.keys.is_empty() {
        return None;
    }
    // Entries that differ only in offsets fold to the same frames: add them up.
    let mut stacks: BTreeMap<Vec<Frame>, u64> = BTreeMap::new();
    for entry in &dump.entries {
        let count = match &entry.value {
            EntryValue::Scalar(Val::Uint(u)) => *u,
            EntryValue::Scalar(Val::Int(i)) if *i >= 0 => *i as u64,
            _ => continue,
        };
        if count == 0 {
            continue;
        }
        let (mut keys, mut user, mut kernel) = (Vec::new(), Vec::new(), Vec::new());
        for (ty, val) in map.keys.iter().zip(&entry.key) {
            match ty {
                Type::Stack { user: u, .. } => {
                    let kind = if *u {
                        FrameKind::User
                    } else {
                        FrameKind::Kernel
                    };
                    let folded = match val {
                        Val::Stack(st) => st.folded(),
                        _ => Vec::new(),
                    };
                    let frames = folded.into_iter().map(|name| Frame { name, kind });
                    if *u {
                        user.extend(frames);
                    } else {
                        kernel.extend(frames);
                    }
                }
                _ => keys.push(Frame {
                    name: folded_frame_name(&val_text(val)),
                    kind: FrameKind::Key,
                }),
            }
        }
        keys.extend(user);
        keys.extend(kernel);
        if keys.is_empty() {
            keys.push(Frame {
                name: "[unknown]".into(),
                kind: FrameKind::Key,
            });
        }
        *stacks.entry(keys).or_default() += count;
    }
    Some(Folded {
        name: dump.name.clone(),
        has_stacks: map.keys.iter().any(|t| matches!(t, Type::Stack { .. })),
        stacks: stacks.into_iter().collect(),
    })
}

/// Maps with their definitions, split into those that fold and the others, in the order
/// given.
pub fn partition<'a>(
    maps: impl IntoIterator<Item = (&'a UserMap, MapDump)>,
) -> (Vec<Folded>, Vec<MapDump>) {
    let (mut folded, mut other) = (Vec::new(), Vec::new());
    for (map, dump) in maps {
        match fold_map(map, &dump) {
            Some(f) => folded.push(f),
            None => other.push(dump),
        }
    }
    (folded, other)
}

/// Every map read (`(index into user_maps, contents)`), folded or not, in name order.
fn read_all(user_maps: &[UserMap], mut read: Vec<(usize, MapDump)>) -> (Vec<Folded>, Vec<MapDump>) {
    read.sort_by(|a, b| a.1.name.cmp(&b.1.name));
    partition(
        read.into_iter()
            .filter_map(|(i, dump)| Some((user_maps.get(i)?, dump))),
    )
}

/// The stacks of several folded maps as one list, each prefixed with its map's name
/// when there are several.
fn merged(maps: &[Folded]) -> Vec<(Vec<Frame>, u64)> {
    let prefix = maps.len() > 1;
    let mut out = Vec::new();
    for m in maps {
        for (frames, n) in &m.stacks {
            let mut f = Vec::with_capacity(frames.len() + 1);
            if prefix {
                f.push(Frame {
                    name: format!("@{}", m.name),
                    kind: FrameKind::Key,
                });
            }
            f.extend(frames.iter().cloned());
            out.push((f, *n));
        }
    }
    out
}

/// Folded-stack text: `a;b;c 12` lines.
pub fn folded_text(maps: &[Folded]) -> String {
    let mut out = String::new();
    for (frames, n) in merged(maps) {
        let names: Vec<&str> = frames.iter().map(|f| f.name.as_str()).collect();
        let _ = writeln!(out, "{} {n}", names.join(";"));
    }
    out
}

/// `--flamegraph FILE.svg`: write the flame graph of the stack maps among the maps read
/// (`(index into user_maps, contents)`); returns the number of samples drawn.
pub fn write_flamegraph(
    user_maps: &[UserMap],
    read: Vec<(usize, MapDump)>,
    path: &Path,
    title: &str,
) -> std::io::Result<u64> {
    let (folded, _) = read_all(user_maps, read);
    let with_stacks: Vec<Folded> = folded.iter().filter(|m| m.has_stacks).cloned().collect();
    let chosen = if with_stacks.is_empty() {
        folded
    } else {
        with_stacks
    };
    let stacks = merged(&chosen);
    let total = stacks.iter().map(|(_, n)| n).sum();
    std::fs::write(path, svg(&stacks, title))?;
    Ok(total)
}

/// A node of the merged call tree.
#[derive(Default)]
struct Node {
    kind: Option<FrameKind>,
    samples: u64,
    children: BTreeMap<String, Node>,
}

impl Node {
    fn depth(&self) -> usize {
        self.children
            .values()
            .map(|c| 1 + c.depth())
            .max()
            .unwrap_or(0)
    }
}

const WIDTH: f64 = 1200.0;
const PAD: f64 = 10.0;
const FRAME_H: f64 = 16.0;
const FONT_SIZE: f64 = 12.0;
/// Average glyph width of the font, as a fraction of its size (flamegraph.pl's 0.59).
const FONT_WIDTH: f64 = 0.59;
const TOP: f64 = 36.0;
/// Frames narrower than this many pixels are not drawn.
const MIN_WIDTH: f64 = 0.1;

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A stable pseudo-random number in [0, 1) for a name (FNV-1a).
fn hash01(name: &str, salt: u64) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ salt;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h >> 11) as f64 / (1u64 << 53) as f64
}

fn color(name: &str, kind: FrameKind) -> String {
    let (a, b, c) = (hash01(name, 1), hash01(name, 2), hash01(name, 3));
    let (r, g, bl) = match kind {
        // flamegraph.pl's "hot" palette.
        FrameKind::User => (205.0 + 50.0 * c, 230.0 * a, 55.0 * b),
        FrameKind::Kernel => (50.0 + 60.0 * a, 165.0 + 55.0 * b, 165.0 + 55.0 * b),
        FrameKind::Key => (60.0 + 50.0 * a, 180.0 + 60.0 * b, 60.0 + 50.0 * c),
    };
    format!("rgb({},{},{})", r as u8, g as u8, bl as u8)
}

/// The SVG document of a flame graph of `stacks`.
pub fn svg(stacks: &[(Vec<Frame>, u64)], title: &str) -> String {
    let mut root = Node::default();
    for (frames, n) in stacks {
        root.samples += n;
        let mut node = &mut root;
        for f in frames {
            node = node.children.entry(f.name.clone()).or_default();
            node.kind.get_or_insert(f.kind);
            node.samples += n;
        }
    }
    let depth = root.depth() + 1;
    let height = TOP + depth as f64 * FRAME_H + 2.0 * PAD + FRAME_H;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<?xml version="1.0" standalone="no"?>
<svg version="1.1" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">
<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="rgb(248,248,248)"/>
<text x="{}" y="24" font-size="17" font-family="Verdana, sans-serif" text-anchor="middle">{}</text>
<text x="{PAD}" y="{}" font-size="{FONT_SIZE}" font-family="Verdana, sans-serif" fill="rgb(110,110,110)">{} samples; warm: user frames, blue-green: kernel frames, green: keys</text>"#,
        WIDTH / 2.0,
        escape(title),
        height - PAD / 2.0,
        root.samples,
    );
    if root.samples > 0 {
        let scale = (WIDTH - 2.0 * PAD) / root.samples as f64;
        let bottom = height - 2.0 * PAD - FRAME_H;
        out.push_str("<g font-family=\"Verdana, sans-serif\" font-size=\"12\">\n");
        draw(&mut out, "all", &root, 0, PAD, bottom, scale, root.samples);
        out.push_str("</g>\n");
    }
    out.push_str("</svg>\n");
    out
}

#[allow(clippy::too_many_arguments)]
fn draw(
    out: &mut String,
    name: &str,
    node: &Node,
    level: usize,
    x: f64,
    bottom: f64,
    scale: f64,
    total: u64,
) {
    let w = node.samples as f64 * scale;
    if w < MIN_WIDTH {
        return;
    }
    let y = bottom - level as f64 * FRAME_H;
    let kind = node.kind.unwrap_or(FrameKind::Key);
    let fill = if level == 0 {
        "rgb(200,200,200)".to_string()
    } else {
        color(name, kind)
    };
    let pct = 100.0 * node.samples as f64 / total as f64;
    let fits = ((w - 6.0) / (FONT_SIZE * FONT_WIDTH)).floor().max(0.0) as usize;
    let label = if fits < 3 {
        String::new()
    } else if name.chars().count() <= fits {
        name.to_string()
    } else {
        let mut s: String = name.chars().take(fits - 2).collect();
        s.push_str("..");
        s
    };
    let _ = writeln!(
        out,
        "<g><title>{} ({} samples, {pct:.2}%)</title><rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{fill}\" rx=\"2\" ry=\"2\"/><text x=\"{:.1}\" y=\"{:.1}\">{}</text></g>",
        escape(name),
        node.samples,
        w.max(0.1),
        FRAME_H - 1.0,
        x + 3.0,
        y + FRAME_H - 4.5,
        escape(&label),
    );
    let mut cx = x;
    for (child_name, child) in &node.children {
        draw(out, child_name, child, level + 1, cx, bottom, scale, total);
        cx += child.samples as f64 * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Entry, Stack};
    use trace_lang::types::StackMode;

    /// A stack of `(function, offset)` frames, innermost first.
    fn frames(kernel: bool, fs: &[(&str, u64)]) -> Val {
        Val::Stack(Stack {
            mode: StackMode::Bpftrace,
            frames: fs
                .iter()
                .enumerate()
                .map(|(i, (n, off))| {
                    crate::output::Frame::in_function(0x1000 * i as u64, n, *off, kernel)
                })
                .collect(),
        })
    }

    fn user_map(keys: Vec<Type>, value: MapValue) -> UserMap {
        UserMap {
            name: String::new(),
            kernel_map: 0,
            keys,
            value,
            per_cpu: false,
            array: false,
        }
    }

    fn stack(user: bool) -> Type {
        Type::Stack {
            user,
            limit: 127,
            mode: StackMode::Bpftrace,
        }
    }

    #[test]
    fn folding() {
        // Key order [kstack, comm, ustack]: keys first, then user, then kernel frames.
        let map = user_map(
            vec![stack(false), Type::Str(16), stack(true)],
            MapValue::Count,
        );
        let dump = MapDump {
            name: String::new(),
            value: MapValue::Count,
            entries: vec![
                Entry {
                    key: vec![
                        frames(true, &[("do_syscall_64", 113), ("entry_SYSCALL_64", 20)]),
                        Val::Str("python3".into()),
                        frames(false, &[("read", 5), ("main", 9)]),
                    ],
                    value: EntryValue::Scalar(Val::Uint(7)),
                },
                Entry {
                    key: vec![frames(true, &[]), Val::Str("sh".into()), frames(false, &[])],
                    value: EntryValue::Scalar(Val::Uint(2)),
                },
            ],
        };
        let f = fold_map(&map, &dump).unwrap();
        assert!(f.has_stacks);
        assert_eq!(
            folded_text(std::slice::from_ref(&f)),
            "python3;main;read;entry_SYSCALL_64;do_syscall_64 7\nsh 2\n"
        );
        // Two maps: each line starts with its map's name.
        let mut g = f.clone();
        g.name = "b".into();
        let text = folded_text(&[f, g]);
        assert!(text.starts_with("@;python3;main;read;"), "{text}");
        assert!(text.contains("\n@b;sh 2\n"), "{text}");
        // hist maps and keyless maps do not fold.
        assert!(fold_map(&user_map(vec![Type::U64], MapValue::Hist), &dump).is_none());
        assert!(fold_map(&user_map(vec![], MapValue::Count), &dump).is_none());
    }

    #[test]
    fn svg_document() {
        let f = |n: &str, kind| Frame {
            name: n.into(),
            kind,
        };
        let stacks = vec![
            (
                vec![f("main", FrameKind::User), f("work<&>", FrameKind::User)],
                30,
            ),
            (
                vec![f("main", FrameKind::User), f("sys_read", FrameKind::Kernel)],
                10,
            ),
        ];
        let s = svg(&stacks, "Flame \"Graph\"");
        assert!(s.contains("<svg "), "{s}");
        assert!(s.trim_end().ends_with("</svg>"));
        assert!(s.contains("Flame &quot;Graph&quot;"));
        assert!(
            s.contains("<title>work&lt;&amp;&gt; (30 samples, 75.00%)</title>"),
            "{s}"
        );
        assert!(
            s.contains("<title>main (40 samples, 100.00%)</title>"),
            "{s}"
        );
        // all, main, work, sys_read + the background.
        assert_eq!(s.matches("<rect").count(), 5);
        assert!(svg(&[], "t").contains("0 samples"));
    }
}
