//! What the two daemons, `dsmip-ha` and `dsmip-mn`, share and nothing else: log set-up and
//! the runtime ([`log`]), the control socket and its client ([`control`]), the TUN device
//! with its reader thread ([`tun`]), routes and neighbour proxies over rtnetlink
//! ([`netlink`]), and iproute2 commands plus packet address peeking ([`net`]). Protocol logic stays in the `ha`, `mn`, `ike` and `mipsec` crates.

pub mod control;
pub mod log;
pub mod net;
pub mod netlink;
pub mod tun;
