//! Build a Binding Update or Binding Acknowledgement as a whole IPv6 packet, optionally
//! inside IPv4 and UDP to or from port 4191 (RFC 5555 §4.1, §4.4.2, §4.5).

use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Result};
use mipsec::wire::ext::{DestOptsRepr, RoutingHeaderType2};
use mipsec::wire::icmpv6::Icmpv6Repr;
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_DSTOPTS, IPPROTO_ICMPV6, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::mh::lifetime_units;
use mipsec::wire::mh_option::REFRESH_NOT_NEEDED;
use mipsec::wire::tunnel::{self, Encap, Outer, TunnelParams, DSMIPV6_PORT};
use mipsec::wire::{BaFlags, BaStatus, BuFlags, Ipv4AckStatus, MhMessage, MhOption, MhRepr};

/// An IPv4 address with a prefix length, as `A.B.C.D/PLEN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Prefix {
    pub addr: Ipv4Addr,
    pub len: u8,
}

impl std::str::FromStr for Ipv4Prefix {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}`: expected A.B.C.D/PLEN"))?;
        let addr = a.parse().map_err(|e| format!("`{a}`: {e}"))?;
        let len: u8 = l.parse().map_err(|e| format!("`{l}`: {e}"))?;
        if len > 32 {
            return Err(format!("prefix length {len} is over 32"));
        }
        Ok(Ipv4Prefix { addr, len })
    }
}

/// The outer IPv4 and UDP headers of a UDP-encapsulated message.
#[derive(Debug, Clone, Copy)]
pub struct UdpOuter {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

/// What goes into a Binding Update.
#[derive(Debug, Clone)]
pub struct BuSpec {
    pub sequence: u16,
    pub lifetime_secs: u32,
    pub flags: BuFlags,
    pub hoa: Ipv6Addr,
    pub ha: Ipv6Addr,
    pub ipv4_hoa: Option<Ipv4Prefix>,
    pub prefix_request: bool,
    pub ipv4_coa: Option<Ipv4Addr>,
}

/// What goes into a Binding Acknowledgement.
#[derive(Debug, Clone)]
pub struct BaSpec {
    pub sequence: u16,
    pub lifetime_secs: u32,
    pub status: u8,
    pub key_mgmt: bool,
    pub hoa: Ipv6Addr,
    pub ha: Ipv6Addr,
    pub ipv4_ack: Option<(u8, Ipv4Prefix)>,
    pub nat_detection: Option<u32>,
    pub force_udp: bool,
}

fn units(secs: u32) -> Result<u16> {
    match lifetime_units(secs) {
        Some(u) => Ok(u),
        None if secs % 4 != 0 => {
            bail!(
                "lifetime {secs} s is not a multiple of 4 s (BU/BA lifetimes count 4-second units)"
            )
        }
        None => bail!(
            "lifetime {secs} s is over the maximum of {} s",
            4 * u32::from(u16::MAX)
        ),
    }
}

/// The Binding Update's Mobility Header.
pub fn bu_repr(spec: &BuSpec) -> Result<MhRepr> {
    let mut options = Vec::new();
    if let Some(p) = spec.ipv4_hoa {
        options.push(MhOption::Ipv4HomeAddress {
            prefix_len: p.len,
            prefix_request: spec.prefix_request,
            addr: p.addr,
        });
    } else if spec.prefix_request {
        bail!(
            "--prefix-request needs --ipv4-hoa (the P flag lives in the IPv4 Home Address option)"
        );
    }
    if let Some(coa) = spec.ipv4_coa {
        options.push(MhOption::Ipv4CareOfAddress(coa));
    }
    Ok(MhRepr {
        message: MhMessage::BindingUpdate {
            sequence: spec.sequence,
            flags: spec.flags,
            lifetime: units(spec.lifetime_secs)?,
        },
        options,
    })
}

/// The Binding Acknowledgement's Mobility Header.
pub fn ba_repr(spec: &BaSpec) -> Result<MhRepr> {
    let mut options = Vec::new();
    if let Some((status, p)) = spec.ipv4_ack {
        options.push(MhOption::Ipv4AddressAck {
            status: Ipv4AckStatus(status),
            prefix_len: p.len,
            addr: p.addr,
        });
    }
    // RFC 5555 §3.2.2: forced UDP without a NAT carries a refresh time of all ones.
    let refresh = spec
        .nat_detection
        .or(spec.force_udp.then_some(REFRESH_NOT_NEEDED));
    if let Some(refresh_time) = refresh {
        options.push(MhOption::NatDetection {
            force_udp: spec.force_udp,
            refresh_time,
        });
    }
    Ok(MhRepr {
        message: MhMessage::BindingAck {
            status: BaStatus(spec.status),
            flags: BaFlags::default().with(BaFlags::K, spec.key_mgmt),
            sequence: spec.sequence,
            lifetime: units(spec.lifetime_secs)?,
        },
        options,
    })
}

/// The upper layer of an IPv6 packet the probe builds.
#[derive(Debug, Clone)]
pub enum Upper {
    Mh(MhRepr),
    Icmpv6(Icmpv6Repr),
}

/// IPv6 addressing of a Mobile IPv6 message: the header's source and destination, and the
/// Home Address option / type 2 routing header when the node is away from home (RFC 6275
/// §6.3, §6.4). The checksum pseudo-header then uses the home addresses.
#[derive(Debug, Clone, Copy)]
pub struct V6Addressing {
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    pub hao: Option<Ipv6Addr>,
    pub rh2: Option<Ipv6Addr>,
}

impl V6Addressing {
    pub fn plain(src: Ipv6Addr, dst: Ipv6Addr) -> Self {
        V6Addressing {
            src,
            dst,
            hao: None,
            rh2: None,
        }
    }
}

/// An IPv6 packet with optional type 2 routing header and Home Address option (in that
/// order, RFC 8200 §4.1) and the upper layer.
pub fn ipv6_packet(upper: &Upper, a: &V6Addressing) -> Result<Vec<u8>> {
    let (upper_len, upper_nh) = match upper {
        Upper::Mh(m) => (m.buffer_len(), IPPROTO_MH),
        Upper::Icmpv6(i) => (i.buffer_len(), IPPROTO_ICMPV6),
    };
    let dest_opts = a.hao.map(|hoa| DestOptsRepr::home_address(upper_nh, hoa));
    let dest_len = dest_opts.as_ref().map_or(0, |d| d.buffer_len());
    let rh2 = a.rh2.map(|hoa| RoutingHeaderType2 {
        next_header: if dest_opts.is_some() {
            IPPROTO_DSTOPTS
        } else {
            upper_nh
        },
        segments_left: 1,
        home_address: hoa,
    });
    let rh2_len = if rh2.is_some() {
        RoutingHeaderType2::LEN
    } else {
        0
    };
    let first_nh = match (rh2, &dest_opts) {
        (Some(_), _) => IPPROTO_ROUTING,
        (None, Some(_)) => IPPROTO_DSTOPTS,
        (None, None) => upper_nh,
    };
    let payload = rh2_len + dest_len + upper_len;
    let mut p = vec![0u8; Ipv6Repr::HEADER_LEN + payload];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: u16::try_from(payload)?,
        next_header: first_nh,
        hop_limit: 64,
        src: a.src,
        dst: a.dst,
    }
    .emit(&mut p)?;
    let mut at = Ipv6Repr::HEADER_LEN;
    if let Some(r) = rh2 {
        at += r.emit(&mut p[at..])?;
    }
    if let Some(d) = &dest_opts {
        at += d.emit(&mut p[at..])?;
    }
    let (src, dst) = (a.hao.unwrap_or(a.src), a.rh2.unwrap_or(a.dst));
    match upper {
        Upper::Mh(m) => m.emit(&mut p[at..], &src, &dst)?,
        Upper::Icmpv6(i) => i.emit(&mut p[at..], &src, &dst)?,
    };
    Ok(p)
}

/// Wrap a whole IPv4 or IPv6 packet in one of the tunnel formats of RFC 5555 §4.1.
pub fn tunnel_packet(
    inner: &[u8],
    outer: Outer,
    encap: Encap,
    outer_ttl: u8,
    forwarding: bool,
) -> Result<Vec<u8>> {
    let params = TunnelParams {
        outer,
        encap,
        outer_ttl,
        identification: 0,
        udp_checksum_v4: true,
        forwarding,
    };
    let mut out = vec![0u8; tunnel::encapsulated_len(&params, inner.len())];
    tunnel::encapsulate(&params, inner, &mut out)?;
    Ok(out)
}

/// An IPv6 packet `src` → `dst` carrying `mh`, wrapped in IPv4/UDP when `outer` is given.
pub fn packet(
    mh: &MhRepr,
    src: Ipv6Addr,
    dst: Ipv6Addr,
    outer: Option<UdpOuter>,
) -> Result<Vec<u8>> {
    let v6 = ipv6_packet(&Upper::Mh(mh.clone()), &V6Addressing::plain(src, dst))?;
    let Some(o) = outer else {
        return Ok(v6);
    };
    let encap = Encap::Udp {
        src_port: o.src_port,
        dst_port: o.dst_port,
    };
    // The probe originates the packet: the inner hop limit stays as built.
    tunnel_packet(
        &v6,
        Outer::V4 {
            src: o.src,
            dst: o.dst,
        },
        encap,
        tunnel::DEFAULT_OUTER_TTL,
        false,
    )
}

/// The whole Binding Update packet: source the home address, destination the home agent.
pub fn bu_packet(spec: &BuSpec, outer: Option<(Ipv4Addr, Ipv4Addr, u16)>) -> Result<Vec<u8>> {
    let outer = outer.map(|(src, dst, sport)| UdpOuter {
        src,
        dst,
        src_port: sport,
        dst_port: DSMIPV6_PORT,
    });
    packet(&bu_repr(spec)?, spec.hoa, spec.ha, outer)
}

/// The whole Binding Acknowledgement packet: source the home agent, destination the home
/// address (RFC 5555 §4.5), from UDP port 4191 to the port the BU came from.
pub fn ba_packet(spec: &BaSpec, outer: Option<(Ipv4Addr, Ipv4Addr, u16)>) -> Result<Vec<u8>> {
    let outer = outer.map(|(src, dst, dport)| UdpOuter {
        src,
        dst,
        src_port: DSMIPV6_PORT,
        dst_port: dport,
    });
    packet(&ba_repr(spec)?, spec.ha, spec.hoa, outer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bu() -> BuSpec {
        BuSpec {
            sequence: 1,
            lifetime_secs: 400,
            flags: BuFlags(BuFlags::A | BuFlags::H),
            hoa: "2001:db8:1::100".parse().unwrap(),
            ha: "2001:db8:1::1".parse().unwrap(),
            ipv4_hoa: Some("0.0.0.0/32".parse().unwrap()),
            prefix_request: false,
            ipv4_coa: Some(Ipv4Addr::new(10, 1, 0, 2)),
        }
    }

    #[test]
    fn lifetime_must_be_multiple_of_four() {
        let mut s = bu();
        s.lifetime_secs = 401;
        let e = bu_repr(&s).unwrap_err().to_string();
        assert!(e.contains("multiple of 4"), "{e}");
    }

    #[test]
    fn udp_wrapped_bu_layout() {
        let p = bu_packet(
            &bu(),
            Some((
                Ipv4Addr::new(10, 1, 0, 2),
                Ipv4Addr::new(192, 0, 2, 1),
                50000,
            )),
        )
        .unwrap();
        // IPv4 (20) + UDP (8) + IPv6 (40) + BU with two 4n options (32).
        assert_eq!(p.len(), 100);
        assert_eq!(p[9], 17);
        assert_eq!(&p[20..24], &[0xc3, 0x50, 0x10, 0x5f]); // 50000 -> 4191
        assert_eq!(p[28] >> 4, 6);
        assert_eq!(p[28 + 6], 135);
    }

    #[test]
    fn force_udp_without_nat_means_all_ones() {
        let s = BaSpec {
            sequence: 1,
            lifetime_secs: 0,
            status: 0,
            key_mgmt: false,
            hoa: "2001:db8:1::100".parse().unwrap(),
            ha: "2001:db8:1::1".parse().unwrap(),
            ipv4_ack: None,
            nat_detection: None,
            force_udp: true,
        };
        let r = ba_repr(&s).unwrap();
        assert_eq!(
            r.options,
            vec![MhOption::NatDetection {
                force_udp: true,
                refresh_time: u32::MAX
            }]
        );
    }

    #[test]
    fn hao_and_rh2_order_and_pseudo_header() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let coa: Ipv6Addr = "2001:db8:10::2".parse().unwrap();
        let ha: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let ba = MhRepr {
            message: MhMessage::BindingError {
                status: 1,
                home_address: hoa,
            },
            options: vec![],
        };
        let a = V6Addressing {
            src: coa,
            dst: ha,
            hao: Some(hoa),
            rh2: Some(hoa),
        };
        let p = ipv6_packet(&Upper::Mh(ba), &a).unwrap();
        // IPv6 -> routing (43) -> destination options (60) -> MH (135).
        assert_eq!(p[6], IPPROTO_ROUTING);
        assert_eq!(p[40], IPPROTO_DSTOPTS);
        assert_eq!(p[64], IPPROTO_MH);
        let mh = mipsec::wire::MhPacket::new_checked(&p[88..]).unwrap();
        mh.verify_checksum(&hoa, &hoa).unwrap();
        assert!(mh.verify_checksum(&coa, &ha).is_err());
    }
}
