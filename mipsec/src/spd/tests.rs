//! SPD match tables: the RFC 5555 §5.2.1 and §5.2.2 SPD-S entries for a mobile node and a
//! home agent, MH types in the port selector, the index against a linear search, and the
//! native text format.

use super::*;

const MH: u8 = 135;
const UDP: u8 = 17;
const BU: u8 = 5;
const BACK: u8 = 6;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn protect(mode: Mode) -> Action {
    Action::Protect(Protect {
        mode,
        peer: None,
        local_id: None,
        remote_id: None,
        proposals: vec!["aes128gcm16".into()],
    })
}

fn entry(name: &str, local: AddrSel, remote: AddrSel, proto: ProtoSel, action: Action) -> SpdEntry {
    SpdEntry {
        name: name.into(),
        dirs: Dirs::BOTH,
        local,
        remote,
        proto,
        local_port: PortSel::Any,
        remote_port: PortSel::Any,
        action,
    }
}

/// Home agent SPD-S of RFC 5555 §5.2.1 and §5.2.2 for `n` mobile nodes, then IKE bypass.
fn ha_spd(ha: IpAddr, hoas: &[IpAddr]) -> Spd {
    let mut v = vec![SpdEntry {
        local_port: PortSel::port(500),
        ..entry(
            "ike",
            AddrSel::single(ha),
            AddrSel::Any,
            ProtoSel::Is(UDP),
            Action::Bypass,
        )
    }];
    for (i, hoa) in hoas.iter().enumerate() {
        // §5.2.1: local = home_agent, remote = home_address, MH, local type BAck, remote BU.
        v.push(SpdEntry {
            local_port: PortSel::mh_type(BACK),
            remote_port: PortSel::mh_type(BU),
            ..entry(
                &format!("bu-{i}"),
                AddrSel::single(ha),
                AddrSel::single(*hoa),
                ProtoSel::Is(MH),
                protect(Mode::Transport),
            )
        });
        // §5.2.2: local != home_agent, remote = home_address: tunnel mode.
        v.push(entry(
            &format!("data-{i}"),
            AddrSel::except(ha),
            AddrSel::single(*hoa),
            ProtoSel::Any,
            protect(Mode::Tunnel),
        ));
    }
    Spd::new(v)
}

fn mh(dir: Direction, src: IpAddr, dst: IpAddr, t: u8) -> Packet {
    Packet::new(dir, src, dst, Some(MH), Ports::Message(u16::from(t) << 8))
}

#[test]
fn home_agent_rfc5555_table() {
    let ha = ip("2001:db8:1::1");
    let hoas: Vec<IpAddr> = (0..4)
        .map(|i| ip(&format!("2001:db8:1::{:x}", 0x100 + i)))
        .collect();
    let spd = ha_spd(ha, &hoas);
    let cn = ip("2001:db8:99::7");
    let name = |p: &Packet| spd.lookup(p).map(|(_, e)| e.name.clone());
    // (packet, expected entry) rows.
    let rows = [
        (mh(Direction::In, hoas[2], ha, BU), Some("bu-2")),
        (mh(Direction::Out, ha, hoas[2], BACK), Some("bu-2")),
        // A BAck arriving, or a BU leaving, is not what §5.2.1 protects.
        (mh(Direction::In, hoas[2], ha, BACK), None),
        (mh(Direction::Out, ha, hoas[2], BU), None),
        // Correspondent traffic to a home address goes through the §5.2.2 tunnel entry.
        (
            Packet::new(
                Direction::Out,
                cn,
                hoas[1],
                Some(6),
                Ports::Pair {
                    local: 80,
                    remote: 5555,
                },
            ),
            Some("data-1"),
        ),
        (
            Packet::new(Direction::In, hoas[3], cn, Some(58), Ports::Message(0x8000)),
            Some("data-3"),
        ),
        // IKE to the home agent is bypassed.
        (
            Packet::new(
                Direction::In,
                ip("2001:db8:5::5"),
                ha,
                Some(UDP),
                Packet::src_dst_ports(Direction::In, 500, 500),
            ),
            Some("ike"),
        ),
        // Non-MH traffic between HA and HoA matches neither entry: discard.
        (
            Packet::new(
                Direction::Out,
                ha,
                hoas[0],
                Some(6),
                Ports::Pair {
                    local: 22,
                    remote: 4000,
                },
            ),
            None,
        ),
        // An unknown home address: discard.
        (
            Packet::new(
                Direction::Out,
                cn,
                ip("2001:db8:1::999"),
                Some(6),
                Ports::Pair {
                    local: 1,
                    remote: 2,
                },
            ),
            None,
        ),
    ];
    for (p, want) in rows {
        assert_eq!(name(&p).as_deref(), want, "packet {p:?}");
        // The index and the plain ordered walk agree.
        assert_eq!(
            spd.explain(&p).matched,
            spd.lookup(&p).map(|(i, _)| i),
            "packet {p:?}"
        );
    }
}

#[test]
fn mobile_node_rfc5555_table() {
    let ha = ip("2001:db8:1::1");
    let hoa = ip("2001:db8:1::100");
    let hoa4 = ip("198.51.100.10");
    let ha4 = ip("192.0.2.1");
    let spd = Spd::new(vec![
        SpdEntry {
            local_port: PortSel::mh_type(BU),
            remote_port: PortSel::mh_type(BACK),
            ..entry(
                "bu",
                AddrSel::single(hoa),
                AddrSel::single(ha),
                ProtoSel::Is(MH),
                protect(Mode::Transport),
            )
        },
        entry(
            "data6",
            AddrSel::single(hoa),
            AddrSel::except(ha),
            ProtoSel::Any,
            protect(Mode::Tunnel),
        ),
        entry(
            "data4",
            AddrSel::single(hoa4),
            AddrSel::except(ha4),
            ProtoSel::Any,
            protect(Mode::Tunnel),
        ),
    ]);
    let cn = ip("2001:db8:99::7");
    let hit = |p: Packet| spd.lookup(&p).map(|(i, _)| i);
    assert_eq!(hit(mh(Direction::Out, hoa, ha, BU)), Some(0));
    assert_eq!(hit(mh(Direction::In, ha, hoa, BACK)), Some(0));
    assert_eq!(
        hit(mh(Direction::Out, hoa, ha, 1)),
        None,
        "HoTI is not in the §5.2.1 entry"
    );
    assert_eq!(
        hit(mh(Direction::Out, hoa, cn, BU)),
        Some(1),
        "route optimisation BU to a CN tunnels"
    );
    let udp4 = Packet::new(
        Direction::Out,
        hoa4,
        ip("203.0.113.9"),
        Some(UDP),
        Ports::Pair {
            local: 1000,
            remote: 53,
        },
    );
    assert_eq!(hit(udp4), Some(2));
    let to_ha4 = Packet::new(
        Direction::Out,
        hoa4,
        ha4,
        Some(UDP),
        Ports::Pair {
            local: 1000,
            remote: 53,
        },
    );
    assert_eq!(hit(to_ha4), None);
    let ex = spd.explain(&to_ha4);
    assert_eq!(
        ex.rejected,
        vec![
            (0, Mismatch::LocalAddress),
            (1, Mismatch::LocalAddress),
            (2, Mismatch::RemoteAddress)
        ]
    );
}

#[test]
fn opaque_ports_and_fragments() {
    let a = ip("192.0.2.1");
    let b = ip("192.0.2.2");
    let spd = Spd::new(vec![
        SpdEntry {
            local_port: PortSel::port(80),
            ..entry(
                "web",
                AddrSel::single(a),
                AddrSel::Any,
                ProtoSel::Is(6),
                Action::Bypass,
            )
        },
        SpdEntry {
            local_port: PortSel::Opaque,
            remote_port: PortSel::Opaque,
            ..entry(
                "frag",
                AddrSel::single(a),
                AddrSel::Any,
                ProtoSel::Is(6),
                Action::Discard,
            )
        },
    ]);
    let frag = Packet::new(Direction::Out, a, b, Some(6), Ports::Opaque);
    assert_eq!(
        spd.lookup(&frag).map(|(i, _)| i),
        Some(1),
        "a port selector other than ANY/OPAQUE never matches a fragment"
    );
    let web = Packet::new(
        Direction::Out,
        a,
        b,
        Some(6),
        Ports::Pair {
            local: 80,
            remote: 999,
        },
    );
    assert_eq!(spd.lookup(&web).map(|(i, _)| i), Some(0));
}

#[test]
fn index_agrees_with_linear_walk_at_scale() {
    let ha = ip("2001:db8:1::1");
    let hoas: Vec<IpAddr> = (0..2000u32)
        .map(|i| {
            IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0db8_0001_0000_0000_0000_0001_0000u128 + u128::from(i),
            ))
        })
        .collect();
    let spd = ha_spd(ha, &hoas);
    for (k, hoa) in hoas.iter().enumerate().step_by(97) {
        let p = mh(Direction::In, *hoa, ha, BU);
        let (i, e) = spd.lookup(&p).expect("BU entry");
        assert_eq!(e.name, format!("bu-{k}"));
        assert_eq!(spd.explain(&p).matched, Some(i));
    }
    // Candidates for a per-MN entry come from its own group and the IKE entry (indexed by
    // the home agent's address) only when the selectors allow it.
    let last = spd.len() - 1;
    assert_eq!(
        spd.earlier_candidates(last),
        vec![last - 1],
        "data entry: local != HA"
    );
    assert_eq!(
        spd.earlier_candidates(last - 1),
        vec![0],
        "BU entry: local = HA"
    );
}

#[test]
fn cover_and_intersection_of_entries() {
    let ha = ip("2001:db8:1::1");
    let hoa = ip("2001:db8:1::100");
    let bu = SpdEntry {
        local_port: PortSel::mh_type(BACK),
        remote_port: PortSel::mh_type(BU),
        ..entry(
            "bu",
            AddrSel::single(ha),
            AddrSel::single(hoa),
            ProtoSel::Is(MH),
            Action::Bypass,
        )
    };
    let all_mh = entry(
        "mh",
        AddrSel::Any,
        AddrSel::Any,
        ProtoSel::Is(MH),
        Action::Discard,
    );
    assert!(all_mh.covers(&bu) && !bu.covers(&all_mh));
    assert!(bu.intersects(&all_mh));
    // Same outbound type, different inbound type: an outbound BAck matches both.
    let other = SpdEntry {
        remote_port: PortSel::mh_type(7),
        ..bu.clone()
    };
    assert!(bu.intersects(&other));
    let data = entry(
        "data",
        AddrSel::except(ha),
        AddrSel::single(hoa),
        ProtoSel::Any,
        Action::Bypass,
    );
    assert!(
        !bu.intersects(&data),
        "RFC 5555 §5.2.2's != keeps the entries apart"
    );
}

#[test]
fn native_text_round_trip() {
    let ha = ip("2001:db8:1::1");
    let mut spd = ha_spd(ha, &[ip("2001:db8:1::100"), ip("2001:db8:1::101")]);
    spd.push(SpdEntry {
        dirs: Dirs::IN,
        action: Action::Protect(Protect {
            mode: Mode::Tunnel,
            peer: Some(ip("192.0.2.1")),
            local_id: Some("CN=a \"b\" \\ c".into()),
            remote_id: Some("mn@example.com".into()),
            proposals: vec!["aes128gcm16".into(), "chacha20poly1305".into()],
        }),
        ..entry(
            "v4",
            AddrSel::ranges(vec![
                AddrRange::new(ip("198.51.100.1"), ip("198.51.100.9")).unwrap()
            ]),
            AddrSel::Any,
            ProtoSel::Opaque,
            Action::Bypass,
        )
    });
    let text = spd.to_string();
    assert!(text.contains("lport=1536-1791 rport=1280-1535"), "{text}");
    let back = parse_native(&format!("# header\n{text}")).unwrap();
    assert_eq!(back, spd);
}

#[test]
fn native_text_errors_name_field_and_offset() {
    let err = parse_native("entry a dir=both\nentry b dir=sideways action=bypass\n").unwrap_err();
    assert_eq!(err.field(), "spd.action");
    let err = parse_native("entry b dir=sideways action=bypass\n").unwrap_err();
    assert_eq!((err.field(), err.offset()), ("spd.dir", Some(8)));
    let err = parse_native("entry c local=2001:db8::/129 action=bypass").unwrap_err();
    assert_eq!((err.field(), err.offset()), ("spd.address", Some(8)));
    let err = parse_native("entry d lport=9-1 action=bypass").unwrap_err();
    assert_eq!(err.field(), "spd.port");
    let err = parse_native("entry e action=protect local_id=\"open").unwrap_err();
    assert_eq!(err.field(), "spd.quote");
}
