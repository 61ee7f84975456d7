//! SEC1 `EC PRIVATE KEY` files (RFC 5915 §3), as `openssl ec` writes them: re-wrapped as
//! PKCS#8 (RFC 5208 §5) they equal OpenSSL's own PKCS#8 form of the same key, and they sign
//! AUTH payloads that verify against the certificate (RFC 7427 and RFC 4754 forms).

use ike::cert::{first_der, sec1_to_pkcs8, verify_auth, Credentials};
use x509_parser::prelude::{FromDer, X509Certificate};

fn file(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/certs/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn sec1_rewraps_to_openssls_pkcs8() {
    for who in ["mn", "ha"] {
        let sec1 = first_der(&file(&format!("ecdsa-{who}-sec1.key"))).unwrap();
        let pkcs8 = first_der(&file(&format!("ecdsa-{who}.key"))).unwrap();
        assert_ne!(sec1, pkcs8);
        assert_eq!(sec1_to_pkcs8(&sec1).unwrap().expose(), &pkcs8[..], "{who}");
    }
}

#[test]
fn sec1_key_signs_verifiable_auth() {
    let cert_pem = file("ecdsa-mn.pem");
    let creds = Credentials::from_pem(&cert_pem, &file("ecdsa-mn-sec1.key"), &file("ecdsa-ca.pem"))
        .unwrap();
    let der = first_der(&cert_pem).unwrap();
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let public_key = cert.public_key().subject_public_key.data.to_vec();
    let octets = b"IKE_AUTH signed octets (RFC 7296 2.15)";
    for rfc7427 in [true, false] {
        let auth = creds.sign(octets, rfc7427).unwrap();
        verify_auth(&public_key, &auth, octets).unwrap();
        assert!(verify_auth(&public_key, &auth, b"other octets").is_err());
    }
}

#[test]
fn bad_sec1_keys_are_errors() {
    let sec1 = first_der(&file("ecdsa-mn-sec1.key")).unwrap();
    // Truncations and garbage: typed errors, no panic.
    for n in 0..sec1.len() {
        assert!(sec1_to_pkcs8(&sec1[..n]).is_err(), "truncated at {n}");
    }
    // Without the [0] parameters (the curve is then unknown).
    let pkcs8 = first_der(&file("ecdsa-mn.key")).unwrap();
    let inner = &pkcs8[pkcs8.len() - 109..];
    assert_eq!(inner[0], 0x30);
    assert!(sec1_to_pkcs8(inner).is_err());
    // A PEM labelled EC PRIVATE KEY holding something else is refused.
    let bogus = b"-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n";
    assert!(Credentials::from_pem(&file("ecdsa-mn.pem"), bogus, &file("ecdsa-ca.pem")).is_err());
}
