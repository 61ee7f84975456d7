//! The checked policy: what a policy file says once every name, address and number in it
//! has been read, each with the place it came from.

use std::net::IpAddr;

use mipsec::spd::{AddrRange, Dirs, Family, Mode, PortSel, ProtoSel};

use crate::error::Loc;

/// Whose SPD the file describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    HomeAgent,
    MobileNode,
}

/// Symbolic addresses, bound from the daemon's configuration (or from the file's
/// `home_agent` keys and `[[mobile_node]]` / `[[pool]]` tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symbol {
    HomeAgent,
    HomeAgentV4,
    HomeAddress,
    HomeAddressV4,
    CareOfAddress,
    CareOfAddressV4,
}

impl Symbol {
    pub const ALL: [Symbol; 6] = [
        Symbol::HomeAgent,
        Symbol::HomeAgentV4,
        Symbol::HomeAddress,
        Symbol::HomeAddressV4,
        Symbol::CareOfAddress,
        Symbol::CareOfAddressV4,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Symbol::HomeAgent => "home_agent",
            Symbol::HomeAgentV4 => "home_agent_v4",
            Symbol::HomeAddress => "home_address",
            Symbol::HomeAddressV4 => "home_address_v4",
            Symbol::CareOfAddress => "care_of_address",
            Symbol::CareOfAddressV4 => "care_of_address_v4",
        }
    }

    pub fn from_name(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }

    /// Bound once per mobile node (as opposed to once per file).
    pub fn per_mobile_node(self) -> bool {
        !matches!(self, Symbol::HomeAgent | Symbol::HomeAgentV4)
    }

    pub fn family(self) -> Family {
        match self {
            Symbol::HomeAgent | Symbol::HomeAddress | Symbol::CareOfAddress => Family::V6,
            _ => Family::V4,
        }
    }
}

/// An address selector as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrExpr {
    Any,
    /// A symbol, or with `negated` every address of its family except it (RFC 5555
    /// §5.2.2 `remote_address != home_agent`).
    Symbol {
        sym: Symbol,
        negated: bool,
    },
    Literal {
        addr: IpAddr,
        negated: bool,
    },
    /// A prefix or an explicit `lo-hi` range.
    Range(AddrRange),
}

impl AddrExpr {
    /// Which families the selector can hold: (v4, v6).
    pub fn families(&self) -> (bool, bool) {
        let f = match self {
            AddrExpr::Any => return (true, true),
            AddrExpr::Symbol { sym, .. } => sym.family(),
            AddrExpr::Literal { addr, .. } => Family::of(*addr),
            AddrExpr::Range(r) => r.family(),
        };
        (f == Family::V4, f == Family::V6)
    }

    pub fn per_mobile_node(&self) -> bool {
        matches!(self, AddrExpr::Symbol { sym, .. } if sym.per_mobile_node())
    }
}

/// A string with `{identity}`, `{name}` placeholders filled per mobile node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(pub String);

impl Template {
    pub fn per_mobile_node(&self) -> bool {
        self.0.contains('{')
    }
}

/// `start_action` for the keying daemon (strongSwan's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Trap,
    Start,
    None,
}

impl Start {
    pub fn name(self) -> &'static str {
        match self {
            Start::Trap => "trap",
            Start::Start => "start",
            Start::None => "none",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectSpec {
    pub mode: Mode,
    pub peer: Option<(AddrExpr, Loc)>,
    pub initiate_as: Option<(Template, Loc)>,
    pub peer_id: Option<(Template, Loc)>,
    pub proposals: Vec<String>,
    pub start: Start,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionSpec {
    Protect(Box<ProtectSpec>),
    Bypass,
    Discard,
}

/// One `[[rule]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub name: String,
    /// Where the rule's table starts.
    pub at: Loc,
    pub dirs: Dirs,
    pub local: (AddrExpr, Loc),
    pub remote: (AddrExpr, Loc),
    pub proto: ProtoSel,
    pub local_port: PortSel,
    pub remote_port: PortSel,
    pub action: ActionSpec,
}

impl Rule {
    /// A template: expanded once per mobile node.
    pub fn per_mobile_node(&self) -> bool {
        let mut per = self.local.0.per_mobile_node() || self.remote.0.per_mobile_node();
        if let ActionSpec::Protect(p) = &self.action {
            per |= p.peer.as_ref().is_some_and(|(e, _)| e.per_mobile_node());
            per |= p
                .initiate_as
                .as_ref()
                .is_some_and(|(t, _)| t.per_mobile_node());
            per |= p.peer_id.as_ref().is_some_and(|(t, _)| t.per_mobile_node());
        }
        per
    }
}

/// The per-mobile-node bindings.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MobileNode {
    pub name: String,
    pub identity: Option<String>,
    pub home_address: Option<IpAddr>,
    pub home_address_v4: Option<IpAddr>,
    pub care_of_address: Option<IpAddr>,
    pub care_of_address_v4: Option<IpAddr>,
}

impl MobileNode {
    pub fn symbol(&self, s: Symbol) -> Option<IpAddr> {
        match s {
            Symbol::HomeAddress => self.home_address,
            Symbol::HomeAddressV4 => self.home_address_v4,
            Symbol::CareOfAddress => self.care_of_address,
            Symbol::CareOfAddressV4 => self.care_of_address_v4,
            Symbol::HomeAgent | Symbol::HomeAgentV4 => None,
        }
    }
}

/// What the symbols are bound to: the daemon builds this from its configuration; a policy
/// file may carry its own (`Policy::bindings`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bindings {
    pub home_agent: Option<IpAddr>,
    pub home_agent_v4: Option<IpAddr>,
    pub mobile_nodes: Vec<MobileNode>,
}

/// Defaults applied to every protect rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Defaults {
    pub proposals: Vec<String>,
    pub ike_proposals: Vec<String>,
    pub auth: String,
}

/// A whole checked policy file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub file: String,
    pub role: Role,
    pub defaults: Defaults,
    pub rules: Vec<Rule>,
    pub bindings: Bindings,
}
