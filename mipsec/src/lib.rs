//! Mobile IPv6 over IPsec: the formats every part of dsmip speaks.
//!
//! - [`wire`]: zero-copy views and `*Repr` codecs for the Mobility Header (RFC 6275 §6.1),
//!   its options including the four DSMIPv6 options (RFC 5555 §3), the Home Address
//!   destination option, the type 2 routing header, the ICMPv6 messages of RFC 6275 §6.5–6.8,
//!   the IPv4 / IPv6 / UDP headers and the tunnel formats of RFC 5555 §4.1.
//! - [`pcap`]: a raw-IP pcap writer and reader for tests and tools.
//! - [`spd`]: the Security Policy Database with RFC 4301 selectors, MH type included.
//!
//! - [`esp`]: ESP transforms, anti-replay and the SAD (RFC 4303, RFC 3948).
//! - `io` (cargo feature `io`): the driver pieces the daemons share: TUN devices, raw and UDP
//!   sockets with batching. It is the one part that does IO, and is kept behind a feature.
//!
//! Apart from `io`, nothing here opens a socket or reads a clock.

#![cfg_attr(not(feature = "io"), forbid(unsafe_code))]

pub mod error;
pub mod esp;
#[cfg(feature = "io")]
pub mod io;
pub mod pcap;
pub mod spd;
pub mod wire;

pub use error::{Error, Result};
