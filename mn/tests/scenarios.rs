//! Paired scenarios: this crate's mobile node engine against the `ha` home agent engine over
//! the in-memory network of `sim/` (virtual time, real packets, NAPT, deterministic loss).
//! RFC 5555 §1.3 scenarios 1, 2, 4 and 5, and the §4.4 rules end to end.

mod sim;

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use ha::HaConfig;
use mipsec::wire::mh_option::REFRESH_NOT_NEEDED;
use mipsec::wire::tunnel::{Encap, Outer};
use mipsec::wire::{BaStatus, BuFlags, Ipv4AckStatus, MhMessage, MhOption};
use mn::{BaOutcome, CareOf, Event, HomeAgentConfig, Ipv4Home, MnConfig};
use serde_json::json;
use sim::{v6, Dir, Nat, Seen, Sim, HA4, HA6, HOA};

const V4HOA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn mn_cfg(ipv4_home: Ipv4Home) -> MnConfig {
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

/// The home agent: home prefix 2001:db8:1::/64, a dynamic pool, and our mobile node with a
/// static IPv4 home address. `extra` overrides top-level keys.
fn ha_cfg(extra: serde_json::Value, mn_entry: serde_json::Value) -> HaConfig {
    let mut v = json!({
        "address": HA6,
        "address_v4": HA4.to_string(),
        "home_prefixes": ["2001:db8:1::/64"],
        "ipv4_pool": [{ "range": "192.0.2.128/26" }],
        "mobile_node": [mn_entry],
    });
    for (k, x) in extra.as_object().unwrap() {
        v[k] = x.clone();
    }
    serde_json::from_value(v).unwrap()
}

fn mn_static_entry() -> serde_json::Value {
    json!({ "home_address": HOA, "ipv4_home_address": "192.0.2.100/32" })
}

fn bu_of(s: &Seen) -> (u16, BuFlags, u16) {
    match s.mh.message {
        MhMessage::BindingUpdate {
            sequence,
            flags,
            lifetime,
        } => (sequence, flags, lifetime),
        ref m => panic!("not a BU: {m:?}"),
    }
}

fn ba_status(s: &Seen) -> BaStatus {
    match s.mh.message {
        MhMessage::BindingAck { status, .. } => status,
        ref m => panic!("not a BA: {m:?}"),
    }
}

fn has_option(s: &Seen, f: impl Fn(&MhOption) -> bool) -> bool {
    s.mh.options.iter().any(f)
}

fn is_v4_hoa_opt(o: &MhOption) -> bool {
    matches!(o, MhOption::Ipv4HomeAddress { .. })
}

fn nat_option(s: &Seen) -> Option<(bool, u32)> {
    s.mh.options.iter().find_map(|o| match o {
        MhOption::NatDetection {
            force_udp,
            refresh_time,
        } => Some((*force_udp, *refresh_time)),
        _ => None,
    })
}

fn ipv4_home_entry(sim: &Sim) -> Option<(IpAddr, u8)> {
    sim.mn
        .ipv4_bindings()
        .first()
        .map(|e| (e.home, e.prefix_len))
}

fn udp4191(src_port: u16) -> Option<Encap> {
    Some(Encap::Udp {
        src_port,
        dst_port: 4191,
    })
}

#[test]
fn scenario1_ipv4_only_public_network() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    let bus = sim.bus();
    assert_eq!(bus.len(), 1);
    assert_eq!(
        bus[0].outer,
        Outer::V4 {
            src: Ipv4Addr::new(198, 51, 100, 7),
            dst: HA4
        }
    );
    assert_eq!(
        bus[0].encap,
        udp4191(4191),
        "BU always in UDP from IPv4 (§4.2)"
    );
    assert!(has_option(bus[0], |o| *o
        == MhOption::Ipv4CareOfAddress(Ipv4Addr::new(198, 51, 100, 7))));
    assert!(has_option(bus[0], is_v4_hoa_opt));
    let bas = sim.bas();
    assert_eq!(bas.len(), 1);
    assert_eq!(ba_status(bas[0]), BaStatus::ACCEPTED);
    assert_eq!(
        bas[0].encap,
        Some(Encap::Udp {
            src_port: 4191,
            dst_port: 4191
        })
    );
    assert_eq!(
        nat_option(bas[0]),
        Some((false, REFRESH_NOT_NEEDED)),
        "no NAT on the path"
    );
    // Two binding update list entries and IP-in-IP (no NAT, no F).
    assert_eq!(
        sim.mn.ipv6_binding().unwrap().coa,
        CareOf::V4 {
            addr: Ipv4Addr::new(198, 51, 100, 7),
            private: false
        }
    );
    assert_eq!(ipv4_home_entry(&sim), Some((IpAddr::V4(V4HOA), 32)));
    assert_eq!(sim.mn.tunnel().unwrap().encap, Encap::IpInIp);
    assert_eq!(sim.mn.tunnel().unwrap().hoa4, Some(V4HOA));
    sim.assert_tunnels_agree();
    let r4 = sim
        .ha_route(IpAddr::V4(V4HOA))
        .expect("IPv4 home address routed");
    assert_eq!(
        r4.outer,
        Outer::V4 {
            src: HA4,
            dst: Ipv4Addr::new(198, 51, 100, 7)
        }
    );
}

#[test]
fn scenario2_behind_a_nat_with_keepalives() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.nat = Some(Nat::new(Ipv4Addr::new(203, 0, 113, 5), 40000));
    sim.attach(&["10.1.0.2"]);
    sim.run_until(secs(1));
    let bas = sim.bas();
    assert_eq!(ba_status(bas[0]), BaStatus::ACCEPTED);
    assert_eq!(
        nat_option(bas[0]),
        Some((false, 110)),
        "NAT detected, NATKATIMEOUT"
    );
    assert_eq!(
        sim.mn.tunnel().unwrap().encap,
        Encap::Udp {
            src_port: 4191,
            dst_port: 4191
        }
    );
    assert!(sim.mn.nat_state().nat_detected);
    sim.assert_tunnels_agree();
    let r = sim.ha_route(IpAddr::V6(v6(HOA))).unwrap();
    assert_eq!(
        r.outer,
        Outer::V4 {
            src: HA4,
            dst: Ipv4Addr::new(203, 0, 113, 5)
        }
    );
    assert_eq!(
        r.encap,
        Encap::Udp {
            src_port: 4191,
            dst_port: 40000
        }
    );
    // Keepalives: a BU every 110 s, not at 80 % of the 600 s lifetime.
    sim.run_until(secs(400));
    let at: Vec<u64> = sim.bus().iter().map(|s| s.at.as_secs()).collect();
    assert_eq!(at, vec![0, 110, 220, 330]);
    assert!(sim.outcomes.iter().all(|o| *o == BaOutcome::Accepted));
    assert!(sim.ha.binding(&v6(HOA)).is_some());
}

#[test]
fn scenario4_ipv4_home_address_from_an_ipv6_network() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(1));
    let bu = sim.bus()[0];
    assert_eq!(
        bu.outer,
        Outer::V6 {
            src: v6("2001:db8:99::5"),
            dst: v6(HA6)
        }
    );
    assert!(has_option(bu, is_v4_hoa_opt));
    assert_eq!(ipv4_home_entry(&sim), Some((IpAddr::V4(V4HOA), 32)));
    let t = sim.mn.tunnel().unwrap();
    assert_eq!(
        (t.outer, t.encap, t.hoa4),
        (
            Outer::V6 {
                src: v6("2001:db8:99::5"),
                dst: v6(HA6)
            },
            Encap::IpInIp,
            Some(V4HOA)
        )
    );
    // IPv4 in IPv6 at the home agent.
    let r4 = sim.ha_route(IpAddr::V4(V4HOA)).unwrap();
    assert_eq!(
        r4.outer,
        Outer::V6 {
            src: v6(HA6),
            dst: v6("2001:db8:99::5")
        }
    );
    sim.assert_tunnels_agree();
}

#[test]
fn scenario5_dual_stack_prefers_ipv6() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["2001:db8:99::5", "198.51.100.7"]);
    sim.run_until(secs(5));
    let bus = sim.bus();
    assert_eq!(bus.len(), 1, "one BU, from the IPv6 care-of address");
    assert!(matches!(bus[0].outer, Outer::V6 { .. }));
    assert_eq!(
        sim.mn.ipv6_binding().unwrap().coa,
        CareOf::V6(v6("2001:db8:99::5"))
    );
    sim.assert_tunnels_agree();
}

#[test]
fn fallback_to_ipv4_after_three_lost_ipv6_bus_and_family_memory() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.ipv6_broken = true;
    sim.attach(&["2001:db8:99:1::5", "198.51.100.7"]);
    sim.run_until(secs(10));
    let bus = sim.bus();
    let timeline: Vec<(u64, bool)> = bus
        .iter()
        .map(|s| (s.at.as_secs(), matches!(s.outer, Outer::V6 { .. })))
        .collect();
    assert_eq!(timeline, vec![(0, true), (1, true), (3, true), (7, false)]);
    assert!(bus[..3].iter().all(|s| s.dropped));
    assert!(sim
        .mn_events
        .iter()
        .any(|e| matches!(e, Event::FellBackToIpv4 { .. })));
    assert!(sim.mn.ipv6_binding().unwrap().coa.is_v4());
    sim.assert_tunnels_agree();
    // Movement inside the same /48: straight to IPv4, no IPv6 attempt.
    sim.attach(&["2001:db8:99:2::5", "198.51.100.9"]);
    sim.run_for(secs(5));
    let after: Vec<&Seen> = sim.bus().into_iter().skip(4).collect();
    assert_eq!(after.len(), 1);
    assert_eq!(
        after[0].outer,
        Outer::V4 {
            src: Ipv4Addr::new(198, 51, 100, 9),
            dst: HA4
        }
    );
    // A different administrative domain with working IPv6: IPv6 again.
    sim.ipv6_broken = false;
    sim.attach(&["2001:db8:aa::5", "203.0.113.20"]);
    sim.run_for(secs(5));
    let last = *sim.bus().last().unwrap();
    assert_eq!(
        last.outer,
        Outer::V6 {
            src: v6("2001:db8:aa::5"),
            dst: v6(HA6)
        }
    );
    assert_eq!(
        sim.mn.ipv6_binding().unwrap().coa,
        CareOf::V6(v6("2001:db8:aa::5"))
    );
    sim.assert_tunnels_agree();
}

#[test]
fn nat_appears_and_disappears() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.nat = Some(Nat::new(Ipv4Addr::new(203, 0, 113, 5), 50000));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(2));
    assert_eq!(sim.mn.tunnel().unwrap().encap, Encap::IpInIp);
    // Into a private network behind the NAT.
    sim.attach(&["10.9.0.2"]);
    sim.run_until(secs(4));
    assert!(sim.mn.nat_state().nat_detected);
    assert_eq!(
        sim.mn.tunnel().unwrap().encap,
        Encap::Udp {
            src_port: 4191,
            dst_port: 4191
        }
    );
    sim.assert_tunnels_agree();
    assert!(sim.mn_events.iter().any(|e| matches!(
        e,
        mn::Event::Keying(mn::KeyingEvent::CareOfAddressConfirmed { nat, .. }) if nat.nat_detected
    )));
    // Out again to a public address: no NAT, IP-in-IP, no more 110 s keepalives.
    sim.attach(&["198.51.100.8"]);
    sim.run_until(secs(6));
    assert!(!sim.mn.nat_state().nat_detected);
    assert_eq!(sim.mn.tunnel().unwrap().encap, Encap::IpInIp);
    sim.assert_tunnels_agree();
    let before = sim.bus().len();
    sim.run_until(secs(300));
    assert_eq!(sim.bus().len(), before, "no keepalives without a NAT");
}

#[test]
fn home_agent_without_ipv4_home_address_support() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.strip_ipv4_ack = true;
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(1));
    assert!(sim.mn.ipv6_binding().is_some());
    assert!(sim.mn.ipv4_bindings().is_empty());
    assert!(sim.mn_events.contains(&Event::Ipv4HomeUnsupported));
    // The refresh leaves the option out (§2.3.1), so the home agent drops its IPv4 binding.
    sim.run_until(secs(481));
    let refresh = *sim.bus().last().unwrap();
    assert_eq!(refresh.at.as_secs(), 480);
    assert!(!has_option(refresh, is_v4_hoa_opt));
    assert!(sim.ha_route(IpAddr::V4(V4HOA)).is_none());
    assert!(sim.ha_route(IpAddr::V6(v6(HOA))).is_some());
}

#[test]
fn ipv4_home_address_refused() {
    let entry = json!({ "home_address": HOA, "ipv4": false });
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), entry));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    let ack = sim.bas()[0].mh.options.iter().find_map(|o| match o {
        MhOption::Ipv4AddressAck { status, .. } => Some(*status),
        _ => None,
    });
    assert_eq!(ack, Some(Ipv4AckStatus::ADMIN_PROHIBITED));
    assert!(sim.mn.ipv6_binding().is_some());
    assert!(sim.mn.ipv4_bindings().is_empty());
    assert!(sim.mn_events.contains(&Event::Ipv4HomeRefused {
        status: Ipv4AckStatus::ADMIN_PROHIBITED
    }));
    sim.run_until(secs(481));
    assert!(
        has_option(sim.bus().last().unwrap(), is_v4_hoa_opt),
        "MAY include it again"
    );
}

#[test]
fn dynamic_ipv4_home_address() {
    let entry = json!({ "home_address": HOA });
    let mut sim = Sim::new(mn_cfg(Ipv4Home::Dynamic), ha_cfg(json!({}), entry));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    assert!(has_option(sim.bus()[0], |o| *o
        == MhOption::Ipv4HomeAddress {
            prefix_len: 0,
            prefix_request: false,
            addr: Ipv4Addr::UNSPECIFIED
        }));
    let (IpAddr::V4(got), 32) = ipv4_home_entry(&sim).expect("assigned") else {
        panic!("not an IPv4 /32")
    };
    assert!(
        u32::from(got) & 0xffff_ffc0 == u32::from(Ipv4Addr::new(192, 0, 2, 128)),
        "{got} from the pool"
    );
    assert_eq!(sim.ha_route(IpAddr::V4(got)).unwrap().hoa, v6(HOA));
    // The refresh asks for the assigned address and keeps it.
    sim.run_until(secs(481));
    let refresh = *sim.bus().last().unwrap();
    assert!(has_option(refresh, |o| *o
        == MhOption::Ipv4HomeAddress {
            prefix_len: 32,
            prefix_request: false,
            addr: got
        }));
    assert_eq!(ipv4_home_entry(&sim), Some((IpAddr::V4(got), 32)));
    sim.assert_tunnels_agree();
}

#[test]
fn ipv4_prefix_request() {
    let entry = json!({ "home_address": HOA, "ipv4_prefix": true });
    let mut sim = Sim::new(
        mn_cfg(Ipv4Home::Prefixes { lengths: vec![30] }),
        ha_cfg(json!({}), entry),
    );
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(1));
    assert!(has_option(sim.bus()[0], |o| *o
        == MhOption::Ipv4HomeAddress {
            prefix_len: 30,
            prefix_request: true,
            addr: Ipv4Addr::UNSPECIFIED
        }));
    let (IpAddr::V4(net), 30) = ipv4_home_entry(&sim).expect("prefix") else {
        panic!("not a /30")
    };
    let inside = Ipv4Addr::from(u32::from(net) + 2);
    assert_eq!(sim.ha_route(IpAddr::V4(inside)).unwrap().hoa, v6(HOA));
    // Without authorisation the home agent refuses with 133.
    let entry = json!({ "home_address": HOA });
    let mut sim = Sim::new(
        mn_cfg(Ipv4Home::Prefixes { lengths: vec![30] }),
        ha_cfg(json!({}), entry),
    );
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(1));
    assert!(sim.mn_events.contains(&Event::Ipv4HomeRefused {
        status: Ipv4AckStatus::PREFIX_UNAUTHORIZED
    }));
    assert!(sim.mn.ipv4_bindings().is_empty());
}

#[test]
fn deregistration_and_removing_only_the_ipv4_binding() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    assert!(sim.ha_route(IpAddr::V4(V4HOA)).is_some());
    let now = sim.now;
    sim.mn.set_ipv4_home_wanted(now, false);
    sim.run_until(secs(2));
    assert!(!has_option(sim.bus().last().unwrap(), is_v4_hoa_opt));
    assert!(sim.mn.ipv4_bindings().is_empty() && sim.mn.ipv6_binding().is_some());
    assert!(
        sim.ha_route(IpAddr::V4(V4HOA)).is_none(),
        "IPv4 binding removed at the home agent"
    );
    assert!(
        sim.ha_route(IpAddr::V6(v6(HOA))).is_some(),
        "IPv6 binding kept"
    );
    let now = sim.now;
    sim.mn.deregister(now).unwrap();
    sim.run_until(secs(3));
    assert_eq!(bu_of(sim.bus().last().unwrap()).2, 0);
    assert!(sim.mn_events.contains(&Event::Deregistered));
    assert!(sim.mn.ipv6_binding().is_none() && sim.mn.tunnel().is_none());
    assert!(sim.ha.binding(&v6(HOA)).is_none());
    assert!(sim
        .ha_events
        .iter()
        .any(|e| matches!(e, ha::Event::TunnelRemove { .. })));
    // Deregistered stays deregistered across movements, until asked to register.
    let n = sim.bus().len();
    sim.attach(&["198.51.100.8"]);
    sim.run_until(secs(10));
    assert_eq!(sim.bus().len(), n);
    let now = sim.now;
    sim.mn.register(now);
    sim.run_until(secs(11));
    assert!(sim.ha.binding(&v6(HOA)).is_some());
    sim.assert_tunnels_agree();
}

#[test]
fn lifetime_refresh_and_expiry() {
    let mut sim = Sim::new(
        mn_cfg(static_v4()),
        ha_cfg(json!({ "max_lifetime": 60 }), mn_static_entry()),
    );
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(200));
    let at: Vec<u64> = sim.bus().iter().map(|s| s.at.as_secs()).collect();
    assert_eq!(
        at,
        vec![0, 48, 96, 144, 192],
        "refresh at 80 % of the granted 60 s"
    );
    assert_eq!(sim.mn.ipv6_binding().unwrap().lifetime, secs(60));
    assert!(sim.ha.binding(&v6(HOA)).is_some());
    // The home agent becomes unreachable: both ends let the binding expire.
    sim.ipv6_broken = true;
    sim.run_until(secs(260));
    assert!(sim.mn.ipv6_binding().is_none());
    assert!(sim.mn_events.contains(&Event::BindingExpired));
    assert!(sim.ha.binding(&v6(HOA)).is_none());
    assert!(sim
        .ha_events
        .iter()
        .any(|e| matches!(e, ha::Event::BindingExpired { .. })));
    // Still retrying with back-off; IPv6 back: registered again.
    sim.ipv6_broken = false;
    sim.run_until(secs(400));
    assert!(sim.mn.ipv6_binding().is_some());
    sim.assert_tunnels_agree();
}

#[test]
fn lost_and_duplicated_bas() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.drop.insert((Dir::ToMn, 0));
    sim.duplicate.insert((Dir::ToMn, 1));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(3));
    let bus = sim.bus();
    assert_eq!(bus.len(), 2, "the lost BA costs one retransmission");
    assert_eq!(bus[1].at, secs(1));
    assert_eq!(bu_of(bus[1]).0, bu_of(bus[0]).0.wrapping_add(1));
    assert_eq!(
        sim.outcomes,
        vec![BaOutcome::Accepted, BaOutcome::Stale],
        "the duplicate is ignored"
    );
    assert_eq!(sim.mn.ipv6_binding().unwrap().sequence, bu_of(bus[1]).0);
    assert_eq!(sim.mn.counters().ba_stale, 1);
    sim.assert_tunnels_agree();
}

#[test]
fn forced_udp_refused_then_accepted_on_loss_hint() {
    let mut cfg = mn_cfg(static_v4());
    cfg.force_udp = true;
    let mut sim = Sim::new(
        cfg,
        ha_cfg(json!({ "accept_force_udp": false }), mn_static_entry()),
    );
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    let bus = sim.bus();
    assert!(bu_of(bus[0]).1.has(BuFlags::F));
    assert_eq!(ba_status(sim.bas()[0]), BaStatus::UDP_ENCAPSULATION_REFUSED);
    assert!(!bu_of(bus[1]).1.has(BuFlags::F), "resent without F");
    assert!(sim.mn_events.contains(&Event::ForcedUdpRefused));
    assert_eq!(sim.mn.tunnel().unwrap().encap, Encap::IpInIp);
    sim.assert_tunnels_agree();

    // A home agent that accepts F: the loss hint switches IP-in-IP to UDP.
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["198.51.100.7"]);
    sim.run_until(secs(1));
    assert_eq!(sim.mn.tunnel().unwrap().encap, Encap::IpInIp);
    let now = sim.now;
    sim.mn.handle_ipip_loss(now);
    sim.run_until(secs(2));
    assert!(bu_of(sim.bus().last().unwrap()).1.has(BuFlags::F));
    assert_eq!(
        nat_option(sim.bas().last().unwrap()),
        Some((true, REFRESH_NOT_NEEDED))
    );
    assert!(matches!(sim.mn.tunnel().unwrap().encap, Encap::Udp { .. }));
    assert_eq!(sim.mn.nat_state().keepalive, None);
    sim.assert_tunnels_agree();
}

#[test]
fn returning_home_over_ipv6_and_not_over_ipv4() {
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["2001:db8:99::5"]);
    sim.run_until(secs(1));
    assert!(sim.ha.binding(&v6(HOA)).is_some());
    sim.attach(&["2001:db8:1::100"]);
    sim.run_until(secs(2));
    let bu = *sim.bus().last().unwrap();
    assert_eq!(
        bu.outer,
        Outer::V6 {
            src: v6(HOA),
            dst: v6(HA6)
        }
    );
    assert_eq!(bu_of(bu).2, 0);
    assert!(sim.mn_events.contains(&Event::AtHome));
    assert!(sim.ha.binding(&v6(HOA)).is_none());
    // On the IPv4 home link: unsupported (RFC 5555 §4.4.4), nothing is registered.
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.attach(&["192.0.2.100"]);
    sim.run_until(secs(5));
    assert!(sim.bus().is_empty());
    assert!(sim
        .mn_events
        .contains(&Event::Ipv4ReturnHomeUnsupported { addr: V4HOA }));
}

#[test]
fn suite_is_fast() {
    // A whole NAT scenario over a simulated day runs well inside the 10 s budget.
    let start = Instant::now();
    let mut sim = Sim::new(mn_cfg(static_v4()), ha_cfg(json!({}), mn_static_entry()));
    sim.nat = Some(Nat::new(Ipv4Addr::new(203, 0, 113, 5), 40000));
    sim.attach(&["10.1.0.2"]);
    sim.run_until(secs(86_400));
    assert_eq!(sim.bus().len(), 786, "one keepalive every 110 s for a day");
    eprintln!("simulated day: {:?}", start.elapsed());
}

/// A small deterministic generator (64-bit LCG), so the walk is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn random_walk_converges_after_every_heal() {
    // Movements between networks, NAT on and off, IPv6 outages, lost and duplicated
    // packets; after each stretch the network heals and both ends must agree again.
    let networks: [&[&str]; 6] = [
        &["2001:db8:99:1::5", "198.51.100.7"],
        &["2001:db8:99:2::5"],
        &["198.51.100.9"],
        &["10.1.0.2"],
        &["2001:db8:aa::5", "10.2.0.2"],
        &["203.0.113.20"],
    ];
    let mut cfg = mn_cfg(Ipv4Home::Dynamic);
    cfg.domains.named = vec![];
    let mut sim = Sim::new(
        cfg,
        ha_cfg(
            json!({ "max_lifetime": 120 }),
            json!({ "home_address": HOA }),
        ),
    );
    sim.nat = Some(Nat::new(Ipv4Addr::new(203, 0, 113, 5), 30000));
    let mut rng = Lcg(0x5eed);
    let mut checks = 0;
    for round in 0..100 {
        for _ in 0..(1 + rng.next(4)) {
            match rng.next(5) {
                0 | 1 => sim.attach(networks[rng.next(networks.len() as u64) as usize]),
                2 => sim.ipv6_broken = rng.next(2) == 0,
                3 => {
                    let dir = if rng.next(2) == 0 {
                        Dir::ToHa
                    } else {
                        Dir::ToMn
                    };
                    let base = sim.log.iter().filter(|s| s.dir == dir).count();
                    let first = base + rng.next(3) as usize;
                    let dup = rng.next(3) == 0;
                    for i in first..first + 1 + rng.next(3) as usize {
                        if dup {
                            sim.duplicate.insert((dir, i));
                        } else {
                            sim.drop.insert((dir, i));
                        }
                    }
                }
                _ => sim.run_for(Duration::from_millis(rng.next(90_000))),
            }
        }
        // Heal: no outage, no further loss; the mobile node re-registers within the
        // back-off cap plus one refresh.
        sim.ipv6_broken = false;
        sim.drop.clear();
        sim.duplicate.clear();
        sim.run_for(secs(100));
        let coa = sim
            .mn
            .ipv6_binding()
            .unwrap_or_else(|| panic!("round {round}: not registered"))
            .coa;
        let b = sim
            .ha
            .binding(&v6(HOA))
            .unwrap_or_else(|| panic!("round {round}: no binding at the HA"));
        assert_eq!(b.coa, coa.ip(), "round {round}");
        sim.assert_tunnels_agree();
        let (IpAddr::V4(hoa4), 32) = ipv4_home_entry(&sim).expect("dynamic IPv4 home address")
        else {
            panic!("round {round}: not a /32")
        };
        assert_eq!(
            sim.ha_route(IpAddr::V4(hoa4)).map(|r| r.hoa),
            Some(v6(HOA)),
            "round {round}"
        );
        checks += 1;
    }
    assert_eq!(checks, 100);
    // One lease the whole time: the dynamic address never changed hands.
    assert_eq!(sim.ha.leases().count(), 1);
}
