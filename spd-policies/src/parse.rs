//! Reading a policy file: TOML (through `toml_edit`, which keeps the span of every key and
//! value) into a checked [`Policy`], collecting every mistake with its line and column.

use std::collections::HashMap;
use std::net::IpAddr;
use std::ops::Range;

use mipsec::spd::{AddrRange, Dirs, Mode, ProtoSel};
use toml_edit::{Document, Item, Table, Value};

use crate::error::{Error, Loc};
use crate::model::*;
use crate::names;

/// Byte offsets to line and column.
pub struct SourceMap<'a> {
    file: &'a str,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub fn new(file: &'a str, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Self {
            file,
            text,
            line_starts,
        }
    }

    pub fn loc(&self, offset: usize) -> Loc {
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let end = offset.min(self.text.len());
        let col = self
            .text
            .get(start..end)
            .map_or(1, |s| s.chars().count() + 1);
        Loc {
            file: self.file.to_string(),
            line,
            col,
        }
    }

    fn span_loc(&self, span: Option<Range<usize>>) -> Loc {
        self.loc(span.map_or(0, |s| s.start))
    }
}

const TOP_KEYS: &[&str] = &[
    "version",
    "role",
    "home_agent",
    "home_agent_v4",
    "defaults",
    "mobile_node",
    "pool",
    "rule",
];
const DEFAULT_KEYS: &[&str] = &["proposals", "ike_proposals", "auth"];
const MN_KEYS: &[&str] = &[
    "name",
    "identity",
    "home_address",
    "home_address_v4",
    "care_of_address",
    "care_of_address_v4",
];
const POOL_KEYS: &[&str] = &[
    "name",
    "count",
    "identity",
    "first_home_address",
    "first_home_address_v4",
];
const RULE_KEYS: &[&str] = &[
    "name",
    "direction",
    "local",
    "remote",
    "protocol",
    "local_port",
    "remote_port",
    "local_mh_type",
    "remote_mh_type",
    "local_icmp_type",
    "remote_icmp_type",
    "action",
    "mode",
    "peer",
    "initiate_as",
    "peer_id",
    "proposals",
    "start",
];
/// Largest pool: keeps a typo such as `count = 10000000` from eating the machine.
pub const MAX_POOL: i64 = 1_000_000;

struct Ctx<'a> {
    map: SourceMap<'a>,
    errors: Vec<Error>,
}

/// A key's value with the places of the key and the value.
struct Field<'t> {
    path: String,
    item: &'t Item,
    at: Loc,
}

impl Ctx<'_> {
    fn keys(&mut self, t: &Table, allowed: &[&str], path: &str) {
        for (k, _) in t.iter() {
            if !allowed.contains(&k) {
                let at = self.map.span_loc(t.key(k).and_then(|k| k.span()));
                self.errors.push(Error::UnknownKey {
                    at,
                    field: join(path, k),
                    suggestion: names::suggest(k, allowed.iter().copied()),
                });
            }
        }
    }

    fn field<'t>(&self, t: &'t Table, key: &str, path: &str) -> Option<Field<'t>> {
        let item = t.get(key)?;
        let span = item.span().or_else(|| t.key(key).and_then(|k| k.span()));
        Some(Field {
            path: join(path, key),
            item,
            at: self.map.span_loc(span),
        })
    }

    fn str_of(&mut self, f: &Field<'_>) -> Option<String> {
        match f.item.as_str() {
            Some(s) => Some(s.to_string()),
            None => {
                self.wrong(f, "a string");
                None
            }
        }
    }

    fn string(&mut self, t: &Table, key: &str, path: &str) -> Option<(String, Loc)> {
        let f = self.field(t, key, path)?;
        self.str_of(&f).map(|s| (s, f.at))
    }

    fn wrong(&mut self, f: &Field<'_>, expected: &'static str) {
        self.errors.push(Error::WrongType {
            at: f.at.clone(),
            field: f.path.clone(),
            expected,
        });
    }

    fn strings(&mut self, t: &Table, key: &str, path: &str) -> Option<Vec<String>> {
        let f = self.field(t, key, path)?;
        let arr = f.item.as_array().and_then(|a| {
            a.iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
        });
        if arr.is_none() {
            self.wrong(&f, "an array of strings");
        }
        arr
    }

    fn address(&mut self, t: &Table, key: &str, path: &str) -> Option<IpAddr> {
        let (s, at) = self.string(t, key, path)?;
        match s.parse() {
            Ok(a) => Some(a),
            Err(_) => {
                self.errors.push(Error::BadAddress {
                    at,
                    field: join(path, key),
                    value: s,
                    reason: "not an IPv4 or IPv6 address".into(),
                });
                None
            }
        }
    }

    fn name(&mut self, t: &Table, path: &str, header: Loc) -> Option<(String, Loc)> {
        let Some((n, at)) = self.string(t, "name", path) else {
            if t.get("name").is_none() {
                self.errors.push(Error::Missing {
                    at: header,
                    field: join(path, "name"),
                });
            }
            return None;
        };
        let ok = !n.is_empty()
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            self.errors.push(Error::BadName {
                at,
                field: join(path, "name"),
                reason: "names are non-empty and use only letters, digits, `-` and `_`",
            });
            return None;
        }
        Some((n, at))
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Parses and checks one policy file; on failure, every error found, in file order.
pub fn parse(file: &str, text: &str) -> Result<Policy, Vec<Error>> {
    let mut cx = Ctx {
        map: SourceMap::new(file, text),
        errors: Vec::new(),
    };
    let doc = match Document::parse(text) {
        Ok(d) => d,
        Err(e) => {
            let at = cx.map.span_loc(e.span());
            return Err(vec![Error::Syntax {
                at,
                reason: e.message().trim().to_string(),
            }]);
        }
    };
    let root = doc.as_table();
    cx.keys(root, TOP_KEYS, "");
    let top = cx.map.loc(0);
    match cx.field(root, "version", "") {
        None => cx.errors.push(Error::Missing {
            at: top.clone(),
            field: "version".into(),
        }),
        Some(f) => match f.item.as_integer() {
            Some(1) => {}
            Some(v) => cx.errors.push(Error::BadVersion {
                at: f.at,
                field: f.path,
                value: v,
            }),
            None => cx.wrong(&f, "an integer"),
        },
    }
    let role = match cx.string(root, "role", "") {
        None => {
            if root.get("role").is_none() {
                cx.errors.push(Error::Missing {
                    at: top.clone(),
                    field: "role".into(),
                });
            }
            None
        }
        Some((r, at)) => match r.as_str() {
            "home-agent" => Some((Role::HomeAgent, at)),
            "mobile-node" => Some((Role::MobileNode, at)),
            _ => {
                cx.errors.push(Error::UnknownName {
                    at,
                    field: "role".into(),
                    value: r,
                    allowed: "`home-agent`, `mobile-node`".into(),
                });
                None
            }
        },
    };
    let mut bindings = Bindings {
        home_agent: cx.address(root, "home_agent", ""),
        home_agent_v4: cx.address(root, "home_agent_v4", ""),
        mobile_nodes: Vec::new(),
    };
    let defaults = defaults(&mut cx, root);
    let mut seen_mn: HashMap<String, Loc> = HashMap::new();
    for (i, t) in tables(&mut cx, root, "mobile_node") {
        mobile_node(&mut cx, t, i, &mut seen_mn, &mut bindings);
    }
    for (i, t) in tables(&mut cx, root, "pool") {
        pool(&mut cx, t, i, &mut seen_mn, &mut bindings);
    }
    if let Some((Role::MobileNode, at)) = &role {
        if bindings.mobile_nodes.len() > 1 {
            cx.errors.push(Error::Role {
                at: at.clone(),
                field: "role".into(),
                reason: "a mobile node's policy binds at most one [[mobile_node]] and no pool",
            });
        }
    }
    let mut rules = Vec::new();
    let mut seen_rule: HashMap<String, Loc> = HashMap::new();
    for (i, t) in tables(&mut cx, root, "rule") {
        if let Some(r) = crate::rule::rule(
            &mut RuleCtx { cx: &mut cx },
            t,
            i,
            &defaults,
            &mut seen_rule,
        ) {
            rules.push(r);
        }
    }
    if cx.errors.is_empty() {
        if let Some((role, _)) = role {
            return Ok(Policy {
                file: file.to_string(),
                role,
                defaults,
                rules,
                bindings,
            });
        }
    }
    let mut errors = cx.errors;
    errors.sort_by(|a, b| a.loc().cmp(&b.loc()));
    Err(errors)
}

/// The `[[name]]` tables of the root, with their index; a wrong type is reported.
fn tables<'t>(cx: &mut Ctx<'_>, root: &'t Table, key: &str) -> Vec<(usize, &'t Table)> {
    match root.get(key) {
        None => Vec::new(),
        Some(Item::ArrayOfTables(a)) => a.iter().enumerate().collect(),
        Some(_) => {
            if let Some(f) = cx.field(root, key, "") {
                cx.wrong(&f, "an array of tables ([[...]])");
            }
            Vec::new()
        }
    }
}

fn defaults(cx: &mut Ctx<'_>, root: &Table) -> Defaults {
    let mut d = Defaults {
        proposals: vec!["aes128gcm16".into()],
        ike_proposals: vec!["aes128gcm16-prfsha256-x25519".into()],
        auth: "psk".into(),
    };
    let Some(item) = root.get("defaults") else {
        return d;
    };
    let Some(t) = item.as_table() else {
        if let Some(f) = cx.field(root, "defaults", "") {
            cx.wrong(&f, "a table");
        }
        return d;
    };
    cx.keys(t, DEFAULT_KEYS, "defaults");
    if let Some(p) = cx.strings(t, "proposals", "defaults") {
        d.proposals = p;
    }
    if let Some(p) = cx.strings(t, "ike_proposals", "defaults") {
        d.ike_proposals = p;
    }
    if let Some((a, at)) = cx.string(t, "auth", "defaults") {
        if a == "psk" || a == "pubkey" {
            d.auth = a;
        } else {
            cx.errors.push(Error::UnknownName {
                at,
                field: "defaults.auth".into(),
                value: a,
                allowed: "`psk`, `pubkey`".into(),
            });
        }
    }
    d
}

fn check_family(
    cx: &mut Ctx<'_>,
    a: Option<IpAddr>,
    v6: bool,
    t: &Table,
    key: &str,
    path: &str,
) -> Option<IpAddr> {
    let a = a?;
    if a.is_ipv6() != v6 {
        if let Some(f) = cx.field(t, key, path) {
            cx.errors.push(Error::BadAddress {
                at: f.at,
                field: f.path,
                value: a.to_string(),
                reason: if v6 {
                    "must be an IPv6 address".into()
                } else {
                    "must be an IPv4 address".into()
                },
            });
        }
        return None;
    }
    Some(a)
}

fn mobile_node(
    cx: &mut Ctx<'_>,
    t: &Table,
    i: usize,
    seen: &mut HashMap<String, Loc>,
    b: &mut Bindings,
) {
    let path = format!("mobile_node[{i}]");
    cx.keys(t, MN_KEYS, &path);
    let header = cx.map.span_loc(t.span());
    let name = cx.name(t, &path, header);
    let mut mn = MobileNode {
        identity: cx.string(t, "identity", &path).map(|s| s.0),
        ..Default::default()
    };
    let ha = cx.address(t, "home_address", &path);
    mn.home_address = check_family(cx, ha, true, t, "home_address", &path);
    let ha4 = cx.address(t, "home_address_v4", &path);
    mn.home_address_v4 = check_family(cx, ha4, false, t, "home_address_v4", &path);
    let coa = cx.address(t, "care_of_address", &path);
    mn.care_of_address = check_family(cx, coa, true, t, "care_of_address", &path);
    let coa4 = cx.address(t, "care_of_address_v4", &path);
    mn.care_of_address_v4 = check_family(cx, coa4, false, t, "care_of_address_v4", &path);
    if let Some((n, at)) = name {
        if let Some(first) = seen.get(&n) {
            cx.errors.push(Error::Duplicate {
                at,
                field: join(&path, "name"),
                value: n,
                first: first.clone(),
            });
            return;
        }
        seen.insert(n.clone(), at);
        mn.name = n;
        b.mobile_nodes.push(mn);
    }
}

fn pool(cx: &mut Ctx<'_>, t: &Table, i: usize, seen: &mut HashMap<String, Loc>, b: &mut Bindings) {
    let path = format!("pool[{i}]");
    cx.keys(t, POOL_KEYS, &path);
    let header = cx.map.span_loc(t.span());
    let name = cx.name(t, &path, header.clone());
    let count = match cx.field(t, "count", &path) {
        None => {
            cx.errors.push(Error::Missing {
                at: header,
                field: join(&path, "count"),
            });
            None
        }
        Some(f) => match f.item.as_integer() {
            Some(n) if (1..=MAX_POOL).contains(&n) => Some(n as u128),
            Some(_) => {
                cx.errors.push(Error::BadPool {
                    at: f.at,
                    field: f.path,
                    reason: format!("count must be between 1 and {MAX_POOL}"),
                });
                None
            }
            None => {
                cx.wrong(&f, "an integer");
                None
            }
        },
    };
    let identity = cx.string(t, "identity", &path);
    if let Some((id, at)) = &identity {
        if let Err(reason) = check_template(id, &["n"]) {
            cx.errors.push(Error::BadTemplate {
                at: at.clone(),
                field: join(&path, "identity"),
                reason,
            });
        }
    }
    let first6 = cx.address(t, "first_home_address", &path);
    let first6 = check_family(cx, first6, true, t, "first_home_address", &path);
    let first4 = cx.address(t, "first_home_address_v4", &path);
    let first4 = check_family(cx, first4, false, t, "first_home_address_v4", &path);
    let (Some((name, at)), Some(count)) = (name, count) else {
        return;
    };
    // The last address of the pool must not run past the end of the address space.
    for (key, first, max) in [
        ("first_home_address", first6.map(v6_num), u128::MAX),
        (
            "first_home_address_v4",
            first4.map(v4_num),
            u128::from(u32::MAX),
        ),
    ] {
        if let Some(f) = first {
            if max - f < count - 1 {
                let at = cx.field(t, key, &path).map_or(at.clone(), |f| f.at);
                cx.errors.push(Error::BadPool {
                    at,
                    field: join(&path, key),
                    reason: format!(
                        "{count} addresses from here run past the end of the address space"
                    ),
                });
                return;
            }
        }
    }
    if let Some(first) = seen.get(&name) {
        cx.errors.push(Error::Duplicate {
            at,
            field: join(&path, "name"),
            value: name,
            first: first.clone(),
        });
        return;
    }
    seen.insert(name.clone(), at);
    for k in 0..count {
        let n = k + 1;
        b.mobile_nodes.push(MobileNode {
            name: format!("{name}-{n}"),
            identity: identity
                .as_ref()
                .map(|(id, _)| id.replace("{n}", &n.to_string())),
            home_address: first6.map(|a| IpAddr::from(std::net::Ipv6Addr::from(v6_num(a) + k))),
            home_address_v4: first4
                .map(|a| IpAddr::from(std::net::Ipv4Addr::from((v4_num(a) + k) as u32))),
            care_of_address: None,
            care_of_address_v4: None,
        });
    }
}

fn v6_num(a: IpAddr) -> u128 {
    match a {
        IpAddr::V6(a) => u128::from(a),
        IpAddr::V4(a) => u128::from(u32::from(a)),
    }
}

fn v4_num(a: IpAddr) -> u128 {
    v6_num(a)
}

/// Checks that every `{...}` placeholder is one of `allowed`.
pub fn check_template(s: &str, allowed: &[&str]) -> Result<(), String> {
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            return Err("unclosed `{`".into());
        };
        let name = &rest[open + 1..open + close];
        if !allowed.contains(&name) {
            let list: Vec<String> = allowed.iter().map(|a| format!("{{{a}}}")).collect();
            return Err(format!(
                "unknown placeholder `{{{name}}}` (allowed: {})",
                list.join(", ")
            ));
        }
        rest = &rest[open + close + 1..];
    }
    Ok(())
}

/// The rule reader's access to the shared context.
pub struct RuleCtx<'c, 'a> {
    cx: &'c mut Ctx<'a>,
}

impl RuleCtx<'_, '_> {
    pub fn push(&mut self, e: Error) {
        self.cx.errors.push(e);
    }

    pub fn keys(&mut self, t: &Table, path: &str) {
        self.cx.keys(t, RULE_KEYS, path);
    }

    pub fn error_count(&self) -> usize {
        self.cx.errors.len()
    }

    pub fn header(&self, t: &Table) -> Loc {
        self.cx.map.span_loc(t.span())
    }

    pub fn name(&mut self, t: &Table, path: &str) -> Option<(String, Loc)> {
        let h = self.header(t);
        self.cx.name(t, path, h)
    }

    pub fn string(&mut self, t: &Table, key: &str, path: &str) -> Option<(String, Loc)> {
        self.cx.string(t, key, path)
    }

    pub fn strings(&mut self, t: &Table, key: &str, path: &str) -> Option<Vec<String>> {
        self.cx.strings(t, key, path)
    }

    /// A string or an integer value, as text, with its place.
    pub fn scalar(&mut self, t: &Table, key: &str, path: &str) -> Option<(String, Loc, bool)> {
        let f = self.cx.field(t, key, path)?;
        match f.item.as_value() {
            Some(Value::String(s)) => Some((s.value().clone(), f.at, false)),
            Some(Value::Integer(i)) => Some((i.value().to_string(), f.at, true)),
            _ => {
                self.cx.wrong(&f, "a string or an integer");
                None
            }
        }
    }

    pub fn key_loc(&self, t: &Table, key: &str) -> Option<Loc> {
        t.key(key).map(|k| self.cx.map.span_loc(k.span()))
    }
}

/// Reads an address expression: `any`, `[!]symbol`, `[!]address`, `prefix/len`, `lo-hi`.
pub fn addr_expr(s: &str) -> Result<AddrExpr, (String, Option<String>)> {
    let s = s.trim();
    if s == "any" {
        return Ok(AddrExpr::Any);
    }
    let (negated, body) = match s.strip_prefix('!') {
        Some(b) => (true, b.trim()),
        None => (false, s),
    };
    if let Some(sym) = Symbol::from_name(body) {
        return Ok(AddrExpr::Symbol { sym, negated });
    }
    if let Ok(addr) = body.parse::<IpAddr>() {
        return Ok(AddrExpr::Literal { addr, negated });
    }
    if negated {
        return Err(("`!` applies to one address or symbol".into(), None));
    }
    if let Some((a, len)) = body.split_once('/') {
        let addr: IpAddr = a
            .parse()
            .map_err(|_| (format!("`{a}` is not an address"), None))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len: u8 = len
            .parse()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| (format!("prefix length must be 0-{max}"), None))?;
        let r = AddrRange::prefix(addr, len).ok_or_else(|| ("bad prefix".to_string(), None))?;
        if r.lo() != addr {
            return Err((
                format!("host bits set: the network is {}/{len}", r.lo()),
                None,
            ));
        }
        return Ok(AddrExpr::Range(r));
    }
    if let Some((lo, hi)) = body.split_once('-') {
        if let (Ok(lo), Ok(hi)) = (lo.trim().parse::<IpAddr>(), hi.trim().parse::<IpAddr>()) {
            return AddrRange::new(lo, hi)
                .map(AddrExpr::Range)
                .ok_or_else(|| ("range ends differ in family or are reversed".into(), None));
        }
    }
    let looks_like_symbol = body.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if looks_like_symbol {
        let sugg = names::suggest(body, Symbol::ALL.iter().map(|s| s.name()).chain(["any"]));
        return Err((format!("unknown symbol `{body}`"), sugg));
    }
    Err((
        "not `any`, a symbol, an address, a prefix or a range".into(),
        None,
    ))
}

pub(crate) fn dirs(s: &str) -> Option<Dirs> {
    match s {
        "both" => Some(Dirs::BOTH),
        "out" => Some(Dirs::OUT),
        "in" => Some(Dirs::IN),
        _ => None,
    }
}

pub(crate) fn mode(s: &str) -> Option<Mode> {
    match s {
        "transport" => Some(Mode::Transport),
        "tunnel" => Some(Mode::Tunnel),
        _ => None,
    }
}

pub(crate) fn proto_name(p: ProtoSel) -> String {
    match p {
        ProtoSel::Any => "protocol any".into(),
        ProtoSel::Opaque => "protocol opaque".into(),
        ProtoSel::Is(n) => match names::name_of(names::PROTOCOLS, n) {
            Some(name) => format!("protocol {name}"),
            None => format!("protocol {n}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns() {
        let m = SourceMap::new("f", "ab\ncdé\n\nx");
        assert_eq!((m.loc(0).line, m.loc(0).col), (1, 1));
        assert_eq!((m.loc(3).line, m.loc(3).col), (2, 1));
        // Columns count characters, not bytes: `x` after the two-byte `é`.
        assert_eq!((m.loc(7).line, m.loc(7).col), (2, 4));
        assert_eq!((m.loc(9).line, m.loc(9).col), (4, 1));
    }

    #[test]
    fn address_expressions() {
        assert_eq!(addr_expr("any"), Ok(AddrExpr::Any));
        assert_eq!(
            addr_expr("!home_agent"),
            Ok(AddrExpr::Symbol {
                sym: Symbol::HomeAgent,
                negated: true
            })
        );
        assert!(matches!(addr_expr("2001:db8::/32"), Ok(AddrExpr::Range(_))));
        assert!(addr_expr("192.0.2.9-192.0.2.1").is_err());
        assert!(addr_expr("!2001:db8::/32").is_err());
        let (why, hint) = addr_expr("home_agnet").unwrap_err();
        assert!(why.contains("unknown symbol"));
        assert_eq!(hint.as_deref(), Some("home_agent"));
        assert!(addr_expr("10.0.0.1/8")
            .unwrap_err()
            .0
            .contains("10.0.0.0/8"));
    }

    #[test]
    fn templates() {
        assert!(check_template("mn{n}@x", &["n"]).is_ok());
        assert!(check_template("{identity}", &["n"]).is_err());
        assert!(check_template("mn{n", &["n"]).is_err());
    }
}
