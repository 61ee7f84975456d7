//! SA payload (RFC 7296 §3.3), TS payload (§3.13) and CP payload (§3.15) bodies: parse,
//! stable re-emission, proposal selection against our proposals (§2.7), and TS narrowing
//! (§2.9): an intersection lies inside both selectors.
#![no_main]
use ike::proposal::{accept_reply, select, Proposal};
use ike::wire::sa::{emit_sa, parse_sa};
use ike::wire::ts::{emit_ts, parse_ts};
use ike::wire::{CpRepr, ProtocolId};
use libfuzzer_sys::fuzz_target;

fn ours() -> Vec<Proposal> {
    [
        ("aes256gcm16-prfsha384-ecp384", ProtocolId::IKE),
        ("chacha20poly1305-prfsha256-x25519", ProtocolId::IKE),
        ("aes128-sha256-modp3072", ProtocolId::IKE),
        ("aes256gcm16", ProtocolId::ESP),
        ("aes256-sha256-x25519", ProtocolId::ESP),
    ]
    .iter()
    .map(|(s, p)| Proposal::parse(s, *p).expect("our proposal strings parse"))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(sa) = parse_sa(body, 1) {
                let mut once = Vec::new();
                emit_sa(&sa, &mut once);
                let again = parse_sa(&once, 0).expect("re-parse of an emitted SA");
                let mut twice = Vec::new();
                emit_sa(&again, &mut twice);
                assert_eq!(once, twice);
                let ours = ours();
                for need_groups in [false, true] {
                    if let Some((num, _, _)) = select(&ours, &sa, need_groups) {
                        assert!(sa.iter().any(|o| o.num == num));
                    }
                    let _ = accept_reply(&ours, &sa, need_groups);
                }
            }
        }
        1 => {
            if let Ok(ts) = parse_ts(body, 1) {
                let mut once = Vec::new();
                emit_ts(&ts, &mut once);
                let again = parse_ts(&once, 0).expect("re-parse of emitted TSs");
                assert_eq!(again, ts);
                for a in &ts {
                    let _ = a.mh_type();
                    for b in &ts {
                        if let Some(i) = a.intersect(b) {
                            assert!(a.contains(&i) && b.contains(&i), "{a:?} ∩ {b:?} = {i:?}");
                        }
                    }
                }
            }
        }
        _ => {
            if let Ok(cp) = CpRepr::parse(body, 1) {
                let mut out = Vec::new();
                cp.emit(&mut out);
                assert_eq!(
                    CpRepr::parse(&out, 0).expect("re-parse of an emitted CP"),
                    cp
                );
            }
        }
    }
});
