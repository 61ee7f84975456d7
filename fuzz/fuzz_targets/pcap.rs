//! The raw-IP pcap reader.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mipsec::pcap::read_raw_ip(data);
});
