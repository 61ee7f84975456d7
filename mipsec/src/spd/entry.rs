//! One SPD entry (RFC 4301 §4.4.1.2): selectors, the directions it applies to, and its
//! action (PROTECT with the SA it needs, BYPASS or DISCARD); and the packet key it is
//! matched against.

use std::net::IpAddr;

use super::selector::{AddrSel, PortSel, ProtoSel};

/// Packet direction, seen from the node that owns the SPD.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Out,
    In,
}

/// The directions an entry applies to (RFC 4301 keeps one SPD per direction; an entry
/// marked for both appears in both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Dirs {
    pub outbound: bool,
    pub inbound: bool,
}

impl Dirs {
    pub const BOTH: Self = Self {
        outbound: true,
        inbound: true,
    };
    pub const OUT: Self = Self {
        outbound: true,
        inbound: false,
    };
    pub const IN: Self = Self {
        outbound: false,
        inbound: true,
    };

    pub fn has(self, d: Direction) -> bool {
        match d {
            Direction::Out => self.outbound,
            Direction::In => self.inbound,
        }
    }

    pub fn covers(self, o: Self) -> bool {
        (self.outbound || !o.outbound) && (self.inbound || !o.inbound)
    }

    pub fn intersects(self, o: Self) -> bool {
        (self.outbound && o.outbound) || (self.inbound && o.inbound)
    }
}

/// ESP mode of the SA a PROTECT entry asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    Transport,
    Tunnel,
}

/// What a PROTECT entry needs from the keying side (RFC 4301 §4.4.1.2 "processing info";
/// RFC 5555 §5.2.1 "Initiate using IDi = user_1 to address home_agent_1").
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Protect {
    pub mode: Mode,
    /// IKE peer address to initiate to (the home agent, seen from a mobile node).
    pub peer: Option<IpAddr>,
    /// Our IKE identity (IDi when we initiate).
    pub local_id: Option<String>,
    /// The identity the peer must prove (a mobile node's, seen from the home agent).
    pub remote_id: Option<String>,
    /// ESP proposals in strongSwan's notation (`aes128gcm16`), most preferred first.
    pub proposals: Vec<String>,
}

/// RFC 4301 §4.4.1: PROTECT, BYPASS or DISCARD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    Protect(Protect),
    Bypass,
    Discard,
}

impl Action {
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Protect(_) => "protect",
            Action::Bypass => "bypass",
            Action::Discard => "discard",
        }
    }
}

/// One entry of the ordered SPD.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpdEntry {
    pub name: String,
    pub dirs: Dirs,
    pub local: AddrSel,
    pub remote: AddrSel,
    pub proto: ProtoSel,
    /// Local port, or for ICMP / MH the message types this node may *send*.
    pub local_port: PortSel,
    /// Remote port, or for ICMP / MH the message types this node may *receive*.
    pub remote_port: PortSel,
    pub action: Action,
}

/// The port part of a packet's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ports {
    /// TCP, UDP, SCTP: both ports known.
    Pair { local: u16, remote: u16 },
    /// ICMP or MH: type << 8 | code (MH: code 0).
    Message(u16),
    /// Not available: a protocol without ports, a non-initial fragment.
    Opaque,
}

/// What the SPD is searched with: the selector values of one packet (RFC 4301 §5.1 step 1
/// outbound, §5.2 inbound), local and remote as seen from this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Packet {
    pub dir: Direction,
    pub local: IpAddr,
    pub remote: IpAddr,
    pub proto: Option<u8>,
    pub ports: Ports,
}

impl Packet {
    /// A packet from `src` to `dst` in direction `dir`; local and remote follow from it.
    pub fn new(dir: Direction, src: IpAddr, dst: IpAddr, proto: Option<u8>, ports: Ports) -> Self {
        let (local, remote) = match dir {
            Direction::Out => (src, dst),
            Direction::In => (dst, src),
        };
        Self {
            dir,
            local,
            remote,
            proto,
            ports,
        }
    }

    /// Transport ports given as source and destination port of the packet.
    pub fn src_dst_ports(dir: Direction, sport: u16, dport: u16) -> Ports {
        match dir {
            Direction::Out => Ports::Pair {
                local: sport,
                remote: dport,
            },
            Direction::In => Ports::Pair {
                local: dport,
                remote: sport,
            },
        }
    }
}

/// Which selector rejected a packet (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mismatch {
    Direction,
    LocalAddress,
    RemoteAddress,
    Protocol,
    LocalPort,
    RemotePort,
}

impl Mismatch {
    pub fn describe(self) -> &'static str {
        match self {
            Mismatch::Direction => "direction",
            Mismatch::LocalAddress => "local address",
            Mismatch::RemoteAddress => "remote address",
            Mismatch::Protocol => "protocol",
            Mismatch::LocalPort => "local port / message type",
            Mismatch::RemotePort => "remote port / message type",
        }
    }
}

impl SpdEntry {
    /// The first selector that rejects `p`, or `None` when the entry matches.
    pub fn mismatch(&self, p: &Packet) -> Option<Mismatch> {
        if !self.dirs.has(p.dir) {
            return Some(Mismatch::Direction);
        }
        if !self.local.matches(p.local) {
            return Some(Mismatch::LocalAddress);
        }
        if !self.remote.matches(p.remote) {
            return Some(Mismatch::RemoteAddress);
        }
        if !self.proto.matches(p.proto) {
            return Some(Mismatch::Protocol);
        }
        match p.ports {
            Ports::Pair { local, remote } => {
                if !self.local_port.matches(Some(local)) {
                    return Some(Mismatch::LocalPort);
                }
                if !self.remote_port.matches(Some(remote)) {
                    return Some(Mismatch::RemotePort);
                }
            }
            // RFC 4301 §4.4.1.1 B: the local "port" says which message types may be sent,
            // the remote one which may be received.
            Ports::Message(v) => match p.dir {
                Direction::Out if !self.local_port.matches(Some(v)) => {
                    return Some(Mismatch::LocalPort)
                }
                Direction::In if !self.remote_port.matches(Some(v)) => {
                    return Some(Mismatch::RemotePort)
                }
                _ => {}
            },
            Ports::Opaque => {
                if !self.local_port.matches(None) {
                    return Some(Mismatch::LocalPort);
                }
                if !self.remote_port.matches(None) {
                    return Some(Mismatch::RemotePort);
                }
            }
        }
        None
    }

    pub fn matches(&self, p: &Packet) -> bool {
        self.mismatch(p).is_none()
    }

    /// Every packet that matches `other` also matches `self` (a sufficient test: it may miss
    /// a cover that only holds through a combination of selectors, never claims a false one).
    pub fn covers(&self, other: &Self) -> bool {
        if !(self.dirs.covers(other.dirs)
            && self.local.covers(&other.local)
            && self.remote.covers(&other.remote)
            && self.proto.covers(&other.proto))
        {
            return false;
        }
        let both = self.local_port.covers(&other.local_port)
            && self.remote_port.covers(&other.remote_port);
        if both || !is_message_proto(other.proto) {
            return both;
        }
        // ICMP / MH: an outbound packet is judged by the local selector only, an inbound
        // one by the remote selector only (RFC 4301 §4.4.1.1 B).
        let opaque_ok = !(other.local_port.matches(None) && other.remote_port.matches(None))
            || (self.local_port.matches(None) && self.remote_port.matches(None));
        (!other.dirs.outbound || self.local_port.covers(&other.local_port))
            && (!other.dirs.inbound || self.remote_port.covers(&other.remote_port))
            && opaque_ok
    }

    /// Some packet could match both entries (may say yes when no packet does, never no
    /// when one does).
    pub fn intersects(&self, other: &Self) -> bool {
        if !(self.dirs.intersects(other.dirs)
            && self.local.intersects(&other.local)
            && self.remote.intersects(&other.remote)
            && self.proto.intersects(&other.proto))
        {
            return false;
        }
        let pair = self.local_port.intersects(&other.local_port)
            && self.remote_port.intersects(&other.remote_port);
        let out = self.dirs.outbound
            && other.dirs.outbound
            && self.local_port.intersects(&other.local_port);
        let inb = self.dirs.inbound
            && other.dirs.inbound
            && self.remote_port.intersects(&other.remote_port);
        pair || out || inb
    }
}

/// Protocols whose "port" selector carries a message type (RFC 4301 §4.4.1.1).
pub fn is_message_proto(p: ProtoSel) -> bool {
    matches!(p, ProtoSel::Is(1 | 58 | 135))
}
