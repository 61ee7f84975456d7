//! The mobile node binding engine (RFC 6275 §11 with RFC 5555 §4.4): care-of address
//! selection and the IPv6 → IPv4 fallback, the binding update list with its IPv4 entry,
//! retransmission with exponential back-off, refresh and NAT keepalives, deregistration and
//! returning home. Sans-IO: time comes in as `now`, packets leave through `poll_transmit`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use mipsec::wire::mh::lifetime_units;
use mipsec::wire::tunnel::{Encap, Outer, TunnelParams, DEFAULT_OUTER_TTL, DSMIPV6_PORT};
use mipsec::wire::{BaStatus, BuFlags, MhMessage, MhOption, MhRepr};
use tracing::debug;

use crate::config::{mask_v4, Ipv4Home, MnConfig};
use crate::domain::{recognise, DomainId};
use crate::error::{MnError, Result};
use crate::output::{BulEntry, CareOf, Event, KeyingEvent, NatState, Transmit, TunnelFormat};

mod ack;

/// A change of the local addresses, from the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressEvent {
    /// An address became usable. `private` marks IPv4 private ranges (ignored for IPv6).
    Added {
        addr: IpAddr,
        private: bool,
    },
    Removed {
        addr: IpAddr,
    },
    /// A label for the attached network (DHCP domain name, SSID), used to recognise the
    /// administrative domain; `None` when there is none.
    NetworkLabel(Option<String>),
}

/// The home agent's addresses, from the configuration or DNS discovery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HomeAgentAddrs {
    pub ipv6: Option<Ipv6Addr>,
    pub ipv4: Option<Ipv4Addr>,
}

/// How a Binding Acknowledgement arrived (what the IPsec boundary passes through).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BaContext {
    /// IPv6 source of the BA (the home agent).
    pub src: Ipv6Addr,
    /// An ESP SA with the home agent protected it (RFC 4877).
    pub protected: bool,
    /// Outer IPv4 source and UDP source port, when it came in UDP/IPv4.
    pub udp_from: Option<(Ipv4Addr, u16)>,
}

/// What became of a Binding Acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaOutcome {
    Accepted,
    Rejected(BaStatus),
    /// Acted on by sending a new Binding Update (status 135 or 144).
    Resent,
    /// Not for the outstanding Binding Update (late or duplicated): ignored.
    Stale,
}

/// Counters for the driver's statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bu_sent: u64,
    pub bu_retransmitted: u64,
    pub ba_accepted: u64,
    pub ba_rejected: u64,
    pub ba_stale: u64,
    pub ba_dropped: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Register,
    Deregister,
    ReturnHome,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V6,
    V4,
}

/// An IPv4 Home Address option the BU carried, to match the acknowledgement with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct V4Request {
    prefix_len: u8,
    prefix: bool,
    addr: Ipv4Addr,
}

#[derive(Debug, Clone)]
struct Pending {
    seq: u16,
    purpose: Purpose,
    coa: CareOf,
    lifetime: Duration,
    flags: BuFlags,
    v4: Vec<V4Request>,
    sent_at: Instant,
    attempts: u32,
    timeout: Duration,
    deadline: Instant,
}

/// The mobile node engine.
#[derive(Debug, Clone)]
pub struct MobileNode {
    cfg: MnConfig,
    ha: HomeAgentAddrs,
    v6: Vec<Ipv6Addr>,
    v4: Vec<(Ipv4Addr, bool)>,
    label: Option<String>,
    next_seq: u16,
    pending: Option<Pending>,
    ipv6_entry: Option<BulEntry>,
    ipv4_entries: Vec<BulEntry>,
    nat: NatState,
    tunnel: Option<TunnelFormat>,
    family_memory: Option<(DomainId, Family)>,
    ipv4_unsupported: bool,
    want_ipv4: bool,
    force_udp: bool,
    f_refused: bool,
    assigned_v4: Option<(Ipv4Addr, u8)>,
    refresh_at: Option<Instant>,
    at_home: bool,
    /// Cleared by `deregister`: no automatic registration until `register`.
    enabled: bool,
    events: VecDeque<Event>,
    transmits: VecDeque<Transmit>,
    counters: Counters,
}

impl MobileNode {
    /// A mobile node away from home with no address yet. `initial_sequence` comes from the
    /// caller's random source (RFC 6275 §11.7.1 leaves the start value open).
    pub fn new(cfg: MnConfig, initial_sequence: u16) -> Result<Self> {
        cfg.validate()?;
        let ha = HomeAgentAddrs {
            ipv6: cfg.home_agent.ipv6,
            ipv4: cfg.home_agent.ipv4,
        };
        let want_ipv4 = cfg.ipv4_home != Ipv4Home::None;
        let force_udp = cfg.force_udp;
        Ok(MobileNode {
            cfg,
            ha,
            v6: Vec::new(),
            v4: Vec::new(),
            label: None,
            next_seq: initial_sequence,
            pending: None,
            ipv6_entry: None,
            ipv4_entries: Vec::new(),
            nat: NatState::default(),
            tunnel: None,
            family_memory: None,
            ipv4_unsupported: false,
            want_ipv4,
            force_udp,
            f_refused: false,
            assigned_v4: None,
            refresh_at: None,
            at_home: false,
            enabled: true,
            events: VecDeque::new(),
            transmits: VecDeque::new(),
            counters: Counters::default(),
        })
    }

    pub fn config(&self) -> &MnConfig {
        &self.cfg
    }

    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The IPv6 home address entry of the binding update list.
    pub fn ipv6_binding(&self) -> Option<&BulEntry> {
        self.ipv6_entry.as_ref()
    }

    /// The IPv4 home address or prefix entries (RFC 5555 §4.4.2).
    pub fn ipv4_bindings(&self) -> &[BulEntry] {
        &self.ipv4_entries
    }

    /// The tunnel for traffic from the home addresses, when registered.
    pub fn tunnel(&self) -> Option<TunnelFormat> {
        self.tunnel
    }

    pub fn nat_state(&self) -> NatState {
        self.nat
    }

    pub fn home_agent(&self) -> HomeAgentAddrs {
        self.ha
    }

    /// Whether a Binding Update is waiting for its acknowledgement.
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The home agent addresses found by discovery replace the configured ones.
    pub fn set_home_agent(&mut self, now: Instant, ha: HomeAgentAddrs) {
        self.ha = ha;
        self.ipv4_unsupported = false;
        self.reselect(now);
    }

    pub fn handle_address(&mut self, now: Instant, ev: AddressEvent) {
        match ev {
            AddressEvent::Added {
                addr: IpAddr::V6(a),
                ..
            } => {
                if !self.v6.contains(&a) {
                    self.v6.push(a);
                }
            }
            AddressEvent::Added {
                addr: IpAddr::V4(a),
                private,
            } => {
                if self.is_ipv4_home(a) {
                    // RFC 5555 §4.4.4: IPv4 support is defined only away from home.
                    self.events
                        .push_back(Event::Ipv4ReturnHomeUnsupported { addr: a });
                    return;
                }
                if !self.v4.iter().any(|(x, _)| *x == a) {
                    self.v4.push((a, private));
                }
            }
            AddressEvent::Removed {
                addr: IpAddr::V6(a),
            } => self.v6.retain(|x| *x != a),
            AddressEvent::Removed {
                addr: IpAddr::V4(a),
            } => self.v4.retain(|(x, _)| *x != a),
            AddressEvent::NetworkLabel(l) => self.label = l,
        }
        self.reselect(now);
    }

    fn is_ipv4_home(&self, a: Ipv4Addr) -> bool {
        let configured = match self.cfg.ipv4_home {
            Ipv4Home::Static {
                address,
                prefix_len,
            } => Some((address, prefix_len)),
            _ => None,
        };
        configured
            .into_iter()
            .chain(self.assigned_v4)
            .chain(self.ipv4_entries.iter().filter_map(|e| match e.home {
                IpAddr::V4(h) => Some((h, e.prefix_len)),
                IpAddr::V6(_) => None,
            }))
            .any(|(h, len)| mask_v4(h, len) == mask_v4(a, len))
    }

    fn domain(&self) -> Option<DomainId> {
        let v4: Vec<Ipv4Addr> = self.v4.iter().map(|(a, _)| *a).collect();
        recognise(&self.cfg.domains, &self.v6, &v4, self.label.as_deref())
    }

    fn best_v4(&self) -> Option<CareOf> {
        // A public address avoids the NAT; otherwise the first private one.
        let pick = self.v4.iter().find(|(_, p)| !p).or_else(|| self.v4.first());
        pick.map(|(addr, private)| CareOf::V4 {
            addr: *addr,
            private: *private,
        })
    }

    /// Whether the care-of address is still configured.
    fn holds(&self, coa: CareOf) -> bool {
        match coa {
            CareOf::V6(a) => self.v6.contains(&a),
            CareOf::V4 { addr, .. } => self.v4.iter().any(|(x, _)| *x == addr),
        }
    }

    /// The care-of address to register now (RFC 5555 §4.4.1).
    fn choose(&self) -> Option<CareOf> {
        let v6 = self
            .v6
            .iter()
            .find(|a| !self.cfg.is_home_link(**a))
            .map(|a| CareOf::V6(*a));
        let v4 = self.best_v4().filter(|_| self.ha.ipv4.is_some());
        let v6 = v6.filter(|_| self.ha.ipv6.is_some());
        let remembered_v4 = matches!(
            (&self.family_memory, self.domain()),
            (Some((d, Family::V4)), Some(now)) if *d == now
        );
        if remembered_v4 && v4.is_some() {
            return v4;
        }
        v6.or(v4)
    }

    /// React to a change of addresses or home agent.
    fn reselect(&mut self, now: Instant) {
        if !self.enabled {
            return;
        }
        if let Some(home) = self.v6.iter().copied().find(|a| self.cfg.is_home_link(*a)) {
            if !self.at_home {
                self.at_home = true;
                self.start_return_home(now, home);
            }
            return;
        }
        self.at_home = false;
        if self.ha.ipv6.is_none() {
            self.events.push_back(Event::NoRoute);
            return;
        }
        let Some(coa) = self.choose() else {
            // Nothing to send from: stop retransmitting; a binding lives on until it expires.
            self.pending = None;
            self.events.push_back(Event::NoRoute);
            return;
        };
        let current = self
            .pending
            .as_ref()
            .map(|p| p.coa)
            .or(self.ipv6_entry.map(|e| e.coa));
        let pending_register = self
            .pending
            .as_ref()
            .is_some_and(|p| p.purpose == Purpose::Register);
        if current == Some(coa) && (pending_register || self.ipv6_entry.is_some()) {
            return;
        }
        self.start(now, Purpose::Register, coa);
    }

    /// Begin a new Binding Update exchange (a fresh back-off).
    fn start(&mut self, now: Instant, purpose: Purpose, coa: CareOf) {
        let ha = match coa {
            CareOf::V6(_) => self.ha.ipv6.map(IpAddr::V6),
            CareOf::V4 { .. } => self.ha.ipv4.map(IpAddr::V4),
        };
        if let Some(home_agent) = ha {
            let moved = self.ipv6_entry.map(|e| e.coa) != Some(coa);
            if moved && purpose == Purpose::Register {
                self.events
                    .push_back(Event::Keying(KeyingEvent::CareOfAddressProposed {
                        coa,
                        home_agent,
                    }));
            }
        }
        let lifetime = match purpose {
            Purpose::Register => Duration::from_secs(u64::from(self.cfg.lifetime_secs)),
            Purpose::Deregister | Purpose::ReturnHome => Duration::ZERO,
        };
        let timeout = self.cfg.initial_timeout();
        self.pending = Some(Pending {
            seq: 0,
            purpose,
            coa,
            lifetime,
            flags: BuFlags(0),
            v4: Vec::new(),
            sent_at: now,
            attempts: 0,
            timeout,
            deadline: now,
        });
        self.refresh_at = None;
        self.send_pending(now);
    }

    /// (Re)build and queue the outstanding Binding Update with a new sequence number
    /// (RFC 6275 §11.8: each retransmission uses a greater one).
    fn send_pending(&mut self, now: Instant) {
        let Some(mut p) = self.pending.take() else {
            return;
        };
        let Some(ha6) = self.ha.ipv6 else {
            self.events.push_back(Event::NoRoute);
            return;
        };
        p.seq = self.next_seq;
        self.next_seq = self.next_seq.wrapping_add(1);
        p.v4 = if p.purpose == Purpose::Register {
            self.v4_requests()
        } else {
            Vec::new()
        };
        p.flags = self.bu_flags(&p);
        p.sent_at = now;
        p.attempts += 1;
        p.deadline = now + p.timeout;
        if p.attempts > 1 {
            self.counters.bu_retransmitted += 1;
        }
        self.counters.bu_sent += 1;
        match self.build(&p, ha6) {
            Some(t) => {
                debug!(hoa = %self.cfg.home_address, seq = p.seq, attempt = p.attempts, coa = %p.coa.ip(), "binding update");
                self.transmits.push_back(t);
            }
            None => self.events.push_back(Event::NoRoute),
        }
        self.pending = Some(p);
    }

    fn bu_flags(&self, p: &Pending) -> BuFlags {
        // RFC 6275 §11.7.1: home registration sets A and H.
        let mut f = BuFlags(BuFlags::A | BuFlags::H).with(BuFlags::K, self.cfg.key_management);
        // RFC 5555 §4.4.1/§4.4.2: F only from an IPv4 care-of address.
        let want_f =
            self.force_udp && !self.f_refused && p.coa.is_v4() && p.purpose == Purpose::Register;
        f = f.with(BuFlags::F, want_f);
        f.with(BuFlags::P, false)
    }

    /// The IPv4 Home Address options to include (RFC 5555 §4.4.2).
    fn v4_requests(&self) -> Vec<V4Request> {
        if !self.want_ipv4 || self.ipv4_unsupported {
            return Vec::new();
        }
        let one = |prefix_len, addr| {
            vec![V4Request {
                prefix_len,
                prefix: false,
                addr,
            }]
        };
        match &self.cfg.ipv4_home {
            Ipv4Home::None => Vec::new(),
            Ipv4Home::Static {
                address,
                prefix_len,
            } => one(*prefix_len, *address),
            // 0.0.0.0 asks for an address; once one is held, keep asking for it.
            Ipv4Home::Dynamic => match self.assigned_v4 {
                Some((a, len)) => one(len, a),
                None => one(0, Ipv4Addr::UNSPECIFIED),
            },
            Ipv4Home::Prefixes { lengths } => lengths
                .iter()
                .map(|l| V4Request {
                    prefix_len: *l,
                    prefix: true,
                    addr: Ipv4Addr::UNSPECIFIED,
                })
                .collect(),
        }
    }

    fn build(&self, p: &Pending, ha6: Ipv6Addr) -> Option<Transmit> {
        let hoa = self.cfg.home_address;
        let lifetime = lifetime_units(p.lifetime.as_secs() as u32).unwrap_or(0);
        let mut options: Vec<MhOption> =
            p.v4.iter()
                .map(|r| MhOption::Ipv4HomeAddress {
                    prefix_len: r.prefix_len,
                    prefix_request: r.prefix,
                    addr: r.addr,
                })
                .collect();
        let message = MhMessage::BindingUpdate {
            sequence: p.seq,
            flags: p.flags,
            lifetime,
        };
        let (ipv6_src, home_address_option, outer) = match (p.purpose, p.coa) {
            // RFC 6275 §11.5.4: at home the BU goes from the home address itself.
            (Purpose::ReturnHome, _) => (hoa, None, None),
            (_, CareOf::V6(coa)) => (coa, Some(hoa), None),
            (_, CareOf::V4 { addr, .. }) => {
                // RFC 5555 §4.4.2: IPv6 source is the home address, IPv4 CoA option,
                // always UDP to 4191.
                options.push(MhOption::Ipv4CareOfAddress(addr));
                let params = TunnelParams {
                    outer: Outer::V4 {
                        src: addr,
                        dst: self.ha.ipv4?,
                    },
                    encap: Encap::Udp {
                        src_port: self.cfg.udp_source_port,
                        dst_port: DSMIPV6_PORT,
                    },
                    outer_ttl: DEFAULT_OUTER_TTL,
                    identification: p.seq,
                    udp_checksum_v4: true,
                    forwarding: false,
                };
                (hoa, None, Some(params))
            }
        };
        Some(Transmit {
            mh: MhRepr { message, options },
            ipv6_src,
            ipv6_dst: ha6,
            home_address_option,
            outer,
            hoa,
        })
    }

    /// Send a binding refresh now (the driver may call this after a suspected NAT rebinding).
    pub fn refresh(&mut self, now: Instant) -> Result<()> {
        let Some(e) = self.ipv6_entry else {
            return Err(MnError::NotPossible {
                operation: "refresh",
                reason: "no binding to refresh",
            });
        };
        if self.pending.is_none() {
            self.start(now, Purpose::Register, e.coa);
        }
        Ok(())
    }

    /// Remove every binding: a Binding Update with lifetime 0 (RFC 5555 §4.4.2.1).
    /// Mobility is no longer needed: the engine stays unregistered across address changes
    /// until [`MobileNode::register`].
    pub fn deregister(&mut self, now: Instant) -> Result<()> {
        let coa = self
            .ipv6_entry
            .map(|e| e.coa)
            .or(self.pending.as_ref().map(|p| p.coa));
        let Some(coa) = coa else {
            return Err(MnError::NotPossible {
                operation: "deregister",
                reason: "no binding",
            });
        };
        self.enabled = false;
        self.start(now, Purpose::Deregister, coa);
        Ok(())
    }

    /// Register again after [`MobileNode::deregister`] (a no-op when already enabled).
    pub fn register(&mut self, now: Instant) {
        if !self.enabled {
            self.enabled = true;
            self.reselect(now);
        }
    }

    /// Keep or drop the IPv4 home address binding. Dropping sends a Binding Update without
    /// the IPv4 Home Address option, which removes only the IPv4 binding (§4.4.2.1).
    pub fn set_ipv4_home_wanted(&mut self, now: Instant, wanted: bool) {
        if self.want_ipv4 == wanted {
            return;
        }
        self.want_ipv4 = wanted;
        if let Some(e) = self.ipv6_entry {
            self.start(now, Purpose::Register, e.coa);
        }
    }

    /// Upper layers report persistent loss on the IP-in-IP tunnel: ask for UDP with the F
    /// flag (RFC 5555 §4.4.1). Only meaningful from an IPv4 care-of address.
    pub fn handle_ipip_loss(&mut self, now: Instant) {
        let Some(e) = self.ipv6_entry else { return };
        let ipip = self.tunnel.is_some_and(|t| t.encap == Encap::IpInIp);
        if !e.coa.is_v4() || !ipip || self.f_refused || self.force_udp {
            return;
        }
        self.force_udp = true;
        self.start(now, Purpose::Register, e.coa);
    }

    fn start_return_home(&mut self, now: Instant, _home: Ipv6Addr) {
        if self.ipv6_entry.is_none() && self.pending.is_none() {
            self.events.push_back(Event::AtHome);
            return;
        }
        let coa = CareOf::V6(self.cfg.home_address);
        self.start(now, Purpose::ReturnHome, coa);
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let bul = self
            .ipv6_entry
            .iter()
            .chain(&self.ipv4_entries)
            .map(|e| e.expires);
        self.pending
            .as_ref()
            .map(|p| p.deadline)
            .into_iter()
            .chain(self.refresh_at)
            .chain(bul)
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
        if self.pending.as_ref().is_some_and(|p| p.deadline <= now) {
            self.retransmit(now);
        }
        if self.refresh_at.is_some_and(|t| t <= now) {
            self.refresh_at = None;
            match (self.ipv6_entry, &self.pending) {
                // RFC 6275 §11.7.1 refresh, RFC 5555 §4.3 NAT keepalive.
                (Some(e), None) if self.enabled && self.holds(e.coa) => {
                    self.start(now, Purpose::Register, e.coa)
                }
                _ => {}
            }
        }
    }

    fn expire(&mut self, now: Instant) {
        let before = self.ipv4_entries.len();
        self.ipv4_entries.retain(|e| e.expires > now);
        let v6_gone = self.ipv6_entry.is_some_and(|e| e.expires <= now);
        if v6_gone {
            self.ipv6_entry = None;
            self.ipv4_entries.clear();
        }
        if v6_gone || before != self.ipv4_entries.len() {
            self.events.push_back(Event::BindingExpired);
            self.update_tunnel();
        }
    }

    fn retransmit(&mut self, now: Instant) {
        let Some(p) = self.pending.as_ref() else {
            return;
        };
        let from_v6 = match p.coa {
            CareOf::V6(a) if p.purpose == Purpose::Register => Some(a),
            _ => None,
        };
        if let Some(from) = from_v6.filter(|_| p.attempts >= self.cfg.ipv6_attempts) {
            // RFC 5555 §4.4.1: three attempts without a BA, then the IPv4 care-of address.
            if let (Some(CareOf::V4 { addr, private }), Some(_)) = (self.best_v4(), self.ha.ipv4) {
                if let Some(d) = self.domain() {
                    self.family_memory = Some((d, Family::V4));
                }
                self.events
                    .push_back(Event::FellBackToIpv4 { from, to: addr });
                self.start(now, Purpose::Register, CareOf::V4 { addr, private });
                return;
            }
        }
        // RFC 6275 §11.8: double the timeout up to MAX_BINDACK_TIMEOUT.
        let max = self.cfg.max_timeout();
        if let Some(p) = self.pending.as_mut() {
            p.timeout = (p.timeout * 2).min(max);
        }
        self.send_pending(now);
    }

    fn refresh_time(&self, from: Instant, granted: Duration) -> Instant {
        let by_lifetime = granted * u32::from(self.cfg.refresh_percent) / 100;
        let period = match self.nat.keepalive {
            Some(ka) => by_lifetime.min(ka),
            None => by_lifetime,
        };
        from + period.max(Duration::from_secs(1))
    }

    /// Recompute the tunnel (RFC 5555 §4.4.3); true when it changed.
    fn update_tunnel(&mut self) -> bool {
        let new = self.ipv6_entry.and_then(|e| {
            let (outer, encap) = match e.coa {
                CareOf::V6(coa) => (
                    Outer::V6 {
                        src: coa,
                        dst: self.ha.ipv6?,
                    },
                    Encap::IpInIp,
                ),
                CareOf::V4 { addr, .. } => {
                    let encap = if self.nat.udp {
                        Encap::Udp {
                            src_port: self.cfg.udp_source_port,
                            dst_port: DSMIPV6_PORT,
                        }
                    } else {
                        Encap::IpInIp
                    };
                    (
                        Outer::V4 {
                            src: addr,
                            dst: self.ha.ipv4?,
                        },
                        encap,
                    )
                }
            };
            let hoa4 = self.ipv4_entries.first().and_then(|e| match e.home {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            });
            Some(TunnelFormat {
                outer,
                encap,
                hoa: self.cfg.home_address,
                hoa4,
            })
        });
        if new == self.tunnel {
            return false;
        }
        self.tunnel = new;
        self.events.push_back(Event::TunnelChanged(new));
        true
    }
}
