//! The first piece of the data plane (RFC 5555 §4.1): a TUN device for home-address traffic
//! and the UDP 4191 tunnels to IPv4 care-of addresses. Packets from a mobile node arrive as
//! `IPv4 / UDP 4191 / inner IPv4 or IPv6`; the inner packet is written to the TUN device
//! when its source is a home address bound to exactly that outer address and port. Packets
//! the kernel routes into the TUN device are looked up in the binding cache
//! (`HomeAgent::route`) and sent in UDP to the binding's far end.
//!
//! Routes: the IPv4 pools and static IPv4 home addresses are routed into the TUN device once
//! at start; the engine's events add and remove, per binding, a `/128` route into the TUN
//! device and proxy NDP on the home link for the IPv6 home address (RFC 6275 §10.4.1),
//! proxy ARP for an IPv4 home address (RFC 5555 §4.5), and routes for IPv4 home prefixes and
//! mobile network prefixes. They are applied with rtnetlink messages
//! (`dsmip_daemon::netlink`, microseconds each) before the Binding Acknowledgement leaves;
//! no `ip` process runs here (only the `proxy_ndp` sysctl is written, once, at start).
//!
//! IP-in-IP (protocols 4 and 41 over raw IPv4 sockets, `raw.rs`) is checked like UDP: the
//! inner source's binding must be IP-in-IP from exactly the outer source. ESP tunnel mode
//! (`datasa.rs`) is chosen by the main loop before the plain tunnels of this file.

use std::net::{IpAddr, Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use anyhow::{Context, Result};
use dsmip_daemon::net::source;
use dsmip_daemon::netlink::{Link, Rtnl};
use dsmip_daemon::tun::TunDevice;
use ha::{Event, HaConfig, HomeAgent};
use mipsec::wire::tunnel::{Encap, Outer};
use tokio::sync::mpsc;

/// Tunnel kinds, as the metrics label them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// UDP 4191 (RFC 5555 §4.1).
    Udp4191,
    /// IPv4 or IPv6 in IPv4, protocols 4 and 41 (RFC 5555 §4.1).
    IpIp,
    /// ESP tunnel mode, IPv4 protocol 50 (RFC 5555 §5.2.2).
    Esp,
    /// ESP tunnel mode in UDP 4500 (RFC 5555 §5.2.2, RFC 3948).
    EspUdp,
    /// IPv4 or IPv6 in IPv6, protocols 4 and 41 (RFC 2473, RFC 5555 §4.1).
    Ip6Ip,
}

impl Kind {
    pub const ALL: [Kind; 5] = [
        Kind::Udp4191,
        Kind::IpIp,
        Kind::Esp,
        Kind::EspUdp,
        Kind::Ip6Ip,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Kind::Udp4191 => "udp4191",
            Kind::IpIp => "ipip",
            Kind::Esp => "esp",
            Kind::EspUdp => "esp-udp",
            Kind::Ip6Ip => "ip6ip",
        }
    }
}

/// Packets and inner bytes of one tunnel kind.
#[derive(Debug, Default, Clone, Copy)]
pub struct KindStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
}

/// Packet and byte counters of the tunnels.
#[derive(Debug, Default, Clone)]
pub struct TunnelStats {
    pub kinds: std::collections::BTreeMap<Kind, KindStats>,
    /// Tunnelled packets whose inner source is not bound to their outer source (or, for
    /// ESP, not a home address of the SA).
    pub spoofed: u64,
    /// Packets from the TUN device with no binding, or a binding whose tunnel cannot be
    /// served (UDP over IPv6, or an IPv6 care-of address without the IPv6 transport).
    pub no_route: u64,
}

impl TunnelStats {
    pub fn rx(&mut self, k: Kind, bytes: usize) {
        let e = self.kinds.entry(k).or_default();
        e.rx_packets += 1;
        e.rx_bytes += bytes as u64;
    }
    pub fn tx(&mut self, k: Kind, bytes: usize) {
        let e = self.kinds.entry(k).or_default();
        e.tx_packets += 1;
        e.tx_bytes += bytes as u64;
    }
    /// Count the outcome of sending one packet from the TUN device (inner `bytes`): per
    /// kind when it left, as `no_route` (logged with `what` and the home address) when not.
    pub fn sent(
        &mut self,
        r: std::io::Result<Kind>,
        bytes: usize,
        hoa: &std::net::Ipv6Addr,
        what: &str,
    ) {
        match r {
            Ok(kind) => self.tx(kind, bytes),
            Err(e) => {
                self.no_route += 1;
                tracing::debug!(error = %e, %hoa, "{what} send failed");
            }
        }
    }
    pub fn kind(&self, k: Kind) -> KindStats {
        self.kinds.get(&k).copied().unwrap_or_default()
    }
}

/// Where a packet from the TUN device goes, when its binding has no data SA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plain {
    /// UDP 4191 to the binding's far end (the NAT's address and port behind a NAT).
    Udp(SocketAddrV4),
    /// IP-in-IP: raw IPv4 protocol 4 or 41 (by the inner version) to the care-of address.
    IpIp { protocol: u8, dst: Ipv4Addr },
}

/// The plain tunnel of a route for an inner packet (RFC 5555 §4.1), or `None` (an IPv6
/// outer address: not served).
pub fn plain_tunnel(route: &ha::Route, inner: &[u8]) -> Option<Plain> {
    match (route.outer, route.encap) {
        (Outer::V4 { dst, .. }, Encap::Udp { dst_port, .. }) => {
            Some(Plain::Udp(SocketAddrV4::new(dst, dst_port)))
        }
        (Outer::V4 { dst, .. }, Encap::IpInIp) => {
            let protocol = match inner.first()? >> 4 {
                4 => super::raw::PROTO_IPIP,
                6 => super::raw::PROTO_IPV6,
                _ => return None,
            };
            Some(Plain::IpIp { protocol, dst })
        }
        _ => None,
    }
}

/// Is an IP-in-IP packet (protocol `protocol` from the outer source `from`) one the
/// binding of its inner source may send? The inner version must match the protocol and
/// the binding's tunnel must be IP-in-IP from exactly that care-of address (RFC 5555 §4.1;
/// the anti-spoofing rule of the UDP tunnel).
pub fn ipip_bound(
    agent: &HomeAgent,
    now: Instant,
    protocol: u8,
    from: Ipv4Addr,
    inner: &[u8],
) -> bool {
    let version_ok = match protocol {
        super::raw::PROTO_IPIP => inner.first().is_some_and(|b| b >> 4 == 4),
        super::raw::PROTO_IPV6 => inner.first().is_some_and(|b| b >> 4 == 6),
        _ => false,
    };
    version_ok
        && source(inner)
            .and_then(|src| agent.route(now, src))
            .is_some_and(|r| {
                matches!(r.outer, Outer::V4 { dst, .. } if dst == from) && r.encap == Encap::IpInIp
            })
}

/// The TUN device and its reader thread.
pub struct DataPlane {
    tun: TunDevice,
    /// Routes and neighbour proxies; the interfaces were looked up once at start.
    rtnl: Rtnl,
    tun_link: Link,
    home_link: Option<Link>,
    pub stats: TunnelStats,
}

impl DataPlane {
    /// Create and bring up the TUN device, route the IPv4 home address space into it and
    /// start the reader; packets read go to `tx`.
    pub fn start(
        name: &str,
        mtu: u32,
        home_link: Option<&str>,
        ha: &HaConfig,
        tx: mpsc::Sender<Vec<u8>>,
    ) -> Result<Self> {
        if let Some(l) = home_link {
            // The kernel answers Neighbor Solicitations for proxied addresses only with this.
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{l}/proxy_ndp"), "1")
                .with_context(|| format!("enabling proxy_ndp on {l}"))?;
        }
        let tun = TunDevice::start(name, mtu, tx)?;
        let mut rtnl = Rtnl::open()?;
        let tun_link = rtnl.link(tun.name())?;
        let home_link = home_link
            .map(|l| rtnl.link(l))
            .transpose()
            .context("daemon.home_link")?;
        let nets = ha
            .ipv4_pools
            .iter()
            .map(|p| p.range)
            .chain(ha.mobile_nodes.iter().filter_map(|m| m.ipv4_home_address));
        for net in nets {
            rtnl.route_replace(net.into(), &tun_link)?;
        }
        Ok(DataPlane {
            tun,
            rtnl,
            tun_link,
            home_link,
            stats: TunnelStats::default(),
        })
    }

    /// Apply one engine event to the kernel: routes into the TUN device, proxy NDP/ARP.
    /// A removal tries both of its steps and reports every failure.
    pub fn apply(&mut self, ev: &Event) -> Result<()> {
        match ev {
            // RFC 6275 §10.4.1: intercept for the IPv6 home address.
            Event::ProxyNdpAdd(a) => self.host(IpAddr::V6(*a), true),
            Event::ProxyNdpRemove(a) => self.host(IpAddr::V6(*a), false),
            // RFC 5555 §4.5: the same for an IPv4 home address.
            Event::ProxyArpAdd(a) => self.host(IpAddr::V4(*a), true),
            Event::ProxyArpRemove(a) => self.host(IpAddr::V4(*a), false),
            Event::RouteAdd { prefix, .. } => self.rtnl.route_replace(*prefix, &self.tun_link),
            Event::RouteRemove { prefix, .. } => self.rtnl.route_delete(*prefix, &self.tun_link),
            // Tunnels are looked up per packet in the binding cache (`HomeAgent::route`).
            _ => Ok(()),
        }
    }

    /// A home address: its host route into the TUN device and, with a home link, the
    /// proxy entry there.
    fn host(&mut self, a: IpAddr, add: bool) -> Result<()> {
        let host = ipnet::IpNet::from(a);
        let (tun, home) = (&self.tun_link, self.home_link.as_ref());
        if add {
            self.rtnl.route_replace(host, tun)?;
            match home {
                Some(l) => self.rtnl.proxy_add(a, l),
                None => Ok(()),
            }
        } else {
            let route = self.rtnl.route_delete(host, tun);
            let proxy = match home {
                Some(l) => self.rtnl.proxy_delete(a, l),
                None => Ok(()),
            };
            match (route, proxy) {
                (Err(r), Err(p)) => Err(anyhow::anyhow!("{r:#}; {p:#}")),
                (r, p) => r.and(p),
            }
        }
    }

    /// A packet tunnelled in UDP from `from`: forward it when its source is a home address
    /// bound to exactly that outer address and port (no spoofing through the tunnel).
    pub fn handle_tunnelled(&mut self, agent: &HomeAgent, from: SocketAddrV4, inner: &[u8]) {
        let bound = source(inner)
            .and_then(|src| agent.route(Instant::now(), src))
            .is_some_and(|r| {
                matches!(r.outer, Outer::V4 { dst, .. } if dst == *from.ip())
                    && matches!(r.encap, Encap::Udp { dst_port, .. } if dst_port == from.port())
            });
        if !bound {
            self.stats.spoofed += 1;
            return;
        }
        self.deliver(Kind::Udp4191, inner);
    }

    /// An IP-in-IP packet from the raw sockets (RFC 5555 §4.1).
    pub fn handle_ipip(&mut self, agent: &HomeAgent, protocol: u8, from: Ipv4Addr, inner: &[u8]) {
        if !ipip_bound(agent, Instant::now(), protocol, from, inner) {
            self.stats.spoofed += 1;
            return;
        }
        self.deliver(Kind::IpIp, inner);
    }

    /// An IPv4- or IPv6-in-IPv6 packet from the packet sockets (RFC 2473, `ipv6.rs`).
    pub fn handle_ip6ip(
        &mut self,
        agent: &HomeAgent,
        protocol: u8,
        from: std::net::Ipv6Addr,
        inner: &[u8],
    ) {
        if !super::ipv6::ip6ip_bound(agent, Instant::now(), protocol, from, inner) {
            self.stats.spoofed += 1;
            return;
        }
        self.deliver(Kind::Ip6Ip, inner);
    }

    /// Write a checked inner packet to the TUN device and count it.
    pub fn deliver(&mut self, kind: Kind, inner: &[u8]) {
        if self.tun.send(inner).is_ok() {
            self.stats.rx(kind, inner.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ha::{RxContext, SaInfo, Transport};
    use mipsec::wire::mh::{BuFlags, MhMessage, MhRepr};
    use mipsec::wire::MhOption;
    use std::net::{IpAddr, Ipv6Addr};
    use std::time::SystemTime;

    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const COA: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    /// A home agent with one binding registered in UDP from `src:port` with the IPv4
    /// care-of address COA and a dynamic IPv4 home address. `src == COA`: no NAT, so
    /// IP-in-IP (RFC 5555 §4.1); otherwise UDP.
    fn agent(src: Ipv4Addr) -> (HomeAgent, Ipv4Addr) {
        let mut cfg = HaConfig::new(
            "2001:db8:1::1".parse().unwrap(),
            Ipv4Addr::new(192, 0, 2, 1),
            vec!["2001:db8:1::/64".parse().unwrap()],
        );
        cfg.ipv4_pools.push(ha::PoolConfig {
            range: "198.51.100.0/30".parse().unwrap(),
            exclude: vec![],
        });
        let now = Instant::now();
        let mut a = HomeAgent::in_memory(cfg, now, SystemTime::now()).unwrap();
        let ctx = RxContext {
            transport: Transport::Udp {
                src,
                src_port: 4191,
            },
            ipv6_src: HOA,
            ipv6_dst: "2001:db8:1::1".parse().unwrap(),
            home_address_option: None,
            sa: Some(SaInfo {
                spi: 0x1234,
                home_address: HOA,
            }),
        };
        let bu = MhRepr {
            message: MhMessage::BindingUpdate {
                sequence: 1,
                flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
                lifetime: 100,
            },
            options: vec![
                MhOption::Ipv4HomeAddress {
                    prefix_len: 32,
                    prefix_request: false,
                    addr: Ipv4Addr::UNSPECIFIED,
                },
                MhOption::Ipv4CareOfAddress(COA),
            ],
        };
        assert!(a.handle_bu(now, &ctx, &bu).reply().is_some());
        let v4 = a.binding(&HOA).unwrap().ipv4.unwrap().net.addr();
        (a, v4)
    }

    fn v4_packet(src: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 20, 0, 0, 0x40, 0, 64, 17, 0, 0];
        p.extend(src.octets());
        p.extend([203, 0, 113, 2]);
        p
    }

    fn v6_packet(src: Ipv6Addr) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 59, 64];
        p.extend(src.octets());
        p.extend("2001:db8:1::2".parse::<Ipv6Addr>().unwrap().octets());
        p
    }

    #[test]
    fn ip_in_ip_is_accepted_only_from_the_bindings_care_of_address() {
        let (a, hoa4) = agent(COA);
        let now = Instant::now();
        let (p4, p6) = (v4_packet(hoa4), v6_packet(HOA));
        assert!(ipip_bound(&a, now, 4, COA, &p4));
        assert!(ipip_bound(&a, now, 41, COA, &p6));
        // Another outer source, a version that does not match the protocol, a source that
        // is not bound, an unknown protocol: all refused.
        assert!(!ipip_bound(&a, now, 4, Ipv4Addr::new(192, 0, 2, 9), &p4));
        assert!(!ipip_bound(&a, now, 41, COA, &p4));
        assert!(!ipip_bound(&a, now, 4, COA, &p6));
        assert!(!ipip_bound(
            &a,
            now,
            4,
            COA,
            &v4_packet(Ipv4Addr::new(198, 51, 100, 3))
        ));
        assert!(!ipip_bound(&a, now, 50, COA, &p4));
        assert!(!ipip_bound(&a, now, 4, COA, &[]));
        // Outbound: protocol by the inner version, to the care-of address.
        let r = a.route(now, IpAddr::V4(hoa4)).unwrap();
        assert_eq!(
            plain_tunnel(&r, &p4),
            Some(Plain::IpIp {
                protocol: 4,
                dst: COA
            })
        );
        assert_eq!(
            plain_tunnel(&r, &p6),
            Some(Plain::IpIp {
                protocol: 41,
                dst: COA
            })
        );
        assert_eq!(plain_tunnel(&r, &[0x10]), None);
    }

    #[test]
    fn a_udp_binding_is_not_an_ip_in_ip_one() {
        let nat = Ipv4Addr::new(203, 0, 113, 7);
        let (a, hoa4) = agent(nat);
        let now = Instant::now();
        // Behind a NAT the binding is UDP 4191: IP-in-IP from anywhere is refused.
        assert!(!ipip_bound(&a, now, 4, nat, &v4_packet(hoa4)));
        assert!(!ipip_bound(&a, now, 4, COA, &v4_packet(hoa4)));
        let r = a.route(now, IpAddr::V4(hoa4)).unwrap();
        assert_eq!(
            plain_tunnel(&r, &v4_packet(hoa4)),
            Some(Plain::Udp(SocketAddrV4::new(nat, 4191)))
        );
    }
}
