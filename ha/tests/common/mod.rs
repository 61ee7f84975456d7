//! Shared fixtures for the engine tests: a configuration, a lab holding the engine with its
//! lease file in a temp dir and a virtual clock, and builders for Binding Updates and their
//! receive contexts.
#![allow(dead_code)]

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ha::{
    Event, HaConfig, HomeAgent, MobileNodeConfig, PoolConfig, Reply, RxContext, SaInfo, Transport,
    Verdict,
};
use mipsec::wire::mh::{BaFlags, BaStatus, BuFlags, MhMessage, MhRepr};
use mipsec::wire::mh_option::{Ipv4AckStatus, MhOption};

pub const A: u16 = BuFlags::A;
pub const H: u16 = BuFlags::H;
pub const K: u16 = BuFlags::K;
pub const R: u16 = BuFlags::R;
pub const P: u16 = BuFlags::P;
pub const F: u16 = BuFlags::F;

pub fn ha6() -> Ipv6Addr {
    "2001:db8:1::1".parse().unwrap()
}
pub fn ha4() -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, 1)
}
/// A mobile node home address on the home prefix.
pub fn hoa(i: u16) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x1000 + i)
}
/// The listed mobile node with the static IPv4 home address 203.0.113.5.
pub fn static_mn() -> Ipv6Addr {
    "2001:db8:1::100".parse().unwrap()
}
/// The listed mobile router owning 2001:db8:100::/48 and allowed IPv4 prefixes.
pub fn router() -> Ipv6Addr {
    "2001:db8:1::200".parse().unwrap()
}
/// The listed mobile node that may not use IPv4.
pub fn v6_only_mn() -> Ipv6Addr {
    "2001:db8:1::300".parse().unwrap()
}

/// Pool 198.51.100.0/28 minus .1 (usable .2 to .14: 13 addresses); three listed nodes.
pub fn config() -> HaConfig {
    let mut c = HaConfig::new(ha6(), ha4(), vec!["2001:db8:1::/64".parse().unwrap()]);
    c.ipv4_pools.push(PoolConfig {
        range: "198.51.100.0/28".parse().unwrap(),
        exclude: vec!["198.51.100.1/32".parse().unwrap()],
    });
    c.mobile_nodes = vec![
        MobileNodeConfig {
            home_address: static_mn(),
            ipv4_home_address: Some("203.0.113.5/32".parse().unwrap()),
            ipv4: true,
            ipv4_prefix: false,
            mobile_router: false,
            mobile_network_prefixes: vec![],
        },
        MobileNodeConfig {
            home_address: router(),
            ipv4_home_address: None,
            ipv4: true,
            ipv4_prefix: true,
            mobile_router: true,
            mobile_network_prefixes: vec!["2001:db8:100::/48".parse().unwrap()],
        },
        MobileNodeConfig {
            home_address: v6_only_mn(),
            ipv4_home_address: None,
            ipv4: false,
            ipv4_prefix: false,
            mobile_router: false,
            mobile_network_prefixes: vec![],
        },
    ];
    c
}

/// The engine with its lease file in a temp dir, on a virtual clock.
pub struct Lab {
    pub dir: tempfile::TempDir,
    pub t0: Instant,
    pub wall0: SystemTime,
    pub cfg: HaConfig,
    ha: Option<HomeAgent>,
}

impl Lab {
    pub fn new(cfg: HaConfig) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let wall0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ha = HomeAgent::new(cfg.clone(), &dir.path().join("leases.redb"), t0, wall0).unwrap();
        Lab {
            dir,
            t0,
            wall0,
            cfg,
            ha: Some(ha),
        }
    }

    pub fn ha(&mut self) -> &mut HomeAgent {
        self.ha.as_mut().unwrap()
    }

    /// The instant `secs` after the start.
    pub fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// Stop the engine and start a new one on the same lease file at virtual time `secs`.
    pub fn restart(&mut self, secs: f64) {
        self.ha = None;
        let d = Duration::from_secs_f64(secs);
        let ha = HomeAgent::new(
            self.cfg.clone(),
            &self.dir.path().join("leases.redb"),
            self.t0 + d,
            self.wall0 + d,
        )
        .unwrap();
        self.ha = Some(ha);
    }

    pub fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ha().poll_event()).collect()
    }

    pub fn timeout(&mut self, secs: f64) {
        let now = self.at(secs);
        self.ha().handle_timeout(now);
    }

    pub fn route(&mut self, secs: f64, dst: std::net::IpAddr) -> Option<ha::Route> {
        let now = self.at(secs);
        self.ha().route(now, dst)
    }

    pub fn leased(&mut self, secs: f64) -> u64 {
        let now = self.at(secs);
        self.ha().leased_addresses(now)
    }

    pub fn send(&mut self, secs: f64, ctx: &RxContext, bu: &MhRepr) -> Verdict {
        let now = self.at(secs);
        self.ha().handle_bu(now, ctx, bu)
    }
}

pub fn bu(sequence: u16, flags: u16, lifetime: u16, options: Vec<MhOption>) -> MhRepr {
    MhRepr {
        message: MhMessage::BindingUpdate {
            sequence,
            flags: BuFlags(flags),
            lifetime,
        },
        options,
    }
}

pub fn v4_hoa(addr: [u8; 4]) -> MhOption {
    MhOption::Ipv4HomeAddress {
        prefix_len: 32,
        prefix_request: false,
        addr: Ipv4Addr::from(addr),
    }
}

pub fn v4_coa(addr: [u8; 4]) -> MhOption {
    MhOption::Ipv4CareOfAddress(Ipv4Addr::from(addr))
}

fn sa(hoa: Ipv6Addr) -> Option<SaInfo> {
    Some(SaInfo {
        spi: 0x1234,
        home_address: hoa,
    })
}

/// Native IPv6 from `coa` with a Home Address option.
pub fn ctx_v6(hoa: Ipv6Addr, coa: &str) -> RxContext {
    RxContext {
        transport: Transport::Ipv6,
        ipv6_src: coa.parse().unwrap(),
        ipv6_dst: ha6(),
        home_address_option: Some(hoa),
        sa: sa(hoa),
    }
}

/// UDP/4191 in IPv4 from `src:port`; the inner IPv6 source is the home address.
pub fn ctx_udp(hoa: Ipv6Addr, src: [u8; 4], port: u16) -> RxContext {
    RxContext {
        transport: Transport::Udp {
            src: Ipv4Addr::from(src),
            src_port: port,
        },
        ipv6_src: hoa,
        ipv6_dst: ha6(),
        home_address_option: None,
        sa: sa(hoa),
    }
}

/// IPv6 in IPv4 (protocol 41) from `src`.
pub fn ctx_ipip(hoa: Ipv6Addr, src: [u8; 4]) -> RxContext {
    RxContext {
        transport: Transport::Ipv4 {
            src: Ipv4Addr::from(src),
        },
        ..ctx_udp(hoa, src, 0)
    }
}

/// The reply of a verdict, panicking (in a test) when there is none.
pub fn reply(v: &Verdict) -> &Reply {
    v.reply()
        .unwrap_or_else(|| panic!("expected a reply, got {v:?}"))
}

/// Status, flags, sequence and lifetime of the BA in a verdict.
pub fn ba(v: &Verdict) -> (BaStatus, BaFlags, u16, u16) {
    match reply(v).ba.message {
        MhMessage::BindingAck {
            status,
            flags,
            sequence,
            lifetime,
        } => (status, flags, sequence, lifetime),
        ref m => panic!("not a BA: {m:?}"),
    }
}

/// The IPv4 Address Acknowledgement of a verdict's BA.
pub fn ack(v: &Verdict) -> Option<(Ipv4AckStatus, u8, Ipv4Addr)> {
    reply(v).ba.find(|o| match *o {
        MhOption::Ipv4AddressAck {
            status,
            prefix_len,
            addr,
        } => Some((status, prefix_len, addr)),
        _ => None,
    })
}

/// The NAT Detection option of a verdict's BA: (F, refresh time).
pub fn nat_det(v: &Verdict) -> Option<(bool, u32)> {
    reply(v).ba.find(|o| match *o {
        MhOption::NatDetection {
            force_udp,
            refresh_time,
        } => Some((force_udp, refresh_time)),
        _ => None,
    })
}
