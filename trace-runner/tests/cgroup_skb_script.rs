//! `cgroup_skb:ingress` / `cgroup_skb:egress` probes in scripts, attached to the
//! target cgroup (`--cgroup PATH`): a process in a test cgroup sends N UDP datagrams
//! of a known size to itself on loopback, and `sum(skb->len)` must be exactly
//! N × (20 + 8 + payload) on both sides (the IPv4 and UDP headers are counted), with the
//! other `struct __sk_buff` fields (protocol, ports, family) read correctly. Also the
//! errors: no cgroup to attach to, and helpers cgroup_skb programs do not have.

mod common;

use std::process::Command;

const SCRIPT: &str = r#"
BEGIN { printf("ready\n"); }
cgroup_skb:egress {
  @egress = sum(skb->len);
  @packets = count();
  @proto[skb->protocol, skb->family] = count();
  @port[skb->remote_port] = count();
  @comm[comm] = count();
}
cgroup_skb:ingress {
  @ingress = sum(skb->len);
  @lport[skb->local_port] = count();
}
"#;

#[test]
fn udp_bytes_on_loopback_are_counted_exactly() {
    if !common::require_bpf() {
        return;
    }
    const N: usize = 10;
    const PAYLOAD: usize = 100;
    let cg = common::TestCgroup::new("skb");
    let trace = common::Trace::start(&["--cgroup", cg.path.to_str().unwrap(), "-e", SCRIPT]);
    let out = cg
        .command(&format!(
            "/usr/bin/python3 -c 'import socket\nr = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nr.bind((\"127.0.0.1\", 0))\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.connect(r.getsockname())\nfor i in range({N}):\n  s.send(b\"x\" * {PAYLOAD})\n  r.recv(4096)\nprint(r.getsockname()[1])'"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let (rest, code) = trace.stop(libc::SIGINT);
    assert_eq!(code, Some(0), "{rest}");
    let bytes = N * (20 + 8 + PAYLOAD);
    assert!(rest.contains(&format!("@egress: {bytes}\n")), "{rest}");
    assert!(rest.contains(&format!("@ingress: {bytes}\n")), "{rest}");
    assert!(rest.contains(&format!("@packets: {N}\n")), "{rest}");
    // ETH_P_IP in host order, AF_INET; the sender's socket is connected, so its
    // remote port is the receiver's (in host order, as is the receiver's local port).
    assert!(rest.contains(&format!("@proto[2048, 2]: {N}\n")), "{rest}");
    assert!(rest.contains(&format!("@port[{port}]: {N}\n")), "{rest}");
    assert!(rest.contains(&format!("@lport[{port}]: {N}\n")), "{rest}");
    assert!(rest.contains(&format!("@comm[python3]: {N}\n")), "{rest}");
}

#[test]
fn cgroup_skb_errors() {
    let runner = common::runner();
    // Stacks need bpf_get_stackid, which cgroup_skb programs do not get: a located error.
    let out = Command::new(runner)
        .args(["check", "-e", "cgroup_skb:egress { @[kstack] = count(); }"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.starts_with("stdin:1:23: error: kstack is not available in cgroup_skb probes"),
        "{err}"
    );
    // skb outside cgroup_skb, and an unknown field.
    let out = Command::new(runner)
        .args([
            "check",
            "-e",
            "tracepoint:sched:sched_switch { @ = sum(skb->len); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("only be used with 'cgroup_skb' probes"),
        "{err}"
    );
    let out = Command::new(runner)
        .args(["check", "-e", "cgroup_skb:egress { @ = sum(skb->lenn); }"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stdin:1:29: error: struct __sk_buff has no readable field 'lenn'"),
        "{err}"
    );
    if !common::require_bpf() {
        return;
    }
    // Every readable field loads through the verifier (exact offsets and sizes).
    let fields = [
        "len",
        "pkt_type",
        "mark",
        "queue_mapping",
        "protocol",
        "vlan_present",
        "vlan_tci",
        "vlan_proto",
        "priority",
        "ingress_ifindex",
        "ifindex",
        "tc_index",
        "hash",
        "napi_id",
        "family",
        "remote_ip4",
        "local_ip4",
        "remote_port",
        "local_port",
        "tstamp",
        "gso_segs",
        "gso_size",
    ];
    let body: String = fields
        .iter()
        .map(|f| format!("@{f} = sum(skb->{f}); "))
        .collect();
    for dir in ["ingress", "egress"] {
        let out = Command::new(runner)
            .args([
                "check",
                "--load",
                "-e",
                &format!("cgroup_skb:{dir} {{ {body} }}"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // No cgroup to attach to.
    let out = Command::new(runner)
        .args([
            "run",
            "--deadline",
            "1s",
            "-e",
            "cgroup_skb:egress { @ = sum(skb->len); }",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("cgroup_skb:egress needs a cgroup: pass --cgroup PATH or a pod target"),
        "{err}"
    );
}
