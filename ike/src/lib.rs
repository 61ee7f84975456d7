//! dsmip keying: a sans-IO IKEv2 engine (RFC 7296) for Mobile IPv6 (RFC 4877, RFC 5555 §5).
//!
//! - [`wire`]: the IKE header and every RFC 7296 payload, the per-exchange payload tables.
//! - [`crypto`]: transforms (AES-GCM-16, ChaCha20-Poly1305, AES-CBC + HMAC-SHA2), PRFs,
//!   key exchange groups 14, 15, 19, 20, 31, and the key schedule of RFC 7296 §2.13–2.17.
//! - [`proposal`]: strongSwan-syntax proposals and proposal selection (RFC 7296 §2.7).
//! - [`sa`]: the IKE SA state machine (`handle_datagram`, `handle_timeout`, `poll_transmit`,
//!   `poll_event`); it never touches a socket or a clock.

#![forbid(unsafe_code)]

pub mod cert;
pub mod crypto;
pub mod error;
pub mod proposal;
pub mod sa;
pub mod wire;

pub use error::{Error, Result};
