//! The pre-shared key of a daemon's `[ipsec]` table: read from the configuration file,
//! handed to IKE as bytes, never printed (`Debug` shows only its length).

use serde::Deserialize;

/// A pre-shared key (RFC 7296 §2.15).
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Psk(String);

impl Psk {
    pub fn bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// Its length in bytes, for configuration checks.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Psk([redacted; {}])", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let p: Psk = serde_json::from_str("\"lab-only-pre-shared-key\"").unwrap();
        assert_eq!(format!("{p:?}"), "Psk([redacted; 23])");
        assert_eq!(p.bytes(), b"lab-only-pre-shared-key");
        assert_eq!(p.len(), 23);
    }
}
