//! The binding cache (RFC 6275 §9.1, §10.1; RFC 5555 §4.5): one entry per mobile node,
//! keyed by the IPv6 home address, holding the care-of address, the IPv4 home address or
//! prefix and the mobile network prefixes that all point at it. It owns the indexes the
//! forwarding lookup uses (exact home addresses in hash maps, prefixes by longest match)
//! and the expiry timers (a heap with one live entry per binding: a refresh that extends
//! a lifetime touches no heap, the entry is re-armed when it fires early).
//!
//! Times are milliseconds since the engine's epoch.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::fast::RandomState;
use ipnet::{Ipv4Net, Ipv6Net};
use mipsec::wire::mh::BuFlags;

/// The IPv4 part of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Binding {
    /// The IPv4 home address (`/32`) or home prefix.
    pub net: Ipv4Net,
    /// min(IPv6 binding lifetime, lease) (RFC 5555 §4.5), engine milliseconds.
    pub expires_ms: u64,
}

/// One binding cache entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub hoa: Ipv6Addr,
    /// The registered care-of address (the IPv4 CoA option's address for IPv4 care-of).
    pub coa: IpAddr,
    /// The tunnel's far end: the IPv6 care-of address, or the outer IPv4 source the BU
    /// came from (the NAT's address when one is in the path).
    pub peer: IpAddr,
    /// UDP destination port for UDP encapsulation; 0 means plain IP-in-IP.
    pub udp_port: u16,
    /// A NAT was detected (RFC 5555 §4.2).
    pub nat: bool,
    /// Last accepted sequence number.
    pub sequence: u16,
    /// Flags of the last accepted BU.
    pub flags: BuFlags,
    /// Engine milliseconds at which the binding ends.
    pub expires_ms: u64,
    pub ipv4: Option<Ipv4Binding>,
    /// Deadline of this binding's live heap entry (`u64::MAX`: none).
    pub(crate) timer_ms: u64,
}

impl Binding {
    fn deadline(&self) -> u64 {
        self.ipv4
            .map_or(self.expires_ms, |v| v.expires_ms.min(self.expires_ms))
    }
}

/// Longest-prefix-match table over addresses held as `u128` (IPv4 in the low 32 bits).
#[derive(Debug, Default)]
struct PrefixTable {
    bits: u8,
    /// Prefix length → masked prefix → home address. Looked up longest first.
    by_len: BTreeMap<u8, HashMap<u128, Ipv6Addr, RandomState>>,
}

impl PrefixTable {
    fn new(bits: u8) -> Self {
        PrefixTable {
            bits,
            by_len: BTreeMap::new(),
        }
    }

    fn mask(&self, a: u128, len: u8) -> u128 {
        if len == 0 {
            return 0;
        }
        let m = u128::MAX << (128 - u32::from(len));
        (a << (128 - u32::from(self.bits))) & m
    }

    fn insert(&mut self, a: u128, len: u8, hoa: Ipv6Addr) {
        let k = self.mask(a, len);
        self.by_len.entry(len).or_default().insert(k, hoa);
    }

    fn remove(&mut self, a: u128, len: u8) {
        let k = self.mask(a, len);
        if let Some(m) = self.by_len.get_mut(&len) {
            m.remove(&k);
            if m.is_empty() {
                self.by_len.remove(&len);
            }
        }
    }

    fn lookup(&self, a: u128) -> Option<Ipv6Addr> {
        self.by_len
            .iter()
            .rev()
            .find_map(|(&len, m)| m.get(&self.mask(a, len)).copied())
    }

    fn owner(&self, a: u128, len: u8) -> Option<Ipv6Addr> {
        self.by_len.get(&len)?.get(&self.mask(a, len)).copied()
    }
}

/// The binding cache.
#[derive(Debug)]
pub struct BindingCache {
    slots: Vec<Binding>,
    by6: HashMap<Ipv6Addr, u32, RandomState>,
    by4: HashMap<Ipv4Addr, u32, RandomState>,
    prefixes4: PrefixTable,
    prefixes6: PrefixTable,
    mnp: HashMap<Ipv6Addr, Vec<Ipv6Net>, RandomState>,
    timers: BinaryHeap<Reverse<(u64, Ipv6Addr)>>,
}

impl Default for BindingCache {
    fn default() -> Self {
        BindingCache {
            slots: Vec::new(),
            by6: HashMap::default(),
            by4: HashMap::default(),
            prefixes4: PrefixTable::new(32),
            prefixes6: PrefixTable::new(128),
            mnp: HashMap::default(),
            timers: BinaryHeap::new(),
        }
    }
}

impl BindingCache {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    pub fn get(&self, hoa: &Ipv6Addr) -> Option<&Binding> {
        self.by6.get(hoa).map(|&i| &self.slots[i as usize])
    }

    pub fn get_mut(&mut self, hoa: &Ipv6Addr) -> Option<&mut Binding> {
        self.by6.get(hoa).map(|&i| &mut self.slots[i as usize])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Binding> {
        self.slots.iter()
    }

    /// The mobile network prefixes registered for `hoa`.
    pub fn mnp(&self, hoa: &Ipv6Addr) -> &[Ipv6Net] {
        self.mnp.get(hoa).map_or(&[], |v| v.as_slice())
    }

    /// The home address bound to IPv4 home address `a` (exact, not prefix).
    pub fn owner_v4(&self, a: &Ipv4Addr) -> Option<Ipv6Addr> {
        self.by4.get(a).map(|&i| self.slots[i as usize].hoa)
    }

    /// Insert a new binding (none exists for its home address) with no IPv4 part.
    pub fn insert(&mut self, mut b: Binding) {
        let ipv4 = b.ipv4.take();
        let hoa = b.hoa;
        b.timer_ms = u64::MAX;
        self.by6.insert(hoa, self.slots.len() as u32);
        self.slots.push(b);
        self.set_ipv4(&hoa, ipv4);
        self.arm(&hoa);
    }

    /// Remove a binding with its IPv4 part and prefixes.
    pub fn remove(&mut self, hoa: &Ipv6Addr) -> Option<(Binding, Vec<Ipv6Net>)> {
        self.set_ipv4(hoa, None);
        let mnp = self.set_mnp(hoa, Vec::new());
        let i = self.by6.remove(hoa)? as usize;
        let b = self.slots.swap_remove(i);
        if let Some(moved) = self.slots.get(i) {
            let idx = i as u32;
            self.by6.insert(moved.hoa, idx);
            if let Some(v4) = moved.ipv4 {
                if v4.net.prefix_len() == 32 {
                    self.by4.insert(v4.net.addr(), idx);
                }
            }
        }
        Some((b, mnp))
    }

    /// Replace the IPv4 part of an existing binding; returns the old one.
    pub fn set_ipv4(&mut self, hoa: &Ipv6Addr, v4: Option<Ipv4Binding>) -> Option<Ipv4Binding> {
        let i = *self.by6.get(hoa)?;
        let old = std::mem::replace(&mut self.slots[i as usize].ipv4, v4);
        if old.map(|o| o.net) != v4.map(|n| n.net) {
            if let Some(o) = old {
                if o.net.prefix_len() == 32 {
                    self.by4.remove(&o.net.addr());
                } else {
                    self.prefixes4
                        .remove(u32::from(o.net.addr()).into(), o.net.prefix_len());
                }
            }
            if let Some(n) = v4 {
                if n.net.prefix_len() == 32 {
                    self.by4.insert(n.net.addr(), i);
                } else {
                    self.prefixes4
                        .insert(u32::from(n.net.addr()).into(), n.net.prefix_len(), *hoa);
                }
            }
        }
        self.arm(hoa);
        old
    }

    /// Replace the mobile network prefixes of `hoa`; returns the old ones.
    pub fn set_mnp(&mut self, hoa: &Ipv6Addr, prefixes: Vec<Ipv6Net>) -> Vec<Ipv6Net> {
        let old = if prefixes.is_empty() {
            self.mnp.remove(hoa).unwrap_or_default()
        } else {
            self.mnp.insert(*hoa, prefixes.clone()).unwrap_or_default()
        };
        for p in &old {
            if self.prefixes6.owner(u128::from(p.addr()), p.prefix_len()) == Some(*hoa) {
                self.prefixes6.remove(u128::from(p.addr()), p.prefix_len());
            }
        }
        for p in &prefixes {
            self.prefixes6
                .insert(u128::from(p.addr()), p.prefix_len(), *hoa);
        }
        old
    }

    /// The home address owning `p` as a mobile network prefix, if another binding holds it.
    pub fn mnp_owner(&self, p: &Ipv6Net) -> Option<Ipv6Addr> {
        self.prefixes6.owner(u128::from(p.addr()), p.prefix_len())
    }

    /// The home address whose IPv4 prefix is exactly `p`.
    pub fn prefix4_owner(&self, p: &Ipv4Net) -> Option<Ipv6Addr> {
        self.prefixes4
            .owner(u32::from(p.addr()).into(), p.prefix_len())
    }

    /// Make sure a heap entry fires no later than the binding's deadline.
    pub fn arm(&mut self, hoa: &Ipv6Addr) {
        let Some(&i) = self.by6.get(hoa) else { return };
        let b = &mut self.slots[i as usize];
        let d = b.deadline();
        if d < b.timer_ms {
            b.timer_ms = d;
            self.timers.push(Reverse((d, *hoa)));
        }
    }

    /// The earliest heap deadline (possibly stale: an early wake-up is harmless).
    pub fn next_deadline(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Pop a binding whose timer is due at `now_ms`; the caller checks its times and
    /// re-arms it when it lives on.
    pub fn pop_due(&mut self, now_ms: u64) -> Option<Ipv6Addr> {
        while let Some(Reverse((t, hoa))) = self.timers.peek().copied() {
            if t > now_ms {
                return None;
            }
            self.timers.pop();
            if let Some(b) = self.get_mut(&hoa) {
                if b.timer_ms == t {
                    b.timer_ms = u64::MAX;
                    return Some(hoa);
                }
            }
        }
        None
    }

    /// Forwarding lookup: exact home addresses first, then the longest prefix.
    #[inline]
    pub fn lookup(&self, dst: IpAddr) -> Option<&Binding> {
        self.slot(self.index_of(dst)?)
    }

    /// The slot index of the binding for `dst` (see [`BindingCache::lookup`]).
    #[inline]
    pub fn index_of(&self, dst: IpAddr) -> Option<u32> {
        match dst {
            IpAddr::V6(a) => match self.by6.get(&a) {
                Some(&i) => Some(i),
                None if self.prefixes6.by_len.is_empty() => None,
                None => self
                    .by6
                    .get(&self.prefixes6.lookup(u128::from(a))?)
                    .copied(),
            },
            IpAddr::V4(a) => match self.by4.get(&a) {
                Some(&i) => Some(i),
                None if self.prefixes4.by_len.is_empty() => None,
                None => self
                    .by6
                    .get(&self.prefixes4.lookup(u32::from(a).into())?)
                    .copied(),
            },
        }
    }

    /// The binding in slot `i`.
    #[inline]
    pub fn slot(&self, i: u32) -> Option<&Binding> {
        self.slots.get(i as usize)
    }

    /// Reserve room for `n` more bindings.
    pub fn reserve(&mut self, n: usize) {
        self.slots.reserve(n);
        self.by6.reserve(n);
        self.by4.reserve(n);
        self.timers.reserve(n);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(i: u16, coa: &str) -> Binding {
        Binding {
            hoa: Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, i),
            coa: coa.parse().unwrap(),
            peer: coa.parse().unwrap(),
            udp_port: 0,
            nat: false,
            sequence: 1,
            flags: BuFlags::default(),
            expires_ms: 1000 * u64::from(i),
            ipv4: None,
            timer_ms: 0,
        }
    }

    #[test]
    fn lookup_exact_and_longest_prefix() {
        let mut c = BindingCache::default();
        let (x, y) = (b(1, "2001:db8:9::1"), b(2, "192.0.2.9"));
        let (hx, hy) = (x.hoa, y.hoa);
        c.insert(x);
        c.insert(y);
        let net = |s: &str| s.parse::<Ipv4Net>().unwrap();
        c.set_ipv4(
            &hx,
            Some(Ipv4Binding {
                net: net("198.51.100.7/32"),
                expires_ms: 500,
            }),
        );
        c.set_ipv4(
            &hy,
            Some(Ipv4Binding {
                net: net("198.51.100.64/26"),
                expires_ms: 500,
            }),
        );
        c.set_mnp(&hx, vec!["2001:db8:100::/48".parse().unwrap()]);
        c.set_mnp(&hy, vec!["2001:db8:100:5::/64".parse().unwrap()]);
        let hoa_of = |c: &BindingCache, s: &str| c.lookup(s.parse().unwrap()).map(|b| b.hoa);
        assert_eq!(hoa_of(&c, "198.51.100.7"), Some(hx));
        assert_eq!(hoa_of(&c, "198.51.100.100"), Some(hy));
        assert_eq!(hoa_of(&c, "198.51.100.8"), None);
        assert_eq!(hoa_of(&c, "2001:db8:100:5::77"), Some(hy));
        assert_eq!(hoa_of(&c, "2001:db8:100:6::77"), Some(hx));
        assert_eq!(hoa_of(&c, "2001:db8:1::2"), Some(hy));
        // Removing x moves y into slot 0: its indexes must follow.
        c.remove(&hx).unwrap();
        assert_eq!(hoa_of(&c, "198.51.100.7"), None);
        assert_eq!(hoa_of(&c, "2001:db8:100:6::77"), None);
        assert_eq!(hoa_of(&c, "198.51.100.100"), Some(hy));
        assert_eq!(hoa_of(&c, "2001:db8:1::2"), Some(hy));
    }

    #[test]
    fn timers_fire_once_per_deadline() {
        let mut c = BindingCache::default();
        let x = b(3, "2001:db8:9::1");
        let h = x.hoa;
        c.insert(x);
        assert_eq!(c.next_deadline(), Some(3000));
        // Extend: no new heap entry, the old one fires and the caller re-arms.
        c.get_mut(&h).unwrap().expires_ms = 9000;
        c.arm(&h);
        assert_eq!(c.pop_due(2999), None);
        assert_eq!(c.pop_due(3000), Some(h));
        c.arm(&h);
        assert_eq!(c.next_deadline(), Some(9000));
        // Shorten: a new, earlier entry; the later one becomes stale.
        c.get_mut(&h).unwrap().expires_ms = 5000;
        c.arm(&h);
        assert_eq!(c.pop_due(5000), Some(h));
        assert_eq!(c.pop_due(10_000), None);
    }
}
