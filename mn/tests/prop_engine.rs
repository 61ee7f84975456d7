//! Property test: arbitrary sequences of address changes, Binding Acknowledgements (any
//! status, sequence number, lifetime and option mix), timer runs and administrative calls
//! never panic and keep the binding update list coherent.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use mipsec::wire::mh_option::REFRESH_NOT_NEEDED;
use mipsec::wire::{BaFlags, BaStatus, Ipv4AckStatus, MhMessage, MhOption, MhRepr};
use mn::{AddressEvent, BaContext, HomeAgentConfig, Ipv4Home, MnConfig, MobileNode, Transmit};
use proptest::prelude::*;

const ADDRS: [&str; 7] = [
    "2001:db8:99:1::5",
    "2001:db8:aa::5",
    "2001:db8:1::100",
    "198.51.100.7",
    "10.0.0.2",
    "192.0.2.100",
    "203.0.113.9",
];

#[derive(Debug, Clone)]
enum Op {
    Add(usize),
    Remove(usize),
    Label(Option<u8>),
    Ba {
        status: u8,
        seq_delta: i8,
        lifetime: u16,
        opts: Vec<(u8, u32)>,
    },
    Advance(u32),
    Loss,
    Deregister,
    Register,
    WantV4(bool),
    Refresh,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..ADDRS.len()).prop_map(Op::Add),
        (0..ADDRS.len()).prop_map(Op::Remove),
        proptest::option::of(0u8..3).prop_map(Op::Label),
        (
            prop::sample::select(vec![0u8, 1, 128, 129, 133, 135, 144, 200]),
            -2i8..3,
            any::<u16>(),
            prop::collection::vec((0u8..6, any::<u32>()), 0..4)
        )
            .prop_map(|(status, seq_delta, lifetime, opts)| Op::Ba {
                status,
                seq_delta,
                lifetime,
                opts
            }),
        (0u32..200_000).prop_map(Op::Advance),
        Just(Op::Loss),
        Just(Op::Deregister),
        Just(Op::Register),
        any::<bool>().prop_map(Op::WantV4),
        Just(Op::Refresh),
    ]
}

fn option(kind: u8, x: u32) -> MhOption {
    let a = Ipv4Addr::from(x);
    match kind {
        0 => MhOption::Ipv4AddressAck {
            status: Ipv4AckStatus::SUCCESS,
            prefix_len: (x % 33) as u8,
            addr: a,
        },
        1 => MhOption::Ipv4AddressAck {
            status: Ipv4AckStatus(128 + (x % 6) as u8),
            prefix_len: 0,
            addr: a,
        },
        2 => MhOption::NatDetection {
            force_udp: x % 2 == 0,
            refresh_time: [0, 110, REFRESH_NOT_NEEDED, x][(x % 4) as usize],
        },
        3 => MhOption::BindingRefreshAdvice {
            refresh_interval: x as u16,
        },
        4 => MhOption::Ipv4CareOfAddress(a),
        _ => MhOption::Unknown {
            kind: 99,
            data: vec![1, 2],
        },
    }
}

fn check_transmit(t: &Transmit, hoa: Ipv6Addr) {
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    t.emit(&mut out, &mut scratch)
        .expect("every BU can be emitted");
    match t.outer {
        Some(_) => {
            assert_eq!(t.ipv6_src, hoa);
            assert!(t
                .mh
                .options
                .iter()
                .any(|o| matches!(o, MhOption::Ipv4CareOfAddress(_))));
        }
        None if t.ipv6_src == hoa => {
            assert!(
                matches!(t.mh.message, MhMessage::BindingUpdate { lifetime: 0, .. }),
                "only the return home BU"
            );
        }
        None => assert_eq!(t.home_address_option, Some(hoa)),
    }
}

fn check(mn: &MobileNode) {
    if !mn.ipv4_bindings().is_empty() {
        assert!(
            mn.ipv6_binding().is_some(),
            "an IPv4 entry never stands alone"
        );
    }
    assert_eq!(mn.tunnel().is_some(), mn.ipv6_binding().is_some());
    if let Some(t) = mn.tunnel() {
        assert_eq!(t.hoa4.is_some(), !mn.ipv4_bindings().is_empty());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn engine_stays_coherent(ops in prop::collection::vec(op(), 1..60), static_v4 in any::<bool>()) {
        let ha6: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
        let ha = HomeAgentConfig { ipv6: Some(ha6), ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)), ..Default::default() };
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let mut cfg = MnConfig::new(hoa, ha);
        cfg.ipv4_home = if static_v4 {
            Ipv4Home::Static { address: Ipv4Addr::new(192, 0, 2, 100), prefix_len: 32 }
        } else {
            Ipv4Home::Dynamic
        };
        let mut mn = MobileNode::new(cfg, 65530).unwrap();
        let mut now = Instant::now();
        let mut last_seq = 65530u16;
        for op in ops {
            match op {
                Op::Add(i) => {
                    let addr: IpAddr = ADDRS[i].parse().unwrap();
                    mn.handle_address(now, AddressEvent::Added { addr, private: ADDRS[i].starts_with("10.") });
                }
                Op::Remove(i) => mn.handle_address(now, AddressEvent::Removed { addr: ADDRS[i].parse().unwrap() }),
                Op::Label(l) => mn.handle_address(now, AddressEvent::NetworkLabel(l.map(|x| format!("net{x}")))),
                Op::Ba { status, seq_delta, lifetime, opts } => {
                    let ba = MhRepr {
                        message: MhMessage::BindingAck {
                            status: BaStatus(status),
                            flags: BaFlags(BaFlags::K),
                            sequence: last_seq.wrapping_add(seq_delta as u16),
                            lifetime,
                        },
                        options: opts.into_iter().map(|(k, x)| option(k, x)).collect(),
                    };
                    let ctx = BaContext { src: ha6, protected: true, udp_from: None };
                    let _ = mn.handle_ba(now, &ctx, &ba);
                }
                Op::Advance(ms) => {
                    let end = now + Duration::from_millis(u64::from(ms));
                    let mut steps = 0;
                    while let Some(t) = mn.poll_timeout().filter(|t| *t <= end) {
                        now = now.max(t);
                        mn.handle_timeout(now);
                        steps += 1;
                        prop_assert!(steps < 10_000, "timer livelock");
                        prop_assert!(!matches!(mn.poll_timeout(), Some(n) if n <= now), "a due timer was not consumed");
                        while let Some(t) = mn.poll_transmit() {
                            check_transmit(&t, hoa);
                            last_seq = t.sequence();
                        }
                    }
                    now = end;
                }
                Op::Loss => mn.handle_ipip_loss(now),
                Op::Deregister => { let _ = mn.deregister(now); }
                Op::Register => mn.register(now),
                Op::WantV4(w) => mn.set_ipv4_home_wanted(now, w),
                Op::Refresh => { let _ = mn.refresh(now); }
            }
            while let Some(t) = mn.poll_transmit() {
                check_transmit(&t, hoa);
                last_seq = t.sequence();
            }
            while mn.poll_event().is_some() {}
            check(&mn);
        }
    }
}
