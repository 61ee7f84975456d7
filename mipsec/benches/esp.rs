//! AES-GCM-128 ESP encapsulation plus decapsulation of 1400-byte packets on one core,
//! against ring's bare AES-GCM seal and open of the same bytes, in the same run.
//!
//! `cargo bench -p mipsec --bench esp` prints both rates and the ratio (target ≥ 80 %).
//! Rounds alternate between the two so that frequency changes and neighbours on the shared
//! cores hit both alike; the best round of each is reported, with the median beside it.

use std::hint::black_box;
use std::time::{Duration, Instant};

use mipsec::esp::{Inbound, InboundSa, OutboundSa, SaConfig, Transform};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};

const LEN: usize = 1400;
const ROUNDS: usize = 9;
const ROUND_TIME: Duration = Duration::from_millis(300);

/// Runs `f` for about ROUND_TIME; returns packets per second.
fn round(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < ROUND_TIME {
        for _ in 0..256 {
            f();
        }
        n += 256;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn gbit(pps: f64) -> f64 {
    pps * (LEN * 8) as f64 / 1e9
}

fn main() {
    let keymat: Vec<u8> = (0..20u8).collect();
    let cfg = SaConfig::new(0x1234_5678, Transform::AesGcm128);
    let mut out_sa = OutboundSa::new(cfg, &keymat).unwrap();
    let mut in_sa = InboundSa::new(cfg, &keymat).unwrap();
    let payload: Vec<u8> = (0..LEN).map(|i| i as u8).collect();
    // In place, as the forwarder works: the payload sits after the ESP header and IV,
    // is sealed there, and decapsulation leaves the plaintext at the same place again, so
    // every round trip starts from the same bytes, as ring's seal + open below does.
    let hdr = out_sa.header_len();
    let mut pkt = vec![0u8; out_sa.encapsulated_len(LEN)];
    pkt[hdr..hdr + LEN].copy_from_slice(&payload);
    let mut ours = || {
        let n = out_sa.encapsulate_in_place(4, &mut pkt, LEN).unwrap();
        match in_sa.decapsulate(&mut pkt[..n]).unwrap() {
            Inbound::Packet { payload, .. } => {
                debug_assert_eq!(payload, hdr..hdr + LEN);
                black_box(payload);
            }
            Inbound::Dummy { .. } => unreachable!(),
        }
    };

    let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &keymat[..16]).unwrap());
    let mut buf = payload.clone();
    buf.extend_from_slice(&[0u8; 16]);
    let mut ctr = 0u64;
    let mut bare = || {
        ctr += 1;
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&ctr.to_be_bytes());
        let aad = [0u8; 8];
        let (data, tag_space) = buf.split_at_mut(LEN);
        let tag = key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(n), Aad::from(aad), data)
            .unwrap();
        tag_space.copy_from_slice(tag.as_ref());
        let plain = key
            .open_in_place(Nonce::assume_unique_for_key(n), Aad::from(aad), &mut buf)
            .unwrap();
        black_box(plain);
    };

    // Warm up both.
    round(&mut ours);
    round(&mut bare);
    let (mut o, mut b) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        o.push(round(&mut ours));
        b.push(round(&mut bare));
    }
    o.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let (ob, bb) = (o[ROUNDS - 1], b[ROUNDS - 1]);
    let (om, bm) = (o[ROUNDS / 2], b[ROUNDS / 2]);
    println!("ESP AES-GCM-128, {LEN}-byte packets, encapsulate + decapsulate, one core");
    println!(
        "  mipsec ESP (SA, padding, replay, counters): {:>9.0} pkt/s  {:>6.2} Gbit/s  (median {:.2})",
        ob,
        gbit(ob),
        gbit(om)
    );
    println!(
        "  ring bare seal + open, same bytes:          {:>9.0} pkt/s  {:>6.2} Gbit/s  (median {:.2})",
        bb,
        gbit(bb),
        gbit(bm)
    );
    println!(
        "  ratio ESP / bare: {:.1} % best, {:.1} % median (target >= 80 %)",
        100.0 * ob / bb,
        100.0 * om / bm
    );
}
