//! Applying an accepted registration or a removal to the binding cache, and the data plane
//! events for the difference: tunnels in their exact format, proxy NDP / ARP, prefix routes,
//! care-of changes for the keying side (RFC 5555 §4.5, RFC 6275 §10.4.1, §11.7.1).

use std::net::{IpAddr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags};
use mipsec::wire::tunnel::{Encap, Outer, DSMIPV6_PORT};

use crate::cache::{Binding, Ipv4Binding};
use crate::engine::{HomeAgent, Request};
use crate::types::{Event, Family, Tunnel, Verdict};

impl HomeAgent {
    pub(crate) fn tunnel(&self, b: &Binding, inner: Family) -> Tunnel {
        let outer = match b.peer {
            IpAddr::V6(dst) => Outer::V6 {
                src: self.cfg.address,
                dst,
            },
            IpAddr::V4(dst) => Outer::V4 {
                src: self.cfg.address_v4,
                dst,
            },
        };
        let encap = match b.udp_port {
            0 => Encap::IpInIp,
            p => Encap::Udp {
                src_port: DSMIPV6_PORT,
                dst_port: p,
            },
        };
        Tunnel {
            inner,
            outer,
            encap,
        }
    }

    /// Install or update the binding and emit the data plane events for the difference.
    pub(crate) fn apply(&mut self, new: Binding, v4: Option<Ipv4Binding>, mnp: Vec<Ipv6Net>) {
        let hoa = new.hoa;
        let t6 = self.tunnel(&new, Family::V6);
        let t4 = Tunnel {
            inner: Family::V4,
            ..t6
        };
        let kmm = new.flags.has(BuFlags::K) && self.cfg.key_management_mobility;
        let new_coa = new.coa;
        let old = self
            .cache
            .get(&hoa)
            .map(|b| (b.coa, self.tunnel(b, Family::V6)));
        match self.cache.get_mut(&hoa) {
            Some(b) => {
                let (ipv4, timer_ms) = (b.ipv4, b.timer_ms);
                *b = Binding {
                    ipv4,
                    timer_ms,
                    ..new
                };
            }
            None => self.cache.insert(new),
        }
        match old {
            None => {
                self.events.push_back(Event::ProxyNdpAdd(hoa));
                self.events
                    .push_back(Event::TunnelInstall { hoa, tunnel: t6 });
            }
            Some((old_coa, old_t6)) => {
                if old_t6 != t6 {
                    self.events.push_back(Event::TunnelUpdate {
                        hoa,
                        old: old_t6,
                        new: t6,
                    });
                }
                // RFC 6275 §11.7.1, RFC 4877 §4.4: the IKE SA follows a K-flag binding.
                if kmm && (old_coa != new_coa || old_t6.outer != t6.outer) {
                    self.events.push_back(Event::CareOfChanged {
                        hoa,
                        old_coa,
                        new_coa,
                    });
                }
            }
        }
        let old_t4 = old.map_or(t4, |(_, t)| Tunnel {
            inner: Family::V4,
            ..t
        });
        let old_v4 = self.cache.set_ipv4(&hoa, v4);
        self.v4_events(
            hoa,
            old_v4.map(|o| (o.net, old_t4)),
            v4.map(|n| (n.net, t4)),
        );
        if !mnp.is_empty() || !self.cache.mnp(&hoa).is_empty() {
            let old_mnp = self.cache.set_mnp(&hoa, mnp.clone());
            for p in old_mnp.iter().filter(|p| !mnp.contains(p)) {
                self.events.push_back(Event::RouteRemove {
                    hoa,
                    prefix: IpNet::V6(*p),
                });
            }
            for p in mnp.iter().filter(|p| !old_mnp.contains(p)) {
                self.events.push_back(Event::RouteAdd {
                    hoa,
                    prefix: IpNet::V6(*p),
                });
            }
        }
        self.cache.arm(&hoa);
    }

    /// Events for a change of the IPv4 part: (address or prefix, tunnel) before and after.
    pub(crate) fn v4_events(
        &mut self,
        hoa: Ipv6Addr,
        old: Option<(Ipv4Net, Tunnel)>,
        new: Option<(Ipv4Net, Tunnel)>,
    ) {
        let ev = &mut self.events;
        let addr_event = |net: Ipv4Net, add: bool| match (net.prefix_len() == 32, add) {
            (true, true) => Event::ProxyArpAdd(net.addr()),
            (true, false) => Event::ProxyArpRemove(net.addr()),
            (false, true) => Event::RouteAdd {
                hoa,
                prefix: IpNet::V4(net),
            },
            (false, false) => Event::RouteRemove {
                hoa,
                prefix: IpNet::V4(net),
            },
        };
        match (old, new) {
            (None, None) => {}
            (None, Some((n, t))) => {
                ev.push_back(Event::TunnelInstall { hoa, tunnel: t });
                ev.push_back(addr_event(n, true));
            }
            (Some((o, t)), None) => {
                ev.push_back(Event::TunnelRemove { hoa, tunnel: t });
                ev.push_back(addr_event(o, false));
            }
            (Some((o, ot)), Some((n, nt))) => {
                if ot != nt {
                    ev.push_back(Event::TunnelUpdate {
                        hoa,
                        old: ot,
                        new: nt,
                    });
                }
                if o != n {
                    ev.push_back(addr_event(o, false));
                    ev.push_back(addr_event(n, true));
                }
            }
        }
    }

    /// RFC 6275 §10.3.2: remove the binding and everything that points at it. The lease
    /// stays: the mobile node gets the same IPv4 address when it comes back.
    pub(crate) fn deregister(&mut self, rq: &Request) -> Verdict {
        self.remove_binding(&rq.hoa);
        self.counters.deregistered += 1;
        self.counters.accepted += 1;
        let reply = self.ba(
            rq,
            BaStatus::ACCEPTED,
            BaFlags::default(),
            rq.sequence,
            0,
            None,
        );
        if rq.flags.has(BuFlags::A) {
            Verdict::Reply(Box::new(reply))
        } else {
            Verdict::Accepted
        }
    }

    pub(crate) fn remove_binding(&mut self, hoa: &Ipv6Addr) -> Option<Binding> {
        let b = self.cache.get(hoa)?.clone();
        let t6 = self.tunnel(&b, Family::V6);
        let t4 = self.tunnel(&b, Family::V4);
        let (_, mnp) = self.cache.remove(hoa)?;
        self.events.push_back(Event::TunnelRemove {
            hoa: *hoa,
            tunnel: t6,
        });
        self.events.push_back(Event::ProxyNdpRemove(*hoa));
        self.v4_events(*hoa, b.ipv4.map(|v| (v.net, t4)), None);
        for p in mnp {
            self.events.push_back(Event::RouteRemove {
                hoa: *hoa,
                prefix: IpNet::V6(p),
            });
        }
        Some(b)
    }
}
