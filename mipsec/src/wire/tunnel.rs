//! The tunnel formats of RFC 5555 §4.1: IPv6 in IPv4 (protocol 41), IPv4 in IPv4 (4),
//! IPv4 in IPv6 (4), IPv6 in IPv6 (41, RFC 2473), and either family inside UDP, where the
//! receiver tells IPv4 from IPv6 by the version nibble after the UDP header.
//!
//! Encapsulation copies DSCP and ECN to the outer header (RFC 6040 §4.1 normal mode; RFC
//! 2983 for DSCP) and, when the tunnel entry point is forwarding the packet, decrements the
//! inner TTL / hop limit as IP-in-IP does (RFC 2003 §3.1, RFC 2473 §3.1; RFC 5555 §4.1.1 asks
//! the same of UDP). Decapsulation combines the ECN fields as RFC 6040 §4.2 says.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::Range;

use super::checksum;
use super::ip::{
    invalid, Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_UDP,
};
use super::put16;
use crate::error::{need, room, Error, Result};

/// UDP port for DSMIPv6 NAT traversal (IANA "dsmipv6", RFC 5555 §4.1).
pub const DSMIPV6_PORT: u16 = 4191;
/// Outer TTL / hop limit used when the caller has no better value.
pub const DEFAULT_OUTER_TTL: u8 = 64;

/// The outer addresses of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outer {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Outer {
    fn header_len(&self) -> usize {
        match self {
            Outer::V4 { .. } => Ipv4Repr::HEADER_LEN,
            Outer::V6 { .. } => Ipv6Repr::HEADER_LEN,
        }
    }

    fn pseudo(&self) -> Pseudo {
        match *self {
            Outer::V4 { src, dst } => Pseudo::V4 { src, dst },
            Outer::V6 { src, dst } => Pseudo::V6 { src, dst },
        }
    }
}

/// Plain IP-in-IP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    IpInIp,
    Udp { src_port: u16, dst_port: u16 },
}

/// How to build the outer headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelParams {
    pub outer: Outer,
    pub encap: Encap,
    /// Outer TTL / hop limit.
    pub outer_ttl: u8,
    /// Outer IPv4 Identification (ignored over IPv6).
    pub identification: u16,
    /// Set the UDP checksum over IPv4 (it is always set over IPv6).
    pub udp_checksum_v4: bool,
    /// The entry point forwards the inner packet: decrement its TTL / hop limit.
    pub forwarding: bool,
}

/// The IP version of a packet from its first nibble.
pub fn ip_version(packet: &[u8], field: &'static str, offset: usize) -> Result<u8> {
    need(packet, field, offset, 1)?;
    match packet[offset] >> 4 {
        v @ (4 | 6) => Ok(v),
        v => Err(invalid(field, offset, v, "IP version must be 4 or 6")),
    }
}

/// (DSCP, ECN) of an IPv4 or IPv6 packet.
fn tos(packet: &[u8]) -> (u8, u8) {
    let tc = if packet[0] >> 4 == 4 {
        packet[1]
    } else {
        (packet[0] << 4) | (packet[1] >> 4)
    };
    (tc >> 2, tc & 0x03)
}

/// Rewrite the ECN bits of an IPv4 or IPv6 packet (fixing the IPv4 header checksum).
fn set_ecn(packet: &mut [u8], ecn: u8) {
    if packet[0] >> 4 == 4 {
        packet[1] = (packet[1] & 0xfc) | ecn;
        refresh_ipv4_checksum(packet);
    } else {
        packet[1] = (packet[1] & 0xcf) | (ecn << 4);
    }
}

fn refresh_ipv4_checksum(packet: &mut [u8]) {
    let hlen = usize::from(packet[0] & 0x0f) * 4;
    put16(packet, 10, 0);
    let c = checksum::checksum(&packet[..hlen]);
    put16(packet, 10, c);
}

/// Check the inner packet's header is complete and return its version.
fn check_inner(inner: &[u8], offset: usize) -> Result<u8> {
    let v = ip_version(inner, "inner.version", offset)?;
    let min = if v == 4 { 20 } else { 40 };
    need(inner, "inner.header", offset, min)?;
    if v == 4 {
        let ihl = usize::from(inner[offset] & 0x0f) * 4;
        if ihl < 20 {
            return Err(invalid(
                "inner.ihl",
                offset,
                inner[offset] & 0x0f,
                "less than 5",
            ));
        }
        // The whole header, options included, must be there: its checksum may be rewritten.
        need(inner, "inner.options", offset + 20, ihl - 20)?;
    }
    Ok(v)
}

/// Bytes `encapsulate` writes for an inner packet of `inner_len` octets.
pub fn encapsulated_len(params: &TunnelParams, inner_len: usize) -> usize {
    let udp = match params.encap {
        Encap::IpInIp => 0,
        Encap::Udp { .. } => UdpRepr::HEADER_LEN,
    };
    params.outer.header_len() + udp + inner_len
}

/// Wrap `inner` (a whole IPv4 or IPv6 packet) into `out`; returns the length written.
pub fn encapsulate(params: &TunnelParams, inner: &[u8], out: &mut [u8]) -> Result<usize> {
    let version = check_inner(inner, 0)?;
    let total = encapsulated_len(params, inner.len());
    room(out, "tunnel", total)?;
    let hdr = params.outer.header_len();
    let udp = total - hdr - inner.len();
    let body = &mut out[hdr + udp..total];
    body.copy_from_slice(inner);
    if params.forwarding {
        let ttl_at = if version == 4 { 8 } else { 7 };
        if body[ttl_at] <= 1 {
            return Err(invalid(
                "inner.ttl",
                ttl_at,
                body[ttl_at],
                "expires at the tunnel entry point",
            ));
        }
        body[ttl_at] -= 1;
        if version == 4 {
            refresh_ipv4_checksum(body);
        }
    }
    let (dscp, ecn) = tos(inner);
    // RFC 2003 §3.1: an IPv4 inner header with DF set makes the outer header DF too.
    let dont_fragment = version == 4 && inner[6] & 0x40 != 0;
    let protocol = match params.encap {
        Encap::Udp { .. } => IPPROTO_UDP,
        Encap::IpInIp if version == 4 => IPPROTO_IPIP,
        Encap::IpInIp => IPPROTO_IPV6,
    };
    if let Encap::Udp { src_port, dst_port } = params.encap {
        UdpRepr { src_port, dst_port }.emit(
            &mut out[hdr..total],
            inner.len(),
            &params.outer.pseudo(),
            params.udp_checksum_v4,
        )?;
    }
    let payload_len = u16::try_from(total - hdr).map_err(|_| Error::Unencodable {
        field: "tunnel.payload_length",
        reason: "inner packet too large for the outer header",
    })?;
    match params.outer {
        Outer::V4 { src, dst } => Ipv4Repr {
            dscp,
            ecn,
            identification: params.identification,
            dont_fragment,
            more_fragments: false,
            fragment_offset: 0,
            ttl: params.outer_ttl,
            protocol,
            src,
            dst,
            payload_len,
        }
        .emit(out)?,
        Outer::V6 { src, dst } => Ipv6Repr {
            dscp,
            ecn,
            flow_label: 0,
            payload_len,
            next_header: protocol,
            hop_limit: params.outer_ttl,
            src,
            dst,
        }
        .emit(out)?,
    }
    Ok(total)
}

/// What `decapsulate` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decapsulated {
    pub outer: Outer,
    pub encap: Encap,
    pub outer_ttl: u8,
    /// 4 or 6.
    pub inner_version: u8,
    /// Where the inner packet lies in the buffer.
    pub inner: Range<usize>,
}

/// The ECN field after decapsulation (RFC 6040 §4.2), or `None` when the packet must be
/// dropped (CE outside a Not-ECT packet).
pub fn ecn_decap(inner: u8, outer: u8) -> Option<u8> {
    const NOT_ECT: u8 = 0;
    const ECT1: u8 = 1;
    const CE: u8 = 3;
    match (inner, outer) {
        (NOT_ECT, CE) => None,
        (NOT_ECT, _) => Some(NOT_ECT),
        (CE, _) => Some(CE),
        (_, CE) => Some(CE),
        (_, ECT1) => Some(ECT1),
        (i, _) => Some(i),
    }
}

/// Unwrap a tunnelled packet in place: parse the outer IPv4 or IPv6 header (and UDP
/// header), check the inner header, and apply RFC 6040 ECN to it.
pub fn decapsulate(packet: &mut [u8]) -> Result<Decapsulated> {
    let (outer, protocol, outer_ttl, outer_ecn, start, end) =
        match ip_version(packet, "outer.version", 0)? {
            4 => {
                let (h, hlen) = Ipv4Repr::parse(packet)?;
                if h.more_fragments || h.fragment_offset != 0 {
                    return Err(invalid(
                        "ipv4.fragment",
                        6,
                        h.fragment_offset,
                        "fragments must be reassembled first",
                    ));
                }
                let o = Outer::V4 {
                    src: h.src,
                    dst: h.dst,
                };
                (
                    o,
                    h.protocol,
                    h.ttl,
                    h.ecn,
                    hlen,
                    hlen + usize::from(h.payload_len),
                )
            }
            _ => {
                let h = Ipv6Repr::parse(packet)?;
                let o = Outer::V6 {
                    src: h.src,
                    dst: h.dst,
                };
                (
                    o,
                    h.next_header,
                    h.hop_limit,
                    h.ecn,
                    40,
                    40 + usize::from(h.payload_len),
                )
            }
        };
    let (encap, inner_start, end) = match protocol {
        IPPROTO_UDP => {
            let (u, len) = UdpRepr::parse(&packet[start..end], &outer.pseudo())
                .map_err(|e| e.shifted(start))?;
            let inner_start = start + UdpRepr::HEADER_LEN;
            let encap = Encap::Udp {
                src_port: u.src_port,
                dst_port: u.dst_port,
            };
            // The datagram ends where UDP's length says, not where the IP payload does.
            (encap, inner_start, inner_start + len)
        }
        IPPROTO_IPIP | IPPROTO_IPV6 => (Encap::IpInIp, start, end),
        p => {
            let at = if start == 40 { 6 } else { 9 };
            return Err(invalid(
                "outer.protocol",
                at,
                p,
                "not a tunnel protocol (4, 41 or UDP)",
            ));
        }
    };
    let inner_version = check_inner(&packet[..end], inner_start)?;
    let want = match protocol {
        IPPROTO_IPIP => 4,
        IPPROTO_IPV6 => 6,
        _ => inner_version,
    };
    if inner_version != want {
        return Err(invalid(
            "inner.version",
            inner_start,
            inner_version,
            "does not match the outer protocol",
        ));
    }
    let inner = &mut packet[inner_start..end];
    let (_, inner_ecn) = tos(inner);
    let Some(ecn) = ecn_decap(inner_ecn, outer_ecn) else {
        return Err(invalid(
            "outer.ecn",
            1,
            outer_ecn,
            "CE on a Not-ECT inner packet: drop (RFC 6040)",
        ));
    };
    if ecn != inner_ecn {
        set_ecn(inner, ecn);
    }
    Ok(Decapsulated {
        outer,
        encap,
        outer_ttl,
        inner_version,
        inner: inner_start..end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ip::IPPROTO_NONE;

    fn v6_packet(ecn: u8, hop: u8) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        Ipv6Repr {
            dscp: 10,
            ecn,
            flow_label: 0,
            payload_len: 8,
            next_header: IPPROTO_NONE,
            hop_limit: hop,
            src: "2001:db8:99::5".parse().unwrap(),
            dst: "2001:db8:1::100".parse().unwrap(),
        }
        .emit(&mut p)
        .unwrap();
        p
    }

    fn v4_packet(ecn: u8, ttl: u8) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        Ipv4Repr {
            dscp: 46,
            ecn,
            identification: 1,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl,
            protocol: 17,
            src: Ipv4Addr::new(198, 51, 100, 5),
            dst: Ipv4Addr::new(192, 0, 2, 100),
            payload_len: 8,
        }
        .emit(&mut p)
        .unwrap();
        p
    }

    fn params(outer: Outer, encap: Encap) -> TunnelParams {
        TunnelParams {
            outer,
            encap,
            outer_ttl: 64,
            identification: 7,
            udp_checksum_v4: true,
            forwarding: true,
        }
    }

    fn v4_outer() -> Outer {
        Outer::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(203, 0, 113, 9),
        }
    }

    fn v6_outer() -> Outer {
        Outer::V6 {
            src: "2001:db8:1::1".parse().unwrap(),
            dst: "2001:db8:10::2".parse().unwrap(),
        }
    }

    #[test]
    fn ipv6_in_ipv4_header_fields() {
        let inner = v6_packet(1, 64);
        let mut out = [0u8; 128];
        let n = encapsulate(&params(v4_outer(), Encap::IpInIp), &inner, &mut out).unwrap();
        assert_eq!(n, 20 + 48);
        let (h, _) = Ipv4Repr::parse(&out[..n]).unwrap();
        assert_eq!((h.protocol, h.dscp, h.ecn, h.ttl), (41, 10, 1, 64));
        // The inner hop limit went down by one.
        assert_eq!(out[20 + 7], 63);
        let mut pkt = out[..n].to_vec();
        let d = decapsulate(&mut pkt).unwrap();
        assert_eq!(
            (d.inner_version, d.encap, d.inner.clone()),
            (6, Encap::IpInIp, 20..68)
        );
    }

    #[test]
    fn every_format_round_trips() {
        let udp = Encap::Udp {
            src_port: 4191,
            dst_port: 4191,
        };
        for outer in [v4_outer(), v6_outer()] {
            for encap in [Encap::IpInIp, udp] {
                for inner in [v4_packet(2, 9), v6_packet(2, 9)] {
                    let mut out = [0u8; 160];
                    let p = params(outer, encap);
                    let n = encapsulate(&p, &inner, &mut out).unwrap();
                    let mut pkt = out[..n].to_vec();
                    let d = decapsulate(&mut pkt).unwrap();
                    assert_eq!((d.outer, d.encap, d.outer_ttl), (outer, encap, 64));
                    let got = &pkt[d.inner.clone()];
                    assert_eq!(got.len(), inner.len());
                    // Same packet but for the decremented TTL (and IPv4 checksum).
                    let ttl_at = if inner[0] >> 4 == 4 { 8 } else { 7 };
                    assert_eq!(got[ttl_at], 8);
                    if inner[0] >> 4 == 4 {
                        assert_eq!(checksum::checksum(&got[..20]), 0);
                    }
                }
            }
        }
    }

    #[test]
    fn udp_checksum_rules() {
        let udp = Encap::Udp {
            src_port: 4191,
            dst_port: 4191,
        };
        let mut p = params(v4_outer(), udp);
        p.udp_checksum_v4 = false;
        let mut out = [0u8; 128];
        encapsulate(&p, &v6_packet(0, 5), &mut out).unwrap();
        assert_eq!(&out[26..28], &[0, 0]);
        p.outer = v6_outer();
        let n = encapsulate(&p, &v6_packet(0, 5), &mut out).unwrap();
        assert_ne!(&out[46..48], &[0, 0]);
        let mut bad = out[..n].to_vec();
        bad[n - 1] ^= 1;
        assert_eq!(decapsulate(&mut bad).unwrap_err().offset(), Some(46));
    }

    #[test]
    fn udp_payload_dispatch_on_version_nibble() {
        let udp = Encap::Udp {
            src_port: 4191,
            dst_port: 4191,
        };
        let mut out = [0u8; 128];
        let n = encapsulate(&params(v4_outer(), udp), &v4_packet(0, 5), &mut out).unwrap();
        let mut pkt = out[..n].to_vec();
        assert_eq!(decapsulate(&mut pkt).unwrap().inner_version, 4);
        // Corrupt the nibble (and fix the UDP checksum by zeroing it, allowed over IPv4).
        pkt[28] = 0x55;
        pkt[26] = 0;
        pkt[27] = 0;
        let e = decapsulate(&mut pkt).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("inner.version", Some(28)));
    }

    #[test]
    fn ttl_expiry_at_entry_point() {
        let mut out = [0u8; 128];
        let e = encapsulate(
            &params(v4_outer(), Encap::IpInIp),
            &v4_packet(0, 1),
            &mut out,
        )
        .unwrap_err();
        assert_eq!(e.field(), "inner.ttl");
        let mut p = params(v4_outer(), Encap::IpInIp);
        p.forwarding = false;
        let n = encapsulate(&p, &v4_packet(0, 1), &mut out).unwrap();
        assert_eq!(out[20 + 8], 1);
        assert_eq!(n, 48);
    }

    #[test]
    fn rfc6040_decapsulation_table() {
        // Rows: inner Not-ECT, ECT(0), ECT(1), CE; columns: outer Not-ECT, ECT(0), ECT(1), CE.
        let table = [
            [Some(0), Some(0), Some(0), None],
            [Some(2), Some(2), Some(1), Some(3)],
            [Some(1), Some(1), Some(1), Some(3)],
            [Some(3), Some(3), Some(3), Some(3)],
        ];
        let ecn = [0, 2, 1, 3];
        for (i, row) in table.iter().enumerate() {
            for (o, want) in row.iter().enumerate() {
                assert_eq!(ecn_decap(ecn[i], ecn[o]), *want, "inner {i} outer {o}");
            }
        }
    }

    #[test]
    fn decap_marks_ce_and_drops_not_ect() {
        let mut out = [0u8; 128];
        let n = encapsulate(
            &params(v4_outer(), Encap::IpInIp),
            &v4_packet(2, 9),
            &mut out,
        )
        .unwrap();
        // Outer becomes CE on the path.
        out[1] |= 3;
        refresh_ipv4_checksum(&mut out[..20]);
        let mut pkt = out[..n].to_vec();
        let d = decapsulate(&mut pkt).unwrap();
        let inner = &pkt[d.inner];
        assert_eq!(inner[1] & 3, 3);
        assert_eq!(checksum::checksum(&inner[..20]), 0);
        let n = encapsulate(
            &params(v4_outer(), Encap::IpInIp),
            &v4_packet(0, 9),
            &mut out,
        )
        .unwrap();
        out[1] |= 3;
        refresh_ipv4_checksum(&mut out[..20]);
        assert_eq!(decapsulate(&mut out[..n]).unwrap_err().field(), "outer.ecn");
    }

    #[test]
    fn inner_ipv4_options_must_be_present() {
        // Inner IPv4 with IHL 15 (60-octet header) but only 20 octets: an error, not a panic.
        let mut inner = v4_packet(2, 9);
        inner[0] = 0x4f;
        inner.truncate(20);
        let mut out = [0u8; 128];
        let e = encapsulate(&params(v4_outer(), Encap::IpInIp), &inner, &mut out).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("inner.options", Some(20)));
        let hex =
            "45030028000000004004f6cbc0000201c00002024f020014000000004011ecd3c0000201c0000202";
        let mut pkt: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        assert_eq!(decapsulate(&mut pkt).unwrap_err().field(), "inner.options");
    }

    #[test]
    fn outer_copies_df_dscp_ecn_and_sets_ttl() {
        let mut p = params(v4_outer(), Encap::IpInIp);
        p.outer_ttl = 17;
        let mut out = [0u8; 128];
        // The IPv4 inner packet has DF set (RFC 2003 §3.1), DSCP 46 and ECT(1).
        let n = encapsulate(&p, &v4_packet(1, 9), &mut out).unwrap();
        let (h, _) = Ipv4Repr::parse(&out[..n]).unwrap();
        assert_eq!(
            (h.dont_fragment, h.dscp, h.ecn, h.ttl, h.protocol),
            (true, 46, 1, 17, 4)
        );
        let mut inner = v4_packet(0, 9);
        inner[6] = 0;
        refresh_ipv4_checksum(&mut inner);
        let n = encapsulate(&p, &inner, &mut out).unwrap();
        assert!(!Ipv4Repr::parse(&out[..n]).unwrap().0.dont_fragment);
        // IPv6 inner: DF stays clear.
        let n = encapsulate(&p, &v6_packet(0, 9), &mut out).unwrap();
        assert!(!Ipv4Repr::parse(&out[..n]).unwrap().0.dont_fragment);
    }

    #[test]
    fn udp_length_bounds_the_inner_packet() {
        let udp = Encap::Udp {
            src_port: 4191,
            dst_port: 4191,
        };
        let mut p = params(v4_outer(), udp);
        p.udp_checksum_v4 = false;
        let inner = v4_packet(0, 9);
        let mut out = vec![0u8; 20 + 8 + inner.len() + 4];
        let n = encapsulate(&p, &inner, &mut out).unwrap();
        // Four stray octets after the datagram, inside the IP payload.
        let total = (n + 4) as u16;
        out[2..4].copy_from_slice(&total.to_be_bytes());
        refresh_ipv4_checksum(&mut out[..20]);
        let d = decapsulate(&mut out).unwrap();
        assert_eq!(d.inner, 28..28 + inner.len());
    }
}
