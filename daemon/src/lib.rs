//! What the two daemons, `dsmip-ha` and `dsmip-mn`, share and nothing else: ESP SAs from a
//! negotiated CHILD_SA ([`child`]), log set-up and
//! the runtime ([`log`]), the control socket and its client ([`control`]), the TUN device
//! with its reader thread ([`tun`]), routes and neighbour proxies over rtnetlink
//! ([`netlink`]), iproute2 and nft commands plus packet address peeking ([`net`]), and the
//! sockets and nftables table for Mobile IPv6 on a kernel without it ([`mip6`]), and the
//! pre-shared key that is never printed ([`psk`]). Protocol
//! logic stays in the `ha`, `mn`, `ike` and `mipsec` crates.

pub mod child;
pub mod control;
pub mod log;
pub mod mip6;
pub mod net;
pub mod netlink;
pub mod psk;
pub mod tun;
