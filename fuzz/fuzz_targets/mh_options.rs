//! Mobility options after a BU's fixed part.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mipsec::wire::mh_option::parse_options(data, 12);
});
