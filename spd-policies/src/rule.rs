//! Reading one `[[rule]]` table: selectors by name (RFC 4301 §4.4.1.1; MH types and ICMP
//! types in the port selectors), the action and its keying details.

use std::collections::HashMap;

use mipsec::spd::{Dirs, PortSel, ProtoSel};
use toml_edit::Table;

use crate::error::{Error, Loc};
use crate::model::*;
use crate::names;
use crate::parse::{addr_expr, check_template, dirs, mode, proto_name, RuleCtx};

fn port_proto(p: ProtoSel) -> bool {
    matches!(p, ProtoSel::Is(6 | 17 | 132))
}

pub(crate) fn rule(
    rc: &mut RuleCtx<'_, '_>,
    t: &Table,
    i: usize,
    defaults: &Defaults,
    seen: &mut HashMap<String, Loc>,
) -> Option<Rule> {
    let path = format!("rule[{i}]");
    rc.keys(t, &path);
    let header = rc.header(t);
    let before = errors_marker(rc);
    let name = rc.name(t, &path);
    if let Some((n, at)) = &name {
        if let Some(first) = seen.get(n) {
            rc.push(Error::Duplicate {
                at: at.clone(),
                field: format!("{path}.name"),
                value: n.clone(),
                first: first.clone(),
            });
        } else {
            seen.insert(n.clone(), at.clone());
        }
    }
    let direction = match rc.string(t, "direction", &path) {
        None => Some(Dirs::BOTH),
        Some((d, at)) => dirs(&d).or_else(|| {
            rc.push(unknown(at, &path, "direction", d, "`both`, `out`, `in`"));
            None
        }),
    };
    let local = address(rc, t, &path, "local", &header);
    let remote = address(rc, t, &path, "remote", &header);
    if let (Some((l, _)), Some((r, rat))) = (&local, &remote) {
        let (l4, l6) = l.families();
        let (r4, r6) = r.families();
        if !(l4 && r4 || l6 && r6) {
            let fam = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
            rc.push(Error::FamilyMismatch {
                at: rat.clone(),
                field: format!("{path}.remote"),
                local: fam(l4),
                remote: fam(r4),
            });
        }
    }
    let proto = protocol(rc, t, &path);
    let ports = proto.and_then(|p| ports(rc, t, &path, p));
    let action = action(rc, t, &path, defaults, &header);
    let (
        Some((name, _)),
        Some(dirs),
        Some(local),
        Some(remote),
        Some(proto),
        Some((lp, rp)),
        Some(action),
    ) = (name, direction, local, remote, proto, ports, action)
    else {
        return None;
    };
    if errors_marker(rc) != before {
        return None;
    }
    Some(Rule {
        name,
        at: header,
        dirs,
        local,
        remote,
        proto,
        local_port: lp,
        remote_port: rp,
        action,
    })
}

fn errors_marker(rc: &mut RuleCtx<'_, '_>) -> usize {
    rc.error_count()
}

fn unknown(at: Loc, path: &str, key: &str, value: String, allowed: &str) -> Error {
    Error::UnknownName {
        at,
        field: format!("{path}.{key}"),
        value,
        allowed: allowed.into(),
    }
}

fn address(
    rc: &mut RuleCtx<'_, '_>,
    t: &Table,
    path: &str,
    key: &str,
    header: &Loc,
) -> Option<(AddrExpr, Loc)> {
    let Some((s, at)) = rc.string(t, key, path) else {
        if t.get(key).is_some() {
            return None;
        }
        // An absent selector is ANY.
        return Some((AddrExpr::Any, header.clone()));
    };
    match addr_expr(&s) {
        Ok(e) => Some((e, at)),
        Err((reason, suggestion)) => {
            let field = format!("{path}.{key}");
            rc.push(if reason.starts_with("unknown symbol") {
                Error::UnknownSymbol {
                    at,
                    field,
                    value: s,
                    suggestion,
                }
            } else {
                Error::BadAddress {
                    at,
                    field,
                    value: s,
                    reason,
                }
            });
            None
        }
    }
}

fn protocol(rc: &mut RuleCtx<'_, '_>, t: &Table, path: &str) -> Option<ProtoSel> {
    let Some((s, at, _)) = rc.scalar(t, "protocol", path) else {
        return (t.get("protocol").is_none()).then_some(ProtoSel::Any);
    };
    if s.eq_ignore_ascii_case("any") {
        return Some(ProtoSel::Any);
    }
    if s.eq_ignore_ascii_case("opaque") {
        return Some(ProtoSel::Opaque);
    }
    match names::lookup(names::PROTOCOLS, &s) {
        Some(p) => Some(ProtoSel::Is(p)),
        None => {
            rc.push(Error::UnknownProtocol {
                at,
                field: format!("{path}.protocol"),
                value: s,
            });
            None
        }
    }
}

/// The local and remote "port" selectors from whichever of the port, MH type and ICMP
/// type keys the rule uses, each checked against the protocol.
fn ports(
    rc: &mut RuleCtx<'_, '_>,
    t: &Table,
    path: &str,
    proto: ProtoSel,
) -> Option<(PortSel, PortSel)> {
    let mut out = [PortSel::Any, PortSel::Any];
    let mut ok = true;
    for (side, prefix) in [(0, "local"), (1, "remote")] {
        let mut set = |rc: &mut RuleCtx<'_, '_>, key: String, want: Kind| {
            let Some((s, at, _)) = rc.scalar(t, &key, path) else {
                ok &= t.get(&key).is_none();
                return;
            };
            let field = format!("{path}.{key}");
            match selector(&s, want, proto) {
                Ok(sel) => out[side] = sel,
                Err(e) => {
                    rc.push(e.into_error(at, field, &s, proto));
                    ok = false;
                }
            }
        };
        set(rc, format!("{prefix}_port"), Kind::Port);
        set(rc, format!("{prefix}_mh_type"), Kind::Mh);
        set(rc, format!("{prefix}_icmp_type"), Kind::Icmp);
    }
    ok.then_some((out[0], out[1]))
}

#[derive(Clone, Copy)]
enum Kind {
    Port,
    Mh,
    Icmp,
}

enum SelErr {
    WrongProto(Kind),
    BadPort(&'static str),
    UnknownMh,
    UnknownIcmp(&'static str),
}

impl SelErr {
    fn into_error(self, at: Loc, field: String, value: &str, proto: ProtoSel) -> Error {
        let proto_s = proto_name(proto);
        match self {
            SelErr::WrongProto(Kind::Port) => Error::PortsWithoutPorts {
                at,
                field,
                proto: proto_s,
            },
            SelErr::WrongProto(Kind::Mh) => Error::MhTypeWithoutMh {
                at,
                field,
                proto: proto_s,
            },
            SelErr::WrongProto(Kind::Icmp) => Error::IcmpTypeWithoutIcmp {
                at,
                field,
                proto: proto_s,
            },
            SelErr::BadPort(reason) => Error::BadPort {
                at,
                field,
                value: value.into(),
                reason,
            },
            SelErr::UnknownMh => Error::UnknownMhType {
                at,
                field,
                value: value.into(),
            },
            SelErr::UnknownIcmp(p) => Error::UnknownIcmpType {
                at,
                field,
                value: value.into(),
                proto: p,
            },
        }
    }
}

fn selector(s: &str, kind: Kind, proto: ProtoSel) -> Result<PortSel, SelErr> {
    let proto_ok = match kind {
        Kind::Port => port_proto(proto),
        Kind::Mh => proto == ProtoSel::Is(135),
        Kind::Icmp => matches!(proto, ProtoSel::Is(1 | 58)),
    };
    if !proto_ok {
        return Err(SelErr::WrongProto(kind));
    }
    match s {
        "any" => return Ok(PortSel::Any),
        "opaque" => return Ok(PortSel::Opaque),
        _ => {}
    }
    match kind {
        Kind::Port => port_range(s),
        Kind::Mh => names::lookup(names::MH_TYPES, s)
            .map(PortSel::mh_type)
            .ok_or(SelErr::UnknownMh),
        Kind::Icmp => {
            let (table, pname) = if proto == ProtoSel::Is(58) {
                (names::ICMPV6_TYPES, "ICMPv6")
            } else {
                (names::ICMPV4_TYPES, "ICMP")
            };
            let (ty, code) = match s.split_once('/') {
                Some((t, c)) => (
                    t,
                    Some(c.parse::<u8>().map_err(|_| SelErr::UnknownIcmp(pname))?),
                ),
                None => (s, None),
            };
            let ty = names::lookup(table, ty).ok_or(SelErr::UnknownIcmp(pname))?;
            Ok(PortSel::icmp(ty, code))
        }
    }
}

fn port_range(s: &str) -> Result<PortSel, SelErr> {
    let num = |p: &str| -> Result<u16, SelErr> {
        p.trim()
            .parse::<u32>()
            .map_err(|_| SelErr::BadPort("not a number"))
            .and_then(|n| u16::try_from(n).map_err(|_| SelErr::BadPort("ports are 0-65535")))
    };
    match s.split_once('-') {
        None => num(s).map(PortSel::port),
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(SelErr::BadPort("range starts above its end"));
            }
            Ok(PortSel::Range(a, b))
        }
    }
}

fn action(
    rc: &mut RuleCtx<'_, '_>,
    t: &Table,
    path: &str,
    defaults: &Defaults,
    header: &Loc,
) -> Option<ActionSpec> {
    let Some((a, at)) = rc.string(t, "action", path) else {
        if t.get("action").is_none() {
            rc.push(Error::Missing {
                at: header.clone(),
                field: format!("{path}.action"),
            });
        }
        return None;
    };
    let protect_keys = [
        "mode",
        "peer",
        "initiate_as",
        "peer_id",
        "proposals",
        "start",
    ];
    match a.as_str() {
        "bypass" | "discard" => {
            for k in protect_keys {
                if let Some(at) = rc.key_loc(t, k) {
                    rc.push(Error::OnlyForProtect {
                        at,
                        field: format!("{path}.{k}"),
                    });
                }
            }
            Some(if a == "bypass" {
                ActionSpec::Bypass
            } else {
                ActionSpec::Discard
            })
        }
        "protect" => {
            protect(rc, t, path, defaults, header).map(|p| ActionSpec::Protect(Box::new(p)))
        }
        _ => {
            rc.push(unknown(
                at,
                path,
                "action",
                a,
                "`protect`, `bypass`, `discard`",
            ));
            None
        }
    }
}

fn protect(
    rc: &mut RuleCtx<'_, '_>,
    t: &Table,
    path: &str,
    defaults: &Defaults,
    header: &Loc,
) -> Option<ProtectSpec> {
    let m = match rc.string(t, "mode", path) {
        None => {
            if t.get("mode").is_none() {
                rc.push(Error::Missing {
                    at: header.clone(),
                    field: format!("{path}.mode"),
                });
            }
            None
        }
        Some((m, at)) => mode(&m).or_else(|| {
            rc.push(unknown(at, path, "mode", m, "`transport`, `tunnel`"));
            None
        }),
    };
    let peer = match rc.string(t, "peer", path) {
        None => None,
        Some((s, at)) => match addr_expr(&s) {
            Ok(
                e @ (AddrExpr::Symbol { negated: false, .. }
                | AddrExpr::Literal { negated: false, .. }),
            ) => Some((e, at)),
            Ok(_) => {
                rc.push(Error::BadAddress {
                    at,
                    field: format!("{path}.peer"),
                    value: s,
                    reason: "the peer is one address or symbol".into(),
                });
                None
            }
            Err((reason, suggestion)) => {
                let field = format!("{path}.peer");
                rc.push(if reason.starts_with("unknown symbol") {
                    Error::UnknownSymbol {
                        at,
                        field,
                        value: s,
                        suggestion,
                    }
                } else {
                    Error::BadAddress {
                        at,
                        field,
                        value: s,
                        reason,
                    }
                });
                None
            }
        },
    };
    let template = |rc: &mut RuleCtx<'_, '_>, key: &str| {
        let (s, at) = rc.string(t, key, path)?;
        if let Err(reason) = check_template(&s, &["identity", "name"]) {
            rc.push(Error::BadTemplate {
                at,
                field: format!("{path}.{key}"),
                reason,
            });
            return None;
        }
        Some((Template(s), at))
    };
    let initiate_as = template(rc, "initiate_as");
    let peer_id = template(rc, "peer_id");
    let proposals = rc
        .strings(t, "proposals", path)
        .unwrap_or_else(|| defaults.proposals.clone());
    let start = match rc.string(t, "start", path) {
        None if initiate_as.is_some() => Start::Trap,
        None => Start::None,
        Some((s, at)) => match s.as_str() {
            "trap" => Start::Trap,
            "start" => Start::Start,
            "none" => Start::None,
            _ => {
                rc.push(unknown(at, path, "start", s, "`trap`, `start`, `none`"));
                return None;
            }
        },
    };
    Some(ProtectSpec {
        mode: m?,
        peer,
        initiate_as,
        peer_id,
        proposals,
        start,
    })
}
