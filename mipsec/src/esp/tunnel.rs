//! ESP tunnel mode for DSMIPv6 (RFC 5555 §5.2.2) and the choice between it and the plain
//! tunnels of §4.1.
//!
//! Formats written and read here, as the home agent sees them:
//! - no NAT: `IPv4(v4CoA -> HA) / ESP / IP(HoA -> CN)` (ESP, protocol 50, RFC 4303 §3.1.2);
//! - NAT detected: `IPv4(v4Addr -> HA) / UDP(Y -> 4500) / ESP / IP(HoA -> CN)`, ESP in
//!   UDP as RFC 3948 §2.1 frames it, the combined NAT format of §5.2.2;
//! - over IPv6: `IPv6(CoA -> HA) / ESP / IP`.
//!
//! [`Route`] is what a binding says about an inner packet: ESP with an SA and outer path,
//! or one of the plain tunnels of [`crate::wire::tunnel`] (IP-in-IP, UDP 4191). An inner
//! packet finds its policy with [`packet_key`] and [`crate::spd::Spd::lookup`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::natt::{self, Datagram, NATT_PORT};
use super::sa::Inbound;
use super::{EspError, OutboundSa, Sad};
use crate::error::{need, room, Error};
use crate::spd::{Direction, Packet, Ports};
use crate::wire::ip::{
    Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr, IPPROTO_ESP, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP,
};
use crate::wire::tunnel::{self as plain, TunnelParams};

/// The outer headers of an ESP tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EspPath {
    V4 {
        src: Ipv4Addr,
        dst: Ipv4Addr,
    },
    /// ESP in UDP (RFC 3948); the destination port is 4500 towards a home agent, the
    /// NAT's port Y towards a mobile node.
    V4Udp {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
    },
    V6 {
        src: Ipv6Addr,
        dst: Ipv6Addr,
    },
}

impl EspPath {
    /// Octets of outer headers in front of the ESP packet.
    pub fn header_len(&self) -> usize {
        match self {
            EspPath::V4 { .. } => Ipv4Repr::HEADER_LEN,
            EspPath::V4Udp { .. } => Ipv4Repr::HEADER_LEN + UdpRepr::HEADER_LEN,
            EspPath::V6 { .. } => Ipv6Repr::HEADER_LEN,
        }
    }
}

/// How a binding says an inner packet leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// ESP tunnel mode with the outbound SA `spi` (RFC 5555 §5.2.2).
    Esp { spi: u32, path: EspPath, ttl: u8 },
    /// A plain tunnel (RFC 5555 §4.1): IP-in-IP or UDP 4191.
    Plain(TunnelParams),
}

/// The Next Header of a tunnel-mode ESP packet: the inner packet's IP version.
fn inner_next_header(inner: &[u8]) -> Result<u8, EspError> {
    Ok(match plain::ip_version(inner, "inner.version", 0)? {
        4 => IPPROTO_IPIP,
        _ => IPPROTO_IPV6,
    })
}

/// (DSCP, ECN) of an inner packet, copied outward (RFC 4301 §5.1.2.1, RFC 6040 normal mode).
fn inner_tos(inner: &[u8]) -> (u8, u8) {
    let tc = if inner[0] >> 4 == 4 {
        inner[1]
    } else {
        (inner[0] << 4) | (inner.get(1).copied().unwrap_or(0) >> 4)
    };
    (tc >> 2, tc & 3)
}

/// Wrap the inner IP packet `inner` in ESP tunnel mode with `sa` and the outer headers of
/// `path`; returns the length written to `out`.
pub fn encapsulate(
    sa: &mut OutboundSa,
    path: &EspPath,
    ttl: u8,
    inner: &[u8],
    out: &mut [u8],
) -> Result<usize, EspError> {
    let nh = inner_next_header(inner)?;
    let hl = path.header_len();
    let esp_len = sa.encapsulated_len(inner.len());
    room(out, "esp.tunnel", hl + esp_len)?;
    let n = sa.encapsulate(nh, inner, &mut out[hl..])?;
    write_outer(path, ttl, inner_tos(inner), &mut out[..hl + n], n)?;
    Ok(hl + n)
}

/// Write the outer headers in front of an ESP packet of `esp_len` octets already at
/// `buf[path.header_len()..]`.
pub fn write_outer(
    path: &EspPath,
    ttl: u8,
    (dscp, ecn): (u8, u8),
    buf: &mut [u8],
    esp_len: usize,
) -> Result<(), EspError> {
    match *path {
        EspPath::V4 { src, dst } | EspPath::V4Udp { src, dst, .. } => {
            let udp = matches!(path, EspPath::V4Udp { .. });
            let payload_len = esp_len + if udp { UdpRepr::HEADER_LEN } else { 0 };
            let repr = Ipv4Repr {
                dscp,
                ecn,
                identification: 0,
                dont_fragment: true,
                more_fragments: false,
                fragment_offset: 0,
                ttl,
                protocol: if udp { IPPROTO_UDP } else { IPPROTO_ESP },
                src,
                dst,
                payload_len: u16::try_from(payload_len).map_err(|_| Error::Unencodable {
                    field: "ipv4.total_length",
                    reason: "ESP packet too long",
                })?,
            };
            repr.emit(buf)?;
            if let EspPath::V4Udp {
                src_port, dst_port, ..
            } = *path
            {
                // RFC 3948 §2.1: the UDP checksum is sent as zero over IPv4.
                UdpRepr { src_port, dst_port }.emit(
                    &mut buf[Ipv4Repr::HEADER_LEN..],
                    esp_len,
                    &Pseudo::V4 { src, dst },
                    false,
                )?;
            }
        }
        EspPath::V6 { src, dst } => {
            let repr = Ipv6Repr {
                dscp,
                ecn,
                flow_label: 0,
                payload_len: u16::try_from(esp_len).map_err(|_| Error::Unencodable {
                    field: "ipv6.payload_length",
                    reason: "ESP packet too long",
                })?,
                next_header: IPPROTO_ESP,
                hop_limit: ttl,
                src,
                dst,
            };
            repr.emit(buf)?;
        }
    }
    Ok(())
}

/// Send `inner` along `route`: ESP through the SAD, or a plain tunnel.
pub fn send(route: &Route, sad: &mut Sad, inner: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
    match route {
        Route::Esp { spi, path, ttl } => {
            let sa = sad
                .outbound_mut(*spi)
                .ok_or(EspError::UnknownSpi { spi: *spi })?;
            encapsulate(sa, path, *ttl, inner, out)
        }
        Route::Plain(params) => Ok(plain::encapsulate(params, inner, out)?),
    }
}

/// What arrived on the outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A tunnel-mode ESP packet: the inner packet at `inner` in the buffer.
    Tunnel {
        /// Outer source and destination, and the UDP source port when ESP came in UDP:
        /// what RFC 5555 §5.1 asks the IPsec layer to pass up (the NAT's address and port).
        outer_src: IpAddr,
        outer_dst: IpAddr,
        udp_src_port: Option<u16>,
        spi: u32,
        seq: u64,
        inner: Range<usize>,
    },
    /// ESP with Next Header 59: dropped.
    Dummy,
    /// A NAT keepalive on port 4500 (RFC 3948 §2.3): dropped.
    Keepalive,
    /// An IKE message on port 4500, marker removed: for the keying daemon.
    Ike(Range<usize>),
}

/// Parse an outer IPv4 / IPv6 packet carrying ESP (directly or in UDP 4500), verify and
/// decrypt it with the SAD, in place.
pub fn receive(sad: &mut Sad, packet: &mut [u8]) -> Result<Received, EspError> {
    let (src, dst, proto, start, end) = match plain::ip_version(packet, "outer.version", 0)? {
        4 => {
            let (h, hl) = Ipv4Repr::parse(packet)?;
            if h.more_fragments || h.fragment_offset != 0 {
                return Err(Error::Invalid {
                    field: "ipv4.fragment",
                    offset: 6,
                    value: u64::from(h.fragment_offset),
                    reason: "fragments must be reassembled first",
                }
                .into());
            }
            (
                IpAddr::V4(h.src),
                IpAddr::V4(h.dst),
                h.protocol,
                hl,
                hl + usize::from(h.payload_len),
            )
        }
        _ => {
            let h = Ipv6Repr::parse(packet)?;
            let hl = Ipv6Repr::HEADER_LEN;
            (
                IpAddr::V6(h.src),
                IpAddr::V6(h.dst),
                h.next_header,
                hl,
                hl + usize::from(h.payload_len),
            )
        }
    };
    let (esp_at, sport) = match proto {
        IPPROTO_ESP => (start, None),
        IPPROTO_UDP => {
            need(packet, "udp.header", start, UdpRepr::HEADER_LEN)?;
            let dport = u16::from_be_bytes([packet[start + 2], packet[start + 3]]);
            if dport != NATT_PORT {
                return Err(Error::Invalid {
                    field: "udp.dst_port",
                    offset: start + 2,
                    value: u64::from(dport),
                    reason: "ESP in UDP uses port 4500",
                }
                .into());
            }
            let body = start + UdpRepr::HEADER_LEN;
            match natt::classify(&packet[body..end]).map_err(|e| e.shifted(body))? {
                Datagram::Keepalive => return Ok(Received::Keepalive),
                Datagram::Ike(_) => return Ok(Received::Ike(body + 4..end)),
                Datagram::Esp => {}
            }
            (
                body,
                Some(u16::from_be_bytes([packet[start], packet[start + 1]])),
            )
        }
        p => {
            return Err(Error::Invalid {
                field: "outer.protocol",
                offset: if src.is_ipv4() { 9 } else { 6 },
                value: u64::from(p),
                reason: "neither ESP nor UDP",
            }
            .into())
        }
    };
    let (spi, r) = sad
        .decapsulate(&mut packet[esp_at..end])
        .map_err(|e| match e {
            EspError::Wire(w) => EspError::Wire(w.shifted(esp_at)),
            e => e,
        })?;
    match r {
        Inbound::Dummy { .. } => Ok(Received::Dummy),
        Inbound::Packet {
            next_header,
            payload,
            seq,
        } => {
            if next_header != IPPROTO_IPIP && next_header != IPPROTO_IPV6 {
                return Err(Error::Invalid {
                    field: "esp.next_header",
                    offset: esp_at + payload.end,
                    value: u64::from(next_header),
                    reason: "tunnel mode carries IPv4 (4) or IPv6 (41)",
                }
                .into());
            }
            Ok(Received::Tunnel {
                outer_src: src,
                outer_dst: dst,
                udp_src_port: sport,
                spi,
                seq,
                inner: esp_at + payload.start..esp_at + payload.end,
            })
        }
    }
}

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;
const IPPROTO_MH: u8 = 135;
const IPPROTO_SCTP: u8 = 132;

/// The SPD key of an IP packet (RFC 4301 §5.1 step 1, §4.4.1.1): addresses, the upper
/// protocol past IPv6 extension headers, ports, ICMP type/code, or MH type in the high byte
/// (RFC 4301 §4.4.1.1, RFC 4877 §7.2.1). Non-initial fragments have OPAQUE ports.
pub fn packet_key(dir: Direction, pkt: &[u8]) -> Result<Packet, EspError> {
    let (src, dst, mut proto, mut at, opaque) = match plain::ip_version(pkt, "ip.version", 0)? {
        4 => {
            let (h, hl) = Ipv4Repr::parse(pkt)?;
            (
                IpAddr::V4(h.src),
                IpAddr::V4(h.dst),
                h.protocol,
                hl,
                h.fragment_offset != 0,
            )
        }
        _ => {
            let h = Ipv6Repr::parse(pkt)?;
            (
                IpAddr::V6(h.src),
                IpAddr::V6(h.dst),
                h.next_header,
                Ipv6Repr::HEADER_LEN,
                false,
            )
        }
    };
    let mut opaque = opaque;
    if src.is_ipv6() {
        // Walk the extension headers to the upper-layer protocol.
        while matches!(
            proto,
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS | IPPROTO_FRAGMENT
        ) {
            need(pkt, "ipv6.extension", at, 8)?;
            let next = pkt[at];
            let len = if proto == IPPROTO_FRAGMENT {
                let off = u16::from_be_bytes([pkt[at + 2], pkt[at + 3]]) >> 3;
                opaque |= off != 0;
                8
            } else {
                (usize::from(pkt[at + 1]) + 1) * 8
            };
            proto = next;
            at += len;
        }
    }
    let ports = if opaque {
        Ports::Opaque
    } else {
        match proto {
            IPPROTO_TCP | IPPROTO_UDP | IPPROTO_SCTP => {
                need(pkt, "transport.ports", at, 4)?;
                let s = u16::from_be_bytes([pkt[at], pkt[at + 1]]);
                let d = u16::from_be_bytes([pkt[at + 2], pkt[at + 3]]);
                Packet::src_dst_ports(dir, s, d)
            }
            IPPROTO_ICMP | IPPROTO_ICMPV6 => {
                need(pkt, "icmp.type", at, 2)?;
                Ports::Message(u16::from_be_bytes([pkt[at], pkt[at + 1]]))
            }
            IPPROTO_MH => {
                need(pkt, "mh.type", at, 3)?;
                Ports::Message(u16::from(pkt[at + 2]) << 8)
            }
            _ => Ports::Opaque,
        }
    };
    Ok(Packet::new(dir, src, dst, Some(proto), ports))
}
