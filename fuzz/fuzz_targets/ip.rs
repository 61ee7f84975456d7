//! IPv4, IPv6 and UDP headers.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipsec::wire::ip::{Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr};
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    let _ = Ipv4Repr::parse(data);
    let _ = Ipv6Repr::parse(data);
    let _ = UdpRepr::parse(data, &Pseudo::V4 { src: Ipv4Addr::LOCALHOST, dst: Ipv4Addr::LOCALHOST });
});
