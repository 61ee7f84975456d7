//! Golden files for each renderer, the native rendering read back by `mipsec` equal to
//! what the daemons build, and the checker's shadow / overlap warnings.
//! `UPDATE_GOLDEN=1 cargo test -p spd-policies` rewrites the golden files.

use std::path::PathBuf;

use spd_policies::{check::check, load, render::render, Backend};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn example(name: &str) -> (spd_policies::Policy, spd_policies::Compiled) {
    let rel = format!("examples/{name}.toml");
    let text = std::fs::read_to_string(dir().join(&rel)).unwrap();
    load(&rel, &text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn golden(file: &str, actual: &str) {
    let path = dir().join("tests/golden").join(file);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        want == actual,
        "{file} differs from its golden file; rerun with UPDATE_GOLDEN=1 and review the diff"
    );
}

fn render_all(name: &str) {
    let (p, c) = example(name);
    for (backend, ext) in [
        (Backend::Native, "spd"),
        (Backend::StrongSwan, "swanctl.conf"),
        (Backend::LinuxXfrm, "xfrm.sh"),
    ] {
        let (text, warnings) = render(&p, &c, backend);
        golden(&format!("{name}.{ext}"), &text);
        let w: String = warnings.iter().map(|w| format!("{w}\n")).collect();
        golden(&format!("{name}.{ext}.warnings"), &w);
    }
}

#[test]
fn golden_mobile_node() {
    render_all("mobile-node");
}

#[test]
fn golden_home_agent() {
    render_all("home-agent");
}

#[test]
fn native_rendering_is_what_the_daemons_load() {
    for name in ["mobile-node", "home-agent", "enterprise-home-agent"] {
        let (p, c) = example(name);
        let (text, _) = render(&p, &c, Backend::Native);
        let back = mipsec::spd::parse_native(&text).unwrap();
        assert_eq!(back, c.spd, "{name}");
    }
}

#[test]
fn examples_check_clean() {
    for name in ["mobile-node", "home-agent", "enterprise-home-agent"] {
        let (p, c) = example(name);
        assert_eq!(check(&p, &c), vec![], "{name}");
    }
    let (_, c) = example("enterprise-home-agent");
    assert_eq!(c.spd.len(), 2 + 4 * 5000);
}

#[test]
fn warnings_for_shadowed_and_overlapping_rules() {
    let text = r#"version = 1
role = "home-agent"
home_agent = "2001:db8:1::1"

[[mobile_node]]
name = "a"
home_address = "2001:db8:1::100"

[[mobile_node]]
name = "b"
home_address = "2001:db8:1::101"

[[rule]]
name = "all-mh"
protocol = "MH"
action = "bypass"

[[rule]]
name = "bu"
local = "home_agent"
remote = "home_address"
protocol = "MH"
local_mh_type = "BAck"
remote_mh_type = "BU"
action = "bypass"

[[rule]]
name = "web"
local = "home_agent"
protocol = "TCP"
local_port = 443
action = "discard"

[[rule]]
name = "to-node"
remote = "home_address"
action = "protect"
mode = "tunnel"
"#;
    let (p, c) = load("w.toml", text).unwrap();
    let w = check(&p, &c);
    let lines: Vec<String> = w.iter().map(|w| w.to_string()).collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[0].starts_with("w.toml:18:1: warning: rule[1] `bu`: rule `bu` can never match: rule `all-mh` at line 13"), "{}", lines[0]);
    assert!(lines[0].ends_with("(for 2 mobile nodes)"), "{}", lines[0]);
    assert!(
        lines[1].starts_with(
            "w.toml:34:1: warning: rule[3] `to-node`: rule `to-node` overlaps rule `all-mh`"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("overlaps rule `web` at line 27"),
        "{}",
        lines[2]
    );
}

#[test]
fn backend_warnings_name_what_cannot_be_expressed() {
    let text = r#"version = 1
role = "mobile-node"

[[rule]]
name = "ports"
direction = "out"
protocol = "TCP"
local_port = "1000-2000"
action = "bypass"
"#;
    let (p, c) = load("b.toml", text).unwrap();
    let (_, ws) = render(&p, &c, Backend::StrongSwan);
    assert!(
        ws.iter()
            .any(|w| w.message.contains("both directions") && w.at.line == 4),
        "{ws:?}"
    );
    let (out, wx) = render(&p, &c, Backend::LinuxXfrm);
    assert!(
        wx.iter()
            .any(|w| w.message.contains("one port, not a range")),
        "{wx:?}"
    );
    assert!(!out.contains("ip xfrm policy add"), "{out}");
    let (_, wn) = render(&p, &c, Backend::Native);
    assert!(wn.is_empty());
}
