//! IPv4 home addresses for a Binding Update (RFC 5555 §4.5, status values of §3.2.1): static
//! entries, dynamic addresses and prefixes from the pools, lease renewal and allocation with
//! their commits to the lease store.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::Ipv4Net;
use mipsec::wire::mh_option::Ipv4AckStatus;
use tracing::debug;

use crate::engine::{valid_unicast, HomeAgent, Request};
use crate::lease::Lease;

impl HomeAgent {
    /// RFC 5555 §4.5: the IPv4 home address or prefix for this mobile node. Returns it with
    /// the engine time its lease ends (`u64::MAX` for a static address), or the IPv4 Address
    /// Acknowledgement failure status. May commit a lease to the store.
    pub(crate) fn resolve_ipv4(
        &mut self,
        rq: &Request,
        (plen, p, addr): (u8, bool, Ipv4Addr),
        granted_secs: u64,
    ) -> std::result::Result<(Ipv4Net, u64), Ipv4AckStatus> {
        let mn = self.mn(&rq.hoa);
        let stat = mn.and_then(|m| m.ipv4_home_address);
        let lease = self.pools.lease_of(&rq.hoa).copied();
        if mn.is_some_and(|m| !m.ipv4)
            || (stat.is_none() && lease.is_none() && !self.pools.has_pools())
        {
            return Err(Ipv4AckStatus::ADMIN_PROHIBITED);
        }
        // A static prefix authorizes P for itself.
        let static_prefix = matches!(stat, Some(s) if s.prefix_len() != 32);
        if p && !mn.is_some_and(|m| m.ipv4_prefix) && !static_prefix {
            return Err(Ipv4AckStatus::PREFIX_UNAUTHORIZED);
        }
        let want = if p { plen } else { 32 };
        let any = addr.is_unspecified();
        if (p && !(1..=32).contains(&plen)) || (!any && !valid_unicast(addr)) {
            return Err(Ipv4AckStatus::INVALID_IPV4_ADDRESS);
        }
        let fits = |net: Ipv4Net| {
            (any || net.addr() == addr)
                && (!p || net.prefix_len() == want)
                && (p || !any || net.prefix_len() == 32)
        };
        let found = match (stat, lease) {
            (Some(s), _) => fits(s).then_some((s, u64::MAX)),
            (None, Some(l)) if fits(l.net) => Some((l.net, self.renew(rq, l, granted_secs))),
            (None, _) if !any => None,
            (None, _) => return self.allocate(rq, want),
        };
        let (net, until) = found.ok_or(Ipv4AckStatus::INCORRECT_IPV4_HOA)?;
        self.bindable(rq.hoa, net)?;
        Ok((net, until))
    }

    /// No other binding may hold the address (a static entry may collide with a lease made
    /// before the configuration changed).
    fn bindable(&self, hoa: Ipv6Addr, net: Ipv4Net) -> std::result::Result<(), Ipv4AckStatus> {
        let other = if net.prefix_len() == 32 {
            self.cache.owner_v4(&net.addr())
        } else {
            self.cache.prefix4_owner(&net)
        };
        match other {
            Some(o) if o != hoa => Err(Ipv4AckStatus::ADMIN_PROHIBITED),
            _ => Ok(()),
        }
    }

    /// Extend a lease when less than max(half the lease time, the granted lifetime) is
    /// left, so most refreshes write nothing. Returns the lease's end in engine time.
    fn renew(&mut self, rq: &Request, mut l: Lease, granted_secs: u64) -> u64 {
        let now = self.unix(rq.now_ms);
        let left = l.expires.saturating_sub(now);
        if left < (u64::from(self.cfg.lease_time) / 2).max(granted_secs) {
            let renewed = Lease {
                expires: now + u64::from(self.cfg.lease_time),
                ..l
            };
            match self.store.commit(&[renewed], &[]) {
                Ok(()) => {
                    self.pools.insert(renewed);
                    l = renewed;
                }
                // The old lease still stands; the binding simply ends with it.
                Err(_) => self.counters.store_errors += 1,
            }
        }
        self.lease_ms(l.expires)
    }

    /// Dynamic allocation (RFC 5555 §4.5: 132 when none is left), committed to the store
    /// before the BA can announce it.
    fn allocate(
        &mut self,
        rq: &Request,
        len: u8,
    ) -> std::result::Result<(Ipv4Net, u64), Ipv4AckStatus> {
        let now = self.unix(rq.now_ms);
        let (net, mut remove) = self
            .pools
            .find_free(len, now, u64::from(self.cfg.lease_grace))
            .ok_or(Ipv4AckStatus::DYNAMIC_NOT_AVAILABLE)?;
        if self.pools.lease_of(&rq.hoa).is_some() {
            remove.push(rq.hoa);
        }
        let lease = Lease {
            hoa: rq.hoa,
            net,
            expires: now + u64::from(self.cfg.lease_time),
        };
        if self.store.commit(&[lease], &remove).is_err() {
            self.counters.store_errors += 1;
            return Err(Ipv4AckStatus::UNSPECIFIED);
        }
        for h in &remove {
            self.pools.remove(h);
        }
        self.pools.insert(lease);
        self.pools.advance_hint(&net);
        debug!(hoa = %rq.hoa, %net, "IPv4 home address leased");
        Ok((net, self.lease_ms(lease.expires)))
    }
}
