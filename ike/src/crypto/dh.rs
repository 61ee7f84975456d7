//! Key exchange groups (transform type 4): 19, 20 (RFC 5903) and 31 (RFC 8031) with ring;
//! 14, 15 (RFC 3526 MODP) with crypto-bigint's constant-time modular exponentiation.
//! Private values come from the caller's [`Rng`].

use super::{Rng, Secret};
use crate::error::{Error, Result};
use crypto_bigint::modular::runtime_mod::{DynResidue, DynResidueParams};
use crypto_bigint::{Encoding, U2048, U256, U3072};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey};
use zeroize::Zeroize;

/// RFC 3526 §3, 2048-bit MODP group 14 prime.
const MODP2048: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AACAA68FFFFFFFFFFFFFFFF";
/// RFC 3526 §4, 3072-bit MODP group 15 prime.
const MODP3072: &str = "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7EDEE386BFB5A899FA5AE9F24117C4B1FE649286651ECE45B3DC2007CB8A163BF0598DA48361C55D39A69163FA8FD24CF5F83655D23DCA3AD961C62F356208552BB9ED529077096966D670C354E4ABC9804F1746C08CA18217C32905E462E36CE3BE39E772C180E86039B2783A2EC07A28FB5C55DF06F4C52C9DE2BCBF6955817183995497CEA956AE515D2261898FA051015728E5A8AAAC42DAD33170D04507A33A85521ABDF1CBA64ECFB850458DBEF0A8AEA71575D060C7DB3970F85A6E1E4C7ABF5AE8CDB0933D71E8C94E04A25619DCEE3D2261AD2EE6BF12FFA06D98A0864D87602733EC86A64521F2B18177B200CBBE117577A615D6C770988C0BAD946E208E24FA074E5AB3143DB5BFCE0FD108E4B82D120A93AD2CAFFFFFFFFFFFFFFFF";

/// Groups we implement, in our order of preference.
pub const SUPPORTED: [u16; 5] = [31, 19, 20, 15, 14];

/// Our half of one key exchange.
pub struct KeyExchange {
    group: u16,
    public: Vec<u8>,
    private: Private,
}

enum Private {
    Ring(EphemeralPrivateKey),
    Modp(Secret),
}

impl core::fmt::Debug for KeyExchange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KeyExchange")
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

fn ring_alg(group: u16) -> Option<(&'static agreement::Algorithm, usize)> {
    Some(match group {
        19 => (&agreement::ECDH_P256, 32),
        20 => (&agreement::ECDH_P384, 48),
        31 => (&agreement::X25519, 32),
        _ => return None,
    })
}

impl KeyExchange {
    /// Is `group` one we can compute?
    pub fn supported(group: u16) -> bool {
        SUPPORTED.contains(&group)
    }

    /// Generates a private value from `rng` and computes the public KE data.
    pub fn new(group: u16, rng: &mut dyn Rng) -> Result<KeyExchange> {
        if let Some((alg, len)) = ring_alg(group) {
            let mut seed = vec![0u8; len];
            rng.fill(&mut seed);
            #[allow(deprecated)]
            let fixed = ring::test::rand::FixedSliceRandom { bytes: &seed };
            let key = EphemeralPrivateKey::generate(alg, &fixed)
                .map_err(|_| Error::Crypto("key generation"))?;
            seed.zeroize();
            let pk = key
                .compute_public_key()
                .map_err(|_| Error::Crypto("public key"))?;
            // RFC 5903 §7: ECP KE data is x | y without the 0x04 point-format octet.
            let public = if group == 31 {
                pk.as_ref().to_vec()
            } else {
                pk.as_ref()[1..].to_vec()
            };
            return Ok(KeyExchange {
                group,
                public,
                private: Private::Ring(key),
            });
        }
        let mut x = vec![0u8; 32];
        rng.fill(&mut x);
        let public = modp_pow(group, &[2], &x)?;
        Ok(KeyExchange {
            group,
            public,
            private: Private::Modp(Secret::new(x)),
        })
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    /// The KE payload data.
    pub fn public(&self) -> &[u8] {
        &self.public
    }

    /// g^ir from the peer's KE data; validates the peer value (RFC 6989).
    pub fn agree(self, peer: &[u8]) -> Result<Secret> {
        match self.private {
            Private::Ring(key) => {
                let (alg, len) = ring_alg(self.group).ok_or(Error::Crypto("group"))?;
                let want = if self.group == 31 { len } else { 2 * len };
                if peer.len() != want {
                    return Err(Error::BadLength {
                        field: "KE data",
                        offset: 0,
                        len: peer.len(),
                    });
                }
                let mut p = Vec::with_capacity(want + 1);
                if self.group != 31 {
                    p.push(4);
                }
                p.extend_from_slice(peer);
                let peer = UnparsedPublicKey::new(alg, p);
                agreement::agree_ephemeral(key, &peer, |s| Secret::new(s.to_vec()))
                    .map_err(|_| Error::Crypto("invalid peer key share"))
            }
            Private::Modp(x) => {
                let n = modp_len(self.group)?;
                if peer.len() != n {
                    return Err(Error::BadLength {
                        field: "KE data",
                        offset: 0,
                        len: peer.len(),
                    });
                }
                // RFC 6989 §2.1: 1 < y < p-1.
                let one = peer[..n - 1].iter().all(|b| *b == 0) && peer[n - 1] <= 1;
                let mut pm1 = modp_prime_bytes(self.group)?;
                pm1[n - 1] -= 1;
                if one || peer >= pm1.as_slice() {
                    return Err(Error::Crypto("MODP public value out of range"));
                }
                Ok(Secret::new(modp_pow(self.group, peer, x.expose())?))
            }
        }
    }
}

fn modp_len(group: u16) -> Result<usize> {
    match group {
        14 => Ok(256),
        15 => Ok(384),
        _ => Err(Error::Crypto("unsupported key exchange group")),
    }
}

fn modp_prime_bytes(group: u16) -> Result<Vec<u8>> {
    Ok(match group {
        14 => U2048::from_be_hex(MODP2048).to_be_bytes().to_vec(),
        15 => U3072::from_be_hex(MODP3072).to_be_bytes().to_vec(),
        _ => return Err(Error::Crypto("unsupported key exchange group")),
    })
}

/// base^exp mod p for group 14 or 15; `exp` is 256 bits (RFC 3526 §8 strength).
fn modp_pow(group: u16, base: &[u8], exp: &[u8]) -> Result<Vec<u8>> {
    let e = U256::from_be_slice(exp.get(..32).ok_or(Error::Crypto("exponent length"))?);
    let n = modp_len(group)?;
    let mut b = vec![0u8; n];
    b[n - base.len()..].copy_from_slice(base);
    Ok(match group {
        14 => {
            let p = DynResidueParams::new(&U2048::from_be_hex(MODP2048));
            DynResidue::new(&U2048::from_be_slice(&b), p)
                .pow(&e)
                .retrieve()
                .to_be_bytes()
                .to_vec()
        }
        _ => {
            let p = DynResidueParams::new(&U3072::from_be_hex(MODP3072));
            DynResidue::new(&U3072::from_be_slice(&b), p)
                .pow(&e)
                .retrieve()
                .to_be_bytes()
                .to_vec()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRng;

    #[test]
    fn every_group_agrees_with_itself() {
        for g in SUPPORTED {
            let mut rng = SeededRng::new(g as u64);
            let a = KeyExchange::new(g, &mut rng).unwrap();
            let b = KeyExchange::new(g, &mut rng).unwrap();
            let (pa, pb) = (a.public().to_vec(), b.public().to_vec());
            let expect_len = match g {
                31 | 19 => 32 * if g == 19 { 2 } else { 1 },
                20 => 96,
                14 => 256,
                _ => 384,
            };
            assert_eq!(pa.len(), expect_len, "group {g}");
            let s1 = a.agree(&pb).unwrap();
            let s2 = b.agree(&pa).unwrap();
            assert_eq!(s1, s2, "group {g}");
        }
    }

    #[test]
    fn rejects_bad_peer_values() {
        let mut rng = SeededRng::new(1);
        let a = KeyExchange::new(14, &mut rng).unwrap();
        let mut one = vec![0u8; 256];
        one[255] = 1;
        assert!(a.agree(&one).is_err());
        let a = KeyExchange::new(19, &mut rng).unwrap();
        assert!(matches!(a.agree(&[0; 63]), Err(Error::BadLength { .. })));
        let a = KeyExchange::new(19, &mut rng).unwrap();
        assert!(a.agree(&[0; 64]).is_err());
    }

    #[test]
    fn x25519_rfc7748_section_6_1() {
        // RFC 7748 §6.1: Alice's private key, Bob's public key, the shared secret.
        struct Fixed(Vec<u8>);
        impl Rng for Fixed {
            fn fill(&mut self, b: &mut [u8]) {
                b.copy_from_slice(&self.0);
            }
        }
        let h = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        // RFC 7748 §6.1 (also RFC 8031's first example).
        let mut alice = Fixed(h(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        let a = KeyExchange::new(31, &mut alice).unwrap();
        assert_eq!(
            a.public(),
            h("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        let k = a
            .agree(&h(
                "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f",
            ))
            .unwrap();
        assert_eq!(
            k.expose(),
            h("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
        );
        let mut bob = Fixed(h(
            "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb",
        ));
        let b = KeyExchange::new(31, &mut bob).unwrap();
        assert_eq!(
            b.public(),
            h("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
        );
    }
}
