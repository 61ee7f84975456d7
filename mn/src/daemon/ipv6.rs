//! Signalling and tunnels over an IPv6 care-of address (RFC 6275 §11.7.1, RFC 5555
//! §4.4.1, RFC 2473). The home agent answers a BU from an IPv6 care-of address with
//! `IPv6 (HA -> CoA) / type 2 routing header (HoA) / ESP / MH BA` and tunnels data as
//! IPv6-in-IPv6 (41) or IPv4-in-IPv6 (4) from its address to the care-of address.
//!
//! This kernel has no CONFIG_IPV6_MIP6: a type 2 routing header gets an ICMPv6 Parameter
//! Problem and the packet is dropped before any socket sees it. So the mobile node reads
//! what the home agent sends from one AF_PACKET socket (ETH_P_IPV6, every interface: it
//! sees packets before the IPv6 input code, and follows the care-of address whichever
//! interface it is on), and an nftables table of its own (created at start, deleted at
//! exit) drops these packets in prerouting, so the kernel sends no ICMPv6 error and no
//! tunnel handler touches them. Packets out are written whole through the `IPPROTO_RAW`
//! socket of `outer.rs`.
//!
//! The pure half (filter, classification, RH2 and checksum checks, encapsulation) is tested
//! here with byte arrays; the sockets by the lab test `interop/tests/mn_daemon.rs`.

use std::net::Ipv6Addr;
use std::ops::Range;

use anyhow::Result;
use dsmip_daemon::mip6::{NftTable, PacketReader};
use mipsec::wire::ext::RoutingHeaderType2;
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_ESP, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::{MhPacket, MhRepr};
use tokio::sync::mpsc;

use super::outer::{PROTO_IPIP, PROTO_IPV6};

/// The mobile node's own nftables table (family ip6).
pub const NFT_TABLE: &str = "dsmip_mn_mip6";
/// First next headers taken from the home agent: IPv4-in-IPv6, IPv6-in-IPv6, routing
/// (the BA's type 2 routing header), ESP.
pub const TAKEN: [u8; 4] = [PROTO_IPIP, PROTO_IPV6, IPPROTO_ROUTING, IPPROTO_ESP];
/// Outer hop limit of our tunnel packets (RFC 2473 §3.1 leaves it to the entry point).
const HOP_LIMIT: u8 = 64;

/// Is this (link-layer stripped) packet one for us: IPv6 from the home agent `ha`, not to
/// the home address `hoa` (inner packets on the TUN device), with a first next header in
/// [`TAKEN`]? Everything else is the kernel's.
pub fn wanted(pkt: &[u8], ha: &Ipv6Addr, hoa: &Ipv6Addr) -> bool {
    pkt.len() >= Ipv6Repr::HEADER_LEN
        && pkt[0] >> 4 == 6
        && pkt[8..24] == ha.octets()
        && pkt[24..40] != hoa.octets()
        && TAKEN.contains(&pkt[6])
}

/// What one IPv6 packet from the home agent carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum V6In {
    /// A type 2 routing header or ESP: signalling; the packet's length (trimmed to the IPv6
    /// payload length) and its destination.
    Signalling {
        len: usize,
        dst: Ipv6Addr,
    },
    /// IPv4-in-IPv6 (4) or IPv6-in-IPv6 (41) to `dst`, the inner packet at `inner`, whose
    /// version matches the protocol (RFC 2473 §3, RFC 5555 §4.1).
    Tunnel {
        protocol: u8,
        dst: Ipv6Addr,
        inner: Range<usize>,
    },
    Malformed(&'static str),
}

/// Classify a packet that passed [`wanted`]; never panics.
pub fn classify(pkt: &[u8]) -> V6In {
    let Ok(ip6) = Ipv6Repr::parse(pkt) else {
        return V6In::Malformed("IPv6 header does not parse");
    };
    let end = Ipv6Repr::HEADER_LEN + usize::from(ip6.payload_len);
    if end > pkt.len() {
        return V6In::Malformed("IPv6 payload length beyond the packet");
    }
    let version = pkt.get(Ipv6Repr::HEADER_LEN).map(|b| b >> 4);
    match (ip6.next_header, version) {
        (PROTO_IPIP, Some(4)) | (PROTO_IPV6, Some(6)) => V6In::Tunnel {
            protocol: ip6.next_header,
            dst: ip6.dst,
            inner: Ipv6Repr::HEADER_LEN..end,
        },
        (PROTO_IPIP | PROTO_IPV6, _) => V6In::Malformed("inner version does not match"),
        (IPPROTO_ROUTING | IPPROTO_ESP, _) => V6In::Signalling {
            len: end,
            dst: ip6.dst,
        },
        _ => V6In::Malformed("next header not taken"),
    }
}

/// Where ESP starts in a BA packet: behind its type 2 routing header, which must carry our
/// home address (RFC 6275 §11.3.3: the mobile node checks the home address; §6.4: one
/// segment). `Ok(true)`: ESP follows; `Ok(false)`: a cleartext MH follows.
pub fn rh2_then(pkt: &[u8], hoa: &Ipv6Addr) -> Result<bool, &'static str> {
    let ip6 = Ipv6Repr::parse(pkt).map_err(|_| "IPv6 header does not parse")?;
    let next = if ip6.next_header == IPPROTO_ROUTING {
        let rh = pkt
            .get(Ipv6Repr::HEADER_LEN..)
            .and_then(|b| RoutingHeaderType2::parse(b).ok())
            .ok_or("not a type 2 routing header")?;
        if rh.home_address != *hoa {
            return Err("type 2 routing header for another home address");
        }
        rh.next_header
    } else {
        ip6.next_header
    };
    match next {
        IPPROTO_ESP => Ok(true),
        IPPROTO_MH => Ok(false),
        _ => Err("neither ESP nor a Mobility Header behind the routing header"),
    }
}

/// The Mobility Header of a (decrypted) BA packet `IPv6 / RH2 / MH`, its checksum verified
/// with the home address as destination (RFC 6275 §6.1.1: the pseudo-header uses the
/// final destination, the home address of the routing header).
pub fn ba_mh(pkt: &[u8], hoa: &Ipv6Addr) -> Result<MhRepr, &'static str> {
    let ip6 = Ipv6Repr::parse(pkt).map_err(|_| "IPv6 header does not parse")?;
    let mut at = Ipv6Repr::HEADER_LEN;
    let mut next = ip6.next_header;
    if next == IPPROTO_ROUTING {
        let rh = pkt
            .get(at..)
            .and_then(|b| RoutingHeaderType2::parse(b).ok())
            .ok_or("not a type 2 routing header")?;
        next = rh.next_header;
        at += RoutingHeaderType2::LEN;
    }
    if next != IPPROTO_MH {
        return Err("no Mobility Header");
    }
    let end = Ipv6Repr::HEADER_LEN + usize::from(ip6.payload_len);
    let bytes = pkt
        .get(at..end)
        .ok_or("Mobility Header beyond the packet")?;
    let mh = MhPacket::new_checked(bytes).map_err(|_| "malformed Mobility Header")?;
    mh.verify_checksum(&ip6.src, hoa)
        .map_err(|_| "Mobility Header checksum (pseudo-header with the home address)")?;
    MhRepr::parse(&mh).map_err(|_| "Mobility Header does not parse")
}

/// `inner` (IPv4 or IPv6) behind `IPv6 (src -> dst)` with next header 4 or 41 by its
/// version (RFC 2473 §3, RFC 5555 §4.1); `None` for another version or over 65535 octets.
pub fn encapsulate(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Option<Vec<u8>> {
    let next_header = match inner.first()? >> 4 {
        4 => PROTO_IPIP,
        6 => PROTO_IPV6,
        _ => return None,
    };
    let mut p = vec![0u8; Ipv6Repr::HEADER_LEN + inner.len()];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: u16::try_from(inner.len()).ok()?,
        next_header,
        hop_limit: HOP_LIMIT,
        src,
        dst,
    }
    .emit(&mut p)
    .ok()?;
    p[Ipv6Repr::HEADER_LEN..].copy_from_slice(inner);
    Some(p)
}

/// The nftables table that keeps the kernel from answering (or handling) what we take.
pub fn nft_rules(ha: &Ipv6Addr, hoa: &Ipv6Addr) -> String {
    let protos = TAKEN.map(|p| p.to_string()).join(", ");
    format!(
        "table ip6 {NFT_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -300; policy accept;\n    ip6 saddr {ha} ip6 daddr != {hoa} ip6 nexthdr {{ {protos} }} drop\n  }}\n}}\n"
    )
}

/// The packet socket (with its reader thread) and the nftables table; dropping it deletes
/// the table.
pub struct Ipv6In {
    _reader: PacketReader,
    _table: NftTable,
}

impl Ipv6In {
    /// Install the nftables table, open the AF_PACKET socket and start its reader: packets
    /// that pass [`wanted`] go to `tx`.
    pub fn start(ha: Ipv6Addr, hoa: Ipv6Addr, tx: mpsc::Sender<Vec<u8>>) -> Result<Ipv6In> {
        let table = NftTable::install(NFT_TABLE, &nft_rules(&ha, &hoa))?;
        let reader = PacketReader::start(None, move |p| wanted(p, &ha, &hoa), tx)?;
        Ok(Ipv6In {
            _reader: reader,
            _table: table,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mipsec::wire::{BaFlags, BaStatus, MhMessage};

    const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 5, 0, 0, 0, 0, 2);

    fn ip6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0u8; 40 + payload.len()];
        Ipv6Repr {
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            payload_len: payload.len() as u16,
            next_header: next,
            hop_limit: 64,
            src,
            dst,
        }
        .emit(&mut p)
        .unwrap();
        p[40..].copy_from_slice(payload);
        p
    }

    /// `IPv6 (HA -> CoA) / RH2 (home) / MH BA`, checksum over `sum_dst`.
    fn ba(home: Ipv6Addr, sum_dst: Ipv6Addr) -> Vec<u8> {
        let mh = MhRepr {
            message: MhMessage::BindingAck {
                status: BaStatus(0),
                flags: BaFlags(BaFlags::K),
                sequence: 7,
                lifetime: 100,
            },
            options: vec![],
        };
        let mut m = vec![0u8; mh.buffer_len()];
        mh.emit(&mut m, &HA, &sum_dst).unwrap();
        let mut rest = vec![0u8; RoutingHeaderType2::LEN];
        RoutingHeaderType2 {
            next_header: IPPROTO_MH,
            segments_left: 1,
            home_address: home,
        }
        .emit(&mut rest)
        .unwrap();
        rest.extend(m);
        ip6(HA, COA, IPPROTO_ROUTING, &rest)
    }

    #[test]
    fn only_packets_from_the_home_agent_with_taken_headers_are_wanted() {
        assert!(wanted(&ip6(HA, COA, IPPROTO_ROUTING, &[0; 24]), &HA, &HOA));
        assert!(wanted(&ip6(HA, COA, 41, &[0x60; 40]), &HA, &HOA));
        assert!(!wanted(&ip6(COA, HA, 41, &[0x60; 40]), &HA, &HOA), "source");
        assert!(!wanted(&ip6(HA, HOA, 50, &[0; 40]), &HA, &HOA), "inner");
        assert!(!wanted(&ip6(HA, COA, 58, &[0; 8]), &HA, &HOA), "ICMPv6");
        assert!(!wanted(&[0x60; 20], &HA, &HOA));
    }

    #[test]
    fn tunnels_and_signalling_are_classified_with_lengths_checked() {
        let inner6 = ip6(HOA, COA, 59, &[]);
        let p = ip6(HA, COA, 41, &inner6);
        assert_eq!(
            classify(&p),
            V6In::Tunnel {
                protocol: 41,
                dst: COA,
                inner: 40..80
            }
        );
        // IPv6 inside protocol 4: the version does not match.
        assert!(matches!(
            classify(&ip6(HA, COA, 4, &inner6)),
            V6In::Malformed(_)
        ));
        let mut cut = p.clone();
        cut.truncate(60);
        assert!(matches!(classify(&cut), V6In::Malformed(_)));
        // Padding after the payload length is not part of the packet.
        let mut padded = ba(HOA, HOA);
        let n = padded.len();
        padded.extend([0u8; 6]);
        assert_eq!(classify(&padded), V6In::Signalling { len: n, dst: COA });
        assert!(matches!(classify(&[0u8; 3]), V6In::Malformed(_)));
    }

    #[test]
    fn the_ba_needs_our_home_address_and_its_checksum() {
        let p = ba(HOA, HOA);
        assert_eq!(rh2_then(&p, &HOA), Ok(false));
        let mh = ba_mh(&p, &HOA).unwrap();
        assert!(matches!(
            mh.message,
            MhMessage::BindingAck { sequence: 7, .. }
        ));
        // Another home address in the routing header.
        let other: Ipv6Addr = "2001:db8:1::9".parse().unwrap();
        assert!(rh2_then(&ba(other, other), &HOA).is_err());
        // Checksum over the care-of address instead of the home address.
        assert!(ba_mh(&ba(HOA, COA), &HOA).is_err());
        // ESP behind the routing header.
        let mut esp = p.clone();
        esp[40] = IPPROTO_ESP;
        assert_eq!(rh2_then(&esp, &HOA), Ok(true));
        for n in [0, 39, 41, 60, p.len() - 1] {
            let _ = rh2_then(&p[..n], &HOA);
            assert!(ba_mh(&p[..n], &HOA).is_err(), "cut at {n}");
        }
    }

    #[test]
    fn ip_in_ipv6_takes_the_protocol_of_the_inner_version() {
        let inner4 = [
            0x45u8, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8,
        ];
        let o = encapsulate(COA, HA, &inner4).unwrap();
        assert_eq!(
            (o[6], &o[8..24], &o[24..40]),
            (4, &COA.octets()[..], &HA.octets()[..])
        );
        assert_eq!(&o[40..], &inner4);
        let o = encapsulate(COA, HA, &ip6(HOA, HA, 59, &[])).unwrap();
        assert_eq!(o[6], 41);
        assert_eq!(encapsulate(COA, HA, &[0x10]), None);
        assert_eq!(encapsulate(COA, HA, &[]), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A fixed xorshift sequence: packets with a valid-looking start and random rest.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            let mut p = ba(HOA, HOA);
            let n = round % (p.len() + 8);
            p.resize(n, 0);
            for b in p.iter_mut().skip(round % 48) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if x % 5 == 0 {
                    *b = x as u8;
                }
            }
            let _ = (wanted(&p, &HA, &HOA), classify(&p));
            let _ = (rh2_then(&p, &HOA), ba_mh(&p, &HOA));
        }
    }

    #[test]
    fn nft_rules_name_the_home_agent_and_headers() {
        let r = nft_rules(&HA, &HOA);
        assert!(
            r.contains("ip6 saddr 2001:db8:1::1 ip6 daddr != 2001:db8:1::100 ip6 nexthdr { 4, 41, 43, 50 } drop"),
            "{r}"
        );
        assert!(r.contains("hook prerouting priority -300"), "{r}");
    }
}
