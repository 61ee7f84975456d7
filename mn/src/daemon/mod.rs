//! The `dsmip-mn` daemon: a tokio driver around the sans-IO [`mn::engine::MobileNode`] and
//! the `ike` initiator. Compiled into the binary (`src/bin/dsmip-mn.rs` includes this
//! folder), so the library keeps no tokio dependency in its API. `mn/DAEMON.md` says what
//! is implemented and what is not.

pub mod config;
pub mod dataplane;
pub mod datasa;
pub mod ipsec;
pub mod ipv6;
pub mod outer;
pub mod run;
pub mod serve;
pub mod status;
pub mod watch;
