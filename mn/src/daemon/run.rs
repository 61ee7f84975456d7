//! The main loop of `dsmip-mn run`: one task owns the [`MobileNode`] engine and the IKE
//! initiator and serves, in turn, UDP 4191 (Binding Acknowledgements), IKE on 500/4500, the
//! earliest of both engines' timers, `status` queries, and SIGTERM/SIGINT (deregister with
//! lifetime 0, wait a bounded time for the acknowledgement, delete the IKE SA, exit).
//!
//! The local addresses are handed to the engine only once the CHILD_SA for BU/BA is up,
//! so the first Binding Update is already protected (RFC 4877 §4.1). Afterwards the
//! kernel's address notifications (`watch.rs`) move the care-of address; the UDP sockets
//! (4191, IKE) are bound to it and bound again when a BU leaves from a new one, raw
//! sockets take the route's source. The data plane's outer formats: the
//! ESP tunnel-mode data SA (UDP 4500 behind a NAT, raw protocol 50 otherwise), the UDP
//! 4191 tunnel, IP-in-IP on raw sockets (`outer.rs`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ike::crypto::{Rng, SystemRng};
use mipsec::esp::natt::{self, Datagram, NATT_PORT};
use mipsec::wire::tunnel::{Outer, DSMIPV6_PORT};
use mn::engine::{AddressEvent, MobileNode};
use mn::output::{CareOf, Event, KeyingEvent};
use tokio::net::{UdpSocket, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::config::DaemonFile;
use super::dataplane::{DataPlane, Via};
use super::datasa::{spi_of, DataEsp};
use super::ipsec::{bind_udp, Ipsec};
use super::ipv6::{self, Ipv6In, V6In};
use super::outer::{ipv4_payload, RawPacket, RawSockets, PROTO_ESP, PROTO_IPIP, PROTO_IPV6};
use super::serve::{self, Query};
use super::status::{self, DriverState};
use super::watch::{self, Change};
use dsmip_daemon::mip6::RawIpv6;

mod signalling;

/// State of the main loop.
struct Daemon {
    mn: MobileNode,
    ipsec: Ipsec,
    sock: UdpSocket,
    /// The address `sock` is bound to: the care-of address of the last BU.
    bound: Ipv4Addr,
    /// The care-of address the home agent last confirmed: a movement is a change of it.
    confirmed: Option<IpAddr>,
    ha4: Ipv4Addr,
    /// `daemon.addresses` (IPv4): the only candidates when not empty.
    allowed: Vec<Ipv4Addr>,
    /// The current IPv4 care-of address candidates.
    addresses: Vec<Ipv4Addr>,
    /// The current IPv6 ones (`daemon.ipv6_care_of`), and the socket their BUs leave on.
    addresses6: Vec<Ipv6Addr>,
    raw6: Option<RawIpv6>,
    /// What the home agent sends to an IPv6 care-of address (`ipv6.rs`), and its address.
    v6in: Option<Ipv6In>,
    ha6: Ipv6Addr,
    addresses_fed: bool,
    state: DriverState,
    deregistered: bool,
    data: Option<DataPlane>,
    outer: Option<RawSockets>,
    data_esp: DataEsp,
    esp_buf: Vec<u8>,
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

/// A global IPv6 address that may be a care-of address: not the home address (which is on
/// the TUN device), not link-local, loopback or multicast.
fn usable_v6(a: Ipv6Addr, hoa: Ipv6Addr) -> bool {
    a != hoa
        && !a.is_loopback()
        && !a.is_multicast()
        && !a.is_unicast_link_local()
        && !a.is_unspecified()
}

/// The address the engine will pick: a public one first (RFC 5555 §4.4.1: no NAT).
fn preferred(addresses: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    addresses
        .iter()
        .find(|a| !a.is_private())
        .or(addresses.first())
        .copied()
}

/// The usable IPv4 addresses of a list.
fn v4_only(all: &[IpAddr]) -> Vec<Ipv4Addr> {
    all.iter()
        .filter_map(|a| match a {
            IpAddr::V4(v) if !v.is_loopback() && !v.is_unspecified() => Some(*v),
            _ => None,
        })
        .collect()
}

/// Run until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonFile) -> Result<()> {
    let d = &cfg.daemon;
    // Subscribe before reading, so no address change falls between the two.
    let (addr_tx, mut addr_rx) = mpsc::channel::<Change>(256);
    watch::start(d.tun.clone(), addr_tx)?;
    let allowed: Vec<Ipv4Addr> = v4_only(&d.addresses);
    let all = read_addresses()?;
    let addresses: Vec<Ipv4Addr> = v4_only(&all)
        .into_iter()
        .filter(|a| allowed.is_empty() || allowed.contains(a))
        .collect();
    let Some(coa) = preferred(&addresses) else {
        bail!(
            "no IPv4 address to use as care-of address (found {all:?}, daemon.addresses {:?})",
            d.addresses
        );
    };
    let hoa = cfg.mobile_node.home_address;
    let addresses6: Vec<Ipv6Addr> = all
        .iter()
        .filter_map(|a| match a {
            IpAddr::V6(v) if d.ipv6_care_of && usable_v6(*v, hoa) => Some(*v),
            _ => None,
        })
        .collect();
    let raw6 = if d.ipv6_care_of {
        Some(RawIpv6::open()?)
    } else {
        None
    };
    let (v6_tx, mut v6_rx) = mpsc::channel::<Vec<u8>>(1024);
    let skipped: Vec<&IpAddr> = all
        .iter()
        .filter(|a| a.is_ipv6() && !d.ipv6_care_of)
        .collect();
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
    // RFC 6275 §11.7.1, RFC 5555 §4.4.1: the BA (type 2 routing header) and IP-in-IPv6
    // for an IPv6 care-of address; this kernel would drop them (no CONFIG_IPV6_MIP6).
    let v6in = if d.ipv6_care_of {
        let io = Ipv6In::start(ha6, m.home_address, v6_tx)?;
        info!(table = ipv6::NFT_TABLE, ha = %ha6, "IPv6 care-of addresses: packet socket and nftables table up");
        Some(io)
    } else {
        drop(v6_tx);
        None
    };
    let sock = bind_udp(coa, m.udp_source_port).context("Binding Update socket")?;
    let ipsec = Ipsec::bind(&cfg.ipsec, coa, ha4, m.home_address, ha6).await?;
    let (tun_tx, mut tun_rx) = mpsc::channel::<Vec<u8>>(1024);
    let (raw_tx, mut raw_rx) = mpsc::channel::<RawPacket>(1024);
    let (data, outer) = match &d.tun {
        Some(name) => {
            let dp = DataPlane::start(name, d.tun_mtu, m.home_address, &d.routes, tun_tx)?;
            info!(tun = %name, mtu = d.tun_mtu, hoa = %m.home_address, "data plane: TUN device up with the home address");
            (Some(dp), Some(RawSockets::start(raw_tx)?))
        }
        None => (None, None),
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
        bound: coa,
        confirmed: None,
        ha4,
        allowed,
        addresses,
        addresses6,
        raw6,
        v6in,
        ha6,
        addresses_fed: false,
        state: DriverState::default(),
        deregistered: false,
        data,
        outer,
        data_esp: cfg.ipsec.data_esp,
        esp_buf: vec![0u8; 65_536 + 128],
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
                    // RFC 3948 §2.2: no non-ESP marker (and no keepalive) means ESP.
                    if matches!(natt::classify(&natt_buf[..n]), Ok(Datagram::Esp)) {
                        daemon.esp_in(&mut natt_buf[..n], from.ip());
                    } else {
                        daemon.ipsec.handle_ike(cfg.ipsec.natt_port, from, &natt_buf[..n]).await;
                    }
                }
            }
            Some(mut p) = raw_rx.recv() => daemon.raw_packet(&mut p),
            Some(mut p) = v6_rx.recv() => daemon.v6_packet(&mut p),
            Some(c) = addr_rx.recv() => daemon.address_change(c),
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
        if stopping.is_none() {
            daemon.want_data_sa().await;
        }
    }
    daemon.ipsec.delete().await;
    // The TUN reader may wait on a full channel: closing it lets the thread end.
    drop(tun_rx);
    drop(daemon.data.take());
    drop(v6_rx);
    // Deletes the nftables table.
    drop(daemon.v6in.take());
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
        for a in &self.addresses6 {
            let ev = AddressEvent::Added {
                addr: IpAddr::V6(*a),
                private: false,
            };
            self.mn.handle_address(now, ev);
        }
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

    /// An address came or went (netlink): the engine reselects the care-of address
    /// (RFC 5555 §4.4.1) and, when it moves, sends a BU from the new one.
    fn address_change(&mut self, c: Change) {
        let (addr, added) = match c {
            Change::Added(IpAddr::V4(a)) => (a, true),
            Change::Removed(IpAddr::V4(a)) => (a, false),
            Change::Added(IpAddr::V6(a)) => return self.address6_change(a, true),
            Change::Removed(IpAddr::V6(a)) => return self.address6_change(a, false),
        };
        let usable =
            !addr.is_loopback() && (self.allowed.is_empty() || self.allowed.contains(&addr));
        let known = self.addresses.contains(&addr);
        if !usable || added == known {
            return;
        }
        let now = Instant::now();
        if added {
            info!(addr = %addr, "address added");
            self.addresses.push(addr);
            if self.addresses_fed {
                let private = addr.is_private();
                self.mn.handle_address(
                    now,
                    AddressEvent::Added {
                        addr: IpAddr::V4(addr),
                        private,
                    },
                );
            }
        } else {
            info!(addr = %addr, "address removed");
            self.addresses.retain(|a| *a != addr);
            if self.addresses_fed {
                self.mn.handle_address(
                    now,
                    AddressEvent::Removed {
                        addr: IpAddr::V4(addr),
                    },
                );
            }
        }
        // Before the first registration the engine sends nothing: the sockets (and the
        // next IKE attempt) follow the address it would pick.
        if !self.addresses_fed {
            if let Some(a) = preferred(&self.addresses) {
                self.rebind(a);
            }
        }
    }

    /// An IPv6 address came or went: a care-of candidate with `daemon.ipv6_care_of`.
    fn address6_change(&mut self, addr: Ipv6Addr, added: bool) {
        let hoa = self.mn.config().home_address;
        if self.raw6.is_none() || !usable_v6(addr, hoa) {
            debug!(addr = %addr, "IPv6 address change ignored");
            return;
        }
        if added == self.addresses6.contains(&addr) {
            return;
        }
        info!(addr = %addr, added, "IPv6 address change");
        if added {
            self.addresses6.push(addr);
        } else {
            self.addresses6.retain(|a| *a != addr);
        }
        if self.addresses_fed {
            let ev = if added {
                AddressEvent::Added {
                    addr: IpAddr::V6(addr),
                    private: false,
                }
            } else {
                AddressEvent::Removed {
                    addr: IpAddr::V6(addr),
                }
            };
            self.mn.handle_address(Instant::now(), ev);
        }
    }

    /// Ask for the data SA when the configuration wants one for the NAT state of the last
    /// BA and none covers the current IPv4 home address (contract: a new one when it
    /// changes). Only with a data plane, and only once registered.
    async fn want_data_sa(&mut self) {
        if self.data.is_none() || self.mn.ipv6_binding().is_none() {
            return;
        }
        let Some(t) = self.mn.tunnel() else { return };
        if !self.data_esp.wanted(self.mn.nat_state().nat_detected) || self.ipsec.data_covers(t.hoa4)
        {
            return;
        }
        self.ipsec.request_data(Instant::now(), t.hoa4).await;
    }

    /// An ESP packet (from the SPI on) for the data SA, from UDP 4500 or protocol 50:
    /// decrypt and hand the inner packet to the device, which checks that its destination
    /// is a home address (contract).
    fn esp_in(&mut self, esp: &mut [u8], from: IpAddr) {
        let st = &mut self.ipsec.data_stats;
        let Some(sa) = self.ipsec.data.as_mut() else {
            st.rx_errors += 1;
            debug!(%from, spi = ?spi_of(esp), "ESP without a data SA dropped");
            return;
        };
        if spi_of(esp) != Some(sa.spi_in) {
            st.rx_errors += 1;
            debug!(%from, spi = ?spi_of(esp), "ESP with an unknown SPI dropped");
            return;
        }
        match sa.open(esp) {
            Ok(inner) => {
                st.rx_packets += 1;
                if let Some(d) = self.data.as_mut() {
                    let before = d.stats.not_ours;
                    d.inbound(&esp[inner]);
                    st.not_ours += d.stats.not_ours - before;
                }
            }
            Err(e) => {
                st.rx_errors += 1;
                debug!(%from, error = %e, "ESP packet refused");
            }
        }
    }

    /// A packet from a raw socket (protocol 4, 41 or 50): only from the home agent.
    fn raw_packet(&mut self, p: &mut RawPacket) {
        let Some((src, range)) = ipv4_payload(&p.packet) else {
            self.state.outer_dropped += 1;
            return;
        };
        if src != self.ha4 {
            self.state.outer_dropped += 1;
            debug!(%src, protocol = p.protocol, "raw packet not from the home agent dropped");
            return;
        }
        let payload = &mut p.packet[range];
        let version = payload.first().map(|b| b >> 4);
        match (p.protocol, version) {
            (PROTO_ESP, _) => self.esp_in(payload, IpAddr::V4(src)),
            // RFC 5555 §4.1: IPv4 in IPv4 is protocol 4, IPv6 in IPv4 protocol 41.
            (PROTO_IPIP, Some(4)) | (PROTO_IPV6, Some(6)) => match self.data.as_mut() {
                Some(d) => d.inbound(payload),
                None => self.state.data_dropped += 1,
            },
            _ => self.state.outer_dropped += 1,
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
        let nat = self.mn.nat_state().nat_detected;
        s.data_sa = self.ipsec.data.as_ref().map(|d| (d.spi_in, d.spi_out, nat));
        s.data_stats = self.ipsec.data_stats;
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
                Event::Keying(KeyingEvent::CareOfAddressProposed { coa, .. }) => {
                    info!(coa = %coa.ip(), "Binding Update from a new care-of address");
                    if let CareOf::V4 { addr, .. } = coa {
                        self.rebind(*addr);
                    }
                }
                // RFC 5555 §5.1, RFC 4877 §4.4: with K acknowledged the home agent moves the
                // IKE SA to the new address; an empty INFORMATIONAL from there confirms it.
                // The data SA follows by itself: its outer headers come from the sockets.
                Event::Keying(KeyingEvent::CareOfAddressConfirmed {
                    coa,
                    k_acknowledged,
                    ..
                }) => {
                    let moved = self
                        .confirmed
                        .replace(coa.ip())
                        .is_some_and(|c| c != coa.ip());
                    if !moved {
                        // The first registration: the IKE SA already runs from here.
                    } else if *k_acknowledged {
                        info!(coa = %coa.ip(), "care-of address confirmed with K: updating the IKE SA");
                        self.ipsec.liveness(Instant::now()).await;
                    } else {
                        warn!(coa = %coa.ip(), "care-of address confirmed without K: the IKE SA keeps the old address until it is renegotiated");
                    }
                }
                Event::Rejected { status } => warn!(status = status.0, "Binding Update rejected"),
                Event::BindingExpired => warn!("binding expired"),
                Event::NoRoute => warn!("no usable care-of or home agent address"),
                Event::FellBackToIpv4 { from, to } => {
                    info!(%from, %to, "no answer to three IPv6 Binding Updates: falling back to IPv4 (RFC 5555 §4.4.1)")
                }
                other => info!(event = ?other, "engine event"),
            }
        }
    }

    /// Move the BU socket and the IKE sockets to a new care-of address.
    fn rebind(&mut self, coa: Ipv4Addr) {
        if coa == self.bound {
            return;
        }
        let port = self.mn.config().udp_source_port;
        match bind_udp(coa, port) {
            Ok(s) => {
                self.sock = s;
                self.bound = coa;
                info!(%coa, "Binding Update socket bound to the new care-of address");
            }
            Err(e) => warn!(error = %e, %coa, "Binding Update socket not moved"),
        }
        self.ipsec.set_local(coa);
    }

    /// A packet the kernel routed into the TUN device: into the data SA (RFC 5555 §5.2.2)
    /// or the engine's plain tunnel (§4.1).
    async fn tun_packet(&mut self, pkt: &[u8]) {
        let t = self.mn.tunnel();
        let esp = self.ipsec.data.is_some();
        let Some(d) = self.data.as_mut() else {
            return;
        };
        let r = match d.outbound(t.as_ref(), esp, pkt) {
            None => return,
            Some(Via::Udp) => self.sock.send_to(pkt, (self.ha4, DSMIPV6_PORT)).await,
            Some(Via::IpInIp(proto)) => match &self.outer {
                Some(o) => o.send(proto, pkt, self.ha4),
                None => return,
            },
            Some(Via::Esp) => self.esp_out(pkt).await,
            Some(Via::Ip6(_)) => self.ip6_out(t.as_ref().map(|t| t.outer), pkt),
        };
        if let Err(e) = r {
            warn!(error = %e, "tunnel send failed");
        }
    }

    /// IPv4 or IPv6 in IPv6 from the care-of address to the home agent (RFC 5555 §4.1, RFC
    /// 2473), whole on the `IPPROTO_RAW` socket.
    fn ip6_out(&mut self, outer: Option<Outer>, inner: &[u8]) -> std::io::Result<usize> {
        let (Some(Outer::V6 { src, dst }), Some(raw6)) = (outer, self.raw6.as_ref()) else {
            return Ok(0);
        };
        match ipv6::encapsulate(src, dst, inner) {
            Some(p) => raw6.send(&p),
            None => Err(std::io::Error::other(
                "not an IP packet, or too long for IPv6",
            )),
        }
    }

    /// A packet from the home agent to an IPv6 care-of address (the packet socket of
    /// `ipv6.rs`, outer source already the home agent's): the BA or IP-in-IPv6. Only to
    /// one of our IPv6 care-of address candidates.
    fn v6_packet(&mut self, pkt: &mut [u8]) {
        match ipv6::classify(pkt) {
            V6In::Signalling { dst, .. } | V6In::Tunnel { dst, .. }
                if !self.addresses6.contains(&dst) =>
            {
                self.state.outer_dropped += 1;
                debug!(%dst, "IPv6 packet from the home agent to an address that is not a care-of address dropped");
            }
            V6In::Signalling { len, .. } => self.ba_v6(&mut pkt[..len]),
            // RFC 2473 §3: the inner packet goes to the device when it is for a home address.
            V6In::Tunnel { inner, .. } => match self.data.as_mut() {
                Some(d) => d.inbound(&pkt[inner]),
                None => self.state.data_dropped += 1,
            },
            V6In::Malformed(why) => {
                self.state.outer_dropped += 1;
                debug!(why, "malformed IPv6 packet from the home agent dropped");
            }
        }
    }

    /// ESP tunnel mode with the data SA: in UDP from our NAT-T socket to the home agent's
    /// 4500 when the BA reported a NAT (RFC 3948 §2.1, RFC 5555 §5.2.2), else IPv4
    /// protocol 50.
    async fn esp_out(&mut self, inner: &[u8]) -> std::io::Result<usize> {
        let Some(sa) = self.ipsec.data.as_mut() else {
            return Ok(0);
        };
        let n = match sa.seal(inner, &mut self.esp_buf) {
            Ok(n) => n,
            Err(e) => {
                self.ipsec.stats.esp_errors += 1;
                warn!(error = %e, "ESP encapsulation of a data packet failed");
                return Ok(0);
            }
        };
        self.ipsec.data_stats.tx_packets += 1;
        let esp = &self.esp_buf[..n];
        if self.mn.nat_state().nat_detected {
            self.ipsec
                .natt_socket()
                .send_to(esp, (self.ha4, NATT_PORT))
                .await
        } else {
            match &self.outer {
                Some(o) => o.send(PROTO_ESP, esp, self.ha4),
                None => Ok(0),
            }
        }
    }
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
}
