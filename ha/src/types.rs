//! The types a driver (and the mobile node's scenario tests) exchange with the engine: what
//! the IPsec boundary passes in with a Binding Update ([`RxContext`], RFC 5555 §5.1, RFC 4877),
//! and what comes out ([`Verdict`], [`Reply`], [`Event`], [`Route`], [`Counters`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use mipsec::wire::mh::MhRepr;
use mipsec::wire::tunnel::{Encap, Outer};

/// How the packet carrying the Binding Update reached the home agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Native IPv6 (the care-of address is the IPv6 source or an Alternate CoA option).
    Ipv6,
    /// IPv6 in IPv4 (protocol 41) from this outer IPv4 source.
    Ipv4 { src: Ipv4Addr },
    /// IPv6 in UDP/4191 in IPv4 (RFC 5555 §4.1) from this outer source address and port.
    Udp { src: Ipv4Addr, src_port: u16 },
}

impl Transport {
    /// The outer IPv4 source, for the IPv4 transports.
    pub fn outer_v4(&self) -> Option<Ipv4Addr> {
        match *self {
            Transport::Ipv6 => None,
            Transport::Ipv4 { src } | Transport::Udp { src, .. } => Some(src),
        }
    }
}

/// The IPsec SA that protected the Binding Update (RFC 4877 §4.1: the BU MUST be protected
/// by ESP in transport mode; the SA is bound to one IPv6 home address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaInfo {
    /// Inbound SPI, for logs and counters.
    pub spi: u32,
    /// The IPv6 home address the SA authenticates (the IKE identity's home address).
    pub home_address: Ipv6Addr,
}

/// What the receive path knows about a Binding Update besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxContext {
    pub transport: Transport,
    /// Source of the (inner) IPv6 header.
    pub ipv6_src: Ipv6Addr,
    /// Destination of the (inner) IPv6 header: the home agent address the BU was sent to.
    pub ipv6_dst: Ipv6Addr,
    /// The Home Address destination option, when present (RFC 6275 §6.3).
    pub home_address_option: Option<Ipv6Addr>,
    /// The SA that protected the BU, or `None` when none did.
    pub sa: Option<SaInfo>,
}

impl RxContext {
    /// The home address the BU is about: the Home Address option, else the IPv6 source
    /// (an IPv4-transported BU carries the home address as IPv6 source, RFC 5555 §4.2).
    pub fn home_address(&self) -> Ipv6Addr {
        self.home_address_option.unwrap_or(self.ipv6_src)
    }
}

/// Inner address family of a tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V6,
    V4,
}

/// One tunnel from the home agent to a mobile node: inner family, outer addresses and
/// encapsulation. Together these name the six formats of RFC 5555 §4.1: IPv6 or IPv4 in
/// IPv6, IPv6 or IPv4 in IPv4, and IPv6 or IPv4 in UDP/4191 (ports in `encap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tunnel {
    pub inner: Family,
    pub outer: Outer,
    pub encap: Encap,
}

/// What the driver must do to the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    TunnelInstall {
        hoa: Ipv6Addr,
        tunnel: Tunnel,
    },
    TunnelUpdate {
        hoa: Ipv6Addr,
        old: Tunnel,
        new: Tunnel,
    },
    TunnelRemove {
        hoa: Ipv6Addr,
        tunnel: Tunnel,
    },
    /// Defend the IPv6 home address on the home link (RFC 6275 §10.4.1).
    ProxyNdpAdd(Ipv6Addr),
    ProxyNdpRemove(Ipv6Addr),
    /// Answer ARP for the IPv4 home address on the home link (RFC 5555 §4.5).
    ProxyArpAdd(Ipv4Addr),
    ProxyArpRemove(Ipv4Addr),
    /// Route (and advertise) a prefix of the mobile node: an IPv4 home prefix (RFC 5555 §4.5)
    /// or a mobile network prefix (RFC 3963 §6.2).
    RouteAdd {
        hoa: Ipv6Addr,
        prefix: IpNet,
    },
    RouteRemove {
        hoa: Ipv6Addr,
        prefix: IpNet,
    },
    /// A K-flag binding moved: the IKE SA must follow the new care-of address (RFC 6275
    /// §11.7.1, RFC 4877 §4.4).
    CareOfChanged {
        hoa: Ipv6Addr,
        old_coa: IpAddr,
        new_coa: IpAddr,
    },
    /// A binding (all of it) reached the end of its lifetime.
    BindingExpired {
        hoa: Ipv6Addr,
    },
}

/// Where and how to send a Binding Acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyPath {
    /// Native IPv6 to `dst` with a type 2 routing header holding the home address when
    /// `dst` differs from it (RFC 6275 §9.5.4).
    Ipv6 { dst: Ipv6Addr },
    /// IPv6 in IPv4 (protocol 41).
    Ipv4 { src: Ipv4Addr, dst: Ipv4Addr },
    /// IPv6 in UDP in IPv4, back to the source address and port of the BU (RFC 5555 §4.2).
    Udp {
        src: Ipv4Addr,
        dst: Ipv4Addr,
        src_port: u16,
        dst_port: u16,
    },
}

/// A Binding Acknowledgement and how to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub ba: MhRepr,
    /// IPv6 source: the home agent address.
    pub src: Ipv6Addr,
    /// The mobile node's home address: the final IPv6 destination and the checksum's
    /// pseudo-header destination.
    pub hoa: Ipv6Addr,
    pub path: ReplyPath,
}

impl Reply {
    /// Emit the Mobility Header with its checksum into `buf`; returns the length.
    pub fn emit_mh(&self, buf: &mut [u8]) -> mipsec::Result<usize> {
        self.ba.emit(buf, &self.src, &self.hoa)
    }
}

/// Why a Binding Update was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Checksum or format error in the Mobility Header.
    Malformed,
    /// The MH message is not a Binding Update.
    NotBindingUpdate,
    /// No IPsec SA protected it (RFC 4877 §4.1).
    Unprotected,
    /// The SA authenticates another home address (RFC 4877 §4.3).
    SaHomeAddressMismatch,
    /// H flag clear: a correspondent registration, which this node does not serve
    /// (RFC 6275 §9.5.1 silently discards one without return routability options).
    NotHomeRegistration,
    /// Arrived over IPv4 without an IPv4 Care-of Address option (RFC 5555 §2.3.2 MUST).
    MissingIpv4CareOf,
}

impl DropReason {
    pub const ALL: [DropReason; 6] = [
        DropReason::Malformed,
        DropReason::NotBindingUpdate,
        DropReason::Unprotected,
        DropReason::SaHomeAddressMismatch,
        DropReason::NotHomeRegistration,
        DropReason::MissingIpv4CareOf,
    ];
}

/// The engine's answer to one Binding Update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Send this Binding Acknowledgement.
    Reply(Box<Reply>),
    /// Accepted; the A flag was clear so no acknowledgement is sent (RFC 6275 §9.5.4).
    Accepted,
    Dropped(DropReason),
}

impl Verdict {
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Verdict::Reply(r) => Some(r),
            _ => None,
        }
    }
}

/// Counters, for the driver's statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub bu_received: u64,
    pub accepted: u64,
    /// Answered with a status of 128 or more.
    pub rejected: u64,
    pub deregistered: u64,
    pub expired: u64,
    /// IPv4 Address Acknowledgements with a failure status.
    pub ipv4_refused: u64,
    /// Lease store writes that failed (the IPv4 part was refused with status 128).
    pub store_errors: u64,
    /// Drops, indexed like [`DropReason::ALL`].
    pub dropped: [u64; 6],
}

impl Counters {
    pub fn dropped(&self, r: DropReason) -> u64 {
        self.dropped[r as usize]
    }
}

/// Where a packet for an inner destination goes: the binding it belongs to and the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub hoa: Ipv6Addr,
    pub outer: Outer,
    pub encap: Encap,
}
