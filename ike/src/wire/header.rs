//! The 28-octet IKE header (RFC 7296 §3.1).

use super::{ExchangeType, PayloadType, Reader};
use crate::error::{Error, Result};

/// Length of the IKE header.
pub const HEADER_LEN: usize = 28;
/// Major version 2, minor 0 (RFC 7296 §3.1).
pub const VERSION: u8 = 0x20;

/// Header flags (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// Sent by the original initiator of the IKE SA.
    pub const INITIATOR: u8 = 0x08;
    /// Version: the sender could speak a higher major version.
    pub const VERSION: u8 = 0x10;
    /// This message is a response.
    pub const RESPONSE: u8 = 0x20;
    pub fn initiator(self) -> bool {
        self.0 & Self::INITIATOR != 0
    }
    pub fn response(self) -> bool {
        self.0 & Self::RESPONSE != 0
    }
}

/// A parsed IKE header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spi_i: u64,
    pub spi_r: u64,
    pub next_payload: PayloadType,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Total message length including this header.
    pub length: u32,
}

impl Header {
    /// Parses the header; checks the version and that `length` equals the datagram length.
    pub fn parse(buf: &[u8]) -> Result<Header> {
        let mut r = Reader::new(buf, 0);
        let spi_i = u64::from_be_bytes(r.bytes(8, "IKE SPIi")?.try_into().unwrap_or([0; 8]));
        let spi_r = u64::from_be_bytes(r.bytes(8, "IKE SPIr")?.try_into().unwrap_or([0; 8]));
        let next_payload = PayloadType(r.u8("next payload")?);
        let version = r.u8("version")?;
        // RFC 7296 §3.1: a major version above 2 must be answered INVALID_MAJOR_VERSION.
        if version >> 4 != 2 {
            return Err(Error::BadValue {
                field: "major version",
                offset: 17,
                value: version as u32 >> 4,
            });
        }
        let exchange = ExchangeType(r.u8("exchange type")?);
        let flags = Flags(r.u8("flags")?);
        let message_id = r.u32("message ID")?;
        let length = r.u32("length")?;
        if length as usize != buf.len() || (length as usize) < HEADER_LEN {
            return Err(Error::BadLength {
                field: "IKE header length",
                offset: 24,
                len: length as usize,
            });
        }
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            exchange,
            flags,
            message_id,
            length,
        })
    }

    /// Writes the 28 octets; `length` is taken from `self`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.spi_i.to_be_bytes());
        out.extend_from_slice(&self.spi_r.to_be_bytes());
        out.push(self.next_payload.0);
        out.push(VERSION);
        out.push(self.exchange.0);
        out.push(self.flags.0);
        out.extend_from_slice(&self.message_id.to_be_bytes());
        out.extend_from_slice(&self.length.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // An IKE_SA_INIT request header with no payloads, built by hand from RFC 7296 §3.1.
    const HDR: [u8; 28] = [
        0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, // SPIi
        0, 0, 0, 0, 0, 0, 0, 0, // SPIr
        0, 0x20, 34, 0x08, // next payload, version, exchange, flags (I)
        0, 0, 0, 0, // message ID
        0, 0, 0, 28, // length
    ];

    #[test]
    fn parse_and_emit_round_trip() {
        let h = Header::parse(&HDR).unwrap();
        assert_eq!(h.spi_i, 0x1122334455667788);
        assert_eq!(h.exchange, ExchangeType::IKE_SA_INIT);
        assert!(h.flags.initiator() && !h.flags.response());
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out, HDR);
    }

    #[test]
    fn rejects_bad_version_and_length() {
        let mut b = HDR;
        b[17] = 0x30;
        assert!(matches!(
            Header::parse(&b),
            Err(Error::BadValue {
                field: "major version",
                ..
            })
        ));
        let mut b = HDR;
        b[27] = 29;
        assert!(matches!(Header::parse(&b), Err(Error::BadLength { .. })));
        assert!(matches!(
            Header::parse(&HDR[..20]),
            Err(Error::Truncated { .. })
        ));
    }
}
