//! The Internet checksum (RFC 1071) and the IPv4 / IPv6 pseudo-headers it covers for UDP
//! (RFC 768, RFC 8200 §8.1), ICMPv6 and the Mobility Header (RFC 6275 §6.1.1).

use std::net::{Ipv4Addr, Ipv6Addr};

/// One's-complement sum of `data` as big-endian 16-bit words, added to `acc`, not folded.
pub fn sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u32::from(u16::from_be_bytes([w[0], w[1]])));
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add(u32::from(*last) << 8);
    }
    acc
}

/// Fold a 32-bit accumulator to 16 bits and complement it.
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Checksum of a buffer on its own (the IPv4 header checksum).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(0, data))
}

/// Sum of the IPv6 pseudo-header (RFC 8200 §8.1).
pub fn pseudo_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc = acc.wrapping_add(len >> 16).wrapping_add(len & 0xffff);
    acc.wrapping_add(u32::from(next_header))
}

/// Sum of the IPv4 pseudo-header (RFC 768).
pub fn pseudo_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, len: u16) -> u32 {
    let mut acc = sum(0, &src.octets());
    acc = sum(acc, &dst.octets());
    acc.wrapping_add(u32::from(protocol))
        .wrapping_add(u32::from(len))
}

/// Checksum of an upper-layer message under an IPv6 pseudo-header; the message's own
/// checksum field must hold zero (or be verified by checking for a zero result).
pub fn upper_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, msg: &[u8]) -> u16 {
    finish(sum(pseudo_v6(src, dst, next_header, msg.len() as u32), msg))
}

/// As [`upper_v6`] under an IPv4 pseudo-header.
pub fn upper_v4(src: &Ipv4Addr, dst: &Ipv4Addr, protocol: u8, msg: &[u8]) -> u16 {
    finish(sum(pseudo_v4(src, dst, protocol, msg.len() as u16), msg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn ipv4_header_from_wikipedia_example() {
        // A well-known IPv4 header whose checksum is b861.
        let mut h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&h), 0xb861);
        h[10] = 0xb8;
        h[11] = 0x61;
        assert_eq!(checksum(&h), 0);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(checksum(&[0x12]), checksum(&[0x12, 0x00]));
    }
}
