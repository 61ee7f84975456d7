//! `dsmip-mn` against `dsmip-ha`, both real daemons in lab namespaces, through a real
//! nftables NAT:
//!
//! ```text
//!   mn 10.1.0.2 (dsmip-mn) --- nat 10.1.0.1 | 192.0.2.2 (masquerade) --- ha 192.0.2.1 (dsmip-ha)
//! ```
//!
//! The home agent requires IPsec, so a registration proves the whole chain: the mobile
//! node's IKEv2 initiator (PSK, NAT-T), the transport-mode CHILD_SA with MH selectors, the
//! BU as `IPv4 / UDP 4191 / IPv6 / ESP / MH`, the ESP-protected BA fed to the engine.
//! Needs root, iproute2 and nftables.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use interop::lab::{wait_until, workspace_binary, Lab};
use serde_json::Value;

const HOA: &str = "2001:db8:1::100";

fn ha_config(dir: &Path, data: bool) -> String {
    let tun = if data {
        "tun = \"dsmha0\"\nhome_link = \"home0\"\n"
    } else {
        ""
    };
    format!(
        r#"[daemon]
lease_file = "{dir}/leases.redb"
control_socket = "{dir}/ha.sock"
{tun}
[home_agent]
address = "2001:db8:1::1"
address_v4 = "192.0.2.1"
home_prefixes = ["2001:db8:1::/64"]
max_lifetime = 400

[[home_agent.ipv4_pool]]
range = "198.51.100.0/28"
exclude = ["198.51.100.1/32"]

[ipsec]
local_id = "ha.example.org"
psk = "lab-only-pre-shared-key"

[[ipsec.peer]]
id = "mn@example.org"
home_address = "{HOA}"
"#,
        dir = dir.display()
    )
}

fn mn_config(dir: &Path, data: bool) -> String {
    mn_config_with(dir, data, "never", true)
}

/// `data_esp` is `[ipsec] data_esp`; without `pinned` the care-of addresses are the
/// host's, followed through netlink.
fn mn_config_with(dir: &Path, data: bool, data_esp: &str, pinned: bool) -> String {
    let tun = if data {
        "tun = \"dsmmn0\"\nroutes = [\"203.0.113.0/24\", \"2001:db8:1::/64\"]\n"
    } else {
        ""
    };
    let addresses = if pinned {
        "addresses = [\"10.1.0.2\"]\n"
    } else {
        ""
    };
    format!(
        r#"[daemon]
control_socket = "{dir}/mn.sock"
{addresses}shutdown_timeout_ms = 3000
{tun}
[mobile_node]
home_address = "{HOA}"
lifetime_secs = 400
ipv4_home = {{ mode = "dynamic" }}

[mobile_node.home_agent]
ipv6 = "2001:db8:1::1"
ipv4 = "192.0.2.1"

[ipsec]
local_id = "mn@example.org"
remote_id = "ha.example.org"
psk = "lab-only-pre-shared-key"
data_esp = "{data_esp}"
"#,
        dir = dir.display()
    )
}

fn no_setup(_: &Lab, _: &str, _: &str, _: &str) -> Result<()> {
    Ok(())
}

/// `BIN WHAT --json --socket SOCKET`, parsed.
fn ctl(bin: &Path, what: &str, socket: &Path) -> Result<Value> {
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

fn wait_log(log: &Path, needle: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || {
        fs::read_to_string(log).is_ok_and(|l| l.contains(needle))
    })
}

/// Both daemons running in the lab, the mobile node registered; with `data`, a
/// correspondent on the home link (cn 203.0.113.2, 2001:db8:1::2 — ha home0) and both TUN
/// data planes.
struct Rig {
    lab: Lab,
    mn: String,
    nat: String,
    ha: String,
    ha_bin: PathBuf,
    mn_bin: PathBuf,
    ha_sock: PathBuf,
    mn_sock: PathBuf,
    ha_log: PathBuf,
    mn_log: PathBuf,
    ha_pid: u32,
    mn_pid: u32,
    cap_pid: u32,
}

impl Rig {
    fn start(tag: &str, data: bool) -> Result<Rig> {
        Rig::start_with(tag, data, |dir| mn_config(dir, data), no_setup)
    }

    /// `mn_conf` writes the mobile node's configuration for the lab directory.
    /// `setup(lab, mn, nat, ha)` runs on the topology before the daemons start.
    fn start_with(
        tag: &str,
        data: bool,
        mn_conf: impl Fn(&Path) -> String,
        setup: fn(&Lab, &str, &str, &str) -> Result<()>,
    ) -> Result<Rig> {
        Rig::start_full(tag, data, |dir| ha_config(dir, data), mn_conf, setup)
    }

    /// As [`Rig::start_with`], and `ha_conf` writes the home agent's configuration.
    fn start_full(
        tag: &str,
        data: bool,
        ha_conf: impl Fn(&Path) -> String,
        mn_conf: impl Fn(&Path) -> String,
        setup: fn(&Lab, &str, &str, &str) -> Result<()>,
    ) -> Result<Rig> {
        let ha_bin = workspace_binary("ha", "dsmip-ha")?;
        let mn_bin = workspace_binary("mn", "dsmip-mn")?;
        interop::lab::require_tool("nft", "nftables")?;
        let mut lab = Lab::new(tag)?;
        let t = lab.nat_topology(data)?;
        let (mn, nat, ha) = (t.mn, t.nat, t.ha);
        setup(&lab, &mn, &nat, &ha)?;
        let dir = lab.dir().to_path_buf();
        let (ha_conf_text, mn_conf_text) = (ha_conf, mn_conf);
        let (ha_conf, mn_conf) = (dir.join("ha.toml"), dir.join("mn.toml"));
        fs::write(&ha_conf, ha_conf_text(&dir))?;
        fs::write(&mn_conf, mn_conf_text(&dir))?;
        let (ha_log, mn_log) = (dir.join("ha.log"), dir.join("mn.log"));
        let path = |p: &Path| p.to_str().map(str::to_string).context("path");
        let ha_argv = [
            path(&ha_bin)?,
            "run".into(),
            "--config".into(),
            path(&ha_conf)?,
        ];
        let ha_argv: Vec<&str> = ha_argv.iter().map(String::as_str).collect();
        let ha_pid = lab.spawn(&ha, &ha_argv, &ha_log)?;
        if !wait_log(&ha_log, "dsmip-ha running", 10) {
            bail!("dsmip-ha did not start: {}", fs::read_to_string(&ha_log)?);
        }
        // Everything on UDP 4191, and all IPv6, between the NAT and the home agent.
        interop::lab::require_tool("tcpdump", "tcpdump")?;
        let cap_log = dir.join("tcpdump.log");
        let pcap = path(&dir.join("nat.pcap"))?;
        let cap_argv = [
            "tcpdump",
            "--immediate-mode",
            "-n",
            "-U",
            "-i",
            "out0",
            "-w",
            &pcap,
            "udp port 4191 or ip6",
        ];
        let cap_pid = lab.spawn(&nat, &cap_argv, &cap_log)?;
        if !wait_log(&cap_log, "listening on", 10) {
            bail!("tcpdump did not start: {}", fs::read_to_string(&cap_log)?);
        }
        let mn_argv = [
            path(&mn_bin)?,
            "run".into(),
            "--config".into(),
            path(&mn_conf)?,
            "--log-format".into(),
            "json".into(),
        ];
        let mn_argv: Vec<&str> = mn_argv.iter().map(String::as_str).collect();
        let mn_pid = lab.spawn(&mn, &mn_argv, &mn_log)?;
        let rig = Rig {
            lab,
            mn,
            nat,
            ha,
            ha_bin,
            mn_bin,
            ha_sock: dir.join("ha.sock"),
            mn_sock: dir.join("mn.sock"),
            ha_log,
            mn_log,
            ha_pid,
            mn_pid,
            cap_pid,
        };
        // Registration: IKE through the NAT, then the ESP-protected BU/BA.
        let registered = wait_until(Duration::from_secs(20), || {
            ctl(&rig.mn_bin, "status", &rig.mn_sock).is_ok_and(|v| v["state"] == "registered")
        });
        if !registered {
            bail!(
                "dsmip-mn did not register\n--- mn ---\n{}\n--- ha ---\n{}",
                rig.mn_text(),
                rig.ha_text()
            );
        }
        Ok(rig)
    }

    fn mn_text(&self) -> String {
        fs::read_to_string(&self.mn_log).unwrap_or_default()
    }

    fn ha_text(&self) -> String {
        fs::read_to_string(&self.ha_log).unwrap_or_default()
    }
}

#[test]
fn mobile_node_registers_through_nat_and_deregisters_on_sigterm() -> Result<()> {
    let mut rig = Rig::start("mnd", false)?;
    let (ha_bin, mn_bin) = (rig.ha_bin.clone(), rig.mn_bin.clone());
    let (ha_sock, mn_sock) = (rig.ha_sock.clone(), rig.mn_sock.clone());
    let (ha_pid, mn_pid) = (rig.ha_pid, rig.mn_pid);
    let (mn_log, ha_log) = (rig.mn_log.clone(), rig.ha_log.clone());
    let mn_text = || fs::read_to_string(&mn_log).unwrap_or_default();
    let ha_text = || fs::read_to_string(&ha_log).unwrap_or_default();
    let st = ctl(&mn_bin, "status", &mn_sock)?;
    let b = ctl(&ha_bin, "bindings", &ha_sock)?;
    let b = b
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .with_context(|| format!("no binding at the home agent: {b}"))?;

    // Both daemons tell the same story.
    assert_eq!(st["home_address"], HOA, "{st}");
    assert_eq!(b["home_address"], HOA, "{b}");
    let v4 = st["ipv4_home_address"]
        .as_str()
        .context("no IPv4 home address")?;
    assert!(
        v4.starts_with("198.51.100."),
        "dynamic address from the pool: {st}"
    );
    assert_ne!(v4, "198.51.100.1/32", "the excluded address: {st}");
    assert_eq!(b["ipv4_home_address"], v4, "{b}\n{st}");
    assert_eq!(st["care_of_address"], "10.1.0.2", "{st}");
    assert_eq!(b["care_of_address"], "10.1.0.2", "{b}");
    assert_eq!(b["peer"], "192.0.2.2", "the NAT's address: {b}");
    assert!(b["udp_port"].as_u64().is_some_and(|p| p > 0), "{b}");
    assert_eq!(st["nat"], true, "{st}");
    assert_eq!(b["nat"], true, "{b}");
    assert_eq!(st["encapsulation"], "udp", "{st}");
    assert_eq!(b["encapsulation"], "udp", "{b}");
    assert_eq!(st["sequence"], b["sequence"], "{st}\n{b}");
    assert_eq!(st["ike"]["established"], true, "{st}");
    assert_eq!(st["ike"]["nat_local"], true, "{st}");
    // Our inbound SA is the home agent's outbound one and vice versa.
    assert!(st["sa_spis"].is_object(), "{st}");
    assert_eq!(st["sa_spis"]["in"], b["sa_spis"]["out"], "{st}\n{b}");
    assert_eq!(st["sa_spis"]["out"], b["sa_spis"]["in"], "{st}\n{b}");
    let st_spis = (
        st["sa_spis"]["in"].as_str().unwrap_or_default().to_string(),
        st["sa_spis"]["out"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let left_mn = st["lifetime_left"].as_u64().context("lifetime_left")?;
    let left_ha = b["lifetime_left"].as_u64().context("lifetime_left")?;
    assert!((390..=400).contains(&left_mn), "{st}");
    assert!(left_mn.abs_diff(left_ha) <= 5, "{st}\n{b}");
    assert_eq!(st["counters"]["ba_accepted"], 1, "{st}");
    assert_eq!(st["counters"]["bu_held_no_sa"], 0, "{st}");
    // The human form.
    let human = Command::new(&mn_bin)
        .args(["status", "--socket"])
        .arg(&mn_sock)
        .output()?;
    let human = String::from_utf8(human.stdout)?;
    assert!(human.contains("state           registered"), "{human}");
    assert!(human.contains(v4), "{human}");

    // SIGTERM: deregistration (lifetime 0) acknowledged, IKE SA deleted, clean exit.
    let st = Command::new("kill")
        .args(["-TERM", &mn_pid.to_string()])
        .status()?;
    assert!(st.success());
    let exited = wait_until(Duration::from_secs(6), || !rig.lab.alive(mn_pid));
    rig.lab.stop(mn_pid);
    assert!(exited, "dsmip-mn ignored SIGTERM: {}", mn_text());
    let log = mn_text();
    assert!(log.contains("deregistering (lifetime 0)"), "{log}");
    assert!(log.contains("shutdown: deregistered"), "{log}");
    assert!(!mn_sock.exists(), "control socket left behind");
    for l in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value =
            serde_json::from_str(l).with_context(|| format!("not a JSON log line: {l}"))?;
        assert!(v["level"].is_string(), "{l}");
    }
    assert!(
        !log.contains("lab-only-pre-shared-key"),
        "the PSK leaked into the log"
    );
    let b = ctl(&ha_bin, "bindings", &ha_sock)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "binding left: {b}");
    // The IPv4 home address lease outlives the binding (RFC 5555 §3.1.1).
    let leases = ctl(&ha_bin, "leases", &ha_sock)?;
    assert_eq!(leases[0]["home_address"], HOA, "{leases}");
    assert_eq!(leases[0]["ipv4"], v4, "{leases}");
    // The home agent saw the IKE SA deleted.
    let gone = wait_until(Duration::from_secs(3), || {
        ha_text().contains("CHILD_SA removed")
    });
    assert!(gone, "home agent did not remove the SA: {}", ha_text());
    // On the wire (RFC 4877 §4.1): every BU and BA through the NAT is ESP inside UDP 4191,
    // never a cleartext Mobility Header. Wireshark decodes UDP 4191 as IPv6.
    interop::lab::require_tool("tshark", "tshark")?;
    // Ending tcpdump flushes its last packets.
    let cap_pid = rig.cap_pid;
    rig.lab.stop(cap_pid);
    let pcap = rig.lab.dir().join("nat.pcap");
    let fields = |filter: &str| -> Result<Vec<String>> {
        let out = Command::new("tshark")
            .args(["-n", "-d", "udp.port==4191,ipv6", "-r"])
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields", "-e", "esp.spi"])
            .output()?;
        if !out.status.success() {
            bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_string)
            .collect())
    };
    assert_eq!(
        fields("mipv6")?.len(),
        0,
        "cleartext Mobility Header on the wire"
    );
    let esp = fields("esp")?;
    // Registration BU + BA, deregistration BU + BA.
    let all = Command::new("tshark")
        .args(["-n", "-d", "udp.port==4191,ipv6", "-r"])
        .arg(&pcap)
        .args(["-T", "fields", "-e", "frame.protocols"])
        .output()?;
    let all = format!(
        "{}\n{}\npcap bytes: {:?}\ntcpdump: {}",
        String::from_utf8_lossy(&all.stdout),
        String::from_utf8_lossy(&all.stderr),
        fs::metadata(&pcap).map(|m| m.len()),
        fs::read_to_string(rig.lab.dir().join("tcpdump.log")).unwrap_or_default()
    );
    assert!(esp.len() >= 4, "ESP packets on UDP 4191: {esp:?}\n{all}");
    let spis: std::collections::BTreeSet<&str> = esp.iter().map(String::as_str).collect();
    let ours = [
        st_spis.0.trim_start_matches("0x").to_string(),
        st_spis.1.trim_start_matches("0x").to_string(),
    ];
    for spi in &spis {
        assert!(
            ours.iter().any(|o| spi.ends_with(o.as_str())),
            "ESP with an SPI that is not the BU/BA SA: {spi} not in {ours:?}"
        );
    }
    rig.lab.stop(ha_pid);
    Ok(())
}

#[test]
fn check_config_names_file_line_and_key() -> Result<()> {
    let bin = workspace_binary("mn", "dsmip-mn")?;
    let dir = std::env::temp_dir().join(format!("dsmip-mn-check-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let good = dir.join("good.toml");
    fs::write(&good, mn_config(&dir, false))?;
    let out = Command::new(&bin).arg("check-config").arg(&good).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(": ok (home address 2001:db8:1::100"),
        "{text}"
    );

    let bad = dir.join("bad.toml");
    fs::write(
        &bad,
        mn_config(&dir, false).replace("lifetime_secs = 400", "lifetime_secs = 401"),
    )?;
    let out = Command::new(&bin).arg("check-config").arg(&bad).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!(
            "{}:8: key `mobile_node.lifetime_secs`",
            bad.display()
        )),
        "{err}"
    );
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// Priority 4 of the slice: the TUN device carries the home addresses, so an unmodified
/// `ping` in the mobile node's namespace reaches the correspondent on the home link from
/// the IPv4 and the IPv6 home address, through the NAT and the home agent (UDP 4191 tunnel).
#[test]
fn unmodified_ping_over_both_home_addresses_through_the_home_agent() -> Result<()> {
    interop::lab::require_tool("ping", "iputils-ping")?;
    let mut rig = Rig::start("mndata", true)?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    let v4 = st["ipv4_home_address"]
        .as_str()
        .and_then(|a| a.strip_suffix("/32"))
        .with_context(|| format!("no IPv4 home address: {st}"))?
        .to_string();
    // The home addresses are on the mobile node's TUN device.
    let addrs = rig
        .lab
        .run(&rig.mn, &["ip", "-o", "addr", "show", "dev", "dsmmn0"])?;
    assert!(addrs.contains(&format!("inet {v4}/32")), "{addrs}");
    assert!(addrs.contains(&format!("inet6 {HOA}/128")), "{addrs}");

    for (family, dst) in [("-4", "203.0.113.2"), ("-6", "2001:db8:1::2")] {
        let out = rig.lab.run(
            &rig.mn,
            &[
                "ping", family, "-c", "3", "-i", "0.2", "-W", "2", "-s", "1000", dst,
            ],
        );
        let out = out.with_context(|| {
            format!(
                "ping {dst} failed\n--- mn ---\n{}\n--- ha ---\n{}",
                rig.mn_text(),
                rig.ha_text()
            )
        })?;
        assert!(out.contains("3 received"), "{out}");
        // The reply came from the correspondent to the home address, not the care-of one.
        let from = format!("bytes from {dst}");
        assert!(out.contains(&from), "{out}");
    }
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    let t = &st["tunnel"];
    assert!(t["tx_packets"].as_u64().is_some_and(|n| n >= 6), "{st}");
    assert!(t["rx_packets"].as_u64().is_some_and(|n| n >= 6), "{st}");
    assert!(
        t["rx_bytes"].as_u64().is_some_and(|n| n >= 6 * 1000),
        "{st}"
    );
    let b = ctl(&rig.ha_bin, "bindings", &rig.ha_sock)?;
    assert_eq!(b[0]["encapsulation"], "udp", "{b}");

    // SIGTERM: deregistered, so the home agent drops the IPv4 route to the NAT.
    let ok = Command::new("kill")
        .args(["-TERM", &rig.mn_pid.to_string()])
        .status()?;
    assert!(ok.success());
    let mn_pid = rig.mn_pid;
    let exited = wait_until(Duration::from_secs(6), || !rig.lab.alive(mn_pid));
    assert!(exited, "dsmip-mn ignored SIGTERM: {}", rig.mn_text());
    assert!(rig.mn_text().contains("shutdown: deregistered"));
    let b = ctl(&rig.ha_bin, "bindings", &rig.ha_sock)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "{b}");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}

/// `ping -c 3` from the mobile node's namespace to the correspondent (both families), every
/// reply from the correspondent itself; the daemons' logs on failure.
fn ping_both(rig: &Rig, what: &str) -> Result<()> {
    for (family, dst) in [("-4", "203.0.113.2"), ("-6", "2001:db8:1::2")] {
        let out = rig.lab.run(
            &rig.mn,
            &[
                "ping", family, "-c", "3", "-i", "0.2", "-W", "2", "-s", "1000", dst,
            ],
        );
        let out = out.with_context(|| {
            format!(
                "ping {dst} {what} failed\n--- mn ---\n{}\n--- ha ---\n{}",
                rig.mn_text(),
                rig.ha_text()
            )
        })?;
        assert!(out.contains("3 received"), "{what}: {out}");
        assert!(out.contains(&format!("bytes from {dst}")), "{what}: {out}");
    }
    Ok(())
}

/// The home agent's one binding.
fn ha_binding(rig: &Rig) -> Result<Value> {
    let b = ctl(&rig.ha_bin, "bindings", &rig.ha_sock)?;
    b.as_array()
        .and_then(|a| a.first())
        .cloned()
        .with_context(|| format!("no binding at the home agent: {b}"))
}

/// Wait until both daemons show `coa` as the care-of address.
fn wait_coa(rig: &Rig, coa: &str) -> Result<()> {
    let moved = wait_until(Duration::from_secs(20), || {
        ctl(&rig.mn_bin, "status", &rig.mn_sock)
            .is_ok_and(|v| v["care_of_address"] == coa && v["state"] == "registered")
            && ha_binding(rig).is_ok_and(|b| b["care_of_address"] == coa)
    });
    if !moved {
        bail!(
            "the binding did not move to {coa}\n--- mn ---\n{}\n--- ha ---\n{}",
            rig.mn_text(),
            rig.ha_text()
        );
    }
    Ok(())
}

/// Movement inside the visited network: a new subnet behind the same NAT (10.1.1.0/24),
/// the new address added, the default route moved, the old address deleted.
fn move_behind_the_nat(rig: &Rig) -> Result<()> {
    let (lab, mn, nat) = (&rig.lab, &rig.mn, &rig.nat);
    lab.run(nat, &["ip", "addr", "add", "10.1.1.1/24", "dev", "in0"])?;
    lab.run(mn, &["ip", "addr", "add", "10.1.1.2/24", "dev", "eth0"])?;
    lab.run(
        mn,
        &["ip", "route", "replace", "default", "via", "10.1.1.1"],
    )?;
    lab.run(mn, &["ip", "addr", "del", "10.1.0.2/24", "dev", "eth0"])?;
    Ok(())
}

/// Movement from behind the NAT to a public address (198.51.100.66/26, the NAT box now a
/// plain router for it: masquerade only for 10.0.0.0/8; the home agent routes the /26 back).
fn move_to_public(rig: &Rig, old: &str) -> Result<()> {
    let (lab, mn, nat, ha) = (&rig.lab, &rig.mn, &rig.nat, &rig.ha);
    lab.nft(
        nat,
        "private-only",
        "flush table ip dsmip_nat\nadd rule ip dsmip_nat post oifname \"out0\" ip saddr 10.0.0.0/8 masquerade\n",
    )?;
    lab.run(
        ha,
        &["ip", "route", "add", "198.51.100.64/26", "via", "192.0.2.2"],
    )?;
    lab.run(
        nat,
        &["ip", "addr", "add", "198.51.100.65/26", "dev", "in0"],
    )?;
    lab.run(
        mn,
        &["ip", "addr", "add", "198.51.100.66/26", "dev", "eth0"],
    )?;
    lab.run(
        mn,
        &["ip", "route", "replace", "default", "via", "198.51.100.65"],
    )?;
    lab.run(mn, &["ip", "addr", "del", old, "dev", "eth0"])?;
    Ok(())
}

/// Issue 8, movement (RFC 5555 §4.4.1, §5.1): the mobile node follows its addresses through
/// netlink. Behind the NAT (UDP 4191 tunnel), to another subnet behind the same NAT, then to
/// a public address (IP-in-IP, protocols 4 and 41 on raw sockets): the home agent's binding
/// follows each time, K is acknowledged and the IKE SA is told with an empty INFORMATIONAL
/// from the new address, ping keeps working over both home addresses, and the final
/// deregistration still goes through the moved IKE/ESP state.
#[test]
fn movement_is_followed_with_the_plain_tunnels() -> Result<()> {
    interop::lab::require_tool("ping", "iputils-ping")?;
    let mut rig = Rig::start_with(
        "mnmove",
        true,
        |d| mn_config_with(d, true, "never", false),
        no_setup,
    )?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["care_of_address"], "10.1.0.2", "{st}");
    assert!(st["data_sa"].is_null(), "data_esp = never: {st}");
    ping_both(&rig, "before moving")?;

    move_behind_the_nat(&rig)?;
    wait_coa(&rig, "10.1.1.2")?;
    let b = ha_binding(&rig)?;
    assert_eq!(b["nat"], true, "{b}");
    assert_eq!(b["encapsulation"], "udp", "{b}");
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["encapsulation"], "udp", "{st}");
    ping_both(&rig, "after moving behind the NAT")?;

    move_to_public(&rig, "10.1.1.2/24")?;
    wait_coa(&rig, "198.51.100.66")?;
    let b = ha_binding(&rig)?;
    assert_eq!(b["nat"], false, "{b}");
    assert_eq!(b["encapsulation"], "ip-in-ip", "{b}");
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["nat"], false, "{st}");
    assert_eq!(st["encapsulation"], "ip-in-ip", "{st}");
    let rx_before = st["tunnel"]["rx_packets"].as_u64().unwrap_or(0);
    ping_both(&rig, "after moving to a public address")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert!(
        st["tunnel"]["rx_packets"]
            .as_u64()
            .is_some_and(|n| n >= rx_before + 6),
        "IP-in-IP replies counted: {st}"
    );

    let log = rig.mn_text();
    assert!(log.contains("address removed"), "{log}");
    assert_eq!(
        log.matches("care-of address confirmed with K").count(),
        2,
        "K acknowledged once per move: {log}"
    );
    assert!(log.contains("empty INFORMATIONAL sent"), "{log}");
    // The home agent's IKE SA ends at our NAT-T socket on the public address: the
    // INFORMATIONAL from there reached it (its log lines, ha/DAEMON.md).
    let ha = rig.ha_text();
    assert!(
        ha.lines()
            .any(|l| l.contains("IKE SA") && l.contains("198.51.100.66:4500")),
        "{ha}"
    );
    // The BU/BA SA and the IKE SA still work from the last address: deregistration.
    let ok = Command::new("kill")
        .args(["-TERM", &rig.mn_pid.to_string()])
        .status()?;
    assert!(ok.success());
    let mn_pid = rig.mn_pid;
    let exited = wait_until(Duration::from_secs(6), || !rig.lab.alive(mn_pid));
    assert!(exited, "dsmip-mn ignored SIGTERM: {}", rig.mn_text());
    assert!(
        rig.mn_text().contains("shutdown: deregistered"),
        "{}",
        rig.mn_text()
    );
    let b = ctl(&rig.ha_bin, "bindings", &rig.ha_sock)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "{b}");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}

/// Issue 8, ESP tunnel mode for data (RFC 5555 §5.2.2, contract): behind the NAT the mobile
/// node negotiates the data SA with CREATE_CHILD_SA after the first BA; both daemons show
/// the same SPIs (crossed), ping over both home addresses travels in ESP in UDP 4500 (the
/// data SA counters move, the UDP 4191 tunnel carries nothing more); after a move to a
/// public address the same SA carries ping as IPv4 protocol 50.
#[test]
fn data_sa_carries_traffic_through_the_nat_and_after_a_move() -> Result<()> {
    interop::lab::require_tool("ping", "iputils-ping")?;
    let mut rig = Rig::start_with(
        "mnesp",
        true,
        |d| mn_config_with(d, true, "auto", false),
        no_setup,
    )?;
    let up = wait_until(Duration::from_secs(15), || {
        ctl(&rig.mn_bin, "status", &rig.mn_sock).is_ok_and(|v| v["data_sa"].is_object())
    });
    if !up {
        bail!(
            "no data SA\n--- mn ---\n{}\n--- ha ---\n{}",
            rig.mn_text(),
            rig.ha_text()
        );
    }
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["data_sa"]["udp"], true, "{st}");
    assert_ne!(st["data_sa"]["spi_in"], st["sa_spis"]["in"], "{st}");
    let b = ha_binding(&rig)?;
    assert_eq!(
        b["data_sa_spis"]["in"], st["data_sa"]["spi_out"],
        "{b}\n{st}"
    );
    assert_eq!(
        b["data_sa_spis"]["out"], st["data_sa"]["spi_in"],
        "{b}\n{st}"
    );
    let spi_in = st["data_sa"]["spi_in"]
        .as_str()
        .context("spi_in")?
        .to_string();
    let spi_out = st["data_sa"]["spi_out"]
        .as_str()
        .context("spi_out")?
        .to_string();
    // The wire, from here on: everything between the NAT box and the home agent that is
    // UDP 4191, UDP 4500 or ESP.
    interop::lab::require_tool("tcpdump", "tcpdump")?;
    interop::lab::require_tool("tshark", "tshark")?;
    let pcap = rig.lab.dir().join("data.pcap");
    let cap_log = rig.lab.dir().join("tcpdump-data.log");
    let pcap_s = pcap.to_str().context("path")?.to_string();
    let nat = rig.nat.clone();
    let cap = rig.lab.spawn(
        &nat,
        &[
            "tcpdump",
            "--immediate-mode",
            "-n",
            "-U",
            "-i",
            "out0",
            "-w",
            &pcap_s,
            "udp port 4191 or udp port 4500 or ip proto 50",
        ],
        &cap_log,
    )?;
    if !wait_log(&cap_log, "listening on", 10) {
        bail!("tcpdump did not start: {}", fs::read_to_string(&cap_log)?);
    }
    let udp_rx = st["tunnel"]["rx_packets"].as_u64().unwrap_or(0);
    ping_both(&rig, "over the data SA in UDP 4500")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    let c = &st["counters"];
    assert!(c["data_sa_tx"].as_u64().is_some_and(|n| n >= 6), "{st}");
    assert!(c["data_sa_rx"].as_u64().is_some_and(|n| n >= 6), "{st}");
    assert_eq!(c["data_sa_rx_errors"], 0, "{st}");
    assert_eq!(c["data_sa_not_ours"], 0, "{st}");
    assert!(
        st["tunnel"]["rx_packets"]
            .as_u64()
            .is_some_and(|n| n >= udp_rx + 6),
        "{st}"
    );
    let esp_rx = c["data_sa_rx"].as_u64().unwrap_or(0);

    move_to_public(&rig, "10.1.0.2/24")?;
    wait_coa(&rig, "198.51.100.66")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["nat"], false, "{st}");
    assert_eq!(st["data_sa"]["udp"], false, "{st}");
    ping_both(&rig, "over the data SA as protocol 50")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert!(
        st["counters"]["data_sa_rx"]
            .as_u64()
            .is_some_and(|n| n >= esp_rx + 6),
        "{st}"
    );
    assert_eq!(st["counters"]["data_sa_rx_errors"], 0, "{st}");

    // Wireshark's view (an oracle of its own): the pings crossed as ESP with the data
    // SA's SPIs, in UDP 4500 behind the NAT and as protocol 50 after the move, and no
    // cleartext ICMP crossed at all (UDP 4191 decoded as the tunnel it would be).
    rig.lab.stop(cap);
    let count = |filter: &str| -> Result<usize> {
        let out = Command::new("tshark")
            .args(["-n", "-d", "udp.port==4191,ipv6", "-r"])
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()?;
        if !out.status.success() {
            bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.lines().count())
    };
    let udp_out = count(&format!("esp.spi == {spi_out} && udp.dstport == 4500"))?;
    let udp_in = count(&format!("esp.spi == {spi_in} && udp.srcport == 4500"))?;
    let raw_out = count(&format!("esp.spi == {spi_out} && ip.proto == 50"))?;
    let raw_in = count(&format!("esp.spi == {spi_in} && ip.proto == 50"))?;
    let clear = count("icmp || icmpv6")?;
    let counts = format!("udp {udp_out}/{udp_in}, raw {raw_out}/{raw_in}, cleartext ICMP {clear}");
    assert!(udp_out >= 6 && udp_in >= 6, "{counts}");
    assert!(raw_out >= 6 && raw_in >= 6, "{counts}");
    assert_eq!(clear, 0, "{counts}");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}

/// IPv6 routed from the mobile node (2001:db8:5::2) through the NAT box (a plain IPv6
/// router) to the home agent (2001:db8:6::1), and the home agent's 2001:db8:1::1 behind it.
fn ipv6_path(lab: &Lab, mn: &str, nat: &str, ha: &str) -> Result<()> {
    lab.run(
        mn,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:5::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    lab.run(
        nat,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:5::1/64",
            "dev",
            "in0",
            "nodad",
        ],
    )?;
    lab.run(
        nat,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:6::2/64",
            "dev",
            "out0",
            "nodad",
        ],
    )?;
    lab.run(
        ha,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:6::1/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    lab.run(
        mn,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:5::1",
        ],
    )?;
    lab.sysctl(nat, "net.ipv6.conf.all.forwarding", "1")?;
    lab.run(
        nat,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            "2001:db8:6::1",
        ],
    )?;
    lab.run(
        ha,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:5::/64",
            "via",
            "2001:db8:6::2",
        ],
    )?;
    Ok(())
}

/// RFC 5555 §4.4.1 with `daemon.ipv6_care_of`: the mobile node has an IPv6 and an IPv4
/// address and tries IPv6 first. Its BUs leave as `IPv6 (CoA -> HA) / Destination Options
/// (Home Address) / ESP / MH` on a raw IPv6 socket; `dsmip-ha` (IPv4 signalling only, and
/// a kernel without MIP6) never answers, so after three BUs the engine falls back to the
/// IPv4 care-of address and registers through the NAT. Wireshark sees the three IPv6 BUs
/// with the home address option and ESP, and no cleartext Mobility Header.
#[test]
fn ipv6_care_of_address_falls_back_to_ipv4_after_three_binding_updates() -> Result<()> {
    interop::lab::require_tool("tshark", "tshark")?;
    let conf = |d: &Path| {
        mn_config_with(d, false, "never", false).replace(
            "shutdown_timeout_ms",
            "ipv6_care_of = true\nshutdown_timeout_ms",
        )
    };
    let mut rig = Rig::start_with("mnv6", false, conf, ipv6_path)?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["care_of_address"], "10.1.0.2", "{st}");
    let log = rig.mn_text();
    assert_eq!(
        log.matches("Binding Update sent over IPv6").count(),
        3,
        "{log}"
    );
    assert!(log.contains("falling back to IPv4"), "{log}");
    // The capture of the NAT's outside (the rig's tcpdump takes IPv6 too): the IPv6 BUs
    // crossed it, routed, not translated.
    let cap_pid = rig.cap_pid;
    rig.lab.stop(cap_pid);
    let pcap = rig.lab.dir().join("nat.pcap");
    let count = |filter: &str| -> Result<usize> {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()?;
        if !out.status.success() {
            bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.lines().count())
    };
    // The BU/BA SA protects them (its outbound SPI); ICMPv6 errors quoting them are not
    // counted.
    let spi_out = st["sa_spis"]["out"].as_str().context("sa_spis")?;
    let bus = count(&format!(
        "ipv6.src == 2001:db8:5::2 && ipv6.dst == 2001:db8:1::1 && ipv6.opt.mipv6.home_address == {HOA} && esp.spi == {spi_out} && !icmpv6"
    ))?;
    assert_eq!(
        bus, 3,
        "IPv6 BUs with the Home Address option and ESP on the wire"
    );
    assert_eq!(count("mipv6")?, 0, "cleartext Mobility Header");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}

/// The lab of [`ipv6_path`] with the home link (data plane) and the home agent reading
/// IPv6 signalling and tunnels on its outside interface.
fn ipv6_home_link(lab: &Lab, mn: &str, nat: &str, ha: &str) -> Result<()> {
    ipv6_path(lab, mn, nat, ha)
}

/// The mobile node with `ipv6_care_of` and a data plane whose IPv6 route is the
/// correspondent only: the home agent's 2001:db8:1::1 must stay outside the TUN device
/// (the outer packets go there).
fn mn_config_v6(d: &Path) -> String {
    mn_config_with(d, true, "never", false)
        .replace(
            "shutdown_timeout_ms",
            "ipv6_care_of = true\nshutdown_timeout_ms",
        )
        .replace("\"2001:db8:1::/64\"", "\"2001:db8:1::2/128\"")
}

/// The home agent with its data plane, reading IPv6 on its outside interface.
fn ha_config_v6(d: &Path) -> String {
    ha_config(d, true).replace(
        "[daemon]\n",
        "[daemon]\nlisten_v6_interfaces = [\"eth0\"]\n",
    )
}

/// SIGTERM while registered from an IPv6 care-of address: the deregistration (lifetime 0,
/// RFC 6275 §11.7.1) leaves over IPv6 and its BA comes back with a type 2 routing header;
/// the home agent has no binding left and the mobile node's nftables table is gone.
#[test]
fn ipv6_care_of_address_deregisters_over_ipv6() -> Result<()> {
    let mut rig = Rig::start_full("mnv6x", true, ha_config_v6, mn_config_v6, ipv6_home_link)?;
    wait_coa(&rig, "2001:db8:5::2")?;
    let tables = rig.lab.run(&rig.mn, &["nft", "list", "tables"])?;
    assert!(tables.contains("dsmip_mn_mip6"), "{tables}");
    let mn_pid = rig.mn_pid;
    Command::new("kill")
        .args(["-TERM", &mn_pid.to_string()])
        .status()?;
    let exited = wait_until(Duration::from_secs(6), || !rig.lab.alive(mn_pid));
    assert!(exited, "dsmip-mn ignored SIGTERM: {}", rig.mn_text());
    let log = rig.mn_text();
    assert!(log.contains("shutdown: deregistered"), "{log}");
    assert!(!log.contains("falling back to IPv4"), "{log}");
    // Registration and deregistration: at least two BUs over IPv6.
    assert!(
        log.matches("Binding Update sent over IPv6").count() >= 2,
        "{log}"
    );
    let b = ctl(&rig.ha_bin, "bindings", &rig.ha_sock)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "{b}");
    let tables = rig.lab.run(&rig.mn, &["nft", "list", "tables"])?;
    assert!(!tables.contains("dsmip_mn_mip6"), "{tables}");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}

/// Issue 8, scenario 5 (RFC 5555 §4.4.1, RFC 6275 §11.7.1, RFC 2473): a dual-stack visited
/// network, `dsmip-ha` with `listen_v6_interfaces`. The mobile node registers its IPv6
/// care-of address: the BU as `IPv6 / Destination Options (HoA) / ESP / MH`, the BA as
/// `IPv6 (HA -> CoA) / type 2 routing header (HoA) / ESP / MH`, read from the packet
/// socket past the kernel (no CONFIG_IPV6_MIP6) and opened with the BU/BA SA. Ping from
/// both home addresses runs over IPv6-in-IPv6 and IPv4-in-IPv6 (tshark sees protocols 41
/// and 4 between care-of address and home agent both ways, no ICMPv6 Parameter Problem at
/// all). Then IPv6 towards the home agent is blackholed and the mobile node moves to a new
/// IPv6 address: three unanswered BUs, the fallback to the IPv4 care-of address behind the
/// NAT, and ping works again through the UDP 4191 tunnel.
#[test]
fn ipv6_care_of_address_carries_both_families_then_falls_back_when_blackholed() -> Result<()> {
    interop::lab::require_tool("tshark", "tshark")?;
    interop::lab::require_tool("ping", "iputils-ping")?;
    // The route for the correspondent only: the home agent's 2001:db8:1::1 must stay
    // outside the TUN device (the outer packets go there).
    let mut rig = Rig::start_full("mnv6d", true, ha_config_v6, mn_config_v6, ipv6_home_link)?;
    let coa = "2001:db8:5::2";
    wait_coa(&rig, coa)?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    let b = ha_binding(&rig)?;
    assert_eq!(b["care_of_address"], coa, "{b}");
    assert_eq!(st["care_of_address"], coa, "{st}");
    assert_eq!(st["nat"], false, "{st}");
    assert_eq!(st["encapsulation"], "ip-in-ip", "{st}");
    assert_eq!(b["encapsulation"], "ip-in-ip", "{b}");
    assert!(st["ipv4_home_address"].is_string(), "{st}");
    assert_eq!(st["ipv4_home_address"], b["ipv4_home_address"], "{st} {b}");
    let log = rig.mn_text();
    assert!(log.contains("Binding Update sent over IPv6"), "{log}");
    assert!(!log.contains("falling back to IPv4"), "{log}");
    let before = st["tunnel"]["rx_packets"].as_u64().unwrap_or(0);
    ping_both(&rig, "over the IPv6 care-of address")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    let rx = st["tunnel"]["rx_packets"].as_u64().unwrap_or(0);
    assert!(rx >= before + 6, "{st}");
    assert_eq!(st["counters"]["ba_dropped"], 0, "{st}");
    let spis = (
        st["sa_spis"]["in"].as_str().context("sa_spis")?.to_string(),
        st["sa_spis"]["out"]
            .as_str()
            .context("sa_spis")?
            .to_string(),
    );

    // IPv6 to the home agent blackholed at the NAT box; the mobile node moves to a new
    // IPv6 address: three BUs without an answer, then IPv4 (RFC 5555 §4.4.1).
    rig.lab.blackhole_ipv6(&rig.nat, "2001:db8:1::1")?;
    let (lab, mn) = (&rig.lab, &rig.mn);
    lab.run(
        mn,
        &[
            "ip",
            "addr",
            "add",
            "2001:db8:5::3/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    lab.run(
        mn,
        &["ip", "addr", "del", "2001:db8:5::2/64", "dev", "eth0"],
    )?;
    let fell_back = wait_log(&rig.mn_log, "falling back to IPv4", 30);
    assert!(fell_back, "no fallback\n--- mn ---\n{}", rig.mn_text());
    wait_coa(&rig, "10.1.0.2")?;
    let st = ctl(&rig.mn_bin, "status", &rig.mn_sock)?;
    assert_eq!(st["nat"], true, "{st}");
    assert_eq!(st["encapsulation"], "udp", "{st}");
    ping_both(&rig, "after the fallback to IPv4")?;
    let log = rig.mn_text();
    let from_new = log
        .lines()
        .filter(|l| l.contains("Binding Update sent over IPv6") && l.contains("2001:db8:5::3"))
        .count();
    assert_eq!(from_new, 3, "{log}");

    // The wire (NAT box outside, IPv6 routed): the BA with its type 2 routing header and
    // ESP of the BU/BA SA, the tunnels both ways, and not one Parameter Problem.
    let cap_pid = rig.cap_pid;
    rig.lab.stop(cap_pid);
    let pcap = rig.lab.dir().join("nat.pcap");
    let count = |filter: &str| -> Result<usize> {
        let out = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(&pcap)
            .args(["-Y", filter, "-T", "fields", "-e", "frame.number"])
            .output()?;
        if !out.status.success() {
            bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8(out.stdout)?.lines().count())
    };
    let (ha6, coa6) = ("2001:db8:1::1", coa);
    let bas = count(&format!(
        "ipv6.src == {ha6} && ipv6.dst == {coa6} && ipv6.routing.type == 2 && ipv6.routing.mipv6.home_address == {HOA} && esp.spi == {}",
        spis.0
    ))?;
    assert!(bas >= 1, "BAs with a type 2 routing header and ESP: {bas}");
    let bus = count(&format!(
        "ipv6.src == {coa6} && ipv6.dst == {ha6} && ipv6.opt.mipv6.home_address == {HOA} && esp.spi == {}",
        spis.1
    ))?;
    assert!(bus >= 1, "BUs with the Home Address option and ESP: {bus}");
    for (nxt, what) in [(41, "IPv6 in IPv6"), (4, "IPv4 in IPv6")] {
        let out = count(&format!(
            "ipv6.src == {coa6} && ipv6.dst == {ha6} && ipv6.nxt == {nxt}"
        ))?;
        let back = count(&format!(
            "ipv6.src == {ha6} && ipv6.dst == {coa6} && ipv6.nxt == {nxt}"
        ))?;
        eprintln!("{what}: {out} out, {back} back");
        assert!(out >= 3 && back >= 3, "{what}: {out} out, {back} back");
    }
    eprintln!("IPv6 care-of address on the wire: {bus} BUs, {bas} BAs with RH2; binding {b}");
    assert_eq!(
        count("icmpv6.type == 4")?,
        0,
        "ICMPv6 Parameter Problem on the wire"
    );
    assert_eq!(count("mipv6")?, 0, "cleartext Mobility Header");

    // SIGTERM: deregistered from the IPv4 care-of address, the nftables table removed.
    let mn_pid = rig.mn_pid;
    Command::new("kill")
        .args(["-TERM", &mn_pid.to_string()])
        .status()?;
    let exited = wait_until(Duration::from_secs(6), || !rig.lab.alive(mn_pid));
    assert!(exited, "dsmip-mn ignored SIGTERM: {}", rig.mn_text());
    assert!(
        rig.mn_text().contains("shutdown: deregistered"),
        "{}",
        rig.mn_text()
    );
    let tables = rig.lab.run(&rig.mn, &["nft", "list", "tables"])?;
    assert!(!tables.contains("dsmip_mn_mip6"), "{tables}");
    let ha_pid = rig.ha_pid;
    rig.lab.stop(ha_pid);
    Ok(())
}
