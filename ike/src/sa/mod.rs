//! The IKE SA state machine, sans IO in the manner of quinn-proto: an [`Endpoint`] takes
//! datagrams and the time, and hands back datagrams to send, the next timeout and events.
//! It never opens a socket or reads a clock; randomness comes from a [`Rng`] it is given.
//!
//! - [`endpoint`]: demultiplexing, responder cookies and the half-open cap (RFC 7296 §2.6).
//! - [`ike_sa`]: one IKE SA: message IDs, retransmission (§2.1, §2.2), SK protection,
//!   INFORMATIONAL with Delete and liveness (§1.4, §2.4), NAT keepalives (RFC 3948 §2.3).
//! - `exchange`: IKE_SA_INIT and IKE_AUTH for both roles with PSK (§1.2, §2.15), the
//!   first CHILD_SA with traffic-selector narrowing (§2.9) and USE_TRANSPORT_MODE (§1.3.1),
//!   NAT detection and the move to port 4500 (§2.23); `responder` the other side.
//! - [`child`]: CHILD_SA negotiation, KEYMAT, CREATE_CHILD_SA and CHILD_SA rekeys (§1.3.1,
//!   §1.3.3, §2.17); `rekey`: IKE SA rekeys (§1.3.2, §2.18).
//! - `log`: `tracing` lines for events and dropped datagrams, never with key material.

pub mod child;
pub mod endpoint;
mod exchange;
pub mod ike_sa;
mod log;
mod rekey;
mod responder;

pub use child::ChildPolicy;
pub use endpoint::Endpoint;

use crate::crypto::{Rng, Secret};
use crate::proposal::{Chosen, Proposal};
use crate::wire::payload::IdRepr;
use crate::wire::TrafficSelector;
use std::net::SocketAddr;
use std::time::Duration;

/// How we prove who we are, and how the peer must.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    /// A pre-shared key (RFC 7296 §2.15).
    Psk(Secret),
    /// A certificate and key, and the CAs the peer's certificate must chain to.
    Cert(std::sync::Arc<crate::cert::Credentials>),
}

/// One connection's settings, for an initiator or for the responder side of an endpoint.
#[derive(Debug, Clone)]
pub struct Config {
    pub local_id: IdRepr,
    /// The identity the peer must prove; `None` accepts any identity that knows the key.
    pub remote_id: Option<IdRepr>,
    pub auth: AuthConfig,
    pub ike_proposals: Vec<Proposal>,
    pub esp_proposals: Vec<Proposal>,
    /// Our side of the first CHILD_SA (TSi for an initiator) and the peer's side.
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    /// Ask for (initiator) or allow (responder) transport mode (RFC 7296 §1.3.1).
    pub transport: bool,
    /// Further CHILD_SAs the responder accepts in CREATE_CHILD_SA (or IKE_AUTH), tried in
    /// order after the first one above.
    pub extra_children: Vec<ChildPolicy>,
    /// IKE port and NAT-T port (500 and 4500; other values for unprivileged tests).
    pub ike_port: u16,
    pub natt_port: u16,
    /// First retransmission timeout; doubles each try (RFC 7296 §2.1).
    pub retransmit_timeout: Duration,
    pub retransmit_tries: u32,
    /// NAT keepalive interval when we are behind a NAT (RFC 3948 §2.3).
    pub keepalive: Duration,
    /// Liveness check (empty INFORMATIONAL, §1.4) after this long without a message from
    /// the peer; an unanswered check fails the SA with `Failure::Timeout`. `None`: off.
    pub dpd: Option<Duration>,
    /// Rekey each CHILD_SA this long after it came up, and the IKE SA this long after it
    /// came up (§2.8). `None`: only on demand. Set them on one side only: simultaneous
    /// rekeys (§2.8.1) are not resolved.
    pub rekey_child_after: Option<Duration>,
    pub rekey_ike_after: Option<Duration>,
    /// Half-open SAs above which the responder demands cookies (§2.6), and the hard cap.
    pub cookie_threshold: usize,
    pub half_open_max: usize,
    /// A half-open responder SA is dropped after this long without IKE_AUTH.
    pub half_open_timeout: Duration,
}

impl Config {
    /// A PSK configuration with strongSwan-like defaults.
    pub fn psk(local_id: &str, remote_id: Option<&str>, psk: &[u8]) -> Config {
        Config {
            local_id: IdRepr::from_text(local_id),
            remote_id: remote_id.map(IdRepr::from_text),
            auth: AuthConfig::Psk(Secret::new(psk.to_vec())),
            ike_proposals: vec![],
            esp_proposals: vec![],
            ts_local: vec![],
            ts_remote: vec![],
            transport: false,
            extra_children: vec![],
            ike_port: 500,
            natt_port: 4500,
            retransmit_timeout: Duration::from_secs(1),
            retransmit_tries: 5,
            keepalive: Duration::from_secs(20),
            dpd: None,
            rekey_child_after: None,
            rekey_ike_after: None,
            cookie_threshold: 100,
            half_open_max: 1000,
            half_open_timeout: Duration::from_secs(30),
        }
    }
}

/// Handle of an IKE SA: our own IKE SPI.
pub type SaId = u64;

/// A datagram to send. `data` already holds the non-ESP marker when `local_port` is the
/// NAT-T port (RFC 3948 §2.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub local_port: u16,
    pub remote: SocketAddr,
    pub data: Vec<u8>,
}

/// What an established IKE SA looks like from outside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IkeSaInfo {
    pub initiator: bool,
    pub spi_i: u64,
    pub spi_r: u64,
    pub proposal: Chosen,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// We are behind a NAT / the peer is behind a NAT (RFC 7296 §2.23).
    pub nat_local: bool,
    pub nat_remote: bool,
    pub remote_id: IdRepr,
}

/// CHILD_SA mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tunnel,
    Transport,
}

/// ESP keys of one CHILD_SA, per direction: encryption key (with AEAD salt) and
/// integrity key (empty for AEAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildKeys {
    pub enc_in: Secret,
    pub auth_in: Secret,
    pub enc_out: Secret,
    pub auth_out: Secret,
}

/// An established CHILD_SA, ready for the data plane to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSa {
    pub spi_in: u32,
    pub spi_out: u32,
    pub proposal: Chosen,
    pub mode: Mode,
    pub ts_local: Vec<TrafficSelector>,
    pub ts_remote: Vec<TrafficSelector>,
    pub keys: ChildKeys,
    /// UDP encapsulation ports (local, remote) when ESP must travel in UDP (RFC 3948).
    pub encap: Option<(u16, u16)>,
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// Why an IKE SA failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No answer after all retransmissions.
    Timeout,
    /// The peer answered with this error notify.
    PeerNotify(u16),
    /// The peer's AUTH payload or identity did not verify.
    AuthFailed,
    /// The peer broke the protocol.
    Protocol(crate::Error),
}

/// Output of the engine besides datagrams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    IkeSaUp {
        sa: SaId,
        info: IkeSaInfo,
    },
    ChildSaUp {
        sa: SaId,
        child: ChildSa,
    },
    /// The IKE SA is up but the peer refused the CHILD_SA with this notify.
    ChildSaFailed {
        sa: SaId,
        notify: u16,
    },
    ChildSaDown {
        sa: SaId,
        spi_in: u32,
    },
    Failed {
        sa: SaId,
        reason: Failure,
    },
    IkeSaDown {
        sa: SaId,
    },
    /// The peer rekeyed the IKE SA (RFC 7296 §2.18): `new` now holds the CHILD_SAs; the
    /// peer then deletes `old`, whose `IkeSaDown` concerns no CHILD_SA any more.
    IkeSaRekeyed {
        old: SaId,
        new: SaId,
        info: IkeSaInfo,
    },
    /// An authenticated message came from a new address or port (RFC 7296 §2.23; MOBIKE
    /// later builds on this).
    PeerAddressChanged {
        sa: SaId,
        remote: SocketAddr,
    },
}

/// What the SA code pushes out; owned by the endpoint.
pub(crate) struct Out<'a> {
    pub rng: &'a mut dyn Rng,
    /// Wall-clock seconds since 1970 for certificate validity, set by the driver.
    pub unix_time: i64,
    pub transmits: &'a mut std::collections::VecDeque<Transmit>,
    pub events: &'a mut std::collections::VecDeque<Event>,
    /// IKE SAs created while handling a message (a rekey), for the endpoint to adopt.
    pub new_sas: Vec<ike_sa::IkeSa>,
}
