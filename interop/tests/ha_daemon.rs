//! `dsmip-ha` in a lab namespace, driven by a real client through a real NAT:
//!
//! ```text
//!   mn 10.1.0.2 --- nat 10.1.0.1 | 192.0.2.2 (nftables masquerade) --- ha 192.0.2.1 (dsmip-ha)
//! ```
//!
//! The client (a thread in the mobile node's namespace) builds Binding Updates with
//! `interop::probe::encode` and sends them over UDP 4191; the tests read the BA, the control
//! socket (`dsmip-ha bindings --json`, `dsmip-ha leases --json`), the metrics endpoint and the
//! daemon's log. Needs root, iproute2 and nftables.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint, Mode};
use ike::wire::ts::TrafficSelector;
use ike::wire::ProtocolId;
use interop::ike_probe::{initiate, Driver, Sockets};
use interop::lab::{wait_until, workspace_binary, Lab};
use interop::probe::encode::{bu_repr, packet, BuSpec, Ipv4Prefix};
use mipsec::esp::{transport, InboundSa, OutboundSa, SaConfig, Transform};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_ESP};
use mipsec::wire::{BuFlags, MhMessage, MhOption, MhRepr};
use serde_json::Value;

const HOA: &str = "2001:db8:1::100";
const HA6: &str = "2001:db8:1::1";
const HA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MN4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const NAT4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
const METRICS: &str = "127.0.0.1:9191";
const PSK: &str = "lab-only-pre-shared-key";
const IPSEC: &str = r#"
[ipsec]
local_id = "ha.example.org"
psk = "lab-only-pre-shared-key"

[[ipsec.peer]]
id = "mn@example.org"
home_address = "2001:db8:1::100"
"#;

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

struct Rig {
    lab: Lab,
    mn: String,
    /// The NAT's namespace (192.0.2.2 outside): also a care-of address without a NAT.
    nat: String,
    ha: String,
    bin: PathBuf,
    config: PathBuf,
    socket: PathBuf,
    pid: Option<u32>,
    log: PathBuf,
    starts: usize,
}

impl Rig {
    fn new(tag: &str, require_ipsec: bool) -> Result<Rig> {
        Rig::build(tag, require_ipsec, false)
    }

    /// With `tun`: a correspondent on the home link (cn 203.0.113.2 — ha 203.0.113.1) and
    /// the daemon's TUN data plane.
    fn build(tag: &str, require_ipsec: bool, tun: bool) -> Result<Rig> {
        let bin = workspace_binary("ha", "dsmip-ha")?;
        let mut lab = Lab::new(tag)?;
        let t = lab.nat_topology(tun)?;
        let (mn, nat, ha) = (t.mn, t.nat, t.ha);
        let dir = lab.dir().to_path_buf();
        let socket = dir.join("ha.sock");
        let config = dir.join("ha.toml");
        fs::write(
            &config,
            format!(
                r#"[daemon]
lease_file = "{leases}"
control_socket = "{socket}"
metrics_listen = "{METRICS}"
require_ipsec = {require_ipsec}
{tun}

[home_agent]
address = "{HA6}"
address_v4 = "{HA4}"
home_prefixes = ["2001:db8:1::/64"]
max_lifetime = 400
# Eventual: commits reach the disk at the next flush, so the restart below checks that
# SIGTERM flushes the lease store.
lease_durability = "eventual"

[[home_agent.ipv4_pool]]
range = "198.51.100.0/28"
exclude = ["198.51.100.1/32"]
{ipsec}"#,
                leases = dir.join("leases.redb").display(),
                socket = socket.display(),
                ipsec = if require_ipsec { IPSEC } else { "" },
                tun = if tun {
                    "tun = \"dsmha0\"\nhome_link = \"home0\""
                } else {
                    ""
                },
            ),
        )?;
        Ok(Rig {
            lab,
            mn,
            nat,
            ha,
            bin,
            config,
            socket,
            pid: None,
            log: PathBuf::new(),
            starts: 0,
        })
    }

    fn start(&mut self) -> Result<()> {
        self.starts += 1;
        self.log = self.lab.dir().join(format!("ha-{}.log", self.starts));
        let argv = [
            self.bin.to_str().context("path")?,
            "run",
            "--config",
            self.config.to_str().context("path")?,
            "--log-format",
            "json",
        ];
        self.pid = Some(self.lab.spawn(&self.ha, &argv, &self.log)?);
        let running = wait_until(Duration::from_secs(10), || {
            fs::read_to_string(&self.log).is_ok_and(|l| l.contains("dsmip-ha running"))
        });
        if !running {
            bail!("dsmip-ha did not start: {}", self.log_text());
        }
        Ok(())
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM the daemon and wait for it to exit; returns its log.
    fn sigterm(&mut self) -> Result<String> {
        self.signal("-TERM")
    }

    /// Send a signal (`-TERM`, `-INT`) and wait for the daemon to exit; returns its log.
    fn signal(&mut self, sig: &str) -> Result<String> {
        let pid = self.pid.take().context("not running")?;
        let st = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()?;
        assert!(st.success(), "kill {sig} {pid}");
        let exited = wait_until(Duration::from_secs(5), || !self.lab.alive(pid));
        self.lab.stop(pid);
        if !exited {
            bail!("dsmip-ha ignored SIGTERM: {}", self.log_text());
        }
        Ok(self.log_text())
    }

    fn ctl(&self, what: &str) -> Result<Value> {
        let out = Command::new(&self.bin)
            .args([what, "--json", "--socket"])
            .arg(&self.socket)
            .output()?;
        if !out.status.success() {
            bail!("dsmip-ha {what}: {}", String::from_utf8_lossy(&out.stderr));
        }
        Ok(serde_json::from_slice(&out.stdout)?)
    }

    fn metrics(&self) -> Result<String> {
        in_ns(&self.ha, || {
            let mut s = TcpStream::connect(METRICS)?;
            s.set_read_timeout(Some(Duration::from_secs(5)))?;
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: ha\r\n\r\n")?;
            let mut r = String::new();
            s.read_to_string(&mut r)?;
            if !r.starts_with("HTTP/1.1 200 OK\r\n") {
                bail!("metrics answer: {r}");
            }
            Ok(r)
        })
    }

    /// Send `datagram` from the mobile node to UDP 4191 and wait `wait` for an answer.
    fn send(&self, datagram: Vec<u8>, wait: Duration) -> Result<Option<Vec<u8>>> {
        in_ns(&self.mn, move || {
            let sock = UdpSocket::bind((MN4, 4191))?;
            sock.send_to(&datagram, (HA4, 4191))?;
            sock.set_read_timeout(Some(wait))?;
            let mut buf = [0u8; 2048];
            match sock.recv_from(&mut buf) {
                Ok((n, _)) => Ok(Some(buf[..n].to_vec())),
                Err(_) => Ok(None),
            }
        })
    }
}

fn bu(seq: u16, lifetime: u32, ipv4: &str) -> Result<Vec<u8>> {
    bu_from(seq, lifetime, ipv4, MN4)
}

/// A BU (A, H, K) with the IPv4 care-of address `coa`.
fn bu_from(seq: u16, lifetime: u32, ipv4: &str, coa: Ipv4Addr) -> Result<Vec<u8>> {
    let spec = BuSpec {
        sequence: seq,
        lifetime_secs: lifetime,
        flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
        hoa: HOA.parse()?,
        ha: HA6.parse()?,
        ipv4_hoa: Some(ipv4.parse::<Ipv4Prefix>().map_err(anyhow::Error::msg)?),
        prefix_request: false,
        ipv4_coa: Some(coa),
    };
    packet(&bu_repr(&spec)?, spec.hoa, spec.ha, None)
}

/// (status, sequence, lifetime seconds, IPv4 ack (status, address), NAT detection seen).
type BaFields = (u8, u16, u32, Option<(u8, Ipv4Addr)>, bool);

fn read_ba(b: &[u8]) -> Result<BaFields> {
    let ip6 = Ipv6Repr::parse(b)?;
    assert_eq!(ip6.src.to_string(), HA6);
    assert_eq!(ip6.dst.to_string(), HOA);
    let ba = MhRepr::parse_bytes(&b[Ipv6Repr::HEADER_LEN..])?;
    let MhMessage::BindingAck {
        status,
        sequence,
        lifetime,
        ..
    } = ba.message
    else {
        bail!("not a BA: {:?}", ba.message);
    };
    let v4 = ba.find(|o| match o {
        MhOption::Ipv4AddressAck { status, addr, .. } => Some((status.0, *addr)),
        _ => None,
    });
    let nat = ba
        .find(|o| matches!(o, MhOption::NatDetection { .. }).then_some(()))
        .is_some();
    Ok((status.0, sequence, u32::from(lifetime) * 4, v4, nat))
}

fn metric(text: &str, line_prefix: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.trim().parse().ok())
}

#[test]
fn registration_through_nat_bindings_metrics_leases_restart_sigterm() -> Result<()> {
    let mut rig = Rig::new("hadmn", false)?;
    rig.start()?;
    assert!(
        rig.log_text().contains("WITHOUT IPsec"),
        "require_ipsec = false must be loud"
    );

    // Registration with a dynamic IPv4 home address, through the NAT.
    let ba = rig
        .send(bu(1, 400, "0.0.0.0/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    let (status, seq, lifetime, v4, nat) = read_ba(&ba)?;
    assert_eq!((status, seq, lifetime), (0, 1, 400));
    let (v4_status, leased) = v4.context("no IPv4 Address Acknowledgement")?;
    assert_eq!(v4_status, 0);
    assert_eq!(
        leased,
        Ipv4Addr::new(198, 51, 100, 2),
        "first free pool address"
    );
    assert!(
        nat,
        "NAT Detection option expected (BU came in UDP through a NAT)"
    );

    let b = rig.ctl("bindings")?;
    let b = b.as_array().context("array")?;
    assert_eq!(b.len(), 1, "{b:?}");
    assert_eq!(b[0]["home_address"], HOA);
    assert_eq!(b[0]["ipv4_home_address"], "198.51.100.2/32");
    assert_eq!(b[0]["care_of_address"], MN4.to_string());
    assert_eq!(
        b[0]["peer"],
        NAT4.to_string(),
        "tunnel goes to the NAT's address"
    );
    assert_eq!(b[0]["nat"], true);
    assert_eq!(b[0]["encapsulation"], "udp");
    let left = b[0]["lifetime_left"].as_u64().context("lifetime_left")?;
    assert!((390..=400).contains(&left), "{left}");
    let human = Command::new(&rig.bin)
        .args(["bindings", "--socket"])
        .arg(&rig.socket)
        .output()?;
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(HOA) && human.ends_with("1 bindings\n"),
        "{human}"
    );

    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_bu_received_total "), Some(1), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(1), "{m}");
    assert_eq!(
        metric(&m, "dsmip_ha_ba_sent_total{status=\"0\"} "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bindings "), Some(1), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_bindings_nat "), Some(1), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_leases "), Some(1), "{m}");

    // A stale sequence number is refused with 135 and counted by status.
    let ba = rig
        .send(bu(1, 400, "0.0.0.0/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    assert_eq!(read_ba(&ba)?.0, 135);
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_bu_rejected_total{status=\"135\"} "),
        Some(1),
        "{m}"
    );

    // SIGTERM: clean exit, leases flushed, control socket removed.
    let log = rig.sigterm()?;
    assert!(
        log.contains("shutdown: leases flushed") && log.contains("SIGTERM"),
        "{log}"
    );
    assert!(!rig.socket.exists(), "control socket left behind");

    // Restart: the lease is there before any BU, and the node gets the same address back.
    rig.start()?;
    let l = rig.ctl("leases")?;
    assert_eq!(l[0]["home_address"], HOA, "{l}");
    assert_eq!(l[0]["ipv4"], "198.51.100.2/32", "{l}");
    assert_eq!(rig.ctl("bindings")?.as_array().map(Vec::len), Some(0));
    let ba = rig
        .send(bu(2, 400, "0.0.0.0/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    let (status, _, _, v4, _) = read_ba(&ba)?;
    assert_eq!(status, 0);
    assert_eq!(v4, Some((0, Ipv4Addr::new(198, 51, 100, 2))));

    // Every log line is JSON (--log-format json).
    for line in rig.log_text().lines() {
        let v: Value = serde_json::from_str(line).with_context(|| format!("log line: {line}"))?;
        assert!(v["level"].is_string() && v["message"].is_string(), "{line}");
    }

    // The engine's timer is driven: a 4 s binding expires without any packet.
    let ba = rig
        .send(bu(3, 4, "198.51.100.2/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    assert_eq!(read_ba(&ba)?.2, 4);
    let expired = wait_until(Duration::from_secs(8), || {
        rig.ctl("bindings")
            .is_ok_and(|b| b.as_array().is_some_and(Vec::is_empty))
    });
    assert!(expired, "binding still there after its lifetime");
    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_expirations_total "), Some(1), "{m}");
    assert!(rig.log_text().contains("binding expired"));

    // Register again, then deregister: the cache empties; the lease stays.
    let ba = rig
        .send(bu(4, 400, "198.51.100.2/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    assert_eq!(read_ba(&ba)?.0, 0);
    assert_eq!(rig.ctl("bindings")?.as_array().map(Vec::len), Some(1));
    let ba = rig
        .send(bu(5, 0, "198.51.100.2/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    assert_eq!(read_ba(&ba)?.0, 0);
    assert_eq!(rig.ctl("bindings")?.as_array().map(Vec::len), Some(0));
    assert_eq!(rig.ctl("leases")?.as_array().map(Vec::len), Some(1));
    rig.sigterm()?;
    Ok(())
}

#[test]
fn unprotected_and_esp_bus_are_dropped_when_ipsec_is_required() -> Result<()> {
    let mut rig = Rig::new("hadsec", true)?;
    rig.start()?;
    assert!(!rig.log_text().contains("WITHOUT IPsec"));
    let answer = rig.send(bu(1, 400, "0.0.0.0/32")?, Duration::from_secs(2))?;
    assert!(answer.is_none(), "a cleartext BU must get no answer");
    // An ESP packet: no CHILD_SA can exist yet, so it is dropped and counted.
    let mut esp = vec![0u8; Ipv6Repr::HEADER_LEN + 24];
    Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: 24,
        next_header: IPPROTO_ESP,
        hop_limit: 64,
        src: HOA.parse()?,
        dst: HA6.parse()?,
    }
    .emit(&mut esp)?;
    assert!(rig.send(esp, Duration::from_millis(500))?.is_none());
    assert!(rig
        .send(vec![0xff; 3], Duration::from_millis(200))?
        .is_none());
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_drops_total{reason=\"unprotected\"} "),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_drops_total{reason=\"esp_no_sa\"} "),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_drops_total{reason=\"datagram_malformed\"} "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(0), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_datagrams_total "), Some(3), "{m}");
    assert_eq!(rig.ctl("bindings")?.as_array().map(Vec::len), Some(0));
    assert!(
        rig.lab.alive(rig.pid.context("pid")?),
        "the daemon survives garbage"
    );
    let log = rig.signal("-INT")?;
    assert!(log.contains("Unprotected"), "{log}");
    assert!(
        log.contains("shutdown: leases flushed") && log.contains("SIGINT"),
        "{log}"
    );
    Ok(())
}

#[test]
fn check_config_names_file_line_and_key() -> Result<()> {
    let bin = workspace_binary("ha", "dsmip-ha")?;
    let dir = std::env::temp_dir().join(format!("dsmip-ha-check-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    let good = dir.join("good.toml");
    fs::write(
        &good,
        format!("[daemon]\nlease_file = \"/tmp/l.redb\"\ncontrol_socket = \"/tmp/s\"\n\n[home_agent]\naddress = \"2001:db8:1::1\"\naddress_v4 = \"192.0.2.1\"\nhome_prefixes = [\"2001:db8:1::/64\"]\n{IPSEC}"),
    )?;
    let out = Command::new(&bin).arg("check-config").arg(&good).output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("require_ipsec = true"));
    let bad = dir.join("bad.toml");
    fs::write(
        &bad,
        fs::read_to_string(&good)?
            .replace("max", "")
            .replace("\"192.0.2.1\"", "\"192.0.2.300\""),
    )?;
    let out = Command::new(&bin).arg("check-config").arg(&bad).output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains(&format!("{}:7: key `home_agent.address_v4`", bad.display())),
        "{err}"
    );
    fs::remove_dir_all(&dir)?;
    Ok(())
}

type SaPair = (
    Driver,
    UdpSocket,
    OutboundSa,
    InboundSa,
    ike::sa::ChildSa,
    ike::sa::SaId,
);

/// Our IKE initiator in the mobile node's namespace (identity mn@example.org) asks for a
/// transport-mode SA with MH selectors for `hoa`; returns the driver, the UDP 4191 socket
/// and the ESP SAs.
fn transport_sa(rig: &Rig, hoa: &str) -> Result<SaPair> {
    transport_sa_in(rig, hoa, &rig.mn.clone(), MN4)
}

/// [`transport_sa`] from namespace `ns` and address `local`.
fn transport_sa_in(rig: &Rig, hoa: &str, ns: &str, local: Ipv4Addr) -> Result<SaPair> {
    let hoa: Ipv6Addr = hoa.parse()?;
    let ha6: Ipv6Addr = HA6.parse()?;
    let (socks, dsmip) = in_ns(ns, move || {
        Ok((
            Sockets::bind(IpAddr::V4(local), 500, 4500)?,
            UdpSocket::bind((local, 4191))?,
        ))
    })?;
    let mut cfg = Config::psk("mn@example.org", Some("ha.example.org"), PSK.as_bytes());
    cfg.ike_proposals = vec![Proposal::parse(
        "aes128gcm16-prfsha256-x25519",
        ProtocolId::IKE,
    )?];
    cfg.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP)?];
    cfg.transport = true;
    cfg.ts_local = vec![TrafficSelector::mh(IpAddr::V6(hoa), 5)];
    cfg.ts_remote = vec![TrafficSelector::mh(IpAddr::V6(ha6), 6)];
    cfg.retransmit_timeout = Duration::from_millis(500);
    let mut driver = Driver::new(Endpoint::new(None, Box::new(SystemRng::default())), socks)?;
    let rep = initiate(
        &mut driver,
        SocketAddr::new(IpAddr::V4(HA4), 500),
        cfg,
        Duration::from_secs(10),
    )?;
    let child = rep
        .child
        .clone()
        .with_context(|| format!("no CHILD_SA: {}\n{}", rep.to_json(), rig.log_text()))?;
    assert_eq!(child.mode, Mode::Transport);
    assert_eq!(
        rep.ike.as_ref().map(|i| i.nat_local),
        Some(local == MN4),
        "the MN is behind the NAT exactly when it is in the mn namespace"
    );
    let transform = Transform::from_name(&child.proposal.name()).context("transform")?;
    let out_sa = OutboundSa::new(
        SaConfig::new(child.spi_out, transform),
        &[child.keys.enc_out.expose(), child.keys.auth_out.expose()].concat(),
    )?;
    let in_sa = InboundSa::new(
        SaConfig::new(child.spi_in, transform),
        &[child.keys.enc_in.expose(), child.keys.auth_in.expose()].concat(),
    )?;

    let sa = rep.sa.context("no IKE SA id")?;
    Ok((driver, dsmip, out_sa, in_sa, child, sa))
}

/// RFC 5555 §5.2.1 end to end: our IKE initiator (PSK, through the NAT, so IKE moves to
/// 4500) brings up the transport-mode SA for BU/BAck with MH selectors; the BU goes as
/// IPv4 / UDP 4191 / IPv6 / ESP / MH and the BA comes back ESP-protected.
#[test]
fn esp_protected_registration_through_nat() -> Result<()> {
    let mut rig = Rig::new("hadesp", true)?;
    rig.start()?;
    let (mut driver, dsmip, mut out_sa, mut in_sa, child, sa) = transport_sa(&rig, HOA)?;
    // The BU in ESP transport mode inside UDP 4191.
    let clear = bu(1, 400, "0.0.0.0/32")?;
    let mut wire = vec![0u8; clear.len() + 64];
    let n = transport::encapsulate(&mut out_sa, &clear, &mut wire)?;
    assert_eq!(wire[6], IPPROTO_ESP);
    dsmip.send_to(&wire[..n], (HA4, 4191))?;
    dsmip.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = vec![0u8; 2048];
    let (m, _) = dsmip
        .recv_from(&mut buf)
        .with_context(|| format!("no BA: {}", rig.log_text()))?;
    assert_eq!(
        buf[6], IPPROTO_ESP,
        "the BA must be ESP-protected, never cleartext MH"
    );
    let (range, _) = transport::decapsulate(&mut in_sa, &mut buf[..m])?;
    let (status, seq, _, v4, nat) = read_ba(&buf[range])?;
    assert_eq!((status, seq), (0, 1));
    assert_eq!(v4, Some((0, Ipv4Addr::new(198, 51, 100, 2))));
    assert!(nat);

    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["home_address"], HOA, "{b}");
    assert_eq!(
        b[0]["sa_spis"]["in"],
        format!("{:#010x}", child.spi_out),
        "{b}"
    );
    assert_eq!(
        b[0]["sa_spis"]["out"],
        format!("{:#010x}", child.spi_in),
        "{b}"
    );
    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_ike_sas_total "), Some(1), "{m}");
    assert_eq!(
        metric(&m, "dsmip_ha_child_sas_installed_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(1), "{m}");

    // The same BU in cleartext is dropped even though an SA exists (RFC 4877 §4.1).
    dsmip.send_to(&bu(2, 400, "0.0.0.0/32")?, (HA4, 4191))?;
    dsmip.set_read_timeout(Some(Duration::from_millis(800)))?;
    assert!(dsmip.recv_from(&mut buf).is_err(), "cleartext BU answered");
    // A replayed ESP BU is refused by the anti-replay window (RFC 4303 §3.4.3).
    dsmip.send_to(&wire[..n], (HA4, 4191))?;
    assert!(dsmip.recv_from(&mut buf).is_err(), "replayed BU answered");
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_drops_total{reason=\"unprotected\"} "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_esp_errors_total "), Some(1), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(1), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_ike_sas "), Some(1), "{m}");

    // The mobile node deletes its IKE SA: the home agent removes the CHILD_SA, so a BU
    // sealed with it is no longer accepted.
    assert!(
        interop::ike_probe::delete(&mut driver, sa, Duration::from_secs(5))?,
        "Delete not answered"
    );
    let clear = bu(3, 400, "0.0.0.0/32")?;
    let n = transport::encapsulate(&mut out_sa, &clear, &mut wire)?;
    dsmip.send_to(&wire[..n], (HA4, 4191))?;
    assert!(
        dsmip.recv_from(&mut buf).is_err(),
        "BU under a deleted SA answered"
    );
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_child_sas_removed_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_ike_sas "), Some(0), "{m}");
    assert_eq!(
        metric(&m, "dsmip_ha_esp_unknown_spi_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(1), "{m}");
    drop(driver);
    rig.sigterm()?;
    Ok(())
}

/// RFC 4877 §4.3: an SA whose selector is another node's home address is not installed,
/// so a BU under it is never processed; after SIGHUP with a peer table that gives the
/// identity that address, it is.
#[test]
fn sa_for_someone_elses_home_address_is_refused_until_sighup_reload() -> Result<()> {
    let mut rig = Rig::new("hadmis", true)?;
    rig.start()?;
    let other = "2001:db8:1::200";
    let (driver, dsmip, mut out_sa, _, _, _) = transport_sa(&rig, other)?;
    let spec = BuSpec {
        sequence: 1,
        lifetime_secs: 400,
        flags: BuFlags(BuFlags::A | BuFlags::H),
        hoa: other.parse()?,
        ha: HA6.parse()?,
        ipv4_hoa: None,
        prefix_request: false,
        ipv4_coa: Some(MN4),
    };
    let clear = packet(&bu_repr(&spec)?, spec.hoa, spec.ha, None)?;
    let mut wire = vec![0u8; clear.len() + 64];
    let n = transport::encapsulate(&mut out_sa, &clear, &mut wire)?;
    dsmip.send_to(&wire[..n], (HA4, 4191))?;
    dsmip.set_read_timeout(Some(Duration::from_secs(1)))?;
    let mut buf = [0u8; 2048];
    assert!(
        dsmip.recv_from(&mut buf).is_err(),
        "BU under a refused SA answered"
    );
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_child_sas_refused_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_child_sas_installed_total "),
        Some(0),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_esp_unknown_spi_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_received_total "), Some(0), "{m}");
    assert_eq!(rig.ctl("bindings")?.as_array().map(Vec::len), Some(0));
    drop((driver, dsmip));

    // SIGHUP: the peer table now gives mn@example.org the home address ::200; a fresh SA
    // for it is installed and its BU accepted, without a restart.
    let text = fs::read_to_string(&rig.config)?.replace(
        "home_address = \"2001:db8:1::100\"",
        &format!("home_address = \"{other}\""),
    );
    fs::write(&rig.config, text)?;
    let pid = rig.pid.context("pid")?;
    assert!(Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?
        .success());
    let reloaded = wait_until(Duration::from_secs(5), || {
        rig.log_text().contains("SIGHUP: configuration reloaded")
    });
    assert!(reloaded, "{}", rig.log_text());
    assert!(rig.lab.alive(pid), "SIGHUP must not end the daemon");
    assert!(
        rig.log_text().contains("\"restart_needed\":false"),
        "{}",
        rig.log_text()
    );
    let (driver, dsmip, mut out_sa, _, _, _) = transport_sa(&rig, other)?;
    let n = transport::encapsulate(&mut out_sa, &clear, &mut wire)?;
    dsmip.send_to(&wire[..n], (HA4, 4191))?;
    dsmip.set_read_timeout(Some(Duration::from_secs(3)))?;
    let (m, _) = dsmip
        .recv_from(&mut buf)
        .context("no BA after the reload")?;
    assert_eq!(buf[6], IPPROTO_ESP);
    assert!(m > 40);
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_child_sas_installed_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(1), "{m}");
    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["home_address"], other, "{b}");
    drop((driver, dsmip));
    rig.sigterm()?;
    Ok(())
}

/// An ICMP echo request from the IPv4 home address to the correspondent, as the mobile node
/// sends it inside UDP 4191 (RFC 5555 §4.1).
fn echo_request(src: Ipv4Addr, dst: Ipv4Addr, seq: u16, data: &[u8]) -> Result<Vec<u8>> {
    let mut icmp = vec![8, 0, 0, 0, 0x12, 0x34];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = mipsec::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let h = mipsec::wire::ip::Ipv4Repr {
        dscp: 0,
        ecn: 0,
        identification: seq,
        dont_fragment: true,
        more_fragments: false,
        fragment_offset: 0,
        ttl: 64,
        protocol: 1,
        src,
        dst,
        payload_len: icmp.len() as u16,
    };
    let mut pkt = vec![0u8; 20];
    h.emit(&mut pkt)?;
    pkt.extend_from_slice(&icmp);
    Ok(pkt)
}

/// The data plane: after registering, the mobile node's IPv4 and IPv6 home addresses reach a
/// correspondent on the home link through the UDP 4191 tunnel and the HA's TUN device, and
/// the kernel's echo reply comes back through the tunnel via the NAT. A packet with a source
/// that is not bound to the tunnel is dropped.
#[test]
fn home_address_traffic_of_both_families_through_udp_tunnel() -> Result<()> {
    let mut rig = Rig::build("hadtun", false, true)?;
    rig.start()?;
    let ba = rig
        .send(bu(1, 400, "0.0.0.0/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    let (status, _, _, v4, _) = read_ba(&ba)?;
    assert_eq!(status, 0);
    let hoa4 = v4.context("no IPv4 home address")?.1;
    let cn = Ipv4Addr::new(203, 0, 113, 2);
    let data = b"dsmip data plane, byte for byte";
    let reply = rig
        .send(echo_request(hoa4, cn, 1, data)?, Duration::from_secs(3))?
        .with_context(|| format!("no echo reply through the tunnel: {}", rig.log_text()))?;
    let (h, hl) = mipsec::wire::ip::Ipv4Repr::parse(&reply)?;
    assert_eq!((h.src, h.dst, h.protocol), (cn, hoa4, 1));
    assert_eq!(reply[hl], 0, "ICMP echo reply");
    assert_eq!(&reply[hl + 6..hl + 8], &1u16.to_be_bytes());
    assert_eq!(&reply[hl + 8..], data);

    // A source address that is not this binding's is not forwarded.
    let spoofed = echo_request(Ipv4Addr::new(198, 51, 100, 9), cn, 2, data)?;
    assert!(rig.send(spoofed, Duration::from_millis(800))?.is_none());
    let m = rig.metrics()?;
    assert_eq!(
        metric(
            &m,
            "dsmip_ha_tunnel_packets_total{kind=\"udp4191\",dir=\"rx\"} "
        ),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(
            &m,
            "dsmip_ha_tunnel_packets_total{kind=\"udp4191\",dir=\"tx\"} "
        ),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_tunnel_drops_total{reason=\"spoofed\"} "),
        Some(1),
        "{m}"
    );

    // IPv6: the correspondent on the home link reaches the home address through proxy NDP,
    // the /128 route into the TUN device and the tunnel.
    let (hoa, cn6): (Ipv6Addr, Ipv6Addr) = (HOA.parse()?, "2001:db8:1::2".parse()?);
    let reply = rig
        .send(echo6_request(hoa, cn6, 3, data)?, Duration::from_secs(5))?
        .with_context(|| format!("no IPv6 echo reply through the tunnel: {}", rig.log_text()))?;
    let h = Ipv6Repr::parse(&reply)?;
    assert_eq!((h.src, h.dst, h.next_header), (cn6, hoa, 58));
    assert_eq!(reply[40], 129, "ICMPv6 echo reply");
    assert_eq!(&reply[48..], data);
    let neigh = rig
        .lab
        .run(&rig.ha, &["ip", "-6", "neigh", "show", "proxy"])?;
    assert!(neigh.contains(HOA), "proxy NDP entry: {neigh}");

    // Deregistration removes the route and the proxy entries again.
    let ba = rig
        .send(bu(2, 0, "198.51.100.2/32")?, Duration::from_secs(3))?
        .context("no BA")?;
    assert_eq!(read_ba(&ba)?.0, 0);
    let neigh = rig
        .lab
        .run(&rig.ha, &["ip", "-6", "neigh", "show", "proxy"])?;
    assert!(!neigh.contains(HOA), "proxy NDP entry left: {neigh}");
    let routes = rig
        .lab
        .run(&rig.ha, &["ip", "-6", "route", "show", "dev", "dsmha0"])?;
    assert!(!routes.contains(HOA), "{routes}");
    let log = rig.sigterm()?;
    assert!(log.contains("TUN device up"), "{log}");
    assert!(!log.contains("data plane event failed"), "{log}");
    Ok(())
}

/// An ICMPv6 echo request from the IPv6 home address, as sent inside UDP 4191.
fn echo6_request(src: Ipv6Addr, dst: Ipv6Addr, seq: u16, data: &[u8]) -> Result<Vec<u8>> {
    let mut icmp = vec![128, 0, 0, 0, 0x56, 0x78];
    icmp.extend_from_slice(&seq.to_be_bytes());
    icmp.extend_from_slice(data);
    let c = mipsec::wire::checksum::upper_v6(&src, &dst, 58, &icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let h = Ipv6Repr {
        dscp: 0,
        ecn: 0,
        flow_label: 0,
        payload_len: icmp.len() as u16,
        next_header: 58,
        hop_limit: 64,
        src,
        dst,
    };
    let mut pkt = vec![0u8; 40];
    h.emit(&mut pkt)?;
    pkt.extend_from_slice(&icmp);
    Ok(pkt)
}

/// A raw IPv4 socket for one protocol in a lab namespace, read by a thread (the socket has
/// no timeout of its own); dropping it wakes the thread with a packet to `me` so it ends.
struct RawRx {
    sock: std::sync::Arc<mipsec::io::raw::RawSocket>,
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    me: Ipv4Addr,
}

impl RawRx {
    fn open(ns: &str, protocol: u8, me: Ipv4Addr) -> Result<RawRx> {
        let sock = std::sync::Arc::new(in_ns(ns, move || {
            Ok(mipsec::io::raw::RawSocket::open(false, protocol)?)
        })?);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (s, st) = (sock.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while let Ok((n, _)) = s.recv_from(&mut buf) {
                if st.load(std::sync::atomic::Ordering::Relaxed)
                    || tx.send(buf[..n].to_vec()).is_err()
                {
                    return;
                }
            }
        });
        Ok(RawRx { sock, rx, stop, me })
    }

    /// Send `payload` as this protocol to `dst` (the kernel writes the IPv4 header).
    fn send(&self, payload: &[u8], dst: Ipv4Addr) -> Result<()> {
        self.sock.send_to(payload, IpAddr::V4(dst))?;
        Ok(())
    }

    /// The next packet (with its IPv4 header) from `from`, within `wait`.
    fn recv_from(&self, from: Ipv4Addr, wait: Duration) -> Option<Vec<u8>> {
        let end = std::time::Instant::now() + wait;
        loop {
            let left = end.saturating_duration_since(std::time::Instant::now());
            let p = self.rx.recv_timeout(left).ok()?;
            if p.get(12..16) == Some(&from.octets()[..]) {
                return Some(p);
            }
        }
    }
}

impl Drop for RawRx {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = self.sock.send_to(&[0u8; 8], IpAddr::V4(self.me));
    }
}

/// The payload after the IPv4 header of a raw packet, and the header.
fn ipv4_payload(p: &[u8]) -> Result<(mipsec::wire::ip::Ipv4Repr, &[u8])> {
    let (h, hl) = mipsec::wire::ip::Ipv4Repr::parse(p)?;
    Ok((h, &p[hl..hl + usize::from(h.payload_len)]))
}

/// Checks an ICMP echo reply (IPv4) from `src` to `dst` carrying `data`.
fn check_echo_reply(
    reply: &[u8],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    seq: u16,
    data: &[u8],
) -> Result<()> {
    let (h, hl) = mipsec::wire::ip::Ipv4Repr::parse(reply)?;
    assert_eq!((h.src, h.dst, h.protocol), (src, dst, 1));
    assert_eq!(reply[hl], 0, "ICMP echo reply");
    assert_eq!(&reply[hl + 6..hl + 8], &seq.to_be_bytes());
    assert_eq!(&reply[hl + 8..], data);
    Ok(())
}

/// Checks an ICMPv6 echo reply from `src` to `dst` carrying `data`.
fn check_echo6_reply(reply: &[u8], src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Result<()> {
    let h = Ipv6Repr::parse(reply)?;
    assert_eq!((h.src, h.dst, h.next_header), (src, dst, 58));
    assert_eq!(reply[40], 129, "ICMPv6 echo reply");
    assert_eq!(&reply[48..], data);
    Ok(())
}

/// RFC 5555 §5.2.2, as the MN negotiates it (contract of issue 8): CREATE_CHILD_SA on the
/// IKE SA of the signalling SA, tunnel mode, TSi = both home addresses, TSr = everything.
fn data_sa(
    driver: &mut Driver,
    sa: ike::sa::SaId,
    ts_local: Vec<TrafficSelector>,
) -> Result<ike::sa::ChildSa> {
    let any = vec![
        TrafficSelector::prefix("::".parse()?, 0),
        TrafficSelector::prefix("0.0.0.0".parse()?, 0),
    ];
    let policy = ike::sa::ChildPolicy {
        esp_proposals: vec![Proposal::parse("aes128gcm16", ProtocolId::ESP)?],
        ts_local,
        ts_remote: any.clone(),
        transport: false,
    };
    driver
        .endpoint
        .create_child(std::time::Instant::now(), sa, policy)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        match driver.next_event(deadline)? {
            Some(ike::sa::Event::ChildSaUp { child, .. }) => {
                assert_eq!(child.mode, Mode::Tunnel);
                assert_eq!(child.ts_remote, any, "TSr not narrowed by the home agent");
                return Ok(child);
            }
            Some(ike::sa::Event::ChildSaFailed { notify, .. }) => {
                bail!("data SA refused: notify {notify}")
            }
            Some(_) => {}
            None => bail!("no answer to CREATE_CHILD_SA"),
        }
    }
}

/// The mobile node's two halves of a data SA.
fn data_keys(child: &ike::sa::ChildSa) -> Result<(OutboundSa, InboundSa)> {
    let transform = Transform::from_name(&child.proposal.name()).context("transform")?;
    let k = &child.keys;
    Ok((
        OutboundSa::new(
            SaConfig::new(child.spi_out, transform),
            &[k.enc_out.expose(), k.auth_out.expose()].concat(),
        )?,
        InboundSa::new(
            SaConfig::new(child.spi_in, transform),
            &[k.enc_in.expose(), k.auth_in.expose()].concat(),
        )?,
    ))
}

/// Seal an inner packet in ESP tunnel mode (Next Header 4 or 41 by its version).
fn esp_seal(sa: &mut OutboundSa, inner: &[u8]) -> Result<Vec<u8>> {
    let nh = if inner[0] >> 4 == 4 { 4 } else { 41 };
    let mut out = vec![0u8; inner.len() + 64];
    let n = sa.encapsulate(nh, inner, &mut out)?;
    out.truncate(n);
    Ok(out)
}

/// Open a tunnel-mode ESP packet; returns the inner packet.
fn esp_open(sa: &mut InboundSa, esp: &mut [u8]) -> Result<Vec<u8>> {
    match sa.decapsulate(esp)? {
        mipsec::esp::Inbound::Packet {
            payload,
            next_header,
            ..
        } => {
            assert!(next_header == 4 || next_header == 41, "tunnel mode");
            Ok(esp[payload].to_vec())
        }
        other => bail!("not a packet: {other:?}"),
    }
}

/// Send a BU sealed with the signalling SA from `sock`; returns the BA's fields.
fn esp_bu(
    sock: &UdpSocket,
    out: &mut OutboundSa,
    inb: &mut InboundSa,
    clear: &[u8],
) -> Result<BaFields> {
    let mut wire = vec![0u8; clear.len() + 64];
    let n = transport::encapsulate(out, clear, &mut wire)?;
    sock.send_to(&wire[..n], (HA4, 4191))?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = vec![0u8; 2048];
    let (m, _) = sock.recv_from(&mut buf).context("no BA")?;
    assert_eq!(buf[6], IPPROTO_ESP, "BA under ESP");
    let (range, _) = transport::decapsulate(inb, &mut buf[..m])?;
    read_ba(&buf[range])
}

/// RFC 5555 §5.2.2 through the NAT, then a K-flag move out of it (RFC 5555 §5.1, RFC 4877
/// §4.4): the data SA comes up on the signalling SA's IKE SA; ping of both families from
/// both home addresses travels as ESP in UDP 4500 both ways (the home agent answers the
/// NAT's mapping of the socket the ESP came from); a spoofed inner source is dropped; an
/// SA for someone else's address is not installed. Then the mobile node registers from a
/// new care-of address without a NAT: the IKE SA moves there, and data goes as raw ESP
/// (protocol 50); the mobile node's next IKE message, still from behind the NAT, moves the
/// IKE SA back (followed because of K). Deleting the IKE SA removes the data SA.
#[test]
fn esp_data_sa_through_nat_then_k_move_to_raw_esp() -> Result<()> {
    let mut rig = Rig::build("hadata", true, true)?;
    rig.start()?;
    let (mut driver, dsmip, mut sig_out, mut sig_in, _, sa) = transport_sa(&rig, HOA)?;
    let (status, _, _, v4, nat) = esp_bu(
        &dsmip,
        &mut sig_out,
        &mut sig_in,
        &bu(1, 400, "0.0.0.0/32")?,
    )?;
    assert_eq!(status, 0);
    assert!(nat);
    let hoa4 = v4.context("no IPv4 home address")?.1;
    let hoa: Ipv6Addr = HOA.parse()?;

    // A data SA claiming another node's IPv4 address is negotiated but not installed.
    let bad = data_sa(
        &mut driver,
        sa,
        vec![
            TrafficSelector::prefix(IpAddr::V6(hoa), 128),
            TrafficSelector::prefix(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)), 32),
        ],
    )?;
    let child = data_sa(
        &mut driver,
        sa,
        vec![
            TrafficSelector::prefix(IpAddr::V6(hoa), 128),
            TrafficSelector::prefix(IpAddr::V4(hoa4), 32),
        ],
    )?;
    assert!(child.encap.is_some(), "ESP in UDP behind the NAT");
    let (mut d_out, mut d_in) = data_keys(&child)?;
    let m = rig.metrics()?;
    assert_eq!(
        metric(&m, "dsmip_ha_data_sas_refused_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_data_sas_installed_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_data_sas "), Some(1), "{m}");
    let b = rig.ctl("bindings")?;
    assert_eq!(
        b[0]["data_sa_spis"]["in"],
        format!("{:#010x}", child.spi_out),
        "{b}"
    );
    assert_eq!(
        b[0]["data_sa_spis"]["out"],
        format!("{:#010x}", child.spi_in),
        "{b}"
    );
    let human = Command::new(&rig.bin)
        .args(["bindings", "--socket"])
        .arg(&rig.socket)
        .output()?;
    let human = String::from_utf8_lossy(&human.stdout);
    assert!(
        human.contains(&format!("{:#010x}/{:#010x}", child.spi_out, child.spi_in)),
        "{human}"
    );

    // ESP in UDP from another socket of the mobile node: the home agent answers where the
    // authenticated ESP came from (the NAT's mapping of that socket).
    let udp = in_ns(&rig.mn, || Ok(UdpSocket::bind((MN4, 4501))?))?;
    udp.set_read_timeout(Some(Duration::from_secs(3)))?;
    let cn = Ipv4Addr::new(203, 0, 113, 2);
    let data = b"dsmip data over ESP in UDP";
    let mut buf = vec![0u8; 4096];
    udp.send_to(
        &esp_seal(&mut d_out, &echo_request(hoa4, cn, 1, data)?)?,
        (HA4, 4500),
    )?;
    let (n, from) = udp
        .recv_from(&mut buf)
        .with_context(|| format!("no ESP echo reply: {}", rig.log_text()))?;
    assert_eq!(from, SocketAddr::new(IpAddr::V4(HA4), 4500));
    let esp_spi = u32::from_be_bytes(buf[..4].try_into()?);
    assert_eq!(esp_spi, child.spi_in, "sealed with the data SA");
    check_echo_reply(&esp_open(&mut d_in, &mut buf[..n])?, cn, hoa4, 1, data)?;
    let cn6: Ipv6Addr = "2001:db8:1::2".parse()?;
    udp.send_to(
        &esp_seal(&mut d_out, &echo6_request(hoa, cn6, 2, data)?)?,
        (HA4, 4500),
    )?;
    let (n, _) = udp
        .recv_from(&mut buf)
        .with_context(|| format!("no ESP echo6 reply: {}", rig.log_text()))?;
    check_echo6_reply(&esp_open(&mut d_in, &mut buf[..n])?, cn6, hoa, data)?;
    // A spoofed inner source under the right SA is dropped (RFC 4301 §5.2).
    let spoofed = echo_request(Ipv4Addr::new(198, 51, 100, 9), cn, 3, data)?;
    udp.send_to(&esp_seal(&mut d_out, &spoofed)?, (HA4, 4500))?;
    udp.set_read_timeout(Some(Duration::from_millis(800)))?;
    assert!(udp.recv_from(&mut buf).is_err(), "spoofed packet answered");
    let m = rig.metrics()?;
    let kind = |k: &str, d: &str| {
        metric(
            &m,
            &format!("dsmip_ha_tunnel_packets_total{{kind=\"{k}\",dir=\"{d}\"}} "),
        )
    };
    assert_eq!(
        (kind("esp-udp", "rx"), kind("esp-udp", "tx")),
        (Some(2), Some(2)),
        "{m}"
    );
    assert_eq!(kind("udp4191", "tx"), Some(0), "{m}");
    assert_eq!(
        metric(&m, "dsmip_ha_tunnel_drops_total{reason=\"spoofed\"} "),
        Some(1),
        "{m}"
    );
    drop(bad);

    // K: the mobile node moves to 192.0.2.3, outside the NAT (the masquerade skips it).
    let moved = Ipv4Addr::new(192, 0, 2, 3);
    let nat = rig.nat.clone();
    rig.lab
        .run(&nat, &["ip", "addr", "add", "192.0.2.3/24", "dev", "out0"])?;
    rig.lab.run(
        &nat,
        &[
            "nft",
            "insert",
            "rule",
            "ip",
            "dsmip_nat",
            "post",
            "ip",
            "saddr",
            "192.0.2.3",
            "accept",
        ],
    )?;
    let raw = RawRx::open(&nat, 50, moved)?;
    let sock2 = in_ns(&nat, move || Ok(UdpSocket::bind((moved, 4191))?))?;
    let (status, seq, _, v4, _) = esp_bu(
        &sock2,
        &mut sig_out,
        &mut sig_in,
        &bu_from(2, 400, &format!("{hoa4}/32"), moved)?,
    )?;
    assert_eq!((status, seq), (0, 2));
    assert_eq!(v4.map(|v| v.1), Some(hoa4));
    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["care_of_address"], moved.to_string(), "{b}");
    assert_eq!(b[0]["nat"], false, "{b}");
    assert_eq!(b[0]["encapsulation"], "ip-in-ip", "{b}");
    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_ike_peer_moves_total "), Some(1), "{m}");
    assert!(
        rig.log_text()
            .contains("IKE SA moved with the binding (K flag)"),
        "{}",
        rig.log_text()
    );
    // Raw ESP both ways now: in from the nat namespace, out to the new care-of address.
    raw.send(
        &esp_seal(&mut d_out, &echo_request(hoa4, cn, 4, data)?)?,
        HA4,
    )?;
    let pkt = raw
        .recv_from(HA4, Duration::from_secs(3))
        .with_context(|| format!("no raw ESP reply: {}", rig.log_text()))?;
    let (h, esp) = ipv4_payload(&pkt)?;
    assert_eq!((h.dst, h.protocol), (moved, 50));
    let mut esp = esp.to_vec();
    check_echo_reply(&esp_open(&mut d_in, &mut esp)?, cn, hoa4, 4, data)?;
    let m = rig.metrics()?;
    let kind = |k: &str, d: &str| {
        metric(
            &m,
            &format!("dsmip_ha_tunnel_packets_total{{kind=\"{k}\",dir=\"{d}\"}} "),
        )
    };
    assert_eq!(
        (kind("esp", "rx"), kind("esp", "tx")),
        (Some(1), Some(1)),
        "{m}"
    );
    assert_eq!(kind("ipip", "tx"), Some(0), "data SA first: {m}");

    // The IKE SA now points at 192.0.2.3, but the mobile node's IKE sockets are still
    // behind the NAT: its liveness check from there is answered only because the home
    // agent follows an authenticated message from a new address for a K-flag SA.
    driver.endpoint.liveness(std::time::Instant::now(), sa)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while driver.endpoint.busy(sa) && std::time::Instant::now() < deadline {
        driver.next_event(std::time::Instant::now() + Duration::from_millis(100))?;
    }
    assert!(
        !driver.endpoint.busy(sa),
        "liveness check not answered: {}",
        rig.log_text()
    );
    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_ike_peer_moves_total "), Some(2), "{m}");
    assert!(rig
        .log_text()
        .contains("IKE SA follows its peer to a new address"));

    // Deleting the IKE SA removes the data SA: its ESP is then unknown.
    assert!(interop::ike_probe::delete(
        &mut driver,
        sa,
        Duration::from_secs(5)
    )?);
    raw.send(
        &esp_seal(&mut d_out, &echo_request(hoa4, cn, 5, data)?)?,
        HA4,
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let m = rig.metrics()?;
    assert_eq!(metric(&m, "dsmip_ha_data_sas "), Some(0), "{m}");
    assert_eq!(
        metric(&m, "dsmip_ha_data_sas_removed_total "),
        Some(1),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_esp_unknown_spi_total "),
        Some(1),
        "{m}"
    );
    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["data_sa_spis"], Value::Null, "{b}");
    drop((driver, raw));
    rig.sigterm()?;
    Ok(())
}

/// RFC 5555 §4.1 IP-in-IP for an IPv4 care-of address without a NAT (no F flag): the
/// mobile node registers from the nat namespace's own address; IPv4 in IPv4 (protocol 4)
/// and IPv6 in IPv4 (protocol 41) reach the correspondent and come back the same way; a
/// source not bound to the care-of address is dropped.
#[test]
fn ip_in_ip_both_families_without_nat() -> Result<()> {
    let mut rig = Rig::build("hadipip", false, true)?;
    rig.start()?;
    let nat = rig.nat.clone();
    let coa = NAT4;
    let sock = in_ns(&nat, move || Ok(UdpSocket::bind((coa, 4191))?))?;
    sock.send_to(&bu_from(1, 400, "0.0.0.0/32", coa)?, (HA4, 4191))?;
    sock.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut buf = vec![0u8; 2048];
    let (n, _) = sock.recv_from(&mut buf).context("no BA")?;
    let (status, _, _, v4, _) = read_ba(&buf[..n])?;
    assert_eq!(status, 0);
    let hoa4 = v4.context("no IPv4 home address")?.1;
    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["encapsulation"], "ip-in-ip", "{b}");
    assert_eq!(b[0]["nat"], false, "{b}");

    let (p4, p41) = (RawRx::open(&nat, 4, coa)?, RawRx::open(&nat, 41, coa)?);
    let cn = Ipv4Addr::new(203, 0, 113, 2);
    let data = b"dsmip data in IP-in-IP";
    p4.send(&echo_request(hoa4, cn, 1, data)?, HA4)?;
    let pkt = p4
        .recv_from(HA4, Duration::from_secs(3))
        .with_context(|| format!("no IPv4-in-IPv4 reply: {}", rig.log_text()))?;
    let (h, inner) = ipv4_payload(&pkt)?;
    assert_eq!((h.src, h.dst, h.protocol), (HA4, coa, 4));
    check_echo_reply(inner, cn, hoa4, 1, data)?;

    let (hoa, cn6): (Ipv6Addr, Ipv6Addr) = (HOA.parse()?, "2001:db8:1::2".parse()?);
    p41.send(&echo6_request(hoa, cn6, 2, data)?, HA4)?;
    let pkt = p41
        .recv_from(HA4, Duration::from_secs(5))
        .with_context(|| format!("no IPv6-in-IPv4 reply: {}", rig.log_text()))?;
    let (h, inner) = ipv4_payload(&pkt)?;
    assert_eq!((h.dst, h.protocol), (coa, 41));
    check_echo6_reply(inner, cn6, hoa, data)?;

    // Not this binding's source; and IPv6 inside protocol 4: both dropped as spoofed.
    p4.send(
        &echo_request(Ipv4Addr::new(198, 51, 100, 9), cn, 3, data)?,
        HA4,
    )?;
    p4.send(&echo6_request(hoa, cn6, 4, data)?, HA4)?;
    assert!(p4.recv_from(HA4, Duration::from_millis(800)).is_none());
    let m = rig.metrics()?;
    let kind = |k: &str, d: &str| {
        metric(
            &m,
            &format!("dsmip_ha_tunnel_packets_total{{kind=\"{k}\",dir=\"{d}\"}} "),
        )
    };
    assert_eq!(
        (kind("ipip", "rx"), kind("ipip", "tx")),
        (Some(2), Some(2)),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_tunnel_drops_total{reason=\"spoofed\"} "),
        Some(2),
        "{m}"
    );
    drop((p4, p41));
    rig.sigterm()?;
    Ok(())
}

const COA6: &str = "2001:db8:3::2";

/// The next packet from the home agent's address read from `tun` (the mobile node's visited
/// link) within `wait`. An ICMPv6 Parameter Problem on the way is an error: it would mean
/// the home agent's kernel, not the daemon, answered a Home Address option.
fn tun_recv(tun: &mipsec::io::tun::Tun, wait: Duration) -> Result<Option<Vec<u8>>> {
    let ha6: Ipv6Addr = HA6.parse()?;
    let end = std::time::Instant::now() + wait;
    let mut buf = vec![0u8; 65_536];
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        let ms = i32::try_from(left.as_millis()).unwrap_or(i32::MAX);
        if ms == 0 || !tun.wait_readable(ms)? {
            return Ok(None);
        }
        let n = tun.recv(&mut buf)?;
        let p = &buf[..n];
        if p.len() < 48 || p[0] >> 4 != 6 {
            continue;
        }
        if p[6] == 58 && p[40] == 4 {
            bail!("ICMPv6 Parameter Problem reached the care-of address: {p:02x?}");
        }
        if p[8..24] == ha6.octets() {
            return Ok(Some(p.to_vec()));
        }
    }
}

/// RFC 6275 §10.3.1 / §11.7.1, RFC 5555 §4.4.1 and RFC 2473: a mobile node with an IPv6
/// care-of address. Its visited link is a TUN device in the nat namespace (the test writes
/// and reads whole IPv6 packets there; the nat namespace routes them to and from the home
/// agent over IPv6). IKE runs over IPv4 (the SA's selectors are the home address and the
/// home agent, not the outer addresses). The node registers first over IPv4 from
/// 192.0.2.2 (K set), then moves: the BU goes as `IPv6 (CoA -> HA) / Destination
/// Options (HoA) / ESP / MH`, the BA comes back as `IPv6 (HA -> CoA) / type 2 routing
/// header (HoA) / ESP / MH` and is decrypted and checked; ICMPv6 and ICMP echo through
/// IPv6-in-IPv6 and IPv4-in-IPv6 reach the correspondent and come back the same way; a
/// spoofed inner source is dropped; the home agent's kernel sent no Parameter Problem and
/// counted no header error; the IKE SA stayed on IPv4 despite K (its Delete is answered
/// there); the nftables table goes with the daemon.
#[test]
fn ipv6_care_of_address_bu_ba_and_ip_in_ipv6() -> Result<()> {
    let mut rig = Rig::build("hadv6", true, true)?;
    let text = fs::read_to_string(&rig.config)?.replacen(
        "[daemon]\n",
        "[daemon]\nlisten_v6_interfaces = [\"eth0\"]\n",
        1,
    );
    fs::write(&rig.config, text)?;
    let (nat, ha) = (rig.nat.clone(), rig.ha.clone());
    let run = |ns: &str, argv: &[&str]| rig.lab.run(ns, argv).map(|_| ());
    run(
        &nat,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::2/64",
            "dev",
            "out0",
            "nodad",
        ],
    )?;
    run(
        &ha,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:2::1/64",
            "dev",
            "eth0",
            "nodad",
        ],
    )?;
    run(
        &ha,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:3::/64",
            "via",
            "2001:db8:2::2",
        ],
    )?;
    rig.lab.sysctl(&nat, "net.ipv6.conf.all.forwarding", "1")?;
    let tun = in_ns(&nat, || {
        let t = mipsec::io::tun::Tun::create("mn6")?;
        t.up()?;
        Ok(t)
    })?;
    run(
        &nat,
        &["ip", "-6", "route", "add", "2001:db8:3::/64", "dev", "mn6"],
    )?;
    run(
        &nat,
        &[
            "ip",
            "-6",
            "route",
            "add",
            "2001:db8:1::/64",
            "via",
            "2001:db8:2::1",
        ],
    )?;
    rig.start()?;
    let tables = rig.lab.run(&ha, &["nft", "list", "tables"])?;
    assert!(tables.contains("ip6 dsmip_ha_mip6"), "{tables}");

    let (mut driver, dsmip, mut out_sa, mut in_sa, child, sa) =
        transport_sa_in(&rig, HOA, &nat, NAT4)?;
    // First at 192.0.2.2 over IPv4 (UDP 4191, K set), then the move to the IPv6 care-of
    // address with K: the IKE SA must stay on IPv4, where the responder listens.
    let first = esp_bu(
        &dsmip,
        &mut out_sa,
        &mut in_sa,
        &bu_from(1, 400, "0.0.0.0/32", NAT4)?,
    )?;
    assert_eq!(first.0, 0);
    let hoa4_first = first.3.context("no IPv4 home address over IPv4")?.1;
    let (hoa, ha6, coa): (Ipv6Addr, Ipv6Addr, Ipv6Addr) =
        (HOA.parse()?, HA6.parse()?, COA6.parse()?);
    let spec = BuSpec {
        sequence: 2,
        lifetime_secs: 400,
        flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
        hoa,
        ha: ha6,
        ipv4_hoa: Some(Ipv4Prefix {
            addr: Ipv4Addr::UNSPECIFIED,
            len: 32,
        }),
        prefix_request: false,
        ipv4_coa: None,
    };
    let addressing = interop::probe::encode::V6Addressing {
        src: coa,
        dst: ha6,
        hao: Some(hoa),
        rh2: None,
    };
    let clear = interop::probe::encode::ipv6_packet(
        &interop::probe::encode::Upper::Mh(bu_repr(&spec)?),
        &addressing,
    )?;
    let mut wire = vec![0u8; clear.len() + 64];
    let n = transport::encapsulate(&mut out_sa, &clear, &mut wire)?;
    // IPv6 / Destination Options (HoA) / ESP / MH (RFC 6275 §11.3.2 order).
    assert_eq!((wire[6], wire[40]), (60, IPPROTO_ESP));
    tun.send(&wire[..n])?;
    let mut ba = tun_recv(&tun, Duration::from_secs(3))?
        .with_context(|| format!("no BA over IPv6: {}", rig.log_text()))?;
    let h = Ipv6Repr::parse(&ba)?;
    assert_eq!(
        (h.src, h.dst, h.next_header),
        (ha6, coa, 43),
        "routing header first"
    );
    let rh = mipsec::wire::ext::RoutingHeaderType2::parse(&ba[40..])?;
    assert_eq!((rh.segments_left, rh.home_address), (1, hoa));
    assert_eq!(rh.next_header, IPPROTO_ESP, "the BA must be ESP-protected");
    let (range, _) = transport::decapsulate(&mut in_sa, &mut ba)?;
    let ba = &ba[range];
    assert_eq!(
        ba[40], 135,
        "MH after the routing header once ESP is removed"
    );
    let mh = mipsec::wire::mh::MhPacket::new_checked(&ba[64..])?;
    mh.verify_checksum(&ha6, &hoa)?;
    // As the mobile node sees it after the routing header: HA -> HoA / MH.
    let mut seen = ba[..40].to_vec();
    seen[6] = 135;
    seen[24..40].copy_from_slice(&hoa.octets());
    seen.extend_from_slice(&ba[64..]);
    let mh_len = u16::try_from(ba.len() - 64)?;
    seen[4..6].copy_from_slice(&mh_len.to_be_bytes());
    let (status, seq, _, v4, nat_seen) = read_ba(&seen)?;
    assert_eq!((status, seq, nat_seen), (0, 2, false));
    let (v4_status, hoa4) = v4.context("no IPv4 address acknowledgement")?;
    assert_eq!(
        (v4_status, hoa4),
        (0, hoa4_first),
        "the IPv4 home address is kept"
    );

    let b = rig.ctl("bindings")?;
    assert_eq!(b[0]["care_of_address"], COA6, "{b}");
    assert_eq!(b[0]["encapsulation"], "ip-in-ip", "{b}");
    assert_eq!(b[0]["nat"], false, "{b}");
    assert_eq!(
        b[0]["sa_spis"]["in"],
        format!("{:#010x}", child.spi_out),
        "{b}"
    );

    // IPv6 in IPv6 (41) and IPv4 in IPv6 (4) from the care-of address to the home agent.
    let wrap = |nh: u8, inner: &[u8]| -> Result<Vec<u8>> {
        let mut p = vec![0u8; 40];
        Ipv6Repr {
            dscp: 0,
            ecn: 0,
            flow_label: 0,
            payload_len: u16::try_from(inner.len())?,
            next_header: nh,
            hop_limit: 64,
            src: coa,
            dst: ha6,
        }
        .emit(&mut p)?;
        p.extend_from_slice(inner);
        Ok(p)
    };
    let (cn6, cn4): (Ipv6Addr, Ipv4Addr) = ("2001:db8:1::2".parse()?, "203.0.113.2".parse()?);
    let data = b"dsmip data in IP-in-IPv6";
    tun.send(&wrap(41, &echo6_request(hoa, cn6, 1, data)?)?)?;
    let r = tun_recv(&tun, Duration::from_secs(5))?
        .with_context(|| format!("no IPv6-in-IPv6 reply: {}", rig.log_text()))?;
    let h = Ipv6Repr::parse(&r)?;
    assert_eq!((h.src, h.dst, h.next_header), (ha6, coa, 41));
    check_echo6_reply(&r[40..], cn6, hoa, data)?;

    tun.send(&wrap(4, &echo_request(hoa4, cn4, 2, data)?)?)?;
    let r = tun_recv(&tun, Duration::from_secs(5))?
        .with_context(|| format!("no IPv4-in-IPv6 reply: {}", rig.log_text()))?;
    let h = Ipv6Repr::parse(&r)?;
    assert_eq!((h.src, h.dst, h.next_header), (ha6, coa, 4));
    check_echo_reply(&r[40..], cn4, hoa4, 2, data)?;

    // Not this binding's inner source; IPv6 inside protocol 4: both dropped as spoofed.
    tun.send(&wrap(
        41,
        &echo6_request("2001:db8:1::9".parse()?, cn6, 3, data)?,
    )?)?;
    tun.send(&wrap(4, &echo6_request(hoa, cn6, 4, data)?)?)?;
    assert!(tun_recv(&tun, Duration::from_millis(800))?.is_none());
    let m = rig.metrics()?;
    let kind = |k: &str, d: &str| {
        metric(
            &m,
            &format!("dsmip_ha_tunnel_packets_total{{kind=\"{k}\",dir=\"{d}\"}} "),
        )
    };
    assert_eq!(
        (kind("ip6ip", "rx"), kind("ip6ip", "tx")),
        (Some(2), Some(2)),
        "{m}"
    );
    assert_eq!(
        metric(&m, "dsmip_ha_tunnel_drops_total{reason=\"spoofed\"} "),
        Some(2),
        "{m}"
    );
    assert_eq!(metric(&m, "dsmip_ha_bu_accepted_total "), Some(2), "{m}");
    assert_eq!(metric(&m, "dsmip_ha_ike_peer_moves_total "), Some(0), "{m}");

    // A data SA (RFC 5555 §5.2.2) on the same IKE SA: with an IPv6 care-of address its
    // packets travel as IPv6 / ESP between the care-of address and the home agent address,
    // and the data SA is preferred over IPv6-in-IPv6.
    let child = data_sa(
        &mut driver,
        sa,
        vec![
            TrafficSelector::prefix(IpAddr::V6(hoa), 128),
            TrafficSelector::prefix(IpAddr::V4(hoa4), 32),
        ],
    )?;
    let (mut d_out, mut d_in) = data_keys(&child)?;
    let installed = wait_until(Duration::from_secs(3), || {
        rig.ctl("bindings")
            .is_ok_and(|b| b[0]["data_sa_spis"]["in"] == format!("{:#010x}", child.spi_out))
    });
    assert!(installed, "data SA not installed: {}", rig.log_text());
    tun.send(&wrap(
        50,
        &esp_seal(&mut d_out, &echo6_request(hoa, cn6, 5, data)?)?,
    )?)?;
    let mut r = tun_recv(&tun, Duration::from_secs(5))?
        .with_context(|| format!("no IPv6 ESP reply: {}", rig.log_text()))?;
    let h = Ipv6Repr::parse(&r)?;
    assert_eq!((h.src, h.dst, h.next_header), (ha6, coa, IPPROTO_ESP));
    check_echo6_reply(&esp_open(&mut d_in, &mut r[40..])?, cn6, hoa, data)?;
    tun.send(&wrap(
        50,
        &esp_seal(&mut d_out, &echo_request(hoa4, cn4, 6, data)?)?,
    )?)?;
    let mut r = tun_recv(&tun, Duration::from_secs(5))?
        .with_context(|| format!("no IPv6 ESP reply (IPv4 inside): {}", rig.log_text()))?;
    assert_eq!(r[6], IPPROTO_ESP);
    check_echo_reply(&esp_open(&mut d_in, &mut r[40..])?, cn4, hoa4, 6, data)?;
    let m = rig.metrics()?;
    let kind = |k: &str, d: &str| {
        metric(
            &m,
            &format!("dsmip_ha_tunnel_packets_total{{kind=\"{k}\",dir=\"{d}\"}} "),
        )
    };
    assert_eq!(
        (kind("esp", "rx"), kind("esp", "tx")),
        (Some(2), Some(2)),
        "{m}"
    );
    assert_eq!(
        (kind("ip6ip", "rx"), kind("ip6ip", "tx")),
        (Some(2), Some(2)),
        "{m}"
    );

    // The IKE SA still answers at its IPv4 address.
    assert!(
        interop::ike_probe::delete(&mut driver, sa, Duration::from_secs(5))?,
        "Delete not answered: the IKE SA left IPv4"
    );
    // The kernel never saw the Home Address option (the nftables table dropped it first).
    let snmp = rig.lab.run(&ha, &["cat", "/proc/net/snmp6"])?;
    let hdr_errors = snmp
        .lines()
        .find_map(|l| l.strip_prefix("Ip6InHdrErrors"))
        .map(str::trim);
    assert_eq!(hdr_errors, Some("0"), "{snmp}");

    let log = rig.sigterm()?;
    assert!(log.contains("type 2 routing header"), "{log}");
    assert!(
        log.contains("IKE SA not moved: the care-of address is IPv6"),
        "{log}"
    );
    let tables = rig.lab.run(&ha, &["nft", "list", "tables"])?;
    assert!(!tables.contains("dsmip_ha_mip6"), "table left: {tables}");
    drop(tun);
    Ok(())
}
