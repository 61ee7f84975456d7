//! `tracing` output of the engine: one line per event and per dropped or rejected datagram.
//! Only public facts go out (SPIs, addresses, algorithm names, notify numbers, error
//! fields and offsets); key material, nonces, key shares and PSKs never do, and no event is
//! printed with `Debug` (a `ChildSa` carries keys).

use super::{Event, Failure};
use crate::wire::{ExchangeType, Header};

/// Logs one event when the engine queues it.
pub(crate) fn event(e: &Event) {
    match e {
        Event::IkeSaUp { sa, info } => tracing::debug!(
            sa = format_args!("{sa:016x}"),
            spi_i = format_args!("{:016x}", info.spi_i),
            spi_r = format_args!("{:016x}", info.spi_r),
            initiator = info.initiator,
            proposal = %info.proposal.name(),
            local = %info.local,
            remote = %info.remote,
            nat_local = info.nat_local,
            nat_remote = info.nat_remote,
            "IKE SA up"
        ),
        Event::ChildSaUp { sa, child } => tracing::debug!(
            sa = format_args!("{sa:016x}"),
            spi_in = format_args!("{:08x}", child.spi_in),
            spi_out = format_args!("{:08x}", child.spi_out),
            proposal = %child.proposal.name(),
            mode = ?child.mode,
            ts_local = child.ts_local.len(),
            ts_remote = child.ts_remote.len(),
            encap = ?child.encap,
            "CHILD_SA up"
        ),
        Event::ChildSaFailed { sa, notify } => {
            tracing::debug!(sa = format_args!("{sa:016x}"), notify, "CHILD_SA refused")
        }
        Event::ChildSaDown { sa, spi_in } => tracing::debug!(
            sa = format_args!("{sa:016x}"),
            spi_in = format_args!("{spi_in:08x}"),
            "CHILD_SA down"
        ),
        Event::Failed { sa, reason } => {
            let sa = format_args!("{sa:016x}");
            match reason {
                Failure::Timeout => tracing::debug!(sa, "IKE SA failed: timeout"),
                Failure::PeerNotify(n) => {
                    tracing::debug!(sa, notify = n, "IKE SA failed: peer notify")
                }
                Failure::AuthFailed => tracing::debug!(sa, "IKE SA failed: authentication"),
                Failure::Protocol(e) => tracing::debug!(sa, error = %e, "IKE SA failed: protocol"),
            }
        }
        Event::IkeSaDown { sa } => tracing::debug!(sa = format_args!("{sa:016x}"), "IKE SA down"),
        Event::IkeSaRekeyed { old, new, info } => tracing::debug!(
            old = format_args!("{old:016x}"),
            new = format_args!("{new:016x}"),
            proposal = %info.proposal.name(),
            "IKE SA rekeyed"
        ),
        Event::PeerAddressChanged { sa, remote } => tracing::debug!(
            sa = format_args!("{sa:016x}"),
            %remote,
            "peer address changed"
        ),
    }
}

/// The exchange name for log lines.
pub(crate) fn exchange(x: ExchangeType) -> &'static str {
    x.name().unwrap_or("unknown")
}

/// Logs a received message that parsed as an IKE header.
pub(crate) fn received(h: &Header) {
    tracing::debug!(
        spi_i = format_args!("{:016x}", h.spi_i),
        spi_r = format_args!("{:016x}", h.spi_r),
        exchange = exchange(h.exchange),
        message_id = h.message_id,
        response = h.flags.response(),
        len = h.length,
        "received"
    );
}
