//! Expanding a policy into `mipsec`'s ordered SPD: symbols bound, templates filled, one
//! group of entries per mobile node for every rule that names a per-node symbol.
//! Entries keep file order (rule by rule; within a template rule, node by node).

use std::collections::HashSet;
use std::net::IpAddr;

use mipsec::spd::{Action, AddrSel, Protect, Spd, SpdEntry};

use crate::error::{Error, Loc};
use crate::model::*;

/// Where an SPD entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub rule: usize,
    pub mobile_node: Option<usize>,
}

/// A policy expanded for a set of bindings.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub spd: Spd,
    /// `origins[i]` is where `spd.entries()[i]` came from.
    pub origins: Vec<Origin>,
    /// Names of the mobile nodes `Origin::mobile_node` indexes.
    pub mobile_nodes: Vec<String>,
}

struct Expander<'p> {
    b: &'p Bindings,
    errors: Vec<Error>,
    reported: HashSet<(Loc, &'static str)>,
}

impl Expander<'_> {
    fn unbound(&mut self, at: &Loc, field: String, symbol: &'static str, mn: Option<&MobileNode>) {
        if self.reported.insert((at.clone(), symbol)) {
            self.errors.push(Error::Unbound {
                at: at.clone(),
                field,
                symbol: symbol.into(),
                mobile_node: mn.map_or_else(|| "(all)".into(), |m| m.name.clone()),
            });
        }
    }

    fn symbol(&self, s: Symbol, mn: Option<&MobileNode>) -> Option<IpAddr> {
        match s {
            Symbol::HomeAgent => self.b.home_agent,
            Symbol::HomeAgentV4 => self.b.home_agent_v4,
            _ => mn.and_then(|m| m.symbol(s)),
        }
    }

    fn addr(
        &mut self,
        e: &(AddrExpr, Loc),
        field: String,
        mn: Option<&MobileNode>,
    ) -> Option<AddrSel> {
        let (addr, negated) = match &e.0 {
            AddrExpr::Any => return Some(AddrSel::Any),
            AddrExpr::Range(r) => return Some(AddrSel::ranges(vec![*r])),
            AddrExpr::Literal { addr, negated } => (*addr, *negated),
            AddrExpr::Symbol { sym, negated } => match self.symbol(*sym, mn) {
                Some(a) => (a, *negated),
                None => {
                    self.unbound(&e.1, field, sym.name(), mn);
                    return None;
                }
            },
        };
        Some(if negated {
            AddrSel::except(addr)
        } else {
            AddrSel::single(addr)
        })
    }

    fn template(
        &mut self,
        t: &Option<(Template, Loc)>,
        field: String,
        mn: Option<&MobileNode>,
    ) -> Option<Option<String>> {
        let Some((Template(s), at)) = t else {
            return Some(None);
        };
        let mut out = s.clone();
        if out.contains("{identity}") {
            match mn.and_then(|m| m.identity.as_deref()) {
                Some(id) => out = out.replace("{identity}", id),
                None => {
                    self.unbound(at, field, "identity", mn);
                    return None;
                }
            }
        }
        if let Some(m) = mn {
            out = out.replace("{name}", &m.name);
        }
        Some(Some(out))
    }

    fn entry(&mut self, i: usize, r: &Rule, mn: Option<&MobileNode>) -> Option<SpdEntry> {
        let path = format!("rule[{i}]");
        let local = self.addr(&r.local, format!("{path}.local"), mn);
        let remote = self.addr(&r.remote, format!("{path}.remote"), mn);
        let action = match &r.action {
            ActionSpec::Bypass => Some(Action::Bypass),
            ActionSpec::Discard => Some(Action::Discard),
            ActionSpec::Protect(p) => self.protect(p, &path, mn).map(Action::Protect),
        };
        let name = match mn {
            Some(m) => format!("{}/{}", r.name, m.name),
            None => r.name.clone(),
        };
        Some(SpdEntry {
            name,
            dirs: r.dirs,
            local: local?,
            remote: remote?,
            proto: r.proto,
            local_port: r.local_port,
            remote_port: r.remote_port,
            action: action?,
        })
    }

    fn protect(&mut self, p: &ProtectSpec, path: &str, mn: Option<&MobileNode>) -> Option<Protect> {
        let peer = match &p.peer {
            None => Some(None),
            Some(e) => self
                .addr(e, format!("{path}.peer"), mn)
                .map(|s| s.as_single()),
        };
        let local_id = self.template(&p.initiate_as, format!("{path}.initiate_as"), mn);
        let remote_id = self.template(&p.peer_id, format!("{path}.peer_id"), mn);
        Some(Protect {
            mode: p.mode,
            peer: peer?,
            local_id: local_id?,
            remote_id: remote_id?,
            proposals: p.proposals.clone(),
        })
    }
}

/// Expands `policy` with `bindings` (the file's own, `policy.bindings`, or the daemon's).
pub fn compile(policy: &Policy, bindings: &Bindings) -> Result<Compiled, Vec<Error>> {
    let mut x = Expander {
        b: bindings,
        errors: Vec::new(),
        reported: HashSet::new(),
    };
    let mut entries = Vec::new();
    let mut origins = Vec::new();
    for (i, r) in policy.rules.iter().enumerate() {
        if r.per_mobile_node() {
            for (k, mn) in bindings.mobile_nodes.iter().enumerate() {
                if let Some(e) = x.entry(i, r, Some(mn)) {
                    entries.push(e);
                    origins.push(Origin {
                        rule: i,
                        mobile_node: Some(k),
                    });
                }
            }
        } else if let Some(e) = x.entry(i, r, None) {
            entries.push(e);
            origins.push(Origin {
                rule: i,
                mobile_node: None,
            });
        }
    }
    if !x.errors.is_empty() {
        return Err(x.errors);
    }
    Ok(Compiled {
        spd: Spd::new(entries),
        origins,
        mobile_nodes: bindings
            .mobile_nodes
            .iter()
            .map(|m| m.name.clone())
            .collect(),
    })
}
