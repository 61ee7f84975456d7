//! The IPv4 (RFC 791), IPv6 (RFC 8200) and UDP (RFC 768) headers, as far as the tunnels and
//! the Mobility Header need them: no IPv4 options are emitted, and received ones are skipped.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::checksum;
use super::{be16, ipv4_at, ipv6_at, put16};
use crate::error::{need, room, Error, Result};

/// IPv6 "No Next Header" (RFC 8200 §4.7); the MH Payload Proto must hold it.
pub const IPPROTO_NONE: u8 = 59;
pub const IPPROTO_IPIP: u8 = 4;
pub const IPPROTO_UDP: u8 = 17;
pub const IPPROTO_IPV6: u8 = 41;
pub const IPPROTO_ROUTING: u8 = 43;
pub const IPPROTO_ESP: u8 = 50;
pub const IPPROTO_ICMPV6: u8 = 58;
pub const IPPROTO_DSTOPTS: u8 = 60;
pub const IPPROTO_MH: u8 = 135;

/// An IPv4 header without options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub dscp: u8,
    pub ecn: u8,
    pub identification: u16,
    pub dont_fragment: bool,
    pub more_fragments: bool,
    /// In 8-octet units.
    pub fragment_offset: u16,
    pub ttl: u8,
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Length of what follows the header (total length minus header length).
    pub payload_len: u16,
}

impl Ipv4Repr {
    pub const HEADER_LEN: usize = 20;

    /// Parse and verify the header at the start of `buf`. Returns the header and its length
    /// (20 plus any options); the payload is `buf[hlen..hlen + payload_len]`.
    pub fn parse(buf: &[u8]) -> Result<(Self, usize)> {
        need(buf, "ipv4.header", 0, Self::HEADER_LEN)?;
        let version = buf[0] >> 4;
        if version != 4 {
            return Err(invalid("ipv4.version", 0, version, "must be 4"));
        }
        let hlen = usize::from(buf[0] & 0x0f) * 4;
        if hlen < Self::HEADER_LEN {
            return Err(invalid("ipv4.ihl", 0, buf[0] & 0x0f, "less than 5"));
        }
        need(
            buf,
            "ipv4.options",
            Self::HEADER_LEN,
            hlen - Self::HEADER_LEN,
        )?;
        let total = usize::from(be16(buf, 2));
        if total < hlen {
            return Err(invalid(
                "ipv4.total_length",
                2,
                total as u64,
                "shorter than the header",
            ));
        }
        need(buf, "ipv4.payload", hlen, total - hlen)?;
        let found = be16(buf, 10);
        if checksum::checksum(&buf[..hlen]) != 0 {
            let mut copy = [0u8; 60];
            copy[..hlen].copy_from_slice(&buf[..hlen]);
            copy[10] = 0;
            copy[11] = 0;
            let expected = checksum::checksum(&copy[..hlen]);
            return Err(Error::Checksum {
                field: "ipv4.header_checksum",
                offset: 10,
                found,
                expected,
            });
        }
        let frag = be16(buf, 6);
        let repr = Ipv4Repr {
            dscp: buf[1] >> 2,
            ecn: buf[1] & 0x03,
            identification: be16(buf, 4),
            dont_fragment: frag & 0x4000 != 0,
            more_fragments: frag & 0x2000 != 0,
            fragment_offset: frag & 0x1fff,
            ttl: buf[8],
            protocol: buf[9],
            src: ipv4_at(buf, 12),
            dst: ipv4_at(buf, 16),
            payload_len: (total - hlen) as u16,
        };
        Ok((repr, hlen))
    }

    pub fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    /// Write the header (with its checksum) into `buf[..20]`.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_tos(self.dscp, self.ecn)?;
        if self.fragment_offset > 0x1fff {
            return Err(Error::Unencodable {
                field: "ipv4.fragment_offset",
                reason: "more than 13 bits",
            });
        }
        room(buf, "ipv4.header", Self::HEADER_LEN)?;
        let total = usize::from(self.payload_len) + Self::HEADER_LEN;
        if total > usize::from(u16::MAX) {
            return Err(Error::Unencodable {
                field: "ipv4.total_length",
                reason: "payload longer than 65515 bytes",
            });
        }
        let h = &mut buf[..Self::HEADER_LEN];
        h[0] = 0x45;
        h[1] = (self.dscp << 2) | (self.ecn & 0x03);
        put16(h, 2, total as u16);
        put16(h, 4, self.identification);
        let mut frag = self.fragment_offset & 0x1fff;
        if self.dont_fragment {
            frag |= 0x4000;
        }
        if self.more_fragments {
            frag |= 0x2000;
        }
        put16(h, 6, frag);
        h[8] = self.ttl;
        h[9] = self.protocol;
        put16(h, 10, 0);
        h[12..16].copy_from_slice(&self.src.octets());
        h[16..20].copy_from_slice(&self.dst.octets());
        let c = checksum::checksum(h);
        put16(h, 10, c);
        Ok(())
    }
}

/// The fixed IPv6 header (extension headers are separate formats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub dscp: u8,
    pub ecn: u8,
    pub flow_label: u32,
    pub payload_len: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
}

impl Ipv6Repr {
    pub const HEADER_LEN: usize = 40;

    /// Parse the header at the start of `buf`; the payload is
    /// `buf[40..40 + payload_len]` (jumbograms are not supported).
    pub fn parse(buf: &[u8]) -> Result<Self> {
        need(buf, "ipv6.header", 0, Self::HEADER_LEN)?;
        let version = buf[0] >> 4;
        if version != 6 {
            return Err(invalid("ipv6.version", 0, version, "must be 6"));
        }
        let payload_len = be16(buf, 4);
        if payload_len == 0 {
            return Err(invalid(
                "ipv6.payload_length",
                4,
                0u8,
                "jumbograms are not supported",
            ));
        }
        need(
            buf,
            "ipv6.payload",
            Self::HEADER_LEN,
            usize::from(payload_len),
        )?;
        let tc = (buf[0] << 4) | (buf[1] >> 4);
        Ok(Ipv6Repr {
            dscp: tc >> 2,
            ecn: tc & 0x03,
            flow_label: (u32::from(buf[1] & 0x0f) << 16) | u32::from(be16(buf, 2)),
            payload_len,
            next_header: buf[6],
            hop_limit: buf[7],
            src: ipv6_at(buf, 8),
            dst: ipv6_at(buf, 24),
        })
    }

    pub fn buffer_len(&self) -> usize {
        Self::HEADER_LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        check_tos(self.dscp, self.ecn)?;
        if self.flow_label > 0xf_ffff {
            return Err(Error::Unencodable {
                field: "ipv6.flow_label",
                reason: "more than 20 bits",
            });
        }
        room(buf, "ipv6.header", Self::HEADER_LEN)?;
        let tc = (self.dscp << 2) | (self.ecn & 0x03);
        buf[0] = 0x60 | (tc >> 4);
        buf[1] = (tc << 4) | ((self.flow_label >> 16) as u8 & 0x0f);
        put16(buf, 2, self.flow_label as u16);
        put16(buf, 4, self.payload_len);
        buf[6] = self.next_header;
        buf[7] = self.hop_limit;
        buf[8..24].copy_from_slice(&self.src.octets());
        buf[24..40].copy_from_slice(&self.dst.octets());
        Ok(())
    }
}

/// The addresses a transport checksum covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pseudo {
    V4 { src: Ipv4Addr, dst: Ipv4Addr },
    V6 { src: Ipv6Addr, dst: Ipv6Addr },
}

impl Pseudo {
    fn checksum(&self, protocol: u8, msg: &[u8]) -> u16 {
        match self {
            Pseudo::V4 { src, dst } => checksum::upper_v4(src, dst, protocol, msg),
            Pseudo::V6 { src, dst } => checksum::upper_v6(src, dst, protocol, msg),
        }
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpRepr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl UdpRepr {
    pub const HEADER_LEN: usize = 8;

    /// Parse the datagram in `buf` (exactly the IP payload) and verify its checksum.
    /// A zero checksum is accepted over IPv4 and refused over IPv6 (RFC 8200 §8.1).
    /// Returns the header and the payload's length.
    pub fn parse(buf: &[u8], pseudo: &Pseudo) -> Result<(Self, usize)> {
        need(buf, "udp.header", 0, Self::HEADER_LEN)?;
        let len = usize::from(be16(buf, 4));
        if len < Self::HEADER_LEN {
            return Err(invalid(
                "udp.length",
                4,
                len as u64,
                "shorter than the header",
            ));
        }
        need(buf, "udp.payload", Self::HEADER_LEN, len - Self::HEADER_LEN)?;
        let found = be16(buf, 6);
        if found == 0 {
            if let Pseudo::V6 { .. } = pseudo {
                return Err(invalid(
                    "udp.checksum",
                    6,
                    0u8,
                    "zero is not allowed over IPv6",
                ));
            }
        } else if pseudo.checksum(IPPROTO_UDP, &buf[..len]) != 0 {
            let mut copy = buf[..len].to_vec();
            copy[6] = 0;
            copy[7] = 0;
            let expected = fold_zero(pseudo.checksum(IPPROTO_UDP, &copy));
            return Err(Error::Checksum {
                field: "udp.checksum",
                offset: 6,
                found,
                expected,
            });
        }
        let repr = UdpRepr {
            src_port: be16(buf, 0),
            dst_port: be16(buf, 2),
        };
        Ok((repr, len - Self::HEADER_LEN))
    }

    /// Write the header into `buf[..8]`, the payload already being at `buf[8..8 + payload_len]`.
    /// Over IPv4 `with_checksum = false` leaves the checksum zero; over IPv6 it is always set.
    pub fn emit(
        &self,
        buf: &mut [u8],
        payload_len: usize,
        pseudo: &Pseudo,
        with_checksum: bool,
    ) -> Result<()> {
        let len = Self::HEADER_LEN + payload_len;
        room(buf, "udp", len)?;
        if len > usize::from(u16::MAX) {
            return Err(Error::Unencodable {
                field: "udp.length",
                reason: "datagram longer than 65535 bytes",
            });
        }
        put16(buf, 0, self.src_port);
        put16(buf, 2, self.dst_port);
        put16(buf, 4, len as u16);
        put16(buf, 6, 0);
        let v6 = matches!(pseudo, Pseudo::V6 { .. });
        if with_checksum || v6 {
            let c = fold_zero(pseudo.checksum(IPPROTO_UDP, &buf[..len]));
            put16(buf, 6, c);
        }
        Ok(())
    }
}

/// DSCP is 6 bits and ECN 2 (RFC 2474, RFC 3168).
fn check_tos(dscp: u8, ecn: u8) -> Result<()> {
    if dscp > 63 {
        return Err(Error::Unencodable {
            field: "dscp",
            reason: "more than 6 bits",
        });
    }
    if ecn > 3 {
        return Err(Error::Unencodable {
            field: "ecn",
            reason: "more than 2 bits",
        });
    }
    Ok(())
}

/// A computed UDP checksum of zero is sent as all ones (RFC 768).
fn fold_zero(c: u16) -> u16 {
    if c == 0 {
        0xffff
    } else {
        c
    }
}

pub(crate) fn invalid(
    field: &'static str,
    offset: usize,
    value: impl Into<u64>,
    reason: &'static str,
) -> Error {
    Error::Invalid {
        field,
        offset,
        value: value.into(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_round_trip_and_bytes() {
        let r = Ipv4Repr {
            dscp: 46,
            ecn: 1,
            identification: 0x1234,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: IPPROTO_UDP,
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(198, 51, 100, 7),
            payload_len: 8,
        };
        let mut buf = [0u8; 28];
        r.emit(&mut buf).unwrap();
        assert_eq!(
            &buf[..10],
            &[0x45, 0xb9, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 64, 17]
        );
        assert_eq!(checksum::checksum(&buf[..20]), 0);
        assert_eq!(Ipv4Repr::parse(&buf).unwrap(), (r, 20));
    }

    #[test]
    fn ipv4_rejects_bad_checksum_naming_offset() {
        let mut buf = [0u8; 20];
        Ipv4Repr {
            dscp: 0,
            ecn: 0,
            identification: 0,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 1,
            protocol: 4,
            src: Ipv4Addr::LOCALHOST,
            dst: Ipv4Addr::LOCALHOST,
            payload_len: 0,
        }
        .emit(&mut buf)
        .unwrap();
        buf[11] ^= 1;
        let e = Ipv4Repr::parse(&buf).unwrap_err();
        assert_eq!(e.offset(), Some(10));
        assert_eq!(e.field(), "ipv4.header_checksum");
    }

    #[test]
    fn ipv6_round_trip_and_bytes() {
        let r = Ipv6Repr {
            dscp: 10,
            ecn: 2,
            flow_label: 0xabcde,
            payload_len: 0,
            next_header: IPPROTO_MH,
            hop_limit: 255,
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        };
        let mut buf = [0u8; 40];
        r.emit(&mut buf).unwrap();
        // Traffic class 0x2a straddles bytes 0 and 1.
        assert_eq!(&buf[..8], &[0x62, 0xaa, 0xbc, 0xde, 0, 0, 135, 255]);
        let mut with_payload = buf.to_vec();
        with_payload[5] = 1;
        with_payload.push(0);
        let p = Ipv6Repr::parse(&with_payload).unwrap();
        assert_eq!(
            p,
            Ipv6Repr {
                payload_len: 1,
                ..r
            }
        );
    }

    #[test]
    fn udp_zero_checksum_rules() {
        let v4 = Pseudo::V4 {
            src: Ipv4Addr::new(192, 0, 2, 1),
            dst: Ipv4Addr::new(192, 0, 2, 2),
        };
        let v6 = Pseudo::V6 {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8::2".parse().unwrap(),
        };
        let u = UdpRepr {
            src_port: 4191,
            dst_port: 4191,
        };
        let mut buf = [0u8; 12];
        buf[8..].copy_from_slice(b"abcd");
        u.emit(&mut buf, 4, &v4, false).unwrap();
        assert_eq!(&buf[4..8], &[0, 12, 0, 0]);
        assert_eq!(UdpRepr::parse(&buf, &v4).unwrap(), (u, 4));
        assert_eq!(
            UdpRepr::parse(&buf, &v6).unwrap_err().field(),
            "udp.checksum"
        );
        u.emit(&mut buf, 4, &v6, false).unwrap();
        assert_ne!(&buf[6..8], &[0, 0]);
        assert_eq!(UdpRepr::parse(&buf, &v6).unwrap(), (u, 4));
        buf[9] ^= 0x40;
        assert!(matches!(
            UdpRepr::parse(&buf, &v6),
            Err(Error::Checksum { offset: 6, .. })
        ));
    }
}
