//! Property tests for the wire codec: arbitrary bytes never panic a parser, and
//! `parse(emit(x)) == x` for generated payloads (RFC 7296 §3).

use ike::wire::payload::{emit_chain, parse_chain, DeleteRepr, IdRepr, KeRepr, NotifyRepr};
use ike::wire::sa::{emit_sa, parse_sa, Attribute, ProposalRepr, TransformRepr};
use ike::wire::{Header, NotifyType, Payload, PayloadType, ProtocolId, TrafficSelector};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn transform() -> impl Strategy<Value = TransformRepr> {
    (1u8..=5, any::<u16>(), proptest::option::of(any::<u16>())).prop_map(|(ty, id, k)| {
        TransformRepr {
            ty,
            id,
            attributes: k.map(Attribute::KeyLength).into_iter().collect(),
        }
    })
}

fn proposal() -> impl Strategy<Value = ProposalRepr> {
    (
        any::<u8>(),
        1u8..=3,
        prop_oneof![
            Just(vec![]),
            proptest::collection::vec(any::<u8>(), 4),
            proptest::collection::vec(any::<u8>(), 8)
        ],
        proptest::collection::vec(transform(), 1..6),
    )
        .prop_map(|(num, p, spi, transforms)| ProposalRepr {
            num,
            protocol: ProtocolId(p),
            spi,
            transforms,
        })
}

fn ts() -> impl Strategy<Value = TrafficSelector> {
    let v4 = (any::<u32>(), any::<u32>())
        .prop_map(|(a, b)| (IpAddr::V4(Ipv4Addr::from(a)), IpAddr::V4(Ipv4Addr::from(b))));
    let v6 = (any::<u128>(), any::<u128>())
        .prop_map(|(a, b)| (IpAddr::V6(Ipv6Addr::from(a)), IpAddr::V6(Ipv6Addr::from(b))));
    (prop_oneof![v4, v6], any::<u8>(), any::<u16>(), any::<u16>()).prop_map(
        |((s, e), protocol, sp, ep)| TrafficSelector {
            protocol,
            start_port: sp,
            end_port: ep,
            start_addr: s,
            end_addr: e,
        },
    )
}

fn payload() -> impl Strategy<Value = Payload> {
    let bytes = |n| proptest::collection::vec(any::<u8>(), n);
    prop_oneof![
        proptest::collection::vec(proposal(), 1..4).prop_map(Payload::Sa),
        (any::<u16>(), bytes(0..64)).prop_map(|(group, data)| Payload::Ke(KeRepr { group, data })),
        (any::<u8>(), bytes(0..40))
            .prop_map(|(id_type, data)| Payload::IdI(IdRepr { id_type, data })),
        bytes(16..257).prop_map(Payload::Nonce),
        (any::<u16>(), bytes(0..4), bytes(0..20)).prop_map(|(t, spi, data)| Payload::Notify(
            NotifyRepr {
                protocol: ProtocolId(3),
                spi,
                ty: NotifyType(t),
                data
            }
        )),
        proptest::collection::vec(bytes(4..5), 0..4).prop_map(|spis| Payload::Delete(DeleteRepr {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis
        })),
        bytes(0..30).prop_map(Payload::Vendor),
        proptest::collection::vec(ts(), 0..4).prop_map(Payload::TsI),
        proptest::collection::vec(ts(), 0..4).prop_map(Payload::TsR),
    ]
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..400), first in any::<u8>()) {
        let _ = Header::parse(&data);
        let _ = parse_chain(PayloadType(first), &data, 28);
        let _ = parse_sa(&data, 0);
        let _ = ike::wire::ts::parse_ts(&data, 0);
        let _ = ike::wire::CpRepr::parse(&data, 0);
    }

    #[test]
    fn chains_round_trip(payloads in proptest::collection::vec(payload(), 1..6)) {
        let mut out = Vec::new();
        let first = emit_chain(&payloads, &mut out);
        prop_assert_eq!(parse_chain(first, &out, 0).unwrap(), payloads);
    }

    #[test]
    fn proposals_round_trip(props in proptest::collection::vec(proposal(), 1..5)) {
        let mut out = Vec::new();
        emit_sa(&props, &mut out);
        prop_assert_eq!(parse_sa(&out, 0).unwrap(), props);
    }
}
