//! ESP tunnel mode for data (RFC 5555 §5.2.2): the second CHILD_SA of a mobile node, its
//! install checks, and the per-packet open and seal. Pure: no sockets, so every rule here
//! is tested with static keys.
//!
//! - Install (contract of issue 8): tunnel mode, an IKE identity listed in
//!   `[[ipsec.peer]]`, and every remote selector (the MN's TSi) exactly that identity's IPv6
//!   home address or the IPv4 home address of its binding. A newer data SA for the same home
//!   address replaces the older one (the MN renegotiates when its IPv4 home address changes).
//! - Inbound: the SPI names the SA; anti-replay and ICV (RFC 4303 §3.4); then the inner
//!   source must be one of that SA's home addresses (RFC 4301 §5.2: the inner header must
//!   match the SA's selectors), else the packet is dropped as spoofed.
//! - Outbound: ESP in UDP 4500 to where the MN's IKE or its last authenticated ESP came
//!   from (the NAT's mapping, RFC 3948 §2.1, RFC 5555 §5.2.2) when the binding is behind a
//!   NAT; raw ESP (IPv4 protocol 50) to the care-of address otherwise.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::ops::Range;

use dsmip_daemon::child::esp_pair;
use ike::sa::{ChildSa, Mode, SaId};
use ike::wire::ts::TrafficSelector;
use mipsec::esp::{Inbound, InboundSa, OutboundSa};
use mipsec::wire::ip::{IPPROTO_IPIP, IPPROTO_IPV6};

/// Anti-replay window of data SAs: wider than signalling's 64, as data may be reordered.
const REPLAY_WINDOW: u32 = 1024;

/// Why a data SA was not installed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    NotTunnelMode,
    UnknownIdentity,
    /// A TSi range is not one of the identity's home addresses.
    Selector,
    Transform,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::NotTunnelMode => "not tunnel mode",
            Refusal::UnknownIdentity => "IKE identity not in [[ipsec.peer]]",
            Refusal::Selector => {
                "a TSi range is neither the identity's IPv6 home address nor its binding's IPv4 home address"
            }
            Refusal::Transform => "ESP transform not supported or key length wrong",
        }
    }
}

/// Why an inbound data ESP packet was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDrop {
    /// No data SA has this SPI.
    UnknownSpi,
    /// Authentication, replay or format (RFC 4303 §3.4).
    Esp,
    /// Dummy packet (Next Header 59, RFC 4303 §2.6).
    Dummy,
    /// Next Header is neither IPv4 (4) nor IPv6 (41).
    NotTunnel,
    /// The inner source is not a home address of the SA.
    Spoofed,
}

/// One installed data SA.
#[derive(Debug)]
pub struct DataSa {
    pub hoa: Ipv6Addr,
    /// The narrowed TSi addresses: the home addresses this SA may carry.
    pub homes: Vec<IpAddr>,
    /// The IKE SA it belongs to.
    pub owner: SaId,
    inbound: InboundSa,
    outbound: OutboundSa,
    /// Where ESP in UDP goes: the IKE peer's address and port at install, then the source
    /// of the last authenticated ESP-in-UDP packet or the IKE SA's new address.
    pub peer: SocketAddr,
}

impl DataSa {
    pub fn spis(&self) -> (u32, u32) {
        (self.inbound.spi(), self.outbound.spi())
    }
}

/// The data SAs, by home address and by inbound SPI.
#[derive(Debug, Default)]
pub struct DataSas {
    by_hoa: HashMap<Ipv6Addr, DataSa>,
    by_spi: HashMap<u32, Ipv6Addr>,
}

/// Is `ts` exactly the one address `a`, or exactly the IPv4 network `v4`?
fn is_home(ts: &TrafficSelector, hoa: Ipv6Addr, v4: Option<ipnet::Ipv4Net>) -> Option<IpAddr> {
    if ts.protocol != 0 || ts.start_port != 0 || ts.end_port != 0xffff {
        return None;
    }
    match (ts.start_addr, ts.end_addr) {
        (IpAddr::V6(s), IpAddr::V6(e)) if s == hoa && e == hoa => Some(IpAddr::V6(hoa)),
        (IpAddr::V4(s), IpAddr::V4(e)) => {
            let n = v4?;
            (s == n.network() && e == n.broadcast()).then_some(IpAddr::V4(s))
        }
        _ => None,
    }
}

/// The home addresses a tunnel-mode CHILD_SA may carry, or why it must not be installed.
/// `hoa`: the identity's IPv6 home address (`None`: unknown identity); `v4`: the IPv4 home
/// address (or prefix) of that home address's binding.
pub fn check(
    child: &ChildSa,
    hoa: Option<Ipv6Addr>,
    v4: Option<ipnet::Ipv4Net>,
) -> Result<Vec<IpAddr>, Refusal> {
    if child.mode != Mode::Tunnel {
        return Err(Refusal::NotTunnelMode);
    }
    let hoa = hoa.ok_or(Refusal::UnknownIdentity)?;
    if child.ts_remote.is_empty() {
        return Err(Refusal::Selector);
    }
    child
        .ts_remote
        .iter()
        .map(|ts| is_home(ts, hoa, v4).ok_or(Refusal::Selector))
        .collect()
}

impl DataSas {
    /// Install a checked data SA for `hoa` (replacing an older one); returns the SPIs
    /// (inbound, outbound) of the SA replaced, if any.
    pub fn install(
        &mut self,
        hoa: Ipv6Addr,
        owner: SaId,
        child: &ChildSa,
        homes: Vec<IpAddr>,
    ) -> Result<Option<(u32, u32)>, Refusal> {
        let (inbound, outbound, _) = esp_pair(child, |c| {
            c.esn = child.proposal.esn;
            c.replay_window = REPLAY_WINDOW;
        })
        .map_err(|_| Refusal::Transform)?;
        let old = self.remove_hoa(&hoa);
        self.by_spi.insert(child.spi_in, hoa);
        self.by_hoa.insert(
            hoa,
            DataSa {
                hoa,
                homes,
                owner,
                inbound,
                outbound,
                peer: child.remote,
            },
        );
        Ok(old)
    }

    fn remove_hoa(&mut self, hoa: &Ipv6Addr) -> Option<(u32, u32)> {
        let sa = self.by_hoa.remove(hoa)?;
        let spis = sa.spis();
        self.by_spi.remove(&spis.0);
        Some(spis)
    }

    /// Remove the data SAs matching `gone(spi_in, owner)`; returns (home address, SPIs).
    pub fn remove(&mut self, gone: impl Fn(u32, SaId) -> bool) -> Vec<(Ipv6Addr, (u32, u32))> {
        let dead: Vec<Ipv6Addr> = self
            .by_hoa
            .values()
            .filter(|s| gone(s.inbound.spi(), s.owner))
            .map(|s| s.hoa)
            .collect();
        dead.into_iter()
            .filter_map(|h| Some((h, self.remove_hoa(&h)?)))
            .collect()
    }

    /// IKE SA `old` was rekeyed into `new`: its data SAs move with it.
    pub fn rekeyed(&mut self, old: SaId, new: SaId) {
        for s in self.by_hoa.values_mut().filter(|s| s.owner == old) {
            s.owner = new;
        }
    }

    /// The IKE SA `owner` moved to `remote`: ESP in UDP follows it.
    pub fn peer_moved(&mut self, owner: SaId, remote: SocketAddr) {
        for s in self.by_hoa.values_mut().filter(|s| s.owner == owner) {
            s.peer = remote;
        }
    }

    /// The binding of `hoa` moved to the address `ip` (K flag): ESP in UDP goes there,
    /// on the same port until an authenticated packet says otherwise.
    pub fn peer_ip_moved(&mut self, hoa: &Ipv6Addr, ip: IpAddr) {
        if let Some(s) = self.by_hoa.get_mut(hoa) {
            s.peer = SocketAddr::new(ip, s.peer.port());
        }
    }

    /// Is `spi` the inbound SPI of a data SA?
    pub fn has_spi(&self, spi: u32) -> bool {
        self.by_spi.contains_key(&spi)
    }

    pub fn get(&self, hoa: &Ipv6Addr) -> Option<&DataSa> {
        self.by_hoa.get(hoa)
    }

    pub fn len(&self) -> usize {
        self.by_hoa.len()
    }

    /// Verify and decrypt one ESP packet (starting at the SPI) in place. `udp_from` is the
    /// outer source address and port when it came in UDP 4500: on success it becomes the
    /// SA's peer (RFC 3948 §2.1, the NAT's mapping may change). Returns the home address
    /// of the SA and the inner packet's range.
    pub fn open(
        &mut self,
        esp: &mut [u8],
        udp_from: Option<SocketAddr>,
    ) -> Result<(Ipv6Addr, Range<usize>), InDrop> {
        let spi = esp
            .get(..4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            .ok_or(InDrop::UnknownSpi)?;
        let hoa = *self.by_spi.get(&spi).ok_or(InDrop::UnknownSpi)?;
        let sa = self.by_hoa.get_mut(&hoa).ok_or(InDrop::UnknownSpi)?;
        let (nh, range) = match sa.inbound.decapsulate(esp) {
            Ok(Inbound::Packet {
                next_header,
                payload,
                ..
            }) => (next_header, payload),
            Ok(Inbound::Dummy { .. }) => return Err(InDrop::Dummy),
            Err(_) => return Err(InDrop::Esp),
        };
        // Authenticated from here on: the peer may move (RFC 3948 §2.1 spirit).
        if let Some(from) = udp_from {
            sa.peer = from;
        }
        let inner = &esp[range.clone()];
        let version_ok = match nh {
            IPPROTO_IPIP => inner.first().is_some_and(|b| b >> 4 == 4),
            IPPROTO_IPV6 => inner.first().is_some_and(|b| b >> 4 == 6),
            _ => false,
        };
        if !version_ok {
            return Err(InDrop::NotTunnel);
        }
        let src = dsmip_daemon::net::source(inner).ok_or(InDrop::NotTunnel)?;
        if !sa.homes.contains(&src) {
            return Err(InDrop::Spoofed);
        }
        Ok((hoa, range))
    }

    /// Seal the inner packet `inner` for `hoa` into `out` (ESP only, no outer header);
    /// returns the ESP length and the UDP peer. `None` without a data SA or when sealing
    /// fails (sequence numbers exhausted, hard lifetime).
    pub fn seal(
        &mut self,
        hoa: &Ipv6Addr,
        inner: &[u8],
        out: &mut [u8],
    ) -> Option<(usize, SocketAddr)> {
        let sa = self.by_hoa.get_mut(hoa)?;
        let nh = match inner.first()? >> 4 {
            4 => IPPROTO_IPIP,
            6 => IPPROTO_IPV6,
            _ => return None,
        };
        let n = sa.outbound.encapsulate(nh, inner, out).ok()?;
        Some((n, sa.peer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::crypto::Secret;
    use ike::sa::ChildKeys;
    use std::net::Ipv4Addr;

    const HOA: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x100);
    const HOA4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);

    fn key(b: u8) -> Secret {
        Secret::new(vec![b; 20])
    }

    /// A tunnel-mode CHILD_SA as the responder sees it, with static keys (AES-GCM-128: 16
    /// octets of key and 4 of salt), and the mirror image the mobile node holds.
    fn child(ts: Vec<TrafficSelector>, mode: Mode) -> (ChildSa, ChildSa) {
        let proposal = ike::proposal::Chosen {
            encr: ike::crypto::Encr::AesGcm16(128),
            integ: ike::crypto::Integ::None,
            prf: None,
            group: None,
            esn: false,
        };
        let any = vec![
            TrafficSelector::prefix("::".parse().unwrap(), 0),
            TrafficSelector::prefix("0.0.0.0".parse().unwrap(), 0),
        ];
        let ha = ChildSa {
            spi_in: 0x1000_0001,
            spi_out: 0x2000_0002,
            proposal,
            mode,
            ts_local: any.clone(),
            ts_remote: ts.clone(),
            keys: ChildKeys {
                enc_in: key(1),
                auth_in: Secret::new(vec![]),
                enc_out: key(2),
                auth_out: Secret::new(vec![]),
            },
            encap: Some((4500, 4500)),
            local: "192.0.2.1:4500".parse().unwrap(),
            remote: "192.0.2.2:40000".parse().unwrap(),
        };
        let mn = ChildSa {
            spi_in: ha.spi_out,
            spi_out: ha.spi_in,
            ts_local: ts,
            ts_remote: any,
            keys: ChildKeys {
                enc_in: key(2),
                auth_in: Secret::new(vec![]),
                enc_out: key(1),
                auth_out: Secret::new(vec![]),
            },
            ..ha.clone()
        };
        (ha, mn)
    }

    fn both() -> Vec<TrafficSelector> {
        vec![
            TrafficSelector::prefix(IpAddr::V6(HOA), 128),
            TrafficSelector::prefix(IpAddr::V4(HOA4), 32),
        ]
    }

    fn v4net() -> Option<ipnet::Ipv4Net> {
        Some(ipnet::Ipv4Net::new(HOA4, 32).unwrap())
    }

    fn ipv4_packet(src: Ipv4Addr) -> Vec<u8> {
        let mut p = vec![0u8; 28];
        mipsec::wire::ip::Ipv4Repr {
            dscp: 0,
            ecn: 0,
            identification: 1,
            dont_fragment: true,
            more_fragments: false,
            fragment_offset: 0,
            ttl: 64,
            protocol: 17,
            src,
            dst: Ipv4Addr::new(203, 0, 113, 2),
            payload_len: 8,
        }
        .emit(&mut p)
        .unwrap();
        p
    }

    #[test]
    fn install_checks_mode_identity_and_every_selector() {
        let (ok, _) = child(both(), Mode::Tunnel);
        assert_eq!(
            check(&ok, Some(HOA), v4net()),
            Ok(vec![IpAddr::V6(HOA), IpAddr::V4(HOA4)])
        );
        // The IPv4 home address must be the binding's.
        assert_eq!(check(&ok, Some(HOA), None), Err(Refusal::Selector));
        let other = ipnet::Ipv4Net::new(Ipv4Addr::new(198, 51, 100, 3), 32).ok();
        assert_eq!(check(&ok, Some(HOA), other), Err(Refusal::Selector));
        assert_eq!(check(&ok, None, v4net()), Err(Refusal::UnknownIdentity));
        let (transport, _) = child(both(), Mode::Transport);
        assert_eq!(
            check(&transport, Some(HOA), v4net()),
            Err(Refusal::NotTunnelMode)
        );
        // Another node's home address, a range, or nothing: refused.
        let (wide, _) = child(
            vec![TrafficSelector::prefix(IpAddr::V6(HOA), 64)],
            Mode::Tunnel,
        );
        assert_eq!(check(&wide, Some(HOA), v4net()), Err(Refusal::Selector));
        let (none, _) = child(vec![], Mode::Tunnel);
        assert_eq!(check(&none, Some(HOA), v4net()), Err(Refusal::Selector));
        let (v6only, _) = child(
            vec![TrafficSelector::prefix(IpAddr::V6(HOA), 128)],
            Mode::Tunnel,
        );
        assert_eq!(check(&v6only, Some(HOA), None), Ok(vec![IpAddr::V6(HOA)]));
    }

    #[test]
    fn open_and_seal_with_static_keys() {
        let (ha, mn) = child(both(), Mode::Tunnel);
        let mut sas = DataSas::default();
        let homes = check(&ha, Some(HOA), v4net()).unwrap();
        assert_eq!(sas.install(HOA, 7, &ha, homes).unwrap(), None);
        let cfg = |spi| mipsec::esp::SaConfig::new(spi, mipsec::esp::Transform::AesGcm128);
        let mut mn_out = OutboundSa::new(cfg(mn.spi_out), mn.keys.enc_out.expose()).unwrap();
        let mut mn_in = InboundSa::new(cfg(mn.spi_in), mn.keys.enc_in.expose()).unwrap();

        // MN -> HA: opens, the peer follows the authenticated UDP source.
        let inner = ipv4_packet(HOA4);
        let mut esp = vec![0u8; 200];
        let n = mn_out.encapsulate(IPPROTO_IPIP, &inner, &mut esp).unwrap();
        let nat: SocketAddr = "192.0.2.2:40001".parse().unwrap();
        let (hoa, r) = sas.open(&mut esp[..n], Some(nat)).unwrap();
        assert_eq!((hoa, &esp[r]), (HOA, &inner[..]));
        assert_eq!(sas.get(&HOA).unwrap().peer, nat);
        // The same packet again: anti-replay (RFC 4303 §3.4.3).
        let mut again = vec![0u8; 200];
        let n2 = {
            let mut o = OutboundSa::new(cfg(mn.spi_out), mn.keys.enc_out.expose()).unwrap();
            o.encapsulate(IPPROTO_IPIP, &inner, &mut again).unwrap()
        };
        assert_eq!(sas.open(&mut again[..n2], None), Err(InDrop::Esp));
        // A flipped bit fails the ICV; the peer does not move.
        let n = mn_out.encapsulate(IPPROTO_IPIP, &inner, &mut esp).unwrap();
        esp[n - 1] ^= 1;
        let elsewhere: SocketAddr = "192.0.2.99:1".parse().unwrap();
        assert_eq!(sas.open(&mut esp[..n], Some(elsewhere)), Err(InDrop::Esp));
        assert_eq!(sas.get(&HOA).unwrap().peer, nat);
        // An inner source that is not this SA's home address: spoofed.
        let n = mn_out
            .encapsulate(
                IPPROTO_IPIP,
                &ipv4_packet(Ipv4Addr::new(198, 51, 100, 9)),
                &mut esp,
            )
            .unwrap();
        assert_eq!(sas.open(&mut esp[..n], None), Err(InDrop::Spoofed));
        // Next Header that does not match the inner version.
        let n = mn_out.encapsulate(IPPROTO_IPV6, &inner, &mut esp).unwrap();
        assert_eq!(sas.open(&mut esp[..n], None), Err(InDrop::NotTunnel));
        // Unknown SPI, and a packet too short for one.
        let mut junk = [0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 1];
        assert_eq!(sas.open(&mut junk, None), Err(InDrop::UnknownSpi));
        assert_eq!(sas.open(&mut [1, 2], None), Err(InDrop::UnknownSpi));

        // HA -> MN: sealed for the MN's inbound SA, sent to the learnt peer.
        let back = ipv4_packet(Ipv4Addr::new(203, 0, 113, 2));
        let mut out = vec![0u8; 200];
        let (m, to) = sas.seal(&HOA, &back, &mut out).unwrap();
        assert_eq!(to, nat);
        match mn_in.decapsulate(&mut out[..m]).unwrap() {
            Inbound::Packet {
                next_header,
                payload,
                ..
            } => {
                assert_eq!(next_header, IPPROTO_IPIP);
                assert_eq!(&out[payload], &back[..]);
            }
            other => panic!("{other:?}"),
        }
        assert!(sas
            .seal(&"2001:db8:1::9".parse().unwrap(), &back, &mut out)
            .is_none());
        assert!(sas.seal(&HOA, &[0x50], &mut out).is_none(), "not IP");
    }

    #[test]
    fn replace_move_and_remove() {
        let (ha, _) = child(both(), Mode::Tunnel);
        let mut sas = DataSas::default();
        sas.install(HOA, 7, &ha, vec![IpAddr::V6(HOA)]).unwrap();
        let newer = ChildSa {
            spi_in: 0x3000_0003,
            spi_out: 0x4000_0004,
            ..ha.clone()
        };
        assert_eq!(
            sas.install(HOA, 7, &newer, vec![IpAddr::V6(HOA)]).unwrap(),
            Some((0x1000_0001, 0x2000_0002))
        );
        assert_eq!(sas.len(), 1);
        let mut old_spi = 0x1000_0001u32.to_be_bytes().to_vec();
        old_spi.extend([0u8; 40]);
        assert_eq!(sas.open(&mut old_spi, None), Err(InDrop::UnknownSpi));
        sas.rekeyed(7, 8);
        let moved: SocketAddr = "203.0.113.50:4500".parse().unwrap();
        sas.peer_moved(8, moved);
        assert_eq!(sas.get(&HOA).unwrap().peer, moved);
        sas.peer_ip_moved(&HOA, "203.0.113.51".parse().unwrap());
        assert_eq!(
            sas.get(&HOA).unwrap().peer,
            "203.0.113.51:4500".parse().unwrap()
        );
        assert!(sas.remove(|_, owner| owner == 7).is_empty());
        assert_eq!(
            sas.remove(|spi, _| spi == 0x3000_0003),
            vec![(HOA, (0x3000_0003, 0x4000_0004))]
        );
        assert_eq!(sas.len(), 0);
    }
}
