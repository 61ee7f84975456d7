//! The ICMPv6 messages of Mobile IPv6: Home Agent Address Discovery Request and Reply
//! (RFC 6275 §6.5, §6.6) and Mobile Prefix Solicitation and Advertisement (§6.7, §6.8),
//! with the Prefix Information option carrying the Router Address flag (§7.2).
//! Other ICMPv6 types are kept as raw bytes.

use std::net::Ipv6Addr;

use super::checksum;
use super::ip::{invalid, IPPROTO_ICMPV6};
use super::{be16, be32, ipv6_at, put16, put32};
use crate::error::{need, room, Error, Result};

pub const HAAD_REQUEST: u8 = 144;
pub const HAAD_REPLY: u8 = 145;
pub const MOBILE_PREFIX_SOLICITATION: u8 = 146;
pub const MOBILE_PREFIX_ADVERTISEMENT: u8 = 147;
/// Neighbor Discovery Prefix Information option (RFC 4861 §4.6.2).
pub const ND_OPT_PREFIX_INFO: u8 = 3;

/// A Prefix Information option as a Mobile Prefix Advertisement carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixInfo {
    pub prefix_len: u8,
    /// L flag.
    pub on_link: bool,
    /// A flag.
    pub autonomous: bool,
    /// R flag (RFC 6275 §7.2): the prefix field holds the home agent's full address.
    pub router_address: bool,
    pub valid_lifetime: u32,
    pub preferred_lifetime: u32,
    pub prefix: Ipv6Addr,
}

/// A Mobile IPv6 ICMPv6 message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Icmpv6Repr {
    HaadRequest {
        identifier: u16,
    },
    HaadReply {
        identifier: u16,
        home_agents: Vec<Ipv6Addr>,
    },
    MobilePrefixSolicitation {
        identifier: u16,
    },
    MobilePrefixAdvertisement {
        identifier: u16,
        managed: bool,
        other_config: bool,
        prefixes: Vec<PrefixInfo>,
        /// Options other than Prefix Information, as (type, whole option bytes).
        other_options: Vec<(u8, Vec<u8>)>,
    },
    /// Any other ICMPv6 message: type, code and the bytes after the checksum.
    Other {
        kind: u8,
        code: u8,
        body: Vec<u8>,
    },
}

impl Icmpv6Repr {
    /// Parse and verify the checksum under the IPv6 pseudo-header `src` → `dst`.
    pub fn parse(buf: &[u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<Self> {
        need(buf, "icmpv6.header", 0, 4)?;
        if checksum::upper_v6(src, dst, IPPROTO_ICMPV6, buf) != 0 {
            let mut copy = buf.to_vec();
            copy[2] = 0;
            copy[3] = 0;
            return Err(Error::Checksum {
                field: "icmpv6.checksum",
                offset: 2,
                found: be16(buf, 2),
                expected: checksum::upper_v6(src, dst, IPPROTO_ICMPV6, &copy),
            });
        }
        let (kind, code) = (buf[0], buf[1]);
        if matches!(kind, HAAD_REQUEST..=MOBILE_PREFIX_ADVERTISEMENT) {
            need(buf, "icmpv6.identifier", 4, 4)?;
        }
        let identifier = if buf.len() >= 6 { be16(buf, 4) } else { 0 };
        Ok(match kind {
            HAAD_REQUEST => Icmpv6Repr::HaadRequest { identifier },
            MOBILE_PREFIX_SOLICITATION => Icmpv6Repr::MobilePrefixSolicitation { identifier },
            HAAD_REPLY => {
                let body = &buf[8..];
                if body.len() % 16 != 0 {
                    return Err(invalid(
                        "icmpv6.haad_reply.home_agent_addresses",
                        8,
                        body.len() as u64,
                        "not a whole number of IPv6 addresses",
                    ));
                }
                let home_agents = (0..body.len() / 16)
                    .map(|i| ipv6_at(body, i * 16))
                    .collect();
                Icmpv6Repr::HaadReply {
                    identifier,
                    home_agents,
                }
            }
            MOBILE_PREFIX_ADVERTISEMENT => parse_mpa(buf, identifier)?,
            _ => Icmpv6Repr::Other {
                kind,
                code,
                body: buf[4..].to_vec(),
            },
        })
    }

    pub fn buffer_len(&self) -> usize {
        match self {
            Icmpv6Repr::HaadRequest { .. } | Icmpv6Repr::MobilePrefixSolicitation { .. } => 8,
            Icmpv6Repr::HaadReply { home_agents, .. } => 8 + 16 * home_agents.len(),
            Icmpv6Repr::MobilePrefixAdvertisement {
                prefixes,
                other_options,
                ..
            } => {
                8 + 32 * prefixes.len() + other_options.iter().map(|(_, o)| o.len()).sum::<usize>()
            }
            Icmpv6Repr::Other { body, .. } => 4 + body.len(),
        }
    }

    /// Emit with the checksum for `src` → `dst`; returns the length.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<usize> {
        if let Icmpv6Repr::MobilePrefixAdvertisement { other_options, .. } = self {
            // Each option is whole: its length octet counts 8-octet units (RFC 4861 §4.6).
            let bad = other_options.iter().any(|(t, o)| {
                o.len() < 8 || o.len() % 8 != 0 || o[0] != *t || usize::from(o[1]) * 8 != o.len()
            });
            if bad {
                return Err(Error::Unencodable {
                    field: "icmpv6.option",
                    reason: "an option's bytes do not match its type and length",
                });
            }
        }
        let len = self.buffer_len();
        room(buf, "icmpv6", len)?;
        let b = &mut buf[..len];
        b.fill(0);
        match self {
            Icmpv6Repr::HaadRequest { identifier } => {
                b[0] = HAAD_REQUEST;
                put16(b, 4, *identifier);
            }
            Icmpv6Repr::MobilePrefixSolicitation { identifier } => {
                b[0] = MOBILE_PREFIX_SOLICITATION;
                put16(b, 4, *identifier);
            }
            Icmpv6Repr::HaadReply {
                identifier,
                home_agents,
            } => {
                b[0] = HAAD_REPLY;
                put16(b, 4, *identifier);
                for (i, ha) in home_agents.iter().enumerate() {
                    b[8 + 16 * i..24 + 16 * i].copy_from_slice(&ha.octets());
                }
            }
            Icmpv6Repr::MobilePrefixAdvertisement {
                identifier,
                managed,
                other_config,
                prefixes,
                other_options,
            } => {
                b[0] = MOBILE_PREFIX_ADVERTISEMENT;
                put16(b, 4, *identifier);
                b[6] = u8::from(*managed) << 7 | u8::from(*other_config) << 6;
                let mut at = 8;
                for p in prefixes {
                    emit_prefix_info(p, &mut b[at..at + 32]);
                    at += 32;
                }
                for (_, o) in other_options {
                    b[at..at + o.len()].copy_from_slice(o);
                    at += o.len();
                }
            }
            Icmpv6Repr::Other { kind, code, body } => {
                b[0] = *kind;
                b[1] = *code;
                b[4..].copy_from_slice(body);
            }
        }
        let c = checksum::upper_v6(src, dst, IPPROTO_ICMPV6, b);
        put16(b, 2, c);
        Ok(len)
    }
}

fn parse_mpa(buf: &[u8], identifier: u16) -> Result<Icmpv6Repr> {
    let mut prefixes = Vec::new();
    let mut other_options = Vec::new();
    let mut at = 8;
    while at < buf.len() {
        need(buf, "icmpv6.option.length", at + 1, 1)?;
        let olen = usize::from(buf[at + 1]) * 8;
        if olen == 0 {
            return Err(invalid(
                "icmpv6.option.length",
                at + 1,
                0u8,
                "must not be zero",
            ));
        }
        need(buf, "icmpv6.option", at, olen)?;
        let o = &buf[at..at + olen];
        if o[0] == ND_OPT_PREFIX_INFO {
            if olen != 32 {
                return Err(invalid(
                    "icmpv6.prefix_info.length",
                    at + 1,
                    o[1],
                    "must be 4",
                ));
            }
            prefixes.push(PrefixInfo {
                prefix_len: o[2],
                on_link: o[3] & 0x80 != 0,
                autonomous: o[3] & 0x40 != 0,
                router_address: o[3] & 0x20 != 0,
                valid_lifetime: be32(o, 4),
                preferred_lifetime: be32(o, 8),
                prefix: ipv6_at(o, 16),
            });
        } else {
            other_options.push((o[0], o.to_vec()));
        }
        at += olen;
    }
    Ok(Icmpv6Repr::MobilePrefixAdvertisement {
        identifier,
        managed: buf[6] & 0x80 != 0,
        other_config: buf[6] & 0x40 != 0,
        prefixes,
        other_options,
    })
}

fn emit_prefix_info(p: &PrefixInfo, o: &mut [u8]) {
    o[0] = ND_OPT_PREFIX_INFO;
    o[1] = 4;
    o[2] = p.prefix_len;
    o[3] = u8::from(p.on_link) << 7 | u8::from(p.autonomous) << 6 | u8::from(p.router_address) << 5;
    put32(o, 4, p.valid_lifetime);
    put32(o, 8, p.preferred_lifetime);
    o[16..32].copy_from_slice(&p.prefix.octets());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> (Ipv6Addr, Ipv6Addr) {
        (
            "2001:db8:1::100".parse().unwrap(),
            "2001:db8:1::1".parse().unwrap(),
        )
    }

    #[test]
    fn haad_request_bytes_rfc6275_6_5() {
        let (s, d) = addrs();
        let r = Icmpv6Repr::HaadRequest { identifier: 0x1234 };
        let mut b = [0u8; 8];
        r.emit(&mut b, &s, &d).unwrap();
        assert_eq!(
            [b[0], b[1], b[4], b[5], b[6], b[7]],
            [144, 0, 0x12, 0x34, 0, 0]
        );
        assert_eq!(Icmpv6Repr::parse(&b, &s, &d).unwrap(), r);
    }

    #[test]
    fn haad_reply_and_mpa_round_trip() {
        let (s, d) = addrs();
        let reply = Icmpv6Repr::HaadReply {
            identifier: 7,
            home_agents: vec![d, "2001:db8:1::2".parse().unwrap()],
        };
        let mut b = [0u8; 40];
        assert_eq!(reply.emit(&mut b, &d, &s).unwrap(), 40);
        assert_eq!(Icmpv6Repr::parse(&b, &d, &s).unwrap(), reply);
        let mpa = Icmpv6Repr::MobilePrefixAdvertisement {
            identifier: 9,
            managed: true,
            other_config: false,
            prefixes: vec![PrefixInfo {
                prefix_len: 64,
                on_link: true,
                autonomous: true,
                router_address: true,
                valid_lifetime: 86400,
                preferred_lifetime: 14400,
                prefix: d,
            }],
            other_options: vec![],
        };
        let mut b = [0u8; 40];
        mpa.emit(&mut b, &d, &s).unwrap();
        // Prefix Information: type 3, length 4, /64, L|A|R.
        assert_eq!(&b[8..12], &[3, 4, 64, 0xe0]);
        assert_eq!(b[6], 0x80);
        assert_eq!(Icmpv6Repr::parse(&b, &d, &s).unwrap(), mpa);
    }

    #[test]
    fn bad_checksum_and_zero_length_option() {
        let (s, d) = addrs();
        let mut b = [0u8; 8];
        Icmpv6Repr::MobilePrefixSolicitation { identifier: 1 }
            .emit(&mut b, &s, &d)
            .unwrap();
        b[5] = 2;
        assert_eq!(Icmpv6Repr::parse(&b, &s, &d).unwrap_err().offset(), Some(2));
        let mut m = [147, 0, 0, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0];
        let c = checksum::upper_v6(&s, &d, IPPROTO_ICMPV6, &m);
        put16(&mut m, 2, c);
        let e = Icmpv6Repr::parse(&m, &s, &d).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("icmpv6.option.length", Some(9)));
    }

    #[test]
    fn haad_reply_mps_bytes_rfc6275_6_6_6_7() {
        let (s, d) = addrs();
        let mut b = [0u8; 24];
        Icmpv6Repr::HaadReply {
            identifier: 0xbeef,
            home_agents: vec![d],
        }
        .emit(&mut b, &d, &s)
        .unwrap();
        assert_eq!(&b[..2], &[145, 0]);
        assert_eq!(&b[4..8], &[0xbe, 0xef, 0, 0]);
        assert_eq!(&b[8..], &d.octets());
        let mut b = [0u8; 8];
        Icmpv6Repr::MobilePrefixSolicitation { identifier: 3 }
            .emit(&mut b, &s, &d)
            .unwrap();
        assert_eq!([b[0], b[1], b[4], b[5], b[6], b[7]], [146, 0, 0, 3, 0, 0]);
        assert_eq!(checksum::upper_v6(&s, &d, IPPROTO_ICMPV6, &b), 0);
    }

    #[test]
    fn mpa_other_options_must_be_whole() {
        let (s, d) = addrs();
        let r = Icmpv6Repr::MobilePrefixAdvertisement {
            identifier: 1,
            managed: false,
            other_config: false,
            prefixes: vec![],
            other_options: vec![(1, vec![1, 2, 0, 0, 0, 0, 0, 0])],
        };
        let mut b = [0u8; 16];
        assert_eq!(r.emit(&mut b, &s, &d).unwrap_err().field(), "icmpv6.option");
    }
}
