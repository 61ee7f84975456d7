//! A swanctl.conf fragment: one connection per IKE peer (per mobile node on a home agent),
//! one child per PROTECT entry with `local_ts` / `remote_ts` in strongSwan's
//! `net[proto/port]` syntax (port values as RFC 4301 encodes them: ICMP and MH type in the
//! high byte), BYPASS / DISCARD as `pass` / `drop` shunts.

use std::collections::HashMap;
use std::fmt::Write as _;

use mipsec::spd::{Action, AddrSel, Mode, PortSel, ProtoSel, SpdEntry};

use super::{families, prefixes, Warnings};
use crate::compile::Compiled;
use crate::error::Warning;
use crate::model::{ActionSpec, Policy};

/// One connection being built.
struct Conn {
    name: String,
    remote_addrs: String,
    local_id: Option<String>,
    remote_id: Option<String>,
    children: Vec<String>,
}

fn ts(e: &SpdEntry, local: bool) -> Option<String> {
    let (sel, other, port) = if local {
        (&e.local, &e.remote, e.local_port)
    } else {
        (&e.remote, &e.local, e.remote_port)
    };
    let proto = match e.proto {
        ProtoSel::Any => None,
        ProtoSel::Is(p) => Some(p.to_string()),
        ProtoSel::Opaque => return None,
    };
    let suffix = match (proto, port) {
        (None, PortSel::Any) => String::new(),
        (p, port) => {
            let p = p.unwrap_or_else(|| "any".into());
            match port {
                PortSel::Any => format!("[{p}]"),
                PortSel::Opaque => format!("[{p}/opaque]"),
                PortSel::Range(a, b) if a == b => format!("[{p}/{a}]"),
                PortSel::Range(a, b) => format!("[{p}/{a}-{b}]"),
            }
        }
    };
    // strongSwan takes `lo-hi` ranges as well as prefixes, so ranges stay exact and short.
    let list: Vec<String> = families(sel, other)
        .into_iter()
        .flat_map(|f| match sel {
            AddrSel::Any => prefixes(sel, f),
            AddrSel::Ranges(rs) => rs
                .iter()
                .filter(|r| r.family() == f)
                .map(|r| r.to_string())
                .collect(),
        })
        .map(|p| format!("{p}{suffix}"))
        .collect();
    Some(list.join(","))
}

fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub(crate) fn render(policy: &Policy, c: &Compiled) -> (String, Vec<Warning>) {
    let mut w = Warnings::new(policy);
    let mut conns: Vec<Conn> = Vec::new();
    let mut shunts: Vec<String> = Vec::new();
    let mut by_key: HashMap<(String, String, Option<String>, Option<String>), usize> =
        HashMap::new();
    let mut by_base: HashMap<String, usize> = HashMap::new();
    for (e, o) in c.spd.entries().iter().zip(&c.origins) {
        let rule = &policy.rules[o.rule];
        if e.dirs.outbound != e.dirs.inbound {
            w.push(o.rule, "strongSwan installs a CHILD_SA's policies in both directions: a one-direction rule is rendered for both".into());
        }
        if e.proto == ProtoSel::Is(135)
            && (e.local_port != PortSel::Any || e.remote_port != PortSel::Any)
        {
            w.push(o.rule, "strongSwan negotiates MH-type selectors, but its userspace ESP (kernel-libipsec) skips protocol 135 as an extension header, so they match nothing there".into());
        }
        let (Some(lts), Some(rts)) = (ts(e, true), ts(e, false)) else {
            w.push(
                o.rule,
                "strongSwan has no OPAQUE protocol selector: rule not rendered".into(),
            );
            continue;
        };
        if lts.is_empty() || rts.is_empty() {
            w.push(
                o.rule,
                "local and remote share no address family: rule not rendered".into(),
            );
            continue;
        }
        let child_name = match (&e.action, o.mobile_node) {
            (Action::Bypass | Action::Discard, Some(k)) => {
                format!("{}-{}", rule.name, c.mobile_nodes[k])
            }
            _ => rule.name.clone(),
        };
        let mut child = format!("            {child_name} {{\n                local_ts = {lts}\n                remote_ts = {rts}\n");
        match &e.action {
            Action::Protect(p) => {
                let mode = match p.mode {
                    Mode::Transport => {
                        w.push(o.rule, "charon with kernel-libipsec refuses transport mode (`IPsec SA: unsupported mode`); the kernel-netlink backend accepts it".into());
                        "transport"
                    }
                    Mode::Tunnel => "tunnel",
                };
                let start = match &rule.action {
                    ActionSpec::Protect(s) => s.start.name(),
                    _ => "none",
                };
                let _ = write!(
                    child,
                    "                mode = {mode}\n                esp_proposals = {}\n                start_action = {start}\n            }}\n",
                    p.proposals.join(",")
                );
                let remote_addrs = p.peer.map_or_else(|| "%any".to_string(), |a| a.to_string());
                let base = match o.mobile_node {
                    Some(k) => format!("dsmip-{}", c.mobile_nodes[k]),
                    None => "dsmip".into(),
                };
                let key = (
                    base.clone(),
                    remote_addrs.clone(),
                    p.local_id.clone(),
                    p.remote_id.clone(),
                );
                let next = conns.len();
                let idx = *by_key.entry(key).or_insert(next);
                if idx == next {
                    let n = by_base.entry(base.clone()).or_insert(0);
                    *n += 1;
                    let name = if *n > 1 { format!("{base}-{n}") } else { base };
                    conns.push(Conn {
                        name,
                        remote_addrs,
                        local_id: p.local_id.clone(),
                        remote_id: p.remote_id.clone(),
                        children: Vec::new(),
                    });
                }
                conns[idx].children.push(child);
            }
            Action::Bypass | Action::Discard => {
                let mode = if e.action == Action::Bypass {
                    "pass"
                } else {
                    "drop"
                };
                let _ = write!(child, "                mode = {mode}\n                start_action = trap\n            }}\n");
                shunts.push(child);
            }
        }
    }
    let mut out = super::header(policy, "#", "swanctl.conf fragment");
    out.push_str(
        "# strongSwan orders its policies by selector specificity, not by this file's order.\n",
    );
    out.push_str("connections {\n");
    for conn in &conns {
        let _ = writeln!(
            out,
            "    {} {{\n        version = 2\n        remote_addrs = {}",
            conn.name, conn.remote_addrs
        );
        let _ = writeln!(
            out,
            "        proposals = {}",
            policy.defaults.ike_proposals.join(",")
        );
        for (side, id) in [("local", &conn.local_id), ("remote", &conn.remote_id)] {
            let _ = writeln!(
                out,
                "        {side} {{\n            auth = {}",
                policy.defaults.auth
            );
            if let Some(id) = id {
                let _ = writeln!(out, "            id = {}", quote(id));
            }
            out.push_str("        }\n");
        }
        out.push_str("        children {\n");
        for ch in &conn.children {
            out.push_str(ch);
        }
        out.push_str("        }\n    }\n");
    }
    if !shunts.is_empty() {
        // Shunt children need a connection to live in; this one never negotiates.
        out.push_str("    dsmip-shunts {\n        remote_addrs = 127.0.0.1\n        children {\n");
        for s in &shunts {
            out.push_str(s);
        }
        out.push_str("        }\n    }\n");
    }
    out.push_str("}\n");
    (out, w.finish())
}
