//! Which payloads each exchange allows, and how many (RFC 7296 §1.2–1.5, §2.6, §3).
//! The same table checks what we receive and, in tests, what we send.

use super::{ExchangeType, Payload, PayloadType};
use crate::error::{Error, Result};

/// "Any number".
const N: u8 = u8::MAX;

/// (payload, min, max) for the plaintext part of IKE_SA_INIT. CERTREQ only in the response
/// (RFC 7296 §1.2; strongSwan refuses it in the request too).
const INIT_REQ: &[(PayloadType, u8, u8)] = &[
    (PayloadType::SA, 1, 1),
    (PayloadType::KE, 1, 1),
    (PayloadType::NONCE, 1, 1),
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::VENDOR, 0, N),
];
// A response may be only notifies (COOKIE, INVALID_KE_PAYLOAD, NO_PROPOSAL_CHOSEN: §2.6, §1.3).
const INIT_RESP: &[(PayloadType, u8, u8)] = &[
    (PayloadType::SA, 0, 1),
    (PayloadType::KE, 0, 1),
    (PayloadType::NONCE, 0, 1),
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::VENDOR, 0, N),
    (PayloadType::CERTREQ, 0, N),
];
/// Inside SK, IKE_AUTH request: `IDi, [CERT+], [CERTREQ+], [IDr], AUTH, SAi2, TSi, TSr`.
const AUTH_REQ: &[(PayloadType, u8, u8)] = &[
    (PayloadType::IDI, 1, 1),
    (PayloadType::CERT, 0, N),
    (PayloadType::CERTREQ, 0, N),
    (PayloadType::IDR, 0, 1),
    (PayloadType::AUTH, 1, 1),
    (PayloadType::SA, 0, 1),
    (PayloadType::TSI, 0, 1),
    (PayloadType::TSR, 0, 1),
    (PayloadType::CP, 0, 1),
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::VENDOR, 0, N),
];
/// Inside SK, IKE_AUTH response: `IDr, [CERT+], AUTH, SAr2, TSi, TSr`, or just notifies.
const AUTH_RESP: &[(PayloadType, u8, u8)] = &[
    (PayloadType::IDR, 0, 1),
    (PayloadType::CERT, 0, N),
    (PayloadType::AUTH, 0, 1),
    (PayloadType::SA, 0, 1),
    (PayloadType::TSI, 0, 1),
    (PayloadType::TSR, 0, 1),
    (PayloadType::CP, 0, 1),
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::VENDOR, 0, N),
];
/// Inside SK, CREATE_CHILD_SA (§1.3): `[N(REKEY_SA)], SA, Ni, [KEi], [TSi, TSr]`.
const CHILD: &[(PayloadType, u8, u8)] = &[
    (PayloadType::SA, 0, 1),
    (PayloadType::NONCE, 0, 1),
    (PayloadType::KE, 0, 1),
    (PayloadType::TSI, 0, 1),
    (PayloadType::TSR, 0, 1),
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::VENDOR, 0, N),
];
/// Inside SK, INFORMATIONAL (§1.4).
const INFO: &[(PayloadType, u8, u8)] = &[
    (PayloadType::NOTIFY, 0, N),
    (PayloadType::DELETE, 0, N),
    (PayloadType::CP, 0, 1),
    (PayloadType::VENDOR, 0, N),
];
/// Outside SK for every exchange after IKE_SA_INIT: the SK payload alone.
const OUTER: &[(PayloadType, u8, u8)] = &[(PayloadType::SK, 1, 1)];

/// The table for an exchange, direction and layer (`inner` = inside SK).
pub fn table(
    exchange: ExchangeType,
    response: bool,
    inner: bool,
) -> Option<&'static [(PayloadType, u8, u8)]> {
    Some(match (exchange, response, inner) {
        (ExchangeType::IKE_SA_INIT, false, false) => INIT_REQ,
        (ExchangeType::IKE_SA_INIT, true, false) => INIT_RESP,
        (ExchangeType::IKE_SA_INIT, _, true) => return None,
        (_, _, false) => OUTER,
        (ExchangeType::IKE_AUTH, false, true) => AUTH_REQ,
        (ExchangeType::IKE_AUTH, true, true) => AUTH_RESP,
        (ExchangeType::CREATE_CHILD_SA, _, true) => CHILD,
        (ExchangeType::INFORMATIONAL, _, true) => INFO,
        _ => return None,
    })
}

/// Checks `payloads` against the table; unknown non-critical payloads are ignored.
pub fn check(
    exchange: ExchangeType,
    response: bool,
    inner: bool,
    payloads: &[Payload],
) -> Result<()> {
    let direction = if response { "response" } else { "request" };
    let Some(t) = table(exchange, response, inner) else {
        return Err(Error::BadValue {
            field: "exchange type",
            offset: 18,
            value: exchange.0 as u32,
        });
    };
    for p in payloads {
        if matches!(p, Payload::Unknown { .. }) {
            continue;
        }
        if !t.iter().any(|(ty, _, _)| *ty == p.ty()) {
            return Err(Error::Disallowed {
                payload: p.ty().0,
                exchange: exchange.0,
                direction,
            });
        }
    }
    for (ty, min, max) in t {
        let n = payloads.iter().filter(|p| p.ty() == *ty).count();
        if n > *max as usize {
            return Err(Error::Disallowed {
                payload: ty.0,
                exchange: exchange.0,
                direction,
            });
        }
        if n < *min as usize {
            return Err(Error::Missing {
                payload: ty.0,
                exchange: exchange.0,
                direction,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{payload::KeRepr, NotifyRepr, NotifyType};

    #[test]
    fn init_request_needs_sa_ke_nonce() {
        let ke = Payload::Ke(KeRepr {
            group: 31,
            data: vec![0; 32],
        });
        let p = vec![Payload::Sa(vec![]), ke.clone(), Payload::Nonce(vec![0; 32])];
        assert!(check(ExchangeType::IKE_SA_INIT, false, false, &p).is_ok());
        assert_eq!(
            check(ExchangeType::IKE_SA_INIT, false, false, &p[..2]),
            Err(Error::Missing {
                payload: 40,
                exchange: 34,
                direction: "request"
            })
        );
        let mut two = p.clone();
        two.push(ke);
        assert!(matches!(
            check(ExchangeType::IKE_SA_INIT, false, false, &two),
            Err(Error::Disallowed { payload: 34, .. })
        ));
    }

    #[test]
    fn cookie_only_response_and_auth_outside_sk() {
        let n = vec![Payload::Notify(NotifyRepr::new(
            NotifyType::COOKIE,
            vec![1; 16],
        ))];
        assert!(check(ExchangeType::IKE_SA_INIT, true, false, &n).is_ok());
        assert!(matches!(
            check(ExchangeType::IKE_AUTH, false, false, &n),
            Err(Error::Disallowed { payload: 41, .. })
        ));
        assert!(matches!(
            check(
                ExchangeType::INFORMATIONAL,
                false,
                true,
                &[Payload::Nonce(vec![0; 16])]
            ),
            Err(Error::Disallowed { .. })
        ));
        assert!(check(ExchangeType::INFORMATIONAL, false, true, &[]).is_ok());
    }
}
