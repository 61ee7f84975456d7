//! The main loop of `dsmip-ha run`: one task owns the [`HomeAgent`] and serves, in turn,
//! UDP 4191 datagrams, the engine's timer (`poll_timeout` / `handle_timeout`), queries from
//! the control socket and the metrics endpoint, and SIGTERM/SIGINT (leases flushed, socket
//! file removed, then exit).

use std::net::{IpAddr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use ha::{Event, HomeAgent, ReplyPath, Verdict};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_ESP, IPPROTO_MH};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::config::DaemonFile;
use super::dataplane::{plain_tunnel, DataPlane, Kind, Plain};
use super::datasa::InDrop;
use super::ipsec::Ipsec;
use super::ipv6::{self, Ipv6Io, V6In};
use super::raw::{RawPacket, RawTunnels, PROTO_ESP};
use super::report::{self, DriverDrop, DriverStats};
use super::rx::{self, Inbound};
use super::serve::{self, Ask, Query};
use dsmip_daemon::net::{destination, source};

/// State of the main loop.
struct Daemon {
    agent: HomeAgent,
    stats: DriverStats,
    sock: UdpSocket,
    require_ipsec: bool,
    ipsec: Option<Ipsec>,
    data: Option<DataPlane>,
    /// Raw IPv4 sockets for IP-in-IP and ESP (with the data plane).
    raw: Option<RawTunnels>,
    /// Signalling and tunnels over native IPv6 (`daemon.listen_v6_interfaces`).
    v6: Option<Ipv6Io>,
}

/// Receive on an optional socket; pends forever without one.
async fn recv_opt(
    sock: Option<&UdpSocket>,
    buf: &mut [u8],
) -> std::io::Result<(usize, std::net::SocketAddr)> {
    match sock {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Run until SIGTERM or SIGINT.
pub async fn run(cfg: DaemonFile, path: &std::path::Path) -> Result<()> {
    let d = &cfg.daemon;
    if !d.require_ipsec {
        warn!("require_ipsec = false: Binding Updates are accepted WITHOUT IPsec (RFC 4877 §4.1 violated); lab use only");
    }
    let lease_file = d.lease_file.clone();
    let agent = HomeAgent::new(
        cfg.home_agent.clone(),
        &lease_file,
        Instant::now(),
        SystemTime::now(),
    )
    .with_context(|| {
        format!(
            "starting the engine with lease store {}",
            lease_file.display()
        )
    })?;
    info!(leases = agent.leases().count(), file = %lease_file.display(), "lease store open");
    for l in agent.leases() {
        info!(hoa = %l.hoa, ipv4 = %l.net, expires_unix = l.expires, "lease kept");
    }
    let listen = SocketAddrV4::new(cfg.listen_v4(), d.port);
    let ipsec = match &cfg.ipsec {
        Some(ip) => {
            let responder = ip.responder(&cfg.home_agent)?;
            let i = Ipsec::bind(ip, responder, cfg.listen_v4()).await?;
            info!(
                ike = ip.ike_port,
                natt = ip.natt_port,
                peers = ip.peers.len(),
                "IKEv2 responder listening"
            );
            Some(i)
        }
        None => None,
    };
    let sock = UdpSocket::bind(listen)
        .await
        .with_context(|| format!("binding UDP {listen}"))?;
    let _ = std::fs::remove_file(&d.control_socket);
    let control = UnixListener::bind(&d.control_socket)
        .with_context(|| format!("control socket {}", d.control_socket.display()))?;
    let (tun_tx, mut tun_rx) = mpsc::channel::<Vec<u8>>(1024);
    let (raw_tx, mut raw_rx) = mpsc::channel::<RawPacket>(1024);
    let data = match &d.tun {
        Some(name) => {
            let dp = DataPlane::start(
                name,
                d.tun_mtu,
                d.home_link.as_deref(),
                &cfg.home_agent,
                tun_tx,
            )?;
            info!(tun = %name, mtu = d.tun_mtu, "data plane: TUN device up, IPv4 home address space routed into it");
            Some(dp)
        }
        None => None,
    };
    // RFC 5555 §4.1 IP-in-IP and §5.2.2 raw ESP: raw IPv4 sockets, with the data plane.
    let raw = match data {
        Some(_) => {
            let r = RawTunnels::start(raw_tx)?;
            info!("data plane: raw IPv4 sockets for protocols 4, 41 and 50");
            Some(r)
        }
        None => {
            drop(raw_tx);
            None
        }
    };
    // RFC 6275 §10.3.1, RFC 5555 §4.4.1: BUs and tunnels from IPv6 care-of addresses.
    let (v6_tx, mut v6_rx) = mpsc::channel::<Vec<u8>>(1024);
    let v6 = if d.listen_v6_interfaces.is_empty() {
        drop(v6_tx);
        None
    } else {
        let io = Ipv6Io::start(&d.listen_v6_interfaces, cfg.home_agent.address, v6_tx)?;
        info!(interfaces = ?d.listen_v6_interfaces, table = ipv6::NFT_TABLE, "IPv6 transport: packet sockets and nftables table up");
        Some(io)
    };
    let (tx, mut queries) = mpsc::channel::<Query>(64);
    let control_task = tokio::spawn(serve::control(control, tx.clone()));
    let metrics_task = match d.metrics_listen {
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("metrics listener {addr}"))?;
            info!(%addr, "metrics on http://{addr}/metrics");
            Some(tokio::spawn(serve::metrics(l, tx.clone())))
        }
        None => None,
    };
    drop(tx);
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut daemon = Daemon {
        agent,
        stats: DriverStats::default(),
        sock,
        require_ipsec: d.require_ipsec,
        ipsec,
        data,
        raw,
        v6,
    };
    info!(udp = %listen, control = %d.control_socket.display(), require_ipsec = d.require_ipsec, "dsmip-ha running");
    let mut buf = vec![0u8; 65_536];
    let (mut ike_buf, mut natt_buf) = (vec![0u8; 65_536], vec![0u8; 65_536]);
    let why = loop {
        let ike_deadline = daemon.ipsec.as_ref().and_then(Ipsec::poll_timeout);
        let deadline = earliest(daemon.agent.poll_timeout(), ike_deadline);
        let sleep = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = daemon.sock.recv_from(&mut buf) => match r {
                Ok((n, std::net::SocketAddr::V4(from))) => daemon.datagram(&buf[..n], from).await,
                Ok(_) => {}
                Err(e) => warn!(error = %e, "UDP receive failed"),
            },
            r = recv_opt(daemon.ipsec.as_ref().map(Ipsec::ike_socket), &mut ike_buf) => {
                let agent = &daemon.agent;
                let v4 = |h: &Ipv6Addr| agent.binding(h).and_then(|b| b.ipv4.map(|v| v.net));
                if let (Ok((n, from)), Some(ip)) = (r, daemon.ipsec.as_mut()) {
                    let port = ip.ike_socket().local_addr().map_or(0, |a| a.port());
                    ip.handle_ike(port, from, &ike_buf[..n], &v4).await;
                }
            }
            r = recv_opt(daemon.ipsec.as_ref().map(Ipsec::natt_socket), &mut natt_buf) => {
                if let Ok((n, from)) = r {
                    daemon.natt_datagram(from, &mut natt_buf[..n]).await;
                }
            }
            () = sleep => {
                let now = Instant::now();
                daemon.agent.handle_timeout(now);
                daemon.drain_events();
                let agent = &daemon.agent;
                let v4 = |h: &Ipv6Addr| agent.binding(h).and_then(|b| b.ipv4.map(|v| v.net));
                if let Some(ip) = daemon.ipsec.as_mut() {
                    ip.handle_timeout(now, &v4).await;
                }
            }
            Some(p) = raw_rx.recv() => daemon.raw_packet(p).await,
            Some(p) = v6_rx.recv() => daemon.v6_packet(p).await,
            Some(q) = queries.recv() => daemon.answer(q),
            Some(pkt) = tun_rx.recv() => daemon.handle_tun_packet(&pkt).await,
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => daemon.reload(&cfg, path),
        }
    };
    // The TUN reader may wait on a full channel: closing it lets the thread end.
    drop(tun_rx);
    drop(raw_rx);
    drop(v6_rx);
    // Deletes the nftables table.
    drop(daemon.v6.take());
    control_task.abort();
    if let Some(t) = metrics_task {
        t.abort();
    }
    let _ = std::fs::remove_file(&d.control_socket);
    let flushed = daemon.agent.flush_leases();
    match &flushed {
        Ok(()) => info!(
            signal = why,
            leases = daemon.agent.leases().count(),
            "shutdown: leases flushed"
        ),
        Err(e) => warn!(signal = why, error = %e, "shutdown: lease flush failed"),
    }
    flushed.context("flushing leases")
}

impl Daemon {
    /// SIGHUP: re-read the file; the `[[ipsec.peer]]` table (who may register which home
    /// address) takes effect at once, other changes need a restart and are only reported.
    /// An invalid file changes nothing.
    fn reload(&mut self, running: &DaemonFile, path: &std::path::Path) {
        let new = match super::config::load(path) {
            Ok(n) => n,
            Err(e) => {
                warn!(error = %e, "SIGHUP: configuration refused, nothing changed");
                return;
            }
        };
        let peers = match (self.ipsec.as_mut(), &new.ipsec) {
            (Some(ip), Some(cfg)) => {
                ip.set_peers(&cfg.peers);
                cfg.peers.len()
            }
            _ => 0,
        };
        let same =
            |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") == format!("{b:?}");
        let restart = !same(&running.daemon, &new.daemon)
            || !same(&running.home_agent, &new.home_agent)
            || running.ipsec.is_some() != new.ipsec.is_some();
        info!(
            peers,
            restart_needed = restart,
            "SIGHUP: configuration reloaded (ipsec peers applied)"
        );
        if restart {
            warn!("SIGHUP: [daemon], [home_agent] or the presence of [ipsec] changed: restart to apply");
        }
    }

    fn answer(&self, q: Query) {
        let now = Instant::now();
        let text = match q.ask {
            Ask::Bindings => {
                let spis = |h: &std::net::Ipv6Addr| self.ipsec.as_ref().and_then(|i| i.spis(h));
                let data =
                    |h: &std::net::Ipv6Addr| self.ipsec.as_ref().and_then(|i| i.data_spis(h));
                report::bindings_json(&self.agent, now, &spis, &data).to_string()
            }
            Ask::Leases => report::leases_json(&self.agent, SystemTime::now()).to_string(),
            Ask::Metrics => {
                let ip = self.ipsec.as_ref().map(|i| &i.stats);
                let mut t = report::metrics_text(&self.agent, &self.stats, ip, now);
                if let Some(dp) = &self.data {
                    report::tunnel_metrics(&mut t, &dp.stats);
                }
                t
            }
        };
        let _ = q.reply.send(text);
    }

    async fn datagram(&mut self, buf: &[u8], from: SocketAddrV4) {
        self.stats.datagrams += 1;
        match rx::classify(buf) {
            Inbound::Mh {
                ip6,
                home_address_option,
                mh,
            } => {
                if !self.require_ipsec {
                    warn!(%from, hoa = %home_address_option.unwrap_or(ip6.src), "cleartext Binding Update accepted: require_ipsec = false");
                }
                let ctx =
                    rx::cleartext_context(from, &ip6, home_address_option, self.require_ipsec);
                self.binding_update(&ctx, mh, from.into(), false).await;
            }
            Inbound::Esp { ip6 } => {
                let mut pkt = buf.to_vec();
                let opened = self.ipsec.as_mut().and_then(|i| i.open(&mut pkt));
                let Some((n, sa)) = opened else {
                    self.stats.drop(DriverDrop::EspNoSa);
                    info!(%from, src = %ip6.src, "ESP dropped: no CHILD_SA for its SPI, or it did not verify");
                    return;
                };
                // RFC 5555 §5.2.1: after IPsec the BU reaches the home agent module with
                // the outer IPv4 source and UDP source port passed along.
                match rx::classify(&pkt[..n]) {
                    Inbound::Mh {
                        ip6,
                        home_address_option,
                        mh,
                    } => {
                        let mut ctx = rx::cleartext_context(from, &ip6, home_address_option, true);
                        ctx.sa = Some(sa);
                        let mh = mh.to_vec();
                        self.binding_update(&ctx, &mh, from.into(), true).await;
                    }
                    _ => {
                        self.stats.drop(DriverDrop::DataPlaneAbsent);
                        debug!(%from, "ESP-protected packet that is not MH: ESP for data is not handled");
                    }
                }
            }
            Inbound::Data { ipv4 } => match self.data.as_mut() {
                Some(dp) => dp.handle_tunnelled(&self.agent, from, buf),
                None => {
                    self.stats.drop(DriverDrop::DataPlaneAbsent);
                    debug!(%from, ipv4, "tunnelled data dropped: no data plane configured");
                }
            },
            Inbound::Malformed(why) => {
                self.stats.drop(DriverDrop::Malformed);
                debug!(%from, why, "malformed datagram dropped");
            }
        }
    }

    /// A packet the kernel routed into the TUN device: into its binding's data SA (RFC 5555
    /// §5.2.2) when there is one, else into the binding's plain tunnel (§4.1).
    async fn handle_tun_packet(&mut self, pkt: &[u8]) {
        let Some(dp) = self.data.as_mut() else { return };
        let route = destination(pkt).and_then(|d| self.agent.route(Instant::now(), d));
        let Some(route) = route else {
            dp.stats.no_route += 1;
            return;
        };
        if let Some(ip) = self.ipsec.as_mut() {
            // ESP adds at most 8 (header) + 16 (IV) + 17 (padding, trailer) + 16 (ICV).
            let mut esp = vec![0u8; pkt.len() + 64];
            if let Some((n, peer)) = ip.data.seal(&route.hoa, pkt, &mut esp) {
                let b = self.agent.binding(&route.hoa);
                // Behind a NAT: UDP 4500 to the NAT's mapping; else raw ESP to the CoA.
                let sent = match b.map(|b| (b.nat, b.coa)) {
                    Some((true, _)) => ip
                        .natt_socket()
                        .send_to(&esp[..n], peer)
                        .await
                        .map(|_| Kind::EspUdp),
                    Some((false, IpAddr::V4(coa))) => match self.raw.as_ref() {
                        Some(r) => r.send(PROTO_ESP, &esp[..n], coa).map(|_| Kind::Esp),
                        None => Err(std::io::Error::other("no raw sockets")),
                    },
                    // An IPv6 care-of address: IPv6 / ESP from the home agent address.
                    Some((false, IpAddr::V6(coa))) => {
                        let ha6 = self.agent.config().address;
                        match (
                            self.v6.as_ref(),
                            ipv6::outer_packet(ha6, coa, IPPROTO_ESP, &esp[..n]),
                        ) {
                            (Some(io), Some(o)) => io.send(&o).map(|_| Kind::Esp),
                            _ => Err(std::io::Error::other("no IPv6 transport")),
                        }
                    }
                    None => Err(std::io::Error::other("no binding")),
                };
                dp.stats.sent(sent, pkt.len(), &route.hoa, "ESP");
                return;
            }
        }
        if let Some((src, dst)) = ipv6::plain_tunnel_v6(&route) {
            let sent = match (self.v6.as_ref(), ipv6::encapsulate(src, dst, pkt)) {
                (Some(io), Some(outer)) => io.send(&outer).map(|_| Kind::Ip6Ip),
                (None, _) => Err(std::io::Error::other(
                    "no IPv6 transport (listen_v6_interfaces)",
                )),
                (_, None) => Err(std::io::Error::other("not an IP packet or too long")),
            };
            dp.stats.sent(sent, pkt.len(), &route.hoa, "IPv6 tunnel");
            return;
        }
        let sent = match plain_tunnel(&route, pkt) {
            Some(Plain::Udp(to)) => self.sock.send_to(pkt, to).await.map(|_| Kind::Udp4191),
            Some(Plain::IpIp { protocol, dst }) => match self.raw.as_ref() {
                Some(r) => r.send(protocol, pkt, dst).map(|_| Kind::IpIp),
                None => Err(std::io::Error::other("no raw sockets")),
            },
            None => Err(std::io::Error::other("no tunnel for this binding")),
        };
        dp.stats.sent(sent, pkt.len(), &route.hoa, "tunnel");
    }

    /// A datagram on the NAT-T port: IKE (non-ESP marker) and keepalives go to the IKE
    /// engine, ESP (RFC 3948 §2.2: a non-zero SPI first) to the data SAs.
    async fn natt_datagram(&mut self, from: SocketAddr, buf: &mut [u8]) {
        let esp = matches!(
            mipsec::esp::natt::classify(buf),
            Ok(mipsec::esp::natt::Datagram::Esp)
        );
        if esp {
            self.data_esp(buf, Some(from), Kind::EspUdp);
            return;
        }
        let agent = &self.agent;
        let v4 = |h: &Ipv6Addr| agent.binding(h).and_then(|b| b.ipv4.map(|v| v.net));
        if let Some(ip) = self.ipsec.as_mut() {
            let port = ip.natt_socket().local_addr().map_or(0, |a| a.port());
            ip.handle_ike(port, from, buf, &v4).await;
        }
    }

    /// A packet from the raw sockets: ESP (protocol 50) or IP-in-IP (4, 41).
    async fn raw_packet(&mut self, mut p: RawPacket) {
        if p.protocol == PROTO_ESP {
            self.data_esp(&mut p.payload, None, Kind::Esp);
        } else if let Some(dp) = self.data.as_mut() {
            dp.handle_ipip(&self.agent, p.protocol, p.src, &p.payload);
        }
    }

    /// A packet from the IPv6 packet sockets: a BU (RFC 6275 §10.3.1: `IPv6 (CoA -> HA) /
    /// Destination Options (HoA) / ESP / MH`) or an IP-in-IPv6 tunnel packet.
    async fn v6_packet(&mut self, mut pkt: Vec<u8>) {
        // RFC 5555 §5.2.2 over an IPv6 care-of address: `IPv6 / ESP` under a data SA.
        if let Some(esp) = ipv6::data_esp(&mut pkt) {
            let spi = esp
                .get(..4)
                .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]));
            let data =
                spi.is_some_and(|spi| self.ipsec.as_ref().is_some_and(|ip| ip.data.has_spi(spi)));
            if data {
                self.data_esp(esp, None, Kind::Esp);
                return;
            }
        }
        match ipv6::classify(&pkt) {
            V6In::Tunnel {
                protocol,
                src,
                inner,
            } => match self.data.as_mut() {
                Some(dp) => dp.handle_ip6ip(&self.agent, protocol, src, inner),
                None => self.stats.drop(DriverDrop::DataPlaneAbsent),
            },
            V6In::Signalling(s) => {
                let n = s.len();
                pkt.truncate(n);
                self.v6_signalling(pkt).await;
            }
            V6In::Malformed(why) => {
                self.stats.drop(DriverDrop::Malformed);
                debug!(why, "malformed IPv6 packet dropped");
            }
        }
    }

    async fn v6_signalling(&mut self, mut pkt: Vec<u8>) {
        self.stats.datagrams += 1;
        let (n, sa) = match rx::classify(&pkt) {
            Inbound::Esp { ip6 } => {
                let opened = self.ipsec.as_mut().and_then(|i| i.open(&mut pkt));
                let Some((n, sa)) = opened else {
                    self.stats.drop(DriverDrop::EspNoSa);
                    info!(src = %ip6.src, "IPv6 ESP dropped: no CHILD_SA for its SPI, or it did not verify");
                    return;
                };
                (n, Some(sa))
            }
            _ => (pkt.len(), None),
        };
        match rx::classify(&pkt[..n]) {
            Inbound::Mh {
                ip6,
                home_address_option,
                mh,
            } => {
                if sa.is_none() && !self.require_ipsec {
                    warn!(coa = %ip6.src, "cleartext Binding Update over IPv6 accepted: require_ipsec = false");
                }
                let ctx = ipv6::context(&ip6, home_address_option, sa, self.require_ipsec);
                let from = SocketAddr::new(IpAddr::V6(ip6.src), 0);
                let mh = mh.to_vec();
                self.binding_update(&ctx, &mh, from, sa.is_some()).await;
            }
            Inbound::Malformed(why) => {
                self.stats.drop(DriverDrop::Malformed);
                debug!(why, "malformed IPv6 signalling packet dropped");
            }
            _ => {
                self.stats.drop(DriverDrop::DataPlaneAbsent);
                debug!("IPv6 packet to the home agent that is neither MH nor a tunnel: not served");
            }
        }
    }

    /// RFC 6275 §9.5.4, RFC 5555 §4.4.1: the BA to an IPv6 care-of address, with a type 2
    /// routing header and, for a protected BU, ESP after it (RFC 4877 §4.1).
    fn send_ba_v6(&mut self, r: &ha::Reply, dst: Ipv6Addr, protected: bool) {
        let Some(clear) = ipv6::ba_packet(r, dst) else {
            self.stats.drop(DriverDrop::SendFailed);
            warn!(hoa = %r.hoa, "Binding Acknowledgement does not encode");
            return;
        };
        let mut sealed = vec![0u8; clear.len() + 64];
        let wire: &[u8] = if protected {
            match self
                .ipsec
                .as_mut()
                .and_then(|i| i.seal(&r.hoa, &clear, &mut sealed))
            {
                Some(m) => &sealed[..m],
                None => {
                    self.stats.drop(DriverDrop::SendFailed);
                    warn!(hoa = %r.hoa, "no outbound SA for the BA: not sent");
                    return;
                }
            }
        } else {
            &clear
        };
        let status = match r.ba.message {
            mipsec::wire::MhMessage::BindingAck { status, .. } => status.0,
            _ => 255,
        };
        let sent = match self.v6.as_ref() {
            Some(io) => io.send(wire),
            None => Err(std::io::Error::other("no IPv6 transport")),
        };
        match sent {
            Ok(_) => {
                *self.stats.ba_by_status.entry(status).or_default() += 1;
                info!(hoa = %r.hoa, to = %dst, status, esp = protected, "Binding Acknowledgement sent over IPv6 (type 2 routing header)");
            }
            Err(e) => {
                self.stats.drop(DriverDrop::SendFailed);
                warn!(error = %e, to = %dst, "Binding Acknowledgement not sent over IPv6");
            }
        }
    }

    /// Tunnel-mode ESP from a mobile node (RFC 5555 §5.2.2): open with its data SA, then
    /// the inner source must be a home address of that SA whose binding is live.
    fn data_esp(&mut self, esp: &mut [u8], udp_from: Option<SocketAddr>, kind: Kind) {
        let (Some(ip), Some(dp)) = (self.ipsec.as_mut(), self.data.as_mut()) else {
            self.stats.drop(DriverDrop::DataPlaneAbsent);
            return;
        };
        match ip.data.open(esp, udp_from) {
            Ok((hoa, r)) => {
                let inner = &esp[r];
                let live = source(inner)
                    .and_then(|s| self.agent.route(Instant::now(), s))
                    .is_some_and(|rt| rt.hoa == hoa);
                if live {
                    dp.deliver(kind, inner);
                } else {
                    dp.stats.spoofed += 1;
                }
            }
            Err(InDrop::UnknownSpi) => ip.stats.esp_unknown_spi += 1,
            Err(InDrop::Spoofed) => dp.stats.spoofed += 1,
            Err(why) => {
                ip.stats.esp_errors += 1;
                debug!(?why, ?udp_from, "data ESP dropped");
            }
        }
    }

    async fn binding_update(
        &mut self,
        ctx: &ha::RxContext,
        mh: &[u8],
        from: SocketAddr,
        protected: bool,
    ) {
        let verdict = self.agent.handle_bu_bytes(Instant::now(), ctx, mh);
        // RFC 4877 §4.4: a protected BU with K accepted: the IKE SA follows the peer.
        let hoa = ctx.home_address();
        let k = self.agent.binding(&hoa).is_some_and(|b| {
            b.flags.has(mipsec::wire::BuFlags::K) && self.agent.config().key_management_mobility
        });
        if let (true, true, Some(ip)) = (protected, k, self.ipsec.as_mut()) {
            ip.follow_k(&hoa);
        }
        self.drain_events();
        match verdict {
            Verdict::Reply(r) => self.send_ba(&r, protected).await,
            Verdict::Accepted => debug!(%from, "accepted, no acknowledgement asked"),
            Verdict::Dropped(reason) => info!(%from, ?reason, "Binding Update dropped"),
        }
    }

    /// RFC 5555 §4.2: the BA goes back in UDP to the address and port the BU came from.
    async fn send_ba(&mut self, r: &ha::Reply, protected: bool) {
        if let ReplyPath::Ipv6 { dst } = r.path {
            self.send_ba_v6(r, dst, protected);
            return;
        }
        let ReplyPath::Udp { dst, dst_port, .. } = r.path else {
            // A BU that came in UDP is always answered in UDP; nothing else reaches here.
            self.stats.drop(DriverDrop::SendFailed);
            warn!(path = ?r.path, "reply path other than UDP: not sent");
            return;
        };
        let mut pkt = [0u8; 2048];
        let Ok(n) = r.emit_mh(&mut pkt[Ipv6Repr::HEADER_LEN..]) else {
            self.stats.drop(DriverDrop::SendFailed);
            warn!(hoa = %r.hoa, "Binding Acknowledgement does not encode");
            return;
        };
        let ip6 = Ipv6Repr {
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            payload_len: n as u16,
            next_header: IPPROTO_MH,
            hop_limit: 64,
            src: r.src,
            dst: r.hoa,
        };
        if ip6.emit(&mut pkt).is_err() {
            self.stats.drop(DriverDrop::SendFailed);
            return;
        }
        let mut sealed = [0u8; 2048];
        let len = Ipv6Repr::HEADER_LEN + n;
        // RFC 4877 §4.1: a BA answering a protected BU goes out under the same SA's peer.
        let wire: &[u8] = if protected {
            match self
                .ipsec
                .as_mut()
                .and_then(|i| i.seal(&r.hoa, &pkt[..len], &mut sealed))
            {
                Some(m) => &sealed[..m],
                None => {
                    self.stats.drop(DriverDrop::SendFailed);
                    warn!(hoa = %r.hoa, "no outbound SA for the BA: not sent");
                    return;
                }
            }
        } else {
            &pkt[..len]
        };
        let status = match r.ba.message {
            mipsec::wire::MhMessage::BindingAck { status, .. } => status.0,
            _ => 255,
        };
        match self.sock.send_to(wire, (dst, dst_port)).await {
            Ok(_) => {
                *self.stats.ba_by_status.entry(status).or_default() += 1;
                info!(hoa = %r.hoa, to = %format!("{dst}:{dst_port}"), status, esp = protected, "Binding Acknowledgement sent");
            }
            Err(e) => {
                self.stats.drop(DriverDrop::SendFailed);
                warn!(error = %e, to = %format!("{dst}:{dst_port}"), "Binding Acknowledgement not sent");
            }
        }
    }

    /// The engine's events: each is logged and, with a data plane, applied to the kernel
    /// (routes into the TUN device, proxy NDP/ARP on the home link, through netlink); an
    /// expired binding is only logged (its removal events follow from the engine).
    fn drain_events(&mut self) {
        while let Some(ev) = self.agent.poll_event() {
            match &ev {
                Event::BindingExpired { hoa } => info!(%hoa, "binding expired"),
                // RFC 6275 §11.7.1, RFC 4877 §4.4: the IKE SA follows a K-flag binding.
                Event::CareOfChanged { hoa, .. } => {
                    let peer = self.agent.binding(hoa).map(|b| b.peer);
                    match (self.ipsec.as_mut(), peer) {
                        // IKE is served over IPv4 only: an IPv6 care-of address cannot
                        // carry it, so the IKE SA stays where it is.
                        (Some(_), Some(IpAddr::V6(coa))) => {
                            info!(%hoa, %coa, "IKE SA not moved: the care-of address is IPv6 and IKE runs over IPv4")
                        }
                        (Some(ip), Some(peer)) => ip.move_peer(hoa, peer),
                        _ => {}
                    }
                }
                other => match self.data.as_mut() {
                    Some(dp) => match dp.apply(other) {
                        Ok(()) => info!(event = ?other, "data plane event applied"),
                        Err(e) => {
                            warn!(event = ?other, error = %format!("{e:#}"), "data plane event failed")
                        }
                    },
                    None => {
                        info!(event = ?other, "data plane event (not applied: no data plane configured)")
                    }
                },
            }
        }
    }
}
