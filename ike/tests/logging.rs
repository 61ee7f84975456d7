//! The engine's `tracing` output: an IKE_SA_INIT + IKE_AUTH exchange (RFC 7296 §1.2) logs
//! the IKE SA and CHILD_SA coming up with their SPIs, a dropped datagram logs why, and no
//! line carries the PSK or any key.

use ike::crypto::SeededRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint, Event};
use ike::wire::{ProtocolId, TrafficSelector};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const PSK: &[u8] = b"logging test pre-shared key";

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn cfg(local: &str, remote: &str, ts_local: &str, ts_remote: &str) -> Config {
    let mut c = Config::psk(local, Some(remote), PSK);
    c.ike_proposals =
        vec![Proposal::parse("aes128gcm16-prfsha256-x25519", ProtocolId::IKE).unwrap()];
    c.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap()];
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    c.ts_local = vec![TrafficSelector::prefix(ip(ts_local), 24)];
    c.ts_remote = vec![TrafficSelector::prefix(ip(ts_remote), 24)];
    c
}

/// Runs one exchange with every level captured; returns the log and both sides' events.
fn run() -> (String, Vec<Event>) {
    let buf = Buf::default();
    let sink = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || sink.clone())
        .finish();
    let mut events = Vec::new();
    tracing::subscriber::with_default(subscriber, || {
        let now = Instant::now();
        let (i_ip, r_ip): (IpAddr, IpAddr) = (
            "198.51.100.2".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
        );
        let mut i = Endpoint::new(None, Box::new(SeededRng::new(7)));
        let mut r = Endpoint::new(
            Some(cfg(
                "ha.example.org",
                "mn@example.org",
                "10.99.0.0",
                "10.88.0.0",
            )),
            Box::new(SeededRng::new(8)),
        );
        let c = cfg("mn@example.org", "ha.example.org", "10.88.0.0", "10.99.0.0");
        i.connect(
            now,
            SocketAddr::new(i_ip, 500),
            SocketAddr::new(r_ip, 500),
            c,
        )
        .unwrap();
        for _ in 0..10 {
            while let Some(t) = i.poll_transmit() {
                let to = SocketAddr::new(r_ip, t.remote.port());
                r.handle_datagram(now, to, SocketAddr::new(i_ip, t.local_port), &t.data);
            }
            while let Some(t) = r.poll_transmit() {
                let to = SocketAddr::new(i_ip, t.remote.port());
                i.handle_datagram(now, to, SocketAddr::new(r_ip, t.local_port), &t.data);
            }
        }
        // A datagram that is not IKE: dropped with a reason.
        r.handle_datagram(
            now,
            SocketAddr::new(r_ip, 500),
            SocketAddr::new(i_ip, 500),
            b"not an IKE message",
        );
        events.extend(std::iter::from_fn(|| i.poll_event()));
        events.extend(std::iter::from_fn(|| r.poll_event()));
    });
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    (log, events)
}

#[test]
fn exchange_is_logged_without_secrets() {
    let (log, events) = run();
    let children: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ChildSaUp { child, .. } => Some(child),
            _ => None,
        })
        .collect();
    assert_eq!(
        children.len(),
        2,
        "both sides got the CHILD_SA; log:\n{log}"
    );
    assert_eq!(log.matches("IKE SA up").count(), 2, "{log}");
    assert_eq!(log.matches("CHILD_SA up").count(), 2, "{log}");
    for c in &children {
        assert!(
            log.contains(&format!("spi_in={:08x}", c.spi_in)),
            "CHILD_SA SPI {:08x} not logged:\n{log}",
            c.spi_in
        );
    }
    assert!(
        log.contains("IKE_SA_INIT") && log.contains("IKE_AUTH"),
        "{log}"
    );
    assert!(log.contains("dropped: bad IKE header"), "{log}");
    // No secret in any form: the PSK as text or hex, and no ESP key in hex.
    let psk_text = String::from_utf8_lossy(PSK);
    assert!(!log.contains(psk_text.as_ref()));
    assert!(!log.to_lowercase().contains(&hex::encode(PSK)));
    for c in &children {
        for k in [&c.keys.enc_in, &c.keys.enc_out] {
            assert!(!k.is_empty());
            let h = hex::encode(k.expose());
            assert!(!log.to_lowercase().contains(&h), "key bytes in the log");
            assert!(
                !log.contains(&format!("{:?}", k.expose())),
                "key bytes in the log"
            );
        }
    }
}
