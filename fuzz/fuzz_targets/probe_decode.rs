//! dsmip-probe's whole-packet dissector.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let r = interop::probe::decode::decode(data);
    let _ = interop::probe::decode::to_json(&r);
});
