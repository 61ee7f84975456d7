//! IPsec for the signalling (RFC 4877, RFC 5555 §5.2.1), initiator side: the IKEv2
//! initiator (`ike` engine, PSK) towards the home agent on UDP 500 (4500 behind a NAT),
//! the transport-mode CHILD_SA with the SPD-S selectors `HoA, MH type 5` /
//! `HA, MH type 6`, and ESP on the IPv6 BU before it goes into UDP 4191; the tunnel-mode
//! data SA (RFC 5555 §5.2.2, `datasa.rs`) negotiated with CREATE_CHILD_SA on the same IKE
//! SA; the empty INFORMATIONAL after a K-flag movement (RFC 5555 §5.1, RFC 4877 §4.4).
//!
//! The IKE sockets are bound to the care-of address and bound again when it moves
//! (contract, movement), so IKE leaves from the address the engine registers whatever the
//! routing table's preferred source is at that moment.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use dsmip_daemon::child::esp_pair;
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{ChildSa, Config, Endpoint, Event, Mode, SaId};
use ike::wire::ts::TrafficSelector;
use ike::wire::ProtocolId;
use mipsec::esp::{transport, InboundSa, OutboundSa};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::config::IpsecConfig;
use super::datasa::{self, DataSa, DataSaStats};

/// A non-blocking UDP socket bound to `addr:port`, for tokio (called inside the runtime).
pub fn bind_udp(addr: Ipv4Addr, port: u16) -> Result<UdpSocket> {
    let s = std::net::UdpSocket::bind((addr, port))
        .with_context(|| format!("binding UDP {addr}:{port}"))?;
    s.set_nonblocking(true)?;
    Ok(UdpSocket::from_std(s)?)
}

/// The installed BU/BA SA pair.
pub struct SaPair {
    pub inbound: InboundSa,
    pub outbound: OutboundSa,
    pub spi_in: u32,
    pub spi_out: u32,
}

/// Counters for `status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct IpsecStats {
    pub ike_sas_up: u64,
    pub ike_failures: u64,
    pub esp_errors: u64,
}

/// The initiator, its sockets and the SA of our home address.
pub struct Ipsec {
    cfg: IpsecConfig,
    hoa: Ipv6Addr,
    ha6: Ipv6Addr,
    endpoint: Endpoint,
    local: Ipv4Addr,
    remote: SocketAddr,
    ike: UdpSocket,
    natt: UdpSocket,
    sa: Option<SaId>,
    pub nat_local: bool,
    pub pair: Option<SaPair>,
    /// When to start a new IKE SA after a failure.
    retry_at: Option<Instant>,
    pub stats: IpsecStats,
    /// The tunnel-mode data SA, and the IPv4 home address of a request in flight.
    pub data: Option<DataSa>,
    data_pending: Option<Option<Ipv4Addr>>,
    /// The IPv4 home address of a data SA the home agent refused: not asked again for it.
    data_refused: Option<Option<Ipv4Addr>>,
    pub data_stats: DataSaStats,
}

impl Ipsec {
    pub async fn bind(
        cfg: &IpsecConfig,
        local: Ipv4Addr,
        ha4: Ipv4Addr,
        hoa: Ipv6Addr,
        ha6: Ipv6Addr,
    ) -> Result<Ipsec> {
        let ike = bind_udp(local, cfg.ike_port).context("IKE socket")?;
        let natt = bind_udp(local, cfg.natt_port).context("NAT-T socket")?;
        Ok(Ipsec {
            cfg: cfg.clone(),
            hoa,
            ha6,
            endpoint: Endpoint::new(None, Box::new(SystemRng::default())),
            local,
            remote: SocketAddr::new(IpAddr::V4(ha4), cfg.remote_ike_port),
            ike,
            natt,
            sa: None,
            nat_local: false,
            pair: None,
            retry_at: Some(Instant::now()),
            stats: IpsecStats::default(),
            data: None,
            data_pending: None,
            data_refused: None,
            data_stats: DataSaStats::default(),
        })
    }

    /// The initiator configuration: transport mode, MH selectors (RFC 5555 §5.2.1 SPD-S).
    fn initiator(&self) -> Result<Config> {
        let c = &self.cfg;
        let mut k = Config::psk(&c.local_id, c.remote_id.as_deref(), c.psk.bytes());
        k.ike_proposals =
            vec![Proposal::parse(&c.ike_proposal, ProtocolId::IKE).context("ipsec.ike_proposal")?];
        k.esp_proposals =
            vec![Proposal::parse(&c.esp_proposal, ProtocolId::ESP).context("ipsec.esp_proposal")?];
        k.transport = true;
        k.ts_local = vec![TrafficSelector::mh(IpAddr::V6(self.hoa), 5)];
        k.ts_remote = vec![TrafficSelector::mh(IpAddr::V6(self.ha6), 6)];
        k.natt_port = c.natt_port;
        k.ike_port = c.ike_port;
        Ok(k)
    }

    pub fn ike_socket(&self) -> &UdpSocket {
        &self.ike
    }
    pub fn natt_socket(&self) -> &UdpSocket {
        &self.natt
    }

    pub fn established(&self) -> bool {
        self.pair.is_some()
    }

    /// The care-of address moved: the IKE sockets are bound to `coa` (the IKE SA's own
    /// addresses follow the peer's view, RFC 4877 §4.4). On failure the old ones stay.
    pub fn set_local(&mut self, coa: Ipv4Addr) {
        if coa == self.local {
            return;
        }
        let socks = bind_udp(coa, self.cfg.ike_port)
            .and_then(|i| Ok((i, bind_udp(coa, self.cfg.natt_port)?)));
        match socks {
            Ok((ike, natt)) => {
                self.ike = ike;
                self.natt = natt;
                self.local = coa;
                info!(%coa, "IKE sockets bound to the new care-of address");
            }
            Err(e) => warn!(error = %e, %coa, "IKE sockets not moved to the new care-of address"),
        }
    }

    /// Whether a data SA covering `hoa4` is installed, being negotiated, or was refused
    /// (not asked again until the IPv4 home address changes or the IKE SA is new).
    pub fn data_covers(&self, hoa4: Option<Ipv4Addr>) -> bool {
        self.data_pending.is_some()
            || self.data_refused == Some(hoa4)
            || self.data.as_ref().is_some_and(|d| d.hoa4 == hoa4)
    }

    /// Negotiate the tunnel-mode data SA (RFC 5555 §5.2.2, contract): CREATE_CHILD_SA on
    /// the IKE SA of the BU/BA SA, TSi = the home addresses, TSr = everything.
    pub async fn request_data(&mut self, now: Instant, hoa4: Option<Ipv4Addr>) {
        let Some(sa) = self.sa.filter(|_| self.pair.is_some()) else {
            return;
        };
        if self.data_pending.is_some() || self.endpoint.busy(sa) {
            return;
        }
        let esp = match Proposal::parse(&self.cfg.esp_proposal, ProtocolId::ESP) {
            Ok(p) => p,
            Err(e) => {
                warn!(error = %e, "ipsec.esp_proposal: data SA not requested");
                return;
            }
        };
        self.set_clock();
        let policy = datasa::policy(&esp, self.hoa, hoa4);
        match self.endpoint.create_child(now, sa, policy) {
            Ok(()) => {
                info!(hoa = %self.hoa, hoa4 = ?hoa4, "CREATE_CHILD_SA sent for the data SA (tunnel mode)");
                self.data_pending = Some(hoa4);
            }
            Err(e) => warn!(error = %e, "data SA not requested"),
        }
        self.flush().await;
    }

    /// After a K-flag movement the home agent follows our address; tell the IKE SA with
    /// an empty INFORMATIONAL from the new address (RFC 5555 §5.1, RFC 4877 §4.4).
    pub async fn liveness(&mut self, now: Instant) {
        let Some(sa) = self.sa else { return };
        self.set_clock();
        match self.endpoint.liveness(now, sa) {
            Ok(()) => info!("empty INFORMATIONAL sent from the new care-of address"),
            Err(e) => warn!(error = %e, "INFORMATIONAL after the movement not sent"),
        }
        self.flush().await;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.endpoint.poll_timeout(), self.retry_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Timers: the endpoint's, and starting (again) the IKE SA when it is due.
    pub async fn handle_timeout(&mut self, now: Instant) {
        self.set_clock();
        self.endpoint.handle_timeout(now);
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.start(now);
        }
        self.flush().await;
    }

    fn set_clock(&mut self) {
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.endpoint.set_unix_time(unix);
    }

    fn start(&mut self, now: Instant) {
        let local = SocketAddr::new(IpAddr::V4(self.local), self.cfg.ike_port);
        let started = self
            .initiator()
            .and_then(|c| Ok(self.endpoint.connect(now, local, self.remote, c)?));
        match started {
            Ok(sa) => {
                self.sa = Some(sa);
                info!(remote = %self.remote, id = %self.cfg.local_id, "IKE_SA_INIT sent");
            }
            Err(e) => {
                warn!(error = %e, "IKE SA could not start");
                self.retry(now);
            }
        }
    }

    fn retry(&mut self, now: Instant) {
        self.retry_at = Some(now + Duration::from_secs(self.cfg.retry_secs.max(1)));
    }

    /// An IKE datagram arrived on `local_port` from `from`.
    pub async fn handle_ike(&mut self, local_port: u16, from: SocketAddr, data: &[u8]) {
        self.set_clock();
        let local = SocketAddr::new(IpAddr::V4(self.local), local_port);
        self.endpoint
            .handle_datagram(Instant::now(), local, from, data);
        self.flush().await;
    }

    async fn flush(&mut self) {
        while let Some(t) = self.endpoint.poll_transmit() {
            let sock = if t.local_port == self.cfg.natt_port {
                &self.natt
            } else {
                &self.ike
            };
            if let Err(e) = sock.send_to(&t.data, t.remote).await {
                warn!(error = %e, to = %t.remote, "IKE send failed");
            }
        }
        while let Some(ev) = self.endpoint.poll_event() {
            self.handle_event(ev);
        }
    }

    fn handle_event(&mut self, ev: Event) {
        let now = Instant::now();
        match ev {
            Event::IkeSaUp { info, .. } => {
                self.stats.ike_sas_up += 1;
                self.nat_local = info.nat_local;
                info!(remote = %info.remote, nat_local = info.nat_local, "IKE SA up");
            }
            Event::ChildSaUp { child, .. } if child.mode == Mode::Tunnel => {
                self.install_data(&child)
            }
            // The answer to our tunnel-mode request came back in transport mode: not the
            // data SA, and it must not replace the BU/BA SA either.
            Event::ChildSaUp { child, .. }
                if self.data_pending.is_some() && self.pair.is_some() =>
            {
                warn!(
                    spi_in = format_args!("{:#x}", child.spi_in),
                    "the home agent answered the data SA request in transport mode: not used"
                );
                self.data_refused = self.data_pending.take();
                self.data_stats.failed += 1;
            }
            Event::ChildSaUp { child, .. } => self.install(&child),
            Event::ChildSaDown { spi_in, .. } => {
                if self.pair.as_ref().is_some_and(|p| p.spi_in == spi_in) {
                    info!(spi_in = format_args!("{spi_in:#x}"), "CHILD_SA removed");
                    self.pair = None;
                }
                if self.data.as_ref().is_some_and(|d| d.spi_in == spi_in) {
                    info!(spi_in = format_args!("{spi_in:#x}"), "data SA removed");
                    self.data = None;
                }
            }
            Event::ChildSaFailed { notify, .. } if self.data_pending.is_some() => {
                warn!(
                    notify,
                    "the home agent refused the data SA (CREATE_CHILD_SA)"
                );
                self.data_refused = self.data_pending.take();
                self.data_stats.failed += 1;
            }
            Event::ChildSaFailed { notify, .. } => {
                warn!(notify, "the home agent refused the CHILD_SA");
                self.stats.ike_failures += 1;
            }
            Event::IkeSaRekeyed { new, .. } => self.sa = Some(new),
            Event::IkeSaDown { sa } | Event::Failed { sa, .. } if Some(sa) == self.sa => {
                warn!("IKE SA gone; trying again");
                self.stats.ike_failures += 1;
                self.sa = None;
                self.pair = None;
                self.data = None;
                self.data_pending = None;
                self.data_refused = None;
                self.retry(now);
            }
            other => info!(event = ?other, "IKE event"),
        }
    }

    /// A tunnel-mode CHILD_SA: the data SA we asked for (it replaces an older one, which
    /// the home agent drops when the IKE SA goes; `ike` has no CHILD_SA delete yet).
    fn install_data(&mut self, child: &ChildSa) {
        let Some(hoa4) = self.data_pending.take() else {
            warn!(
                spi_in = format_args!("{:#x}", child.spi_in),
                "tunnel-mode CHILD_SA we did not ask for: not used"
            );
            return;
        };
        match DataSa::new(child, hoa4) {
            Ok(d) => {
                info!(
                    spi_in = format_args!("{:#x}", d.spi_in),
                    spi_out = format_args!("{:#x}", d.spi_out),
                    hoa4 = ?hoa4,
                    udp = child.encap.is_some(),
                    "tunnel-mode data SA up (RFC 5555 §5.2.2)"
                );
                self.data_stats.negotiated += 1;
                self.data = Some(d);
            }
            Err(e) => {
                self.data_stats.failed += 1;
                warn!(error = %e, "data SA not used");
            }
        }
    }

    fn install(&mut self, child: &ChildSa) {
        if child.mode != Mode::Transport {
            warn!(mode = ?child.mode, "CHILD_SA not used: not transport mode");
            return;
        }
        match esp_pair(child, |_| {}) {
            Ok((inbound, outbound, transform)) => {
                info!(
                    spi_in = format_args!("{:#x}", child.spi_in),
                    spi_out = format_args!("{:#x}", child.spi_out),
                    transform = transform.name(),
                    "transport-mode CHILD_SA up for BU/BA"
                );
                self.pair = Some(SaPair {
                    inbound,
                    outbound,
                    spi_in: child.spi_in,
                    spi_out: child.spi_out,
                });
            }
            Err(e) => warn!(error = %e, "CHILD_SA not used"),
        }
    }

    /// Protect an IPv6 packet (the BU) in transport mode; `None` without an SA.
    pub fn seal(&mut self, pkt: &[u8], out: &mut [u8]) -> Option<usize> {
        let pair = self.pair.as_mut()?;
        match transport::encapsulate(&mut pair.outbound, pkt, out) {
            Ok(n) => Some(n),
            Err(e) => {
                self.stats.esp_errors += 1;
                warn!(error = %e, "ESP encapsulation failed");
                None
            }
        }
    }

    /// Verify and strip ESP from an IPv6 packet in place; the range of the rebuilt packet.
    pub fn open(&mut self, pkt: &mut [u8]) -> Option<std::ops::Range<usize>> {
        let pair = self.pair.as_mut()?;
        match transport::decapsulate(&mut pair.inbound, pkt) {
            Ok((range, mipsec::esp::Inbound::Packet { .. })) => Some(range),
            Ok(_) => None,
            Err(e) => {
                self.stats.esp_errors += 1;
                info!(error = %e, "ESP packet refused");
                None
            }
        }
    }

    /// Delete the IKE SA (shutdown); the INFORMATIONAL is sent, the answer not awaited.
    pub async fn delete(&mut self) {
        if let Some(sa) = self.sa.take() {
            if let Err(e) = self.endpoint.delete(Instant::now(), sa) {
                warn!(error = %e, "IKE SA delete failed");
            }
            self.pair = None;
            self.data = None;
            self.flush().await;
        }
    }
}
