//! The mobile node's data plane (RFC 5555 §4.1, §4.4.3), UDP tunnel only: a TUN device that
//! carries the home addresses, so unmodified applications use them. The IPv6 home address
//! is put on the device at start; the IPv4 home address when the home agent grants it (and
//! removed with the binding). `daemon.routes` send chosen destinations into the device with
//! the home address as source. A packet the kernel routes into the device leaves as
//! `IPv4 / UDP 4191 / inner packet` to the home agent while the engine's tunnel is UDP and
//! the inner source is a home address; a datagram from the home agent whose payload is an
//! inner packet for a home address is written to the device. Addresses and routes are set
//! with iproute2 (`ip`), not netlink yet. IP-in-IP and ESP tunnels are not done.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use mipsec::io::tun::Tun;
use mipsec::wire::ip::{IPPROTO_ESP, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::tunnel::Encap;
use mn::output::TunnelFormat;
use tokio::sync::mpsc;
use tracing::{info, warn};

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

/// Source (`src`) or destination address of an IP packet.
pub fn addr(pkt: &[u8], src: bool) -> Option<IpAddr> {
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

/// The TUN device, its reader thread, and the IPv4 home address on it.
pub struct DataPlane {
    tun: Arc<Tun>,
    hoa: Ipv6Addr,
    routes: Vec<String>,
    hoa4: Option<Ipv4Addr>,
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
        let tun = Tun::create(name).with_context(|| format!("creating TUN device {name}"))?;
        tun.set_mtu(mtu).context("TUN MTU")?;
        tun.up().context("TUN up")?;
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
            hoa,
            routes: routes.to_vec(),
            hoa4: None,
            stop,
            reader: Some(reader),
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

    /// A packet from the device: the bytes to send in UDP to the home agent, if the
    /// tunnel is UDP and the source is one of our home addresses.
    pub fn outbound<'p>(&mut self, t: Option<&TunnelFormat>, pkt: &'p [u8]) -> Option<&'p [u8]> {
        let ok = match (t, addr(pkt, true)) {
            (Some(t), Some(IpAddr::V6(s))) => s == t.hoa && matches!(t.encap, Encap::Udp { .. }),
            (Some(t), Some(IpAddr::V4(s))) => {
                Some(s) == t.hoa4 && matches!(t.encap, Encap::Udp { .. })
            }
            _ => false,
        };
        if !ok {
            self.stats.no_route += 1;
            return None;
        }
        self.stats.tx_packets += 1;
        self.stats.tx_bytes += pkt.len() as u64;
        Some(pkt)
    }

    /// A tunnelled packet from the home agent: written to the device when it is for one of
    /// our home addresses.
    pub fn inbound(&mut self, pkt: &[u8]) {
        let ours = match addr(pkt, false) {
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

    #[test]
    fn addresses_of_both_families() {
        let p = v6(58, "2001:db8::1", "2001:db8::2");
        assert_eq!(addr(&p, true), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(addr(&p, false), Some("2001:db8::2".parse().unwrap()));
        let mut p4 = vec![0u8; 20];
        p4[0] = 0x45;
        p4[12..16].copy_from_slice(&[198, 51, 100, 2]);
        p4[16..20].copy_from_slice(&[203, 0, 113, 2]);
        assert_eq!(addr(&p4, true), Some("198.51.100.2".parse().unwrap()));
        assert_eq!(addr(&p4, false), Some("203.0.113.2".parse().unwrap()));
        assert_eq!(addr(&p4[..15], true), None);
    }
}
