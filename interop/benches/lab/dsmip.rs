//! The dsmip side of the lab bench: `dsmip-ha` and `dsmip-mn` (release builds) in
//! `Lab::nat_topology(true)`, configured as in `interop/tests/mn_daemon.rs` with both TUN
//! data planes; one mobile node start measured from spawn to its `registered` log line.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use interop::lab::{wait_until, Lab, NatTopology};
use serde_json::Value;

use crate::measure::{epoch_secs, parse_rfc3339_utc};

pub const HOA: &str = "2001:db8:1::100";

fn ha_config(dir: &Path) -> String {
    format!(
        r#"[daemon]
lease_file = "{dir}/leases.redb"
control_socket = "{dir}/ha.sock"
tun = "dsmha0"
home_link = "home0"

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

/// The mobile node's file; `data_esp` adds `[ipsec] data_esp = "<value>"`.
fn mn_config(dir: &Path, data_esp: Option<&str>) -> String {
    let esp = data_esp.map_or(String::new(), |v| format!("data_esp = \"{v}\"\n"));
    format!(
        r#"[daemon]
control_socket = "{dir}/mn.sock"
addresses = ["10.1.0.2"]
shutdown_timeout_ms = 3000
tun = "dsmmn0"
routes = ["203.0.113.0/24", "2001:db8:1::/64"]

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
{esp}"#,
        dir = dir.display()
    )
}

/// Milestones of one mobile node start, in ms after the spawn.
#[derive(Debug, Clone, Copy)]
pub struct Registration {
    /// `IKE_SA_INIT sent`.
    pub ike_start: f64,
    /// `transport-mode CHILD_SA up for BU/BA`.
    pub child_up: f64,
    /// The home agent's `Binding Acknowledgement sent` for this registration.
    pub ba_sent: f64,
    /// `registered` (the BA accepted).
    pub registered: f64,
}

/// Both daemons' binaries and the lab they run in.
pub struct Dsmip {
    pub lab: Lab,
    pub topo: NatTopology,
    ha_bin: PathBuf,
    mn_bin: PathBuf,
    ha_pid: Option<u32>,
    runs: u32,
}

impl Dsmip {
    pub fn new(ha_bin: PathBuf, mn_bin: PathBuf) -> Result<Dsmip> {
        let mut lab = Lab::new("labbench")?;
        let topo = lab.nat_topology(true)?;
        Ok(Dsmip {
            lab,
            topo,
            ha_bin,
            mn_bin,
            ha_pid: None,
            runs: 0,
        })
    }

    pub fn start_ha(&mut self) -> Result<()> {
        let dir = self.lab.dir().to_path_buf();
        let conf = dir.join("ha.toml");
        fs::write(&conf, ha_config(&dir))?;
        let log = dir.join("ha.log");
        let argv = [
            path(&self.ha_bin)?,
            "run",
            "--config",
            path(&conf)?,
            "--log-format",
            "json",
        ];
        let ha = self.topo.ha.clone();
        let pid = self.lab.spawn(&ha, &argv, &log)?;
        self.ha_pid = Some(pid);
        if !wait_until(Duration::from_secs(10), || {
            fs::read_to_string(&log).is_ok_and(|l| l.contains("dsmip-ha running"))
        }) {
            bail!("dsmip-ha did not start: {}", read(&log));
        }
        Ok(())
    }

    pub fn stop_ha(&mut self) {
        if let Some(pid) = self.ha_pid.take() {
            self.lab.stop(pid);
        }
    }

    /// Whether `dsmip-mn check-config` accepts `[ipsec] data_esp = "<value>"`; the error
    /// text when it does not.
    pub fn data_esp_accepted(&self, value: &str) -> Result<std::result::Result<(), String>> {
        let dir = self.lab.dir();
        let conf = dir.join(format!("mn-check-{value}.toml"));
        fs::write(&conf, mn_config(dir, Some(value)))?;
        let out = Command::new(&self.mn_bin)
            .arg("check-config")
            .arg(&conf)
            .output()?;
        if out.status.success() {
            Ok(Ok(()))
        } else {
            Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_string()))
        }
    }

    /// Start `dsmip-mn` and wait for its `registered` line and the home agent's BA line;
    /// returns its PID and the milestones.
    pub fn start_mn(&mut self, data_esp: Option<&str>) -> Result<(u32, Registration)> {
        self.runs += 1;
        let dir = self.lab.dir().to_path_buf();
        let conf = dir.join("mn.toml");
        fs::write(&conf, mn_config(&dir, data_esp))?;
        let log = self.mn_log();
        let argv = [
            path(&self.mn_bin)?,
            "run",
            "--config",
            path(&conf)?,
            "--log-format",
            "json",
        ];
        let mn = self.topo.mn.clone();
        let t0 = epoch_secs(SystemTime::now());
        let pid = self.lab.spawn(&mn, &argv, &log)?;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(r) = milestones(&read(&log), &read(&dir.join("ha.log")), t0)? {
                return Ok((pid, r));
            }
            if Instant::now() > deadline || !self.lab.alive(pid) {
                bail!(
                    "dsmip-mn did not register within 15 s\n--- mn ---\n{}\n--- ha ---\n{}",
                    read(&log),
                    read(&dir.join("ha.log"))
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// SIGTERM (deregistration) and reap; an error when it did not deregister cleanly.
    pub fn stop_mn(&mut self, pid: u32) -> Result<()> {
        self.lab.stop(pid);
        let log = read(&self.mn_log());
        if !log.contains("shutdown: deregistered") {
            bail!("dsmip-mn did not deregister on SIGTERM:\n{log}");
        }
        Ok(())
    }

    /// `dsmip-mn status`, straight from the control socket (one line in, JSON out).
    pub fn status(&self) -> Result<Value> {
        use std::io::{Read, Write};
        let sock = self.lab.dir().join("mn.sock");
        let mut s = std::os::unix::net::UnixStream::connect(&sock)
            .with_context(|| format!("connecting to {}", sock.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"status\n")?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        serde_json::from_str(&out).with_context(|| format!("status answer: {out}"))
    }

    /// The IPv4 home address the mobile node holds, without the prefix length.
    pub fn ipv4_home(&self) -> Result<String> {
        let st = self.status()?;
        st["ipv4_home_address"]
            .as_str()
            .and_then(|a| a.split('/').next())
            .map(str::to_string)
            .with_context(|| format!("no IPv4 home address: {st}"))
    }

    fn mn_log(&self) -> PathBuf {
        self.lab.dir().join(format!("mn-{}.log", self.runs))
    }
}

/// Times (ms after `t0`) of the first line of a JSON log with message `msg` logged at or
/// after `t0`.
fn logged_at(log: &str, msg: &str, t0: f64) -> Result<Option<f64>> {
    for l in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue; // a line still being written
        };
        if v["message"] != msg {
            continue;
        }
        let ts = v["timestamp"]
            .as_str()
            .with_context(|| format!("log line without timestamp: {l}"))?;
        let t = parse_rfc3339_utc(ts)?;
        if t >= t0 {
            return Ok(Some((t - t0) * 1000.0));
        }
    }
    Ok(None)
}

/// The milestones in the mobile node's and the home agent's JSON logs, once `registered` and
/// the home agent's `Binding Acknowledgement sent` are there; times relative to `t0`.
fn milestones(mn_log: &str, ha_log: &str, t0: f64) -> Result<Option<Registration>> {
    let Some(registered) = logged_at(mn_log, "registered", t0)? else {
        return Ok(None);
    };
    let need = |log: &str, msg: &str| -> Result<f64> {
        logged_at(log, msg, t0)?.with_context(|| format!("no `{msg}` log line after the start"))
    };
    // The home agent logs after its send returns, so its line may come after ours.
    let Some(ba_sent) = logged_at(ha_log, "Binding Acknowledgement sent", t0)? else {
        return Ok(None);
    };
    Ok(Some(Registration {
        ike_start: need(mn_log, "IKE_SA_INIT sent")?,
        child_up: need(mn_log, "transport-mode CHILD_SA up for BU/BA")?,
        ba_sent,
        registered,
    }))
}

fn path(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}
