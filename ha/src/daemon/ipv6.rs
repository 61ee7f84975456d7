//! Signalling and tunnels over native IPv6 (RFC 6275 §10.3.1, §11.7.1, RFC 5555 §4.4.1,
//! RFC 2473): a mobile node with an IPv6 care-of address sends
//! `IPv6 (CoA -> HA) / Destination Options (Home Address) / ESP / MH BU`, and data as
//! IPv6-in-IPv6 (41) or IPv4-in-IPv6 (4) from its care-of address to the home agent address.
//!
//! This kernel has no CONFIG_IPV6_MIP6: it answers a Home Address option (and a type 2
//! routing header) with ICMPv6 Parameter Problem and drops the packet. So the home agent
//! reads these packets from AF_PACKET sockets on `daemon.listen_v6_interfaces` (which see
//! them before the IPv6 input code), and an nftables table of its own (created at start,
//! deleted at exit) drops them in prerouting so the kernel sends no ICMPv6 error. Packets
//! out (the BA with its type 2 routing header, tunnels) are written whole, header included,
//! through one `IPPROTO_RAW` IPv6 socket: `IPV6_RTHDR` would refuse type 2 here.
//!
//! The pure half (filtering, classification, packet building, the anti-spoofing rule) is
//! tested here with byte arrays; the sockets are exercised by the lab test.

use std::net::Ipv6Addr;
use std::time::Instant;

use anyhow::{Context, Result};
use ha::{HomeAgent, Reply, RxContext, SaInfo, Transport};
use mipsec::wire::ext::RoutingHeaderType2;
use mipsec::wire::ip::{
    Ipv6Repr, IPPROTO_DSTOPTS, IPPROTO_ESP, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_MH, IPPROTO_ROUTING,
};
use mipsec::wire::tunnel::{Encap, Outer};
use tokio::sync::mpsc;

use dsmip_daemon::mip6::{NftTable, PacketReader, RawIpv6};
use dsmip_daemon::net::source;

/// The home agent's own nftables table (family ip6).
pub const NFT_TABLE: &str = "dsmip_ha_mip6";
/// First next headers the home agent takes from the packet sockets: IPv4-in-IPv6,
/// IPv6-in-IPv6, ESP, Destination Options, Mobility Header.
pub const TAKEN: [u8; 5] = [
    IPPROTO_IPIP,
    IPPROTO_IPV6,
    IPPROTO_ESP,
    IPPROTO_DSTOPTS,
    IPPROTO_MH,
];
/// Outer hop limit of the packets we originate (RFC 2473 §3.1 leaves it to the entry point).
const HOP_LIMIT: u8 = 64;

/// Is this (link-layer stripped) packet one for us: IPv6 to `ha` with a first next header
/// in [`TAKEN`]? Everything else on the interface is the kernel's.
pub fn wanted(pkt: &[u8], ha: &Ipv6Addr) -> bool {
    pkt.len() >= Ipv6Repr::HEADER_LEN
        && pkt[0] >> 4 == 6
        && pkt[24..40] == ha.octets()
        && TAKEN.contains(&pkt[6])
}

/// What one IPv6 packet to the home agent carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V6In<'a> {
    /// Mobility Header, ESP, or either behind a Destination Options header: signalling
    /// (the packet, trimmed to its IPv6 payload length, for `rx::classify`).
    Signalling(&'a [u8]),
    /// IPv4-in-IPv6 (4) or IPv6-in-IPv6 (41) from `src` (RFC 2473).
    Tunnel {
        protocol: u8,
        src: Ipv6Addr,
        inner: &'a [u8],
    },
    Malformed(&'static str),
}

/// Classify a packet that passed [`wanted`]; never panics.
pub fn classify(pkt: &[u8]) -> V6In<'_> {
    let Ok(ip6) = Ipv6Repr::parse(pkt) else {
        return V6In::Malformed("IPv6 header does not parse");
    };
    let end = Ipv6Repr::HEADER_LEN + usize::from(ip6.payload_len);
    let Some(whole) = pkt.get(..end) else {
        return V6In::Malformed("IPv6 payload length beyond the packet");
    };
    match ip6.next_header {
        p @ (IPPROTO_IPIP | IPPROTO_IPV6) => V6In::Tunnel {
            protocol: p,
            src: ip6.src,
            inner: &whole[Ipv6Repr::HEADER_LEN..],
        },
        IPPROTO_DSTOPTS | IPPROTO_ESP | IPPROTO_MH => V6In::Signalling(whole),
        _ => V6In::Malformed("next header not taken"),
    }
}

/// The ESP part (from the SPI, to the end of the IPv6 payload) of an `IPv6 / ESP` packet
/// with no extension header in between; `None` for anything else.
pub fn data_esp(pkt: &mut [u8]) -> Option<&mut [u8]> {
    if pkt.len() < Ipv6Repr::HEADER_LEN || pkt[6] != IPPROTO_ESP {
        return None;
    }
    let end = Ipv6Repr::HEADER_LEN + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]));
    pkt.get_mut(Ipv6Repr::HEADER_LEN..end)
}

/// The engine's context for a BU that came over native IPv6 (RFC 6275 §10.3.1): the care-of
/// address is the IPv6 source, the home address is in the Home Address option. With
/// `require_ipsec = false` (lab only) a cleartext BU is treated as protected for its own
/// home address, as on the IPv4 path.
pub fn context(
    ip6: &Ipv6Repr,
    home_address_option: Option<Ipv6Addr>,
    sa: Option<SaInfo>,
    require_ipsec: bool,
) -> RxContext {
    let mut ctx = RxContext {
        transport: Transport::Ipv6,
        ipv6_src: ip6.src,
        ipv6_dst: ip6.dst,
        home_address_option,
        sa,
    };
    if sa.is_none() && !require_ipsec {
        ctx.sa = Some(SaInfo {
            spi: 0,
            home_address: ctx.home_address(),
        });
    }
    ctx
}

/// The BA as `IPv6 (HA -> dst) / type 2 routing header (HoA) / MH` (RFC 6275 §6.4, §9.5.4;
/// no routing header when `dst` is the home address itself). The MH checksum's
/// pseudo-header uses the home address (RFC 6275 §6.1.1). ESP goes in after the routing
/// header (`transport::encapsulate` keeps it in front, RFC 4877 §4.1).
pub fn ba_packet(r: &Reply, dst: Ipv6Addr) -> Option<Vec<u8>> {
    let rh = dst != r.hoa;
    let rh_len = if rh { RoutingHeaderType2::LEN } else { 0 };
    let mut p = vec![0u8; 2048];
    let at = Ipv6Repr::HEADER_LEN + rh_len;
    let n = r.emit_mh(p.get_mut(at..)?).ok()?;
    if rh {
        RoutingHeaderType2 {
            next_header: IPPROTO_MH,
            segments_left: 1,
            home_address: r.hoa,
        }
        .emit(&mut p[Ipv6Repr::HEADER_LEN..])
        .ok()?;
    }
    let ip6 = Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: u16::try_from(rh_len + n).ok()?,
        next_header: if rh { IPPROTO_ROUTING } else { IPPROTO_MH },
        hop_limit: HOP_LIMIT,
        src: r.src,
        dst,
    };
    ip6.emit(&mut p).ok()?;
    p.truncate(at + n);
    Some(p)
}

/// `inner` (IPv4 or IPv6) behind an IPv6 header `src -> dst` with next header 4 or 41 by
/// its version (RFC 2473 §3, RFC 5555 §4.1); `None` for another version or a payload over
/// 65535 octets.
pub fn encapsulate(src: Ipv6Addr, dst: Ipv6Addr, inner: &[u8]) -> Option<Vec<u8>> {
    let next_header = match inner.first()? >> 4 {
        4 => IPPROTO_IPIP,
        6 => IPPROTO_IPV6,
        _ => return None,
    };
    outer_packet(src, dst, next_header, inner)
}

/// `payload` behind an IPv6 header `src -> dst` with `next_header`.
pub fn outer_packet(
    src: Ipv6Addr,
    dst: Ipv6Addr,
    next_header: u8,
    payload: &[u8],
) -> Option<Vec<u8>> {
    let mut p = vec![0u8; Ipv6Repr::HEADER_LEN + payload.len()];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: u16::try_from(payload.len()).ok()?,
        next_header,
        hop_limit: HOP_LIMIT,
        src,
        dst,
    }
    .emit(&mut p)
    .ok()?;
    p[Ipv6Repr::HEADER_LEN..].copy_from_slice(payload);
    Some(p)
}

/// May the binding of the inner source send this tunnelled packet? The inner version must
/// match the protocol, and the binding's tunnel must be IP-in-IPv6 from exactly `from`, its
/// care-of address (the anti-spoofing rule of the IPv4 tunnels).
pub fn ip6ip_bound(
    agent: &HomeAgent,
    now: Instant,
    protocol: u8,
    from: Ipv6Addr,
    inner: &[u8],
) -> bool {
    let version = match protocol {
        IPPROTO_IPIP => 4,
        IPPROTO_IPV6 => 6,
        _ => return false,
    };
    inner.first().is_some_and(|b| b >> 4 == version)
        && source(inner)
            .and_then(|s| agent.route(now, s))
            .is_some_and(|r| {
                matches!(r.outer, Outer::V6 { dst, .. } if dst == from) && r.encap == Encap::IpInIp
            })
}

/// The nftables ruleset that keeps the kernel from answering what we take (ICMPv6
/// Parameter Problem for the Home Address option, RFC 6275 §6.3's "skip" bits 11).
pub fn nft_rules(ifaces: &[String], ha: &Ipv6Addr) -> String {
    let names = ifaces
        .iter()
        .map(|i| format!("\"{i}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let protos = TAKEN.map(|p| p.to_string()).join(", ");
    format!(
        "table ip6 {NFT_TABLE} {{\n  chain prerouting {{\n    type filter hook prerouting priority -300; policy accept;\n    iifname {{ {names} }} ip6 daddr {ha} ip6 nexthdr {{ {protos} }} drop\n  }}\n}}\n"
    )
}

/// The packet sockets, the nftables table and the `IPPROTO_RAW` sender.
pub struct Ipv6Io {
    raw: RawIpv6,
    /// Kept so the reader threads' sockets live as long as this.
    _packet: Vec<PacketReader>,
    /// Deleted when this is dropped.
    _table: NftTable,
}

impl Ipv6Io {
    /// Install the nftables table, open one AF_PACKET socket per interface (a reader thread
    /// each, packets for `ha` into `tx`) and the raw sender.
    pub fn start(ifaces: &[String], ha: Ipv6Addr, tx: mpsc::Sender<Vec<u8>>) -> Result<Ipv6Io> {
        let table = NftTable::install(NFT_TABLE, &nft_rules(ifaces, &ha))?;
        let raw = RawIpv6::open()?;
        let mut packet = Vec::new();
        for i in ifaces {
            let r = PacketReader::start(Some(i), move |p| wanted(p, &ha), tx.clone())
                .with_context(|| format!("daemon.listen_v6_interfaces: {i}"))?;
            packet.push(r);
        }
        Ok(Ipv6Io {
            raw,
            _packet: packet,
            _table: table,
        })
    }

    /// Send a whole IPv6 packet (header included) to its destination.
    pub fn send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        self.raw.send(pkt)
    }
}

/// Where the outer IPv6 packet of a tunnelled packet from the TUN device goes: the
/// binding's care-of address, when its tunnel is IP-in-IPv6.
pub fn plain_tunnel_v6(route: &ha::Route) -> Option<(Ipv6Addr, Ipv6Addr)> {
    match (route.outer, route.encap) {
        (Outer::V6 { src, dst }, Encap::IpInIp) => Some((src, dst)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha::{HaConfig, ReplyPath};
    use mipsec::wire::ext::DestOptsRepr;
    use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhRepr};
    use std::net::IpAddr;
    use std::net::Ipv4Addr;
    use std::time::SystemTime;

    const HA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const COA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 2);

    fn ip6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
        outer_packet(src, dst, next, payload).unwrap()
    }

    #[test]
    fn only_our_next_headers_to_our_address_are_taken() {
        for nh in TAKEN {
            assert!(wanted(&ip6(COA, HA, nh, &[0; 8]), &HA), "{nh}");
        }
        assert!(
            !wanted(&ip6(COA, HA, 58, &[0; 8]), &HA),
            "ICMPv6 is the kernel's"
        );
        assert!(!wanted(&ip6(COA, HOA, 60, &[0; 8]), &HA), "not to us");
        assert!(!wanted(&[0x60; 39], &HA));
        let mut v4 = ip6(COA, HA, 60, &[]);
        v4[0] = 0x45;
        assert!(!wanted(&v4, &HA));
    }

    #[test]
    fn classification_checks_lengths() {
        let inner = ip6(HOA, "2001:db8:1::2".parse().unwrap(), 59, &[]);
        let p = ip6(COA, HA, IPPROTO_IPV6, &inner);
        assert_eq!(
            classify(&p),
            V6In::Tunnel {
                protocol: 41,
                src: COA,
                inner: &inner
            }
        );
        // Trailing link-layer padding is cut off by the payload length.
        let mut padded = ip6(COA, HA, IPPROTO_DSTOPTS, &[0; 8]);
        padded.extend([0xee; 6]);
        assert!(matches!(classify(&padded), V6In::Signalling(s) if s.len() == 48));
        assert!(matches!(classify(&p[..p.len() - 1]), V6In::Malformed(_)));
        assert!(matches!(classify(&p[..20]), V6In::Malformed(_)));
        assert!(matches!(
            classify(&ip6(COA, HA, 17, &[0; 8])),
            V6In::Malformed(_)
        ));
    }

    #[test]
    fn bu_with_home_address_option_gets_an_ipv6_context() {
        let mut d = vec![0u8; 24];
        DestOptsRepr::home_address(IPPROTO_MH, HOA)
            .emit(&mut d)
            .unwrap();
        d.extend([59, 0, 5, 0, 0, 0, 0, 0]);
        let p = ip6(COA, HA, IPPROTO_DSTOPTS, &d);
        let V6In::Signalling(s) = classify(&p) else {
            panic!()
        };
        let super::super::rx::Inbound::Mh {
            ip6,
            home_address_option,
            ..
        } = super::super::rx::classify(s)
        else {
            panic!()
        };
        let c = context(&ip6, home_address_option, None, true);
        assert_eq!(c.transport, Transport::Ipv6);
        assert_eq!((c.ipv6_src, c.home_address()), (COA, HOA));
        assert_eq!(c.sa, None);
        let c = context(&ip6, home_address_option, None, false);
        assert_eq!(c.sa.map(|s| s.home_address), Some(HOA));
    }

    #[test]
    fn ba_carries_a_type_2_routing_header_to_the_care_of_address() {
        let r = Reply {
            ba: MhRepr {
                message: MhMessage::BindingAck {
                    status: BaStatus(0),
                    flags: BaFlags::default(),
                    sequence: 7,
                    lifetime: 100,
                },
                options: vec![],
            },
            src: HA,
            hoa: HOA,
            path: ReplyPath::Ipv6 { dst: COA },
        };
        let p = ba_packet(&r, COA).unwrap();
        let h = Ipv6Repr::parse(&p).unwrap();
        assert_eq!((h.src, h.dst, h.next_header), (HA, COA, IPPROTO_ROUTING));
        assert_eq!(usize::from(h.payload_len) + 40, p.len());
        let rh = RoutingHeaderType2::parse(&p[40..]).unwrap();
        assert_eq!(
            (rh.next_header, rh.segments_left, rh.home_address),
            (IPPROTO_MH, 1, HOA)
        );
        // The MH checksum is over the home address (RFC 6275 §6.1.1).
        let pk = mipsec::wire::mh::MhPacket::new_checked(&p[64..]).unwrap();
        pk.verify_checksum(&HA, &HOA).unwrap();
        assert!(pk.verify_checksum(&HA, &COA).is_err());
        assert_eq!(MhRepr::parse(&pk).unwrap(), r.ba);
        // At home: no routing header.
        let p = ba_packet(&r, HOA).unwrap();
        assert_eq!(p[6], IPPROTO_MH);
    }

    #[test]
    fn ip_in_ipv6_is_bound_to_the_care_of_address() {
        let mut cfg = HaConfig::new(
            HA,
            Ipv4Addr::new(192, 0, 2, 1),
            vec!["2001:db8:1::/64".parse().unwrap()],
        );
        cfg.ipv4_pools.push(ha::PoolConfig {
            range: "198.51.100.0/30".parse().unwrap(),
            exclude: vec![],
        });
        let now = Instant::now();
        let mut a = HomeAgent::in_memory(cfg, now, SystemTime::now()).unwrap();
        let ctx = RxContext {
            transport: Transport::Ipv6,
            ipv6_src: COA,
            ipv6_dst: HA,
            home_address_option: Some(HOA),
            sa: Some(SaInfo {
                spi: 1,
                home_address: HOA,
            }),
        };
        let bu = MhRepr {
            message: MhMessage::BindingUpdate {
                sequence: 1,
                flags: BuFlags(BuFlags::A | BuFlags::H),
                lifetime: 100,
            },
            options: vec![mipsec::wire::MhOption::Ipv4HomeAddress {
                prefix_len: 32,
                prefix_request: false,
                addr: Ipv4Addr::UNSPECIFIED,
            }],
        };
        let v = a.handle_bu(now, &ctx, &bu);
        assert!(matches!(v.reply().map(|r| r.path), Some(ReplyPath::Ipv6 { dst }) if dst == COA));
        let hoa4 = a.binding(&HOA).unwrap().ipv4.unwrap().net.addr();
        let p6 = ip6(HOA, "2001:db8:1::2".parse().unwrap(), 59, &[]);
        let mut p4 = vec![0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p4.extend(hoa4.octets());
        p4.extend([203, 0, 113, 2]);
        assert!(ip6ip_bound(&a, now, 41, COA, &p6));
        assert!(ip6ip_bound(&a, now, 4, COA, &p4));
        assert!(!ip6ip_bound(&a, now, 4, COA, &p6), "version mismatch");
        assert!(!ip6ip_bound(&a, now, 41, HA, &p6), "another outer source");
        assert!(!ip6ip_bound(&a, now, 50, COA, &p6));
        let other = ip6("2001:db8:1::9".parse().unwrap(), HA, 59, &[]);
        assert!(
            !ip6ip_bound(&a, now, 41, COA, &other),
            "unbound inner source"
        );
        // Outbound: IPv6 from the home agent address to the care-of address.
        let r = a.route(now, IpAddr::V6(HOA)).unwrap();
        assert_eq!(plain_tunnel_v6(&r), Some((HA, COA)));
        let o = encapsulate(HA, COA, &p4).unwrap();
        assert_eq!((o[6], &o[40..]), (IPPROTO_IPIP, &p4[..]));
        assert_eq!(encapsulate(HA, COA, &[0x10]), None);
    }

    #[test]
    fn data_esp_is_the_payload_of_ipv6_esp_only() {
        let mut p = ip6(COA, HA, IPPROTO_ESP, &[1, 2, 3, 4, 5]);
        p.push(0xee); // link-layer padding
        assert_eq!(
            data_esp(&mut p).map(|e| e.to_vec()),
            Some(vec![1, 2, 3, 4, 5])
        );
        let mut d = ip6(
            COA,
            HA,
            IPPROTO_DSTOPTS,
            &[IPPROTO_ESP, 0, 0, 0, 0, 0, 0, 0],
        );
        assert!(data_esp(&mut d).is_none());
        assert!(
            data_esp(&mut p[..44]).is_none(),
            "payload length beyond the packet"
        );
        assert!(data_esp(&mut [0x60; 10]).is_none());
    }

    #[test]
    fn nft_rules_name_interfaces_address_and_protocols() {
        let r = nft_rules(&["out0".into(), "out1".into()], &HA);
        assert!(r.contains("iifname { \"out0\", \"out1\" } ip6 daddr 2001:db8:1::1 ip6 nexthdr { 4, 41, 50, 60, 135 } drop"), "{r}");
        assert!(r.contains("hook prerouting priority -300"), "{r}");
    }
}
