//! iperf3 TCP through an ESP tunnel (AES-GCM-128, ESP in UDP 4500) between two of our
//! endpoints (`dsmip-esp-fwd`), against strongSwan's kernel-libipsec (charon to charon,
//! PSK, the same cipher) in the same lab topology, in the same run. Prints both figures and
//! the ratio (issue 6 target: at least 8 times strongSwan).
//!
//! `cargo bench -p interop --bench esp_throughput`. Knobs: `ESP_BENCH_SECS` (iperf3
//! seconds, default 5), `ESP_BENCH_ROUNDS` (alternating rounds, default 2),
//! `ESP_BENCH_LINK_MTU` (veth MTU, default 1500), `ESP_BENCH_TUN_MTU` (our TUN MTU,
//! default 1400), `ESP_BENCH_FLAGS` (extra forwarder flags, default `--tun-offload --gso --gro`).
//! Needs root, iproute2, iperf3 and the strongSwan packages the lab lists.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use interop::esp_fwd::lab_topology::{self, CN, HA_OUTER, MN_INNER, MN_OUTER};
use interop::lab::{require_tool, wait_until, Charon, Lab};

fn env_or<T: std::str::FromStr>(k: &str, d: T) -> T {
    std::env::var(k)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(d)
}

/// Run iperf3 from the mobile node's inner address to the correspondent; bits per second.
fn iperf(lab: &mut Lab, t: &lab_topology::Topology, secs: u32) -> Result<f64> {
    let log = lab.dir().join("iperf3-server.log");
    let server = lab.spawn(&t.cn, &["iperf3", "-s", "-1", "-B", CN, "-p", "5201"], &log)?;
    std::thread::sleep(Duration::from_millis(500));
    let s = secs.to_string();
    let out = lab.run(
        &t.mn,
        &[
            "timeout", "60", "iperf3", "-c", CN, "-B", MN_INNER, "-p", "5201", "-t", &s, "-J",
        ],
    );
    lab.stop(server);
    let out = out?;
    let v: serde_json::Value = serde_json::from_str(&out).context("iperf3 -J output")?;
    v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .context("no sum_received in iperf3 output")
}

fn ours(secs: u32, link_mtu: u32, tun_mtu: u32, flags: &[&str]) -> Result<f64> {
    let mut lab = Lab::new("espbench")?;
    let mut t = lab_topology::build(&mut lab, link_mtu)?;
    let fwd = std::path::PathBuf::from(env!("CARGO_BIN_EXE_dsmip-esp-fwd"));
    lab_topology::start_ours(&mut lab, &mut t, &fwd, tun_mtu, flags)?;
    let _ = lab.run(&t.mn, &["ping", "-c", "2", "-i", "0.2", "-I", MN_INNER, CN]);
    iperf(&mut lab, &t, secs)
}

const SECRET: &str = "0sdsmip-esp-benchmark-only-psk-aaaaaaaaaaaa";

fn strongswan(secs: u32, link_mtu: u32) -> Result<f64> {
    let mut lab = Lab::new("swbench")?;
    let t = lab_topology::build(&mut lab, link_mtu)?;
    let ha_conf = format!(
        "connections {{\n  mn {{\n    version = 2\n    local_addrs = {HA_OUTER}\n    proposals = aes128gcm16-prfsha256-x25519\n    pools = inner\n    local {{\n      auth = psk\n      id = ha.bench.example\n    }}\n    remote {{\n      auth = psk\n      id = mn.bench.example\n    }}\n    children {{\n      net {{\n        local_ts = 192.0.2.0/24\n        esp_proposals = aes128gcm16\n        mode = tunnel\n      }}\n    }}\n  }}\n}}\npools {{\n  inner {{\n    addrs = {MN_INNER}/32\n  }}\n}}\nsecrets {{\n  ike-bench {{\n    id-a = ha.bench.example\n    id-b = mn.bench.example\n    secret = {SECRET}\n  }}\n}}\n"
    );
    let mn_conf = format!(
        "connections {{\n  ha {{\n    version = 2\n    local_addrs = {MN_OUTER}\n    remote_addrs = {HA_OUTER}\n    proposals = aes128gcm16-prfsha256-x25519\n    vips = 0.0.0.0\n    local {{\n      auth = psk\n      id = mn.bench.example\n    }}\n    remote {{\n      auth = psk\n      id = ha.bench.example\n    }}\n    children {{\n      net {{\n        remote_ts = 192.0.2.0/24\n        esp_proposals = aes128gcm16\n        mode = tunnel\n      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-bench {{\n    id-a = ha.bench.example\n    id-b = mn.bench.example\n    secret = {SECRET}\n  }}\n}}\n"
    );
    let _ha = Charon::start(&mut lab, &t.ha, &ha_conf)?;
    let mn = Charon::start(&mut lab, &t.mn, &mn_conf)?;
    mn.swanctl(
        &lab,
        &[
            "--initiate",
            "--ike",
            "ha",
            "--child",
            "net",
            "--timeout",
            "15",
        ],
    )
    .with_context(|| format!("initiate: {}", mn.log()))?;
    let up = wait_until(Duration::from_secs(5), || {
        lab.run(&t.mn, &["ping", "-c", "1", "-W", "1", "-I", MN_INNER, CN])
            .is_ok()
    });
    if !up {
        bail!("strongSwan tunnel does not carry ping: {}", mn.log());
    }
    iperf(&mut lab, &t, secs)
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; nothing else to parse.
    require_tool("iperf3", "iperf3")?;
    let secs = env_or("ESP_BENCH_SECS", 5u32);
    let rounds = env_or("ESP_BENCH_ROUNDS", 2usize);
    let link_mtu = env_or("ESP_BENCH_LINK_MTU", 1500u32);
    let tun_mtu = env_or("ESP_BENCH_TUN_MTU", 1400u32);
    let flags_s =
        std::env::var("ESP_BENCH_FLAGS").unwrap_or_else(|_| "--tun-offload --gso --gro".into());
    let flags: Vec<&str> = flags_s.split_whitespace().collect();
    println!(
        "iperf3 TCP mn -> cn through ESP (aes128gcm16, UDP 4500), {secs} s per run, {rounds} rounds, \
         veth MTU {link_mtu}, our TUN MTU {tun_mtu}, forwarder flags {flags:?}, {} CPUs shared",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let (mut o, mut s) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        let a = ours(secs, link_mtu, tun_mtu, &flags)?;
        println!("  round {r}: dsmip-esp-fwd        {:>8.0} Mbit/s", a / 1e6);
        if std::env::var_os("ESP_BENCH_ONLY_OURS").is_some() {
            o.push(a);
            continue;
        }
        let b = strongswan(secs, link_mtu)?;
        println!("  round {r}: strongSwan libipsec  {:>8.0} Mbit/s", b / 1e6);
        o.push(a);
        s.push(b);
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    if s.is_empty() {
        println!(
            "dsmip-esp-fwd: {:.0} Mbit/s (best of {rounds}); strongSwan skipped",
            best(&o) / 1e6
        );
        return Ok(());
    }
    let (ob, sb) = (best(&o), best(&s));
    println!(
        "dsmip-esp-fwd:        {:.0} Mbit/s (best of {rounds})",
        ob / 1e6
    );
    println!(
        "strongSwan libipsec:  {:.0} Mbit/s (best of {rounds})",
        sb / 1e6
    );
    let mut per_round: Vec<f64> = o.iter().zip(&s).map(|(a, b)| a / b).collect();
    per_round.sort_by(f64::total_cmp);
    println!(
        "ratio: {:.2}x best against best, {:.2}x median of the per-round ratios {:?} (target >= 8x)",
        ob / sb,
        per_round[per_round.len() / 2],
        per_round.iter().map(|r| format!("{r:.1}")).collect::<Vec<_>>()
    );
    Ok(())
}
