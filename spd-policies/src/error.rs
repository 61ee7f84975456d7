//! The crate's one error type: every variant says where (file:line:column, 1-based, the
//! column counted in characters) and which field.

use std::fmt;

use thiserror::Error;

/// A position in a policy file.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Loc {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

fn hint(s: &Option<String>) -> String {
    s.as_ref()
        .map(|s| format!(" (did you mean `{s}`?)"))
        .unwrap_or_default()
}

/// A mistake in a policy file, or a file that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("{file}: cannot read: {reason}")]
    Io { file: String, reason: String },
    #[error("{at}: TOML syntax: {reason}")]
    Syntax { at: Loc, reason: String },
    #[error("{at}: {field}: unknown key{}", hint(suggestion))]
    UnknownKey {
        at: Loc,
        field: String,
        suggestion: Option<String>,
    },
    #[error("{at}: {field}: missing")]
    Missing { at: Loc, field: String },
    #[error("{at}: {field}: expected {expected}")]
    WrongType {
        at: Loc,
        field: String,
        expected: &'static str,
    },
    #[error("{at}: {field}: unsupported version {value} (this tool reads version 1)")]
    BadVersion { at: Loc, field: String, value: i64 },
    #[error("{at}: {field}: `{value}` is not one of {allowed}")]
    UnknownName {
        at: Loc,
        field: String,
        value: String,
        allowed: String,
    },
    #[error("{at}: {field}: unknown protocol `{value}` (MH, ICMPv6, ICMP, TCP, UDP, SCTP, ESP, AH, any or 0-255)")]
    UnknownProtocol {
        at: Loc,
        field: String,
        value: String,
    },
    #[error("{at}: {field}: unknown MH type `{value}` (BRR, HoTI, CoTI, HoT, CoT, BU, BAck, BE or 0-255)")]
    UnknownMhType {
        at: Loc,
        field: String,
        value: String,
    },
    #[error("{at}: {field}: unknown ICMP type `{value}` for {proto}")]
    UnknownIcmpType {
        at: Loc,
        field: String,
        value: String,
        proto: &'static str,
    },
    #[error("{at}: {field}: an MH type needs protocol = \"MH\", this rule has {proto}")]
    MhTypeWithoutMh {
        at: Loc,
        field: String,
        proto: String,
    },
    #[error("{at}: {field}: an ICMP type needs protocol ICMP or ICMPv6, this rule has {proto}")]
    IcmpTypeWithoutIcmp {
        at: Loc,
        field: String,
        proto: String,
    },
    #[error("{at}: {field}: ports need protocol TCP, UDP or SCTP, this rule has {proto}")]
    PortsWithoutPorts {
        at: Loc,
        field: String,
        proto: String,
    },
    #[error("{at}: {field}: bad port `{value}`: {reason}")]
    BadPort {
        at: Loc,
        field: String,
        value: String,
        reason: &'static str,
    },
    #[error("{at}: {field}: bad address `{value}`: {reason}")]
    BadAddress {
        at: Loc,
        field: String,
        value: String,
        reason: String,
    },
    #[error("{at}: {field}: unknown symbol `{value}`{}", hint(suggestion))]
    UnknownSymbol {
        at: Loc,
        field: String,
        value: String,
        suggestion: Option<String>,
    },
    #[error("{at}: {field}: duplicate name `{value}`, first used at {first}")]
    Duplicate {
        at: Loc,
        field: String,
        value: String,
        first: Loc,
    },
    #[error("{at}: {field}: {reason}")]
    BadName {
        at: Loc,
        field: String,
        reason: &'static str,
    },
    #[error("{at}: {field}: only a rule with action = \"protect\" takes this key")]
    OnlyForProtect { at: Loc, field: String },
    #[error("{at}: {field}: local and remote can never be of the same address family ({local} vs {remote})")]
    FamilyMismatch {
        at: Loc,
        field: String,
        local: &'static str,
        remote: &'static str,
    },
    #[error("{at}: {field}: {reason}")]
    BadPool {
        at: Loc,
        field: String,
        reason: String,
    },
    #[error("{at}: {field}: symbol `{symbol}` is not bound for mobile node `{mobile_node}`")]
    Unbound {
        at: Loc,
        field: String,
        symbol: String,
        mobile_node: String,
    },
    #[error("{at}: {field}: {reason}")]
    BadTemplate {
        at: Loc,
        field: String,
        reason: String,
    },
    #[error("{at}: {field}: {reason}")]
    Role {
        at: Loc,
        field: String,
        reason: &'static str,
    },
}

impl Error {
    /// Where the mistake is; `None` for a file that could not be read.
    pub fn loc(&self) -> Option<&Loc> {
        use Error::*;
        match self {
            Io { .. } => None,
            Syntax { at, .. }
            | UnknownKey { at, .. }
            | Missing { at, .. }
            | WrongType { at, .. }
            | BadVersion { at, .. }
            | UnknownName { at, .. }
            | UnknownProtocol { at, .. }
            | UnknownMhType { at, .. }
            | UnknownIcmpType { at, .. }
            | MhTypeWithoutMh { at, .. }
            | IcmpTypeWithoutIcmp { at, .. }
            | PortsWithoutPorts { at, .. }
            | BadPort { at, .. }
            | BadAddress { at, .. }
            | UnknownSymbol { at, .. }
            | Duplicate { at, .. }
            | BadName { at, .. }
            | OnlyForProtect { at, .. }
            | FamilyMismatch { at, .. }
            | BadPool { at, .. }
            | Unbound { at, .. }
            | BadTemplate { at, .. }
            | Role { at, .. } => Some(at),
        }
    }

    /// The dotted path of the field (`rule[2].local_mh_type`); empty for syntax and IO
    /// errors.
    pub fn field(&self) -> &str {
        use Error::*;
        match self {
            Io { .. } | Syntax { .. } => "",
            UnknownKey { field, .. }
            | Missing { field, .. }
            | WrongType { field, .. }
            | BadVersion { field, .. }
            | UnknownName { field, .. }
            | UnknownProtocol { field, .. }
            | UnknownMhType { field, .. }
            | UnknownIcmpType { field, .. }
            | MhTypeWithoutMh { field, .. }
            | IcmpTypeWithoutIcmp { field, .. }
            | PortsWithoutPorts { field, .. }
            | BadPort { field, .. }
            | BadAddress { field, .. }
            | UnknownSymbol { field, .. }
            | Duplicate { field, .. }
            | BadName { field, .. }
            | OnlyForProtect { field, .. }
            | FamilyMismatch { field, .. }
            | BadPool { field, .. }
            | Unbound { field, .. }
            | BadTemplate { field, .. }
            | Role { field, .. } => field,
        }
    }
}

/// A finding that does not stop rendering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub at: Loc,
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: warning: {}: {}", self.at, self.field, self.message)
    }
}
