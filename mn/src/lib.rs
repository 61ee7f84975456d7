//! dsmip mobile node: the sans-IO binding engine of RFC 5555 §4.4 on RFC 6275 §11, and home
//! agent discovery through DNS (RFC 5555 §2.1).
//!
//! - [`engine`]: [`MobileNode`], care-of address selection, the binding update list,
//!   retransmission, refresh, NAT keepalives, deregistration, returning home.
//! - [`config`]: [`MnConfig`], every key with its default.
//! - [`domain`]: administrative domain recognition for the address family rule of §4.4.1.
//! - [`output`]: what the engine hands out: [`Transmit`], [`TunnelFormat`], [`Event`].
//! - [`discovery`]: A / AAAA and SRV `_mip6._ipv6.<domain>` lookups.
//!
//! Nothing here opens a socket for the protocol or reads a clock: time comes in as `now`.

#![forbid(unsafe_code)]

pub mod config;
pub mod discovery;
pub mod domain;
pub mod engine;
pub mod error;
pub mod output;

pub use config::{DomainConfig, HomeAgentConfig, Ipv4Home, MnConfig, NamedDomain, Prefix};
pub use engine::{AddressEvent, BaContext, BaOutcome, Counters, HomeAgentAddrs, MobileNode};
pub use error::{MnError, Result};
pub use output::{BulEntry, CareOf, Event, KeyingEvent, NatState, Transmit, TunnelFormat};
