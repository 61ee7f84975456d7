//! IPsec for the signalling (RFC 4877, RFC 5555 §5.2.1), initiator side: the IKEv2
//! initiator (`ike` engine, PSK) towards the home agent on UDP 500 (4500 behind a NAT),
//! the transport-mode CHILD_SA with the SPD-S selectors `HoA, MH type 5` /
//! `HA, MH type 6`, and ESP on the IPv6 BU before it goes into UDP 4191.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{ChildSa, Config, Endpoint, Event, Mode, SaId};
use ike::wire::ts::TrafficSelector;
use ike::wire::ProtocolId;
use mipsec::esp::{transport, InboundSa, OutboundSa, SaConfig, Transform};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::config::IpsecConfig;

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
}

impl Ipsec {
    pub async fn bind(
        cfg: &IpsecConfig,
        local: Ipv4Addr,
        ha4: Ipv4Addr,
        hoa: Ipv6Addr,
        ha6: Ipv6Addr,
    ) -> Result<Ipsec> {
        let ike = UdpSocket::bind((local, cfg.ike_port))
            .await
            .with_context(|| format!("binding IKE UDP {local}:{}", cfg.ike_port))?;
        let natt = UdpSocket::bind((local, cfg.natt_port))
            .await
            .with_context(|| format!("binding NAT-T UDP {local}:{}", cfg.natt_port))?;
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
            Event::ChildSaUp { child, .. } => self.install(&child),
            Event::ChildSaDown { spi_in, .. } => {
                if self.pair.as_ref().is_some_and(|p| p.spi_in == spi_in) {
                    info!(spi_in = format_args!("{spi_in:#x}"), "CHILD_SA removed");
                    self.pair = None;
                }
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
                self.retry(now);
            }
            other => info!(event = ?other, "IKE event"),
        }
    }

    fn install(&mut self, child: &ChildSa) {
        if child.mode != Mode::Transport {
            warn!(mode = ?child.mode, "CHILD_SA not used: not transport mode");
            return;
        }
        let Some(transform) = Transform::from_name(&child.proposal.name()) else {
            warn!(proposal = %child.proposal.name(), "CHILD_SA not used: ESP transform not supported");
            return;
        };
        let keymat = |enc: &[u8], auth: &[u8]| [enc, auth].concat();
        let inb = InboundSa::new(
            SaConfig::new(child.spi_in, transform),
            &keymat(child.keys.enc_in.expose(), child.keys.auth_in.expose()),
        );
        let out = OutboundSa::new(
            SaConfig::new(child.spi_out, transform),
            &keymat(child.keys.enc_out.expose(), child.keys.auth_out.expose()),
        );
        match (inb, out) {
            (Ok(inbound), Ok(outbound)) => {
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
            _ => warn!("CHILD_SA not used: key length does not fit the transform"),
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
            self.flush().await;
        }
    }
}
