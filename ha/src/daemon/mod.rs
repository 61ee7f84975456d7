//! The `dsmip-ha` daemon: a tokio driver around the sans-IO [`ha::HomeAgent`]. Compiled
//! into the binary (`src/bin/dsmip-ha.rs` includes this folder), so the library keeps no
//! tokio dependency in its API. `ha/DAEMON.md` says what is implemented and what is not.

pub mod config;
pub mod dataplane;
pub mod datasa;
pub mod ipsec;
pub mod ipv6;
pub mod raw;
pub mod report;
pub mod run;
pub mod rx;
pub mod serve;
