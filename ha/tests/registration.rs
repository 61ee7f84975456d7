//! Home registration scenarios, each step annotated with the exchange, e.g.
//! `IPv4(UDP) { IPv6 { BU [IPv4 HAO, IPv4 CoA] } } -->` and `<-- BA (status) [options]`.
//! RFC 6275 §9.5.1, §10.3.1–10.3.2; RFC 3963 §6; RFC 5555 §4.2, §4.5.

mod common;

use std::net::{IpAddr, Ipv4Addr};

use common::*;
use ha::{DropReason, Event, Family, ReplyPath, Route, Tunnel, Verdict};
use ipnet::IpNet;
use mipsec::wire::icmpv6::Icmpv6Repr;
use mipsec::wire::mh::{BaFlags, BaStatus, MhPacket, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption, REFRESH_NOT_NEEDED};
use mipsec::wire::tunnel::{Encap, Outer};

fn udp_tunnel(inner: Family, dst: [u8; 4], port: u16) -> Tunnel {
    Tunnel {
        inner,
        outer: Outer::V4 {
            src: ha4(),
            dst: Ipv4Addr::from(dst),
        },
        encap: Encap::Udp {
            src_port: 4191,
            dst_port: port,
        },
    }
}

#[test]
fn native_ipv6_registration_and_ba_bytes() {
    let mut lab = Lab::new(config());
    let h = hoa(1);
    let ctx = ctx_v6(h, "2001:db8:77::5");
    // IPv6 (src=CoA) { HAO, ESP, BU A|H|K lifetime 4000 s } -->
    let v = lab.send(0.0, &ctx, &bu(7, A | H | K, 1000, vec![]));
    // <-- BA (0) K, lifetime capped at max_lifetime 3600 s = 900 units
    assert_eq!(ba(&v), (BaStatus::ACCEPTED, BaFlags(BaFlags::K), 7, 900));
    let r = reply(&v);
    assert_eq!(
        r.path,
        ReplyPath::Ipv6 {
            dst: "2001:db8:77::5".parse().unwrap()
        }
    );
    assert!(
        r.ba.options.is_empty(),
        "no IPv4 option, no NAT: {:?}",
        r.ba.options
    );
    // The emitted BA verifies against HA → HoA and parses back.
    let mut buf = [0u8; 64];
    let n = r.emit_mh(&mut buf).unwrap();
    let p = MhPacket::new_checked(&buf[..n]).unwrap();
    p.verify_checksum(&ha6(), &h).unwrap();
    assert_eq!(MhRepr::parse(&p).unwrap(), r.ba);
    let t6 = Tunnel {
        inner: Family::V6,
        outer: Outer::V6 {
            src: ha6(),
            dst: "2001:db8:77::5".parse().unwrap(),
        },
        encap: Encap::IpInIp,
    };
    assert_eq!(
        lab.events(),
        vec![
            Event::ProxyNdpAdd(h),
            Event::TunnelInstall { hoa: h, tunnel: t6 }
        ]
    );
    let now = lab.at(1.0);
    assert_eq!(
        lab.ha().route(now, IpAddr::V6(h)),
        Some(Route {
            hoa: h,
            outer: t6.outer,
            encap: Encap::IpInIp
        })
    );
    assert_eq!(lab.ha().counters().accepted, 1);
}

#[test]
fn bu_bytes_are_checksummed_and_parsed() {
    let mut lab = Lab::new(config());
    let h = hoa(1);
    let ctx = ctx_udp(h, [10, 0, 0, 5], 4191);
    let repr = bu(1, A | H, 100, vec![v4_coa([10, 0, 0, 5])]);
    let mut buf = [0u8; 64];
    let n = repr.emit(&mut buf, &h, &ha6()).unwrap();
    let now = lab.at(0.0);
    let v = lab.ha().handle_bu_bytes(now, &ctx, &buf[..n]);
    assert_eq!(ba(&v).0, BaStatus::ACCEPTED);
    // One flipped bit: checksum fails, silent drop, counted.
    buf[12] ^= 1;
    let v = lab.ha().handle_bu_bytes(now, &ctx, &buf[..n]);
    assert_eq!(v, Verdict::Dropped(DropReason::Malformed));
    for cut in [0, 5, 11, n - 1] {
        let v = lab.ha().handle_bu_bytes(now, &ctx, &buf[..cut]);
        assert_eq!(v, Verdict::Dropped(DropReason::Malformed), "cut at {cut}");
    }
    assert_eq!(lab.ha().counters().dropped(DropReason::Malformed), 5);
    assert_eq!(lab.ha().counters().bu_received, 6);
}

#[test]
fn nat_detected_udp_with_dynamic_ipv4() {
    let mut lab = Lab::new(config());
    let h = hoa(2);
    // IPv4 (src=203.0.113.9:40000) UDP { IPv6 (src=HoA) { BU [IPv4 HAO 0.0.0.0, IPv4 CoA 10.0.0.5] } } -->
    let ctx = ctx_udp(h, [203, 0, 113, 9], 40000);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(1, A | H, 100, vec![v4_hoa([0; 4]), v4_coa([10, 0, 0, 5])]),
    );
    // <-- BA (0) [IPv4 ACK (0) 198.51.100.2, NAT DET refresh 110]
    assert_eq!(ba(&v), (BaStatus::ACCEPTED, BaFlags(0), 1, 100));
    let addr = Ipv4Addr::new(198, 51, 100, 2);
    assert_eq!(ack(&v), Some((Ipv4AckStatus::SUCCESS, 32, addr)));
    assert_eq!(nat_det(&v), Some((false, 110)));
    assert_eq!(
        reply(&v).path,
        ReplyPath::Udp {
            src: ha4(),
            dst: Ipv4Addr::new(203, 0, 113, 9),
            src_port: 4191,
            dst_port: 40000
        }
    );
    let (t6, t4) = (
        udp_tunnel(Family::V6, [203, 0, 113, 9], 40000),
        udp_tunnel(Family::V4, [203, 0, 113, 9], 40000),
    );
    assert_eq!(
        lab.events(),
        vec![
            Event::ProxyNdpAdd(h),
            Event::TunnelInstall { hoa: h, tunnel: t6 },
            Event::TunnelInstall { hoa: h, tunnel: t4 },
            Event::ProxyArpAdd(addr),
        ]
    );
    let now = lab.at(1.0);
    let r = lab.ha().route(now, IpAddr::V4(addr)).unwrap();
    assert_eq!((r.hoa, r.outer, r.encap), (h, t4.outer, t4.encap));
    let b = lab.ha().binding(&h).unwrap();
    assert!(b.nat);
    assert_eq!(b.coa, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)));
    // NAT rebinding: same CoA, new outer port. The tunnels follow; the BA goes to the new port.
    let ctx2 = ctx_udp(h, [203, 0, 113, 9], 40001);
    let v = lab.send(
        50.0,
        &ctx2,
        &bu(
            2,
            A | H,
            100,
            vec![v4_hoa(addr.octets()), v4_coa([10, 0, 0, 5])],
        ),
    );
    assert!(matches!(
        reply(&v).path,
        ReplyPath::Udp {
            dst_port: 40001,
            ..
        }
    ));
    assert_eq!(ack(&v), Some((Ipv4AckStatus::SUCCESS, 32, addr)));
    let ev = lab.events();
    assert!(ev.contains(&Event::TunnelUpdate {
        hoa: h,
        old: t6,
        new: udp_tunnel(Family::V6, [203, 0, 113, 9], 40001)
    }));
    assert!(ev.contains(&Event::TunnelUpdate {
        hoa: h,
        old: t4,
        new: udp_tunnel(Family::V4, [203, 0, 113, 9], 40001)
    }));
    assert!(
        !ev.iter().any(|e| matches!(e, Event::CareOfChanged { .. })),
        "no K flag: {ev:?}"
    );
}

#[test]
fn udp_without_nat_uses_ip_in_ip_unless_forced() {
    let mut lab = Lab::new(config());
    let h = hoa(3);
    let ctx = ctx_udp(h, [192, 0, 2, 50], 4191);
    let v = lab.send(0.0, &ctx, &bu(1, A | H, 100, vec![v4_coa([192, 0, 2, 50])]));
    // The BU came in UDP, so the BA carries NAT DET; no NAT: refresh all ones.
    assert_eq!(nat_det(&v), Some((false, REFRESH_NOT_NEEDED)));
    assert!(matches!(reply(&v).path, ReplyPath::Udp { .. }));
    assert_eq!(lab.ha().binding(&h).unwrap().udp_port, 0);
    let ev = lab.events();
    assert!(ev.contains(&Event::TunnelInstall {
        hoa: h,
        tunnel: Tunnel {
            inner: Family::V6,
            outer: Outer::V4 {
                src: ha4(),
                dst: Ipv4Addr::new(192, 0, 2, 50)
            },
            encap: Encap::IpInIp
        }
    }));
    // The mobile node forces UDP with the F flag: accepted, F in NAT DET, refresh all ones.
    let v = lab.send(
        1.0,
        &ctx,
        &bu(2, A | H | F, 100, vec![v4_coa([192, 0, 2, 50])]),
    );
    assert_eq!(ba(&v).0, BaStatus::ACCEPTED);
    assert_eq!(nat_det(&v), Some((true, REFRESH_NOT_NEEDED)));
    assert_eq!(lab.ha().binding(&h).unwrap().udp_port, 4191);
    // The home agent forces UDP by configuration.
    let mut cfg = config();
    cfg.force_udp = true;
    let mut lab = Lab::new(cfg);
    let v = lab.send(0.0, &ctx, &bu(1, A | H, 100, vec![v4_coa([192, 0, 2, 50])]));
    assert_eq!(nat_det(&v), Some((true, REFRESH_NOT_NEEDED)));
    assert!(lab.events().contains(&Event::TunnelInstall {
        hoa: h,
        tunnel: udp_tunnel(Family::V6, [192, 0, 2, 50], 4191)
    }));
}

#[test]
fn ip_in_ip_transport_replies_in_ipv4() {
    let mut lab = Lab::new(config());
    let h = hoa(4);
    let ctx = ctx_ipip(h, [192, 0, 2, 60]);
    let v = lab.send(0.0, &ctx, &bu(1, A | H, 100, vec![v4_coa([192, 0, 2, 60])]));
    assert_eq!(
        reply(&v).path,
        ReplyPath::Ipv4 {
            src: ha4(),
            dst: Ipv4Addr::new(192, 0, 2, 60)
        }
    );
    assert_eq!(nat_det(&v), None, "no NAT, not UDP");
    // Without the IPv4 CoA option (RFC 5555 §2.3.2 MUST), dropped and counted.
    let v = lab.send(1.0, &ctx, &bu(2, A | H, 100, vec![]));
    assert_eq!(v, Verdict::Dropped(DropReason::MissingIpv4CareOf));
}

#[test]
fn forced_udp_refused_is_144() {
    let mut cfg = config();
    cfg.accept_force_udp = false;
    let mut lab = Lab::new(cfg);
    let h = hoa(5);
    let ctx = ctx_udp(h, [192, 0, 2, 50], 5000);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(
            9,
            A | H | F,
            100,
            vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 50])],
        ),
    );
    assert_eq!(
        ba(&v),
        (BaStatus::UDP_ENCAPSULATION_REFUSED, BaFlags(0), 9, 0)
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::UNSPECIFIED);
    assert!(matches!(
        reply(&v).path,
        ReplyPath::Udp { dst_port: 5000, .. }
    ));
    assert!(lab.ha().binding(&h).is_none());
    assert!(lab.events().is_empty());
    assert_eq!(lab.ha().leases().count(), 0, "no lease for a refused BU");
}

#[test]
fn sequence_window_modulo_2_16() {
    let mut lab = Lab::new(config());
    let h = hoa(6);
    let ctx = ctx_v6(h, "2001:db8:77::5");
    assert_eq!(
        ba(&lab.send(0.0, &ctx, &bu(65534, A | H, 10, vec![]))).0,
        BaStatus::ACCEPTED
    );
    // The same and an older number: 135, answering with the last accepted number.
    for s in [65534, 65000, 32767] {
        let v = lab.send(1.0, &ctx, &bu(s, A | H, 10, vec![]));
        assert_eq!(
            ba(&v),
            (BaStatus::SEQUENCE_OUT_OF_WINDOW, BaFlags(0), 65534, 0),
            "seq {s}"
        );
    }
    // Wrapping past 65535 is newer.
    assert_eq!(
        ba(&lab.send(2.0, &ctx, &bu(3, A | H, 10, vec![]))).0,
        BaStatus::ACCEPTED
    );
    assert_eq!(lab.ha().binding(&h).unwrap().sequence, 3);
    assert_eq!(lab.ha().counters().rejected, 3);
}

#[test]
fn home_subnet_and_home_agent_checks() {
    let mut cfg = config();
    cfg.allow_unlisted = false;
    let mut lab = Lab::new(cfg);
    let away = "2001:db8:9::5".parse().unwrap();
    let v = lab.send(
        0.0,
        &ctx_v6(away, "2001:db8:77::5"),
        &bu(1, A | H, 10, vec![]),
    );
    assert_eq!(ba(&v).0, BaStatus::NOT_HOME_SUBNET);
    let v = lab.send(
        0.0,
        &ctx_v6(hoa(7), "2001:db8:77::5"),
        &bu(1, A | H, 10, vec![]),
    );
    assert_eq!(ba(&v).0, BaStatus::NOT_HOME_AGENT);
    // A listed node is served; deregistering a node with no binding is 133.
    let v = lab.send(
        0.0,
        &ctx_v6(static_mn(), "2001:db8:77::5"),
        &bu(1, A | H, 0, vec![]),
    );
    assert_eq!(ba(&v).0, BaStatus::NOT_HOME_AGENT);
    let v = lab.send(
        0.0,
        &ctx_v6(static_mn(), "2001:db8:77::5"),
        &bu(2, A | H, 10, vec![]),
    );
    assert_eq!(ba(&v).0, BaStatus::ACCEPTED);
    assert_eq!(lab.ha().bindings().count(), 1);
}

#[test]
fn unauthorized_bus_are_dropped_and_counted() {
    let mut lab = Lab::new(config());
    let h = hoa(8);
    let mut ctx = ctx_v6(h, "2001:db8:77::5");
    let b = bu(1, A | H, 10, vec![]);
    ctx.sa = None;
    assert_eq!(
        lab.send(0.0, &ctx, &b),
        Verdict::Dropped(DropReason::Unprotected)
    );
    ctx.sa = Some(ha::SaInfo {
        spi: 9,
        home_address: hoa(9),
    });
    assert_eq!(
        lab.send(0.0, &ctx, &b),
        Verdict::Dropped(DropReason::SaHomeAddressMismatch)
    );
    let ctx = ctx_v6(h, "2001:db8:77::5");
    assert_eq!(
        lab.send(0.0, &ctx, &bu(1, A, 10, vec![])),
        Verdict::Dropped(DropReason::NotHomeRegistration)
    );
    let brr = MhRepr {
        message: mipsec::wire::mh::MhMessage::BindingRefreshRequest,
        options: vec![],
    };
    assert_eq!(
        lab.send(0.0, &ctx, &brr),
        Verdict::Dropped(DropReason::NotBindingUpdate)
    );
    assert!(lab.ha().binding(&h).is_none());
    assert!(lab.events().is_empty());
    let c = lab.ha().counters().clone();
    for r in [
        DropReason::Unprotected,
        DropReason::SaHomeAddressMismatch,
        DropReason::NotHomeRegistration,
        DropReason::NotBindingUpdate,
    ] {
        assert_eq!(c.dropped(r), 1, "{r:?}");
    }
    assert_eq!(c.accepted + c.rejected, 0);
}

#[test]
fn static_ipv4_home_address_rules() {
    let mut lab = Lab::new(config());
    let m = static_mn();
    let ctx = ctx_udp(m, [192, 0, 2, 50], 4191);
    let coa = v4_coa([192, 0, 2, 50]);
    let st = Ipv4Addr::new(203, 0, 113, 5);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(1, A | H, 10, vec![v4_hoa([0; 4]), coa.clone()]),
    );
    assert_eq!(ack(&v), Some((Ipv4AckStatus::SUCCESS, 32, st)));
    let v = lab.send(
        1.0,
        &ctx,
        &bu(2, A | H, 10, vec![v4_hoa(st.octets()), coa.clone()]),
    );
    assert_eq!(ack(&v), Some((Ipv4AckStatus::SUCCESS, 32, st)));
    // Another address: 130, the IPv6 binding stays accepted, the IPv4 binding goes.
    let v = lab.send(
        2.0,
        &ctx,
        &bu(3, A | H, 10, vec![v4_hoa([203, 0, 113, 6]), coa.clone()]),
    );
    assert_eq!(ba(&v).0, BaStatus::ACCEPTED);
    assert_eq!(
        ack(&v),
        Some((
            Ipv4AckStatus::INCORRECT_IPV4_HOA,
            32,
            Ipv4Addr::new(203, 0, 113, 6)
        ))
    );
    assert!(lab.ha().binding(&m).unwrap().ipv4.is_none());
    let v = lab.send(
        3.0,
        &ctx,
        &bu(4, A | H, 10, vec![v4_hoa([224, 0, 0, 1]), coa.clone()]),
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::INVALID_IPV4_ADDRESS);
    // A node not allowed IPv4: 129.
    let n = v6_only_mn();
    let v = lab.send(
        0.0,
        &ctx_udp(n, [192, 0, 2, 51], 4191),
        &bu(1, A | H, 10, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 51])]),
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::ADMIN_PROHIBITED);
    // A dynamic node asking for an address it was not given: 130.
    let v = lab.send(
        0.0,
        &ctx_udp(hoa(1), [192, 0, 2, 52], 4191),
        &bu(
            1,
            A | H,
            10,
            vec![v4_hoa([198, 51, 100, 9]), v4_coa([192, 0, 2, 52])],
        ),
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::INCORRECT_IPV4_HOA);
    assert_eq!(lab.ha().counters().ipv4_refused, 4);
}

#[test]
fn pool_exhaustion_is_132_and_prefixes_need_authorization() {
    let mut lab = Lab::new(config());
    for i in 0..13 {
        let h = hoa(100 + i);
        let v = lab.send(
            0.0,
            &ctx_udp(h, [192, 0, 2, 9], 4191),
            &bu(1, A | H, 10, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 9])]),
        );
        assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::SUCCESS, "node {i}");
    }
    let h = hoa(200);
    let v = lab.send(
        0.0,
        &ctx_udp(h, [192, 0, 2, 9], 4191),
        &bu(1, A | H, 10, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 9])]),
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE);
    assert_eq!(lab.leased(0.0), 13);
    // P flag from a node without prefix authorization: 133.
    let p = MhOption::Ipv4HomeAddress {
        prefix_len: 30,
        prefix_request: true,
        addr: Ipv4Addr::UNSPECIFIED,
    };
    let v = lab.send(
        0.0,
        &ctx_udp(hoa(201), [192, 0, 2, 9], 4191),
        &bu(1, A | H | P, 10, vec![p.clone(), v4_coa([192, 0, 2, 9])]),
    );
    assert_eq!(ack(&v).unwrap().0, Ipv4AckStatus::PREFIX_UNAUTHORIZED);
}

#[test]
fn prefix_allocation_and_mobile_router() {
    let mut cfg = config();
    cfg.ipv4_pools[0].range = "198.51.100.0/24".parse().unwrap();
    let mut lab = Lab::new(cfg);
    let r = router();
    let ctx = ctx_udp(r, [192, 0, 2, 70], 4191);
    let p = MhOption::Ipv4HomeAddress {
        prefix_len: 28,
        prefix_request: true,
        addr: Ipv4Addr::UNSPECIFIED,
    };
    let mnp = MhOption::MobileNetworkPrefix {
        prefix_len: 48,
        prefix: "2001:db8:100::".parse().unwrap(),
    };
    // R without permission: 140 (a plain node).
    let v = lab.send(
        0.0,
        &ctx_udp(hoa(1), [192, 0, 2, 71], 4191),
        &bu(1, A | H | R, 10, vec![v4_coa([192, 0, 2, 71])]),
    );
    assert_eq!(ba(&v).0, BaStatus::MR_NOT_PERMITTED);
    // A prefix it does not own: 142.
    let bad = MhOption::MobileNetworkPrefix {
        prefix_len: 48,
        prefix: "2001:db8:999::".parse().unwrap(),
    };
    let v = lab.send(
        0.0,
        &ctx,
        &bu(
            1,
            A | H | R | P,
            10,
            vec![p.clone(), bad, v4_coa([192, 0, 2, 70])],
        ),
    );
    assert_eq!(ba(&v).0, BaStatus::PREFIX_NOT_AUTHORIZED);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(
            2,
            A | H | R | P,
            10,
            vec![p.clone(), mnp, v4_coa([192, 0, 2, 70])],
        ),
    );
    assert_eq!(ba(&v), (BaStatus::ACCEPTED, BaFlags(BaFlags::R), 2, 10));
    let (st, len, a) = ack(&v).unwrap();
    assert_eq!((st, len), (Ipv4AckStatus::SUCCESS, 28));
    assert_eq!(a.octets()[3] % 16, 0, "aligned: {a}");
    let ev = lab.events();
    assert!(ev.contains(&Event::RouteAdd {
        hoa: r,
        prefix: IpNet::V6("2001:db8:100::/48".parse().unwrap())
    }));
    assert!(ev.contains(&Event::RouteAdd {
        hoa: r,
        prefix: IpNet::V4(format!("{a}/28").parse().unwrap())
    }));
    let now = lab.at(1.0);
    let inside = Ipv4Addr::from(u32::from(a) + 9);
    assert_eq!(lab.ha().route(now, IpAddr::V4(inside)).unwrap().hoa, r);
    assert_eq!(
        lab.ha()
            .route(now, "2001:db8:100:7::1".parse().unwrap())
            .unwrap()
            .hoa,
        r
    );
    assert_eq!(
        lab.ha().route(now, "2001:db8:101::1".parse().unwrap()),
        None
    );
    // The batched lookup agrees with the single one, in order, misses included.
    let dsts: Vec<IpAddr> = vec![
        IpAddr::V4(inside),
        "2001:db8:100:7::1".parse().unwrap(),
        "2001:db8:101::1".parse().unwrap(),
        IpAddr::V6(r),
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 200)),
    ]
    .into_iter()
    .cycle()
    .take(37)
    .collect();
    let mut out = Vec::new();
    let now = lab.at(1.0);
    lab.ha().route_batch(now, &dsts, &mut out);
    let single: Vec<_> = dsts.iter().map(|d| lab.ha().route(now, *d)).collect();
    assert_eq!(out, single);
    assert_eq!(out.iter().filter(|r| r.is_some()).count(), 23);
    // Dropping R on a router binding: 139.
    let v = lab.send(2.0, &ctx, &bu(3, A | H, 10, vec![v4_coa([192, 0, 2, 70])]));
    assert_eq!(ba(&v).0, BaStatus::REGISTRATION_TYPE_CHANGE);
}

#[test]
fn bu_without_ipv4_option_drops_only_the_ipv4_binding() {
    let mut lab = Lab::new(config());
    let h = hoa(10);
    let ctx = ctx_udp(h, [192, 0, 2, 50], 4191);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(1, A | H, 100, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 50])]),
    );
    let a = ack(&v).unwrap().2;
    lab.events();
    let v = lab.send(
        10.0,
        &ctx,
        &bu(2, A | H, 100, vec![v4_coa([192, 0, 2, 50])]),
    );
    assert_eq!(ack(&v), None);
    let ev = lab.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert!(matches!(
        ev[0],
        Event::TunnelRemove {
            tunnel: Tunnel {
                inner: Family::V4,
                ..
            },
            ..
        }
    ));
    assert_eq!(ev[1], Event::ProxyArpRemove(a));
    let now = lab.at(11.0);
    assert!(lab.ha().route(now, IpAddr::V4(a)).is_none());
    assert!(lab.ha().route(now, IpAddr::V6(h)).is_some());
    // The lease stays: asking again gives the same address.
    let v = lab.send(
        20.0,
        &ctx,
        &bu(3, A | H, 100, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 50])]),
    );
    assert_eq!(ack(&v).unwrap().2, a);
}

#[test]
fn lifetime_zero_drops_everything() {
    let mut lab = Lab::new(config());
    let h = hoa(11);
    let ctx = ctx_udp(h, [203, 0, 113, 9], 40000);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(1, A | H, 100, vec![v4_hoa([0; 4]), v4_coa([10, 0, 0, 5])]),
    );
    let a = ack(&v).unwrap().2;
    lab.events();
    let v = lab.send(
        5.0,
        &ctx,
        &bu(2, A | H, 0, vec![v4_hoa(a.octets()), v4_coa([10, 0, 0, 5])]),
    );
    assert_eq!(ba(&v), (BaStatus::ACCEPTED, BaFlags(0), 2, 0));
    assert!(ack(&v).is_some(), "BU carried the IPv4 option");
    let ev = lab.events();
    assert!(ev.contains(&Event::ProxyNdpRemove(h)));
    assert!(ev.contains(&Event::ProxyArpRemove(a)));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, Event::TunnelRemove { .. }))
            .count(),
        2
    );
    assert!(lab.ha().binding(&h).is_none());
    let now = lab.at(6.0);
    assert!(lab.ha().route(now, IpAddr::V4(a)).is_none());
    assert_eq!(lab.ha().counters().deregistered, 1);
    // Returning home: care-of address = home address, same effect.
    let c6 = ctx_v6(h, "2001:db8:77::5");
    lab.send(7.0, &c6, &bu(3, A | H, 100, vec![]));
    let mut home = ctx_v6(h, "2001:db8:1::100b");
    home.ipv6_src = h;
    home.home_address_option = None;
    let v = lab.send(8.0, &home, &bu(4, A | H, 100, vec![]));
    assert_eq!(ba(&v).3, 0);
    assert!(lab.ha().binding(&h).is_none());
}

#[test]
fn expiry_through_handle_timeout() {
    let mut lab = Lab::new(config());
    let h = hoa(12);
    let ctx = ctx_v6(h, "2001:db8:77::5");
    lab.send(0.5, &ctx, &bu(1, A | H, 10, vec![]));
    lab.events();
    let deadline = lab.ha().poll_timeout().unwrap();
    assert_eq!(deadline, lab.at(40.5));
    lab.timeout(40.499);
    assert!(lab.events().is_empty());
    // Lookups stop at the lifetime even before the timer runs.
    let at = lab.at(40.5);
    assert!(lab.ha().route(at, IpAddr::V6(h)).is_none());
    lab.ha().handle_timeout(at);
    let ev = lab.events();
    assert_eq!(ev.last(), Some(&Event::BindingExpired { hoa: h }));
    assert!(ev.contains(&Event::ProxyNdpRemove(h)));
    assert!(lab.ha().binding(&h).is_none());
    assert_eq!(lab.ha().counters().expired, 1);
    // A refresh moves the deadline; the old timer wakes early and re-arms.
    lab.send(50.0, &ctx, &bu(2, A | H, 10, vec![]));
    lab.send(60.0, &ctx, &bu(3, A | H, 10, vec![]));
    lab.timeout(90.0);
    assert!(lab.ha().binding(&h).is_some());
    assert_eq!(lab.ha().poll_timeout(), Some(lab.at(100.0)));
}

#[test]
fn ipv4_binding_lives_for_min_of_lifetime_and_lease() {
    let mut cfg = config();
    cfg.lease_time = 100;
    let mut lab = Lab::new(cfg);
    let h = hoa(13);
    let ctx = ctx_udp(h, [192, 0, 2, 50], 4191);
    let v = lab.send(
        0.0,
        &ctx,
        &bu(1, A | H, 100, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 50])]),
    );
    let a = ack(&v).unwrap().2;
    lab.events();
    let b = lab.ha().binding(&h).unwrap().clone();
    assert_eq!(b.expires_ms, 400_000);
    assert_eq!(b.ipv4.unwrap().expires_ms, 100_000);
    lab.timeout(100.0);
    let ev = lab.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[1], Event::ProxyArpRemove(a));
    assert!(lab.ha().binding(&h).unwrap().ipv4.is_none());
    assert!(lab.route(101.0, IpAddr::V6(h)).is_some());
}

#[test]
fn k_flag_care_of_change_is_a_keying_event() {
    let mut lab = Lab::new(config());
    let h = hoa(14);
    lab.send(
        0.0,
        &ctx_v6(h, "2001:db8:77::5"),
        &bu(1, A | H | K, 100, vec![]),
    );
    lab.events();
    // Move to an IPv4 network: the IKE SA must follow.
    let v = lab.send(
        5.0,
        &ctx_udp(h, [203, 0, 113, 9], 40000),
        &bu(2, A | H | K, 100, vec![v4_coa([10, 0, 0, 5])]),
    );
    assert_eq!(ba(&v).1, BaFlags(BaFlags::K));
    let ev = lab.events();
    assert!(
        ev.contains(&Event::CareOfChanged {
            hoa: h,
            old_coa: "2001:db8:77::5".parse().unwrap(),
            new_coa: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 5)),
        }),
        "{ev:?}"
    );
    assert!(ev.iter().any(|e| matches!(e, Event::TunnelUpdate { .. })));
    // A refresh from the same place changes nothing.
    lab.send(
        10.0,
        &ctx_udp(h, [203, 0, 113, 9], 40000),
        &bu(3, A | H | K, 100, vec![v4_coa([10, 0, 0, 5])]),
    );
    assert!(lab.events().is_empty());
    // Without K support configured, the BA has no K and no keying event.
    let mut cfg = config();
    cfg.key_management_mobility = false;
    let mut lab = Lab::new(cfg);
    lab.send(
        0.0,
        &ctx_v6(h, "2001:db8:77::5"),
        &bu(1, A | H | K, 100, vec![]),
    );
    let v = lab.send(
        1.0,
        &ctx_v6(h, "2001:db8:77::6"),
        &bu(2, A | H | K, 100, vec![]),
    );
    assert_eq!(ba(&v).1, BaFlags(0));
    assert!(!lab
        .events()
        .iter()
        .any(|e| matches!(e, Event::CareOfChanged { .. })));
}

#[test]
fn refresh_advice_ack_flag_and_prefix_advertisement() {
    let mut cfg = config();
    cfg.binding_refresh_advice = Some(600);
    let mut lab = Lab::new(cfg);
    let h = hoa(15);
    let ctx = ctx_v6(h, "2001:db8:77::5");
    let v = lab.send(0.0, &ctx, &bu(1, A | H, 900, vec![]));
    assert!(reply(&v)
        .ba
        .options
        .contains(&MhOption::BindingRefreshAdvice {
            refresh_interval: 150
        }));
    // Shorter lifetime: the advice stays below it.
    let v = lab.send(1.0, &ctx, &bu(2, A | H, 20, vec![]));
    assert!(reply(&v)
        .ba
        .options
        .contains(&MhOption::BindingRefreshAdvice {
            refresh_interval: 19
        }));
    // A clear: accepted silently.
    assert_eq!(
        lab.send(2.0, &ctx, &bu(3, H, 20, vec![])),
        Verdict::Accepted
    );
    assert_eq!(lab.ha().binding(&h).unwrap().sequence, 3);
    match lab.ha().mobile_prefix_advertisement(&h, 77) {
        Some(Icmpv6Repr::MobilePrefixAdvertisement {
            identifier,
            prefixes,
            ..
        }) => {
            assert_eq!(identifier, 77);
            assert_eq!(prefixes.len(), 1);
            assert_eq!(prefixes[0].prefix_len, 64);
            assert_eq!(prefixes[0].valid_lifetime, 86_400);
            assert_eq!(
                prefixes[0].prefix,
                "2001:db8:1::".parse::<std::net::Ipv6Addr>().unwrap()
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(lab.ha().mobile_prefix_advertisement(&hoa(99), 1).is_none());
}
