//! Rekeying the IKE SA when the peer asks (RFC 7296 §1.3.2, §2.18): a new IKE SA with new
//! SPIs and keys from SK_d of the old one; the CHILD_SAs move over; the peer, which
//! initiated the rekey, then deletes the old IKE SA. Both roles.
//!
//! ```text
//! HDR, SK {SA(SPIi'), Ni, KEi}  -->   <--  HDR, SK {SA(SPIr'), Nr, KEr}
//! ```

use super::exchange::{nonzero_u64, notify};
use super::ike_sa::{IkeSa, State};
use super::{Event, Out};
use crate::crypto::Secret;
use crate::crypto::{rekey_skeyseed, KeyExchange};
use crate::error::{Error, Result};
use crate::proposal::select;
use crate::proposal::{accept_reply, Chosen};
use crate::wire::payload::{KeRepr, PayloadsExt};
use crate::wire::{ExchangeType, NotifyType, Payload, ProtocolId};
use std::time::Instant;

impl IkeSa {
    pub(crate) fn handle_ike_rekey_request(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        msg_id: u32,
        p: &[Payload],
    ) -> Result<()> {
        let refuse = |s: &mut IkeSa, out: &mut Out<'_>, n: NotifyType, d: Vec<u8>| {
            s.send_response(out, ExchangeType::CREATE_CHILD_SA, msg_id, &[notify(n, d)])
        };
        let offers = p.sa().ok_or(Error::Missing {
            payload: 33,
            exchange: 36,
            direction: "request",
        })?;
        let Some((num, spi, chosen)) = select(&self.cfg.ike_proposals, offers, true) else {
            return refuse(self, out, NotifyType::NO_PROPOSAL_CHOSEN, vec![]);
        };
        let (Ok(spi), Some(ni), Some(ke)) =
            (<[u8; 8]>::try_from(spi.as_slice()), p.nonce(), p.ke())
        else {
            return refuse(self, out, NotifyType::INVALID_SYNTAX, vec![]);
        };
        let group = chosen.group.unwrap_or(0);
        if ke.group != group {
            return refuse(
                self,
                out,
                NotifyType::INVALID_KE_PAYLOAD,
                group.to_be_bytes().to_vec(),
            );
        }
        let mine = KeyExchange::new(group, out.rng)?;
        let public = mine.public().to_vec();
        let Ok(g_ir) = mine.agree(&ke.data) else {
            return refuse(self, out, NotifyType::INVALID_SYNTAX, vec![]);
        };
        let (old_prf, old) = (self.chosen.and_then(|c| c.prf), self.keys.as_ref());
        let (Some(old_prf), Some(old)) = (old_prf, old) else {
            return Err(Error::State("no keys"));
        };
        let mut nr = vec![0u8; 32];
        out.rng.fill(&mut nr);
        // §2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr) with the old SA's PRF,
        // then prf+ of the new SA with the new SPIs; the rekey initiator is SPIi.
        let seed = rekey_skeyseed(old_prf, &old.sk_d, g_ir.expose(), ni, &nr);
        let (spi_i, spi_r) = (u64::from_be_bytes(spi), nonzero_u64(out));
        let (new, info) = self.successor(now, false, (spi_i, spi_r), (ni, &nr), chosen, &seed)?;
        let reply = [
            Payload::Sa(vec![chosen.to_repr(
                num,
                ProtocolId::IKE,
                new.spi_r.to_be_bytes().to_vec(),
            )]),
            Payload::Nonce(nr),
            Payload::Ke(KeRepr {
                group,
                data: public,
            }),
        ];
        self.send_response(out, ExchangeType::CREATE_CHILD_SA, msg_id, &reply)?;
        out.events.push_back(Event::IkeSaRekeyed {
            old: self.id(),
            new: new.id(),
            info,
        });
        out.new_sas.push(new);
        Ok(())
    }

    /// The new IKE SA of a rekey: keys from `seed`, message IDs from 0, the CHILD_SAs,
    /// NAT state and keepalives taken over from `self`.
    fn successor(
        &mut self,
        now: Instant,
        initiator: bool,
        (spi_i, spi_r): (u64, u64),
        (ni, nr): (&[u8], &[u8]),
        chosen: Chosen,
        seed: &Secret,
    ) -> Result<(IkeSa, super::IkeSaInfo)> {
        let mut new = IkeSa::new(self.cfg.clone(), initiator, self.local, self.remote);
        (new.spi_i, new.spi_r) = (spi_i, spi_r);
        new.ni = ni.to_vec();
        new.nr = nr.to_vec();
        new.install_keys(chosen, seed)?;
        new.state = State::Established;
        (new.natt, new.nat_local, new.nat_remote) = (self.natt, self.nat_local, self.nat_remote);
        new.peer_rfc7427 = self.peer_rfc7427;
        new.children = std::mem::take(&mut self.children);
        new.keepalive_at = self.keepalive_at.take();
        new.last_rx = Some(now);
        let mut info = self
            .info
            .clone()
            .ok_or(Error::State("IKE SA not established"))?;
        (info.initiator, info.spi_i, info.spi_r, info.proposal) = (initiator, spi_i, spi_r, chosen);
        new.info = Some(info.clone());
        Ok((new, info))
    }

    /// Starts rekeying this IKE SA (§1.3.2) with the group it already uses.
    pub(crate) fn rekey_ike(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        if self.state != State::Established || self.pending.is_some() {
            return Err(Error::State("IKE SA busy or not established"));
        }
        let spi_i = nonzero_u64(out);
        let mut ni = vec![0u8; 32];
        out.rng.fill(&mut ni);
        let group = self
            .chosen
            .and_then(|c| c.group)
            .ok_or(Error::State("no group"))?;
        let ke = KeyExchange::new(group, out.rng)?;
        let spi = spi_i.to_be_bytes().to_vec();
        let props = self
            .cfg
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(i, p)| p.to_repr(i as u8 + 1, spi.clone(), true))
            .collect();
        let p = [
            Payload::Sa(props),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KeRepr {
                group,
                data: ke.public().to_vec(),
            }),
        ];
        self.send_request(now, out, ExchangeType::CREATE_CHILD_SA, &p)?;
        self.pending_ike_rekey = Some(PendingIkeRekey { spi_i, ni, ke });
        Ok(())
    }

    /// The answer to our IKE SA rekey: adopt the new SA, then delete this one (§2.18).
    pub(crate) fn handle_ike_rekey_response(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        p: &[Payload],
    ) -> Result<()> {
        let Some(pr) = self.pending_ike_rekey.take() else {
            return Ok(());
        };
        if p.error_notify().is_some() {
            return Ok(()); // the old SA lives on; the caller may try again later
        }
        let (spi, chosen) = accept_reply(
            &self.cfg.ike_proposals,
            p.sa()
                .ok_or(Error::PeerMisbehaved("rekey reply without SA"))?,
            true,
        )?;
        let spi_r = <[u8; 8]>::try_from(spi.as_slice())
            .map(u64::from_be_bytes)
            .map_err(|_| Error::PeerMisbehaved("rekey SPI size"))?;
        let (Some(nr), Some(ke)) = (p.nonce(), p.ke()) else {
            return Err(Error::PeerMisbehaved("rekey reply without Nr or KEr"));
        };
        if Some(ke.group) != chosen.group || ke.group != pr.ke.group() {
            return Err(Error::PeerMisbehaved("rekey KE group"));
        }
        let g_ir = pr.ke.agree(&ke.data)?;
        let (old_prf, old) = (self.chosen.and_then(|c| c.prf), self.keys.as_ref());
        let (Some(old_prf), Some(old)) = (old_prf, old) else {
            return Err(Error::State("no keys"));
        };
        let seed = rekey_skeyseed(old_prf, &old.sk_d, g_ir.expose(), &pr.ni, nr);
        let nr = nr.clone();
        let (new, info) =
            self.successor(now, true, (pr.spi_i, spi_r), (&pr.ni, &nr), chosen, &seed)?;
        out.events.push_back(Event::IkeSaRekeyed {
            old: self.id(),
            new: new.id(),
            info,
        });
        out.new_sas.push(new);
        self.delete(now, out)
    }
}

/// Our IKE SA rekey request in flight.
#[derive(Debug)]
pub(crate) struct PendingIkeRekey {
    spi_i: u64,
    ni: Vec<u8>,
    ke: KeyExchange,
}
