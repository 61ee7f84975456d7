//! What the lab bench prints: each dsmip figure next to its strongSwan baseline from the
//! same run, and the ratios; a figure that could not be measured is printed as such.

use serde_json::Value;

use crate::dsmip::Registration;
use crate::measure::{summary, Summary};
use crate::wire::Outer;

/// One throughput variant: bits per second per round, and what carried the last round's
/// bytes on the wire.
#[derive(Default)]
pub struct Series {
    pub bps: Vec<f64>,
    pub outer: Outer,
}

impl Series {
    pub fn push(&mut self, bps: f64, outer: Outer) {
        self.bps.push(bps);
        self.outer = outer;
    }
}

/// The dsmip-with-ESP throughput: measured (with the last `data_sa` seen) or why not.
pub enum Esp {
    Measured(Series, Value),
    NotAvailable(String),
}

pub fn header(runs: usize, secs: u32, rounds: usize) {
    println!(
        "dsmip lab benchmarks (issue 8): mn 10.1.0.2 -- nftables masquerade -- ha 192.0.2.1 -- home link -- cn 203.0.113.2"
    );
    println!(
        "release builds; {} CPUs shared by every namespace; {runs} registrations per side, {rounds} throughput rounds of {secs} s",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("load average at the start: {}", load_average());
}

/// The first three fields of /proc/loadavg: other work on the machine moves every figure.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn ms_row(label: &str, s: Option<Summary>) {
    match s {
        Some(s) => println!(
            "  {label:<62} {:>7.1} {:>7.1} {:>7.1}",
            s.min, s.median, s.max
        ),
        None => println!("  {label:<62} no samples"),
    }
}

pub fn registration(ours: &[Registration], wall: &[f64], log: &[f64], exec: &[f64]) {
    let col = |f: fn(&Registration) -> f64| summary(&ours.iter().map(f).collect::<Vec<_>>());
    println!();
    println!(
        "Registration time, ms (after one warm-up each)                     min  median     max"
    );
    let total = col(|r| r.registered);
    ms_row(
        "dsmip-mn spawn -> `registered` (BA accepted), IKE included",
        total,
    );
    ms_row(
        "  spawn -> IKE_SA_INIT sent (exec, config, sockets, TUN)",
        col(|r| r.ike_start),
    );
    let up = col(|r| r.registered - r.ike_start);
    ms_row("  IKE_SA_INIT sent -> `registered` (IKE + BU/BA)", up);
    let ike = col(|r| r.child_up - r.ike_start);
    ms_row("    IKE_SA_INIT sent -> transport-mode CHILD_SA up", ike);
    ms_row(
        "    CHILD_SA up -> `registered` (BU/BA in ESP, UDP 4191)",
        col(|r| r.registered - r.child_up),
    );
    // The home agent logs after its send returns, so this can exceed the row above: it
    // shows that nearly all of the BU/BA leg is spent in the home agent.
    ms_row(
        "      CHILD_SA up -> ha logs the BA (written after the send)",
        col(|r| r.ba_sent - r.child_up),
    );
    let sw = summary(wall);
    ms_row(
        "strongSwan `swanctl --initiate` IKE_SA + CHILD_SA (wall)",
        sw,
    );
    let swlog = summary(log);
    ms_row(
        "  charon's log: initiating IKE_SA -> CHILD_SA established",
        swlog,
    );
    ms_row(
        "`ip netns exec <mn> true` (part of both wall figures above)",
        summary(exec),
    );
    let ratio = |label: &str, a: Option<Summary>, b: Option<Summary>| {
        if let (Some(a), Some(b)) = (a, b) {
            println!("  {label:<62} {:>7.2}", a.median / b.median);
        }
    };
    println!("  ratios of medians:");
    ratio("dsmip spawn -> registered / swanctl --initiate", total, sw);
    ratio(
        "dsmip IKE_SA_INIT -> registered / swanctl --initiate",
        up,
        sw,
    );
    ratio("dsmip IKE part / charon's logged set-up", ike, swlog);
}

/// Best and median of the rounds, in Mbit/s.
fn best_median(v: &[f64]) -> Option<(f64, f64)> {
    let s = summary(v)?;
    Some((s.max / 1e6, s.median / 1e6))
}

fn bps_row(label: &str, v: &Series) {
    let rounds: Vec<String> = v.bps.iter().map(|b| format!("{:.0}", b / 1e6)).collect();
    if let Some((best, med)) = best_median(&v.bps) {
        println!(
            "  {label:<48} {best:>8.0} {med:>8.0}   [{}]",
            rounds.join(", ")
        );
        println!(
            "    on the wire, mn side of the NAT, last round: {}",
            v.outer
        );
    }
}

fn ratio(label: &str, a: &Series, b: &Series) {
    if let (Some((ab, am)), Some((bb, bm))) = (best_median(&a.bps), best_median(&b.bps)) {
        println!("  {label:<48} {:>7.2}x {:>7.2}x", ab / bb, am / bm);
    }
}

pub fn throughput(plain: &Series, esp: &Esp, swan: &Series, plain_key: Option<&str>) {
    println!();
    println!(
        "TCP throughput, iperf3 -P 1, home address -> correspondent, Mbit/s      best   median   rounds"
    );
    let plain_label = match plain_key {
        Some(v) => format!("dsmip, no ESP (UDP 4191, data_esp = \"{v}\")"),
        None => "dsmip, no ESP (UDP 4191; no data_esp key yet)".to_string(),
    };
    bps_row(&plain_label, plain);
    match esp {
        Esp::Measured(v, sa) => {
            bps_row("dsmip, ESP (data_esp = \"always\")", v);
            println!("    data_sa after the last run: {sa}");
        }
        Esp::NotAvailable(why) => {
            println!(
                "  {:<48} not available: {why}",
                "dsmip, ESP (data_esp = \"always\")"
            )
        }
    }
    bps_row("strongSwan libipsec (ESP in UDP 4500)", swan);
    println!("  ratios (best/best, median/median):");
    ratio("dsmip no ESP / strongSwan libipsec", plain, swan);
    if let Esp::Measured(v, _) = esp {
        ratio("dsmip ESP / strongSwan libipsec", v, swan);
        ratio("dsmip ESP / dsmip no ESP", v, plain);
    }
}
