//! CHILD_SAs: the offer, the responder's choice with narrowing (RFC 7296 §2.9) and mode
//! (§1.3.1), the initiator's checks, KEYMAT (§2.17), and the CREATE_CHILD_SA exchange
//! (§1.3.1) with optional PFS key exchange.
//!
//! ```text
//! HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Ni, [KEi], TSi, TSr}  -->
//!                   <--  HDR, SK {[N(USE_TRANSPORT_MODE)], SA, Nr, [KEr], TSi, TSr}
//! ```

use super::exchange::{new_child_spi, notify};
use super::ike_sa::{ChildRef, IkeSa, State};
use super::{ChildKeys, ChildSa, Event, Mode, Out};
use crate::crypto::{child_keymat, KeyExchange, Secret};
use crate::error::{Error, Result};
use crate::proposal::{accept_reply, select, Chosen, Proposal};
use crate::wire::payload::{find_notify, KeRepr, PayloadsExt};
use crate::wire::{ExchangeType, NotifyType, Payload, ProtocolId, TrafficSelector};
use std::net::SocketAddr;
use std::time::Instant;

/// What one CHILD_SA may carry: proposals, both sides' selectors, the mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildPolicy {
    pub esp_proposals: Vec<Proposal>,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub transport: bool,
}

/// An initiator's CREATE_CHILD_SA request in flight.
#[derive(Debug)]
pub(crate) struct PendingChild {
    policy: ChildPolicy,
    /// Our inbound SPI of the CHILD_SA this request rekeys (§1.3.3).
    rekeys: Option<u32>,
    spi_in: u32,
    ni: Vec<u8>,
    ke: Option<KeyExchange>,
}

const NOPE: u16 = NotifyType::NO_PROPOSAL_CHOSEN.0;
const BAD_TS: u16 = NotifyType::TS_UNACCEPTABLE.0;

fn spi_u32(spi: &[u8]) -> core::result::Result<u32, u16> {
    <[u8; 4]>::try_from(spi)
        .map(u32::from_be_bytes)
        .map_err(|_| NOPE)
}

impl IkeSa {
    /// The first CHILD_SA's policy from the configuration.
    pub(crate) fn main_policy(&self) -> ChildPolicy {
        ChildPolicy {
            esp_proposals: self.cfg.esp_proposals.clone(),
            ts_local: self.cfg.ts_local.clone(),
            ts_remote: self.cfg.ts_remote.clone(),
            transport: self.cfg.transport,
        }
    }

    /// `[N(USE_TRANSPORT_MODE)], SA` of an offer; the caller adds nonce, KE and selectors.
    pub(crate) fn child_offer(
        &self,
        policy: &ChildPolicy,
        spi_in: u32,
        with_groups: bool,
    ) -> Vec<Payload> {
        let mut p = Vec::new();
        if policy.transport {
            p.push(notify(NotifyType::USE_TRANSPORT_MODE, vec![]));
        }
        let spi = spi_in.to_be_bytes().to_vec();
        let props = policy.esp_proposals.iter().enumerate();
        p.push(Payload::Sa(
            props
                .map(|(i, pr)| pr.to_repr(i as u8 + 1, spi.clone(), with_groups))
                .collect(),
        ));
        p
    }

    /// KEYMAT split into the two directions (§2.17: initiator-to-responder first,
    /// encryption key before integrity key).
    fn child_keys(
        &self,
        chosen: Chosen,
        (ni, nr): (&[u8], &[u8]),
        g_ir: Option<&Secret>,
    ) -> Result<ChildKeys> {
        let k = self.keys.as_ref().ok_or(Error::State("no keys"))?;
        let prf = self
            .chosen
            .and_then(|c| c.prf)
            .ok_or(Error::State("no PRF"))?;
        let (el, al) = (chosen.encr.key_len(), chosen.integ.key_len());
        let km = child_keymat(
            prf,
            &k.sk_d,
            g_ir.map(|g| g.expose()),
            ni,
            nr,
            2 * (el + al),
        )?;
        let m = km.expose();
        let s = |a: usize, b: usize| Secret::new(m[a..b].to_vec());
        let (ei, ai, er, ar) = (
            s(0, el),
            s(el, el + al),
            s(el + al, 2 * el + al),
            s(2 * el + al, m.len()),
        );
        Ok(if self.initiator {
            ChildKeys {
                enc_out: ei,
                auth_out: ai,
                enc_in: er,
                auth_in: ar,
            }
        } else {
            ChildKeys {
                enc_out: er,
                auth_out: ar,
                enc_in: ei,
                auth_in: ai,
            }
        })
    }

    fn install(
        &mut self,
        chosen: Chosen,
        (spi_in, spi_out): (u32, u32),
        mode: Mode,
        (ts_local, ts_remote): (Vec<TrafficSelector>, Vec<TrafficSelector>),
        keys: ChildKeys,
        esp_proposals: Vec<Proposal>,
    ) -> ChildSa {
        let policy = ChildPolicy {
            esp_proposals,
            ts_local: ts_local.clone(),
            ts_remote: ts_remote.clone(),
            transport: mode == Mode::Transport,
        };
        self.children.push(ChildRef {
            rekey_at: None,
            spi_in,
            spi_out,
            policy,
        });
        let encap =
            (self.nat_local || self.nat_remote).then_some((self.cfg.natt_port, self.remote.port()));
        ChildSa {
            spi_in,
            spi_out,
            proposal: chosen,
            mode,
            ts_local,
            ts_remote,
            keys,
            encap,
            local: SocketAddr::new(self.local.ip(), self.local_port()),
            remote: self.remote,
        }
    }

    /// Responder: the first policy (main, then `extra_children`) that accepts the offer;
    /// narrows TSi/TSr to it (§2.9) and picks the mode (§1.3.1).
    pub(crate) fn accept_child(
        &mut self,
        out: &mut Out<'_>,
        p: &[Payload],
        nonces: (&[u8], &[u8]),
        g_ir: Option<&Secret>,
    ) -> core::result::Result<(Vec<Payload>, ChildSa), u16> {
        let offers = p.sa().ok_or(NOPE)?;
        let (tsi, tsr) = (p.tsi().ok_or(BAD_TS)?, p.tsr().ok_or(BAD_TS)?);
        let wants_transport = find_notify(p, NotifyType::USE_TRANSPORT_MODE).is_some();
        let narrow = |theirs: &[TrafficSelector], ours: &[TrafficSelector]| {
            let mut v: Vec<TrafficSelector> = theirs
                .iter()
                .flat_map(|t| ours.iter().filter_map(move |o| t.intersect(o)))
                .collect();
            v.dedup();
            v
        };
        // §1.3.1: the mode is the initiator's to ask. Policies of the asked mode come first,
        // so a tunnel-mode request whose TSr of ::/0 would narrow to a transport policy's
        // single address (RFC 5555 §5.2.2 data SA next to the §5.2.1 signalling SA) gets
        // the tunnel policy; then, as before, a transport policy answers a tunnel request
        // in tunnel mode.
        let (mut policies, rest): (Vec<ChildPolicy>, Vec<ChildPolicy>) =
            std::iter::once(self.main_policy())
                .chain(self.cfg.extra_children.iter().cloned())
                .partition(|pol| pol.transport == wants_transport);
        policies.extend(rest);
        let mut err = NOPE;
        for pol in policies {
            let Some((num, spi, chosen)) = select(&pol.esp_proposals, offers, false) else {
                continue;
            };
            let (ni, nr) = (narrow(tsi, &pol.ts_remote), narrow(tsr, &pol.ts_local));
            if ni.is_empty() || nr.is_empty() {
                err = BAD_TS;
                continue;
            }
            let spi_out = spi_u32(&spi)?;
            let transport = pol.transport && wants_transport;
            let spi_in = new_child_spi(out);
            let mut reply = Vec::new();
            if transport {
                reply.push(notify(NotifyType::USE_TRANSPORT_MODE, vec![]));
            }
            reply.push(Payload::Sa(vec![chosen.to_repr(
                num,
                ProtocolId::ESP,
                spi_in.to_be_bytes().to_vec(),
            )]));
            reply.push(Payload::TsI(ni.clone()));
            reply.push(Payload::TsR(nr.clone()));
            let keys = self.child_keys(chosen, nonces, g_ir).map_err(|_| NOPE)?;
            let mode = if transport {
                Mode::Transport
            } else {
                Mode::Tunnel
            };
            return Ok((
                reply,
                self.install(
                    chosen,
                    (spi_in, spi_out),
                    mode,
                    (nr, ni),
                    keys,
                    pol.esp_proposals.clone(),
                ),
            ));
        }
        Err(err)
    }

    /// Initiator: checks SAr, TSi, TSr and the mode of the reply; derives the keys.
    pub(crate) fn complete_child(
        &mut self,
        p: &[Payload],
        policy: &ChildPolicy,
        spi_in: u32,
        nonces: (&[u8], &[u8]),
        g_ir: Option<&Secret>,
    ) -> core::result::Result<ChildSa, u16> {
        if let Some(n) = p.error_notify() {
            return Err(n);
        }
        let (spi, chosen) =
            accept_reply(&policy.esp_proposals, p.sa().ok_or(NOPE)?, false).map_err(|_| NOPE)?;
        let spi_out = spi_u32(&spi)?;
        let (tsi, tsr) = (p.tsi().ok_or(BAD_TS)?, p.tsr().ok_or(BAD_TS)?);
        // §2.9: the responder may only narrow.
        let inside = |got: &[TrafficSelector], ours: &[TrafficSelector]| {
            got.iter().all(|g| ours.iter().any(|o| o.contains(g)))
        };
        if tsi.is_empty()
            || tsr.is_empty()
            || !inside(tsi, &policy.ts_local)
            || !inside(tsr, &policy.ts_remote)
        {
            return Err(BAD_TS);
        }
        let transport = find_notify(p, NotifyType::USE_TRANSPORT_MODE).is_some();
        if transport != policy.transport {
            return Err(NOPE);
        }
        let keys = self.child_keys(chosen, nonces, g_ir).map_err(|_| NOPE)?;
        let mode = if transport {
            Mode::Transport
        } else {
            Mode::Tunnel
        };
        Ok(self.install(
            chosen,
            (spi_in, spi_out),
            mode,
            (tsi.clone(), tsr.clone()),
            keys,
            policy.esp_proposals.clone(),
        ))
    }

    /// Starts a CREATE_CHILD_SA exchange for another CHILD_SA (§1.3.1). A KE payload is
    /// sent when the policy's first proposal names a group (PFS).
    pub(crate) fn create_child(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        policy: ChildPolicy,
    ) -> Result<()> {
        self.create_child_inner(now, out, policy, None)
    }

    /// Rekeys the CHILD_SA whose inbound SPI is `spi_in` (§1.3.3): a new CHILD_SA with
    /// N(REKEY_SA) and the same selectors, then a Delete of the old one.
    pub(crate) fn rekey_child(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        spi_in: u32,
    ) -> Result<()> {
        let c = self
            .children
            .iter()
            .find(|c| c.spi_in == spi_in)
            .ok_or(Error::State("no such CHILD_SA"))?;
        let policy = c.policy.clone();
        self.create_child_inner(now, out, policy, Some(spi_in))
    }

    /// Deletes the CHILD_SA whose inbound SPI is `spi_in` (§1.4.1): INFORMATIONAL with a
    /// Delete payload naming our inbound SPI (§3.11). `ChildSaDown` is reported at once: we
    /// stop using the SA now, whatever the peer answers.
    pub(crate) fn delete_child(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        spi_in: u32,
    ) -> Result<()> {
        if self.state != State::Established {
            return Err(Error::State("IKE SA not established"));
        }
        let i = self
            .children
            .iter()
            .position(|c| c.spi_in == spi_in)
            .ok_or(Error::State("no such CHILD_SA"))?;
        let d = crate::wire::DeleteRepr {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![spi_in.to_be_bytes().to_vec()],
        };
        self.send_request(now, out, ExchangeType::INFORMATIONAL, &[Payload::Delete(d)])?;
        self.children.remove(i);
        out.events.push_back(Event::ChildSaDown {
            sa: self.id(),
            spi_in,
        });
        Ok(())
    }

    fn create_child_inner(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        policy: ChildPolicy,
        rekeys: Option<u32>,
    ) -> Result<()> {
        if self.state != State::Established {
            return Err(Error::State("IKE SA not established"));
        }
        if self.pending.is_some() {
            return Err(Error::State("a request is already in flight"));
        }
        let spi_in = new_child_spi(out);
        let mut ni = vec![0u8; 32];
        out.rng.fill(&mut ni);
        let group = policy
            .esp_proposals
            .first()
            .and_then(|p| p.groups.first())
            .copied();
        let ke = group.map(|g| KeyExchange::new(g, out.rng)).transpose()?;
        let mut p = Vec::new();
        if let Some(old) = rekeys {
            let n = crate::wire::NotifyRepr {
                protocol: ProtocolId::ESP,
                spi: old.to_be_bytes().to_vec(),
                ty: NotifyType::REKEY_SA,
                data: vec![],
            };
            p.push(Payload::Notify(n));
        }
        p.extend(self.child_offer(&policy, spi_in, true));
        p.push(Payload::Nonce(ni.clone()));
        if let Some(k) = &ke {
            p.push(Payload::Ke(KeRepr {
                group: k.group(),
                data: k.public().to_vec(),
            }));
        }
        p.push(Payload::TsI(policy.ts_local.clone()));
        p.push(Payload::TsR(policy.ts_remote.clone()));
        self.send_request(now, out, ExchangeType::CREATE_CHILD_SA, &p)?;
        self.pending_child = Some(PendingChild {
            policy,
            rekeys,
            spi_in,
            ni,
            ke,
        });
        Ok(())
    }

    /// The reply to our CREATE_CHILD_SA.
    pub(crate) fn handle_create_child_response(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        p: &[Payload],
    ) -> Result<()> {
        let Some(pc) = self.pending_child.take() else {
            return Ok(());
        };
        let id = self.id();
        let result = (|| {
            if let Some(n) = p.error_notify() {
                return Err(n);
            }
            let nr = p.nonce().ok_or(NOPE)?.clone();
            let g_ir = match (pc.ke, p.ke()) {
                (Some(k), Some(theirs)) if theirs.group == k.group() => {
                    Some(k.agree(&theirs.data).map_err(|_| NOPE)?)
                }
                (None, None) => None,
                _ => return Err(NOPE),
            };
            self.complete_child(p, &pc.policy, pc.spi_in, (&pc.ni, &nr), g_ir.as_ref())
        })();
        let ok = result.is_ok();
        out.events.push_back(match result {
            Ok(child) => Event::ChildSaUp { sa: id, child },
            Err(notify) => Event::ChildSaFailed { sa: id, notify },
        });
        if let (true, Some(old)) = (ok, pc.rekeys) {
            // §1.3.3: the new CHILD_SA replaces the old one, which we now delete.
            if let Some(i) = self.children.iter().position(|c| c.spi_in == old) {
                self.children.remove(i);
                out.events.push_back(Event::ChildSaDown {
                    sa: id,
                    spi_in: old,
                });
                let d = crate::wire::DeleteRepr {
                    protocol: ProtocolId::ESP,
                    spi_size: 4,
                    spis: vec![old.to_be_bytes().to_vec()],
                };
                self.send_request(now, out, ExchangeType::INFORMATIONAL, &[Payload::Delete(d)])?;
            }
        }
        Ok(())
    }

    /// A CREATE_CHILD_SA request from the peer for a CHILD_SA (an IKE SA rekey goes to
    /// `rekey.rs`); a CHILD_SA rekey (N(REKEY_SA)) is accepted as a new CHILD_SA, and the
    /// peer deletes the old one.
    pub(crate) fn handle_create_child_request(
        &mut self,
        out: &mut Out<'_>,
        msg_id: u32,
        p: &[Payload],
    ) -> Result<()> {
        let reply_err = |s: &mut IkeSa, out: &mut Out<'_>, n: u16, data: Vec<u8>| {
            s.send_response(
                out,
                ExchangeType::CREATE_CHILD_SA,
                msg_id,
                &[notify(NotifyType(n), data)],
            )
        };
        let Some(ni) = p.nonce().cloned() else {
            return reply_err(self, out, NotifyType::INVALID_SYNTAX.0, vec![]);
        };
        // PFS: the group must be the one we would choose (§1.3.1, INVALID_KE_PAYLOAD).
        let policies: Vec<ChildPolicy> = std::iter::once(self.main_policy())
            .chain(self.cfg.extra_children.iter().cloned())
            .collect();
        let chosen_group = p
            .sa()
            .and_then(|o| {
                policies
                    .iter()
                    .find_map(|pol| select(&pol.esp_proposals, o, false))
            })
            .and_then(|(_, _, c)| c.group);
        let mut ke_reply = None;
        let g_ir = match (chosen_group, p.ke()) {
            (Some(g), Some(k)) if k.group == g => {
                let mine = KeyExchange::new(g, out.rng)?;
                ke_reply = Some(KeRepr {
                    group: g,
                    data: mine.public().to_vec(),
                });
                match mine.agree(&k.data) {
                    Ok(s) => Some(s),
                    Err(_) => return reply_err(self, out, NotifyType::INVALID_SYNTAX.0, vec![]),
                }
            }
            (Some(g), _) => {
                return reply_err(
                    self,
                    out,
                    NotifyType::INVALID_KE_PAYLOAD.0,
                    g.to_be_bytes().to_vec(),
                )
            }
            (None, _) => None,
        };
        let mut nr = vec![0u8; 32];
        out.rng.fill(&mut nr);
        match self.accept_child(out, p, (&ni, &nr), g_ir.as_ref()) {
            Ok((mut reply, child)) => {
                let at = reply
                    .iter()
                    .position(|x| matches!(x, Payload::TsI(_)))
                    .unwrap_or(reply.len());
                reply.insert(at, Payload::Nonce(nr));
                if let Some(k) = ke_reply {
                    reply.insert(at + 1, Payload::Ke(k));
                }
                self.send_response(out, ExchangeType::CREATE_CHILD_SA, msg_id, &reply)?;
                out.events.push_back(Event::ChildSaUp {
                    sa: self.id(),
                    child,
                });
                Ok(())
            }
            Err(n) => reply_err(self, out, n, vec![]),
        }
    }
}
