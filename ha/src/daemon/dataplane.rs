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

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use ha::{Event, HaConfig, HomeAgent};
use mipsec::io::tun::Tun;
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
    tun: Arc<Tun>,
    home_link: Option<String>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
    pub stats: TunnelStats,
}

impl Drop for DataPlane {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The inner source or destination address of an IP packet.
fn addr(pkt: &[u8], src: bool) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => {
            let at = if src { 12 } else { 16 };
            let b: [u8; 4] = pkt.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            let at = if src { 8 } else { 24 };
            let b: [u8; 16] = pkt.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
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
        let tun = Tun::create(name).with_context(|| format!("creating TUN device {name}"))?;
        tun.set_mtu(mtu).context("TUN MTU")?;
        tun.up().context("TUN up")?;
        let nets = ha
            .ipv4_pools
            .iter()
            .map(|p| p.range)
            .chain(ha.mobile_nodes.iter().filter_map(|m| m.ipv4_home_address));
        for net in nets {
            ip(&["route", "replace", &net.to_string(), "dev", tun.name()])?;
        }
        let tun = Arc::new(tun);
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tun.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                if !t.wait_readable(200).unwrap_or(false) {
                    continue;
                }
                if let Ok(n @ 1..) = t.recv(&mut buf) {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(DataPlane {
            tun,
            home_link: home_link.map(str::to_string),
            stop,
            reader: Some(reader),
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
        let bound = addr(inner, true)
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
        let r = addr(pkt, false).and_then(|dst| agent.route(Instant::now(), dst));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_both_families() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[198, 51, 100, 2]);
        v4[16..20].copy_from_slice(&[203, 0, 113, 2]);
        assert_eq!(addr(&v4, true), Some("198.51.100.2".parse().unwrap()));
        assert_eq!(addr(&v4, false), Some("203.0.113.2".parse().unwrap()));
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[39] = 1;
        assert_eq!(addr(&v6, false), Some("::1".parse().unwrap()));
        assert_eq!(addr(&v6[..30], false), None);
        assert_eq!(addr(&[0x10], true), None);
        assert_eq!(addr(&[], true), None);
    }
}
