//! The ESP tunnel-mode SA for data (RFC 5555 §5.2.2, `/work/briefs/contract.md`): when to
//! ask for it (`[ipsec] data_esp`), the CREATE_CHILD_SA policy (TSi = the home addresses,
//! TSr = everything of both families), the installed pair, and sealing / opening inner
//! packets. The outer headers (raw ESP or ESP in UDP 4500) are the caller's: the kernel
//! builds them from the socket the ESP packet is sent on.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use dsmip_daemon::child::esp_pair;
use ike::proposal::Proposal;
use ike::sa::{ChildPolicy, ChildSa};
use ike::wire::ts::TrafficSelector;
use mipsec::esp::{Inbound, InboundSa, OutboundSa};
use mipsec::wire::ip::{IPPROTO_IPIP, IPPROTO_IPV6};
use serde::Deserialize;

/// `[ipsec] data_esp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataEsp {
    /// A data SA when the Binding Acknowledgement reports a NAT (issue 8: "when a NAT is
    /// present or configured").
    #[default]
    Auto,
    Always,
    Never,
}

impl DataEsp {
    /// Whether a data SA is wanted, given the NAT the last BA reported (RFC 5555 §4.1).
    pub fn wanted(self, nat_detected: bool) -> bool {
        match self {
            DataEsp::Auto => nat_detected,
            DataEsp::Always => true,
            DataEsp::Never => false,
        }
    }
}

/// Counters of the data SA for `status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct DataSaStats {
    pub tx_packets: u64,
    pub rx_packets: u64,
    /// ESP packets refused (ICV, replay, unknown SPI, malformed).
    pub rx_errors: u64,
    /// Decrypted packets whose inner destination is not a home address.
    pub not_ours: u64,
    pub negotiated: u64,
    pub failed: u64,
}

/// The installed data SA pair and the IPv4 home address its selectors cover.
pub struct DataSa {
    pub spi_in: u32,
    pub spi_out: u32,
    pub hoa4: Option<Ipv4Addr>,
    inbound: InboundSa,
    outbound: OutboundSa,
}

/// The CREATE_CHILD_SA policy of the contract: tunnel mode, TSi = [HoA6/128, HoA4/32],
/// TSr = [::/0, 0.0.0.0/0], the signalling SA's ESP proposal.
pub fn policy(esp: &Proposal, hoa: Ipv6Addr, hoa4: Option<Ipv4Addr>) -> ChildPolicy {
    let mut ts_local = vec![TrafficSelector::prefix(IpAddr::V6(hoa), 128)];
    if let Some(a) = hoa4 {
        ts_local.push(TrafficSelector::prefix(IpAddr::V4(a), 32));
    }
    ChildPolicy {
        esp_proposals: vec![esp.clone()],
        ts_local,
        ts_remote: vec![
            TrafficSelector::prefix(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
            TrafficSelector::prefix(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        ],
        transport: false,
    }
}

impl DataSa {
    /// Keys of a negotiated tunnel-mode CHILD_SA; `Err` says why it cannot be used.
    pub fn new(child: &ChildSa, hoa4: Option<Ipv4Addr>) -> Result<DataSa, String> {
        let (inbound, outbound, _) = esp_pair(child, |_| {}).map_err(|e| e.to_string())?;
        Ok(DataSa {
            spi_in: child.spi_in,
            spi_out: child.spi_out,
            hoa4,
            inbound,
            outbound,
        })
    }

    /// ESP tunnel mode (RFC 4303 §3.1.2): the whole inner packet, Next Header 4 or 41 by
    /// its version. Returns the ESP packet's length in `out`.
    pub fn seal(&mut self, inner: &[u8], out: &mut [u8]) -> Result<usize, String> {
        let nh = match inner.first().map(|b| b >> 4) {
            Some(4) => IPPROTO_IPIP,
            Some(6) => IPPROTO_IPV6,
            _ => return Err("inner packet is neither IPv4 nor IPv6".into()),
        };
        self.outbound
            .encapsulate(nh, inner, out)
            .map_err(|e| e.to_string())
    }

    /// Verify and decrypt an ESP packet (from the SPI on) in place; the range of the inner
    /// packet. Anti-replay and the ICV are the SA's (RFC 4303 §3.4).
    pub fn open(&mut self, esp: &mut [u8]) -> Result<std::ops::Range<usize>, String> {
        match self.inbound.decapsulate(esp).map_err(|e| e.to_string())? {
            Inbound::Packet {
                next_header,
                payload,
                ..
            } if next_header == IPPROTO_IPIP || next_header == IPPROTO_IPV6 => Ok(payload),
            Inbound::Packet { next_header, .. } => Err(format!(
                "ESP Next Header {next_header}: not a tunnelled packet"
            )),
            Inbound::Dummy { .. } => Err("dummy packet (Next Header 59)".into()),
        }
    }
}

/// The SPI of an ESP packet (RFC 4303 §2.1), if it is long enough.
pub fn spi_of(esp: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(esp.get(..4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::wire::ProtocolId;

    #[test]
    fn data_esp_modes() {
        assert!(DataEsp::Auto.wanted(true));
        assert!(!DataEsp::Auto.wanted(false));
        assert!(DataEsp::Always.wanted(false));
        assert!(!DataEsp::Never.wanted(true));
    }

    #[test]
    fn policy_has_the_contract_selectors() {
        let esp = Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap();
        let hoa: Ipv6Addr = "2001:db8:1::100".parse().unwrap();
        let p = policy(&esp, hoa, Some(Ipv4Addr::new(198, 51, 100, 2)));
        assert!(!p.transport);
        assert_eq!(
            p.ts_local,
            vec![
                TrafficSelector::prefix(IpAddr::V6(hoa), 128),
                TrafficSelector::prefix("198.51.100.2".parse().unwrap(), 32),
            ]
        );
        assert_eq!(p.ts_remote.len(), 2);
        // The full ranges contain any address of either family.
        let any6 = TrafficSelector::prefix("2001:db8:9::1".parse().unwrap(), 128);
        let any4 = TrafficSelector::prefix("203.0.113.2".parse().unwrap(), 32);
        assert!(p.ts_remote[0].contains(&any6));
        assert!(p.ts_remote[1].contains(&any4));
        assert_eq!(policy(&esp, hoa, None).ts_local.len(), 1);
    }

    /// A tunnel-mode CHILD_SA as our side sees it, and the home agent's mirror of it.
    fn pair() -> (ChildSa, ChildSa) {
        use ike::crypto::{Encr, Integ, Secret};
        use ike::proposal::Chosen;
        use ike::sa::{ChildKeys, Mode};
        let k = |b: u8| Secret::new(vec![b; 20]);
        let chosen = Chosen {
            encr: Encr::AesGcm16(128),
            integ: Integ::None,
            prf: None,
            group: None,
            esn: false,
        };
        let addr: std::net::SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let ours = ChildSa {
            spi_in: 0xc000_0001,
            spi_out: 0xd000_0002,
            proposal: chosen,
            mode: Mode::Tunnel,
            ts_local: vec![],
            ts_remote: vec![],
            keys: ChildKeys {
                enc_in: k(1),
                auth_in: Secret::new(vec![]),
                enc_out: k(2),
                auth_out: Secret::new(vec![]),
            },
            encap: Some((4500, 4500)),
            local: addr,
            remote: addr,
        };
        let mut theirs = ours.clone();
        theirs.spi_in = ours.spi_out;
        theirs.spi_out = ours.spi_in;
        theirs.keys.enc_in = k(2);
        theirs.keys.enc_out = k(1);
        (ours, theirs)
    }

    #[test]
    fn sealed_inner_packets_open_at_the_peer_once() {
        let (ours, theirs) = pair();
        let mut mn = DataSa::new(&ours, None).unwrap();
        let mut ha = DataSa::new(&theirs, None).unwrap();
        let mut inner = vec![0u8; 60];
        inner[0] = 0x45;
        inner[20] = 8;
        let mut buf = vec![0u8; 200];
        let n = mn.seal(&inner, &mut buf).unwrap();
        assert_eq!(spi_of(&buf[..n]), Some(0xd000_0002));
        let mut copy = buf[..n].to_vec();
        let r = ha.open(&mut buf[..n]).unwrap();
        assert_eq!(&buf[r], &inner[..]);
        // The same packet again: anti-replay (RFC 4303 §3.4.3).
        assert!(ha.open(&mut copy.clone()).is_err());
        // A flipped bit: the ICV fails.
        copy[n - 1] ^= 1;
        assert!(ha.open(&mut copy).is_err());
        // Not an IP packet: refused before ESP.
        assert!(mn.seal(&[0x10; 30], &mut buf).is_err());
        // The peer's answer opens with our inbound key; our own packet does not.
        let m = ha.seal(&inner, &mut buf).unwrap();
        assert!(mn.open(&mut buf[..m]).is_ok());
        let k = mn.seal(&inner, &mut buf).unwrap();
        assert!(mn.open(&mut buf[..k]).is_err());
    }

    #[test]
    fn spi_of_short_packets() {
        assert_eq!(spi_of(&[0, 0, 1]), None);
        assert_eq!(spi_of(&[0, 0, 1, 2, 9]), Some(0x102));
    }
}
