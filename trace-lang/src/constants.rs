//! Named kernel constants that scripts can use without `#include`: errno values,
//! `AF_*`/`PF_*`, `SOCK_*`, `DT_*`, `O_*` open flags, signal numbers (`SIG*`), ICMP and
//! ICMPv6 types, `TCP_*` socket states, `IPPROTO_*`, `ETH_P_*`, `TASK_*` states.
//!
//! bpftrace takes these from C headers, which nodes do not have; here they are built in.
//! Source: the Linux UAPI headers (`asm-generic/errno-base.h`, `asm-generic/errno.h`,
//! `linux/socket.h`, `linux/net.h`, `dirent.h`, `asm-generic/fcntl.h`, `asm/signal.h`
//! of x86-64, `linux/icmp.h`, `linux/icmpv6.h`, `net/tcp_states.h`, `linux/in.h`,
//! `linux/if_ether.h`, `linux/sched.h`), whose values are part of the kernel ABI and do
//! not change. Where an architecture differs (open flags, signals) the values are
//! x86-64's and arm64's, which agree for every name here. A script's own `#define` or
//! `enum` of the same name takes precedence (sema looks those up first).

/// The value of a built-in constant, or `None` when `name` is not one.
pub fn lookup(name: &str) -> Option<i64> {
    if let Some(sig) = name.strip_prefix("SIG") {
        if let Some(n) = signal_number(sig) {
            return Some(n);
        }
    }
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// The number of a signal name without its `SIG` prefix (x86-64 numbering).
pub fn signal_number(name: &str) -> Option<i64> {
    const NAMES: [&str; 31] = [
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
        "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
        "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
    ];
    match name {
        "IOT" => Some(6),
        "POLL" => Some(29),
        _ => NAMES.iter().position(|n| *n == name).map(|i| i as i64 + 1),
    }
}

/// Every constant but the signals (see [`signal_number`]).
pub const TABLE: &[(&str, i64)] = &[
    // errno: asm-generic/errno-base.h
    ("EPERM", 1),
    ("ENOENT", 2),
    ("ESRCH", 3),
    ("EINTR", 4),
    ("EIO", 5),
    ("ENXIO", 6),
    ("E2BIG", 7),
    ("ENOEXEC", 8),
    ("EBADF", 9),
    ("ECHILD", 10),
    ("EAGAIN", 11),
    ("EWOULDBLOCK", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EFAULT", 14),
    ("ENOTBLK", 15),
    ("EBUSY", 16),
    ("EEXIST", 17),
    ("EXDEV", 18),
    ("ENODEV", 19),
    ("ENOTDIR", 20),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("ENFILE", 23),
    ("EMFILE", 24),
    ("ENOTTY", 25),
    ("ETXTBSY", 26),
    ("EFBIG", 27),
    ("ENOSPC", 28),
    ("ESPIPE", 29),
    ("EROFS", 30),
    ("EMLINK", 31),
    ("EPIPE", 32),
    ("EDOM", 33),
    ("ERANGE", 34),
    // errno: asm-generic/errno.h
    ("EDEADLK", 35),
    ("EDEADLOCK", 35),
    ("ENAMETOOLONG", 36),
    ("ENOLCK", 37),
    ("ENOSYS", 38),
    ("ENOTEMPTY", 39),
    ("ELOOP", 40),
    ("ENOMSG", 42),
    ("EIDRM", 43),
    ("ECHRNG", 44),
    ("EL2NSYNC", 45),
    ("EL3HLT", 46),
    ("EL3RST", 47),
    ("ELNRNG", 48),
    ("EUNATCH", 49),
    ("ENOCSI", 50),
    ("EL2HLT", 51),
    ("EBADE", 52),
    ("EBADR", 53),
    ("EXFULL", 54),
    ("ENOANO", 55),
    ("EBADRQC", 56),
    ("EBADSLT", 57),
    ("EBFONT", 59),
    ("ENOSTR", 60),
    ("ENODATA", 61),
    ("ETIME", 62),
    ("ENOSR", 63),
    ("ENONET", 64),
    ("ENOPKG", 65),
    ("EREMOTE", 66),
    ("ENOLINK", 67),
    ("EADV", 68),
    ("ESRMNT", 69),
    ("ECOMM", 70),
    ("EPROTO", 71),
    ("EMULTIHOP", 72),
    ("EDOTDOT", 73),
    ("EBADMSG", 74),
    ("EOVERFLOW", 75),
    ("ENOTUNIQ", 76),
    ("EBADFD", 77),
    ("EREMCHG", 78),
    ("ELIBACC", 79),
    ("ELIBBAD", 80),
    ("ELIBSCN", 81),
    ("ELIBMAX", 82),
    ("ELIBEXEC", 83),
    ("EILSEQ", 84),
    ("ERESTART", 85),
    ("ESTRPIPE", 86),
    ("EUSERS", 87),
    ("ENOTSOCK", 88),
    ("EDESTADDRREQ", 89),
    ("EMSGSIZE", 90),
    ("EPROTOTYPE", 91),
    ("ENOPROTOOPT", 92),
    ("EPROTONOSUPPORT", 93),
    ("ESOCKTNOSUPPORT", 94),
    ("EOPNOTSUPP", 95),
    ("ENOTSUP", 95),
    ("EPFNOSUPPORT", 96),
    ("EAFNOSUPPORT", 97),
    ("EADDRINUSE", 98),
    ("EADDRNOTAVAIL", 99),
    ("ENETDOWN", 100),
    ("ENETUNREACH", 101),
    ("ENETRESET", 102),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOBUFS", 105),
    ("EISCONN", 106),
    ("ENOTCONN", 107),
    ("ESHUTDOWN", 108),
    ("ETOOMANYREFS", 109),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTDOWN", 112),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
    ("ESTALE", 116),
    ("EUCLEAN", 117),
    ("ENOTNAM", 118),
    ("ENAVAIL", 119),
    ("EISNAM", 120),
    ("EREMOTEIO", 121),
    ("EDQUOT", 122),
    ("ENOMEDIUM", 123),
    ("EMEDIUMTYPE", 124),
    ("ECANCELED", 125),
    ("ENOKEY", 126),
    ("EKEYEXPIRED", 127),
    ("EKEYREVOKED", 128),
    ("EKEYREJECTED", 129),
    ("EOWNERDEAD", 130),
    ("ENOTRECOVERABLE", 131),
    ("ERFKILL", 132),
    ("EHWPOISON", 133),
    // address families: linux/socket.h
    ("AF_UNSPEC", 0),
    ("AF_UNIX", 1),
    ("AF_LOCAL", 1),
    ("AF_INET", 2),
    ("AF_AX25", 3),
    ("AF_IPX", 4),
    ("AF_APPLETALK", 5),
    ("AF_NETROM", 6),
    ("AF_BRIDGE", 7),
    ("AF_ATMPVC", 8),
    ("AF_X25", 9),
    ("AF_INET6", 10),
    ("AF_ROSE", 11),
    ("AF_DECnet", 12),
    ("AF_NETBEUI", 13),
    ("AF_SECURITY", 14),
    ("AF_KEY", 15),
    ("AF_NETLINK", 16),
    ("AF_ROUTE", 16),
    ("AF_PACKET", 17),
    ("AF_ASH", 18),
    ("AF_ECONET", 19),
    ("AF_ATMSVC", 20),
    ("AF_RDS", 21),
    ("AF_SNA", 22),
    ("AF_IRDA", 23),
    ("AF_PPPOX", 24),
    ("AF_WANPIPE", 25),
    ("AF_LLC", 26),
    ("AF_IB", 27),
    ("AF_MPLS", 28),
    ("AF_CAN", 29),
    ("AF_TIPC", 30),
    ("AF_BLUETOOTH", 31),
    ("AF_IUCV", 32),
    ("AF_RXRPC", 33),
    ("AF_ISDN", 34),
    ("AF_PHONET", 35),
    ("AF_IEEE802154", 36),
    ("AF_CAIF", 37),
    ("AF_ALG", 38),
    ("AF_NFC", 39),
    ("AF_VSOCK", 40),
    ("AF_KCM", 41),
    ("AF_QIPCRTR", 42),
    ("AF_SMC", 43),
    ("AF_XDP", 44),
    ("AF_MCTP", 45),
    ("PF_UNSPEC", 0),
    ("PF_UNIX", 1),
    ("PF_LOCAL", 1),
    ("PF_INET", 2),
    ("PF_INET6", 10),
    ("PF_NETLINK", 16),
    ("PF_PACKET", 17),
    ("PF_VSOCK", 40),
    ("PF_XDP", 44),
    // socket types: linux/net.h
    ("SOCK_STREAM", 1),
    ("SOCK_DGRAM", 2),
    ("SOCK_RAW", 3),
    ("SOCK_RDM", 4),
    ("SOCK_SEQPACKET", 5),
    ("SOCK_DCCP", 6),
    ("SOCK_PACKET", 10),
    ("SOCK_NONBLOCK", 0o4000),
    ("SOCK_CLOEXEC", 0o2000000),
    // directory entry types: dirent.h (d_type)
    ("DT_UNKNOWN", 0),
    ("DT_FIFO", 1),
    ("DT_CHR", 2),
    ("DT_DIR", 4),
    ("DT_BLK", 6),
    ("DT_REG", 8),
    ("DT_LNK", 10),
    ("DT_SOCK", 12),
    ("DT_WHT", 14),
    // open flags: asm-generic/fcntl.h (the kernel's values, as probes see them)
    ("O_RDONLY", 0),
    ("O_WRONLY", 1),
    ("O_RDWR", 2),
    ("O_ACCMODE", 3),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_NDELAY", 0o4000),
    ("O_DSYNC", 0o10000),
    ("FASYNC", 0o20000),
    ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_SYNC", 0o4010000),
    ("O_PATH", 0o10000000),
    ("O_TMPFILE", 0o20200000),
    // ICMP types: linux/icmp.h
    ("ICMP_ECHOREPLY", 0),
    ("ICMP_DEST_UNREACH", 3),
    ("ICMP_SOURCE_QUENCH", 4),
    ("ICMP_REDIRECT", 5),
    ("ICMP_ECHO", 8),
    ("ICMP_TIME_EXCEEDED", 11),
    ("ICMP_PARAMETERPROB", 12),
    ("ICMP_TIMESTAMP", 13),
    ("ICMP_TIMESTAMPREPLY", 14),
    ("ICMP_INFO_REQUEST", 15),
    ("ICMP_INFO_REPLY", 16),
    ("ICMP_ADDRESS", 17),
    ("ICMP_ADDRESSREPLY", 18),
    // ICMPv6 types: linux/icmpv6.h
    ("ICMPV6_DEST_UNREACH", 1),
    ("ICMPV6_PKT_TOOBIG", 2),
    ("ICMPV6_TIME_EXCEED", 3),
    ("ICMPV6_PARAMPROB", 4),
    ("ICMPV6_ECHO_REQUEST", 128),
    ("ICMPV6_ECHO_REPLY", 129),
    ("ICMPV6_MGM_QUERY", 130),
    ("ICMPV6_MGM_REPORT", 131),
    ("ICMPV6_MGM_REDUCTION", 132),
    // TCP socket states: net/tcp_states.h
    ("TCP_ESTABLISHED", 1),
    ("TCP_SYN_SENT", 2),
    ("TCP_SYN_RECV", 3),
    ("TCP_FIN_WAIT1", 4),
    ("TCP_FIN_WAIT2", 5),
    ("TCP_TIME_WAIT", 6),
    ("TCP_CLOSE", 7),
    ("TCP_CLOSE_WAIT", 8),
    ("TCP_LAST_ACK", 9),
    ("TCP_LISTEN", 10),
    ("TCP_CLOSING", 11),
    ("TCP_NEW_SYN_RECV", 12),
    // IP protocols: linux/in.h
    ("IPPROTO_IP", 0),
    ("IPPROTO_ICMP", 1),
    ("IPPROTO_IGMP", 2),
    ("IPPROTO_IPIP", 4),
    ("IPPROTO_TCP", 6),
    ("IPPROTO_EGP", 8),
    ("IPPROTO_PUP", 12),
    ("IPPROTO_UDP", 17),
    ("IPPROTO_IDP", 22),
    ("IPPROTO_TP", 29),
    ("IPPROTO_DCCP", 33),
    ("IPPROTO_IPV6", 41),
    ("IPPROTO_RSVP", 46),
    ("IPPROTO_GRE", 47),
    ("IPPROTO_ESP", 50),
    ("IPPROTO_AH", 51),
    ("IPPROTO_ICMPV6", 58),
    ("IPPROTO_MTP", 92),
    ("IPPROTO_BEETPH", 94),
    ("IPPROTO_ENCAP", 98),
    ("IPPROTO_PIM", 103),
    ("IPPROTO_COMP", 108),
    ("IPPROTO_L2TP", 115),
    ("IPPROTO_SCTP", 132),
    ("IPPROTO_UDPLITE", 136),
    ("IPPROTO_MPLS", 137),
    ("IPPROTO_ETHERNET", 143),
    ("IPPROTO_RAW", 255),
    ("IPPROTO_MPTCP", 262),
    // Ethernet protocol ids: linux/if_ether.h
    ("ETH_P_IP", 0x0800),
    ("ETH_P_ARP", 0x0806),
    ("ETH_P_8021Q", 0x8100),
    ("ETH_P_IPV6", 0x86DD),
    // task states: linux/sched.h
    ("TASK_RUNNING", 0x0000),
    ("TASK_INTERRUPTIBLE", 0x0001),
    ("TASK_UNINTERRUPTIBLE", 0x0002),
    ("__TASK_STOPPED", 0x0004),
    ("TASK_STOPPED", 0x0004),
    ("__TASK_TRACED", 0x0008),
    ("TASK_TRACED", 0x0008),
    ("EXIT_DEAD", 0x0010),
    ("EXIT_ZOMBIE", 0x0020),
    ("TASK_PARKED", 0x0040),
    ("TASK_DEAD", 0x0080),
    ("TASK_WAKEKILL", 0x0100),
    ("TASK_WAKING", 0x0200),
    ("TASK_NOLOAD", 0x0400),
    ("TASK_NEW", 0x0800),
    ("TASK_IDLE", 0x0402),
    ("PAGE_SIZE", 4096),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for (name, _) in TABLE {
            assert!(seen.insert(*name), "{name} twice");
        }
    }

    #[test]
    fn errno_is_dense_and_ordered() {
        // Every errno from 1 to 133 but the two the kernel never assigned (41, 58).
        let errnos: Vec<i64> = TABLE
            .iter()
            .filter(|(n, _)| {
                n.starts_with('E') && !n.starts_with("ETH_") && !n.starts_with("EXIT_")
            })
            .map(|(_, v)| *v)
            .collect();
        let mut uniq = errnos.clone();
        uniq.dedup();
        let expected: Vec<i64> = (1..=133).filter(|n| *n != 41 && *n != 58).collect();
        assert_eq!(uniq, expected);
    }

    #[test]
    fn lookups() {
        assert_eq!(lookup("EPERM"), Some(1));
        assert_eq!(lookup("EINPROGRESS"), Some(115));
        assert_eq!(lookup("AF_INET6"), Some(10));
        assert_eq!(lookup("O_CREAT"), Some(64));
        assert_eq!(lookup("DT_DIR"), Some(4));
        assert_eq!(lookup("SIGKILL"), Some(9));
        assert_eq!(lookup("SIGIOT"), Some(6));
        assert_eq!(lookup("TCP_LISTEN"), Some(10));
        assert_eq!(lookup("IPPROTO_UDP"), Some(17));
        assert_eq!(lookup("ICMP_ECHO"), Some(8));
        assert_eq!(lookup("SIGNOPE"), None);
        assert_eq!(lookup("EPERMX"), None);
    }
}
