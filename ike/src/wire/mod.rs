//! IKEv2 formats only (RFC 7296 §3): the header, every payload, and which payloads each
//! exchange allows. Code points are newtypes that keep unknown values.

pub mod header;
pub mod payload;
pub mod rules;
pub mod sa;
pub mod ts;

pub use header::{Flags, Header, HEADER_LEN};
pub use payload::{
    parse_chain, AuthRepr, CertRepr, DeleteRepr, IdRepr, KeRepr, NotifyRepr, Payload,
};
pub use sa::{Attribute, ProposalRepr, TransformRepr};
pub use ts::{CpAttribute, CpRepr, TrafficSelector};

use crate::error::{Error, Result};

macro_rules! codepoint {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The registry name, or `None` for a value we do not know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 { $($v => Some(stringify!($c)),)* _ => None }
            }
        }
    };
}

codepoint!(
    /// Exchange type (RFC 7296 §3.1).
    ExchangeType(u8) {
        IKE_SA_INIT = 34, IKE_AUTH = 35, CREATE_CHILD_SA = 36, INFORMATIONAL = 37,
    }
);

codepoint!(
    /// Payload type (RFC 7296 §3.2).
    PayloadType(u8) {
        NONE = 0, SA = 33, KE = 34, IDI = 35, IDR = 36, CERT = 37, CERTREQ = 38, AUTH = 39,
        NONCE = 40, NOTIFY = 41, DELETE = 42, VENDOR = 43, TSI = 44, TSR = 45, SK = 46,
        CP = 47, EAP = 48, SKF = 53,
    }
);

codepoint!(
    /// Security protocol identifier (RFC 7296 §3.3.1).
    ProtocolId(u8) { IKE = 1, AH = 2, ESP = 3 }
);

codepoint!(
    /// Notify message type (RFC 7296 §3.10.1 and later registrations).
    NotifyType(u16) {
        UNSUPPORTED_CRITICAL_PAYLOAD = 1, INVALID_IKE_SPI = 4, INVALID_MAJOR_VERSION = 5,
        INVALID_SYNTAX = 7, INVALID_MESSAGE_ID = 9, INVALID_SPI = 11,
        NO_PROPOSAL_CHOSEN = 14, INVALID_KE_PAYLOAD = 17, AUTHENTICATION_FAILED = 24,
        SINGLE_PAIR_REQUIRED = 34, NO_ADDITIONAL_SAS = 35, INTERNAL_ADDRESS_FAILURE = 36,
        FAILED_CP_REQUIRED = 37, TS_UNACCEPTABLE = 38, INVALID_SELECTORS = 39,
        TEMPORARY_FAILURE = 43, CHILD_SA_NOT_FOUND = 44,
        INITIAL_CONTACT = 16384, SET_WINDOW_SIZE = 16385, ADDITIONAL_TS_POSSIBLE = 16386,
        IPCOMP_SUPPORTED = 16387, NAT_DETECTION_SOURCE_IP = 16388,
        NAT_DETECTION_DESTINATION_IP = 16389, COOKIE = 16390, USE_TRANSPORT_MODE = 16391,
        HTTP_CERT_LOOKUP_SUPPORTED = 16392, REKEY_SA = 16393,
        ESP_TFC_PADDING_NOT_SUPPORTED = 16394, NON_FIRST_FRAGMENTS_ALSO = 16395,
        MOBIKE_SUPPORTED = 16396, ADDITIONAL_IP4_ADDRESS = 16397,
        ADDITIONAL_IP6_ADDRESS = 16398, NO_ADDITIONAL_ADDRESSES = 16399,
        UPDATE_SA_ADDRESSES = 16400, COOKIE2 = 16401, NO_NATS_ALLOWED = 16402,
        MULTIPLE_AUTH_SUPPORTED = 16404, IKEV2_FRAGMENTATION_SUPPORTED = 16430,
        SIGNATURE_HASH_ALGORITHMS = 16431,
    }
);

impl NotifyType {
    /// Error types are below 16384 (RFC 7296 §3.10.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

/// Big-endian reader over a byte slice that reports the absolute offset of a short read.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Reader { buf, pos: 0, base }
    }
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }
    pub(crate) fn bytes(&mut self, n: usize, field: &'static str) -> Result<&'a [u8]> {
        if self.remaining() < n {
            return Err(Error::Truncated {
                field,
                offset: self.offset(),
            });
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let s = &self.buf[self.pos..];
        self.pos = self.buf.len();
        s
    }
    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8> {
        Ok(self.bytes(1, field)?[0])
    }
    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16> {
        let b = self.bytes(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32> {
        let b = self.bytes(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codepoint_names_and_unknowns() {
        assert_eq!(PayloadType(33).name(), Some("SA"));
        assert_eq!(PayloadType(99).name(), None);
        assert!(NotifyType::INVALID_KE_PAYLOAD.is_error());
        assert!(!NotifyType::COOKIE.is_error());
    }

    #[test]
    fn reader_reports_offset() {
        let mut r = Reader::new(&[1, 2, 3], 10);
        assert_eq!(r.u16("a").unwrap(), 0x0102);
        assert_eq!(
            r.u16("b"),
            Err(Error::Truncated {
                field: "b",
                offset: 12
            })
        );
    }
}
