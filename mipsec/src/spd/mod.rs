//! The Security Policy Database (RFC 4301 §4.4.1) with the selectors the Mobile IPv6
//! entries of RFC 5555 §5.2 and RFC 4877 need, Mobility Header type included.
//!
//! Match semantics: **first match over an ordered list** (RFC 4301 §4.4.1, "the SPD is
//! ordered"). A packet that matches no entry is discarded (§5.1 step 3a, §5.2 step 3).
//! Entries are not decorrelated; the policy checker (`spd-policies`) warns about shadowed
//! and overlapping entries instead.
//!
//! Lookup stays sublinear in the number of mobile nodes: every entry whose remote (else
//! local) address selector is a single address is indexed by that address, so a home
//! agent with one group of entries per home address looks at that home address's entries
//! plus the few generic ones, merged back into list order.

mod entry;
mod selector;
mod text;

use std::collections::HashMap;
use std::net::IpAddr;

pub use entry::{
    is_message_proto, Action, Direction, Dirs, Mismatch, Mode, Packet, Ports, Protect, SpdEntry,
};
pub use selector::{AddrRange, AddrSel, Family, PortSel, ProtoSel};
pub use text::parse_native;

/// Which side of an entry its index key was taken from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Local,
    Remote,
}

/// The ordered SPD with its address index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Spd {
    entries: Vec<SpdEntry>,
    by_remote: HashMap<IpAddr, Vec<usize>>,
    by_local: HashMap<IpAddr, Vec<usize>>,
    generic: Vec<usize>,
}

/// The outcome of [`Spd::explain`]: every entry before the match and why it was passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub rejected: Vec<(usize, Mismatch)>,
    pub matched: Option<usize>,
}

impl Spd {
    /// An SPD searched in the order of `entries`.
    pub fn new(entries: Vec<SpdEntry>) -> Self {
        let mut spd = Spd {
            entries: Vec::new(),
            ..Default::default()
        };
        for e in entries {
            spd.push(e);
        }
        spd
    }

    /// Appends an entry at the end (lowest precedence).
    pub fn push(&mut self, e: SpdEntry) {
        let i = self.entries.len();
        match index_key(&e) {
            Some((Side::Remote, a)) => self.by_remote.entry(a).or_default().push(i),
            Some((Side::Local, a)) => self.by_local.entry(a).or_default().push(i),
            None => self.generic.push(i),
        }
        self.entries.push(e);
    }

    pub fn entries(&self) -> &[SpdEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry matching `p`, with its position; `None` means DISCARD.
    pub fn lookup(&self, p: &Packet) -> Option<(usize, &SpdEntry)> {
        let empty: &[usize] = &[];
        let a = self.by_remote.get(&p.remote).map_or(empty, Vec::as_slice);
        let b = self.by_local.get(&p.local).map_or(empty, Vec::as_slice);
        merge3(a, b, &self.generic)
            .find(|&i| self.entries[i].matches(p))
            .map(|i| (i, &self.entries[i]))
    }

    /// Walks the list in order up to the first match, saying why each entry before it did
    /// not match. Linear: for tools, not for the data path.
    pub fn explain(&self, p: &Packet) -> Explanation {
        let mut rejected = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            match e.mismatch(p) {
                None => {
                    return Explanation {
                        rejected,
                        matched: Some(i),
                    }
                }
                Some(m) => rejected.push((i, m)),
            }
        }
        Explanation {
            rejected,
            matched: None,
        }
    }

    /// Positions of the entries before `i` that could share a packet with entry `i`
    /// (a superset, found through the index), in list order.
    pub fn earlier_candidates(&self, i: usize) -> Vec<usize> {
        let Some(e) = self.entries.get(i) else {
            return Vec::new();
        };
        let mut out: Vec<usize> = self
            .generic
            .iter()
            .copied()
            .take_while(|&j| j < i)
            .collect();
        let mut from_map = |map: &HashMap<IpAddr, Vec<usize>>, sel: &AddrSel| match sel.as_single()
        {
            Some(a) => {
                if let Some(v) = map.get(&a) {
                    out.extend(v.iter().copied().take_while(|&j| j < i));
                }
            }
            None => {
                for (a, v) in map {
                    if sel.matches(*a) {
                        out.extend(v.iter().copied().take_while(|&j| j < i));
                    }
                }
            }
        };
        from_map(&self.by_remote, &e.remote);
        from_map(&self.by_local, &e.local);
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The address an entry is indexed by: its remote address when that is a single one, else
/// its local address when that is.
pub fn index_key(e: &SpdEntry) -> Option<(Side, IpAddr)> {
    if let Some(a) = e.remote.as_single() {
        Some((Side::Remote, a))
    } else {
        e.local.as_single().map(|a| (Side::Local, a))
    }
}

/// The union of three ascending lists, ascending.
fn merge3<'a>(a: &'a [usize], b: &'a [usize], c: &'a [usize]) -> impl Iterator<Item = usize> + 'a {
    let (mut i, mut j, mut k) = (0, 0, 0);
    std::iter::from_fn(move || {
        let next = [a.get(i), b.get(j), c.get(k)]
            .into_iter()
            .flatten()
            .copied()
            .min()?;
        if a.get(i) == Some(&next) {
            i += 1;
        }
        if b.get(j) == Some(&next) {
            j += 1;
        }
        if c.get(k) == Some(&next) {
            k += 1;
        }
        Some(next)
    })
}

#[cfg(test)]
mod tests;
