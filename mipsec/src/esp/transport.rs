//! ESP transport mode (RFC 4303 §3.1.1): the ESP header goes between the IP header (with
//! the IPv6 extension headers that precede it) and the upper-layer protocol. RFC 5555 §5.2.1
//! protects the mobile node's Binding Updates and Acknowledgements this way, with the Home
//! Address destination option (RFC 6275 §6.3) and the type 2 routing header kept in front
//! of ESP, where RFC 4877 §4 and RFC 6275 §11.3.2 need them.

use std::ops::Range;

use super::sa::Inbound;
use super::{EspError, InboundSa, OutboundSa};
use crate::error::{need, room, Error};
use crate::wire::checksum;
use crate::wire::ip::IPPROTO_ESP;

const HOPOPTS: u8 = 0;
const ROUTING: u8 = 43;
const DSTOPTS: u8 = 60;

/// Where the headers that stay in front of ESP end, and the offset of the Next Header /
/// Protocol byte that names what follows them.
fn front(pkt: &[u8]) -> Result<(usize, usize), Error> {
    need(pkt, "ip.version", 0, 1)?;
    match pkt[0] >> 4 {
        4 => {
            need(pkt, "ipv4.header", 0, 20)?;
            let hl = usize::from(pkt[0] & 0x0f) * 4;
            need(pkt, "ipv4.options", 0, hl)?;
            Ok((hl, 9))
        }
        6 => {
            need(pkt, "ipv6.header", 0, 40)?;
            let (mut at, mut nh_at) = (40, 6);
            // RFC 4303 §3.1.1: hop-by-hop, routing and destination options before ESP.
            while matches!(pkt[nh_at], HOPOPTS | ROUTING | DSTOPTS) {
                need(pkt, "ipv6.extension", at, 2)?;
                let len = (usize::from(pkt[at + 1]) + 1) * 8;
                need(pkt, "ipv6.extension", at, len)?;
                nh_at = at;
                at += len;
            }
            Ok((at, nh_at))
        }
        v => Err(Error::Invalid {
            field: "ip.version",
            offset: 0,
            value: u64::from(v >> 4),
            reason: "IP version must be 4 or 6",
        }),
    }
}

fn set_lengths(pkt: &mut [u8]) {
    let len = pkt.len();
    if pkt[0] >> 4 == 4 {
        let hl = usize::from(pkt[0] & 0x0f) * 4;
        pkt[2..4].copy_from_slice(&(len as u16).to_be_bytes());
        pkt[10..12].fill(0);
        let c = checksum::checksum(&pkt[..hl]);
        pkt[10..12].copy_from_slice(&c.to_be_bytes());
    } else {
        pkt[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
    }
}

/// Protect the IP packet `pkt` in transport mode into `out`; returns the length.
pub fn encapsulate(sa: &mut OutboundSa, pkt: &[u8], out: &mut [u8]) -> Result<usize, EspError> {
    let (hl, nh_at) = front(pkt)?;
    let upper = pkt[nh_at];
    let esp_len = sa.encapsulated_len(pkt.len() - hl);
    let total = hl + esp_len;
    room(out, "esp.transport", total)?;
    if total > usize::from(u16::MAX) + if pkt[0] >> 4 == 6 { 40 } else { 0 } {
        return Err(Error::Unencodable {
            field: "ip.length",
            reason: "packet too long with ESP",
        }
        .into());
    }
    out[..hl].copy_from_slice(&pkt[..hl]);
    out[nh_at] = IPPROTO_ESP;
    sa.encapsulate(upper, &pkt[hl..], &mut out[hl..total])?;
    set_lengths(&mut out[..total]);
    Ok(total)
}

/// Verify and strip transport-mode ESP from `pkt` in place: the packet is rebuilt at the
/// start of the buffer, the upper-layer protocol restored; returns its range (starting at
/// 0) and the SA's view (sequence number, or a dummy packet).
pub fn decapsulate(
    sa: &mut InboundSa,
    pkt: &mut [u8],
) -> Result<(Range<usize>, Inbound), EspError> {
    let (hl, nh_at) = front(pkt)?;
    if pkt[nh_at] != IPPROTO_ESP {
        return Err(Error::Invalid {
            field: "ip.next_header",
            offset: nh_at,
            value: u64::from(pkt[nh_at]),
            reason: "not ESP",
        }
        .into());
    }
    let end = if pkt[0] >> 4 == 4 {
        usize::from(u16::from_be_bytes([pkt[2], pkt[3]]))
    } else {
        40 + usize::from(u16::from_be_bytes([pkt[4], pkt[5]]))
    };
    need(pkt, "ip.payload", 0, end)?;
    let r = sa.decapsulate(&mut pkt[hl..end]).map_err(|e| match e {
        EspError::Wire(w) => EspError::Wire(w.shifted(hl)),
        e => e,
    })?;
    let Inbound::Packet {
        next_header,
        ref payload,
        ..
    } = r
    else {
        return Ok((0..0, r));
    };
    let (s, e) = (hl + payload.start, hl + payload.end);
    pkt.copy_within(s..e, hl);
    pkt[nh_at] = next_header;
    let len = hl + (e - s);
    set_lengths(&mut pkt[..len]);
    Ok((0..len, r))
}
