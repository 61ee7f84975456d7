//! The mobile node's configuration: what it registers, with which home agent, for how long,
//! and how it recognises an administrative domain. Every key is documented in the README;
//! the types derive serde `Deserialize` so the daemon can read them from a file.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::Deserialize;

use crate::error::{MnError, Result};

/// NATKATIMEOUT (RFC 5555 §6).
pub const NATKATIMEOUT_SECS: u32 = 110;
/// INITIAL_BINDACK_TIMEOUT (RFC 6275 §12).
pub const INITIAL_BINDACK_TIMEOUT_MS: u64 = 1_000;
/// MAX_BINDACK_TIMEOUT (RFC 6275 §12).
pub const MAX_BINDACK_TIMEOUT_MS: u64 = 32_000;

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MnConfig {
    /// The IPv6 home address.
    pub home_address: Ipv6Addr,
    /// Length of the home link prefix, to recognise being at home (RFC 6275 §11.5.4).
    #[serde(default = "default_home_prefix_len")]
    pub home_prefix_len: u8,
    /// The IPv4 home address wanted (RFC 5555 §3.1.1).
    #[serde(default)]
    pub ipv4_home: Ipv4Home,
    /// Where the home agent is.
    pub home_agent: HomeAgentConfig,
    /// Lifetime requested in each Binding Update, seconds, a multiple of 4.
    #[serde(default = "default_lifetime")]
    pub lifetime_secs: u32,
    /// Refresh the binding when this share of the granted lifetime has passed.
    #[serde(default = "default_refresh_percent")]
    pub refresh_percent: u8,
    /// Ask for UDP encapsulation (F flag) on every Binding Update from an IPv4 care-of
    /// address (RFC 5555 §4.4.2).
    #[serde(default)]
    pub force_udp: bool,
    /// Set K, the Key Management Mobility Capability (RFC 6275 §6.1.7).
    #[serde(default = "yes")]
    pub key_management: bool,
    /// NAT keepalive period when the home agent suggests none (RFC 5555 §4.3, NATKATIMEOUT).
    #[serde(default = "default_natka")]
    pub nat_keepalive_secs: u32,
    /// First retransmission timeout of a Binding Update (RFC 6275 §11.8).
    #[serde(default = "default_initial_timeout")]
    pub initial_bindack_timeout_ms: u64,
    /// Cap of the exponential back-off (RFC 6275 §11.8).
    #[serde(default = "default_max_timeout")]
    pub max_bindack_timeout_ms: u64,
    /// Attempts with an IPv6 care-of address before falling back to IPv4 (RFC 5555 §4.4.1).
    #[serde(default = "default_ipv6_attempts")]
    pub ipv6_attempts: u32,
    /// Our UDP source port for Binding Updates and the UDP tunnel.
    #[serde(default = "default_udp_port")]
    pub udp_source_port: u16,
    /// How administrative domains are recognised (RFC 5555 §4.4.1).
    #[serde(default)]
    pub domains: DomainConfig,
}

/// The IPv4 home address request (RFC 5555 §3.1.1, §4.4.2).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Ipv4Home {
    /// No IPv4 home address.
    #[default]
    None,
    /// A statically assigned address (and optionally the length of its prefix).
    Static {
        address: Ipv4Addr,
        #[serde(default = "default_v4_len")]
        prefix_len: u8,
    },
    /// Ask for a dynamic address: the option carries 0.0.0.0.
    Dynamic,
    /// Ask for IPv4 prefixes of these lengths: one option each, with P set.
    Prefixes { lengths: Vec<u8> },
}

/// The home agent: its addresses, or names to find them with (RFC 5555 §2.1).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HomeAgentConfig {
    #[serde(default)]
    pub ipv6: Option<Ipv6Addr>,
    #[serde(default)]
    pub ipv4: Option<Ipv4Addr>,
    /// Name to look up with A and AAAA queries.
    #[serde(default)]
    pub name: Option<String>,
    /// Domain whose SRV record `_mip6._ipv6.<domain>` names the home agents.
    #[serde(default)]
    pub service_domain: Option<String>,
}

/// Administrative domain recognition (see `domain.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// Named domains, each a set of prefixes; the first that holds a care-of address wins.
    #[serde(default)]
    pub named: Vec<NamedDomain>,
    /// Without a named domain or a network label, IPv6 care-of addresses sharing this
    /// prefix length are one domain.
    #[serde(default = "default_auto_v6")]
    pub auto_ipv6_prefix_len: u8,
    /// Likewise for IPv4 care-of addresses.
    #[serde(default = "default_auto_v4")]
    pub auto_ipv4_prefix_len: u8,
}

impl Default for DomainConfig {
    fn default() -> Self {
        DomainConfig {
            named: Vec::new(),
            auto_ipv6_prefix_len: default_auto_v6(),
            auto_ipv4_prefix_len: default_auto_v4(),
        }
    }
}

/// One named administrative domain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDomain {
    pub name: String,
    pub prefixes: Vec<Prefix>,
}

/// An IPv4 or IPv6 prefix written `addr/len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// Whether `a` lies inside the prefix (families must agree).
    pub fn contains(&self, a: IpAddr) -> bool {
        match (self.addr, a) {
            (IpAddr::V4(p), IpAddr::V4(x)) => mask_v4(p, self.len) == mask_v4(x, self.len),
            (IpAddr::V6(p), IpAddr::V6(x)) => mask_v6(p, self.len) == mask_v6(x, self.len),
            _ => false,
        }
    }
}

impl TryFrom<String> for Prefix {
    type Error = String;
    fn try_from(s: String) -> std::result::Result<Self, String> {
        let (a, l) = s
            .split_once('/')
            .ok_or_else(|| format!("{s}: expected addr/len"))?;
        let addr: IpAddr = a.parse().map_err(|e| format!("{s}: {e}"))?;
        let len: u8 = l.parse().map_err(|e| format!("{s}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if len > max {
            return Err(format!("{s}: prefix length above {max}"));
        }
        Ok(Prefix { addr, len })
    }
}

pub(crate) fn mask_v4(a: Ipv4Addr, len: u8) -> Ipv4Addr {
    let m = u32::MAX
        .checked_shl(32 - u32::from(len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(u32::from(a) & m)
}

pub(crate) fn mask_v6(a: Ipv6Addr, len: u8) -> Ipv6Addr {
    let m = u128::MAX
        .checked_shl(128 - u32::from(len.min(128)))
        .unwrap_or(0);
    Ipv6Addr::from(u128::from(a) & m)
}

fn default_home_prefix_len() -> u8 {
    64
}
fn default_lifetime() -> u32 {
    600
}
fn default_refresh_percent() -> u8 {
    80
}
fn yes() -> bool {
    true
}
fn default_natka() -> u32 {
    NATKATIMEOUT_SECS
}
fn default_initial_timeout() -> u64 {
    INITIAL_BINDACK_TIMEOUT_MS
}
fn default_max_timeout() -> u64 {
    MAX_BINDACK_TIMEOUT_MS
}
fn default_ipv6_attempts() -> u32 {
    3
}
fn default_udp_port() -> u16 {
    mipsec::wire::tunnel::DSMIPV6_PORT
}
fn default_v4_len() -> u8 {
    32
}
fn default_auto_v6() -> u8 {
    48
}
fn default_auto_v4() -> u8 {
    16
}

impl MnConfig {
    /// A configuration with every default and the given home address and home agent.
    pub fn new(home_address: Ipv6Addr, home_agent: HomeAgentConfig) -> Self {
        MnConfig {
            home_address,
            home_prefix_len: default_home_prefix_len(),
            ipv4_home: Ipv4Home::None,
            home_agent,
            lifetime_secs: default_lifetime(),
            refresh_percent: default_refresh_percent(),
            force_udp: false,
            key_management: true,
            nat_keepalive_secs: NATKATIMEOUT_SECS,
            initial_bindack_timeout_ms: INITIAL_BINDACK_TIMEOUT_MS,
            max_bindack_timeout_ms: MAX_BINDACK_TIMEOUT_MS,
            ipv6_attempts: default_ipv6_attempts(),
            udp_source_port: default_udp_port(),
            domains: DomainConfig::default(),
        }
    }

    /// Check the values against what the protocol can carry.
    pub fn validate(&self) -> Result<()> {
        let bad = |key, reason| Err(MnError::Config { key, reason });
        if self.home_prefix_len > 128 {
            return bad("home_prefix_len", "above 128");
        }
        if self.lifetime_secs == 0 || mipsec::wire::mh::lifetime_units(self.lifetime_secs).is_none()
        {
            return bad(
                "lifetime_secs",
                "must be a non-zero multiple of 4 up to 262140",
            );
        }
        if !(1..=100).contains(&self.refresh_percent) {
            return bad("refresh_percent", "must be 1 to 100");
        }
        if self.nat_keepalive_secs == 0 {
            return bad("nat_keepalive_secs", "must be above 0");
        }
        if self.initial_bindack_timeout_ms == 0
            || self.initial_bindack_timeout_ms > self.max_bindack_timeout_ms
        {
            return bad(
                "initial_bindack_timeout_ms",
                "must be above 0 and at most max_bindack_timeout_ms",
            );
        }
        if self.ipv6_attempts == 0 {
            return bad("ipv6_attempts", "must be at least 1");
        }
        let ha = &self.home_agent;
        if ha.ipv6.is_none() && ha.name.is_none() && ha.service_domain.is_none() {
            return bad("home_agent", "needs ipv6, name or service_domain");
        }
        match &self.ipv4_home {
            Ipv4Home::Static {
                address,
                prefix_len,
            } => {
                if *prefix_len == 0 || *prefix_len > 32 {
                    return bad("ipv4_home.prefix_len", "must be 1 to 32");
                }
                if address.is_unspecified() {
                    return bad(
                        "ipv4_home.address",
                        "0.0.0.0 is the dynamic request: use mode dynamic",
                    );
                }
            }
            Ipv4Home::Prefixes { lengths } => {
                if lengths.is_empty() || lengths.iter().any(|l| *l == 0 || *l > 32) {
                    return bad("ipv4_home.lengths", "one or more lengths, each 1 to 32");
                }
            }
            Ipv4Home::None | Ipv4Home::Dynamic => {}
        }
        if self.domains.auto_ipv6_prefix_len > 128 || self.domains.auto_ipv4_prefix_len > 32 {
            return bad("domains.auto_*_prefix_len", "longer than the address");
        }
        Ok(())
    }

    pub(crate) fn initial_timeout(&self) -> Duration {
        Duration::from_millis(self.initial_bindack_timeout_ms)
    }

    pub(crate) fn max_timeout(&self) -> Duration {
        Duration::from_millis(self.max_bindack_timeout_ms)
    }

    /// Whether `a` is on the home link (RFC 6275 §11.5.4).
    pub fn is_home_link(&self, a: Ipv6Addr) -> bool {
        mask_v6(a, self.home_prefix_len) == mask_v6(self.home_address, self.home_prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_config_deserializes_with_defaults() {
        let c: MnConfig = serde_json::from_str(
            r#"{"home_address":"2001:db8:1::100",
                "ipv4_home":{"mode":"static","address":"192.0.2.100"},
                "home_agent":{"ipv6":"2001:db8:1::1","ipv4":"192.0.2.1"},
                "domains":{"named":[{"name":"corp","prefixes":["2001:db8:50::/48","198.51.100.0/24"]}]}}"#,
        )
        .unwrap();
        assert_eq!(c.lifetime_secs, 600);
        assert_eq!(c.nat_keepalive_secs, 110);
        assert_eq!(c.ipv6_attempts, 3);
        assert!(c.key_management);
        assert_eq!(
            c.ipv4_home,
            Ipv4Home::Static {
                address: Ipv4Addr::new(192, 0, 2, 100),
                prefix_len: 32
            }
        );
        let p = c.domains.named[0].prefixes[1];
        assert!(p.contains("198.51.100.77".parse().unwrap()));
        assert!(!p.contains("198.51.101.1".parse().unwrap()));
        c.validate().unwrap();
    }

    #[test]
    fn bad_values_name_their_key() {
        let ha = HomeAgentConfig {
            ipv6: Some("2001:db8::1".parse().unwrap()),
            ..Default::default()
        };
        let mut c = MnConfig::new("2001:db8::100".parse().unwrap(), ha);
        c.lifetime_secs = 601;
        assert!(matches!(
            c.validate(),
            Err(MnError::Config {
                key: "lifetime_secs",
                ..
            })
        ));
        c.lifetime_secs = 600;
        c.ipv4_home = Ipv4Home::Prefixes { lengths: vec![33] };
        assert!(matches!(
            c.validate(),
            Err(MnError::Config {
                key: "ipv4_home.lengths",
                ..
            })
        ));
        c.ipv4_home = Ipv4Home::Dynamic;
        c.home_agent = HomeAgentConfig::default();
        assert!(matches!(
            c.validate(),
            Err(MnError::Config {
                key: "home_agent",
                ..
            })
        ));
        let e = serde_json::from_str::<Prefix>(r#""10.0.0.0/40""#).unwrap_err();
        assert!(e.to_string().contains("above 32"), "{e}");
        assert!(serde_json::from_str::<MnConfig>(
            r#"{"home_address":"2001:db8::1","home_agent":{},"bogus":1}"#
        )
        .is_err());
    }
}
