//! The in-memory side of IPv4 home address allocation: the configured pools (CIDR ranges
//! minus exclusions and static addresses) and the table of leases loaded from, and kept in
//! step with, the [`LeaseStore`](crate::lease::LeaseStore). An address or prefix is free
//! when no lease covers it, or the lease covering it expired more than the grace time ago
//! (such a lease is reclaimed by the allocation that reuses its addresses).

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;

use crate::config::HaConfig;
use crate::lease::Lease;

/// Inclusive address range.
type Span = (u32, u32);

fn span(n: &Ipv4Net) -> Span {
    (u32::from(n.network()), u32::from(n.broadcast()))
}

/// Pools and leases.
#[derive(Debug, Default)]
pub struct Pools {
    ranges: Vec<Span>,
    /// Sorted, may overlap.
    excluded: Vec<Span>,
    leases: BTreeMap<u32, Lease>,
    by_hoa: HashMap<Ipv6Addr, u32>,
    hint: u32,
}

fn align_up(a: u64, size: u64) -> u64 {
    a.div_ceil(size) * size
}

impl Pools {
    pub fn new(cfg: &HaConfig, leases: Vec<Lease>) -> Self {
        let mut ranges = Vec::new();
        let mut excluded = Vec::new();
        for p in &cfg.ipv4_pools {
            let (s, e) = span(&p.range);
            if p.range.prefix_len() < 31 {
                // Network and broadcast addresses of the pool are never handed out.
                ranges.push((s + 1, e - 1));
            } else {
                ranges.push((s, e));
            }
            excluded.extend(p.exclude.iter().map(span));
        }
        excluded.extend(
            cfg.mobile_nodes
                .iter()
                .filter_map(|m| m.ipv4_home_address.as_ref())
                .map(span),
        );
        // Only exclusions that touch a pool matter to the scan.
        excluded.retain(|&(xs, xe)| ranges.iter().any(|&(s, e)| xs <= e && xe >= s));
        excluded.sort_unstable();
        let mut pools = Pools {
            ranges,
            excluded,
            ..Default::default()
        };
        for l in leases {
            pools.insert(l);
        }
        pools
    }

    /// True when at least one pool is configured.
    pub fn has_pools(&self) -> bool {
        !self.ranges.is_empty()
    }

    pub fn lease_of(&self, hoa: &Ipv6Addr) -> Option<&Lease> {
        self.by_hoa.get(hoa).and_then(|s| self.leases.get(s))
    }

    /// Every lease held, in address order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.leases.values()
    }

    /// Record a lease (replacing any lease of the same home address).
    pub fn insert(&mut self, l: Lease) {
        self.remove(&l.hoa);
        let s = u32::from(l.net.network());
        self.by_hoa.insert(l.hoa, s);
        self.leases.insert(s, l);
    }

    pub fn remove(&mut self, hoa: &Ipv6Addr) -> Option<Lease> {
        let s = self.by_hoa.remove(hoa)?;
        self.leases.remove(&s)
    }

    /// Find a free aligned block of prefix length `len`, starting after the last one found.
    /// Returns it with the expired leases (past grace) it overlaps, which the caller must
    /// delete with the same commit.
    pub fn find_free(&self, len: u8, now: u64, grace: u64) -> Option<(Ipv4Net, Vec<Ipv6Addr>)> {
        let size = 1u64 << (32 - u32::from(len.min(32)));
        let hint = u64::from(self.hint);
        for pass in 0..2 {
            for &(s, e) in &self.ranges {
                let (lo, hi) = if pass == 0 {
                    (u64::from(s).max(hint), u64::from(e))
                } else {
                    (u64::from(s), u64::from(e).min(hint.saturating_sub(1)))
                };
                if lo > hi {
                    continue;
                }
                if let Some(found) = self.scan(lo, hi, size, now, grace) {
                    let net = Ipv4Net::new(Ipv4Addr::from(found.0 as u32), len).ok()?;
                    return Some((net, found.1));
                }
            }
        }
        None
    }

    /// Remember where the last allocation ended, so the next scan starts there.
    pub fn advance_hint(&mut self, net: &Ipv4Net) {
        self.hint = u32::from(net.broadcast()).wrapping_add(1);
    }

    fn scan(
        &self,
        lo: u64,
        hi: u64,
        size: u64,
        now: u64,
        grace: u64,
    ) -> Option<(u64, Vec<Ipv6Addr>)> {
        let mut a = align_up(lo, size);
        'next: while a + size - 1 <= hi {
            let end = a + size - 1;
            for &(xs, xe) in &self.excluded {
                if u64::from(xs) <= end && u64::from(xe) >= a {
                    a = align_up(u64::from(xe) + 1, size);
                    continue 'next;
                }
            }
            let mut reclaim = Vec::new();
            for (_, l) in self.leases.range(..=end as u32).rev() {
                let (_, le) = span(&l.net);
                if u64::from(le) < a {
                    break;
                }
                if now < l.expires.saturating_add(grace) {
                    a = align_up(u64::from(le) + 1, size);
                    continue 'next;
                }
                reclaim.push(l.hoa);
            }
            return Some((a, reclaim));
        }
        None
    }

    /// Addresses covered by leases that are still held (not past grace).
    pub fn held_addresses(&self, now: u64, grace: u64) -> u64 {
        self.leases
            .values()
            .filter(|l| now < l.expires.saturating_add(grace))
            .map(|l| 1u64 << (32 - u32::from(l.net.prefix_len())))
            .sum()
    }

    /// Consistency check for tests: every lease is indexed once and none overlap.
    pub fn check(&self) -> Result<(), String> {
        if self.by_hoa.len() != self.leases.len() {
            return Err(format!(
                "{} indexed, {} leases",
                self.by_hoa.len(),
                self.leases.len()
            ));
        }
        let mut last_end: Option<u32> = None;
        for (s, l) in &self.leases {
            if self.by_hoa.get(&l.hoa) != Some(s) {
                return Err(format!("lease of {} badly indexed", l.hoa));
            }
            let (ls, le) = span(&l.net);
            if last_end.is_some_and(|e| e >= ls) {
                return Err(format!("lease {} overlaps its predecessor", l.net));
            }
            last_end = Some(le);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::PoolConfig;

    fn cfg(range: &str, exclude: &[&str]) -> HaConfig {
        let mut c = HaConfig::new(
            "2001:db8:1::1".parse().unwrap(),
            Ipv4Addr::new(192, 0, 2, 1),
            vec!["2001:db8:1::/64".parse().unwrap()],
        );
        c.ipv4_pools.push(PoolConfig {
            range: range.parse().unwrap(),
            exclude: exclude.iter().map(|x| x.parse().unwrap()).collect(),
        });
        c
    }

    fn hoa(i: u16) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i)
    }

    #[test]
    fn skips_network_broadcast_and_exclusions() {
        let p = Pools::new(
            &cfg("198.51.100.0/29", &["198.51.100.1/32", "198.51.100.3/32"]),
            vec![],
        );
        let (n, r) = p.find_free(32, 0, 0).unwrap();
        assert_eq!(n.to_string(), "198.51.100.2/32");
        assert!(r.is_empty());
    }

    #[test]
    fn exhaustion_grace_and_reclaim() {
        let mut p = Pools::new(&cfg("198.51.100.0/30", &[]), vec![]);
        // Usable: .1 and .2.
        for i in 0..2 {
            let (n, _) = p.find_free(32, 0, 100).unwrap();
            p.insert(Lease {
                hoa: hoa(i),
                net: n,
                expires: 50,
            });
            p.advance_hint(&n);
        }
        assert!(p.find_free(32, 10, 100).is_none());
        // Expired at 50 but within grace until 150.
        assert!(p.find_free(32, 149, 100).is_none());
        let (n, reclaim) = p.find_free(32, 150, 100).unwrap();
        assert_eq!(reclaim.len(), 1);
        assert_eq!(p.lease_of(&reclaim[0]).unwrap().net, n);
        assert_eq!(p.held_addresses(150, 100), 0);
        p.check().unwrap();
    }

    #[test]
    fn prefixes_are_aligned_and_avoid_leases() {
        let mut p = Pools::new(&cfg("198.51.100.0/24", &[]), vec![]);
        let (n, _) = p.find_free(32, 0, 0).unwrap();
        p.insert(Lease {
            hoa: hoa(1),
            net: n,
            expires: 10,
        });
        let (q, _) = p.find_free(28, 0, 0).unwrap();
        assert_eq!(q.to_string(), "198.51.100.16/28");
        p.insert(Lease {
            hoa: hoa(2),
            net: q,
            expires: 10,
        });
        p.check().unwrap();
        assert_eq!(p.held_addresses(0, 0), 17);
        assert!(p.find_free(24, 0, 0).is_none());
    }
}
