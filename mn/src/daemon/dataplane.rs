//! The mobile node's data plane (RFC 5555 §4.1, §4.4.3): a TUN device that carries the
//! home addresses, so unmodified applications use them. The IPv6 home address
//! is put on the device at start; the IPv4 home address when the home agent grants it (and
//! removed with the binding). `daemon.routes` send chosen destinations into the device with
//! the home address as source. A packet the kernel routes into the device leaves as
//! `IPv4 / UDP 4191 / inner packet` to the home agent while the engine's tunnel is UDP and
//! the inner source is a home address; a datagram from the home agent whose payload is an
//! inner packet for a home address is written to the device. Addresses and routes are set
//! with iproute2 (`ip`). Which outer format a packet takes (ESP tunnel mode, UDP 4191,
//! IP-in-IP) is the main loop's choice ([`Via`]); this module checks the source and counts.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use anyhow::Result;
use dsmip_daemon::net::{destination, ip, source};
use dsmip_daemon::tun::TunDevice;
use mipsec::wire::ip::{IPPROTO_ESP, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::tunnel::{Encap, Outer};
use mn::output::TunnelFormat;

use super::outer::{PROTO_IPIP, PROTO_IPV6};
use tokio::sync::mpsc;
use tracing::{info, warn};

/// How a packet from the device leaves (RFC 5555 §4.1, §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// ESP tunnel mode with the data SA.
    Esp,
    /// `IPv4 / UDP 4191 / inner` from our 4191 socket.
    Udp,
    /// IPv4 protocol 4 (inner IPv4) or 41 (inner IPv6) on a raw socket.
    IpInIp(u8),
    /// IPv6 from an IPv6 care-of address, next header 4 or 41 (RFC 2473, `ipv6.rs`).
    Ip6(u8),
}

/// Packet and byte counters of the tunnel (inner bytes).
#[derive(Debug, Default, Clone, Copy)]
pub struct TunnelStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// From the device with no UDP tunnel, or a source that is not a home address.
    pub no_route: u64,
    /// From the home agent for an address that is not ours.
    pub not_ours: u64,
}

/// What a datagram from the home agent on UDP 4191 carries (RFC 5555 §4.1: the version
/// nibble after the UDP header tells IPv4 from IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payload {
    /// IPv6 with ESP or a Mobility Header (behind at most one routing header): signalling.
    Signalling,
    /// Any other IPv4 or IPv6 packet: tunnelled data.
    Data,
    Malformed,
}

/// Classify a datagram payload.
pub fn classify(pkt: &[u8]) -> Payload {
    match pkt.first().map(|b| b >> 4) {
        Some(4) if pkt.len() >= 20 => Payload::Data,
        Some(6) if pkt.len() >= 40 => {
            let next = match pkt[6] {
                IPPROTO_ROUTING => pkt.get(40).copied().unwrap_or(0),
                n => n,
            };
            if next == IPPROTO_ESP || next == IPPROTO_MH {
                Payload::Signalling
            } else {
                Payload::Data
            }
        }
        _ => Payload::Malformed,
    }
}

/// The TUN device, its reader thread, and the IPv4 home address on it.
pub struct DataPlane {
    tun: TunDevice,
    hoa: Ipv6Addr,
    routes: Vec<String>,
    hoa4: Option<Ipv4Addr>,
    pub stats: TunnelStats,
}

impl DataPlane {
    /// Create the device, put the IPv6 home address on it, route the IPv6 destinations of
    /// `routes` into it and start the reader; packets read go to `tx`.
    pub fn start(
        name: &str,
        mtu: u32,
        hoa: Ipv6Addr,
        routes: &[String],
        tx: mpsc::Sender<Vec<u8>>,
    ) -> Result<Self> {
        let tun = TunDevice::start(name, mtu, tx)?;
        let dev = tun.name().to_string();
        // nodad: the home address is ours; DAD on a point-to-point TUN device only delays.
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{hoa}/128"),
            "dev",
            &dev,
            "nodad",
        ])?;
        for r in routes.iter().filter(|r| r.contains(':')) {
            ip(&[
                "-6",
                "route",
                "replace",
                r,
                "dev",
                &dev,
                "src",
                &hoa.to_string(),
            ])?;
        }
        Ok(DataPlane {
            tun,
            hoa,
            routes: routes.to_vec(),
            hoa4: None,
            stats: TunnelStats::default(),
        })
    }

    /// Follow the engine's tunnel (RFC 5555 §4.4.3): the IPv4 home address is on the
    /// device, with the IPv4 routes, exactly while it is bound.
    pub fn set_tunnel(&mut self, t: Option<&TunnelFormat>) {
        let want = t.and_then(|t| t.hoa4);
        if want == self.hoa4 {
            return;
        }
        let dev = self.tun.name().to_string();
        if let Some(old) = self.hoa4.take() {
            // Removing the address removes the routes that use it as source.
            if let Err(e) = ip(&["addr", "del", &format!("{old}/32"), "dev", &dev]) {
                warn!(error = %e, "IPv4 home address not removed from the TUN device");
            }
            info!(hoa4 = %old, "IPv4 home address removed from the TUN device");
        }
        if let Some(a) = want {
            let r = ip(&["addr", "add", &format!("{a}/32"), "dev", &dev]).and_then(|()| {
                for r in self.routes.iter().filter(|r| !r.contains(':')) {
                    ip(&["route", "replace", r, "dev", &dev, "src", &a.to_string()])?;
                }
                Ok(())
            });
            match r {
                Ok(()) => {
                    self.hoa4 = Some(a);
                    info!(hoa4 = %a, tun = %dev, "IPv4 home address on the TUN device");
                }
                Err(e) => warn!(error = %e, "IPv4 home address not set on the TUN device"),
            }
        }
    }

    /// A packet from the device: how it leaves, if a tunnel is up and its source is one of
    /// our home addresses (otherwise counted `no_route`). `esp`: a data SA is installed.
    pub fn outbound(&mut self, t: Option<&TunnelFormat>, esp: bool, pkt: &[u8]) -> Option<Via> {
        let via = t.and_then(|t| route(t, esp, pkt));
        match via {
            Some(_) => {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += pkt.len() as u64;
            }
            None => self.stats.no_route += 1,
        }
        via
    }

    /// A tunnelled packet from the home agent: written to the device when it is for one of
    /// our home addresses.
    pub fn inbound(&mut self, pkt: &[u8]) {
        let ours = match destination(pkt) {
            Some(IpAddr::V6(d)) => d == self.hoa,
            Some(IpAddr::V4(d)) => Some(d) == self.hoa4,
            None => false,
        };
        if !ours {
            self.stats.not_ours += 1;
            return;
        }
        match self.tun.send(pkt) {
            Ok(_) => {
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += pkt.len() as u64;
            }
            Err(e) => warn!(error = %e, "TUN write failed"),
        }
    }
}

/// The outer format for a packet from a home address (RFC 5555 §4.1, §4.4.3, §5.2.2): the
/// data SA when installed, else the engine's tunnel.
fn route(t: &TunnelFormat, esp: bool, pkt: &[u8]) -> Option<Via> {
    let (ours, ipip) = match source(pkt)? {
        IpAddr::V6(s) => (s == t.hoa, PROTO_IPV6),
        IpAddr::V4(s) => (Some(s) == t.hoa4, PROTO_IPIP),
    };
    if !ours {
        return None;
    }
    Some(match t.encap {
        // An IPv6 care-of address: IP-in-IPv6, also with a data SA, since the home agent
        // carries such bindings that way (no ESP over IPv6, contract notes).
        _ if matches!(t.outer, Outer::V6 { .. }) => Via::Ip6(ipip),
        _ if esp => Via::Esp,
        Encap::Udp { .. } => Via::Udp,
        Encap::IpInIp => Via::IpInIp(ipip),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(next: u8, src: &str, dst: &str) -> Vec<u8> {
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[6] = next;
        let s: Ipv6Addr = src.parse().unwrap();
        let d: Ipv6Addr = dst.parse().unwrap();
        p[8..24].copy_from_slice(&s.octets());
        p[24..40].copy_from_slice(&d.octets());
        p
    }

    #[test]
    fn packets_take_the_data_sa_then_the_engine_tunnel() {
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let mut t = TunnelFormat {
            outer: Outer::V4 {
                src: Ipv4Addr::new(10, 1, 0, 2),
                dst: Ipv4Addr::new(192, 0, 2, 1),
            },
            encap: Encap::IpInIp,
            hoa,
            hoa4: Some(Ipv4Addr::new(198, 51, 100, 2)),
        };
        let p6 = v6(58, "2001:db8:1::100", "2001:db8:1::2");
        let mut p4 = vec![0u8; 28];
        p4[0] = 0x45;
        p4[12..16].copy_from_slice(&[198, 51, 100, 2]);
        assert_eq!(route(&t, false, &p6), Some(Via::IpInIp(41)));
        assert_eq!(route(&t, false, &p4), Some(Via::IpInIp(4)));
        assert_eq!(route(&t, true, &p4), Some(Via::Esp));
        t.encap = Encap::Udp {
            src_port: 4191,
            dst_port: 4191,
        };
        assert_eq!(route(&t, false, &p6), Some(Via::Udp));
        // Not a home address: no route, whatever the tunnel.
        assert_eq!(route(&t, true, &v6(58, "2001:db8:9::1", "::2")), None);
        p4[15] = 3;
        assert_eq!(route(&t, true, &p4), None);
        t.hoa4 = None;
        p4[15] = 2;
        assert_eq!(route(&t, false, &p4), None);
        // An IPv6 care-of address: IP-in-IPv6 whatever the data SA.
        t.hoa4 = Some(Ipv4Addr::new(198, 51, 100, 2));
        t.outer = Outer::V6 {
            src: "2001:db8:5::2".parse().unwrap(),
            dst: "2001:db8:1::1".parse().unwrap(),
        };
        t.encap = Encap::IpInIp;
        assert_eq!(route(&t, true, &p4), Some(Via::Ip6(4)));
        assert_eq!(route(&t, true, &p6), Some(Via::Ip6(41)));
    }

    #[test]
    fn datagrams_are_classified_by_version_and_next_header() {
        assert_eq!(
            classify(&v6(IPPROTO_ESP, "::1", "::2")),
            Payload::Signalling
        );
        assert_eq!(classify(&v6(IPPROTO_MH, "::1", "::2")), Payload::Signalling);
        let mut rh = v6(IPPROTO_ROUTING, "::1", "::2");
        rh[40] = IPPROTO_MH;
        assert_eq!(classify(&rh), Payload::Signalling);
        assert_eq!(classify(&v6(58, "::1", "::2")), Payload::Data);
        let mut p4 = vec![0u8; 28];
        p4[0] = 0x45;
        assert_eq!(classify(&p4), Payload::Data);
        assert_eq!(classify(&[0x60; 10]), Payload::Malformed);
        assert_eq!(classify(&[]), Payload::Malformed);
        assert_eq!(classify(&[0x10; 60]), Payload::Malformed);
    }
}
