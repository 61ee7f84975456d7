//! Movement (RFC 5555 §4.4.1, RFC 6275 §11.5): the kernel's address notifications
//! (rtnetlink groups RTNLGRP_IPV4_IFADDR and RTNLGRP_IPV6_IFADDR, messages RTM_NEWADDR /
//! RTM_DELADDR) read on a thread and turned into [`Change`]s for the main loop, which feeds
//! the engine's `AddressEvent`s. Only global-scope addresses count; the TUN device's own
//! addresses (the home addresses) are left out by its interface name.

use std::net::IpAddr;

use anyhow::{Context, Result};
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};
use tokio::sync::mpsc;
use tracing::{debug, warn};

/// rtnetlink multicast groups (linux/rtnetlink.h, enum rtnetlink_groups).
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV6_IFADDR: u32 = 9;
/// errno ENOBUFS on Linux (asm-generic/errno.h): the socket's receive queue overflowed.
const ENOBUFS: i32 = 105;

/// An address came or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added(IpAddr),
    Removed(IpAddr),
}

/// Subscribe to address notifications and start the reader; changes go to `tx`. The
/// subscription exists when this returns, so an address read afterwards is not missed.
pub fn start(exclude_if: Option<String>, tx: mpsc::Sender<Change>) -> Result<()> {
    let mut s = Socket::new(NETLINK_ROUTE).context("netlink socket (NETLINK_ROUTE)")?;
    s.bind(&SocketAddr::new(0, 0))
        .context("binding netlink socket")?;
    for g in [RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR] {
        s.add_membership(g)
            .with_context(|| format!("joining rtnetlink group {g}"))?;
    }
    std::thread::Builder::new()
        .name("netlink".into())
        .spawn(move || reader(&s, exclude_if.as_deref(), &tx))
        .context("netlink reader thread")?;
    Ok(())
}

fn reader(s: &Socket, exclude_if: Option<&str>, tx: &mpsc::Sender<Change>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match s.recv(&mut &mut buf[..], 0) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // ENOBUFS: notifications were lost; the next ones still count.
                warn!(error = %e, "netlink receive failed");
                if e.raw_os_error() == Some(ENOBUFS) {
                    continue;
                }
                return;
            }
        };
        for c in changes(&buf[..n.min(buf.len())], exclude_if) {
            debug!(change = ?c, "address change");
            if tx.blocking_send(c).is_err() {
                return;
            }
        }
    }
}

/// The address changes in one netlink datagram (several messages, each 4-octet aligned).
/// Malformed messages are skipped.
pub fn changes(mut buf: &[u8], exclude_if: Option<&str>) -> Vec<Change> {
    let mut out = Vec::new();
    while buf.len() >= 16 {
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < 16 || len > buf.len() {
            break;
        }
        if let Ok(m) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len]) {
            match m.payload {
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                    out.extend(address(&a, exclude_if).map(Change::Added));
                }
                NetlinkPayload::InnerMessage(RouteNetlinkMessage::DelAddress(a)) => {
                    out.extend(address(&a, exclude_if).map(Change::Removed));
                }
                _ => {}
            }
        }
        buf = &buf[(len + 3) & !3..];
        if buf.len() < 16 {
            break;
        }
    }
    out
}

/// The local address of a global-scope address message not on `exclude_if`. IFA_LOCAL is
/// the local address on point-to-point links; IFA_ADDRESS otherwise (rtnetlink(7)).
fn address(a: &AddressMessage, exclude_if: Option<&str>) -> Option<IpAddr> {
    if a.header.scope != AddressScope::Universe {
        return None;
    }
    let mut local = None;
    let mut addr = None;
    for attr in &a.attributes {
        match attr {
            AddressAttribute::Local(l) => local = Some(*l),
            AddressAttribute::Address(l) => addr = Some(*l),
            AddressAttribute::Label(l) if Some(l.as_str()) == exclude_if => return None,
            _ => {}
        }
    }
    local.or(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NetlinkHeader;
    use netlink_packet_route::AddressFamily;

    fn msg(new: bool, scope: AddressScope, addr: &str, label: &str) -> Vec<u8> {
        let mut a = AddressMessage::default();
        a.header.family = AddressFamily::Inet;
        a.header.prefix_len = 24;
        a.header.scope = scope;
        a.attributes = vec![
            AddressAttribute::Address(addr.parse().unwrap()),
            AddressAttribute::Local(addr.parse().unwrap()),
            AddressAttribute::Label(label.into()),
        ];
        let inner = if new {
            RouteNetlinkMessage::NewAddress(a)
        } else {
            RouteNetlinkMessage::DelAddress(a)
        };
        let mut m = NetlinkMessage::new(NetlinkHeader::default(), NetlinkPayload::from(inner));
        m.finalize();
        let mut b = vec![0u8; m.buffer_len()];
        m.serialize(&mut b);
        b
    }

    #[test]
    fn new_and_deleted_global_addresses_are_changes() {
        let mut dgram = msg(true, AddressScope::Universe, "10.2.0.2", "eth0");
        dgram.extend(msg(false, AddressScope::Universe, "10.1.0.2", "eth0"));
        dgram.extend(msg(true, AddressScope::Host, "127.0.0.1", "lo"));
        dgram.extend(msg(true, AddressScope::Universe, "198.51.100.2", "dsmmn0"));
        let c = changes(&dgram, Some("dsmmn0"));
        assert_eq!(
            c,
            vec![
                Change::Added("10.2.0.2".parse().unwrap()),
                Change::Removed("10.1.0.2".parse().unwrap()),
            ]
        );
    }

    #[test]
    fn garbage_is_skipped() {
        assert!(changes(&[0xff; 40], None).is_empty());
        assert!(changes(&[], None).is_empty());
        let mut m = msg(true, AddressScope::Universe, "10.2.0.2", "eth0");
        m.truncate(m.len() - 3);
        assert!(changes(&m, None).is_empty());
    }
}
