//! What carried the measured traffic, counted by the kernel and not by the daemons: named
//! nftables counters in the NAT namespace's forward hook, for packets from the mobile
//! node's side (`in0`), by outer kind: UDP 4191 (the plain DSMIPv6 tunnel), UDP 4500 (ESP
//! in UDP, RFC 3948; IKE too, a few kB), IP protocol 50 (raw ESP), anything else.

use std::fmt;

use anyhow::{Context, Result};
use interop::lab::Lab;
use serde_json::Value;

const TABLE: &str = "dsmip_bench";
// Not `esp` or `fwd`: those are nft keywords.
const KINDS: [&str; 4] = ["n_udp4191", "n_udp4500", "n_esp", "n_other"];

/// Bytes forwarded from the mobile node's side, per outer kind (in [`KINDS`] order).
#[derive(Debug, Clone, Copy, Default)]
pub struct Outer([u64; 4]);

impl Outer {
    pub fn since(self, before: Outer) -> Outer {
        let mut d = [0; 4];
        for (i, x) in d.iter_mut().enumerate() {
            *x = self.0[i].saturating_sub(before.0[i]);
        }
        Outer(d)
    }

    fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// Share of the bytes in plain UDP 4191.
    pub fn plain_share(&self) -> f64 {
        self.0[0] as f64 / self.total().max(1) as f64
    }

    /// Share of the bytes in ESP (UDP 4500 or protocol 50).
    pub fn esp_share(&self) -> f64 {
        (self.0[1] + self.0[2]) as f64 / self.total().max(1) as f64
    }
}

impl fmt::Display for Outer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |b: u64| b as f64 / 1e6;
        write!(
            f,
            "UDP 4191 {:.1} MB, UDP 4500 {:.1} MB, ESP {:.1} MB, other {:.1} MB",
            mb(self.0[0]),
            mb(self.0[1]),
            mb(self.0[2]),
            mb(self.0[3])
        )
    }
}

/// Add the counters to namespace `nat` (whose inside interface is `in0`).
pub fn install(lab: &Lab, nat: &str) -> Result<()> {
    let rules = format!(
        "table ip {TABLE} {{\n  counter n_udp4191 {{ }}\n  counter n_udp4500 {{ }}\n  counter n_esp {{ }}\n  counter n_other {{ }}\n  chain bench_forward {{\n    type filter hook forward priority filter; policy accept;\n    iifname != \"in0\" accept\n    udp dport 4191 counter name \"n_udp4191\" accept\n    udp dport 4500 counter name \"n_udp4500\" accept\n    ip protocol esp counter name \"n_esp\" accept\n    counter name \"n_other\"\n  }}\n}}\n"
    );
    let path = lab.dir().join("bench-counters.nft");
    std::fs::write(&path, rules)?;
    lab.run(
        nat,
        &["nft", "-f", path.to_str().context("non-UTF-8 path")?],
    )
    .context("installing the nftables counters")?;
    Ok(())
}

/// The counters now.
pub fn read(lab: &Lab, nat: &str) -> Result<Outer> {
    let out = lab.run(
        nat,
        &["nft", "-j", "list", "counters", "table", "ip", TABLE],
    )?;
    let v: Value = serde_json::from_str(&out).context("nft -j output")?;
    let mut o = Outer::default();
    for item in v["nftables"].as_array().context("no nftables array")? {
        let c = &item["counter"];
        if let Some(i) = KINDS.iter().position(|k| c["name"] == *k) {
            o.0[i] = c["bytes"].as_u64().context("counter without bytes")?;
        }
    }
    Ok(o)
}
