//! What the scenario tests share: building and locating the daemons, their configs, starting
//! them in lab namespaces, the control sockets, ping and the byte-for-byte TCP transfer
//! (`dsmip-tcp-check`), and captures read back with tshark.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use interop::lab::{require_tool, wait_until, workspace_binary, Lab};
use serde_json::Value;

pub const PSK: &str = "lab-only-pre-shared-key";
/// The correspondent on the home link.
pub const CN4: &str = "203.0.113.2";
pub const CN6: &str = "2001:db8:1::2";
/// The mobile nodes' routes into their TUN devices: the correspondent only, so that the
/// home agent's own addresses are never routed into the tunnel (mn/DAEMON.md).
pub const ROUTES: [&str; 2] = ["203.0.113.2/32", "2001:db8:1::2/128"];

/// The three programs, built once per test binary.
pub struct Bins {
    pub ha: PathBuf,
    pub mn: PathBuf,
    pub tcp: PathBuf,
}

/// Build `dsmip-ha` and `dsmip-mn` (a no-op when fresh) and locate `dsmip-tcp-check`
/// (built by cargo for this package's integration tests). With `DSMIP_BIN_DIR` set, the
/// two daemons are taken from that folder instead (another build, e.g. a release one).
pub fn bins() -> Result<&'static Bins> {
    static BINS: OnceLock<std::result::Result<Bins, String>> = OnceLock::new();
    BINS.get_or_init(|| {
        let daemon = |package: &str, bin: &str| match std::env::var_os("DSMIP_BIN_DIR") {
            Some(dir) => {
                let p = PathBuf::from(dir).join(bin);
                if p.is_file() {
                    Ok(p)
                } else {
                    Err(format!("DSMIP_BIN_DIR: {} is missing", p.display()))
                }
            }
            None => workspace_binary(package, bin).map_err(|e| format!("{e:#}")),
        };
        let ha = daemon("ha", "dsmip-ha")?;
        let mn = daemon("mn", "dsmip-mn")?;
        let tcp = PathBuf::from(env!("CARGO_BIN_EXE_dsmip-tcp-check"));
        Ok(Bins { ha, mn, tcp })
    })
    .as_ref()
    .map_err(|e| anyhow::anyhow!("{e}"))
}

/// One `[[ipsec.peer]]` and, optionally, its `[[home_agent.mobile_node]]` static entry.
#[derive(Clone)]
pub struct Peer {
    pub id: String,
    pub hoa: String,
    /// A static IPv4 home address (`a.b.c.d/len`).
    pub static_v4: Option<String>,
}

/// A `dsmip-ha` configuration, always with the data plane (TUN + home link).
#[derive(Clone)]
pub struct HaConf {
    pub listen_v4: Option<String>,
    pub address_v4: String,
    pub force_udp: bool,
    pub peers: Vec<Peer>,
    /// `daemon.listen_v6_interfaces`: where BUs from IPv6 care-of addresses are read; left
    /// out when empty (older daemons do not know the key).
    pub listen_v6_interfaces: Vec<String>,
}

impl HaConf {
    pub fn new(address_v4: &str, peers: Vec<Peer>) -> HaConf {
        HaConf {
            listen_v4: None,
            address_v4: address_v4.into(),
            force_udp: false,
            peers,
            listen_v6_interfaces: Vec::new(),
        }
    }

    pub fn render(&self, dir: &Path) -> String {
        let listen = self
            .listen_v4
            .as_ref()
            .map(|a| format!("listen_v4 = \"{a}\"\n"))
            .unwrap_or_default()
            + &if self.listen_v6_interfaces.is_empty() {
                String::new()
            } else {
                let l: Vec<String> = self
                    .listen_v6_interfaces
                    .iter()
                    .map(|i| format!("\"{i}\""))
                    .collect();
                format!("listen_v6_interfaces = [{}]\n", l.join(", "))
            };
        let mut s = format!(
            r#"[daemon]
lease_file = "{dir}/leases.redb"
control_socket = "{dir}/ha.sock"
tun = "dsmha0"
home_link = "home0"
{listen}
[home_agent]
address = "2001:db8:1::1"
address_v4 = "{v4}"
home_prefixes = ["2001:db8:1::/64"]
max_lifetime = 400
force_udp = {force}

[[home_agent.ipv4_pool]]
range = "198.51.100.0/28"
exclude = ["198.51.100.1/32"]
"#,
            dir = dir.display(),
            v4 = self.address_v4,
            force = self.force_udp,
        );
        for p in self.peers.iter().filter(|p| p.static_v4.is_some()) {
            s += &format!(
                "\n[[home_agent.mobile_node]]\nhome_address = \"{}\"\nipv4_home_address = \"{}\"\n",
                p.hoa,
                p.static_v4.as_deref().unwrap_or_default()
            );
        }
        s += &format!("\n[ipsec]\nlocal_id = \"ha.example.org\"\npsk = \"{PSK}\"\n");
        for p in &self.peers {
            s += &format!(
                "\n[[ipsec.peer]]\nid = \"{}\"\nhome_address = \"{}\"\n",
                p.id, p.hoa
            );
        }
        s
    }
}

/// A `dsmip-mn` configuration, always with the data plane.
#[derive(Clone)]
pub struct MnConf {
    pub id: String,
    pub hoa: String,
    /// Care-of address candidates (`daemon.addresses`).
    pub addresses: Vec<String>,
    /// `mobile_node.ipv4_home` as an inline TOML table.
    pub ipv4_home: String,
    pub ha_v4: String,
    pub force_udp: bool,
    /// `[ipsec] data_esp`; `None` leaves the key out (its default is "auto").
    pub data_esp: Option<String>,
    pub lifetime_secs: u32,
    /// `daemon.ipv6_care_of`: IPv6 addresses are care-of candidates too; left out when
    /// false (older daemons do not know the key).
    pub ipv6_care_of: bool,
}

impl MnConf {
    pub fn new(id: &str, hoa: &str, addresses: &[&str], ha_v4: &str) -> MnConf {
        MnConf {
            id: id.into(),
            hoa: hoa.into(),
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            ipv4_home: "{ mode = \"dynamic\" }".into(),
            ha_v4: ha_v4.into(),
            force_udp: false,
            data_esp: None,
            lifetime_secs: 400,
            ipv6_care_of: addresses.iter().any(|a| a.contains(':')),
        }
    }

    pub fn render(&self, dir: &Path, name: &str) -> String {
        let addrs: Vec<String> = self.addresses.iter().map(|a| format!("\"{a}\"")).collect();
        let routes: Vec<String> = ROUTES.iter().map(|a| format!("\"{a}\"")).collect();
        let v6 = if self.ipv6_care_of {
            "ipv6_care_of = true\n"
        } else {
            ""
        };
        let data_esp = self
            .data_esp
            .as_ref()
            .map(|m| format!("data_esp = \"{m}\"\n"))
            .unwrap_or_default();
        format!(
            r#"[daemon]
control_socket = "{dir}/{name}.sock"
addresses = [{addrs}]
shutdown_timeout_ms = 3000
tun = "dsmmn0"
routes = [{routes}]
{v6}
[mobile_node]
home_address = "{hoa}"
lifetime_secs = {life}
force_udp = {force}
ipv4_home = {v4home}

[mobile_node.home_agent]
ipv6 = "2001:db8:1::1"
ipv4 = "{ha4}"

[ipsec]
local_id = "{id}"
remote_id = "ha.example.org"
psk = "{PSK}"
{data_esp}"#,
            dir = dir.display(),
            addrs = addrs.join(", "),
            routes = routes.join(", "),
            hoa = self.hoa,
            life = self.lifetime_secs,
            force = self.force_udp,
            v4home = self.ipv4_home,
            ha4 = self.ha_v4,
            id = self.id,
        )
    }
}

/// A daemon started in a lab namespace.
pub struct Daemon {
    pub ns: String,
    pub pid: u32,
    pub sock: PathBuf,
    pub log: PathBuf,
    pub conf: PathBuf,
}

impl Daemon {
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether the process has ended (gone, or a zombie the lab has not reaped yet).
    pub fn exited(&self) -> bool {
        fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .map(|s| {
                s.rsplit_once(')')
                    .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(true)
    }
}

fn argv_of(bin: &Path, conf: &Path, json: bool) -> Result<Vec<String>> {
    let path = |p: &Path| p.to_str().map(str::to_string).context("non-UTF-8 path");
    let mut v = vec![path(bin)?, "run".into(), "--config".into(), path(conf)?];
    if json {
        v.extend(["--log-format".into(), "json".into()]);
    }
    Ok(v)
}

/// Write the home agent's config to the lab folder and start `dsmip-ha` in `ns`; waits for
/// its "running" line.
pub fn start_ha(lab: &mut Lab, ns: &str, conf: &HaConf) -> Result<Daemon> {
    let dir = lab.dir().to_path_buf();
    let path = dir.join("ha.toml");
    fs::write(&path, conf.render(&dir))?;
    spawn_ha(lab, ns, &path, "ha.log")
}

/// Start `dsmip-ha` in `ns` with an existing config file, logging to `log_name`.
pub fn spawn_ha(lab: &mut Lab, ns: &str, conf: &Path, log_name: &str) -> Result<Daemon> {
    let b = bins()?;
    let log = lab.dir().join(log_name);
    let argv = argv_of(&b.ha, conf, false)?;
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let pid = lab.spawn(ns, &argv, &log)?;
    let d = Daemon {
        ns: ns.into(),
        pid,
        sock: lab.dir().join("ha.sock"),
        log,
        conf: conf.into(),
    };
    if !wait_log(&d.log, "dsmip-ha running", 15) {
        bail!("dsmip-ha did not start in {ns}:\n{}", d.log_text());
    }
    Ok(d)
}

/// Write a mobile node's config (`<name>.toml`) and start `dsmip-mn` in `ns` (JSON logs).
pub fn start_mn(lab: &mut Lab, ns: &str, name: &str, conf: &MnConf) -> Result<Daemon> {
    let dir = lab.dir().to_path_buf();
    let path = dir.join(format!("{name}.toml"));
    fs::write(&path, conf.render(&dir, name))?;
    spawn_mn(lab, ns, name, &path, &format!("{name}.log"))
}

/// Start `dsmip-mn` with an existing config file.
pub fn spawn_mn(
    lab: &mut Lab,
    ns: &str,
    name: &str,
    conf: &Path,
    log_name: &str,
) -> Result<Daemon> {
    let b = bins()?;
    let log = lab.dir().join(log_name);
    let argv = argv_of(&b.mn, conf, true)?;
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let pid = lab.spawn(ns, &argv, &log)?;
    Ok(Daemon {
        ns: ns.into(),
        pid,
        sock: lab.dir().join(format!("{name}.sock")),
        log,
        conf: conf.into(),
    })
}

pub fn wait_log(log: &Path, needle: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || {
        fs::read_to_string(log).is_ok_and(|l| l.contains(needle))
    })
}

/// `BIN WHAT --json --socket SOCKET`, parsed.
pub fn ctl(bin: &Path, what: &str, socket: &Path) -> Result<Value> {
    let out = Command::new(bin)
        .args([what, "--json", "--socket"])
        .arg(socket)
        .output()?;
    if !out.status.success() {
        bail!(
            "{} {what}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub fn mn_status(mn: &Daemon) -> Result<Value> {
    ctl(&bins()?.mn, "status", &mn.sock)
}

pub fn ha_bindings(ha: &Daemon) -> Result<Value> {
    ctl(&bins()?.ha, "bindings", &ha.sock)
}

pub fn ha_leases(ha: &Daemon) -> Result<Value> {
    ctl(&bins()?.ha, "leases", &ha.sock)
}

/// Wait until `dsmip-mn status` says registered; returns the status and how long it took.
/// The error carries both daemons' logs.
pub fn wait_registered(mn: &Daemon, ha: &Daemon, secs: u64) -> Result<(Value, Duration)> {
    let start = Instant::now();
    let ok = wait_until(Duration::from_secs(secs), || {
        mn.exited() || mn_status(mn).is_ok_and(|v| v["state"] == "registered")
    });
    if !ok || mn.exited() {
        let why = if mn.exited() { "exited" } else { "timed out" };
        bail!(
            "dsmip-mn in {} did not register ({why} after {:?}); status: {}\n--- mn log ---\n{}\n--- ha log ---\n{}",
            mn.ns,
            start.elapsed(),
            mn_status(mn).map(|v| v.to_string()).unwrap_or_else(|e| e.to_string()),
            mn.log_text(),
            ha.log_text()
        );
    }
    Ok((mn_status(mn)?, start.elapsed()))
}

/// The binding of `hoa` in `dsmip-ha bindings --json`.
pub fn binding_of(ha: &Daemon, hoa: &str) -> Result<Value> {
    let b = ha_bindings(ha)?;
    b.as_array()
        .and_then(|a| a.iter().find(|x| x["home_address"] == hoa))
        .cloned()
        .with_context(|| format!("no binding for {hoa} at the home agent: {b}"))
}

/// The IPv4 home address of a status, without its `/len`.
pub fn v4_hoa(st: &Value) -> Result<String> {
    st["ipv4_home_address"]
        .as_str()
        .and_then(|a| a.split('/').next())
        .map(str::to_string)
        .with_context(|| format!("no IPv4 home address: {st}"))
}

/// SIGTERM a daemon we started and wait for its exit; true when it exited in time.
pub fn sigterm(lab: &mut Lab, pid: u32, secs: u64) -> Result<bool> {
    let ok = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()?;
    if !ok.success() {
        bail!("kill -TERM {pid} failed");
    }
    let exited = wait_until(Duration::from_secs(secs), || !lab.alive(pid));
    lab.stop(pid);
    Ok(exited)
}

/// An unmodified `ping` (`-4` or `-6`) in `ns`: `count` echo requests of 1000 bytes, every
/// reply required, from the correspondent's address.
pub fn ping(
    lab: &Lab,
    ns: &str,
    family: &str,
    dst: &str,
    count: u32,
    ctx: &dyn Fn() -> String,
) -> Result<()> {
    require_tool("ping", "iputils-ping")?;
    let c = count.to_string();
    let out = lab
        .run(
            ns,
            &[
                "ping", family, "-c", &c, "-i", "0.2", "-W", "2", "-s", "1000", dst,
            ],
        )
        .with_context(|| format!("ping {family} {dst} from {ns}\n{}", ctx()))?;
    if !out.contains(&format!("{count} received")) || !out.contains(&format!("bytes from {dst}")) {
        bail!(
            "ping {family} {dst}: not every reply came back:\n{out}\n{}",
            ctx()
        );
    }
    Ok(())
}

/// One byte-for-byte TCP transfer: `dsmip-tcp-check receive` in `to_ns` on `dst:port`,
/// `dsmip-tcp-check send` of `bytes` from `from_ns`. Checks that the sender left from
/// `expect_src`, that the receiver saw the connection from it, and that length and SHA-256
/// agree at both ends and every byte matched the pattern. Returns (sender, receiver).
pub fn tcp_transfer(
    lab: &mut Lab,
    from_ns: &str,
    to_ns: &str,
    dst: &str,
    expect_src: &str,
    bytes: u64,
    ctx: &dyn Fn() -> String,
) -> Result<(Value, Value)> {
    let tcp = bins()?.tcp.to_str().context("path")?.to_string();
    let port = 5001;
    let listen = if dst.contains(':') {
        format!("[{dst}]:{port}")
    } else {
        format!("{dst}:{port}")
    };
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let rlog = lab.dir().join(format!("tcp-recv-{n}.log"));
    let seed = 1000 + u64::from(n);
    let seed_s = seed.to_string();
    let rpid = lab.spawn(
        to_ns,
        &[
            &tcp,
            "receive",
            "--listen",
            &listen,
            "--seed",
            &seed_s,
            "--timeout-secs",
            "60",
        ],
        &rlog,
    )?;
    if !wait_log(&rlog, "listening", 10) {
        bail!(
            "dsmip-tcp-check receive did not start: {}",
            fs::read_to_string(&rlog)?
        );
    }
    let bytes_s = bytes.to_string();
    let sent = lab.run(
        from_ns,
        &[
            &tcp,
            "send",
            "--to",
            &listen,
            "--bytes",
            &bytes_s,
            "--seed",
            &seed_s,
            "--expect-source",
            expect_src,
            "--timeout-secs",
            "60",
        ],
    );
    let sent = match sent {
        Ok(s) => s,
        Err(e) => {
            lab.stop(rpid);
            bail!(
                "TCP transfer {expect_src} -> {listen} failed: {e:#}\n{}",
                ctx()
            );
        }
    };
    let done = wait_until(Duration::from_secs(30), || !lab.alive(rpid));
    lab.stop(rpid);
    let recv_text = fs::read_to_string(&rlog)?;
    if !done {
        bail!("the receiver did not finish: {recv_text}\n{}", ctx());
    }
    let last_json = |t: &str| -> Result<Value> {
        let line = t
            .lines()
            .rev()
            .find(|l| l.contains("\"role\""))
            .with_context(|| format!("no report in: {t}"))?;
        Ok(serde_json::from_str(line)?)
    };
    let s = last_json(&sent)?;
    let r = last_json(&recv_text)?;
    if s["bytes"] != bytes || r["bytes"] != bytes {
        bail!("length differs: sent {s}, received {r}");
    }
    if s["sha256"] != r["sha256"] || !r["sha256"].is_string() {
        bail!("SHA-256 differs: sent {s}, received {r}");
    }
    if !r["first_mismatch"].is_null() {
        bail!("bytes differ from the pattern: {r}");
    }
    let peer_ip = r["peer"]
        .as_str()
        .and_then(|p| p.rsplit_once(':'))
        .map(|(h, _)| h.trim_matches(['[', ']']).to_string())
        .unwrap_or_default();
    if peer_ip != expect_src {
        bail!("the receiver saw the connection from {peer_ip}, not {expect_src}: {r}");
    }
    Ok((s, r))
}

static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// tcpdump on `iface` in `ns`, writing `name` in the lab folder; stop it with
/// `lab.stop(pid)` (which flushes it) before reading.
pub fn capture(lab: &mut Lab, ns: &str, iface: &str, name: &str) -> Result<(u32, PathBuf)> {
    require_tool("tcpdump", "tcpdump")?;
    let pcap = lab.dir().join(name);
    let log = lab.dir().join(format!("{name}.log"));
    let p = pcap.to_str().context("path")?.to_string();
    let pid = lab.spawn(
        ns,
        &[
            "tcpdump",
            "--immediate-mode",
            "-n",
            "-U",
            "-i",
            iface,
            "-s",
            "256",
            "-w",
            &p,
        ],
        &log,
    )?;
    if !wait_log(&log, "listening on", 10) {
        bail!("tcpdump did not start: {}", fs::read_to_string(&log)?);
    }
    Ok((pid, pcap))
}

/// tshark over a capture with UDP 4191 decoded as IPv6 (the signalling, RFC 5555 §4.1):
/// one line per packet matching `filter`, the given fields separated by tabs.
pub fn tshark(pcap: &Path, filter: &str, fields: &[&str]) -> Result<Vec<String>> {
    require_tool("tshark", "tshark")?;
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-d", "udp.port==4191,ipv6", "-r"])
        .arg(pcap)
        .args(["-Y", filter, "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "tshark -Y {filter}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .map(str::to_string)
        .collect())
}
