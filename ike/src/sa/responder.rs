//! The responder's side of IKE_SA_INIT and IKE_AUTH (RFC 7296 §1.2): proposal and group
//! selection with INVALID_KE_PAYLOAD (§1.2, §2.7), PSK verification (§2.15), CHILD_SA
//! narrowing (§2.9) and transport mode (§1.3.1).
//!
//! ```text
//! HDR, SAi1, KEi, Ni  -->   <--  HDR, SAr1, KEr, Nr   |   HDR, N(INVALID_KE_PAYLOAD)
//! HDR, SK {IDi, AUTH, SAi2, TSi, TSr}  -->   <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
//! ```

use super::exchange::{nat_hash, nonzero_u64, notify};
use super::ike_sa::IkeSa;
use super::{Config, Event, Failure, Out};
use crate::crypto::KeyExchange;
use crate::error::{Error, Result};
use crate::proposal::select;
use crate::wire::payload::{find_notify, KeRepr, PayloadsExt};
use crate::wire::{ExchangeType, Header, NotifyType, Payload, ProtocolId};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

impl IkeSa {
    /// Answers a new IKE_SA_INIT request. `Ok(Err(reply))` is a stateless error reply.
    pub(crate) fn respond_init(
        cfg: Arc<Config>,
        now: Instant,
        out: &mut Out<'_>,
        (local, remote): (SocketAddr, SocketAddr),
        h: &Header,
        data: &[u8],
        p: &[Payload],
    ) -> core::result::Result<IkeSa, Vec<u8>> {
        let mut sa = IkeSa::new(cfg.clone(), false, local, remote);
        sa.spi_i = h.spi_i;
        let err = |sa: &IkeSa, ty: NotifyType, d: Vec<u8>| {
            sa.plain_message(ExchangeType::IKE_SA_INIT, 0, true, &[notify(ty, d)])
        };
        let offers = p.sa();
        let ke = p.ke();
        let ni = p.nonce();
        let (Some(offers), Some(ke), Some(ni)) = (offers, ke, ni) else {
            return Err(err(&sa, NotifyType::INVALID_SYNTAX, vec![]));
        };
        let Some((num, _, chosen)) = select(&cfg.ike_proposals, offers, true) else {
            return Err(err(&sa, NotifyType::NO_PROPOSAL_CHOSEN, vec![]));
        };
        let group = chosen.group.unwrap_or(0);
        if ke.group != group {
            // §1.2: tell the initiator which group to use.
            return Err(err(
                &sa,
                NotifyType::INVALID_KE_PAYLOAD,
                group.to_be_bytes().to_vec(),
            ));
        }
        let Ok(mine) = KeyExchange::new(group, out.rng) else {
            return Err(err(&sa, NotifyType::NO_PROPOSAL_CHOSEN, vec![]));
        };
        sa.spi_r = nonzero_u64(out);
        sa.ni = ni.clone();
        sa.nr = vec![0; 32];
        out.rng.fill(&mut sa.nr);
        sa.init_request = data.to_vec();
        let public = mine.public().to_vec();
        let Ok(g_ir) = mine.agree(&ke.data) else {
            return Err(err(&sa, NotifyType::INVALID_SYNTAX, vec![]));
        };
        if sa.derive_keys(chosen, &g_ir).is_err() {
            return Err(err(&sa, NotifyType::NO_PROPOSAL_CHOSEN, vec![]));
        }
        sa.detect_nat(p);
        sa.peer_rfc7427 = find_notify(p, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some();
        let natt = sa.natt;
        sa.natt = false; // the response still goes out on the port the request came in on
        let reply = vec![
            Payload::Sa(vec![chosen.to_repr(num, ProtocolId::IKE, vec![])]),
            Payload::Ke(KeRepr {
                group,
                data: public,
            }),
            Payload::Nonce(sa.nr.clone()),
            notify(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                nat_hash(sa.spi_i, sa.spi_r, local),
            ),
            notify(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_hash(sa.spi_i, sa.spi_r, remote),
            ),
        ];
        let mut reply = reply;
        reply.extend(sa.init_extras(true));
        sa.natt = local.port() == cfg.natt_port;
        if sa
            .send_response(out, ExchangeType::IKE_SA_INIT, 0, &reply)
            .is_err()
        {
            return Err(err(&sa, NotifyType::INVALID_SYNTAX, vec![]));
        }
        sa.init_response = sa
            .last_response
            .as_ref()
            .map(|r| r.1.clone())
            .unwrap_or_default();
        sa.natt = natt;
        sa.expires_at = Some(now + cfg.half_open_timeout);
        Ok(sa)
    }

    pub(crate) fn handle_auth_request(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        msg_id: u32,
        p: &[Payload],
    ) -> Result<()> {
        let idi = p.idi().ok_or(Error::Missing {
            payload: 35,
            exchange: 35,
            direction: "request",
        })?;
        let auth = p.auth().ok_or(Error::Missing {
            payload: 39,
            exchange: 35,
            direction: "request",
        })?;
        if !self.peer_auth_ok(true, idi, auth, p, out.unix_time) {
            // §2.21.2: answer AUTHENTICATION_FAILED and forget the SA.
            self.send_response(
                out,
                ExchangeType::IKE_AUTH,
                msg_id,
                &[notify(NotifyType::AUTHENTICATION_FAILED, vec![])],
            )?;
            self.fail(out, Failure::AuthFailed);
            return Ok(());
        }
        let (certs, auth) = self.own_auth(false)?;
        let mut reply = vec![Payload::IdR(self.cfg.local_id.clone())];
        reply.extend(certs);
        reply.push(Payload::Auth(auth));
        let nonces = (self.ni.clone(), self.nr.clone());
        let child = self.accept_child(out, p, (&nonces.0, &nonces.1), None);
        match &child {
            Ok((payloads, _)) => reply.extend(payloads.iter().cloned()),
            Err(n) => reply.push(notify(NotifyType(*n), vec![])),
        }
        self.send_response(out, ExchangeType::IKE_AUTH, msg_id, &reply)?;
        self.establish(now, out, idi.clone());
        match child {
            Ok((_, c)) => out.events.push_back(Event::ChildSaUp {
                sa: self.id(),
                child: c,
            }),
            Err(n) => out.events.push_back(Event::ChildSaFailed {
                sa: self.id(),
                notify: n,
            }),
        }
        Ok(())
    }
}
