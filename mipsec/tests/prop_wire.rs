//! Property tests for every wire Repr: `parse(emit(x)) == x`; every emitted mobility option
//! starts on its alignment and every Mobility Header is a multiple of 8 octets; no parser
//! panics on arbitrary bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use mipsec::wire::ext::{DestOptsRepr, RoutingHeaderType2};
use mipsec::wire::icmpv6::{Icmpv6Repr, PrefixInfo};
use mipsec::wire::ip::{Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhPacket, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption};
use mipsec::wire::tunnel::{self, Encap, Outer, TunnelParams};
use proptest::prelude::*;

fn v4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn v6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

fn option() -> impl Strategy<Value = MhOption> {
    prop_oneof![
        any::<u16>().prop_map(|r| MhOption::BindingRefreshAdvice {
            refresh_interval: r
        }),
        v6().prop_map(MhOption::AlternateCoa),
        (any::<u16>(), any::<u16>()).prop_map(|(h, c)| MhOption::NonceIndices {
            home: h,
            care_of: c
        }),
        prop::collection::vec(any::<u8>(), 0..40).prop_map(MhOption::BindingAuthorizationData),
        (any::<u8>(), v6()).prop_map(|(l, p)| MhOption::MobileNetworkPrefix {
            prefix_len: l,
            prefix: p
        }),
        (0u8..64, any::<bool>(), v4()).prop_map(|(l, p, a)| MhOption::Ipv4HomeAddress {
            prefix_len: l,
            prefix_request: p,
            addr: a
        }),
        (any::<u8>(), 0u8..64, v4()).prop_map(|(s, l, a)| MhOption::Ipv4AddressAck {
            status: Ipv4AckStatus(s),
            prefix_len: l,
            addr: a
        }),
        (any::<bool>(), any::<u32>()).prop_map(|(f, r)| MhOption::NatDetection {
            force_udp: f,
            refresh_time: r
        }),
        v4().prop_map(MhOption::Ipv4CareOfAddress),
        // Unknown types: anything that is not padding and not a known type.
        (33u8..=255, prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(kind, data)| MhOption::Unknown { kind, data }),
    ]
}

fn message() -> impl Strategy<Value = MhMessage> {
    prop_oneof![
        Just(MhMessage::BindingRefreshRequest),
        any::<[u8; 8]>().prop_map(|cookie| MhMessage::HomeTestInit { cookie }),
        any::<[u8; 8]>().prop_map(|cookie| MhMessage::CareOfTestInit { cookie }),
        (any::<u16>(), any::<[u8; 8]>(), any::<[u8; 8]>()).prop_map(|(n, c, t)| {
            MhMessage::HomeTest {
                nonce_index: n,
                cookie: c,
                keygen_token: t,
            }
        }),
        (any::<u16>(), any::<[u8; 8]>(), any::<[u8; 8]>()).prop_map(|(n, c, t)| {
            MhMessage::CareOfTest {
                nonce_index: n,
                cookie: c,
                keygen_token: t,
            }
        }),
        (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(s, f, l)| MhMessage::BindingUpdate {
            sequence: s,
            flags: BuFlags(f),
            lifetime: l
        }),
        (any::<u8>(), any::<u8>(), any::<u16>(), any::<u16>()).prop_map(|(st, f, s, l)| {
            MhMessage::BindingAck {
                status: BaStatus(st),
                flags: BaFlags(f),
                sequence: s,
                lifetime: l,
            }
        }),
        (any::<u8>(), v6()).prop_map(|(status, home_address)| MhMessage::BindingError {
            status,
            home_address
        }),
    ]
}

fn mh() -> impl Strategy<Value = MhRepr> {
    prop_oneof![
        9 => (message(), prop::collection::vec(option(), 0..8)).prop_map(|(message, options)| MhRepr { message, options }),
        // An unknown MH type keeps its data; emit pads it to 8, so generate whole units.
        1 => (8u8..=255, prop::collection::vec(any::<[u8; 8]>(), 0..4)).prop_map(|(t, d)| {
            let mut data = vec![0u8, 0];
            data.extend(d.concat());
            MhRepr { message: MhMessage::Unknown { mh_type: t, data }, options: vec![] }
        }),
    ]
}

/// Walk the options as emitted and return each non-padding option's offset and type.
fn option_offsets(mh: &[u8], start: usize) -> Vec<(usize, u8)> {
    let mut at = start;
    let mut out = Vec::new();
    while at < mh.len() {
        match mh[at] {
            0 => at += 1,
            1 => at += 2 + mh[at + 1] as usize,
            t => {
                out.push((at, t));
                at += 2 + mh[at + 1] as usize;
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn mh_round_trip_alignment_and_length(r in mh(), src in v6(), dst in v6()) {
        let mut buf = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut buf, &src, &dst).unwrap();
        prop_assert_eq!(n, buf.len());
        prop_assert_eq!(n % 8, 0);
        let p = MhPacket::new_checked(&buf[..]).unwrap();
        prop_assert!(p.verify_checksum(&src, &dst).is_ok());
        prop_assert_eq!(&MhRepr::parse(&p).unwrap(), &r);
        if let Some(start) = r.mh_type().options_offset() {
            let offsets = option_offsets(&buf, start);
            prop_assert_eq!(offsets.len(), r.options.len());
            for ((at, t), o) in offsets.iter().zip(&r.options) {
                prop_assert_eq!(*t, o.kind());
                let (x, y) = o.alignment();
                prop_assert_eq!(at % x, y, "option {} at {}", t, at);
            }
        }
    }

    #[test]
    fn ipv4_ipv6_udp_round_trip(dscp in 0u8..64, ecn in 0u8..4, ttl: u8, proto: u8, s4 in v4(), d4 in v4(),
                                s6 in v6(), d6 in v6(), flow in 0u32..(1 << 20), payload in prop::collection::vec(any::<u8>(), 1..64),
                                sp: u16, dp: u16, ck: bool, ident: u16, df: bool) {
        let h4 = Ipv4Repr { dscp, ecn, identification: ident, dont_fragment: df, more_fragments: false,
                            fragment_offset: 0, ttl, protocol: proto, src: s4, dst: d4, payload_len: payload.len() as u16 };
        let mut b = vec![0u8; 20 + payload.len()];
        h4.emit(&mut b).unwrap();
        b[20..].copy_from_slice(&payload);
        prop_assert_eq!(Ipv4Repr::parse(&b).unwrap(), (h4, 20));
        let h6 = Ipv6Repr { dscp, ecn, flow_label: flow, payload_len: payload.len() as u16, next_header: proto,
                            hop_limit: ttl, src: s6, dst: d6 };
        let mut b = vec![0u8; 40 + payload.len()];
        h6.emit(&mut b).unwrap();
        prop_assert_eq!(Ipv6Repr::parse(&b).unwrap(), h6);
        let u = UdpRepr { src_port: sp, dst_port: dp };
        for pseudo in [Pseudo::V4 { src: s4, dst: d4 }, Pseudo::V6 { src: s6, dst: d6 }] {
            let mut b = vec![0u8; 8 + payload.len()];
            b[8..].copy_from_slice(&payload);
            u.emit(&mut b, payload.len(), &pseudo, ck).unwrap();
            prop_assert_eq!(UdpRepr::parse(&b, &pseudo).unwrap(), (u, payload.len()));
        }
    }

    #[test]
    fn ext_headers_round_trip(nh: u8, hoa in v6(), seg in 0u8..2, others in prop::collection::vec((2u8..=255, prop::collection::vec(any::<u8>(), 0..10)), 0..3)) {
        let others: Vec<_> = others.into_iter().filter(|(t, _)| *t != 0xc9).collect();
        let d = DestOptsRepr { next_header: nh, home_address: Some(hoa), other: others };
        let mut b = vec![0u8; d.buffer_len()];
        d.emit(&mut b).unwrap();
        prop_assert_eq!(b.len() % 8, 0);
        prop_assert_eq!(DestOptsRepr::parse(&b).unwrap(), (d, b.len()));
        let r = RoutingHeaderType2 { next_header: nh, segments_left: seg, home_address: hoa };
        let mut b = [0u8; 24];
        r.emit(&mut b).unwrap();
        prop_assert_eq!(RoutingHeaderType2::parse(&b).unwrap(), r);
    }

    #[test]
    fn icmpv6_round_trip(id: u16, has in prop::collection::vec(v6(), 0..4), m: bool, o: bool,
                         pfx in prop::collection::vec((any::<u8>(), any::<[bool; 3]>(), any::<u32>(), any::<u32>(), v6()), 0..3),
                         src in v6(), dst in v6()) {
        let prefixes = pfx.into_iter().map(|(l, f, v, p, a)| PrefixInfo {
            prefix_len: l, on_link: f[0], autonomous: f[1], router_address: f[2],
            valid_lifetime: v, preferred_lifetime: p, prefix: a }).collect();
        for r in [
            Icmpv6Repr::HaadRequest { identifier: id },
            Icmpv6Repr::HaadReply { identifier: id, home_agents: has.clone() },
            Icmpv6Repr::MobilePrefixSolicitation { identifier: id },
            Icmpv6Repr::MobilePrefixAdvertisement { identifier: id, managed: m, other_config: o, prefixes, other_options: vec![] },
        ] {
            let mut b = vec![0u8; r.buffer_len()];
            r.emit(&mut b, &src, &dst).unwrap();
            prop_assert_eq!(Icmpv6Repr::parse(&b, &src, &dst).unwrap(), r);
        }
    }

    /// Every tunnel format: the outer header carries the inner DSCP and ECN (RFC 6040 normal
    /// mode), DF from an IPv4 inner (RFC 2003 §3.1), the given TTL and the right protocol;
    /// when forwarding, the inner TTL / hop limit goes down by one; decapsulation gives the
    /// inner packet back, with ECN combined as RFC 6040 §4.2 says when the path marked CE.
    #[test]
    fn tunnels_round_trip(inner_v6: bool, outer_v6: bool, udp: bool, forwarding: bool, ce_on_path: bool,
                          dscp in 0u8..64, ecn in 0u8..4, df: bool, ttl in 2u8..=255, outer_ttl: u8,
                          payload in prop::collection::vec(any::<u8>(), 1..100),
                          s6 in v6(), d6 in v6(), s4 in v4(), d4 in v4()) {
        let mut inner = vec![0u8; if inner_v6 { 40 } else { 20 } + payload.len()];
        if inner_v6 {
            Ipv6Repr { dscp, ecn, flow_label: 0, payload_len: payload.len() as u16, next_header: 59, hop_limit: ttl, src: s6, dst: d6 }
                .emit(&mut inner).unwrap();
            inner[40..].copy_from_slice(&payload);
        } else {
            Ipv4Repr { dscp, ecn, identification: 0, dont_fragment: df, more_fragments: false, fragment_offset: 0,
                       ttl, protocol: 59, src: s4, dst: d4, payload_len: payload.len() as u16 }.emit(&mut inner).unwrap();
            inner[20..].copy_from_slice(&payload);
        }
        let outer = if outer_v6 { Outer::V6 { src: d6, dst: s6 } } else { Outer::V4 { src: d4, dst: s4 } };
        let encap = if udp { Encap::Udp { src_port: 4191, dst_port: 4191 } } else { Encap::IpInIp };
        let p = TunnelParams { outer, encap, outer_ttl, identification: 1, udp_checksum_v4: true, forwarding };
        let mut out = vec![0u8; tunnel::encapsulated_len(&p, inner.len())];
        tunnel::encapsulate(&p, &inner, &mut out).unwrap();
        let want_proto = if udp { 17 } else if inner_v6 { 41 } else { 4 };
        let hlen = if outer_v6 {
            let h = Ipv6Repr::parse(&out).unwrap();
            prop_assert_eq!((h.dscp, h.ecn, h.hop_limit, h.next_header), (dscp, ecn, outer_ttl, want_proto));
            40
        } else {
            let (h, _) = Ipv4Repr::parse(&out).unwrap();
            prop_assert_eq!((h.dscp, h.ecn, h.ttl, h.protocol), (dscp, ecn, outer_ttl, want_proto));
            prop_assert_eq!(h.dont_fragment, df && !inner_v6);
            20
        };
        if ce_on_path {
            // A router on the path marks the outer header CE.
            if outer_v6 { out[1] |= 0x30; } else {
                out[1] |= 0x03;
                out[10] = 0; out[11] = 0;
                let c = mipsec::wire::checksum::checksum(&out[..20]);
                out[10..12].copy_from_slice(&c.to_be_bytes());
            }
        }
        let outer_ecn = if ce_on_path { 3 } else { ecn };
        let expected_ecn = tunnel::ecn_decap(ecn, outer_ecn);
        match tunnel::decapsulate(&mut out) {
            Ok(d) => {
                prop_assert_eq!(d.outer, outer);
                prop_assert_eq!(d.encap, encap);
                prop_assert_eq!(d.inner.start, hlen + if udp { 8 } else { 0 });
                let got = &out[d.inner];
                prop_assert_eq!(got.len(), inner.len());
                let (ttl_at, got_ecn) = if inner_v6 { (7, (got[1] >> 4) & 3) } else { (8, got[1] & 3) };
                prop_assert_eq!(got[ttl_at], if forwarding { ttl - 1 } else { ttl });
                prop_assert_eq!(Some(got_ecn), expected_ecn);
                if !inner_v6 {
                    prop_assert_eq!(mipsec::wire::checksum::checksum(&got[..20]), 0);
                }
                prop_assert_eq!(&got[got.len() - payload.len()..], &payload[..]);
            }
            Err(e) => {
                prop_assert_eq!(expected_ecn, None, "unexpected error {}", e);
                prop_assert_eq!(e.field(), "outer.ecn");
            }
        }
    }

    /// Random bytes behind a valid outer IPv4 header (checksum fixed up), so decapsulation
    /// gets past the header check and into the inner-packet rules.
    #[test]
    fn decapsulate_never_panics_behind_a_valid_header(proto in prop::sample::select(vec![4u8, 41, 17]),
                                                      body in prop::collection::vec(any::<u8>(), 0..120)) {
        let mut p = vec![0u8; 20 + body.len()];
        Ipv4Repr { dscp: 0, ecn: 3, identification: 0, dont_fragment: false, more_fragments: false, fragment_offset: 0,
                   ttl: 9, protocol: proto, src: Ipv4Addr::LOCALHOST, dst: Ipv4Addr::LOCALHOST, payload_len: body.len() as u16 }
            .emit(&mut p).unwrap();
        p[20..].copy_from_slice(&body);
        if proto == 17 && p.len() >= 28 {
            p[26] = 0; // no UDP checksum over IPv4
            p[27] = 0;
        }
        if let Ok(d) = tunnel::decapsulate(&mut p) {
            prop_assert!(d.inner.end <= p.len());
        }
    }

    #[test]
    fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), src in v6(), dst in v6()) {
        let _ = MhRepr::parse_bytes(&bytes);
        if let Ok(p) = MhPacket::new_checked(&bytes[..]) {
            let _ = p.verify_checksum(&src, &dst);
        }
        let _ = DestOptsRepr::parse(&bytes);
        let _ = RoutingHeaderType2::parse(&bytes);
        let _ = Icmpv6Repr::parse(&bytes, &src, &dst);
        let _ = Ipv4Repr::parse(&bytes);
        let _ = Ipv6Repr::parse(&bytes);
        let _ = UdpRepr::parse(&bytes, &Pseudo::V6 { src, dst });
        let mut copy = bytes.clone();
        let _ = tunnel::decapsulate(&mut copy);
        let _ = mipsec::wire::mh_option::parse_options(&bytes, 12);
    }

    /// Bytes that parse as an MH are re-emitted to the same canonical form after one pass.
    #[test]
    fn parse_emit_is_stable(bytes in prop::collection::vec(any::<u8>(), 8..120), src in v6(), dst in v6()) {
        let mut b = bytes.clone();
        b[0] = 59;
        b[1] = ((b.len() / 8) as u8).saturating_sub(1);
        if let Ok(r) = MhRepr::parse_bytes(&b) {
            let mut out = vec![0u8; r.buffer_len()];
            if r.emit(&mut out, &src, &dst).is_ok() {
                prop_assert_eq!(MhRepr::parse_bytes(&out).unwrap(), r);
            }
        }
    }
}
