//! The main loop of `dsmip-mn run`: one task owns the [`MobileNode`] engine and the IKE
//! initiator and serves, in turn, UDP 4191 (Binding Acknowledgements), IKE on 500/4500, the
//! earliest of both engines' timers, `status` queries, and SIGTERM/SIGINT (deregister with
//! lifetime 0, wait a bounded time for the acknowledgement, delete the IKE SA, exit).
//!
//! The local addresses are handed to the engine only once the CHILD_SA for BU/BA is up,
//! so the first Binding Update is already protected (RFC 4877 §4.1).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ike::crypto::{Rng, SystemRng};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_ESP, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::tunnel::DSMIPV6_PORT;
use mipsec::wire::MhRepr;
use mn::engine::{AddressEvent, BaContext, MobileNode};
use mn::output::Event;
use tokio::net::{UdpSocket, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::config::DaemonFile;
use super::dataplane::{classify, DataPlane, Payload};
use super::ipsec::Ipsec;
use super::serve::{self, Query};
use super::status::{self, DriverState};

/// State of the main loop.
struct Daemon {
    mn: MobileNode,
    ipsec: Ipsec,
    sock: UdpSocket,
    ha4: Ipv4Addr,
    addresses: Vec<Ipv4Addr>,
    addresses_fed: bool,
    state: DriverState,
    deregistered: bool,
    data: Option<DataPlane>,
}

/// Receive on an IKE socket.
async fn recv(s: &UdpSocket, buf: &mut [u8]) -> std::io::Result<(usize, SocketAddr)> {
    s.recv_from(buf).await
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The global addresses of the host, read once (`ip -o addr show scope global`).
fn read_addresses() -> Result<Vec<IpAddr>> {
    let out = std::process::Command::new("ip")
        .args(["-o", "addr", "show", "scope", "global"])
        .output()
        .context("running `ip -o addr show` (iproute2)")?;
    if !out.status.success() {
        bail!("ip addr: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(parse_ip_addr(&String::from_utf8_lossy(&out.stdout)))
}

/// The addresses in `ip -o addr` output: the word after `inet` / `inet6`, without prefix.
fn parse_ip_addr(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            w.find(|t| *t == "inet" || *t == "inet6")?;
            w.next()?.split('/').next()?.parse().ok()
        })
        .collect()
}

/// Run until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonFile) -> Result<()> {
    let d = &cfg.daemon;
    let all = if d.addresses.is_empty() {
        read_addresses()?
    } else {
        d.addresses.clone()
    };
    let addresses: Vec<Ipv4Addr> = all
        .iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) if !v.is_loopback() && !v.is_unspecified() => Some(*v),
            _ => None,
        })
        .collect();
    let Some(&coa) = addresses.first() else {
        bail!("no IPv4 address to use as care-of address (found {all:?})");
    };
    let skipped: Vec<&IpAddr> = all.iter().filter(|a| a.is_ipv6()).collect();
    if !skipped.is_empty() {
        info!(
            ?skipped,
            "IPv6 addresses not used as care-of addresses (IPv4 signalling only)"
        );
    }
    let m = &cfg.mobile_node;
    let ha4 = cfg
        .ha_v4()
        .context("mobile_node.home_agent.ipv4 is required")?;
    let ha6 = m
        .home_agent
        .ipv6
        .context("mobile_node.home_agent.ipv6 is required (DNS discovery is not wired in)")?;
    let sock = UdpSocket::bind((coa, m.udp_source_port))
        .await
        .with_context(|| format!("binding UDP {coa}:{}", m.udp_source_port))?;
    let ipsec = Ipsec::bind(&cfg.ipsec, coa, ha4, m.home_address, ha6).await?;
    let (tun_tx, mut tun_rx) = mpsc::channel::<Vec<u8>>(1024);
    let data = match &d.tun {
        Some(name) => {
            let dp = DataPlane::start(name, d.tun_mtu, m.home_address, &d.routes, tun_tx)?;
            info!(tun = %name, mtu = d.tun_mtu, hoa = %m.home_address, "data plane: TUN device up with the home address");
            Some(dp)
        }
        None => None,
    };
    let mut seq = [0u8; 2];
    SystemRng::default().fill(&mut seq);
    let mn = MobileNode::new(m.clone(), u16::from_be_bytes(seq)).context("starting the engine")?;
    let _ = std::fs::remove_file(&d.control_socket);
    let control = UnixListener::bind(&d.control_socket)
        .with_context(|| format!("control socket {}", d.control_socket.display()))?;
    let (tx, mut queries) = mpsc::channel::<Query>(16);
    let control_task = tokio::spawn(serve::control(control, tx));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut daemon = Daemon {
        mn,
        ipsec,
        sock,
        ha4,
        addresses,
        addresses_fed: false,
        state: DriverState::default(),
        deregistered: false,
        data,
    };
    info!(coa = %coa, ha = %ha4, hoa = %m.home_address, control = %d.control_socket.display(), "dsmip-mn running");
    let mut buf = vec![0u8; 65_536];
    let (mut ike_buf, mut natt_buf) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    let mut stopping: Option<(&str, Instant)> = None;
    loop {
        if let Some((why, deadline)) = stopping {
            if daemon.deregistered || Instant::now() >= deadline {
                if daemon.deregistered {
                    info!(signal = why, "shutdown: deregistered");
                } else {
                    warn!(
                        signal = why,
                        "shutdown: deregistration not acknowledged in time"
                    );
                }
                break;
            }
        }
        let deadline = earliest(
            earliest(daemon.mn.poll_timeout(), daemon.ipsec.poll_timeout()),
            stopping.map(|s| s.1),
        );
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = daemon.sock.recv_from(&mut buf) => match r {
                Ok((n, from)) => daemon.datagram(&mut buf[..n], from),
                Err(e) => warn!(error = %e, "UDP receive failed"),
            },
            r = recv(daemon.ipsec.ike_socket(), &mut ike_buf) => {
                if let Ok((n, from)) = r {
                    daemon.ipsec.handle_ike(cfg.ipsec.ike_port, from, &ike_buf[..n]).await;
                }
            }
            r = recv(daemon.ipsec.natt_socket(), &mut natt_buf) => {
                if let Ok((n, from)) = r {
                    daemon.ipsec.handle_ike(cfg.ipsec.natt_port, from, &natt_buf[..n]).await;
                }
            }
            () = sleep => {
                let now = Instant::now();
                daemon.mn.handle_timeout(now);
                daemon.ipsec.handle_timeout(now).await;
            }
            Some(pkt) = tun_rx.recv() => daemon.tun_packet(&pkt).await,
            Some(q) = queries.recv() => {
                daemon.sync_state();
                let v = status::status(Instant::now(), &daemon.mn, &daemon.state);
                let _ = q.reply.send(v.to_string());
            }
            _ = term.recv(), if stopping.is_none() => stopping = Some(daemon.stop("SIGTERM", d.shutdown_timeout_ms)),
            _ = int.recv(), if stopping.is_none() => stopping = Some(daemon.stop("SIGINT", d.shutdown_timeout_ms)),
        }
        if stopping.is_none() {
            daemon.feed_addresses();
        }
        daemon.drain().await;
    }
    daemon.ipsec.delete().await;
    // The TUN reader may wait on a full channel: closing it lets the thread end.
    drop(tun_rx);
    drop(daemon.data.take());
    control_task.abort();
    let _ = std::fs::remove_file(&d.control_socket);
    Ok(())
}

impl Daemon {
    /// Start the deregistration (lifetime 0, RFC 6275 §11.7.1); returns the stop state.
    fn stop(&mut self, why: &'static str, timeout_ms: u64) -> (&'static str, Instant) {
        let now = Instant::now();
        let bound = self.mn.ipv6_binding().is_some() || self.mn.is_pending();
        if bound && self.ipsec.established() {
            info!(signal = why, "deregistering (lifetime 0)");
            if let Err(e) = self.mn.deregister(now) {
                warn!(error = %e, "deregistration not possible");
                self.deregistered = true;
            }
        } else {
            info!(signal = why, "nothing to deregister");
            self.deregistered = true;
        }
        (why, now + Duration::from_millis(timeout_ms))
    }

    /// Once the BU/BA SA is up, the addresses go to the engine (which then registers).
    fn feed_addresses(&mut self) {
        if self.addresses_fed || !self.ipsec.established() {
            return;
        }
        self.addresses_fed = true;
        let now = Instant::now();
        for a in &self.addresses {
            self.mn.handle_address(
                now,
                AddressEvent::Added {
                    addr: IpAddr::V4(*a),
                    private: a.is_private(),
                },
            );
        }
    }

    fn sync_state(&mut self) {
        let s = &mut self.state;
        s.ike_established = self.ipsec.established();
        s.nat_local = self.ipsec.nat_local;
        s.spis = self.ipsec.pair.as_ref().map(|p| (p.spi_in, p.spi_out));
        s.ike_sas_up = self.ipsec.stats.ike_sas_up;
        s.ike_failures = self.ipsec.stats.ike_failures;
        s.esp_errors = self.ipsec.stats.esp_errors;
        s.tunnel = self.data.as_ref().map(|d| d.stats);
    }

    /// Send every queued Binding Update and log every event.
    async fn drain(&mut self) {
        while let Some(t) = self.mn.poll_transmit() {
            self.send_bu(&t).await;
        }
        while let Some(ev) = self.mn.poll_event() {
            self.state.last_event = Some(format!("{ev:?}"));
            match &ev {
                Event::Registered {
                    coa,
                    lifetime,
                    ipv4_home,
                } => {
                    info!(coa = %coa.ip(), lifetime_s = lifetime.as_secs(), ipv4_home = ?ipv4_home, "registered")
                }
                Event::Deregistered | Event::AtHome => {
                    self.deregistered = true;
                    info!(event = ?ev, "binding removed");
                }
                Event::TunnelChanged(t) => {
                    info!(tunnel = ?t, "tunnel changed");
                    if let Some(d) = self.data.as_mut() {
                        d.set_tunnel(t.as_ref());
                    }
                }
                Event::Rejected { status } => warn!(status = status.0, "Binding Update rejected"),
                Event::BindingExpired => warn!("binding expired"),
                Event::NoRoute => warn!("no usable care-of or home agent address"),
                other => info!(event = ?other, "engine event"),
            }
        }
    }

    /// `IPv4 / UDP 4191 / IPv6 / ESP / MH` (RFC 5555 §5.2.1): ESP transport mode on the
    /// IPv6 packet, the kernel adds UDP and IPv4.
    async fn send_bu(&mut self, t: &mn::output::Transmit) {
        if t.outer.is_none() {
            warn!(src = %t.ipv6_src, "Binding Update over IPv6 not sent: IPv6 signalling is not implemented");
            return;
        }
        let mut clear = vec![0u8; t.ipv6_len()];
        if let Err(e) = t.emit_ipv6(&mut clear) {
            warn!(error = %e, "Binding Update could not be built");
            return;
        }
        let mut wire = vec![0u8; clear.len() + 64];
        let Some(n) = self.ipsec.seal(&clear, &mut wire) else {
            self.state.bu_held_no_sa += 1;
            warn!(
                sequence = t.sequence(),
                "Binding Update not sent: no SA (the engine retransmits)"
            );
            return;
        };
        match self
            .sock
            .send_to(&wire[..n], (self.ha4, DSMIPV6_PORT))
            .await
        {
            Ok(_) => debug!(sequence = t.sequence(), len = n, "Binding Update sent"),
            Err(e) => warn!(error = %e, "Binding Update send failed"),
        }
    }

    /// A packet the kernel routed into the TUN device: into the UDP tunnel (RFC 5555 §4.1).
    async fn tun_packet(&mut self, pkt: &[u8]) {
        let t = self.mn.tunnel();
        let Some(d) = self.data.as_mut() else {
            return;
        };
        if let Some(p) = d.outbound(t.as_ref(), pkt) {
            if let Err(e) = self.sock.send_to(p, (self.ha4, DSMIPV6_PORT)).await {
                warn!(error = %e, "tunnel send failed");
            }
        }
    }

    /// A datagram on UDP 4191: a BA from the home agent, ESP-protected.
    fn datagram(&mut self, pkt: &mut [u8], from: SocketAddr) {
        if from != SocketAddr::new(IpAddr::V4(self.ha4), DSMIPV6_PORT) {
            self.state.ba_dropped += 1;
            debug!(%from, "datagram not from the home agent's UDP 4191 dropped");
            return;
        }
        match classify(pkt) {
            Payload::Signalling => {}
            Payload::Data => {
                match self.data.as_mut() {
                    Some(d) => d.inbound(pkt),
                    None => {
                        self.state.data_dropped += 1;
                        debug!("tunnelled packet dropped: no data plane configured");
                    }
                }
                return;
            }
            Payload::Malformed => {
                self.state.ba_dropped += 1;
                debug!("malformed datagram dropped");
                return;
            }
        }
        let Ok(ip6) = Ipv6Repr::parse(pkt) else {
            self.state.ba_dropped += 1;
            return;
        };
        let (range, protected) = if ip6.next_header == IPPROTO_ESP {
            match self.ipsec.open(pkt) {
                Some(r) => (r, true),
                None => {
                    self.state.ba_dropped += 1;
                    return;
                }
            }
        } else {
            (0..pkt.len(), false)
        };
        let Some(mh) = mh_of(&pkt[range]) else {
            self.state.ba_dropped += 1;
            debug!("no Mobility Header in the packet: dropped");
            return;
        };
        let ctx = BaContext {
            src: ip6.src,
            protected,
            udp_from: Some((self.ha4, DSMIPV6_PORT)),
        };
        match self.mn.handle_ba(Instant::now(), &ctx, &mh) {
            Ok(outcome) => debug!(?outcome, "Binding Acknowledgement"),
            Err(e) => info!(error = %e, "Binding Acknowledgement dropped"),
        }
    }
}

/// The Mobility Header of an IPv6 packet, behind at most one routing header (type 2,
/// RFC 6275 §6.4).
fn mh_of(pkt: &[u8]) -> Option<MhRepr> {
    let ip6 = Ipv6Repr::parse(pkt).ok()?;
    let mut at = Ipv6Repr::HEADER_LEN;
    let mut next = ip6.next_header;
    if next == IPPROTO_ROUTING {
        let h = pkt.get(at..at + 2)?;
        next = h[0];
        at += (usize::from(h[1]) + 1) * 8;
    }
    if next != IPPROTO_MH {
        return None;
    }
    MhRepr::parse_bytes(pkt.get(at..)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addr_output_is_parsed() {
        let text = "2: eth0    inet 10.1.0.2/24 brd 10.1.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n\
                    2: eth0    inet6 2001:db8:5::2/64 scope global \\       valid_lft forever\n\
                    3: junk\n";
        let a = parse_ip_addr(text);
        assert_eq!(
            a,
            vec![
                "10.1.0.2".parse::<IpAddr>().unwrap(),
                "2001:db8:5::2".parse().unwrap()
            ]
        );
    }

    #[test]
    fn mh_is_found_behind_a_routing_header_and_not_in_garbage() {
        assert!(mh_of(&[0u8; 10]).is_none());
        // IPv6 header announcing UDP: no MH.
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[5] = 8;
        p[6] = 17;
        assert!(mh_of(&p).is_none());
    }
}
