//! Administrative domain recognition, for the care-of address family rule of RFC 5555
//! §4.4.1: after an IPv6 registration failed and the mobile node fell back to IPv4, it keeps
//! IPv4 on every movement inside the same administrative domain and tries IPv6 again only in
//! a different one.
//!
//! A domain is recognised, in this order, by
//! 1. a configured named domain one of whose prefixes holds a current care-of address
//!    (IPv6 addresses are looked at before IPv4 ones);
//! 2. a network label the driver supplies (for example the DHCP domain name or the Wi-Fi
//!    SSID), when it has one;
//! 3. the first IPv6 care-of address cut to `auto_ipv6_prefix_len` (default /48, a site);
//! 4. the first IPv4 care-of address cut to `auto_ipv4_prefix_len` (default /16).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::{mask_v4, mask_v6, DomainConfig};

/// The identity of an administrative domain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum DomainId {
    Named(String),
    Label(String),
    Ipv6Prefix(Ipv6Addr, u8),
    Ipv4Prefix(Ipv4Addr, u8),
}

/// The domain of the current attachment, or `None` without any care-of address.
pub fn recognise(
    cfg: &DomainConfig,
    v6: &[Ipv6Addr],
    v4: &[Ipv4Addr],
    label: Option<&str>,
) -> Option<DomainId> {
    let addrs = v6
        .iter()
        .map(|a| IpAddr::V6(*a))
        .chain(v4.iter().map(|a| IpAddr::V4(*a)));
    for a in addrs {
        if let Some(d) = cfg
            .named
            .iter()
            .find(|d| d.prefixes.iter().any(|p| p.contains(a)))
        {
            return Some(DomainId::Named(d.name.clone()));
        }
    }
    if let Some(l) = label {
        return Some(DomainId::Label(l.to_owned()));
    }
    if let Some(a) = v6.first() {
        let len = cfg.auto_ipv6_prefix_len;
        return Some(DomainId::Ipv6Prefix(mask_v6(*a, len), len));
    }
    v4.first().map(|a| {
        let len = cfg.auto_ipv4_prefix_len;
        DomainId::Ipv4Prefix(mask_v4(*a, len), len)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{NamedDomain, Prefix};

    fn cfg() -> DomainConfig {
        DomainConfig {
            named: vec![NamedDomain {
                name: "campus".into(),
                prefixes: vec![
                    Prefix::try_from("2001:db8:40::/44".to_string()).unwrap(),
                    Prefix::try_from("198.51.100.0/24".to_string()).unwrap(),
                ],
            }],
            ..DomainConfig::default()
        }
    }

    #[test]
    fn named_then_label_then_prefixes() {
        let c = cfg();
        let v6: Ipv6Addr = "2001:db8:41::5".parse().unwrap();
        let v4 = Ipv4Addr::new(198, 51, 100, 9);
        let other4 = Ipv4Addr::new(203, 0, 113, 9);
        assert_eq!(
            recognise(&c, &[v6], &[], None),
            Some(DomainId::Named("campus".into()))
        );
        assert_eq!(
            recognise(&c, &[], &[v4], Some("x")),
            Some(DomainId::Named("campus".into()))
        );
        assert_eq!(
            recognise(&c, &[], &[other4], Some("cafe")),
            Some(DomainId::Label("cafe".into()))
        );
        let far: Ipv6Addr = "2001:db8:77:1::5".parse().unwrap();
        assert_eq!(
            recognise(&c, &[far], &[other4], None),
            Some(DomainId::Ipv6Prefix("2001:db8:77::".parse().unwrap(), 48))
        );
        assert_eq!(
            recognise(&c, &[], &[other4], None),
            Some(DomainId::Ipv4Prefix(Ipv4Addr::new(203, 0, 0, 0), 16))
        );
        assert_eq!(recognise(&c, &[], &[], None), None);
    }
}
