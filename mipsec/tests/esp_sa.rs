//! SA-level behaviour: round trips for every transform, tampering, replay edges through a
//! real SA, ESN across the 2^32 boundary, sequence exhaustion, lifetimes, dummy packets,
//! padding checks, and the SAD.

use mipsec::esp::{
    EspError, Inbound, InboundSa, Lifetime, Limit, OutboundSa, ReplayReason, SaConfig, SaEvent,
    Sad, Transform,
};

const ALL: [Transform; 5] = [
    Transform::AesGcm128,
    Transform::AesGcm256,
    Transform::ChaCha20Poly1305,
    Transform::AesCbc128HmacSha256,
    Transform::AesCbc256HmacSha256,
];

fn keymat(t: Transform) -> Vec<u8> {
    (0..t.keymat_len()).map(|i| (i * 7 + 3) as u8).collect()
}

fn pair(cfg: SaConfig) -> (OutboundSa, InboundSa) {
    let k = keymat(cfg.transform);
    (
        OutboundSa::new(cfg, &k).unwrap(),
        InboundSa::new(cfg, &k).unwrap(),
    )
}

fn seal(out: &mut OutboundSa, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; out.encapsulated_len(payload.len())];
    let n = out.encapsulate(4, payload, &mut buf).unwrap();
    assert_eq!(n, buf.len());
    buf
}

fn open(inb: &mut InboundSa, pkt: &[u8]) -> Result<Vec<u8>, EspError> {
    let mut p = pkt.to_vec();
    match inb.decapsulate(&mut p)? {
        Inbound::Packet {
            next_header,
            payload,
            ..
        } => {
            assert_eq!(next_header, 4);
            Ok(p[payload].to_vec())
        }
        Inbound::Dummy { .. } => Ok(Vec::new()),
    }
}

#[test]
fn round_trip_every_transform_and_length() {
    for t in ALL {
        let (mut o, mut i) = pair(SaConfig::new(0x1000, t));
        for len in [0usize, 1, 2, 3, 13, 14, 15, 16, 17, 255, 1400, 1500, 9000] {
            let payload: Vec<u8> = (0..len).map(|x| (x * 31) as u8).collect();
            let pkt = seal(&mut o, &payload);
            // Alignment of RFC 4303 §2.4: the ciphertext ends on the block size.
            let ct = pkt.len() - 16 - 8 - t.iv_len();
            assert_eq!(ct % t.block_len(), 0, "{t} {len}");
            assert!(ct - len - 2 < t.block_len(), "minimal padding {t} {len}");
            assert_eq!(open(&mut i, &pkt).unwrap(), payload, "{t} {len}");
        }
        assert_eq!(o.counters().packets, 13);
        assert_eq!(i.counters().packets, 13);
        assert_eq!(o.counters().bytes, i.counters().bytes);
    }
}

#[test]
fn every_tampered_byte_is_rejected() {
    for t in ALL {
        let (mut o, _) = pair(SaConfig::new(0x2000, t));
        let pkt = seal(&mut o, b"a short inner packet for tampering");
        for at in 4..pkt.len() {
            let (_, mut i) = pair(SaConfig::new(0x2000, t));
            let mut bad = pkt.clone();
            bad[at] ^= 0x40;
            let r = open(&mut i, &bad);
            assert!(r.is_err(), "{t}: flip at {at} accepted");
            assert_eq!(i.counters().packets, 0);
        }
        // A flipped ICV byte is an authentication failure, counted as such, and leaves the
        // window alone: the genuine packet is still accepted afterwards.
        let (_, mut i) = pair(SaConfig::new(0x2000, t));
        let mut bad = pkt.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(
            open(&mut i, &bad),
            Err(EspError::Auth {
                spi: 0x2000,
                seq: 1,
                ..
            })
        ));
        assert_eq!(i.counters().auth_failures, 1);
        open(&mut i, &pkt).unwrap();
    }
}

#[test]
fn wrong_key_and_truncation() {
    let cfg = SaConfig::new(0x3000, Transform::AesGcm128);
    let (mut o, _) = pair(cfg);
    let mut other = keymat(Transform::AesGcm128);
    other[0] ^= 1;
    let mut i = InboundSa::new(cfg, &other).unwrap();
    let pkt = seal(&mut o, b"payload");
    assert!(matches!(open(&mut i, &pkt), Err(EspError::Auth { .. })));
    for cut in 0..pkt.len() {
        let (_, mut i) = pair(cfg);
        assert!(open(&mut i, &pkt[..cut]).is_err(), "truncated to {cut}");
    }
}

#[test]
fn replay_edges_through_an_sa() {
    let mut cfg = SaConfig::new(0x4000, Transform::AesGcm128);
    cfg.replay_window = 1024;
    let (mut o, mut i) = pair(cfg);
    let pkts: Vec<Vec<u8>> = (0..2100).map(|n| seal(&mut o, &[n as u8; 20])).collect();
    // Deliver 2000 first: window is 977..=2000.
    open(&mut i, &pkts[1999]).unwrap();
    open(&mut i, &pkts[976]).unwrap(); // seq 977, the left edge
    assert!(matches!(
        open(&mut i, &pkts[975]),
        Err(EspError::Replay {
            seq: 976,
            reason: ReplayReason::TooOld,
            ..
        })
    ));
    assert!(matches!(
        open(&mut i, &pkts[976]),
        Err(EspError::Replay {
            reason: ReplayReason::Duplicate,
            ..
        })
    ));
    assert_eq!(i.counters().replay_drops, 2);
    // Far future then back inside the window.
    open(&mut i, &pkts[2099]).unwrap();
    open(&mut i, &pkts[1500]).unwrap();
}

#[test]
fn esn_round_trip_across_two_to_the_32() {
    for t in ALL {
        let mut cfg = SaConfig::new(0x5000, t);
        cfg.esn = true;
        let k = keymat(t);
        // The receiver first sees 2^32-100 (an SA's window starts in subspace 0, so it
        // needs one packet from there), then the sender crosses 2^32.
        let mut o = OutboundSa::new(cfg, &k)
            .unwrap()
            .with_last_sequence((1 << 32) - 101);
        let mut i = InboundSa::new(cfg, &k).unwrap();
        let all: Vec<Vec<u8>> = (0..104).map(|n| seal(&mut o, &[n as u8; 40])).collect();
        open(&mut i, &all[0]).unwrap();
        let pkts = &all[98..];
        // Sequence numbers 2^32-2 .. 2^32+3; the wire carries only the low half.
        assert_eq!(&pkts[2][4..8], &[0, 0, 0, 0]);
        open(&mut i, &pkts[0]).unwrap();
        open(&mut i, &pkts[3]).unwrap();
        assert_eq!(i.replay_window().top(), (1 << 32) + 1);
        // Out of order across the boundary: still in the window, subspace 0.
        open(&mut i, &pkts[1]).unwrap();
        open(&mut i, &pkts[2]).unwrap();
        open(&mut i, &pkts[5]).unwrap();
        assert!(open(&mut i, &pkts[1]).is_err());
        // The high half is covered by the ICV: the packet relabelled with a low half that
        // infers subspace 0 fails authentication.
        let mut j = InboundSa::new(cfg, &k).unwrap();
        open(&mut j, &all[0]).unwrap();
        let mut far = pkts[5].clone();
        far[4..8].copy_from_slice(&[0xff, 0xff, 0xff, 0xc0]);
        assert!(
            matches!(open(&mut j, &far), Err(EspError::Auth { .. })),
            "{t}"
        );
    }
}

#[test]
fn sequence_exhaustion_raises_rekey_then_stops() {
    let mut cfg = SaConfig::new(0x6000, Transform::AesGcm128);
    cfg.rekey_margin = 2;
    let k = keymat(cfg.transform);
    let mut o = OutboundSa::new(cfg, &k)
        .unwrap()
        .with_last_sequence(u64::from(u32::MAX) - 5);
    let mut buf = [0u8; 128];
    for _ in 0..2 {
        o.encapsulate(4, b"x", &mut buf).unwrap();
    }
    assert_eq!(o.poll_event(), None);
    o.encapsulate(4, b"x", &mut buf).unwrap(); // seq 2^32-3: 2 left <= margin 2
    assert_eq!(o.poll_event(), Some(SaEvent::RekeyNeeded { spi: 0x6000 }));
    o.encapsulate(4, b"x", &mut buf).unwrap();
    o.encapsulate(4, b"x", &mut buf).unwrap(); // seq 2^32-1, the last one
    assert_eq!(o.poll_event(), None, "RekeyNeeded fires once");
    assert_eq!(o.last_sequence(), u64::from(u32::MAX));
    assert_eq!(
        o.encapsulate(4, b"x", &mut buf),
        Err(EspError::SequenceExhausted { spi: 0x6000 })
    );
    assert_eq!(
        o.poll_event(),
        Some(SaEvent::SequenceExhausted { spi: 0x6000 })
    );
    assert!(o.encapsulate(4, b"x", &mut buf).is_err());
    assert_eq!(o.poll_event(), None, "the event fires once");
    // With ESN the same SA state continues past 2^32.
    cfg.esn = true;
    let mut o = OutboundSa::new(cfg, &k)
        .unwrap()
        .with_last_sequence(u64::from(u32::MAX));
    o.encapsulate(4, b"x", &mut buf).unwrap();
    assert_eq!(o.last_sequence(), 1 << 32);
}

#[test]
fn lifetimes_in_packets_and_bytes() {
    let mut cfg = SaConfig::new(0x7000, Transform::ChaCha20Poly1305);
    cfg.lifetime = Lifetime {
        soft_packets: Some(3),
        hard_packets: Some(5),
        soft_bytes: Some(250),
        hard_bytes: Some(1000),
    };
    let (mut o, mut i) = pair(cfg);
    let mut events = Vec::new();
    let mut sent = Vec::new();
    loop {
        let mut buf = [0u8; 256];
        match o.encapsulate(4, &[1u8; 100], &mut buf) {
            Ok(n) => sent.push(buf[..n].to_vec()),
            Err(e) => {
                assert_eq!(
                    e,
                    EspError::Expired {
                        spi: 0x7000,
                        limit: Limit::Packets
                    }
                );
                break;
            }
        }
        while let Some(e) = o.poll_event() {
            events.push((sent.len(), e));
        }
    }
    while let Some(e) = o.poll_event() {
        events.push((sent.len(), e));
    }
    assert_eq!(sent.len(), 5);
    assert_eq!(
        events,
        vec![
            (
                3,
                SaEvent::SoftLifetime {
                    spi: 0x7000,
                    limit: Limit::Bytes
                }
            ),
            (
                3,
                SaEvent::SoftLifetime {
                    spi: 0x7000,
                    limit: Limit::Packets
                }
            ),
            (
                5,
                SaEvent::HardLifetime {
                    spi: 0x7000,
                    limit: Limit::Packets
                }
            ),
        ]
    );
    // The inbound side counts the same way and refuses the sixth packet by bytes or
    // packets; here all five pass and the soft events fire.
    for p in &sent {
        open(&mut i, p).unwrap();
    }
    assert_eq!(
        i.poll_event(),
        Some(SaEvent::SoftLifetime {
            spi: 0x7000,
            limit: Limit::Bytes
        })
    );
    assert_eq!(i.counters().packets, 5);
    // Hard byte limit on its own.
    let mut cfg = SaConfig::new(0x7001, Transform::AesGcm128);
    cfg.lifetime.hard_bytes = Some(150);
    let (mut o, _) = pair(cfg);
    let mut buf = [0u8; 256];
    o.encapsulate(4, &[0; 100], &mut buf).unwrap();
    assert_eq!(
        o.encapsulate(4, &[0; 100], &mut buf),
        Err(EspError::Expired {
            spi: 0x7001,
            limit: Limit::Bytes
        })
    );
    assert_eq!(
        o.poll_event(),
        Some(SaEvent::HardLifetime {
            spi: 0x7001,
            limit: Limit::Bytes
        })
    );
}

#[test]
fn dummy_packets_are_dropped_and_counted() {
    let (mut o, mut i) = pair(SaConfig::new(0x8000, Transform::AesGcm128));
    let mut buf = [0u8; 64];
    let n = o.encapsulate(59, b"chaff", &mut buf).unwrap();
    assert!(matches!(
        i.decapsulate(&mut buf[..n]),
        Ok(Inbound::Dummy { seq: 1 })
    ));
    assert_eq!(i.counters().dummy, 1);
    assert_eq!(i.counters().packets, 0);
}

#[test]
fn bad_padding_is_rejected_after_authentication() {
    // Build a packet whose padding does not count 1, 2, 3 with the cipher directly.
    let t = Transform::AesGcm128;
    let k = keymat(t);
    let cipher = mipsec::esp::EspCipher::new(t, &k).unwrap();
    let mut pkt = vec![0u8; 16 + 8 + 16];
    pkt[..8].copy_from_slice(&[0, 0, 0x90, 0, 0, 0, 0, 1]);
    pkt[16..24].copy_from_slice(&[0xaa, 0xbb, 0xcc, 1, 9, 3, 3, 4]); // pad "1 9 3", len 3
    cipher.seal(&mut pkt, 1, false, None).unwrap();
    let mut i = InboundSa::new(SaConfig::new(0x9000, t), &k).unwrap();
    let e = i.decapsulate(&mut pkt).unwrap_err();
    assert!(
        matches!(e, EspError::Wire(ref w) if w.field() == "esp.padding" && w.offset() == Some(20)),
        "{e}"
    );
    assert_eq!(i.counters().malformed, 1);
    // Pad length longer than the plaintext.
    let mut pkt = vec![0u8; 16 + 4 + 16];
    pkt[..8].copy_from_slice(&[0, 0, 0x90, 0, 0, 0, 0, 2]);
    pkt[16..20].copy_from_slice(&[1, 2, 200, 4]);
    cipher.seal(&mut pkt, 2, false, None).unwrap();
    let e = i.decapsulate(&mut pkt).unwrap_err();
    assert!(
        matches!(e, EspError::Wire(ref w) if w.field() == "esp.pad_length"),
        "{e}"
    );
}

#[test]
fn key_lengths_spis_and_debug_output() {
    assert!(matches!(
        OutboundSa::new(SaConfig::new(0x100, Transform::AesGcm128), &[0; 16]),
        Err(EspError::KeyLength {
            need: 20,
            have: 16,
            ..
        })
    ));
    assert!(matches!(
        InboundSa::new(SaConfig::new(255, Transform::AesGcm128), &[0; 20]),
        Err(EspError::ReservedSpi { spi: 255 })
    ));
    let k = [0x5au8; 20];
    let sa = OutboundSa::new(SaConfig::new(0x100, Transform::AesGcm128), &k).unwrap();
    let dbg = format!("{sa:?}");
    assert!(
        !dbg.to_lowercase().contains("5a5a"),
        "key material in Debug: {dbg}"
    );
    assert!(!dbg.contains("90, 90"), "key material in Debug: {dbg}");
}

#[test]
fn sad_finds_sas_by_spi() {
    let mut sad = Sad::new();
    for spi in [0x1111u32, 0x2222] {
        let (o, i) = pair(SaConfig::new(spi, Transform::AesGcm256));
        sad.insert_outbound(o);
        sad.insert_inbound(i);
    }
    let mut buf = [0u8; 128];
    let n = sad.encapsulate(0x2222, 41, b"inner", &mut buf).unwrap();
    let (spi, r) = sad.decapsulate(&mut buf[..n]).unwrap();
    assert_eq!(spi, 0x2222);
    assert!(matches!(
        r,
        Inbound::Packet {
            next_header: 41,
            ..
        }
    ));
    buf[..4].copy_from_slice(&0x3333u32.to_be_bytes());
    assert_eq!(
        sad.decapsulate(&mut buf[..n]),
        Err(EspError::UnknownSpi { spi: 0x3333 })
    );
    assert_eq!(sad.len(), 4);
    assert!(sad.remove_inbound(0x1111).is_some());
    assert_eq!(sad.len(), 3);
}
