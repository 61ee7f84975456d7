//! The daemon's configuration file: a `[daemon]` table (sockets, files, the IPsec switch)
//! and a `[home_agent]` table that is the engine's [`HaConfig`] (keys in `ha/README.md`).
//! [`load`] turns every failure into a [`ConfigError`] naming the file, the line and the
//! key, so `dsmip-ha check-config` output points at the exact place to fix.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use ha::HaConfig;
use serde::Deserialize;

use super::ipsec::IpsecConfig;

/// The UDP port of DSMIPv6 signalling and UDP tunnels (RFC 5555 §4.1).
pub const DSMIP_PORT: u16 = 4191;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    pub daemon: DaemonConfig,
    pub home_agent: HaConfig,
    /// The IKEv2 responder; required while `daemon.require_ipsec` is true.
    #[serde(default)]
    pub ipsec: Option<IpsecConfig>,
}

/// What the driver needs besides the engine configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// IPv4 address to bind UDP 4191 on; default `home_agent.address_v4`.
    #[serde(default)]
    pub listen_v4: Option<Ipv4Addr>,
    /// UDP port; default 4191 (RFC 5555 §4.1). Tests may pick another.
    #[serde(default = "default_port")]
    pub port: u16,
    /// The redb lease store (RFC 5555 §4.5: leases are stored).
    pub lease_file: PathBuf,
    /// Unix socket for `dsmip-ha bindings` and `dsmip-ha leases`.
    pub control_socket: PathBuf,
    /// Address of the Prometheus metrics HTTP listener; none: no listener.
    #[serde(default)]
    pub metrics_listen: Option<SocketAddr>,
    /// RFC 4877 §4.1 / RFC 5555 §5.2.1: accept Binding Updates only under ESP. `false`
    /// is for lab use only and is logged as a warning at start and on every BU.
    #[serde(default = "yes")]
    pub require_ipsec: bool,
    /// TUN device for home-address traffic (the UDP 4191 data plane); none: no data plane.
    #[serde(default)]
    pub tun: Option<String>,
    /// The home link: proxy NDP (RFC 6275 §10.4.1) and proxy ARP (RFC 5555 §4.5) for
    /// bound home addresses are set on it. Needs `tun`.
    #[serde(default)]
    pub home_link: Option<String>,
    /// MTU of the TUN device.
    #[serde(default = "default_mtu")]
    pub tun_mtu: u32,
    /// Interfaces on which Binding Updates and IP-in-IPv6 tunnels from IPv6 care-of
    /// addresses are read (AF_PACKET, `daemon/ipv6.rs`); empty: no IPv6 transport.
    #[serde(default)]
    pub listen_v6_interfaces: Vec<String>,
}

fn default_mtu() -> u32 {
    1400
}

fn default_port() -> u16 {
    DSMIP_PORT
}
fn yes() -> bool {
    true
}

impl DaemonFile {
    /// The address UDP 4191 is bound on.
    pub fn listen_v4(&self) -> Ipv4Addr {
        self.daemon.listen_v4.unwrap_or(self.home_agent.address_v4)
    }
}

/// A configuration file that cannot be used, with the place to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// 1-based line, when the failure has a place in the file.
    pub line: Option<usize>,
    /// Dotted key (`home_agent.max_lifetime`), when known.
    pub key: Option<String>,
    pub reason: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        if let Some(k) = &self.key {
            write!(f, ": key `{k}`")?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// Read, parse and validate a configuration file.
pub fn load(path: &Path) -> Result<DaemonFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
        file: path.to_path_buf(),
        line: None,
        key: None,
        reason: format!("cannot read: {e}"),
    })?;
    parse(path, &text)
}

/// Parse and validate configuration text read from `path`.
pub fn parse(path: &Path, text: &str) -> Result<DaemonFile, ConfigError> {
    let file: DaemonFile = toml::from_str(text).map_err(|e| {
        let (line, key) = match e.span() {
            Some(span) => place(text, span.start, e.message()),
            None => (None, None),
        };
        ConfigError {
            file: path.to_path_buf(),
            line,
            key,
            reason: e.message().to_string(),
        }
    })?;
    file.home_agent.validate().map_err(|e| {
        let key = match &e {
            ha::Error::Config { key, .. } => Some(format!("home_agent.{key}")),
            _ => None,
        };
        ConfigError {
            file: path.to_path_buf(),
            line: key.as_deref().and_then(|k| line_of_key(text, k)),
            key,
            reason: e.to_string(),
        }
    })?;
    let err = |key: &str, reason: String| ConfigError {
        file: path.to_path_buf(),
        line: line_of_key(text, key),
        key: Some(key.to_string()),
        reason,
    };
    match &file.ipsec {
        None if file.daemon.require_ipsec => {
            return Err(err(
                "daemon.require_ipsec",
                "require_ipsec = true needs an [ipsec] table (the IKEv2 responder)".into(),
            ))
        }
        None => {}
        Some(ip) => {
            ip.responder(&file.home_agent)
                .map_err(|e| err("ipsec.ike_proposal", format!("{e:#}")))?;
            for (i, p) in ip.peers.iter().enumerate() {
                if !file
                    .home_agent
                    .home_prefixes
                    .iter()
                    .any(|h| h.contains(&p.home_address))
                {
                    return Err(err(
                        &format!("ipsec.peer[{i}].home_address"),
                        format!("{} is outside home_prefixes", p.home_address),
                    ));
                }
            }
        }
    }
    if file.daemon.home_link.is_some() && file.daemon.tun.is_none() {
        return Err(err(
            "daemon.home_link",
            "home_link needs tun (the data plane)".into(),
        ));
    }
    if file.daemon.port == 0 {
        return Err(ConfigError {
            file: path.to_path_buf(),
            line: line_of_key(text, "daemon.port"),
            key: Some("daemon.port".into()),
            reason: "must not be 0".into(),
        });
    }
    Ok(file)
}

/// Line and dotted key of a byte offset: the table header above it plus the key on its line,
/// or the field named in a "missing field `x`" / "unknown field `x`" message.
fn place(text: &str, offset: usize, message: &str) -> (Option<usize>, Option<String>) {
    let offset = offset.min(text.len());
    let line_no = text[..offset].matches('\n').count() + 1;
    let mut table = String::new();
    for l in text.lines().take(line_no) {
        let t = l.trim();
        if t.starts_with('[') {
            table = t.trim_matches(|c| c == '[' || c == ']').trim().to_string();
        }
    }
    let this = text.lines().nth(line_no - 1).unwrap_or("");
    let named = message
        .split('`')
        .nth(1)
        .filter(|_| message.contains("field"));
    let key = match (named, this.split_once('=')) {
        (Some(f), _) => Some(f.to_string()),
        (None, Some((k, _))) => Some(k.trim().to_string()),
        (None, None) => None,
    };
    let key = key.map(|k| {
        if table.is_empty() {
            k
        } else {
            format!("{table}.{k}")
        }
    });
    (Some(line_no), key)
}

/// The line where a dotted key is set: `daemon.port`, `home_agent.max_lifetime`, or with an
/// array-of-tables index `home_agent.ipv4_pool[1].range` (the header line when the key ends
/// at the index, as in `home_agent.mobile_node[0]`).
fn line_of_key(text: &str, dotted: &str) -> Option<usize> {
    let (table, index, leaf) = match dotted.rfind('[') {
        Some(open) => {
            let close = open + dotted[open..].find(']')?;
            let index: usize = dotted[open + 1..close].parse().ok()?;
            let leaf = dotted[close + 1..].trim_start_matches('.');
            (&dotted[..open], Some(index), leaf)
        }
        None => {
            let (t, k) = dotted.rsplit_once('.').unwrap_or(("", dotted));
            (t, None, k)
        }
    };
    let mut seen = 0usize;
    let mut inside = table.is_empty();
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.starts_with('[') {
            let name = t.trim_matches(|c| c == '[' || c == ']').trim();
            inside = name == table
                && match index {
                    Some(want) => {
                        seen += 1;
                        seen == want + 1
                    }
                    None => true,
                };
            if inside && leaf.is_empty() {
                return Some(i + 1);
            }
            continue;
        }
        if inside && t.split_once('=').is_some_and(|(k, _)| k.trim() == leaf) {
            return Some(i + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[daemon]
lease_file = "/tmp/x.redb"
control_socket = "/tmp/x.sock"
require_ipsec = false

[home_agent]
address = "2001:db8:1::1"
address_v4 = "192.0.2.1"
home_prefixes = ["2001:db8:1::/64"]
"#;

    #[test]
    fn good_file_parses_with_defaults() {
        let f = parse(Path::new("ha.toml"), GOOD).expect("valid");
        assert_eq!(f.daemon.port, DSMIP_PORT);
        assert!(!f.daemon.require_ipsec);
        assert_eq!(f.listen_v4(), Ipv4Addr::new(192, 0, 2, 1));
        assert!(f.daemon.metrics_listen.is_none());
    }

    #[test]
    fn bad_value_names_line_and_key() {
        let text = GOOD.replace("address_v4 = \"192.0.2.1\"", "address_v4 = \"192.0.2\"");
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(e.line, Some(9), "{e}");
        assert_eq!(e.key.as_deref(), Some("home_agent.address_v4"), "{e}");
        assert!(e
            .to_string()
            .starts_with("ha.toml:9: key `home_agent.address_v4`"));
    }

    #[test]
    fn unknown_key_is_named() {
        let text = GOOD.replace("[daemon]\n", "[daemon]\nrequire_ipsek = false\n");
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(e.line, Some(3), "{e}");
        assert_eq!(e.key.as_deref(), Some("daemon.require_ipsek"), "{e}");
    }

    #[test]
    fn semantic_error_names_key_line() {
        let text = format!("{GOOD}max_lifetime = 2\n");
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("home_agent.max_lifetime"), "{e}");
        assert_eq!(e.line, Some(11), "{e}");
    }

    #[test]
    fn indexed_key_finds_its_table() {
        let text = format!(
            "{GOOD}\n[[home_agent.ipv4_pool]]\nrange = \"198.51.100.0/28\"\n\n[[home_agent.ipv4_pool]]\nrange = \"198.51.100.8/29\"\n"
        );
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(
            e.key.as_deref(),
            Some("home_agent.ipv4_pool[1].range"),
            "{e}"
        );
        assert_eq!(e.line, Some(16), "{e}");
    }

    #[test]
    fn the_commented_example_is_valid() {
        let text = include_str!("../../examples/dsmip-ha.toml");
        let f = parse(Path::new("dsmip-ha.toml"), text).expect("example must be valid");
        assert!(f.daemon.require_ipsec, "the example keeps IPsec required");
        assert_eq!(f.home_agent.mobile_nodes.len(), 2);
        assert_eq!(f.home_agent.ipv4_pools.len(), 1);
    }

    #[test]
    fn ipsec_required_needs_its_table() {
        let text = GOOD.replace("require_ipsec = false", "require_ipsec = true");
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("daemon.require_ipsec"), "{e}");
        assert_eq!(e.line, Some(5), "{e}");
        let with = format!(
            "{text}\n[ipsec]\nlocal_id = \"ha.example.org\"\npsk = \"s3cret-s3cret\"\n\n[[ipsec.peer]]\nid = \"mn@example.org\"\nhome_address = \"2001:db8:9::1\"\n"
        );
        let e = parse(Path::new("ha.toml"), &with).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("ipsec.peer[0].home_address"), "{e}");
        assert_eq!(e.line, Some(18), "{e}");
        let ok = with.replace("2001:db8:9::1", "2001:db8:1::100");
        let f = parse(Path::new("ha.toml"), &ok).expect("valid");
        assert!(
            !format!("{f:?}").contains("s3cret"),
            "the PSK must not reach Debug"
        );
        let bad = ok.replace("psk =", "esp_proposal = \"nonsense\"\npsk =");
        let e = parse(Path::new("ha.toml"), &bad).unwrap_err();
        assert!(e.key.is_some(), "{e}");
    }

    #[test]
    fn home_link_needs_tun() {
        let text = GOOD.replace("[daemon]\n", "[daemon]\nhome_link = \"eth1\"\n");
        let e = parse(Path::new("ha.toml"), &text).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("daemon.home_link"), "{e}");
        assert_eq!(e.line, Some(3), "{e}");
        let ok = text.replace("[daemon]\n", "[daemon]\ntun = \"dsmha0\"\n");
        let f = parse(Path::new("ha.toml"), &ok).expect("valid");
        assert_eq!(f.daemon.tun_mtu, 1400);
    }

    #[test]
    fn missing_table_is_reported() {
        let e = parse(Path::new("ha.toml"), "[daemon]\nport = 1\n").unwrap_err();
        assert!(e.reason.contains("missing field"), "{e}");
    }
}
