//! The endpoint: owns the IKE SAs, demultiplexes datagrams by SPI (RFC 7296 §2.6), strips
//! the non-ESP marker on the NAT-T port (RFC 3948 §2.2), answers new IKE_SA_INIT requests
//! with cookies above a half-open threshold and drops them above a cap (§2.6, §2.4).

use super::ike_sa::{IkeSa, State};
use super::{log, Config, Event, IkeSaInfo, Out, SaId, Transmit};
use crate::crypto::Rng;
use crate::error::{Error, Result};
use crate::wire::payload::{find_notify, parse_chain, NotifyRepr};
use crate::wire::{rules, ExchangeType, Header, NotifyType, Payload, HEADER_LEN};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Counters of what was dropped, for drivers and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub malformed: u64,
    pub unknown_spi: u64,
    pub cookies_sent: u64,
    pub half_open_dropped: u64,
    pub ignored: u64,
}

pub struct Endpoint {
    responder: Option<Arc<Config>>,
    sas: HashMap<SaId, IkeSa>,
    /// (peer, SPIi) of IKE_SA_INIT requests we answered: their retransmits hit the SA.
    half_open: HashMap<(SocketAddr, u64), SaId>,
    /// Local ports that carry the non-ESP marker.
    natt_ports: Vec<u16>,
    cookie_secret: [u8; 32],
    rng: Box<dyn Rng + Send>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    stats: Stats,
    unix_time: i64,
}

impl core::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Endpoint")
            .field("sas", &self.sas.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Endpoint {
    /// An endpoint; with `responder` set it accepts new IKE SAs under that configuration.
    pub fn new(responder: Option<Config>, mut rng: Box<dyn Rng + Send>) -> Endpoint {
        let natt_ports = responder.iter().map(|c| c.natt_port).collect();
        let mut cookie_secret = [0u8; 32];
        rng.fill(&mut cookie_secret);
        Endpoint {
            responder: responder.map(Arc::new),
            sas: HashMap::new(),
            half_open: HashMap::new(),
            natt_ports,
            cookie_secret,
            rng,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            unix_time: 0,
        }
    }

    fn out(&mut self) -> (Out<'_>, &mut HashMap<SaId, IkeSa>) {
        (
            Out {
                rng: &mut *self.rng,
                unix_time: self.unix_time,
                transmits: &mut self.transmits,
                events: &mut self.events,
                new_sas: Vec::new(),
            },
            &mut self.sas,
        )
    }

    /// Wall-clock time (seconds since 1970) for certificate validity checks; the driver
    /// sets it, as the engine reads no clock.
    pub fn set_unix_time(&mut self, secs: i64) {
        self.unix_time = secs;
    }

    /// Starts an IKE SA as initiator from `local` to `remote`.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        config: Config,
    ) -> Result<SaId> {
        if !self.natt_ports.contains(&config.natt_port) {
            self.natt_ports.push(config.natt_port);
        }
        let mut sa = IkeSa::new(Arc::new(config), true, local, remote);
        let (mut out, sas) = self.out();
        sa.start(now, &mut out)?;
        let id = sa.id();
        sas.insert(id, sa);
        Ok(id)
    }

    /// Deletes an established IKE SA with an INFORMATIONAL exchange.
    pub fn delete(&mut self, now: Instant, sa: SaId) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .delete(now, &mut out)
    }

    /// Negotiates another CHILD_SA with CREATE_CHILD_SA (RFC 7296 §1.3.1); the outcome is a
    /// `ChildSaUp` or `ChildSaFailed` event.
    pub fn create_child(
        &mut self,
        now: Instant,
        sa: SaId,
        policy: super::ChildPolicy,
    ) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .create_child(now, &mut out, policy)
    }

    /// Rekeys the CHILD_SA whose inbound SPI is `spi_in` (RFC 7296 §1.3.3): `ChildSaUp` for
    /// the new one, then `ChildSaDown` for the old one, which is deleted at the peer.
    pub fn rekey_child(&mut self, now: Instant, sa: SaId, spi_in: u32) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .rekey_child(now, &mut out, spi_in)
    }

    /// Deletes one CHILD_SA, named by our inbound SPI, with an INFORMATIONAL exchange
    /// (RFC 7296 §1.4.1); `ChildSaDown` follows at once here and at the peer on receipt.
    /// Fails while another request of this IKE SA is in flight (window size 1, §2.3).
    pub fn delete_child(&mut self, now: Instant, sa: SaId, spi_in: u32) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .delete_child(now, &mut out, spi_in)
    }

    /// Rekeys the IKE SA (RFC 7296 §1.3.2): `IkeSaRekeyed { old, new }`, then the old SA
    /// is deleted (`IkeSaDown { old }`).
    pub fn rekey_ike(&mut self, now: Instant, sa: SaId) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .rekey_ike(now, &mut out)
    }

    /// Sends a liveness check (empty INFORMATIONAL request).
    pub fn liveness(&mut self, now: Instant, sa: SaId) -> Result<()> {
        let (mut out, sas) = self.out();
        sas.get_mut(&sa)
            .ok_or(Error::State("no such SA"))?
            .liveness(now, &mut out)
    }

    /// Moves the peer of an established SA to `remote` (RFC 4877 §4.4, RFC 6275 §11.7.1:
    /// a home agent follows the care-of address of a binding with the K flag). No event.
    pub fn set_peer_address(&mut self, sa: SaId, remote: SocketAddr) -> Result<()> {
        let s = self.sas.get_mut(&sa).ok_or(Error::State("no such SA"))?;
        if s.state() != State::Established {
            return Err(Error::State("IKE SA not established"));
        }
        s.move_peer(remote);
        Ok(())
    }

    /// With `on`, an authenticated message from a new address moves the SA's peer there
    /// (`PeerAddressChanged`) even without a NAT in the path (RFC 4877 §4.4: the K flag);
    /// without, only a peer behind a NAT is followed (RFC 7296 §2.23). An IKE SA rekey
    /// does not carry the setting over.
    pub fn follow_peer(&mut self, sa: SaId, on: bool) -> Result<()> {
        let s = self.sas.get_mut(&sa).ok_or(Error::State("no such SA"))?;
        s.follow_any = on;
        Ok(())
    }

    pub fn info(&self, sa: SaId) -> Option<&IkeSaInfo> {
        self.sas.get(&sa).and_then(|s| s.info())
    }

    pub fn state(&self, sa: SaId) -> Option<State> {
        self.sas.get(&sa).map(|s| s.state())
    }

    /// Whether the SA has a request in flight: one at a time (RFC 7296 §2.3, window 1), so
    /// `create_child`, `rekey_*`, `liveness` and `delete` fail until it is answered.
    pub fn busy(&self, sa: SaId) -> bool {
        self.sas.get(&sa).is_some_and(|s| s.pending.is_some())
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Number of IKE SAs held, any state.
    pub fn len(&self) -> usize {
        self.sas.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sas.is_empty()
    }

    /// One received datagram. `local` is the address and port it arrived on.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) {
        let span = tracing::debug_span!("ike_rx", %remote, local_port = local.port());
        let _enter = span.enter();
        let queued = self.events.len();
        self.dispatch(now, local, remote, data);
        self.events.iter().skip(queued).for_each(log::event);
    }

    fn dispatch(&mut self, now: Instant, local: SocketAddr, remote: SocketAddr, data: &[u8]) {
        let natt = self.natt_ports.contains(&local.port());
        let data = if natt {
            // RFC 3948 §2.2: IKE on the NAT-T port carries a zero marker; 0xFF is a keepalive.
            match data {
                [0, 0, 0, 0, rest @ ..] => rest,
                [0xff] => {
                    tracing::trace!("NAT keepalive");
                    self.stats.ignored += 1;
                    return;
                }
                _ => {
                    tracing::debug!(
                        len = data.len(),
                        "dropped: no non-ESP marker on the NAT-T port"
                    );
                    self.stats.ignored += 1;
                    return;
                }
            }
        } else {
            data
        };
        let h = match Header::parse(data) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(error = %e, len = data.len(), "dropped: bad IKE header");
                self.stats.malformed += 1;
                return;
            }
        };
        log::received(&h);
        if h.exchange == ExchangeType::IKE_SA_INIT && !h.flags.response() && h.spi_r == 0 {
            return self.handle_init_request(now, local, remote, &h, data);
        }
        let ours = if h.flags.initiator() {
            h.spi_r
        } else {
            h.spi_i
        };
        let (mut out, sas) = self.out();
        let Some(sa) = sas.get_mut(&ours) else {
            tracing::debug!(
                spi = format_args!("{ours:016x}"),
                "dropped: unknown IKE SPI"
            );
            self.stats.unknown_spi += 1;
            return;
        };
        let span = tracing::debug_span!("ike_sa", sa = format_args!("{ours:016x}"));
        let res = span.in_scope(|| sa.handle(now, &mut out, remote, &h, data));
        let adopted = std::mem::take(&mut out.new_sas);
        if let Err(e) = res {
            tracing::debug!(
                sa = format_args!("{ours:016x}"),
                exchange = log::exchange(h.exchange),
                message_id = h.message_id,
                error = %e,
                "message rejected"
            );
            self.stats.malformed += 1;
        }
        for mut n in adopted {
            n.stamp(now);
            self.sas.insert(n.id(), n);
        }
        if let Some(sa) = self.sas.get_mut(&ours) {
            sa.stamp(now);
        }
        self.settle(ours);
    }

    /// After one SA handled a datagram: O(1) bookkeeping instead of a scan of all SAs.
    fn settle(&mut self, id: SaId) {
        let Some(sa) = self.sas.get(&id) else { return };
        if sa.state() != State::ExpectAuth {
            if let Some(k) = sa.half_open_key {
                self.half_open.remove(&k);
            }
        }
        if sa.state() == State::Dead {
            self.sas.remove(&id);
        }
    }

    fn cookie(&self, ni: &[u8], remote: SocketAddr, spi_i: u64) -> Vec<u8> {
        // §2.6: Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>).
        let mut c = ring::digest::Context::new(&ring::digest::SHA256);
        c.update(ni);
        match remote.ip() {
            IpAddr::V4(a) => c.update(&a.octets()),
            IpAddr::V6(a) => c.update(&a.octets()),
        }
        c.update(&spi_i.to_be_bytes());
        c.update(&self.cookie_secret);
        let mut v = vec![1u8];
        v.extend_from_slice(c.finish().as_ref());
        v
    }

    fn handle_init_request(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        h: &Header,
        data: &[u8],
    ) {
        let Some(cfg) = self.responder.clone() else {
            tracing::debug!("dropped: IKE_SA_INIT request but no responder configuration");
            self.stats.ignored += 1;
            return;
        };
        if let Some(id) = self.half_open.get(&(remote, h.spi_i)).copied() {
            // A retransmitted IKE_SA_INIT request: send the same response (§2.1).
            let (mut out, sas) = self.out();
            if let Some(sa) = sas.get_mut(&id) {
                if sa.init_request == data {
                    let r = sa.init_response.clone();
                    let natt = sa.natt;
                    sa.natt = local.port() == cfg.natt_port;
                    sa.push(&mut out, &r);
                    sa.natt = natt;
                    return;
                }
            }
        }
        let p = match parse_chain(h.next_payload, &data[HEADER_LEN..], HEADER_LEN) {
            Ok(p) => p,
            Err(Error::UnsupportedCritical { payload, .. }) => {
                tracing::debug!(payload, "IKE_SA_INIT: unsupported critical payload");
                let n = vec![Payload::Notify(NotifyRepr::new(
                    NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                    vec![payload],
                ))];
                return self.stateless_reply(local, remote, h, &cfg, &n);
            }
            Err(e) => {
                tracing::debug!(error = %e, "dropped: IKE_SA_INIT payloads");
                self.stats.malformed += 1;
                return;
            }
        };
        if let Err(e) = rules::check(h.exchange, false, false, &p) {
            tracing::debug!(error = %e, "dropped: IKE_SA_INIT payloads");
            self.stats.malformed += 1;
            return;
        }
        let half_open = self.half_open.len();
        if half_open >= cfg.half_open_max {
            tracing::debug!(half_open, "dropped: half-open IKE SA cap reached");
            self.stats.half_open_dropped += 1;
            return;
        }
        if half_open >= cfg.cookie_threshold {
            let ni = p
                .iter()
                .find_map(|x| {
                    if let Payload::Nonce(n) = x {
                        Some(n.clone())
                    } else {
                        None
                    }
                })
                .unwrap_or_default();
            let want = self.cookie(&ni, remote, h.spi_i);
            let ok = matches!(p.first(), Some(Payload::Notify(n)) if n.ty == NotifyType::COOKIE && n.data == want);
            if !ok {
                tracing::debug!(half_open, "IKE_SA_INIT: asking for a cookie");
                self.stats.cookies_sent += 1;
                let n = vec![Payload::Notify(NotifyRepr::new(NotifyType::COOKIE, want))];
                return self.stateless_reply(local, remote, h, &cfg, &n);
            }
        } else if find_notify(&p, NotifyType::COOKIE).is_some()
            && p.first().map(|x| x.ty()) != Some(crate::wire::PayloadType::NOTIFY)
        {
            self.stats.malformed += 1;
            return;
        }
        let (mut out, sas) = self.out();
        match IkeSa::respond_init(cfg.clone(), now, &mut out, (local, remote), h, data, &p) {
            Ok(mut sa) => {
                let id = sa.id();
                sa.half_open_key = Some((remote, h.spi_i));
                sas.insert(id, sa);
                self.half_open.insert((remote, h.spi_i), id);
            }
            Err(reply) => {
                let port = local.port();
                let mut d = Vec::new();
                if port == cfg.natt_port {
                    d.extend_from_slice(&[0; 4]);
                }
                d.extend_from_slice(&reply);
                self.transmits.push_back(Transmit {
                    local_port: port,
                    remote,
                    data: d,
                });
            }
        }
    }

    fn stateless_reply(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
        h: &Header,
        cfg: &Arc<Config>,
        p: &[Payload],
    ) {
        let mut sa = IkeSa::new(cfg.clone(), false, local, remote);
        sa.spi_i = h.spi_i;
        sa.natt = local.port() == cfg.natt_port;
        let msg = sa.plain_message(ExchangeType::IKE_SA_INIT, 0, true, p);
        let (mut out, _) = self.out();
        sa.push(&mut out, &msg);
    }

    /// Drops dead SAs and forgets answered half-open entries.
    fn reap(&mut self) {
        self.sas.retain(|_, s| s.state() != State::Dead);
        let sas = &self.sas;
        self.half_open
            .retain(|_, id| sas.get(id).is_some_and(|s| s.state() == State::ExpectAuth));
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let queued = self.events.len();
        let (mut out, sas) = self.out();
        for sa in sas.values_mut() {
            sa.handle_timeout(now, &mut out);
        }
        self.reap();
        self.events.iter().skip(queued).for_each(log::event);
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(|s| s.poll_timeout()).min()
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}
