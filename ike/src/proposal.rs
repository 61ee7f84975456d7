//! Proposals in strongSwan's syntax (`aes256gcm16-prfsha384-ecp384`, `aes128-sha256-modp3072`,
//! `chacha20poly1305-prfsha256-x25519`; ESP `aes128gcm16`, `aes256-sha256`) and proposal
//! selection (RFC 7296 §2.7, §3.3.6).

use crate::crypto::{Encr, Integ, Prf};
use crate::error::{Error, Result};
use crate::wire::sa::{ProposalRepr, TransformRepr};
use crate::wire::ProtocolId;

const ENCR: u8 = 1;
const PRF: u8 = 2;
const INTEG: u8 = 3;
const KE: u8 = 4;
const ESN: u8 = 5;

/// A proposal: for each transform type, the acceptable algorithms in preference order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    pub protocol: ProtocolId,
    pub encr: Vec<Encr>,
    pub integ: Vec<Integ>,
    pub prf: Vec<Prf>,
    pub groups: Vec<u16>,
    pub esn: Vec<bool>,
}

/// The one algorithm per transform type that a negotiation chose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chosen {
    pub encr: Encr,
    pub integ: Integ,
    pub prf: Option<Prf>,
    pub group: Option<u16>,
    pub esn: bool,
}

fn hash_token(t: &str) -> Option<(Integ, Prf)> {
    Some(match t {
        "sha256" | "sha2_256" => (Integ::HmacSha256_128, Prf::HmacSha256),
        "sha384" | "sha2_384" => (Integ::HmacSha384_192, Prf::HmacSha384),
        "sha512" | "sha2_512" => (Integ::HmacSha512_256, Prf::HmacSha512),
        _ => return None,
    })
}

impl Proposal {
    /// Parses one strongSwan proposal string for `protocol` (IKE or ESP).
    pub fn parse(s: &str, protocol: ProtocolId) -> Result<Proposal> {
        let bad = |why| Error::Proposal(s.to_string(), why);
        let mut p = Proposal {
            protocol,
            encr: vec![],
            integ: vec![],
            prf: vec![],
            groups: vec![],
            esn: vec![],
        };
        for t in s.split('-') {
            match t {
                "aes128gcm16" | "aes128gcm128" | "aes128gcm" => p.encr.push(Encr::AesGcm16(128)),
                "aes256gcm16" | "aes256gcm128" | "aes256gcm" => p.encr.push(Encr::AesGcm16(256)),
                "chacha20poly1305" => p.encr.push(Encr::ChaCha20Poly1305),
                "aes128" | "aes" => p.encr.push(Encr::AesCbc(128)),
                "aes256" => p.encr.push(Encr::AesCbc(256)),
                "prfsha256" => p.prf.push(Prf::HmacSha256),
                "prfsha384" => p.prf.push(Prf::HmacSha384),
                "prfsha512" => p.prf.push(Prf::HmacSha512),
                "modp2048" => p.groups.push(14),
                "modp3072" => p.groups.push(15),
                "ecp256" => p.groups.push(19),
                "ecp384" => p.groups.push(20),
                "x25519" | "curve25519" => p.groups.push(31),
                "esn" => p.esn.push(true),
                "noesn" => p.esn.push(false),
                _ => match hash_token(t) {
                    Some((i, f)) => {
                        p.integ.push(i);
                        // strongSwan: a bare hash in an IKE proposal also names the PRF.
                        if protocol == ProtocolId::IKE {
                            p.prf.push(f);
                        }
                    }
                    None => return Err(bad("unknown algorithm")),
                },
            }
        }
        if p.encr.is_empty() {
            return Err(bad("no encryption algorithm"));
        }
        let aead = p.encr.iter().all(|e| e.is_aead());
        let mixed = p.encr.iter().any(|e| e.is_aead()) && !aead;
        if mixed {
            return Err(bad("AEAD and non-AEAD ciphers in one proposal"));
        }
        if aead {
            p.integ.clear();
        } else if p.integ.is_empty() {
            return Err(bad("no integrity algorithm"));
        }
        if protocol == ProtocolId::IKE {
            if p.prf.is_empty() {
                return Err(bad("no PRF"));
            }
            if p.groups.is_empty() {
                return Err(bad("no key exchange group"));
            }
        } else if p.esn.is_empty() {
            p.esn.push(false);
        }
        p.prf.dedup();
        Ok(p)
    }

    /// The SA payload form, with `num` and `spi`; `with_groups` false drops KE transforms
    /// (the SA of IKE_AUTH carries none, RFC 7296 §1.2).
    pub fn to_repr(&self, num: u8, spi: Vec<u8>, with_groups: bool) -> ProposalRepr {
        let mut t = Vec::new();
        for e in &self.encr {
            t.push(match e.key_bits() {
                Some(k) => TransformRepr::with_key_len(ENCR, e.id(), k),
                None => TransformRepr::new(ENCR, e.id()),
            });
        }
        t.extend(self.prf.iter().map(|p| TransformRepr::new(PRF, p.id())));
        t.extend(self.integ.iter().map(|i| TransformRepr::new(INTEG, i.id())));
        if with_groups {
            t.extend(self.groups.iter().map(|g| TransformRepr::new(KE, *g)));
        }
        if self.protocol != ProtocolId::IKE {
            t.extend(self.esn.iter().map(|e| TransformRepr::new(ESN, *e as u16)));
        }
        ProposalRepr {
            num,
            protocol: self.protocol,
            spi,
            transforms: t,
        }
    }

    /// Picks, for each transform type, the first of `offer`'s algorithms that we accept.
    fn pick(&self, offer: &ProposalRepr, need_groups: bool) -> Option<Chosen> {
        let of = |ty: u8| offer.transforms.iter().filter(move |t| t.ty == ty);
        let encr = of(ENCR)
            .find_map(|t| Encr::from_id(t.id, t.key_len()).filter(|e| self.encr.contains(e)))?;
        let integ = if encr.is_aead() {
            // RFC 5282 §8: an AEAD proposal has no integrity transform, or only NONE.
            if of(INTEG).any(|t| t.id != 0) {
                return None;
            }
            Integ::None
        } else {
            of(INTEG).find_map(|t| {
                Integ::from_id(t.id).filter(|i| self.integ.contains(i) && *i != Integ::None)
            })?
        };
        let prf = if self.protocol == ProtocolId::IKE {
            Some(of(PRF).find_map(|t| Prf::from_id(t.id).filter(|p| self.prf.contains(p)))?)
        } else {
            None
        };
        // RFC 7296 §3.3.3: KE transforms without NONE (0) make the group mandatory.
        let offered: Vec<u16> = of(KE).map(|t| t.id).collect();
        let group = if need_groups || (!offered.is_empty() && !offered.contains(&0)) {
            Some(offered.iter().copied().find(|g| self.groups.contains(g))?)
        } else {
            offered
                .iter()
                .copied()
                .find(|g| *g != 0 && self.groups.contains(g))
        };
        let esn = if self.protocol == ProtocolId::IKE {
            false
        } else {
            of(ESN).map(|t| t.id == 1).find(|e| self.esn.contains(e))?
        };
        Some(Chosen {
            encr,
            integ,
            prf,
            group,
            esn,
        })
    }
}

impl Chosen {
    /// The single-transform-per-type proposal a responder sends back (RFC 7296 §3.3.6).
    pub fn to_repr(&self, num: u8, protocol: ProtocolId, spi: Vec<u8>) -> ProposalRepr {
        let mut t = vec![match self.encr.key_bits() {
            Some(k) => TransformRepr::with_key_len(ENCR, self.encr.id(), k),
            None => TransformRepr::new(ENCR, self.encr.id()),
        }];
        if let Some(p) = self.prf {
            t.push(TransformRepr::new(PRF, p.id()));
        }
        if self.integ != Integ::None {
            t.push(TransformRepr::new(INTEG, self.integ.id()));
        }
        if let Some(g) = self.group {
            t.push(TransformRepr::new(KE, g));
        }
        if protocol != ProtocolId::IKE {
            t.push(TransformRepr::new(ESN, self.esn as u16));
        }
        ProposalRepr {
            num,
            protocol,
            spi,
            transforms: t,
        }
    }

    /// strongSwan-style name, e.g. `aes256gcm16-prfsha384-ecp384` or `aes128-sha256-modp3072`.
    pub fn name(&self) -> String {
        let mut parts = vec![match self.encr {
            Encr::AesGcm16(k) => format!("aes{k}gcm16"),
            Encr::ChaCha20Poly1305 => "chacha20poly1305".into(),
            Encr::AesCbc(k) => format!("aes{k}"),
        }];
        let h = |i: Integ| match i {
            Integ::HmacSha256_128 => "sha256",
            Integ::HmacSha384_192 => "sha384",
            Integ::HmacSha512_256 => "sha512",
            Integ::None => "",
        };
        if self.integ != Integ::None {
            parts.push(h(self.integ).into());
        }
        let same_hash = matches!(
            (self.integ, self.prf),
            (Integ::HmacSha256_128, Some(Prf::HmacSha256))
                | (Integ::HmacSha384_192, Some(Prf::HmacSha384))
                | (Integ::HmacSha512_256, Some(Prf::HmacSha512))
        );
        if let Some(p) = self.prf.filter(|_| !same_hash) {
            parts.push(match p {
                Prf::HmacSha1 => "prfsha1".into(),
                Prf::HmacSha256 => "prfsha256".into(),
                Prf::HmacSha384 => "prfsha384".into(),
                Prf::HmacSha512 => "prfsha512".into(),
            });
        }
        if let Some(g) = self.group {
            parts.push(match g {
                14 => "modp2048".into(),
                15 => "modp3072".into(),
                19 => "ecp256".into(),
                20 => "ecp384".into(),
                31 => "x25519".into(),
                g => format!("ke{g}"),
            });
        }
        if self.esn {
            parts.push("esn".into());
        }
        parts.join("-")
    }
}

/// Responder side: the first offered proposal (in the initiator's order) that one of ours
/// accepts. Returns the offered proposal's number and SPI with the choice.
pub fn select(
    ours: &[Proposal],
    offers: &[ProposalRepr],
    need_groups: bool,
) -> Option<(u8, Vec<u8>, Chosen)> {
    offers.iter().find_map(|o| {
        ours.iter()
            .filter(|p| p.protocol == o.protocol)
            .find_map(|p| p.pick(o, need_groups))
            .map(|c| (o.num, o.spi.clone(), c))
    })
}

/// Initiator side: checks that the responder's single proposal is one we offered.
pub fn accept_reply(
    ours: &[Proposal],
    reply: &[ProposalRepr],
    need_groups: bool,
) -> Result<(Vec<u8>, Chosen)> {
    let [r] = reply else {
        return Err(Error::PeerMisbehaved(
            "reply SA must hold exactly one proposal",
        ));
    };
    let per_type = |ty: u8| r.transforms.iter().filter(|t| t.ty == ty).count();
    if (1..=5).any(|ty| per_type(ty) > 1) {
        return Err(Error::PeerMisbehaved(
            "reply proposal has two transforms of one type",
        ));
    }
    select(ours, reply, need_groups)
        .map(|(_, spi, c)| (spi, c))
        .ok_or(Error::PeerMisbehaved("reply proposal was not offered"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_issue_proposals() {
        let p = Proposal::parse("aes256gcm16-prfsha384-ecp384", ProtocolId::IKE).unwrap();
        assert_eq!(
            (p.encr[0], p.prf[0], p.groups[0]),
            (Encr::AesGcm16(256), Prf::HmacSha384, 20)
        );
        assert!(p.integ.is_empty());
        let p = Proposal::parse("aes128-sha256-modp3072", ProtocolId::IKE).unwrap();
        assert_eq!(
            (p.integ[0], p.prf[0], p.groups[0]),
            (Integ::HmacSha256_128, Prf::HmacSha256, 15)
        );
        let p = Proposal::parse("aes256-sha256", ProtocolId::ESP).unwrap();
        assert!(p.prf.is_empty() && p.esn == vec![false]);
        assert!(Proposal::parse("aes128-md5-modp1024", ProtocolId::IKE).is_err());
        assert!(Proposal::parse("aes128gcm16-x25519", ProtocolId::IKE).is_err());
    }

    #[test]
    fn select_and_accept() {
        let ours =
            vec![Proposal::parse("chacha20poly1305-prfsha256-x25519", ProtocolId::IKE).unwrap()];
        let theirs = vec![
            Proposal::parse("aes256gcm16-prfsha384-ecp384", ProtocolId::IKE)
                .unwrap()
                .to_repr(1, vec![], true),
            Proposal::parse(
                "chacha20poly1305-aes128gcm16-prfsha256-ecp256-x25519",
                ProtocolId::IKE,
            )
            .unwrap()
            .to_repr(2, vec![], true),
        ];
        let (num, _, c) = select(&ours, &theirs, true).unwrap();
        assert_eq!(num, 2);
        assert_eq!(c.name(), "chacha20poly1305-prfsha256-x25519");
        let reply = c.to_repr(2, ProtocolId::IKE, vec![]);
        assert_eq!(
            accept_reply(&ours, std::slice::from_ref(&reply), true)
                .unwrap()
                .1,
            c
        );
        assert!(accept_reply(&ours, &[reply.clone(), reply], true).is_err());
        assert_eq!(select(&ours, &theirs[..1], true), None);
    }

    #[test]
    fn esp_cbc_round_trip_name() {
        let ours = vec![Proposal::parse("aes256-sha256", ProtocolId::ESP).unwrap()];
        let offer = ours[0].to_repr(1, vec![1, 2, 3, 4], false);
        let (_, spi, c) = select(&ours, &[offer], false).unwrap();
        assert_eq!(spi, vec![1, 2, 3, 4]);
        assert_eq!(c.name(), "aes256-sha256");
    }
}
