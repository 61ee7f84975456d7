//! SPD selectors of RFC 4301 §4.4.1.1: address ranges, next layer protocol and the 16-bit
//! "port" selectors, which also carry ICMP type/code and the Mobility Header type.
//!
//! Every selector is a set of values; `matches` tests one value, `covers` and `intersects`
//! compare two sets (used by the policy checker to find shadowed and overlapping entries).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family of a range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }

    /// Number of address bits.
    pub fn bits(self) -> u8 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }

    fn max(self) -> u128 {
        match self {
            Family::V4 => u128::from(u32::MAX),
            Family::V6 => u128::MAX,
        }
    }

    fn addr(self, n: u128) -> IpAddr {
        match self {
            // A V4 range never holds a value above u32::MAX (see `AddrRange::new`).
            Family::V4 => IpAddr::V4(Ipv4Addr::from(n as u32)),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }
}

fn to_u128(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// An inclusive range of addresses of one family (RFC 4301 §4.4.1.1: "a list of ranges").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrRange {
    family: Family,
    lo: u128,
    hi: u128,
}

impl AddrRange {
    /// `lo..=hi`; `None` when the families differ or `lo > hi`.
    pub fn new(lo: IpAddr, hi: IpAddr) -> Option<Self> {
        let family = Family::of(lo);
        if family != Family::of(hi) || to_u128(lo) > to_u128(hi) {
            return None;
        }
        Some(Self {
            family,
            lo: to_u128(lo),
            hi: to_u128(hi),
        })
    }

    /// One address.
    pub fn single(addr: IpAddr) -> Self {
        let n = to_u128(addr);
        Self {
            family: Family::of(addr),
            lo: n,
            hi: n,
        }
    }

    /// The addresses sharing the first `len` bits with `addr`; host bits are ignored.
    /// `None` when `len` exceeds the family's width.
    pub fn prefix(addr: IpAddr, len: u8) -> Option<Self> {
        let family = Family::of(addr);
        if len > family.bits() {
            return None;
        }
        let host_bits = u32::from(family.bits() - len);
        let host_mask = if host_bits == 128 {
            u128::MAX
        } else {
            ((1u128 << host_bits) - 1) & family.max()
        };
        let n = to_u128(addr);
        Some(Self {
            family,
            lo: n & !host_mask,
            hi: (n & !host_mask) | host_mask,
        })
    }

    /// Every address of `family`.
    pub fn whole(family: Family) -> Self {
        Self {
            family,
            lo: 0,
            hi: family.max(),
        }
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn lo(&self) -> IpAddr {
        self.family.addr(self.lo)
    }

    pub fn hi(&self) -> IpAddr {
        self.family.addr(self.hi)
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        Family::of(addr) == self.family && (self.lo..=self.hi).contains(&to_u128(addr))
    }

    /// The address, when the range holds exactly one.
    pub fn as_single(&self) -> Option<IpAddr> {
        (self.lo == self.hi).then(|| self.lo())
    }

    /// `(network, length)` when the range is exactly one prefix.
    pub fn as_prefix(&self) -> Option<(IpAddr, u8)> {
        match self.to_prefixes().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    /// The fewest prefixes whose union is this range (what a backend that only knows
    /// prefixes, such as Linux XFRM, needs).
    pub fn to_prefixes(&self) -> Vec<(IpAddr, u8)> {
        let bits = u32::from(self.family.bits());
        let mut out = Vec::new();
        let mut lo = self.lo;
        loop {
            // Largest block aligned at `lo` that stays within `hi`.
            let mut size_bits = if lo == 0 {
                bits
            } else {
                lo.trailing_zeros().min(bits)
            };
            while size_bits > 0 {
                let last = if size_bits == 128 {
                    u128::MAX
                } else {
                    lo | ((1u128 << size_bits) - 1)
                };
                if last <= self.hi {
                    break;
                }
                size_bits -= 1;
            }
            out.push((self.family.addr(lo), (bits - size_bits) as u8));
            let last = if size_bits == 128 {
                u128::MAX
            } else {
                lo | ((1u128 << size_bits) - 1)
            };
            if last >= self.hi {
                return out;
            }
            lo = last + 1;
        }
    }

    fn overlaps(&self, o: &Self) -> bool {
        self.family == o.family && self.lo <= o.hi && o.lo <= self.hi
    }
}

impl std::fmt::Display for AddrRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(a) = self.as_single() {
            write!(f, "{a}")
        } else if let Some((a, len)) = self.as_prefix() {
            write!(f, "{a}/{len}")
        } else {
            write!(f, "{}-{}", self.lo(), self.hi())
        }
    }
}

/// A local or remote address selector: ANY, or a list of ranges kept sorted and merged.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddrSel {
    Any,
    Ranges(Vec<AddrRange>),
}

impl AddrSel {
    /// The union of `ranges`, sorted and merged.
    pub fn ranges(mut ranges: Vec<AddrRange>) -> Self {
        ranges.sort();
        let mut out: Vec<AddrRange> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match out.last_mut() {
                Some(last) if last.family == r.family && r.lo <= last.hi.saturating_add(1) => {
                    last.hi = last.hi.max(r.hi);
                }
                _ => out.push(r),
            }
        }
        AddrSel::Ranges(out)
    }

    pub fn single(addr: IpAddr) -> Self {
        AddrSel::Ranges(vec![AddrRange::single(addr)])
    }

    /// Every address of `addr`'s family except `addr` (RFC 5555 §5.2.2's
    /// `remote_address != home_agent`).
    pub fn except(addr: IpAddr) -> Self {
        let family = Family::of(addr);
        let n = to_u128(addr);
        let mut v = Vec::new();
        if n > 0 {
            v.push(AddrRange {
                family,
                lo: 0,
                hi: n - 1,
            });
        }
        if n < family.max() {
            v.push(AddrRange {
                family,
                lo: n + 1,
                hi: family.max(),
            });
        }
        AddrSel::Ranges(v)
    }

    pub fn matches(&self, addr: IpAddr) -> bool {
        match self {
            AddrSel::Any => true,
            AddrSel::Ranges(rs) => rs.iter().any(|r| r.contains(addr)),
        }
    }

    /// The address, when the selector holds exactly one (used to index the SPD).
    pub fn as_single(&self) -> Option<IpAddr> {
        match self {
            AddrSel::Ranges(rs) if rs.len() == 1 => rs[0].as_single(),
            _ => None,
        }
    }

    /// Whether the selector holds addresses of `family`.
    pub fn has_family(&self, family: Family) -> bool {
        match self {
            AddrSel::Any => true,
            AddrSel::Ranges(rs) => rs.iter().any(|r| r.family == family),
        }
    }

    /// Every value of `other` is a value of `self`. Ranges are merged, so each range of
    /// `other` must sit inside one range of `self`.
    pub fn covers(&self, other: &Self) -> bool {
        match (self, other) {
            (AddrSel::Any, _) => true,
            (AddrSel::Ranges(_), AddrSel::Any) => false,
            (AddrSel::Ranges(a), AddrSel::Ranges(b)) => b.iter().all(|rb| {
                a.iter()
                    .any(|ra| ra.family == rb.family && ra.lo <= rb.lo && rb.hi <= ra.hi)
            }),
        }
    }

    pub fn intersects(&self, other: &Self) -> bool {
        match (self, other) {
            (AddrSel::Any, AddrSel::Ranges(r)) | (AddrSel::Ranges(r), AddrSel::Any) => {
                !r.is_empty()
            }
            (AddrSel::Any, AddrSel::Any) => true,
            (AddrSel::Ranges(a), AddrSel::Ranges(b)) => {
                a.iter().any(|ra| b.iter().any(|rb| ra.overlaps(rb)))
            }
        }
    }
}

impl std::fmt::Display for AddrSel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddrSel::Any => f.write_str("any"),
            AddrSel::Ranges(rs) => {
                for (i, r) in rs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{r}")?;
                }
                Ok(())
            }
        }
    }
}

/// Next layer protocol selector (RFC 4301 §4.4.1.1). OPAQUE matches a packet whose
/// protocol could not be determined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProtoSel {
    Any,
    Opaque,
    Is(u8),
}

impl ProtoSel {
    pub fn matches(&self, proto: Option<u8>) -> bool {
        match (self, proto) {
            (ProtoSel::Any, _) => true,
            (ProtoSel::Opaque, None) => true,
            (ProtoSel::Is(p), Some(q)) => *p == q,
            _ => false,
        }
    }

    pub fn covers(&self, o: &Self) -> bool {
        matches!(self, ProtoSel::Any) || self == o
    }

    pub fn intersects(&self, o: &Self) -> bool {
        matches!(self, ProtoSel::Any) || matches!(o, ProtoSel::Any) || self == o
    }
}

/// A 16-bit "port" selector: TCP/UDP/SCTP ports, or ICMP type/code and MH type encoded as
/// RFC 4301 §4.4.1.1 says: type in the most significant 8 bits, code in the least.
/// OPAQUE matches only a packet whose port value is unavailable (a non-initial fragment,
/// or a selector that says "never sent / never received", §4.4.1.1 B).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortSel {
    Any,
    Opaque,
    Range(u16, u16),
}

impl PortSel {
    /// One port.
    pub fn port(p: u16) -> Self {
        PortSel::Range(p, p)
    }

    /// One MH type, in the high byte (RFC 4301 §4.4.1.1, RFC 4877 §7.2.1).
    pub fn mh_type(t: u8) -> Self {
        let v = u16::from(t) << 8;
        PortSel::Range(v, v | 0xff)
    }

    /// One ICMP type with any code, or one type and one code.
    pub fn icmp(t: u8, code: Option<u8>) -> Self {
        let v = u16::from(t) << 8;
        match code {
            Some(c) => PortSel::Range(v | u16::from(c), v | u16::from(c)),
            None => PortSel::Range(v, v | 0xff),
        }
    }

    pub fn matches(&self, v: Option<u16>) -> bool {
        match (self, v) {
            (PortSel::Any, _) => true,
            (PortSel::Opaque, None) => true,
            (PortSel::Range(lo, hi), Some(v)) => (*lo..=*hi).contains(&v),
            _ => false,
        }
    }

    pub fn covers(&self, o: &Self) -> bool {
        match (self, o) {
            (PortSel::Any, _) => true,
            (PortSel::Opaque, PortSel::Opaque) => true,
            (PortSel::Range(a, b), PortSel::Range(c, d)) => a <= c && d <= b,
            _ => false,
        }
    }

    pub fn intersects(&self, o: &Self) -> bool {
        match (self, o) {
            (PortSel::Any, _) | (_, PortSel::Any) => true,
            (PortSel::Opaque, PortSel::Opaque) => true,
            (PortSel::Range(a, b), PortSel::Range(c, d)) => a <= d && c <= b,
            _ => false,
        }
    }
}

impl std::fmt::Display for PortSel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSel::Any => f.write_str("any"),
            PortSel::Opaque => f.write_str("opaque"),
            PortSel::Range(a, b) if a == b => write!(f, "{a}"),
            PortSel::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_bounds() {
        let r = AddrRange::prefix(ip("2001:db8::1"), 32).unwrap();
        assert_eq!(r.lo(), ip("2001:db8::"));
        assert_eq!(r.hi(), ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
        assert_eq!(r.as_prefix(), Some((ip("2001:db8::"), 32)));
        let all = AddrRange::prefix(ip("0.0.0.0"), 0).unwrap();
        assert_eq!(all, AddrRange::whole(Family::V4));
        assert!(AddrRange::prefix(ip("192.0.2.0"), 33).is_none());
        assert_eq!(
            AddrRange::prefix(ip("::"), 0).unwrap().hi(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
    }

    #[test]
    fn range_to_prefixes() {
        let r = AddrRange::new(ip("192.0.2.1"), ip("192.0.2.6")).unwrap();
        let p: Vec<String> = r
            .to_prefixes()
            .iter()
            .map(|(a, l)| format!("{a}/{l}"))
            .collect();
        assert_eq!(
            p,
            [
                "192.0.2.1/32",
                "192.0.2.2/31",
                "192.0.2.4/31",
                "192.0.2.6/32"
            ]
        );
        // All of IPv6 except one address takes 128 prefixes.
        match AddrSel::except(ip("2001:db8::1")) {
            AddrSel::Ranges(rs) => {
                let n: usize = rs.iter().map(|r| r.to_prefixes().len()).sum();
                assert_eq!(n, 128);
            }
            AddrSel::Any => panic!("except gave ANY"),
        }
    }

    #[test]
    fn except_and_cover() {
        let ha = ip("2001:db8::1");
        let not_ha = AddrSel::except(ha);
        assert!(!not_ha.matches(ha));
        assert!(not_ha.matches(ip("2001:db8::2")));
        assert!(!not_ha.matches(ip("192.0.2.1")));
        assert!(!not_ha.intersects(&AddrSel::single(ha)));
        assert!(AddrSel::Any.covers(&not_ha));
        assert!(!not_ha.covers(&AddrSel::Any));
        let net = AddrSel::ranges(vec![AddrRange::prefix(ip("2001:db8::"), 64).unwrap()]);
        assert!(net.covers(&AddrSel::single(ip("2001:db8::5"))));
        assert!(!AddrSel::single(ip("2001:db8::5")).covers(&net));
    }

    #[test]
    fn ranges_merge() {
        let a = AddrRange::new(ip("192.0.2.0"), ip("192.0.2.9")).unwrap();
        let b = AddrRange::new(ip("192.0.2.10"), ip("192.0.2.20")).unwrap();
        assert_eq!(
            AddrSel::ranges(vec![b, a]),
            AddrSel::Ranges(vec![
                AddrRange::new(ip("192.0.2.0"), ip("192.0.2.20")).unwrap()
            ])
        );
        assert!(AddrRange::new(ip("192.0.2.2"), ip("192.0.2.1")).is_none());
        assert!(AddrRange::new(ip("192.0.2.2"), ip("::1")).is_none());
    }

    #[test]
    fn ports_and_messages() {
        let bu = PortSel::mh_type(5);
        assert!(bu.matches(Some(0x0500)));
        assert!(!bu.matches(Some(0x0600)));
        assert!(!bu.matches(None));
        assert!(PortSel::Opaque.matches(None));
        assert!(!PortSel::Opaque.matches(Some(1)));
        assert!(PortSel::Any.matches(None));
        let echo = PortSel::icmp(128, Some(0));
        assert_eq!(echo, PortSel::Range(0x8000, 0x8000));
        assert!(PortSel::icmp(128, None).covers(&echo));
        assert!(!echo.covers(&PortSel::icmp(128, None)));
        assert!(!PortSel::Opaque.intersects(&bu));
        assert!(ProtoSel::Any.covers(&ProtoSel::Is(135)));
        assert!(!ProtoSel::Is(6).intersects(&ProtoSel::Is(17)));
        assert!(ProtoSel::Opaque.matches(None) && !ProtoSel::Is(6).matches(None));
    }
}
