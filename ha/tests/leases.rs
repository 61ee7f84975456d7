//! IPv4 home address leases across restarts, grace time and store failures (RFC 5555 §4.5:
//! the home agent stores the dynamic address with the IPv6 home address).

mod common;

use std::net::Ipv4Addr;

use common::*;
use ha::{Error, HomeAgent, LeaseDurability};
use mipsec::wire::mh_option::Ipv4AckStatus;

fn register(
    lab: &mut Lab,
    secs: f64,
    i: u16,
    seq: u16,
    want: [u8; 4],
) -> (Ipv4AckStatus, Ipv4Addr) {
    let h = hoa(i);
    let v = lab.send(
        secs,
        &ctx_udp(h, [192, 0, 2, 9], 4191),
        &bu(seq, A | H, 25, vec![v4_hoa(want), v4_coa([192, 0, 2, 9])]),
    );
    let (st, _, a) = ack(&v).unwrap();
    (st, a)
}

fn restart_keeps_every_lease(durability: LeaseDurability) {
    let mut cfg = config();
    cfg.lease_durability = durability;
    let mut lab = Lab::new(cfg);
    let got: Vec<Ipv4Addr> = (0..5)
        .map(|i| register(&mut lab, 1.0, i, 1, [0; 4]).1)
        .collect();
    let before: Vec<_> = lab.ha().leases().copied().collect();
    lab.restart(30.0);
    assert_eq!(
        lab.ha().bindings().count(),
        0,
        "bindings are not persistent"
    );
    let after: Vec<_> = lab.ha().leases().copied().collect();
    assert_eq!(before, after);
    // In another order, each node gets its address back, asking for "any".
    for i in (0..5).rev() {
        assert_eq!(
            register(&mut lab, 31.0, i, 2, [0; 4]),
            (Ipv4AckStatus::SUCCESS, got[i as usize])
        );
    }
    // A new node gets a new address.
    let (st, a) = register(&mut lab, 31.0, 9, 1, [0; 4]);
    assert_eq!(st, Ipv4AckStatus::SUCCESS);
    assert!(!got.contains(&a));
    // Asking for another node's address is 130.
    assert_eq!(
        register(&mut lab, 32.0, 9, 2, got[0].octets()).0,
        Ipv4AckStatus::INCORRECT_IPV4_HOA
    );
}

#[test]
fn restart_keeps_every_lease_immediate() {
    restart_keeps_every_lease(LeaseDurability::Immediate);
}

#[test]
fn restart_keeps_every_lease_eventual() {
    restart_keeps_every_lease(LeaseDurability::Eventual);
}

#[test]
fn expired_leases_return_to_the_pool_after_grace() {
    let mut cfg = config();
    // One usable address: 198.51.100.2.
    cfg.ipv4_pools[0].range = "198.51.100.0/30".parse().unwrap();
    cfg.ipv4_pools[0].exclude = vec!["198.51.100.1/32".parse().unwrap()];
    cfg.lease_time = 60;
    cfg.lease_grace = 30;
    let mut lab = Lab::new(cfg);
    let only = Ipv4Addr::new(198, 51, 100, 2);
    assert_eq!(
        register(&mut lab, 0.0, 1, 1, [0; 4]),
        (Ipv4AckStatus::SUCCESS, only)
    );
    assert_eq!(
        register(&mut lab, 1.0, 2, 1, [0; 4]).0,
        Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE
    );
    // Node 1 goes quiet; its lease ends at 60 s (and its IPv4 binding with it), grace runs
    // to 90 s.
    lab.timeout(60.0);
    assert!(lab.ha().binding(&hoa(1)).unwrap().ipv4.is_none());
    assert_eq!(
        register(&mut lab, 89.0, 2, 2, [0; 4]).0,
        Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE
    );
    assert_eq!(lab.leased(89.0), 1);
    assert_eq!(lab.leased(90.0), 0);
    // Within grace node 1 could have reclaimed it; after grace node 2 gets it.
    assert_eq!(
        register(&mut lab, 90.0, 2, 3, [0; 4]),
        (Ipv4AckStatus::SUCCESS, only)
    );
    assert_eq!(
        lab.ha().leases().count(),
        1,
        "the old lease was reclaimed in the same commit"
    );
    assert_eq!(
        register(&mut lab, 91.0, 1, 2, [0; 4]).0,
        Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE
    );
    // The reclaim survives a restart.
    lab.restart(92.0);
    let l: Vec<_> = lab.ha().leases().copied().collect();
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].hoa, hoa(2));
}

#[test]
fn lease_renewal_extends_within_grace() {
    let mut cfg = config();
    cfg.lease_time = 60;
    cfg.lease_grace = 30;
    let mut lab = Lab::new(cfg);
    let (_, a) = register(&mut lab, 0.0, 1, 1, [0; 4]);
    let first = lab.ha().leases().next().unwrap().expires;
    // Refresh with 25 s of 60 left: renewed (below max(half lease, lifetime 100 s)).
    assert_eq!(
        register(&mut lab, 35.0, 1, 2, a.octets()),
        (Ipv4AckStatus::SUCCESS, a)
    );
    let second = lab.ha().leases().next().unwrap().expires;
    assert_eq!(second, first + 35);
    // Past expiry but within grace the node still owns it.
    lab.timeout(109.0);
    assert!(lab.ha().binding(&hoa(1)).unwrap().ipv4.is_none());
    assert_eq!(
        register(&mut lab, 110.0, 1, 3, [0; 4]),
        (Ipv4AckStatus::SUCCESS, a)
    );
}

#[test]
fn corrupt_or_unreadable_store_is_a_startup_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leases.redb");
    std::fs::write(
        &path,
        b"this is not a redb database file, it is text".repeat(100),
    )
    .unwrap();
    let now = std::time::Instant::now();
    let e = HomeAgent::new(config(), &path, now, std::time::SystemTime::now()).unwrap_err();
    assert!(matches!(e, Error::NotAStore { .. }), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    // The file is left alone: no silent reset.
    assert!(std::fs::read(&path).unwrap().starts_with(b"this is not"));
    // A store held by another running agent.
    let p2 = dir.path().join("held.redb");
    let _held = HomeAgent::new(config(), &p2, now, std::time::SystemTime::now()).unwrap();
    let e = HomeAgent::new(config(), &p2, now, std::time::SystemTime::now()).unwrap_err();
    assert!(e.to_string().contains("held.redb"), "{e}");
    // A bad configuration never touches the store.
    let mut bad = config();
    bad.home_prefixes.clear();
    let e = HomeAgent::new(
        bad,
        &dir.path().join("x.redb"),
        now,
        std::time::SystemTime::now(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Config { ref key, .. } if key == "home_prefixes"),
        "{e:?}"
    );
    assert!(!dir.path().join("x.redb").exists());
}

#[test]
fn in_memory_store_for_simulations() {
    let t0 = std::time::Instant::now();
    let mut a = HomeAgent::in_memory(config(), t0, std::time::SystemTime::now()).unwrap();
    let h = hoa(1);
    let msg = bu(1, A | H, 25, vec![v4_hoa([0; 4]), v4_coa([192, 0, 2, 9])]);
    let v = a.handle_bu(t0, &ctx_udp(h, [192, 0, 2, 9], 4191), &msg);
    assert_eq!(
        ack(&v),
        Some((Ipv4AckStatus::SUCCESS, 32, Ipv4Addr::new(198, 51, 100, 2)))
    );
    assert_eq!(a.leases().count(), 1);
    assert_eq!(a.leases().next().unwrap().hoa, h);
}
