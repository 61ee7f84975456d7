//! IKE header and payload chain (RFC 7296 §3.1, §3.2): parse, check against the per-exchange
//! tables, and check that the canonical re-emission of a parsed chain is stable.
#![no_main]
use ike::wire::payload::emit_chain;
use ike::wire::{parse_chain, rules, Header, Payload, PayloadType, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

/// emit(parse(emit(p))) == emit(p): the emitted form parses back to the same bytes.
fn stable(first: PayloadType, payloads: &[Payload]) {
    let mut once = Vec::new();
    let ty = emit_chain(payloads, &mut once);
    assert_eq!(ty, first, "first payload type");
    let again = parse_chain(ty, &once, 0).expect("re-parse of an emitted chain");
    let mut twice = Vec::new();
    emit_chain(&again, &mut twice);
    assert_eq!(once, twice);
}

fuzz_target!(|data: &[u8]| {
    // A whole IKE message: header then chain.
    if let Ok(h) = Header::parse(data) {
        let body = &data[HEADER_LEN..];
        let mut out = Vec::new();
        h.emit(&mut out);
        assert_eq!(out.len(), HEADER_LEN);
        out.extend_from_slice(body);
        assert_eq!(
            Header::parse(&out).expect("re-parse of an emitted header"),
            h
        );
        if let Ok(p) = parse_chain(h.next_payload, body, HEADER_LEN) {
            let _ = rules::check(h.exchange, h.flags.response(), false, &p);
            let _ = rules::check(h.exchange, h.flags.response(), true, &p);
            stable(h.next_payload, &p);
        }
    }
    // A bare chain (as found inside a decrypted SK payload), first type from byte 0.
    if let Some((&first, rest)) = data.split_first() {
        let first = PayloadType(first);
        if let Ok(p) = parse_chain(first, rest, 1) {
            if !p.is_empty() {
                stable(first, &p);
            }
        }
    }
});
