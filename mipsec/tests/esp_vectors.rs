//! Known-answer tests for the ESP transforms: draft-mcgrew-gcm-test-01 (the ESP cases for
//! RFC 4106), RFC 7634 Appendix A, RFC 4868 §2.7.2.1 and RFC 3602 §4. The vectors live in
//! `tests/vectors/`.

use mipsec::esp::transform::hmac_sha256_128;
use mipsec::esp::{EspCipher, Inbound, InboundSa, SaConfig, Transform};

fn unhex(s: &str) -> Vec<u8> {
    let clean: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    hex::decode(clean).expect("hex in vector file")
}

struct Case {
    name: String,
    transform: Transform,
    keymat: Vec<u8>,
    esn: bool,
    seq: u64,
    plain: Vec<u8>,
    packet: Vec<u8>,
}

fn aead_cases() -> Vec<Case> {
    let text = include_str!("vectors/esp_aead.txt");
    let mut cases = Vec::new();
    for block in text.split("\n\n") {
        let mut f = std::collections::HashMap::new();
        for line in block.lines().filter(|l| !l.starts_with('#')) {
            if let Some((k, v)) = line.split_once(" = ") {
                f.insert(k.trim(), v.trim());
            }
        }
        let Some(name) = f.get("name") else { continue };
        cases.push(Case {
            name: name.to_string(),
            transform: Transform::from_name(f["transform"]).expect("transform name"),
            keymat: unhex(f["keymat"]),
            esn: f["esn"] == "1",
            seq: u64::from_str_radix(f["seq"], 16).unwrap(),
            plain: unhex(f["plain"]),
            packet: unhex(f["packet"]),
        });
    }
    cases
}

#[test]
fn aead_vectors_seal_to_the_published_packet() {
    let cases = aead_cases();
    assert_eq!(cases.len(), 14, "vector file parsed");
    for c in &cases {
        let cipher = EspCipher::new(c.transform, &c.keymat).unwrap();
        let mut pkt = vec![0u8; 16 + c.plain.len() + 16];
        pkt[..8].copy_from_slice(&c.packet[..8]);
        pkt[16..16 + c.plain.len()].copy_from_slice(&c.plain);
        cipher
            .seal(&mut pkt, c.seq, c.esn, Some(&c.packet[8..16]))
            .unwrap();
        assert_eq!(hex::encode(&pkt), hex::encode(&c.packet), "{}", c.name);
    }
}

#[test]
fn aead_vectors_open_to_the_published_plaintext() {
    for c in aead_cases() {
        let cipher = EspCipher::new(c.transform, &c.keymat).unwrap();
        let mut pkt = c.packet.clone();
        cipher.open(&mut pkt, c.seq, c.esn).unwrap();
        let end = pkt.len() - 16;
        assert_eq!(&pkt[16..end], &c.plain[..], "{}", c.name);
        // Wrong high sequence bits (ESN) or a flipped bit must fail authentication.
        let mut pkt = c.packet.clone();
        let wrong = if c.esn { c.seq ^ (1 << 40) } else { c.seq };
        let last = pkt.len() - 1;
        if !c.esn {
            pkt[last] ^= 1;
        }
        assert!(
            cipher.open(&mut pkt, wrong, c.esn).is_err(),
            "{} tampered",
            c.name
        );
    }
}

#[test]
fn aead_vectors_through_an_inbound_sa() {
    // The SA path (SPI check, replay window, trailer parsing) on the cases it can take: SPI
    // not reserved and a sequence number whose high half an empty window infers as 0.
    let mut done = 0;
    for c in aead_cases() {
        let spi = u32::from_be_bytes(c.packet[..4].try_into().unwrap());
        if spi < 256 || c.seq >> 32 != 0 {
            continue;
        }
        let mut cfg = SaConfig::new(spi, c.transform);
        cfg.esn = c.esn;
        let mut sa = InboundSa::new(cfg, &c.keymat).unwrap();
        let mut pkt = c.packet.clone();
        let r = sa.decapsulate(&mut pkt).unwrap();
        let pad = usize::from(c.plain[c.plain.len() - 2]);
        let payload_len = c.plain.len() - 2 - pad;
        assert_eq!(
            r,
            Inbound::Packet {
                next_header: *c.plain.last().unwrap(),
                payload: 16..16 + payload_len,
                seq: c.seq
            },
            "{}",
            c.name
        );
        assert_eq!(&pkt[16..16 + payload_len], &c.plain[..payload_len]);
        // The same packet again is a replay.
        let mut again = c.packet.clone();
        assert!(sa.decapsulate(&mut again).is_err());
        assert_eq!(sa.counters().replay_drops, 1);
        done += 1;
    }
    assert!(done >= 6, "only {done} cases went through the SA");
}

fn kv_lines(prefix: &str) -> Vec<Vec<Vec<u8>>> {
    include_str!("vectors/hmac_cbc.txt")
        .lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .map(|rest| rest.split('|').map(unhex).collect())
        .collect()
}

#[test]
fn rfc4868_hmac_sha256_128() {
    let cases = kv_lines("hmac = ");
    assert_eq!(cases.len(), 4);
    for c in cases {
        assert_eq!(&hmac_sha256_128(&c[0], &c[1])[..], &c[2][..16]);
    }
}

#[test]
fn rfc3602_aes_cbc_inside_an_esp_packet() {
    let cases = kv_lines("cbc = ");
    assert_eq!(cases.len(), 2);
    let auth_key = [0x0bu8; 32];
    for c in cases {
        let (key, iv, plain, ct) = (&c[0], &c[1], &c[2], &c[3]);
        let mut keymat = key.clone();
        keymat.extend_from_slice(&auth_key);
        let cipher = EspCipher::new(Transform::AesCbc128HmacSha256, &keymat).unwrap();
        let mut pkt = vec![0u8; 8 + 16 + plain.len() + 16];
        pkt[..8].copy_from_slice(&[0, 0, 1, 0, 0, 0, 0, 7]);
        pkt[24..24 + plain.len()].copy_from_slice(plain);
        cipher.seal(&mut pkt, 7, false, Some(iv)).unwrap();
        assert_eq!(&pkt[8..24], &iv[..]);
        assert_eq!(&pkt[24..24 + ct.len()], &ct[..]);
        // RFC 4303 §2.8: the ICV covers header, IV and ciphertext.
        let end = pkt.len() - 16;
        assert_eq!(&pkt[end..], &hmac_sha256_128(&auth_key, &pkt[..end])[..]);
        cipher.open(&mut pkt, 7, false).unwrap();
        assert_eq!(&pkt[24..end], &plain[..]);
    }
}
