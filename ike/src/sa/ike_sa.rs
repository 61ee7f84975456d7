//! One IKE SA: its state, message IDs and retransmission (RFC 7296 §2.1–2.2), SK
//! protection of messages after IKE_SA_INIT (§3.14), INFORMATIONAL with Delete and
//! liveness checks (§1.4, §2.4), NAT keepalives (RFC 3948 §2.3).

use super::{Config, Event, Failure, IkeSaInfo, Out, SaId, Transmit};
use crate::crypto::{IkeKeys, KeyExchange, SkCipher};
use crate::error::{Error, Result};
use crate::proposal::Chosen;
use crate::wire::payload::{emit_chain, parse_chain, DeleteRepr};
use crate::wire::{
    rules, ExchangeType, Flags, Header, Payload, PayloadType, ProtocolId, HEADER_LEN,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Where the SA is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Initiator: IKE_SA_INIT request sent.
    ExpectInitResponse,
    /// Initiator: IKE_AUTH request sent.
    ExpectAuthResponse,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    ExpectAuth,
    Established,
    /// Our Delete is in flight.
    Deleting,
    Dead,
}

/// A request in flight, kept for retransmission.
#[derive(Debug)]
pub(crate) struct Pending {
    pub msg_id: u32,
    pub exchange: ExchangeType,
    pub data: Vec<u8>,
    pub tries: u32,
    pub next_at: Instant,
}

/// A CHILD_SA the SA knows about (SPIs only; the keys went out in the event).
#[derive(Debug, Clone)]
pub(crate) struct ChildRef {
    pub spi_in: u32,
    pub spi_out: u32,
    /// What a rekey of this CHILD_SA proposes: our proposals, the negotiated selectors.
    pub policy: super::ChildPolicy,
    /// When to rekey it (`Config::rekey_child_after`), stamped by [`IkeSa::stamp`].
    pub rekey_at: Option<Instant>,
}

#[derive(Debug)]
pub struct IkeSa {
    pub(crate) cfg: Arc<Config>,
    pub(crate) initiator: bool,
    pub(crate) state: State,
    pub(crate) spi_i: u64,
    pub(crate) spi_r: u64,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) ni: Vec<u8>,
    pub(crate) nr: Vec<u8>,
    pub(crate) ke: Option<KeyExchange>,
    pub(crate) chosen: Option<Chosen>,
    pub(crate) keys: Option<IkeKeys>,
    pub(crate) tx: Option<SkCipher>,
    pub(crate) rx: Option<SkCipher>,
    /// The IKE_SA_INIT messages as sent, signed by AUTH (§2.15).
    pub(crate) init_request: Vec<u8>,
    pub(crate) init_response: Vec<u8>,
    pub(crate) cookie: Option<Vec<u8>>,
    pub(crate) next_msg_id: u32,
    pub(crate) peer_msg_id: u32,
    pub(crate) pending: Option<Pending>,
    pub(crate) last_response: Option<(u32, Vec<u8>)>,
    pub(crate) nat_local: bool,
    pub(crate) nat_remote: bool,
    /// Both sides sent NAT_DETECTION: IKE moved to the NAT-T port (RFC 5555 §5).
    pub(crate) natt: bool,
    pub(crate) child_spi: u32,
    pub(crate) children: Vec<ChildRef>,
    pub(crate) pending_child: Option<super::child::PendingChild>,
    pub(crate) pending_ike_rekey: Option<super::rekey::PendingIkeRekey>,
    /// The peer sent SIGNATURE_HASH_ALGORITHMS: sign with RFC 7427.
    pub(crate) peer_rfc7427: bool,
    pub(crate) info: Option<IkeSaInfo>,
    pub(crate) keepalive_at: Option<Instant>,
    /// When the last authenticated message from the peer arrived (for liveness checks).
    pub(crate) last_rx: Option<Instant>,
    /// The endpoint's half-open index entry while this responder SA waits for IKE_AUTH.
    pub(crate) half_open_key: Option<(SocketAddr, u64)>,
    /// When to rekey the IKE SA (`Config::rekey_ike_after`).
    pub(crate) rekey_ike_at: Option<Instant>,
    pub(crate) expires_at: Option<Instant>,
    /// Follow an authenticated message from any new address, not only behind a NAT: set
    /// by a home agent for an SA whose Binding Updates carry the K flag (RFC 4877 §4.4).
    pub(crate) follow_any: bool,
}

impl IkeSa {
    pub(crate) fn new(
        cfg: Arc<Config>,
        initiator: bool,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> IkeSa {
        IkeSa {
            cfg,
            initiator,
            state: if initiator {
                State::ExpectInitResponse
            } else {
                State::ExpectAuth
            },
            spi_i: 0,
            spi_r: 0,
            local,
            remote,
            ni: vec![],
            nr: vec![],
            ke: None,
            chosen: None,
            follow_any: false,
            keys: None,
            tx: None,
            rx: None,
            init_request: vec![],
            init_response: vec![],
            cookie: None,
            next_msg_id: 0,
            peer_msg_id: 0,
            pending: None,
            last_response: None,
            nat_local: false,
            nat_remote: false,
            natt: false,
            child_spi: 0,
            children: vec![],
            pending_child: None,
            pending_ike_rekey: None,
            peer_rfc7427: false,
            info: None,
            keepalive_at: None,
            last_rx: None,
            half_open_key: None,
            rekey_ike_at: None,
            expires_at: None,
        }
    }

    /// Our SPI: the SA's handle.
    pub fn id(&self) -> SaId {
        if self.initiator {
            self.spi_i
        } else {
            self.spi_r
        }
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn info(&self) -> Option<&IkeSaInfo> {
        self.info.as_ref()
    }

    pub(crate) fn local_port(&self) -> u16 {
        if self.natt {
            self.cfg.natt_port
        } else {
            self.cfg.ike_port
        }
    }

    /// Puts a datagram on the wire, with the non-ESP marker on the NAT-T port.
    pub(crate) fn push(&self, out: &mut Out<'_>, data: &[u8]) {
        let mut d = Vec::with_capacity(data.len() + 4);
        if self.natt {
            d.extend_from_slice(&[0; 4]);
        }
        d.extend_from_slice(data);
        out.transmits.push_back(Transmit {
            local_port: self.local_port(),
            remote: self.remote,
            data: d,
        });
    }

    fn flags(&self, response: bool) -> Flags {
        let mut f = if self.initiator { Flags::INITIATOR } else { 0 };
        if response {
            f |= Flags::RESPONSE;
        }
        Flags(f)
    }

    /// An unencrypted message (IKE_SA_INIT).
    pub(crate) fn plain_message(
        &self,
        exchange: ExchangeType,
        msg_id: u32,
        response: bool,
        payloads: &[Payload],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        let first = emit_chain(payloads, &mut body);
        let h = Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: first,
            exchange,
            flags: self.flags(response),
            message_id: msg_id,
            length: (HEADER_LEN + body.len()) as u32,
        };
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        h.emit(&mut out);
        out.extend_from_slice(&body);
        out
    }

    /// A message whose payloads travel inside SK (RFC 7296 §3.14).
    pub(crate) fn sealed_message(
        &self,
        out: &mut Out<'_>,
        exchange: ExchangeType,
        msg_id: u32,
        response: bool,
        payloads: &[Payload],
    ) -> Result<Vec<u8>> {
        let tx = self.tx.as_ref().ok_or(Error::State("no SK keys"))?;
        let mut inner = Vec::new();
        let first = emit_chain(payloads, &mut inner);
        let sk_len = 4 + tx.body_len(inner.len());
        let h = Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            next_payload: PayloadType::SK,
            exchange,
            flags: self.flags(response),
            message_id: msg_id,
            length: (HEADER_LEN + sk_len) as u32,
        };
        let mut msg = Vec::with_capacity(HEADER_LEN + sk_len);
        h.emit(&mut msg);
        msg.extend_from_slice(&[first.0, 0]);
        msg.extend_from_slice(&(sk_len as u16).to_be_bytes());
        tx.seal(&mut msg, &inner, out.rng)?;
        Ok(msg)
    }

    /// Opens the SK payload of a received message and checks the payload table.
    pub(crate) fn open(&self, h: &Header, data: &[u8]) -> Result<Vec<Payload>> {
        let rx = self.rx.as_ref().ok_or(Error::State("no SK keys"))?;
        let outer = parse_chain(h.next_payload, &data[HEADER_LEN..], HEADER_LEN)?;
        rules::check(h.exchange, h.flags.response(), false, &outer)?;
        let Some(Payload::Sk { inner_first, body }) = outer.last() else {
            return Err(Error::Missing {
                payload: 46,
                exchange: h.exchange.0,
                direction: "any",
            });
        };
        let body_at = data.len() - body.len();
        let plain = rx.open(data, body_at)?;
        let inner = parse_chain(*inner_first, &plain, body_at)?;
        rules::check(h.exchange, h.flags.response(), true, &inner)?;
        Ok(inner)
    }

    /// Sends a new request and arms retransmission.
    pub(crate) fn send_request(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        exchange: ExchangeType,
        payloads: &[Payload],
    ) -> Result<()> {
        if self.pending.is_some() {
            return Err(Error::State("a request is already in flight"));
        }
        let msg_id = self.next_msg_id;
        let data = if exchange == ExchangeType::IKE_SA_INIT {
            self.plain_message(exchange, msg_id, false, payloads)
        } else {
            self.sealed_message(out, exchange, msg_id, false, payloads)?
        };
        self.next_msg_id += 1;
        self.push(out, &data);
        let next_at = now + self.cfg.retransmit_timeout;
        self.pending = Some(Pending {
            msg_id,
            exchange,
            data,
            tries: 0,
            next_at,
        });
        Ok(())
    }

    /// Sends a response to the peer's request `msg_id` and keeps it for retransmits.
    pub(crate) fn send_response(
        &mut self,
        out: &mut Out<'_>,
        exchange: ExchangeType,
        msg_id: u32,
        payloads: &[Payload],
    ) -> Result<()> {
        let data = if exchange == ExchangeType::IKE_SA_INIT {
            self.plain_message(exchange, msg_id, true, payloads)
        } else {
            self.sealed_message(out, exchange, msg_id, true, payloads)?
        };
        self.push(out, &data);
        self.peer_msg_id = msg_id.wrapping_add(1);
        self.last_response = Some((msg_id, data));
        Ok(())
    }

    pub(crate) fn fail(&mut self, out: &mut Out<'_>, reason: Failure) {
        self.state = State::Dead;
        self.pending = None;
        out.events.push_back(Event::Failed {
            sa: self.id(),
            reason,
        });
    }

    /// Retransmissions with back-off, half-open expiry, keepalives (RFC 7296 §2.1, §2.4).
    pub(crate) fn handle_timeout(&mut self, now: Instant, out: &mut Out<'_>) {
        if let Some(p) = &mut self.pending {
            if now >= p.next_at {
                if p.tries + 1 >= self.cfg.retransmit_tries {
                    return self.fail(out, Failure::Timeout);
                }
                p.tries += 1;
                p.next_at = now + self.cfg.retransmit_timeout * 2u32.pow(p.tries.min(16));
                let data = p.data.clone();
                self.push(out, &data);
            }
        }
        self.rekey_if_due(now, out);
        if self.dpd_at().is_some_and(|t| now >= t) {
            // §1.4: no traffic from the peer for a while: ask whether it is alive.
            let _ = self.liveness(now, out);
        }
        if self.expires_at.is_some_and(|t| now >= t) {
            self.state = State::Dead;
        }
        if let Some(t) = self.keepalive_at {
            if now >= t {
                // RFC 3948 §2.3: one octet 0xFF on the NAT-T port, no marker.
                out.transmits.push_back(Transmit {
                    local_port: self.cfg.natt_port,
                    remote: self.remote,
                    data: vec![0xff],
                });
                self.keepalive_at = Some(now + self.cfg.keepalive);
            }
        }
    }

    /// Gives new CHILD_SAs their rekey time and the IKE SA its own, from `now`.
    pub(crate) fn stamp(&mut self, now: Instant) {
        if let Some(d) = self.cfg.rekey_child_after {
            self.children
                .iter_mut()
                .filter(|c| c.rekey_at.is_none())
                .for_each(|c| c.rekey_at = Some(now + d));
        }
        if let (Some(d), State::Established, None) =
            (self.cfg.rekey_ike_after, self.state, self.rekey_ike_at)
        {
            self.rekey_ike_at = Some(now + d);
        }
    }

    /// The next rekey due, when no request is in flight (§2.3: one at a time).
    fn rekey_due(&self) -> Option<Instant> {
        if self.state != State::Established || self.pending.is_some() {
            return None;
        }
        self.children
            .iter()
            .filter_map(|c| c.rekey_at)
            .chain(self.rekey_ike_at)
            .min()
    }

    /// Starts the rekey that is due: the IKE SA first, else the oldest CHILD_SA.
    fn rekey_if_due(&mut self, now: Instant, out: &mut Out<'_>) {
        match self.rekey_due() {
            Some(t) if now >= t => {}
            _ => return,
        }
        if self.rekey_ike_at.is_some_and(|t| now >= t) {
            self.rekey_ike_at = None;
            let _ = self.rekey_ike(now, out);
            return;
        }
        let due = self
            .children
            .iter()
            .filter(|c| c.rekey_at.is_some_and(|t| now >= t))
            .map(|c| c.spi_in)
            .next();
        if let Some(spi) = due {
            if let Some(c) = self.children.iter_mut().find(|c| c.spi_in == spi) {
                c.rekey_at = None; // the replacement gets its own time
            }
            let _ = self.rekey_child(now, out, spi);
        }
    }

    fn dpd_at(&self) -> Option<Instant> {
        match (self.state, self.cfg.dpd, self.last_rx, &self.pending) {
            (State::Established, Some(d), Some(t), None) => Some(t + d),
            _ => None,
        }
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [
            self.pending.as_ref().map(|p| p.next_at),
            self.expires_at,
            self.keepalive_at,
            self.dpd_at(),
            self.rekey_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts deleting the IKE SA (and so its CHILD_SAs): INFORMATIONAL with Delete (§1.4.1).
    pub(crate) fn delete(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        if self.state != State::Established {
            return Err(Error::State("IKE SA not established"));
        }
        let d = Payload::Delete(DeleteRepr {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: vec![],
        });
        self.send_request(now, out, ExchangeType::INFORMATIONAL, &[d])?;
        self.state = State::Deleting;
        Ok(())
    }

    /// An empty INFORMATIONAL request: a liveness check (§1.4).
    pub(crate) fn liveness(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        if self.state != State::Established {
            return Err(Error::State("IKE SA not established"));
        }
        self.send_request(now, out, ExchangeType::INFORMATIONAL, &[])
    }

    /// An INFORMATIONAL request from the peer (§1.4.1).
    pub(crate) fn handle_informational(
        &mut self,
        out: &mut Out<'_>,
        msg_id: u32,
        payloads: &[Payload],
    ) -> Result<()> {
        let mut reply = Vec::new();
        let mut delete_ike = false;
        for p in payloads {
            let Payload::Delete(d) = p else { continue };
            match d.protocol {
                ProtocolId::IKE => delete_ike = true,
                ProtocolId::ESP | ProtocolId::AH => {
                    let mut ours = Vec::new();
                    for spi in &d.spis {
                        let Ok(b) = <[u8; 4]>::try_from(spi.as_slice()) else {
                            continue;
                        };
                        let out_spi = u32::from_be_bytes(b);
                        if let Some(i) = self.children.iter().position(|c| c.spi_out == out_spi) {
                            let c = self.children.remove(i);
                            ours.push(c.spi_in.to_be_bytes().to_vec());
                            out.events.push_back(Event::ChildSaDown {
                                sa: self.id(),
                                spi_in: c.spi_in,
                            });
                        }
                    }
                    if !ours.is_empty() {
                        reply.push(Payload::Delete(DeleteRepr {
                            protocol: d.protocol,
                            spi_size: 4,
                            spis: ours,
                        }));
                    }
                }
                _ => {}
            }
        }
        if delete_ike {
            // §1.4.1: the reply to a Delete of the IKE SA is empty.
            self.send_response(out, ExchangeType::INFORMATIONAL, msg_id, &[])?;
            self.state = State::Dead;
            out.events.push_back(Event::IkeSaDown { sa: self.id() });
            return Ok(());
        }
        self.send_response(out, ExchangeType::INFORMATIONAL, msg_id, &reply)
    }

    /// The reply to our INFORMATIONAL request.
    pub(crate) fn handle_informational_response(&mut self, out: &mut Out<'_>) {
        if self.state == State::Deleting {
            self.state = State::Dead;
            out.events.push_back(Event::IkeSaDown { sa: self.id() });
        }
    }
}
