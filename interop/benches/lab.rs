//! The lab benchmarks of issue 8, each printed next to strongSwan measured in the same lab
//! and the same run (`Lab::nat_topology(true)`: mn 10.1.0.2 — nftables masquerade — ha
//! 192.0.2.1 — home link — cn 203.0.113.2), release builds of `dsmip-ha` and `dsmip-mn`:
//!
//! 1. Registration time: `dsmip-mn` spawned (`ip netns exec`) until its `registered` log
//!    line (the BA accepted), IKE_SA + transport-mode CHILD_SA included; times from the
//!    JSON log's own timestamps against the wall clock read just before the spawn. Next to
//!    it, `swanctl --initiate` of IKE_SA + tunnel-mode CHILD_SA (wall time of the swanctl
//!    process) charon to charon over the same NAT, and charon's own log time
//!    (`initiating IKE_SA` to `CHILD_SA ... established`). One warm-up run each, not counted.
//! 2. TCP throughput, iperf3 `-P 1`, from the mobile node's IPv4 home address (or
//!    strongSwan's virtual IP) to the correspondent: dsmip without ESP (UDP 4191 tunnel),
//!    dsmip with ESP (`[ipsec] data_esp = "always"`, only when `dsmip-mn` accepts that key
//!    and reports a `data_sa`; otherwise printed as not available), strongSwan libipsec.
//!    The three alternate round by round so that load from elsewhere hits them alike. Each
//!    run is checked on the wire by nftables counters in the NAT (`lab/wire.rs`): at least
//!    90 % of the bytes must have gone in UDP 4191, respectively in ESP.
//!
//! Run by hand as root: `cargo bench -p interop --bench lab`. Knobs: `LAB_BENCH_RUNS`
//! (registrations per side, default 10), `LAB_BENCH_SECS` (iperf3 seconds, default 5),
//! `LAB_BENCH_ROUNDS` (throughput rounds, default 3). Needs iproute2, nftables, iperf3,
//! iputils-ping and the strongSwan packages `interop::lab::Charon` names.

#[path = "lab/dsmip.rs"]
mod dsmip;
#[path = "lab/measure.rs"]
mod measure;
#[path = "lab/report.rs"]
mod report;
#[path = "lab/swan.rs"]
mod swan;
#[path = "lab/wire.rs"]
mod wire;

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use interop::lab::{require_tool, wait_until, workspace_binary, Lab};
use serde_json::Value;

use dsmip::{Dsmip, Registration};
use report::{Esp, Series};
use wire::Outer;

const CN: &str = "203.0.113.2";

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Until one ping from `src` reaches the correspondent (the first may meet routes still
/// being installed), at most 5 s.
fn reachable(lab: &Lab, ns: &str, src: &str) -> bool {
    wait_until(Duration::from_secs(5), || {
        lab.run(ns, &["ping", "-c", "1", "-W", "1", "-I", src, CN])
            .is_ok()
    })
}

/// `runs` + 1 mobile node starts against a running `dsmip-ha`; the first is a warm-up.
fn dsmip_registrations(d: &mut Dsmip, runs: usize) -> Result<Vec<Registration>> {
    d.start_ha()?;
    let mut out = Vec::new();
    for i in 0..=runs {
        let (pid, r) = d.start_mn(None)?;
        d.stop_mn(pid)?;
        if i > 0 {
            out.push(r);
        }
    }
    d.stop_ha();
    Ok(out)
}

/// Wall time of `ip netns exec <mn> true`, in ms: process start and namespace entry, a
/// cost both the dsmip-mn spawn and the swanctl run carry.
fn exec_baseline(d: &Dsmip, runs: usize) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for _ in 0..=runs {
        let t = Instant::now();
        d.lab.run(&d.topo.mn, &["true"])?;
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out.remove(0);
    Ok(out)
}

/// `runs` + 1 `swanctl --initiate` / `--terminate`; wall times and charon's log times of
/// the counted ones.
fn swan_registrations(d: &mut Dsmip, runs: usize) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mn, ha) = (d.topo.mn.clone(), d.topo.ha.clone());
    let pair = swan::Pair::start(&mut d.lab, &mn, &ha)?;
    let mut wall = Vec::new();
    for i in 0..=runs {
        let ms = pair.initiate(&d.lab)?;
        pair.terminate(&d.lab)?;
        if i > 0 {
            wall.push(ms);
        }
    }
    let mut log = swan::log_setup_times(&pair.mn.log());
    if log.len() != runs + 1 {
        bail!(
            "charon's log shows {} set-ups, {} were made:\n{}",
            log.len(),
            runs + 1,
            pair.mn.log()
        );
    }
    log.remove(0);
    for pid in pair.pids() {
        d.lab.stop(pid);
    }
    Ok((wall, log))
}

/// What must have carried the measured bytes between the mobile node and the NAT.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Carrier {
    /// The plain UDP 4191 tunnel.
    Plain,
    /// ESP, in UDP 4500 or raw.
    Esp,
}

/// One iperf3 run from `src`, checked on the wire: at least 90 % of the bytes the NAT
/// forwarded from the mobile node's side during it went as `carrier`.
fn iperf_checked(d: &mut Dsmip, src: &str, carrier: Carrier, secs: u32) -> Result<(f64, Outer)> {
    let (mn, nat) = (d.topo.mn.clone(), d.topo.nat.clone());
    let cn = d.topo.cn.clone().context("no cn")?;
    let before = wire::read(&d.lab, &nat)?;
    let bps = measure::iperf(&mut d.lab, &mn, &cn, src, CN, secs)?;
    let outer = wire::read(&d.lab, &nat)?.since(before);
    let share = match carrier {
        Carrier::Plain => outer.plain_share(),
        Carrier::Esp => outer.esp_share(),
    };
    if share < 0.9 {
        bail!("the iperf3 bytes did not travel as {carrier:?} on the wire: {outer}");
    }
    Ok((bps, outer))
}

/// One iperf3 run through dsmip with `data_esp` (None: the key left out); also the mobile
/// node's `data_sa` afterwards.
fn dsmip_throughput(
    d: &mut Dsmip,
    data_esp: Option<&str>,
    secs: u32,
) -> Result<(f64, Outer, Value)> {
    let (pid, _) = d.start_mn(data_esp)?;
    let r = dsmip_iperf(d, data_esp, secs);
    let stopped = d.stop_mn(pid);
    let r = r?;
    stopped?;
    Ok(r)
}

fn dsmip_iperf(d: &mut Dsmip, data_esp: Option<&str>, secs: u32) -> Result<(f64, Outer, Value)> {
    let carrier = if data_esp == Some("always") {
        let up = wait_until(Duration::from_secs(10), || {
            d.status().is_ok_and(|s| s["data_sa"].is_object())
        });
        if !up {
            bail!(
                "no data_sa in dsmip-mn status 10 s after registration: {}",
                d.status()?
            );
        }
        Carrier::Esp
    } else {
        if d.status()?["data_sa"].is_object() {
            bail!(
                "a data_sa is up although data_esp is {data_esp:?}: {}",
                d.status()?
            );
        }
        Carrier::Plain
    };
    let hoa = d.ipv4_home()?;
    if !reachable(&d.lab, &d.topo.mn, &hoa) {
        bail!("ping {hoa} -> {CN} through dsmip fails");
    }
    let (bps, outer) = iperf_checked(d, &hoa, carrier, secs)?;
    Ok((bps, outer, d.status()?["data_sa"].clone()))
}

/// One iperf3 run through a fresh charon pair.
fn swan_throughput(d: &mut Dsmip, secs: u32) -> Result<(f64, Outer)> {
    let (mn, ha) = (d.topo.mn.clone(), d.topo.ha.clone());
    let pair = swan::Pair::start(&mut d.lab, &mn, &ha)?;
    let r = pair.initiate(&d.lab).and_then(|_| {
        if !reachable(&d.lab, &mn, swan::VIP) {
            bail!(
                "ping {} -> {CN} through libipsec fails: {}",
                swan::VIP,
                pair.mn.log()
            );
        }
        iperf_checked(d, swan::VIP, Carrier::Esp, secs)
    });
    for pid in pair.pids() {
        d.lab.stop(pid);
    }
    r
}

/// The three throughput variants, alternating round by round; also the `data_esp` value
/// the plain runs used.
fn throughput(
    d: &mut Dsmip,
    rounds: usize,
    secs: u32,
) -> Result<(Series, Esp, Series, Option<&'static str>)> {
    // "never" when the daemon knows the key (so a default that turns ESP on is not
    // measured as plain), otherwise the key is left out: data goes in plain UDP 4191.
    let plain = d.data_esp_accepted("never")?.ok().map(|()| "never");
    let mut esp = match d.data_esp_accepted("always")? {
        Ok(()) => Esp::Measured(Series::default(), Value::Null),
        Err(e) => Esp::NotAvailable(format!(
            "dsmip-mn check-config refuses [ipsec] data_esp = \"always\": {}",
            e.lines().next().unwrap_or_default()
        )),
    };
    let (mut p, mut s) = (Series::default(), Series::default());
    for _ in 0..rounds {
        d.start_ha()?;
        let (bps, outer, _) = dsmip_throughput(d, plain, secs)?;
        p.push(bps, outer);
        if let Esp::Measured(series, last_sa) = &mut esp {
            match dsmip_throughput(d, Some("always"), secs) {
                Ok((bps, outer, sa)) => {
                    series.push(bps, outer);
                    *last_sa = sa;
                }
                Err(e) => esp = Esp::NotAvailable(format!("{e:#}")),
            }
        }
        d.stop_ha();
        let (bps, outer) = swan_throughput(d, secs)?;
        s.push(bps, outer);
    }
    Ok((p, esp, s, plain))
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // cargo's bench discovery
    }
    let runs = env_or("LAB_BENCH_RUNS", 10usize).max(1);
    let secs = env_or("LAB_BENCH_SECS", 5u32).max(1);
    let rounds = env_or("LAB_BENCH_ROUNDS", 3usize).max(1);
    for (tool, pkg) in [("iperf3", "iperf3"), ("ping", "iputils-ping")] {
        require_tool(tool, pkg)?;
    }
    measure::self_check()?;
    swan::self_check()?;
    let ha_bin = workspace_binary("ha", "dsmip-ha")?;
    let mn_bin = workspace_binary("mn", "dsmip-mn")?;
    let mut d = Dsmip::new(ha_bin, mn_bin)?;
    wire::install(&d.lab, &d.topo.nat)?;
    report::header(runs, secs, rounds);
    let started = Instant::now();

    let ours = dsmip_registrations(&mut d, runs)?;
    let (wall, log) = swan_registrations(&mut d, runs)?;
    let exec = exec_baseline(&d, runs)?;
    report::registration(&ours, &wall, &log, &exec);

    let (p, esp, s, plain) = throughput(&mut d, rounds, secs)?;
    report::throughput(&p, &esp, &s, plain);
    println!(
        "\nmeasurements took {:.0} s; load average at the end: {}",
        started.elapsed().as_secs_f64(),
        report::load_average()
    );
    Ok(())
}
