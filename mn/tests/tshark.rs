//! An independent oracle: Wireshark's dissectors (tshark) read the Binding Updates this
//! engine builds, written to a raw-IP pcap. Needs the Debian package `tshark`; fails if it
//! is missing.

use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use mipsec::pcap::RawIpWriter;
use mn::{AddressEvent, HomeAgentConfig, Ipv4Home, MnConfig, MobileNode, Transmit};

fn engine(ipv4_home: Ipv4Home, force_udp: bool, seq: u16) -> MobileNode {
    let ha = HomeAgentConfig {
        ipv6: Some("2001:db8:1::1".parse().unwrap()),
        ipv4: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    };
    let mut c = MnConfig::new("2001:db8:1::100".parse().unwrap(), ha);
    c.ipv4_home = ipv4_home;
    c.force_udp = force_udp;
    MobileNode::new(c, seq).unwrap()
}

fn first_bu(mut mn: MobileNode, addr: &str) -> Transmit {
    let private = addr.starts_with("10.");
    mn.handle_address(
        Instant::now(),
        AddressEvent::Added {
            addr: addr.parse().unwrap(),
            private,
        },
    );
    mn.poll_transmit().unwrap()
}

#[test]
fn tshark_decodes_our_binding_updates() {
    let bus = [
        first_bu(
            engine(
                Ipv4Home::Static {
                    address: Ipv4Addr::new(192, 0, 2, 100),
                    prefix_len: 32,
                },
                false,
                11,
            ),
            "2001:db8:99::5",
        ),
        first_bu(engine(Ipv4Home::Dynamic, false, 12), "10.0.0.2"),
        first_bu(
            engine(Ipv4Home::Prefixes { lengths: vec![28] }, true, 13),
            "198.51.100.7",
        ),
    ];
    let path = std::env::temp_dir().join(format!("mn-tshark-{}.pcap", std::process::id()));
    let mut w = RawIpWriter::new(std::fs::File::create(&path).unwrap()).unwrap();
    let (mut out, mut scratch) = (Vec::new(), Vec::new());
    for (i, t) in bus.iter().enumerate() {
        let n = t.emit(&mut out, &mut scratch).unwrap();
        w.write(Duration::from_millis(i as u64), &out[..n]).unwrap();
    }
    drop(w);
    let fields = [
        "ipv6.src",
        "ipv6.opt.mipv6.home_address",
        "mip6.bu.seqnr",
        "mip6.bu.a_flag",
        "mip6.bu.h_flag",
        "mip6.bu.k_flag",
        "mip6.bu.f_flag",
        "mip6.bu.lifetime",
        "mip6.ipv4ha.preflen",
        "mip6.ipv4ha.p_flag",
        "mip6.ipv4ha.ha",
        "mip6.ipv4coa.addr",
        "udp.checksum.status",
        "ip.src",
    ];
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"]).arg(&path);
    cmd.args([
        "-d",
        "udp.port==4191,ipv6",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ]);
    cmd.args(["-T", "fields", "-E", "separator=|"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run tshark (install the Debian package tshark): {e}"));
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 3, "{text}");
    let flag = |s: &str| s == "1" || s.eq_ignore_ascii_case("true");
    // From an IPv6 care-of address: Home Address option, static IPv4 home address.
    let r = &rows[0];
    assert_eq!(
        (r[0], r[1], r[2]),
        ("2001:db8:99::5", "2001:db8:1::100", "11"),
        "{r:?}"
    );
    assert!(
        flag(r[3]) && flag(r[4]) && flag(r[5]) && !flag(r[6]),
        "A H K, no F: {r:?}"
    );
    assert_eq!(
        (r[7], r[8], r[9], r[10], r[11]),
        ("150", "32", "0", "192.0.2.100", ""),
        "{r:?}"
    );
    // From a private IPv4 care-of address: UDP/4191, home address as IPv6 source, 0.0.0.0.
    let r = &rows[1];
    assert_eq!((r[0], r[1], r[2]), ("2001:db8:1::100", "", "12"), "{r:?}");
    assert_eq!((r[8], r[10], r[11]), ("0", "0.0.0.0", "10.0.0.2"), "{r:?}");
    assert_eq!(
        (r[12], r[13]),
        ("1", "10.0.0.2"),
        "UDP checksum good (status 1): {r:?}"
    );
    // Prefix request with P, and F set.
    let r = &rows[2];
    assert!(flag(r[6]), "F: {r:?}");
    assert_eq!(
        (r[8], r[10], r[11]),
        ("28", "0.0.0.0", "198.51.100.7"),
        "{r:?}"
    );
    assert!(flag(r[9]), "P: {r:?}");
    // Nothing malformed anywhere.
    let v = Command::new("tshark")
        .args(["-n", "-V", "-d", "udp.port==4191,ipv6", "-r"])
        .arg(&path)
        .output()
        .unwrap();
    let verbose = String::from_utf8_lossy(&v.stdout);
    assert!(
        !verbose.contains("Malformed") && !verbose.contains("[incorrect"),
        "{verbose}"
    );
    assert!(
        verbose
            .matches("Mobility Header Type: Binding Update (5)")
            .count()
            == 3
    );
    let _ = std::fs::remove_file(&path);
}
