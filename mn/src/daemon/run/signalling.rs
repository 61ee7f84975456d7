//! The signalling half of the mobile node's main loop: Binding Updates out, over IPv4 in
//! UDP 4191 (RFC 5555 §4.2, §5.2.1) or natively over IPv6 (RFC 6275 §11.7.1), each under
//! ESP transport mode with the home-address SA (RFC 4877 §4.1); Binding Acknowledgements
//! in, from UDP 4191 or, for an IPv6 care-of address, behind a type 2 routing header.
//! Tunnelled data arriving on UDP 4191 is handed to the data plane.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use mipsec::wire::ip::{Ipv6Repr, IPPROTO_ESP, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::tunnel::{Outer, DSMIPV6_PORT};
use mipsec::wire::MhRepr;
use mn::engine::BaContext;
use tracing::{debug, info, warn};

use super::super::dataplane::{classify, Payload};
use super::super::ipv6;
use super::Daemon;

impl Daemon {
    /// `IPv4 / UDP 4191 / IPv6 / ESP / MH` (RFC 5555 §5.2.1): ESP transport mode on the
    /// IPv6 packet, the kernel adds UDP and IPv4.
    pub(super) async fn send_bu(&mut self, t: &mn::output::Transmit) {
        let Some(outer) = t.outer else {
            return self.send_bu_v6(t);
        };
        // The BU leaves from the care-of address it registers (RFC 5555 §4.4.2: the IPv4
        // Care-of Address option must match the outer source unless a NAT rewrites it).
        if let Outer::V4 { src, .. } = outer.outer {
            self.rebind(src);
        }
        let mut clear = vec![0u8; t.ipv6_len()];
        if let Err(e) = t.emit_ipv6(&mut clear) {
            warn!(error = %e, "Binding Update could not be built");
            return;
        }
        let mut wire = vec![0u8; clear.len() + 64];
        let Some(n) = self.ipsec.seal(&clear, &mut wire) else {
            self.state.bu_held_no_sa += 1;
            warn!(
                sequence = t.sequence(),
                "Binding Update not sent: no SA (the engine retransmits)"
            );
            return;
        };
        match self
            .sock
            .send_to(&wire[..n], (self.ha4, DSMIPV6_PORT))
            .await
        {
            Ok(_) => debug!(sequence = t.sequence(), len = n, "Binding Update sent"),
            Err(e) => warn!(error = %e, "Binding Update send failed"),
        }
    }

    /// A BU from an IPv6 care-of address (RFC 6275 §11.7.1, RFC 4877 §4.1): `IPv6 (CoA ->
    /// HA) / Destination Options (Home Address) / ESP / MH`, ESP transport mode with the
    /// home-address SA, whole on the raw IPv6 socket. The home agent's kernel must know
    /// MIP6 to accept it; without an answer the engine falls back to IPv4 (§4.4.1).
    fn send_bu_v6(&mut self, t: &mn::output::Transmit) {
        let Some(raw6) = self.raw6.as_ref() else {
            warn!(src = %t.ipv6_src, "Binding Update over IPv6 not sent: daemon.ipv6_care_of is off");
            return;
        };
        let mut clear = vec![0u8; t.ipv6_len()];
        if let Err(e) = t.emit_ipv6(&mut clear) {
            warn!(error = %e, "Binding Update could not be built");
            return;
        }
        let mut wire = vec![0u8; clear.len() + 64];
        let Some(n) = self.ipsec.seal(&clear, &mut wire) else {
            self.state.bu_held_no_sa += 1;
            return;
        };
        match raw6.send(&wire[..n]) {
            Ok(_) => {
                info!(sequence = t.sequence(), coa = %t.ipv6_src, "Binding Update sent over IPv6")
            }
            Err(e) => warn!(error = %e, coa = %t.ipv6_src, "Binding Update over IPv6 not sent"),
        }
    }

    /// `IPv6 (HA -> CoA) / type 2 routing header (HoA) / ESP / MH BA` (RFC 6275 §6.4,
    /// §11.7.1; RFC 4877 §4.1: ESP behind the routing header, transport mode with the
    /// home-address SA). A cleartext BA goes to the engine unprotected, which drops it.
    pub(super) fn ba_v6(&mut self, pkt: &mut [u8]) {
        let hoa = self.mn.config().home_address;
        let range = match ipv6::rh2_then(pkt, &hoa) {
            Ok(true) => match self.ipsec.open(pkt) {
                Some(r) => Some(r),
                None => {
                    self.state.ba_dropped += 1;
                    return;
                }
            },
            Ok(false) => None,
            Err(why) => {
                self.state.ba_dropped += 1;
                debug!(why, "IPv6 signalling packet from the home agent dropped");
                return;
            }
        };
        let protected = range.is_some();
        let pkt = &pkt[range.unwrap_or(0..pkt.len())];
        let mh = match ipv6::ba_mh(pkt, &hoa) {
            Ok(mh) => mh,
            Err(why) => {
                self.state.ba_dropped += 1;
                debug!(why, "Binding Acknowledgement over IPv6 dropped");
                return;
            }
        };
        let ctx = BaContext {
            src: self.ha6,
            protected,
            udp_from: None,
        };
        match self.mn.handle_ba(Instant::now(), &ctx, &mh) {
            Ok(outcome) => debug!(?outcome, "Binding Acknowledgement over IPv6"),
            Err(e) => info!(error = %e, "Binding Acknowledgement over IPv6 dropped"),
        }
    }

    /// A datagram on UDP 4191: a BA from the home agent, ESP-protected.
    pub(super) fn datagram(&mut self, pkt: &mut [u8], from: SocketAddr) {
        if from != SocketAddr::new(IpAddr::V4(self.ha4), DSMIPV6_PORT) {
            self.state.ba_dropped += 1;
            debug!(%from, "datagram not from the home agent's UDP 4191 dropped");
            return;
        }
        match classify(pkt) {
            Payload::Signalling => {}
            Payload::Data => {
                match self.data.as_mut() {
                    Some(d) => d.inbound(pkt),
                    None => {
                        self.state.data_dropped += 1;
                        debug!("tunnelled packet dropped: no data plane configured");
                    }
                }
                return;
            }
            Payload::Malformed => {
                self.state.ba_dropped += 1;
                debug!("malformed datagram dropped");
                return;
            }
        }
        let Ok(ip6) = Ipv6Repr::parse(pkt) else {
            self.state.ba_dropped += 1;
            return;
        };
        let (range, protected) = if ip6.next_header == IPPROTO_ESP {
            match self.ipsec.open(pkt) {
                Some(r) => (r, true),
                None => {
                    self.state.ba_dropped += 1;
                    return;
                }
            }
        } else {
            (0..pkt.len(), false)
        };
        let Some(mh) = mh_of(&pkt[range]) else {
            self.state.ba_dropped += 1;
            debug!("no Mobility Header in the packet: dropped");
            return;
        };
        let ctx = BaContext {
            src: ip6.src,
            protected,
            udp_from: Some((self.ha4, DSMIPV6_PORT)),
        };
        match self.mn.handle_ba(Instant::now(), &ctx, &mh) {
            Ok(outcome) => debug!(?outcome, "Binding Acknowledgement"),
            Err(e) => info!(error = %e, "Binding Acknowledgement dropped"),
        }
    }
}

/// The Mobility Header of an IPv6 packet, behind at most one routing header (type 2,
/// RFC 6275 §6.4).
fn mh_of(pkt: &[u8]) -> Option<MhRepr> {
    let ip6 = Ipv6Repr::parse(pkt).ok()?;
    let mut at = Ipv6Repr::HEADER_LEN;
    let mut next = ip6.next_header;
    if next == IPPROTO_ROUTING {
        let h = pkt.get(at..at + 2)?;
        next = h[0];
        at += (usize::from(h[1]) + 1) * 8;
    }
    if next != IPPROTO_MH {
        return None;
    }
    MhRepr::parse_bytes(pkt.get(at..)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mh_is_found_behind_a_routing_header_and_not_in_garbage() {
        assert!(mh_of(&[0u8; 10]).is_none());
        // IPv6 header announcing UDP: no MH.
        let mut p = vec![0u8; 48];
        p[0] = 0x60;
        p[5] = 8;
        p[6] = 17;
        assert!(mh_of(&p).is_none());
    }
}
