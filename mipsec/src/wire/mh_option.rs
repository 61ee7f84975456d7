//! Mobility options (RFC 6275 §6.2, RFC 3963 §4.3, RFC 5555 §3.1–3.2): type-length-value
//! items after the fixed part of a Mobility Header message.
//!
//! Parsing skips Pad1 and PadN and keeps an unrecognised option as raw bytes, which a
//! receiver ignores (RFC 6275 §6.2.1: "skip over this option"). Emitting inserts Pad1 / PadN
//! so each option starts on its alignment (`xn+y` counted from the start of the Mobility
//! Header) and pads the message to a multiple of 8 octets (RFC 6275 §6.1.1).

use std::net::{Ipv4Addr, Ipv6Addr};

use super::ip::invalid;
use super::{be16, be32, ipv4_at, ipv6_at, put16, put32};
use crate::error::{need, room, Error, Result};

pub const PAD1: u8 = 0;
pub const PADN: u8 = 1;
pub const BINDING_REFRESH_ADVICE: u8 = 2;
pub const ALTERNATE_COA: u8 = 3;
pub const NONCE_INDICES: u8 = 4;
pub const BINDING_AUTH_DATA: u8 = 5;
pub const MOBILE_NETWORK_PREFIX: u8 = 6;
pub const IPV4_HOME_ADDRESS: u8 = 29;
/// RFC 5555 §3.2.1 and the IANA registry say 30; the RFC's IANA section says 29 by mistake.
pub const IPV4_ADDRESS_ACK: u8 = 30;
pub const NAT_DETECTION: u8 = 31;
pub const IPV4_COA: u8 = 32;

/// Refresh time meaning "keepalives are not needed" (RFC 5555 §3.2.2).
pub const REFRESH_NOT_NEEDED: u32 = u32::MAX;

/// Status of the IPv4 Address Acknowledgement option (RFC 5555 §3.2.1). Values below 128
/// are successes. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4AckStatus(pub u8);

impl Ipv4AckStatus {
    pub const SUCCESS: Self = Self(0);
    pub const UNSPECIFIED: Self = Self(128);
    pub const ADMIN_PROHIBITED: Self = Self(129);
    pub const INCORRECT_IPV4_HOA: Self = Self(130);
    pub const INVALID_IPV4_ADDRESS: Self = Self(131);
    pub const DYNAMIC_NOT_AVAILABLE: Self = Self(132);
    pub const PREFIX_UNAUTHORIZED: Self = Self(133);

    pub fn is_success(self) -> bool {
        self.0 < 128
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Success",
            1..=127 => "Success (unassigned code)",
            128 => "Failure, reason unspecified",
            129 => "Administratively prohibited",
            130 => "Incorrect IPv4 home address",
            131 => "Invalid IPv4 address",
            132 => "Dynamic IPv4 home address assignment not available",
            133 => "Prefix allocation unauthorized",
            _ => "Failure (unassigned code)",
        }
    }
}

/// One mobility option. Pad1 and PadN are not represented: the emitter makes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MhOption {
    /// RFC 6275 §6.2.4; the interval is in units of 4 seconds.
    BindingRefreshAdvice { refresh_interval: u16 },
    /// RFC 6275 §6.2.5.
    AlternateCoa(Ipv6Addr),
    /// RFC 6275 §6.2.6.
    NonceIndices { home: u16, care_of: u16 },
    /// RFC 6275 §6.2.7: the authenticator.
    BindingAuthorizationData(Vec<u8>),
    /// RFC 3963 §4.3.
    MobileNetworkPrefix { prefix_len: u8, prefix: Ipv6Addr },
    /// RFC 5555 §3.1.1. `prefix_len` is 6 bits on the wire.
    Ipv4HomeAddress {
        prefix_len: u8,
        prefix_request: bool,
        addr: Ipv4Addr,
    },
    /// RFC 5555 §3.2.1. `prefix_len` is 6 bits on the wire.
    Ipv4AddressAck {
        status: Ipv4AckStatus,
        prefix_len: u8,
        addr: Ipv4Addr,
    },
    /// RFC 5555 §3.2.2: F flag and refresh time in seconds.
    NatDetection { force_udp: bool, refresh_time: u32 },
    /// RFC 5555 §3.1.2.
    Ipv4CareOfAddress(Ipv4Addr),
    /// Any other type, kept so a decoder can show it; receivers skip it.
    Unknown { kind: u8, data: Vec<u8> },
}

impl MhOption {
    /// The option type code.
    pub fn kind(&self) -> u8 {
        match self {
            MhOption::BindingRefreshAdvice { .. } => BINDING_REFRESH_ADVICE,
            MhOption::AlternateCoa(_) => ALTERNATE_COA,
            MhOption::NonceIndices { .. } => NONCE_INDICES,
            MhOption::BindingAuthorizationData(_) => BINDING_AUTH_DATA,
            MhOption::MobileNetworkPrefix { .. } => MOBILE_NETWORK_PREFIX,
            MhOption::Ipv4HomeAddress { .. } => IPV4_HOME_ADDRESS,
            MhOption::Ipv4AddressAck { .. } => IPV4_ADDRESS_ACK,
            MhOption::NatDetection { .. } => NAT_DETECTION,
            MhOption::Ipv4CareOfAddress(_) => IPV4_COA,
            MhOption::Unknown { kind, .. } => *kind,
        }
    }

    /// The option's name as its RFC gives it.
    pub fn name(&self) -> &'static str {
        kind_name(self.kind())
    }

    /// Alignment `(x, y)`: the option's type octet sits at an offset `o` from the start of
    /// the Mobility Header with `o % x == y`.
    pub fn alignment(&self) -> (usize, usize) {
        match self {
            MhOption::BindingRefreshAdvice { .. } | MhOption::NonceIndices { .. } => (2, 0),
            MhOption::AlternateCoa(_) => (8, 6),
            MhOption::BindingAuthorizationData(_) => (8, 2),
            MhOption::MobileNetworkPrefix { .. } => (8, 4),
            // RFC 5555 §3.1.1, §3.1.2, §3.2.1, §3.2.2: 4n.
            MhOption::Ipv4HomeAddress { .. }
            | MhOption::Ipv4AddressAck { .. }
            | MhOption::NatDetection { .. }
            | MhOption::Ipv4CareOfAddress(_) => (4, 0),
            MhOption::Unknown { .. } => (1, 0),
        }
    }

    /// Length of the option data (the value of the Length octet).
    pub fn data_len(&self) -> usize {
        match self {
            MhOption::BindingRefreshAdvice { .. } => 2,
            MhOption::AlternateCoa(_) => 16,
            MhOption::NonceIndices { .. } => 4,
            MhOption::BindingAuthorizationData(a) => a.len(),
            MhOption::MobileNetworkPrefix { .. } => 18,
            MhOption::Ipv4HomeAddress { .. }
            | MhOption::Ipv4AddressAck { .. }
            | MhOption::NatDetection { .. }
            | MhOption::Ipv4CareOfAddress(_) => 6,
            MhOption::Unknown { data, .. } => data.len(),
        }
    }

    /// Parse the option at `buf[0]` (type octet). Returns the option (`None` for Pad1 and
    /// PadN) and the number of bytes it occupies.
    pub fn parse(buf: &[u8]) -> Result<(Option<Self>, usize)> {
        need(buf, "mh.option.type", 0, 1)?;
        let kind = buf[0];
        if kind == PAD1 {
            return Ok((None, 1));
        }
        need(buf, "mh.option.length", 1, 1)?;
        let len = usize::from(buf[1]);
        need(buf, "mh.option.data", 2, len)?;
        let d = &buf[2..2 + len];
        let fixed = |want: usize| -> Result<()> {
            if len != want {
                return Err(invalid(
                    "mh.option.length",
                    1,
                    len as u64,
                    "wrong length for type",
                ));
            }
            Ok(())
        };
        let opt = match kind {
            PADN => None,
            BINDING_REFRESH_ADVICE => {
                fixed(2)?;
                Some(MhOption::BindingRefreshAdvice {
                    refresh_interval: be16(d, 0),
                })
            }
            ALTERNATE_COA => {
                fixed(16)?;
                Some(MhOption::AlternateCoa(ipv6_at(d, 0)))
            }
            NONCE_INDICES => {
                fixed(4)?;
                Some(MhOption::NonceIndices {
                    home: be16(d, 0),
                    care_of: be16(d, 2),
                })
            }
            BINDING_AUTH_DATA => Some(MhOption::BindingAuthorizationData(d.to_vec())),
            MOBILE_NETWORK_PREFIX => {
                fixed(18)?;
                Some(MhOption::MobileNetworkPrefix {
                    prefix_len: d[1],
                    prefix: ipv6_at(d, 2),
                })
            }
            IPV4_HOME_ADDRESS => {
                fixed(6)?;
                Some(MhOption::Ipv4HomeAddress {
                    prefix_len: d[0] >> 2,
                    prefix_request: d[0] & 0x02 != 0,
                    addr: ipv4_at(d, 2),
                })
            }
            IPV4_ADDRESS_ACK => {
                fixed(6)?;
                Some(MhOption::Ipv4AddressAck {
                    status: Ipv4AckStatus(d[0]),
                    prefix_len: d[1] >> 2,
                    addr: ipv4_at(d, 2),
                })
            }
            NAT_DETECTION => {
                fixed(6)?;
                Some(MhOption::NatDetection {
                    force_udp: d[0] & 0x80 != 0,
                    refresh_time: be32(d, 2),
                })
            }
            IPV4_COA => {
                fixed(6)?;
                Some(MhOption::Ipv4CareOfAddress(ipv4_at(d, 2)))
            }
            _ => Some(MhOption::Unknown {
                kind,
                data: d.to_vec(),
            }),
        };
        Ok((opt, 2 + len))
    }

    /// Write the option (type, length, data) at `buf[0..2 + data_len]`.
    fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.data_len();
        if len > 255 {
            return Err(Error::Unencodable {
                field: "mh.option.length",
                reason: "option data longer than 255 bytes",
            });
        }
        room(buf, "mh.option", 2 + len)?;
        buf[0] = self.kind();
        buf[1] = len as u8;
        let d = &mut buf[2..2 + len];
        d.fill(0);
        match self {
            MhOption::BindingRefreshAdvice { refresh_interval } => put16(d, 0, *refresh_interval),
            MhOption::AlternateCoa(a) => d.copy_from_slice(&a.octets()),
            MhOption::NonceIndices { home, care_of } => {
                put16(d, 0, *home);
                put16(d, 2, *care_of);
            }
            MhOption::BindingAuthorizationData(a) => d.copy_from_slice(a),
            MhOption::MobileNetworkPrefix { prefix_len, prefix } => {
                d[1] = *prefix_len;
                d[2..].copy_from_slice(&prefix.octets());
            }
            MhOption::Ipv4HomeAddress {
                prefix_len,
                prefix_request,
                addr,
            } => {
                d[0] = six_bits(*prefix_len, "mh.option.ipv4_home_address.prefix_len")? << 2
                    | u8::from(*prefix_request) << 1;
                d[2..].copy_from_slice(&addr.octets());
            }
            MhOption::Ipv4AddressAck {
                status,
                prefix_len,
                addr,
            } => {
                d[0] = status.0;
                d[1] = six_bits(*prefix_len, "mh.option.ipv4_address_ack.prefix_len")? << 2;
                d[2..].copy_from_slice(&addr.octets());
            }
            MhOption::NatDetection {
                force_udp,
                refresh_time,
            } => {
                d[0] = u8::from(*force_udp) << 7;
                put32(d, 2, *refresh_time);
            }
            MhOption::Ipv4CareOfAddress(a) => d[2..].copy_from_slice(&a.octets()),
            MhOption::Unknown { data, .. } => d.copy_from_slice(data),
        }
        Ok(())
    }
}

fn six_bits(v: u8, field: &'static str) -> Result<u8> {
    if v > 63 {
        return Err(Error::Unencodable {
            field,
            reason: "prefix length does not fit in 6 bits",
        });
    }
    Ok(v)
}

/// The RFC name of an option type.
pub fn kind_name(kind: u8) -> &'static str {
    match kind {
        PAD1 => "Pad1",
        PADN => "PadN",
        BINDING_REFRESH_ADVICE => "Binding Refresh Advice",
        ALTERNATE_COA => "Alternate Care-of Address",
        NONCE_INDICES => "Nonce Indices",
        BINDING_AUTH_DATA => "Binding Authorization Data",
        MOBILE_NETWORK_PREFIX => "Mobile Network Prefix",
        IPV4_HOME_ADDRESS => "IPv4 Home Address",
        IPV4_ADDRESS_ACK => "IPv4 Address Acknowledgement",
        NAT_DETECTION => "NAT Detection",
        IPV4_COA => "IPv4 Care-of Address",
        _ => "Unknown",
    }
}

/// Parse the options in `buf`, which starts `base` bytes into the Mobility Header (used only
/// to report offsets from the start of the header).
pub fn parse_options(buf: &[u8], base: usize) -> Result<Vec<MhOption>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let (opt, used) = MhOption::parse(&buf[at..]).map_err(|e| e.shifted(base + at))?;
        out.extend(opt);
        at += used;
    }
    Ok(out)
}

/// Padding needed at offset `off` to reach alignment `(x, y)`.
fn pad_for(off: usize, (x, y): (usize, usize)) -> usize {
    (x + y - off % x) % x
}

/// Length of `opts` laid out from MH offset `start`, including alignment padding and the
/// padding that ends the message on a multiple of 8 octets.
pub fn options_len(opts: &[MhOption], start: usize) -> usize {
    let mut off = start;
    for o in opts {
        off += pad_for(off, o.alignment()) + 2 + o.data_len();
    }
    off += pad_for(off, (8, 0));
    off - start
}

fn emit_pad(buf: &mut [u8], n: usize) {
    match n {
        0 => {}
        1 => buf[0] = PAD1,
        _ => {
            buf[0] = PADN;
            buf[1] = (n - 2) as u8;
            buf[2..n].fill(0);
        }
    }
}

/// Write `opts` into `buf` (which starts at MH offset `start`) with alignment padding and
/// the final padding to 8 octets. Returns the bytes written, `options_len(opts, start)`.
pub fn emit_options(opts: &[MhOption], buf: &mut [u8], start: usize) -> Result<usize> {
    let total = options_len(opts, start);
    room(buf, "mh.options", total)?;
    let mut at = 0;
    for o in opts {
        let pad = pad_for(start + at, o.alignment());
        emit_pad(&mut buf[at..], pad);
        at += pad;
        o.emit(&mut buf[at..])?;
        at += 2 + o.data_len();
    }
    emit_pad(&mut buf[at..], total - at);
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_home_address_bytes_rfc5555_figure_1() {
        // Type 29, Length 6, Prefix-len 24 (6 bits) with P set, Reserved, 192.0.2.0.
        let bytes = [29, 6, (24 << 2) | 0x02, 0, 192, 0, 2, 0];
        let (opt, used) = MhOption::parse(&bytes).unwrap();
        assert_eq!(used, 8);
        let opt = opt.unwrap();
        assert_eq!(
            opt,
            MhOption::Ipv4HomeAddress {
                prefix_len: 24,
                prefix_request: true,
                addr: Ipv4Addr::new(192, 0, 2, 0)
            }
        );
        let mut out = [0u8; 8];
        opt.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn ipv4_address_ack_bytes_rfc5555_figure_4() {
        // Type 30, Length 6, Status 132, Pref-len 0, 0.0.0.0.
        let bytes = [30, 6, 132, 0, 0, 0, 0, 0];
        let (opt, _) = MhOption::parse(&bytes).unwrap();
        assert_eq!(
            opt,
            Some(MhOption::Ipv4AddressAck {
                status: Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE,
                prefix_len: 0,
                addr: Ipv4Addr::UNSPECIFIED
            })
        );
        let bytes = [30, 6, 0, 32 << 2, 192, 0, 2, 77];
        let (opt, _) = MhOption::parse(&bytes).unwrap();
        let opt = opt.unwrap();
        assert_eq!(
            opt,
            MhOption::Ipv4AddressAck {
                status: Ipv4AckStatus::SUCCESS,
                prefix_len: 32,
                addr: Ipv4Addr::new(192, 0, 2, 77)
            }
        );
        let mut out = [0u8; 8];
        opt.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn nat_detection_bytes_rfc5555_figure_5() {
        let bytes = [31, 6, 0x80, 0, 0, 0, 0, 110];
        let (opt, _) = MhOption::parse(&bytes).unwrap();
        let opt = opt.unwrap();
        assert_eq!(
            opt,
            MhOption::NatDetection {
                force_udp: true,
                refresh_time: 110
            }
        );
        let mut out = [0u8; 8];
        opt.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
        let (all_ones, _) = MhOption::parse(&[31, 6, 0, 0, 0xff, 0xff, 0xff, 0xff]).unwrap();
        assert_eq!(
            all_ones,
            Some(MhOption::NatDetection {
                force_udp: false,
                refresh_time: REFRESH_NOT_NEEDED
            })
        );
    }

    #[test]
    fn ipv4_coa_bytes_rfc5555_figure_2() {
        let bytes = [32, 6, 0, 0, 203, 0, 113, 9];
        let (opt, _) = MhOption::parse(&bytes).unwrap();
        let opt = opt.unwrap();
        assert_eq!(
            opt,
            MhOption::Ipv4CareOfAddress(Ipv4Addr::new(203, 0, 113, 9))
        );
        let mut out = [0u8; 8];
        opt.emit(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn rfc6275_options_bytes() {
        let bra = [2, 2, 0x01, 0x2c];
        assert_eq!(
            MhOption::parse(&bra).unwrap().0,
            Some(MhOption::BindingRefreshAdvice {
                refresh_interval: 300
            })
        );
        let ni = [4, 4, 0, 1, 0, 2];
        assert_eq!(
            MhOption::parse(&ni).unwrap().0,
            Some(MhOption::NonceIndices {
                home: 1,
                care_of: 2
            })
        );
        let mut mnp = vec![6, 18, 0, 48];
        mnp.extend_from_slice(&"2001:db8:77::".parse::<Ipv6Addr>().unwrap().octets());
        assert_eq!(
            MhOption::parse(&mnp).unwrap().0,
            Some(MhOption::MobileNetworkPrefix {
                prefix_len: 48,
                prefix: "2001:db8:77::".parse().unwrap()
            })
        );
    }

    #[test]
    fn padding_is_skipped_and_unknown_kept() {
        let buf = [0, 1, 2, 0, 0, 200, 3, 9, 9, 9];
        let opts = parse_options(&buf, 12).unwrap();
        assert_eq!(
            opts,
            vec![MhOption::Unknown {
                kind: 200,
                data: vec![9, 9, 9]
            }]
        );
    }

    #[test]
    fn wrong_length_names_offset() {
        // Options start at MH offset 12; the NAT Detection length octet is at 12 + 4 + 1.
        let buf = [1, 2, 0, 0, 31, 5, 0, 0, 0, 0, 0];
        let e = parse_options(&buf, 12).unwrap_err();
        assert_eq!(e.field(), "mh.option.length");
        assert_eq!(e.offset(), Some(17));
        let e = parse_options(&[32, 6, 0], 12).unwrap_err();
        assert_eq!(e.field(), "mh.option.data");
        assert_eq!(e.offset(), Some(14));
    }

    #[test]
    fn emitter_aligns_4n_after_bu_fixed_part() {
        // After the 12-octet BU fixed part, a 4n option needs no padding; the second one
        // follows directly at 20; the message ends at 28 and is padded to 32 with PadN(2).
        let opts = [
            MhOption::Ipv4HomeAddress {
                prefix_len: 32,
                prefix_request: false,
                addr: Ipv4Addr::UNSPECIFIED,
            },
            MhOption::Ipv4CareOfAddress(Ipv4Addr::new(192, 0, 2, 1)),
        ];
        assert_eq!(options_len(&opts, 12), 20);
        let mut buf = [0xaa; 20];
        emit_options(&opts, &mut buf, 12).unwrap();
        assert_eq!(
            buf,
            [29, 6, 128, 0, 0, 0, 0, 0, 32, 6, 0, 0, 192, 0, 2, 1, 1, 2, 0, 0]
        );
    }

    #[test]
    fn emitter_uses_pad1_for_one_octet() {
        // A 4n option at MH offset 7 needs one octet of padding (Pad1); it then ends at 16,
        // already a multiple of 8.
        let opts = [MhOption::Ipv4CareOfAddress(Ipv4Addr::new(192, 0, 2, 1))];
        let mut buf = [0xaa; 9];
        assert_eq!(emit_options(&opts, &mut buf, 7).unwrap(), 9);
        assert_eq!(buf, [PAD1, IPV4_COA, 6, 0, 0, 192, 0, 2, 1]);
        // At offset 6 two octets are needed: PadN with length 0.
        let mut buf = [0xaa; 10];
        assert_eq!(emit_options(&opts, &mut buf, 6).unwrap(), 10);
        assert_eq!(buf, [PADN, 0, IPV4_COA, 6, 0, 0, 192, 0, 2, 1]);
    }
}
