//! The rtnetlink client against a real kernel: a fresh network namespace with a veth pair,
//! routes and proxy entries of both families applied from a thread inside it, and the
//! result read back with iproute2 (`ip -n NS route`, `ip -n NS neigh show proxy`), an
//! independent reader. Needs root and iproute2; fails loudly without them.

use std::fs::File;
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use dsmip_daemon::netlink::{Link, Rtnl};

/// A network namespace, deleted on drop.
struct Netns(String);

impl Netns {
    /// `tag` keeps the names of tests running in parallel apart.
    fn new(tag: &str) -> Result<Self> {
        let name = format!("dsmip-nl-{tag}-{}", std::process::id());
        ip(&["netns", "add", &name])?;
        Ok(Netns(name))
    }

    /// `ip -n NS ARGS…`, its standard output.
    fn ip(&self, args: &[&str]) -> Result<String> {
        let mut a = vec!["-n", self.0.as_str()];
        a.extend_from_slice(args);
        ip(&a)
    }

    /// Run `f` on a thread inside the namespace (setns affects only that thread).
    fn run<T: Send + 'static>(&self, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
        let path = format!("/run/netns/{}", self.0);
        std::thread::spawn(move || {
            let file = File::open(&path).with_context(|| format!("opening {path}"))?;
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
            f()
        })
        .join()
        .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.0]);
    }
}

fn ip(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip: apt-get install iproute2")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn require_root() -> Result<()> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let root = status
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"));
    ensure!(root, "this test needs root (network namespaces)");
    Ok(())
}

#[test]
fn routes_and_proxies_appear_and_go() -> Result<()> {
    require_root()?;
    let ns = Netns::new("up")?;
    // `tun0` stands in for the TUN device, `home0` for the home link.
    ns.ip(&[
        "link", "add", "tun0", "type", "veth", "peer", "name", "home0",
    ])?;
    ns.ip(&["link", "set", "tun0", "up"])?;
    ns.ip(&["link", "set", "home0", "up"])?;
    let want_tun = ns.ip(&["-o", "link", "show", "tun0"])?;
    let want_index: u32 = want_tun
        .split(':')
        .next()
        .and_then(|s| s.trim().parse().ok())
        .context("index in `ip -o link show`")?;

    let (tun, missing) = ns.run(|| {
        let mut nl = Rtnl::open()?;
        let tun = nl.link("tun0")?;
        let home = nl.link("home0")?;
        let missing = nl.link("nosuch0").map_err(|e| format!("{e:#}"));
        nl.route_replace("198.51.100.0/30".parse()?, &tun)?;
        nl.route_replace("203.0.113.7/32".parse()?, &tun)?;
        nl.route_replace("2001:db8:1::100/128".parse()?, &tun)?;
        nl.route_replace("2001:db8:5::/48".parse()?, &tun)?;
        // Replacing again is not an error (RouteAdd after a re-registration).
        nl.route_replace("2001:db8:1::100/128".parse()?, &tun)?;
        nl.proxy_add("2001:db8:1::100".parse()?, &home)?;
        nl.proxy_add("203.0.113.7".parse()?, &home)?;
        nl.proxy_add("203.0.113.7".parse()?, &home)?;
        Ok((tun, missing))
    })?;
    assert_eq!(tun.index, want_index, "{want_tun}");
    let e = missing.expect_err("an interface that does not exist");
    assert!(
        e.contains("interface nosuch0") && e.contains("No such device"),
        "{e}"
    );

    let r4 = ns.ip(&["route", "show", "dev", "tun0"])?;
    assert!(r4.contains("198.51.100.0/30"), "{r4}");
    assert!(r4.contains("203.0.113.7 "), "{r4}");
    let r6 = ns.ip(&["-6", "route", "show", "dev", "tun0"])?;
    assert!(r6.contains("2001:db8:1::100 "), "{r6}");
    assert!(r6.contains("2001:db8:5::/48"), "{r6}");
    let p6 = ns.ip(&["-6", "neigh", "show", "proxy", "dev", "home0"])?;
    assert!(p6.contains("2001:db8:1::100"), "{p6}");
    let p4 = ns.ip(&["-4", "neigh", "show", "proxy", "dev", "home0"])?;
    assert!(p4.contains("203.0.113.7"), "{p4}");

    // Everything goes again; a second delete is the kernel's error, named like `ip` would.
    let second = ns.run(|| {
        let mut nl = Rtnl::open()?;
        let tun = nl.link("tun0")?;
        let home = nl.link("home0")?;
        for p in [
            "198.51.100.0/30",
            "203.0.113.7/32",
            "2001:db8:1::100/128",
            "2001:db8:5::/48",
        ] {
            nl.route_delete(p.parse()?, &tun)?;
        }
        nl.proxy_delete("2001:db8:1::100".parse()?, &home)?;
        nl.proxy_delete("203.0.113.7".parse()?, &home)?;
        let again = nl.route_delete("2001:db8:1::100/128".parse()?, &tun);
        Ok(again.map_err(|e| format!("{e:#}")))
    })?;
    let e = second.expect_err("deleting a route that is gone");
    eprintln!("second delete: {e}");
    assert!(
        e.starts_with("route del 2001:db8:1::100/128 dev tun0: "),
        "{e}"
    );

    let r4 = ns.ip(&["route", "show", "dev", "tun0"])?;
    assert!(
        !r4.contains("198.51.100.0") && !r4.contains("203.0.113.7"),
        "{r4}"
    );
    let r6 = ns.ip(&["-6", "route", "show", "dev", "tun0"])?;
    assert!(
        !r6.contains("2001:db8:1::100") && !r6.contains("2001:db8:5::"),
        "{r6}"
    );
    let p = ns.ip(&["neigh", "show", "proxy"])?;
    assert!(
        !p.contains("2001:db8:1::100") && !p.contains("203.0.113.7"),
        "{p}"
    );
    Ok(())
}

#[test]
fn the_kernels_refusal_names_the_request_and_its_reason() -> Result<()> {
    require_root()?;
    let ns = Netns::new("down")?;
    ns.ip(&[
        "link", "add", "tun0", "type", "veth", "peer", "name", "home0",
    ])?;
    // tun0 stays down: an on-link IPv4 route through it is refused.
    let e = ns.run(|| {
        let mut nl = Rtnl::open()?;
        let tun = nl.link("tun0")?;
        let bogus = Link {
            name: "gone0".into(),
            index: 99_999,
        };
        let down = nl.route_replace("198.51.100.0/30".parse()?, &tun);
        let gone = nl.proxy_add("203.0.113.7".parse()?, &bogus);
        Ok((
            down.map_err(|e| format!("{e:#}")),
            gone.map_err(|e| format!("{e:#}")),
        ))
    })?;
    let down = e.0.expect_err("a route through a device that is down");
    // ENETDOWN, and the kernel's extended-ack text after it.
    assert!(
        down.contains("Network is down") && down.contains("not up"),
        "{down}"
    );
    assert!(
        down.starts_with("route replace 198.51.100.0/30 dev tun0: "),
        "{down}"
    );
    let gone =
        e.1.expect_err("a proxy entry on an interface that does not exist");
    eprintln!("device down: {down}\nno such interface: {gone}");
    assert!(
        gone.starts_with("neigh replace proxy 203.0.113.7 dev gone0: "),
        "{gone}"
    );
    assert!(gone.contains("No such device"), "{gone}");
    Ok(())
}
