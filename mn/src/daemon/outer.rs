//! Raw IPv4 sockets for the outer formats the kernel has no device for here: IP-in-IP
//! (protocol 4 for IPv4 in IPv4, 41 for IPv6 in IPv4, RFC 5555 §4.1) and ESP (protocol 50,
//! RFC 5555 §5.2.2 without a NAT). Sockets are not bound to an address, so the kernel
//! picks the source by route and they follow the care-of address (contract: movement).
//! One reader thread per socket hands whole packets (IPv4 header included) to the main
//! loop; sending is a `sendto` from the main loop, the kernel adds the IPv4 header.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{Context, Result};
use mipsec::io::raw::RawSocket;
use tokio::sync::mpsc;
use tracing::warn;

/// Protocol numbers of the raw sockets.
pub const PROTO_IPIP: u8 = 4;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_ESP: u8 = 50;

/// A packet from a raw socket: protocol and the whole IPv4 packet.
#[derive(Debug)]
pub struct RawPacket {
    pub protocol: u8,
    pub packet: Vec<u8>,
}

/// The raw sockets (4, 41, 50) and their readers.
pub struct RawSockets {
    socks: Vec<Arc<RawSocket>>,
}

impl RawSockets {
    /// Open the raw sockets and start one reader thread each; packets go to `tx`.
    pub fn start(tx: mpsc::Sender<RawPacket>) -> Result<RawSockets> {
        let mut socks = Vec::new();
        for p in [PROTO_IPIP, PROTO_IPV6, PROTO_ESP] {
            let s = Arc::new(
                RawSocket::open(false, p)
                    .with_context(|| format!("raw IPv4 socket for protocol {p} (CAP_NET_RAW)"))?,
            );
            let (r, tx) = (s.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("raw-{p}"))
                .spawn(move || reader(&r, &tx))
                .context("raw socket reader thread")?;
            socks.push(s);
        }
        Ok(RawSockets { socks })
    }

    /// Send `payload` as IPv4 protocol `protocol` to `dst`.
    pub fn send(&self, protocol: u8, payload: &[u8], dst: Ipv4Addr) -> std::io::Result<usize> {
        let s = self
            .socks
            .iter()
            .find(|s| s.protocol() == protocol)
            .ok_or_else(|| std::io::Error::other("no raw socket for this protocol"))?;
        s.send_to(payload, IpAddr::V4(dst))
    }
}

fn reader(s: &RawSocket, tx: &mpsc::Sender<RawPacket>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        match s.recv_from(&mut buf) {
            Ok((n, _)) => {
                let p = RawPacket {
                    protocol: s.protocol(),
                    packet: buf[..n].to_vec(),
                };
                if tx.blocking_send(p).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!(error = %e, protocol = s.protocol(), "raw socket receive failed; reader stops");
                return;
            }
        }
    }
}

/// The source address and payload range of a received IPv4 packet (header length from
/// IHL, end from Total Length); `None` when malformed or fragmented (a raw socket gets
/// reassembled packets, so a fragment here is refused rather than guessed at).
pub fn ipv4_payload(pkt: &[u8]) -> Option<(Ipv4Addr, std::ops::Range<usize>)> {
    if pkt.len() < 20 || pkt[0] >> 4 != 4 {
        return None;
    }
    let hl = usize::from(pkt[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([pkt[2], pkt[3]]));
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff;
    if hl < 20 || total < hl || total > pkt.len() || frag != 0 {
        return None;
    }
    let src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    Some((src, hl..total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(total: u16, proto: u8, src: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(total)];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p
    }

    #[test]
    fn ipv4_payload_checks_lengths_and_fragments() {
        let p = v4(48, 41, [192, 0, 2, 1]);
        assert_eq!(
            ipv4_payload(&p),
            Some((Ipv4Addr::new(192, 0, 2, 1), 20..48))
        );
        // Total Length beyond the buffer.
        assert_eq!(ipv4_payload(&p[..40]), None);
        // IHL below 5.
        let mut bad = p.clone();
        bad[0] = 0x44;
        assert_eq!(ipv4_payload(&bad), None);
        // A fragment.
        let mut frag = p.clone();
        frag[6] = 0x20;
        assert_eq!(ipv4_payload(&frag), None);
        assert_eq!(ipv4_payload(&[0x45; 10]), None);
        assert_eq!(ipv4_payload(&[0x65; 40]), None);
        // Options: IHL 6.
        let mut opt = v4(48, 4, [10, 0, 0, 1]);
        opt[0] = 0x46;
        assert_eq!(ipv4_payload(&opt).map(|x| x.1), Some(24..48));
    }
}
