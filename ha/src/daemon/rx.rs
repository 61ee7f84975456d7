//! The receive path of UDP 4191 (RFC 5555 §4.1): what one datagram carries, and the
//! [`RxContext`] the engine gets for a Binding Update. A datagram holds an IPv6 packet
//! (signalling or tunnelled IPv6 data) or an IPv4 packet (tunnelled IPv4 data). Nothing
//! here panics on input: every malformed datagram is a [`Inbound::Malformed`] with a reason.

use std::net::{Ipv6Addr, SocketAddrV4};

use ha::{RxContext, SaInfo, Transport};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_DSTOPTS, IPPROTO_ESP, IPPROTO_MH};

/// Option type of the Home Address destination option (RFC 6275 §6.3).
const OPT_HOME_ADDRESS: u8 = 201;
const OPT_PAD1: u8 = 0;

/// What a UDP 4191 datagram carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound<'a> {
    /// A cleartext Mobility Header message (no ESP).
    Mh {
        ip6: Ipv6Repr,
        home_address_option: Option<Ipv6Addr>,
        mh: &'a [u8],
    },
    /// An ESP-protected IPv6 packet (RFC 4877 §4.1: BU/BA in transport mode).
    Esp {
        ip6: Ipv6Repr,
    },
    /// Tunnelled data (IPv6 that is neither MH nor ESP, or IPv4): the data plane's.
    Data {
        ipv4: bool,
    },
    Malformed(&'static str),
}

/// Classify one datagram's payload.
pub fn classify(buf: &[u8]) -> Inbound<'_> {
    match buf.first().map(|b| b >> 4) {
        Some(4) => return Inbound::Data { ipv4: true },
        Some(6) => {}
        _ => return Inbound::Malformed("not an IPv6 or IPv4 packet"),
    }
    let Ok(ip6) = Ipv6Repr::parse(buf) else {
        return Inbound::Malformed("IPv6 header does not parse");
    };
    let end = Ipv6Repr::HEADER_LEN + usize::from(ip6.payload_len);
    let Some(payload) = buf.get(Ipv6Repr::HEADER_LEN..end) else {
        return Inbound::Malformed("IPv6 payload length beyond the datagram");
    };
    match ip6.next_header {
        IPPROTO_MH => Inbound::Mh {
            ip6,
            home_address_option: None,
            mh: payload,
        },
        IPPROTO_ESP => Inbound::Esp { ip6 },
        IPPROTO_DSTOPTS => match dest_opts(payload) {
            Ok((IPPROTO_MH, hao, rest)) => Inbound::Mh {
                ip6,
                home_address_option: hao,
                mh: rest,
            },
            Ok((IPPROTO_ESP, _, _)) => Inbound::Esp { ip6 },
            Ok(_) => Inbound::Data { ipv4: false },
            Err(e) => Inbound::Malformed(e),
        },
        _ => Inbound::Data { ipv4: false },
    }
}

/// Parse a Destination Options header: (next header, Home Address option, rest).
fn dest_opts(buf: &[u8]) -> Result<(u8, Option<Ipv6Addr>, &[u8]), &'static str> {
    let (&next, &len) = match buf {
        [n, l, ..] => (n, l),
        _ => return Err("destination options header truncated"),
    };
    let hdr_len = (usize::from(len) + 1) * 8;
    let (opts, rest) = (
        buf.get(2..hdr_len)
            .ok_or("destination options beyond the packet")?,
        &buf[hdr_len..],
    );
    let mut hao = None;
    let mut i = 0;
    while i < opts.len() {
        if opts[i] == OPT_PAD1 {
            i += 1;
            continue;
        }
        let olen = usize::from(*opts.get(i + 1).ok_or("option length truncated")?);
        let data = opts
            .get(i + 2..i + 2 + olen)
            .ok_or("option beyond the header")?;
        if opts[i] == OPT_HOME_ADDRESS {
            let a: [u8; 16] = data
                .try_into()
                .map_err(|_| "home address option not 16 octets")?;
            hao = Some(Ipv6Addr::from(a));
        }
        i += 2 + olen;
    }
    Ok((next, hao, rest))
}

/// The context of a cleartext Binding Update from `from`. With `require_ipsec` no SA is
/// claimed, so the engine drops it (RFC 4877 §4.1, `Unprotected`); without it (lab use
/// only) the BU is treated as protected by an SA for its own home address.
pub fn cleartext_context(
    from: SocketAddrV4,
    ip6: &Ipv6Repr,
    home_address_option: Option<Ipv6Addr>,
    require_ipsec: bool,
) -> RxContext {
    let mut ctx = RxContext {
        transport: Transport::Udp {
            src: *from.ip(),
            src_port: from.port(),
        },
        ipv6_src: ip6.src,
        ipv6_dst: ip6.dst,
        home_address_option,
        sa: None,
    };
    if !require_ipsec {
        ctx.sa = Some(SaInfo {
            spi: 0,
            home_address: ctx.home_address(),
        });
    }
    ctx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip6(next: u8, payload: &[u8]) -> Vec<u8> {
        let h = Ipv6Repr {
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            payload_len: payload.len() as u16,
            next_header: next,
            hop_limit: 64,
            src: "2001:db8:1::100".parse().unwrap(),
            dst: "2001:db8:1::1".parse().unwrap(),
        };
        let mut b = vec![0u8; 40];
        h.emit(&mut b).unwrap();
        b.extend_from_slice(payload);
        b
    }

    #[test]
    fn mh_esp_data_and_garbage() {
        let p = ip6(IPPROTO_MH, &[59, 0, 5, 0, 0, 0, 0, 0]);
        assert!(
            matches!(classify(&p), Inbound::Mh { mh, home_address_option: None, .. } if mh.len() == 8)
        );
        assert!(matches!(
            classify(&ip6(IPPROTO_ESP, &[0; 16])),
            Inbound::Esp { .. }
        ));
        assert_eq!(classify(&ip6(58, &[0; 8])), Inbound::Data { ipv4: false });
        assert_eq!(classify(&[0x45, 0, 0, 20]), Inbound::Data { ipv4: true });
        assert!(matches!(classify(&[0x12]), Inbound::Malformed(_)));
        assert!(matches!(classify(&p[..45]), Inbound::Malformed(_)));
        assert!(matches!(classify(&[]), Inbound::Malformed(_)));
    }

    #[test]
    fn home_address_option_is_read() {
        // Destination options: next MH, length 2 (24 octets): PadN(4), HAO(16), then MH.
        let mut d = vec![IPPROTO_MH, 2, 1, 2, 0, 0, OPT_HOME_ADDRESS, 16];
        let hoa: Ipv6Addr = "2001:db8:1::200".parse().unwrap();
        d.extend_from_slice(&hoa.octets());
        d.extend_from_slice(&[59, 0, 5, 0, 0, 0, 0, 0]);
        match classify(&ip6(IPPROTO_DSTOPTS, &d)) {
            Inbound::Mh {
                home_address_option,
                mh,
                ..
            } => {
                assert_eq!(home_address_option, Some(hoa));
                assert_eq!(mh.len(), 8);
            }
            other => panic!("{other:?}"),
        }
        // Truncated option: malformed, no panic.
        assert!(matches!(
            classify(&ip6(IPPROTO_DSTOPTS, &d[..12])),
            Inbound::Malformed(_)
        ));
        let mut bad = d.clone();
        bad[7] = 40;
        assert!(matches!(
            classify(&ip6(IPPROTO_DSTOPTS, &bad)),
            Inbound::Malformed(_)
        ));
    }

    #[test]
    fn context_claims_sa_only_without_ipsec() {
        let p = ip6(IPPROTO_MH, &[59, 0, 5, 0, 0, 0, 0, 0]);
        let Inbound::Mh { ip6, .. } = classify(&p) else {
            panic!()
        };
        let from: SocketAddrV4 = "192.0.2.2:4500".parse().unwrap();
        let c = cleartext_context(from, &ip6, None, true);
        assert_eq!(c.sa, None);
        assert_eq!(
            c.transport,
            Transport::Udp {
                src: *from.ip(),
                src_port: 4500
            }
        );
        let c = cleartext_context(from, &ip6, None, false);
        assert_eq!(c.sa.map(|s| s.home_address), Some(ip6.src));
    }
}
