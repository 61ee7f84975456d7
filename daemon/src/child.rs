//! A negotiated CHILD_SA (from `ike`) turned into the two ESP SAs of `mipsec::esp`: the
//! transform named by the chosen proposal, and each direction's key material as ESP wants
//! it, encryption key (with the AEAD salt) followed by the integrity key (RFC 7296 §2.17
//! order). Both daemons install the BU/BA SA and the data SA through this.

use ike::sa::ChildSa;
use mipsec::esp::{EspError, InboundSa, OutboundSa, SaConfig, Transform};

/// Why a CHILD_SA cannot be used by our ESP.
#[derive(Debug)]
pub enum PairError {
    /// The negotiated ESP transform is not one `mipsec::esp` implements (its name).
    Transform(String),
    /// The key material does not fit the transform.
    Keys(EspError),
}

impl std::fmt::Display for PairError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PairError::Transform(name) => write!(f, "ESP transform {name} not supported"),
            PairError::Keys(e) => write!(f, "key material does not fit the transform: {e}"),
        }
    }
}

/// The ESP SAs of `child`, both directions, and the transform; `tune` adjusts each
/// direction's [`SaConfig`] (replay window, ESN) before the SA is made.
pub fn esp_pair(
    child: &ChildSa,
    tune: impl Fn(&mut SaConfig),
) -> Result<(InboundSa, OutboundSa, Transform), PairError> {
    let name = child.proposal.name();
    let transform = Transform::from_name(&name).ok_or(PairError::Transform(name))?;
    let cfg = |spi| {
        let mut c = SaConfig::new(spi, transform);
        tune(&mut c);
        c
    };
    let k = &child.keys;
    let keymat = |enc: &[u8], auth: &[u8]| [enc, auth].concat();
    let inbound = InboundSa::new(
        cfg(child.spi_in),
        &keymat(k.enc_in.expose(), k.auth_in.expose()),
    )
    .map_err(PairError::Keys)?;
    let outbound = OutboundSa::new(
        cfg(child.spi_out),
        &keymat(k.enc_out.expose(), k.auth_out.expose()),
    )
    .map_err(PairError::Keys)?;
    Ok((inbound, outbound, transform))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::crypto::{Encr, Integ, Secret};
    use ike::proposal::Chosen;
    use ike::sa::{ChildKeys, Mode};

    fn child(encr: Encr, key_len: usize) -> ChildSa {
        let key = |b: u8| Secret::new(vec![b; key_len]);
        ChildSa {
            spi_in: 0x1000_0001,
            spi_out: 0x2000_0002,
            proposal: Chosen {
                encr,
                integ: Integ::None,
                prf: None,
                group: None,
                esn: false,
            },
            mode: Mode::Tunnel,
            ts_local: vec![],
            ts_remote: vec![],
            keys: ChildKeys {
                enc_in: key(1),
                auth_in: Secret::new(vec![]),
                enc_out: key(2),
                auth_out: Secret::new(vec![]),
            },
            encap: None,
            local: "192.0.2.1:4500".parse().unwrap(),
            remote: "192.0.2.2:4500".parse().unwrap(),
        }
    }

    #[test]
    fn spis_transform_tuning_and_refusals() {
        // AES-128-GCM: 16 octets of key and 4 of salt (RFC 4106 §8.1).
        let (i, o, t) = esp_pair(&child(Encr::AesGcm16(128), 20), |c| c.replay_window = 1024)
            .expect("a usable pair");
        assert_eq!((i.spi(), o.spi()), (0x1000_0001, 0x2000_0002));
        assert_eq!(t.name(), "aes128gcm16");
        let short = esp_pair(&child(Encr::AesGcm16(128), 7), |_| {}).unwrap_err();
        assert!(matches!(short, PairError::Keys(_)), "{short}");
        // AES-CBC without an integrity algorithm: no such ESP transform here.
        let des = esp_pair(&child(Encr::AesCbc(128), 16), |_| {}).unwrap_err();
        assert!(matches!(des, PairError::Transform(_)), "{des}");
    }
}
