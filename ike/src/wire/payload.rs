//! The generic payload header and chain (RFC 7296 §3.2) and the bodies of the payloads
//! without substructure: KE §3.4, ID §3.5, CERT §3.6, CERTREQ §3.7, AUTH §3.8, Nonce §3.9,
//! Notify §3.10, Delete §3.11, Vendor ID §3.12, and the SK envelope §3.14.

use super::sa::{emit_sa, parse_sa, ProposalRepr};
use super::ts::{emit_ts, parse_ts, CpRepr, TrafficSelector};
use super::{NotifyType, PayloadType, ProtocolId, Reader};
use crate::error::{Error, Result};

/// The critical bit in the generic payload header.
pub const CRITICAL: u8 = 0x80;

/// Key Exchange payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeRepr {
    pub group: u16,
    pub data: Vec<u8>,
}

/// ID types (RFC 7296 §3.5).
pub const ID_IPV4_ADDR: u8 = 1;
pub const ID_FQDN: u8 = 2;
pub const ID_RFC822_ADDR: u8 = 3;
pub const ID_IPV6_ADDR: u8 = 5;
pub const ID_DER_ASN1_DN: u8 = 9;
pub const ID_KEY_ID: u8 = 11;

/// Identification payload body (IDi or IDr).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdRepr {
    pub id_type: u8,
    pub data: Vec<u8>,
}

impl IdRepr {
    /// The octets the AUTH computation signs: type, three reserved octets, data (§2.15).
    pub fn body(&self) -> Vec<u8> {
        let mut v = vec![self.id_type, 0, 0, 0];
        v.extend_from_slice(&self.data);
        v
    }
    /// strongSwan-like reading of an identity string: an address, `@fqdn`, `user@host`, a
    /// DN with `=`, or else an FQDN.
    pub fn from_text(s: &str) -> IdRepr {
        if let Ok(a) = s.parse::<std::net::IpAddr>() {
            return match a {
                std::net::IpAddr::V4(a) => IdRepr {
                    id_type: ID_IPV4_ADDR,
                    data: a.octets().to_vec(),
                },
                std::net::IpAddr::V6(a) => IdRepr {
                    id_type: ID_IPV6_ADDR,
                    data: a.octets().to_vec(),
                },
            };
        }
        if let Some(f) = s.strip_prefix('@') {
            return IdRepr {
                id_type: ID_FQDN,
                data: f.as_bytes().to_vec(),
            };
        }
        if s.contains('@') {
            return IdRepr {
                id_type: ID_RFC822_ADDR,
                data: s.as_bytes().to_vec(),
            };
        }
        IdRepr {
            id_type: ID_FQDN,
            data: s.as_bytes().to_vec(),
        }
    }
}

/// CERT or CERTREQ body: encoding and data (for CERTREQ, SHA-1 hashes of CA keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRepr {
    /// 4 = X.509 Certificate - Signature.
    pub encoding: u8,
    pub data: Vec<u8>,
}

/// AUTH methods (RFC 7296 §3.8, RFC 7427).
pub const AUTH_RSA_SIG: u8 = 1;
pub const AUTH_PSK: u8 = 2;
pub const AUTH_ECDSA_256: u8 = 9;
pub const AUTH_ECDSA_384: u8 = 10;
pub const AUTH_DIGITAL_SIGNATURE: u8 = 14;

/// Authentication payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRepr {
    pub method: u8,
    pub data: Vec<u8>,
}

/// Notify payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRepr {
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub ty: NotifyType,
    pub data: Vec<u8>,
}

impl NotifyRepr {
    /// A notify about the IKE SA itself (protocol 0, no SPI).
    pub fn new(ty: NotifyType, data: Vec<u8>) -> NotifyRepr {
        NotifyRepr {
            protocol: ProtocolId(0),
            spi: Vec::new(),
            ty,
            data,
        }
    }
}

/// Delete payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteRepr {
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

/// One parsed payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Sa(Vec<ProposalRepr>),
    Ke(KeRepr),
    IdI(IdRepr),
    IdR(IdRepr),
    Cert(CertRepr),
    CertReq(CertRepr),
    Auth(AuthRepr),
    Nonce(Vec<u8>),
    Notify(NotifyRepr),
    Delete(DeleteRepr),
    Vendor(Vec<u8>),
    TsI(Vec<TrafficSelector>),
    TsR(Vec<TrafficSelector>),
    Cp(CpRepr),
    /// The Encrypted and Authenticated payload, still sealed: `inner_first` is the type of
    /// the first payload inside; `body` is IV, ciphertext and ICV.
    Sk {
        inner_first: PayloadType,
        body: Vec<u8>,
    },
    /// A payload we do not know whose critical bit is clear: skipped (RFC 7296 §2.5).
    Unknown {
        ty: PayloadType,
        body: Vec<u8>,
    },
}

impl Payload {
    /// The payload type that announces this payload.
    pub fn ty(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::Vendor(_) => PayloadType::VENDOR,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Sk { .. } => PayloadType::SK,
            Payload::Unknown { ty, .. } => *ty,
        }
    }

    fn parse(ty: PayloadType, critical: bool, body: &[u8], base: usize) -> Result<Payload> {
        let mut r = Reader::new(body, base);
        Ok(match ty {
            PayloadType::SA => Payload::Sa(parse_sa(body, base)?),
            PayloadType::KE => {
                let group = r.u16("KE group")?;
                r.bytes(2, "KE reserved")?;
                Payload::Ke(KeRepr {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::IDI | PayloadType::IDR => {
                let id_type = r.u8("ID type")?;
                r.bytes(3, "ID reserved")?;
                let id = IdRepr {
                    id_type,
                    data: r.rest().to_vec(),
                };
                if ty == PayloadType::IDI {
                    Payload::IdI(id)
                } else {
                    Payload::IdR(id)
                }
            }
            PayloadType::CERT | PayloadType::CERTREQ => {
                let c = CertRepr {
                    encoding: r.u8("cert encoding")?,
                    data: r.rest().to_vec(),
                };
                if ty == PayloadType::CERT {
                    Payload::Cert(c)
                } else {
                    Payload::CertReq(c)
                }
            }
            PayloadType::AUTH => {
                let method = r.u8("auth method")?;
                r.bytes(3, "AUTH reserved")?;
                Payload::Auth(AuthRepr {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::NONCE => {
                // RFC 7296 §3.9: between 16 and 256 octets.
                if !(16..=256).contains(&body.len()) {
                    return Err(Error::BadLength {
                        field: "nonce",
                        offset: base,
                        len: body.len(),
                    });
                }
                Payload::Nonce(body.to_vec())
            }
            PayloadType::NOTIFY => {
                let protocol = ProtocolId(r.u8("notify protocol ID")?);
                let spi_size = r.u8("notify SPI size")? as usize;
                let nty = NotifyType(r.u16("notify type")?);
                let spi = r.bytes(spi_size, "notify SPI")?.to_vec();
                Payload::Notify(NotifyRepr {
                    protocol,
                    spi,
                    ty: nty,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::DELETE => {
                let protocol = ProtocolId(r.u8("delete protocol ID")?);
                let spi_size = r.u8("delete SPI size")?;
                let n = r.u16("number of SPIs")?;
                let mut spis = Vec::new();
                for _ in 0..n {
                    spis.push(r.bytes(spi_size as usize, "delete SPI")?.to_vec());
                }
                Payload::Delete(DeleteRepr {
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VENDOR => Payload::Vendor(body.to_vec()),
            PayloadType::TSI => Payload::TsI(parse_ts(body, base)?),
            PayloadType::TSR => Payload::TsR(parse_ts(body, base)?),
            PayloadType::CP => Payload::Cp(CpRepr::parse(body, base)?),
            // RFC 7296 §2.5: an unknown payload with the critical bit set fails the message.
            _ if critical => {
                return Err(Error::UnsupportedCritical {
                    payload: ty.0,
                    offset: base - 4,
                })
            }
            _ => Payload::Unknown {
                ty,
                body: body.to_vec(),
            },
        })
    }

    fn emit_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(p) => emit_sa(p, out),
            Payload::Ke(k) => {
                out.extend_from_slice(&k.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&k.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body()),
            Payload::Cert(c) | Payload::CertReq(c) => {
                out.push(c.encoding);
                out.extend_from_slice(&c.data);
            }
            Payload::Auth(a) => {
                out.extend_from_slice(&[a.method, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Payload::Nonce(n) | Payload::Vendor(n) => out.extend_from_slice(n),
            Payload::Notify(n) => {
                out.extend_from_slice(&[n.protocol.0, n.spi.len() as u8]);
                out.extend_from_slice(&n.ty.0.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                out.extend_from_slice(&[d.protocol.0, d.spi_size]);
                out.extend_from_slice(&(d.spis.len() as u16).to_be_bytes());
                d.spis.iter().for_each(|s| out.extend_from_slice(s));
            }
            Payload::TsI(t) | Payload::TsR(t) => emit_ts(t, out),
            Payload::Cp(c) => c.emit(out),
            Payload::Sk { body, .. } | Payload::Unknown { body, .. } => out.extend_from_slice(body),
        }
    }
}

/// Parses a payload chain that starts with type `first` at absolute offset `base`.
/// An SK payload ends the chain (RFC 7296 §3.14: it must be the last payload).
pub fn parse_chain(first: PayloadType, buf: &[u8], base: usize) -> Result<Vec<Payload>> {
    let mut r = Reader::new(buf, base);
    let mut next = first;
    let mut out = Vec::new();
    while next != PayloadType::NONE {
        let at = r.offset();
        let np = PayloadType(r.u8("next payload")?);
        let critical = r.u8("critical flag")? & CRITICAL != 0;
        let len = r.u16("payload length")? as usize;
        if len < 4 || len - 4 > r.remaining() {
            return Err(Error::BadLength {
                field: "payload length",
                offset: at + 2,
                len,
            });
        }
        let body = r.bytes(len - 4, "payload body")?;
        if next == PayloadType::SK {
            if !r.is_empty() {
                return Err(Error::BadLength {
                    field: "data after SK payload",
                    offset: r.offset(),
                    len: r.remaining(),
                });
            }
            out.push(Payload::Sk {
                inner_first: np,
                body: body.to_vec(),
            });
            return Ok(out);
        }
        out.push(Payload::parse(next, critical, body, at + 4)?);
        next = np;
    }
    if !r.is_empty() {
        return Err(Error::BadLength {
            field: "data after last payload",
            offset: r.offset(),
            len: r.remaining(),
        });
    }
    Ok(out)
}

/// Appends a payload chain; returns the type of the first payload (`NONE` if empty).
/// An SK payload must come last; its next-payload field names its first inner payload.
pub fn emit_chain(payloads: &[Payload], out: &mut Vec<u8>) -> PayloadType {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p, payloads.get(i + 1)) {
            (Payload::Sk { inner_first, .. }, _) => *inner_first,
            (_, Some(n)) => n.ty(),
            (_, None) => PayloadType::NONE,
        };
        let start = out.len();
        out.extend_from_slice(&[next.0, 0, 0, 0]);
        p.emit_body(out);
        let len = (out.len() - start) as u16;
        out[start + 2..start + 4].copy_from_slice(&len.to_be_bytes());
    }
    payloads.first().map_or(PayloadType::NONE, Payload::ty)
}

/// Typed look-ups in a payload list: the first payload of each kind.
pub trait PayloadsExt {
    fn sa(&self) -> Option<&Vec<ProposalRepr>>;
    fn ke(&self) -> Option<&KeRepr>;
    fn nonce(&self) -> Option<&Vec<u8>>;
    fn idi(&self) -> Option<&IdRepr>;
    fn idr(&self) -> Option<&IdRepr>;
    fn auth(&self) -> Option<&AuthRepr>;
    fn tsi(&self) -> Option<&Vec<TrafficSelector>>;
    fn tsr(&self) -> Option<&Vec<TrafficSelector>>;
    /// The type of the first error notify (below 16384), if any.
    fn error_notify(&self) -> Option<u16>;
}

macro_rules! first_of {
    ($p:expr, $v:ident) => {
        $p.iter().find_map(|x| {
            if let Payload::$v(v) = x {
                Some(v)
            } else {
                None
            }
        })
    };
}

impl PayloadsExt for [Payload] {
    fn sa(&self) -> Option<&Vec<ProposalRepr>> {
        first_of!(self, Sa)
    }
    fn ke(&self) -> Option<&KeRepr> {
        first_of!(self, Ke)
    }
    fn nonce(&self) -> Option<&Vec<u8>> {
        first_of!(self, Nonce)
    }
    fn idi(&self) -> Option<&IdRepr> {
        first_of!(self, IdI)
    }
    fn idr(&self) -> Option<&IdRepr> {
        first_of!(self, IdR)
    }
    fn auth(&self) -> Option<&AuthRepr> {
        first_of!(self, Auth)
    }
    fn tsi(&self) -> Option<&Vec<TrafficSelector>> {
        first_of!(self, TsI)
    }
    fn tsr(&self) -> Option<&Vec<TrafficSelector>> {
        first_of!(self, TsR)
    }
    fn error_notify(&self) -> Option<u16> {
        self.iter().find_map(|x| match x {
            Payload::Notify(n) if n.ty.is_error() => Some(n.ty.0),
            _ => None,
        })
    }
}

/// The first notify of type `ty` in a payload list.
pub fn find_notify(payloads: &[Payload], ty: NotifyType) -> Option<&NotifyRepr> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.ty == ty => Some(n),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_then_notify_hand_built() {
        let mut b = vec![41, 0, 0, 20];
        b.extend_from_slice(&[0xaa; 16]);
        // Notify NAT_DETECTION_SOURCE_IP (16388 = 0x4004) with 4 octets of data.
        b.extend_from_slice(&[0, 0, 0, 12, 0, 0, 0x40, 0x04, 1, 2, 3, 4]);
        let p = parse_chain(PayloadType::NONCE, &b, 28).unwrap();
        assert_eq!(p[0], Payload::Nonce(vec![0xaa; 16]));
        assert_eq!(
            p[1],
            Payload::Notify(NotifyRepr::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                vec![1, 2, 3, 4]
            ))
        );
        let mut out = Vec::new();
        assert_eq!(emit_chain(&p, &mut out), PayloadType::NONCE);
        assert_eq!(out, b);
    }

    #[test]
    fn unknown_critical_payload_is_refused_and_noncritical_skipped() {
        let b = [99, 0x80, 0, 8, 1, 2, 3, 4];
        assert_eq!(
            parse_chain(PayloadType(99), &b, 28),
            Err(Error::UnsupportedCritical {
                payload: 99,
                offset: 28
            })
        );
        let b = [0, 0, 0, 8, 1, 2, 3, 4];
        assert_eq!(
            parse_chain(PayloadType(99), &b, 28).unwrap(),
            vec![Payload::Unknown {
                ty: PayloadType(99),
                body: vec![1, 2, 3, 4]
            }]
        );
    }

    #[test]
    fn short_nonce_and_bad_lengths() {
        let b = [0, 0, 0, 8, 1, 2, 3, 4];
        assert!(matches!(
            parse_chain(PayloadType::NONCE, &b, 0),
            Err(Error::BadLength { field: "nonce", .. })
        ));
        let b = [0, 0, 0, 9, 1, 2, 3, 4];
        assert!(matches!(
            parse_chain(PayloadType::NONCE, &b, 0),
            Err(Error::BadLength {
                field: "payload length",
                offset: 2,
                ..
            })
        ));
        let b = [0, 0, 0, 3];
        assert!(matches!(
            parse_chain(PayloadType::VENDOR, &b, 0),
            Err(Error::BadLength { .. })
        ));
    }

    #[test]
    fn every_payload_round_trips() {
        let ts = vec![TrafficSelector::prefix("10.0.0.0".parse().unwrap(), 8)];
        let all = vec![
            Payload::Ke(KeRepr {
                group: 31,
                data: vec![9; 32],
            }),
            Payload::IdI(IdRepr::from_text("mn@example.org")),
            Payload::IdR(IdRepr::from_text("192.0.2.1")),
            Payload::Cert(CertRepr {
                encoding: 4,
                data: vec![0x30, 0],
            }),
            Payload::CertReq(CertRepr {
                encoding: 4,
                data: vec![1; 20],
            }),
            Payload::Auth(AuthRepr {
                method: AUTH_PSK,
                data: vec![5; 32],
            }),
            Payload::Nonce(vec![1; 32]),
            Payload::Notify(NotifyRepr {
                protocol: ProtocolId::ESP,
                spi: vec![1, 2, 3, 4],
                ty: NotifyType::REKEY_SA,
                data: vec![],
            }),
            Payload::Delete(DeleteRepr {
                protocol: ProtocolId::ESP,
                spi_size: 4,
                spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
            }),
            Payload::Vendor(b"dsmip".to_vec()),
            Payload::TsI(ts.clone()),
            Payload::TsR(ts),
            Payload::Cp(CpRepr {
                cfg_type: 1,
                attributes: vec![],
            }),
            Payload::Sa(vec![]),
            Payload::Sk {
                inner_first: PayloadType::IDI,
                body: vec![0; 40],
            },
        ];
        // An empty SA is legal on the wire only as a chain element; skip it on re-parse.
        let mut out = Vec::new();
        let first = emit_chain(&all, &mut out);
        assert_eq!(first, PayloadType::KE);
        let sa_at = all
            .iter()
            .position(|p| matches!(p, Payload::Sa(_)))
            .unwrap();
        let mut expect = all.clone();
        expect.remove(sa_at);
        let mut out = Vec::new();
        emit_chain(&expect, &mut out);
        assert_eq!(parse_chain(PayloadType::KE, &out, 0).unwrap(), expect);
    }

    #[test]
    fn sk_must_be_last() {
        let b = [0, 0, 0, 4, 0, 0, 0, 4];
        assert!(matches!(
            parse_chain(PayloadType::SK, &b, 0),
            Err(Error::BadLength {
                field: "data after SK payload",
                ..
            })
        ));
    }
}
