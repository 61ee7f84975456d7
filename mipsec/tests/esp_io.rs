//! The `io` pieces on this machine: UDP batches and GSO/GRO on loopback, and a TUN device
//! and raw sockets inside a private network namespace made for the test thread (unshare
//! affects only the calling thread, and the namespace disappears with it). Needs root.

use std::net::{IpAddr, SocketAddr, UdpSocket};

use mipsec::io::raw::RawSocket;
use mipsec::io::tun::Tun;
use mipsec::io::udp::{BatchUdp, RecvMeta};

fn in_private_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare takes no pointers; CLONE_NEWNET moves only this thread.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET) failed: run the tests as root");
        f()
    })
    .join()
    .unwrap()
}

fn bring_lo_up() {
    // In a fresh namespace loopback is down.
    let s = std::process::Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()
        .unwrap();
    assert!(s.success());
}

#[test]
fn udp_batches_on_loopback() {
    let rx = BatchUdp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let tx = BatchUdp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dst = rx.socket().local_addr().unwrap();
    let data: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; 100 + usize::from(i)]).collect();
    let msgs: Vec<(&[u8], SocketAddr)> = data.iter().map(|d| (&d[..], dst)).collect();
    assert_eq!(tx.send_batch(&msgs).unwrap(), 20);
    let mut store = vec![[0u8; 2048]; 32];
    let mut got = Vec::new();
    while got.len() < 20 {
        let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|b| &mut b[..]).collect();
        let mut meta = [RecvMeta::default(); 32];
        let n = rx.recv_batch(&mut bufs, &mut meta).unwrap();
        for i in 0..n {
            assert_eq!(meta[i].src, Some(tx.socket().local_addr().unwrap()));
            got.push(bufs[i][..meta[i].len].to_vec());
        }
    }
    assert_eq!(got, data);
}

#[test]
fn udp_gso_send_and_gro_receive() {
    let rx = BatchUdp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    rx.set_gro(true).unwrap();
    let tx = BatchUdp::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let dst = rx.socket().local_addr().unwrap();
    // 10 segments of 1000 octets and a short last one.
    let buf: Vec<u8> = (0..10_300u32).map(|i| (i / 1000) as u8).collect();
    assert_eq!(tx.send_gso(&buf, 1000, dst).unwrap(), buf.len());
    let mut store = vec![[0u8; 65536]; 4];
    let mut total = Vec::new();
    while total.len() < buf.len() {
        let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|b| &mut b[..]).collect();
        let mut meta = [RecvMeta::default(); 4];
        let n = rx.recv_batch(&mut bufs, &mut meta).unwrap();
        for i in 0..n {
            // Either the kernel coalesced (segment size reported) or not (one datagram).
            if let Some(seg) = meta[i].segment {
                assert_eq!(seg, 1000);
            } else {
                assert!(meta[i].len <= 1000);
            }
            total.extend_from_slice(&bufs[i][..meta[i].len]);
        }
    }
    assert_eq!(total, buf);
}

#[test]
fn tun_device_carries_packets_both_ways() {
    in_private_netns(|| {
        bring_lo_up();
        let tun = Tun::create("dsmtest%d").unwrap();
        assert!(tun.name().starts_with("dsmtest"));
        tun.set_mtu(1400).unwrap();
        tun.add_address("203.0.113.1".parse().unwrap(), 24).unwrap();
        tun.add_address("2001:db8:77::1".parse().unwrap(), 64)
            .unwrap();
        tun.up().unwrap();
        let show = std::process::Command::new("ip")
            .args(["addr", "show", tun.name()])
            .output()
            .unwrap();
        let show = String::from_utf8_lossy(&show.stdout);
        assert!(
            show.contains("mtu 1400")
                && show.contains("203.0.113.1/24")
                && show.contains("2001:db8:77::1/64"),
            "{show}"
        );
        // A datagram to an address on the TUN's subnet comes out of the TUN as IPv4/UDP.
        let s = UdpSocket::bind("203.0.113.1:0").unwrap();
        s.send_to(b"through the tun", "203.0.113.9:7777").unwrap();
        let mut buf = [0u8; 2048];
        let n = loop {
            let n = tun.recv(&mut buf).unwrap();
            if buf[0] >> 4 == 4 && buf[9] == 17 {
                break n;
            }
        };
        assert_eq!(&buf[16..20], &[203, 0, 113, 9]);
        assert_eq!(&buf[28..n], b"through the tun");
        // And a packet written into the TUN reaches the socket: swap addresses and ports.
        let mut reply = buf[..n].to_vec();
        reply.copy_within(12..16, 16);
        reply[12..16].copy_from_slice(&[203, 0, 113, 9]);
        let (sp, dp) = ([reply[20], reply[21]], [reply[22], reply[23]]);
        reply[20..22].copy_from_slice(&dp);
        reply[22..24].copy_from_slice(&sp);
        reply[26..28].fill(0); // no UDP checksum over IPv4
        reply[10..12].fill(0);
        let c = mipsec::wire::checksum::checksum(&reply[..20]);
        reply[10..12].copy_from_slice(&c.to_be_bytes());
        tun.send(&reply).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        let (m, from) = s.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..m], b"through the tun");
        assert_eq!(from, "203.0.113.9:7777".parse().unwrap());
    });
}

#[test]
fn raw_sockets_for_the_four_protocols() {
    in_private_netns(|| {
        bring_lo_up();
        for p in [4u8, 41, 50, 135] {
            let v4 = RawSocket::open(false, p).unwrap();
            let v6 = RawSocket::open(true, p).unwrap();
            assert_eq!(v4.protocol(), p);
            drop(v6);
        }
        assert!(RawSocket::open(false, 17).is_err());
        // ESP over loopback: what is sent comes back with its IPv4 header.
        let s = RawSocket::open(false, 50).unwrap();
        let esp = [0u8, 0, 1, 0, 0, 0, 0, 1, 0xaa, 0xbb];
        s.send_to(&esp, "127.0.0.1".parse().unwrap()).unwrap();
        let mut buf = [0u8; 256];
        let (n, src) = s.recv_from(&mut buf).unwrap();
        assert_eq!(src, "127.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(buf[9], 50);
        assert_eq!(&buf[20..n], &esp);
    });
}

/// A TCP super-packet as an offloading TUN device hands it over: IPv4, partial checksum.
fn super_packet(payload: usize, mss: u16) -> (mipsec::io::tun::VnetHdr, Vec<u8>) {
    use mipsec::io::tun::{VnetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_TCPV4};
    use mipsec::wire::checksum;
    let total = 20 + 32 + payload;
    let mut p = vec![0u8; total];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    p[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
    p[6] = 0x40;
    p[8] = 64;
    p[9] = 6;
    p[12..16].copy_from_slice(&[203, 0, 113, 10]);
    p[16..20].copy_from_slice(&[192, 0, 2, 2]);
    let c = checksum::checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    let t = 20;
    p[t..t + 4].copy_from_slice(&[0x9c, 0x40, 0x13, 0x89]);
    p[t + 4..t + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes()); // wraps inside
    p[t + 8..t + 12].copy_from_slice(&7u32.to_be_bytes());
    p[t + 12] = 8 << 4; // 32-octet header: timestamps
    p[t + 13] = 0x18; // ACK | PSH
    p[t + 14..t + 16].copy_from_slice(&500u16.to_be_bytes());
    p[t + 20..t + 32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3]);
    for (i, b) in p[52..].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    let pseudo = checksum::pseudo_v4(
        &"203.0.113.10".parse().unwrap(),
        &"192.0.2.2".parse().unwrap(),
        6,
        (total - 20) as u16,
    );
    let partial = !checksum::finish(pseudo);
    p[t + 16..t + 18].copy_from_slice(&partial.to_be_bytes());
    let h = VnetHdr {
        flags: VNET_F_NEEDS_CSUM,
        gso_type: VNET_GSO_TCPV4,
        hdr_len: 52,
        gso_size: mss,
        csum_start: 20,
        csum_offset: 16,
    };
    (h, p)
}

#[test]
fn tso_segmentation_and_gro_coalescing_invert_each_other() {
    use mipsec::io::gso::{Coalescer, Segmenter};
    use mipsec::io::tun::VnetHdr;
    use mipsec::wire::checksum;
    let (h, orig) = super_packet(10_000, 1348);
    let mut pkt = orig.clone();
    let mut segs = Segmenter::new(&h, &mut pkt).unwrap();
    assert_eq!(segs.count(), 8); // 7 of 1348 and one of 564
    let mut out = Vec::new();
    let mut buf = [0u8; 2000];
    while let Some(n) = segs.next_into(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    assert_eq!(out.len(), 8);
    let mut seq = 0xffff_f000u32;
    for (k, s) in out.iter().enumerate() {
        // Complete, valid IPv4 and TCP checksums; lengths, IDs, sequence numbers, flags.
        assert_eq!(checksum::checksum(&s[..20]), 0, "ip checksum {k}");
        let src = "203.0.113.10".parse().unwrap();
        let dst = "192.0.2.2".parse().unwrap();
        assert_eq!(
            checksum::upper_v4(&src, &dst, 6, &s[20..]),
            0,
            "tcp checksum {k}"
        );
        assert_eq!(usize::from(u16::from_be_bytes([s[2], s[3]])), s.len());
        assert_eq!(u16::from_be_bytes([s[4], s[5]]), 0x1234 + k as u16);
        assert_eq!(u32::from_be_bytes([s[24], s[25], s[26], s[27]]), seq);
        assert_eq!(
            s[33],
            if k == 7 { 0x18 } else { 0x10 },
            "PSH only on the last"
        );
        seq = seq.wrapping_add((s.len() - 52) as u32);
    }
    // Coalescing the segments gives back one packet with the original payload and a GSO
    // header; the partial checksum it carries matches what the kernel expects.
    let mut c = Coalescer::new();
    for s in &out {
        assert!(c.push(s));
    }
    assert_eq!(c.count(), 8);
    let merged = c.take().to_vec();
    let mh = VnetHdr::parse(&merged).unwrap();
    assert_eq!(
        (
            mh.gso_type,
            mh.gso_size,
            mh.hdr_len,
            mh.csum_start,
            mh.csum_offset
        ),
        (1, 1348, 52, 20, 16)
    );
    let body = &merged[10..];
    assert_eq!(body.len(), orig.len());
    assert_eq!(&body[52..], &orig[52..], "payload");
    assert_eq!(
        &body[..20],
        &orig[..20],
        "IPv4 header as the sender built it"
    );
    assert_eq!(
        &body[20..52],
        &orig[20..52],
        "TCP header incl. partial checksum and PSH"
    );
    // A segment out of order, or of another flow, does not join.
    let mut c = Coalescer::new();
    assert!(c.push(&out[0]));
    assert!(!c.push(&out[2]));
    let mut other = out[1].clone();
    other[19] ^= 1;
    assert!(!c.push(&other));
    assert_eq!(c.take().len(), 10 + out[0].len());
    assert!(c.is_empty());
}
