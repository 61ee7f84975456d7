//! The scenarios of RFC 5555 §1.3 end to end (issue 8): the real `dsmip-ha` and `dsmip-mn`
//! in lab namespaces (`interop::lab::Lab::visited`, `Lab::ha_behind_napt`), with real
//! traffic from unmodified programs in the mobile node's namespace to the correspondent on
//! the home link (203.0.113.2, 2001:db8:1::2): `ping -4`, `ping -6`, and TCP transfers of
//! several MB checked byte for byte (`dsmip-tcp-check`: length and SHA-256 at both ends).
//!
//! Each test has its own lab (unique names), so they run in parallel. Needs root, iproute2,
//! nftables, iputils-ping, tcpdump and tshark; a missing tool fails the test.

mod common;

use std::fs;
use std::time::Duration;

use anyhow::{Context, Result};
use common::*;
use interop::lab::{wait_until, Lab, Scenario, V4Access, Visited};
use serde_json::Value;

const MIB: u64 = 1024 * 1024;

/// Mobile node `i`: IKE identity and IPv6 home address the home agent maps it to.
fn peer(i: usize) -> Peer {
    Peer {
        id: format!("mn{i}@example.org"),
        hoa: format!("2001:db8:1::{:x}", 0x100 + i),
        static_v4: None,
    }
}

/// Both logs, for failure messages.
fn logs(ds: &[&Daemon]) -> String {
    ds.iter()
        .map(|d| format!("--- {} ({}) ---\n{}", d.log.display(), d.ns, d.log_text()))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scenario lab with both daemons running: the home agent with one `[[ipsec.peer]]` per
/// mobile node (changed by `ha`), and every mobile node with its IPv4 and IPv6 care-of
/// addresses as candidates (changed by `mn(i, conf)`).
struct Rig {
    lab: Lab,
    sc: Scenario,
    ha: Daemon,
    mns: Vec<Daemon>,
}

impl Rig {
    fn visited(
        tag: &str,
        v: Visited,
        ha: impl FnOnce(&mut HaConf),
        mn: &dyn Fn(usize, &mut MnConf),
    ) -> Result<Rig> {
        // Build the daemons before the lab exists, so a build failure is reported as such.
        bins()?;
        let mut lab = Lab::new(tag)?;
        let sc = lab.visited(v)?;
        Self::start(lab, sc, ha, mn)
    }

    fn start(
        mut lab: Lab,
        sc: Scenario,
        ha: impl FnOnce(&mut HaConf),
        mn: &dyn Fn(usize, &mut MnConf),
    ) -> Result<Rig> {
        let peers: Vec<Peer> = (0..sc.mns.len()).map(peer).collect();
        let mut hc = HaConf::new(sc.ha_v4, peers.clone());
        if sc.mn_v6.iter().any(Option::is_some) {
            // The home agent's interface towards the visited networks' IPv6.
            hc.listen_v6_interfaces = vec!["eth0".into()];
        }
        ha(&mut hc);
        let had = start_ha(&mut lab, &sc.ha.clone(), &hc)?;
        let mut mns = Vec::new();
        for (i, p) in peers.iter().enumerate() {
            let coa: Vec<&str> = sc.mn_v4[i]
                .iter()
                .chain(sc.mn_v6[i].iter())
                .map(String::as_str)
                .collect();
            let mut mc = MnConf::new(&p.id, &p.hoa, &coa, sc.ha_public_v4);
            mn(i, &mut mc);
            mns.push(start_mn(
                &mut lab,
                &sc.mns[i].clone(),
                &format!("mn{i}"),
                &mc,
            )?);
        }
        Ok(Rig {
            lab,
            sc,
            ha: had,
            mns,
        })
    }

    fn ctx(&self) -> String {
        let mut ds: Vec<&Daemon> = self.mns.iter().collect();
        ds.push(&self.ha);
        logs(&ds)
    }

    /// Wait for mobile node `i` to register. Behind a NAT, a mobile node whose status knows
    /// data SAs (RFC 5555 §5.2.2) gets up to 3 s more to bring one up, so that traffic sent
    /// next is not racing its negotiation; the status returned says which mode runs.
    fn registered(&self, i: usize) -> Result<(Value, Duration)> {
        let (st, took) = wait_registered(&self.mns[i], &self.ha, 30)?;
        if st["nat"] == true && st.get("data_sa").is_some() && st["data_sa"].is_null() {
            wait_until(Duration::from_secs(3), || {
                mn_status(&self.mns[i]).is_ok_and(|v| v["data_sa"].is_object())
            });
            return Ok((mn_status(&self.mns[i])?, took));
        }
        Ok((st, took))
    }

    /// ping -4 and -6 to the correspondent from mobile node `i`.
    fn ping_both(&self, i: usize) -> Result<()> {
        let ctx = || self.ctx();
        ping(&self.lab, &self.sc.mns[i], "-4", CN4, 3, &ctx)?;
        ping(&self.lab, &self.sc.mns[i], "-6", CN6, 3, &ctx)
    }

    /// A TCP upload of `bytes` from mobile node `i`'s home address `src` to `dst` on the
    /// correspondent; returns the receiver's report.
    fn upload(&mut self, i: usize, dst: &str, src: &str, bytes: u64) -> Result<Value> {
        let ctx = self.ctx();
        let (from, to) = (self.sc.mns[i].clone(), self.sc.cn.clone());
        let (_, r) = tcp_transfer(&mut self.lab, &from, &to, dst, src, bytes, &|| ctx.clone())?;
        eprintln!("upload {src} -> {dst}: {r}");
        Ok(r)
    }

    /// A TCP download: the correspondent `src` sends `bytes` to mobile node `i`'s `hoa`.
    fn download(&mut self, i: usize, hoa: &str, src: &str, bytes: u64) -> Result<Value> {
        let ctx = self.ctx();
        let (from, to) = (self.sc.cn.clone(), self.sc.mns[i].clone());
        let (_, r) = tcp_transfer(&mut self.lab, &from, &to, hoa, src, bytes, &|| ctx.clone())?;
        eprintln!("download {src} -> {hoa}: {r}");
        Ok(r)
    }
}

fn one_mn(v4: V4Access, v6: bool) -> Visited {
    Visited {
        mobile_nodes: 1,
        v4,
        v6,
    }
}

fn no_change(_: &mut HaConf) {}
fn mn_default(_: usize, _: &mut MnConf) {}

/// Scenario 2 (RFC 5555 §1.3): the mobile node behind a NAT. Registration through the
/// masquerade (NAT detected by the home agent, RFC 5555 §4.1, UDP encapsulation), then
/// `ping -4` / `ping -6` from the home addresses and 8 MiB TCP uploads over the IPv4 and the
/// IPv6 home address, and a 4 MiB download to the IPv4 home address.
#[test]
fn scenario2_mobile_node_behind_nat() -> Result<()> {
    let mut rig = Rig::visited("sc2", one_mn(V4Access::Nat, false), no_change, &mn_default)?;
    let (st, took) = rig.registered(0)?;
    eprintln!("scenario 2: registered in {took:?}");
    let hoa = peer(0).hoa;
    let b = binding_of(&rig.ha, &hoa)?;
    assert_eq!(st["care_of_address"], "10.1.0.2", "{st}");
    assert_eq!(st["nat"], true, "{st}");
    assert_eq!(b["nat"], true, "{b}");
    assert_eq!(b["peer"], "192.0.2.2", "the NAT's public address: {b}");
    assert_eq!(st["encapsulation"], "udp", "{st}");
    let v4 = v4_hoa(&st)?;
    assert!(v4.starts_with("198.51.100."), "{st}");
    assert_eq!(b["ipv4_home_address"], st["ipv4_home_address"], "{b}\n{st}");
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 8 * MIB)?;
    rig.upload(0, CN6, &hoa, 8 * MIB)?;
    rig.download(0, &v4, CN4, 4 * MIB)?;
    let st = mn_status(&rig.mns[0])?;
    eprintln!("scenario 2: data SA {}", st["data_sa"]);
    if st["data_sa"].is_object() {
        // RFC 5555 §5.2.2: the home agent holds the same tunnel-mode SA pair, and the data
        // went through it (16 MiB up is over 11,000 packets of at most 1400 bytes).
        let b = binding_of(&rig.ha, &hoa)?;
        let (mut ours, mut theirs) = (spis_in(&st["data_sa"]), spis_in(&b["data_sa_spis"]));
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "data SA SPIs differ: mn {st}\nha {b}");
        let c = &st["counters"];
        assert!(
            c["data_sa_tx"].as_u64().is_some_and(|n| n >= 11_000),
            "{st}"
        );
        assert!(c["data_sa_rx"].as_u64().is_some_and(|n| n >= 2_000), "{st}");
    } else {
        let t = &st["tunnel"];
        assert!(
            t["tx_bytes"].as_u64().is_some_and(|n| n >= 16 * MIB),
            "the uploads went through the mobile node's tunnel: {st}"
        );
        assert!(
            t["rx_bytes"].as_u64().is_some_and(|n| n >= 4 * MIB),
            "the download came through the tunnel: {st}"
        );
    }
    Ok(())
}

/// Scenario 4 (RFC 5555 §1.3, §3.1.1, §4.5): IPv4 applications over a static and a
/// dynamic IPv4 home address. Mobile node 0 has the static 203.0.113.10 (on the home link:
/// the correspondent reaches it through the home agent's proxy ARP), mobile node 1 a
/// dynamic one from the pool; each is on its TUN device, `ping -4` and TCP leave from it and
/// the correspondent sees it as the peer; the correspondent also opens a TCP connection to
/// the static address.
#[test]
fn scenario4_static_and_dynamic_ipv4_home_addresses() -> Result<()> {
    let v = Visited {
        mobile_nodes: 2,
        v4: V4Access::Nat,
        v6: false,
    };
    let mut lab = Lab::new("sc4")?;
    let sc = lab.visited(v)?;
    let mut rig = Rig::start(
        lab,
        sc,
        |h| h.peers[0].static_v4 = Some("203.0.113.10/32".into()),
        &|i, m| {
            if i == 0 {
                m.ipv4_home = "{ mode = \"static\", address = \"203.0.113.10\" }".into();
            }
        },
    )?;
    let (st0, _) = rig.registered(0)?;
    let (st1, _) = rig.registered(1)?;
    assert_eq!(st0["ipv4_home_address"], "203.0.113.10/32", "{st0}");
    let dynamic = v4_hoa(&st1)?;
    assert!(
        dynamic.starts_with("198.51.100."),
        "dynamic from the pool: {st1}"
    );
    for (i, st) in [(0, &st0), (1, &st1)] {
        let b = binding_of(&rig.ha, &peer(i).hoa)?;
        assert_eq!(b["ipv4_home_address"], st["ipv4_home_address"], "{b}\n{st}");
        let v4 = v4_hoa(st)?;
        let addrs = rig.lab.run(
            &rig.sc.mns[i],
            &["ip", "-o", "-4", "addr", "show", "dev", "dsmmn0"],
        )?;
        assert!(addrs.contains(&format!("inet {v4}/32")), "{addrs}");
        let ctx = || rig.ctx();
        ping(&rig.lab, &rig.sc.mns[i], "-4", CN4, 3, &ctx)?;
        rig.upload(i, CN4, &v4, 4 * MIB)?;
    }
    // The correspondent opens the connection: ARP for 203.0.113.10 on the home link is
    // answered by the home agent (proxy ARP, RFC 5555 §4.5), which tunnels to the node.
    rig.download(0, "203.0.113.10", CN4, 2 * MIB)?;
    Ok(())
}

/// Deregistration (RFC 6275 §11.7.1): SIGTERM to `dsmip-mn` sends a BU with lifetime 0; the
/// home agent's binding cache is empty afterwards, the IPv4 home address lease is kept
/// (RFC 5555 §3.1.1), and the home agent removed the home address's route and proxy entry,
/// so the correspondent no longer reaches it.
#[test]
fn deregistration_on_sigterm_keeps_the_lease() -> Result<()> {
    let mut rig = Rig::visited(
        "dereg",
        one_mn(V4Access::Nat, false),
        no_change,
        &mn_default,
    )?;
    let (st, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    let v4 = v4_hoa(&st)?;
    let ctx = || rig.ctx();
    ping(&rig.lab, &rig.sc.mns[0], "-4", CN4, 2, &ctx)?;
    let route = rig.lab.run(
        &rig.sc.ha,
        &["ip", "-6", "route", "show", &format!("{hoa}/128")],
    )?;
    assert!(
        route.contains("dsmha0"),
        "home address routed into the TUN device: {route}"
    );
    let pid = rig.mns[0].pid;
    let exited = sigterm(&mut rig.lab, pid, 8)?;
    assert!(exited, "dsmip-mn ignored SIGTERM\n{}", rig.ctx());
    let log = rig.mns[0].log_text();
    assert!(log.contains("shutdown: deregistered"), "{log}");
    let b = ha_bindings(&rig.ha)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "binding left: {b}");
    let leases = ha_leases(&rig.ha)?;
    let l = leases
        .as_array()
        .and_then(|a| a.iter().find(|l| l["home_address"] == hoa.as_str()))
        .with_context(|| format!("lease of {hoa} gone: {leases}"))?;
    assert_eq!(l["ipv4"], st["ipv4_home_address"], "{leases}");
    // The data plane forgot the node.
    let gone = wait_until(Duration::from_secs(3), || {
        rig.lab
            .run(
                &rig.sc.ha,
                &["ip", "-6", "route", "show", &format!("{hoa}/128")],
            )
            .is_ok_and(|r| r.trim().is_empty())
    });
    assert!(gone, "the /128 route of {hoa} is still there");
    let proxies = rig
        .lab
        .run(&rig.sc.ha, &["ip", "-6", "neigh", "show", "proxy"])?;
    assert!(!proxies.contains(&hoa), "proxy NDP entry left: {proxies}");
    for (family, dst) in [("-6", hoa.as_str()), ("-4", v4.as_str())] {
        let answer = rig
            .lab
            .run(&rig.sc.cn, &["ping", family, "-c", "1", "-W", "1", dst]);
        assert!(answer.is_err(), "{dst} still answers: {answer:?}");
    }
    Ok(())
}

/// A home agent restart keeps every IPv4 home address lease (RFC 5555 §3.1.1, ha/README.md
/// "Leases"): two mobile nodes behind the NAT register with dynamic IPv4 home addresses;
/// `dsmip-ha` is stopped (SIGTERM, leases flushed), the mobile nodes too; the restarted
/// home agent lists both leases before any Binding Update, and the restarted mobile nodes
/// get the same IPv4 home addresses again.
#[test]
fn ha_restart_keeps_every_ipv4_lease() -> Result<()> {
    let v = Visited {
        mobile_nodes: 2,
        v4: V4Access::Nat,
        v6: false,
    };
    let mut rig = Rig::visited("harst", v, no_change, &mn_default)?;
    let mut before = Vec::new();
    for i in 0..2 {
        let (st, _) = rig.registered(i)?;
        before.push(st["ipv4_home_address"].clone());
    }
    assert_ne!(before[0], before[1], "two nodes, two addresses: {before:?}");
    let ha_pid = rig.ha.pid;
    assert!(
        sigterm(&mut rig.lab, ha_pid, 8)?,
        "dsmip-ha ignored SIGTERM"
    );
    assert!(
        rig.ha.log_text().contains("shutdown: leases flushed"),
        "{}",
        rig.ha.log_text()
    );
    let store = rig.lab.dir().join("leases.redb");
    let size = fs::metadata(&store).map(|m| m.len()).unwrap_or(0);
    assert!(size > 0, "lease store {} missing or empty", store.display());
    for i in 0..2 {
        let pid = rig.mns[i].pid;
        assert!(
            sigterm(&mut rig.lab, pid, 8)?,
            "dsmip-mn {i} ignored SIGTERM"
        );
    }
    let conf = rig.ha.conf.clone();
    let ha_ns = rig.sc.ha.clone();
    rig.ha = spawn_ha(&mut rig.lab, &ha_ns, &conf, "ha-restarted.log")?;
    // Before any BU: no binding, both leases.
    let b = ha_bindings(&rig.ha)?;
    assert_eq!(b.as_array().map(Vec::len), Some(0), "{b}");
    let leases = ha_leases(&rig.ha)?;
    for (i, v4) in before.iter().enumerate() {
        let hoa = peer(i).hoa;
        let found = leases.as_array().is_some_and(|a| {
            a.iter()
                .any(|l| l["home_address"] == hoa.as_str() && &l["ipv4"] == v4)
        });
        assert!(
            found,
            "lease {hoa} = {v4} not kept across the restart: {leases}"
        );
    }
    for i in 0..2 {
        let (ns, conf) = (rig.sc.mns[i].clone(), rig.mns[i].conf.clone());
        let name = format!("mn{i}");
        rig.mns[i] = spawn_mn(
            &mut rig.lab,
            &ns,
            &name,
            &conf,
            &format!("mn{i}-restarted.log"),
        )?;
    }
    for (i, v4) in before.iter().enumerate() {
        let (st, _) = rig.registered(i)?;
        assert_eq!(
            &st["ipv4_home_address"], v4,
            "mobile node {i} got another address: {st}"
        );
    }
    let ctx = || rig.ctx();
    ping(&rig.lab, &rig.sc.mns[1], "-4", CN4, 2, &ctx)?;
    Ok(())
}

/// The SPIs named anywhere in a status object (`"0x..."` strings), lowercase hex without 0x.
fn spis_in(v: &Value) -> Vec<String> {
    let mut out = Vec::new();
    match v {
        Value::String(s) => {
            if let Some(h) = s.strip_prefix("0x") {
                out.push(h.to_ascii_lowercase());
            }
        }
        Value::Object(m) => m.values().for_each(|x| out.extend(spis_in(x))),
        Value::Array(a) => a.iter().for_each(|x| out.extend(spis_in(x))),
        _ => {}
    }
    out
}

/// On the wire, on the NAT's outside (tcpdump, decoded by tshark with UDP 4191 as IPv6):
/// BU and BA only inside ESP, never a cleartext Mobility Header (RFC 4877 §4.1, RFC 5555
/// §5.2.1). Data: when `dsmip-mn status` shows a data SA (RFC 5555 §5.2.2), no UDP 4191
/// packet outside ESP and no echo request, echo reply or TCP segment visible at all, the
/// data in ESP on UDP 4500 with the data SA's SPIs; without one, the test states that data
/// runs in plain UDP 4191 and checks that the pings are visible there.
#[test]
fn on_the_wire_signalling_only_in_esp() -> Result<()> {
    wire_check("wire", None)
}

/// The same with `[ipsec] data_esp = "never"` at the mobile node: no data SA may appear,
/// BU and BA still only in ESP, and the data visibly in plain UDP 4191.
#[test]
fn on_the_wire_without_data_esp() -> Result<()> {
    wire_check("wirenever", Some("never"))
}

fn wire_check(tag: &str, data_esp: Option<&str>) -> Result<()> {
    let mut lab = Lab::new(tag)?;
    let sc = lab.visited(one_mn(V4Access::Nat, false))?;
    let (cap, pcap) = capture(&mut lab, &sc.wire.0, &sc.wire.1, "outside.pcap")?;
    let mode = data_esp.map(str::to_string);
    let mut rig = Rig::start(lab, sc, no_change, &|_, m| m.data_esp = mode.clone())?;
    let (st, _) = rig.registered(0)?;
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, MIB)?;
    let st = mn_status(&rig.mns[0])?;
    let pid = rig.mns[0].pid;
    assert!(sigterm(&mut rig.lab, pid, 8)?, "dsmip-mn ignored SIGTERM");
    rig.lab.stop(cap);
    let mh = tshark(&pcap, "mipv6", &["frame.number"])?;
    assert!(
        mh.is_empty(),
        "cleartext Mobility Header on the wire: frames {mh:?}"
    );
    let esp4191 = tshark(&pcap, "udp.port==4191 && esp", &["esp.spi"])?;
    assert!(esp4191.len() >= 4, "BU/BA in ESP on UDP 4191: {esp4191:?}");
    let bu_spis = spis_in(&st["sa_spis"]);
    for spi in &esp4191 {
        let s = spi.trim_start_matches("0x").to_ascii_lowercase();
        assert!(
            bu_spis.iter().any(|o| s.ends_with(o.as_str())),
            "ESP on 4191 with SPI {spi}, not the BU/BA SA {bu_spis:?}"
        );
    }
    let data_spis = spis_in(&st["data_sa"]);
    if data_esp == Some("never") {
        assert!(
            st["data_sa"].is_null(),
            "data_esp = \"never\" but a data SA: {st}"
        );
    }
    if st["data_sa"].is_object() {
        eprintln!("wire test mode: data ESP (data_sa {})", st["data_sa"]);
        let plain = tshark(&pcap, "udp.port==4191 && !esp", &["frame.number"])?;
        assert!(
            plain.is_empty(),
            "plaintext UDP 4191 data beside the data SA: frames {plain:?}"
        );
        let visible = tshark(
            &pcap,
            "tcp || icmp.type == 8 || icmp.type == 0 || icmpv6.type == 128 || icmpv6.type == 129",
            &["frame.number"],
        )?;
        assert!(
            visible.is_empty(),
            "inner traffic visible on the wire: frames {visible:?}"
        );
        let esp4500 = tshark(&pcap, "udp.port==4500 && esp", &["esp.spi"])?;
        assert!(
            esp4500.len() >= 12,
            "data in ESP on UDP 4500: {} packets",
            esp4500.len()
        );
        for spi in &esp4500 {
            let s = spi.trim_start_matches("0x").to_ascii_lowercase();
            assert!(
                data_spis.iter().any(|o| s.ends_with(o.as_str())),
                "ESP on 4500 with SPI {spi}, not the data SA {data_spis:?}"
            );
        }
    } else {
        eprintln!(
            "wire test mode: NO data SA (status data_sa = {}): data in plain UDP 4191",
            st["data_sa"]
        );
        let echo6 = tshark(
            &pcap,
            "udp.port==4191 && icmpv6.type==128",
            &["frame.number"],
        )?;
        assert!(
            echo6.len() >= 3,
            "the IPv6 pings in plain UDP 4191: {echo6:?}"
        );
    }
    Ok(())
}

/// Scenario 1 (RFC 5555 §1.3): an IPv4-only visited network with a public care-of address
/// and no NAT, default configurations. The home agent sees no NAT (RFC 5555 §4.1) and the
/// tunnel is IP-in-IP, no F flag: on the wire (tcpdump between the visited network and the
/// home agent) the pings travel as IP protocol 41 (IPv6 in IPv4) and 4 (IPv4 in IPv4), and
/// no data in UDP 4191; ping and TCP over both home addresses.
#[test]
fn scenario1_ipv4_only_public_care_of_address() -> Result<()> {
    let mut lab = Lab::new("sc1")?;
    let sc = lab.visited(one_mn(V4Access::Public, false))?;
    let (cap, pcap) = capture(&mut lab, &sc.wire.0, &sc.wire.1, "outside.pcap")?;
    let mut rig = Rig::start(lab, sc, no_change, &mn_default)?;
    let (st, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    let b = binding_of(&rig.ha, &hoa)?;
    assert_eq!(st["care_of_address"], "198.51.100.66", "{st}");
    assert_eq!(st["nat"], false, "{st}");
    assert_eq!(b["nat"], false, "{b}");
    assert_eq!(b["peer"], "198.51.100.66", "{b}");
    assert_eq!(st["encapsulation"], "ip-in-ip", "{st}");
    assert_eq!(b["encapsulation"], "ip-in-ip", "{b}");
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 4 * MIB)?;
    rig.upload(0, CN6, &hoa, 4 * MIB)?;
    rig.lab.stop(cap);
    let echo6 = tshark(
        &pcap,
        "ip.proto == 41 && icmpv6.type == 128",
        &["frame.number"],
    )?;
    let echo4 = tshark(&pcap, "ip.proto == 4 && icmp.type == 8", &["frame.number"])?;
    assert!(echo6.len() >= 3, "ping -6 as IPv6 in IPv4 (41): {echo6:?}");
    assert!(echo4.len() >= 3, "ping -4 as IPv4 in IPv4 (4): {echo4:?}");
    let udp_data = tshark(&pcap, "udp.port == 4191 && !esp", &["frame.number"])?;
    assert!(
        udp_data.is_empty(),
        "data in UDP 4191 without a NAT: {udp_data:?}"
    );
    Ok(())
}

/// Scenario 1 with `[ipsec] data_esp = "always"`: without a NAT the data SA (RFC 5555
/// §5.2.2) is raw ESP, IP protocol 50: status and bindings agree on its SPIs, the data
/// leaves as protocol 50 with the data SA's SPIs, no IP-in-IP and no echo or TCP in clear.
#[test]
fn scenario1_data_esp_always_uses_raw_esp() -> Result<()> {
    let mut lab = Lab::new("sc1esp")?;
    let sc = lab.visited(one_mn(V4Access::Public, false))?;
    let (cap, pcap) = capture(&mut lab, &sc.wire.0, &sc.wire.1, "outside.pcap")?;
    let mut rig = Rig::start(lab, sc, no_change, &|_, m| {
        m.data_esp = Some("always".into())
    })?;
    let (_, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    let up = wait_until(Duration::from_secs(5), || {
        mn_status(&rig.mns[0]).is_ok_and(|v| v["data_sa"].is_object())
    });
    let st = mn_status(&rig.mns[0])?;
    assert!(
        up,
        "no data SA with data_esp = \"always\": {st}\n{}",
        rig.ctx()
    );
    assert_eq!(st["data_sa"]["udp"], false, "no NAT: raw ESP: {st}");
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 2 * MIB)?;
    rig.upload(0, CN6, &hoa, 2 * MIB)?;
    let b = binding_of(&rig.ha, &hoa)?;
    let (mut ours, mut theirs) = (spis_in(&st["data_sa"]), spis_in(&b["data_sa_spis"]));
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "data SA SPIs differ: mn {st}\nha {b}");
    rig.lab.stop(cap);
    let esp = tshark(&pcap, "ip.proto == 50", &["esp.spi"])?;
    assert!(esp.len() >= 1000, "data as raw ESP: {} packets", esp.len());
    for spi in &esp {
        let s = spi.trim_start_matches("0x").to_ascii_lowercase();
        assert!(
            ours.iter().any(|o| s.ends_with(o.as_str())),
            "raw ESP with SPI {spi}, not the data SA {ours:?}"
        );
    }
    let clear = tshark(
        &pcap,
        "ip.proto == 4 || ip.proto == 41 || tcp || icmp.type == 8 || icmpv6.type == 128",
        &["frame.number"],
    )?;
    assert!(clear.is_empty(), "data outside ESP: frames {clear:?}");
    Ok(())
}

/// Scenario 3 (RFC 5555 §1.3): the home agent on 10.9.0.2 behind a NAPT whose public
/// 192.0.2.1 forwards UDP 500, 4191 and 4500; the mobile node (public 198.51.100.66) uses
/// 192.0.2.1 as the home agent's IPv4 address. The NAPT passes only UDP, so the home agent
/// forces UDP encapsulation (`force_udp`, the F flag in its NAT Detection option, RFC 5555
/// §4.1). Ping and TCP over both home addresses.
#[test]
fn scenario3_home_agent_behind_napt() -> Result<()> {
    let mut lab = Lab::new("sc3")?;
    let sc = lab.ha_behind_napt()?;
    let mut rig = Rig::start(lab, sc, |h| h.force_udp = true, &mn_default)?;
    let (st, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    let b = binding_of(&rig.ha, &hoa)?;
    assert_eq!(st["care_of_address"], "198.51.100.66", "{st}");
    assert_eq!(
        b["peer"], "198.51.100.66",
        "no NAT on the mobile node's side: {b}"
    );
    // No NAT seen, UDP forced by the home agent (F in its NAT Detection option).
    assert_eq!(b["nat"], false, "{b}");
    assert_eq!(b["encapsulation"], "udp", "{b}");
    assert_eq!(st["encapsulation"], "udp", "{st}");
    assert_eq!(
        st["home_agent"]
            .as_str()
            .map(|h| h.contains("192.0.2.1") || h.contains("2001:db8:1::1")),
        Some(true),
        "{st}"
    );
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 4 * MIB)?;
    rig.upload(0, CN6, &hoa, 4 * MIB)?;
    Ok(())
}

/// Scenario 5 (RFC 5555 §1.3, §4.4.1): a dual-stack visited network (IPv4 behind a NAT,
/// IPv6 routed): the mobile node prefers its IPv6 care-of address; ping and TCP over both
/// home addresses.
#[test]
fn scenario5_dual_stack_prefers_the_ipv6_care_of_address() -> Result<()> {
    let mut rig = Rig::visited("sc5", one_mn(V4Access::Nat, true), no_change, &mn_default)?;
    let (st, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    assert_eq!(
        st["care_of_address"], "2001:db8:20::2",
        "the IPv6 care-of address: {st}"
    );
    let b = binding_of(&rig.ha, &hoa)?;
    assert_eq!(b["care_of_address"], "2001:db8:20::2", "{b}");
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 4 * MIB)?;
    rig.upload(0, CN6, &hoa, 4 * MIB)?;
    Ok(())
}

/// Scenario 5 with IPv6 towards the home agent blackholed by nftables on the visited
/// network's gateway: the mobile node tries its IPv6 care-of address (three BUs seen on the
/// visited link, RFC 5555 §4.4.1), then falls back to its IPv4 care-of address and
/// registers through the NAT; ping over both home addresses works.
#[test]
fn scenario5_ipv6_blackholed_falls_back_to_ipv4() -> Result<()> {
    let mut lab = Lab::new("sc5bh")?;
    let sc = lab.visited(one_mn(V4Access::Nat, true))?;
    lab.blackhole_ipv6(&sc.gw, "{ 2001:db8:1::/64, 2001:db8:2::/64 }")?;
    let (cap, pcap) = capture(&mut lab, &sc.gw, "in0", "visited.pcap")?;
    let rig = Rig::start(lab, sc, no_change, &mn_default)?;
    // Measured from just after the mobile node's start.
    let (st, took) = wait_registered(&rig.mns[0], &rig.ha, 60)?;
    assert_eq!(st["care_of_address"], "10.1.0.2", "fell back to IPv4: {st}");
    assert!(
        took >= Duration::from_secs(3),
        "registered after {took:?}: too soon for three IPv6 tries"
    );
    rig.ping_both(0)?;
    let mut rig = rig;
    rig.lab.stop(cap);
    let tries = tshark(&pcap, "ipv6.src==2001:db8:20::2 && (ipv6.dst==2001:db8:1::1 || ipv6.dst==2001:db8:2::1) && !icmpv6", &["frame.number"])?;
    assert!(
        tries.len() >= 3,
        "IPv6 tries before the fallback: {tries:?}"
    );
    Ok(())
}

/// The mobile node behind two NATs: the home agent sees the outer NAT's address, the
/// binding works through both translations; ping over both home addresses and TCP over the
/// IPv4 one.
#[test]
fn behind_two_nats() -> Result<()> {
    let mut rig = Rig::visited(
        "nat2",
        one_mn(V4Access::DoubleNat, false),
        no_change,
        &mn_default,
    )?;
    let (st, _) = rig.registered(0)?;
    let b = binding_of(&rig.ha, &peer(0).hoa)?;
    assert_eq!(st["nat"], true, "{st}");
    assert_eq!(b["peer"], "192.0.2.2", "the outer NAT's address: {b}");
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 2 * MIB)?;
    Ok(())
}

/// An IPv6-only visited network (RFC 5555 §1.3 scenario 4's "IPv6 network", §4.4): the
/// mobile node has only the IPv6 care-of address 2001:db8:20::2 and registers over IPv6;
/// its IPv4 home address is carried in IPv6 (RFC 5555 §4.1, IPv4 in IPv6). Ping and TCP over
/// both home addresses.
#[test]
#[ignore = "not done: IKE over IPv6 in dsmip-mn and dsmip-ha (an IPv6-only node has no IPv4 path for IKE); fails today with `no IPv4 address to use as care-of address`"]
fn ipv6_only_visited_network() -> Result<()> {
    let mut rig = Rig::visited(
        "v6only",
        one_mn(V4Access::None, true),
        no_change,
        &mn_default,
    )?;
    let (st, _) = rig.registered(0)?;
    let hoa = peer(0).hoa;
    assert_eq!(st["care_of_address"], "2001:db8:20::2", "{st}");
    let b = binding_of(&rig.ha, &hoa)?;
    assert_eq!(b["care_of_address"], "2001:db8:20::2", "{b}");
    let v4 = v4_hoa(&st)?;
    rig.ping_both(0)?;
    rig.upload(0, CN4, &v4, 4 * MIB)?;
    rig.upload(0, CN6, &hoa, 4 * MIB)?;
    Ok(())
}

/// The checker itself, on loopback: the same seed gives equal digests and no mismatch; a
/// receiver expecting another seed names byte 0 as the first that differs, although both
/// ends agree on the digest of what crossed.
#[test]
fn tcp_check_reports_digests_and_mismatches() -> Result<()> {
    let tcp = bins()?.tcp.clone();
    for (send_seed, recv_seed, mismatch) in [("5", "5", Value::Null), ("5", "6", Value::from(0))] {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let mut recv = std::process::Command::new(&tcp)
            .args([
                "receive",
                "--listen",
                &addr,
                "--seed",
                recv_seed,
                "--timeout-secs",
                "10",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        let mut out = recv.stdout.take().context("stdout")?;
        // The first line says it listens.
        let mut first = [0u8; 1];
        let mut line = Vec::new();
        while std::io::Read::read(&mut out, &mut first)? == 1 && first[0] != b'\n' {
            line.push(first[0]);
        }
        assert!(String::from_utf8_lossy(&line).contains("listening"));
        let sent = std::process::Command::new(&tcp)
            .args([
                "send", "--to", &addr, "--bytes", "300001", "--seed", send_seed,
            ])
            .output()?;
        assert!(
            sent.status.success(),
            "{}",
            String::from_utf8_lossy(&sent.stderr)
        );
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut out, &mut rest)?;
        assert!(recv.wait()?.success());
        let s: Value = serde_json::from_slice(&sent.stdout)?;
        let r: Value = serde_json::from_str(rest.trim())?;
        assert_eq!(s["bytes"], 300001, "{s}");
        assert_eq!(r["bytes"], 300001, "{r}");
        assert_eq!(s["sha256"], r["sha256"], "{s}\n{r}");
        assert_eq!(s["sha256"].as_str().map(str::len), Some(64), "{s}");
        assert_eq!(r["first_mismatch"], mismatch, "{r}");
    }
    Ok(())
}
