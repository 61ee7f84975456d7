//! What the daemon shows about itself: the binding and lease tables as JSON (the control
//! socket's answers) and the Prometheus text exposition (the metrics endpoint). Pure
//! functions of the engine and the driver's own counters, so they are tested without IO.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use ha::HomeAgent;
use serde_json::{json, Value};

/// Why the driver dropped a datagram before the engine saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DriverDrop {
    /// Not a parseable IPv6/IPv4 packet.
    Malformed,
    /// ESP arrived but no CHILD_SA is installed (the IKE responder is not wired yet).
    EspNoSa,
    /// Tunnelled data without a data plane (`daemon.tun` not set), or ESP-protected data.
    DataPlaneAbsent,
    /// Sending the Binding Acknowledgement failed.
    SendFailed,
}

impl DriverDrop {
    pub fn label(self) -> &'static str {
        match self {
            DriverDrop::Malformed => "datagram_malformed",
            DriverDrop::EspNoSa => "esp_no_sa",
            DriverDrop::DataPlaneAbsent => "data_plane_absent",
            DriverDrop::SendFailed => "ba_send_failed",
        }
    }
}

/// Counters the driver keeps besides the engine's.
#[derive(Debug, Default, Clone)]
pub struct DriverStats {
    /// Binding Acknowledgements sent, by status.
    pub ba_by_status: BTreeMap<u8, u64>,
    pub drops: BTreeMap<DriverDrop, u64>,
    pub datagrams: u64,
}

impl DriverStats {
    pub fn drop(&mut self, d: DriverDrop) {
        *self.drops.entry(d).or_default() += 1;
    }
}

fn engine_drop_label(r: ha::DropReason) -> &'static str {
    match r {
        ha::DropReason::Malformed => "mh_malformed",
        ha::DropReason::NotBindingUpdate => "not_binding_update",
        ha::DropReason::Unprotected => "unprotected",
        ha::DropReason::SaHomeAddressMismatch => "sa_home_address_mismatch",
        ha::DropReason::NotHomeRegistration => "not_home_registration",
        ha::DropReason::MissingIpv4CareOf => "missing_ipv4_care_of",
    }
}

/// Seconds from `now` to an engine deadline.
fn secs_left(agent: &HomeAgent, now: Instant, ms: u64) -> u64 {
    agent
        .instant_of(ms)
        .saturating_duration_since(now)
        .as_secs()
}

/// Every binding, for `dsmip-ha bindings --json`.
pub fn bindings_json(
    agent: &HomeAgent,
    now: Instant,
    spis: &dyn Fn(&std::net::Ipv6Addr) -> Option<(u32, u32)>,
    data_spis: &dyn Fn(&std::net::Ipv6Addr) -> Option<(u32, u32)>,
) -> Value {
    let list: Vec<Value> = agent
        .bindings()
        .map(|b| {
            json!({
                "home_address": b.hoa.to_string(),
                "ipv4_home_address": b.ipv4.map(|v| v.net.to_string()),
                "care_of_address": b.coa.to_string(),
                "peer": b.peer.to_string(),
                "nat": b.nat,
                "encapsulation": if b.udp_port == 0 { "ip-in-ip" } else { "udp" },
                "udp_port": b.udp_port,
                "sequence": b.sequence,
                "lifetime_left": secs_left(agent, now, b.expires_ms),
                "mobile_network_prefixes": agent
                    .mobile_network_prefixes(&b.hoa)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>(),
                "sa_spis": spis(&b.hoa).map(|(i, o)| json!({
                    "in": format!("{i:#010x}"),
                    "out": format!("{o:#010x}"),
                })),
                "data_sa_spis": data_spis(&b.hoa).map(|(i, o)| json!({
                    "in": format!("{i:#010x}"),
                    "out": format!("{o:#010x}"),
                })),
            })
        })
        .collect();
    Value::Array(list)
}

/// Every IPv4 home address lease, for `dsmip-ha leases --json`.
pub fn leases_json(agent: &HomeAgent, wall: SystemTime) -> Value {
    let unix = wall.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut list: Vec<(String, Value)> = agent
        .leases()
        .map(|l| {
            (
                l.hoa.to_string(),
                json!({
                    "home_address": l.hoa.to_string(),
                    "ipv4": l.net.to_string(),
                    "expires_unix": l.expires,
                    "expires_in": l.expires.saturating_sub(unix),
                }),
            )
        })
        .collect();
    list.sort_by(|a, b| a.0.cmp(&b.0));
    Value::Array(list.into_iter().map(|(_, v)| v).collect())
}

/// One table of `dsmip-ha bindings` or `dsmip-ha leases` for people.
pub fn human_table(kind: &str, v: &Value) -> String {
    let rows = v.as_array().map(Vec::as_slice).unwrap_or(&[]);
    let s = |r: &Value, k: &str| match &r[k] {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let mut out = String::new();
    if kind == "bindings" {
        let _ = writeln!(
            out,
            "{:<28} {:<18} {:<28} {:<22} {:<4} {:<9} {:>8}  DATA SA (IN/OUT)",
            "HOME ADDRESS", "IPV4 HOA", "CARE-OF", "PEER:PORT", "NAT", "ENCAP", "LIFETIME",
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:<28} {:<18} {:<28} {:<22} {:<4} {:<9} {:>7}s  {}",
                s(r, "home_address"),
                s(r, "ipv4_home_address"),
                s(r, "care_of_address"),
                format!("{}:{}", s(r, "peer"), s(r, "udp_port")),
                if r["nat"] == Value::Bool(true) {
                    "yes"
                } else {
                    "no"
                },
                s(r, "encapsulation"),
                s(r, "lifetime_left"),
                match &r["data_sa_spis"] {
                    Value::Object(o) => format!(
                        "{}/{}",
                        o.get("in").and_then(Value::as_str).unwrap_or("?"),
                        o.get("out").and_then(Value::as_str).unwrap_or("?")
                    ),
                    _ => "-".into(),
                },
            );
        }
    } else {
        let _ = writeln!(
            out,
            "{:<28} {:<18} {:>12}",
            "HOME ADDRESS", "IPV4", "EXPIRES IN"
        );
        for r in rows {
            let _ = writeln!(
                out,
                "{:<28} {:<18} {:>11}s",
                s(r, "home_address"),
                s(r, "ipv4"),
                s(r, "expires_in")
            );
        }
    }
    let _ = write!(out, "{} {kind}", rows.len());
    out
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, v) in samples {
        let _ = writeln!(out, "{name}{labels} {v}");
    }
}

/// The Prometheus text exposition format (version 0.0.4).
pub fn metrics_text(
    agent: &HomeAgent,
    stats: &DriverStats,
    ipsec: Option<&super::ipsec::IpsecStats>,
    now: Instant,
) -> String {
    let c = agent.counters();
    let one = |v: u64| vec![(String::new(), v)];
    let mut out = String::new();
    metric(
        &mut out,
        "dsmip_ha_datagrams_total",
        "counter",
        "UDP 4191 datagrams received.",
        &one(stats.datagrams),
    );
    metric(
        &mut out,
        "dsmip_ha_bu_received_total",
        "counter",
        "Binding Updates handed to the engine.",
        &one(c.bu_received),
    );
    metric(
        &mut out,
        "dsmip_ha_bu_accepted_total",
        "counter",
        "Binding Updates accepted.",
        &one(c.accepted),
    );
    let mut rejected: Vec<(String, u64)> = stats
        .ba_by_status
        .iter()
        .filter(|(s, _)| **s >= 128)
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
        .collect();
    if rejected.is_empty() {
        rejected.push(("{status=\"none\"}".into(), 0));
    }
    metric(
        &mut out,
        "dsmip_ha_bu_rejected_total",
        "counter",
        "Binding Updates rejected, by Binding Acknowledgement status.",
        &rejected,
    );
    let sent: Vec<(String, u64)> = stats
        .ba_by_status
        .iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), *n))
        .collect();
    metric(
        &mut out,
        "dsmip_ha_ba_sent_total",
        "counter",
        "Binding Acknowledgements sent, by status.",
        &sent,
    );
    metric(
        &mut out,
        "dsmip_ha_deregistrations_total",
        "counter",
        "Deregistrations.",
        &one(c.deregistered),
    );
    metric(
        &mut out,
        "dsmip_ha_expirations_total",
        "counter",
        "Bindings that reached the end of their lifetime.",
        &one(c.expired),
    );
    metric(
        &mut out,
        "dsmip_ha_ipv4_refused_total",
        "counter",
        "IPv4 home address requests refused.",
        &one(c.ipv4_refused),
    );
    metric(
        &mut out,
        "dsmip_ha_lease_store_errors_total",
        "counter",
        "Lease store writes that failed.",
        &one(c.store_errors),
    );
    let mut drops: Vec<(String, u64)> = ha::DropReason::ALL
        .iter()
        .map(|r| {
            (
                format!("{{reason=\"{}\"}}", engine_drop_label(*r)),
                c.dropped(*r),
            )
        })
        .collect();
    for d in [
        DriverDrop::Malformed,
        DriverDrop::EspNoSa,
        DriverDrop::DataPlaneAbsent,
        DriverDrop::SendFailed,
    ] {
        let n = stats.drops.get(&d).copied().unwrap_or(0);
        drops.push((format!("{{reason=\"{}\"}}", d.label()), n));
    }
    metric(
        &mut out,
        "dsmip_ha_drops_total",
        "counter",
        "Packets dropped without an answer, by reason.",
        &drops,
    );
    let (mut bindings, mut nat) = (0u64, 0u64);
    for b in agent.bindings() {
        bindings += 1;
        nat += u64::from(b.nat);
    }
    metric(
        &mut out,
        "dsmip_ha_bindings",
        "gauge",
        "Bindings in the binding cache.",
        &one(bindings),
    );
    metric(
        &mut out,
        "dsmip_ha_bindings_nat",
        "gauge",
        "Bindings with a NAT in the path.",
        &one(nat),
    );
    metric(
        &mut out,
        "dsmip_ha_leases",
        "gauge",
        "IPv4 home addresses held by leases.",
        &one(agent.leased_addresses(now)),
    );
    if let Some(ip) = ipsec {
        metric(
            &mut out,
            "dsmip_ha_ike_sas_total",
            "counter",
            "IKE SAs established.",
            &one(ip.ike_sas_up),
        );
        metric(
            &mut out,
            "dsmip_ha_child_sas_installed_total",
            "counter",
            "Transport-mode CHILD_SAs installed for BU/BA.",
            &one(ip.child_sas_installed),
        );
        metric(
            &mut out,
            "dsmip_ha_ike_sas",
            "gauge",
            "IKE SAs held (established or half-open).",
            &one(ip.ike_sas),
        );
        metric(
            &mut out,
            "dsmip_ha_child_sas_removed_total",
            "counter",
            "CHILD_SAs removed (deleted, IKE SA down or failed).",
            &one(ip.child_sas_removed),
        );
        metric(
            &mut out,
            "dsmip_ha_child_sas_refused_total",
            "counter",
            "CHILD_SAs not installed (mode, identity or selector).",
            &one(ip.child_sas_refused),
        );
        metric(
            &mut out,
            "dsmip_ha_esp_errors_total",
            "counter",
            "ESP packets that failed (authentication, replay, format).",
            &one(ip.esp_errors),
        );
        metric(
            &mut out,
            "dsmip_ha_esp_unknown_spi_total",
            "counter",
            "ESP packets for no installed SA.",
            &one(ip.esp_unknown_spi),
        );
        metric(
            &mut out,
            "dsmip_ha_data_sas_installed_total",
            "counter",
            "Tunnel-mode data SAs installed (RFC 5555 §5.2.2).",
            &one(ip.data_sas_installed),
        );
        metric(
            &mut out,
            "dsmip_ha_data_sas_refused_total",
            "counter",
            "Tunnel-mode data SAs not installed (identity or selectors).",
            &one(ip.data_sas_refused),
        );
        metric(
            &mut out,
            "dsmip_ha_data_sas_removed_total",
            "counter",
            "Data SAs removed (deleted, replaced, IKE SA down or failed).",
            &one(ip.data_sas_removed),
        );
        metric(
            &mut out,
            "dsmip_ha_data_sas",
            "gauge",
            "Tunnel-mode data SAs installed now.",
            &one(ip.data_sas),
        );
        metric(
            &mut out,
            "dsmip_ha_ike_peer_moves_total",
            "counter",
            "IKE SAs moved to a new peer address (K flag or an authenticated message).",
            &one(ip.ike_peer_moves),
        );
    }
    out
}

/// Packets and bytes per tunnel kind, appended to the metrics.
pub fn tunnel_metrics(out: &mut String, t: &super::dataplane::TunnelStats) {
    use super::dataplane::Kind;
    let per = |f: &dyn Fn(super::dataplane::KindStats) -> (u64, u64)| {
        Kind::ALL
            .iter()
            .flat_map(|k| {
                let (rx, tx) = f(t.kind(*k));
                let l = k.label();
                [
                    (format!("{{kind=\"{l}\",dir=\"rx\"}}"), rx),
                    (format!("{{kind=\"{l}\",dir=\"tx\"}}"), tx),
                ]
            })
            .collect::<Vec<_>>()
    };
    metric(
        out,
        "dsmip_ha_tunnel_packets_total",
        "counter",
        "Tunnelled packets by tunnel kind and direction (rx: from mobile nodes).",
        &per(&|k| (k.rx_packets, k.tx_packets)),
    );
    metric(
        out,
        "dsmip_ha_tunnel_bytes_total",
        "counter",
        "Tunnelled inner bytes by tunnel kind and direction.",
        &per(&|k| (k.rx_bytes, k.tx_bytes)),
    );
    metric(
        out,
        "dsmip_ha_tunnel_drops_total",
        "counter",
        "Tunnel packets dropped: inner source not bound to the outer source or the SA (spoofed), no binding or no usable tunnel (no_route).",
        &[
            ("{reason=\"spoofed\"}".into(), t.spoofed),
            ("{reason=\"no_route\"}".into(), t.no_route),
        ],
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent() -> HomeAgent {
        let cfg = ha::HaConfig::new(
            "2001:db8:1::1".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            vec!["2001:db8:1::/64".parse().unwrap()],
        );
        HomeAgent::in_memory(cfg, Instant::now(), SystemTime::now()).unwrap()
    }

    #[test]
    fn metrics_text_is_prometheus_exposition() {
        let a = agent();
        let mut st = DriverStats::default();
        st.drop(DriverDrop::EspNoSa);
        st.drop(DriverDrop::EspNoSa);
        st.ba_by_status.insert(135, 3);
        st.ba_by_status.insert(0, 1);
        let ip = super::super::ipsec::IpsecStats {
            ike_sas_up: 2,
            ..Default::default()
        };
        let t = metrics_text(&a, &st, Some(&ip), Instant::now());
        assert!(
            t.contains("dsmip_ha_drops_total{reason=\"esp_no_sa\"} 2\n"),
            "{t}"
        );
        assert!(
            t.contains("dsmip_ha_bu_rejected_total{status=\"135\"} 3\n"),
            "{t}"
        );
        assert!(
            t.contains("dsmip_ha_ba_sent_total{status=\"0\"} 1\n"),
            "{t}"
        );
        assert!(t.contains("dsmip_ha_ike_sas_total 2\n"), "{t}");
        assert!(t.contains("dsmip_ha_bindings 0\n"), "{t}");
        // Each family appears once (Prometheus refuses duplicates).
        for l in t.lines().filter(|l| l.starts_with("# TYPE ")) {
            assert_eq!(t.matches(&format!("{l}\n")).count(), 1, "{l}");
        }
        // Every sample line belongs to a family announced with HELP and TYPE.
        for l in t.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            assert!(t.contains(&format!("# TYPE {name} ")), "{l}");
        }
        let without = metrics_text(&a, &st, None, Instant::now());
        assert!(!without.contains("dsmip_ha_ike_sas_total"));
    }

    #[test]
    fn human_tables_count_rows() {
        let v = serde_json::json!([{
            "home_address": "2001:db8:1::100", "ipv4_home_address": null,
            "care_of_address": "10.1.0.2", "peer": "192.0.2.2", "udp_port": 4191,
            "nat": true, "encapsulation": "udp", "lifetime_left": 397
        }]);
        let t = human_table("bindings", &v);
        assert!(
            t.contains("2001:db8:1::100") && t.contains("192.0.2.2:4191"),
            "{t}"
        );
        assert!(t.contains(" yes ") && t.ends_with("1 bindings"), "{t}");
        let a = agent();
        assert_eq!(
            bindings_json(&a, Instant::now(), &|_| None, &|_| None),
            serde_json::json!([])
        );
        assert_eq!(
            human_table("leases", &leases_json(&a, SystemTime::now())),
            format!(
                "{:<28} {:<18} {:>12}\n0 leases",
                "HOME ADDRESS", "IPV4", "EXPIRES IN"
            )
        );
    }
}
