//! The Mobility Header (RFC 6275 §6.1) and its messages: Binding Refresh Request, HoTI,
//! CoTI, HoT, CoT, Binding Update (with the F flag of RFC 5555 §3.1.3), Binding
//! Acknowledgement and Binding Error. An unknown MH type is kept as raw bytes so that the
//! receiver can answer it with Binding Error status 2 (RFC 6275 §9.2).
//!
//! ```text
//!  0               1               2               3
//! | Payload Proto | Header Len    |   MH Type     |   Reserved    |
//! |           Checksum            |                               |
//! |                       Message Data ...                        |
//! ```
//! Header Len counts 8-octet units after the first 8 octets; the whole header is a multiple
//! of 8 octets; the checksum covers the IPv6 pseudo-header with next header 135.

use std::net::Ipv6Addr;

use super::checksum;
use super::ip::{invalid, IPPROTO_MH, IPPROTO_NONE};
use super::mh_option::{emit_options, options_len, parse_options, MhOption};
use super::{be16, ipv6_at, put16};
use crate::error::{need, room, Error, Result};

mod field {
    pub const PAYLOAD_PROTO: usize = 0;
    pub const HEADER_LEN: usize = 1;
    pub const MH_TYPE: usize = 2;
    pub const CHECKSUM: usize = 4;
    pub const DATA: usize = 6;
}

/// MH Type code point (RFC 6275 §6.1.2 ff.). Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MhType(pub u8);

impl MhType {
    pub const BRR: Self = Self(0);
    pub const HOTI: Self = Self(1);
    pub const COTI: Self = Self(2);
    pub const HOT: Self = Self(3);
    pub const COT: Self = Self(4);
    pub const BU: Self = Self(5);
    pub const BACK: Self = Self(6);
    pub const BE: Self = Self(7);

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Binding Refresh Request",
            1 => "Home Test Init",
            2 => "Care-of Test Init",
            3 => "Home Test",
            4 => "Care-of Test",
            5 => "Binding Update",
            6 => "Binding Acknowledgement",
            7 => "Binding Error",
            _ => "Unknown",
        }
    }

    /// Offset of the first option from the start of the Mobility Header, for known types.
    pub fn options_offset(self) -> Option<usize> {
        match self.0 {
            0 => Some(8),
            1 | 2 => Some(16),
            3 | 4 | 7 => Some(24),
            5 | 6 => Some(12),
            _ => None,
        }
    }
}

/// Binding Update flags (RFC 6275 §6.1.7, RFC 3963 §4.1, RFC 5555 §3.1.3). Reserved bits
/// are kept as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BuFlags(pub u16);

impl BuFlags {
    pub const A: u16 = 0x8000;
    pub const H: u16 = 0x4000;
    pub const L: u16 = 0x2000;
    pub const K: u16 = 0x1000;
    pub const M: u16 = 0x0800;
    pub const R: u16 = 0x0400;
    pub const P: u16 = 0x0200;
    pub const F: u16 = 0x0100;
    pub const T: u16 = 0x0080;
    /// Letters and bits, in wire order.
    pub const NAMED: [(&'static str, u16); 9] = [
        ("A", Self::A),
        ("H", Self::H),
        ("L", Self::L),
        ("K", Self::K),
        ("M", Self::M),
        ("R", Self::R),
        ("P", Self::P),
        ("F", Self::F),
        ("T", Self::T),
    ];

    pub fn has(self, bit: u16) -> bool {
        self.0 & bit == bit
    }

    #[must_use]
    pub fn with(self, bit: u16, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

/// Binding Acknowledgement flags (RFC 6275 §6.1.8, RFC 3963 §4.2). Unknown bits are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct BaFlags(pub u8);

impl BaFlags {
    pub const K: u8 = 0x80;
    pub const R: u8 = 0x40;
    pub const P: u8 = 0x20;
    pub const NAMED: [(&'static str, u8); 3] = [("K", Self::K), ("R", Self::R), ("P", Self::P)];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit == bit
    }

    #[must_use]
    pub fn with(self, bit: u8, on: bool) -> Self {
        if on {
            Self(self.0 | bit)
        } else {
            Self(self.0 & !bit)
        }
    }
}

/// Binding Acknowledgement status (RFC 6275 §6.1.8, RFC 3963 §6.1, RFC 5555 §4.5).
/// Values below 128 mean accepted. Unknown values are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BaStatus(pub u8);

impl BaStatus {
    pub const ACCEPTED: Self = Self(0);
    pub const ACCEPTED_PREFIX_DISCOVERY: Self = Self(1);
    pub const UNSPECIFIED: Self = Self(128);
    pub const ADMIN_PROHIBITED: Self = Self(129);
    pub const INSUFFICIENT_RESOURCES: Self = Self(130);
    pub const HOME_REGISTRATION_NOT_SUPPORTED: Self = Self(131);
    pub const NOT_HOME_SUBNET: Self = Self(132);
    pub const NOT_HOME_AGENT: Self = Self(133);
    pub const DAD_FAILED: Self = Self(134);
    pub const SEQUENCE_OUT_OF_WINDOW: Self = Self(135);
    pub const EXPIRED_HOME_NONCE: Self = Self(136);
    pub const EXPIRED_COA_NONCE: Self = Self(137);
    pub const EXPIRED_NONCES: Self = Self(138);
    pub const REGISTRATION_TYPE_CHANGE: Self = Self(139);
    pub const MR_NOT_PERMITTED: Self = Self(140);
    pub const INVALID_PREFIX: Self = Self(141);
    pub const PREFIX_NOT_AUTHORIZED: Self = Self(142);
    pub const FORWARDING_SETUP_FAILED: Self = Self(143);
    /// RFC 5555 §4.5 refuses a forced-UDP (F flag) request with 144. The IANA registry
    /// lists 144 as MIPV6-ID-MISMATCH (RFC 4285) and has no RFC 5555 entry; dsmip follows
    /// the RFC text, and a receiver must read 144 in the light of what it asked for.
    pub const UDP_ENCAPSULATION_REFUSED: Self = Self(144);

    pub fn is_accepted(self) -> bool {
        self.0 < 128
    }

    pub fn name(self) -> &'static str {
        match self.0 {
            0 => "Binding Update accepted",
            1 => "Accepted but prefix discovery necessary",
            2..=127 => "Accepted (unassigned code)",
            128 => "Reason unspecified",
            129 => "Administratively prohibited",
            130 => "Insufficient resources",
            131 => "Home registration not supported",
            132 => "Not home subnet",
            133 => "Not home agent for this mobile node",
            134 => "Duplicate Address Detection failed",
            135 => "Sequence number out of window",
            136 => "Expired home nonce index",
            137 => "Expired care-of nonce index",
            138 => "Expired nonces",
            139 => "Registration type change disallowed",
            140 => "Mobile Router Operation not permitted",
            141 => "Invalid Prefix",
            142 => "Not Authorized for Prefix",
            143 => "Forwarding Setup failed",
            144 => "Forced UDP encapsulation refused (RFC 5555; IANA: MIPV6-ID-MISMATCH)",
            _ => "Rejected (unassigned code)",
        }
    }
}

/// The fixed part of a Mobility Header message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MhMessage {
    /// RFC 6275 §6.1.2.
    BindingRefreshRequest,
    /// RFC 6275 §6.1.3.
    HomeTestInit { cookie: [u8; 8] },
    /// RFC 6275 §6.1.4.
    CareOfTestInit { cookie: [u8; 8] },
    /// RFC 6275 §6.1.5.
    HomeTest {
        nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    /// RFC 6275 §6.1.6.
    CareOfTest {
        nonce_index: u16,
        cookie: [u8; 8],
        keygen_token: [u8; 8],
    },
    /// RFC 6275 §6.1.7; `lifetime` in units of 4 seconds.
    BindingUpdate {
        sequence: u16,
        flags: BuFlags,
        lifetime: u16,
    },
    /// RFC 6275 §6.1.8; `lifetime` in units of 4 seconds.
    BindingAck {
        status: BaStatus,
        flags: BaFlags,
        sequence: u16,
        lifetime: u16,
    },
    /// RFC 6275 §6.1.9.
    BindingError { status: u8, home_address: Ipv6Addr },
    /// Any other MH type: the message data after the checksum, including padding.
    Unknown { mh_type: u8, data: Vec<u8> },
}

impl MhMessage {
    pub fn mh_type(&self) -> MhType {
        MhType(match self {
            MhMessage::BindingRefreshRequest => 0,
            MhMessage::HomeTestInit { .. } => 1,
            MhMessage::CareOfTestInit { .. } => 2,
            MhMessage::HomeTest { .. } => 3,
            MhMessage::CareOfTest { .. } => 4,
            MhMessage::BindingUpdate { .. } => 5,
            MhMessage::BindingAck { .. } => 6,
            MhMessage::BindingError { .. } => 7,
            MhMessage::Unknown { mh_type, .. } => *mh_type,
        })
    }
}

/// A checked view of a Mobility Header. Once `new_checked` succeeds no accessor panics.
#[derive(Debug, Clone)]
pub struct MhPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> MhPacket<T> {
    /// Check the length rules and Payload Proto (RFC 6275 §9.2). The buffer may run past
    /// the header; the view covers `total_len()` octets.
    pub fn new_checked(buffer: T) -> Result<Self> {
        let b = buffer.as_ref();
        need(b, "mh.header", 0, 8)?;
        if b[field::PAYLOAD_PROTO] != IPPROTO_NONE {
            return Err(invalid(
                "mh.payload_proto",
                field::PAYLOAD_PROTO,
                b[field::PAYLOAD_PROTO],
                "must be 59 (IPPROTO_NONE)",
            ));
        }
        let total = (usize::from(b[field::HEADER_LEN]) + 1) * 8;
        need(b, "mh.message_data", 8, total - 8)?;
        if let Some(min) = MhType(b[field::MH_TYPE]).options_offset() {
            if total < min {
                return Err(invalid(
                    "mh.header_len",
                    field::HEADER_LEN,
                    b[field::HEADER_LEN],
                    "too short for the MH type",
                ));
            }
        }
        Ok(MhPacket { buffer })
    }

    pub fn payload_proto(&self) -> u8 {
        self.buffer.as_ref()[field::PAYLOAD_PROTO]
    }

    pub fn header_len(&self) -> u8 {
        self.buffer.as_ref()[field::HEADER_LEN]
    }

    pub fn mh_type(&self) -> MhType {
        MhType(self.buffer.as_ref()[field::MH_TYPE])
    }

    pub fn checksum(&self) -> u16 {
        be16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Length of the whole Mobility Header in octets.
    pub fn total_len(&self) -> usize {
        (usize::from(self.header_len()) + 1) * 8
    }

    /// The header's octets (the view's extent).
    pub fn as_bytes(&self) -> &[u8] {
        &self.buffer.as_ref()[..self.total_len()]
    }

    /// Verify the checksum against the pseudo-header of RFC 6275 §6.1.1: `src` is the home
    /// address when a Home Address option is present, `dst` the home address when a type 2
    /// routing header is.
    pub fn verify_checksum(&self, src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<()> {
        let bytes = self.as_bytes();
        if checksum::upper_v6(src, dst, IPPROTO_MH, bytes) == 0 {
            return Ok(());
        }
        let mut acc = checksum::pseudo_v6(src, dst, IPPROTO_MH, bytes.len() as u32);
        acc = checksum::sum(acc, &bytes[..field::CHECKSUM]);
        acc = checksum::sum(acc, &bytes[field::DATA..]);
        Err(Error::Checksum {
            field: "mh.checksum",
            offset: field::CHECKSUM,
            found: self.checksum(),
            expected: checksum::finish(acc),
        })
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> MhPacket<T> {
    /// Compute and store the checksum.
    pub fn fill_checksum(&mut self, src: &Ipv6Addr, dst: &Ipv6Addr) {
        let total = self.total_len();
        let b = &mut self.buffer.as_mut()[..total];
        put16(b, field::CHECKSUM, 0);
        let c = checksum::upper_v6(src, dst, IPPROTO_MH, b);
        put16(b, field::CHECKSUM, c);
    }
}

/// A parsed Mobility Header message with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MhRepr {
    pub message: MhMessage,
    /// Empty for an unknown MH type (its options are part of the raw data).
    pub options: Vec<MhOption>,
}

fn array8(b: &[u8], at: usize) -> [u8; 8] {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    a
}

impl MhRepr {
    /// Parse a checked packet. The checksum is not verified here: it needs the IPv6
    /// addresses, see [`MhPacket::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &MhPacket<T>) -> Result<Self> {
        let b = packet.as_bytes();
        let t = packet.mh_type();
        let message = match t.0 {
            0 => MhMessage::BindingRefreshRequest,
            1 => MhMessage::HomeTestInit {
                cookie: array8(b, 8),
            },
            2 => MhMessage::CareOfTestInit {
                cookie: array8(b, 8),
            },
            3 => MhMessage::HomeTest {
                nonce_index: be16(b, 6),
                cookie: array8(b, 8),
                keygen_token: array8(b, 16),
            },
            4 => MhMessage::CareOfTest {
                nonce_index: be16(b, 6),
                cookie: array8(b, 8),
                keygen_token: array8(b, 16),
            },
            5 => MhMessage::BindingUpdate {
                sequence: be16(b, 6),
                flags: BuFlags(be16(b, 8)),
                lifetime: be16(b, 10),
            },
            6 => MhMessage::BindingAck {
                status: BaStatus(b[6]),
                flags: BaFlags(b[7]),
                sequence: be16(b, 8),
                lifetime: be16(b, 10),
            },
            7 => MhMessage::BindingError {
                status: b[6],
                home_address: ipv6_at(b, 8),
            },
            other => {
                return Ok(MhRepr {
                    message: MhMessage::Unknown {
                        mh_type: other,
                        data: b[field::DATA..].to_vec(),
                    },
                    options: Vec::new(),
                })
            }
        };
        // Known types always have an options offset, checked against the length above.
        let start = t.options_offset().unwrap_or(b.len());
        let options = parse_options(&b[start..], start)?;
        Ok(MhRepr { message, options })
    }

    /// Parse a Mobility Header from raw bytes (checks, then parses).
    pub fn parse_bytes(buf: &[u8]) -> Result<Self> {
        Self::parse(&MhPacket::new_checked(buf)?)
    }

    pub fn mh_type(&self) -> MhType {
        self.message.mh_type()
    }

    fn fixed_len(&self) -> usize {
        match &self.message {
            MhMessage::Unknown { data, .. } => field::DATA + data.len(),
            m => m.mh_type().options_offset().unwrap_or(field::DATA),
        }
    }

    /// Length of the emitted header: a multiple of 8 octets.
    pub fn buffer_len(&self) -> usize {
        let fixed = self.fixed_len();
        match &self.message {
            MhMessage::Unknown { .. } => fixed.div_ceil(8) * 8,
            _ => fixed + options_len(&self.options, fixed),
        }
    }

    /// Emit into `buf[..buffer_len()]` with the checksum for `src` → `dst` (see
    /// [`MhPacket::verify_checksum`] for which addresses). Returns the length.
    pub fn emit(&self, buf: &mut [u8], src: &Ipv6Addr, dst: &Ipv6Addr) -> Result<usize> {
        let total = self.buffer_len();
        room(buf, "mh", total)?;
        if total > 256 * 8 {
            return Err(Error::Unencodable {
                field: "mh.header_len",
                reason: "message longer than 2048 octets",
            });
        }
        let b = &mut buf[..total];
        b.fill(0);
        b[field::PAYLOAD_PROTO] = IPPROTO_NONE;
        b[field::HEADER_LEN] = (total / 8 - 1) as u8;
        b[field::MH_TYPE] = self.mh_type().0;
        self.emit_fixed(b);
        if !matches!(self.message, MhMessage::Unknown { .. }) {
            let fixed = self.fixed_len();
            emit_options(&self.options, &mut b[fixed..], fixed)?;
        }
        MhPacket { buffer: &mut *b }.fill_checksum(src, dst);
        Ok(total)
    }

    fn emit_fixed(&self, b: &mut [u8]) {
        match &self.message {
            MhMessage::BindingRefreshRequest => {}
            MhMessage::HomeTestInit { cookie } | MhMessage::CareOfTestInit { cookie } => {
                b[8..16].copy_from_slice(cookie);
            }
            MhMessage::HomeTest {
                nonce_index,
                cookie,
                keygen_token,
            }
            | MhMessage::CareOfTest {
                nonce_index,
                cookie,
                keygen_token,
            } => {
                put16(b, 6, *nonce_index);
                b[8..16].copy_from_slice(cookie);
                b[16..24].copy_from_slice(keygen_token);
            }
            MhMessage::BindingUpdate {
                sequence,
                flags,
                lifetime,
            } => {
                put16(b, 6, *sequence);
                put16(b, 8, flags.0);
                put16(b, 10, *lifetime);
            }
            MhMessage::BindingAck {
                status,
                flags,
                sequence,
                lifetime,
            } => {
                b[6] = status.0;
                b[7] = flags.0;
                put16(b, 8, *sequence);
                put16(b, 10, *lifetime);
            }
            MhMessage::BindingError {
                status,
                home_address,
            } => {
                b[6] = *status;
                b[8..24].copy_from_slice(&home_address.octets());
            }
            MhMessage::Unknown { data, .. } => {
                b[field::DATA..field::DATA + data.len()].copy_from_slice(data);
            }
        }
    }

    /// The first option matching `f`.
    pub fn find<'a, R>(&'a self, f: impl FnMut(&'a MhOption) -> Option<R>) -> Option<R> {
        self.options.iter().find_map(f)
    }
}

/// Lifetime in seconds to the 4-second units of BU / BA; `None` when not a multiple of 4 or
/// too large for 16 bits.
pub fn lifetime_units(seconds: u32) -> Option<u16> {
    if seconds % 4 != 0 {
        return None;
    }
    u16::try_from(seconds / 4).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn a(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    /// A Binding Update built by hand from RFC 6275 §6.1.7 and RFC 5555 §3.1: sequence 7,
    /// A|H|K|F, lifetime 100 (400 s), IPv4 Home Address 0.0.0.0/32, IPv4 CoA 192.0.2.10.
    fn bu_bytes() -> Vec<u8> {
        vec![
            59,
            3,
            5,
            0,
            0,
            0, // proto, hlen 3 (32 octets), type BU, reserved, checksum
            0,
            7,
            0xd1,
            0x00,
            0,
            100, // sequence, A H K F, lifetime
            29,
            6,
            32 << 2,
            0,
            0,
            0,
            0,
            0, // IPv4 HoA at 12 (4n)
            32,
            6,
            0,
            0,
            192,
            0,
            2,
            10, // IPv4 CoA at 20 (4n)
            1,
            2,
            0,
            0, // PadN to 32
        ]
    }

    fn bu_repr() -> MhRepr {
        MhRepr {
            message: MhMessage::BindingUpdate {
                sequence: 7,
                flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K | BuFlags::F),
                lifetime: 100,
            },
            options: vec![
                MhOption::Ipv4HomeAddress {
                    prefix_len: 32,
                    prefix_request: false,
                    addr: Ipv4Addr::UNSPECIFIED,
                },
                MhOption::Ipv4CareOfAddress(Ipv4Addr::new(192, 0, 2, 10)),
            ],
        }
    }

    #[test]
    fn binding_update_bytes() {
        let (src, dst) = (a("2001:db8:1::100"), a("2001:db8:1::1"));
        let mut buf = [0u8; 64];
        let n = bu_repr().emit(&mut buf, &src, &dst).unwrap();
        let mut want = bu_bytes();
        let mut p = MhPacket::new_checked(&mut want[..]).unwrap();
        p.fill_checksum(&src, &dst);
        assert_eq!(&buf[..n], &want[..]);
        let p = MhPacket::new_checked(&buf[..n]).unwrap();
        p.verify_checksum(&src, &dst).unwrap();
        assert_eq!(MhRepr::parse(&p).unwrap(), bu_repr());
        // The checksum depends on the pseudo-header.
        assert!(p.verify_checksum(&a("2001:db8:1::101"), &dst).is_err());
    }

    #[test]
    fn binding_ack_bytes() {
        // Status 0, K, sequence 7, lifetime 100, IPv4 Ack success 192.0.2.77/32, NAT
        // Detection refresh 110 s.
        let want = [
            59,
            3,
            6,
            0,
            0,
            0,
            0,
            0x80,
            0,
            7,
            0,
            100,
            30,
            6,
            0,
            32 << 2,
            192,
            0,
            2,
            77,
            31,
            6,
            0,
            0,
            0,
            0,
            0,
            110,
            1,
            2,
            0,
            0,
        ];
        let r = MhRepr::parse_bytes(&want).unwrap();
        assert_eq!(
            r.message,
            MhMessage::BindingAck {
                status: BaStatus::ACCEPTED,
                flags: BaFlags(BaFlags::K),
                sequence: 7,
                lifetime: 100
            }
        );
        assert_eq!(r.options.len(), 2);
        let (src, dst) = (a("2001:db8:1::1"), a("2001:db8:1::100"));
        let mut buf = [0u8; 32];
        r.emit(&mut buf, &src, &dst).unwrap();
        assert_eq!(&buf[..4], &want[..4]);
        assert_eq!(&buf[6..], &want[6..]);
    }

    #[test]
    fn binding_error_and_rr_messages() {
        let hoa = a("2001:db8:1::100");
        let mut be = vec![59, 2, 7, 0, 0, 0, 2, 0];
        be.extend_from_slice(&hoa.octets());
        assert_eq!(
            MhRepr::parse_bytes(&be).unwrap().message,
            MhMessage::BindingError {
                status: 2,
                home_address: hoa
            }
        );
        let hoti = [59, 1, 1, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(
            MhRepr::parse_bytes(&hoti).unwrap().message,
            MhMessage::HomeTestInit {
                cookie: [1, 2, 3, 4, 5, 6, 7, 8]
            }
        );
        let mut hot = vec![59, 2, 3, 0, 0, 0, 0, 9];
        hot.extend_from_slice(&[1; 8]);
        hot.extend_from_slice(&[2; 8]);
        assert_eq!(
            MhRepr::parse_bytes(&hot).unwrap().message,
            MhMessage::HomeTest {
                nonce_index: 9,
                cookie: [1; 8],
                keygen_token: [2; 8]
            }
        );
        let brr = [59, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            MhRepr::parse_bytes(&brr).unwrap().message,
            MhMessage::BindingRefreshRequest
        );
    }

    #[test]
    fn unknown_type_is_kept() {
        let raw = [59, 0, 42, 0, 0, 0, 0xde, 0xad];
        let r = MhRepr::parse_bytes(&raw).unwrap();
        assert_eq!(
            r.message,
            MhMessage::Unknown {
                mh_type: 42,
                data: vec![0xde, 0xad]
            }
        );
        let mut out = [0u8; 8];
        r.emit(&mut out, &Ipv6Addr::LOCALHOST, &Ipv6Addr::LOCALHOST)
            .unwrap();
        assert_eq!(&out[6..], &[0xde, 0xad]);
    }

    #[test]
    fn malformed_headers_name_field_and_offset() {
        let mut b = bu_bytes();
        b[0] = 6;
        let e = MhRepr::parse_bytes(&b).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("mh.payload_proto", Some(0)));
        let e = MhRepr::parse_bytes(&bu_bytes()[..24]).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("mh.message_data", Some(8)));
        let e = MhRepr::parse_bytes(&[59, 0, 5, 0, 0, 0, 0, 0]).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("mh.header_len", Some(1)));
        let mut b = bu_bytes();
        b[13] = 7; // IPv4 HoA length 7
        let e = MhRepr::parse_bytes(&b).unwrap_err();
        assert_eq!((e.field(), e.offset()), ("mh.option.length", Some(13)));
    }

    #[test]
    fn checksum_error_reports_expected() {
        let (src, dst) = (a("2001:db8::1"), a("2001:db8::2"));
        let mut buf = [0u8; 32];
        bu_repr().emit(&mut buf, &src, &dst).unwrap();
        let good = be16(&buf, 4);
        buf[4] ^= 0xff;
        let e = MhPacket::new_checked(&buf[..])
            .unwrap()
            .verify_checksum(&src, &dst)
            .unwrap_err();
        assert!(matches!(e, Error::Checksum { offset: 4, expected, .. } if expected == good));
    }

    #[test]
    fn lifetime_units_rule() {
        assert_eq!(lifetime_units(400), Some(100));
        assert_eq!(lifetime_units(401), None);
        assert_eq!(lifetime_units(4 * 65535), Some(65535));
        assert_eq!(lifetime_units(4 * 65536), None);
    }

    /// Emit `r`, check it against `want` (checksum filled in for `want` too), parse back.
    fn bytes_both_ways(r: &MhRepr, mut want: Vec<u8>) {
        let (src, dst) = (a("2001:db8:1::100"), a("2001:db8:1::1"));
        MhPacket::new_checked(&mut want[..])
            .unwrap()
            .fill_checksum(&src, &dst);
        let mut buf = vec![0u8; r.buffer_len()];
        r.emit(&mut buf, &src, &dst).unwrap();
        assert_eq!(buf, want);
        assert_eq!(&MhRepr::parse_bytes(&want).unwrap(), r);
    }

    #[test]
    fn every_message_emits_rfc6275_layout() {
        let plain = |message| MhRepr {
            message,
            options: vec![],
        };
        // BRR (§6.1.2): reserved 16 bits, no options: 8 octets.
        bytes_both_ways(
            &plain(MhMessage::BindingRefreshRequest),
            vec![59, 0, 0, 0, 0, 0, 0, 0],
        );
        // HoTI / CoTI (§6.1.3, §6.1.4): reserved, 64-bit cookie.
        let mut hoti = vec![59, 1, 1, 0, 0, 0, 0, 0];
        hoti.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        bytes_both_ways(
            &plain(MhMessage::HomeTestInit {
                cookie: [1, 2, 3, 4, 5, 6, 7, 8],
            }),
            hoti.clone(),
        );
        hoti[2] = 2;
        bytes_both_ways(
            &plain(MhMessage::CareOfTestInit {
                cookie: [1, 2, 3, 4, 5, 6, 7, 8],
            }),
            hoti,
        );
        // HoT / CoT (§6.1.5, §6.1.6): nonce index, cookie, keygen token.
        let mut hot = vec![59, 2, 3, 0, 0, 0, 0x12, 0x34];
        hot.extend_from_slice(&[0xc0; 8]);
        hot.extend_from_slice(&[0x70; 8]);
        bytes_both_ways(
            &plain(MhMessage::HomeTest {
                nonce_index: 0x1234,
                cookie: [0xc0; 8],
                keygen_token: [0x70; 8],
            }),
            hot.clone(),
        );
        hot[2] = 4;
        bytes_both_ways(
            &plain(MhMessage::CareOfTest {
                nonce_index: 0x1234,
                cookie: [0xc0; 8],
                keygen_token: [0x70; 8],
            }),
            hot,
        );
        // BE (§6.1.9): status 1, reserved, home address.
        let mut be = vec![59, 2, 7, 0, 0, 0, 1, 0];
        be.extend_from_slice(&a("2001:db8:1::100").octets());
        bytes_both_ways(
            &plain(MhMessage::BindingError {
                status: 1,
                home_address: a("2001:db8:1::100"),
            }),
            be,
        );
    }

    #[test]
    fn ba_with_rfc6275_options_bytes() {
        // A BA with Binding Refresh Advice (2n) at 12; then a BU with Nonce Indices (2n),
        // Binding Authorization Data (8n+2) and Alternate CoA (8n+6).
        let ba = MhRepr {
            message: MhMessage::BindingAck {
                status: BaStatus::ACCEPTED,
                flags: BaFlags::default(),
                sequence: 1,
                lifetime: 2,
            },
            options: vec![MhOption::BindingRefreshAdvice {
                refresh_interval: 75,
            }],
        };
        bytes_both_ways(&ba, vec![59, 1, 6, 0, 0, 0, 0, 0, 0, 1, 0, 2, 2, 2, 0, 75]);
        let coa = a("2001:db8:10::2");
        let bu = MhRepr {
            message: MhMessage::BindingUpdate {
                sequence: 3,
                flags: BuFlags(BuFlags::A),
                lifetime: 4,
            },
            options: vec![
                MhOption::NonceIndices {
                    home: 5,
                    care_of: 6,
                },
                MhOption::BindingAuthorizationData(vec![0xaa; 12]),
                MhOption::AlternateCoa(coa),
            ],
        };
        let mut want = vec![59, 6, 5, 0, 0, 0, 0, 3, 0x80, 0, 0, 4];
        want.extend_from_slice(&[4, 4, 0, 5, 0, 6]); // Nonce Indices at 12 (2n)
        want.extend_from_slice(&[5, 12]); // BAD at 18 = 8*2+2
        want.extend_from_slice(&[0xaa; 12]);
        want.extend_from_slice(&[1, 4, 0, 0, 0, 0]); // PadN to 38 = 8*4+6
        want.extend_from_slice(&[3, 16]);
        want.extend_from_slice(&coa.octets()); // Alternate CoA ends at 56
        assert_eq!(want.len(), 56);
        bytes_both_ways(&bu, want);
    }
}
