//! IPsec for the signalling (RFC 4877, RFC 5555 §5.2.1): the IKEv2 responder (`ike`
//! engine) on UDP 500 and 4500 with a pre-shared key, the transport-mode CHILD_SAs it brings
//! up, and ESP on Binding Updates and Acknowledgements carried as
//! `IPv4 / UDP 4191 / IPv6 (HoA -> HA) / ESP / MH` (RFC 5555 §5.2.1).
//!
//! A CHILD_SA is installed only in transport mode, for a peer whose IKE identity is listed
//! in `[[ipsec.peer]]`, and only when its remote traffic selector is exactly that peer's
//! home address (RFC 4877 §4.3: the SA is bound to one home address). The home address
//! a BU is checked against is the one of the SA that opened it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use anyhow::{Context, Result};
use dsmip_daemon::child::esp_pair;
use dsmip_daemon::psk::Psk;
use ha::SaInfo;
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{ChildPolicy, ChildSa, Config, Endpoint, Event, Mode, SaId};
use ike::wire::payload::IdRepr;
use ike::wire::ts::TrafficSelector;
use ike::wire::ProtocolId;
use mipsec::esp::{transport, InboundSa, OutboundSa};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_DSTOPTS, IPPROTO_ESP};
use serde::Deserialize;
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::datasa::{check, DataSas, Refusal};

/// `[ipsec]`: the IKEv2 responder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpsecConfig {
    /// Our IKE identity (strongSwan syntax: address, `@fqdn`, `user@host`).
    pub local_id: String,
    pub psk: Psk,
    #[serde(default = "default_ike_proposal")]
    pub ike_proposal: String,
    #[serde(default = "default_esp_proposal")]
    pub esp_proposal: String,
    #[serde(default = "default_ike_port")]
    pub ike_port: u16,
    #[serde(default = "default_natt_port")]
    pub natt_port: u16,
    /// Who may register which home address.
    #[serde(default, rename = "peer")]
    pub peers: Vec<PeerConfig>,
}

/// One mobile node: its IKE identity and the IPv6 home address that identity owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    pub id: String,
    pub home_address: Ipv6Addr,
}

fn default_ike_proposal() -> String {
    "aes128gcm16-prfsha256-x25519".into()
}
fn default_esp_proposal() -> String {
    "aes128gcm16".into()
}
fn default_ike_port() -> u16 {
    500
}
fn default_natt_port() -> u16 {
    4500
}

impl IpsecConfig {
    /// The responder configuration: transport mode, the HA's address with MH as our
    /// selector, any address of the home prefixes as the peer's (narrowed to the HoA);
    /// and, in CREATE_CHILD_SA, the data SA of RFC 5555 §5.2.2: tunnel mode, everything
    /// (::/0, 0.0.0.0/0) on our side, the home prefixes and IPv4 home address space on the
    /// peer's (narrowed to its home addresses; `datasa::check` decides per identity).
    pub fn responder(&self, ha_cfg: &ha::HaConfig) -> Result<Config> {
        let (ha, home_prefixes) = (ha_cfg.address, &ha_cfg.home_prefixes);
        let mut c = Config::psk(&self.local_id, None, self.psk.bytes());
        c.ike_proposals =
            vec![Proposal::parse(&self.ike_proposal, ProtocolId::IKE)
                .context("ipsec.ike_proposal")?];
        c.esp_proposals =
            vec![Proposal::parse(&self.esp_proposal, ProtocolId::ESP)
                .context("ipsec.esp_proposal")?];
        c.transport = true;
        c.ts_local = vec![TrafficSelector::prefix(IpAddr::V6(ha), 128)];
        c.ts_remote = home_prefixes
            .iter()
            .map(|p| TrafficSelector::prefix(IpAddr::V6(p.network()), p.prefix_len()))
            .collect();
        let v4 = ha_cfg.ipv4_pools.iter().map(|p| p.range).chain(
            ha_cfg
                .mobile_nodes
                .iter()
                .filter_map(|m| m.ipv4_home_address),
        );
        let mut data_remote = c.ts_remote.clone();
        data_remote
            .extend(v4.map(|n| TrafficSelector::prefix(IpAddr::V4(n.network()), n.prefix_len())));
        c.extra_children = vec![ChildPolicy {
            esp_proposals: c.esp_proposals.clone(),
            ts_local: vec![
                TrafficSelector::prefix(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
                TrafficSelector::prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            ],
            ts_remote: data_remote,
            transport: false,
        }];
        c.ike_port = self.ike_port;
        c.natt_port = self.natt_port;
        Ok(c)
    }
}

/// Counters for the metrics.
#[derive(Debug, Default, Clone)]
pub struct IpsecStats {
    pub ike_sas_up: u64,
    pub child_sas_installed: u64,
    pub child_sas_refused: u64,
    pub child_sas_removed: u64,
    /// IKE SAs held now (gauge).
    pub ike_sas: u64,
    pub esp_errors: u64,
    pub esp_unknown_spi: u64,
    /// Data SAs (tunnel mode, RFC 5555 §5.2.2).
    pub data_sas_installed: u64,
    pub data_sas_refused: u64,
    pub data_sas_removed: u64,
    /// IKE SAs moved to a K-flag binding's new care-of address, or following an
    /// authenticated IKE message from a new address (RFC 4877 §4.4).
    pub ike_peer_moves: u64,
    /// Data SAs installed now (gauge).
    pub data_sas: u64,
}

/// The IPv4 home address (or prefix) of a home address's binding, for data SA checks.
pub type V4Of<'a> = &'a dyn Fn(&Ipv6Addr) -> Option<ipnet::Ipv4Net>;

/// The responder, its sockets and the installed transport-mode SAs.
pub struct Ipsec {
    endpoint: Endpoint,
    local_v4: Ipv4Addr,
    ike: UdpSocket,
    natt: UdpSocket,
    peers: HashMap<IdRepr, Ipv6Addr>,
    /// Inbound SPI -> SA, the home address it authenticates, the IKE SA it belongs to.
    inbound: HashMap<u32, (InboundSa, Ipv6Addr, SaId)>,
    outbound: HashMap<Ipv6Addr, OutboundSa>,
    /// Tunnel-mode data SAs (RFC 5555 §5.2.2).
    pub data: DataSas,
    pub stats: IpsecStats,
}

impl Ipsec {
    pub async fn bind(cfg: &IpsecConfig, responder: Config, local_v4: Ipv4Addr) -> Result<Ipsec> {
        let ike = UdpSocket::bind((local_v4, cfg.ike_port))
            .await
            .with_context(|| format!("binding IKE UDP {local_v4}:{}", cfg.ike_port))?;
        let natt = UdpSocket::bind((local_v4, cfg.natt_port))
            .await
            .with_context(|| format!("binding NAT-T UDP {local_v4}:{}", cfg.natt_port))?;
        let peers = cfg
            .peers
            .iter()
            .map(|p| (IdRepr::from_text(&p.id), p.home_address))
            .collect();
        Ok(Ipsec {
            endpoint: Endpoint::new(Some(responder), Box::new(SystemRng::default())),
            local_v4,
            ike,
            natt,
            peers,
            inbound: HashMap::new(),
            outbound: HashMap::new(),
            data: DataSas::default(),
            stats: IpsecStats::default(),
        })
    }

    /// Replace the identity -> home address table (SIGHUP). Installed SAs stay: they were
    /// checked when they came up.
    pub fn set_peers(&mut self, peers: &[PeerConfig]) {
        self.peers = peers
            .iter()
            .map(|p| (IdRepr::from_text(&p.id), p.home_address))
            .collect();
    }

    pub fn ike_socket(&self) -> &UdpSocket {
        &self.ike
    }
    pub fn natt_socket(&self) -> &UdpSocket {
        &self.natt
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.endpoint.poll_timeout()
    }

    pub async fn handle_timeout(&mut self, now: Instant, v4_of: V4Of<'_>) {
        self.endpoint.handle_timeout(now);
        self.flush(v4_of).await;
    }

    /// An IKE datagram arrived on `local_port` from `from`.
    pub async fn handle_ike(
        &mut self,
        local_port: u16,
        from: SocketAddr,
        data: &[u8],
        v4_of: V4Of<'_>,
    ) {
        let local = SocketAddr::new(IpAddr::V4(self.local_v4), local_port);
        self.endpoint
            .handle_datagram(Instant::now(), local, from, data);
        self.flush(v4_of).await;
    }

    async fn flush(&mut self, v4_of: V4Of<'_>) {
        while let Some(t) = self.endpoint.poll_transmit() {
            let sock = if t.local_port == self.natt.local_addr().map_or(0, |a| a.port()) {
                &self.natt
            } else {
                &self.ike
            };
            if let Err(e) = sock.send_to(&t.data, t.remote).await {
                warn!(error = %e, to = %t.remote, "IKE send failed");
            }
        }
        while let Some(ev) = self.endpoint.poll_event() {
            match ev {
                Event::IkeSaUp { info, .. } => {
                    self.stats.ike_sas_up += 1;
                    info!(remote = %info.remote, nat_remote = info.nat_remote, "IKE SA up");
                }
                Event::ChildSaUp { sa, child } => {
                    let id = self.endpoint.info(sa).map(|i| i.remote_id.clone());
                    if child.mode == Mode::Tunnel {
                        self.install_data(sa, id, &child, v4_of);
                    } else {
                        self.install(sa, id, &child);
                    }
                }
                Event::ChildSaDown { spi_in, .. } => self.remove(|spi, _| spi == spi_in),
                Event::IkeSaRekeyed { old, new, .. } => {
                    for (_, _, owner) in self.inbound.values_mut() {
                        if *owner == old {
                            *owner = new;
                        }
                    }
                    self.data.rekeyed(old, new);
                }
                Event::IkeSaDown { sa } => self.remove(|_, owner| owner == sa),
                Event::Failed { sa, reason } => {
                    info!(?reason, "IKE SA failed");
                    self.remove(|_, owner| owner == sa);
                }
                Event::PeerAddressChanged { sa, remote } => {
                    // RFC 4877 §4.4 / RFC 7296 §2.23: ESP in UDP follows the IKE SA.
                    self.stats.ike_peer_moves += 1;
                    self.data.peer_moved(sa, remote);
                    info!(%remote, "IKE SA follows its peer to a new address");
                }
                other => info!(event = ?other, "IKE event"),
            }
        }
        self.stats.ike_sas = self.endpoint.len() as u64;
        self.stats.data_sas = self.data.len() as u64;
    }

    /// Remove the SAs matching `gone(spi_in, ike_sa)` and the outbound SAs of their home
    /// addresses; a BU under them is then dropped (`esp_no_sa`).
    fn remove(&mut self, gone: impl Fn(u32, SaId) -> bool + Copy) {
        for (hoa, (spi_in, spi_out)) in self.data.remove(gone) {
            self.stats.data_sas_removed += 1;
            info!(%hoa, spi_in = format_args!("{spi_in:#x}"), spi_out = format_args!("{spi_out:#x}"), "data SA removed");
        }
        let dead: Vec<(u32, Ipv6Addr)> = self
            .inbound
            .iter()
            .filter(|(spi, (_, _, owner))| gone(**spi, *owner))
            .map(|(spi, (_, hoa, _))| (*spi, *hoa))
            .collect();
        for (spi, hoa) in dead {
            self.inbound.remove(&spi);
            self.outbound.remove(&hoa);
            self.stats.child_sas_removed += 1;
            info!(%hoa, spi_in = format_args!("{spi:#x}"), "CHILD_SA removed");
        }
    }

    /// Install a CHILD_SA for BU/BA if it is transport mode and its remote selector is
    /// exactly the home address its identity owns (RFC 4877 §4.3).
    fn install(&mut self, sa: SaId, id: Option<IdRepr>, child: &ChildSa) {
        let hoa = id.as_ref().and_then(|i| self.peers.get(i)).copied();
        let ts_hoa = match child.ts_remote.as_slice() {
            [ts] if ts.start_addr == ts.end_addr => Some(ts.start_addr),
            _ => None,
        };
        let ok = child.mode == Mode::Transport && hoa.is_some() && ts_hoa == hoa.map(IpAddr::V6);
        let (Some(hoa), true) = (hoa, ok) else {
            self.stats.child_sas_refused += 1;
            warn!(spi_in = format_args!("{:#x}", child.spi_in), mode = ?child.mode, ?ts_hoa, "CHILD_SA not installed: not transport mode, unknown identity, or selector is not the identity's home address");
            return;
        };
        match esp_pair(child, |_| {}) {
            Ok((i, o, transform)) => {
                self.inbound.retain(|_, (_, h, _)| *h != hoa);
                self.inbound.insert(child.spi_in, (i, hoa, sa));
                self.outbound.insert(hoa, o);
                self.stats.child_sas_installed += 1;
                info!(%hoa, spi_in = format_args!("{:#x}", child.spi_in), spi_out = format_args!("{:#x}", child.spi_out), transform = transform.name(), "transport-mode CHILD_SA installed for BU/BA");
            }
            Err(e) => {
                self.stats.child_sas_refused += 1;
                warn!(error = %e, "CHILD_SA not installed");
            }
        }
    }

    /// Install a tunnel-mode data SA (RFC 5555 §5.2.2) if `datasa::check` allows it.
    fn install_data(&mut self, sa: SaId, id: Option<IdRepr>, child: &ChildSa, v4_of: V4Of<'_>) {
        let hoa = id.as_ref().and_then(|i| self.peers.get(i)).copied();
        let checked = check(child, hoa, hoa.and_then(|h| v4_of(&h)));
        let res = match (checked, hoa) {
            (Ok(homes), Some(hoa)) => self
                .data
                .install(hoa, sa, child, homes)
                .map(|old| (hoa, old)),
            (Err(e), _) => Err(e),
            (Ok(_), None) => Err(Refusal::UnknownIdentity),
        };
        match res {
            Ok((hoa, old)) => {
                self.stats.data_sas_installed += 1;
                if old.is_some() {
                    self.stats.data_sas_removed += 1;
                }
                info!(%hoa, spi_in = format_args!("{:#x}", child.spi_in), spi_out = format_args!("{:#x}", child.spi_out), udp = child.encap.is_some(), replaced = ?old, "tunnel-mode data SA installed");
            }
            Err(e) => {
                self.stats.data_sas_refused += 1;
                let ts: Vec<String> = child
                    .ts_remote
                    .iter()
                    .map(|t| format!("{}-{}", t.start_addr, t.end_addr))
                    .collect();
                warn!(spi_in = format_args!("{:#x}", child.spi_in), id = ?id, ?ts, reason = e.reason(), "data SA not installed");
            }
        }
    }

    /// The IKE SA that brought up the signalling SA of `hoa`.
    fn owner_of(&self, hoa: &Ipv6Addr) -> Option<SaId> {
        self.inbound
            .values()
            .find(|(_, h, _)| h == hoa)
            .map(|(_, _, o)| *o)
    }

    /// A BU with K was accepted for `hoa` (RFC 4877 §4.4): its IKE SA follows
    /// authenticated messages from any new address from now on.
    pub fn follow_k(&mut self, hoa: &Ipv6Addr) {
        if let Some(o) = self.owner_of(hoa) {
            let _ = self.endpoint.follow_peer(o, true);
        }
    }

    /// A K-flag binding moved to `ip` (RFC 6275 §11.7.1, RFC 4877 §4.4): the IKE SA and
    /// the data SA's UDP peer move there (same port until the peer's next message).
    pub fn move_peer(&mut self, hoa: &Ipv6Addr, ip: IpAddr) {
        self.data.peer_ip_moved(hoa, ip);
        let Some(o) = self.owner_of(hoa) else { return };
        let Some(old) = self.endpoint.info(o).map(|i| i.remote) else {
            return;
        };
        if old.ip() == ip {
            return;
        }
        let to = SocketAddr::new(ip, old.port());
        match self.endpoint.set_peer_address(o, to) {
            Ok(()) => {
                self.stats.ike_peer_moves += 1;
                info!(%hoa, from = %old, %to, "IKE SA moved with the binding (K flag)");
            }
            Err(e) => warn!(%hoa, error = %e, "IKE SA not moved"),
        }
    }

    /// SPIs (inbound, outbound) of the data SA of a home address.
    pub fn data_spis(&self, hoa: &Ipv6Addr) -> Option<(u32, u32)> {
        self.data.get(hoa).map(|d| d.spis())
    }

    /// SPIs (inbound, outbound) of the SA of a home address, for `dsmip-ha bindings`.
    pub fn spis(&self, hoa: &Ipv6Addr) -> Option<(u32, u32)> {
        let spi_in = self
            .inbound
            .iter()
            .find(|(_, (_, h, _))| h == hoa)
            .map(|(s, _)| *s)?;
        Some((spi_in, self.outbound.get(hoa)?.spi()))
    }

    /// Verify and strip transport-mode ESP from an IPv6 packet in place. Returns the
    /// length of the rebuilt packet and the SA that protected it, or `None` (counted).
    pub fn open(&mut self, pkt: &mut [u8]) -> Option<(usize, SaInfo)> {
        let Some(spi) = esp_spi(pkt) else {
            self.stats.esp_errors += 1;
            return None;
        };
        let Some((sa, hoa, _)) = self.inbound.get_mut(&spi) else {
            self.stats.esp_unknown_spi += 1;
            return None;
        };
        let hoa = *hoa;
        match transport::decapsulate(sa, pkt) {
            Ok((range, mipsec::esp::Inbound::Packet { .. })) => Some((
                range.end,
                SaInfo {
                    spi,
                    home_address: hoa,
                },
            )),
            Ok(_) => None,
            Err(e) => {
                self.stats.esp_errors += 1;
                info!(spi = format_args!("{spi:#x}"), error = %e, "ESP packet refused");
                None
            }
        }
    }

    /// Protect an IPv6 packet for `hoa` in transport mode; `None` without an SA.
    pub fn seal(&mut self, hoa: &Ipv6Addr, pkt: &[u8], out: &mut [u8]) -> Option<usize> {
        let sa = self.outbound.get_mut(hoa)?;
        match transport::encapsulate(sa, pkt, out) {
            Ok(n) => Some(n),
            Err(e) => {
                self.stats.esp_errors += 1;
                warn!(%hoa, error = %e, "ESP encapsulation failed");
                None
            }
        }
    }
}

/// The SPI of the ESP header after the IPv6 header (and a Destination Options header).
fn esp_spi(pkt: &[u8]) -> Option<u32> {
    let ip6 = Ipv6Repr::parse(pkt).ok()?;
    let at = match ip6.next_header {
        IPPROTO_ESP => Ipv6Repr::HEADER_LEN,
        IPPROTO_DSTOPTS => {
            let d = pkt.get(Ipv6Repr::HEADER_LEN..Ipv6Repr::HEADER_LEN + 2)?;
            if d[0] != IPPROTO_ESP {
                return None;
            }
            Ipv6Repr::HEADER_LEN + (usize::from(d[1]) + 1) * 8
        }
        _ => return None,
    };
    let s = pkt.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responder_offers_the_data_sa_policy_in_tunnel_mode() {
        let cfg: IpsecConfig =
            toml::from_str("local_id = \"ha.example.org\"\npsk = \"k\"\n").unwrap();
        let mut ha_cfg = ha::HaConfig::new(
            "2001:db8:1::1".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            vec!["2001:db8:1::/64".parse().unwrap()],
        );
        ha_cfg.ipv4_pools.push(ha::PoolConfig {
            range: "198.51.100.0/28".parse().unwrap(),
            exclude: vec![],
        });
        let c = cfg.responder(&ha_cfg).unwrap();
        assert!(c.transport, "the signalling SA stays transport mode");
        assert_eq!(
            c.ts_local,
            vec![TrafficSelector::prefix(
                "2001:db8:1::1".parse().unwrap(),
                128
            )]
        );
        let [data] = c.extra_children.as_slice() else {
            panic!("one extra policy: {:?}", c.extra_children)
        };
        assert!(!data.transport);
        assert_eq!(data.esp_proposals, c.esp_proposals);
        assert_eq!(
            data.ts_local,
            vec![
                TrafficSelector::prefix("::".parse().unwrap(), 0),
                TrafficSelector::prefix("0.0.0.0".parse().unwrap(), 0),
            ]
        );
        assert_eq!(
            data.ts_remote,
            vec![
                TrafficSelector::prefix("2001:db8:1::".parse().unwrap(), 64),
                TrafficSelector::prefix("198.51.100.0".parse().unwrap(), 28),
            ]
        );
    }
}
