//! The `dsmip-spd` binary: exit codes, messages on stderr, renderings on stdout, and
//! `explain` on the RFC 5555 examples.

use std::path::PathBuf;
use std::process::{Command, Output};

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsmip-spd"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run dsmip-spd")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn check_exit_codes() {
    let ok = run(&[
        "check",
        "examples/mobile-node.toml",
        "examples/home-agent.toml",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok.stderr));
    assert!(
        text(&ok.stdout)
            .contains("examples/home-agent.toml: ok, 6 rules, 10 SPD entries, 0 warnings"),
        "{}",
        text(&ok.stdout)
    );

    let bad = std::env::temp_dir().join(format!("dsmip-spd-bad-{}.toml", std::process::id()));
    std::fs::write(&bad, "version = 1\nrole = \"home-agent\"\n[[rule]]\nname = \"x\"\nprotocol = \"MH\"\nlocal_mh_type = \"BUU\"\naction = \"bypass\"\n").unwrap();
    let out = run(&["check", bad.to_str().unwrap()]);
    std::fs::remove_file(&bad).ok();
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(":6:17: rule[0].local_mh_type: unknown MH type `BUU`"),
        "{err}"
    );

    let missing = run(&["check", "examples/no-such-file.toml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(text(&missing.stderr).contains("no-such-file.toml: cannot read"));
}

#[test]
fn check_for_a_backend_adds_its_warnings() {
    let out = run(&["check", "--for", "strongswan", "examples/home-agent.toml"]);
    assert_eq!(out.status.code(), Some(0));
    let err = text(&out.stderr);
    assert!(err.contains("examples/home-agent.toml:40:1: warning: rule[2] `bu`: strongSwan negotiates MH-type selectors"), "{err}");
}

#[test]
fn render_matches_the_golden_file() {
    for (backend, ext) in [
        ("native", "spd"),
        ("strongswan", "swanctl.conf"),
        ("linux-xfrm", "xfrm.sh"),
    ] {
        let out = run(&["render", "--for", backend, "examples/mobile-node.toml"]);
        assert_eq!(out.status.code(), Some(0));
        let golden = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join(format!("tests/golden/mobile-node.{ext}"));
        assert_eq!(
            text(&out.stdout),
            std::fs::read_to_string(golden).unwrap(),
            "{backend}"
        );
    }
}

#[test]
fn explain_a_binding_update_at_the_home_agent() {
    let out = run(&[
        "explain",
        "examples/home-agent.toml",
        "--packet",
        "dir=in src=2001:db8:1::101 dst=2001:db8:1::1 proto=MH mh-type=BU",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let s = text(&out.stdout);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(
        lines,
        [
            "  no     rule `ike` at examples/home-agent.toml:24:1: local address does not match",
            "  no     rule `ike-natt` at examples/home-agent.toml:31:1: local address does not match",
            "  no     rule `bu` at examples/home-agent.toml:40:1: remote address does not match",
            "  MATCH  rule `bu` at examples/home-agent.toml:40:1 (entry `bu/mn2`): PROTECT (ESP transport mode)",
        ]
    );
}

#[test]
fn explain_correspondent_traffic_at_the_mobile_node() {
    let out = run(&[
        "explain",
        "examples/mobile-node.toml",
        "--packet",
        "dir=out src=2001:db8:1::100 dst=2001:db8:99::7 proto=TCP sport=40000 dport=443",
    ]);
    let s = text(&out.stdout);
    assert!(
        s.contains(
            "no     rule `bu` at examples/mobile-node.toml:39:1: remote address does not match"
        ),
        "{s}"
    );
    assert!(
        s.contains(
            "no     rule `mpd` at examples/mobile-node.toml:52:1: remote address does not match"
        ),
        "{s}"
    );
    assert!(s.ends_with("MATCH  rule `data6` at examples/mobile-node.toml:66:1 (entry `data6/mn1`): PROTECT (ESP tunnel mode, peer 192.0.2.1, initiate as user_1@example.com)\n"), "{s}");
}

#[test]
fn explain_folds_the_other_mobile_nodes_and_reports_discard() {
    let out = run(&[
        "explain",
        "examples/enterprise-home-agent.toml",
        "--packet",
        "dir=out src=2001:db8:1::1 dst=2001:db8:1::1:5 proto=TCP sport=22 dport=5000",
    ]);
    let s = text(&out.stdout);
    // Node corp-6 (2001:db8:1::1:5) fails on the protocol; the 4,999 others on the address.
    assert!(s.contains("  no     rule `bu` at examples/enterprise-home-agent.toml:37:1 (5 entries): remote address does not match\n  no     rule `bu` at examples/enterprise-home-agent.toml:37:1: protocol does not match\n  no     rule `bu` at examples/enterprise-home-agent.toml:37:1 (4994 entries): remote address"), "{s}");
    assert!(s.contains("rule `data6` at examples/enterprise-home-agent.toml:61:1 (5000 entries): local address does not match"), "{s}");
    assert!(
        s.ends_with("no rule matches: DISCARD (RFC 4301 §5.1, §5.2)\n"),
        "{s}"
    );
    let bad = run(&[
        "explain",
        "examples/mobile-node.toml",
        "--packet",
        "src=::1 dst=::2 proto=UDP mh-type=BU",
    ]);
    assert_eq!(bad.status.code(), Some(2));
}
