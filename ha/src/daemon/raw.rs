//! Raw IPv4 sockets for the tunnels the kernel here cannot terminate (no ipip, sit or ESP
//! modules): IPv4 in IPv4 (protocol 4), IPv6 in IPv4 (protocol 41), both RFC 5555 §4.1,
//! and ESP (protocol 50, RFC 5555 §5.2.2 without a NAT). One reader thread per protocol
//! hands whole packets (IPv4 header included) to the main loop through a bounded channel;
//! sends go straight to the socket, which builds the outer IPv4 header itself.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use anyhow::{Context, Result};
use mipsec::io::raw::RawSocket;
use mipsec::wire::ip::Ipv4Repr;
use tokio::sync::mpsc;

pub const PROTO_IPIP: u8 = 4;
pub const PROTO_IPV6: u8 = 41;
pub const PROTO_ESP: u8 = 50;

/// A received packet: its protocol, outer source, and the payload after the IPv4 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawPacket {
    pub protocol: u8,
    pub src: Ipv4Addr,
    pub payload: Vec<u8>,
}

/// Split a packet from an IPv4 raw socket into (source, protocol, payload). `None` for
/// anything that is not a whole, unfragmented IPv4 packet (fragments are not reassembled
/// here: the kernel reassembles before raw delivery).
pub fn split(pkt: &[u8]) -> Option<RawPacket> {
    let (h, hl) = Ipv4Repr::parse(pkt).ok()?;
    if h.more_fragments || h.fragment_offset != 0 {
        return None;
    }
    let payload = pkt.get(hl..hl + usize::from(h.payload_len))?;
    Some(RawPacket {
        protocol: h.protocol,
        src: h.src,
        payload: payload.to_vec(),
    })
}

/// The three raw sockets and their readers.
pub struct RawTunnels {
    socks: Vec<(u8, Arc<RawSocket>)>,
}

impl RawTunnels {
    /// Open protocols 4, 41 and 50 and start one reader each, sending into `tx`.
    pub fn start(tx: mpsc::Sender<RawPacket>) -> Result<RawTunnels> {
        let mut socks = Vec::new();
        for proto in [PROTO_IPIP, PROTO_IPV6, PROTO_ESP] {
            let s = Arc::new(
                RawSocket::open(false, proto)
                    .with_context(|| format!("raw IPv4 socket for protocol {proto}"))?,
            );
            let (r, tx) = (s.clone(), tx.clone());
            std::thread::Builder::new()
                .name(format!("raw-{proto}"))
                .spawn(move || {
                    let mut buf = vec![0u8; 65_536];
                    // Ends when the main loop closes the channel (at exit).
                    while let Ok((n, _)) = r.recv_from(&mut buf) {
                        let Some(p) = split(&buf[..n]) else { continue };
                        if tx.blocking_send(p).is_err() {
                            return;
                        }
                    }
                })
                .context("starting a raw socket reader thread")?;
            socks.push((proto, s));
        }
        Ok(RawTunnels { socks })
    }

    /// Send `payload` as IP protocol `proto` to `dst`.
    pub fn send(&self, proto: u8, payload: &[u8], dst: Ipv4Addr) -> std::io::Result<usize> {
        let s = self
            .socks
            .iter()
            .find(|(p, _)| *p == proto)
            .map(|(_, s)| s)
            .ok_or_else(|| std::io::Error::other("no raw socket for that protocol"))?;
        s.send_to(payload, IpAddr::V4(dst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(protocol: u8, payload_len: u16, frag: u16) -> Vec<u8> {
        let mut p = vec![0u8; 20 + usize::from(payload_len)];
        Ipv4Repr {
            dscp: 0,
            ecn: 0,
            identification: 9,
            dont_fragment: false,
            more_fragments: false,
            fragment_offset: frag,
            ttl: 64,
            protocol,
            src: Ipv4Addr::new(192, 0, 2, 2),
            dst: Ipv4Addr::new(192, 0, 2, 1),
            payload_len,
        }
        .emit(&mut p)
        .unwrap();
        p
    }

    #[test]
    fn split_takes_source_protocol_and_payload() {
        let mut p = header(PROTO_IPV6, 4, 0);
        p[20..].copy_from_slice(&[0x60, 1, 2, 3]);
        p.extend([0xee; 3]); // trailing octets past the total length are not payload
        assert_eq!(
            split(&p),
            Some(RawPacket {
                protocol: PROTO_IPV6,
                src: Ipv4Addr::new(192, 0, 2, 2),
                payload: vec![0x60, 1, 2, 3]
            })
        );
        assert_eq!(split(&header(PROTO_ESP, 8, 3)), None, "a fragment");
        assert_eq!(split(&p[..22]), None, "total length beyond the packet");
        assert_eq!(split(&[0x45, 0]), None);
    }
}
