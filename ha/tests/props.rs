//! Property test: arbitrary sequences of Binding Updates (any transport, any IPv4 request,
//! stale and fresh sequence numbers, deregistrations), time steps with expiry, and
//! restarts. After every step: an IPv4 home address is bound to at most one IPv6 home
//! address, pool and lease bookkeeping agree (and survive restarts unchanged), no binding
//! outlives its lifetime, and the data plane rebuilt from the events matches the cache.
//! At the end, once every lease is past grace, the whole pool can be allocated again.

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use common::*;
use ha::{Event, HaConfig, PoolConfig, Verdict};
use mipsec::wire::mh::BaStatus;
use mipsec::wire::mh::MhRepr;
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Bu {
        mn: usize,
        transport: u8,
        v4: u8,
        lifetime: u16,
        seq_step: u16,
        a_flag: bool,
    },
    Advance(u32),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..8usize, 0..3u8, 0..5u8, prop_oneof![Just(0u16), 1..60u16], prop_oneof![Just(1u16), Just(1), Just(2), Just(0), Just(65535), Just(40000)], any::<bool>())
            .prop_map(|(mn, transport, v4, lifetime, seq_step, a_flag)| Op::Bu { mn, transport, v4, lifetime, seq_step, a_flag }),
        3 => (0..150u32).prop_map(Op::Advance),
        1 => Just(Op::Restart),
    ]
}

fn cfg() -> HaConfig {
    let mut c = config();
    // Six usable addresses: .1 to .6.
    c.ipv4_pools = vec![PoolConfig {
        range: "198.51.100.0/29".parse().unwrap(),
        exclude: vec![],
    }];
    c.max_lifetime = 200;
    c.lease_time = 120;
    c.lease_grace = 40;
    c.lease_durability = ha::LeaseDurability::Eventual;
    c.mobile_nodes[1].ipv4_prefix = true;
    c
}

fn mns() -> Vec<Ipv6Addr> {
    let mut v: Vec<_> = (0..5).map(hoa).collect();
    v.extend([static_mn(), v6_only_mn(), router()]);
    v
}

/// The data plane as a driver would keep it from the events.
#[derive(Default)]
struct Plane {
    ndp: BTreeSet<Ipv6Addr>,
    arp: BTreeSet<Ipv4Addr>,
}

impl Plane {
    fn apply(&mut self, ev: Vec<Event>) -> Result<(), TestCaseError> {
        for e in ev {
            match e {
                Event::ProxyNdpAdd(a) => prop_assert!(self.ndp.insert(a), "NDP {} added twice", a),
                Event::ProxyNdpRemove(a) => {
                    prop_assert!(self.ndp.remove(&a), "NDP {} not there", a)
                }
                Event::ProxyArpAdd(a) => prop_assert!(self.arp.insert(a), "ARP {} added twice", a),
                Event::ProxyArpRemove(a) => {
                    prop_assert!(self.arp.remove(&a), "ARP {} not there", a)
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn check(lab: &mut Lab, plane: &mut Plane, t: f64) -> Result<(), TestCaseError> {
    lab.timeout(t);
    let ev = lab.events();
    plane.apply(ev)?;
    let now = lab.at(t);
    if let Err(e) = lab.ha().check_invariants(now) {
        return Err(TestCaseError::fail(e));
    }
    let bound: Vec<_> = lab.ha().bindings().cloned().collect();
    let ndp: BTreeSet<_> = bound.iter().map(|b| b.hoa).collect();
    prop_assert_eq!(&ndp, &plane.ndp);
    let arp: BTreeSet<_> = bound
        .iter()
        .filter_map(|b| {
            b.ipv4
                .filter(|v| v.net.prefix_len() == 32)
                .map(|v| v.net.addr())
        })
        .collect();
    prop_assert_eq!(&arp, &plane.arp);
    for b in &bound {
        prop_assert_eq!(lab.route(t, IpAddr::V6(b.hoa)).map(|r| r.hoa), Some(b.hoa));
        if let Some(v4) = b.ipv4 {
            prop_assert_eq!(
                lab.route(t, IpAddr::V4(v4.net.addr())).map(|r| r.hoa),
                Some(b.hoa)
            );
        }
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut lab = Lab::new(cfg());
    let mut plane = Plane::default();
    let nodes = mns();
    let mut seq = [0u16; 8];
    let mut t = 0.0f64;
    for op in ops {
        match op {
            Op::Advance(s) => t += f64::from(s),
            Op::Restart => {
                let before: Vec<_> = lab.ha().leases().copied().collect();
                lab.restart(t);
                plane = Plane::default();
                let after: Vec<_> = lab.ha().leases().copied().collect();
                prop_assert_eq!(before, after);
            }
            Op::Bu {
                mn,
                transport,
                v4,
                lifetime,
                seq_step,
                a_flag,
            } => {
                let h = nodes[mn];
                let s = seq[mn].wrapping_add(seq_step);
                let (ctx, mut opts) = match transport {
                    0 => (ctx_v6(h, "2001:db8:77::5"), vec![]),
                    1 => (
                        ctx_udp(h, [203, 0, 113, 9], 40000 + mn as u16),
                        vec![v4_coa([10, 0, 0, 5])],
                    ),
                    _ => (
                        ctx_udp(h, [192, 0, 2, 50], 4191),
                        vec![v4_coa([192, 0, 2, 50])],
                    ),
                };
                match v4 {
                    0 => {}
                    1 => opts.push(v4_hoa([0; 4])),
                    2 => opts.push(v4_hoa([198, 51, 100, 1 + (mn as u8 % 6)])),
                    3 => opts.push(MhOption::Ipv4HomeAddress {
                        prefix_len: 30,
                        prefix_request: true,
                        addr: Ipv4Addr::UNSPECIFIED,
                    }),
                    _ => opts.push(v4_hoa([203, 0, 113, 5])),
                }
                let existed = lab.ha().binding(&h).cloned();
                let flags = H | if a_flag { A } else { 0 } | if mn == 7 { R } else { 0 };
                let v = lab.send(t, &ctx, &bu(s, flags, lifetime, opts));
                if let Some(old) = &existed {
                    let d = s.wrapping_sub(old.sequence);
                    if d == 0 || d >= 0x8000 {
                        prop_assert_eq!(ba(&v).0, BaStatus::SEQUENCE_OUT_OF_WINDOW);
                        prop_assert_eq!(ba(&v).2, old.sequence);
                    }
                }
                let accepted = match &v {
                    Verdict::Accepted => true,
                    Verdict::Reply(r) => {
                        matches!(r.ba.message, mipsec::wire::mh::MhMessage::BindingAck { status, .. } if status.is_accepted())
                    }
                    Verdict::Dropped(d) => {
                        return Err(TestCaseError::fail(format!("dropped {d:?}")))
                    }
                };
                if accepted {
                    seq[mn] = s;
                    let b = lab.ha().binding(&h).cloned();
                    prop_assert_eq!(b.is_some(), lifetime != 0);
                    if let Some(b) = b {
                        prop_assert_eq!(b.sequence, s);
                    }
                }
            }
        }
        check(&mut lab, &mut plane, t)?;
    }
    // Far in the future every binding has expired and every lease is past grace: the whole
    // pool (six addresses) is allocatable again, and not one more.
    t += 10_000.0;
    check(&mut lab, &mut plane, t)?;
    prop_assert_eq!(lab.ha().bindings().count(), 0);
    for i in 0..7u16 {
        let h = hoa(500 + i);
        let v = lab.send(
            t,
            &ctx_udp(h, [192, 0, 2, 50], 4191),
            &bu(1, A | H, 10, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 50])]),
        );
        let want = if i < 6 {
            Ipv4AckStatus::SUCCESS
        } else {
            Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE
        };
        prop_assert_eq!(ack(&v).unwrap().0, want, "fresh node {}", i);
    }
    check(&mut lab, &mut plane, t)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_arbitrary_sequences(ops in proptest::collection::vec(op(), 1..40)) {
        run(ops)?;
    }
}

/// One generated Binding Update: flags with H most of the time, options from every kind
/// the codec knows with arbitrary values, and an optional corrupted byte (checksum fixed
/// afterwards, so the corruption reaches the parser and the engine).
fn arb_bu() -> impl Strategy<Value = (MhRepr, Option<(usize, u8)>)> {
    let addr4 = prop_oneof![
        Just(Ipv4Addr::UNSPECIFIED),
        (1u8..8).prop_map(|i| Ipv4Addr::new(198, 51, 100, i)),
        Just(Ipv4Addr::new(203, 0, 113, 5)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ];
    let opt = prop_oneof![
        (0u8..64, any::<bool>(), addr4.clone()).prop_map(|(prefix_len, prefix_request, addr)| {
            MhOption::Ipv4HomeAddress {
                prefix_len,
                prefix_request,
                addr,
            }
        }),
        addr4.prop_map(MhOption::Ipv4CareOfAddress),
        any::<u16>()
            .prop_map(|refresh_interval| MhOption::BindingRefreshAdvice { refresh_interval }),
        any::<u128>().prop_map(|a| MhOption::AlternateCoa(Ipv6Addr::from(a))),
        (
            any::<u8>(),
            prop_oneof![Just(0x2001_0db8_0100_u128 << 80), any::<u128>()]
        )
            .prop_map(|(prefix_len, p)| MhOption::MobileNetworkPrefix {
                prefix_len,
                prefix: Ipv6Addr::from(p)
            }),
        (any::<bool>(), any::<u32>()).prop_map(|(force_udp, refresh_time)| {
            MhOption::NatDetection {
                force_udp,
                refresh_time,
            }
        }),
        (7u8..28, proptest::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(kind, data)| MhOption::Unknown { kind, data }),
    ];
    let flags = (any::<u16>(), 0..4u8).prop_map(|(f, h)| if h == 0 { f } else { f | H });
    (
        any::<u16>(),
        flags,
        prop_oneof![Just(0u16), 1..100u16, any::<u16>()],
        proptest::collection::vec(opt, 0..5),
        proptest::option::weighted(0.3, (0usize..64, any::<u8>())),
    )
        .prop_map(|(seq, f, lifetime, options, corrupt)| (bu(seq, f, lifetime, options), corrupt))
}

/// Feed generated BUs as bytes: never a panic, always a drop or an answer that emits, and
/// the invariants hold after each.
fn feed(bus: Vec<(MhRepr, Option<(usize, u8)>)>, udp: bool) -> Result<u64, TestCaseError> {
    let mut lab = Lab::new(cfg());
    let h = if udp { hoa(1) } else { router() };
    let ctx = if udp {
        ctx_udp(h, [203, 0, 113, 9], 40000)
    } else {
        ctx_v6(h, "2001:db8:77::5")
    };
    let mut t = 0.0;
    for (repr, corrupt) in bus {
        let mut b = [0u8; 512];
        let Ok(n) = repr.emit(&mut b, &h, &ha6()) else {
            continue;
        };
        if let Some((at, x)) = corrupt {
            if 6 + at < n {
                b[6 + at] ^= x;
                let mut p = mipsec::wire::mh::MhPacket::new_checked(&mut b[..n]).unwrap();
                p.fill_checksum(&h, &ha6());
            }
        }
        t += 1.0;
        let now = lab.at(t);
        match lab.ha().handle_bu_bytes(now, &ctx, &b[..n]) {
            Verdict::Reply(r) => {
                let mut out = [0u8; 256];
                prop_assert!(r.emit_mh(&mut out).is_ok());
            }
            Verdict::Accepted | Verdict::Dropped(_) => {}
        }
        lab.timeout(t);
        if let Err(e) = lab.ha().check_invariants(now) {
            return Err(TestCaseError::fail(e));
        }
    }
    let c = lab.ha().counters();
    Ok(c.accepted + c.rejected)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bus_never_panic(bus in proptest::collection::vec(arb_bu(), 1..20), udp in any::<bool>()) {
        feed(bus, udp)?;
    }
}

#[test]
fn generated_bus_reach_the_engine() {
    // The generator must exercise the engine, not only the parser: on a fixed sample, BUs
    // are answered (accepted or refused) by the engine itself.
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strat = proptest::collection::vec(arb_bu(), 20);
    let mut reached = 0;
    for i in 0..20 {
        let bus = strat.new_tree(&mut runner).unwrap().current();
        reached += feed(bus, i % 2 == 0).unwrap();
    }
    eprintln!("{reached} of 400 generated BUs answered by the engine");
    assert!(
        reached >= 40,
        "only {reached} of 400 BUs reached the engine"
    );
}
