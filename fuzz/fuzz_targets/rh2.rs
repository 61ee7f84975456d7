//! Type 2 routing header.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mipsec::wire::ext::RoutingHeaderType2::parse(data);
});
