//! Exchange tests: two engines, a simulated network (optional NAT, loss) and virtual time.
//! Each test notes the RFC 7296 exchange it drives.

use ike::crypto::SeededRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint, Event, Failure, Mode, SaId, Transmit};
use ike::wire::{ProtocolId, TrafficSelector};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const I_PRIV: &str = "10.1.0.2";
const I_PUB: &str = "198.51.100.2";
const R_ADDR: &str = "192.0.2.1";

struct Pair {
    now: Instant,
    i: Endpoint,
    r: Endpoint,
    /// Initiator behind a NAT: its source becomes I_PUB with port + 10000.
    nat: bool,
    /// Drop the next n datagrams sent by the responder / by the initiator.
    drop_r: usize,
    drop_i: usize,
    /// Drop the responder's next datagram of this exchange type.
    drop_r_exchange: Option<u8>,
    /// Every datagram delivered, for transcript comparison.
    wire: Vec<Vec<u8>>,
    i_events: Vec<Event>,
    r_events: Vec<Event>,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(ike: &str, esp: &str, local_id: &str, remote_id: &str, psk: &[u8]) -> Config {
    let mut c = Config::psk(local_id, Some(remote_id), psk);
    c.ike_proposals = ike
        .split(',')
        .map(|p| Proposal::parse(p, ProtocolId::IKE).unwrap())
        .collect();
    c.esp_proposals = esp
        .split(',')
        .map(|p| Proposal::parse(p, ProtocolId::ESP).unwrap())
        .collect();
    c
}

fn initiator_cfg(ike: &str, esp: &str) -> Config {
    let mut c = cfg(
        ike,
        esp,
        "mn@example.org",
        "ha.example.org",
        b"correct horse battery staple",
    );
    c.ts_local = vec![TrafficSelector::prefix(ip("10.88.0.0"), 24)];
    c.ts_remote = vec![TrafficSelector::prefix(ip("10.99.0.0"), 24)];
    c
}

fn responder_cfg(ike: &str, esp: &str) -> Config {
    let mut c = cfg(
        ike,
        esp,
        "ha.example.org",
        "mn@example.org",
        b"correct horse battery staple",
    );
    c.ts_local = vec![TrafficSelector::prefix(ip("10.99.0.0"), 16)];
    c.ts_remote = vec![TrafficSelector::prefix(ip("10.88.0.0"), 28)];
    c
}

impl Pair {
    fn new(responder: Config, seed: u64) -> Pair {
        Pair {
            now: Instant::now(),
            i: Endpoint::new(None, Box::new(SeededRng::new(seed))),
            r: Endpoint::new(Some(responder), Box::new(SeededRng::new(seed + 1))),
            nat: false,
            drop_r: 0,
            drop_i: 0,
            drop_r_exchange: None,
            wire: vec![],
            i_events: vec![],
            r_events: vec![],
        }
    }

    fn i_addr(&self) -> IpAddr {
        ip(if self.nat { I_PRIV } else { I_PUB })
    }

    fn connect(&mut self, c: Config) -> SaId {
        let local = SocketAddr::new(self.i_addr(), 500);
        self.i
            .connect(self.now, local, SocketAddr::new(ip(R_ADDR), 500), c)
            .unwrap()
    }

    /// Delivers datagrams until both sides are quiet. Returns how many were delivered.
    fn drive(&mut self) -> usize {
        let mut n = 0;
        loop {
            let mut moved = false;
            while let Some(t) = self.i.poll_transmit() {
                moved = true;
                if self.drop_i > 0 {
                    self.drop_i -= 1;
                    continue;
                }
                self.deliver_to_r(t);
                n += 1;
            }
            while let Some(t) = self.r.poll_transmit() {
                moved = true;
                if self.drop_r > 0 {
                    self.drop_r -= 1;
                    continue;
                }
                let ex = if t.data.starts_with(&[0; 4]) {
                    t.data.get(22)
                } else {
                    t.data.get(18)
                };
                if ex.is_some() && ex.copied() == self.drop_r_exchange {
                    self.drop_r_exchange = None;
                    continue;
                }
                self.deliver_to_i(t);
                n += 1;
            }
            while let Some(e) = self.i.poll_event() {
                self.i_events.push(e);
            }
            while let Some(e) = self.r.poll_event() {
                self.r_events.push(e);
            }
            if !moved {
                return n;
            }
        }
    }

    fn deliver_to_r(&mut self, t: Transmit) {
        let src = if self.nat {
            SocketAddr::new(ip(I_PUB), t.local_port + 10000)
        } else {
            SocketAddr::new(ip(I_PUB), t.local_port)
        };
        self.wire.push(t.data.clone());
        let (r, now) = (&mut self.r, self.now);
        r.handle_datagram(now, t.remote, src, &t.data);
    }

    fn deliver_to_i(&mut self, t: Transmit) {
        let mut dst = t.remote;
        if self.nat {
            assert_eq!(dst.ip(), ip(I_PUB));
            dst = SocketAddr::new(ip(I_PRIV), dst.port() - 10000);
        }
        self.wire.push(t.data.clone());
        let src = SocketAddr::new(ip(R_ADDR), t.local_port);
        let (i, now) = (&mut self.i, self.now);
        i.handle_datagram(now, dst, src, &t.data);
    }

    /// Advances virtual time to the next timeout of either side and fires it.
    fn step_time(&mut self) -> bool {
        let next = [self.i.poll_timeout(), self.r.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        let Some(t) = next else { return false };
        self.now = self.now.max(t);
        self.i.handle_timeout(self.now);
        self.r.handle_timeout(self.now);
        true
    }

    fn child(events: &[Event]) -> Option<&ike::sa::ChildSa> {
        events.iter().find_map(|e| {
            if let Event::ChildSaUp { child, .. } = e {
                Some(child)
            } else {
                None
            }
        })
    }

    fn ike_up(events: &[Event]) -> Option<&ike::sa::IkeSaInfo> {
        events.iter().find_map(|e| {
            if let Event::IkeSaUp { info, .. } = e {
                Some(info)
            } else {
                None
            }
        })
    }
}

/// Asserts both sides have the IKE SA and a CHILD_SA whose keys and SPIs mirror each other.
fn assert_established(p: &Pair) -> (ike::sa::ChildSa, ike::sa::ChildSa) {
    let (ii, ri) = (
        Pair::ike_up(&p.i_events).expect("initiator IKE SA up"),
        Pair::ike_up(&p.r_events).expect("responder IKE SA up"),
    );
    assert_eq!((ii.spi_i, ii.spi_r), (ri.spi_i, ri.spi_r));
    assert_eq!(ii.proposal, ri.proposal);
    let (ci, cr) = (
        Pair::child(&p.i_events).expect("initiator child").clone(),
        Pair::child(&p.r_events).expect("responder child").clone(),
    );
    assert_eq!(ci.spi_out, cr.spi_in);
    assert_eq!(ci.spi_in, cr.spi_out);
    assert_eq!(ci.keys.enc_out, cr.keys.enc_in);
    assert_eq!(ci.keys.auth_out, cr.keys.auth_in);
    assert_eq!(ci.keys.enc_in, cr.keys.enc_out);
    assert_ne!(ci.keys.enc_in, ci.keys.enc_out);
    assert_eq!(ci.keys.enc_out.len(), ci.proposal.encr.key_len());
    assert_eq!(ci.ts_local, cr.ts_remote);
    (ci, cr)
}

#[test]
fn psk_x25519_gcm_establishes_in_four_messages() {
    // HDR, SAi1, KEi, Ni, N(NATD_S), N(NATD_D)  -->  <--  HDR, SAr1, KEr, Nr, N(NATD_S), N(NATD_D)
    // HDR, SK {IDi, N(INITIAL_CONTACT), IDr, AUTH, SAi2, TSi, TSr}  -->  <--  HDR, SK {IDr, AUTH, SAr2, TSi, TSr}
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        1,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    assert_eq!(p.drive(), 4);
    let (ci, _) = assert_established(&p);
    let info = p.i.info(sa).unwrap();
    assert_eq!(info.proposal.name(), "aes128gcm16-prfsha256-x25519");
    assert!(!info.nat_local && !info.nat_remote);
    // RFC 5555 §5: both sides do NAT-T, so IKE moved to 4500 without a NAT.
    assert_eq!(info.local.port(), 4500);
    assert_eq!(info.remote.port(), 4500);
    assert_eq!(&p.wire[2][..4], &[0, 0, 0, 0], "non-ESP marker on 4500");
    assert_eq!(ci.mode, Mode::Tunnel);
    assert_eq!(ci.encap, None);
    // Narrowed by the responder to the intersection (§2.9).
    assert_eq!(
        ci.ts_local,
        vec![TrafficSelector::prefix(ip("10.88.0.0"), 28)]
    );
    assert_eq!(
        ci.ts_remote,
        vec![TrafficSelector::prefix(ip("10.99.0.0"), 24)]
    );
}

#[test]
fn issue_proposals_each_establish() {
    for (ike, esp) in [
        ("aes256gcm16-prfsha384-ecp384", "aes256gcm16"),
        ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305"),
        ("aes128-sha256-modp3072", "aes256-sha256"),
        ("aes256-sha512-modp2048", "aes128-sha256"),
        ("aes128gcm16-prfsha512-ecp256", "aes128gcm16"),
    ] {
        let mut p = Pair::new(responder_cfg(ike, esp), 7);
        p.connect(initiator_cfg(ike, esp));
        p.drive();
        let (ci, _) = assert_established(&p);
        assert_eq!(Pair::ike_up(&p.i_events).unwrap().proposal.name(), ike);
        assert_eq!(ci.proposal.name(), esp);
    }
}

#[test]
fn invalid_ke_payload_retries_with_the_asked_group() {
    // HDR, SAi1(x25519, ecp256), KEi(x25519), Ni -->  <-- HDR, N(INVALID_KE_PAYLOAD, 19)
    // HDR, SAi1, KEi(ecp256), Ni -->  ...
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-ecp256", "aes128gcm16"),
        3,
    );
    p.connect(initiator_cfg(
        "aes128gcm16-prfsha256-x25519-ecp256",
        "aes128gcm16",
    ));
    assert_eq!(p.drive(), 6);
    assert_established(&p);
    assert_eq!(Pair::ike_up(&p.i_events).unwrap().proposal.group, Some(19));
}

#[test]
fn no_proposal_chosen_fails_the_initiator() {
    let mut p = Pair::new(
        responder_cfg("aes256gcm16-prfsha384-ecp384", "aes128gcm16"),
        3,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::PeerNotify(14)
        }]
    );
    assert!(p.r.is_empty());
}

#[test]
fn wrong_psk_is_authentication_failed_on_both_sides() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        5,
    );
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.auth = ike::sa::AuthConfig::Psk(ike::crypto::Secret::new(b"wrong".to_vec()));
    let sa = p.connect(c);
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::PeerNotify(24)
        }]
    );
    assert!(matches!(
        p.r_events.as_slice(),
        [Event::Failed {
            reason: Failure::AuthFailed,
            ..
        }]
    ));
    assert!(p.r.is_empty() && p.i.is_empty());
}

#[test]
fn wrong_responder_identity_is_refused_by_initiator() {
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.local_id = ike::wire::payload::IdRepr::from_text("mallory.example.org");
    let mut p = Pair::new(r, 5);
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.remote_id = Some(ike::wire::payload::IdRepr::from_text("ha.example.org"));
    let sa = p.connect(c);
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::AuthFailed
        }]
    );
}

#[test]
fn lost_responses_are_retransmitted_with_backoff() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        9,
    );
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    let start = p.now;
    p.drop_r = 1; // lose the IKE_SA_INIT response
    p.drive();
    assert!(Pair::ike_up(&p.i_events).is_none());
    assert!(p.step_time());
    assert_eq!(p.now - start, Duration::from_secs(1));
    p.drop_r_exchange = Some(35); // lose the IKE_AUTH response too
    p.drive();
    assert!(Pair::ike_up(&p.i_events).is_none());
    assert!(
        Pair::ike_up(&p.r_events).is_some(),
        "responder is up after IKE_AUTH"
    );
    assert!(p.step_time());
    p.drive();
    assert_established(&p);
    // The responder answered the retransmits from its cache: one SA only.
    assert_eq!(p.r.len(), 1);
}

#[test]
fn silent_peer_times_out_after_all_tries() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        9,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    let start = p.now;
    p.drop_i = usize::MAX;
    while p.step_time() {
        p.drive();
    }
    // Tries at 0, 1, 3, 7, 15 s; the fifth timeout (31 s) gives up.
    assert_eq!(p.now - start, Duration::from_secs(31));
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::Timeout
        }]
    );
}

#[test]
fn responder_demands_a_cookie_above_the_threshold() {
    // HDR, SAi1, KEi, Ni -->  <-- HDR, N(COOKIE);  HDR, N(COOKIE), SAi1, KEi, Ni --> ...
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.cookie_threshold = 0;
    let mut p = Pair::new(r, 11);
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    assert_eq!(p.drive(), 6);
    assert_established(&p);
    assert_eq!(p.r.stats().cookies_sent, 1);
}

#[test]
fn half_open_cap_drops_new_requests() {
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.half_open_max = 1;
    let mut p = Pair::new(r, 13);
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drop_r = 2; // both IKE_SA_INIT responses lost: the first SA stays half-open
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    assert_eq!(p.r.len(), 1);
    assert_eq!(p.r.stats().half_open_dropped, 1);
}

#[test]
fn nat_is_detected_and_keepalives_flow() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        15,
    );
    p.nat = true;
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    let (ci, cr) = assert_established(&p);
    let ii = p.i.info(sa).unwrap().clone();
    assert!(ii.nat_local && !ii.nat_remote);
    let ri = Pair::ike_up(&p.r_events).unwrap();
    assert!(ri.nat_remote && !ri.nat_local);
    // The responder sees the NAT's mapping of the initiator's port 4500.
    assert_eq!(ri.remote, SocketAddr::new(ip(I_PUB), 14500));
    assert_eq!(ci.encap, Some((4500, 4500)));
    assert_eq!(cr.encap, Some((4500, 14500)));
    // RFC 3948 §2.3: the side behind the NAT sends 0xFF keepalives every 20 s.
    let t0 = p.now;
    assert!(p.step_time());
    assert_eq!(p.now - t0, Duration::from_secs(20));
    let k = p.i.poll_transmit().unwrap();
    assert_eq!((k.data.as_slice(), k.local_port), (&[0xffu8][..], 4500));
}

#[test]
fn transport_mode_with_mobility_header_selectors() {
    // RFC 5555 §5.2.1: BU/BAck protected in transport mode; selectors carry the MH type
    // in the high octet of the port (RFC 4301 §4.4.1.1).
    let (hoa, ha) = (ip("2001:db8:1::10"), ip("2001:db8:1::1"));
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.transport = true;
    r.ts_local = vec![TrafficSelector::mh(ha, 6)];
    r.ts_remote = vec![TrafficSelector::mh(hoa, 5)];
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.transport = true;
    c.ts_local = vec![TrafficSelector::mh(hoa, 5)];
    c.ts_remote = vec![TrafficSelector::mh(ha, 6)];
    let mut p = Pair::new(r, 17);
    p.connect(c);
    p.drive();
    let (ci, cr) = assert_established(&p);
    assert_eq!((ci.mode, cr.mode), (Mode::Transport, Mode::Transport));
    assert_eq!(ci.ts_local[0].mh_type(), Some(5));
    assert_eq!(ci.ts_remote[0].mh_type(), Some(6));
    assert_eq!(ci.ts_local[0].protocol, 135);
}

#[test]
fn transport_refused_by_responder_fails_only_the_child() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        19,
    );
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.transport = true;
    let sa = p.connect(c);
    p.drive();
    assert!(Pair::ike_up(&p.i_events).is_some());
    assert!(p
        .i_events
        .contains(&Event::ChildSaFailed { sa, notify: 14 }));
    // The initiator deleted the tunnel-mode CHILD_SA the responder had installed.
    let rc = Pair::child(&p.r_events).unwrap().spi_in;
    assert!(p
        .r_events
        .iter()
        .any(|e| matches!(e, Event::ChildSaDown { spi_in, .. } if *spi_in == rc)));
}

#[test]
fn ts_unacceptable_when_selectors_do_not_meet() {
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.ts_remote = vec![TrafficSelector::prefix(ip("172.16.0.0"), 12)];
    let mut p = Pair::new(r, 21);
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    assert!(Pair::ike_up(&p.i_events).is_some());
    assert!(p
        .i_events
        .contains(&Event::ChildSaFailed { sa, notify: 38 }));
}

#[test]
fn delete_and_liveness() {
    // HDR, SK {} --> <-- HDR, SK {};  HDR, SK {D(IKE)} --> <-- HDR, SK {}
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        23,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    p.i.liveness(p.now, sa).unwrap();
    assert_eq!(p.drive(), 2);
    assert!(
        p.i.poll_timeout().is_none(),
        "liveness answered, nothing pending"
    );
    p.i.delete(p.now, sa).unwrap();
    assert_eq!(p.drive(), 2);
    assert_eq!(p.i_events.last(), Some(&Event::IkeSaDown { sa }));
    assert!(matches!(p.r_events.last(), Some(Event::IkeSaDown { .. })));
    assert!(p.i.is_empty() && p.r.is_empty());
}

#[test]
fn unknown_critical_payload_gets_unsupported_critical_payload() {
    let mut r = Endpoint::new(
        Some(responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16")),
        Box::new(SeededRng::new(1)),
    );
    // Header (SPIi 1, IKE_SA_INIT request) + payload type 200 with the critical bit.
    let mut m = vec![
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 200, 0x20, 34, 0x08, 0, 0, 0, 0, 0, 0, 0,
        36,
    ];
    m.extend_from_slice(&[0, 0x80, 0, 8, 1, 2, 3, 4]);
    let now = Instant::now();
    r.handle_datagram(
        now,
        SocketAddr::new(ip(R_ADDR), 500),
        SocketAddr::new(ip(I_PUB), 500),
        &m,
    );
    let t = r.poll_transmit().unwrap();
    // Response: Notify (41) first, then N(UNSUPPORTED_CRITICAL_PAYLOAD = 1) naming type 200.
    assert_eq!(t.data[16], 41);
    assert_eq!(t.data[19], 0x20);
    assert_eq!(&t.data[28 + 4..], &[0, 0, 0, 1, 200]);
    assert!(r.is_empty());
}

#[test]
fn garbage_and_wrong_spis_never_panic() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        25,
    );
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    let local = SocketAddr::new(ip(R_ADDR), 4500);
    let remote = SocketAddr::new(ip(I_PUB), 4500);
    let msgs = p.wire.clone();
    for m in &msgs {
        for cut in [0, 1, 4, 20, 28, m.len() / 2, m.len().saturating_sub(1)] {
            p.r.handle_datagram(p.now, local, remote, &m[..cut.min(m.len())]);
        }
        let mut flipped = m.clone();
        let l = flipped.len();
        flipped[l - 1] ^= 0x55;
        p.r.handle_datagram(p.now, local, remote, &flipped);
    }
    assert!(p.r.stats().malformed + p.r.stats().ignored > 0);
    assert_eq!(p.r.len(), 1);
}

#[test]
fn same_seeds_give_the_same_transcript() {
    let run = || {
        let mut p = Pair::new(responder_cfg("aes128-sha256-modp2048", "aes256-sha256"), 99);
        p.connect(initiator_cfg("aes128-sha256-modp2048", "aes256-sha256"));
        p.drive();
        p.wire
    };
    assert_eq!(run(), run());
}

fn children(events: &[Event]) -> Vec<ike::sa::ChildSa> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::ChildSaUp { child, .. } = e {
                Some(child.clone())
            } else {
                None
            }
        })
        .collect()
}

/// RFC 5555 §5.2: the MN's IKE_AUTH brings up the transport-mode SA for BU/BAck, then a
/// CREATE_CHILD_SA adds the tunnel-mode SA for data, here with PFS (x25519).
fn rfc5555_pair(seed: u64, responder_esp: &str) -> (Pair, SaId, ike::sa::ChildPolicy) {
    let (hoa, ha) = (ip("2001:db8:1::10"), ip("2001:db8:1::1"));
    let esp = |s: &str| vec![Proposal::parse(s, ProtocolId::ESP).unwrap()];
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.transport = true;
    r.ts_local = vec![TrafficSelector::mh(ha, 6)];
    r.ts_remote = vec![TrafficSelector::mh(hoa, 5)];
    r.extra_children = vec![ike::sa::ChildPolicy {
        esp_proposals: esp(responder_esp),
        ts_local: vec![TrafficSelector::prefix(ip("::"), 0)],
        ts_remote: vec![TrafficSelector::prefix(hoa, 128)],
        transport: false,
    }];
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.transport = true;
    c.ts_local = vec![TrafficSelector::mh(hoa, 5)];
    c.ts_remote = vec![TrafficSelector::mh(ha, 6)];
    let mut p = Pair::new(r, seed);
    let sa = p.connect(c);
    p.drive();
    let data = ike::sa::ChildPolicy {
        esp_proposals: esp("aes256gcm16-x25519"),
        ts_local: vec![TrafficSelector::prefix(hoa, 128)],
        ts_remote: vec![TrafficSelector::prefix(ip("::"), 0)],
        transport: false,
    };
    (p, sa, data)
}

#[test]
fn create_child_sa_adds_a_tunnel_sa_with_pfs() {
    // HDR, SK {SA, Ni, KEi, TSi, TSr}  -->  <--  HDR, SK {SA, Nr, KEr, TSi, TSr}
    let (mut p, sa, data) = rfc5555_pair(31, "aes256gcm16-x25519");
    p.i.create_child(p.now, sa, data).unwrap();
    assert_eq!(p.drive(), 2);
    let (ci, cr) = (children(&p.i_events), children(&p.r_events));
    assert_eq!((ci.len(), cr.len()), (2, 2));
    assert_eq!(ci[0].mode, Mode::Transport);
    let (a, b) = (&ci[1], &cr[1]);
    assert_eq!(a.mode, Mode::Tunnel);
    assert_eq!(a.proposal.group, Some(31));
    assert_eq!(a.proposal.name(), "aes256gcm16-x25519");
    assert_eq!((a.spi_out, a.spi_in), (b.spi_in, b.spi_out));
    assert_eq!(a.keys.enc_out, b.keys.enc_in);
    assert_eq!(a.keys.enc_in, b.keys.enc_out);
    assert_ne!(
        a.keys.enc_out.expose()[..16],
        ci[0].keys.enc_out.expose()[..16]
    );
    assert_eq!(a.ts_local, b.ts_remote);
    // A second Delete-free liveness check still works: message IDs stayed in step.
    p.i.liveness(p.now, sa).unwrap();
    assert_eq!(p.drive(), 2);
}

#[test]
fn create_child_sa_without_pfs_and_with_refusals() {
    let (mut p, sa, mut data) = rfc5555_pair(33, "aes128gcm16");
    data.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap()];
    p.i.create_child(p.now, sa, data.clone()).unwrap();
    p.drive();
    let ci = children(&p.i_events);
    assert_eq!(ci.len(), 2);
    assert_eq!(ci[1].proposal.group, None);
    // Selectors outside every responder policy: TS_UNACCEPTABLE (§2.9).
    data.ts_local = vec![TrafficSelector::prefix(ip("2001:db8:ffff::1"), 128)];
    p.i.create_child(p.now, sa, data.clone()).unwrap();
    p.drive();
    assert_eq!(
        p.i_events.last(),
        Some(&Event::ChildSaFailed { sa, notify: 38 })
    );
    // PFS with a group the responder does not accept: no proposal matches.
    data.esp_proposals = vec![Proposal::parse("aes128gcm16-ecp384", ProtocolId::ESP).unwrap()];
    data.ts_local = vec![TrafficSelector::prefix(ip("2001:db8:1::10"), 128)];
    p.i.create_child(p.now, sa, data).unwrap();
    p.drive();
    assert_eq!(
        p.i_events.last(),
        Some(&Event::ChildSaFailed { sa, notify: 14 })
    );
    assert_eq!(
        children(&p.r_events).len(),
        2,
        "the responder installed nothing for the refusals"
    );
    // One request at a time (RFC 7296 §2.3, window size 1).
    p.i.liveness(p.now, sa).unwrap();
    assert!(p.i.liveness(p.now, sa).is_err());
}

#[test]
fn delete_child_removes_one_child_sa_at_both_ends() {
    // RFC 7296 §1.4.1: HDR, SK {D(ESP, our inbound SPI)} --> <-- HDR, SK {D(ESP, theirs)}.
    let (mut p, sa, data) = rfc5555_pair(35, "aes256gcm16-x25519");
    p.i.create_child(p.now, sa, data).unwrap();
    p.drive();
    let (ci, cr) = (children(&p.i_events), children(&p.r_events));
    let (data_i, data_r) = (&ci[1], &cr[1]);
    // Unknown SPIs are refused without a message.
    assert!(p.i.delete_child(p.now, sa, 0xdead_beef).is_err());
    p.i.delete_child(p.now, sa, data_i.spi_in).unwrap();
    assert_eq!(p.drive(), 2);
    let downs = |events: &[Event]| -> Vec<u32> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::ChildSaDown { spi_in, .. } => Some(*spi_in),
                _ => None,
            })
            .collect()
    };
    assert_eq!(downs(&p.i_events), vec![data_i.spi_in]);
    assert_eq!(
        downs(&p.r_events),
        vec![data_r.spi_in],
        "only the data SA goes at the peer"
    );
    // The signalling SA and the IKE SA are still there: a second delete of the same
    // SPI fails, and a liveness check still gets its answer.
    assert!(p.i.delete_child(p.now, sa, data_i.spi_in).is_err());
    p.i.liveness(p.now, sa).unwrap();
    assert_eq!(p.drive(), 2);
    assert!(!p
        .i_events
        .iter()
        .any(|e| matches!(e, Event::IkeSaDown { .. })));
}

// ---- certificates (RFC 7296 §2.15, RFC 7427) -------------------------------------------

const NOW_2030: i64 = 1_893_456_000;

fn creds(chain: &str, who: &str, ca: &str) -> std::sync::Arc<ike::cert::Credentials> {
    let f =
        |n: &str| std::fs::read(format!("{}/tests/certs/{n}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    std::sync::Arc::new(
        ike::cert::Credentials::from_pem(
            &f(&format!("{chain}-{who}.pem")),
            &f(&format!("{chain}-{who}.key")),
            &f(&format!("{ca}-ca.pem")),
        )
        .unwrap(),
    )
}

fn cert_pair(i_chain: &str, i_ca: &str, r_chain: &str, r_ca: &str, seed: u64) -> (Pair, SaId) {
    let mut r = responder_cfg("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    r.auth = ike::sa::AuthConfig::Cert(creds(r_chain, "ha", r_ca));
    let mut c = initiator_cfg("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    c.auth = ike::sa::AuthConfig::Cert(creds(i_chain, "mn", i_ca));
    let mut p = Pair::new(r, seed);
    p.i.set_unix_time(NOW_2030);
    p.r.set_unix_time(NOW_2030);
    let sa = p.connect(c);
    (p, sa)
}

#[test]
fn ecdsa_p256_certificates_establish() {
    // HDR, SK {IDi, CERT, IDr, AUTH(14: ecdsa-with-SHA256), SAi2, TSi, TSr} -->
    let (mut p, _) = cert_pair("ecdsa", "ecdsa", "ecdsa", "ecdsa", 41);
    assert_eq!(p.drive(), 4);
    assert_established(&p);
    assert_eq!(
        Pair::ike_up(&p.r_events).unwrap().remote_id,
        ike::wire::payload::IdRepr::from_text("mn@example.org")
    );
}

#[test]
fn rsa_certificates_establish() {
    let (mut p, _) = cert_pair("rsa", "rsa", "rsa", "rsa", 43);
    p.drive();
    assert_established(&p);
}

#[test]
fn mixed_chains_each_side_trusting_the_others_ca() {
    // The MN has an RSA certificate, the HA an ECDSA one; each trusts the other's CA.
    let (mut p, _) = cert_pair("rsa", "ecdsa", "ecdsa", "rsa", 45);
    p.drive();
    assert_established(&p);
}

#[test]
fn certificate_from_an_unknown_ca_is_refused() {
    let (mut p, sa) = cert_pair("foreign", "ecdsa", "ecdsa", "ecdsa", 47);
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::PeerNotify(24)
        }]
    );
    assert!(matches!(
        p.r_events.as_slice(),
        [Event::Failed {
            reason: Failure::AuthFailed,
            ..
        }]
    ));
}

#[test]
fn expired_certificate_and_wrong_identity_are_refused() {
    let (mut p, sa) = cert_pair("ecdsa", "ecdsa", "ecdsa", "ecdsa", 49);
    p.r.set_unix_time(7_258_118_400); // 2200: after notAfter
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::PeerNotify(24)
        }]
    );
    // An identity the certificate does not carry.
    let mut r = responder_cfg("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    r.auth = ike::sa::AuthConfig::Cert(creds("ecdsa", "ha", "ecdsa"));
    r.remote_id = None;
    let mut c = initiator_cfg("aes256gcm16-prfsha384-ecp384", "aes256gcm16");
    c.auth = ike::sa::AuthConfig::Cert(creds("ecdsa", "mn", "ecdsa"));
    c.local_id = ike::wire::payload::IdRepr::from_text("someone-else@example.org");
    let mut p = Pair::new(r, 51);
    p.i.set_unix_time(NOW_2030);
    p.r.set_unix_time(NOW_2030);
    let sa = p.connect(c);
    p.drive();
    assert_eq!(
        p.i_events,
        vec![Event::Failed {
            sa,
            reason: Failure::PeerNotify(24)
        }]
    );
}

#[test]
fn classic_ecdsa_auth_method_verifies_and_tampering_fails() {
    // Without RFC 7427 the ECDSA key signs with AUTH method 9 (RFC 4754): r | s.
    let c = creds("ecdsa", "mn", "ecdsa");
    let a = c.sign(b"signed octets", false).unwrap();
    assert_eq!(a.method, 9);
    assert_eq!(a.data.len(), 64);
    let pem = std::fs::read(format!(
        "{}/tests/certs/ecdsa-mn.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let der = ike::cert::first_der(&pem).unwrap();
    let ca = creds("ecdsa", "ha", "ecdsa");
    let id = ike::wire::payload::IdRepr::from_text("mn@example.org");
    assert!(ca
        .verify_peer(&[&der], &id, &a, b"signed octets", NOW_2030)
        .is_ok());
    assert!(ca
        .verify_peer(&[&der], &id, &a, b"signed octetz", NOW_2030)
        .is_err());
    let r = c.sign(b"signed octets", true).unwrap();
    assert_eq!(r.method, 14);
    assert!(ca
        .verify_peer(&[&der], &id, &r, b"signed octets", NOW_2030)
        .is_ok());
}

#[test]
fn liveness_checks_run_after_silence_and_detect_a_dead_peer() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        53,
    );
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.dpd = Some(Duration::from_secs(30));
    let sa = p.connect(c);
    p.drive();
    let up = p.now;
    // Silence for 30 s: an empty INFORMATIONAL goes out and is answered.
    assert!(p.step_time());
    assert_eq!(p.now - up, Duration::from_secs(30));
    assert_eq!(p.drive(), 2);
    assert!(p.i.state(sa).is_some());
    // The peer vanishes: the next check is retransmitted, then the SA fails.
    p.drop_i = usize::MAX;
    while p.step_time() {
        p.drive();
    }
    assert_eq!(
        p.i_events.last(),
        Some(&Event::Failed {
            sa,
            reason: Failure::Timeout
        })
    );
    assert!(p.i.is_empty());
}

#[test]
fn keys_never_appear_in_debug_output() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        55,
    );
    p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    let (ci, _) = assert_established(&p);
    let dbg = format!(
        "{ci:?} {:?} {:?}",
        p.i,
        initiator_cfg("x25519-aes128gcm16-prfsha256", "aes128gcm16")
    );
    assert!(dbg.contains("redacted"));
    for k in [&ci.keys.enc_in, &ci.keys.enc_out] {
        assert!(
            !dbg.contains(&format!("{:?}", k.expose())),
            "key bytes leaked"
        );
        assert!(!dbg.contains(&hex::encode(k.expose())), "key hex leaked");
    }
    assert!(!dbg.contains("correct horse"), "PSK leaked");
}

#[test]
fn child_sa_rekey_replaces_the_old_child() {
    // HDR, SK {N(REKEY_SA), SA, Ni, TSi, TSr} -->  <--;  HDR, SK {D(ESP old)} --> <-- D(ESP old)
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        57,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    let (old_i, old_r) = assert_established(&p);
    p.i.rekey_child(p.now, sa, old_i.spi_in).unwrap();
    assert_eq!(p.drive(), 4);
    let (ci, cr) = (children(&p.i_events), children(&p.r_events));
    assert_eq!((ci.len(), cr.len()), (2, 2));
    assert_eq!((ci[1].spi_out, ci[1].spi_in), (cr[1].spi_in, cr[1].spi_out));
    assert_eq!(ci[1].keys.enc_out, cr[1].keys.enc_in);
    assert_ne!(ci[1].keys.enc_out, old_i.keys.enc_out);
    assert_eq!(ci[1].ts_local, old_i.ts_local);
    assert!(p.i_events.contains(&Event::ChildSaDown {
        sa,
        spi_in: old_i.spi_in
    }));
    assert!(p
        .r_events
        .iter()
        .any(|e| matches!(e, Event::ChildSaDown { spi_in, .. } if *spi_in == old_r.spi_in)));
    assert!(
        p.i.rekey_child(p.now, sa, old_i.spi_in).is_err(),
        "the old CHILD_SA is gone"
    );
}

#[test]
fn ike_sa_rekey_from_either_side_moves_the_children() {
    for by_initiator in [true, false] {
        // HDR, SK {SA(SPIi'), Ni, KEi} -->  <-- HDR, SK {SA(SPIr'), Nr, KEr};  D(old IKE SA)
        let mut p = Pair::new(
            responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
            59,
        );
        let sa_i = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
        p.drive();
        let (old_child, _) = assert_established(&p);
        let sa_r = Pair::ike_up(&p.r_events).unwrap().spi_r;
        if by_initiator {
            p.i.rekey_ike(p.now, sa_i).unwrap();
        } else {
            p.r.rekey_ike(p.now, sa_r).unwrap();
        }
        assert_eq!(p.drive(), 4);
        let rekeyed = |ev: &[Event]| {
            ev.iter().find_map(|e| {
                if let Event::IkeSaRekeyed { old, new, info } = e {
                    Some((*old, *new, info.clone()))
                } else {
                    None
                }
            })
        };
        let (oi, ni, ii) = rekeyed(&p.i_events).expect("initiator saw the rekey");
        let (or, nr, ri) = rekeyed(&p.r_events).expect("responder saw the rekey");
        assert_eq!((oi, or), (sa_i, sa_r));
        assert_eq!((ii.spi_i, ii.spi_r), (ri.spi_i, ri.spi_r));
        assert_eq!(ii.initiator, by_initiator);
        assert!(
            p.i_events.contains(&Event::IkeSaDown { sa: oi })
                && p.r_events.contains(&Event::IkeSaDown { sa: or })
        );
        assert_eq!((p.i.len(), p.r.len()), (1, 1));
        // The new SA works and carries the CHILD_SA: liveness, then a CHILD_SA rekey on it.
        p.i.liveness(p.now, ni).unwrap();
        assert_eq!(p.drive(), 2);
        p.i.rekey_child(p.now, ni, old_child.spi_in).unwrap();
        p.drive();
        assert!(p
            .r_events
            .iter()
            .any(|e| matches!(e, Event::ChildSaUp { sa, .. } if *sa == nr)));
    }
}

#[test]
fn lifetimes_rekey_the_child_sa_then_the_ike_sa() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        61,
    );
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.rekey_child_after = Some(Duration::from_secs(600));
    c.rekey_ike_after = Some(Duration::from_secs(1000));
    let sa = p.connect(c);
    p.drive();
    let t0 = p.now;
    // At 600 s the CHILD_SA is rekeyed (and its predecessor deleted).
    assert!(p.step_time());
    assert_eq!(p.now - t0, Duration::from_secs(600));
    p.drive();
    assert_eq!(children(&p.i_events).len(), 2);
    assert!(p
        .i_events
        .iter()
        .any(|e| matches!(e, Event::ChildSaDown { .. })));
    // At 1000 s the IKE SA is rekeyed and the old one deleted.
    assert!(p.step_time());
    assert_eq!(p.now - t0, Duration::from_secs(1000));
    p.drive();
    let new = p
        .i_events
        .iter()
        .find_map(|e| {
            if let Event::IkeSaRekeyed { new, .. } = e {
                Some(*new)
            } else {
                None
            }
        })
        .expect("IKE SA rekeyed");
    assert!(p.i_events.contains(&Event::IkeSaDown { sa }));
    // At 1200 s the second CHILD_SA (now on the new IKE SA) is due.
    assert!(p.step_time());
    assert_eq!(p.now - t0, Duration::from_secs(1200));
    p.drive();
    assert_eq!(children(&p.i_events).len(), 3);
    assert!(p
        .i_events
        .iter()
        .any(|e| matches!(e, Event::ChildSaUp { sa: s, .. } if *s == new)));
    assert_eq!((p.i.len(), p.r.len()), (1, 1));
}

/// RFC 5555 §5.2.2 next to §5.2.1: the responder's main policy is transport mode for one
/// address (the home agent); a tunnel-mode request with TSr = ::/0, 0.0.0.0/0 must get the
/// tunnel-mode policy with its full ranges, not the transport policy narrowed to one
/// address (RFC 7296 §1.3.1: the mode is the initiator's to ask).
#[test]
fn responder_picks_the_policy_of_the_asked_mode() {
    let (hoa, hoa4, ha) = (
        ip("2001:db8:1::10"),
        ip("198.51.100.2"),
        ip("2001:db8:1::1"),
    );
    let esp = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap()];
    let mut r = responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    r.transport = true;
    r.ts_local = vec![TrafficSelector::prefix(ha, 128)];
    r.ts_remote = vec![TrafficSelector::prefix(ip("2001:db8:1::"), 64)];
    let any = vec![
        TrafficSelector::prefix(ip("::"), 0),
        TrafficSelector::prefix(ip("0.0.0.0"), 0),
    ];
    r.extra_children = vec![ike::sa::ChildPolicy {
        esp_proposals: esp.clone(),
        ts_local: any.clone(),
        ts_remote: vec![
            TrafficSelector::prefix(ip("2001:db8:1::"), 64),
            TrafficSelector::prefix(ip("198.51.100.0"), 28),
        ],
        transport: false,
    }];
    let mut c = initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16");
    c.transport = true;
    c.ts_local = vec![TrafficSelector::mh(hoa, 5)];
    c.ts_remote = vec![TrafficSelector::mh(ha, 6)];
    let mut p = Pair::new(r, 41);
    let sa = p.connect(c);
    p.drive();
    let first = children(&p.r_events);
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].mode, Mode::Transport, "the signalling SA");
    assert_eq!(first[0].ts_local, vec![TrafficSelector::mh(ha, 6)]);
    // The data SA: tunnel mode, both home addresses, everything on the other side.
    let data = ike::sa::ChildPolicy {
        esp_proposals: esp,
        ts_local: vec![
            TrafficSelector::prefix(hoa, 128),
            TrafficSelector::prefix(hoa4, 32),
        ],
        ts_remote: any.clone(),
        transport: false,
    };
    p.i.create_child(p.now, sa, data.clone()).unwrap();
    assert_eq!(p.drive(), 2);
    let (ci, cr) = (children(&p.i_events), children(&p.r_events));
    assert_eq!((ci.len(), cr.len()), (2, 2));
    assert_eq!(cr[1].mode, Mode::Tunnel);
    assert_eq!(
        cr[1].ts_local, any,
        "not narrowed to the home agent's address"
    );
    assert_eq!(cr[1].ts_remote, data.ts_local);
    assert_eq!(ci[1].ts_remote, any);
    // A transport-mode request still gets the transport policy although the tunnel one
    // would also fit its selectors.
    let sig = ike::sa::ChildPolicy {
        esp_proposals: data.esp_proposals.clone(),
        ts_local: vec![TrafficSelector::prefix(hoa, 128)],
        ts_remote: vec![TrafficSelector::prefix(ha, 128)],
        transport: true,
    };
    p.i.create_child(p.now, sa, sig).unwrap();
    p.drive();
    let cr = children(&p.r_events);
    assert_eq!(cr.len(), 3);
    assert_eq!(cr[2].mode, Mode::Transport);
}

/// RFC 4877 §4.4: a home agent moves the IKE SA to a K-flag binding's new care-of address
/// (`set_peer_address`), and with `follow_peer` an authenticated message from a new
/// address moves it without a NAT in the path; without it, only NATed peers are followed.
#[test]
fn k_flag_peer_moves_by_call_and_by_authenticated_message() {
    let mut p = Pair::new(
        responder_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"),
        43,
    );
    let sa = p.connect(initiator_cfg("aes128gcm16-prfsha256-x25519", "aes128gcm16"));
    p.drive();
    let r_sa = p
        .r_events
        .iter()
        .find_map(|e| match e {
            Event::IkeSaUp { sa, .. } => Some(*sa),
            _ => None,
        })
        .unwrap();
    let moved = SocketAddr::new(ip("203.0.113.9"), 500);
    // A liveness check from a new address, no NAT, no follow_peer: not followed.
    let from_new = |p: &mut Pair| {
        p.i.liveness(p.now, sa).unwrap();
        let t = p.i.poll_transmit().unwrap();
        let i_local = SocketAddr::new(ip(I_PUB), t.local_port);
        p.r.handle_datagram(p.now, t.remote, moved, &t.data);
        let reply = p.r.poll_transmit().expect("answered");
        let changed = std::iter::from_fn(|| p.r.poll_event())
            .any(|e| matches!(e, Event::PeerAddressChanged { remote, .. } if remote == moved));
        // Give the initiator its answer so the next request may go.
        let src = SocketAddr::new(ip(R_ADDR), reply.local_port);
        p.i.handle_datagram(p.now, i_local, src, &reply.data);
        (reply.remote, changed)
    };
    let old = p.r.info(r_sa).unwrap().remote;
    let (to, changed) = from_new(&mut p);
    assert_eq!(to, old);
    assert!(!changed);
    assert_eq!(p.r.info(r_sa).unwrap().remote, old);
    p.r.follow_peer(r_sa, true).unwrap();
    let (to, changed) = from_new(&mut p);
    assert_eq!(to, moved, "the answer goes to the new address");
    assert!(changed, "PeerAddressChanged reported");
    assert_eq!(p.r.info(r_sa).unwrap().remote, moved);
    // Moved by the home agent itself: its own next request goes there.
    let there = SocketAddr::new(ip("203.0.113.10"), 4500);
    p.r.set_peer_address(r_sa, there).unwrap();
    p.r.liveness(p.now, r_sa).unwrap();
    assert_eq!(p.r.poll_transmit().unwrap().remote, there);
    assert!(p.r.set_peer_address(12345, there).is_err());
}
