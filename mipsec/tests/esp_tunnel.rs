//! ESP tunnel mode as RFC 5555 §5.2.2 lays it out (plain ESP, ESP in UDP 4500 behind a
//! NAT, ESP over IPv6), keepalives and IKE on port 4500, the choice between ESP and the
//! plain tunnels of §4.1, and inner packets finding their policy in the SPD.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mipsec::esp::tunnel::{self, packet_key, EspPath, Received, Route};
use mipsec::esp::{InboundSa, OutboundSa, SaConfig, Sad, Transform};
use mipsec::spd::{parse_native, Action, Direction, Ports};
use mipsec::wire::ip::{Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr};
use mipsec::wire::tunnel::{Encap, Outer, TunnelParams, DSMIPV6_PORT};

const HA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const NAT4: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
const HOA: &str = "2001:db8:1::100";
const CN: &str = "2001:db8:2::5";

fn sads() -> (Sad, Sad) {
    let k: Vec<u8> = (0..20).collect();
    let cfg = SaConfig::new(0xc0ffee, Transform::AesGcm128);
    let (mut mn, mut ha) = (Sad::new(), Sad::new());
    mn.insert_outbound(OutboundSa::new(cfg, &k).unwrap());
    ha.insert_inbound(InboundSa::new(cfg, &k).unwrap());
    (mn, ha)
}

/// An IPv6 packet HoA -> CN carrying a Mobility Header of type `mh` (or UDP if None).
fn inner6(mh: Option<u8>) -> Vec<u8> {
    let body: Vec<u8> = match mh {
        Some(t) => vec![59, 0, t, 0, 0, 0, 0, 0],
        None => vec![0x30, 0x39, 0x00, 0x35, 0, 8, 0, 0],
    };
    let mut p = vec![0u8; 40 + body.len()];
    Ipv6Repr {
        dscp: 10,
        ecn: 0,
        flow_label: 0,
        payload_len: body.len() as u16,
        next_header: if mh.is_some() { 135 } else { 17 },
        hop_limit: 64,
        src: HOA.parse().unwrap(),
        dst: CN.parse().unwrap(),
    }
    .emit(&mut p)
    .unwrap();
    p[40..].copy_from_slice(&body);
    p
}

#[test]
fn nat_format_udp_4500_round_trip() {
    let (mut mn, mut ha) = sads();
    let inner = inner6(None);
    let path = EspPath::V4Udp {
        src: Ipv4Addr::new(10, 0, 0, 2),
        dst: HA4,
        src_port: 4500,
        dst_port: 4500,
    };
    let route = Route::Esp {
        spi: 0xc0ffee,
        path,
        ttl: 64,
    };
    let mut buf = [0u8; 256];
    let n = tunnel::send(&route, &mut mn, &inner, &mut buf).unwrap();
    let pkt = &mut buf[..n];
    // IPv4 / UDP(4500, 4500, checksum 0) / ESP(SPI) as RFC 3948 §2.1 frames it.
    let (ip, hl) = Ipv4Repr::parse(pkt).unwrap();
    assert_eq!((ip.protocol, ip.dst, ip.dscp, hl), (17, HA4, 10, 20));
    assert_eq!(&pkt[20..24], &[0x11, 0x94, 0x11, 0x94]);
    assert_eq!(&pkt[26..28], &[0, 0]);
    assert_eq!(&pkt[28..32], &0xc0ffeeu32.to_be_bytes());
    // The NAT rewrites source address and port on the way.
    pkt[12..16].copy_from_slice(&NAT4.octets());
    pkt[10..12].fill(0);
    let c = mipsec::wire::checksum::checksum(&pkt[..20]);
    pkt[10..12].copy_from_slice(&c.to_be_bytes());
    pkt[20..22].copy_from_slice(&31000u16.to_be_bytes());
    match tunnel::receive(&mut ha, pkt).unwrap() {
        Received::Tunnel {
            outer_src,
            udp_src_port,
            spi,
            seq,
            inner: r,
            ..
        } => {
            // RFC 5555 §5.1: what the HA needs to see, the NAT's address and port.
            assert_eq!(outer_src, IpAddr::V4(NAT4));
            assert_eq!(udp_src_port, Some(31000));
            assert_eq!((spi, seq), (0xc0ffee, 1));
            assert_eq!(&pkt[r], &inner[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn plain_esp_over_ipv4_and_ipv6() {
    for path in [
        EspPath::V4 {
            src: Ipv4Addr::new(203, 0, 113, 9),
            dst: HA4,
        },
        EspPath::V6 {
            src: "2001:db8:9::2".parse().unwrap(),
            dst: "2001:db8:1::1".parse().unwrap(),
        },
    ] {
        let (mut mn, mut ha) = sads();
        let inner = inner6(Some(5));
        let mut buf = [0u8; 256];
        let n = tunnel::send(
            &Route::Esp {
                spi: 0xc0ffee,
                path,
                ttl: 9,
            },
            &mut mn,
            &inner,
            &mut buf,
        )
        .unwrap();
        let proto_at = if matches!(path, EspPath::V6 { .. }) {
            6
        } else {
            9
        };
        assert_eq!(buf[proto_at], 50, "{path:?}");
        match tunnel::receive(&mut ha, &mut buf[..n]).unwrap() {
            Received::Tunnel {
                udp_src_port: None,
                inner: r,
                ..
            } => assert_eq!(&buf[r], &inner[..]),
            other => panic!("{other:?}"),
        }
        // A flipped bit anywhere in the ESP part is refused.
        let n2 = tunnel::send(
            &Route::Esp {
                spi: 0xc0ffee,
                path,
                ttl: 9,
            },
            &mut mn,
            &inner,
            &mut buf,
        )
        .unwrap();
        buf[n2 - 3] ^= 0x80;
        assert!(tunnel::receive(&mut ha, &mut buf[..n2]).is_err());
        assert_eq!(ha.inbound(0xc0ffee).unwrap().counters().auth_failures, 1);
    }
}

fn udp4500(payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0u8; 28 + payload.len()];
    p[28..].copy_from_slice(payload);
    let pseudo = Pseudo::V4 {
        src: NAT4,
        dst: HA4,
    };
    UdpRepr {
        src_port: 4500,
        dst_port: 4500,
    }
    .emit(&mut p[20..], payload.len(), &pseudo, true)
    .unwrap();
    Ipv4Repr {
        dscp: 0,
        ecn: 0,
        identification: 1,
        dont_fragment: false,
        more_fragments: false,
        fragment_offset: 0,
        ttl: 64,
        protocol: 17,
        src: NAT4,
        dst: HA4,
        payload_len: (8 + payload.len()) as u16,
    }
    .emit(&mut p)
    .unwrap();
    p
}

#[test]
fn keepalive_and_ike_share_port_4500() {
    let (_, mut ha) = sads();
    let mut ka = udp4500(&[0xff]);
    assert_eq!(tunnel::receive(&mut ha, &mut ka), Ok(Received::Keepalive));
    let mut ike = udp4500(&[0, 0, 0, 0, 0xaa, 0xbb]);
    assert_eq!(
        tunnel::receive(&mut ha, &mut ike),
        Ok(Received::Ike(32..34))
    );
    let mut unknown = udp4500(&[0, 0, 0, 9, 0, 0, 0, 1, 1, 2, 3, 4]);
    assert!(tunnel::receive(&mut ha, &mut unknown).is_err());
}

#[test]
fn binding_decides_esp_or_plain_udp_4191() {
    let (mut mn, _) = sads();
    let inner = inner6(None);
    let plain = Route::Plain(TunnelParams {
        outer: Outer::V4 {
            src: Ipv4Addr::new(10, 0, 0, 2),
            dst: HA4,
        },
        encap: Encap::Udp {
            src_port: DSMIPV6_PORT,
            dst_port: DSMIPV6_PORT,
        },
        outer_ttl: 64,
        identification: 0,
        udp_checksum_v4: true,
        forwarding: false,
    });
    let mut buf = [0u8; 256];
    let n = tunnel::send(&plain, &mut mn, &inner, &mut buf).unwrap();
    assert_eq!(n, 20 + 8 + inner.len());
    assert_eq!(&buf[22..24], &DSMIPV6_PORT.to_be_bytes());
    assert_eq!(
        &buf[28..n],
        &inner[..],
        "plain tunnel carries the inner packet in clear"
    );
    assert_eq!(mn.outbound_mut(0xc0ffee).unwrap().counters().packets, 0);
}

#[test]
fn inner_packets_find_their_policy() {
    // RFC 5555 §5.2.1 (BU/BA in transport mode) before §5.2.2 (everything else from the
    // home address in tunnel mode), as a home agent holds them.
    let spd = parse_native(&format!(
        "entry bu dir=both local=2001:db8:1::1 remote={HOA} proto=135 lport=1536 rport=1280 action=protect mode=transport\n\
         entry data dir=both local=any remote={HOA} proto=any lport=any rport=any action=protect mode=tunnel\n"
    ))
    .unwrap();
    // A BU (MH type 5) arriving from the HoA matches the first entry.
    let mut bu = inner6(Some(5));
    bu[24..40].copy_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
    let k = packet_key(Direction::In, &bu).unwrap();
    assert_eq!(k.ports, Ports::Message(5 << 8));
    assert_eq!(spd.lookup(&k).map(|(i, _)| i), Some(0));
    // Data from the CN to the HoA, seen leaving the HA: the tunnel-mode entry.
    let mut data = inner6(None);
    let (s, d) = (data[8..24].to_vec(), data[24..40].to_vec());
    data[8..24].copy_from_slice(&d);
    data[24..40].copy_from_slice(&s);
    let k = packet_key(Direction::Out, &data).unwrap();
    assert_eq!(
        k.ports,
        Ports::Pair {
            local: 12345,
            remote: 53
        }
    );
    let (i, e) = spd.lookup(&k).unwrap();
    assert_eq!(i, 1);
    assert!(matches!(&e.action, Action::Protect(p) if p.mode == mipsec::spd::Mode::Tunnel));
    // A BRR (type 0) from the HA is not the BU entry's MH type: it falls to entry 1.
    let mut brr = inner6(Some(0));
    brr[8..24].copy_from_slice(&"2001:db8:1::1".parse::<Ipv6Addr>().unwrap().octets());
    brr[24..40].copy_from_slice(&HOA.parse::<Ipv6Addr>().unwrap().octets());
    let k = packet_key(Direction::Out, &brr).unwrap();
    assert_eq!(spd.lookup(&k).map(|(i, _)| i), Some(1));
    // Truncated inner headers are errors, not panics.
    for cut in 0..bu.len() {
        let _ = packet_key(Direction::In, &bu[..cut]);
    }
    assert!(packet_key(Direction::In, &bu[..42]).is_err());
}

#[test]
fn packet_key_walks_extension_headers_and_marks_fragments_opaque() {
    // IPv6 / Destination Options (8 octets) / MH type 6 (Binding Acknowledgement).
    let mut p = inner6(Some(6));
    let mh = p[40..].to_vec();
    p[6] = 60; // next header: destination options
    p.truncate(40);
    p.extend_from_slice(&[135, 0, 1, 4, 0, 0, 0, 0]);
    p.extend_from_slice(&mh);
    let plen = (p.len() - 40) as u16;
    p[4..6].copy_from_slice(&plen.to_be_bytes());
    let k = packet_key(Direction::Out, &p).unwrap();
    assert_eq!((k.proto, k.ports), (Some(135), Ports::Message(6 << 8)));
    // A non-initial fragment: OPAQUE ports (RFC 4301 §4.4.1.1).
    let mut f = inner6(None);
    let udp = f[40..].to_vec();
    f[6] = 44;
    f.truncate(40);
    f.extend_from_slice(&[17, 0, 0x00, 0x08, 0, 0, 0, 1]); // offset 1 (8 octets)
    f.extend_from_slice(&udp);
    let flen = (f.len() - 40) as u16;
    f[4..6].copy_from_slice(&flen.to_be_bytes());
    let k = packet_key(Direction::Out, &f).unwrap();
    assert_eq!((k.proto, k.ports), (Some(17), Ports::Opaque));
    // The first fragment keeps its ports.
    f[42..44].copy_from_slice(&[0, 1]); // offset 0, M flag set
    let k = packet_key(Direction::Out, &f).unwrap();
    assert_eq!(
        k.ports,
        Ports::Pair {
            local: 12345,
            remote: 53
        }
    );
}

#[test]
fn transport_mode_keeps_the_home_address_option_in_front() {
    use mipsec::esp::transport;
    let k: Vec<u8> = (0..20).collect();
    let cfg = SaConfig::new(0x4242, Transform::AesGcm128);
    let mut o = OutboundSa::new(cfg, &k).unwrap();
    let mut i = InboundSa::new(cfg, &k).unwrap();
    // IPv6(CoA -> HA) / Destination Options (PadN, Home Address option) / MH BU (type 5).
    let coa: Ipv6Addr = "2001:db8:9::2".parse().unwrap();
    let ha: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let hoa: Ipv6Addr = HOA.parse().unwrap();
    let mut dst_opts = vec![135, 2, 1, 2, 0, 0, 0xc9, 16];
    dst_opts.extend_from_slice(&hoa.octets());
    let bu = [59u8, 1, 5, 0, 0, 0, 0, 0, 0, 7, 0x80, 0, 0, 0, 0, 0];
    let mut pkt = vec![0u8; 40];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: (dst_opts.len() + bu.len()) as u16,
        next_header: 60,
        hop_limit: 64,
        src: coa,
        dst: ha,
    }
    .emit(&mut pkt)
    .unwrap();
    pkt.extend_from_slice(&dst_opts);
    pkt.extend_from_slice(&bu);
    let mut buf = [0u8; 256];
    let n = transport::encapsulate(&mut o, &pkt, &mut buf).unwrap();
    let enc = &mut buf[..n];
    assert_eq!(enc[6], 60, "IPv6 next header still the destination options");
    assert_eq!(
        &enc[40..42],
        &[50, 2],
        "ESP right after the Home Address option"
    );
    assert_eq!(&enc[46..64], &dst_opts[6..], "HAO in clear");
    assert_eq!(usize::from(u16::from_be_bytes([enc[4], enc[5]])), n - 40);
    assert_eq!(&enc[64..68], &0x4242u32.to_be_bytes());
    let (r, _) = transport::decapsulate(&mut i, enc).unwrap();
    assert_eq!(&enc[r], &pkt[..], "BU restored byte for byte");

    // IPv4 / UDP in transport mode: protocol, length and header checksum follow.
    let mut u = udp4500(b"transport payload");
    u[22..24].copy_from_slice(&53u16.to_be_bytes());
    let n = transport::encapsulate(&mut o, &u, &mut buf).unwrap();
    let (h, _) = Ipv4Repr::parse(&buf[..n]).unwrap();
    assert_eq!((h.protocol, usize::from(h.payload_len) + 20), (50, n));
    let (r, _) = transport::decapsulate(&mut i, &mut buf[..n]).unwrap();
    assert_eq!(&buf[r], &u[..]);
    // Tampering with the ESP part is refused.
    let n = transport::encapsulate(&mut o, &u, &mut buf).unwrap();
    buf[n - 1] ^= 1;
    assert!(transport::decapsulate(&mut i, &mut buf[..n]).is_err());
}
