//! Network interfaces: a name resolved once to its index ([`Interface`]), and what the core
//! asks the driver about it (MTU, flags, queue count).
//!
//! Every query goes through a datagram socket's `ioctl`, so it sees the calling thread's network
//! namespace, as `bind` and the XDP attach do (`/sys/class/net` shows the namespace /sys was
//! mounted in, which `ip netns exec` does not change for this process).

use std::ffi::{CString, c_char};
use std::fmt;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// `IFF_UP` in [`Interface::flags`]: administratively up.
pub const IFF_UP: u32 = libc::IFF_UP as u32;

/// One network interface of the calling thread's network namespace, resolved once by name
/// ([`Interface::by_name`]). `Socket`, `XdpProgram` and the traffic generator all keep the
/// one they were given, so a name is never resolved twice to different indexes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Interface {
    name: String,
    index: u32,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The calling thread's network namespace, as the device and inode numbers of
/// `/proc/thread-self/ns/net` (what `ip netns identify` compares): two interfaces with the same
/// index are the same device only within one namespace.
pub fn current_netns() -> Result<(u64, u64)> {
    let path = c"/proc/thread-self/ns/net";
    // SAFETY: `stat` is plain data; all-zero is a valid value for it to be overwritten.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a writable `stat`.
    if unsafe { libc::stat(path.as_ptr(), &mut st) } < 0 {
        return Err(super::last_error("stat(/proc/thread-self/ns/net)"));
    }
    Ok((st.st_dev, st.st_ino))
}

/// The kernel's default `MAX_SKB_FRAGS` (`CONFIG_MAX_SKB_FRAGS`), assumed when
/// `/proc/sys/net/core/max_skb_frags` cannot be read.
pub const DEFAULT_MAX_SKB_FRAGS: u32 = 17;

/// The number of page fragments an skb may carry besides its linear part: the kernel's limit
/// on a copy-mode multi-buffer packet is this plus one descriptor (`xsk_build_skb` drops a
/// longer chain with EOVERFLOW, counting it in `tx_invalid_descs`).
///
/// Read from `/proc/sys/net/core/max_skb_frags` (as the kernel's AF_XDP selftests do), which
/// starts at `MAX_SKB_FRAGS` and can only be lowered. That file exists only in the initial
/// network namespace (`/proc/sys/net` follows the calling thread's), so the first value read
/// anywhere is kept for the process; until one is, [`DEFAULT_MAX_SKB_FRAGS`].
pub fn max_skb_frags() -> u32 {
    static READ: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    if let Some(&n) = READ.get() {
        return n;
    }
    match std::fs::read_to_string("/proc/sys/net/core/max_skb_frags")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .filter(|&n| n > 0)
    {
        Some(n) => *READ.get_or_init(|| n),
        None => DEFAULT_MAX_SKB_FRAGS,
    }
}

impl Interface {
    /// Resolves `name` (`if_nametoindex`) in the calling thread's network namespace.
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchInterface`] when there is no such interface, or the name cannot be one
    /// (empty, `IFNAMSIZ` bytes or longer, or with a NUL byte).
    pub fn by_name(name: &str) -> Result<Interface> {
        let no_such = || Error::NoSuchInterface { ifname: name.to_owned() };
        // The kernel's own rule (`dev_valid_name`): `if_nametoindex` would resolve "eth0:x" to
        // eth0 (SIOCGIFINDEX cuts an alias suffix off), so such a name must not get that far.
        let invalid = |c: char| matches!(c, '/' | ':' | ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r');
        if name.is_empty()
            || name.len() >= libc::IFNAMSIZ
            || name == "."
            || name == ".."
            || name.contains(invalid)
        {
            return Err(no_such());
        }
        let cname = CString::new(name).map_err(|_| no_such())?;
        // SAFETY: `cname` is a valid NUL-terminated string.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            return Err(no_such());
        }
        Ok(Interface { name: name.to_owned(), index })
    }

    /// The name it was resolved from.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The interface index (in the network namespace it was resolved in).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The MTU (`SIOCGIFMTU`).
    ///
    /// # Errors
    ///
    /// [`Error::NoSuchInterface`] if it is gone; [`Error::Syscall`].
    pub fn mtu(&self) -> Result<u32> {
        let mut request = self.ifreq();
        self.ioctl(libc::SIOCGIFMTU, &mut request, "ioctl(SIOCGIFMTU)")?;
        // SAFETY: the kernel filled in the ifru_mtu member of the union.
        let mtu = unsafe { request.ifr_ifru.ifru_mtu };
        Ok(mtu.max(0) as u32)
    }

    /// The interface flags (`SIOCGIFFLAGS`: `IFF_UP`, `IFF_RUNNING`, ...).
    ///
    /// # Errors
    ///
    /// As [`mtu`](Self::mtu).
    pub fn flags(&self) -> Result<u32> {
        let mut request = self.ifreq();
        self.ioctl(libc::SIOCGIFFLAGS, &mut request, "ioctl(SIOCGIFFLAGS)")?;
        // SAFETY: the kernel filled in the ifru_flags member of the union.
        let flags = unsafe { request.ifr_ifru.ifru_flags };
        Ok(u32::from(flags as u16))
    }

    /// Whether the interface is administratively up (`IFF_UP`).
    ///
    /// # Errors
    ///
    /// As [`mtu`](Self::mtu).
    pub fn is_up(&self) -> Result<bool> {
        Ok(self.flags()? & IFF_UP != 0)
    }

    /// The number of queues to size an XSKMAP for.
    ///
    /// Asks the driver with `ETHTOOL_GCHANNELS` and returns the largest of the maximum and
    /// current combined and rx channel counts, at least 1; 1 when the driver does not implement
    /// the request (`EOPNOTSUPP`, e.g. loopback). This is an upper bound like libxdp's, so
    /// the map still has an entry for every queue after the channel count is raised (`ethtool
    /// -L`); a veth reports the queues it was created with.
    ///
    /// # Errors
    ///
    /// As [`mtu`](Self::mtu).
    pub fn queue_count(&self) -> Result<u32> {
        let Some(ch) = self.channels()? else { return Ok(1) };
        Ok([ch.max_combined, ch.max_rx, ch.combined_count, ch.rx_count, 1]
            .into_iter()
            .max()
            .unwrap_or(1))
    }

    /// The queues in use now: `(rx, tx)`, each the combined channels plus those of its own
    /// direction (the driver's current `ETHTOOL_GCHANNELS` counts, which `ethtool -L` sets, at
    /// most [`queue_count`](Self::queue_count)). A socket binds to a queue below the larger of
    /// the two, as the kernel checks; a queue at or above them has no traffic. (1, 1) when the
    /// driver does not implement the request, and [`queue_count`](Self::queue_count) for both
    /// when it reports no current counts.
    ///
    /// # Errors
    ///
    /// As [`mtu`](Self::mtu).
    pub fn active_queues(&self) -> Result<(u32, u32)> {
        let Some(ch) = self.channels()? else { return Ok((1, 1)) };
        let rx = ch.combined_count.saturating_add(ch.rx_count);
        let tx = ch.combined_count.saturating_add(ch.tx_count);
        if rx == 0 && tx == 0 {
            let all = self.queue_count()?;
            return Ok((all, all));
        }
        Ok((rx, tx))
    }

    /// `ETHTOOL_GCHANNELS`: None when the driver does not implement it (`EOPNOTSUPP`).
    fn channels(&self) -> Result<Option<EthtoolChannels>> {
        let mut channels = EthtoolChannels { cmd: ETHTOOL_GCHANNELS, ..EthtoolChannels::default() };
        let mut request = self.ifreq();
        request.ifr_ifru.ifru_data = (&raw mut channels).cast::<c_char>();
        match self.ioctl(libc::SIOCETHTOOL, &mut request, "ioctl(SIOCETHTOOL, ETHTOOL_GCHANNELS)") {
            Ok(()) => Ok(Some(channels)),
            Err(Error::Syscall { source, .. })
                if source.raw_os_error() == Some(libc::EOPNOTSUPP) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// A zeroed `struct ifreq` carrying the name.
    fn ifreq(&self) -> libc::ifreq {
        // SAFETY: ifreq is plain data (integers, arrays, pointers and a union of them); all
        // zeros is valid.
        let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
        // `by_name` checked the length (< IFNAMSIZ), so the name stays NUL-terminated.
        for (dst, src) in request.ifr_name.iter_mut().zip(self.name.bytes()) {
            *dst = src as c_char;
        }
        request
    }

    /// `ioctl(request, &ifreq)` on a fresh datagram socket; ENODEV is [`Error::NoSuchInterface`].
    ///
    /// `request` has the type of libc's `SIOC*` constants (`c_ulong`); `ioctl()` takes an
    /// `Ioctl`, which is `c_ulong` on glibc but `c_int` on musl, hence the conversion (every
    /// `SIOC*` request fits in 32 bits).
    fn ioctl(
        &self,
        request: libc::c_ulong,
        ifreq: &mut libc::ifreq,
        call: &'static str,
    ) -> Result<()> {
        let request = request as libc::Ioctl;
        // SAFETY: socket() takes no pointers; the result is checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(super::last_error("socket(AF_INET, SOCK_DGRAM)"));
        }
        // SAFETY: `fd` is a freshly created descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `ifreq` is a valid `struct ifreq` with the name set, which the kernel reads and
        // (for the requests used here) writes one union member of; for SIOCETHTOOL its
        // `ifr_data` points to a `struct ethtool_channels` the caller keeps alive for the call.
        let rc = unsafe { libc::ioctl(socket.as_raw_fd(), request, std::ptr::from_mut(ifreq)) };
        if rc < 0 {
            let source = io::Error::last_os_error();
            if source.raw_os_error() == Some(libc::ENODEV) {
                return Err(Error::NoSuchInterface { ifname: self.name.clone() });
            }
            return Err(Error::Syscall { call, source });
        }
        Ok(())
    }
}

/// `struct ethtool_channels` from `linux/ethtool.h`
/// (<https://github.com/torvalds/linux/blob/v6.18/include/uapi/linux/ethtool.h>).
#[repr(C)]
#[derive(Debug, Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}
const _: () = assert!(size_of::<EthtoolChannels>() == 36);

/// `ETHTOOL_GCHANNELS` from `linux/ethtool.h`: get the channel (queue) counts.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_impossible_names() {
        // "lo:x", "lo/x" and "lo x" were resolved to lo by if_nametoindex (an alias suffix is
        // cut off there); no interface can be named so.
        let impossible = ["", "bad\0name", "a-name-far-too-long-for-linux", "lo:x", "lo/x", "lo x"];
        for name in ["afxdp-none0", ".", ".."].into_iter().chain(impossible) {
            match Interface::by_name(name) {
                Err(Error::NoSuchInterface { ifname }) => assert_eq!(ifname, name),
                other => panic!("{name:?}: expected NoSuchInterface, got {other:?}"),
            }
        }
    }

    #[test]
    fn loopback_queries() {
        // `lo` exists in every network namespace; its driver has no ETHTOOL_GCHANNELS.
        let lo = Interface::by_name("lo").unwrap();
        assert_eq!(lo.name(), "lo");
        assert_eq!(lo.index(), 1);
        assert_eq!(lo.queue_count().unwrap(), 1);
        assert!(lo.mtu().unwrap() >= 68);
        assert_eq!(lo.flags().unwrap() & libc::IFF_LOOPBACK as u32, libc::IFF_LOOPBACK as u32);
        assert_eq!(lo.to_string(), "lo");
    }
}
