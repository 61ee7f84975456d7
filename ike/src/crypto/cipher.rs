//! Protection of the SK payload (RFC 7296 §3.14): AEAD per RFC 5282 (AES-GCM-16) and
//! RFC 7634 (ChaCha20-Poly1305) with ring; AES-CBC (RFC 3602) with RustCrypto's `cbc`
//! plus HMAC-SHA2 integrity (RFC 4868) with ring. Also the key sizes CHILD_SAs need.

use super::{Rng, Secret};
use crate::error::{Error, Result};
use ring::{aead, hmac};

/// Encryption transforms (transform type 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encr {
    /// ENCR_AES_GCM_16 (20), key length 128 or 256 bits.
    AesGcm16(u16),
    /// ENCR_CHACHA20_POLY1305 (28).
    ChaCha20Poly1305,
    /// ENCR_AES_CBC (12), key length 128 or 256 bits.
    AesCbc(u16),
}

impl Encr {
    pub fn from_id(id: u16, key_bits: Option<u16>) -> Option<Encr> {
        match (id, key_bits) {
            (20, Some(k @ (128 | 256))) => Some(Encr::AesGcm16(k)),
            (28, None) => Some(Encr::ChaCha20Poly1305),
            (12, Some(k @ (128 | 256))) => Some(Encr::AesCbc(k)),
            _ => None,
        }
    }
    pub fn id(self) -> u16 {
        match self {
            Encr::AesGcm16(_) => 20,
            Encr::ChaCha20Poly1305 => 28,
            Encr::AesCbc(_) => 12,
        }
    }
    /// The Key Length attribute, where the transform takes one.
    pub fn key_bits(self) -> Option<u16> {
        match self {
            Encr::AesGcm16(k) | Encr::AesCbc(k) => Some(k),
            Encr::ChaCha20Poly1305 => None,
        }
    }
    pub fn is_aead(self) -> bool {
        !matches!(self, Encr::AesCbc(_))
    }
    /// Key material taken from prf+ including the 4-octet salt of AEADs (RFC 5282 §7.1,
    /// RFC 7634 §2).
    pub fn key_len(self) -> usize {
        match self {
            Encr::AesGcm16(k) => k as usize / 8 + 4,
            Encr::ChaCha20Poly1305 => 36,
            Encr::AesCbc(k) => k as usize / 8,
        }
    }
    fn iv_len(self) -> usize {
        if self.is_aead() {
            8
        } else {
            16
        }
    }
}

/// Integrity transforms (transform type 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Integ {
    None,
    HmacSha256_128,
    HmacSha384_192,
    HmacSha512_256,
}

impl Integ {
    pub fn from_id(id: u16) -> Option<Integ> {
        Some(match id {
            0 => Integ::None,
            12 => Integ::HmacSha256_128,
            13 => Integ::HmacSha384_192,
            14 => Integ::HmacSha512_256,
            _ => return None,
        })
    }
    pub fn id(self) -> u16 {
        match self {
            Integ::None => 0,
            Integ::HmacSha256_128 => 12,
            Integ::HmacSha384_192 => 13,
            Integ::HmacSha512_256 => 14,
        }
    }
    pub fn key_len(self) -> usize {
        match self {
            Integ::None => 0,
            Integ::HmacSha256_128 => 32,
            Integ::HmacSha384_192 => 48,
            Integ::HmacSha512_256 => 64,
        }
    }
    fn icv_len(self) -> usize {
        self.key_len() / 2
    }
    fn alg(self) -> Option<hmac::Algorithm> {
        Some(match self {
            Integ::None => return None,
            Integ::HmacSha256_128 => hmac::HMAC_SHA256,
            Integ::HmacSha384_192 => hmac::HMAC_SHA384,
            Integ::HmacSha512_256 => hmac::HMAC_SHA512,
        })
    }
}

/// One direction's SK payload keys (SK_ei + SK_ai, or SK_er + SK_ar).
#[derive(Debug, Clone)]
pub struct SkCipher {
    encr: Encr,
    integ: Integ,
    ek: Secret,
    ak: Secret,
}

const AEAD_TAG: usize = 16;

impl SkCipher {
    pub fn new(encr: Encr, integ: Integ, ek: Secret, ak: Secret) -> Result<SkCipher> {
        if ek.len() != encr.key_len()
            || ak.len() != integ.key_len()
            || encr.is_aead() != (integ == Integ::None)
        {
            return Err(Error::Crypto("SK key lengths or transform combination"));
        }
        Ok(SkCipher {
            encr,
            integ,
            ek,
            ak,
        })
    }

    fn padded(&self, plain_len: usize) -> usize {
        // Plaintext, padding, one Pad Length octet: a whole number of blocks for CBC.
        if self.encr.is_aead() {
            plain_len + 1
        } else {
            (plain_len + 1).div_ceil(16) * 16
        }
    }

    fn icv_len(&self) -> usize {
        if self.encr.is_aead() {
            AEAD_TAG
        } else {
            self.integ.icv_len()
        }
    }

    /// Length of the SK body (IV, ciphertext, ICV) for `plain_len` octets of payloads.
    pub fn body_len(&self, plain_len: usize) -> usize {
        self.encr.iv_len() + self.padded(plain_len) + self.icv_len()
    }

    /// Appends the SK body to `msg`, which already holds the IKE header and the SK generic
    /// header with their final lengths: they are the associated data (RFC 5282 §5.1).
    pub fn seal(&self, msg: &mut Vec<u8>, plain: &[u8], rng: &mut dyn Rng) -> Result<()> {
        let aad_len = msg.len();
        let mut iv = vec![0u8; self.encr.iv_len()];
        rng.fill(&mut iv);
        msg.extend_from_slice(&iv);
        let ct_at = msg.len();
        msg.extend_from_slice(plain);
        let pad = self.padded(plain.len()) - plain.len() - 1;
        msg.resize(msg.len() + pad, 0);
        msg.push(pad as u8);
        match self.encr {
            Encr::AesCbc(_) => {
                cbc_encrypt(self.ek.expose(), &iv, &mut msg[ct_at..])?;
                let alg = self
                    .integ
                    .alg()
                    .ok_or(Error::Crypto("CBC without integrity"))?;
                let tag = hmac::sign(&hmac::Key::new(alg, self.ak.expose()), msg);
                msg.extend_from_slice(&tag.as_ref()[..self.integ.icv_len()]);
            }
            _ => {
                let (aad, rest) = msg.split_at_mut(ct_at);
                let key = self.aead_key()?;
                let tag = key
                    .seal_in_place_separate_tag(
                        self.nonce(&iv)?,
                        aead::Aad::from(&aad[..aad_len]),
                        rest,
                    )
                    .map_err(|_| Error::Crypto("AEAD seal"))?;
                msg.extend_from_slice(tag.as_ref());
            }
        }
        Ok(())
    }

    /// Checks and decrypts the SK body that starts at `body_at` and runs to the end of
    /// `msg`; returns the inner payload chain without padding.
    pub fn open(&self, msg: &[u8], body_at: usize) -> Result<Vec<u8>> {
        let (iv_len, icv) = (self.encr.iv_len(), self.icv_len());
        let body_len = msg.len().saturating_sub(body_at);
        if body_at > msg.len() || body_len < iv_len + icv + 1 {
            return Err(Error::BadLength {
                field: "SK payload",
                offset: body_at,
                len: body_len,
            });
        }
        let iv = &msg[body_at..body_at + iv_len];
        let ct_at = body_at + iv_len;
        let icv_at = msg.len() - icv;
        let mut plain = match self.encr {
            Encr::AesCbc(_) => {
                let alg = self
                    .integ
                    .alg()
                    .ok_or(Error::Crypto("CBC without integrity"))?;
                let tag = hmac::sign(&hmac::Key::new(alg, self.ak.expose()), &msg[..icv_at]);
                if !ct_eq(&tag.as_ref()[..icv], &msg[icv_at..]) {
                    return Err(Error::Integrity);
                }
                let mut ct = msg[ct_at..icv_at].to_vec();
                if ct.len() % 16 != 0 {
                    return Err(Error::BadLength {
                        field: "SK ciphertext",
                        offset: ct_at,
                        len: ct.len(),
                    });
                }
                cbc_decrypt(self.ek.expose(), iv, &mut ct)?;
                ct
            }
            _ => {
                let mut ct = msg[ct_at..].to_vec();
                let key = self.aead_key()?;
                let n = key
                    .open_in_place(self.nonce(iv)?, aead::Aad::from(&msg[..body_at]), &mut ct)
                    .map_err(|_| Error::Integrity)?
                    .len();
                ct.truncate(n);
                ct
            }
        };
        let pad = *plain.last().ok_or(Error::Integrity)? as usize;
        if pad + 1 > plain.len() {
            return Err(Error::BadValue {
                field: "SK pad length",
                offset: icv_at - 1,
                value: pad as u32,
            });
        }
        plain.truncate(plain.len() - pad - 1);
        Ok(plain)
    }

    fn aead_key(&self) -> Result<aead::LessSafeKey> {
        let k = self.ek.expose();
        let alg = match self.encr {
            Encr::AesGcm16(128) => &aead::AES_128_GCM,
            Encr::AesGcm16(_) => &aead::AES_256_GCM,
            _ => &aead::CHACHA20_POLY1305,
        };
        let unbound =
            aead::UnboundKey::new(alg, &k[..k.len() - 4]).map_err(|_| Error::Crypto("AEAD key"))?;
        Ok(aead::LessSafeKey::new(unbound))
    }

    fn nonce(&self, iv: &[u8]) -> Result<aead::Nonce> {
        // Nonce = salt (last 4 octets of the key material) | IV (RFC 5282 §4, RFC 7634 §2).
        let k = self.ek.expose();
        let mut n = [0u8; 12];
        n[..4].copy_from_slice(&k[k.len() - 4..]);
        n[4..].copy_from_slice(iv);
        Ok(aead::Nonce::assume_unique_for_key(n))
    }
}

/// Constant-time comparison of two equal-length tags.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cbc_encrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<()> {
    use cbc::cipher::{block_padding::NoPadding, BlockEncryptMut, KeyIvInit};
    let n = buf.len();
    let r = match key.len() {
        16 => cbc::Encryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map(|c| c.encrypt_padded_mut::<NoPadding>(buf, n).is_ok()),
        _ => cbc::Encryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map(|c| c.encrypt_padded_mut::<NoPadding>(buf, n).is_ok()),
    };
    match r {
        Ok(true) => Ok(()),
        _ => Err(Error::Crypto("AES-CBC encrypt")),
    }
}

fn cbc_decrypt(key: &[u8], iv: &[u8], buf: &mut [u8]) -> Result<()> {
    use cbc::cipher::{block_padding::NoPadding, BlockDecryptMut, KeyIvInit};
    let r = match key.len() {
        16 => cbc::Decryptor::<aes::Aes128>::new_from_slices(key, iv)
            .map(|c| c.decrypt_padded_mut::<NoPadding>(buf).is_ok()),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(key, iv)
            .map(|c| c.decrypt_padded_mut::<NoPadding>(buf).is_ok()),
    };
    match r {
        Ok(true) => Ok(()),
        _ => Err(Error::Crypto("AES-CBC decrypt")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SeededRng;

    fn suites() -> Vec<(Encr, Integ)> {
        vec![
            (Encr::AesGcm16(128), Integ::None),
            (Encr::AesGcm16(256), Integ::None),
            (Encr::ChaCha20Poly1305, Integ::None),
            (Encr::AesCbc(128), Integ::HmacSha256_128),
            (Encr::AesCbc(256), Integ::HmacSha384_192),
            (Encr::AesCbc(256), Integ::HmacSha512_256),
        ]
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = SeededRng::new(3);
        for (e, i) in suites() {
            let c = SkCipher::new(
                e,
                i,
                Secret::new(vec![7; e.key_len()]),
                Secret::new(vec![9; i.key_len()]),
            )
            .unwrap();
            for plain_len in [0usize, 1, 15, 16, 100] {
                let plain: Vec<u8> = (0..plain_len as u8).collect();
                let mut msg = b"header-and-sk-generic-header".to_vec();
                let at = msg.len();
                c.seal(&mut msg, &plain, &mut rng).unwrap();
                assert_eq!(msg.len() - at, c.body_len(plain_len), "{e:?}");
                assert_eq!(c.open(&msg, at).unwrap(), plain, "{e:?}");
                let mut bad = msg.clone();
                bad[3] ^= 1; // associated data
                assert_eq!(c.open(&bad, at), Err(Error::Integrity), "{e:?}");
                let mut bad = msg.clone();
                let l = bad.len();
                bad[l - 1] ^= 1;
                assert_eq!(c.open(&bad, at), Err(Error::Integrity), "{e:?}");
            }
        }
    }

    #[test]
    fn rejects_mismatched_keys() {
        assert!(SkCipher::new(
            Encr::AesGcm16(128),
            Integ::HmacSha256_128,
            Secret::new(vec![0; 20]),
            Secret::new(vec![0; 32])
        )
        .is_err());
        assert!(SkCipher::new(
            Encr::AesCbc(128),
            Integ::HmacSha256_128,
            Secret::new(vec![0; 20]),
            Secret::new(vec![0; 32])
        )
        .is_err());
    }

    #[test]
    fn aes_128_cbc_rfc3602_case_1() {
        // RFC 3602 §4, Case #1: one block.
        let h = |s: &str| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect::<Vec<u8>>()
        };
        let mut buf = b"Single block msg".to_vec();
        cbc_encrypt(
            &h("06a9214036b8a15b512e03d534120006"),
            &h("3dafba429d9eb430b422da802c9fac41"),
            &mut buf,
        )
        .unwrap();
        assert_eq!(buf, h("e353779c1079aeb82708942dbe77181a"));
    }
}
