//! What the engine hands to its driver: the Binding Update to send with its addresses and
//! encapsulation ([`Transmit`]), the tunnel format for traffic from the home addresses
//! ([`TunnelFormat`], RFC 5555 §4.4.3), events, and keying events for IKE (§5.1).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use mipsec::wire::ip::{IPPROTO_DSTOPTS, IPPROTO_MH};
use mipsec::wire::tunnel::{
    encapsulate, encapsulated_len, Encap, Outer, TunnelParams, DEFAULT_OUTER_TTL,
};
use mipsec::wire::{BaStatus, DestOptsRepr, Ipv4AckStatus, Ipv6Repr, MhRepr};

use crate::error::Result;

/// A care-of address. `private` marks an IPv4 address from a private range, where a NAT
/// is expected between the mobile node and its home agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CareOf {
    V6(Ipv6Addr),
    V4 { addr: Ipv4Addr, private: bool },
}

impl CareOf {
    pub fn ip(&self) -> IpAddr {
        match self {
            CareOf::V6(a) => IpAddr::V6(*a),
            CareOf::V4 { addr, .. } => IpAddr::V4(*addr),
        }
    }

    pub fn is_v4(&self) -> bool {
        matches!(self, CareOf::V4 { .. })
    }
}

/// A Binding Update ready to be protected and sent.
///
/// The driver applies ESP transport mode to the IPv6 packet (RFC 4877, keyed on the home
/// address) and then, when `outer` is set, wraps it in UDP/IPv4 to port 4191 with
/// [`mipsec::wire::tunnel::encapsulate`]; [`Transmit::emit`] does both steps without ESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The Binding Update with its options.
    pub mh: MhRepr,
    /// IPv6 source: the IPv6 care-of address, or the home address from an IPv4 care-of
    /// address (RFC 5555 §4.4.2) or at home.
    pub ipv6_src: Ipv6Addr,
    /// The home agent's IPv6 address.
    pub ipv6_dst: Ipv6Addr,
    /// Home Address destination option (RFC 6275 §6.3), set when `ipv6_src` is a care-of
    /// address.
    pub home_address_option: Option<Ipv6Addr>,
    /// UDP/IPv4 outer header, always UDP to 4191 from an IPv4 care-of address (§4.2).
    pub outer: Option<TunnelParams>,
    /// The home address the MH checksum covers (RFC 6275 §6.1.1).
    pub hoa: Ipv6Addr,
}

impl Transmit {
    /// The sequence number of the Binding Update.
    pub fn sequence(&self) -> u16 {
        match self.mh.message {
            mipsec::wire::MhMessage::BindingUpdate { sequence, .. } => sequence,
            _ => 0,
        }
    }

    /// Length of the unprotected IPv6 packet.
    pub fn ipv6_len(&self) -> usize {
        let dst = self.dest_opts().map_or(0, |d| d.buffer_len());
        Ipv6Repr::HEADER_LEN + dst + self.mh.buffer_len()
    }

    fn dest_opts(&self) -> Option<DestOptsRepr> {
        self.home_address_option
            .map(|h| DestOptsRepr::home_address(IPPROTO_MH, h))
    }

    /// Write the unprotected IPv6 packet (header, Home Address option, MH) into `buf`.
    pub fn emit_ipv6(&self, buf: &mut [u8]) -> Result<usize> {
        let total = self.ipv6_len();
        let dst = self.dest_opts();
        let payload_len = u16::try_from(total - Ipv6Repr::HEADER_LEN).map_err(|_| {
            mipsec::Error::Unencodable {
                field: "ipv6.payload_length",
                reason: "Binding Update too long",
            }
        })?;
        Ipv6Repr {
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            payload_len,
            next_header: if dst.is_some() {
                IPPROTO_DSTOPTS
            } else {
                IPPROTO_MH
            },
            hop_limit: DEFAULT_OUTER_TTL,
            src: self.ipv6_src,
            dst: self.ipv6_dst,
        }
        .emit(buf)?;
        let mut at = Ipv6Repr::HEADER_LEN;
        if let Some(d) = dst {
            at += d.emit(&mut buf[at..])?;
        }
        at += self.mh.emit(&mut buf[at..], &self.hoa, &self.ipv6_dst)?;
        Ok(at)
    }

    /// Write the whole packet as it leaves the mobile node (without ESP) into `out`,
    /// replacing its contents; `scratch` holds the inner packet while it is wrapped.
    pub fn emit(&self, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> Result<usize> {
        let inner_len = self.ipv6_len();
        match &self.outer {
            None => {
                out.resize(inner_len, 0);
                self.emit_ipv6(out)
            }
            Some(p) => {
                scratch.resize(inner_len, 0);
                self.emit_ipv6(scratch)?;
                out.resize(encapsulated_len(p, inner_len), 0);
                Ok(encapsulate(p, scratch, out)?)
            }
        }
    }
}

/// The tunnel for traffic from the home addresses (RFC 5555 §4.4.3). The outer header is
/// the same for inner IPv6 and inner IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelFormat {
    pub outer: Outer,
    pub encap: Encap,
    /// Inner IPv6 source.
    pub hoa: Ipv6Addr,
    /// Inner IPv4 source, when an IPv4 home address is bound; IPv4 traffic is not tunnelled
    /// otherwise.
    pub hoa4: Option<Ipv4Addr>,
}

impl TunnelFormat {
    /// Parameters for [`mipsec::wire::tunnel::encapsulate`] for a packet the mobile node
    /// originates.
    pub fn params(&self, identification: u16) -> TunnelParams {
        TunnelParams {
            outer: self.outer,
            encap: self.encap,
            outer_ttl: DEFAULT_OUTER_TTL,
            identification,
            udp_checksum_v4: true,
            forwarding: false,
        }
    }
}

/// NAT traversal state learned from the last Binding Acknowledgement (RFC 5555 §4.2, §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatState {
    /// The home agent saw a NAT (the NAT Detection option with a refresh time other than
    /// all ones).
    pub nat_detected: bool,
    /// Traffic goes in UDP (NAT, or forced UDP).
    pub udp: bool,
    /// Period of the binding refreshes that keep the NAT binding, if any are needed.
    pub keepalive: Option<Duration>,
}

/// What IKE needs to follow a movement (RFC 5555 §5.1). The ordering with IKE itself comes
/// with the keying interface; these events carry everything it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyingEvent {
    /// A Binding Update for a new care-of address is about to go out. Protect it with the
    /// home address SA but send it from `coa`, without moving the tunnel yet: packets keep
    /// arriving on the old care-of address until the acknowledgement.
    CareOfAddressProposed { coa: CareOf, home_agent: IpAddr },
    /// The home agent accepted the care-of address. Move the tunnel-mode SA endpoints to
    /// `coa` ↔ `home_agent` with the UDP state in `nat`, then update the IKE SA: an empty
    /// INFORMATIONAL when `k_acknowledged` (the home agent follows the address), otherwise
    /// renegotiate.
    CareOfAddressConfirmed {
        coa: CareOf,
        home_agent: IpAddr,
        nat: NatState,
        k_acknowledged: bool,
    },
}

/// Something the driver should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The home agent accepted a registration.
    Registered {
        coa: CareOf,
        lifetime: Duration,
        ipv4_home: Option<(Ipv4Addr, u8)>,
    },
    /// Install this tunnel for traffic from the home addresses (`None`: remove it).
    TunnelChanged(Option<TunnelFormat>),
    /// Three IPv6 attempts failed; now registering the IPv4 care-of address (§4.4.1).
    FellBackToIpv4 {
        from: Ipv6Addr,
        to: Ipv4Addr,
    },
    /// The home agent refused the IPv4 home address (IPv4 Address Acknowledgement failure).
    Ipv4HomeRefused {
        status: Ipv4AckStatus,
    },
    /// The acknowledgement had no IPv4 Address Acknowledgement: this home agent does not
    /// support IPv4 home addresses and the option is not sent to it again (§2.3.1).
    Ipv4HomeUnsupported,
    /// The home agent refused a Binding Update.
    Rejected {
        status: BaStatus,
    },
    /// The home agent refused forced UDP (status 144); resent without F.
    ForcedUdpRefused,
    /// The binding expired without a successful refresh.
    BindingExpired,
    /// A deregistration was acknowledged: no binding is left.
    Deregistered,
    /// Returned home over IPv6 and deregistered.
    AtHome,
    /// An IPv4 address on the IPv4 home address was configured: returning home over IPv4 is
    /// not supported (RFC 5555 §4.4.4), the address is not used as a care-of address.
    Ipv4ReturnHomeUnsupported {
        addr: Ipv4Addr,
    },
    /// No usable care-of address or home agent address: nothing can be registered.
    NoRoute,
    Keying(KeyingEvent),
}

/// A binding update list entry (RFC 6275 §11.1; one per home address, RFC 5555 §4.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulEntry {
    pub home: IpAddr,
    /// Prefix length of the IPv4 home address or prefix (128 for the IPv6 home address).
    pub prefix_len: u8,
    pub coa: CareOf,
    pub home_agent: IpAddr,
    pub sequence: u16,
    pub lifetime: Duration,
    /// When the binding ends, counted from when the Binding Update was sent.
    pub expires: std::time::Instant,
    /// Traffic to this home address's tunnel goes in UDP.
    pub udp: bool,
}
