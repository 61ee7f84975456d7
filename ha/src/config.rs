//! Home agent configuration: what the engine serves, the policy knobs of RFC 6275 §10.3.1
//! and RFC 5555 §4.5, the IPv4 home address pools and the per-mobile-node entries. Every
//! type derives `Deserialize` so the daemon can read it from TOML; `ha/README.md` lists every
//! key. [`HaConfig::validate`] turns an inconsistent file into an [`Error::Config`].

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use serde::Deserialize;

use crate::error::{Error, Result};

/// NATKATIMEOUT (RFC 5555 §6): the default NAT keepalive refresh time.
pub const NATKATIMEOUT: u32 = 110;

/// How a lease commit reaches the disk (redb durability levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LeaseDurability {
    /// Every lease commit is fsynced before the Binding Acknowledgement leaves: a crash
    /// right after the BA never loses the address the BA announced.
    #[default]
    Immediate,
    /// Commits are atomic and the file stays consistent, but reach the disk only with a
    /// later immediate commit or a clean shutdown: a crash can forget the newest leases
    /// (the mobile node may then be given another address).
    Eventual,
}

/// The home agent's configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaConfig {
    /// The home agent's IPv6 address: source of every Binding Acknowledgement.
    pub address: Ipv6Addr,
    /// The home agent's IPv4 address: outer source of IPv4 tunnels and UDP replies.
    pub address_v4: Ipv4Addr,
    /// Home subnet prefixes (RFC 6275 §10.3.1: a home address outside them is answered
    /// with status 132).
    pub home_prefixes: Vec<Ipv6Net>,
    /// Largest lifetime granted, in seconds (rounded down to 4 s units).
    #[serde(default = "default_max_lifetime")]
    pub max_lifetime: u32,
    /// Valid lifetime of the home prefixes, in seconds; also caps the granted lifetime
    /// (RFC 6275 §10.3.1) and is advertised in Mobile Prefix Advertisements.
    #[serde(default = "default_prefix_valid")]
    pub prefix_valid_lifetime: u32,
    /// Preferred lifetime advertised in Mobile Prefix Advertisements, in seconds.
    #[serde(default = "default_prefix_preferred")]
    pub prefix_preferred_lifetime: u32,
    /// Accept the F flag (forced UDP encapsulation, RFC 5555 §4.5); refusal is status 144.
    #[serde(default = "yes")]
    pub accept_force_udp: bool,
    /// The home agent forces UDP encapsulation for IPv4 care-of addresses even without a
    /// NAT (RFC 5555 §4.2).
    #[serde(default)]
    pub force_udp: bool,
    /// NAT keepalive refresh time sent in the NAT Detection option, seconds.
    #[serde(default = "default_nat_refresh")]
    pub nat_refresh_time: u32,
    /// Include a Binding Refresh Advice option with this interval (seconds) in accepted BAs.
    #[serde(default)]
    pub binding_refresh_advice: Option<u32>,
    /// Support key management mobility (the K flag, RFC 6275 §10.3.1, RFC 4877 §4.4).
    #[serde(default = "yes")]
    pub key_management_mobility: bool,
    /// Serve any home address inside `home_prefixes`; when false, only the listed mobile
    /// nodes (others get status 133).
    #[serde(default = "yes")]
    pub allow_unlisted: bool,
    /// IPv4 home address lease time, seconds.
    #[serde(default = "default_lease_time")]
    pub lease_time: u32,
    /// Time after a lease expires during which its address stays reserved for the same
    /// mobile node, seconds.
    #[serde(default = "default_lease_grace")]
    pub lease_grace: u32,
    /// How lease commits reach the disk.
    #[serde(default)]
    pub lease_durability: LeaseDurability,
    /// Dynamic IPv4 home address pools.
    #[serde(default, rename = "ipv4_pool")]
    pub ipv4_pools: Vec<PoolConfig>,
    /// Per-mobile-node entries.
    #[serde(default, rename = "mobile_node")]
    pub mobile_nodes: Vec<MobileNodeConfig>,
}

/// One dynamic pool: a CIDR range minus exclusions. For ranges shorter than /31 the first
/// and last address (network and broadcast) are never handed out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    pub range: Ipv4Net,
    #[serde(default)]
    pub exclude: Vec<Ipv4Net>,
}

/// What one mobile node (named by its IPv6 home address) may do.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MobileNodeConfig {
    pub home_address: Ipv6Addr,
    /// A static IPv4 home address or prefix (RFC 5555 §4.5); never leased.
    #[serde(default)]
    pub ipv4_home_address: Option<Ipv4Net>,
    /// May use an IPv4 home address at all (status 129 otherwise).
    #[serde(default = "yes")]
    pub ipv4: bool,
    /// May ask for a dynamic IPv4 prefix with the P flag (status 133 otherwise).
    #[serde(default)]
    pub ipv4_prefix: bool,
    /// May register as a mobile router (R flag, RFC 3963 §6.1; status 140 otherwise).
    #[serde(default)]
    pub mobile_router: bool,
    /// The IPv6 mobile network prefixes this mobile router owns (RFC 3963 §6.1.2, 6.1.3).
    #[serde(default)]
    pub mobile_network_prefixes: Vec<Ipv6Net>,
}

fn yes() -> bool {
    true
}
fn default_max_lifetime() -> u32 {
    3600
}
fn default_prefix_valid() -> u32 {
    86_400
}
fn default_prefix_preferred() -> u32 {
    14_400
}
fn default_nat_refresh() -> u32 {
    NATKATIMEOUT
}
fn default_lease_time() -> u32 {
    86_400
}
fn default_lease_grace() -> u32 {
    3600
}

impl HaConfig {
    /// A configuration with every default, for tests and examples.
    pub fn new(address: Ipv6Addr, address_v4: Ipv4Addr, home_prefixes: Vec<Ipv6Net>) -> Self {
        HaConfig {
            address,
            address_v4,
            home_prefixes,
            max_lifetime: default_max_lifetime(),
            prefix_valid_lifetime: default_prefix_valid(),
            prefix_preferred_lifetime: default_prefix_preferred(),
            accept_force_udp: true,
            force_udp: false,
            nat_refresh_time: NATKATIMEOUT,
            binding_refresh_advice: None,
            key_management_mobility: true,
            allow_unlisted: true,
            lease_time: default_lease_time(),
            lease_grace: default_lease_grace(),
            lease_durability: LeaseDurability::Immediate,
            ipv4_pools: Vec::new(),
            mobile_nodes: Vec::new(),
        }
    }

    /// Check the rules a file can break; the engine relies on them.
    pub fn validate(&self) -> Result<()> {
        let bad = |key: &str, reason: String| {
            Err(Error::Config {
                key: key.to_string(),
                reason,
            })
        };
        if self.home_prefixes.is_empty() {
            return bad("home_prefixes", "at least one home prefix is needed".into());
        }
        if self.max_lifetime < 4 {
            return bad("max_lifetime", "must be at least 4 seconds".into());
        }
        if self.lease_time == 0 {
            return bad("lease_time", "must be positive".into());
        }
        if let Some(0) = self.binding_refresh_advice {
            return bad("binding_refresh_advice", "must be positive".into());
        }
        for (i, p) in self.ipv4_pools.iter().enumerate() {
            for x in &p.exclude {
                if !p.range.contains(x) {
                    return bad(
                        &format!("ipv4_pool[{i}].exclude"),
                        format!("{x} is outside the range {}", p.range),
                    );
                }
            }
            for q in &self.ipv4_pools[..i] {
                if q.range.contains(&p.range.network()) || p.range.contains(&q.range.network()) {
                    return bad(
                        &format!("ipv4_pool[{i}].range"),
                        format!("{} overlaps {}", p.range, q.range),
                    );
                }
            }
        }
        let mut seen6 = HashMap::new();
        let mut statics: Vec<(u32, u32, usize)> = Vec::new();
        for (i, m) in self.mobile_nodes.iter().enumerate() {
            let key = format!("mobile_node[{i}]");
            if seen6.insert(m.home_address, i).is_some() {
                return bad(
                    &key,
                    format!("home address {} listed twice", m.home_address),
                );
            }
            if !self
                .home_prefixes
                .iter()
                .any(|p| p.contains(&m.home_address))
            {
                return bad(&key, format!("{} is outside home_prefixes", m.home_address));
            }
            if let Some(net) = m.ipv4_home_address {
                if net.addr() != net.network() {
                    return bad(&key, format!("static IPv4 prefix {net} has host bits set"));
                }
                statics.push((net.network().into(), net.broadcast().into(), i));
            }
            if !m.mobile_network_prefixes.is_empty() && !m.mobile_router {
                return bad(
                    &key,
                    "mobile_network_prefixes need mobile_router = true".into(),
                );
            }
        }
        statics.sort_unstable();
        for w in statics.windows(2) {
            if w[1].0 <= w[0].1 {
                return bad(
                    &format!("mobile_node[{}]", w[1].2.max(w[0].2)),
                    format!(
                        "static IPv4 home address overlaps mobile_node[{}]",
                        w[1].2.min(w[0].2)
                    ),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"
        address = "2001:db8:1::1"
        address_v4 = "192.0.2.1"
        home_prefixes = ["2001:db8:1::/64"]
        max_lifetime = 1800
        prefix_valid_lifetime = 7200
        prefix_preferred_lifetime = 3600
        accept_force_udp = false
        force_udp = true
        nat_refresh_time = 30
        binding_refresh_advice = 600
        key_management_mobility = false
        allow_unlisted = false
        lease_time = 7200
        lease_grace = 600
        lease_durability = "eventual"

        [[ipv4_pool]]
        range = "198.51.100.0/24"
        exclude = ["198.51.100.0/28"]

        [[mobile_node]]
        home_address = "2001:db8:1::100"
        ipv4_home_address = "203.0.113.5/32"
        ipv4 = true
        ipv4_prefix = true
        mobile_router = true
        mobile_network_prefixes = ["2001:db8:2::/48"]
    "#;

    #[test]
    fn every_key_parses_from_toml() {
        let c: HaConfig = toml::from_str(FULL).unwrap();
        c.validate().unwrap();
        assert_eq!(c.max_lifetime, 1800);
        assert!(!c.accept_force_udp && c.force_udp);
        assert_eq!(c.binding_refresh_advice, Some(600));
        assert_eq!(c.lease_durability, LeaseDurability::Eventual);
        assert_eq!(c.ipv4_pools[0].exclude.len(), 1);
        let m = &c.mobile_nodes[0];
        assert_eq!(m.ipv4_home_address.unwrap().to_string(), "203.0.113.5/32");
        assert!(m.mobile_router && m.ipv4_prefix);
    }

    #[test]
    fn defaults_apply() {
        let c: HaConfig = toml::from_str(
            "address = \"2001:db8:1::1\"\naddress_v4 = \"192.0.2.1\"\nhome_prefixes = [\"2001:db8:1::/64\"]",
        )
        .unwrap();
        assert_eq!(c.nat_refresh_time, NATKATIMEOUT);
        assert_eq!(c.lease_durability, LeaseDurability::Immediate);
        assert!(c.accept_force_udp && c.allow_unlisted && c.key_management_mobility);
        c.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_refused() {
        let e = toml::from_str::<HaConfig>(&format!("{FULL}\nbogus = 1")).unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn inconsistent_files_name_the_key() {
        let mut c: HaConfig = toml::from_str(FULL).unwrap();
        c.ipv4_pools[0].exclude.push("10.0.0.0/8".parse().unwrap());
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("ipv4_pool[0].exclude"), "{e}");
        let mut c: HaConfig = toml::from_str(FULL).unwrap();
        c.mobile_nodes[0].home_address = "2001:db8:9::1".parse().unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("mobile_node[0]") && e.contains("outside"), "{e}");
        let mut c: HaConfig = toml::from_str(FULL).unwrap();
        c.mobile_nodes.push(c.mobile_nodes[0].clone());
        assert!(c.validate().unwrap_err().to_string().contains("twice"));
        let mut c: HaConfig = toml::from_str(FULL).unwrap();
        let mut m = c.mobile_nodes[0].clone();
        m.home_address = "2001:db8:1::101".parse().unwrap();
        m.ipv4_home_address = Some("203.0.113.4/30".parse().unwrap());
        c.mobile_nodes.push(m);
        let e = c.validate().unwrap_err().to_string();
        assert!(
            e.contains("mobile_node[1]") && e.contains("overlaps mobile_node[0]"),
            "{e}"
        );
    }
}
