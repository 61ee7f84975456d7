//! The home agent engine: Binding Update in, Binding Acknowledgement and data plane events
//! out, with no sockets and no clock (time is passed in). It applies RFC 6275 §9.5.1 and
//! §10.3.1–10.3.2 home registration, RFC 3963 §6 mobile router registration and the RFC 5555
//! §4.5 rules: NAT detection, the F flag, IPv4 home addresses (static, dynamic from leased
//! pools, prefixes) and reply addressing. Every check runs before any state changes, so a
//! refused BU leaves nothing behind.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ipnet::Ipv6Net;
use mipsec::wire::icmpv6::{Icmpv6Repr, PrefixInfo};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhPacket, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption, REFRESH_NOT_NEEDED};
use mipsec::wire::tunnel::DSMIPV6_PORT;
use tracing::debug;

use crate::cache::{Binding, BindingCache, Ipv4Binding};
use crate::config::{HaConfig, MobileNodeConfig};
use crate::error::Result;
use crate::lease::{Lease, LeaseStore};
use crate::pool::Pools;
use crate::types::{
    Counters, DropReason, Event, Family, Reply, ReplyPath, Route, RxContext, Transport, Verdict,
};

/// A BU that passed the security and format gates.
pub(crate) struct Request<'a> {
    pub(crate) now_ms: u64,
    pub(crate) sequence: u16,
    pub(crate) flags: BuFlags,
    /// Requested lifetime, 4 s units.
    pub(crate) lifetime: u16,
    pub(crate) hoa: Ipv6Addr,
    pub(crate) coa: IpAddr,
    pub(crate) peer: IpAddr,
    pub(crate) ctx: &'a RxContext,
    pub(crate) bu: &'a MhRepr,
    pub(crate) path: ReplyPath,
    /// The IPv4 Home Address option: (prefix length, P, address).
    pub(crate) v4: Option<(u8, bool, Ipv4Addr)>,
}

/// A refusal: BA status and the sequence number to answer with.
struct Refusal(BaStatus, u16);

/// The home agent binding engine.
pub struct HomeAgent {
    pub(crate) cfg: HaConfig,
    mns: HashMap<Ipv6Addr, usize>,
    pub(crate) cache: BindingCache,
    pub(crate) pools: Pools,
    pub(crate) store: LeaseStore,
    pub(crate) events: VecDeque<Event>,
    pub(crate) counters: Counters,
    epoch: Instant,
    wall_epoch_ms: u64,
}

impl std::fmt::Debug for HomeAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HomeAgent")
            .field("bindings", &self.cache.len())
            .field("store", &self.store)
            .finish()
    }
}

fn seq_newer(new: u16, last: u16) -> bool {
    // RFC 6275 §9.5.1: "greater than", modulo 2^16.
    let d = new.wrapping_sub(last);
    d != 0 && d < 0x8000
}

pub(crate) fn valid_unicast(a: Ipv4Addr) -> bool {
    let o = a.octets();
    !(o[0] == 0 || a.is_loopback() || o[0] >= 224)
}

impl HomeAgent {
    /// Validate `cfg`, open the lease store at `lease_path` and start with an empty binding
    /// cache. `now` and `wall` are the same moment on the monotonic and the Unix clock: lease
    /// expiries are stored in Unix time so they survive a restart.
    pub fn new(cfg: HaConfig, lease_path: &Path, now: Instant, wall: SystemTime) -> Result<Self> {
        cfg.validate()?;
        let (store, leases) = LeaseStore::open(lease_path, cfg.lease_durability)?;
        Ok(Self::with_store(cfg, store, leases, now, wall))
    }

    /// Like [`HomeAgent::new`] with leases kept in memory only: for scenario tests and
    /// simulations (a "restart" loses every lease).
    pub fn in_memory(cfg: HaConfig, now: Instant, wall: SystemTime) -> Result<Self> {
        cfg.validate()?;
        let store = LeaseStore::in_memory()?;
        Ok(Self::with_store(cfg, store, Vec::new(), now, wall))
    }

    fn with_store(
        cfg: HaConfig,
        store: LeaseStore,
        leases: Vec<Lease>,
        now: Instant,
        wall: SystemTime,
    ) -> Self {
        let pools = Pools::new(&cfg, leases);
        let mns = cfg
            .mobile_nodes
            .iter()
            .enumerate()
            .map(|(i, m)| (m.home_address, i))
            .collect();
        let wall_epoch_ms = wall
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        HomeAgent {
            cfg,
            mns,
            cache: BindingCache::default(),
            pools,
            store,
            events: VecDeque::new(),
            counters: Counters::default(),
            epoch: now,
            wall_epoch_ms,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_millis() as u64
    }

    pub(crate) fn unix(&self, now_ms: u64) -> u64 {
        (self.wall_epoch_ms + now_ms) / 1000
    }

    /// Engine milliseconds at which a lease expiring at Unix second `t` ends.
    pub(crate) fn lease_ms(&self, t: u64) -> u64 {
        t.saturating_mul(1000).saturating_sub(self.wall_epoch_ms)
    }

    /// The instant an engine time in milliseconds stands for.
    pub fn instant_of(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    pub fn config(&self) -> &HaConfig {
        &self.cfg
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn binding(&self, hoa: &Ipv6Addr) -> Option<&Binding> {
        self.cache.get(hoa)
    }

    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.cache.iter()
    }

    /// The mobile network prefixes registered for `hoa`.
    pub fn mobile_network_prefixes(&self, hoa: &Ipv6Addr) -> &[Ipv6Net] {
        self.cache.mnp(hoa)
    }

    /// Every IPv4 lease, in address order.
    pub fn leases(&self) -> impl Iterator<Item = &Lease> {
        self.pools.leases()
    }

    /// IPv4 addresses held by leases that are not past their grace time at `now`.
    pub fn leased_addresses(&self, now: Instant) -> u64 {
        let now_unix = self.unix(self.ms(now));
        self.pools
            .held_addresses(now_unix, u64::from(self.cfg.lease_grace))
    }

    /// Reserve room for `n` more bindings.
    pub fn reserve(&mut self, n: usize) {
        self.cache.reserve(n);
    }

    /// Force eventual-durability lease commits to the disk.
    pub fn flush_leases(&mut self) -> Result<()> {
        self.store.flush()
    }

    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When `handle_timeout` should next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.cache.next_deadline().map(|ms| self.instant_of(ms))
    }

    fn drop_bu(&mut self, r: DropReason) -> Verdict {
        self.counters.dropped[r as usize] += 1;
        debug!(reason = ?r, "binding update dropped");
        Verdict::Dropped(r)
    }

    /// A Binding Update as raw Mobility Header bytes: checksum (RFC 6275 §6.1.1, over the
    /// home address and the home agent address) and format are checked first.
    pub fn handle_bu_bytes(&mut self, now: Instant, ctx: &RxContext, mh: &[u8]) -> Verdict {
        let parsed = MhPacket::new_checked(mh).and_then(|p| {
            p.verify_checksum(&ctx.home_address(), &ctx.ipv6_dst)?;
            MhRepr::parse(&p)
        });
        match parsed {
            Ok(bu) => self.handle_bu(now, ctx, &bu),
            Err(_) => {
                self.counters.bu_received += 1;
                self.drop_bu(DropReason::Malformed)
            }
        }
    }

    /// A parsed Binding Update with its receive context.
    pub fn handle_bu(&mut self, now: Instant, ctx: &RxContext, bu: &MhRepr) -> Verdict {
        self.counters.bu_received += 1;
        let MhMessage::BindingUpdate {
            sequence,
            flags,
            lifetime,
        } = bu.message
        else {
            return self.drop_bu(DropReason::NotBindingUpdate);
        };
        let hoa = ctx.home_address();
        // RFC 4877 §4.1, §4.3: only a BU protected by an SA of this very home address.
        match ctx.sa {
            None => return self.drop_bu(DropReason::Unprotected),
            Some(sa) if sa.home_address != hoa => {
                return self.drop_bu(DropReason::SaHomeAddressMismatch)
            }
            Some(_) => {}
        }
        if !flags.has(BuFlags::H) {
            return self.drop_bu(DropReason::NotHomeRegistration);
        }
        let Some((coa, peer)) = care_of(ctx, bu) else {
            return self.drop_bu(DropReason::MissingIpv4CareOf);
        };
        // Expire what is due first, so nothing stale competes with this registration.
        let now_ms = self.ms(now);
        self.expire(now_ms);
        let rq = Request {
            now_ms,
            sequence,
            flags,
            lifetime,
            hoa,
            coa,
            peer,
            ctx,
            bu,
            path: self.reply_path(ctx),
            v4: bu.find(|o| match *o {
                MhOption::Ipv4HomeAddress {
                    prefix_len,
                    prefix_request,
                    addr,
                } => Some((prefix_len, prefix_request, addr)),
                _ => None,
            }),
        };
        match self.register(&rq) {
            Ok(v) => v,
            Err(Refusal(status, seq)) => {
                self.counters.rejected += 1;
                debug!(%hoa, status = status.0, "binding update refused");
                let ba = self.ba(&rq, status, BaFlags::default(), seq, 0, None);
                Verdict::Reply(Box::new(ba))
            }
        }
    }

    fn reply_path(&self, ctx: &RxContext) -> ReplyPath {
        // RFC 5555 §4.2: back to the outer source address and port the BU came from.
        match ctx.transport {
            Transport::Ipv6 => ReplyPath::Ipv6 { dst: ctx.ipv6_src },
            Transport::Ipv4 { src } => ReplyPath::Ipv4 {
                src: self.cfg.address_v4,
                dst: src,
            },
            Transport::Udp { src, src_port } => ReplyPath::Udp {
                src: self.cfg.address_v4,
                dst: src,
                src_port: DSMIPV6_PORT,
                dst_port: src_port,
            },
        }
    }

    pub(crate) fn mn(&self, hoa: &Ipv6Addr) -> Option<&MobileNodeConfig> {
        self.mns.get(hoa).map(|&i| &self.cfg.mobile_nodes[i])
    }

    /// The checks of RFC 6275 §9.5.1 and §10.3.1, RFC 3963 §6.1 and RFC 5555 §4.5, in that
    /// order, then the registration itself.
    fn register(&mut self, rq: &Request) -> std::result::Result<Verdict, Refusal> {
        let refuse = |s: BaStatus| Refusal(s, rq.sequence);
        let hoa = rq.hoa;
        let existing = self.cache.get(&hoa);
        // RFC 6275 §9.5.1: answer with the last accepted sequence number.
        if let Some(b) = existing {
            if !seq_newer(rq.sequence, b.sequence) {
                return Err(Refusal(BaStatus::SEQUENCE_OUT_OF_WINDOW, b.sequence));
            }
        }
        // RFC 6275 §10.3.1: home subnet, then whether we serve this mobile node.
        if !self.cfg.home_prefixes.iter().any(|p| p.contains(&hoa)) {
            return Err(refuse(BaStatus::NOT_HOME_SUBNET));
        }
        let mn = self.mn(&hoa);
        if mn.is_none() && !self.cfg.allow_unlisted {
            return Err(refuse(BaStatus::NOT_HOME_AGENT));
        }
        // RFC 6275 §10.3.2: lifetime 0 or care-of = home address deregisters; with no
        // binding to remove the answer is 133.
        if rq.lifetime == 0 || rq.coa == IpAddr::V6(hoa) {
            if existing.is_none() {
                return Err(refuse(BaStatus::NOT_HOME_AGENT));
            }
            return Ok(self.deregister(rq));
        }
        // RFC 3963 §6.1: mobile router permission and registration type changes.
        let r = rq.flags.has(BuFlags::R);
        if r && !mn.is_some_and(|m| m.mobile_router) {
            return Err(refuse(BaStatus::MR_NOT_PERMITTED));
        }
        if existing.is_some_and(|b| b.flags.has(BuFlags::R) != r) {
            return Err(refuse(BaStatus::REGISTRATION_TYPE_CHANGE));
        }
        // RFC 5555 §4.5: forced UDP encapsulation by configuration.
        if rq.flags.has(BuFlags::F) && !self.cfg.accept_force_udp {
            return Err(refuse(BaStatus::UDP_ENCAPSULATION_REFUSED));
        }
        let mnp = if r {
            self.check_mnp(rq, mn)?
        } else {
            Vec::new()
        };
        Ok(self.accept(rq, mnp))
    }

    /// RFC 3963 §6.1.2 (explicit mode: the options must name prefixes of this router) and
    /// §6.1.3 (implicit mode: no option, the configured prefixes).
    fn check_mnp(
        &self,
        rq: &Request,
        mn: Option<&MobileNodeConfig>,
    ) -> std::result::Result<Vec<Ipv6Net>, Refusal> {
        let allowed = mn.map_or(&[][..], |m| &m.mobile_network_prefixes[..]);
        let mut out = Vec::new();
        for o in &rq.bu.options {
            let MhOption::MobileNetworkPrefix { prefix_len, prefix } = *o else {
                continue;
            };
            let Ok(net) = Ipv6Net::new(prefix, prefix_len) else {
                return Err(Refusal(BaStatus::INVALID_PREFIX, rq.sequence));
            };
            let net = net.trunc();
            if prefix_len == 0 || !allowed.contains(&net) {
                return Err(Refusal(BaStatus::PREFIX_NOT_AUTHORIZED, rq.sequence));
            }
            if self.cache.mnp_owner(&net).is_some_and(|o| o != rq.hoa) {
                return Err(Refusal(BaStatus::PREFIX_NOT_AUTHORIZED, rq.sequence));
            }
            out.push(net);
        }
        if out.is_empty() {
            out = allowed.to_vec();
        }
        Ok(out)
    }

    /// Granted lifetime in 4 s units: min(requested, max_lifetime, prefix valid lifetime)
    /// (RFC 6275 §10.3.1).
    fn granted_units(&self, requested: u16) -> u16 {
        let cap = self.cfg.max_lifetime.min(self.cfg.prefix_valid_lifetime) / 4;
        requested.min(u16::try_from(cap).unwrap_or(u16::MAX)).max(1)
    }

    /// Encapsulation for the binding (RFC 5555 §4.2, §4.5): UDP when a NAT was detected or
    /// UDP is forced (by the F flag or by configuration), else IP-in-IP. Returns the UDP
    /// destination port (0: IP-in-IP), NAT detected, UDP forced.
    fn encapsulation(&self, rq: &Request) -> (u16, bool, bool) {
        let f = rq.flags.has(BuFlags::F);
        match (rq.ctx.transport, rq.coa) {
            (Transport::Udp { src, src_port }, IpAddr::V4(c4)) => {
                let nat = c4 != src;
                let forced = !nat && (f || self.cfg.force_udp);
                (if nat || forced { src_port } else { 0 }, nat, forced)
            }
            (Transport::Ipv4 { src }, IpAddr::V4(c4)) => {
                let nat = c4 != src;
                let forced = f || self.cfg.force_udp;
                (if forced { DSMIPV6_PORT } else { 0 }, nat, forced)
            }
            // An IPv6 care-of address: UDP only when the mobile node forces it (§4.4.1).
            _ => (if f { DSMIPV6_PORT } else { 0 }, false, f),
        }
    }

    fn accept(&mut self, rq: &Request, mnp: Vec<Ipv6Net>) -> Verdict {
        let units = self.granted_units(rq.lifetime);
        let expires_ms = rq.now_ms + u64::from(units) * 4000;
        let (udp_port, nat, forced) = self.encapsulation(rq);
        let (ack, v4) = match rq.v4 {
            None => (None, None),
            Some(opt) => match self.resolve_ipv4(rq, opt, u64::from(units) * 4) {
                Ok((net, lease_ms)) => (
                    Some((Ipv4AckStatus::SUCCESS, net.prefix_len(), net.addr())),
                    Some(Ipv4Binding {
                        net,
                        expires_ms: lease_ms.min(expires_ms),
                    }),
                ),
                Err(st) => {
                    self.counters.ipv4_refused += 1;
                    (Some((st, opt.0, opt.2)), None)
                }
            },
        };
        let b = Binding {
            hoa: rq.hoa,
            coa: rq.coa,
            peer: rq.peer,
            udp_port,
            nat,
            sequence: rq.sequence,
            flags: rq.flags,
            expires_ms,
            ipv4: None,
            timer_ms: u64::MAX,
        };
        self.apply(b, v4, mnp);
        self.counters.accepted += 1;
        let kmm = rq.flags.has(BuFlags::K) && self.cfg.key_management_mobility;
        let flags = BaFlags::default()
            .with(BaFlags::K, kmm)
            .with(BaFlags::R, rq.flags.has(BuFlags::R));
        let mut reply = self.ba(rq, BaStatus::ACCEPTED, flags, rq.sequence, units, ack);
        let nat_det = match rq.ctx.transport {
            // RFC 5555 §4.2: MUST be present when the BU came in UDP.
            Transport::Udp { .. } => true,
            _ => nat || udp_port != 0,
        };
        if nat_det {
            reply.ba.options.push(MhOption::NatDetection {
                force_udp: forced,
                refresh_time: if nat {
                    self.cfg.nat_refresh_time
                } else {
                    REFRESH_NOT_NEEDED
                },
            });
        }
        if let Some(bra) = self.cfg.binding_refresh_advice {
            // RFC 6275 §10.3.1: the interval is shorter than the granted lifetime.
            let iv = u16::try_from(bra / 4).unwrap_or(u16::MAX).min(units - 1);
            if iv > 0 {
                reply.ba.options.push(MhOption::BindingRefreshAdvice {
                    refresh_interval: iv,
                });
            }
        }
        if rq.flags.has(BuFlags::A) {
            Verdict::Reply(Box::new(reply))
        } else {
            Verdict::Accepted
        }
    }

    /// A Binding Acknowledgement for `rq`, with the IPv4 Address Acknowledgement whenever
    /// the BU carried an IPv4 Home Address option (RFC 5555 §3.2.1, §4.5).
    pub(crate) fn ba(
        &self,
        rq: &Request,
        status: BaStatus,
        flags: BaFlags,
        sequence: u16,
        lifetime: u16,
        ack: Option<(Ipv4AckStatus, u8, Ipv4Addr)>,
    ) -> Reply {
        let mut options = Vec::with_capacity(3);
        let ack = ack.or_else(|| {
            rq.v4.map(|(len, _, addr)| {
                let st = if status.is_accepted() {
                    Ipv4AckStatus::SUCCESS
                } else {
                    Ipv4AckStatus::UNSPECIFIED
                };
                (st, len, addr)
            })
        });
        if let Some((status, prefix_len, addr)) = ack {
            options.push(MhOption::Ipv4AddressAck {
                status,
                prefix_len,
                addr,
            });
        }
        if !status.is_accepted() && matches!(rq.ctx.transport, Transport::Udp { .. }) {
            let nat =
                matches!((rq.ctx.transport.outer_v4(), rq.coa), (Some(s), IpAddr::V4(c)) if s != c);
            options.push(MhOption::NatDetection {
                force_udp: false,
                refresh_time: if nat {
                    self.cfg.nat_refresh_time
                } else {
                    REFRESH_NOT_NEEDED
                },
            });
        }
        Reply {
            ba: MhRepr {
                message: MhMessage::BindingAck {
                    status,
                    flags,
                    sequence,
                    lifetime,
                },
                options,
            },
            src: self.cfg.address,
            hoa: rq.hoa,
            path: rq.path,
        }
    }

    /// Lifetime expiry: remove bindings whose lifetime ended and IPv4 parts whose lifetime
    /// (bounded by the lease) ended.
    pub fn handle_timeout(&mut self, now: Instant) {
        let now_ms = self.ms(now);
        self.expire(now_ms);
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some(hoa) = self.cache.pop_due(now_ms) {
            let Some(b) = self.cache.get(&hoa) else {
                continue;
            };
            if b.expires_ms <= now_ms {
                self.remove_binding(&hoa);
                self.counters.expired += 1;
                self.events.push_back(Event::BindingExpired { hoa });
                debug!(%hoa, "binding expired");
                continue;
            }
            if let Some(v4) = b.ipv4.filter(|v| v.expires_ms <= now_ms) {
                let t4 = self.tunnel(b, Family::V4);
                self.cache.set_ipv4(&hoa, None);
                self.v4_events(hoa, Some((v4.net, t4)), None);
            }
            self.cache.arm(&hoa);
        }
    }

    /// Forwarding lookup: the binding and tunnel for an inner destination address, exact
    /// home addresses in O(1), prefixes by longest match. Bindings past their lifetime are
    /// never returned, even before `handle_timeout` removes them.
    #[inline]
    pub fn route(&self, now: Instant, dst: IpAddr) -> Option<Route> {
        self.route_of(self.cache.lookup(dst)?, dst, self.ms(now))
    }

    /// [`HomeAgent::route`] for a batch of destinations (appended to `out` in order). The
    /// index probes of the batch run before the entry reads, so their cache misses overlap.
    pub fn route_batch(&self, now: Instant, dsts: &[IpAddr], out: &mut Vec<Option<Route>>) {
        const BATCH: usize = 16;
        let now_ms = self.ms(now);
        let mut idx = [None; BATCH];
        for chunk in dsts.chunks(BATCH) {
            for (slot, d) in idx.iter_mut().zip(chunk) {
                *slot = self.cache.index_of(*d);
            }
            for (i, d) in idx.iter().zip(chunk) {
                let b = i.and_then(|i| self.cache.slot(i));
                out.push(b.and_then(|b| self.route_of(b, *d, now_ms)));
            }
        }
    }

    #[inline]
    fn route_of(&self, b: &Binding, dst: IpAddr, now_ms: u64) -> Option<Route> {
        let live = match dst {
            IpAddr::V6(_) => b.expires_ms > now_ms,
            IpAddr::V4(_) => b.ipv4.is_some_and(|v| v.expires_ms > now_ms),
        };
        if !live {
            return None;
        }
        let t = self.tunnel(b, Family::V6);
        Some(Route {
            hoa: b.hoa,
            outer: t.outer,
            encap: t.encap,
        })
    }

    /// The Mobile Prefix Advertisement answering a Mobile Prefix Solicitation from `hoa`
    /// (RFC 6275 §10.6.2, §11.4.2): the home prefixes with their lifetimes. `None` when
    /// `hoa` has no binding.
    pub fn mobile_prefix_advertisement(
        &self,
        hoa: &Ipv6Addr,
        identifier: u16,
    ) -> Option<Icmpv6Repr> {
        self.cache.get(hoa)?;
        let prefixes = self
            .cfg
            .home_prefixes
            .iter()
            .map(|p| PrefixInfo {
                prefix_len: p.prefix_len(),
                on_link: true,
                autonomous: true,
                router_address: false,
                valid_lifetime: self.cfg.prefix_valid_lifetime,
                preferred_lifetime: self.cfg.prefix_preferred_lifetime,
                prefix: p.network(),
            })
            .collect();
        Some(Icmpv6Repr::MobilePrefixAdvertisement {
            identifier,
            managed: false,
            other_config: false,
            prefixes,
            other_options: Vec::new(),
        })
    }

    /// Check the engine's invariants at `now` (after `handle_timeout(now)`): every IPv4
    /// address bound to at most one home address and matching that node's static entry or
    /// lease; pool bookkeeping consistent; no binding past its lifetime. For tests.
    pub fn check_invariants(&self, now: Instant) -> std::result::Result<(), String> {
        self.pools.check()?;
        let now_ms = self.ms(now);
        let mut seen: HashMap<u32, Ipv6Addr> = HashMap::new();
        for b in self.cache.iter() {
            if b.expires_ms <= now_ms {
                return Err(format!("binding of {} outlived its lifetime", b.hoa));
            }
            let Some(v4) = b.ipv4 else { continue };
            if v4.expires_ms <= now_ms || v4.expires_ms > b.expires_ms {
                return Err(format!("IPv4 binding of {} has a bad lifetime", b.hoa));
            }
            let owned = self.mn(&b.hoa).and_then(|m| m.ipv4_home_address) == Some(v4.net)
                || self.pools.lease_of(&b.hoa).map(|l| l.net) == Some(v4.net);
            if !owned {
                return Err(format!("{} bound to {} without a lease", v4.net, b.hoa));
            }
            for a in u32::from(v4.net.network())..=u32::from(v4.net.broadcast()) {
                if let Some(o) = seen.insert(a, b.hoa) {
                    return Err(format!("{} bound to {o} and {}", Ipv4Addr::from(a), b.hoa));
                }
            }
        }
        Ok(())
    }
}

/// The care-of address and the tunnel's far end. RFC 6275 §6.2.5: an Alternate CoA option
/// overrides the IPv6 source; RFC 5555 §2.3.2: over IPv4 the IPv4 CoA option names it and
/// the outer source is where packets go (a NAT's address when one is in the path).
fn care_of(ctx: &RxContext, bu: &MhRepr) -> Option<(IpAddr, IpAddr)> {
    match ctx.transport {
        Transport::Ipv6 => {
            let coa = bu
                .find(|o| match o {
                    MhOption::AlternateCoa(a) => Some(*a),
                    _ => None,
                })
                .unwrap_or(ctx.ipv6_src);
            Some((IpAddr::V6(coa), IpAddr::V6(coa)))
        }
        Transport::Ipv4 { src } | Transport::Udp { src, .. } => {
            let c4 = bu.find(|o| match o {
                MhOption::Ipv4CareOfAddress(a) => Some(*a),
                _ => None,
            })?;
            Some((IpAddr::V4(c4), IpAddr::V4(src)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_comparison_is_modulo_2_16() {
        assert!(seq_newer(1, 0));
        assert!(seq_newer(0, 65535));
        assert!(seq_newer(100, 65000));
        assert!(!seq_newer(5, 5));
        assert!(!seq_newer(4, 5));
        assert!(!seq_newer(65000, 100));
        assert!(!seq_newer(0x8000, 0));
    }

    #[test]
    fn unicast_rule() {
        assert!(valid_unicast(Ipv4Addr::new(198, 51, 100, 1)));
        for bad in [
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            assert!(!valid_unicast(Ipv4Addr::from(bad)), "{bad:?}");
        }
    }
}
