//! Engine tests without a home agent: each step feeds the engine a hand-built Binding
//! Acknowledgement (as RFC 6275 §6.1.8 and RFC 5555 §3.2 lay it out) or lets virtual time
//! pass, and checks the Binding Update that comes out and the binding update list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use mipsec::wire::mh_option::REFRESH_NOT_NEEDED;
use mipsec::wire::tunnel::{decapsulate, Encap, Outer};
use mipsec::wire::{
    BaFlags, BaStatus, BuFlags, DestOptsRepr, Ipv4AckStatus, Ipv6Repr, MhMessage, MhOption,
    MhPacket, MhRepr,
};
use mn::{
    AddressEvent, BaContext, BaOutcome, Event, HomeAgentConfig, Ipv4Home, KeyingEvent, MnConfig,
    MnError, MobileNode, Transmit,
};

const HOA: &str = "2001:db8:1::100";
const HA6: &str = "2001:db8:1::1";
const HA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const V4HOA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

fn config(ipv4_home: Ipv4Home) -> MnConfig {
    let ha = HomeAgentConfig {
        ipv6: Some(v6(HA6)),
        ipv4: Some(HA4),
        ..Default::default()
    };
    let mut c = MnConfig::new(v6(HOA), ha);
    c.ipv4_home = ipv4_home;
    c
}

fn static_v4() -> Ipv4Home {
    Ipv4Home::Static {
        address: V4HOA,
        prefix_len: 32,
    }
}

fn add(mn: &mut MobileNode, now: Instant, a: &str, private: bool) {
    mn.handle_address(
        now,
        AddressEvent::Added {
            addr: a.parse().unwrap(),
            private,
        },
    );
}

fn bu_fields(t: &Transmit) -> (u16, BuFlags, u16) {
    match t.mh.message {
        MhMessage::BindingUpdate {
            sequence,
            flags,
            lifetime,
        } => (sequence, flags, lifetime),
        ref m => panic!("not a BU: {m:?}"),
    }
}

fn ba(seq: u16, status: BaStatus, lifetime: u16, options: Vec<MhOption>) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingAck {
            status,
            flags: BaFlags(BaFlags::K),
            sequence: seq,
            lifetime,
        },
        options,
    }
}

fn ctx() -> BaContext {
    BaContext {
        src: v6(HA6),
        protected: true,
        udp_from: None,
    }
}

fn events(mn: &mut MobileNode) -> Vec<Event> {
    std::iter::from_fn(|| mn.poll_event()).collect()
}

fn ack_ok(addr: Ipv4Addr, len: u8) -> MhOption {
    MhOption::Ipv4AddressAck {
        status: Ipv4AckStatus::SUCCESS,
        prefix_len: len,
        addr,
    }
}

/// Run the timers up to `until`, collecting the BUs sent with their send time.
fn run(mn: &mut MobileNode, mut now: Instant, until: Instant) -> Vec<(Instant, Transmit)> {
    let mut out = Vec::new();
    while let Some(t) = mn.poll_timeout() {
        if t > until {
            break;
        }
        now = now.max(t);
        mn.handle_timeout(now);
        while let Some(x) = mn.poll_transmit() {
            out.push((now, x));
        }
    }
    out
}

#[test]
fn ipv6_coa_bu_has_home_address_option_and_ipv4_home_option() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1000).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    let t = mn.poll_transmit().expect("BU");
    let (seq, flags, lifetime) = bu_fields(&t);
    assert_eq!(seq, 1000);
    assert!(flags.has(BuFlags::A | BuFlags::H | BuFlags::K));
    assert!(!flags.has(BuFlags::F));
    assert_eq!(lifetime, 150);
    assert_eq!(t.ipv6_src, v6("2001:db8:99::5"));
    assert_eq!(t.home_address_option, Some(v6(HOA)));
    assert!(t.outer.is_none());
    assert_eq!(
        t.mh.options,
        vec![MhOption::Ipv4HomeAddress {
            prefix_len: 32,
            prefix_request: false,
            addr: V4HOA
        }]
    );
    // The bytes: IPv6 header, Destination Options with the HoA, MH with a valid checksum.
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let n = t.emit(&mut out, &mut scratch).unwrap();
    let ip = Ipv6Repr::parse(&out[..n]).unwrap();
    assert_eq!(
        (ip.src, ip.dst, ip.next_header),
        (v6("2001:db8:99::5"), v6(HA6), 60)
    );
    let (dst, dlen) = DestOptsRepr::parse(&out[40..n]).unwrap();
    assert_eq!(dst.home_address, Some(v6(HOA)));
    let mh = MhPacket::new_checked(&out[40 + dlen..n]).unwrap();
    mh.verify_checksum(&v6(HOA), &v6(HA6)).unwrap();
    assert_eq!(MhRepr::parse(&mh).unwrap(), t.mh);
    let ev = events(&mut mn);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Keying(KeyingEvent::CareOfAddressProposed { .. }))),
        "{ev:?}"
    );
}

#[test]
fn ipv4_coa_bu_goes_in_udp_4191_from_the_home_address() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 7).unwrap();
    add(&mut mn, t0, "10.1.2.3", true);
    let t = mn.poll_transmit().expect("BU");
    assert_eq!(t.ipv6_src, v6(HOA));
    assert_eq!(t.home_address_option, None);
    assert!(t
        .mh
        .options
        .contains(&MhOption::Ipv4CareOfAddress(Ipv4Addr::new(10, 1, 2, 3))));
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    let n = t.emit(&mut out, &mut scratch).unwrap();
    let d = decapsulate(&mut out[..n]).unwrap();
    assert_eq!(
        d.outer,
        Outer::V4 {
            src: Ipv4Addr::new(10, 1, 2, 3),
            dst: HA4
        }
    );
    assert_eq!(
        d.encap,
        Encap::Udp {
            src_port: 4191,
            dst_port: 4191
        }
    );
    let inner = &out[d.inner.clone()];
    let ip = Ipv6Repr::parse(inner).unwrap();
    assert_eq!((ip.src, ip.dst, ip.next_header), (v6(HOA), v6(HA6), 135));
    let mh = MhPacket::new_checked(&inner[40..]).unwrap();
    mh.verify_checksum(&v6(HOA), &v6(HA6)).unwrap();
}

#[test]
fn backoff_then_ipv4_fallback_after_three_attempts() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::None), 1).unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    // The IPv4 address alone is registered at once; adding IPv6 moves to IPv6 (preferred).
    let first = mn.poll_transmit().unwrap();
    assert!(first.outer.is_some());
    add(&mut mn, t0, "2001:db8:99::5", false);
    let v6bu = mn.poll_transmit().unwrap();
    assert!(
        v6bu.outer.is_none(),
        "IPv6 care-of address preferred (RFC 5555 §4.4.1)"
    );
    let sent = run(&mut mn, t0, t0 + Duration::from_secs(200));
    let times: Vec<u64> = sent.iter().map(|(t, _)| (*t - t0).as_secs()).collect();
    // v6 at 0, 1, 3; fallback to v4 at 7, then 8, 10, 14, 22, 38, 70, 102, 134, 166, 198.
    assert_eq!(
        times,
        vec![1, 3, 7, 8, 10, 14, 22, 38, 70, 102, 134, 166, 198]
    );
    assert!(sent[..2].iter().all(|(_, t)| t.outer.is_none()));
    assert!(sent[2..].iter().all(|(_, t)| t.outer.is_some()));
    let seqs: Vec<u16> = sent.iter().map(|(_, t)| bu_fields(t).0).collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "{seqs:?}"
    );
    assert!(events(&mut mn)
        .iter()
        .any(|e| matches!(e, Event::FellBackToIpv4 { .. })));
}

#[test]
fn family_is_remembered_within_a_domain_and_retried_in_another() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::None), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99:1::5", false);
    add(&mut mn, t0, "198.51.100.7", false);
    let mut sent = run(&mut mn, t0, t0 + Duration::from_secs(7));
    let (t, bu) = sent.pop().unwrap();
    assert!(bu.outer.is_some());
    let seq = bu_fields(&bu).0;
    assert_eq!(
        mn.handle_ba(t, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
            .unwrap(),
        BaOutcome::Accepted
    );
    // Move inside the same /48: new IPv6 and IPv4 addresses, IPv4 is kept.
    let t1 = t + Duration::from_secs(5);
    add(&mut mn, t1, "198.51.100.9", false);
    add(&mut mn, t1, "2001:db8:99:2::5", false);
    mn.handle_address(
        t1,
        AddressEvent::Removed {
            addr: "2001:db8:99:1::5".parse().unwrap(),
        },
    );
    mn.handle_address(
        t1,
        AddressEvent::Removed {
            addr: "198.51.100.7".parse().unwrap(),
        },
    );
    let moves: Vec<Transmit> = std::iter::from_fn(|| mn.poll_transmit()).collect();
    assert_eq!(moves.len(), 1);
    assert_eq!(
        moves[0].mh.options,
        vec![MhOption::Ipv4CareOfAddress(Ipv4Addr::new(198, 51, 100, 9))],
        "same domain: the new IPv4 address, no IPv6 retry"
    );
    // A different domain (another /48): IPv6 is tried again.
    let t2 = t1 + Duration::from_secs(1);
    add(&mut mn, t2, "2001:db8:aa:1::5", false);
    mn.handle_address(
        t2,
        AddressEvent::Removed {
            addr: "2001:db8:99:2::5".parse().unwrap(),
        },
    );
    let t = mn.poll_transmit().unwrap();
    assert!(t.outer.is_none());
    assert_eq!(t.ipv6_src, v6("2001:db8:aa:1::5"));
}

#[test]
fn ba_with_ipv4_ack_and_nat_detection_builds_two_entries_and_udp_tunnel() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1).unwrap();
    add(&mut mn, t0, "10.0.0.5", true);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    let opts = vec![
        ack_ok(V4HOA, 32),
        MhOption::NatDetection {
            force_udp: false,
            refresh_time: 110,
        },
    ];
    let udp_ctx = BaContext {
        udp_from: Some((HA4, 4191)),
        ..ctx()
    };
    assert_eq!(
        mn.handle_ba(t0, &udp_ctx, &ba(seq, BaStatus::ACCEPTED, 150, opts))
            .unwrap(),
        BaOutcome::Accepted
    );
    assert_eq!(mn.ipv6_binding().unwrap().home, IpAddr::V6(v6(HOA)));
    assert_eq!(mn.ipv4_bindings().len(), 1);
    assert_eq!(mn.ipv4_bindings()[0].home, IpAddr::V4(V4HOA));
    let tun = mn.tunnel().unwrap();
    assert_eq!(
        tun.encap,
        Encap::Udp {
            src_port: 4191,
            dst_port: 4191
        }
    );
    assert_eq!(
        tun.outer,
        Outer::V4 {
            src: Ipv4Addr::new(10, 0, 0, 5),
            dst: HA4
        }
    );
    assert_eq!(tun.hoa4, Some(V4HOA));
    assert!(mn.nat_state().nat_detected);
    // NAT keepalive: the refresh comes at 110 s, not at 80 % of 600 s.
    assert_eq!(mn.poll_timeout(), Some(t0 + Duration::from_secs(110)));
    let ev = events(&mut mn);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::Keying(KeyingEvent::CareOfAddressConfirmed { k_acknowledged: true, nat, .. }) if nat.udp
    )), "{ev:?}");
}

#[test]
fn refresh_time_all_ones_means_udp_without_keepalives() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::None), 1).unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    let opts = vec![MhOption::NatDetection {
        force_udp: true,
        refresh_time: REFRESH_NOT_NEEDED,
    }];
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, opts))
        .unwrap();
    assert!(mn.nat_state().udp && !mn.nat_state().nat_detected);
    assert_eq!(mn.nat_state().keepalive, None);
    assert_eq!(
        mn.poll_timeout(),
        Some(t0 + Duration::from_secs(480)),
        "80 % of 600 s"
    );
}

#[test]
fn no_ipv4_ack_means_one_entry_and_no_option_again() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
        .unwrap();
    assert!(mn.ipv6_binding().is_some());
    assert!(mn.ipv4_bindings().is_empty());
    assert!(events(&mut mn).contains(&Event::Ipv4HomeUnsupported));
    let sent = run(&mut mn, t0, t0 + Duration::from_secs(480));
    let refresh = &sent.last().unwrap().1;
    assert!(refresh.mh.options.is_empty(), "{:?}", refresh.mh.options);
}

#[test]
fn ipv4_ack_failure_makes_no_entry_but_option_is_sent_again() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    let fail = MhOption::Ipv4AddressAck {
        status: Ipv4AckStatus::INCORRECT_IPV4_HOA,
        prefix_len: 0,
        addr: V4HOA,
    };
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![fail]))
        .unwrap();
    assert!(mn.ipv4_bindings().is_empty());
    assert!(mn.tunnel().unwrap().hoa4.is_none());
    assert!(events(&mut mn).contains(&Event::Ipv4HomeRefused {
        status: Ipv4AckStatus::INCORRECT_IPV4_HOA
    }));
    let sent = run(&mut mn, t0, t0 + Duration::from_secs(480));
    assert!(matches!(
        sent.last().unwrap().1.mh.options[0],
        MhOption::Ipv4HomeAddress { .. }
    ));
}

#[test]
fn dynamic_request_then_assigned_address_and_prefix_requests() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::Dynamic), 1).unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    let bu = mn.poll_transmit().unwrap();
    assert!(bu.mh.options.contains(&MhOption::Ipv4HomeAddress {
        prefix_len: 0,
        prefix_request: false,
        addr: Ipv4Addr::UNSPECIFIED
    }));
    let got = Ipv4Addr::new(192, 0, 2, 200);
    mn.handle_ba(
        t0,
        &ctx(),
        &ba(
            bu_fields(&bu).0,
            BaStatus::ACCEPTED,
            150,
            vec![ack_ok(got, 32)],
        ),
    )
    .unwrap();
    assert_eq!(mn.ipv4_bindings()[0].home, IpAddr::V4(got));
    let sent = run(&mut mn, t0, t0 + Duration::from_secs(480));
    assert!(sent
        .last()
        .unwrap()
        .1
        .mh
        .options
        .contains(&MhOption::Ipv4HomeAddress {
            prefix_len: 32,
            prefix_request: false,
            addr: got
        }));
    // An IPv4 address inside the home address is refused as a care-of address (§4.4.4).
    add(&mut mn, t0, "192.0.2.200", false);
    assert!(events(&mut mn).contains(&Event::Ipv4ReturnHomeUnsupported { addr: got }));

    let mut mn = MobileNode::new(
        config(Ipv4Home::Prefixes {
            lengths: vec![28, 30],
        }),
        1,
    )
    .unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    let bu = mn.poll_transmit().unwrap();
    let p: Vec<_> = bu
        .mh
        .options
        .iter()
        .filter(|o| matches!(o, MhOption::Ipv4HomeAddress { .. }))
        .collect();
    assert_eq!(
        p,
        vec![
            &MhOption::Ipv4HomeAddress {
                prefix_len: 28,
                prefix_request: true,
                addr: Ipv4Addr::UNSPECIFIED
            },
            &MhOption::Ipv4HomeAddress {
                prefix_len: 30,
                prefix_request: true,
                addr: Ipv4Addr::UNSPECIFIED
            },
        ]
    );
}

#[test]
fn sequence_rules_stale_out_of_window_and_144() {
    let t0 = Instant::now();
    let mut c = config(Ipv4Home::None);
    c.force_udp = true;
    let mut mn = MobileNode::new(c, 500).unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    let bu = mn.poll_transmit().unwrap();
    let (seq, flags, _) = bu_fields(&bu);
    assert!(flags.has(BuFlags::F));
    // A BA for another number is ignored.
    assert_eq!(
        mn.handle_ba(
            t0,
            &ctx(),
            &ba(seq.wrapping_sub(1), BaStatus::ACCEPTED, 150, vec![])
        )
        .unwrap(),
        BaOutcome::Stale
    );
    // 135 carries the home agent's last accepted number: continue above it.
    assert_eq!(
        mn.handle_ba(
            t0,
            &ctx(),
            &ba(9000, BaStatus::SEQUENCE_OUT_OF_WINDOW, 0, vec![])
        )
        .unwrap(),
        BaOutcome::Resent
    );
    let bu = mn.poll_transmit().unwrap();
    assert_eq!(bu_fields(&bu).0, 9001);
    // 144: forced UDP refused, resend without F.
    assert_eq!(
        mn.handle_ba(
            t0,
            &ctx(),
            &ba(9001, BaStatus::UDP_ENCAPSULATION_REFUSED, 0, vec![])
        )
        .unwrap(),
        BaOutcome::Resent
    );
    let bu = mn.poll_transmit().unwrap();
    let (seq, flags, _) = bu_fields(&bu);
    assert_eq!(seq, 9002);
    assert!(!flags.has(BuFlags::F));
    assert!(events(&mut mn).contains(&Event::ForcedUdpRefused));
    // Bad input is refused with a typed error.
    let unprot = BaContext {
        protected: false,
        ..ctx()
    };
    assert_eq!(
        mn.handle_ba(t0, &unprot, &ba(seq, BaStatus::ACCEPTED, 1, vec![])),
        Err(MnError::Unprotected)
    );
    let wrong = BaContext {
        src: v6("2001:db8:1::66"),
        ..ctx()
    };
    assert!(matches!(
        mn.handle_ba(t0, &wrong, &ba(seq, BaStatus::ACCEPTED, 1, vec![])),
        Err(MnError::WrongSource { .. })
    ));
    let brr = MhRepr {
        message: MhMessage::BindingRefreshRequest,
        options: vec![],
    };
    assert_eq!(
        mn.handle_ba(t0, &ctx(), &brr),
        Err(MnError::NotBindingAck { mh_type: 0 })
    );
    assert_eq!(mn.counters().ba_dropped, 3);
    // The real answer, then a duplicate of it.
    assert_eq!(
        mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
            .unwrap(),
        BaOutcome::Accepted
    );
    assert_eq!(
        mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
            .unwrap(),
        BaOutcome::Stale
    );
    assert_eq!(
        mn.tunnel().unwrap().encap,
        Encap::IpInIp,
        "F refused and no NAT: IP-in-IP"
    );
}

#[test]
fn ipip_loss_hint_sets_f_flag() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::None), 1).unwrap();
    add(&mut mn, t0, "198.51.100.7", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
        .unwrap();
    assert_eq!(mn.tunnel().unwrap().encap, Encap::IpInIp);
    mn.handle_ipip_loss(t0);
    let bu = mn.poll_transmit().unwrap();
    let (seq, flags, _) = bu_fields(&bu);
    assert!(flags.has(BuFlags::F));
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
        .unwrap();
    assert!(matches!(mn.tunnel().unwrap().encap, Encap::Udp { .. }));
}

#[test]
fn expiry_without_refresh_answer_and_deregistration() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    mn.handle_ba(
        t0,
        &ctx(),
        &ba(seq, BaStatus::ACCEPTED, 25, vec![ack_ok(V4HOA, 32)]),
    )
    .unwrap();
    assert_eq!(
        mn.ipv6_binding().unwrap().lifetime,
        Duration::from_secs(100),
        "granted lifetime wins"
    );
    let sent = run(&mut mn, t0, t0 + Duration::from_secs(100));
    assert_eq!((sent[0].0 - t0).as_secs(), 80, "refresh at 80 %");
    assert!(mn.ipv6_binding().is_none() && mn.ipv4_bindings().is_empty());
    let ev = events(&mut mn);
    assert!(
        ev.contains(&Event::BindingExpired) && ev.contains(&Event::TunnelChanged(None)),
        "{ev:?}"
    );
    // Still trying: the next answer registers again, then a deregistration removes all.
    let t1 = t0 + Duration::from_secs(111);
    let sent = run(&mut mn, t0 + Duration::from_secs(100), t1);
    let seq = bu_fields(&sent.last().map(|s| s.1.clone()).unwrap()).0;
    mn.handle_ba(
        t1,
        &ctx(),
        &ba(seq, BaStatus::ACCEPTED, 150, vec![ack_ok(V4HOA, 32)]),
    )
    .unwrap();
    assert!(mn.ipv6_binding().is_some());
    mn.deregister(t1).unwrap();
    let bu = mn.poll_transmit().unwrap();
    let (seq, _, lifetime) = bu_fields(&bu);
    assert_eq!(lifetime, 0);
    assert!(bu.mh.options.is_empty());
    mn.handle_ba(t1, &ctx(), &ba(seq, BaStatus::ACCEPTED, 0, vec![]))
        .unwrap();
    assert!(mn.ipv6_binding().is_none() && mn.tunnel().is_none());
    assert!(events(&mut mn).contains(&Event::Deregistered));
}

#[test]
fn removing_only_the_ipv4_binding_and_returning_home_over_ipv6() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(static_v4()), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    mn.handle_ba(
        t0,
        &ctx(),
        &ba(seq, BaStatus::ACCEPTED, 150, vec![ack_ok(V4HOA, 32)]),
    )
    .unwrap();
    assert_eq!(mn.ipv4_bindings().len(), 1);
    mn.set_ipv4_home_wanted(t0, false);
    let bu = mn.poll_transmit().unwrap();
    assert!(bu.mh.options.is_empty(), "no IPv4 Home Address option");
    assert!(bu_fields(&bu).2 > 0);
    mn.handle_ba(
        t0,
        &ctx(),
        &ba(bu_fields(&bu).0, BaStatus::ACCEPTED, 150, vec![]),
    )
    .unwrap();
    assert!(mn.ipv4_bindings().is_empty());
    assert!(mn.ipv6_binding().is_some());
    assert_eq!(mn.tunnel().unwrap().hoa4, None);
    // Home link address appears: deregister from the home address itself.
    add(&mut mn, t0, "2001:db8:1::100", false);
    let bu = mn.poll_transmit().unwrap();
    assert_eq!(
        (bu.ipv6_src, bu.home_address_option, bu.outer),
        (v6(HOA), None, None)
    );
    assert_eq!(bu_fields(&bu).2, 0);
    mn.handle_ba(
        t0,
        &ctx(),
        &ba(bu_fields(&bu).0, BaStatus::ACCEPTED, 0, vec![]),
    )
    .unwrap();
    assert!(events(&mut mn).contains(&Event::AtHome));
    assert!(mn.tunnel().is_none());
}

#[test]
fn losing_every_address_stops_retransmission() {
    let t0 = Instant::now();
    let mut mn = MobileNode::new(config(Ipv4Home::None), 1).unwrap();
    add(&mut mn, t0, "2001:db8:99::5", false);
    assert!(mn.poll_transmit().is_some());
    mn.handle_address(
        t0,
        AddressEvent::Removed {
            addr: "2001:db8:99::5".parse().unwrap(),
        },
    );
    assert!(events(&mut mn).contains(&Event::NoRoute));
    assert!(run(&mut mn, t0, t0 + Duration::from_secs(100)).is_empty());
    assert!(!mn.is_pending());
    // A registered binding is not refreshed from an address that is gone.
    add(&mut mn, t0, "198.51.100.7", false);
    let seq = bu_fields(&mn.poll_transmit().unwrap()).0;
    mn.handle_ba(t0, &ctx(), &ba(seq, BaStatus::ACCEPTED, 150, vec![]))
        .unwrap();
    mn.handle_address(
        t0,
        AddressEvent::Removed {
            addr: "198.51.100.7".parse().unwrap(),
        },
    );
    assert!(run(&mut mn, t0, t0 + Duration::from_secs(700)).is_empty());
    assert!(mn.ipv6_binding().is_none(), "expired at 600 s");
}
