//! Binding Acknowledgement processing (RFC 6275 §11.7.3, RFC 5555 §4.4.2): sequence
//! matching, statuses 135 and 144, the binding update list entries for the IPv6 and IPv4
//! home addresses, and the NAT state the NAT Detection option sets.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use mipsec::wire::mh_option::REFRESH_NOT_NEEDED;
use mipsec::wire::{BaFlags, BaStatus, BuFlags, Ipv4AckStatus, MhMessage, MhOption, MhRepr};
use tracing::debug;

use super::{BaContext, BaOutcome, Family, MobileNode, Pending, Purpose};
use crate::config::Ipv4Home;
use crate::error::{MnError, Result};
use crate::output::{BulEntry, CareOf, Event, KeyingEvent, NatState};

impl MobileNode {
    /// Process a Binding Acknowledgement (RFC 6275 §11.7.3, RFC 5555 §4.4.2).
    pub fn handle_ba(&mut self, now: Instant, ctx: &BaContext, ba: &MhRepr) -> Result<BaOutcome> {
        let (status, flags, sequence, lifetime) = self.admit(ctx, ba)?;
        let Some(p) = self.pending.clone() else {
            self.counters.ba_stale += 1;
            return Ok(BaOutcome::Stale);
        };
        if status == BaStatus::SEQUENCE_OUT_OF_WINDOW {
            // RFC 6275 §11.7.3: take the home agent's last accepted number and resend.
            self.next_seq = sequence.wrapping_add(1);
            self.counters.ba_rejected += 1;
            self.send_pending(now);
            return Ok(BaOutcome::Resent);
        }
        if sequence != p.seq {
            self.counters.ba_stale += 1;
            return Ok(BaOutcome::Stale);
        }
        if status == BaStatus::UDP_ENCAPSULATION_REFUSED && p.flags.has(BuFlags::F) {
            // RFC 5555 §4.4.2: 144 refuses forced UDP; resend without F.
            self.f_refused = true;
            self.force_udp = false;
            self.counters.ba_rejected += 1;
            self.events.push_back(Event::ForcedUdpRefused);
            self.send_pending(now);
            return Ok(BaOutcome::Resent);
        }
        self.pending = None;
        if !status.is_accepted() {
            self.counters.ba_rejected += 1;
            debug!(hoa = %self.cfg.home_address, seq = sequence, status = status.0, "binding update rejected");
            self.events.push_back(Event::Rejected { status });
            self.schedule_refresh_after_reject(now);
            return Ok(BaOutcome::Rejected(status));
        }
        debug!(hoa = %self.cfg.home_address, seq = sequence, lifetime, "binding acknowledged");
        self.counters.ba_accepted += 1;
        let granted = Duration::from_secs(4 * u64::from(lifetime)).min(p.lifetime);
        if p.purpose != Purpose::Register || granted.is_zero() {
            self.clear_bindings(if p.purpose == Purpose::ReturnHome {
                Event::AtHome
            } else {
                Event::Deregistered
            });
            return Ok(BaOutcome::Accepted);
        }
        self.accept(&p, granted, flags, ba, ctx);
        Ok(BaOutcome::Accepted)
    }

    /// The gate before any state changes: a BA, IPsec-protected, from our home agent
    /// (RFC 4877 §4.1). Returns (status, flags, sequence, lifetime).
    fn admit(&mut self, ctx: &BaContext, ba: &MhRepr) -> Result<(BaStatus, BaFlags, u16, u16)> {
        let MhMessage::BindingAck {
            status,
            flags,
            sequence,
            lifetime,
        } = ba.message
        else {
            self.counters.ba_dropped += 1;
            return Err(MnError::NotBindingAck {
                mh_type: ba.mh_type().0,
            });
        };
        if !ctx.protected {
            self.counters.ba_dropped += 1;
            return Err(MnError::Unprotected);
        }
        if Some(ctx.src) != self.ha.ipv6 {
            self.counters.ba_dropped += 1;
            return Err(MnError::WrongSource {
                found: IpAddr::V6(ctx.src),
            });
        }
        Ok((status, flags, sequence, lifetime))
    }

    fn schedule_refresh_after_reject(&mut self, now: Instant) {
        // Keep the old binding (it is still valid at the home agent); retry at refresh time.
        if let Some(e) = self.ipv6_entry {
            self.refresh_at = Some(self.refresh_time(now, e.lifetime));
        }
    }

    fn clear_bindings(&mut self, ev: Event) {
        self.ipv6_entry = None;
        self.ipv4_entries.clear();
        self.nat = NatState::default();
        self.refresh_at = None;
        self.update_tunnel();
        self.events.push_back(ev);
    }

    fn accept(
        &mut self,
        p: &Pending,
        granted: Duration,
        flags: BaFlags,
        ba: &MhRepr,
        ctx: &BaContext,
    ) {
        let home_agent = match p.coa {
            CareOf::V6(_) => IpAddr::V6(ctx.src),
            CareOf::V4 { .. } => self.ha.ipv4.map_or(IpAddr::V6(ctx.src), IpAddr::V4),
        };
        let moved = self.ipv6_entry.map(|e| e.coa) != Some(p.coa);
        self.nat = self.nat_from(p, ba);
        let expires = p.sent_at + granted;
        let udp = self.nat.udp;
        let acks = self.ipv4_from_acks(p, ba);
        let entry = |home, prefix_len| BulEntry {
            home,
            prefix_len,
            coa: p.coa,
            home_agent,
            sequence: p.seq,
            lifetime: granted,
            expires,
            udp,
        };
        self.ipv6_entry = Some(entry(IpAddr::V6(self.cfg.home_address), 128));
        self.ipv4_entries = acks
            .into_iter()
            .map(|(a, l)| entry(IpAddr::V4(a), l))
            .collect();
        if let (CareOf::V6(_), Some(d)) = (p.coa, self.domain()) {
            self.family_memory = Some((d, Family::V6));
        }
        // RFC 6275 §11.7.3: a Binding Refresh Advice shortens the refresh interval.
        let advice = ba.options.iter().find_map(|o| match o {
            MhOption::BindingRefreshAdvice { refresh_interval } => {
                Some(Duration::from_secs(4 * u64::from(*refresh_interval)))
            }
            _ => None,
        });
        let at = self.refresh_time(p.sent_at, granted);
        self.refresh_at =
            Some(advice.map_or(at, |a| at.min(p.sent_at + a.max(Duration::from_secs(1)))));
        let ipv4_home = self.ipv4_entries.first().and_then(|e| match e.home {
            IpAddr::V4(a) => Some((a, e.prefix_len)),
            IpAddr::V6(_) => None,
        });
        self.events.push_back(Event::Registered {
            coa: p.coa,
            lifetime: granted,
            ipv4_home,
        });
        let changed = self.update_tunnel();
        if moved || changed {
            self.events
                .push_back(Event::Keying(KeyingEvent::CareOfAddressConfirmed {
                    coa: p.coa,
                    home_agent,
                    nat: self.nat,
                    k_acknowledged: p.flags.has(BuFlags::K) && flags.has(BaFlags::K),
                }));
        }
    }

    /// NAT Detection option handling (RFC 5555 §3.2.2, §4.2, §4.3, §4.4.2).
    ///
    /// §4.2 makes the option mandatory in every BA to a BU that came in UDP, so its mere
    /// presence cannot mean "NAT": a refresh time of all ones says no NAT was seen, and the
    /// option's F bit says UDP is required anyway. UDP is used when a NAT was seen, when the
    /// home agent forces it, or when our own F flag was accepted; IP-in-IP otherwise.
    fn nat_from(&self, p: &Pending, ba: &MhRepr) -> NatState {
        if !p.coa.is_v4() {
            return NatState::default();
        }
        let det = ba.options.iter().find_map(|o| match o {
            MhOption::NatDetection {
                force_udp,
                refresh_time,
            } => Some((*force_udp, *refresh_time)),
            _ => None,
        });
        let ours = p.flags.has(BuFlags::F);
        let Some((forced, refresh)) = det else {
            return NatState {
                nat_detected: false,
                udp: ours,
                keepalive: None,
            };
        };
        let keepalive = match refresh {
            REFRESH_NOT_NEEDED => None,
            // Zero: no suggestion, use NATKATIMEOUT.
            0 => Some(Duration::from_secs(u64::from(self.cfg.nat_keepalive_secs))),
            t => Some(Duration::from_secs(u64::from(t))),
        };
        NatState {
            nat_detected: keepalive.is_some(),
            udp: keepalive.is_some() || forced || ours,
            keepalive,
        }
    }

    /// The IPv4 entries to create from the IPv4 Address Acknowledgements (§4.4.2).
    fn ipv4_from_acks(&mut self, p: &Pending, ba: &MhRepr) -> Vec<(Ipv4Addr, u8)> {
        if p.v4.is_empty() {
            return Vec::new();
        }
        let acks: Vec<(Ipv4AckStatus, u8, Ipv4Addr)> = ba
            .options
            .iter()
            .filter_map(|o| match o {
                MhOption::Ipv4AddressAck {
                    status,
                    prefix_len,
                    addr,
                } => Some((*status, *prefix_len, *addr)),
                _ => None,
            })
            .collect();
        if acks.is_empty() {
            // No acknowledgement: the home agent lacks IPv4 home address support (§2.3.1).
            self.ipv4_unsupported = true;
            self.events.push_back(Event::Ipv4HomeUnsupported);
            return Vec::new();
        }
        let mut out = Vec::new();
        for (i, (status, len, addr)) in acks.into_iter().enumerate() {
            if !status.is_success() {
                self.events.push_back(Event::Ipv4HomeRefused { status });
                continue;
            }
            // The acknowledged length overrides the request (§3.2.1); a static address
            // keeps its configured length when the home agent says 0.
            let asked = p.v4.get(i).map_or(32, |r| r.prefix_len);
            let len = if len == 0 { asked.max(1) } else { len };
            if self.cfg.ipv4_home == Ipv4Home::Dynamic {
                self.assigned_v4 = Some((addr, len));
            }
            out.push((addr, len));
        }
        out
    }
}
