//! The strongSwan renderings of the RFC 5555 §5.2 example policies load into a real
//! charon: `swanctl --load-conns` reports no failure and `--list-conns` shows every
//! connection and child with the traffic selectors we wrote.
//!
//! The swanctl.conf texts are `spd-policies`' golden files, which its own tests keep equal
//! to `dsmip-spd render --for strongswan` of `spd-policies/examples/*.toml`. Needs root and
//! strongSwan (strongswan-charon, strongswan-swanctl, libcharon-extra-plugins); without
//! them the test fails, it does not skip.

use interop::lab::{Charon, Lab};

fn golden(name: &str) -> String {
    let path = format!(
        "{}/../spd-policies/tests/golden/{name}.swanctl.conf",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Section names of the top-level connections in a rendering.
fn connections(conf: &str) -> Vec<String> {
    conf.lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("     ") && l.ends_with(" {"))
        .map(|l| l.trim().trim_end_matches(" {").to_string())
        .collect()
}

fn load_and_list(tag: &str, name: &str, children: &[&str], selectors: &[&str]) {
    let conf = golden(name);
    let conns = connections(&conf);
    assert!(
        conns.len() >= 2,
        "{name}: expected connections in the rendering"
    );
    let mut lab = Lab::new(tag).expect("lab");
    let ns = lab.ns("node").unwrap();
    let peer = lab.ns("peer").unwrap();
    lab.veth(
        &ns,
        "eth0",
        &["192.0.2.1/24", "2001:db8:1::1/64"],
        &peer,
        "eth0",
        &["192.0.2.2/24"],
    )
    .unwrap();
    // Charon::start already runs `swanctl --load-all` and fails on any error.
    let charon = Charon::start(&mut lab, &ns, &conf).expect("charon loads the rendering");
    let file = charon.conf_path();
    let out = charon
        .swanctl(&lab, &["--load-conns", "--file", file.to_str().unwrap()])
        .expect("swanctl --load-conns");
    // A second load of the same text: every connection is loaded again, none fails.
    let want = format!("successfully loaded {} connections", conns.len());
    assert!(
        out.contains(&want) && !out.contains("failed"),
        "{name}: {out}\ncharon log:\n{}",
        charon.log()
    );
    for c in &conns {
        assert!(
            out.contains(&format!("loaded connection '{c}'")),
            "{name}: {out}"
        );
    }
    let listed = charon
        .swanctl(&lab, &["--list-conns"])
        .expect("--list-conns");
    for c in &conns {
        assert!(
            listed.contains(&format!("{c}: ")),
            "{name}: connection {c} missing:\n{listed}"
        );
    }
    for ch in children {
        assert!(
            listed.contains(&format!("  {ch}: ")),
            "{name}: child {ch} missing:\n{listed}"
        );
    }
    for sel in selectors {
        assert!(
            listed.contains(sel),
            "{name}: selector `{sel}` missing:\n{listed}"
        );
    }
}

#[test]
fn mobile_node_rendering_loads_into_charon() {
    load_and_list(
        "spdmn",
        "mobile-node",
        &["bu", "mpd", "data6", "data4", "ike", "ike-natt"],
        // charon reads the ICMPv6 "port" as type 146 with any code (RFC 4301 §4.4.1.1's
        // encoding), keeps the MH type in the high byte, and the `!= home_agent` ranges.
        &[
            "bu: TRANSPORT",
            "2001:db8:1::100/128[mobility-header/1280-1535]",
            "2001:db8:1::1/128[mobility-header/1536-1791]",
            "2001:db8:1::100/128[ipv6-icmp/146-146(255)]",
            "data6: TUNNEL",
            "::..2001:db8:1:: 2001:db8:1::2..ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "0.0.0.0..192.0.2.0 192.0.2.2..255.255.255.255",
            "ike: PASS",
            "192.0.2.1/32[udp/isakmp]",
            "id: user_1@example.com",
        ],
    );
}

#[test]
fn home_agent_rendering_loads_into_charon() {
    load_and_list(
        "spdha",
        "home-agent",
        &["bu", "mpd", "data6", "data4", "ike", "ike-natt"],
        &[
            "2001:db8:1::1/128[mobility-header/1536-1791]",
            "2001:db8:1::101/128[mobility-header/1280-1535]",
            "2001:db8:1::1/128[ipv6-icmp/147-147(255)]",
            "198.51.100.11/32",
            "id: user_2@example.com",
            "ike: PASS",
        ],
    );
}
