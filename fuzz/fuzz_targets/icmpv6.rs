//! Mobile IPv6 ICMPv6 messages (checksum forced valid so the body parser is reached).
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipsec::wire::checksum;
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    let (a, b) = (Ipv6Addr::LOCALHOST, Ipv6Addr::LOCALHOST);
    let mut m = data.to_vec();
    if m.len() >= 4 {
        m[2] = 0;
        m[3] = 0;
        let c = checksum::upper_v6(&a, &b, 58, &m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    let _ = mipsec::wire::icmpv6::Icmpv6Repr::parse(&m, &a, &b);
});
