//! A small synchronous NETLINK_ROUTE client (rtnetlink(7)) for what the daemons change on
//! binding events: routes of a prefix into an interface, proxy ARP / proxy NDP entries
//! (`NTF_PROXY`) on an interface, and the index of an interface by name. Each request
//! carries `NLM_F_ACK`; the kernel's answer is read before the call returns, and a refusal
//! becomes an error naming the operation, the prefix or address and the interface, with the
//! kernel's extended-ack text when it gives one (what `ip` would print).
//!
//! rtnetlink requests are handled inside the kernel's `sendmsg` (the socket's input
//! function runs synchronously under the RTNL lock), so the answer is queued when `send`
//! returns: the socket is non-blocking and "no answer" is an error, never a hang of the
//! caller's event loop.

use std::fmt;
use std::net::IpAddr;

use anyhow::{anyhow, bail, Context, Result};
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_ACK_TLVS, NLM_F_CREATE,
    NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// struct nlmsghdr is 16 octets (linux/netlink.h).
const NLMSG_HDRLEN: usize = 16;
/// Extended ack attribute carrying the kernel's text (linux/netlink.h, NLMSGERR_ATTR_MSG).
const NLMSGERR_ATTR_MSG: u16 = 1;

/// An interface as the kernel knows it: its name (for messages) and index (for requests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub name: String,
    pub index: u32,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// What a request does, for building it and for naming it in errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    RouteReplace(IpNet),
    RouteDelete(IpNet),
    ProxyAdd(IpAddr),
    ProxyDelete(IpAddr),
}

impl Op {
    /// The request in iproute2's words, e.g. `route replace 198.51.100.0/30 dev dsmha0`.
    pub fn describe(&self, link: &Link) -> String {
        match self {
            Op::RouteReplace(p) => format!("route replace {p} dev {link}"),
            Op::RouteDelete(p) => format!("route del {p} dev {link}"),
            Op::ProxyAdd(a) => format!("neigh replace proxy {a} dev {link}"),
            Op::ProxyDelete(a) => format!("neigh del proxy {a} dev {link}"),
        }
    }

    /// The rtnetlink message and its header flags.
    pub fn message(&self, link: &Link) -> (RouteNetlinkMessage, u16) {
        const REPLACE: u16 = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE;
        const DELETE: u16 = NLM_F_REQUEST | NLM_F_ACK;
        match *self {
            Op::RouteReplace(p) => (
                RouteNetlinkMessage::NewRoute(route(p, link, false)),
                REPLACE,
            ),
            Op::RouteDelete(p) => (RouteNetlinkMessage::DelRoute(route(p, link, true)), DELETE),
            Op::ProxyAdd(a) => (
                RouteNetlinkMessage::NewNeighbour(proxy(a, link, false)),
                REPLACE,
            ),
            Op::ProxyDelete(a) => (
                RouteNetlinkMessage::DelNeighbour(proxy(a, link, true)),
                DELETE,
            ),
        }
    }
}

fn family(a: IpAddr) -> AddressFamily {
    match a {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// A route of `prefix` out of `link` in the main table, no gateway: what
/// `ip route replace PREFIX dev LINK` sends. A delete matches any protocol, scope and type
/// (`RT_SCOPE_NOWHERE` and zeros are the kernel's wildcards, as iproute2 sends them).
fn route(prefix: IpNet, link: &Link, delete: bool) -> RouteMessage {
    let mut m = RouteMessage::default();
    m.header.address_family = family(prefix.addr());
    m.header.destination_prefix_length = prefix.prefix_len();
    m.header.table = RouteHeader::RT_TABLE_MAIN;
    if delete {
        m.header.scope = RouteScope::NoWhere;
    } else {
        // Installed by an administrator's daemon, on-link (no gateway).
        m.header.protocol = RouteProtocol::Static;
        m.header.scope = RouteScope::Link;
        m.header.kind = RouteType::Unicast;
    }
    let dst = match prefix {
        IpNet::V4(n) => RouteAddress::Inet(n.addr()),
        IpNet::V6(n) => RouteAddress::Inet6(n.addr()),
    };
    m.attributes = vec![
        RouteAttribute::Destination(dst),
        RouteAttribute::Oif(link.index),
    ];
    m
}

/// A proxy neighbour entry (`NTF_PROXY`): the kernel answers ARP (IPv4) or Neighbor
/// Solicitations (IPv6, with `proxy_ndp` on) for `addr` on `link`.
fn proxy(addr: IpAddr, link: &Link, delete: bool) -> NeighbourMessage {
    let mut m = NeighbourMessage::default();
    m.header.family = family(addr);
    m.header.ifindex = link.index;
    m.header.flags = NeighbourFlags::Proxy;
    if !delete {
        m.header.state = NeighbourState::Permanent;
    }
    m.attributes = vec![NeighbourAttribute::Destination(NeighbourAddress::from(
        addr,
    ))];
    m
}

/// One NETLINK_ROUTE socket, one request at a time.
pub struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Open a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE).context("netlink socket (NETLINK_ROUTE)")?;
        socket
            .bind_auto()
            .context("binding netlink socket (NETLINK_ROUTE)")?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .context("connecting netlink socket to the kernel")?;
        // The kernel's reason in words ("Nexthop device is not up"), without our request
        // echoed back; both are best effort (kernels before 4.12 lack them).
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        socket
            .set_non_blocking(true)
            .context("netlink socket: non-blocking")?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 65_536],
        })
    }

    /// The interface called `name` (RTM_GETLINK with IFLA_IFNAME).
    pub fn link(&mut self, name: &str) -> Result<Link> {
        let mut m = LinkMessage::default();
        m.attributes = vec![LinkAttribute::IfName(name.to_string())];
        let replies = self
            .request(RouteNetlinkMessage::GetLink(m), NLM_F_REQUEST | NLM_F_ACK)
            .with_context(|| format!("interface {name}"))?;
        replies
            .into_iter()
            .find_map(|r| match r {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .map(|index| Link {
                name: name.to_string(),
                index,
            })
            .ok_or_else(|| anyhow!("interface {name}: the kernel sent no RTM_NEWLINK"))
    }

    /// Route `prefix` out of `link` (create or replace).
    pub fn route_replace(&mut self, prefix: IpNet, link: &Link) -> Result<()> {
        self.apply(Op::RouteReplace(prefix), link)
    }

    /// Remove the route of `prefix` out of `link`.
    pub fn route_delete(&mut self, prefix: IpNet, link: &Link) -> Result<()> {
        self.apply(Op::RouteDelete(prefix), link)
    }

    /// Answer ARP / Neighbor Solicitations for `addr` on `link` (create or replace).
    pub fn proxy_add(&mut self, addr: IpAddr, link: &Link) -> Result<()> {
        self.apply(Op::ProxyAdd(addr), link)
    }

    /// Remove the proxy entry of `addr` on `link`.
    pub fn proxy_delete(&mut self, addr: IpAddr, link: &Link) -> Result<()> {
        self.apply(Op::ProxyDelete(addr), link)
    }

    /// Send one change and wait for its ack; the error names the request.
    pub fn apply(&mut self, op: Op, link: &Link) -> Result<()> {
        let (msg, flags) = op.message(link);
        self.request(msg, flags)
            .map(drop)
            .with_context(|| op.describe(link))
    }

    /// Send `msg` and collect the replies up to the ack of its sequence number.
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let bytes = encode(msg, flags, self.seq);
        self.socket.send(&bytes, 0).context("netlink send")?;
        let mut replies = Vec::new();
        loop {
            let n = match self.socket.recv(&mut &mut self.buf[..], 0) {
                Ok(n) => n.min(self.buf.len()),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    bail!("no answer from the kernel (netlink sequence {})", self.seq)
                }
                Err(e) => return Err(e).context("netlink receive"),
            };
            for m in messages(&self.buf[..n]) {
                let m = m?;
                if m.header.sequence_number != self.seq {
                    continue; // an answer to an earlier request we gave up on
                }
                match m.payload {
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(replies),
                            Some(_) => Err(kernel_error(&e, m.header.flags)),
                        };
                    }
                    NetlinkPayload::InnerMessage(r) => replies.push(r),
                    _ => {}
                }
            }
        }
    }
}

/// The bytes of one request.
pub fn encode(msg: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut m = NetlinkMessage::new(header, NetlinkPayload::from(msg));
    m.finalize();
    let mut b = vec![0u8; m.buffer_len()];
    m.serialize(&mut b);
    b
}

/// The messages of one datagram (each 4-octet aligned); a malformed one is an error.
fn messages(
    mut buf: &[u8],
) -> impl Iterator<Item = Result<NetlinkMessage<RouteNetlinkMessage>>> + '_ {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            buf = &[];
            return Some(Err(anyhow!(
                "netlink: message length {len} in a datagram of {}",
                buf.len()
            )));
        }
        let m = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&buf[..len])
            .map_err(|e| anyhow!("netlink: malformed answer: {e}"));
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(m)
    })
}

/// The kernel's refusal: errno text, plus the extended-ack message when there is one.
fn kernel_error(e: &netlink_packet_core::ErrorMessage, flags: u16) -> anyhow::Error {
    let io = e.to_io();
    match ext_ack_text(&e.header, flags) {
        Some(t) => anyhow!("{io}: {t}"),
        None => anyhow!("{io}"),
    }
}

/// NLMSGERR_ATTR_MSG from an error message's body after the errno: the echoed request
/// (only its header when `NLM_F_CAPPED`), then attributes when `NLM_F_ACK_TLVS`
/// (linux/netlink.h, struct nlmsgerr).
pub fn ext_ack_text(body: &[u8], flags: u16) -> Option<String> {
    if flags & NLM_F_ACK_TLVS == 0 {
        return None;
    }
    let echoed = if flags & netlink_packet_core::NLM_F_CAPPED != 0 {
        NLMSG_HDRLEN
    } else {
        u32::from_ne_bytes(body.get(..4)?.try_into().ok()?) as usize
    };
    let mut tlvs = body.get((echoed + 3) & !3..)?;
    while tlvs.len() >= 4 {
        let len = u16::from_ne_bytes([tlvs[0], tlvs[1]]) as usize;
        let kind = u16::from_ne_bytes([tlvs[2], tlvs[3]]);
        let value = tlvs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|b| *b == 0).next().unwrap_or(&[]);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = tlvs.get((len + 3) & !3..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            name: "dsmha0".into(),
            index: 7,
        }
    }

    /// The request's bytes after the 16-octet netlink header, checked field by field
    /// against linux/rtnetlink.h (struct rtmsg, struct ndmsg) and the attribute layout.
    fn body(op: Op) -> (Vec<u8>, u16, u16) {
        let (msg, flags) = op.message(&link());
        let b = encode(msg, flags, 42);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
        let kind = u16::from_ne_bytes([b[4], b[5]]);
        let fl = u16::from_ne_bytes([b[6], b[7]]);
        (b[16..].to_vec(), kind, fl)
    }

    #[test]
    fn route_replace_ipv4() {
        let (b, kind, flags) = body(Op::RouteReplace("198.51.100.0/30".parse().unwrap()));
        assert_eq!(kind, 24); // RTM_NEWROUTE
        assert_eq!(flags, 0x1 | 0x4 | 0x400 | 0x100); // REQUEST ACK CREATE REPLACE
                                                      // rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(4)
        assert_eq!(&b[..12], &[2, 30, 0, 0, 254, 4, 253, 1, 0, 0, 0, 0]);
        // RTA_DST (1), 4 octets; RTA_OIF (4), index 7.
        assert_eq!(&b[12..20], &[8, 0, 1, 0, 198, 51, 100, 0]);
        assert_eq!(&b[20..28], &[8, 0, 4, 0, 7, 0, 0, 0]);
        assert_eq!(b.len(), 28);
    }

    #[test]
    fn route_delete_ipv6_is_a_wildcard_on_protocol_scope_and_type() {
        let (b, kind, flags) = body(Op::RouteDelete("2001:db8:1::100/128".parse().unwrap()));
        assert_eq!(kind, 25); // RTM_DELROUTE
        assert_eq!(flags, 0x1 | 0x4);
        assert_eq!(&b[..12], &[10, 128, 0, 0, 254, 0, 255, 0, 0, 0, 0, 0]);
        assert_eq!(&b[12..16], &[20, 0, 1, 0]);
        let want: std::net::Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        assert_eq!(&b[16..32], &want.octets());
        assert_eq!(&b[32..40], &[8, 0, 4, 0, 7, 0, 0, 0]);
    }

    #[test]
    fn proxy_entries_carry_ntf_proxy() {
        let (b, kind, flags) = body(Op::ProxyAdd("2001:db8:1::100".parse().unwrap()));
        assert_eq!(kind, 28); // RTM_NEWNEIGH
        assert_eq!(flags, 0x1 | 0x4 | 0x400 | 0x100);
        // ndmsg: family, pad(3), ifindex(4), state(2) NUD_PERMANENT, flags NTF_PROXY, type
        assert_eq!(&b[..12], &[10, 0, 0, 0, 7, 0, 0, 0, 0x80, 0, 0x08, 0]);
        assert_eq!(&b[12..16], &[20, 0, 1, 0]); // NDA_DST
        let (b, kind, flags) = body(Op::ProxyDelete("198.51.100.2".parse().unwrap()));
        assert_eq!(kind, 29); // RTM_DELNEIGH
        assert_eq!(flags, 0x1 | 0x4);
        assert_eq!(&b[..12], &[2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0x08, 0]);
        assert_eq!(&b[12..20], &[8, 0, 1, 0, 198, 51, 100, 2]);
    }

    #[test]
    fn descriptions_read_like_iproute2() {
        let l = link();
        assert_eq!(
            Op::RouteReplace("198.51.100.0/30".parse().unwrap()).describe(&l),
            "route replace 198.51.100.0/30 dev dsmha0"
        );
        assert_eq!(
            Op::ProxyDelete("2001:db8:1::100".parse().unwrap()).describe(&l),
            "neigh del proxy 2001:db8:1::100 dev dsmha0"
        );
    }

    #[test]
    fn extended_ack_text_is_found_and_bounds_are_kept() {
        // Capped echo: the 16-octet header of the request, then NLMSGERR_ATTR_MSG.
        let mut body = vec![0u8; 16];
        let text = b"Nexthop device is not up\0";
        body.extend(((4 + text.len()) as u16).to_ne_bytes());
        body.extend(1u16.to_ne_bytes());
        body.extend(text);
        let flags = netlink_packet_core::NLM_F_CAPPED | NLM_F_ACK_TLVS;
        assert_eq!(
            ext_ack_text(&body, flags).as_deref(),
            Some("Nexthop device is not up")
        );
        assert_eq!(ext_ack_text(&body, netlink_packet_core::NLM_F_CAPPED), None);
        // A length past the end, a truncated body: nothing, no panic.
        let mut bad = body.clone();
        bad[16] = 200;
        assert_eq!(ext_ack_text(&bad, flags), None);
        assert_eq!(ext_ack_text(&body[..10], flags), None);
        assert_eq!(
            ext_ack_text(&[], flags & !netlink_packet_core::NLM_F_CAPPED),
            None
        );
    }

    #[test]
    fn malformed_answers_are_errors() {
        assert!(messages(&[0xff; 20]).all(|m| m.is_err()));
        assert_eq!(messages(&[]).count(), 0);
    }
}
