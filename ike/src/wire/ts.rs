//! Traffic Selector payloads (RFC 7296 §3.13) and the Configuration payload (§3.15).
//!
//! For the Mobility Header (protocol 135) the 16-bit "port" carries the MH type in its
//! most significant octet (RFC 4301 §4.4.1.1, RFC 4877 §7.2.1): [`TrafficSelector::mh`].

use super::Reader;
use crate::error::{Error, Result};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TS_IPV4_ADDR_RANGE.
pub const TS_IPV4: u8 = 7;
/// TS_IPV6_ADDR_RANGE.
pub const TS_IPV6: u8 = 8;
/// IP protocol number of the Mobility Header.
pub const IPPROTO_MH: u8 = 135;

/// One traffic selector: an address range, a protocol (0 = any) and a port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrafficSelector {
    pub protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    pub start_addr: IpAddr,
    pub end_addr: IpAddr,
}

impl TrafficSelector {
    /// All ports and protocols for one address prefix.
    pub fn prefix(addr: IpAddr, len: u8) -> TrafficSelector {
        let (start, end) = match addr {
            IpAddr::V4(a) => {
                let m = if len == 0 {
                    0
                } else {
                    u32::MAX << (32 - len.min(32))
                };
                let s = u32::from(a) & m;
                (
                    IpAddr::V4(Ipv4Addr::from(s)),
                    IpAddr::V4(Ipv4Addr::from(s | !m)),
                )
            }
            IpAddr::V6(a) => {
                let m = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len.min(128))
                };
                let s = u128::from(a) & m;
                (
                    IpAddr::V6(Ipv6Addr::from(s)),
                    IpAddr::V6(Ipv6Addr::from(s | !m)),
                )
            }
        };
        TrafficSelector {
            protocol: 0,
            start_port: 0,
            end_port: 0xffff,
            start_addr: start,
            end_addr: end,
        }
    }

    /// One host, Mobility Header, one MH type (RFC 4301 §4.4.1.1: the type in the high
    /// octet of the local "port"; the low octet spans 0..=255 as no code exists).
    pub fn mh(addr: IpAddr, mh_type: u8) -> TrafficSelector {
        let p = (mh_type as u16) << 8;
        TrafficSelector {
            protocol: IPPROTO_MH,
            start_port: p,
            end_port: p | 0xff,
            start_addr: addr,
            end_addr: addr,
        }
    }

    /// The MH type this selector is limited to, if it names exactly one.
    pub fn mh_type(&self) -> Option<u8> {
        (self.protocol == IPPROTO_MH && self.start_port >> 8 == self.end_port >> 8)
            .then_some((self.start_port >> 8) as u8)
    }

    /// Is `other` inside `self` (for narrowing, RFC 7296 §2.9)?
    pub fn contains(&self, other: &TrafficSelector) -> bool {
        (self.protocol == 0 || self.protocol == other.protocol)
            && self.start_port <= other.start_port
            && other.end_port <= self.end_port
            && addr_le(self.start_addr, other.start_addr)
            && addr_le(other.end_addr, self.end_addr)
    }

    /// The intersection of two selectors, if any.
    pub fn intersect(&self, other: &TrafficSelector) -> Option<TrafficSelector> {
        let protocol = match (self.protocol, other.protocol) {
            (0, p) | (p, 0) => p,
            (a, b) if a == b => a,
            _ => return None,
        };
        let start_port = self.start_port.max(other.start_port);
        let end_port = self.end_port.min(other.end_port);
        let start_addr = if addr_le(self.start_addr, other.start_addr) {
            other.start_addr
        } else {
            self.start_addr
        };
        let end_addr = if addr_le(self.end_addr, other.end_addr) {
            self.end_addr
        } else {
            other.end_addr
        };
        (start_port <= end_port
            && start_addr.is_ipv4() == end_addr.is_ipv4()
            && self.start_addr.is_ipv4() == other.start_addr.is_ipv4()
            && addr_le(start_addr, end_addr))
        .then_some(TrafficSelector {
            protocol,
            start_port,
            end_port,
            start_addr,
            end_addr,
        })
    }
}

fn addr_le(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a <= b,
        (IpAddr::V6(a), IpAddr::V6(b)) => a <= b,
        _ => false,
    }
}

/// Parses a TSi/TSr payload body.
pub fn parse_ts(body: &[u8], base: usize) -> Result<Vec<TrafficSelector>> {
    let mut r = Reader::new(body, base);
    let n = r.u8("number of TSs")?;
    r.bytes(3, "TS reserved")?;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let at = r.offset();
        let ty = r.u8("TS type")?;
        let protocol = r.u8("IP protocol ID")?;
        let len = r.u16("selector length")? as usize;
        let alen = match ty {
            TS_IPV4 => 4,
            TS_IPV6 => 16,
            v => {
                return Err(Error::BadValue {
                    field: "TS type",
                    offset: at,
                    value: v as u32,
                })
            }
        };
        if len != 8 + 2 * alen {
            return Err(Error::BadLength {
                field: "selector length",
                offset: at + 2,
                len,
            });
        }
        let start_port = r.u16("start port")?;
        let end_port = r.u16("end port")?;
        let a = r.bytes(alen, "starting address")?;
        let b = r.bytes(alen, "ending address")?;
        out.push(TrafficSelector {
            protocol,
            start_port,
            end_port,
            start_addr: addr(a),
            end_addr: addr(b),
        });
    }
    if !r.is_empty() {
        return Err(Error::BadLength {
            field: "TS payload",
            offset: r.offset(),
            len: r.remaining(),
        });
    }
    Ok(out)
}

fn addr(b: &[u8]) -> IpAddr {
    match <[u8; 4]>::try_from(b) {
        Ok(v4) => IpAddr::V4(v4.into()),
        Err(_) => IpAddr::V6(<[u8; 16]>::try_from(b).unwrap_or([0; 16]).into()),
    }
}

fn put_addr(a: IpAddr, out: &mut Vec<u8>) {
    match a {
        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
    }
}

/// Appends a TSi/TSr payload body.
pub fn emit_ts(ts: &[TrafficSelector], out: &mut Vec<u8>) {
    out.extend_from_slice(&[ts.len() as u8, 0, 0, 0]);
    for t in ts {
        let (ty, len) = if t.start_addr.is_ipv4() {
            (TS_IPV4, 16u16)
        } else {
            (TS_IPV6, 40)
        };
        out.extend_from_slice(&[ty, t.protocol]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&t.start_port.to_be_bytes());
        out.extend_from_slice(&t.end_port.to_be_bytes());
        put_addr(t.start_addr, out);
        put_addr(t.end_addr, out);
    }
}

/// CFG_REQUEST, CFG_REPLY, CFG_SET, CFG_ACK (RFC 7296 §3.15).
pub const CFG_REQUEST: u8 = 1;
pub const CFG_REPLY: u8 = 2;
/// INTERNAL_IP4_ADDRESS and INTERNAL_IP6_ADDRESS attribute types.
pub const INTERNAL_IP4_ADDRESS: u16 = 1;
pub const INTERNAL_IP6_ADDRESS: u16 = 8;

/// One configuration attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpAttribute {
    pub ty: u16,
    pub value: Vec<u8>,
}

/// The Configuration payload body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpRepr {
    pub cfg_type: u8,
    pub attributes: Vec<CpAttribute>,
}

impl CpRepr {
    pub fn parse(body: &[u8], base: usize) -> Result<CpRepr> {
        let mut r = Reader::new(body, base);
        let cfg_type = r.u8("CFG type")?;
        r.bytes(3, "CP reserved")?;
        let mut attributes = Vec::new();
        while !r.is_empty() {
            let ty = r.u16("CP attribute type")? & 0x7fff;
            let len = r.u16("CP attribute length")? as usize;
            attributes.push(CpAttribute {
                ty,
                value: r.bytes(len, "CP attribute value")?.to_vec(),
            });
        }
        Ok(CpRepr {
            cfg_type,
            attributes,
        })
    }
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[self.cfg_type, 0, 0, 0]);
        for a in &self.attributes {
            out.extend_from_slice(&a.ty.to_be_bytes());
            out.extend_from_slice(&(a.value.len() as u16).to_be_bytes());
            out.extend_from_slice(&a.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mh_selector_bytes_put_type_in_high_octet() {
        // BU is MH type 5: ports 0x0500..=0x05ff, protocol 135 (RFC 4301 §4.4.1.1).
        let ts = TrafficSelector::mh("2001:db8::1".parse().unwrap(), 5);
        let mut out = Vec::new();
        emit_ts(&[ts], &mut out);
        assert_eq!(
            &out[..12],
            &[1, 0, 0, 0, 8, 135, 0, 40, 0x05, 0x00, 0x05, 0xff]
        );
        assert_eq!(out.len(), 44);
        let back = parse_ts(&out, 0).unwrap();
        assert_eq!(back, vec![ts]);
        assert_eq!(back[0].mh_type(), Some(5));
    }

    #[test]
    fn ipv4_range_hand_built() {
        let b = [
            1, 0, 0, 0, 7, 0, 0, 16, 0, 0, 0xff, 0xff, 10, 0, 0, 0, 10, 0, 0, 255,
        ];
        let ts = parse_ts(&b, 0).unwrap();
        assert_eq!(
            ts[0],
            TrafficSelector::prefix("10.0.0.7".parse().unwrap(), 24)
        );
        let mut bad = b;
        bad[7] = 17;
        assert!(matches!(
            parse_ts(&bad, 0),
            Err(Error::BadLength {
                field: "selector length",
                offset: 6,
                ..
            })
        ));
        assert!(matches!(
            parse_ts(&b[..15], 0),
            Err(Error::Truncated { .. })
        ));
    }

    #[test]
    fn narrowing() {
        let wide = TrafficSelector::prefix("10.0.0.0".parse().unwrap(), 8);
        let narrow = TrafficSelector::prefix("10.1.0.0".parse().unwrap(), 16);
        assert!(wide.contains(&narrow) && !narrow.contains(&wide));
        assert_eq!(wide.intersect(&narrow), Some(narrow));
        let v6 = TrafficSelector::prefix("2001:db8::".parse().unwrap(), 32);
        assert_eq!(wide.intersect(&v6), None);
        let mh = TrafficSelector::mh("10.1.2.3".parse().unwrap(), 6);
        assert_eq!(wide.intersect(&mh), Some(mh));
    }

    #[test]
    fn cp_round_trip() {
        let cp = CpRepr {
            cfg_type: CFG_REQUEST,
            attributes: vec![CpAttribute {
                ty: INTERNAL_IP4_ADDRESS,
                value: vec![],
            }],
        };
        let mut out = Vec::new();
        cp.emit(&mut out);
        assert_eq!(out, [1, 0, 0, 0, 0, 1, 0, 0]);
        assert_eq!(CpRepr::parse(&out, 0).unwrap(), cp);
    }
}
