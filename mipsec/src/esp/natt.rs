//! UDP encapsulation of ESP (RFC 3948) on port 4500: telling IKE from ESP on one socket by
//! the non-ESP marker, NAT keepalives, and repairing transport checksums behind a NAT.

use std::net::Ipv4Addr;

use crate::error::{need, room, Error, Result};
use crate::wire::checksum;
use crate::wire::ip::IPPROTO_UDP;

/// The IKE NAT-traversal port that also carries ESP (RFC 3948 §2, RFC 7296 §2.23).
pub const NATT_PORT: u16 = 4500;
/// Four zero octets in front of IKE messages on port 4500 (RFC 3948 §2.2): where ESP has
/// its SPI, which is never 0.
pub const NON_ESP_MARKER: [u8; 4] = [0; 4];
/// The NAT-keepalive payload: one octet 0xFF (RFC 3948 §2.3).
pub const KEEPALIVE: [u8; 1] = [0xff];
const IPPROTO_TCP: u8 = 6;

/// What a UDP payload received on port 4500 holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram<'a> {
    /// A NAT keepalive: discard (RFC 3948 §2.3).
    Keepalive,
    /// An IKE message, marker removed.
    Ike(&'a [u8]),
    /// An ESP packet starting at the SPI (RFC 3948 §2.1).
    Esp,
}

/// Classify a UDP payload from port 4500 (RFC 3948 §2.1–2.3).
pub fn classify(payload: &[u8]) -> Result<Datagram<'_>> {
    if payload == KEEPALIVE {
        return Ok(Datagram::Keepalive);
    }
    need(payload, "udp4500.marker", 0, 4)?;
    if payload[..4] == NON_ESP_MARKER {
        return Ok(Datagram::Ike(&payload[4..]));
    }
    // An ESP header is 8 octets: SPI and sequence number.
    need(payload, "esp.header", 0, 8)?;
    Ok(Datagram::Esp)
}

/// Write `ike` behind the non-ESP marker into `out`; returns the length.
pub fn ike_with_marker(ike: &[u8], out: &mut [u8]) -> Result<usize> {
    let n = 4 + ike.len();
    room(out, "udp4500.ike", n)?;
    out[..4].copy_from_slice(&NON_ESP_MARKER);
    out[4..n].copy_from_slice(ike);
    Ok(n)
}

fn sum_addr(acc: u32, a: Ipv4Addr) -> u32 {
    checksum::sum(acc, &a.octets())
}

/// RFC 3948 §3.1.2: after transport-mode decapsulation behind a NAT the TCP or UDP
/// checksum covers the addresses the peer used (its NAT-OA values), not the ones in the
/// received IP header. Update it incrementally (RFC 1624 eq. 3) from `original` (source,
/// destination as the sender saw them) to `actual`. A zero UDP checksum stays zero.
pub fn fix_transport_checksum(
    protocol: u8,
    segment: &mut [u8],
    original: (Ipv4Addr, Ipv4Addr),
    actual: (Ipv4Addr, Ipv4Addr),
) -> Result<()> {
    let at = match protocol {
        IPPROTO_TCP => 16,
        IPPROTO_UDP => 6,
        p => {
            return Err(Error::Invalid {
                field: "transport.protocol",
                offset: 0,
                value: u64::from(p),
                reason: "only TCP and UDP carry a pseudo-header checksum",
            })
        }
    };
    need(segment, "transport.checksum", at, 2)?;
    let old = u16::from_be_bytes([segment[at], segment[at + 1]]);
    if protocol == IPPROTO_UDP && old == 0 {
        return Ok(());
    }
    // ~C' = ~C + ~m + m' for each changed 16-bit word m -> m'.
    let mut acc = u32::from(!old);
    for a in [original.0, original.1] {
        let o = a.octets();
        acc += u32::from(!u16::from_be_bytes([o[0], o[1]]));
        acc += u32::from(!u16::from_be_bytes([o[2], o[3]]));
    }
    acc = sum_addr(sum_addr(acc, actual.0), actual.1);
    let mut new = checksum::finish(acc);
    if protocol == IPPROTO_UDP && new == 0 {
        new = 0xffff; // RFC 768: a computed zero is sent as all ones
    }
    segment[at..at + 2].copy_from_slice(&new.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classify_keepalive_ike_esp() {
        assert_eq!(classify(&[0xff]), Ok(Datagram::Keepalive));
        let ike = [0, 0, 0, 0, 1, 2, 3];
        assert_eq!(classify(&ike), Ok(Datagram::Ike(&[1, 2, 3])));
        assert_eq!(classify(&[0, 0, 1, 0, 0, 0, 0, 1, 9]), Ok(Datagram::Esp));
        assert!(classify(&[0, 0, 1]).is_err());
        assert!(
            classify(&[0, 0, 1, 0, 0]).is_err(),
            "ESP shorter than its header"
        );
        let mut out = [0u8; 8];
        assert_eq!(ike_with_marker(&[7, 8], &mut out), Ok(6));
        assert_eq!(&out[..6], &[0, 0, 0, 0, 7, 8]);
    }

    #[test]
    fn incremental_checksum_matches_a_full_recompute() {
        let orig = (Ipv4Addr::new(10, 0, 0, 2), Ipv4Addr::new(192, 0, 2, 1));
        let actual = (Ipv4Addr::new(198, 51, 100, 7), Ipv4Addr::new(192, 0, 2, 1));
        for proto in [IPPROTO_TCP, IPPROTO_UDP] {
            let mut seg: Vec<u8> = (0..57u8).map(|i| i.wrapping_mul(37)).collect();
            let at = if proto == IPPROTO_TCP { 16 } else { 6 };
            if proto == IPPROTO_UDP {
                seg[4..6].copy_from_slice(&57u16.to_be_bytes());
            }
            seg[at..at + 2].fill(0);
            let c = checksum::upper_v4(&orig.0, &orig.1, proto, &seg);
            seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
            fix_transport_checksum(proto, &mut seg, orig, actual).unwrap();
            // The segment now verifies against the actual addresses.
            assert_eq!(
                checksum::upper_v4(&actual.0, &actual.1, proto, &seg),
                0,
                "{proto}"
            );
        }
        let mut udp0 = [0u8; 8];
        fix_transport_checksum(IPPROTO_UDP, &mut udp0, orig, actual).unwrap();
        assert_eq!(udp0, [0; 8]);
        assert!(fix_transport_checksum(1, &mut udp0, orig, actual).is_err());
    }
}
