//! Wireshark as an independent oracle: `dsmip-probe` writes pcaps, `tshark` dissects them,
//! and every field Wireshark decodes must hold the value that was put in. tshark does not
//! verify the Mobility Header checksum, so this test recomputes it from the bytes tshark
//! extracted, with its own checksum code (not mipsec's).
//!
//! Needs the Debian package `tshark` (the README's test command installs it); without it
//! the test fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn probe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dsmip-probe"))
        .args(args)
        .output()
        .expect("run dsmip-probe")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dsmip-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Write a pcap with `dsmip-probe encode ...` and return tshark's JSON for its one packet.
fn dissect(name: &str, args: &[&str]) -> Value {
    let pcap = tmp(name);
    let mut all: Vec<&str> = args.to_vec();
    let p = pcap.to_str().unwrap();
    all.extend(["--pcap", p]);
    let out = probe(&all);
    assert!(
        out.status.success(),
        "dsmip-probe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tshark(&pcap)
}

fn tshark(pcap: &Path) -> Value {
    tshark_as(pcap, "ipv6")
}

/// tshark's JSON for the one packet of `pcap`, decoding UDP 4191's payload as `inner`
/// (`ipv6` or `ip`: Wireshark has no dissector that reads the version nibble there).
fn tshark_as(pcap: &Path, inner: &str) -> Value {
    let decode_as = format!("udp.port==4191,{inner}");
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-d",
            &decode_as,
            "-T",
            "json",
            // Two layers of one kind (IPv4 in IPv4) or repeated fields become arrays, in
            // packet order, instead of keys that a JSON parser would collapse.
            "--no-duplicate-keys",
            "-x",
        ])
        .output()
        .expect(
            "tshark is not installed: apt-get install tshark (the README's test command does this)",
        );
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("tshark JSON");
    v[0]["_source"]["layers"].clone()
}

/// The first value under `key` anywhere below `v`.
fn find<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    match v {
        Value::Object(m) => m.get(key).or_else(|| m.values().find_map(|x| find(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find(x, key)),
        _ => None,
    }
}

/// The string value of `key` (the first one, outermost, when tshark shows several).
fn field(v: &Value, key: &str) -> String {
    match find(v, key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.first().is_some_and(Value::is_string) => {
            a[0].as_str().unwrap().to_string()
        }
        other => panic!("tshark has no field {key}: {other:?}\n{v:#}"),
    }
}

/// `field` inside the subtree `tree` (one option's decode).
fn opt(v: &Value, tree: &str, key: &str) -> String {
    field(
        find(v, tree).unwrap_or_else(|| panic!("tshark shows no {tree}")),
        key,
    )
}

/// The Internet checksum, written here independently of mipsec.
fn inet_sum(chunks: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = chunks.concat();
    let mut acc: u64 = 0;
    for pair in bytes.chunks(2) {
        let hi = u64::from(pair[0]) << 8;
        let lo = pair.get(1).copied().map(u64::from).unwrap_or(0);
        acc += hi | lo;
    }
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Recompute the Mobility Header checksum from the bytes tshark extracted, over the IPv6
/// pseudo-header (RFC 6275 §6.1.1, RFC 8200 §8.1).
fn check_mh_checksum(layers: &Value) {
    let raw = find(layers, "mipv6_raw").expect("mipv6_raw")[0]
        .as_str()
        .unwrap();
    let mh = hex::decode(raw).unwrap();
    let src: std::net::Ipv6Addr = field(layers, "ipv6.src").parse().unwrap();
    let dst: std::net::Ipv6Addr = field(layers, "ipv6.dst").parse().unwrap();
    let len = (mh.len() as u32).to_be_bytes();
    let zero_next = [0u8, 0, 0, 135];
    assert_eq!(
        inet_sum(&[&src.octets(), &dst.octets(), &len, &zero_next, &mh]),
        0,
        "MH checksum does not verify"
    );
    assert_eq!(mh.len() % 8, 0, "MH length is a multiple of 8");
}

#[test]
fn bu_in_udp_with_dynamic_ipv4_hoa() {
    let l = dissect(
        "bu-dyn.pcap",
        &[
            "encode",
            "bu",
            "--seq",
            "7",
            "--lifetime",
            "400",
            "--ack",
            "--home",
            "--key-mgmt",
            "--force-udp",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-hoa",
            "0.0.0.0/32",
            "--ipv4-coa",
            "10.1.0.2",
            "--outer-src",
            "10.1.0.2",
            "--outer-dst",
            "192.0.2.1",
            "--sport",
            "4191",
        ],
    );
    assert_eq!(field(&l, "ip.src"), "10.1.0.2");
    assert_eq!(field(&l, "ip.dst"), "192.0.2.1");
    assert_eq!(field(&l, "udp.srcport"), "4191");
    assert_eq!(field(&l, "udp.dstport"), "4191");
    assert_eq!(field(&l, "ipv6.src"), "2001:db8:1::100");
    assert_eq!(field(&l, "ipv6.dst"), "2001:db8:1::1");
    assert_eq!(field(&l, "mip6.proto"), "59");
    assert_eq!(field(&l, "mip6.mhtype"), "5");
    assert_eq!(field(&l, "mip6.bu.seqnr"), "7");
    assert_eq!(field(&l, "mip6.bu.lifetime"), "100");
    for (f, want) in [
        ("a", "1"),
        ("h", "1"),
        ("l", "0"),
        ("k", "1"),
        ("m", "0"),
        ("p", "0"),
        ("f", "1"),
        ("t", "0"),
    ] {
        assert_eq!(field(&l, &format!("mip6.bu.{f}_flag")), want, "flag {f}");
    }
    assert_eq!(field(&l, "mip6.nemo.bu.r_flag"), "0");
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.preflen"),
        "32"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.p_flag"),
        "0"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.ha"),
        "0.0.0.0"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4coa_tree", "mip6.ipv4coa.addr"),
        "10.1.0.2"
    );
    check_mh_checksum(&l);
}

#[test]
fn bu_prefix_request_from_mobile_router() {
    let l = dissect(
        "bu-prefix.pcap",
        &[
            "encode",
            "bu",
            "--seq",
            "65535",
            "--lifetime",
            "262140",
            "--home",
            "--router",
            "--hoa",
            "2001:db8:1::200",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-hoa",
            "192.0.2.0/24",
            "--prefix-request",
            "--ipv4-coa",
            "203.0.113.9",
            "--outer-src",
            "203.0.113.9",
            "--outer-dst",
            "198.51.100.1",
            "--sport",
            "61000",
        ],
    );
    assert_eq!(field(&l, "udp.srcport"), "61000");
    assert_eq!(field(&l, "mip6.bu.seqnr"), "65535");
    assert_eq!(field(&l, "mip6.bu.lifetime"), "65535");
    assert_eq!(field(&l, "mip6.nemo.bu.r_flag"), "1");
    assert_eq!(field(&l, "mip6.bu.a_flag"), "0");
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.preflen"),
        "24"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.p_flag"),
        "1"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4ha_tree", "mip6.ipv4ha.ha"),
        "192.0.2.0"
    );
    check_mh_checksum(&l);
}

#[test]
fn bare_ipv6_bu() {
    let l = dissect(
        "bu-v6.pcap",
        &[
            "encode",
            "bu",
            "--seq",
            "1",
            "--lifetime",
            "0",
            "--ack",
            "--home",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
        ],
    );
    assert!(find(&l, "ip").is_none(), "no IPv4 layer expected");
    assert_eq!(field(&l, "ipv6.nxt"), "135");
    assert_eq!(field(&l, "mip6.bu.lifetime"), "0");
    assert_eq!(field(&l, "mip6.hlen"), "1");
    check_mh_checksum(&l);
}

#[test]
fn ba_with_ipv4_ack_and_nat_detection() {
    let l = dissect(
        "ba-nat.pcap",
        &[
            "encode",
            "ba",
            "--seq",
            "7",
            "--lifetime",
            "400",
            "--status",
            "0",
            "--key-mgmt",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-ack-status",
            "0",
            "--ipv4-hoa",
            "192.0.2.77/32",
            "--nat-detection",
            "110",
            "--outer-src",
            "192.0.2.1",
            "--outer-dst",
            "198.51.100.2",
            "--dport",
            "40000",
        ],
    );
    assert_eq!(field(&l, "udp.srcport"), "4191");
    assert_eq!(field(&l, "udp.dstport"), "40000");
    assert_eq!(field(&l, "ipv6.src"), "2001:db8:1::1");
    assert_eq!(field(&l, "ipv6.dst"), "2001:db8:1::100");
    assert_eq!(field(&l, "mip6.mhtype"), "6");
    assert_eq!(field(&l, "mip6.ba.status"), "0");
    assert_eq!(field(&l, "mip6.ba.k_flag"), "1");
    assert_eq!(field(&l, "mip6.ba.p_flag"), "0");
    assert_eq!(field(&l, "mip6.ba.seqnr"), "7");
    assert_eq!(field(&l, "mip6.ba.lifetime"), "100");
    assert_eq!(opt(&l, "mip6.options.ipv4aa_tree", "mip6.ipv4aa.sts"), "0");
    // Wireshark 4.0 shows the acknowledgement's prefix length and address under ipv4ha names.
    assert_eq!(
        opt(&l, "mip6.options.ipv4aa_tree", "mip6.ipv4ha.preflen"),
        "32"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4aa_tree", "mip6.ipv4ha.ha"),
        "192.0.2.77"
    );
    assert_eq!(opt(&l, "mip6.options.natd_tree", "mip6.natd.f_flag"), "0");
    assert_eq!(
        opt(&l, "mip6.options.natd_tree", "mip6.natd.refresh_t"),
        "110"
    );
    check_mh_checksum(&l);
}

#[test]
fn ba_refusing_forced_udp_and_dynamic_address() {
    let l = dissect(
        "ba-144.pcap",
        &[
            "encode",
            "ba",
            "--seq",
            "300",
            "--lifetime",
            "0",
            "--status",
            "144",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-ack-status",
            "132",
            "--ipv4-hoa",
            "0.0.0.0/0",
            "--force-udp",
            "--outer-src",
            "192.0.2.1",
            "--outer-dst",
            "203.0.113.9",
            "--dport",
            "4191",
        ],
    );
    assert_eq!(field(&l, "mip6.ba.status"), "144");
    assert_eq!(field(&l, "mip6.ba.k_flag"), "0");
    assert_eq!(field(&l, "mip6.ba.seqnr"), "300");
    assert_eq!(
        opt(&l, "mip6.options.ipv4aa_tree", "mip6.ipv4aa.sts"),
        "132"
    );
    assert_eq!(
        opt(&l, "mip6.options.ipv4aa_tree", "mip6.ipv4ha.ha"),
        "0.0.0.0"
    );
    assert_eq!(opt(&l, "mip6.options.natd_tree", "mip6.natd.f_flag"), "1");
    assert_eq!(
        opt(&l, "mip6.options.natd_tree", "mip6.natd.refresh_t"),
        "4294967295"
    );
    check_mh_checksum(&l);
}

#[test]
fn wireshark_validates_ipv4_and_udp_checksums() {
    let pcap = tmp("ck.pcap");
    let out = probe(&[
        "encode",
        "bu",
        "--seq",
        "2",
        "--lifetime",
        "8",
        "--hoa",
        "2001:db8:1::100",
        "--ha",
        "2001:db8:1::1",
        "--ipv4-coa",
        "10.1.0.2",
        "--outer-src",
        "10.1.0.2",
        "--outer-dst",
        "192.0.2.1",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let out = Command::new("tshark")
        .args([
            "-r",
            pcap.to_str().unwrap(),
            "-d",
            "udp.port==4191,ipv6",
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.checksum.status",
            "-e",
            "udp.checksum.status",
        ])
        .output()
        .expect("tshark");
    // Status 1 is "Good" in Wireshark's checksum status enumeration.
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1\t1");
}

#[test]
fn probe_decode_agrees_with_tshark_on_a_pcap() {
    let pcap = tmp("both.pcap");
    let out = probe(&[
        "encode",
        "ba",
        "--seq",
        "9",
        "--lifetime",
        "1200",
        "--status",
        "0",
        "--hoa",
        "2001:db8:1::100",
        "--ha",
        "2001:db8:1::1",
        "--nat-detection",
        "25",
        "--outer-src",
        "192.0.2.1",
        "--outer-dst",
        "198.51.100.2",
        "--dport",
        "1024",
        "--pcap",
        pcap.to_str().unwrap(),
    ]);
    assert!(out.status.success());
    let ours = probe(&["decode", "--pcap", pcap.to_str().unwrap()]);
    assert!(ours.status.success());
    let ours: Value = serde_json::from_slice(&ours.stdout).unwrap();
    let theirs = tshark(&pcap);
    let mh = &ours["layers"][3];
    assert_eq!(mh["sequence"].to_string(), field(&theirs, "mip6.ba.seqnr"));
    assert_eq!(
        mh["lifetime"].to_string(),
        field(&theirs, "mip6.ba.lifetime")
    );
    assert_eq!(
        mh["checksum"].as_str().unwrap(),
        field(&theirs, "mip6.csum")
    );
    assert_eq!(
        mh["options"][0]["refresh_time"].to_string(),
        field(&theirs, "mip6.natd.refresh_t")
    );
    assert_eq!(
        ours["layers"][1]["destination_port"].to_string(),
        field(&theirs, "udp.dstport")
    );
}

/// The first octet of an option's bytes as tshark shows them (`1d:06:...`): its type code.
fn opt_type(v: &Value, key: &str) -> u8 {
    let raw = field(v, key);
    u8::from_str_radix(&raw[..2], 16).unwrap()
}

fn encode_hex(args: &[&str]) -> String {
    let out = probe(args);
    assert!(
        out.status.success(),
        "dsmip-probe {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn option_type_codes_and_lengths_are_iana() {
    let l = dissect(
        "codes-bu.pcap",
        &[
            "encode",
            "bu",
            "--seq",
            "1",
            "--lifetime",
            "8",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-hoa",
            "192.0.2.100/32",
            "--ipv4-coa",
            "10.1.0.2",
            "--outer-src",
            "10.1.0.2",
            "--outer-dst",
            "192.0.2.1",
        ],
    );
    assert_eq!(opt_type(&l, "mip6.options.ipv4ha"), 29);
    assert_eq!(opt_type(&l, "mip6.options.ipv4coa"), 32);
    // IPv4 (20) + UDP (8) + IPv6 (40) + MH (32).
    assert_eq!(field(&l, "udp.length"), "80");
    assert_eq!(field(&l, "ipv6.plen"), "32");
    assert_eq!(field(&l, "mip6.hlen"), "3");
    check_mh_checksum(&l);
    let l = dissect(
        "codes-ba.pcap",
        &[
            "encode",
            "ba",
            "--seq",
            "1",
            "--lifetime",
            "8",
            "--status",
            "0",
            "--hoa",
            "2001:db8:1::100",
            "--ha",
            "2001:db8:1::1",
            "--ipv4-ack-status",
            "0",
            "--ipv4-hoa",
            "192.0.2.100/32",
            "--nat-detection",
            "110",
        ],
    );
    assert_eq!(opt_type(&l, "mip6.options.ipv4aa"), 30);
    assert_eq!(opt_type(&l, "mip6.options.natd"), 31);
    check_mh_checksum(&l);
}

#[test]
fn return_routability_and_binding_error_messages() {
    let v6 = ["--src", "2001:db8:10::2", "--dst", "2001:db8:1::1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [extra, &v6[..]].concat() };
    let l = dissect(
        "hoti.pcap",
        &with(&["encode", "hoti", "--cookie", "0102030405060708"]),
    );
    assert_eq!(field(&l, "mip6.mhtype"), "1");
    assert_eq!(field(&l, "mip6.hoti.cookie"), "0x0102030405060708");
    check_mh_checksum(&l);
    let l = dissect(
        "coti.pcap",
        &with(&["encode", "coti", "--cookie", "a1a2a3a4a5a6a7a8"]),
    );
    assert_eq!(field(&l, "mip6.mhtype"), "2");
    assert_eq!(field(&l, "mip6.coti.cookie"), "0xa1a2a3a4a5a6a7a8");
    check_mh_checksum(&l);
    let l = dissect(
        "hot.pcap",
        &with(&[
            "encode",
            "hot",
            "--nonce-index",
            "4660",
            "--cookie",
            "0102030405060708",
            "--token",
            "1112131415161718",
        ]),
    );
    assert_eq!(field(&l, "mip6.mhtype"), "3");
    assert_eq!(field(&l, "mip6.hot.nindex"), "4660");
    assert_eq!(field(&l, "mip6.hot.cookie"), "0x0102030405060708");
    assert_eq!(field(&l, "mip6.hot.token"), "0x1112131415161718");
    check_mh_checksum(&l);
    let l = dissect(
        "cot.pcap",
        &with(&[
            "encode",
            "cot",
            "--nonce-index",
            "7",
            "--cookie",
            "0102030405060708",
            "--token",
            "1112131415161718",
        ]),
    );
    assert_eq!(field(&l, "mip6.mhtype"), "4");
    assert_eq!(field(&l, "mip6.cot.nindex"), "7");
    check_mh_checksum(&l);
    let l = dissect("brr.pcap", &with(&["encode", "brr"]));
    assert_eq!(field(&l, "mip6.mhtype"), "0");
    assert_eq!(field(&l, "mip6.hlen"), "0");
    check_mh_checksum(&l);
    let l = dissect(
        "be.pcap",
        &with(&["encode", "be", "--status", "2", "--hoa", "2001:db8:1::100"]),
    );
    assert_eq!(field(&l, "mip6.mhtype"), "7");
    assert_eq!(field(&l, "mip6.be.status"), "2");
    assert_eq!(field(&l, "mip6.be.haddr"), "2001:db8:1::100");
    check_mh_checksum(&l);
}

/// The pseudo-header with a Home Address option and a type 2 routing header uses the home
/// address (RFC 6275 §6.1.1); the independent checksum check is given that address.
fn check_mh_checksum_with(layers: &Value, src: &str, dst: &str) {
    let raw = find(layers, "mipv6_raw").expect("mipv6_raw")[0]
        .as_str()
        .unwrap();
    let mh = hex::decode(raw).unwrap();
    let src: std::net::Ipv6Addr = src.parse().unwrap();
    let dst: std::net::Ipv6Addr = dst.parse().unwrap();
    let len = (mh.len() as u32).to_be_bytes();
    assert_eq!(
        inet_sum(&[&src.octets(), &dst.octets(), &len, &[0, 0, 0, 135], &mh]),
        0
    );
}

#[test]
fn home_address_option_and_type2_routing_header() {
    let l = dissect(
        "hao.pcap",
        &[
            "encode",
            "be",
            "--status",
            "1",
            "--hoa",
            "2001:db8:1::100",
            "--src",
            "2001:db8:10::2",
            "--dst",
            "2001:db8:1::1",
            "--hao",
            "2001:db8:1::100",
        ],
    );
    assert_eq!(field(&l, "ipv6.nxt"), "60");
    assert_eq!(field(&l, "ipv6.opt.mipv6.home_address"), "2001:db8:1::100");
    check_mh_checksum_with(&l, "2001:db8:1::100", "2001:db8:1::1");
    let l = dissect(
        "rh2.pcap",
        &[
            "encode",
            "brr",
            "--src",
            "2001:db8:1::1",
            "--dst",
            "2001:db8:10::2",
            "--rh2",
            "2001:db8:1::100",
        ],
    );
    assert_eq!(field(&l, "ipv6.nxt"), "43");
    assert_eq!(field(&l, "ipv6.routing.type"), "2");
    assert_eq!(field(&l, "ipv6.routing.segleft"), "1");
    assert_eq!(field(&l, "ipv6.routing.len"), "2");
    assert_eq!(
        field(&l, "ipv6.routing.mipv6.home_address"),
        "2001:db8:1::100"
    );
    check_mh_checksum_with(&l, "2001:db8:1::1", "2001:db8:1::100");
}

#[test]
fn icmpv6_discovery_and_prefix_messages() {
    let v6 = ["--src", "2001:db8:10::2", "--dst", "2001:db8:1::1"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> { [extra, &v6[..]].concat() };
    let l = dissect(
        "haad-req.pcap",
        &with(&["encode", "haad-request", "--id", "4242"]),
    );
    assert_eq!(field(&l, "icmpv6.type"), "144");
    assert_eq!(field(&l, "icmpv6.mip6.identifier"), "4242");
    assert_eq!(field(&l, "icmpv6.checksum.status"), "1");
    let l = dissect(
        "haad-rep.pcap",
        &with(&[
            "encode",
            "haad-reply",
            "--id",
            "4242",
            "--home-agent",
            "2001:db8:1::1",
            "--home-agent",
            "2001:db8:1::2",
        ]),
    );
    assert_eq!(field(&l, "icmpv6.type"), "145");
    assert_eq!(
        find(&l, "icmpv6.mip6.home_agent_address").unwrap(),
        &serde_json::json!(["2001:db8:1::1", "2001:db8:1::2"])
    );
    assert_eq!(field(&l, "icmpv6.checksum.status"), "1");
    let l = dissect("mps.pcap", &with(&["encode", "mps", "--id", "9"]));
    assert_eq!(field(&l, "icmpv6.type"), "146");
    assert_eq!(field(&l, "icmpv6.mip6.identifier"), "9");
    assert_eq!(field(&l, "icmpv6.checksum.status"), "1");
    // A Mobile Prefix Advertisement to a node away from home, with the R flag.
    let l = dissect(
        "mpa.pcap",
        &[
            "encode",
            "mpa",
            "--id",
            "9",
            "--managed",
            "--prefix",
            "2001:db8:1::1/64,7200,3600",
            "--router-address",
            "--src",
            "2001:db8:1::1",
            "--dst",
            "2001:db8:10::2",
            "--rh2",
            "2001:db8:1::100",
        ],
    );
    assert_eq!(field(&l, "icmpv6.type"), "147");
    assert_eq!(field(&l, "icmpv6.mip6.flag.m"), "1");
    assert_eq!(field(&l, "icmpv6.mip6.flag.o"), "0");
    assert_eq!(field(&l, "icmpv6.opt.prefix.length"), "64");
    assert_eq!(field(&l, "icmpv6.opt.prefix.flag.r"), "1");
    assert_eq!(field(&l, "icmpv6.opt.prefix.valid_lifetime"), "7200");
    assert_eq!(field(&l, "icmpv6.opt.prefix.preferred_lifetime"), "3600");
    assert_eq!(field(&l, "icmpv6.opt.prefix"), "2001:db8:1::1");
    // Wireshark takes the routing header's home address for the pseudo-header too.
    assert_eq!(field(&l, "icmpv6.checksum.status"), "1");
}

#[test]
fn every_tunnel_format_of_rfc5555_4_1() {
    let v6 = encode_hex(&[
        "encode",
        "brr",
        "--src",
        "2001:db8:1::1",
        "--dst",
        "2001:db8:1::100",
    ]);
    // An IPv4 inner packet (ICMP echo header only, checksum irrelevant here), DSCP 46, ECT(0), DF.
    let v4 = "45ba001c0000400040010000c6336405c0000264080000000000000";
    let v4 = {
        // Fill in the header checksum with our own independent code.
        let mut b = hex::decode(format!("{v4}0")).unwrap();
        let c = inet_sum(&[&b[..20]]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        hex::encode(b)
    };
    // (name, inner packet, outer source, UDP ports, tshark field, its expected value)
    type Case<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, &'a str, &'a str);
    let cases: [Case; 6] = [
        ("6in4", &v6, "192.0.2.1", None, "ip.proto", "41"),
        ("4in4", &v4, "192.0.2.1", None, "ip.proto", "4"),
        ("4in6", &v4, "2001:db8:1::1", None, "ipv6.nxt", "4"),
        ("6in6", &v6, "2001:db8:1::1", None, "ipv6.nxt", "41"),
        (
            "6inudp",
            &v6,
            "192.0.2.1",
            Some("4191:4191"),
            "udp.dstport",
            "4191",
        ),
        (
            "4inudp",
            &v4,
            "192.0.2.1",
            Some("4191:4191"),
            "udp.dstport",
            "4191",
        ),
    ];
    for (name, inner, src, udp, key, want) in cases {
        let dst = if src.contains(':') {
            "2001:db8:10::2"
        } else {
            "203.0.113.9"
        };
        let pcap = tmp(&format!("tun-{name}.pcap"));
        let mut args = vec![
            "encode",
            "tunnel",
            "--inner-hex",
            inner,
            "--outer-src",
            src,
            "--outer-dst",
            dst,
            "--ttl",
            "33",
            "--pcap",
            pcap.to_str().unwrap(),
        ];
        if let Some(p) = udp {
            args.extend(["--udp", p]);
        }
        let out = probe(&args);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let inner_is_v4 = inner.starts_with('4');
        let l = tshark_as(&pcap, if inner_is_v4 { "ip" } else { "ipv6" });
        assert_eq!(field(&l, key), want, "{name}");
        // Outer first in tshark's layer order; the inner header's fields come second.
        let outer_ttl = if src.contains(':') {
            field(&l, "ipv6.hlim")
        } else {
            field(&l, "ip.ttl")
        };
        assert_eq!(outer_ttl, "33", "{name}: outer TTL / hop limit");
        if inner_is_v4 {
            // RFC 6040 normal mode and RFC 2983: DSCP 46 and ECT(0) copied to the outer header.
            let outer_ds = if src.contains(':') {
                field(&l, "ipv6.tclass")
            } else {
                field(&l, "ip.dsfield")
            };
            assert_eq!(
                u32::from_str_radix(outer_ds.trim_start_matches("0x"), 16).unwrap(),
                0xba,
                "{name}: outer DSCP/ECN"
            );
            if !src.contains(':') {
                assert_eq!(
                    field(&l, "ip.flags.df"),
                    "1",
                    "{name}: DF copied (RFC 2003 §3.1)"
                );
            }
        } else {
            assert_eq!(field(&l, "mip6.mhtype"), "0", "{name}: inner MH reached");
        }
        if udp.is_some() {
            assert_eq!(field(&l, "udp.srcport"), "4191");
        }
    }
}
