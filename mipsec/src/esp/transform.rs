//! ESP transforms: the AEAD ciphers of RFC 4106 (AES-GCM with a 16-octet ICV) and RFC 7634
//! (ChaCha20-Poly1305), and AES-CBC (RFC 3602) with HMAC-SHA-256-128 (RFC 4868).
//!
//! An [`EspCipher`] seals and opens one ESP packet in place: it writes the IV, encrypts the
//! payload and trailer and writes the ICV, or checks the ICV and decrypts. Framing (header,
//! padding, trailer) is the SA's job (`sa.rs`). Key material never reaches `Debug` output.

use std::fmt;

use aes::cipher::block_padding::NoPadding;
use aes::cipher::{BlockDecryptMut, BlockEncrypt, BlockEncryptMut, InnerIvInit, KeyInit};
use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;

use super::EspError;
use crate::error::Error;

/// Octets of SPI and Sequence Number at the start of every ESP packet (RFC 4303 §2).
pub const ESP_HEADER_LEN: usize = 8;
/// Octets of the ICV of every transform here.
pub const ICV_LEN: usize = 16;
/// Octets of Pad Length and Next Header (RFC 4303 §2.5, §2.6).
pub const TRAILER_LEN: usize = 2;

/// An ESP transform: encryption and integrity algorithm with key sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// `ENCR_AES_GCM_16`, 128-bit key (RFC 4106).
    AesGcm128,
    /// `ENCR_AES_GCM_16`, 256-bit key (RFC 4106).
    AesGcm256,
    /// `ENCR_CHACHA20_POLY1305` (RFC 7634).
    ChaCha20Poly1305,
    /// `ENCR_AES_CBC` 128 (RFC 3602) with `AUTH_HMAC_SHA2_256_128` (RFC 4868).
    AesCbc128HmacSha256,
    /// `ENCR_AES_CBC` 256 (RFC 3602) with `AUTH_HMAC_SHA2_256_128` (RFC 4868).
    AesCbc256HmacSha256,
}

impl Transform {
    /// Length of the key material (RFC 7296 §2.17 order: encryption key, then for AEAD the
    /// 4-octet salt (RFC 4106 §8.1, RFC 7634 §4), else the integrity key).
    pub fn keymat_len(self) -> usize {
        match self {
            Transform::AesGcm128 => 16 + 4,
            Transform::AesGcm256 | Transform::ChaCha20Poly1305 => 32 + 4,
            Transform::AesCbc128HmacSha256 => 16 + 32,
            Transform::AesCbc256HmacSha256 => 32 + 32,
        }
    }

    /// Length of the explicit IV carried in each packet.
    pub fn iv_len(self) -> usize {
        if self.is_aead() {
            8 // RFC 4106 §3.1, RFC 7634 §2
        } else {
            16 // RFC 3602 §3
        }
    }

    /// The block size the payload, padding and trailer are aligned to (RFC 4303 §2.4).
    pub fn block_len(self) -> usize {
        if self.is_aead() {
            4 // stream-like AEADs: only ESP's own 4-octet alignment (RFC 4106 §3.2)
        } else {
            16
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(
            self,
            Transform::AesGcm128 | Transform::AesGcm256 | Transform::ChaCha20Poly1305
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Transform::AesGcm128 => "aes128gcm16",
            Transform::AesGcm256 => "aes256gcm16",
            Transform::ChaCha20Poly1305 => "chacha20poly1305",
            Transform::AesCbc128HmacSha256 => "aes128-sha256",
            Transform::AesCbc256HmacSha256 => "aes256-sha256",
        }
    }

    /// The transform named as strongSwan names ESP proposals (`aes128gcm16`, ...).
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Transform::AesGcm128,
            Transform::AesGcm256,
            Transform::ChaCha20Poly1305,
            Transform::AesCbc128HmacSha256,
            Transform::AesCbc256HmacSha256,
        ]
        .into_iter()
        .find(|t| t.name() == name)
    }
}

impl fmt::Display for Transform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone)]
enum CbcKey {
    // Boxed: expanded AES key schedules are large, and the AEAD keys sit in the same enum.
    A128(Box<aes::Aes128>),
    A256(Box<aes::Aes256>),
}

// One per SA; the AEAD key stays inline so the per-packet path has no extra indirection.
#[allow(clippy::large_enum_variant)]
enum Keys {
    Aead { key: LessSafeKey, salt: [u8; 4] },
    Cbc { enc: CbcKey, mac: hmac::Key },
}

/// The keyed cipher of one SA.
pub struct EspCipher {
    transform: Transform,
    keys: Keys,
}

impl fmt::Debug for EspCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the keys.
        f.debug_struct("EspCipher")
            .field("transform", &self.transform)
            .finish_non_exhaustive()
    }
}

fn key_err(t: Transform, have: usize) -> EspError {
    EspError::KeyLength {
        transform: t.name(),
        need: t.keymat_len(),
        have,
    }
}

impl EspCipher {
    /// A cipher from key material laid out as [`Transform::keymat_len`] says.
    pub fn new(transform: Transform, keymat: &[u8]) -> Result<Self, EspError> {
        if keymat.len() != transform.keymat_len() {
            return Err(key_err(transform, keymat.len()));
        }
        let err = || key_err(transform, keymat.len());
        let keys = match transform {
            Transform::AesGcm128 | Transform::AesGcm256 | Transform::ChaCha20Poly1305 => {
                let alg = match transform {
                    Transform::AesGcm128 => &aead::AES_128_GCM,
                    Transform::AesGcm256 => &aead::AES_256_GCM,
                    _ => &aead::CHACHA20_POLY1305,
                };
                let (k, s) = keymat.split_at(keymat.len() - 4);
                let key = LessSafeKey::new(UnboundKey::new(alg, k).map_err(|_| err())?);
                let mut salt = [0; 4];
                salt.copy_from_slice(s);
                Keys::Aead { key, salt }
            }
            Transform::AesCbc128HmacSha256 | Transform::AesCbc256HmacSha256 => {
                let (k, a) = keymat.split_at(keymat.len() - 32);
                let enc = if transform == Transform::AesCbc128HmacSha256 {
                    CbcKey::A128(Box::new(aes::Aes128::new_from_slice(k).map_err(|_| err())?))
                } else {
                    CbcKey::A256(Box::new(aes::Aes256::new_from_slice(k).map_err(|_| err())?))
                };
                let mac = hmac::Key::new(hmac::HMAC_SHA256, a);
                Keys::Cbc { enc, mac }
            }
        };
        Ok(EspCipher { transform, keys })
    }

    pub fn transform(&self) -> Transform {
        self.transform
    }

    /// Seal `pkt` in place. `pkt` is the whole ESP packet: SPI and Sequence Number written,
    /// IV space, plaintext (payload, padding, Pad Length, Next Header) in place, ICV space
    /// at the end. `seq` is the full 64-bit sequence number; `esn` says whether its high
    /// half is authenticated. `iv` overrides the IV derived from `seq` (known-answer tests).
    pub fn seal(
        &self,
        pkt: &mut [u8],
        seq: u64,
        esn: bool,
        iv: Option<&[u8]>,
    ) -> Result<(), EspError> {
        let t = self.transform;
        let iv_len = t.iv_len();
        let min = ESP_HEADER_LEN + iv_len + TRAILER_LEN + ICV_LEN;
        crate::error::room(pkt, "esp.packet", min)?;
        let body_end = pkt.len() - ICV_LEN;
        if (body_end - ESP_HEADER_LEN - iv_len) % t.block_len() != 0 {
            return Err(EspError::Wire(Error::Unencodable {
                field: "esp.payload",
                reason: "plaintext is not a multiple of the block size",
            }));
        }
        match &self.keys {
            Keys::Aead { key, salt } => {
                // RFC 4106 §3.1 / RFC 7634 §2: the IV must never repeat under one key; the
                // sequence number never does within an SA, so it is the IV.
                let iv_bytes = iv_or_seq(iv, seq)?;
                pkt[ESP_HEADER_LEN..ESP_HEADER_LEN + 8].copy_from_slice(&iv_bytes);
                let nonce = nonce(salt, &iv_bytes);
                let (aad, alen) = aad(pkt, seq, esn);
                let (head, icv) = pkt.split_at_mut(body_end);
                let tag = key
                    .seal_in_place_separate_tag(
                        nonce,
                        Aad::from(&aad[..alen]),
                        &mut head[ESP_HEADER_LEN + 8..],
                    )
                    .map_err(|_| {
                        EspError::Wire(Error::Unencodable {
                            field: "esp.payload",
                            reason: "too long for the AEAD",
                        })
                    })?;
                icv.copy_from_slice(tag.as_ref());
            }
            Keys::Cbc { enc, mac } => {
                let ivb = match iv {
                    Some(v) if v.len() == 16 => {
                        let mut b = [0u8; 16];
                        b.copy_from_slice(v);
                        b
                    }
                    Some(_) => {
                        return Err(EspError::Wire(Error::Unencodable {
                            field: "esp.iv",
                            reason: "AES-CBC needs a 16-octet IV",
                        }))
                    }
                    // RFC 3602 §3 wants an unpredictable IV: the block cipher applied to a
                    // unique counter (NIST SP 800-38A Appendix C) is, and needs no RNG.
                    None => cbc_iv(enc, seq),
                };
                pkt[ESP_HEADER_LEN..ESP_HEADER_LEN + 16].copy_from_slice(&ivb);
                cbc_encrypt(enc, &ivb, &mut pkt[ESP_HEADER_LEN + 16..body_end]);
                let tag = hmac_icv(mac, &pkt[..body_end], seq, esn);
                pkt[body_end..].copy_from_slice(&tag.as_ref()[..ICV_LEN]);
            }
        }
        Ok(())
    }

    /// Check the ICV of `pkt` (a whole ESP packet) and decrypt it in place; the plaintext is
    /// then at `ESP_HEADER_LEN + iv_len .. len - ICV_LEN`. On failure nothing is decrypted.
    pub fn open(&self, pkt: &mut [u8], seq: u64, esn: bool) -> Result<(), EspError> {
        let t = self.transform;
        let iv_len = t.iv_len();
        let min = ESP_HEADER_LEN + iv_len + TRAILER_LEN + ICV_LEN;
        crate::error::need(pkt, "esp.packet", 0, min)?;
        let body_end = pkt.len() - ICV_LEN;
        let ct_len = body_end - ESP_HEADER_LEN - iv_len;
        if ct_len % t.block_len() != 0 {
            return Err(EspError::Wire(Error::Invalid {
                field: "esp.ciphertext",
                offset: ESP_HEADER_LEN + iv_len,
                value: ct_len as u64,
                reason: "length is not a multiple of the block size",
            }));
        }
        let auth = || EspError::Auth {
            spi: u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]),
            seq,
            offset: 0,
        };
        match &self.keys {
            Keys::Aead { key, salt } => {
                let mut ivb = [0u8; 8];
                ivb.copy_from_slice(&pkt[ESP_HEADER_LEN..ESP_HEADER_LEN + 8]);
                let (aad, alen) = aad(pkt, seq, esn);
                let err = auth();
                key.open_in_place(
                    nonce(salt, &ivb),
                    Aad::from(&aad[..alen]),
                    &mut pkt[ESP_HEADER_LEN + 8..],
                )
                .map_err(|_| with_offset(err, body_end))?;
            }
            Keys::Cbc { enc, mac } => {
                let tag = hmac_icv(mac, &pkt[..body_end], seq, esn);
                if !ct_eq(&tag.as_ref()[..ICV_LEN], &pkt[body_end..]) {
                    return Err(with_offset(auth(), body_end));
                }
                let mut ivb = [0u8; 16];
                ivb.copy_from_slice(&pkt[ESP_HEADER_LEN..ESP_HEADER_LEN + 16]);
                cbc_decrypt(enc, &ivb, &mut pkt[ESP_HEADER_LEN + 16..body_end]);
            }
        }
        Ok(())
    }
}

fn with_offset(e: EspError, at: usize) -> EspError {
    match e {
        EspError::Auth { spi, seq, .. } => EspError::Auth {
            spi,
            seq,
            offset: at,
        },
        e => e,
    }
}

fn iv_or_seq(iv: Option<&[u8]>, seq: u64) -> Result<[u8; 8], EspError> {
    match iv {
        None => Ok(seq.to_be_bytes()),
        Some(v) if v.len() == 8 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(v);
            Ok(b)
        }
        Some(_) => Err(EspError::Wire(Error::Unencodable {
            field: "esp.iv",
            reason: "AEAD transforms need an 8-octet IV",
        })),
    }
}

fn nonce(salt: &[u8; 4], iv: &[u8; 8]) -> Nonce {
    // RFC 4106 §4, RFC 7634 §2: nonce = salt || IV.
    let mut n = [0u8; 12];
    n[..4].copy_from_slice(salt);
    n[4..].copy_from_slice(iv);
    Nonce::assume_unique_for_key(n)
}

/// The AAD of RFC 4106 §5 / RFC 7634 §2.1: SPI || Sequence Number, with ESN
/// SPI || high 32 bits || low 32 bits.
fn aad(pkt: &[u8], seq: u64, esn: bool) -> ([u8; 12], usize) {
    let mut a = [0u8; 12];
    a[..4].copy_from_slice(&pkt[..4]);
    if esn {
        a[4..].copy_from_slice(&seq.to_be_bytes());
        (a, 12)
    } else {
        a[4..8].copy_from_slice(&pkt[4..8]);
        (a, 8)
    }
}

/// HMAC over the ESP packet up to the ICV, then (ESN) the high sequence bits, which RFC 4303
/// §2.2.1 makes part of the integrity check without sending them.
fn hmac_icv(key: &hmac::Key, covered: &[u8], seq: u64, esn: bool) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(key);
    ctx.update(covered);
    if esn {
        ctx.update(&((seq >> 32) as u32).to_be_bytes());
    }
    ctx.sign()
}

/// Constant-time equality of two byte strings of the same length.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cbc_iv(enc: &CbcKey, seq: u64) -> [u8; 16] {
    let mut block = [0u8; 16];
    block[8..].copy_from_slice(&seq.to_be_bytes());
    let b = aes::Block::from_mut_slice(&mut block);
    match enc {
        CbcKey::A128(k) => k.encrypt_block(b),
        CbcKey::A256(k) => k.encrypt_block(b),
    }
    block
}

fn cbc_encrypt(enc: &CbcKey, iv: &[u8; 16], data: &mut [u8]) {
    let len = data.len();
    // The length is a multiple of 16 (checked by the caller), so NoPadding cannot fail.
    let _ = match enc {
        CbcKey::A128(k) => cbc::Encryptor::<aes::Aes128>::inner_iv_init((**k).clone(), iv.into())
            .encrypt_padded_mut::<NoPadding>(data, len)
            .map(|_| ()),
        CbcKey::A256(k) => cbc::Encryptor::<aes::Aes256>::inner_iv_init((**k).clone(), iv.into())
            .encrypt_padded_mut::<NoPadding>(data, len)
            .map(|_| ()),
    };
}

fn cbc_decrypt(enc: &CbcKey, iv: &[u8; 16], data: &mut [u8]) {
    let _ = match enc {
        CbcKey::A128(k) => cbc::Decryptor::<aes::Aes128>::inner_iv_init((**k).clone(), iv.into())
            .decrypt_padded_mut::<NoPadding>(data)
            .map(|_| ()),
        CbcKey::A256(k) => cbc::Decryptor::<aes::Aes256>::inner_iv_init((**k).clone(), iv.into())
            .decrypt_padded_mut::<NoPadding>(data)
            .map(|_| ()),
    };
}

/// HMAC-SHA-256-128 (RFC 4868 §2.3): the first 128 bits of HMAC-SHA-256, the ICV of the
/// AES-CBC transforms here.
pub fn hmac_sha256_128(key: &[u8], data: &[u8]) -> [u8; ICV_LEN] {
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data);
    let mut out = [0u8; ICV_LEN];
    out.copy_from_slice(&tag.as_ref()[..ICV_LEN]);
    out
}
