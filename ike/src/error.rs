//! The crate's one error type: every variant says which field, at which offset, or
//! which peer rule was broken.

use thiserror::Error;

/// Errors from parsing, crypto and the exchange state machine.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The input ended inside `field`, which starts at `offset`.
    #[error("truncated {field} at offset {offset}")]
    Truncated { field: &'static str, offset: usize },
    /// A length field disagrees with the data around it.
    #[error("bad length {len} in {field} at offset {offset}")]
    BadLength {
        field: &'static str,
        offset: usize,
        len: usize,
    },
    /// A field holds a value the RFC does not allow here.
    #[error("bad value {value} in {field} at offset {offset}")]
    BadValue {
        field: &'static str,
        offset: usize,
        value: u32,
    },
    /// A payload with the critical bit set that we do not understand (RFC 7296 §2.5).
    #[error("unsupported critical payload type {payload} at offset {offset}")]
    UnsupportedCritical { payload: u8, offset: usize },
    /// A payload that the exchange does not allow (RFC 7296 §1, §3).
    #[error("payload type {payload} not allowed in exchange {exchange} ({direction})")]
    Disallowed {
        payload: u8,
        exchange: u8,
        direction: &'static str,
    },
    /// A payload the exchange requires is missing.
    #[error("payload type {payload} missing from exchange {exchange} ({direction})")]
    Missing {
        payload: u8,
        exchange: u8,
        direction: &'static str,
    },
    /// The SK payload's integrity check or AEAD tag failed.
    #[error("integrity check failed on the SK payload")]
    Integrity,
    /// A crypto primitive failed (bad key share, wrong key length).
    #[error("crypto failure: {0}")]
    Crypto(&'static str),
    /// A proposal string in strongSwan syntax could not be read.
    #[error("bad proposal {0:?}: {1}")]
    Proposal(String, &'static str),
    /// The peer answered with an error notify.
    #[error("peer sent notify {0}")]
    PeerNotify(u16),
    /// The peer did something the exchange does not allow.
    #[error("peer misbehaved: {0}")]
    PeerMisbehaved(&'static str),
    /// The operation is not valid in the SA's current state.
    #[error("invalid state: {0}")]
    State(&'static str),
}

/// Result alias for this crate.
pub type Result<T> = core::result::Result<T, Error>;
