//! The native SPD text format: what `dsmip-spd render --for native` writes and what the
//! daemons load. One entry a line, in precedence order; `#` starts a comment.
//!
//! ```text
//! entry ha-bu dir=both local=2001:db8::1 remote=2001:db8::100 proto=135 lport=1536-1791 rport=1280-1535 action=protect mode=transport remote_id="mn1@example.com" esp=aes128gcm16
//! ```
//! Address selectors are `any` or comma-separated `addr`, `addr/len` or `lo-hi`; port
//! selectors `any`, `opaque`, `n` or `lo-hi` (ICMP / MH type in the high byte, RFC 4301
//! §4.4.1.1). Parse errors are `Error::Invalid` whose offset is the byte offset in the text
//! and whose value is the line number.

use std::fmt;
use std::net::IpAddr;

use super::entry::{Action, Dirs, Mode, Protect, SpdEntry};
use super::selector::{AddrRange, AddrSel, PortSel, ProtoSel};
use super::Spd;
use crate::error::{Error, Result};

impl fmt::Display for SpdEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dir = match (self.dirs.outbound, self.dirs.inbound) {
            (true, true) => "both",
            (true, false) => "out",
            (false, true) => "in",
            (false, false) => "none",
        };
        let proto = match self.proto {
            ProtoSel::Any => "any".to_string(),
            ProtoSel::Opaque => "opaque".to_string(),
            ProtoSel::Is(p) => p.to_string(),
        };
        write!(
            f,
            "entry {} dir={dir} local={} remote={} proto={proto} lport={} rport={} action={}",
            self.name,
            self.local,
            self.remote,
            self.local_port,
            self.remote_port,
            self.action.kind()
        )?;
        if let Action::Protect(p) = &self.action {
            let mode = match p.mode {
                Mode::Transport => "transport",
                Mode::Tunnel => "tunnel",
            };
            write!(f, " mode={mode}")?;
            if let Some(a) = p.peer {
                write!(f, " peer={a}")?;
            }
            if let Some(id) = &p.local_id {
                write!(f, " local_id={}", quote(id))?;
            }
            if let Some(id) = &p.remote_id {
                write!(f, " remote_id={}", quote(id))?;
            }
            if !p.proposals.is_empty() {
                write!(f, " esp={}", p.proposals.join(","))?;
            }
        }
        Ok(())
    }
}

fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl fmt::Display for Spd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in self.entries() {
            writeln!(f, "{e}")?;
        }
        Ok(())
    }
}

/// One `key=value` token with its byte offset.
struct Token {
    key: String,
    value: String,
    offset: usize,
}

fn bad(field: &'static str, offset: usize, line: usize, reason: &'static str) -> Error {
    Error::Invalid {
        field,
        offset,
        value: line as u64,
        reason,
    }
}

/// Splits a line into space-separated tokens; a value may be a double-quoted string with
/// `\"` and `\\` escapes.
fn tokens(line: &str, base: usize, lineno: usize) -> Result<Vec<Token>> {
    let mut out = Vec::new();
    let mut it = line.char_indices().peekable();
    while let Some(&(start, c)) = it.peek() {
        if c.is_whitespace() {
            it.next();
            continue;
        }
        let mut key = String::new();
        let mut value = String::new();
        let mut in_value = false;
        let mut quoted = false;
        while let Some(&(_, c)) = it.peek() {
            if !quoted && c.is_whitespace() {
                break;
            }
            it.next();
            match c {
                '=' if !in_value => in_value = true,
                '"' if in_value && value.is_empty() && !quoted => quoted = true,
                '"' if quoted => quoted = false,
                '\\' if quoted => match it.next() {
                    Some((_, e)) => value.push(e),
                    None => return Err(bad("spd.quote", base + start, lineno, "dangling escape")),
                },
                c if in_value => value.push(c),
                c => key.push(c),
            }
        }
        if quoted {
            return Err(bad(
                "spd.quote",
                base + start,
                lineno,
                "unterminated string",
            ));
        }
        out.push(Token {
            key,
            value,
            offset: base + start,
        });
    }
    Ok(out)
}

fn addr_sel(v: &str, off: usize, line: usize) -> Result<AddrSel> {
    if v == "any" {
        return Ok(AddrSel::Any);
    }
    let mut ranges = Vec::new();
    for part in v.split(',') {
        let r = if let Some((a, len)) = part.split_once('/') {
            let a: IpAddr = a
                .parse()
                .map_err(|_| bad("spd.address", off, line, "bad address"))?;
            let len: u8 = len
                .parse()
                .map_err(|_| bad("spd.address", off, line, "bad prefix length"))?;
            AddrRange::prefix(a, len)
        } else if let Some((lo, hi)) = part.split_once('-') {
            let lo: IpAddr = lo
                .parse()
                .map_err(|_| bad("spd.address", off, line, "bad address"))?;
            let hi: IpAddr = hi
                .parse()
                .map_err(|_| bad("spd.address", off, line, "bad address"))?;
            AddrRange::new(lo, hi)
        } else {
            let a: IpAddr = part
                .parse()
                .map_err(|_| bad("spd.address", off, line, "bad address"))?;
            Some(AddrRange::single(a))
        };
        ranges.push(r.ok_or_else(|| bad("spd.address", off, line, "empty or mixed-family range"))?);
    }
    Ok(AddrSel::ranges(ranges))
}

fn port_sel(v: &str, off: usize, line: usize) -> Result<PortSel> {
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| bad("spd.port", off, line, "bad port"))
    };
    Ok(match v {
        "any" => PortSel::Any,
        "opaque" => PortSel::Opaque,
        _ => match v.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (num(a)?, num(b)?);
                if a > b {
                    return Err(bad("spd.port", off, line, "range low above high"));
                }
                PortSel::Range(a, b)
            }
            None => PortSel::port(num(v)?),
        },
    })
}

/// Parses the native text format into an [`Spd`].
pub fn parse_native(text: &str) -> Result<Spd> {
    let mut spd = Spd::default();
    let mut base = 0;
    for (n, raw) in text.split('\n').enumerate() {
        let line = raw.split('#').next().unwrap_or("");
        let lineno = n + 1;
        if !line.trim().is_empty() {
            spd.push(parse_line(line, base, lineno)?);
        }
        base += raw.len() + 1;
    }
    Ok(spd)
}

fn parse_line(line: &str, base: usize, lineno: usize) -> Result<SpdEntry> {
    let toks = tokens(line, base, lineno)?;
    let name = match toks.as_slice() {
        [a, b, ..] if a.key == "entry" && b.value.is_empty() => b.key.clone(),
        _ => {
            return Err(bad(
                "spd.entry",
                base,
                lineno,
                "line must start with `entry NAME`",
            ))
        }
    };
    let mut e = SpdEntry {
        name,
        dirs: Dirs::BOTH,
        local: AddrSel::Any,
        remote: AddrSel::Any,
        proto: ProtoSel::Any,
        local_port: PortSel::Any,
        remote_port: PortSel::Any,
        action: Action::Discard,
    };
    let mut protect = Protect {
        mode: Mode::Transport,
        peer: None,
        local_id: None,
        remote_id: None,
        proposals: Vec::new(),
    };
    let mut action = None;
    for t in &toks[2..] {
        let (v, off) = (t.value.as_str(), t.offset);
        match t.key.as_str() {
            "dir" => {
                e.dirs = match v {
                    "both" => Dirs::BOTH,
                    "out" => Dirs::OUT,
                    "in" => Dirs::IN,
                    "none" => Dirs {
                        outbound: false,
                        inbound: false,
                    },
                    _ => return Err(bad("spd.dir", off, lineno, "not both, out, in or none")),
                }
            }
            "local" => e.local = addr_sel(v, off, lineno)?,
            "remote" => e.remote = addr_sel(v, off, lineno)?,
            "proto" => {
                e.proto = match v {
                    "any" => ProtoSel::Any,
                    "opaque" => ProtoSel::Opaque,
                    _ => ProtoSel::Is(
                        v.parse()
                            .map_err(|_| bad("spd.proto", off, lineno, "not a protocol number"))?,
                    ),
                }
            }
            "lport" => e.local_port = port_sel(v, off, lineno)?,
            "rport" => e.remote_port = port_sel(v, off, lineno)?,
            "action" => action = Some((v.to_string(), off)),
            "mode" => {
                protect.mode = match v {
                    "transport" => Mode::Transport,
                    "tunnel" => Mode::Tunnel,
                    _ => return Err(bad("spd.mode", off, lineno, "not transport or tunnel")),
                }
            }
            "peer" => {
                protect.peer = Some(
                    v.parse()
                        .map_err(|_| bad("spd.peer", off, lineno, "bad address"))?,
                )
            }
            "local_id" => protect.local_id = Some(v.to_string()),
            "remote_id" => protect.remote_id = Some(v.to_string()),
            "esp" => protect.proposals = v.split(',').map(str::to_string).collect(),
            _ => return Err(bad("spd.key", off, lineno, "unknown key")),
        }
    }
    e.action = match action {
        Some((a, _)) if a == "protect" => Action::Protect(protect),
        Some((a, _)) if a == "bypass" => Action::Bypass,
        Some((a, _)) if a == "discard" => Action::Discard,
        Some((_, off)) => {
            return Err(bad(
                "spd.action",
                off,
                lineno,
                "not protect, bypass or discard",
            ))
        }
        None => return Err(bad("spd.action", base, lineno, "missing action")),
    };
    Ok(e)
}
