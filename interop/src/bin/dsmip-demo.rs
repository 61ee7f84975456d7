//! The dsmip demo on the real daemons: `dsmip-ha` and `dsmip-mn` in network namespaces, the
//! mobile node behind an nftables NAT, registering with IKEv2 + ESP (RFC 5555 §1.3 scenario
//! 2), its data in a tunnel-mode ESP SA over UDP 4500 (RFC 5555 §5.2.2), then ping and a
//! TCP transfer checked byte for byte from both home addresses to a correspondent on the
//! home link, then deregistration on SIGTERM. The lab (namespaces, links, processes) is torn down when the
//! `Lab` is dropped.
//!
//! Run as root through `scripts/demo.sh`, or directly:
//! `dsmip-demo --ha target/debug/dsmip-ha --mn target/debug/dsmip-mn` (or the environment
//! variables `DSMIP_HA` and `DSMIP_MN`; `dsmip-tcp-check` is looked up the same way). Needs iproute2, nftables, iputils-ping, and
//! optionally tcpdump + tshark for the wire summary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use interop::lab::{require_tool, wait_until, Lab};
use serde_json::Value;

const HOA: &str = "2001:db8:1::100";
const PSK: &str = "lab-only-pre-shared-key";

/// The dsmip demo: a mobile node behind a NAT registers with its home agent.
#[derive(Parser)]
struct Args {
    /// Path of the dsmip-ha binary (default: $DSMIP_HA, else next to this program).
    #[arg(long)]
    ha: Option<PathBuf>,
    /// Path of the dsmip-mn binary (default: $DSMIP_MN, else next to this program).
    #[arg(long)]
    mn: Option<PathBuf>,
    /// Path of the dsmip-tcp-check binary (default: $DSMIP_TCP_CHECK, else next to this
    /// program).
    #[arg(long)]
    tcp_check: Option<PathBuf>,
}

/// The binary from the flag, the environment variable, or this program's folder.
fn locate(flag: Option<PathBuf>, var: &str, name: &str, option: &str) -> Result<PathBuf> {
    let path = match flag.or_else(|| std::env::var_os(var).map(PathBuf::from)) {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("program location")?
            .join(name),
    };
    if !path.is_file() {
        bail!(
            "{name} not found at {} (build it, or pass --{option})",
            path.display()
        );
    }
    Ok(path)
}

fn ha_config(dir: &Path) -> String {
    format!(
        r#"# dsmip-ha for the demo: IKE/ESP required, dynamic IPv4 home addresses from a pool.
[daemon]
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
psk = "{PSK}"

[[ipsec.peer]]
id = "mn@example.org"
home_address = "{HOA}"
"#,
        dir = dir.display()
    )
}

fn mn_config(dir: &Path) -> String {
    format!(
        r#"# dsmip-mn for the demo: asks for a dynamic IPv4 home address.
[daemon]
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
psk = "{PSK}"
"#,
        dir = dir.display()
    )
}

/// `BIN WHAT [--json] --socket SOCKET`: its standard output.
fn ctl_text(bin: &Path, what: &str, json: bool, socket: &Path) -> Result<String> {
    let mut cmd = Command::new(bin);
    cmd.arg(what);
    if json {
        cmd.arg("--json");
    }
    let out = cmd.arg("--socket").arg(socket).output()?;
    if !out.status.success() {
        bail!(
            "{} {what}: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn ctl(bin: &Path, what: &str, socket: &Path) -> Result<Value> {
    Ok(serde_json::from_str(&ctl_text(bin, what, true, socket)?)?)
}

fn wait_log(log: &Path, needle: &str, secs: u64) -> bool {
    wait_until(Duration::from_secs(secs), || {
        fs::read_to_string(log).is_ok_and(|l| l.contains(needle))
    })
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str().map(str::to_string).context("non-UTF-8 path")
}

/// Print command output indented, without trailing blank lines.
fn show(text: &str) {
    for line in text.trim_end().lines() {
        println!("     {line}");
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    let ha_bin = locate(args.ha, "DSMIP_HA", "dsmip-ha", "ha")?;
    let mn_bin = locate(args.mn, "DSMIP_MN", "dsmip-mn", "mn")?;
    let tcp_bin = locate(
        args.tcp_check,
        "DSMIP_TCP_CHECK",
        "dsmip-tcp-check",
        "tcp-check",
    )?;
    if !interop::lab::is_root() {
        bail!("the demo builds network namespaces: run it as root");
    }
    require_tool("nft", "nftables")?;
    require_tool("ping", "iputils-ping")?;
    let wire =
        require_tool("tcpdump", "tcpdump").is_ok() && require_tool("tshark", "tshark").is_ok();
    let started = Instant::now();

    println!("dsmip demo: Dual-Stack Mobile IPv6 (RFC 5555) with IKEv2 + ESP, real daemons");
    println!();
    println!("1. Lab (network namespaces, removed at the end)");
    println!("     mn 10.1.0.2 --- 10.1.0.1 nat 192.0.2.2 (nftables masquerade) --- 192.0.2.1 ha");
    println!("     ha home link 203.0.113.1, 2001:db8:1::1 --- cn 203.0.113.2, 2001:db8:1::2");
    let mut lab = Lab::new("demo")?;
    let t = lab.nat_topology(true)?;
    let (mn, nat, ha) = (t.mn, t.nat, t.ha);
    let cn = t.cn.context("the topology has no correspondent")?;

    let dir = lab.dir().to_path_buf();
    let (ha_conf, mn_conf) = (dir.join("ha.toml"), dir.join("mn.toml"));
    fs::write(&ha_conf, ha_config(&dir))?;
    fs::write(&mn_conf, mn_config(&dir))?;
    let (ha_log, mn_log) = (dir.join("ha.log"), dir.join("mn.log"));
    let (ha_sock, mn_sock) = (dir.join("ha.sock"), dir.join("mn.sock"));
    let logs = || {
        format!(
            "--- dsmip-mn log ---\n{}\n--- dsmip-ha log ---\n{}",
            fs::read_to_string(&mn_log).unwrap_or_default(),
            fs::read_to_string(&ha_log).unwrap_or_default()
        )
    };

    let ha_argv = [
        path_str(&ha_bin)?,
        "run".into(),
        "--config".into(),
        path_str(&ha_conf)?,
    ];
    let ha_argv: Vec<&str> = ha_argv.iter().map(String::as_str).collect();
    let ha_pid = lab.spawn(&ha, &ha_argv, &ha_log)?;
    if !wait_log(&ha_log, "dsmip-ha running", 10) {
        bail!("dsmip-ha did not start\n{}", logs());
    }
    // Everything on the NAT's outside, for the wire summary.
    let mut cap = None;
    if wire {
        let cap_log = dir.join("tcpdump.log");
        let pcap = path_str(&dir.join("nat.pcap"))?;
        let argv = [
            "tcpdump",
            "--immediate-mode",
            "-n",
            "-U",
            "-i",
            "out0",
            "-w",
            &pcap,
        ];
        let pid = lab.spawn(&nat, &argv, &cap_log)?;
        if !wait_log(&cap_log, "listening on", 10) {
            bail!("tcpdump did not start: {}", fs::read_to_string(&cap_log)?);
        }
        cap = Some((pid, pcap));
    }

    println!();
    println!(
        "2. dsmip-ha started; dsmip-mn started (config files in {})",
        dir.display()
    );
    let mn_argv = [
        path_str(&mn_bin)?,
        "run".into(),
        "--config".into(),
        path_str(&mn_conf)?,
    ];
    let mn_argv: Vec<&str> = mn_argv.iter().map(String::as_str).collect();
    let t0 = Instant::now();
    let mn_pid = lab.spawn(&mn, &mn_argv, &mn_log)?;
    let registered = wait_until(Duration::from_secs(20), || {
        ctl(&mn_bin, "status", &mn_sock).is_ok_and(|v| v["state"] == "registered")
    });
    if !registered {
        bail!("dsmip-mn did not register within 20 s\n{}", logs());
    }
    let took = t0.elapsed();
    let st = ctl(&mn_bin, "status", &mn_sock)?;
    let v4 = st["ipv4_home_address"]
        .as_str()
        .with_context(|| format!("no IPv4 home address in the status: {st}"))?
        .to_string();
    let spi = |dir: &str| st["sa_spis"][dir].as_str().unwrap_or("?").to_string();
    // The data SA follows the first BA (CREATE_CHILD_SA); give it a moment.
    let data_sa = wait_until(Duration::from_secs(5), || {
        ctl(&mn_bin, "status", &mn_sock).is_ok_and(|v| v["data_sa"].is_object())
    });
    let st_data = ctl(&mn_bin, "status", &mn_sock)?;
    println!(
        "     registered in {} ms (IKE + BU/BA): home address {HOA}, IPv4 home address {v4} (given by the HA)",
        took.as_millis()
    );
    println!(
        "     NAT detected: {}, care-of 10.1.0.2 seen as 192.0.2.2; ESP SPIs in {} out {}",
        if st["nat"] == true { "yes" } else { "no" },
        spi("in"),
        spi("out")
    );
    if data_sa {
        let d = &st_data["data_sa"];
        println!(
            "     data SA (tunnel mode, RFC 5555 §5.2.2): SPIs in {} out {}, ESP in UDP 4500: {}",
            d["spi_in"].as_str().unwrap_or("?"),
            d["spi_out"].as_str().unwrap_or("?"),
            if d["udp"] == true { "yes" } else { "no" }
        );
    } else {
        println!("     data SA: NOT up within 5 s (data would travel in plain UDP 4191)");
    }

    println!();
    println!("3. dsmip-ha bindings");
    show(&ctl_text(&ha_bin, "bindings", false, &ha_sock)?);
    println!();
    println!("4. dsmip-mn status");
    // The engine's last event is a debugging aid, too long for the demo.
    let status = ctl_text(&mn_bin, "status", false, &mn_sock)?;
    let status: Vec<&str> = status
        .lines()
        .filter(|l| !l.starts_with("last event"))
        .collect();
    show(&status.join("\n"));

    println!();
    println!("5. Unmodified ping from the mobile node's home addresses (TUN dsmmn0) to cn");
    let v4_addr = v4.split('/').next().unwrap_or(&v4).to_string();
    for (family, src, dst) in [
        ("-4", v4_addr.as_str(), "203.0.113.2"),
        ("-6", HOA, "2001:db8:1::2"),
    ] {
        let argv = [
            "ping", family, "-c", "3", "-i", "0.2", "-W", "2", "-I", src, dst,
        ];
        let out = lab
            .run(&mn, &argv)
            .with_context(|| format!("ping {family} {dst} failed\n{}", logs()))?;
        let summary = out
            .lines()
            .find(|l| l.contains("packets transmitted"))
            .unwrap_or("(no summary)");
        println!("     ping {family} {src} -> {dst}: {summary}");
    }

    println!();
    println!("6. A TCP transfer of 4 MiB from each home address to cn, checked byte for byte");
    let mut tcp_ok = true;
    for (src, dst) in [(v4_addr.as_str(), "203.0.113.2"), (HOA, "2001:db8:1::2")] {
        match tcp_transfer(&mut lab, &tcp_bin, &mn, &cn, src, dst) {
            Ok(line) => println!("     {line}"),
            Err(e) => {
                tcp_ok = false;
                println!("     {src} -> {dst}: FAILED: {e:#}");
            }
        }
    }

    println!();
    println!("7. SIGTERM to dsmip-mn (deregistration, lifetime 0)");
    Command::new("kill")
        .args(["-TERM", &mn_pid.to_string()])
        .status()?;
    let exited = wait_until(Duration::from_secs(6), || !lab.alive(mn_pid));
    lab.stop(mn_pid);
    if !exited {
        bail!("dsmip-mn ignored SIGTERM\n{}", logs());
    }
    let deregistered =
        fs::read_to_string(&mn_log).is_ok_and(|l| l.contains("shutdown: deregistered"));
    println!(
        "     dsmip-mn exited, {}; dsmip-ha bindings:",
        if deregistered {
            "deregistered"
        } else {
            "NOT deregistered"
        }
    );
    let after = ctl_text(&ha_bin, "bindings", false, &ha_sock)?;
    if after.trim().is_empty() {
        println!("     (nothing)");
    } else {
        show(&after);
    }
    let left = ctl(&ha_bin, "bindings", &ha_sock)?;
    let count = left.as_array().map(Vec::len);
    println!(
        "     bindings left at the home agent: {}",
        count.map_or("?".into(), |n| n.to_string())
    );

    if let Some((pid, pcap)) = cap {
        println!();
        println!("8. On the NAT's outside (tcpdump on out0, decoded by tshark)");
        lab.stop(pid);
        let out = Command::new("tshark")
            .args(["-n", "-d", "udp.port==4191,ipv6", "-r", &pcap])
            .args(["-T", "fields", "-e", "frame.protocols"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let w = WireCount::of(&text);
        println!(
            "     {} IKEv2, {} ESP in UDP 4191 (BU/BA), {} ESP in UDP 4500 (data), \
             {} NAT keepalives,",
            w.ike, w.esp_signalling, w.esp_data, w.keepalive
        );
        println!(
            "     {} cleartext Mobility Header, {} home-address packets without ESP, {} other",
            w.mh, w.plain_data, w.other
        );
    }

    lab.stop(ha_pid);
    drop(lab);
    println!();
    println!(
        "Lab torn down. Whole run {:.1} s.",
        started.elapsed().as_secs_f64()
    );
    if count != Some(0) || !deregistered {
        bail!("the binding was not removed on deregistration");
    }
    if !tcp_ok {
        bail!("a TCP transfer failed");
    }
    Ok(())
}

/// `dsmip-tcp-check receive` in the correspondent's namespace, `send` from the mobile node's
/// home address `src`; both ends must report the same length and SHA-256. One summary line.
fn tcp_transfer(
    lab: &mut Lab,
    tcp: &Path,
    mn: &str,
    cn: &str,
    src: &str,
    dst: &str,
) -> Result<String> {
    const BYTES: &str = "4194304";
    let tcp = path_str(tcp)?;
    let to = if dst.contains(':') {
        format!("[{dst}]:5001")
    } else {
        format!("{dst}:5001")
    };
    let log = lab.dir().join(format!("tcp-{dst}.log"));
    let argv = [tcp.as_str(), "receive", "--listen", &to, "--seed", "7"];
    let pid = lab.spawn(cn, &argv, &log)?;
    if !wait_log(&log, "listening", 10) {
        lab.stop(pid);
        bail!("receiver did not start: {}", fs::read_to_string(&log)?);
    }
    let argv = [
        tcp.as_str(),
        "send",
        "--to",
        &to,
        "--bytes",
        BYTES,
        "--seed",
        "7",
        "--expect-source",
        src,
    ];
    let sent = lab.run(mn, &argv);
    let finished = wait_until(Duration::from_secs(20), || !lab.alive(pid));
    lab.stop(pid);
    let sent = sent?;
    if !finished {
        bail!("receiver did not finish");
    }
    let report = |text: &str| -> Result<Value> {
        let line = text
            .lines()
            .rev()
            .find(|l| l.contains("\"role\""))
            .with_context(|| format!("no report in: {text}"))?;
        Ok(serde_json::from_str(line)?)
    };
    let (s, r) = (report(&sent)?, report(&fs::read_to_string(&log)?)?);
    if s["sha256"] != r["sha256"] || s["bytes"] != r["bytes"] || !r["first_mismatch"].is_null() {
        bail!("sent {s}, received {r}");
    }
    Ok(format!(
        "{src} -> {dst}: {} bytes, SHA-256 {}… equal at both ends, {} Mbit/s",
        r["bytes"],
        &r["sha256"].as_str().unwrap_or("?")[..16],
        r["mbit_per_s"]
    ))
}

/// What crossed the NAT's outside, by tshark's protocol path of each frame.
#[derive(Debug, Default, PartialEq, Eq)]
struct WireCount {
    ike: usize,
    esp_signalling: usize,
    esp_data: usize,
    keepalive: usize,
    mh: usize,
    plain_data: usize,
    other: usize,
}

impl WireCount {
    /// `frame.protocols` lines of `tshark -d udp.port==4191,ipv6`.
    fn of(text: &str) -> WireCount {
        let mut w = WireCount::default();
        for l in text.lines().filter(|l| !l.is_empty()) {
            if l.contains("isakmp") {
                w.ike += 1;
            } else if l.contains("mipv6") {
                w.mh += 1;
            } else if l.contains("udpencap:esp") {
                w.esp_data += 1;
            } else if l.ends_with("udpencap") {
                w.keepalive += 1;
            } else if l.contains("udp:ipv6:esp") {
                w.esp_signalling += 1;
            } else if l.contains(":ip:udp:ip") {
                w.plain_data += 1;
            } else {
                w.other += 1;
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_lines_are_counted_by_protocol_path() {
        let text = "eth:ethertype:ip:udp:isakmp\n\
                    eth:ethertype:ip:udp:ipv6:esp\n\
                    eth:ethertype:ip:udp:udpencap:esp\n\
                    eth:ethertype:ip:udp:udpencap:esp\n\
                    eth:ethertype:ip:udp:udpencap\n\
                    eth:ethertype:ip:udp:ipv6:mipv6\n\
                    eth:ethertype:ip:udp:ipv6:icmpv6\n\
                    eth:ethertype:ip:udp:ip:icmp\n\
                    eth:ethertype:arp\n";
        assert_eq!(
            WireCount::of(text),
            WireCount {
                ike: 1,
                esp_signalling: 1,
                esp_data: 2,
                keepalive: 1,
                mh: 1,
                plain_data: 2,
                other: 1,
            }
        );
    }
}
