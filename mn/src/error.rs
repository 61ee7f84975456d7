//! The one error type of the mobile node crate: configuration that cannot work, input the
//! engine refuses, and DNS discovery failures. Each variant names the field or the message.

use thiserror::Error;

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum MnError {
    /// A configuration key holds a value the engine cannot use.
    #[error("configuration key {key}: {reason}")]
    Config {
        key: &'static str,
        reason: &'static str,
    },
    /// A received Mobility Header is not a Binding Acknowledgement.
    #[error("mh.mh_type: expected a Binding Acknowledgement, got MH type {mh_type}")]
    NotBindingAck { mh_type: u8 },
    /// A Binding Acknowledgement came from an address that is not our home agent.
    #[error("ba.source: {found} is not the home agent's address")]
    WrongSource { found: std::net::IpAddr },
    /// A Binding Acknowledgement that no IPsec SA protected (RFC 4877 §4.1).
    #[error("ba.ipsec: not protected by the home agent's security association")]
    Unprotected,
    /// A Binding Acknowledgement arrived with nothing pending and no matching sequence.
    #[error("ba.sequence at byte 8: {sequence} does not match an outstanding Binding Update")]
    UnexpectedSequence { sequence: u16 },
    /// An operation needs something the engine does not have yet.
    #[error("{operation}: {reason}")]
    NotPossible {
        operation: &'static str,
        reason: &'static str,
    },
    /// A wire codec error while building a packet.
    #[error("wire: {0}")]
    Wire(#[from] mipsec::Error),
    /// Home agent discovery through DNS failed.
    #[error("dns {query}: {reason}")]
    Dns { query: String, reason: String },
}

pub type Result<T> = core::result::Result<T, MnError>;
