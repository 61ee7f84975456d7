//! Whole datagrams through `Endpoint::handle_datagram` (RFC 7296 §2, RFC 3948 §2.2) with a
//! fixed RNG and virtual time: a fresh responder on the IKE and the NAT-T port, and the
//! two sides of a real IKE_SA_INIT exchange, where the fuzz input gets the live SPIs so it
//! reaches the half-open responder SA and the initiator waiting for IKE_AUTH; and the real
//! IKE_SA_INIT request, response and IKE_AUTH request with the input patched in at an
//! offset, so the payload processing behind a valid header is reached.
#![no_main]
use ike::crypto::SeededRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint};
use ike::wire::{ProtocolId, TrafficSelector};
use libfuzzer_sys::fuzz_target;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

fn config(local: &str, remote: &str, ts_local: &str, ts_remote: &str) -> Config {
    let mut c = Config::psk(local, Some(remote), b"fuzzing psk");
    c.ike_proposals = vec![
        Proposal::parse("aes128gcm16-prfsha256-x25519", ProtocolId::IKE).unwrap(),
        Proposal::parse("aes128-sha256-modp3072", ProtocolId::IKE).unwrap(),
    ];
    c.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap()];
    c.ts_local = vec![TrafficSelector::prefix(ts_local.parse().unwrap(), 24)];
    c.ts_remote = vec![TrafficSelector::prefix(ts_remote.parse().unwrap(), 24)];
    c.cookie_threshold = 2;
    c.half_open_max = 4;
    c
}

/// `base` with `patch[2..]` written over it at offset `u16(patch[..2]) % (len + 1)`, and
/// the header length field fixed (RFC 7296 §3.1).
fn patched(base: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut m = base.to_vec();
    if let [a, b, rest @ ..] = patch {
        let off = usize::from(u16::from_be_bytes([*a, *b])) % (m.len() + 1);
        let end = (off + rest.len()).min(m.len());
        m.splice(off..end, rest.iter().copied());
    }
    if m.len() >= 28 {
        let len = (m.len() as u32).to_be_bytes();
        m[24..28].copy_from_slice(&len);
    }
    m
}

fn drain(e: &mut Endpoint) -> Vec<Vec<u8>> {
    while e.poll_event().is_some() {}
    std::iter::from_fn(|| e.poll_transmit().map(|t| t.data)).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, msg)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let r_addr: SocketAddr = "192.0.2.1:500".parse().unwrap();
    let r_natt: SocketAddr = "192.0.2.1:4500".parse().unwrap();
    let i_addr: SocketAddr = "198.51.100.2:500".parse().unwrap();
    let mut r = Endpoint::new(
        Some(config(
            "ha.example.org",
            "mn@example.org",
            "10.99.0.0",
            "10.88.0.0",
        )),
        Box::new(SeededRng::new(1)),
    );
    match mode % 7 {
        // Unsolicited datagrams to a fresh responder, on 500 and on 4500.
        0 | 1 => {
            let local = if mode % 7 == 0 { r_addr } else { r_natt };
            r.handle_datagram(now, local, i_addr, msg);
            // A second copy: the retransmission / cookie paths.
            r.handle_datagram(now + Duration::from_millis(1), local, i_addr, msg);
            drain(&mut r);
            r.handle_timeout(now + Duration::from_secs(60));
            drain(&mut r);
        }
        // After a real IKE_SA_INIT: the input, with the live SPIs written in, goes to the
        // responder (mode 2) or back to the initiator (mode 3); or a real message with the
        // input patched in: IKE_SA_INIT request (4), response (5), IKE_AUTH request (6).
        _ => {
            let mut i = Endpoint::new(None, Box::new(SeededRng::new(2)));
            let c = config("mn@example.org", "ha.example.org", "10.88.0.0", "10.99.0.0");
            let Ok(_) = i.connect(now, i_addr, r_addr, c) else {
                return;
            };
            let init = drain(&mut i);
            assert_eq!(init.len(), 1, "one IKE_SA_INIT request");
            if mode % 7 == 4 {
                r.handle_datagram(now, r_addr, i_addr, &patched(&init[0], msg));
                let out = drain(&mut r);
                if msg.len() <= 2 {
                    assert_eq!(out.len(), 1, "IKE_SA_INIT response to an unpatched request");
                }
                r.handle_timeout(now + Duration::from_secs(60));
                drain(&mut r);
                return;
            }
            r.handle_datagram(now, r_addr, i_addr, &init[0]);
            let resp = drain(&mut r);
            assert_eq!(resp.len(), 1, "one IKE_SA_INIT response");
            // IKE SPIs of the exchange: SPIi from the request, SPIr from the response.
            let mut m = msg.to_vec();
            if m.len() >= 16 {
                m[..16].copy_from_slice(&resp[0][..16]);
            }
            // And a length field that matches (§3.1), so the header parses.
            if m.len() >= 28 {
                let len = (m.len() as u32).to_be_bytes();
                m[24..28].copy_from_slice(&len);
            }
            let t = now + Duration::from_millis(5);
            if mode % 7 == 5 {
                i.handle_datagram(t, i_addr, r_addr, &patched(&resp[0], msg));
                drain(&mut i);
                i.handle_timeout(now + Duration::from_secs(60));
                drain(&mut i);
                return;
            }
            if mode % 7 == 6 {
                i.handle_datagram(t, i_addr, r_addr, &resp[0]);
                while i.poll_event().is_some() {}
                // Both sides sent NAT_DETECTION, so IKE_AUTH moves to 4500 (RFC 5555 §5)
                // behind the non-ESP marker (RFC 3948 §2.2), which stays in front.
                if let Some(a) = i.poll_transmit() {
                    let (marker, ike) = match a.data.as_slice() {
                        [0, 0, 0, 0, rest @ ..] if a.remote.port() == 4500 => (&[0u8; 4][..], rest),
                        all => (&[][..], all),
                    };
                    let mut d = marker.to_vec();
                    d.extend_from_slice(&patched(ike, msg));
                    let from = SocketAddr::new(i_addr.ip(), a.local_port);
                    let to = SocketAddr::new(r_addr.ip(), a.remote.port());
                    r.handle_datagram(t, to, from, &d);
                    let out = drain(&mut r);
                    // Unpatched, the exchange completes: the harness reaches IKE_AUTH.
                    if msg.len() <= 2 {
                        assert_eq!(out.len(), 1, "IKE_AUTH response to an unpatched request");
                    }
                }
                return;
            }
            if mode % 7 == 2 {
                r.handle_datagram(t, r_addr, i_addr, &m);
                drain(&mut r);
                r.handle_timeout(now + Duration::from_secs(60));
                drain(&mut r);
            } else {
                i.handle_datagram(t, i_addr, r_addr, &resp[0]);
                drain(&mut i);
                i.handle_datagram(t, i_addr, r_addr, &m);
                drain(&mut i);
                i.handle_timeout(now + Duration::from_secs(60));
                drain(&mut i);
            }
        }
    }
});
