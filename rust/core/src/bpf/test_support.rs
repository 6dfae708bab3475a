//! Test support for the privileged tests of the XDP program: a pair of network namespaces
//! joined by a veth pair, running code inside one, raw sockets for the XSKMAP, and a
//! hand-written rtnetlink query of the program attached to an interface (independent of aya).
//! Its kernel calls are in `sys::netlink`.

use std::{
    io,
    net::UdpSocket,
    os::fd::{AsFd, OwnedFd},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
    time::Duration,
};

use crate::sys::{Interface, netlink};

/// Two network namespaces joined by a veth pair; deleted on drop.
pub struct VethNetns {
    /// Holds `veth1` (10.211.0.1/24), where the tests attach.
    pub name: String,
    /// Holds `veth0` (10.211.0.2/24), the traffic source.
    pub peer: String,
}

/// Runs a command; panics with its stderr when it fails.
pub fn run(args: &[&str]) -> String {
    let output = Command::new(args[0]).args(&args[1..]).output().expect(args[0]);
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

impl VethNetns {
    /// The namespaces and the veth pair with `queues` queues each way, up, addressed.
    pub fn new(queues: u32) -> VethNetns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        // Unique across processes and runs: pid, clock, counter.
        let nanos = std::time::SystemTime::UNIX_EPOCH.elapsed().unwrap().subsec_nanos();
        let name = format!(
            "afxdp-tmp-{}-{nanos:x}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let peer = format!("{name}-peer");
        run(&["ip", "netns", "add", &name]);
        let netns = VethNetns { name, peer }; // Deleted on drop from here on.
        run(&["ip", "netns", "add", &netns.peer]);
        let q = queues.to_string();
        #[rustfmt::skip]
        run(&["ip", "-n", &netns.name, "link", "add", "veth1",
              "numtxqueues", &q, "numrxqueues", &q, "type", "veth",
              "peer", "name", "veth0", "netns", &netns.peer,
              "numtxqueues", &q, "numrxqueues", &q]);
        for (ns, dev, addr) in
            [(&netns.name, "veth1", "10.211.0.1/24"), (&netns.peer, "veth0", "10.211.0.2/24")]
        {
            let sysctl = format!("net.ipv6.conf.{dev}.disable_ipv6=1");
            run(&["ip", "netns", "exec", ns, "sysctl", "-qw", &sysctl]);
            run(&["ip", "-n", ns, "addr", "add", addr, "dev", dev]);
            run(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        netns
    }

    /// Runs `body` on a thread in the namespace holding `veth1`.
    pub fn enter<T: Send>(&self, body: impl FnOnce() -> T + Send) -> T {
        in_netns(&self.name, body)
    }

    /// `ip -d link show dev veth1`.
    pub fn link_details(&self) -> String {
        run(&["ip", "-n", &self.name, "-d", "link", "show", "dev", "veth1"])
    }

    /// Whether a UDP datagram from the peer reaches a socket on veth1's address, i.e.
    /// veth1's packets (ARP included: the peer's neighbour cache is flushed first) reach
    /// the kernel stack.
    pub fn udp_delivered(&self) -> bool {
        run(&["ip", "-n", &self.peer, "neigh", "flush", "dev", "veth0"]);
        let receiver = in_netns(&self.name, || UdpSocket::bind("10.211.0.1:0").unwrap());
        let sender = in_netns(&self.peer, || UdpSocket::bind("10.211.0.2:0").unwrap());
        receiver.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sender.send_to(b"afxdp", receiver.local_addr().unwrap()).unwrap();
        let mut buffer = [0; 16];
        matches!(receiver.recv_from(&mut buffer), Ok((5, _)))
    }
}

/// Runs `body` on a thread that entered the network namespace `name`.
pub fn in_netns<T: Send>(name: &str, body: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let file = std::fs::File::open(&path).expect(&path);
                // Only this scoped, short-lived thread changes namespace.
                netlink::enter_netns(file.as_fd()).expect("setns");
                body()
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

impl Drop for VethNetns {
    fn drop(&mut self) {
        for ns in [&self.name, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// `veth1`, resolved in the calling thread's network namespace.
pub fn veth1() -> Interface {
    Interface::by_name("veth1").unwrap()
}

/// A new AF_XDP socket, not bound: enough for the XSKMAP, which doesn't check binding.
pub fn xsk_socket() -> OwnedFd {
    crate::sys::xsk::socket().expect("socket(AF_XDP)")
}

/// A UDP socket: not an AF_XDP socket, which the XSKMAP refuses.
pub fn udp_socket() -> OwnedFd {
    std::net::UdpSocket::bind("0.0.0.0:0").expect("udp socket").into()
}

// rtnetlink constants from linux/rtnetlink.h, linux/netlink.h and linux/if_link.h.
const NLMSG_HDRLEN: usize = 16;
const IFINFOMSG_LEN: usize = 16;
const NLA_HDRLEN: usize = 4;
const NLA_TYPE_MASK: u16 = 0x3fff;
const IFLA_XDP: u16 = 43;
const IFLA_XDP_PROG_ID: u16 = 4;
const IFLA_XDP_DRV_PROG_ID: u16 = 5;
const IFLA_XDP_SKB_PROG_ID: u16 = 6;
const IFLA_XDP_HW_PROG_ID: u16 = 7;

/// The id of the XDP program attached to `ifname`, if any, whoever attached it and in
/// whatever mode (`bpftool prog show id ID` describes it). With programs in several modes
/// at once, the native one's id is returned.
///
/// Asks the kernel with an rtnetlink `RTM_GETLINK` request and reads the `IFLA_XDP`
/// attributes, as `ip link show` does. Only the tests use it (to check, independently of aya,
/// what the kernel has attached), so it lives here, beside its test-only calls in `sys::netlink`.
pub fn attached_program_id(ifname: &str) -> io::Result<Option<u32>> {
    let ifindex = Interface::by_name(ifname).map_err(io::Error::other)?.index();
    let query_error = |_errno: Option<i32>, message: String| io::Error::other(message);
    let os_error = |error: io::Error| error;

    // struct nlmsghdr + struct ifinfomsg, native byte order.
    const SEQ: u32 = 1;
    let mut request = Vec::with_capacity(NLMSG_HDRLEN + IFINFOMSG_LEN);
    request.extend_from_slice(&((NLMSG_HDRLEN + IFINFOMSG_LEN) as u32).to_ne_bytes()); // nlmsg_len
    request.extend_from_slice(&libc::RTM_GETLINK.to_ne_bytes()); // nlmsg_type
    request.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes()); // nlmsg_flags
    request.extend_from_slice(&SEQ.to_ne_bytes()); // nlmsg_seq
    request.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid
    request.extend_from_slice(&[libc::AF_UNSPEC as u8, 0]); // ifi_family, pad
    request.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    request.extend_from_slice(&ifindex.to_ne_bytes()); // ifi_index
    request.extend_from_slice(&0u32.to_ne_bytes()); // ifi_flags
    request.extend_from_slice(&0u32.to_ne_bytes()); // ifi_change

    let socket = netlink::route_socket().map_err(os_error)?;
    netlink::send(&socket, &request).map_err(os_error)?;

    // The answer is one RTM_NEWLINK message (a few KiB with statistics) or an NLMSG_ERROR.
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let received = netlink::recv(&socket, &mut buffer).map_err(os_error)?;
        if received > buffer.len() {
            return Err(query_error(None, format!("reply truncated ({received} bytes)")));
        }
        let mut messages = &buffer[..received];
        while messages.len() >= NLMSG_HDRLEN {
            let len = u32_at(messages, 0) as usize;
            if len < NLMSG_HDRLEN || len > messages.len() {
                return Err(query_error(None, format!("malformed reply (length {len})")));
            }
            let msg_type = u16_at(messages, 4);
            let seq = u32_at(messages, 8);
            let body = &messages[NLMSG_HDRLEN..len];
            messages = &messages[align4(len).min(messages.len())..];
            if seq != SEQ {
                continue;
            }
            if msg_type == libc::NLMSG_ERROR as u16 {
                // struct nlmsgerr starts with the negative errno.
                let errno =
                    if body.len() >= 4 { (u32_at(body, 0) as i32).wrapping_neg() } else { 0 };
                if errno == 0 {
                    continue; // An acknowledgement.
                }
                let error = io::Error::from_raw_os_error(errno);
                return Err(os_error(error));
            }
            if msg_type == libc::RTM_NEWLINK && body.len() >= IFINFOMSG_LEN {
                return Ok(xdp_program_id(&body[IFINFOMSG_LEN..]));
            }
        }
    }
}

/// The program id in the `IFLA_XDP` attribute among `attributes` (the rtattrs of an
/// `RTM_NEWLINK` message), if a program is attached.
fn xdp_program_id(attributes: &[u8]) -> Option<u32> {
    let xdp = netlink_attributes(attributes).find(|&(kind, _)| kind == IFLA_XDP)?.1;
    let id_of = |wanted: u16| {
        netlink_attributes(xdp)
            .find(|&(kind, value)| kind == wanted && value.len() >= 4)
            .map(|(_, value)| u32_at(value, 0))
            .filter(|&id| id != 0)
    };
    // PROG_ID when one program is attached; the per-mode ids when several are (MULTI).
    id_of(IFLA_XDP_PROG_ID)
        .or_else(|| id_of(IFLA_XDP_DRV_PROG_ID))
        .or_else(|| id_of(IFLA_XDP_SKB_PROG_ID))
        .or_else(|| id_of(IFLA_XDP_HW_PROG_ID))
}

/// Iterates over netlink attributes (`struct nlattr`/`struct rtattr`): (type, payload).
fn netlink_attributes(mut bytes: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if bytes.len() < NLA_HDRLEN {
            return None;
        }
        let len = usize::from(u16_at(bytes, 0));
        if len < NLA_HDRLEN || len > bytes.len() {
            return None;
        }
        let kind = u16_at(bytes, 2) & NLA_TYPE_MASK;
        let payload = &bytes[NLA_HDRLEN..len];
        bytes = &bytes[align4(len).min(bytes.len())..];
        Some((kind, payload))
    })
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(bytes: &[u8], offset: usize) -> u16 {
    u16::from_ne_bytes([bytes[offset], bytes[offset + 1]])
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_xdp_attributes() {
        fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&((NLA_HDRLEN + payload.len()) as u16).to_ne_bytes());
            out.extend_from_slice(&kind.to_ne_bytes());
            out.extend_from_slice(payload);
            out.resize(align4(out.len()), 0);
            out
        }
        let ifname = attr(3, b"veth1\0");
        let attached_none = [attr(IFLA_XDP, &attr(2, &[0])), ifname.clone()].concat();
        assert_eq!(xdp_program_id(&attached_none), None);
        let nested = [attr(2, &[1]), attr(IFLA_XDP_PROG_ID, &42u32.to_ne_bytes())].concat();
        let one = [ifname.clone(), attr(IFLA_XDP | 0x8000, &nested)].concat();
        assert_eq!(xdp_program_id(&one), Some(42));
        let multi = [
            attr(2, &[4]),
            attr(IFLA_XDP_SKB_PROG_ID, &7u32.to_ne_bytes()),
            attr(IFLA_XDP_DRV_PROG_ID, &9u32.to_ne_bytes()),
        ]
        .concat();
        assert_eq!(xdp_program_id(&attr(IFLA_XDP, &multi)), Some(9));
        assert_eq!(xdp_program_id(&ifname), None);
        assert_eq!(xdp_program_id(&[1, 0]), None);
    }
}
