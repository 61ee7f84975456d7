//! The network-namespace lab: namespaces, veth links, an nftables NAT, background processes
//! and strongSwan's charon, all named uniquely per run and torn down on drop.
//!
//! Safety rules (the project's and this machine's): traffic only to addresses inside the
//! namespaces made here; every process started is a [`Child`] we own, so it is ended by
//! its own PID and reaped; namespaces are created with a per-run prefix and only those
//! recorded are deleted. Needs root, `ip` (iproute2), and for NAT `nft` (nftables).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Whether this process runs as root (uid 0), read from /proc.
pub fn is_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Fail with a message that says what to install, when `tool` is not on PATH.
pub fn require_tool(tool: &str, package: &str) -> Result<()> {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        bail!("`{tool}` is not installed: apt-get install {package} (the README's test command does this)");
    }
    Ok(())
}

/// One lab: what it created, to be removed when it is dropped.
pub struct Lab {
    prefix: String,
    dir: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// A new lab whose names start with a prefix unique to this process and call.
    /// Fails loudly when not root or when `ip` is missing.
    pub fn new(tag: &str) -> Result<Lab> {
        if !is_root() {
            bail!("the lab needs root (network namespaces); run the tests as root");
        }
        require_tool("ip", "iproute2")?;
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(8)
            .collect();
        let prefix = format!("dsm{}-{}-{}", std::process::id(), n, tag);
        let dir = std::env::temp_dir().join("dsmip-lab").join(&prefix);
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        Ok(Lab {
            prefix,
            dir,
            namespaces: Vec::new(),
            children: Vec::new(),
        })
    }

    /// The per-run folder for configs, logs and captures.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Create namespace `<prefix>-<name>` with loopback up; returns its full name.
    pub fn ns(&mut self, name: &str) -> Result<String> {
        let full = format!("{}-{}", self.prefix, name);
        run_cmd(Command::new("ip").args(["netns", "add", &full]))?;
        self.namespaces.push(full.clone());
        self.run(&full, &["ip", "link", "set", "lo", "up"])?;
        Ok(full)
    }

    /// A veth pair between namespaces `a` and `b` (full names), interfaces brought up with
    /// the given addresses in CIDR form (IPv6 addresses without duplicate address detection).
    pub fn veth(
        &mut self,
        a: &str,
        a_if: &str,
        a_addrs: &[&str],
        b: &str,
        b_if: &str,
        b_addrs: &[&str],
    ) -> Result<()> {
        // Created in the root namespace under temporary unique names, then moved and renamed,
        // so that two labs never collide on interface names.
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let (ta, tb) = (
            format!("dsa{}x{n}", std::process::id() % 100_000),
            format!("dsb{}x{n}", std::process::id() % 100_000),
        );
        run_cmd(
            Command::new("ip").args(["link", "add", &ta, "type", "veth", "peer", "name", &tb]),
        )?;
        for (tmp, ns, ifname, addrs) in [(&ta, a, a_if, a_addrs), (&tb, b, b_if, b_addrs)] {
            run_cmd(Command::new("ip").args(["link", "set", tmp, "netns", ns]))?;
            self.run(ns, &["ip", "link", "set", tmp, "name", ifname])?;
            for addr in addrs {
                let mut argv = vec!["ip", "addr", "add", addr, "dev", ifname];
                if addr.contains(':') {
                    argv.push("nodad");
                }
                self.run(ns, &argv)?;
            }
            self.run(ns, &["ip", "link", "set", ifname, "up"])?;
        }
        Ok(())
    }

    /// Run a command in namespace `ns` and return its standard output; a non-zero exit is
    /// an error carrying the command and its standard error.
    pub fn run(&self, ns: &str, argv: &[&str]) -> Result<String> {
        run_cmd(Command::new("ip").args(["netns", "exec", ns]).args(argv))
    }

    /// Set a sysctl inside a namespace.
    pub fn sysctl(&self, ns: &str, key: &str, value: &str) -> Result<()> {
        self.run(ns, &["sysctl", "-qw", &format!("{key}={value}")])
            .map(|_| ())
    }

    /// Make `ns` a router that masquerades what leaves through `out_if` (nftables NAT).
    pub fn masquerade(&self, ns: &str, out_if: &str) -> Result<()> {
        require_tool("nft", "nftables")?;
        self.sysctl(ns, "net.ipv4.ip_forward", "1")?;
        let rules = format!(
            "table ip dsmip_nat {{\n  chain post {{\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"{out_if}\" masquerade\n  }}\n}}\n"
        );
        let path = self.dir.join(format!("{ns}-nat.nft"));
        fs::write(&path, rules)?;
        self.run(ns, &["nft", "-f", path.to_str().context("non-UTF-8 path")?])
            .map(|_| ())
    }

    /// Start a background process in `ns` with stdout and stderr to `log`; it is ended
    /// (SIGTERM, then SIGKILL) when the lab is dropped. Returns its PID.
    pub fn spawn(&mut self, ns: &str, argv: &[&str], log: &Path) -> Result<u32> {
        self.spawn_env(ns, argv, &[], log)
    }

    /// As [`Lab::spawn`] with extra environment variables.
    pub fn spawn_env(
        &mut self,
        ns: &str,
        argv: &[&str],
        env: &[(&str, &str)],
        log: &Path,
    ) -> Result<u32> {
        let out = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        // `ip netns exec` enters the namespace and execs the program: the PID is the program's.
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(argv)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {argv:?} in {ns}"))?;
        let pid = child.id();
        self.children.push((argv.join(" "), child));
        Ok(pid)
    }

    /// Whether the process `pid` started by this lab still runs.
    pub fn alive(&mut self, pid: u32) -> bool {
        self.children
            .iter_mut()
            .find(|(_, c)| c.id() == pid)
            .is_some_and(|(_, c)| matches!(c.try_wait(), Ok(None)))
    }

    /// End one process started by this lab, by its PID.
    pub fn stop(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|(_, c)| c.id() == pid) {
            let (_, mut child) = self.children.remove(i);
            end_child(&mut child);
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in self.children.iter_mut().rev() {
            end_child(child);
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
        if std::env::var_os("DSMIP_KEEP_LAB").is_none() && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// SIGTERM a child we own, wait up to 5 s, then SIGKILL; always reap it.
fn end_child(child: &mut Child) {
    if let Ok(Some(_)) = child.try_wait() {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn run_cmd(cmd: &mut Command) -> Result<String> {
    let out = cmd.output().with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The namespaces (full names) of the lab every daemon test and the demo share.
pub struct NatTopology {
    pub mn: String,
    pub nat: String,
    pub ha: String,
    /// The correspondent on the home agent's home link, when asked for.
    pub cn: Option<String>,
}

impl Lab {
    /// The DSMIPv6 lab: `mn 10.1.0.2 --- nat 10.1.0.1 | 192.0.2.2 (masquerade) --- ha
    /// 192.0.2.1`. With `home_link`, also `ha home0 203.0.113.1, 2001:db8:1::1 --- cn
    /// 203.0.113.2, 2001:db8:1::2`, the home agent forwarding, and the home link's IPv6
    /// addresses past duplicate address detection (a first ping would be lost otherwise).
    pub fn nat_topology(&mut self, home_link: bool) -> Result<NatTopology> {
        require_tool("nft", "nftables")?;
        let mn = self.ns("mn")?;
        let nat = self.ns("nat")?;
        let ha = self.ns("ha")?;
        self.veth(&mn, "eth0", &["10.1.0.2/24"], &nat, "in0", &["10.1.0.1/24"])?;
        self.veth(
            &nat,
            "out0",
            &["192.0.2.2/24"],
            &ha,
            "eth0",
            &["192.0.2.1/24"],
        )?;
        self.run(&mn, &["ip", "route", "add", "default", "via", "10.1.0.1"])?;
        self.masquerade(&nat, "out0")?;
        let cn = if home_link {
            Some(self.home_link(&ha)?)
        } else {
            None
        };
        Ok(NatTopology { mn, nat, ha, cn })
    }
}

impl Lab {
    /// The home link: `ha home0 203.0.113.1, 2001:db8:1::1 --- cn 203.0.113.2,
    /// 2001:db8:1::2`, the home agent forwarding both families, and the home link's IPv6
    /// addresses past duplicate address detection (a first ping would be lost otherwise).
    /// Returns the correspondent's namespace.
    pub fn home_link(&mut self, ha: &str) -> Result<String> {
        let cn = self.ns("cn")?;
        self.veth(
            ha,
            "home0",
            &["203.0.113.1/24", "2001:db8:1::1/64"],
            &cn,
            "eth0",
            &["203.0.113.2/24", "2001:db8:1::2/64"],
        )?;
        self.run(
            &cn,
            &["ip", "route", "add", "default", "via", "203.0.113.1"],
        )?;
        self.sysctl(ha, "net.ipv4.ip_forward", "1")?;
        self.sysctl(ha, "net.ipv6.conf.all.forwarding", "1")?;
        let settled = wait_until(Duration::from_secs(10), || {
            [&cn, ha].iter().all(|ns| {
                self.run(ns, &["ip", "-6", "addr", "show", "tentative"])
                    .is_ok_and(|o| o.trim().is_empty())
            })
        });
        if !settled {
            bail!("IPv6 addresses on the home link still tentative after 10 s");
        }
        Ok(cn)
    }

    /// Load an nftables ruleset (text) into namespace `ns`.
    pub fn nft(&self, ns: &str, name: &str, rules: &str) -> Result<()> {
        require_tool("nft", "nftables")?;
        let path = self.dir.join(format!("{ns}-{name}.nft"));
        fs::write(&path, rules)?;
        self.run(ns, &["nft", "-f", path.to_str().context("non-UTF-8 path")?])
            .map(|_| ())
    }

    /// Drop every IPv6 packet that `ns` would forward to `dst` (a blackhole on the path,
    /// for the IPv4 fallback of RFC 5555 §4.4.1).
    pub fn blackhole_ipv6(&self, ns: &str, dst: &str) -> Result<()> {
        let rules = format!(
            "table ip6 dsmip_blackhole {{\n  chain blackhole {{\n    type filter hook forward priority filter; policy accept;\n    ip6 daddr {dst} drop\n  }}\n}}\n"
        );
        self.nft(ns, "blackhole", &rules)
    }

    /// A visited network for the scenarios of RFC 5555 §1.3, with the home link:
    ///
    /// ```text
    ///   mn_i eth0 --- in_i gw out0 --- [in0 nat2 out0 ---] eth0 ha home0 --- eth0 cn
    /// ```
    ///
    /// Mobile node `i` (0-based) has, per [`Visited::v4`]: public `198.51.100.(66+16i)/28`
    /// (gateway `.65+16i`, a plain router; the home agent routes `198.51.100.64/26` back),
    /// or private `10.(1+i).0.2/24` behind the gateway's masquerade (gateway `10.(1+i).0.1`;
    /// mobile node 0 then has the addresses of [`Lab::nat_topology`]), and with
    /// [`Visited::v6`] `2001:db8:(20+i)::2/64` (gateway `::1`, routed, never translated).
    /// [`V4Access::DoubleNat`] puts a second masquerading NAT between the gateway
    /// (`10.200.0.2`) and the home agent. The home agent's outside is `192.0.2.1/24` and,
    /// with IPv6, `2001:db8:2::1/64` (the next hop's `192.0.2.2`, `2001:db8:2::2`); its
    /// home link is [`Lab::home_link`].
    pub fn visited(&mut self, v: Visited) -> Result<Scenario> {
        if v.mobile_nodes == 0 || v.mobile_nodes > 4 {
            bail!("Lab::visited: 1 to 4 mobile nodes, not {}", v.mobile_nodes);
        }
        if v.v4 == V4Access::None && !v.v6 {
            bail!("Lab::visited: a visited network needs IPv4 or IPv6");
        }
        require_tool("nft", "nftables")?;
        let gw = self.ns("gw")?;
        let mut sc = Scenario {
            mns: Vec::new(),
            mn_v4: Vec::new(),
            mn_v6: Vec::new(),
            gw: gw.clone(),
            nat2: None,
            hanat: None,
            ha: String::new(),
            cn: String::new(),
            wire: (gw.clone(), "out0".into()),
            ha_public_v4: "192.0.2.1",
            ha_v4: "192.0.2.1",
        };
        for i in 0..v.mobile_nodes {
            let mn = self.ns(&format!("mn{i}"))?;
            let (mut mn_addrs, mut gw_addrs) = (Vec::new(), Vec::new());
            let v4 = match v.v4 {
                V4Access::None => None,
                V4Access::Public => Some((
                    format!("198.51.100.{}", 66 + 16 * i),
                    format!("198.51.100.{}", 65 + 16 * i),
                    28,
                )),
                V4Access::Nat | V4Access::DoubleNat => {
                    Some((format!("10.{}.0.2", 1 + i), format!("10.{}.0.1", 1 + i), 24))
                }
            };
            if let Some((a, g, len)) = &v4 {
                mn_addrs.push(format!("{a}/{len}"));
                gw_addrs.push(format!("{g}/{len}"));
            }
            let v6 = v.v6.then(|| format!("2001:db8:{}::2", 20 + i));
            if v.v6 {
                mn_addrs.push(format!("2001:db8:{}::2/64", 20 + i));
                gw_addrs.push(format!("2001:db8:{}::1/64", 20 + i));
            }
            let mn_refs: Vec<&str> = mn_addrs.iter().map(String::as_str).collect();
            let gw_refs: Vec<&str> = gw_addrs.iter().map(String::as_str).collect();
            self.veth(&mn, "eth0", &mn_refs, &gw, &format!("in{i}"), &gw_refs)?;
            if let Some((_, g, _)) = &v4 {
                self.run(&mn, &["ip", "route", "add", "default", "via", g])?;
            }
            if v.v6 {
                let g = format!("2001:db8:{}::1", 20 + i);
                self.run(&mn, &["ip", "-6", "route", "add", "default", "via", &g])?;
            }
            sc.mns.push(mn);
            sc.mn_v4.push(v4.map(|(a, _, _)| a));
            sc.mn_v6.push(v6);
        }
        let ha = self.ns("ha")?;
        let mut ha_addrs = vec!["192.0.2.1/24"];
        let mut up_addrs = vec!["192.0.2.2/24"];
        if v.v6 {
            ha_addrs.push("2001:db8:2::1/64");
            up_addrs.push("2001:db8:2::2/64");
        }
        // The node next to the home agent: the gateway, or the second NAT.
        let last = if v.v4 == V4Access::DoubleNat {
            let nat2 = self.ns("nat2")?;
            self.veth(
                &gw,
                "out0",
                &["10.200.0.2/24"],
                &nat2,
                "in0",
                &["10.200.0.1/24"],
            )?;
            self.run(&gw, &["ip", "route", "add", "default", "via", "10.200.0.1"])?;
            self.masquerade(&gw, "out0")?;
            sc.nat2 = Some(nat2.clone());
            sc.wire = (nat2.clone(), "out0".into());
            nat2
        } else {
            gw.clone()
        };
        self.veth(&last, "out0", &up_addrs, &ha, "eth0", &ha_addrs)?;
        self.sysctl(&gw, "net.ipv4.ip_forward", "1")?;
        self.sysctl(&last, "net.ipv4.ip_forward", "1")?;
        match v.v4 {
            V4Access::Nat | V4Access::DoubleNat => self.masquerade(&last, "out0")?,
            V4Access::Public => {
                self.run(
                    &ha,
                    &["ip", "route", "add", "198.51.100.64/26", "via", "192.0.2.2"],
                )?;
            }
            V4Access::None => {}
        }
        if v.v6 {
            self.sysctl(&gw, "net.ipv6.conf.all.forwarding", "1")?;
            self.run(
                &gw,
                &[
                    "ip",
                    "-6",
                    "route",
                    "add",
                    "default",
                    "via",
                    "2001:db8:2::1",
                ],
            )?;
            for i in 0..v.mobile_nodes {
                let p = format!("2001:db8:{}::/64", 20 + i);
                self.run(
                    &ha,
                    &["ip", "-6", "route", "add", &p, "via", "2001:db8:2::2"],
                )?;
            }
        }
        sc.cn = self.home_link(&ha)?;
        sc.ha = ha;
        Ok(sc)
    }

    /// Scenario 3 of RFC 5555 §1.3, the home agent behind a NAPT:
    ///
    /// ```text
    ///   mn 198.51.100.66/26 --- gw 198.51.100.65 | 192.0.2.2 --- wan0 192.0.2.1 hanat lan0 10.9.0.1
    ///       --- eth0 10.9.0.2 ha home0 --- cn
    /// ```
    ///
    /// The NAPT forwards UDP 500, 4191 and 4500 arriving at its public address 192.0.2.1 to
    /// the home agent's private 10.9.0.2 (nftables dnat) and masquerades what the home
    /// agent sends out. The mobile node has a public address and no NAT of its own.
    pub fn ha_behind_napt(&mut self) -> Result<Scenario> {
        require_tool("nft", "nftables")?;
        let mn = self.ns("mn0")?;
        let gw = self.ns("gw")?;
        let hanat = self.ns("hanat")?;
        let ha = self.ns("ha")?;
        self.veth(
            &mn,
            "eth0",
            &["198.51.100.66/26"],
            &gw,
            "in0",
            &["198.51.100.65/26"],
        )?;
        self.veth(
            &gw,
            "out0",
            &["192.0.2.2/24"],
            &hanat,
            "wan0",
            &["192.0.2.1/24"],
        )?;
        self.veth(
            &hanat,
            "lan0",
            &["10.9.0.1/24"],
            &ha,
            "eth0",
            &["10.9.0.2/24"],
        )?;
        self.run(
            &mn,
            &["ip", "route", "add", "default", "via", "198.51.100.65"],
        )?;
        self.run(&ha, &["ip", "route", "add", "default", "via", "10.9.0.1"])?;
        self.run(
            &hanat,
            &["ip", "route", "add", "198.51.100.64/26", "via", "192.0.2.2"],
        )?;
        self.sysctl(&gw, "net.ipv4.ip_forward", "1")?;
        self.sysctl(&hanat, "net.ipv4.ip_forward", "1")?;
        let rules = "table ip dsmip_napt {\n  chain pre {\n    type nat hook prerouting priority dstnat; policy accept;\n    iifname \"wan0\" udp dport { 500, 4191, 4500 } dnat to 10.9.0.2\n  }\n  chain post {\n    type nat hook postrouting priority srcnat; policy accept;\n    oifname \"wan0\" masquerade\n  }\n}\n";
        self.nft(&hanat, "napt", rules)?;
        let cn = self.home_link(&ha)?;
        Ok(Scenario {
            mns: vec![mn],
            mn_v4: vec![Some("198.51.100.66".into())],
            mn_v6: vec![None],
            gw: gw.clone(),
            nat2: None,
            hanat: Some(hanat),
            ha,
            cn,
            wire: (gw, "out0".into()),
            ha_public_v4: "192.0.2.1",
            ha_v4: "10.9.0.2",
        })
    }
}

/// How the mobile nodes of [`Lab::visited`] reach IPv4.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum V4Access {
    /// No IPv4 at all (an IPv6-only visited network).
    None,
    /// Public addresses, routed, no NAT (scenario 1).
    Public,
    /// Private addresses behind the gateway's masquerade (scenario 2).
    Nat,
    /// Private addresses behind two masquerading NATs.
    DoubleNat,
}

/// What [`Lab::visited`] builds.
#[derive(Clone, Copy, Debug)]
pub struct Visited {
    /// Number of mobile node namespaces (1 to 4), each on its own link to the gateway.
    pub mobile_nodes: usize,
    pub v4: V4Access,
    /// Give the visited network IPv6 (routed to the home agent's outside).
    pub v6: bool,
}

/// The namespaces and addresses of a scenario lab (full namespace names).
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The mobile nodes' namespaces.
    pub mns: Vec<String>,
    /// Each mobile node's IPv4 care-of address, if it has one.
    pub mn_v4: Vec<Option<String>>,
    /// Each mobile node's IPv6 care-of address, if it has one.
    pub mn_v6: Vec<Option<String>>,
    /// The mobile nodes' first hop (router or NAT).
    pub gw: String,
    /// The second NAT, in [`V4Access::DoubleNat`].
    pub nat2: Option<String>,
    /// The NAPT in front of the home agent ([`Lab::ha_behind_napt`]).
    pub hanat: Option<String>,
    pub ha: String,
    /// The correspondent on the home link (203.0.113.2, 2001:db8:1::2).
    pub cn: String,
    /// Namespace and interface where packets between the visited network and the home
    /// agent (or its NAPT) pass: the place for a capture.
    pub wire: (String, String),
    /// The home agent's IPv4 address as the mobile nodes see it.
    pub ha_public_v4: &'static str,
    /// The home agent's own IPv4 address.
    pub ha_v4: &'static str,
}

/// Build `bin` of `package` in the profile of the running test or bench (a no-op when
/// fresh) and return its path: tests and benches run from `target/<profile>/deps/`, the
/// binaries land in `target/<profile>/`.
pub fn workspace_binary(package: &str, bin: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .context("location of the running test")?
        .to_path_buf();
    let profile = dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug");
    let mut args = vec!["build", "-q", "-p", package, "--bin", bin];
    match profile {
        "debug" => {}
        "release" => args.push("--release"),
        other => args.extend(["--profile", other]),
    }
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("building {bin}: {}", String::from_utf8_lossy(&out.stderr));
    }
    let path = dir.join(bin);
    if !path.exists() {
        bail!("{} missing after the build", path.display());
    }
    Ok(path)
}

/// Poll `f` every 20 ms until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// strongSwan's charon in a namespace, with its own strongswan.conf, VICI socket, log and
/// swanctl folder. ESP runs in userspace through `kernel-libipsec` (this kernel has no ESP);
/// it must precede `kernel-netlink` so it registers the kernel-ipsec interface first.
pub struct Charon {
    ns: String,
    dir: PathBuf,
    pid: u32,
}

const PLUGINS: &str = "random nonce openssl pem pkcs1 pkcs8 x509 revocation constraints pubkey \
curve25519 aes sha1 sha2 hmac gcm chapoly gmp kdf attr kernel-libipsec kernel-netlink socket-default vici";

impl Charon {
    /// Start charon in `ns` and load `swanctl_conf` (the text of a swanctl.conf; files it
    /// names relative to the swanctl folder go under [`Charon::swanctl_dir`], which can be
    /// filled before loading with [`Charon::prepare`] instead).
    pub fn start(lab: &mut Lab, ns: &str, swanctl_conf: &str) -> Result<Charon> {
        let charon = Self::prepare(lab, ns)?;
        charon.start_prepared(lab, swanctl_conf)
    }

    /// Make the folders and config of a charon in `ns` without starting it, so that a test
    /// can put certificates and keys into [`Charon::swanctl_dir`] first.
    pub fn prepare(lab: &mut Lab, ns: &str) -> Result<Charon> {
        require_tool("swanctl", "strongswan-swanctl")?;
        if !Path::new("/usr/lib/ipsec/charon").exists() {
            bail!("/usr/lib/ipsec/charon is missing: apt-get install strongswan-charon libcharon-extra-plugins libstrongswan-standard-plugins libstrongswan-extra-plugins");
        }
        let dir = lab.dir().join(format!("charon-{ns}"));
        for sub in [
            "piddir",
            "swanctl/x509",
            "swanctl/x509ca",
            "swanctl/private",
            "swanctl/ecdsa",
            "swanctl/rsa",
            "swanctl/pkcs8",
        ] {
            fs::create_dir_all(dir.join(sub))?;
        }
        fs::write(dir.join("strongswan.conf"), strongswan_conf(&dir))?;
        Ok(Charon {
            ns: ns.to_string(),
            dir,
            pid: 0,
        })
    }

    /// Start a prepared charon and load `swanctl_conf` with `swanctl --load-all`.
    pub fn start_prepared(mut self, lab: &mut Lab, swanctl_conf: &str) -> Result<Charon> {
        fs::write(self.dir.join("swanctl/swanctl.conf"), swanctl_conf)?;
        let d = &self.dir;
        // charon 5.9.8 writes /run/charon.pid with no setting to move it: give it a private
        // mount namespace with its own folder on /run.
        let script =
            "mount --bind \"$1\" /run && exec env STRONGSWAN_CONF=\"$2\" /usr/lib/ipsec/charon";
        let piddir = d.join("piddir");
        let conf = d.join("strongswan.conf");
        let argv = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            script,
            "sh",
            piddir.to_str().context("path")?,
            conf.to_str().context("path")?,
        ];
        self.pid = lab.spawn(&self.ns, &argv, &d.join("charon.stdout"))?;
        let vici = d.join("charon.vici");
        let up = wait_until(Duration::from_secs(10), || {
            vici.exists() && self.swanctl(lab, &["--stats"]).is_ok()
        });
        if !up {
            let out = fs::read_to_string(d.join("charon.stdout")).unwrap_or_default();
            bail!(
                "charon in {} did not open its VICI socket within 10 s: {out}",
                self.ns
            );
        }
        self.swanctl(
            lab,
            &[
                "--load-all",
                "--file",
                self.conf_path().to_str().context("path")?,
            ],
        )
        .context("swanctl --load-all")?;
        Ok(self)
    }

    /// Run `swanctl <args> --uri <this charon's socket>` in its namespace. The lab is
    /// borrowed so that a charon is never used after its lab is gone.
    pub fn swanctl(&self, _lab: &Lab, args: &[&str]) -> Result<String> {
        let uri = format!("unix://{}", self.dir.join("charon.vici").display());
        let conf = self.dir.join("strongswan.conf");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns, "swanctl"])
            .args(&args[..1.min(args.len())])
            .args(["--uri", &uri])
            .args(&args[1.min(args.len())..])
            .env("STRONGSWAN_CONF", &conf);
        run_cmd(&mut cmd)
    }

    /// The VICI socket path.
    pub fn vici_path(&self) -> PathBuf {
        self.dir.join("charon.vici")
    }

    /// The swanctl folder (x509, x509ca, private, ecdsa, rsa, pkcs8 inside).
    pub fn swanctl_dir(&self) -> PathBuf {
        self.dir.join("swanctl")
    }

    /// The loaded swanctl.conf.
    pub fn conf_path(&self) -> PathBuf {
        self.dir.join("swanctl/swanctl.conf")
    }

    /// charon's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("charon.log")).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

fn strongswan_conf(dir: &Path) -> String {
    let d = dir.display();
    let mut s = String::new();
    let _ = write!(
        s,
        r#"# Generated by dsmip's lab for one charon instance.
charon {{
    load = {PLUGINS}
    port = 500
    port_nat_t = 4500
    retransmit_timeout = 2.0
    retransmit_tries = 3
    plugins {{
        vici {{
            socket = unix://{d}/charon.vici
        }}
        # IKE packets carry mark 0x42 and skip the routes into the libipsec TUN device,
        # which matters when a traffic selector covers the peer itself.
        kernel-netlink {{
            fwmark = !0x42
        }}
        socket-default {{
            fwmark = 0x42
        }}
        kernel-libipsec {{
            allow_peer_ts = yes
        }}
    }}
    filelog {{
        lab {{
            path = {d}/charon.log
            append = yes
            flush_line = yes
            time_format = %H:%M:%S
            time_add_ms = yes
            ike_name = yes
            default = 1
            ike = 2
            cfg = 2
        }}
    }}
    syslog {{
        daemon {{
            default = -1
        }}
        auth {{
            default = -1
        }}
    }}
}}
swanctl {{
    load = pem pkcs1 pkcs8 x509 revocation constraints pubkey openssl random
}}
"#
    );
    s
}
