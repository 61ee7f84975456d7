//! Known-answer tests for the IKEv2 key derivation against NIST CAVP SP 800-135 vectors
//! (`tests/vectors/ikev2_kdf.txt`), and RFC 4231 for the HMAC-SHA2 PRFs.

use ike::crypto::{child_keymat, rekey_skeyseed, skeyseed, Prf, Secret};
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
