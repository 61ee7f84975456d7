//! Known-answer tests for the IKEv2 key derivation against NIST CAVP SP 800-135 vectors
//! (`tests/vectors/ikev2_kdf.txt`: one full SHA-1 count; `tests/vectors/nist_ikev2_kdf_sha.txt`:
//! SKEYSEED, SKEYSEED(Rekey) and DKM for SHA-1, SHA-256, SHA-384 and SHA-512), and RFC 4231
//! for the HMAC-SHA2 PRFs.

use ike::crypto::{child_keymat, rekey_skeyseed, skeyseed, IkeKeys, Prf, Secret};
use std::collections::HashMap;

fn vectors() -> HashMap<String, String> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/ikev2_kdf.txt"
    ))
    .unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| {
            let (k, v) = l.split_once(" = ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn h(v: &HashMap<String, String>, k: &str) -> Vec<u8> {
    hex::decode(&v[k]).unwrap()
}

#[test]
fn nist_cavp_ikev2_kdf() {
    let v = vectors();
    let prf = Prf::HmacSha1;
    let len: usize = v["DKM length"].parse().unwrap();
    let (ni, nr) = (h(&v, "Ni"), h(&v, "Nr"));
    let seed = skeyseed(prf, &ni, &nr, &h(&v, "g^ir"));
    assert_eq!(seed.expose(), h(&v, "SKEYSEED"));
    let dkm = prf
        .prf_plus(
            seed.expose(),
            &[&ni, &nr, &h(&v, "SPIi"), &h(&v, "SPIr")],
            len,
        )
        .unwrap();
    assert_eq!(dkm.expose(), h(&v, "DKM"));
    // SK_d is the first prf-length octets of DKM (RFC 7296 §2.14).
    let sk_d = Secret::new(dkm.expose()[..prf.output_len()].to_vec());
    assert_eq!(
        child_keymat(prf, &sk_d, None, &ni, &nr, len)
            .unwrap()
            .expose(),
        h(&v, "DKM(Child SA)")
    );
    let g_new = h(&v, "g^ir (new)");
    assert_eq!(
        child_keymat(prf, &sk_d, Some(&g_new), &ni, &nr, len)
            .unwrap()
            .expose(),
        h(&v, "DKM(Child SA D-H)")
    );
    assert_eq!(
        rekey_skeyseed(prf, &sk_d, &g_new, &ni, &nr).expose(),
        h(&v, "SKEYSEED(Rekey)")
    );
}

#[test]
fn rfc4231_case_2_for_each_sha2_prf() {
    // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
    let data: &[u8] = b"what do ya want for nothing?";
    let cases = [
        (Prf::HmacSha256, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
        (Prf::HmacSha384, "af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e8e2240ca5e69e2c78b3239ecfab21649"),
        (Prf::HmacSha512, "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"),
    ];
    for (prf, want) in cases {
        assert_eq!(
            hex::encode(prf.prf(b"Jefe", &[data]).expose()),
            want,
            "{prf:?}"
        );
    }
}

/// The blocks of `nist_ikev2_kdf_sha.txt`, each a map of field name to value.
fn sha_blocks() -> Vec<HashMap<String, String>> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vectors/nist_ikev2_kdf_sha.txt"
    ))
    .unwrap();
    let mut blocks = vec![HashMap::new()];
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        match line.split_once(" = ") {
            Some((k, v)) => {
                blocks
                    .last_mut()
                    .unwrap()
                    .insert(k.to_string(), v.to_string());
            }
            None if line.trim().is_empty() => blocks.push(HashMap::new()),
            None => panic!("malformed vector line {line:?}"),
        }
    }
    blocks.retain(|b| !b.is_empty());
    blocks
}

fn prf_named(name: &str) -> Prf {
    match name {
        "SHA-1" => Prf::HmacSha1,
        "SHA-256" => Prf::HmacSha256,
        "SHA-384" => Prf::HmacSha384,
        "SHA-512" => Prf::HmacSha512,
        other => panic!("unknown PRF {other}"),
    }
}

#[test]
fn nist_cavp_ikev2_kdf_every_hash() {
    let mut ran: HashMap<(String, String), usize> = HashMap::new();
    for b in sha_blocks() {
        let prf = prf_named(&b["PRF"]);
        let (ni, nr) = (h(&b, "Ni"), h(&b, "Nr"));
        let test = b["TEST"].as_str();
        match test {
            // SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14)
            "SKEYSEED" => assert_eq!(
                hex::encode(skeyseed(prf, &ni, &nr, &h(&b, "g^ir")).expose()),
                b["SKEYSEED"],
                "{prf:?} SKEYSEED"
            ),
            // SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18)
            "SKEYSEED(Rekey)" => {
                let sk_d = Secret::new(h(&b, "SK_d"));
                assert_eq!(sk_d.len(), prf.output_len());
                assert_eq!(
                    hex::encode(
                        rekey_skeyseed(prf, &sk_d, &h(&b, "g^ir (new)"), &ni, &nr).expose()
                    ),
                    b["SKEYSEED(Rekey)"],
                    "{prf:?} SKEYSEED(Rekey)"
                );
            }
            // DKM = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr) (RFC 7296 §2.13, §2.14)
            "DKM" => {
                let len: usize = b["DKM length"].parse().unwrap();
                let seed = h(&b, "SKEYSEED");
                let dkm = prf
                    .prf_plus(&seed, &[&ni, &nr, &h(&b, "SPIi"), &h(&b, "SPIr")], len)
                    .unwrap();
                assert_eq!(hex::encode(dkm.expose()), b["DKM"], "{prf:?} DKM {len}");
                // The same octets through the key schedule the engine uses (when SK_d,
                // SK_pi and SK_pr fit in the 132 octets, i.e. not for SHA-512).
                let p = prf.output_len();
                if len == 132 && 3 * p <= len {
                    let spi = |k: &str| u64::from_be_bytes(h(&b, k).try_into().unwrap());
                    // 3 * p + 2 * integ + 2 * encr = 132 with integ = 0 (AEAD).
                    let encr = (132 - 3 * p) / 2;
                    let keys = IkeKeys::derive(
                        prf,
                        &Secret::new(seed),
                        (&ni, &nr),
                        (spi("SPIi"), spi("SPIr")),
                        (0, encr),
                    )
                    .unwrap();
                    assert_eq!(keys.sk_d.expose(), &dkm.expose()[..p]);
                    assert_eq!(keys.sk_ei.expose(), &dkm.expose()[p..p + encr]);
                    assert_eq!(keys.sk_pr.expose(), &dkm.expose()[132 - p..]);
                }
            }
            other => panic!("unknown test kind {other}"),
        }
        *ran.entry((b["PRF"].clone(), test.to_string())).or_default() += 1;
    }
    for hash in ["SHA-1", "SHA-256", "SHA-384", "SHA-512"] {
        for (test, n) in [("SKEYSEED", 2), ("SKEYSEED(Rekey)", 1), ("DKM", 3)] {
            assert_eq!(
                ran.get(&(hash.to_string(), test.to_string())),
                Some(&n),
                "{hash} {test}"
            );
        }
    }
}

#[test]
fn nist_vector_mismatch_is_detected() {
    // A flipped bit in the expected SKEYSEED must fail the comparison.
    let b = &sha_blocks()[0];
    let prf = prf_named(&b["PRF"]);
    let mut g = h(b, "g^ir");
    g[0] ^= 1;
    assert_ne!(
        hex::encode(skeyseed(prf, &h(b, "Ni"), &h(b, "Nr"), &g).expose()),
        b["SKEYSEED"]
    );
}
