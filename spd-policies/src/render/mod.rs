//! Renderers: the native SPD text `mipsec` loads, a swanctl.conf fragment for strongSwan,
//! and `ip xfrm policy` commands for Linux. Each returns its text and a warning for
//! everything the backend cannot express exactly.

mod native;
mod strongswan;
mod xfrm;

use std::str::FromStr;

use mipsec::spd::{AddrSel, Family};

use crate::compile::Compiled;
use crate::error::Warning;
use crate::model::Policy;

/// Which output to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Native,
    StrongSwan,
    LinuxXfrm,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "native" => Ok(Backend::Native),
            "strongswan" => Ok(Backend::StrongSwan),
            "linux-xfrm" => Ok(Backend::LinuxXfrm),
            _ => Err(format!(
                "unknown backend `{s}` (native, strongswan, linux-xfrm)"
            )),
        }
    }
}

/// Renders `c` (compiled from `policy`) for `backend`.
pub fn render(policy: &Policy, c: &Compiled, backend: Backend) -> (String, Vec<Warning>) {
    match backend {
        Backend::Native => (native::render(policy, c), Vec::new()),
        Backend::StrongSwan => strongswan::render(policy, c),
        Backend::LinuxXfrm => xfrm::render(policy, c),
    }
}

/// Collects warnings, one per (rule, message) however many mobile nodes share it.
pub(crate) struct Warnings<'p> {
    policy: &'p Policy,
    out: Vec<Warning>,
    seen: std::collections::HashSet<(usize, String)>,
}

impl<'p> Warnings<'p> {
    pub(crate) fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            out: Vec::new(),
            seen: Default::default(),
        }
    }

    pub(crate) fn push(&mut self, rule: usize, message: String) {
        if self.seen.insert((rule, message.clone())) {
            self.out.push(Warning {
                at: self.policy.rules[rule].at.clone(),
                field: format!("rule[{rule}] `{}`", self.policy.rules[rule].name),
                message,
            });
        }
    }

    pub(crate) fn finish(self) -> Vec<Warning> {
        self.out
    }
}

/// The families an address selector can hold, narrowed by the other side's (a pair of
/// selectors only matches packets of one family).
pub(crate) fn families(a: &AddrSel, other: &AddrSel) -> Vec<Family> {
    [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| a.has_family(*f) && other.has_family(*f))
        .collect()
}

/// The prefixes of `sel` in `family` (ANY becomes the family's default route).
pub(crate) fn prefixes(sel: &AddrSel, family: Family) -> Vec<String> {
    match sel {
        AddrSel::Any => vec![match family {
            Family::V4 => "0.0.0.0/0".into(),
            Family::V6 => "::/0".into(),
        }],
        AddrSel::Ranges(rs) => rs
            .iter()
            .filter(|r| r.family() == family)
            .flat_map(|r| r.to_prefixes())
            .map(|(a, l)| format!("{a}/{l}"))
            .collect(),
    }
}

pub(crate) fn header(policy: &Policy, comment: &str, what: &str) -> String {
    let role = match policy.role {
        crate::model::Role::HomeAgent => "home agent",
        crate::model::Role::MobileNode => "mobile node",
    };
    format!(
        "{comment} {what} rendered by dsmip-spd from {} ({role})\n",
        policy.file
    )
}
