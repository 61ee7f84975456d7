//! Mobility Header: check, parse, verify checksum; a parsed header re-emits and re-parses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipsec::wire::mh::{MhPacket, MhRepr};
use std::net::Ipv6Addr;

fuzz_target!(|data: &[u8]| {
    let (a, b) = (Ipv6Addr::LOCALHOST, Ipv6Addr::UNSPECIFIED);
    if let Ok(p) = MhPacket::new_checked(data) {
        let _ = p.verify_checksum(&a, &b);
        if let Ok(r) = MhRepr::parse(&p) {
            let mut out = vec![0u8; r.buffer_len()];
            if r.emit(&mut out, &a, &b).is_ok() {
                assert_eq!(MhRepr::parse_bytes(&out).unwrap(), r);
            }
        }
    }
});
