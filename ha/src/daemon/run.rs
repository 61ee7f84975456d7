//! The main loop of `dsmip-ha run`: one task owns the [`HomeAgent`] and serves, in turn,
//! UDP 4191 datagrams, the engine's timer (`poll_timeout` / `handle_timeout`), queries from
//! the control socket and the metrics endpoint, and SIGTERM/SIGINT (leases flushed, socket
//! file removed, then exit).

use std::net::SocketAddrV4;
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result};
use ha::{Event, HomeAgent, ReplyPath, Verdict};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_MH};
use tokio::net::{TcpListener, UdpSocket, UnixListener};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use super::config::DaemonFile;
use super::dataplane::DataPlane;
use super::ipsec::Ipsec;
use super::report::{self, DriverDrop, DriverStats};
use super::rx::{self, Inbound};
use super::serve::{self, Ask, Query};

/// State of the main loop.
struct Daemon {
    agent: HomeAgent,
    stats: DriverStats,
    sock: UdpSocket,
    require_ipsec: bool,
    ipsec: Option<Ipsec>,
    data: Option<DataPlane>,
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
            let responder = ip.responder(cfg.home_agent.address, &cfg.home_agent.home_prefixes)?;
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
                if let (Ok((n, from)), Some(ip)) = (r, daemon.ipsec.as_mut()) {
                    let port = ip.ike_socket().local_addr().map_or(0, |a| a.port());
                    ip.handle_ike(port, from, &ike_buf[..n]).await;
                }
            }
            r = recv_opt(daemon.ipsec.as_ref().map(Ipsec::natt_socket), &mut natt_buf) => {
                if let (Ok((n, from)), Some(ip)) = (r, daemon.ipsec.as_mut()) {
                    let port = ip.natt_socket().local_addr().map_or(0, |a| a.port());
                    ip.handle_ike(port, from, &natt_buf[..n]).await;
                }
            }
            () = sleep => {
                let now = Instant::now();
                daemon.agent.handle_timeout(now);
                daemon.drain_events();
                if let Some(ip) = daemon.ipsec.as_mut() {
                    ip.handle_timeout(now).await;
                }
            }
            Some(q) = queries.recv() => daemon.answer(q),
            Some(pkt) = tun_rx.recv() => daemon.handle_tun_packet(&pkt).await,
            _ = term.recv() => break "SIGTERM",
            _ = int.recv() => break "SIGINT",
            _ = hup.recv() => daemon.reload(&cfg, path),
        }
    };
    // The TUN reader may wait on a full channel: closing it lets the thread end.
    drop(tun_rx);
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
                report::bindings_json(&self.agent, now, &spis).to_string()
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
                self.binding_update(&ctx, mh, from, false).await;
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
                        self.binding_update(&ctx, &mh, from, true).await;
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

    /// A packet the kernel routed into the TUN device: into the UDP tunnel of its binding.
    async fn handle_tun_packet(&mut self, pkt: &[u8]) {
        let Some(dp) = self.data.as_mut() else { return };
        if let Some(to) = dp.tunnel_destination(&self.agent, pkt) {
            if let Err(e) = self.sock.send_to(pkt, to).await {
                debug!(error = %e, %to, "tunnel send failed");
            }
        }
    }

    async fn binding_update(
        &mut self,
        ctx: &ha::RxContext,
        mh: &[u8],
        from: SocketAddrV4,
        protected: bool,
    ) {
        let verdict = self.agent.handle_bu_bytes(Instant::now(), ctx, mh);
        self.drain_events();
        match verdict {
            Verdict::Reply(r) => self.send_ba(&r, protected).await,
            Verdict::Accepted => debug!(%from, "accepted, no acknowledgement asked"),
            Verdict::Dropped(reason) => info!(%from, ?reason, "Binding Update dropped"),
        }
    }

    /// RFC 5555 §4.2: the BA goes back in UDP to the address and port the BU came from.
    async fn send_ba(&mut self, r: &ha::Reply, protected: bool) {
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

    /// Data plane events: logged; acting on them (TUN, tunnels, proxy ARP/NDP, routes) is
    /// the next step of issue 8 (DAEMON.md).
    fn drain_events(&mut self) {
        while let Some(ev) = self.agent.poll_event() {
            match &ev {
                Event::BindingExpired { hoa } => info!(%hoa, "binding expired"),
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
