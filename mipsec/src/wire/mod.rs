//! Wire formats. Each file owns one format: a checked zero-copy view where one is useful,
//! a `*Repr` with `parse` / `buffer_len` / `emit`, and byte-array tests at its end.
//!
//! Offsets in errors count from the start of the buffer handed to the parser.

pub mod checksum;
pub mod ext;
pub mod icmpv6;
pub mod ip;
pub mod mh;
pub mod mh_option;
pub mod tunnel;

pub use ext::{DestOptsRepr, RoutingHeaderType2};
pub use ip::{Ipv4Repr, Ipv6Repr, UdpRepr, IPPROTO_NONE};
pub use mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhPacket, MhRepr, MhType};
pub use mh_option::{Ipv4AckStatus, MhOption};

/// Big-endian reads from a slice already checked to be long enough.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn put32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

pub(crate) fn ipv6_at(b: &[u8], at: usize) -> std::net::Ipv6Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a.into()
}

pub(crate) fn ipv4_at(b: &[u8], at: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
}
