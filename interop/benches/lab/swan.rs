//! The strongSwan side of the lab bench: charon in the mobile node's and the home agent's
//! namespaces of the same lab (after the dsmip daemons have stopped), PSK, IKE
//! `aes128gcm16-prfsha256-x25519`, ESP `aes128gcm16` (the dsmip defaults), a tunnel-mode
//! CHILD_SA over the same NAT with kernel-libipsec, the mobile node getting a virtual IP
//! from the home agent's pool and reaching the home link (as in `esp_throughput.rs`).

use std::time::Instant;

use anyhow::{Context, Result};
use interop::lab::{Charon, Lab};

use crate::measure::charon_time;

/// The mobile node's virtual IP (outside dsmip-ha's pool, so nothing is left to clash).
pub const VIP: &str = "198.51.100.200";
const SECRET: &str = "0sdsmip-lab-benchmark-only-psk-aaaaaaaaaaaa";
const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";

fn ha_conf() -> String {
    format!(
        "connections {{\n  mn {{\n    version = 2\n    local_addrs = 192.0.2.1\n    proposals = {IKE}\n    pools = vip\n    local {{\n      auth = psk\n      id = ha.example.org\n    }}\n    remote {{\n      auth = psk\n      id = mn@example.org\n    }}\n    children {{\n      home {{\n        local_ts = 203.0.113.0/24\n        esp_proposals = {ESP}\n        mode = tunnel\n      }}\n    }}\n  }}\n}}\npools {{\n  vip {{\n    addrs = {VIP}/32\n  }}\n}}\nsecrets {{\n  ike-lab {{\n    id-a = ha.example.org\n    id-b = mn@example.org\n    secret = {SECRET}\n  }}\n}}\n"
    )
}

fn mn_conf() -> String {
    format!(
        "connections {{\n  ha {{\n    version = 2\n    local_addrs = 10.1.0.2\n    remote_addrs = 192.0.2.1\n    proposals = {IKE}\n    vips = 0.0.0.0\n    local {{\n      auth = psk\n      id = mn@example.org\n    }}\n    remote {{\n      auth = psk\n      id = ha.example.org\n    }}\n    children {{\n      home {{\n        remote_ts = 203.0.113.0/24\n        esp_proposals = {ESP}\n        mode = tunnel\n      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-lab {{\n    id-a = ha.example.org\n    id-b = mn@example.org\n    secret = {SECRET}\n  }}\n}}\n"
    )
}

/// Two charons, the initiator in `mn_ns`.
pub struct Pair {
    pub mn: Charon,
    pub ha: Charon,
}

impl Pair {
    pub fn start(lab: &mut Lab, mn_ns: &str, ha_ns: &str) -> Result<Pair> {
        let ha = Charon::start(lab, ha_ns, &ha_conf())?;
        let mn = Charon::start(lab, mn_ns, &mn_conf())?;
        Ok(Pair { mn, ha })
    }

    /// One `swanctl --initiate` of IKE_SA + CHILD_SA; its wall time in ms.
    pub fn initiate(&self, lab: &Lab) -> Result<f64> {
        let t = Instant::now();
        self.mn
            .swanctl(
                lab,
                &[
                    "--initiate",
                    "--ike",
                    "ha",
                    "--child",
                    "home",
                    "--timeout",
                    "15",
                ],
            )
            .with_context(|| format!("swanctl --initiate: {}", self.mn.log()))?;
        Ok(t.elapsed().as_secs_f64() * 1000.0)
    }

    pub fn terminate(&self, lab: &Lab) -> Result<()> {
        self.mn
            .swanctl(lab, &["--terminate", "--ike", "ha", "--timeout", "15"])
            .map(|_| ())
    }

    /// The PIDs, so the caller can stop both when done.
    pub fn pids(&self) -> [u32; 2] {
        [self.mn.pid(), self.ha.pid()]
    }
}

/// Per IKE SA in the initiator's log (`ike_name = yes`, milliseconds on): from
/// `initiating IKE_SA ha[N]` to the first `<ha|N> CHILD_SA home{..} established`, in ms.
pub fn log_setup_times(log: &str) -> Vec<f64> {
    let mut start: Vec<(String, f64)> = Vec::new();
    let mut out = Vec::new();
    for line in log.lines() {
        let Some(t) = charon_time(line) else { continue };
        if let Some(rest) = line.split("initiating IKE_SA ha[").nth(1) {
            if let Some(id) = rest.split(']').next() {
                start.push((id.to_string(), t));
            }
            continue;
        }
        if !(line.contains("> CHILD_SA home{") && line.contains("} established")) {
            continue;
        }
        let Some(id) = line.split("<ha|").nth(1).and_then(|r| r.split('>').next()) else {
            continue;
        };
        if let Some(i) = start.iter().position(|(s, _)| s == id) {
            let (_, t0) = start.swap_remove(i);
            // Across midnight the clock wraps; one day is added back.
            let d = if t >= t0 { t - t0 } else { t + 86_400.0 - t0 };
            out.push(d * 1000.0);
        }
    }
    out
}

/// [`log_setup_times`] checked on a hand-written log before it reads charon's.
pub fn self_check() -> Result<()> {
    let log = "16:00:00.010 09[IKE] <ha|1> initiating IKE_SA ha[1] to 192.0.2.1\n\
               16:00:00.011 09[ENC] <ha|1> generating IKE_SA_INIT request 0\n\
               16:00:00.018 11[IKE] <ha|1> CHILD_SA home{1} established with SPIs c1(i) c2(o)\n\
               16:00:01.000 09[IKE] <ha|2> initiating IKE_SA ha[2] to 192.0.2.1\n\
               16:00:01.006 11[IKE] <ha|2> CHILD_SA home{2} established with SPIs c3(i) c4(o)\n";
    let t = log_setup_times(log);
    let ok = t.len() == 2 && (t[0] - 8.0).abs() < 1e-6 && (t[1] - 6.0).abs() < 1e-6;
    if !ok {
        anyhow::bail!("log_setup_times: {t:?} instead of [8.0, 6.0]");
    }
    Ok(())
}
