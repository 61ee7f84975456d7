//! The Security Association payload: proposals, transforms and attributes (RFC 7296 §3.3).

use super::{ProtocolId, Reader};
use crate::error::{Error, Result};

/// Transform attribute (RFC 7296 §3.3.5). Only Key Length (14, TV form) is defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    KeyLength(u16),
    /// Any other attribute: type (without the AF bit), TV flag, value.
    Other {
        ty: u16,
        tv: bool,
        value: Vec<u8>,
    },
}

/// Attribute type Key Length.
pub const ATTR_KEY_LENGTH: u16 = 14;

/// One transform (RFC 7296 §3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformRepr {
    /// 1 ENCR, 2 PRF, 3 INTEG, 4 DH (key exchange), 5 ESN.
    pub ty: u8,
    pub id: u16,
    pub attributes: Vec<Attribute>,
}

impl TransformRepr {
    pub fn new(ty: u8, id: u16) -> Self {
        TransformRepr {
            ty,
            id,
            attributes: Vec::new(),
        }
    }
    pub fn with_key_len(ty: u8, id: u16, bits: u16) -> Self {
        TransformRepr {
            ty,
            id,
            attributes: vec![Attribute::KeyLength(bits)],
        }
    }
    /// The Key Length attribute, if present.
    pub fn key_len(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::KeyLength(k) => Some(*k),
            _ => None,
        })
    }
}

/// One proposal (RFC 7296 §3.3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProposalRepr {
    pub num: u8,
    pub protocol: ProtocolId,
    /// Empty in IKE_SA_INIT; 8 octets for an IKE rekey; 4 for ESP/AH.
    pub spi: Vec<u8>,
    pub transforms: Vec<TransformRepr>,
}

/// Parses the body of an SA payload (after the generic header) at absolute `base`.
pub fn parse_sa(body: &[u8], base: usize) -> Result<Vec<ProposalRepr>> {
    let mut r = Reader::new(body, base);
    let mut out = Vec::new();
    loop {
        let start = r.offset();
        let last = r.u8("proposal last substruc")?;
        r.u8("proposal reserved")?;
        let len = r.u16("proposal length")? as usize;
        if len < 8 || len - 4 > r.remaining() {
            return Err(Error::BadLength {
                field: "proposal length",
                offset: start + 2,
                len,
            });
        }
        let mut p = Reader::new(r.bytes(len - 4, "proposal")?, start + 4);
        let num = p.u8("proposal num")?;
        let protocol = ProtocolId(p.u8("protocol ID")?);
        let spi_size = p.u8("SPI size")? as usize;
        let n = p.u8("num transforms")?;
        let spi = p.bytes(spi_size, "proposal SPI")?.to_vec();
        let mut transforms = Vec::with_capacity(n as usize);
        for _ in 0..n {
            transforms.push(parse_transform(&mut p)?);
        }
        if !p.is_empty() {
            return Err(Error::BadLength {
                field: "proposal transforms",
                offset: start,
                len,
            });
        }
        out.push(ProposalRepr {
            num,
            protocol,
            spi,
            transforms,
        });
        match last {
            0 => break,
            2 => continue,
            v => {
                return Err(Error::BadValue {
                    field: "proposal last substruc",
                    offset: start,
                    value: v as u32,
                })
            }
        }
    }
    if !r.is_empty() {
        return Err(Error::BadLength {
            field: "SA payload",
            offset: r.offset(),
            len: r.remaining(),
        });
    }
    Ok(out)
}

fn parse_transform(p: &mut Reader<'_>) -> Result<TransformRepr> {
    let start = p.offset();
    let last = p.u8("transform last substruc")?;
    if last != 0 && last != 3 {
        return Err(Error::BadValue {
            field: "transform last substruc",
            offset: start,
            value: last as u32,
        });
    }
    p.u8("transform reserved")?;
    let len = p.u16("transform length")? as usize;
    if len < 8 || len - 4 > p.remaining() {
        return Err(Error::BadLength {
            field: "transform length",
            offset: start + 2,
            len,
        });
    }
    let mut t = Reader::new(p.bytes(len - 4, "transform")?, start + 4);
    let ty = t.u8("transform type")?;
    t.u8("transform reserved")?;
    let id = t.u16("transform ID")?;
    let mut attributes = Vec::new();
    while !t.is_empty() {
        let at = t.offset();
        let raw = t.u16("attribute type")?;
        let tv = raw & 0x8000 != 0;
        let aty = raw & 0x7fff;
        let value = if tv {
            t.bytes(2, "attribute value")?.to_vec()
        } else {
            let l = t.u16("attribute length")? as usize;
            t.bytes(l, "attribute value")?.to_vec()
        };
        attributes.push(match (aty, tv) {
            (ATTR_KEY_LENGTH, true) => {
                Attribute::KeyLength(u16::from_be_bytes([value[0], value[1]]))
            }
            (ATTR_KEY_LENGTH, false) => {
                return Err(Error::BadValue {
                    field: "key length attribute format",
                    offset: at,
                    value: 0,
                })
            }
            _ => Attribute::Other { ty: aty, tv, value },
        });
    }
    Ok(TransformRepr { ty, id, attributes })
}

/// Appends an SA payload body for `proposals`.
pub fn emit_sa(proposals: &[ProposalRepr], out: &mut Vec<u8>) {
    for (i, p) in proposals.iter().enumerate() {
        let start = out.len();
        out.extend_from_slice(&[if i + 1 == proposals.len() { 0 } else { 2 }, 0, 0, 0]);
        out.extend_from_slice(&[
            p.num,
            p.protocol.0,
            p.spi.len() as u8,
            p.transforms.len() as u8,
        ]);
        out.extend_from_slice(&p.spi);
        for (j, t) in p.transforms.iter().enumerate() {
            let ts = out.len();
            out.extend_from_slice(&[if j + 1 == p.transforms.len() { 0 } else { 3 }, 0, 0, 0]);
            out.extend_from_slice(&[t.ty, 0]);
            out.extend_from_slice(&t.id.to_be_bytes());
            for a in &t.attributes {
                match a {
                    Attribute::KeyLength(k) => {
                        out.extend_from_slice(&(0x8000 | ATTR_KEY_LENGTH).to_be_bytes());
                        out.extend_from_slice(&k.to_be_bytes());
                    }
                    Attribute::Other {
                        ty,
                        tv: true,
                        value,
                    } => {
                        out.extend_from_slice(&(0x8000 | ty).to_be_bytes());
                        out.extend_from_slice(value);
                    }
                    Attribute::Other {
                        ty,
                        tv: false,
                        value,
                    } => {
                        out.extend_from_slice(&ty.to_be_bytes());
                        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            }
            let tl = (out.len() - ts) as u16;
            out[ts + 2..ts + 4].copy_from_slice(&tl.to_be_bytes());
        }
        let pl = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&pl.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // One IKE proposal: ENCR AES-GCM-16 (20) with key length 256, PRF HMAC-SHA2-384 (6),
    // DH 20. Built by hand from the RFC 7296 §3.3 figures.
    const SA_BODY: [u8; 44] = [
        0, 0, 0, 36, 1, 1, 0, 3, // last, res, len 36, num 1, IKE, SPI size 0, 3 transforms
        3, 0, 0, 12, 1, 0, 0, 20, 0x80, 14, 1, 0, // ENCR 20, KeyLength 256
        3, 0, 0, 8, 2, 0, 0, 6, // PRF 6
        0, 0, 0, 8, 4, 0, 0, 20, // DH 20
        // trailing space for the length test below
        0, 0, 0, 0, 0, 0, 0, 0,
    ];

    #[test]
    fn parses_hand_built_proposal() {
        let p = parse_sa(&SA_BODY[..36], 4).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].protocol, ProtocolId::IKE);
        assert_eq!(p[0].transforms[0].key_len(), Some(256));
        assert_eq!(p[0].transforms[2], TransformRepr::new(4, 20));
    }

    #[test]
    fn length_mismatch_is_an_error() {
        let mut b = SA_BODY;
        assert!(matches!(
            parse_sa(&SA_BODY, 0),
            Err(Error::BadLength {
                field: "SA payload",
                ..
            })
        ));
        b[3] = 40;
        assert!(matches!(
            parse_sa(&b[..36], 0),
            Err(Error::BadLength {
                field: "proposal length",
                ..
            })
        ));
    }

    #[test]
    fn round_trip_two_proposals() {
        let props = vec![
            ProposalRepr {
                num: 1,
                protocol: ProtocolId::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![
                    TransformRepr::with_key_len(1, 20, 128),
                    TransformRepr::new(5, 0),
                ],
            },
            ProposalRepr {
                num: 2,
                protocol: ProtocolId::ESP,
                spi: vec![1, 2, 3, 4],
                transforms: vec![
                    TransformRepr::with_key_len(1, 12, 256),
                    TransformRepr::new(3, 12),
                    TransformRepr {
                        ty: 5,
                        id: 0,
                        attributes: vec![Attribute::Other {
                            ty: 99,
                            tv: false,
                            value: vec![7],
                        }],
                    },
                ],
            },
        ];
        let mut out = Vec::new();
        emit_sa(&props, &mut out);
        assert_eq!(parse_sa(&out, 0).unwrap(), props);
    }
}
