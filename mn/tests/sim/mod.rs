//! An in-memory network for paired scenarios: the mobile node engine (`mn`) and the home
//! agent engine (`ha`) exchange real packets (IPv6, Home Address option, type 2 routing
//! header, UDP/IPv4 or IP-in-IP outer headers, MH with checksums) over a network with
//! virtual time, a fixed one-way latency, an optional NAPT, a switch that breaks native IPv6
//! and deterministic loss and duplication by packet index. IPsec is simulated by the
//! receive context: every packet is treated as protected by the SA of its home address.

#![allow(dead_code)]

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ha::{HaConfig, HomeAgent, ReplyPath, RxContext, SaInfo, Transport, Verdict};
use mipsec::wire::ip::{IPPROTO_DSTOPTS, IPPROTO_MH, IPPROTO_ROUTING};
use mipsec::wire::tunnel::{
    decapsulate, encapsulate, encapsulated_len, Encap, Outer, TunnelParams,
};
use mipsec::wire::{DestOptsRepr, Ipv6Repr, MhPacket, MhRepr, RoutingHeaderType2};
use mn::{AddressEvent, BaContext, BaOutcome, MnConfig, MobileNode};

pub const HOA: &str = "2001:db8:1::100";
pub const HA6: &str = "2001:db8:1::1";
pub const HA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
pub const LATENCY: Duration = Duration::from_millis(20);

pub fn v6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// Which way a packet travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dir {
    ToHa,
    ToMn,
}

/// One packet on the wire, as the log keeps it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Duration,
    pub dir: Dir,
    /// Index among the packets sent in this direction.
    pub index: usize,
    pub outer: Outer,
    pub encap: Option<Encap>,
    pub mh: MhRepr,
    pub dropped: bool,
}

/// A NAPT: private IPv4 sources leave with `public` and a mapped port.
#[derive(Debug)]
pub struct Nat {
    pub public: Ipv4Addr,
    out: HashMap<(Ipv4Addr, u16), u16>,
    back: HashMap<u16, (Ipv4Addr, u16)>,
    next_port: u16,
}

impl Nat {
    pub fn new(public: Ipv4Addr, first_port: u16) -> Self {
        Nat {
            public,
            out: HashMap::new(),
            back: HashMap::new(),
            next_port: first_port,
        }
    }
}

struct InFlight {
    due: Instant,
    order: u64,
    dir: Dir,
    bytes: Vec<u8>,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

static RUN: AtomicU32 = AtomicU32::new(0);

pub struct Sim {
    pub t0: Instant,
    pub now: Instant,
    pub mn: MobileNode,
    pub ha: HomeAgent,
    pub nat: Option<Nat>,
    /// Drop every packet whose outer header is IPv6 (an IPv6 routing outage).
    pub ipv6_broken: bool,
    /// Remove the IPv4 Address Acknowledgement from every BA: a home agent without IPv4
    /// home address support, which skips the unknown option (RFC 6275 §6.2.1).
    pub strip_ipv4_ack: bool,
    pub drop: BTreeSet<(Dir, usize)>,
    pub duplicate: BTreeSet<(Dir, usize)>,
    pub log: Vec<Seen>,
    pub mn_events: Vec<mn::Event>,
    pub ha_events: Vec<ha::Event>,
    pub outcomes: Vec<BaOutcome>,
    mn_addrs: Vec<IpAddr>,
    flight: Vec<InFlight>,
    order: u64,
    sent: HashMap<Dir, usize>,
    _dir: TempDir,
}

fn is_private(a: Ipv4Addr) -> bool {
    a.is_private()
}

impl Sim {
    pub fn new(mn_cfg: MnConfig, ha_cfg: HaConfig) -> Self {
        let dir = lease_root().join(format!(
            "mn-sim-{}-{}",
            std::process::id(),
            RUN.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let t0 = Instant::now();
        let ha = HomeAgent::new(ha_cfg, &dir.join("leases.redb"), t0, SystemTime::now()).unwrap();
        let mn = MobileNode::new(mn_cfg, 0x4000).unwrap();
        Sim {
            t0,
            now: t0,
            mn,
            ha,
            nat: None,
            ipv6_broken: false,
            strip_ipv4_ack: false,
            drop: BTreeSet::new(),
            duplicate: BTreeSet::new(),
            log: Vec::new(),
            mn_events: Vec::new(),
            ha_events: Vec::new(),
            outcomes: Vec::new(),
            mn_addrs: Vec::new(),
            flight: Vec::new(),
            order: 0,
            sent: HashMap::new(),
            _dir: TempDir(dir),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.now - self.t0
    }

    /// Move to a network with these addresses (IPv4 ones private when in RFC 1918 space):
    /// new addresses are announced first, then the old ones removed.
    pub fn attach(&mut self, addrs: &[&str]) {
        let new: Vec<IpAddr> = addrs.iter().map(|a| a.parse().unwrap()).collect();
        for a in &new {
            if !self.mn_addrs.contains(a) {
                let private = matches!(a, IpAddr::V4(v) if is_private(*v));
                self.mn
                    .handle_address(self.now, AddressEvent::Added { addr: *a, private });
            }
        }
        for a in self.mn_addrs.clone() {
            if !new.contains(&a) {
                self.mn
                    .handle_address(self.now, AddressEvent::Removed { addr: a });
            }
        }
        self.mn_addrs = new;
        self.pump();
    }

    /// Advance virtual time to `t0 + until`, delivering packets and firing timers.
    pub fn run_until(&mut self, until: Duration) {
        let end = self.t0 + until;
        loop {
            self.pump();
            let next = [
                self.flight.iter().map(|f| f.due).min(),
                self.mn.poll_timeout(),
                self.ha.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    self.step();
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.pump();
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.elapsed() + d;
        self.run_until(until);
    }

    fn step(&mut self) {
        let now = self.now;
        if self.mn.poll_timeout().is_some_and(|t| t <= now) {
            self.mn.handle_timeout(now);
        }
        if self.ha.poll_timeout().is_some_and(|t| t <= now) {
            self.ha.handle_timeout(now);
        }
        let mut due: Vec<InFlight> = Vec::new();
        let mut i = 0;
        while i < self.flight.len() {
            if self.flight[i].due <= now {
                due.push(self.flight.swap_remove(i));
            } else {
                i += 1;
            }
        }
        due.sort_by_key(|f| f.order);
        for f in due {
            match f.dir {
                Dir::ToHa => self.deliver_to_ha(f.bytes),
                Dir::ToMn => self.deliver_to_mn(f.bytes),
            }
        }
    }

    /// Move everything the engines want to say onto the wire and into the logs.
    fn pump(&mut self) {
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        while let Some(t) = self.mn.poll_transmit() {
            t.emit(&mut out, &mut scratch).unwrap();
            let bytes = out.clone();
            self.send(Dir::ToHa, bytes);
        }
        while let Some(e) = self.mn.poll_event() {
            self.mn_events.push(e);
        }
        while let Some(e) = self.ha.poll_event() {
            self.ha_events.push(e);
        }
    }

    fn send(&mut self, dir: Dir, mut bytes: Vec<u8>) {
        if dir == Dir::ToHa {
            match self.nat_out(bytes) {
                Some(b) => bytes = b,
                None => return,
            }
        }
        let index = {
            let n = self.sent.entry(dir).or_insert(0);
            *n += 1;
            *n - 1
        };
        let (outer, encap, mh) = summarize(&bytes);
        let dropped = self.drop.contains(&(dir, index))
            || (self.ipv6_broken && matches!(outer, Outer::V6 { .. }));
        self.log.push(Seen {
            at: self.now - self.t0,
            dir,
            index,
            outer,
            encap,
            mh,
            dropped,
        });
        if dropped {
            return;
        }
        let copies = if self.duplicate.contains(&(dir, index)) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            self.order += 1;
            self.flight.push(InFlight {
                due: self.now + LATENCY,
                order: self.order,
                dir,
                bytes: bytes.clone(),
            });
        }
    }

    /// NAPT on the way out: rewrite a private UDP source.
    fn nat_out(&mut self, mut bytes: Vec<u8>) -> Option<Vec<u8>> {
        let Some(nat) = self.nat.as_mut() else {
            return Some(bytes);
        };
        if bytes[0] >> 4 != 4 {
            return Some(bytes);
        }
        let d = decapsulate(&mut bytes).unwrap();
        let (Outer::V4 { src, dst }, Encap::Udp { src_port, dst_port }) = (d.outer, d.encap) else {
            // This NAT only passes UDP (IP-in-IP has no ports to map).
            return if matches!(d.outer, Outer::V4 { src, .. } if is_private(src)) {
                None
            } else {
                Some(bytes)
            };
        };
        if !is_private(src) {
            return Some(bytes);
        }
        let port = *nat.out.entry((src, src_port)).or_insert_with(|| {
            let p = nat.next_port;
            nat.next_port += 1;
            p
        });
        nat.back.insert(port, (src, src_port));
        let params = udp_params(
            Outer::V4 {
                src: nat.public,
                dst,
            },
            port,
            dst_port,
        );
        Some(wrap(&params, &bytes[d.inner]))
    }

    fn nat_in(&mut self, mut bytes: Vec<u8>) -> Option<Vec<u8>> {
        let Some(nat) = self.nat.as_ref() else {
            return Some(bytes);
        };
        if bytes[0] >> 4 != 4 {
            return Some(bytes);
        }
        let d = decapsulate(&mut bytes).unwrap();
        match (d.outer, d.encap) {
            (Outer::V4 { src, dst }, Encap::Udp { src_port, dst_port }) if dst == nat.public => {
                let (a, p) = *nat.back.get(&dst_port)?;
                let params = udp_params(Outer::V4 { src, dst: a }, src_port, p);
                Some(wrap(&params, &bytes[d.inner]))
            }
            _ => Some(bytes),
        }
    }

    fn deliver_to_ha(&mut self, mut bytes: Vec<u8>) {
        let (transport, inner) = if bytes[0] >> 4 == 4 {
            let d = decapsulate(&mut bytes).unwrap();
            let Outer::V4 { src, .. } = d.outer else {
                unreachable!()
            };
            let t = match d.encap {
                Encap::Udp { src_port, .. } => Transport::Udp { src, src_port },
                Encap::IpInIp => Transport::Ipv4 { src },
            };
            (t, bytes[d.inner].to_vec())
        } else {
            (Transport::Ipv6, bytes)
        };
        let ip = Ipv6Repr::parse(&inner).unwrap();
        let mut at = Ipv6Repr::HEADER_LEN;
        let mut hao = None;
        if ip.next_header == IPPROTO_DSTOPTS {
            let (d, n) = DestOptsRepr::parse(&inner[at..]).unwrap();
            assert_eq!(d.next_header, IPPROTO_MH);
            hao = d.home_address;
            at += n;
        } else {
            assert_eq!(ip.next_header, IPPROTO_MH);
        }
        let ctx = RxContext {
            transport,
            ipv6_src: ip.src,
            ipv6_dst: ip.dst,
            home_address_option: hao,
            sa: Some(SaInfo {
                spi: 0x1000,
                home_address: hao.unwrap_or(ip.src),
            }),
        };
        let verdict = self.ha.handle_bu_bytes(self.now, &ctx, &inner[at..]);
        if let Verdict::Reply(mut r) = verdict {
            if self.strip_ipv4_ack {
                r.ba.options
                    .retain(|o| !matches!(o, mipsec::wire::MhOption::Ipv4AddressAck { .. }));
            }
            let bytes = reply_bytes(&r);
            self.send(Dir::ToMn, bytes);
        }
        self.pump();
    }

    fn deliver_to_mn(&mut self, bytes: Vec<u8>) {
        let Some(mut bytes) = self.nat_in(bytes) else {
            return;
        };
        let (dst, udp_from, inner) = if bytes[0] >> 4 == 4 {
            let d = decapsulate(&mut bytes).unwrap();
            let Outer::V4 { src, dst } = d.outer else {
                unreachable!()
            };
            let from = match d.encap {
                Encap::Udp { src_port, .. } => Some((src, src_port)),
                Encap::IpInIp => None,
            };
            (IpAddr::V4(dst), from, bytes[d.inner].to_vec())
        } else {
            let ip = Ipv6Repr::parse(&bytes).unwrap();
            (IpAddr::V6(ip.dst), None, bytes)
        };
        // Only the addresses the mobile node holds now receive anything.
        if !self.mn_addrs.contains(&dst) && dst != IpAddr::V6(self.mn.config().home_address) {
            return;
        }
        let ip = Ipv6Repr::parse(&inner).unwrap();
        let mut at = Ipv6Repr::HEADER_LEN;
        let mut final_dst = ip.dst;
        if ip.next_header == IPPROTO_ROUTING {
            let rh = RoutingHeaderType2::parse(&inner[at..]).unwrap();
            final_dst = rh.home_address;
            at += RoutingHeaderType2::LEN;
        }
        let mh = MhPacket::new_checked(&inner[at..]).unwrap();
        mh.verify_checksum(&ip.src, &final_dst).unwrap();
        let ba = MhRepr::parse(&mh).unwrap();
        let ctx = BaContext {
            src: ip.src,
            protected: true,
            udp_from,
        };
        if let Ok(o) = self.mn.handle_ba(self.now, &ctx, &ba) {
            self.outcomes.push(o);
        }
        self.pump();
    }

    /// BUs the mobile node put on the wire (including dropped ones).
    pub fn bus(&self) -> Vec<&Seen> {
        self.log.iter().filter(|s| s.dir == Dir::ToHa).collect()
    }

    pub fn bas(&self) -> Vec<&Seen> {
        self.log.iter().filter(|s| s.dir == Dir::ToMn).collect()
    }

    /// The home agent's route to `dst` now.
    pub fn ha_route(&self, dst: IpAddr) -> Option<ha::Route> {
        self.ha.route(self.now, dst)
    }

    /// Both ends agree on the tunnel: the same encapsulation, mirrored outer addresses
    /// (through the NAT when there is one).
    pub fn assert_tunnels_agree(&self) {
        let t = self.mn.tunnel().expect("mobile node tunnel");
        let r = self
            .ha_route(IpAddr::V6(v6(HOA)))
            .expect("home agent route");
        match (t.outer, r.outer) {
            (Outer::V6 { src, dst }, Outer::V6 { src: hs, dst: hd }) => {
                assert_eq!((src, dst), (hd, hs))
            }
            (Outer::V4 { src, dst }, Outer::V4 { src: hs, dst: hd }) => {
                assert_eq!(dst, hs);
                let expect = self
                    .nat
                    .as_ref()
                    .filter(|_| is_private(src))
                    .map_or(src, |n| n.public);
                assert_eq!(hd, expect);
            }
            (a, b) => panic!("outer families differ: mn {a:?}, ha {b:?}"),
        }
        match (t.encap, r.encap) {
            (Encap::IpInIp, Encap::IpInIp) => {}
            (Encap::Udp { dst_port, .. }, Encap::Udp { src_port, .. }) => {
                assert_eq!(dst_port, src_port)
            }
            (a, b) => panic!("encapsulations differ: mn {a:?}, ha {b:?}"),
        }
    }
}

fn udp_params(outer: Outer, src_port: u16, dst_port: u16) -> TunnelParams {
    TunnelParams {
        outer,
        encap: Encap::Udp { src_port, dst_port },
        outer_ttl: 64,
        identification: 0,
        udp_checksum_v4: true,
        forwarding: false,
    }
}

fn wrap(params: &TunnelParams, inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; encapsulated_len(params, inner.len())];
    encapsulate(params, inner, &mut out).unwrap();
    out
}

/// The BA as the home agent's driver would send it (RFC 6275 §9.5.4, RFC 5555 §4.2).
fn reply_bytes(r: &ha::Reply) -> Vec<u8> {
    let mh_len = r.ba.buffer_len();
    let (dst, rh) = match r.path {
        ReplyPath::Ipv6 { dst } if dst != r.hoa => (dst, true),
        ReplyPath::Ipv6 { dst } => (dst, false),
        _ => (r.hoa, false),
    };
    let ext = if rh { RoutingHeaderType2::LEN } else { 0 };
    let mut p = vec![0u8; Ipv6Repr::HEADER_LEN + ext + mh_len];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: (ext + mh_len) as u16,
        next_header: if rh { IPPROTO_ROUTING } else { IPPROTO_MH },
        hop_limit: 64,
        src: r.src,
        dst,
    }
    .emit(&mut p)
    .unwrap();
    if rh {
        RoutingHeaderType2 {
            next_header: IPPROTO_MH,
            segments_left: 1,
            home_address: r.hoa,
        }
        .emit(&mut p[Ipv6Repr::HEADER_LEN..])
        .unwrap();
    }
    r.emit_mh(&mut p[Ipv6Repr::HEADER_LEN + ext..]).unwrap();
    match r.path {
        ReplyPath::Ipv6 { .. } => p,
        ReplyPath::Ipv4 { src, dst } => wrap(
            &TunnelParams {
                outer: Outer::V4 { src, dst },
                encap: Encap::IpInIp,
                outer_ttl: 64,
                identification: 0,
                udp_checksum_v4: true,
                forwarding: false,
            },
            &p,
        ),
        ReplyPath::Udp {
            src,
            dst,
            src_port,
            dst_port,
        } => wrap(&udp_params(Outer::V4 { src, dst }, src_port, dst_port), &p),
    }
}

/// Outer header, encapsulation and the Mobility Header of a packet, for the log.
fn summarize(bytes: &[u8]) -> (Outer, Option<Encap>, MhRepr) {
    let mut b = bytes.to_vec();
    let (outer, encap, inner) = if b[0] >> 4 == 4 {
        let d = decapsulate(&mut b).unwrap();
        (d.outer, Some(d.encap), b[d.inner].to_vec())
    } else {
        let ip = Ipv6Repr::parse(&b).unwrap();
        (
            Outer::V6 {
                src: ip.src,
                dst: ip.dst,
            },
            None,
            b,
        )
    };
    let ip = Ipv6Repr::parse(&inner).unwrap();
    let mut at = Ipv6Repr::HEADER_LEN;
    let mut nh = ip.next_header;
    if nh == IPPROTO_DSTOPTS {
        let (d, n) = DestOptsRepr::parse(&inner[at..]).unwrap();
        nh = d.next_header;
        at += n;
    }
    if nh == IPPROTO_ROUTING {
        at += RoutingHeaderType2::LEN;
    }
    (outer, encap, MhRepr::parse_bytes(&inner[at..]).unwrap())
}

/// Lease files go to tmpfs when there is one: the home agent fsyncs every commit, and the
/// scenarios test binding logic, not the disk.
fn lease_root() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}
