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
//! mobile network prefixes. They are applied with iproute2 (`ip`), not netlink yet.
//! IP-in-IP and ESP tunnels are not done (DAEMON.md).

use std::net::SocketAddrV4;
use std::time::Instant;

use anyhow::{Context, Result};
use dsmip_daemon::net::{destination, ip, source};
use dsmip_daemon::tun::TunDevice;
use ha::{Event, HaConfig, HomeAgent};
use mipsec::wire::tunnel::{Encap, Outer};
use tokio::sync::mpsc;

/// Packet and byte counters of the UDP tunnels.
#[derive(Debug, Default, Clone)]
pub struct TunnelStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Tunnelled packets whose inner source is not bound to their outer source.
    pub spoofed: u64,
    /// Packets from the TUN device with no binding, or a binding with another tunnel kind.
    pub no_route: u64,
}

/// The TUN device and its reader thread.
pub struct DataPlane {
    tun: TunDevice,
    home_link: Option<String>,
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
        let nets = ha
            .ipv4_pools
            .iter()
            .map(|p| p.range)
            .chain(ha.mobile_nodes.iter().filter_map(|m| m.ipv4_home_address));
        for net in nets {
            ip(&["route", "replace", &net.to_string(), "dev", tun.name()])?;
        }
        Ok(DataPlane {
            tun,
            home_link: home_link.map(str::to_string),
            stats: TunnelStats::default(),
        })
    }

    /// Apply one engine event to the kernel: routes into the TUN device, proxy NDP/ARP.
    pub fn apply(&mut self, ev: &Event) -> Result<()> {
        let tun = self.tun.name().to_string();
        let link = self.home_link.clone();
        match ev {
            Event::ProxyNdpAdd(a) => {
                ip(&["-6", "route", "replace", &format!("{a}/128"), "dev", &tun])?;
                if let Some(l) = &link {
                    ip(&["-6", "neigh", "replace", "proxy", &a.to_string(), "dev", l])?;
                }
            }
            Event::ProxyNdpRemove(a) => {
                ip(&["-6", "route", "del", &format!("{a}/128"), "dev", &tun])?;
                if let Some(l) = &link {
                    ip(&["-6", "neigh", "del", "proxy", &a.to_string(), "dev", l])?;
                }
            }
            Event::ProxyArpAdd(a) => {
                ip(&["route", "replace", &format!("{a}/32"), "dev", &tun])?;
                if let Some(l) = &link {
                    ip(&["neigh", "replace", "proxy", &a.to_string(), "dev", l])?;
                }
            }
            Event::ProxyArpRemove(a) => {
                ip(&["route", "del", &format!("{a}/32"), "dev", &tun])?;
                if let Some(l) = &link {
                    ip(&["neigh", "del", "proxy", &a.to_string(), "dev", l])?;
                }
            }
            Event::RouteAdd { prefix, .. } => {
                ip(&["route", "replace", &prefix.to_string(), "dev", &tun])?
            }
            Event::RouteRemove { prefix, .. } => {
                ip(&["route", "del", &prefix.to_string(), "dev", &tun])?
            }
            // Tunnels are looked up per packet in the binding cache (`HomeAgent::route`).
            _ => {}
        }
        Ok(())
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
        if self.tun.send(inner).is_ok() {
            self.stats.rx_packets += 1;
            self.stats.rx_bytes += inner.len() as u64;
        }
    }

    /// Where a packet read from the TUN device goes: the UDP far end of its binding.
    pub fn tunnel_destination(&mut self, agent: &HomeAgent, pkt: &[u8]) -> Option<SocketAddrV4> {
        let r = destination(pkt).and_then(|dst| agent.route(Instant::now(), dst));
        match r.map(|r| (r.outer, r.encap)) {
            Some((Outer::V4 { dst, .. }, Encap::Udp { dst_port, .. })) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += pkt.len() as u64;
                Some(SocketAddrV4::new(dst, dst_port))
            }
            _ => {
                self.stats.no_route += 1;
                None
            }
        }
    }
}
