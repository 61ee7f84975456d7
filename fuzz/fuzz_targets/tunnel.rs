//! Tunnel decapsulation (IP-in-IP and UDP 4191) in place. An outer IPv4 header's checksum
//! is fixed up first, so inputs reach the inner-packet rules instead of stopping there.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mipsec::wire::checksum;

fuzz_target!(|data: &[u8]| {
    let mut p = data.to_vec();
    if p.len() >= 20 && p[0] >> 4 == 4 {
        let hlen = (usize::from(p[0] & 0x0f) * 4).clamp(20, p.len().min(60));
        p[10] = 0;
        p[11] = 0;
        let c = checksum::checksum(&p[..hlen]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
    }
    if let Ok(d) = mipsec::wire::tunnel::decapsulate(&mut p) {
        assert!(d.inner.end <= p.len());
    }
});
