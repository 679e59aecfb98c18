//! The `skb` builtin of `cgroup_skb:ingress` / `cgroup_skb:egress` probes: the fields of
//! the kernel's `struct __sk_buff` (the context of `BPF_PROG_TYPE_CGROUP_SKB` programs,
//! `include/uapi/linux/bpf.h`) that such a program may read, with their offsets and sizes.
//!
//! The verifier only accepts direct loads from the context pointer at these exact
//! offsets (it rewrites them into reads of the real `struct sk_buff`), so the code
//! generator loads each field with one `ldx` of the given size. Fields the kernel keeps
//! in network byte order as 16-bit values (`protocol`, and `remote_port`, which the
//! kernel also shifts into the upper half of the word) are converted to host order, so `skb->protocol == 0x0800` (IPv4) and `skb->remote_port == 53` read
//! naturally; `remote_ip4` / `local_ip4` stay in network order, as `ntop()` expects.
//!
//! Also here: what a `cgroup_skb` program cannot do because the kernel does not give
//! that program type the helper (`cg_skb_func_proto` in `net/core/filter.c`): stacks
//! (`bpf_get_stackid`) and `signal()` (`bpf_send_signal`).

/// One readable `struct __sk_buff` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SkbField {
    pub name: &'static str,
    /// Byte offset in `struct __sk_buff`.
    pub offset: u16,
    /// Load size in bytes (4 or 8).
    pub size: u8,
    /// A big-endian 16-bit value: byte-swap it to host order.
    pub be16: bool,
    /// The 16-bit value is in the upper half of the loaded 32 bits (the kernel's
    /// rewrite of `remote_port` shifts the port left by 16 on little-endian machines).
    pub high16: bool,
}

const fn f(name: &'static str, offset: u16, size: u8, be16: bool) -> SkbField {
    SkbField {
        name,
        offset,
        size,
        be16,
        high16: false,
    }
}

/// The readable fields, in `struct __sk_buff` order.
pub const SKB_FIELDS: &[SkbField] = &[
    f("len", 0, 4, false),
    f("pkt_type", 4, 4, false),
    f("mark", 8, 4, false),
    f("queue_mapping", 12, 4, false),
    f("protocol", 16, 4, true),
    f("vlan_present", 20, 4, false),
    f("vlan_tci", 24, 4, false),
    f("vlan_proto", 28, 4, false),
    f("priority", 32, 4, false),
    f("ingress_ifindex", 36, 4, false),
    f("ifindex", 40, 4, false),
    f("tc_index", 44, 4, false),
    f("hash", 68, 4, false),
    f("napi_id", 84, 4, false),
    f("family", 88, 4, false),
    f("remote_ip4", 92, 4, false),
    f("local_ip4", 96, 4, false),
    SkbField {
        name: "remote_port",
        offset: 132,
        size: 4,
        be16: true,
        high16: cfg!(target_endian = "little"),
    },
    f("local_port", 136, 4, false),
    f("tstamp", 152, 8, false),
    f("gso_segs", 164, 4, false),
    f("gso_size", 176, 4, false),
];

/// The field called `name`.
pub fn skb_field(name: &str) -> Option<&'static SkbField> {
    SKB_FIELDS.iter().find(|f| f.name == name)
}

/// The names of the readable fields, comma-separated (for error messages).
pub fn skb_field_names() -> String {
    SKB_FIELDS
        .iter()
        .map(|f| f.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout() {
        assert_eq!(skb_field("len").unwrap().offset, 0);
        assert_eq!(skb_field("protocol").unwrap().offset, 16);
        assert!(skb_field("protocol").unwrap().be16);
        assert_eq!(skb_field("remote_port").unwrap().offset, 132);
        assert_eq!(skb_field("local_port").unwrap().offset, 136);
        assert!(skb_field("data").is_none());
        for f in SKB_FIELDS {
            assert_eq!(f.offset % u16::from(f.size), 0, "{}", f.name);
        }
    }

    fn error_of(src: &str) -> String {
        let d = crate::check(src, &crate::NoEnv).unwrap_err();
        d.render("t.bt", src)
    }

    #[test]
    fn analysis() {
        let (_, a) = crate::check(
            "cgroup_skb:egress { @bytes = sum(skb->len); @p[skb->protocol, skb->remote_port] = count(); }",
            &crate::NoEnv,
        )
        .unwrap();
        assert_eq!(a.maps.len(), 2);
        let e = error_of("tracepoint:sched:sched_switch { @ = sum(skb->len); }");
        assert!(
            e.contains("t.bt:1:41") && e.contains("only be used with 'cgroup_skb'"),
            "{e}"
        );
        let e = error_of("cgroup_skb:ingress { @ = sum(skb->data); }");
        assert!(
            e.contains("no readable field 'data'") && e.contains("len, pkt_type"),
            "{e}"
        );
        let e = error_of("cgroup_skb:ingress { @[kstack] = count(); }");
        assert!(
            e.contains("t.bt:1:24") && e.contains("bpf_get_stackid"),
            "{e}"
        );
        let e = error_of("cgroup_skb:ingress { @[ustack(3)] = count(); }");
        assert!(e.contains("bpf_get_stackid"), "{e}");
        let e = error_of("cgroup_skb:egress { signal(9); }");
        assert!(
            e.contains("t.bt:1:21") && e.contains("bpf_send_signal"),
            "{e}"
        );
        let e = error_of("cgroup_skb:egress { @ = skb; }");
        assert!(e.contains("skb->len"), "{e}");
    }
}
