//! `explain`: which SPD entry a packet matches and why each entry before it did not,
//! consecutive rejections of one template rule for the same reason folded into one line.

use std::fmt::Write as _;
use std::net::IpAddr;

use mipsec::spd::{Action, Direction, Mismatch, Packet, Ports};

use crate::compile::Compiled;
use crate::model::Policy;
use crate::names;

/// Reads `dir=out src=A dst=B proto=MH mh-type=BU` (also `sport=`, `dport=`,
/// `icmp-type=`, `icmp-code=`; `dir` defaults to `out`, `proto` to none).
pub fn parse_packet(spec: &str) -> Result<Packet, String> {
    let (mut dir, mut src, mut dst, mut proto) = (Direction::Out, None, None, None);
    let (mut sport, mut dport, mut mh, mut icmp_t, mut icmp_c) = (None, None, None, None, None);
    for tok in spec.split_whitespace() {
        let (k, v) = tok
            .split_once('=')
            .ok_or_else(|| format!("`{tok}` is not key=value"))?;
        let addr = |v: &str| {
            v.parse::<IpAddr>()
                .map_err(|_| format!("{k}: `{v}` is not an address"))
        };
        let port = |v: &str| {
            v.parse::<u16>()
                .map_err(|_| format!("{k}: `{v}` is not a port"))
        };
        match k {
            "dir" => {
                dir = match v {
                    "out" => Direction::Out,
                    "in" => Direction::In,
                    _ => return Err(format!("dir: `{v}` is not out or in")),
                }
            }
            "src" => src = Some(addr(v)?),
            "dst" => dst = Some(addr(v)?),
            "proto" => {
                proto = Some(names::lookup(names::PROTOCOLS, v).ok_or_else(|| format!("proto: unknown `{v}`"))?)
            }
            "sport" => sport = Some(port(v)?),
            "dport" => dport = Some(port(v)?),
            "mh-type" => mh = Some(names::lookup(names::MH_TYPES, v).ok_or_else(|| format!("mh-type: unknown `{v}`"))?),
            "icmp-type" => {
                let table = if proto == Some(1) { names::ICMPV4_TYPES } else { names::ICMPV6_TYPES };
                icmp_t = Some(names::lookup(table, v).ok_or_else(|| format!("icmp-type: unknown `{v}`"))?)
            }
            "icmp-code" => icmp_c = Some(v.parse::<u8>().map_err(|_| format!("icmp-code: `{v}`"))?),
            _ => return Err(format!("unknown key `{k}` (dir, src, dst, proto, sport, dport, mh-type, icmp-type, icmp-code)")),
        }
    }
    let (src, dst) = (
        src.ok_or("src= is required")?,
        dst.ok_or("dst= is required")?,
    );
    if src.is_ipv4() != dst.is_ipv4() {
        return Err("src and dst differ in address family".into());
    }
    let ports = match (proto, sport, dport, mh, icmp_t) {
        (Some(135), None, None, Some(t), None) => Ports::Message(u16::from(t) << 8),
        (Some(1 | 58), None, None, None, Some(t)) => Ports::Message(u16::from(t) << 8 | u16::from(icmp_c.unwrap_or(0))),
        (Some(6 | 17 | 132), Some(s), Some(d), None, None) => Packet::src_dst_ports(dir, s, d),
        (_, None, None, None, None) => Ports::Opaque,
        _ => return Err("ports go with TCP/UDP/SCTP (both sport and dport), mh-type with MH, icmp-type with ICMP/ICMPv6".into()),
    };
    Ok(Packet::new(dir, src, dst, proto, ports))
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Protect(p) => format!(
            "PROTECT (ESP {} mode{}{})",
            if p.mode == mipsec::spd::Mode::Tunnel {
                "tunnel"
            } else {
                "transport"
            },
            p.peer.map(|a| format!(", peer {a}")).unwrap_or_default(),
            p.local_id
                .as_ref()
                .map(|id| format!(", initiate as {id}"))
                .unwrap_or_default()
        ),
        Action::Bypass => "BYPASS".into(),
        Action::Discard => "DISCARD".into(),
    }
}

/// The explanation as text.
pub fn explain(policy: &Policy, c: &Compiled, p: &Packet) -> String {
    let ex = c.spd.explain(p);
    let mut out = String::new();
    let rule_at = |i: usize| {
        let r = &policy.rules[c.origins[i].rule];
        (r.name.clone(), r.at.to_string())
    };
    // Fold runs of (rule, reason).
    let mut runs: Vec<(usize, Mismatch, usize)> = Vec::new();
    for (i, m) in &ex.rejected {
        match runs.last_mut() {
            Some((first, mm, n)) if c.origins[*first].rule == c.origins[*i].rule && mm == m => {
                *n += 1
            }
            _ => runs.push((*i, *m, 1)),
        }
    }
    for (i, m, n) in runs {
        let (name, at) = rule_at(i);
        let entries = if n > 1 {
            format!(" ({n} entries)")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "  no     rule `{name}` at {at}{entries}: {} does not match",
            m.describe()
        );
    }
    match ex.matched {
        Some(i) => {
            let (name, at) = rule_at(i);
            let e = &c.spd.entries()[i];
            let _ = writeln!(
                out,
                "  MATCH  rule `{name}` at {at} (entry `{}`): {}",
                e.name,
                describe_action(&e.action)
            );
        }
        None => out.push_str("  no rule matches: DISCARD (RFC 4301 §5.1, §5.2)\n"),
    }
    out
}
