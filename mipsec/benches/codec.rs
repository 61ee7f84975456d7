//! `cargo bench -p mipsec --bench codec`: parsing and emitting the two messages dsmip sends
//! most, a BU with IPv4 HoA and IPv4 CoA options and a BA with IPv4 Address Acknowledgement
//! and NAT Detection, with the checksum. Baseline in the same run: copying the same bytes.

use std::hint::black_box;
use std::net::{Ipv4Addr, Ipv6Addr};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhPacket, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption};

fn bu() -> MhRepr {
    MhRepr {
        message: MhMessage::BindingUpdate {
            sequence: 42,
            flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
            lifetime: 100,
        },
        options: vec![
            MhOption::Ipv4HomeAddress {
                prefix_len: 32,
                prefix_request: false,
                addr: Ipv4Addr::new(192, 0, 2, 100),
            },
            MhOption::Ipv4CareOfAddress(Ipv4Addr::new(10, 1, 0, 2)),
        ],
    }
}

fn ba() -> MhRepr {
    MhRepr {
        message: MhMessage::BindingAck {
            status: BaStatus::ACCEPTED,
            flags: BaFlags(BaFlags::K),
            sequence: 42,
            lifetime: 100,
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
    }
}

fn bench(c: &mut Criterion) {
    let src: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
    let dst: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let mut g = c.benchmark_group("mh");
    g.throughput(Throughput::Elements(1));
    for (name, msg) in [("bu_ipv4hoa_ipv4coa", bu()), ("ba_ipv4ack_natd", ba())] {
        let mut wire = vec![0u8; msg.buffer_len()];
        msg.emit(&mut wire, &src, &dst).unwrap();
        g.bench_function(format!("parse+verify/{name}"), |b| {
            b.iter(|| {
                let p = MhPacket::new_checked(black_box(&wire[..])).unwrap();
                p.verify_checksum(&src, &dst).unwrap();
                black_box(MhRepr::parse(&p).unwrap())
            })
        });
        let mut out = vec![0u8; wire.len()];
        g.bench_function(format!("emit/{name}"), |b| {
            b.iter(|| black_box(&msg).emit(&mut out, &src, &dst).unwrap())
        });
        g.bench_function(format!("baseline_copy/{name}"), |b| {
            b.iter(|| out.copy_from_slice(black_box(&wire)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
