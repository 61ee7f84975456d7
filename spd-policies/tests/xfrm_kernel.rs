//! The Linux XFRM rendering is accepted by a real kernel: every `ip xfrm policy add`
//! command runs in a fresh network namespace, and `ip xfrm policy list` reads back the
//! selectors, MH and ICMPv6 types included. Needs root and iproute2 (`ip`); without them
//! the test fails, it does not skip. The namespace is named per run and always removed.

use std::io::Write as _;
use std::process::{Command, Stdio};

use spd_policies::{load, render::render, Backend};

struct Netns(String);

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("dsmspd{}-{tag}", std::process::id());
        let st = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("`ip` (iproute2) must be installed");
        assert!(
            st.success(),
            "ip netns add {name} failed: the test needs root"
        );
        Netns(name)
    }

    fn run(&self, argv: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", &self.0])
            .args(argv)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

fn load_into_kernel(name: &str, tag: &str, expect: &[&str]) {
    let rel = format!("examples/{name}.toml");
    let text = std::fs::read_to_string(format!("{}/{rel}", env!("CARGO_MANIFEST_DIR"))).unwrap();
    let (p, c) = load(&rel, &text).unwrap();
    let (script, _) = render(&p, &c, Backend::LinuxXfrm);
    let ns = Netns::new(tag);
    // One `ip -batch` run: the same commands without their leading `ip`.
    let batch: Vec<&str> = script
        .lines()
        .filter_map(|l| l.strip_prefix("ip xfrm policy add "))
        .collect();
    let n = batch.len();
    let input: String = batch
        .iter()
        .map(|l| format!("xfrm policy add {l}\n"))
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", &ns.0, "-batch", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "ip -batch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = ns.run(&["ip", "xfrm", "policy", "list"]);
    assert_eq!(
        listed.lines().filter(|l| l.starts_with("src ")).count(),
        n,
        "every command is one policy"
    );
    for want in expect {
        assert!(listed.contains(want), "`{want}` missing from:\n{listed}");
    }
}

#[test]
fn mobile_node_policies_load_into_the_kernel() {
    load_into_kernel(
        "mobile-node",
        "mn",
        &[
            "src 2001:db8:1::100/128 dst 2001:db8:1::1/128 proto mobility-header type 5 \n\tdir out priority 1002",
            "src 2001:db8:1::1/128 dst 2001:db8:1::100/128 proto mobility-header type 6 \n\tdir in priority 1002",
            "src 2001:db8:1::100/128 dst 2001:db8:1::1/128 proto ipv6-icmp type 146",
            "dir out priority 1004",
            "proto esp reqid 0 mode tunnel",
        ],
    );
}

#[test]
fn home_agent_policies_load_into_the_kernel() {
    load_into_kernel(
        "home-agent",
        "ha",
        &[
            "src 2001:db8:1::1/128 dst 2001:db8:1::101/128 proto mobility-header type 6 \n\tdir out",
            "src 2001:db8:1::101/128 dst 2001:db8:1::1/128 proto mobility-header type 5 \n\tdir in",
            "dir fwd",
        ],
    );
}
