//! What both daemons need to speak Mobile IPv6 natively on a kernel without
//! CONFIG_IPV6_MIP6, which answers a Home Address option or a type 2 routing header with
//! an ICMPv6 Parameter Problem and drops the packet (RFC 8200 §4.2 "skip" bits 11):
//! - [`NftTable`]: an nftables table of the daemon's own that drops those packets before
//!   the kernel parses them (prerouting, priority -300), made at start, deleted on drop;
//! - [`PacketReader`]: an AF_PACKET socket, which sees the packets before that drop, with
//!   a reader thread handing the wanted ones to the main loop;
//! - [`RawIpv6`]: an `IPPROTO_RAW` socket that sends whole IPv6 packets (the daemon builds
//!   the extension headers itself).

use std::ffi::CString;
use std::mem::{size_of, zeroed};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tokio::sync::mpsc;
use tracing::warn;

use crate::net::nft;

/// EtherType of IPv6 (host order).
const ETH_P_IPV6: u16 = 0x86dd;

/// An installed `table ip6 NAME`; dropping it deletes the table.
pub struct NftTable {
    name: &'static str,
}

impl NftTable {
    /// Replace any table of that name left by a crashed run, then load `rules` (a whole
    /// `table ip6 NAME { … }` ruleset).
    pub fn install(name: &'static str, rules: &str) -> Result<NftTable> {
        let _ = nft("", &["delete", "table", "ip6", name]);
        nft(rules, &["-f", "-"]).context("installing the nftables table")?;
        Ok(NftTable { name })
    }
}

impl Drop for NftTable {
    fn drop(&mut self) {
        if let Err(e) = nft("", &["delete", "table", "ip6", self.name]) {
            warn!(error = %e, table = self.name, "nftables table not deleted");
        }
    }
}

/// An AF_PACKET socket for IPv6 (link header stripped) and its reader thread. The thread
/// ends when the channel closes (the main loop ended) or the socket fails.
pub struct PacketReader {
    _sock: Arc<OwnedFd>,
}

impl PacketReader {
    /// Read IPv6 packets arriving on `interface` (every interface with `None`), skip what
    /// we sent ourselves and what `keep` refuses, and send the rest into `tx`.
    pub fn start(
        interface: Option<&str>,
        keep: impl Fn(&[u8]) -> bool + Send + 'static,
        tx: mpsc::Sender<Vec<u8>>,
    ) -> Result<PacketReader> {
        let proto = ETH_P_IPV6.to_be();
        // SAFETY: socket() takes no pointers; the result is checked below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                libc::c_int::from(proto),
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("AF_PACKET socket (CAP_NET_RAW)");
        }
        // SAFETY: fd is a descriptor socket() just returned; nothing else owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Some(name) = interface {
            bind_to(&fd, name, proto)?;
        }
        let fd = Arc::new(fd);
        let r = fd.clone();
        std::thread::Builder::new()
            .name(format!("pkt6-{}", interface.unwrap_or("all")))
            .spawn(move || read_loop(&r, &keep, &tx))
            .context("starting a packet socket reader thread")?;
        Ok(PacketReader { _sock: fd })
    }
}

/// Bind a packet socket to one interface.
fn bind_to(fd: &OwnedFd, name: &str, proto: u16) -> Result<()> {
    let c = CString::new(name).context("interface name with a NUL")?;
    // SAFETY: c is a valid NUL-terminated string that outlives the call.
    let index = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if index == 0 {
        bail!("no interface {name:?}");
    }
    // SAFETY: sockaddr_ll is a C struct of integers and arrays, for which all-zero bytes
    // are a valid value.
    let mut ll: libc::sockaddr_ll = unsafe { zeroed() };
    ll.sll_family = libc::AF_PACKET as u16;
    ll.sll_protocol = proto;
    ll.sll_ifindex = index as i32;
    // SAFETY: ll lives across the call and its exact size is passed; bind only reads it.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&ll as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("binding the packet socket to {name}"));
    }
    Ok(())
}

fn read_loop(fd: &OwnedFd, keep: &dyn Fn(&[u8]) -> bool, tx: &mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        // SAFETY: all-zero bytes are a valid sockaddr_ll (integers and arrays only).
        let mut ll: libc::sockaddr_ll = unsafe { zeroed() };
        let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: buf and ll are live and writable for the lengths passed, and the kernel
        // writes at most those many bytes into them.
        let n = unsafe {
            libc::recvfrom(
                fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                0,
                (&mut ll as *mut libc::sockaddr_ll).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            warn!(error = %e, "packet socket receive failed; the IPv6 reader stops");
            return;
        }
        let Some(pkt) = buf.get(..n as usize) else {
            continue;
        };
        // What we send ourselves comes back as PACKET_OUTGOING: not input.
        if ll.sll_pkttype == libc::PACKET_OUTGOING || !keep(pkt) {
            continue;
        }
        if tx.blocking_send(pkt.to_vec()).is_err() {
            return;
        }
    }
}

/// An `IPPROTO_RAW` IPv6 socket: the kernel sends the packet as given.
pub struct RawIpv6 {
    sock: socket2::Socket,
}

impl RawIpv6 {
    pub fn open() -> Result<RawIpv6> {
        let sock = socket2::Socket::new(
            socket2::Domain::IPV6,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(libc::IPPROTO_RAW)),
        )
        .context("raw IPv6 socket (IPPROTO_RAW, CAP_NET_RAW)")?;
        Ok(RawIpv6 { sock })
    }

    /// Send the whole IPv6 packet `pkt` to its destination address.
    pub fn send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        let dst: [u8; 16] = pkt
            .get(24..40)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| std::io::Error::other("IPv6 packet shorter than its header"))?;
        let to = SocketAddrV6::new(Ipv6Addr::from(dst), 0, 0, 0);
        self.sock.send_to(pkt, &to.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_packets_are_refused_before_the_kernel() {
        let Ok(raw) = RawIpv6::open() else {
            panic!("raw IPv6 socket: these tests run as root (CAP_NET_RAW)");
        };
        let e = raw.send(&[0x60; 39]).unwrap_err();
        assert!(e.to_string().contains("shorter than its header"), "{e}");
    }

    #[test]
    fn a_missing_interface_is_named() {
        let (tx, _rx) = mpsc::channel(1);
        let e = PacketReader::start(Some("nosuch0"), |_| true, tx)
            .err()
            .expect("no such interface");
        assert!(
            format!("{e:#}").contains("no interface \"nosuch0\""),
            "{e:#}"
        );
    }
}
