//! What `dsmip-mn status` shows: the binding update list, the tunnel, NAT state, the SA
//! SPIs and counters as JSON, and a human rendering of that JSON.

use std::net::IpAddr;
use std::time::Instant;

use mn::engine::MobileNode;
use mn::output::{BulEntry, CareOf};
use serde_json::{json, Value};

/// Driver-side facts the engine does not hold.
#[derive(Debug, Clone, Default)]
pub struct DriverState {
    pub ike_established: bool,
    pub nat_local: bool,
    pub spis: Option<(u32, u32)>,
    pub ike_sas_up: u64,
    pub ike_failures: u64,
    pub esp_errors: u64,
    pub bu_held_no_sa: u64,
    pub ba_dropped: u64,
    pub last_event: Option<String>,
    /// Tunnelled packets that arrived without a data plane.
    pub data_dropped: u64,
    pub tunnel: Option<super::dataplane::TunnelStats>,
    /// The data SA's (in, out) SPIs and whether it travels in UDP 4500.
    pub data_sa: Option<(u32, u32, bool)>,
    pub data_stats: super::datasa::DataSaStats,
    /// Raw-socket packets (protocols 4, 41, 50) not from the home agent or malformed.
    pub outer_dropped: u64,
}

fn coa_text(c: &CareOf) -> String {
    c.ip().to_string()
}

fn entry(now: Instant, e: &BulEntry) -> Value {
    let home = match e.home {
        IpAddr::V4(a) => format!("{a}/{}", e.prefix_len),
        IpAddr::V6(a) => a.to_string(),
    };
    json!({
        "home": home,
        "care_of_address": coa_text(&e.coa),
        "home_agent": e.home_agent.to_string(),
        "sequence": e.sequence,
        "lifetime_left": e.expires.saturating_duration_since(now).as_secs(),
        "udp": e.udp,
    })
}

/// The `status` JSON object.
pub fn status(now: Instant, mn: &MobileNode, d: &DriverState) -> Value {
    let v6 = mn.ipv6_binding();
    let state = if v6.is_some() {
        "registered"
    } else if mn.is_pending() {
        "registering"
    } else {
        "unregistered"
    };
    let ipv4_home = mn
        .ipv4_bindings()
        .first()
        .map(|e| Value::String(format!("{}/{}", e.home, e.prefix_len)));
    let nat = mn.nat_state();
    let c = mn.counters();
    json!({
        "state": state,
        "home_address": mn.config().home_address.to_string(),
        "ipv4_home_address": ipv4_home.unwrap_or(Value::Null),
        "care_of_address": v6.map(|e| coa_text(&e.coa)),
        "home_agent": v6.map(|e| e.home_agent.to_string()),
        "sequence": v6.map(|e| e.sequence),
        "lifetime_left": v6.map(|e| e.expires.saturating_duration_since(now).as_secs()),
        "nat": nat.nat_detected,
        "encapsulation": mn.tunnel().map(|t| if nat.udp { "udp" } else { let _ = t; "ip-in-ip" }),
        "keepalive_secs": nat.keepalive.map(|k| k.as_secs()),
        "bindings": v6.into_iter().chain(mn.ipv4_bindings()).map(|e| entry(now, e)).collect::<Vec<_>>(),
        "ike": {
            "established": d.ike_established,
            "nat_local": d.nat_local,
            "sas_up_total": d.ike_sas_up,
            "failures_total": d.ike_failures,
        },
        "sa_spis": d.spis.map(|(i, o)| json!({"in": format!("{i:#010x}"), "out": format!("{o:#010x}")})),
        "counters": {
            "bu_sent": c.bu_sent,
            "bu_retransmitted": c.bu_retransmitted,
            "ba_accepted": c.ba_accepted,
            "ba_rejected": c.ba_rejected,
            "ba_stale": c.ba_stale,
            "ba_dropped": c.ba_dropped + d.ba_dropped,
            "bu_held_no_sa": d.bu_held_no_sa,
            "esp_errors": d.esp_errors,
            "data_dropped": d.data_dropped,
            "outer_dropped": d.outer_dropped,
            "data_sa_tx": d.data_stats.tx_packets,
            "data_sa_rx": d.data_stats.rx_packets,
            "data_sa_rx_errors": d.data_stats.rx_errors,
            "data_sa_not_ours": d.data_stats.not_ours,
            "data_sa_negotiated": d.data_stats.negotiated,
            "data_sa_failed": d.data_stats.failed,
        },
        "data_sa": d.data_sa.map(|(i, o, udp)| json!({
            "spi_in": format!("{i:#010x}"),
            "spi_out": format!("{o:#010x}"),
            "udp": udp,
        })),
        "last_event": d.last_event,
        "tunnel": d.tunnel.map(|t| json!({
            "tx_packets": t.tx_packets,
            "tx_bytes": t.tx_bytes,
            "rx_packets": t.rx_packets,
            "rx_bytes": t.rx_bytes,
            "no_route": t.no_route,
            "not_ours": t.not_ours,
        })),
    })
}

/// A short human rendering of the `status` JSON.
pub fn human(v: &Value) -> String {
    let s = |k: &str| match &v[k] {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "state           {}\nhome address    {}\nIPv4 home       {}\ncare-of address {}\nhome agent      {}\nsequence        {}\nlifetime left   {} s\nNAT             {}\nencapsulation   {}\nIKE             {}\nSA SPIs         {}",
        s("state"),
        s("home_address"),
        s("ipv4_home_address"),
        s("care_of_address"),
        s("home_agent"),
        s("sequence"),
        s("lifetime_left"),
        s("nat"),
        s("encapsulation"),
        if v["ike"]["established"] == true { "established" } else { "not established" },
        match &v["sa_spis"] {
            Value::Object(m) => format!(
                "in {} out {}",
                m.get("in").and_then(Value::as_str).unwrap_or("-"),
                m.get("out").and_then(Value::as_str).unwrap_or("-")
            ),
            _ => "-".into(),
        }
    );
    out.push_str(&format!(
        "\ndata SA         {}",
        match &v["data_sa"] {
            Value::Object(m) => format!(
                "in {} out {} ({})",
                m.get("spi_in").and_then(Value::as_str).unwrap_or("-"),
                m.get("spi_out").and_then(Value::as_str).unwrap_or("-"),
                if m.get("udp") == Some(&Value::Bool(true)) {
                    "ESP in UDP 4500"
                } else {
                    "ESP, protocol 50"
                }
            ),
            _ => "-".into(),
        }
    ));
    if let Some(e) = v["last_event"].as_str() {
        out.push_str(&format!("\nlast event      {e}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use mn::config::{HomeAgentConfig, MnConfig};

    fn engine() -> MobileNode {
        let ha = HomeAgentConfig {
            ipv6: Some("2001:db8:1::1".parse().unwrap()),
            ipv4: Some("192.0.2.1".parse().unwrap()),
            ..Default::default()
        };
        MobileNode::new(MnConfig::new("2001:db8:1::100".parse().unwrap(), ha), 7).unwrap()
    }

    #[test]
    fn unregistered_engine_reports_nulls() {
        let v = status(Instant::now(), &engine(), &DriverState::default());
        assert_eq!(v["state"], "unregistered");
        assert_eq!(v["home_address"], "2001:db8:1::100");
        assert!(v["care_of_address"].is_null());
        assert!(v["sa_spis"].is_null());
        assert_eq!(v["bindings"].as_array().map(Vec::len), Some(0));
        assert!(v["data_sa"].is_null());
        let h = human(&v);
        assert!(h.contains("data SA         -"), "{h}");
        assert!(h.contains("state           unregistered"), "{h}");
        assert!(h.contains("IKE             not established"), "{h}");
    }

    #[test]
    fn pending_bu_and_spis_are_shown() {
        let mut mn = engine();
        let now = Instant::now();
        mn.handle_address(
            now,
            mn::engine::AddressEvent::Added {
                addr: "10.1.0.2".parse().unwrap(),
                private: true,
            },
        );
        let d = DriverState {
            ike_established: true,
            spis: Some((0xc000_0001, 0x1234)),
            data_sa: Some((0xc000_0002, 0x5678, true)),
            ..Default::default()
        };
        let v = status(now, &mn, &d);
        assert_eq!(v["data_sa"]["spi_in"], "0xc0000002");
        assert_eq!(v["data_sa"]["spi_out"], "0x00005678");
        assert_eq!(v["data_sa"]["udp"], true);
        assert!(
            human(&v).contains("data SA         in 0xc0000002 out 0x00005678 (ESP in UDP 4500)")
        );
        assert_eq!(v["state"], "registering");
        assert_eq!(v["sa_spis"]["in"], "0xc0000001");
        assert_eq!(v["sa_spis"]["out"], "0x00001234");
        assert!(human(&v).contains("in 0xc0000001 out 0x00001234"));
    }
}
