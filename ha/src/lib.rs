//! dsmip home agent: the sans-IO binding engine of RFC 6275 home registration with the
//! DSMIPv6 rules of RFC 5555 §4.5, and durable IPv4 home address leases.
//!
//! # Using the engine
//!
//! A driver (the later `dsmip-ha` daemon, or a test) owns one [`HomeAgent`]:
//!
//! - [`HomeAgent::new`] with a [`HaConfig`] (serde `Deserialize`, read from TOML), the lease
//!   file path, and the current `Instant` and `SystemTime` ([`HomeAgent::in_memory`] keeps
//!   leases in memory, for scenario tests);
//! - [`HomeAgent::handle_bu`] (parsed) or [`HomeAgent::handle_bu_bytes`] (raw Mobility
//!   Header, checksum verified) with an [`RxContext`]: how the BU arrived ([`Transport`]),
//!   the IPv6 source, destination and Home Address option, and the IPsec SA that protected
//!   it ([`SaInfo`]). The answer is a [`Verdict`]: a [`Reply`] (the Binding Acknowledgement
//!   and the [`ReplyPath`] to send it on), `Accepted` (A flag clear) or a counted drop;
//! - [`HomeAgent::poll_event`] for data plane [`Event`]s (tunnels with their exact
//!   [`Tunnel`] format, proxy NDP / ARP, prefix routes, care-of changes for IKE, expiry);
//! - [`HomeAgent::poll_timeout`] / [`HomeAgent::handle_timeout`] for lifetimes;
//! - [`HomeAgent::route`] (or [`HomeAgent::route_batch`]) for the forwarding lookup of an
//!   inner destination;
//! - [`HomeAgent::mobile_prefix_advertisement`] to answer a Mobile Prefix Solicitation.
//!
//! ```no_run
//! # use std::time::{Instant, SystemTime};
//! # fn main() -> Result<(), ha::Error> {
//! let cfg = ha::HaConfig::new(
//!     "2001:db8:1::1".parse().unwrap(),
//!     "192.0.2.1".parse().unwrap(),
//!     vec!["2001:db8:1::/64".parse().unwrap()],
//! );
//! let mut agent = ha::HomeAgent::new(cfg, "leases.redb".as_ref(), Instant::now(), SystemTime::now())?;
//! while let Some(ev) = agent.poll_event() {
//!     println!("{ev:?}");
//! }
//! # Ok(()) }
//! ```
//!
//! The rules, with their RFC sections, and every configuration key are in `ha/README.md`.

#![forbid(unsafe_code)]

mod apply;
pub mod cache;
pub mod config;
pub mod engine;
pub mod error;
mod ipv4;
pub mod lease;
mod pool;
pub mod types;

pub use cache::{Binding, Ipv4Binding};
pub use config::{HaConfig, LeaseDurability, MobileNodeConfig, PoolConfig, NATKATIMEOUT};
pub use engine::HomeAgent;
pub use error::{Error, Result};
pub use lease::Lease;
pub use types::{
    Counters, DropReason, Event, Family, Reply, ReplyPath, Route, RxContext, SaInfo, Transport,
    Tunnel, Verdict,
};
