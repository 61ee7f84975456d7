//! The two IPv6 extension headers of Mobile IPv6: the Destination Options header carrying
//! the Home Address option (RFC 6275 §6.3) and the type 2 routing header (RFC 6275 §6.4).

use std::net::Ipv6Addr;

use super::ip::invalid;
use super::ipv6_at;
use crate::error::{need, room, Result};

/// Home Address option type (RFC 6275 §6.3): 0xC9, "skip" bits 11, so a node that does not
/// know it discards the packet and sends an ICMP Parameter Problem.
pub const OPT_HOME_ADDRESS: u8 = 0xc9;
const OPT_PAD1: u8 = 0;
const OPT_PADN: u8 = 1;

/// A Destination Options header. Only the Home Address option is interpreted; other options
/// are kept as (type, data) so the caller can apply RFC 8200 §4.2's action bits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DestOptsRepr {
    pub next_header: u8,
    pub home_address: Option<Ipv6Addr>,
    pub other: Vec<(u8, Vec<u8>)>,
}

impl DestOptsRepr {
    /// A header carrying only the Home Address option.
    pub fn home_address(next_header: u8, hoa: Ipv6Addr) -> Self {
        DestOptsRepr {
            next_header,
            home_address: Some(hoa),
            other: Vec::new(),
        }
    }

    /// Parse the header at `buf[0]`; returns it and its length.
    pub fn parse(buf: &[u8]) -> Result<(Self, usize)> {
        need(buf, "dstopts.header", 0, 2)?;
        let len = (usize::from(buf[1]) + 1) * 8;
        need(buf, "dstopts.options", 2, len - 2)?;
        let mut repr = DestOptsRepr {
            next_header: buf[0],
            home_address: None,
            other: Vec::new(),
        };
        let mut at = 2;
        while at < len {
            let kind = buf[at];
            if kind == OPT_PAD1 {
                at += 1;
                continue;
            }
            need(&buf[..len], "dstopts.option.length", at + 1, 1)?;
            let olen = usize::from(buf[at + 1]);
            need(&buf[..len], "dstopts.option.data", at + 2, olen)?;
            match kind {
                OPT_PADN => {}
                OPT_HOME_ADDRESS => {
                    if olen != 16 {
                        return Err(invalid(
                            "dstopts.home_address.length",
                            at + 1,
                            olen as u64,
                            "must be 16",
                        ));
                    }
                    repr.home_address = Some(ipv6_at(buf, at + 2));
                }
                _ => repr.other.push((kind, buf[at + 2..at + 2 + olen].to_vec())),
            }
            at += 2 + olen;
        }
        Ok((repr, len))
    }

    fn body_len(&self) -> usize {
        // Home Address option at 8n+6 (RFC 6275 §6.3): after the 2 header octets, a 4-octet
        // PadN puts it at offset 6.
        let hao = if self.home_address.is_some() {
            4 + 18
        } else {
            0
        };
        2 + hao + self.other.iter().map(|(_, d)| 2 + d.len()).sum::<usize>()
    }

    pub fn buffer_len(&self) -> usize {
        self.body_len().div_ceil(8) * 8
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        if self.other.iter().any(|(_, d)| d.len() > 255) {
            return Err(crate::Error::Unencodable {
                field: "dstopts.option.length",
                reason: "option data longer than 255 bytes",
            });
        }
        let len = self.buffer_len();
        if len > 256 * 8 {
            return Err(crate::Error::Unencodable {
                field: "dstopts.hdr_ext_len",
                reason: "header longer than 2048 octets",
            });
        }
        room(buf, "dstopts", len)?;
        let b = &mut buf[..len];
        b.fill(0);
        b[0] = self.next_header;
        b[1] = (len / 8 - 1) as u8;
        let mut at = 2;
        if let Some(hoa) = self.home_address {
            b[2..6].copy_from_slice(&[OPT_PADN, 2, 0, 0]);
            b[6] = OPT_HOME_ADDRESS;
            b[7] = 16;
            b[8..24].copy_from_slice(&hoa.octets());
            at = 24;
        }
        for (kind, data) in &self.other {
            b[at] = *kind;
            b[at + 1] = data.len() as u8;
            b[at + 2..at + 2 + data.len()].copy_from_slice(data);
            at += 2 + data.len();
        }
        match len - at {
            0 => {}
            1 => b[at] = OPT_PAD1,
            n => {
                b[at] = OPT_PADN;
                b[at + 1] = (n - 2) as u8;
            }
        }
        Ok(len)
    }
}

/// The type 2 routing header (RFC 6275 §6.4): 24 octets carrying one home address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoutingHeaderType2 {
    pub next_header: u8,
    /// 1 on the wire before the home address is swapped in, 0 after.
    pub segments_left: u8,
    pub home_address: Ipv6Addr,
}

impl RoutingHeaderType2 {
    pub const LEN: usize = 24;

    pub fn parse(buf: &[u8]) -> Result<Self> {
        need(buf, "rh2.header", 0, 4)?;
        if buf[1] != 2 {
            return Err(invalid("rh2.hdr_ext_len", 1, buf[1], "must be 2"));
        }
        if buf[2] != 2 {
            return Err(invalid("rh2.routing_type", 2, buf[2], "must be 2"));
        }
        if buf[3] > 1 {
            return Err(invalid("rh2.segments_left", 3, buf[3], "must be 0 or 1"));
        }
        need(buf, "rh2.home_address", 8, 16)?;
        Ok(RoutingHeaderType2 {
            next_header: buf[0],
            segments_left: buf[3],
            home_address: ipv6_at(buf, 8),
        })
    }

    pub fn buffer_len(&self) -> usize {
        Self::LEN
    }

    pub fn emit(&self, buf: &mut [u8]) -> Result<usize> {
        room(buf, "rh2", Self::LEN)?;
        buf[..8].copy_from_slice(&[self.next_header, 2, 2, self.segments_left, 0, 0, 0, 0]);
        buf[8..24].copy_from_slice(&self.home_address.octets());
        Ok(Self::LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn home_address_option_bytes_rfc6275_6_3() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let r = DestOptsRepr::home_address(135, hoa);
        let mut buf = [0u8; 24];
        assert_eq!(r.emit(&mut buf).unwrap(), 24);
        let mut want = vec![135, 2, 1, 2, 0, 0, 0xc9, 16];
        want.extend_from_slice(&hoa.octets());
        assert_eq!(&buf[..], &want[..]);
        // The option type octet sits at 6 = 8n+6.
        assert_eq!(buf[6], OPT_HOME_ADDRESS);
        assert_eq!(DestOptsRepr::parse(&buf).unwrap(), (r, 24));
    }

    #[test]
    fn dest_opts_bad_hao_length() {
        let mut buf = [0u8; 24];
        DestOptsRepr::home_address(59, Ipv6Addr::LOCALHOST)
            .emit(&mut buf)
            .unwrap();
        buf[7] = 15;
        let e = DestOptsRepr::parse(&buf).unwrap_err();
        assert_eq!(
            (e.field(), e.offset()),
            ("dstopts.home_address.length", Some(7))
        );
    }

    #[test]
    fn type2_routing_header_bytes_rfc6275_6_4() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let mut want = vec![135, 2, 2, 1, 0, 0, 0, 0];
        want.extend_from_slice(&hoa.octets());
        let r = RoutingHeaderType2::parse(&want).unwrap();
        assert_eq!(
            r,
            RoutingHeaderType2 {
                next_header: 135,
                segments_left: 1,
                home_address: hoa
            }
        );
        let mut buf = [0u8; 24];
        r.emit(&mut buf).unwrap();
        assert_eq!(&buf[..], &want[..]);
        want[2] = 0;
        assert_eq!(
            RoutingHeaderType2::parse(&want).unwrap_err().field(),
            "rh2.routing_type"
        );
    }

    #[test]
    fn dest_opts_longer_than_2048_is_unencodable() {
        let r = DestOptsRepr {
            next_header: 59,
            home_address: None,
            other: vec![(0x1e, vec![0; 255]); 10],
        };
        let mut buf = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut buf).unwrap_err().field(), "dstopts.hdr_ext_len");
    }
}
