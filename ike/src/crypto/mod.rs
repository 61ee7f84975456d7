//! Crypto suites for IKE and ESP: PRFs and `prf+` (RFC 7296 §2.13), the IKE SA key
//! schedule (§2.14), CHILD_SA KEYMAT (§2.17), key exchange ([`dh`]) and SK payload
//! protection ([`cipher`]). Keys live in [`Secret`], which zeroizes on drop and never
//! prints its bytes.

pub mod cipher;
pub mod dh;

pub use cipher::{Encr, Integ, SkCipher};
pub use dh::KeyExchange;

use crate::error::{Error, Result};
use ring::hmac;
use zeroize::Zeroize;

/// Key material: zeroized on drop, redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(Vec<u8>);

impl Secret {
    pub fn new(v: Vec<u8>) -> Secret {
        Secret(v)
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl core::fmt::Debug for Secret {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "Secret([redacted; {}])", self.0.len())
    }
}

/// Randomness is passed in, so exchanges replay deterministically in tests.
pub trait Rng {
    fn fill(&mut self, buf: &mut [u8]);
}

/// The operating system's CSPRNG (through ring).
#[derive(Debug)]
pub struct SystemRng(ring::rand::SystemRandom);

impl Default for SystemRng {
    fn default() -> Self {
        SystemRng(ring::rand::SystemRandom::new())
    }
}

impl Rng for SystemRng {
    fn fill(&mut self, buf: &mut [u8]) {
        use ring::rand::SecureRandom;
        // SystemRandom fails only when the OS has no entropy source at all.
        if self.0.fill(buf).is_err() {
            buf.iter_mut().for_each(|b| *b = 0);
        }
    }
}

/// A deterministic generator for tests and simulations (SHA-256 in counter mode).
#[derive(Debug, Clone)]
pub struct SeededRng {
    seed: u64,
    counter: u64,
}

impl SeededRng {
    pub fn new(seed: u64) -> SeededRng {
        SeededRng { seed, counter: 0 }
    }
}

impl Rng for SeededRng {
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(32) {
            self.counter += 1;
            let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
            ctx.update(&self.seed.to_be_bytes());
            ctx.update(&self.counter.to_be_bytes());
            let d = ctx.finish();
            chunk.copy_from_slice(&d.as_ref()[..chunk.len()]);
        }
    }
}

/// Pseudo-random functions (transform type 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prf {
    /// PRF_HMAC_SHA1 (2): kept only for the NIST vectors, never proposed.
    HmacSha1,
    HmacSha256,
    HmacSha384,
    HmacSha512,
}

impl Prf {
    pub const SHA1_ID: u16 = 2;
    pub fn from_id(id: u16) -> Option<Prf> {
        Some(match id {
            5 => Prf::HmacSha256,
            6 => Prf::HmacSha384,
            7 => Prf::HmacSha512,
            _ => return None,
        })
    }
    pub fn id(self) -> u16 {
        match self {
            Prf::HmacSha1 => 2,
            Prf::HmacSha256 => 5,
            Prf::HmacSha384 => 6,
            Prf::HmacSha512 => 7,
        }
    }
    fn alg(self) -> hmac::Algorithm {
        match self {
            Prf::HmacSha1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
            Prf::HmacSha256 => hmac::HMAC_SHA256,
            Prf::HmacSha384 => hmac::HMAC_SHA384,
            Prf::HmacSha512 => hmac::HMAC_SHA512,
        }
    }
    /// Output length, also the preferred key length of SK_d, SK_pi, SK_pr (§2.14).
    pub fn output_len(self) -> usize {
        self.alg().digest_algorithm().output_len()
    }
    /// prf(key, data...) over the concatenation of `data`.
    pub fn prf(self, key: &[u8], data: &[&[u8]]) -> Secret {
        let k = hmac::Key::new(self.alg(), key);
        let mut ctx = hmac::Context::with_key(&k);
        data.iter().for_each(|d| ctx.update(d));
        Secret(ctx.sign().as_ref().to_vec())
    }
    /// prf+ (RFC 7296 §2.13): T1 | T2 | ... with Tn = prf(K, Tn-1 | S | n), n ≤ 255.
    pub fn prf_plus(self, key: &[u8], seed: &[&[u8]], len: usize) -> Result<Secret> {
        if len > 255 * self.output_len() {
            return Err(Error::Crypto("prf+ output longer than 255 blocks"));
        }
        let k = hmac::Key::new(self.alg(), key);
        let mut out = Vec::with_capacity(len + self.output_len());
        let mut t: Vec<u8> = Vec::new();
        let mut n = 1u8;
        while out.len() < len {
            let mut ctx = hmac::Context::with_key(&k);
            ctx.update(&t);
            seed.iter().for_each(|s| ctx.update(s));
            ctx.update(&[n]);
            t.zeroize();
            t = ctx.sign().as_ref().to_vec();
            out.extend_from_slice(&t);
            n = n.wrapping_add(1);
        }
        t.zeroize();
        out.truncate(len);
        Ok(Secret(out))
    }
}

/// SKEYSEED = prf(Ni | Nr, g^ir) (RFC 7296 §2.14).
pub fn skeyseed(prf: Prf, ni: &[u8], nr: &[u8], g_ir: &[u8]) -> Secret {
    let mut key = Vec::with_capacity(ni.len() + nr.len());
    key.extend_from_slice(ni);
    key.extend_from_slice(nr);
    let s = prf.prf(&key, &[g_ir]);
    key.zeroize();
    s
}

/// The seven IKE SA keys (RFC 7296 §2.14).
#[derive(Debug, Clone)]
pub struct IkeKeys {
    pub sk_d: Secret,
    pub sk_ai: Secret,
    pub sk_ar: Secret,
    pub sk_ei: Secret,
    pub sk_er: Secret,
    pub sk_pi: Secret,
    pub sk_pr: Secret,
}

impl IkeKeys {
    /// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr).
    pub fn derive(
        prf: Prf,
        skeyseed: &Secret,
        (ni, nr): (&[u8], &[u8]),
        (spi_i, spi_r): (u64, u64),
        (integ_len, encr_len): (usize, usize),
    ) -> Result<IkeKeys> {
        let p = prf.output_len();
        let total = 3 * p + 2 * integ_len + 2 * encr_len;
        let km = prf.prf_plus(
            skeyseed.expose(),
            &[ni, nr, &spi_i.to_be_bytes(), &spi_r.to_be_bytes()],
            total,
        )?;
        let mut at = 0;
        let mut take = |n: usize| {
            let s = Secret(km.expose()[at..at + n].to_vec());
            at += n;
            s
        };
        Ok(IkeKeys {
            sk_d: take(p),
            sk_ai: take(integ_len),
            sk_ar: take(integ_len),
            sk_ei: take(encr_len),
            sk_er: take(encr_len),
            sk_pi: take(p),
            sk_pr: take(p),
        })
    }
}

/// KEYMAT = prf+(SK_d, [g^ir (new) |] Ni | Nr) (RFC 7296 §2.17).
pub fn child_keymat(
    prf: Prf,
    sk_d: &Secret,
    g_ir_new: Option<&[u8]>,
    ni: &[u8],
    nr: &[u8],
    len: usize,
) -> Result<Secret> {
    match g_ir_new {
        Some(g) => prf.prf_plus(sk_d.expose(), &[g, ni, nr], len),
        None => prf.prf_plus(sk_d.expose(), &[ni, nr], len),
    }
}

/// SKEYSEED for an IKE SA rekey: prf(SK_d (old), g^ir (new) | Ni | Nr) (RFC 7296 §2.18).
pub fn rekey_skeyseed(
    prf: Prf,
    sk_d_old: &Secret,
    g_ir_new: &[u8],
    ni: &[u8],
    nr: &[u8],
) -> Secret {
    prf.prf(sk_d_old.expose(), &[g_ir_new, ni, nr])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_debug_redacts() {
        let s = Secret::new(vec![0x41; 4]);
        assert_eq!(format!("{s:?}"), "Secret([redacted; 4])");
    }

    #[test]
    fn prf_plus_first_block_is_prf_of_seed_and_1() {
        let a = Prf::HmacSha256.prf_plus(b"key", &[b"seed"], 40).unwrap();
        let t1 = Prf::HmacSha256.prf(b"key", &[b"seed", &[1]]);
        let t2 = Prf::HmacSha256.prf(b"key", &[t1.expose(), b"seed", &[2]]);
        assert_eq!(&a.expose()[..32], t1.expose());
        assert_eq!(&a.expose()[32..], &t2.expose()[..8]);
        assert!(Prf::HmacSha256.prf_plus(b"k", &[], 255 * 32 + 1).is_err());
    }

    #[test]
    fn seeded_rng_is_deterministic() {
        let (mut a, mut b) = (SeededRng::new(7), SeededRng::new(7));
        let (mut x, mut y) = ([0u8; 40], [0u8; 40]);
        a.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(x, y);
        assert_ne!(x[..8], x[32..40]);
    }
}
