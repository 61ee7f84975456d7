//! ESP, the data plane's security (RFC 4303), with what surrounds it:
//!
//! - [`transform`]: AES-GCM-16 128/256 (RFC 4106), ChaCha20-Poly1305 (RFC 7634),
//!   AES-CBC with HMAC-SHA-256-128 (RFC 3602, RFC 4868), sealing and opening in place.
//! - [`replay`]: the anti-replay window with extended sequence numbers (RFC 4303 §3.4.3,
//!   Appendix A).
//! - [`sa`]: one direction of an SA: framing and padding, sequence numbers, counters,
//!   soft and hard lifetimes, events.
//! - [`sad`]: the SAD keyed by SPI (RFC 4301 §4.4.2).
//! - [`natt`]: UDP encapsulation on port 4500 (RFC 3948): the non-ESP marker, NAT
//!   keepalives, transport-mode checksum repair.
//! - [`transport`]: ESP transport mode (RFC 4303 §3.1.1), the §5.2.1 BU/BA protection.
//! - [`tunnel`]: ESP tunnel mode and the formats of RFC 5555 §5.2.2 (IPv4 / UDP 4500 / ESP
//!   and the combined NAT format), built on [`crate::wire::tunnel`].
//!
//! Everything works in caller-owned buffers and is sans-IO: no clock, no randomness (IVs
//! are derived from the sequence number, see `transform.rs`).
//!
//! Errors: [`EspError`] wraps the crate's wire [`Error`](crate::Error) for malformed input
//! and adds the verdicts of ESP processing (authentication, replay, lifetimes).

pub mod natt;
pub mod replay;
pub mod sa;
pub mod sad;
pub mod transform;
pub mod transport;
pub mod tunnel;

use thiserror::Error;

pub use replay::{ReplayReason, ReplayWindow};
pub use sa::{Counters, Inbound, InboundSa, Lifetime, Limit, OutboundSa, SaConfig, SaEvent};
pub use sad::Sad;
pub use transform::{EspCipher, Transform, ESP_HEADER_LEN, ICV_LEN};

/// Why an ESP packet was not sealed or not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EspError {
    /// Malformed input or an output buffer too small (names field and offset).
    #[error(transparent)]
    Wire(#[from] crate::Error),
    /// The ICV did not verify (RFC 4303 §3.4.4): the packet is dropped and counted.
    #[error("esp.icv at byte {offset}: authentication failed (SPI {spi:#010x}, sequence {seq})")]
    Auth { spi: u32, seq: u64, offset: usize },
    /// Refused by the anti-replay window (RFC 4303 §3.4.3).
    #[error("esp.sequence at byte 4: {seq} refused, {} (SPI {spi:#010x})", reason.as_str())]
    Replay {
        spi: u32,
        seq: u64,
        reason: ReplayReason,
    },
    /// No inbound SA has this SPI (RFC 4303 §3.4.2: discard, audit).
    #[error("esp.spi at byte 0: no SA for SPI {spi:#010x}")]
    UnknownSpi { spi: u32 },
    /// SPI values 0..=255 are reserved (RFC 4303 §2.1).
    #[error("esp.spi: {spi} is reserved")]
    ReservedSpi { spi: u32 },
    /// The key material has the wrong length for the transform.
    #[error("key material: {transform} needs {need} octets, {have} given")]
    KeyLength {
        transform: &'static str,
        need: usize,
        have: usize,
    },
    /// The outbound sequence space is used up (RFC 4303 §3.3.3); rekey.
    #[error("SA {spi:#010x}: sequence numbers exhausted, rekey needed")]
    SequenceExhausted { spi: u32 },
    /// The SA passed a hard lifetime and refuses traffic.
    #[error("SA {spi:#010x}: hard {limit:?} lifetime reached")]
    Expired { spi: u32, limit: Limit },
}
