//! `ip xfrm policy` commands. Linux XFRM selectors hold one prefix per side, one port per
//! side (no ranges from the command line) and, for ICMP and MH, `type` / `code`, which
//! iproute2 stores as `sport = htons(type)`, `dport = htons(code)`: not RFC 4301's
//! "type in the high byte" (NOTES.md). Address ranges (RFC 5555 §5.2.2's
//! `!= home_agent`) become the prefixes that cover them exactly; order becomes `priority`
//! (lower wins); tunnel-mode entries also get a `fwd` policy for forwarded traffic.

use std::fmt::Write as _;

use mipsec::spd::{is_message_proto, Action, Direction, Mode, PortSel, ProtoSel, SpdEntry};

use super::{families, prefixes, Warnings};
use crate::compile::Compiled;
use crate::error::Warning;
use crate::model::Policy;

/// Above this many commands for one entry a warning says so.
const MANY: usize = 64;
/// Priority of the first entry; later entries get larger numbers (lower precedence).
const BASE_PRIORITY: usize = 1000;

/// The upper-layer part of a selector, or why it cannot be written.
fn upspec(e: &SpdEntry, dir: Direction) -> Result<String, String> {
    let p = match e.proto {
        ProtoSel::Any => return Ok(String::new()),
        ProtoSel::Opaque => return Err("XFRM has no OPAQUE protocol selector".into()),
        ProtoSel::Is(p) => p,
    };
    let mut s = format!(" proto {p}");
    // Outbound: src = local; inbound: src = remote.
    let (src_port, dst_port) = match dir {
        Direction::Out => (e.local_port, e.remote_port),
        Direction::In => (e.remote_port, e.local_port),
    };
    if is_message_proto(e.proto) {
        // RFC 4301 §4.4.1.1 B: outbound packets carry the types we send (local selector),
        // inbound ones the types we receive (remote selector).
        let sel = match dir {
            Direction::Out => e.local_port,
            Direction::In => e.remote_port,
        };
        match sel {
            PortSel::Any => {}
            PortSel::Opaque => return Err("XFRM has no OPAQUE message-type selector".into()),
            PortSel::Range(a, b) if a & 0xff == 0 && b == a | 0xff => {
                let _ = write!(s, " type {}", a >> 8);
            }
            PortSel::Range(a, b) if a == b => {
                let _ = write!(s, " type {} code {}", a >> 8, a & 0xff);
            }
            PortSel::Range(..) => {
                return Err("XFRM takes one message type and code, not a range".into())
            }
        }
        return Ok(s);
    }
    for (kw, sel) in [("sport", src_port), ("dport", dst_port)] {
        match sel {
            PortSel::Any => {}
            PortSel::Opaque => return Err("XFRM has no OPAQUE port selector".into()),
            PortSel::Range(a, b) if a == b => {
                let _ = write!(s, " {kw} {a}");
            }
            PortSel::Range(..) => return Err("`ip xfrm` takes one port, not a range".into()),
        }
    }
    Ok(s)
}

fn tmpl(e: &SpdEntry, dir: Direction) -> String {
    match &e.action {
        Action::Bypass => " action allow".into(),
        Action::Discard => " action block".into(),
        Action::Protect(p) => match p.mode {
            Mode::Transport => " action allow tmpl proto esp mode transport level required".into(),
            Mode::Tunnel => {
                let ends = match (p.peer, dir) {
                    (Some(peer), Direction::Out) => format!(" dst {peer}"),
                    (Some(peer), Direction::In) => format!(" src {peer}"),
                    (None, _) => String::new(),
                };
                format!(" action allow tmpl{ends} proto esp mode tunnel level required")
            }
        },
    }
}

pub(crate) fn render(policy: &Policy, c: &Compiled) -> (String, Vec<Warning>) {
    let mut w = Warnings::new(policy);
    let mut out = super::header(policy, "#", "ip xfrm policy commands");
    out.push_str("# MH and ICMP `type`/`code` are stored by Linux as sport = htons(type), dport = htons(code).\n");
    for (i, (e, o)) in c.spd.entries().iter().zip(&c.origins).enumerate() {
        let priority = BASE_PRIORITY + i;
        let _ = writeln!(out, "# {}", e.name);
        let mut lines = 0;
        for (dir, on) in [
            (Direction::Out, e.dirs.outbound),
            (Direction::In, e.dirs.inbound),
        ] {
            if !on {
                continue;
            }
            let up = match upspec(e, dir) {
                Ok(u) => u,
                Err(why) => {
                    w.push(o.rule, format!("{why}: not rendered for Linux XFRM"));
                    continue;
                }
            };
            let (src, dst) = match dir {
                Direction::Out => (&e.local, &e.remote),
                Direction::In => (&e.remote, &e.local),
            };
            let mut dirs = vec![if dir == Direction::Out { "out" } else { "in" }];
            if dir == Direction::In
                && matches!(&e.action, Action::Protect(p) if p.mode == Mode::Tunnel)
            {
                dirs.push("fwd");
            }
            if matches!(&e.action, Action::Protect(p) if p.mode == Mode::Tunnel && p.peer.is_none())
            {
                w.push(o.rule, "the tunnel's far end (the care-of address) is known only once a binding exists: the daemon fills in the template's addresses".into());
            }
            let t = tmpl(e, dir);
            for fam in families(src, dst) {
                for s in prefixes(src, fam) {
                    for d in prefixes(dst, fam) {
                        for x in &dirs {
                            let _ = writeln!(out, "ip xfrm policy add src {s} dst {d}{up} dir {x} priority {priority}{t}");
                            lines += 1;
                        }
                    }
                }
            }
        }
        if lines > MANY {
            w.push(
                o.rule,
                format!(
                    "XFRM selectors hold one prefix per side: this rule becomes {lines} policies"
                ),
            );
        }
    }
    (out, w.finish())
}
