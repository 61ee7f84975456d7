//! Tunnel decapsulation (IP-in-IP and UDP 4191) in place.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut p = data.to_vec();
    if let Ok(d) = mipsec::wire::tunnel::decapsulate(&mut p) {
        assert!(d.inner.end <= p.len());
    }
});
