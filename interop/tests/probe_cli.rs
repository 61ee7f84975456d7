//! dsmip-probe's command-line contract: exit status 0 / 1 / 2, JSON error objects with the
//! offset, one JSON object per packet, and what a malformed pcap does.

use std::process::{Command, Output};

use serde_json::Value;

fn probe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsmip-probe"))
        .args(args)
        .output()
        .expect("run dsmip-probe")
}

fn tmp(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dsmip-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

const BU: &[&str] = &[
    "encode",
    "bu",
    "--seq",
    "3",
    "--lifetime",
    "8",
    "--hoa",
    "2001:db8:1::100",
    "--ha",
    "2001:db8:1::1",
];

#[test]
fn usage_errors_exit_1_and_help_exits_0() {
    let out = probe(&["encode", "bu", "--seq", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lifetime"));
    let mut args = BU.to_vec();
    args.extend(["--outer-src", "10.1.0.2"]);
    assert_eq!(
        probe(&args).status.code(),
        Some(1),
        "--outer-src needs --outer-dst"
    );
    let mut args = BU.to_vec();
    args[5] = "9";
    let out = probe(&args);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("multiple of 4"));
    let out = probe(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Exit status"));
}

#[test]
fn malformed_hex_packet_exits_2_with_offset() {
    let good = String::from_utf8(probe(BU).stdout)
        .unwrap()
        .trim()
        .to_string();
    // Truncate inside the Mobility Header (IPv6 header is 40 octets, the MH 16).
    let cut = &good[..2 * 50];
    let out = probe(&["decode", "--hex", cut]);
    assert_eq!(out.status.code(), Some(2));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["error"]["field"], "ipv6.payload");
    assert_eq!(v["error"]["offset"], 40);
    // A well-formed packet decodes with status 0.
    let out = probe(&["decode", "--hex", &good]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["layers"][1]["sequence"], 3);
    assert!(v.get("error").is_none());
}

#[test]
fn pcap_with_a_bad_record_keeps_the_good_ones() {
    let pcap = tmp("two.pcap");
    let p = pcap.to_str().unwrap();
    let mut a = BU.to_vec();
    a.extend(["--pcap", p]);
    assert!(probe(&a).status.success());
    let mut bytes = std::fs::read(&pcap).unwrap();
    let one = bytes.len();
    // A second record header claiming 1000 octets with only 4 behind it.
    bytes.extend_from_within(24..32);
    bytes.extend_from_slice(&1000u32.to_ne_bytes());
    bytes.extend_from_slice(&1000u32.to_ne_bytes());
    bytes.extend_from_slice(&[0x60, 0, 0, 0]);
    std::fs::write(&pcap, &bytes).unwrap();
    let out = probe(&["decode", "--pcap", p]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "the first packet is still decoded"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("record 2 at byte {one}")),
        "{stderr}"
    );
}

#[test]
fn several_packets_one_json_object_each() {
    let hex1 = String::from_utf8(probe(BU).stdout).unwrap();
    let tunnel = probe(&[
        "encode",
        "tunnel",
        "--inner-hex",
        hex1.trim(),
        "--outer-src",
        "192.0.2.1",
        "--outer-dst",
        "198.51.100.2",
        "--udp",
        "4191:50000",
    ]);
    assert!(tunnel.status.success());
    let t = String::from_utf8(tunnel.stdout).unwrap();
    let out = probe(&["decode", "--hex", t.trim()]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let layers: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["layer"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["ipv4", "udp", "ipv6", "mobility_header"]);
    assert_eq!(v["layers"][1]["destination_port"], 50000);
}
