//! IKE_SA_INIT and IKE_AUTH for both roles (RFC 7296 §1.2), PSK authentication (§2.15),
//! NAT detection (§2.23), the first CHILD_SA with narrowing (§2.9) and transport mode
//! (§1.3.1), and the dispatch of every received message of an existing SA.
//!
//! ```text
//! HDR, SAi1, KEi, Ni, N(NATD_S), N(NATD_D)              -->
//!                <--  HDR, SAr1, KEr, Nr, N(NATD_S), N(NATD_D)
//! HDR, SK {IDi, [IDr,] AUTH, [N(USE_TRANSPORT_MODE),] SAi2, TSi, TSr}  -->
//!                <--  HDR, SK {IDr, AUTH, [N(USE_TRANSPORT_MODE),] SAr2, TSi, TSr}
//! ```

use super::ike_sa::{IkeSa, State};
use super::{AuthConfig, Event, Failure, IkeSaInfo, Out};
use crate::cert::{CERT_X509_SIGNATURE, SIG_HASHES};
use crate::crypto::{self, skeyseed, IkeKeys, KeyExchange, Secret, SkCipher};
use crate::error::{Error, Result};
use crate::proposal::{accept_reply, Chosen};
use crate::wire::payload::{
    find_notify, parse_chain, AuthRepr, CertRepr, DeleteRepr, IdRepr, KeRepr, NotifyRepr,
    PayloadsExt, AUTH_PSK,
};
use crate::wire::{rules, ExchangeType, Header, NotifyType, Payload, ProtocolId, HEADER_LEN};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

/// NAT_DETECTION hash: SHA-1(SPIi | SPIr | IP | Port) (RFC 7296 §2.23).
pub(crate) fn nat_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut c = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    c.update(&spi_i.to_be_bytes());
    c.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => c.update(&a.octets()),
        IpAddr::V6(a) => c.update(&a.octets()),
    }
    c.update(&addr.port().to_be_bytes());
    c.finish().as_ref().to_vec()
}

pub(crate) fn notify(ty: NotifyType, data: Vec<u8>) -> Payload {
    Payload::Notify(NotifyRepr::new(ty, data))
}

pub(crate) fn nonzero_u64(out: &mut Out<'_>) -> u64 {
    loop {
        let mut b = [0u8; 8];
        out.rng.fill(&mut b);
        let v = u64::from_be_bytes(b);
        if v != 0 {
            return v;
        }
    }
}

pub(crate) fn new_child_spi(out: &mut Out<'_>) -> u32 {
    loop {
        let mut b = [0u8; 4];
        out.rng.fill(&mut b);
        let v = u32::from_be_bytes(b);
        // SPIs 0..=255 are reserved (RFC 4303 §2.1).
        if v > 255 {
            return v;
        }
    }
}

impl IkeSa {
    // ---- initiator: IKE_SA_INIT -------------------------------------------------------

    /// Builds and sends the first IKE_SA_INIT request.
    pub(crate) fn start(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        self.spi_i = nonzero_u64(out);
        self.ni = vec![0; 32];
        out.rng.fill(&mut self.ni);
        let group = *self
            .cfg
            .ike_proposals
            .first()
            .and_then(|p| p.groups.first())
            .ok_or(Error::State("no IKE proposal"))?;
        self.ke = Some(KeyExchange::new(group, out.rng)?);
        self.send_init(now, out)
    }

    fn send_init(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        let ke = self.ke.as_ref().ok_or(Error::State("no key exchange"))?;
        let mut p = Vec::new();
        if let Some(c) = &self.cookie {
            // §2.6: the COOKIE notify comes first.
            p.push(notify(NotifyType::COOKIE, c.clone()));
        }
        let props = self
            .cfg
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(i, pr)| pr.to_repr(i as u8 + 1, vec![], true))
            .collect();
        p.push(Payload::Sa(props));
        p.push(Payload::Ke(KeRepr {
            group: ke.group(),
            data: ke.public().to_vec(),
        }));
        p.push(Payload::Nonce(self.ni.clone()));
        p.push(notify(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            nat_hash(self.spi_i, 0, self.local),
        ));
        p.push(notify(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_hash(self.spi_i, 0, self.remote),
        ));
        p.extend(self.init_extras(false));
        self.next_msg_id = 0;
        self.pending = None;
        self.send_request(now, out, ExchangeType::IKE_SA_INIT, &p)?;
        self.init_request = self
            .pending
            .as_ref()
            .map(|p| p.data.clone())
            .unwrap_or_default();
        Ok(())
    }

    fn handle_init_response(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        h: &Header,
        data: &[u8],
        p: &[Payload],
    ) -> Result<()> {
        if let Some(c) = find_notify(p, NotifyType::COOKIE) {
            // §2.6: retry with the cookie; one retry per cookie value.
            if self.cookie.as_ref() == Some(&c.data) {
                return Err(Error::PeerMisbehaved("same cookie twice"));
            }
            self.cookie = Some(c.data.clone());
            return self.send_init(now, out);
        }
        if let Some(n) = find_notify(p, NotifyType::INVALID_KE_PAYLOAD) {
            // §1.2: retry with the group the responder asked for, if we proposed it.
            let g = n
                .data
                .get(..2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .unwrap_or(0);
            let ours = self
                .cfg
                .ike_proposals
                .iter()
                .any(|pr| pr.groups.contains(&g));
            if !ours || self.ke.as_ref().is_some_and(|k| k.group() == g) {
                self.fail(out, Failure::PeerNotify(NotifyType::INVALID_KE_PAYLOAD.0));
                return Ok(());
            }
            self.ke = Some(KeyExchange::new(g, out.rng)?);
            return self.send_init(now, out);
        }
        if let Some(Payload::Notify(n)) = p
            .iter()
            .find(|x| matches!(x, Payload::Notify(n) if n.ty.is_error()))
        {
            self.fail(out, Failure::PeerNotify(n.ty.0));
            return Ok(());
        }
        let sa = p.sa().ok_or(Error::Missing {
            payload: 33,
            exchange: 34,
            direction: "response",
        })?;
        let (_, chosen) = accept_reply(&self.cfg.ike_proposals, sa, true)?;
        let ke = p.ke().ok_or(Error::Missing {
            payload: 34,
            exchange: 34,
            direction: "response",
        })?;
        let nr = p.nonce().ok_or(Error::Missing {
            payload: 40,
            exchange: 34,
            direction: "response",
        })?;
        let mine = self.ke.take().ok_or(Error::State("no key exchange"))?;
        if Some(ke.group) != chosen.group || mine.group() != ke.group {
            return Err(Error::PeerMisbehaved(
                "KE group differs from the chosen group",
            ));
        }
        self.spi_r = h.spi_r;
        self.nr = nr.clone();
        self.init_response = data.to_vec();
        let g_ir = mine.agree(&ke.data)?;
        self.derive_keys(chosen, &g_ir)?;
        self.detect_nat(p);
        self.peer_rfc7427 = find_notify(p, NotifyType::SIGNATURE_HASH_ALGORITHMS).is_some();
        self.pending = None;
        self.send_auth_request(now, out)
    }

    /// SKEYSEED and SK_* (§2.14); sets up the SK ciphers for our role.
    pub(crate) fn derive_keys(&mut self, chosen: Chosen, g_ir: &Secret) -> Result<()> {
        let prf = chosen.prf.ok_or(Error::State("IKE proposal without PRF"))?;
        let seed = skeyseed(prf, &self.ni, &self.nr, g_ir.expose());
        self.install_keys(chosen, &seed)
    }

    /// SK_* from SKEYSEED with this SA's nonces and SPIs (§2.14); the SK ciphers for our role.
    pub(crate) fn install_keys(&mut self, chosen: Chosen, seed: &Secret) -> Result<()> {
        let prf = chosen.prf.ok_or(Error::State("IKE proposal without PRF"))?;
        let k = IkeKeys::derive(
            prf,
            seed,
            (&self.ni, &self.nr),
            (self.spi_i, self.spi_r),
            (chosen.integ.key_len(), chosen.encr.key_len()),
        )?;
        let (ei, ai) = (
            SkCipher::new(chosen.encr, chosen.integ, k.sk_ei.clone(), k.sk_ai.clone())?,
            SkCipher::new(chosen.encr, chosen.integ, k.sk_er.clone(), k.sk_ar.clone())?,
        );
        let (tx, rx) = if self.initiator { (ei, ai) } else { (ai, ei) };
        self.tx = Some(tx);
        self.rx = Some(rx);
        self.keys = Some(k);
        self.chosen = Some(chosen);
        Ok(())
    }

    /// Compares the peer's NAT_DETECTION hashes with the addresses we see (§2.23).
    pub(crate) fn detect_nat(&mut self, p: &[Payload]) {
        let src: Vec<&NotifyRepr> = p
            .iter()
            .filter_map(|x| match x {
                Payload::Notify(n) if n.ty == NotifyType::NAT_DETECTION_SOURCE_IP => Some(n),
                _ => None,
            })
            .collect();
        let Some(dst) = find_notify(p, NotifyType::NAT_DETECTION_DESTINATION_IP) else {
            return; // the peer does not do NAT-T: stay on the IKE port
        };
        let si = self.spi_i;
        // The request's hashes were computed with SPIr = 0; the response's with both SPIs.
        let spi_r_used = if self.initiator { self.spi_r } else { 0 };
        let peer_seen = nat_hash(si, spi_r_used, self.remote);
        self.nat_remote = !src.iter().any(|n| n.data == peer_seen);
        self.nat_local = dst.data != nat_hash(si, spi_r_used, self.local);
        // RFC 5555 §5: move to the NAT-T port whenever both sides support it.
        self.natt = true;
        if self.initiator && self.remote.port() == self.cfg.ike_port {
            self.remote.set_port(self.cfg.natt_port);
        }
    }

    // ---- initiator: IKE_AUTH ------------------------------------------------------------

    /// Our AUTH payload, and before it our CERT when we use a certificate (§2.15).
    pub(crate) fn own_auth(&self, initiator_side: bool) -> Result<(Vec<Payload>, AuthRepr)> {
        match &self.cfg.auth {
            AuthConfig::Psk(_) => {
                let data = self.psk_auth(initiator_side, &self.cfg.local_id)?;
                Ok((
                    vec![],
                    AuthRepr {
                        method: AUTH_PSK,
                        data,
                    },
                ))
            }
            AuthConfig::Cert(c) => {
                let octets = self.signed_octets(initiator_side, &self.cfg.local_id)?;
                let cert = CertRepr {
                    encoding: CERT_X509_SIGNATURE,
                    data: c.cert().to_vec(),
                };
                Ok((
                    vec![Payload::Cert(cert)],
                    c.sign(&octets, self.peer_rfc7427)?,
                ))
            }
        }
    }

    /// Checks the peer's identity against the configuration and its AUTH payload.
    pub(crate) fn peer_auth_ok(
        &self,
        initiator_side: bool,
        id: &IdRepr,
        auth: &AuthRepr,
        p: &[Payload],
        unix_time: i64,
    ) -> bool {
        if self.cfg.remote_id.as_ref().is_some_and(|r| r != id) {
            return false;
        }
        match &self.cfg.auth {
            AuthConfig::Psk(_) => {
                let expect = self.psk_auth(initiator_side, id);
                auth.method == AUTH_PSK
                    && expect.is_ok_and(|e| crypto::cipher::ct_eq(&e, &auth.data))
            }
            AuthConfig::Cert(c) => {
                let certs: Vec<&[u8]> = p
                    .iter()
                    .filter_map(|x| match x {
                        Payload::Cert(c) if c.encoding == CERT_X509_SIGNATURE => {
                            Some(c.data.as_slice())
                        }
                        _ => None,
                    })
                    .collect();
                let Ok(octets) = self.signed_octets(initiator_side, id) else {
                    return false;
                };
                c.verify_peer(&certs, id, auth, &octets, unix_time).is_ok()
            }
        }
    }

    /// SIGNATURE_HASH_ALGORITHMS (RFC 7427 §4) for IKE_SA_INIT, and CERTREQ, which the
    /// responder sends in IKE_SA_INIT and the initiator in IKE_AUTH (RFC 7296 §1.2).
    pub(crate) fn init_extras(&self, certreq: bool) -> Vec<Payload> {
        let mut v = vec![notify(
            NotifyType::SIGNATURE_HASH_ALGORITHMS,
            SIG_HASHES.to_vec(),
        )];
        v.extend(self.certreq().filter(|_| certreq));
        v
    }

    pub(crate) fn certreq(&self) -> Option<Payload> {
        match &self.cfg.auth {
            AuthConfig::Cert(c) => Some(Payload::CertReq(CertRepr {
                encoding: CERT_X509_SIGNATURE,
                data: c.certreq(),
            })),
            AuthConfig::Psk(_) => None,
        }
    }

    /// The signed octets of §2.15 for the side that sent `id`.
    fn signed_octets(&self, initiator_side: bool, id: &IdRepr) -> Result<Vec<u8>> {
        let k = self.keys.as_ref().ok_or(Error::State("no keys"))?;
        let prf = self
            .chosen
            .and_then(|c| c.prf)
            .ok_or(Error::State("no PRF"))?;
        let (msg, nonce, sk_p) = if initiator_side {
            (&self.init_request, &self.nr, &k.sk_pi)
        } else {
            (&self.init_response, &self.ni, &k.sk_pr)
        };
        let maced = prf.prf(sk_p.expose(), &[&id.body()]);
        let mut v = Vec::with_capacity(msg.len() + nonce.len() + maced.len());
        v.extend_from_slice(msg);
        v.extend_from_slice(nonce);
        v.extend_from_slice(maced.expose());
        Ok(v)
    }

    /// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), <SignedOctets>) (§2.15).
    pub(crate) fn psk_auth(&self, initiator_side: bool, id: &IdRepr) -> Result<Vec<u8>> {
        let prf = self
            .chosen
            .and_then(|c| c.prf)
            .ok_or(Error::State("no PRF"))?;
        let octets = self.signed_octets(initiator_side, id)?;
        let AuthConfig::Psk(psk) = &self.cfg.auth else {
            return Err(Error::State("no pre-shared key"));
        };
        let pad = prf.prf(psk.expose(), &[b"Key Pad for IKEv2"]);
        Ok(prf.prf(pad.expose(), &[&octets]).expose().to_vec())
    }

    fn send_auth_request(&mut self, now: Instant, out: &mut Out<'_>) -> Result<()> {
        let mut p = vec![
            Payload::IdI(self.cfg.local_id.clone()),
            notify(NotifyType::INITIAL_CONTACT, vec![]),
        ];
        if let Some(r) = &self.cfg.remote_id {
            p.push(Payload::IdR(r.clone()));
        }
        let (mut certs, auth) = self.own_auth(true)?;
        certs.extend(self.certreq());
        p.splice(1..1, certs);
        p.push(Payload::Auth(auth));
        self.child_spi = new_child_spi(out);
        p.extend(self.child_offer(&self.main_policy(), self.child_spi, false));
        p.push(Payload::TsI(self.cfg.ts_local.clone()));
        p.push(Payload::TsR(self.cfg.ts_remote.clone()));
        self.state = State::ExpectAuthResponse;
        self.send_request(now, out, ExchangeType::IKE_AUTH, &p)
    }

    fn handle_auth_response(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        p: &[Payload],
    ) -> Result<()> {
        let auth = p.auth();
        let idr = p.idr();
        let (Some(auth), Some(idr)) = (auth, idr) else {
            let n = p.iter().find_map(|x| match x {
                Payload::Notify(n) if n.ty.is_error() => Some(n.ty.0),
                _ => None,
            });
            self.fail(out, n.map_or(Failure::AuthFailed, Failure::PeerNotify));
            return Ok(());
        };
        if !self.peer_auth_ok(false, idr, auth, p, out.unix_time) {
            self.fail(out, Failure::AuthFailed);
            return Ok(());
        }
        self.establish(now, out, idr.clone());
        let (policy, nonces) = (self.main_policy(), (self.ni.clone(), self.nr.clone()));
        match self.complete_child(p, &policy, self.child_spi, (&nonces.0, &nonces.1), None) {
            Ok(c) => out.events.push_back(Event::ChildSaUp {
                sa: self.id(),
                child: c,
            }),
            Err(n) => {
                out.events.push_back(Event::ChildSaFailed {
                    sa: self.id(),
                    notify: n,
                });
                // The responder installed a CHILD_SA we refuse (e.g. tunnel instead of
                // transport): delete it (§1.4.1); the SPI is the one we would receive on.
                if p.error_notify().is_none() && p.sa().is_some() {
                    let d = DeleteRepr {
                        protocol: ProtocolId::ESP,
                        spi_size: 4,
                        spis: vec![self.child_spi.to_be_bytes().to_vec()],
                    };
                    self.send_request(
                        now,
                        out,
                        ExchangeType::INFORMATIONAL,
                        &[Payload::Delete(d)],
                    )?;
                }
            }
        }
        Ok(())
    }

    pub(crate) fn establish(&mut self, now: Instant, out: &mut Out<'_>, remote_id: IdRepr) {
        self.state = State::Established;
        self.expires_at = None;
        self.last_rx = Some(now);
        if self.nat_local {
            self.keepalive_at = Some(now + self.cfg.keepalive);
        }
        let info = IkeSaInfo {
            initiator: self.initiator,
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            proposal: self.chosen.unwrap_or(Chosen {
                encr: crypto::Encr::ChaCha20Poly1305,
                integ: crypto::Integ::None,
                prf: None,
                group: None,
                esn: false,
            }),
            local: SocketAddr::new(self.local.ip(), self.local_port()),
            remote: self.remote,
            nat_local: self.nat_local,
            nat_remote: self.nat_remote,
            remote_id,
        };
        self.info = Some(info.clone());
        out.events.push_back(Event::IkeSaUp {
            sa: self.id(),
            info,
        });
    }

    // ---- dispatch -----------------------------------------------------------------------

    /// A message for this SA (the header already parsed and matched to us).
    pub(crate) fn handle(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        remote: SocketAddr,
        h: &Header,
        data: &[u8],
    ) -> Result<()> {
        if h.flags.response() {
            return self.handle_response(now, out, h, data);
        }
        if self.initiator == h.flags.initiator() {
            return Err(Error::PeerMisbehaved("request with our own initiator flag"));
        }
        if h.message_id.wrapping_add(1) == self.peer_msg_id {
            // §2.1: a retransmitted request gets the same response again.
            if let Some((_, r)) = &self.last_response {
                let r = r.clone();
                self.push(out, &r);
            }
            return Ok(());
        }
        if h.message_id != self.peer_msg_id || h.exchange == ExchangeType::IKE_SA_INIT {
            return Err(Error::BadValue {
                field: "message ID",
                offset: 20,
                value: h.message_id,
            });
        }
        let p = match self.open(h, data) {
            Ok(p) => p,
            Err(Error::UnsupportedCritical { payload, .. }) => {
                // §2.5: reject the whole message, naming the payload type.
                return self.send_response(
                    out,
                    h.exchange,
                    h.message_id,
                    &[notify(
                        NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD,
                        vec![payload],
                    )],
                );
            }
            Err(e) => return Err(e),
        };
        self.follow_peer(out, remote);
        self.last_rx = Some(now);
        match (h.exchange, self.state) {
            (ExchangeType::IKE_AUTH, State::ExpectAuth) => {
                self.handle_auth_request(now, out, h.message_id, &p)
            }
            (ExchangeType::INFORMATIONAL, State::Established | State::Deleting) => {
                self.handle_informational(out, h.message_id, &p)
            }
            (ExchangeType::CREATE_CHILD_SA, State::Established) => {
                let ike = p
                    .sa()
                    .is_some_and(|o| o.iter().any(|x| x.protocol == ProtocolId::IKE));
                if ike {
                    self.handle_ike_rekey_request(now, out, h.message_id, &p)
                } else {
                    self.handle_create_child_request(out, h.message_id, &p)
                }
            }
            _ => Err(Error::State("request not valid in this state")),
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        out: &mut Out<'_>,
        h: &Header,
        data: &[u8],
    ) -> Result<()> {
        if self.initiator == h.flags.initiator() {
            return Err(Error::PeerMisbehaved(
                "response with our own initiator flag",
            ));
        }
        let Some(pend) = &self.pending else {
            return Err(Error::State("no request in flight"));
        };
        if pend.msg_id != h.message_id || pend.exchange != h.exchange {
            return Err(Error::BadValue {
                field: "message ID",
                offset: 20,
                value: h.message_id,
            });
        }
        if h.exchange == ExchangeType::IKE_SA_INIT {
            let p = parse_chain(h.next_payload, &data[HEADER_LEN..], HEADER_LEN)?;
            rules::check(h.exchange, true, false, &p)?;
            return self.handle_init_response(now, out, h, data, &p);
        }
        let p = self.open(h, data)?;
        self.pending = None;
        self.last_rx = Some(now);
        match h.exchange {
            ExchangeType::IKE_AUTH => self.handle_auth_response(now, out, &p),
            ExchangeType::INFORMATIONAL => {
                self.handle_informational_response(out);
                Ok(())
            }
            ExchangeType::CREATE_CHILD_SA if self.pending_ike_rekey.is_some() => {
                self.handle_ike_rekey_response(now, out, &p)
            }
            ExchangeType::CREATE_CHILD_SA => self.handle_create_child_response(now, out, &p),
            _ => Ok(()),
        }
    }

    /// An authenticated message from a new address: follow the peer if it is behind a NAT
    /// (§2.23) or the SA was told to (`follow_any`: a home agent's K-flag binding, RFC 4877
    /// §4.4); MOBIKE (RFC 4555) will widen this.
    fn follow_peer(&mut self, out: &mut Out<'_>, remote: SocketAddr) {
        if remote == self.remote {
            return;
        }
        if self.state == State::ExpectAuth && self.natt && remote.ip() == self.remote.ip() {
            // The initiator floated to the NAT-T port (§2.23): answer there.
            self.remote = remote;
        } else if (self.nat_remote || self.follow_any) && self.state == State::Established {
            // RFC 4877 §4.4: with K, the peer's new care-of address moves the SA.
            self.move_peer(remote);
            out.events.push_back(Event::PeerAddressChanged {
                sa: self.id(),
                remote,
            });
        }
    }

    /// Sends to `remote` from now on (a home agent's K-flag binding moved, RFC 4877 §4.4).
    pub(crate) fn move_peer(&mut self, remote: SocketAddr) {
        self.remote = remote;
        if let Some(i) = self.info.as_mut() {
            i.remote = remote;
        }
    }
}
