//! Destination Options header with the Home Address option.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = mipsec::wire::ext::DestOptsRepr::parse(data);
});
