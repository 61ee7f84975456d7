//! The daemon's TOML file: `[daemon]` (sockets, addresses, shutdown), `[mobile_node]` (the
//! engine's [`MnConfig`], keys in `mn/README.md`) and `[ipsec]` (the IKEv2 initiator that
//! protects BU/BA, RFC 4877). Errors name the file, the line when known, and the key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use dsmip_daemon::psk::Psk;
use ike::proposal::Proposal;
use ike::wire::ProtocolId;
use mn::config::MnConfig;
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonFile {
    pub daemon: DaemonConfig,
    pub mobile_node: MnConfig,
    pub ipsec: IpsecConfig,
}

/// `[daemon]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// Unix socket of `dsmip-mn status`.
    pub control_socket: PathBuf,
    /// Local addresses to use as care-of addresses; empty: read once at start from the
    /// kernel (`ip -o addr show scope global`).
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// How long SIGTERM waits for the deregistration's acknowledgement.
    #[serde(default = "default_shutdown_ms")]
    pub shutdown_timeout_ms: u64,
    /// TUN device carrying the home addresses: turns the data plane on.
    #[serde(default)]
    pub tun: Option<String>,
    #[serde(default = "default_tun_mtu")]
    pub tun_mtu: u32,
    /// Destinations (`ADDR/LEN`, either family) routed into the TUN device with the home
    /// address as source.
    #[serde(default)]
    pub routes: Vec<String>,
    /// Use global IPv6 addresses as care-of addresses too (RFC 5555 §4.4.1: IPv6 first,
    /// IPv4 after three unanswered BUs). Off by default: it needs a home agent that reads
    /// IPv6 (`dsmip-ha` with `listen_v6_interfaces`) and nftables here (`ipv6.rs`).
    #[serde(default)]
    pub ipv6_care_of: bool,
}

fn default_tun_mtu() -> u32 {
    1400
}

/// `ADDR/LEN` with LEN within the family's width.
fn valid_prefix(s: &str) -> bool {
    let Some((a, l)) = s.split_once('/') else {
        return false;
    };
    match (a.parse::<IpAddr>(), l.parse::<u8>()) {
        (Ok(IpAddr::V4(_)), Ok(l)) => l <= 32,
        (Ok(IpAddr::V6(_)), Ok(l)) => l <= 128,
        _ => false,
    }
}

fn default_shutdown_ms() -> u64 {
    3_000
}

/// `[ipsec]`: the IKEv2 initiator towards the home agent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpsecConfig {
    /// Our IKE identity (strongSwan syntax); the home agent maps it to our home address.
    pub local_id: String,
    /// The identity the home agent must prove; none: any.
    #[serde(default)]
    pub remote_id: Option<String>,
    pub psk: Psk,
    #[serde(default = "default_ike_proposal")]
    pub ike_proposal: String,
    #[serde(default = "default_esp_proposal")]
    pub esp_proposal: String,
    /// Our local IKE ports (the home agent's are 500 and 4500).
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_natt_port")]
    pub natt_port: u16,
    /// The home agent's IKE port.
    #[serde(default = "default_ike_port")]
    pub remote_ike_port: u16,
    /// Seconds before a failed IKE SA is tried again.
    #[serde(default = "default_retry")]
    pub retry_secs: u64,
    /// ESP tunnel mode for data (RFC 5555 §5.2.2): `auto` (when the BA reports a NAT),
    /// `always`, `never`.
    #[serde(default)]
    pub data_esp: super::datasa::DataEsp,
}

fn default_ike_proposal() -> String {
    "aes128gcm16-prfsha256-x25519".into()
}
fn default_esp_proposal() -> String {
    "aes128gcm16".into()
}
fn default_ike_port() -> u16 {
    500
}
fn default_natt_port() -> u16 {
    4500
}
fn default_retry() -> u64 {
    5
}

impl DaemonFile {
    /// The home agent's IPv4 address: signalling goes over UDP 4191 on IPv4 only.
    pub fn ha_v4(&self) -> Option<Ipv4Addr> {
        self.mobile_node.home_agent.ipv4
    }
}

/// Read, parse and validate `path`.
pub fn load(path: &Path) -> Result<DaemonFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse(&text).map_err(|e| anyhow::anyhow!("{}:{e}", path.display()))
}

/// Parse and validate the text of a file; errors read `LINE: key `k`: reason`.
pub fn parse(text: &str) -> Result<DaemonFile> {
    let f: DaemonFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| {
            text.as_bytes()[..s.start.min(text.len())]
                .iter()
                .filter(|b| **b == b'\n')
                .count()
                + 1
        });
        let msg = e.message().to_string();
        match line {
            Some(l) => anyhow::anyhow!("{l}: {msg}"),
            None => anyhow::anyhow!(" {msg}"),
        }
    })?;
    validate(&f, text)?;
    Ok(f)
}

fn line_of(text: &str, key: &str) -> usize {
    let last = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|l| {
            let t = l.trim_start();
            t.starts_with(last) && t[last.len()..].trim_start().starts_with('=')
        })
        .map_or(0, |i| i + 1)
}

fn validate(f: &DaemonFile, text: &str) -> Result<()> {
    let err = |key: &str, why: String| -> Result<()> {
        bail!("{}: key `{key}`: {why}", line_of(text, key))
    };
    if let Err(e) = f.mobile_node.validate() {
        // The engine's errors name a key of `MnConfig`; prefix the table.
        return match e {
            mn::error::MnError::Config { key, reason } => {
                err(&format!("mobile_node.{key}"), reason.to_string())
            }
            other => err("mobile_node", other.to_string()),
        };
    }
    if f.ha_v4().is_none() {
        return err(
            "mobile_node.home_agent.ipv4",
            "required: Binding Updates go over UDP 4191 on IPv4 (IPv6 signalling is not implemented)".into(),
        );
    }
    if f.mobile_node.home_agent.ipv6.is_none() {
        return err(
            "mobile_node.home_agent.ipv6",
            "required: DNS discovery of the home agent is not wired into the daemon".into(),
        );
    }
    if let Err(e) = Proposal::parse(&f.ipsec.ike_proposal, ProtocolId::IKE) {
        return err("ipsec.ike_proposal", e.to_string());
    }
    if let Err(e) = Proposal::parse(&f.ipsec.esp_proposal, ProtocolId::ESP) {
        return err("ipsec.esp_proposal", e.to_string());
    }
    if f.ipsec.psk.len() < 8 {
        return err("ipsec.psk", "shorter than 8 characters".into());
    }
    if let Some(r) = f.daemon.routes.iter().find(|r| !valid_prefix(r)) {
        return err("daemon.routes", format!("`{r}` is not ADDR/LEN"));
    }
    if !f.daemon.routes.is_empty() && f.daemon.tun.is_none() {
        return err("daemon.routes", "needs daemon.tun".into());
    }
    if !(1280..=65_535).contains(&f.daemon.tun_mtu) {
        return err(
            "daemon.tun_mtu",
            "must be 1280 to 65535 (IPv6 minimum MTU)".into(),
        );
    }
    if f.daemon.shutdown_timeout_ms == 0 {
        return err("daemon.shutdown_timeout_ms", "must be above 0".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../examples/dsmip-mn.toml");

    #[test]
    fn example_file_is_valid() {
        let f = parse(EXAMPLE).expect("example parses");
        assert_eq!(f.mobile_node.home_address.to_string(), "2001:db8:1::100");
        assert_eq!(f.ha_v4(), Some(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(f.ipsec.local_id, "mn@example.org");
    }

    #[test]
    fn psk_is_not_in_debug_output() {
        let f = parse(EXAMPLE).unwrap();
        let dbg = format!("{f:?}");
        assert!(!dbg.contains("change-this-key"), "{dbg}");
        assert!(dbg.contains("redacted"), "{dbg}");
    }

    #[test]
    fn unknown_key_names_line() {
        let text = EXAMPLE.replace("[daemon]\n", "[daemon]\nbogus = 1\n");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let line = EXAMPLE.lines().position(|l| l == "[daemon]").unwrap() + 2;
        assert!(e.starts_with(&format!("{line}:")), "{e}");
    }

    #[test]
    fn missing_ipv4_home_agent_is_refused() {
        let text = EXAMPLE.replace("ipv4 = \"192.0.2.1\"", "");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("mobile_node.home_agent.ipv4"), "{e}");
    }

    #[test]
    fn bad_proposal_names_key_and_line() {
        let text = EXAMPLE.replace(
            "esp_proposal = \"aes128gcm16\"",
            "esp_proposal = \"nonsense\"",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("ipsec.esp_proposal"), "{e}");
        let line = text
            .lines()
            .position(|l| l.starts_with("esp_proposal"))
            .unwrap()
            + 1;
        assert!(e.starts_with(&format!("{line}:")), "{e}");
    }

    #[test]
    fn routes_are_checked() {
        let text = EXAMPLE.replace(
            "# routes = [",
            "tun = \"dsmmn0\"\nroutes = [\"203.0.113.0/33\"]\n# routes = [",
        );
        let e = parse(&text).unwrap_err().to_string();
        assert!(
            e.contains("daemon.routes") && e.contains("203.0.113.0/33"),
            "{e}"
        );
        let ok = EXAMPLE.replace(
            "# routes = [",
            "tun = \"dsmmn0\"\nroutes = [\"203.0.113.0/24\", \"2001:db8:1::/64\"]\n# routes = [",
        );
        assert_eq!(parse(&ok).unwrap().daemon.routes.len(), 2);
    }

    #[test]
    fn data_esp_values() {
        use super::super::datasa::DataEsp;
        assert_eq!(parse(EXAMPLE).unwrap().ipsec.data_esp, DataEsp::Auto);
        let t = EXAMPLE.replace("data_esp = \"auto\"", "data_esp = \"always\"");
        assert_eq!(parse(&t).unwrap().ipsec.data_esp, DataEsp::Always);
        let t = EXAMPLE.replace("data_esp = \"auto\"", "data_esp = \"sometimes\"");
        let e = parse(&t).unwrap_err().to_string();
        assert!(e.contains("sometimes") || e.contains("variant"), "{e}");
        let line = t.lines().position(|l| l.starts_with("data_esp")).unwrap() + 1;
        assert!(e.starts_with(&format!("{line}:")), "{e}");
    }

    #[test]
    fn engine_validation_names_the_key() {
        let text = EXAMPLE.replace("lifetime_secs = 400", "lifetime_secs = 401");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains("lifetime_secs"), "{e}");
    }
}
