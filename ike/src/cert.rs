//! Certificate authentication (RFC 7296 §2.15, §3.6–3.8) with x509-parser and ring: our
//! credentials and AUTH signatures (ECDSA P-256/P-384 as methods 9/10 of RFC 4754 or RFC 7427
//! digital signatures; RSA PKCS#1 v1.5 through RFC 7427), and the peer's side: chain to a
//! configured CA (validity, basic constraints, key usage, signatures), identity against the
//! ID payload (subjectAltName or DN), AUTH verification including RSASSA-PSS (RFC 7427).

use crate::crypto::Secret;
use crate::error::{Error, Result};
use crate::wire::payload::{
    AuthRepr, IdRepr, AUTH_DIGITAL_SIGNATURE, AUTH_ECDSA_256, AUTH_ECDSA_384, AUTH_RSA_SIG,
};
use crate::wire::payload::{ID_DER_ASN1_DN, ID_FQDN, ID_IPV4_ADDR, ID_IPV6_ADDR, ID_RFC822_ADDR};
use ring::signature::{self as sig, EcdsaKeyPair, RsaKeyPair};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

/// Certificate encoding "X.509 Certificate - Signature" (RFC 7296 §3.6).
pub const CERT_X509_SIGNATURE: u8 = 4;
/// SIGNATURE_HASH_ALGORITHMS values (RFC 7427 §4): SHA2-256, SHA2-384, SHA2-512.
pub const SIG_HASHES: [u8; 6] = [0, 2, 0, 3, 0, 4];

// RFC 7427 Appendix A: AlgorithmIdentifier DER.
const ALG_RSA_SHA256: &[u8] = &[
    0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b, 0x05, 0x00,
];
const ALG_ECDSA_SHA256: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02,
];
const ALG_ECDSA_SHA384: &[u8] = &[
    0x30, 0x0a, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03,
];
const OID_RSA_PKCS1: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01];
const OID_RSA_PSS: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0a];
const OID_ECDSA_SHA2: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03];
const OID_SHA2: &[u8] = &[0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02];

enum KeyKind {
    P256,
    P384,
    Rsa,
}

/// Our certificate, private key and trusted CAs. Prints no key material.
pub struct Credentials {
    cert: Vec<u8>,
    key: Secret,
    kind: KeyKind,
    cas: Vec<Vec<u8>>,
}

impl core::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Credentials")
            .field("cert_len", &self.cert.len())
            .field("cas", &self.cas.len())
            .finish_non_exhaustive()
    }
}

fn pem_blocks(pem: &[u8], what: &'static str) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    for p in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let p = p.map_err(|_| Error::Crypto(what))?;
        out.push((p.label, p.contents));
    }
    if out.is_empty() {
        return Err(Error::Crypto(what));
    }
    Ok(out)
}

/// id-ecPublicKey (RFC 5480 §2.1.1) and the two named curves we sign with.
const OID_EC_PUBLIC_KEY: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: pkcs8::ObjectIdentifier =
    pkcs8::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: pkcs8::ObjectIdentifier = pkcs8::ObjectIdentifier::new_unwrap("1.3.132.0.34");

/// A SEC1 `EC PRIVATE KEY` (RFC 5915 §3) re-wrapped as PKCS#8 (RFC 5208 §5, RFC 5915 §1),
/// which is what ring reads: the curve moves from the key's `[0] parameters` to the
/// AlgorithmIdentifier, the public key stays inside (ring requires it).
pub fn sec1_to_pkcs8(der: &[u8]) -> Result<Secret> {
    use pkcs8::der::{Decode, Encode};
    let key =
        sec1::EcPrivateKey::from_der(der).map_err(|_| Error::Crypto("SEC1 EC private key DER"))?;
    let curve = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or(Error::Crypto("SEC1 EC private key without a named curve"))?;
    if curve != OID_P256 && curve != OID_P384 {
        return Err(Error::Crypto(
            "SEC1 EC private key on a curve other than P-256/P-384",
        ));
    }
    if key.public_key.is_none() {
        return Err(Error::Crypto("SEC1 EC private key without its public key"));
    }
    let inner = Secret::new(
        sec1::EcPrivateKey {
            parameters: None,
            ..key
        }
        .to_der()
        .map_err(|_| Error::Crypto("SEC1 EC private key re-encoding"))?,
    );
    let info = pkcs8::PrivateKeyInfo {
        algorithm: pkcs8::AlgorithmIdentifierRef {
            oid: OID_EC_PUBLIC_KEY,
            parameters: Some((&curve).into()),
        },
        private_key: inner.expose(),
        public_key: None,
    };
    Ok(Secret::new(
        info.to_der()
            .map_err(|_| Error::Crypto("PKCS#8 encoding"))?,
    ))
}

/// The DER contents of the first PEM block.
pub fn first_der(pem: &[u8]) -> Result<Vec<u8>> {
    Ok(pem_blocks(pem, "PEM")?.remove(0).1)
}

impl Credentials {
    /// From PEM: one certificate, a PKCS#8, SEC1 `EC PRIVATE KEY` or PKCS#1 RSA key, one or
    /// more CA certificates.
    pub fn from_pem(cert: &[u8], key: &[u8], ca: &[u8]) -> Result<Credentials> {
        let cert = pem_blocks(cert, "certificate PEM")?.remove(0).1;
        X509Certificate::from_der(&cert).map_err(|_| Error::Crypto("certificate DER"))?;
        let (label, key) = pem_blocks(key, "private key PEM")?.remove(0);
        let key = Secret::new(key);
        let key = if label == "EC PRIVATE KEY" {
            sec1_to_pkcs8(key.expose())?
        } else {
            key
        };
        let rng = ring::rand::SystemRandom::new();
        let kind = if label == "RSA PRIVATE KEY" {
            RsaKeyPair::from_der(key.expose()).map_err(|_| Error::Crypto("RSA key"))?;
            KeyKind::Rsa
        } else if EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, key.expose(), &rng)
            .is_ok()
        {
            KeyKind::P256
        } else if EcdsaKeyPair::from_pkcs8(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, key.expose(), &rng)
            .is_ok()
        {
            KeyKind::P384
        } else {
            RsaKeyPair::from_pkcs8(key.expose()).map_err(|_| {
                Error::Crypto("unsupported private key (want PKCS#8 EC P-256/P-384 or RSA)")
            })?;
            KeyKind::Rsa
        };
        let cas: Vec<Vec<u8>> = pem_blocks(ca, "CA PEM")?.into_iter().map(|b| b.1).collect();
        for c in &cas {
            X509Certificate::from_der(c).map_err(|_| Error::Crypto("CA certificate DER"))?;
        }
        Ok(Credentials {
            cert,
            key,
            kind,
            cas,
        })
    }

    /// Our certificate (DER) for the CERT payload.
    pub fn cert(&self) -> &[u8] {
        &self.cert
    }

    /// CERTREQ data: SHA-1 of each CA's SubjectPublicKeyInfo (RFC 7296 §3.7).
    pub fn certreq(&self) -> Vec<u8> {
        let mut v = Vec::new();
        for c in &self.cas {
            if let Ok((_, x)) = X509Certificate::from_der(c) {
                v.extend_from_slice(
                    ring::digest::digest(
                        &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
                        x.public_key().raw,
                    )
                    .as_ref(),
                );
            }
        }
        v
    }

    /// The AUTH payload over `octets`: RFC 7427 when the peer announced it, else the
    /// classic ECDSA method (RSA needs RFC 7427 here: ring does not sign with SHA-1).
    pub fn sign(&self, octets: &[u8], rfc7427: bool) -> Result<AuthRepr> {
        let rng = ring::rand::SystemRandom::new();
        let k = self.key.expose();
        let ecdsa = |alg, k: &[u8]| -> Result<Vec<u8>> {
            let kp =
                EcdsaKeyPair::from_pkcs8(alg, k, &rng).map_err(|_| Error::Crypto("ECDSA key"))?;
            Ok(kp
                .sign(&rng, octets)
                .map_err(|_| Error::Crypto("ECDSA sign"))?
                .as_ref()
                .to_vec())
        };
        let with_alg = |alg: &[u8], s: Vec<u8>| {
            let mut d = vec![alg.len() as u8];
            d.extend_from_slice(alg);
            d.extend_from_slice(&s);
            AuthRepr {
                method: AUTH_DIGITAL_SIGNATURE,
                data: d,
            }
        };
        Ok(match (&self.kind, rfc7427) {
            (KeyKind::P256, true) => with_alg(
                ALG_ECDSA_SHA256,
                ecdsa(&sig::ECDSA_P256_SHA256_ASN1_SIGNING, k)?,
            ),
            (KeyKind::P384, true) => with_alg(
                ALG_ECDSA_SHA384,
                ecdsa(&sig::ECDSA_P384_SHA384_ASN1_SIGNING, k)?,
            ),
            (KeyKind::P256, false) => AuthRepr {
                method: AUTH_ECDSA_256,
                data: ecdsa(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, k)?,
            },
            (KeyKind::P384, false) => AuthRepr {
                method: AUTH_ECDSA_384,
                data: ecdsa(&sig::ECDSA_P384_SHA384_FIXED_SIGNING, k)?,
            },
            (KeyKind::Rsa, _) => {
                let kp = RsaKeyPair::from_pkcs8(k)
                    .or_else(|_| RsaKeyPair::from_der(k))
                    .map_err(|_| Error::Crypto("RSA key"))?;
                let mut s = vec![0u8; kp.public().modulus_len()];
                kp.sign(&sig::RSA_PKCS1_SHA256, &rng, octets, &mut s)
                    .map_err(|_| Error::Crypto("RSA sign"))?;
                with_alg(ALG_RSA_SHA256, s)
            }
        })
    }

    /// Verifies the peer: `certs[0]` is its certificate, the rest intermediates.
    pub fn verify_peer(
        &self,
        certs: &[&[u8]],
        id: &IdRepr,
        auth: &AuthRepr,
        octets: &[u8],
        unix_time: i64,
    ) -> Result<()> {
        let parsed: Vec<X509Certificate<'_>> = certs
            .iter()
            .map(|c| X509Certificate::from_der(c).map(|x| x.1))
            .collect::<core::result::Result<_, _>>()
            .map_err(|_| Error::PeerMisbehaved("unparsable certificate"))?;
        let cas: Vec<X509Certificate<'_>> = self
            .cas
            .iter()
            .filter_map(|c| X509Certificate::from_der(c).ok().map(|x| x.1))
            .collect();
        let ee = parsed
            .first()
            .ok_or(Error::PeerMisbehaved("no CERT payload"))?;
        validate_chain(ee, &parsed[1..], &cas, unix_time)?;
        if !id_matches(ee, id) {
            return Err(Error::PeerMisbehaved("identity not in the certificate"));
        }
        verify_auth(
            ee.public_key().subject_public_key.data.as_ref(),
            auth,
            octets,
        )
    }
}

fn valid_at(c: &X509Certificate<'_>, t: i64) -> bool {
    c.validity().not_before.timestamp() <= t && t <= c.validity().not_after.timestamp()
}

fn is_ca(c: &X509Certificate<'_>) -> bool {
    matches!(c.basic_constraints(), Ok(Some(bc)) if bc.value.ca)
}

/// RFC 5280 path building, short: EE, then intermediates from CERT payloads, up to a CA.
fn validate_chain(
    ee: &X509Certificate<'_>,
    inter: &[X509Certificate<'_>],
    cas: &[X509Certificate<'_>],
    now: i64,
) -> Result<()> {
    if !valid_at(ee, now) {
        return Err(Error::PeerMisbehaved(
            "certificate expired or not yet valid",
        ));
    }
    if let Ok(Some(ku)) = ee.key_usage() {
        if !ku.value.digital_signature() {
            return Err(Error::PeerMisbehaved(
                "certificate key usage lacks digitalSignature",
            ));
        }
    }
    let mut cur = ee;
    for _ in 0..5 {
        let signs = |c: &&X509Certificate<'_>| {
            c.subject().as_raw() == cur.issuer().as_raw()
                && cur.verify_signature(Some(c.public_key())).is_ok()
        };
        if let Some(ca) = cas.iter().find(signs) {
            if !is_ca(ca) || !valid_at(ca, now) {
                return Err(Error::PeerMisbehaved("CA certificate not valid as CA"));
            }
            return Ok(());
        }
        match inter.iter().find(signs) {
            Some(i) if is_ca(i) && valid_at(i, now) => cur = i,
            _ => {
                return Err(Error::PeerMisbehaved(
                    "certificate does not chain to a trusted CA",
                ))
            }
        }
    }
    Err(Error::PeerMisbehaved("certificate chain too long"))
}

/// The ID payload must name the certificate: subjectAltName or subject DN (RFC 7296 §3.5).
fn id_matches(c: &X509Certificate<'_>, id: &IdRepr) -> bool {
    if id.id_type == ID_DER_ASN1_DN {
        return c.subject().as_raw() == id.data.as_slice();
    }
    let Ok(Some(san)) = c.subject_alternative_name() else {
        return false;
    };
    san.value
        .general_names
        .iter()
        .any(|g| match (g, id.id_type) {
            (GeneralName::DNSName(n), ID_FQDN) => n.as_bytes().eq_ignore_ascii_case(&id.data),
            (GeneralName::RFC822Name(n), ID_RFC822_ADDR) => {
                n.as_bytes().eq_ignore_ascii_case(&id.data)
            }
            (GeneralName::IPAddress(a), ID_IPV4_ADDR | ID_IPV6_ADDR) => *a == id.data.as_slice(),
            _ => false,
        })
}

/// Verifies an AUTH payload with the peer's public key (EC point or RSAPublicKey DER).
pub fn verify_auth(public_key: &[u8], auth: &AuthRepr, octets: &[u8]) -> Result<()> {
    let p384 = public_key.len() == 97;
    let alg: &dyn sig::VerificationAlgorithm = match auth.method {
        AUTH_ECDSA_256 => &sig::ECDSA_P256_SHA256_FIXED,
        AUTH_ECDSA_384 => &sig::ECDSA_P384_SHA384_FIXED,
        AUTH_RSA_SIG => &sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
        AUTH_DIGITAL_SIGNATURE => {
            let n = *auth.data.first().ok_or(Error::Truncated {
                field: "AUTH ASN.1 length",
                offset: 0,
            })? as usize;
            let alg_id = auth.data.get(1..1 + n).ok_or(Error::Truncated {
                field: "AUTH AlgorithmIdentifier",
                offset: 1,
            })?;
            let s = &auth.data[1 + n..];
            let a = rfc7427_alg(alg_id, p384)?;
            return sig::UnparsedPublicKey::new(a, public_key)
                .verify(octets, s)
                .map_err(|_| Error::PeerMisbehaved("AUTH signature does not verify"));
        }
        _ => return Err(Error::PeerMisbehaved("unsupported AUTH method")),
    };
    sig::UnparsedPublicKey::new(alg, public_key)
        .verify(octets, &auth.data)
        .map_err(|_| Error::PeerMisbehaved("AUTH signature does not verify"))
}

fn contains(h: &[u8], n: &[u8]) -> bool {
    h.windows(n.len()).any(|w| w == n)
}

/// Maps an RFC 7427 AlgorithmIdentifier to ring's verification algorithm.
fn rfc7427_alg(alg_id: &[u8], p384: bool) -> Result<&'static dyn sig::VerificationAlgorithm> {
    let hash = |oid_last: u8| contains(alg_id, &[OID_SHA2, &[oid_last]].concat());
    let e = Err(Error::PeerMisbehaved(
        "unsupported RFC 7427 signature algorithm",
    ));
    if contains(alg_id, OID_RSA_PSS) {
        // ring verifies PSS with salt length = hash length, strongSwan's default.
        return if hash(1) {
            Ok(&sig::RSA_PSS_2048_8192_SHA256)
        } else if hash(2) {
            Ok(&sig::RSA_PSS_2048_8192_SHA384)
        } else if hash(3) {
            Ok(&sig::RSA_PSS_2048_8192_SHA512)
        } else {
            e
        };
    }
    if contains(alg_id, OID_ECDSA_SHA2) {
        let last = alg_id.last().copied().unwrap_or(0);
        return match (last, p384) {
            (2, false) => Ok(&sig::ECDSA_P256_SHA256_ASN1),
            (3, false) => Ok(&sig::ECDSA_P256_SHA384_ASN1),
            (2, true) => Ok(&sig::ECDSA_P384_SHA256_ASN1),
            (3, true) => Ok(&sig::ECDSA_P384_SHA384_ASN1),
            _ => e,
        };
    }
    if contains(alg_id, OID_RSA_PKCS1) {
        let at = alg_id
            .windows(OID_RSA_PKCS1.len())
            .position(|w| w == OID_RSA_PKCS1)
            .unwrap_or(0)
            + OID_RSA_PKCS1.len();
        return match alg_id.get(at) {
            Some(0x0b) => Ok(&sig::RSA_PKCS1_2048_8192_SHA256),
            Some(0x0c) => Ok(&sig::RSA_PKCS1_2048_8192_SHA384),
            Some(0x0d) => Ok(&sig::RSA_PKCS1_2048_8192_SHA512),
            _ => e,
        };
    }
    e
}
