//! `cargo bench -p mn`: the cost of building one Binding Update, a NAT keepalive refresh
//! from a registered mobile node (IPv4 care-of address behind a NAT, static IPv4 home
//! address): the engine's decision, the `MhRepr`, and the UDP/IPv4-encapsulated bytes with
//! both checksums. Baselines in the same run: the engine step alone (no bytes), and emitting
//! the same Mobility Header alone with the codec.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mipsec::wire::{BaFlags, BaStatus, Ipv4AckStatus, MhMessage, MhOption, MhRepr};
use mn::{AddressEvent, BaContext, HomeAgentConfig, Ipv4Home, MnConfig, MobileNode};

fn registered() -> (MobileNode, Instant) {
    let ha6 = "2001:db8:1::1".parse().unwrap();
    let ha = HomeAgentConfig {
        ipv6: Some(ha6),
        ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    };
    let mut cfg = MnConfig::new("2001:db8:1::100".parse().unwrap(), ha);
    cfg.ipv4_home = Ipv4Home::Static {
        address: Ipv4Addr::new(192, 0, 2, 100),
        prefix_len: 32,
    };
    let mut mn = MobileNode::new(cfg, 1).unwrap();
    let t0 = Instant::now();
    mn.handle_address(
        t0,
        AddressEvent::Added {
            addr: "10.0.0.5".parse().unwrap(),
            private: true,
        },
    );
    let bu = mn.poll_transmit().unwrap();
    let ba = MhRepr {
        message: MhMessage::BindingAck {
            status: BaStatus::ACCEPTED,
            flags: BaFlags(BaFlags::K),
            sequence: bu.sequence(),
            lifetime: 150,
        },
        options: vec![
            MhOption::Ipv4AddressAck {
                status: Ipv4AckStatus::SUCCESS,
                prefix_len: 32,
                addr: Ipv4Addr::new(192, 0, 2, 100),
            },
            MhOption::NatDetection {
                force_udp: false,
                refresh_time: 110,
            },
        ],
    };
    let ctx = BaContext {
        src: ha6,
        protected: true,
        udp_from: Some((Ipv4Addr::new(192, 0, 2, 1), 4191)),
    };
    mn.handle_ba(t0, &ctx, &ba).unwrap();
    while mn.poll_event().is_some() {}
    (mn, t0 + Duration::from_secs(110))
}

fn bench(c: &mut Criterion) {
    let (mn, at) = registered();
    let mut g = c.benchmark_group("bu");
    g.throughput(Throughput::Elements(1));
    let (mut out, mut scratch) = (Vec::with_capacity(256), Vec::with_capacity(256));
    g.bench_function("build_one_bu/engine+udp_ipv4_bytes", |b| {
        b.iter_batched_ref(
            || mn.clone(),
            |m| {
                m.handle_timeout(at);
                let t = m.poll_transmit().unwrap();
                black_box(t.emit(&mut out, &mut scratch).unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("baseline/engine_only", |b| {
        b.iter_batched_ref(
            || mn.clone(),
            |m| {
                m.handle_timeout(at);
                black_box(m.poll_transmit().unwrap())
            },
            BatchSize::SmallInput,
        )
    });
    let mut m = mn.clone();
    m.handle_timeout(at);
    let t = m.poll_transmit().unwrap();
    let mut buf = vec![0u8; t.mh.buffer_len()];
    g.bench_function("baseline/mh_emit_only", |b| {
        b.iter(|| black_box(t.mh.emit(&mut buf, &t.hoa, &t.ipv6_dst).unwrap()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
