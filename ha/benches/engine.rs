//! `cargo bench -p ha`: the figures of issue 3, each printed with a baseline measured in the
//! same run. A counting global allocator measures memory (bytes live after minus before).
//!
//! - refresh: existing mobile node, IPv4 home address, NAT detected; raw BU bytes in
//!   (checksum, parse, engine) to BA bytes out. Baseline: the codec work alone (check,
//!   parse, build and emit the same BA) on the same packets.
//! - first registration with dynamic IPv4 and a lease commit, per durability mode.
//!   Baseline: first registrations without an IPv4 option (no store write).
//! - memory: 1,000,000 mobile nodes, each with an IPv6 and an IPv4 home address.
//! - forwarding lookup over those bindings. Baseline: std `HashMap<IpAddr, u32>` (SipHash).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ha::{
    HaConfig, HomeAgent, LeaseDurability, MobileNodeConfig, PoolConfig, RxContext, SaInfo,
    Transport,
};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhPacket, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption};

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.dealloc(p, l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n, Ordering::Relaxed);
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        System.realloc(p, l, n)
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn hoa(i: u32) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, (i >> 16) as u16, i as u16)
}
fn ha6() -> Ipv6Addr {
    "2001:db8:1::1".parse().unwrap()
}

fn config(pool: &str) -> HaConfig {
    let mut c = HaConfig::new(
        ha6(),
        Ipv4Addr::new(192, 0, 2, 1),
        vec!["2001:db8:1::/64".parse().unwrap()],
    );
    c.ipv4_pools.push(PoolConfig {
        range: pool.parse().unwrap(),
        exclude: vec![],
    });
    c
}

fn nat_ctx(i: u32) -> RxContext {
    RxContext {
        transport: Transport::Udp {
            src: Ipv4Addr::new(203, 0, 113, 9),
            src_port: 1024 + (i % 60000) as u16,
        },
        ipv6_src: hoa(i),
        ipv6_dst: ha6(),
        home_address_option: None,
        sa: Some(SaInfo {
            spi: i,
            home_address: hoa(i),
        }),
    }
}

fn bu(seq: u16, v4: Ipv4Addr) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingUpdate {
            sequence: seq,
            flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
            lifetime: 900,
        },
        options: vec![
            MhOption::Ipv4HomeAddress {
                prefix_len: 32,
                prefix_request: false,
                addr: v4,
            },
            MhOption::Ipv4CareOfAddress(Ipv4Addr::new(10, 0, 0, 5)),
        ],
    }
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn drain(a: &mut HomeAgent) {
    while a.poll_event().is_some() {}
}

fn refresh() {
    const NODES: u32 = 10_000;
    const ROUNDS: u32 = 50;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("198.51.0.0/16");
    cfg.lease_durability = LeaseDurability::Eventual;
    let t0 = Instant::now();
    let mut a = HomeAgent::new(cfg, &dir.path().join("l.redb"), t0, SystemTime::now()).unwrap();
    let mut addrs = Vec::new();
    for i in 0..NODES {
        let v = a.handle_bu(t0, &nat_ctx(i), &bu(0, Ipv4Addr::UNSPECIFIED));
        let r = v.reply().unwrap();
        addrs.push(
            r.ba.find(|o| match o {
                MhOption::Ipv4AddressAck { addr, .. } => Some(*addr),
                _ => None,
            })
            .unwrap(),
        );
    }
    drain(&mut a);
    // The packets, built beforehand: the mobile node's work is not measured.
    let mut pkts = Vec::with_capacity((NODES * ROUNDS) as usize);
    for round in 1..=ROUNDS {
        for i in 0..NODES {
            let mut b = [0u8; 40];
            let n = bu(round as u16, addrs[i as usize])
                .emit(&mut b, &hoa(i), &ha6())
                .unwrap();
            pkts.push((i, b, n));
        }
    }
    let ctxs: Vec<RxContext> = (0..NODES).map(nat_ctx).collect();
    let mut out = [0u8; 64];
    // Baseline: codec work alone on the same packets.
    let start = Instant::now();
    for (i, b, n) in &pkts {
        let p = MhPacket::new_checked(&b[..*n]).unwrap();
        p.verify_checksum(&hoa(*i), &ha6()).unwrap();
        let r = MhRepr::parse(&p).unwrap();
        let MhMessage::BindingUpdate { sequence, .. } = r.message else {
            panic!()
        };
        let ba = MhRepr {
            message: MhMessage::BindingAck {
                status: BaStatus::ACCEPTED,
                flags: BaFlags(BaFlags::K),
                sequence,
                lifetime: 900,
            },
            options: vec![
                MhOption::Ipv4AddressAck {
                    status: Ipv4AckStatus::SUCCESS,
                    prefix_len: 32,
                    addr: addrs[*i as usize],
                },
                MhOption::NatDetection {
                    force_udp: false,
                    refresh_time: 110,
                },
            ],
        };
        black_box(ba.emit(&mut out, &ha6(), &hoa(*i)).unwrap());
    }
    let base = start.elapsed();
    let start = Instant::now();
    for (k, (i, b, n)) in pkts.iter().enumerate() {
        let now = t0 + Duration::from_secs(1 + (k as u64 / u64::from(NODES)));
        let v = a.handle_bu_bytes(now, &ctxs[*i as usize], &b[..*n]);
        let r = v.reply().unwrap();
        black_box(r.emit_mh(&mut out).unwrap());
    }
    let took = start.elapsed();
    assert_eq!(a.counters().accepted, u64::from(NODES * (ROUNDS + 1)));
    assert!(
        a.poll_event().is_none(),
        "a refresh from the same place changes nothing"
    );
    println!(
        "refresh (IPv4 HoA, NAT, BU bytes in -> BA bytes out): {:>12.0} /s   baseline codec only: {:>12.0} /s   ({} refreshes of {} nodes)",
        rate(pkts.len(), took),
        rate(pkts.len(), base),
        pkts.len(),
        NODES
    );
}

fn first_registration(durability: LeaseDurability, n: u32) {
    // On the build disk, not a tmpfs: fsync must mean something.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut cfg = config("198.51.0.0/16");
    cfg.lease_durability = durability;
    let t0 = Instant::now();
    let mut a = HomeAgent::new(
        cfg.clone(),
        &dir.path().join("l.redb"),
        t0,
        SystemTime::now(),
    )
    .unwrap();
    let start = Instant::now();
    for i in 0..n {
        let v = a.handle_bu(t0, &nat_ctx(i), &bu(0, Ipv4Addr::UNSPECIFIED));
        black_box(v.reply().unwrap());
        drain(&mut a);
    }
    let took = start.elapsed();
    assert_eq!(a.leases().count(), n as usize);
    // Baseline: first registrations without an IPv4 option, no store write.
    let mut b = HomeAgent::new(cfg, &dir.path().join("m.redb"), t0, SystemTime::now()).unwrap();
    let mut plain = bu(0, Ipv4Addr::UNSPECIFIED);
    plain.options.remove(0);
    let start = Instant::now();
    for i in 0..n {
        black_box(b.handle_bu(t0, &nat_ctx(i), &plain));
        drain(&mut b);
    }
    let base = start.elapsed();
    println!(
        "first registration + dynamic IPv4 + lease commit ({durability:?}): {:>10.0} /s   baseline without IPv4 (no commit): {:>10.0} /s   ({n} nodes, store in {})",
        rate(n as usize, took),
        rate(n as usize, base),
        dir.path().display()
    );
}

fn memory_and_lookup(n: u32) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config("198.51.100.0/24");
    // Static IPv4 home addresses 10.0.0.0 + i: no lease traffic, only the binding cache grows.
    cfg.mobile_nodes = (0..n)
        .map(|i| MobileNodeConfig {
            home_address: hoa(i),
            ipv4_home_address: Some(
                ipnet::Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).unwrap(),
            ),
            ipv4: true,
            ipv4_prefix: false,
            mobile_router: false,
            mobile_network_prefixes: vec![],
        })
        .collect();
    let t0 = Instant::now();
    let mut a = HomeAgent::new(cfg, &dir.path().join("l.redb"), t0, SystemTime::now()).unwrap();
    let msg = bu(0, Ipv4Addr::UNSPECIFIED);
    let before = LIVE.load(Ordering::Relaxed);
    for i in 0..n {
        black_box(a.handle_bu(t0, &nat_ctx(i), &msg));
        drain(&mut a);
    }
    let after = LIVE.load(Ordering::Relaxed);
    assert_eq!(a.bindings().count(), n as usize);
    assert!(a.bindings().all(|b| b.ipv4.is_some()));
    let per = (after - before) as f64 / f64::from(n);
    if n == 1_000_000 {
        println!(
        "memory: binding cache of {N} nodes (IPv6 + IPv4 HoA each): {:.1} MB live, {per:.0} bytes per mobile node (counting allocator; target <= 300)",
        (after - before) as f64 / 1e6
        );
    }
    // Lookups: alternate IPv6 and IPv4 home addresses in a scrambled order.
    const N: u32 = 1_000_000;
    let keys: Vec<IpAddr> = (0..N)
        .map(|k| {
            let i = k.wrapping_mul(2_654_435_761) % n;
            if k % 2 == 0 {
                IpAddr::V6(hoa(i))
            } else {
                IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
            }
        })
        .collect();
    let now = t0 + Duration::from_secs(1);
    // Baseline: the same 1M addresses in a std HashMap.
    let map: HashMap<IpAddr, u32> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (*k, i as u32))
        .collect();
    lookups(
        &a,
        &map,
        now,
        &keys,
        &format!("{n} bindings, random over all of them"),
    );
    if n > 10_000 {
        // Traffic concentrates on the active nodes: 10,000 destinations.
        let hot: Vec<IpAddr> = (0..N).map(|k| keys[(k % 10_000) as usize]).collect();
        lookups(
            &a,
            &map,
            now,
            &hot,
            &format!("{n} bindings, 10k active destinations"),
        );
    }
}

fn lookups(a: &HomeAgent, map: &HashMap<IpAddr, u32>, now: Instant, keys: &[IpAddr], what: &str) {
    let rounds = 5;
    let start = Instant::now();
    let mut hits = 0usize;
    for _ in 0..rounds {
        for k in keys {
            hits += black_box(a.route(now, black_box(*k))).is_some() as usize;
        }
    }
    let took = start.elapsed();
    assert_eq!(hits, keys.len() * rounds);
    let mut out = Vec::with_capacity(keys.len());
    let start = Instant::now();
    let mut batched = 0usize;
    for _ in 0..rounds {
        out.clear();
        a.route_batch(now, black_box(keys), &mut out);
        batched += black_box(&out).iter().filter(|r| r.is_some()).count();
    }
    let took_batch = start.elapsed();
    assert_eq!(batched, hits);
    let start = Instant::now();
    let mut found = 0usize;
    for _ in 0..rounds {
        for k in keys {
            found += black_box(map.get(black_box(k))).is_some() as usize;
        }
    }
    let base = start.elapsed();
    assert_eq!(found, hits);
    println!(
        "forwarding lookup ({what}, IPv6/IPv4 mixed): {:>12.0} /s, batched {:>12.0} /s   baseline std HashMap<IpAddr,u32> get: {:>12.0} /s",
        rate(hits, took),
        rate(batched, took_batch),
        rate(found, base)
    );
}

fn main() {
    // HA_BENCH=refresh|register|memory|lookup runs one part.
    let only = std::env::var("HA_BENCH").unwrap_or_default();
    let run = |p: &str| only.is_empty() || only == p;
    if run("refresh") {
        refresh();
    }
    if run("register") {
        first_registration(LeaseDurability::Immediate, 1000);
        first_registration(LeaseDurability::Eventual, 1000);
    }
    if run("lookup") {
        memory_and_lookup(10_000);
    }
    if run("memory") || run("lookup") {
        memory_and_lookup(1_000_000);
    }
}
