//! Names the policy language accepts for protocols, Mobility Header types and ICMP types,
//! and the "did you mean" helper used by the error messages.

/// IP protocol numbers by name (IANA "Assigned Internet Protocol Numbers").
pub const PROTOCOLS: &[(&str, u8)] = &[
    ("MH", 135),
    ("mobility-header", 135),
    ("ICMPv6", 58),
    ("ipv6-icmp", 58),
    ("ICMP", 1),
    ("TCP", 6),
    ("UDP", 17),
    ("SCTP", 132),
    ("ESP", 50),
    ("AH", 51),
    ("GRE", 47),
    ("IPv4", 4),
    ("IPv6", 41),
];

/// MH types of RFC 6275 §6.1.2–6.1.9 by the names RFC 5555 §5.2 uses.
pub const MH_TYPES: &[(&str, u8)] = &[
    ("BRR", 0),
    ("HoTI", 1),
    ("CoTI", 2),
    ("HoT", 3),
    ("CoT", 4),
    ("BU", 5),
    ("BAck", 6),
    ("BE", 7),
];

/// ICMPv6 types (RFC 4443, RFC 4861, RFC 6275 §6.5–6.8).
pub const ICMPV6_TYPES: &[(&str, u8)] = &[
    ("destination-unreachable", 1),
    ("packet-too-big", 2),
    ("time-exceeded", 3),
    ("parameter-problem", 4),
    ("echo-request", 128),
    ("echo-reply", 129),
    ("router-solicitation", 133),
    ("router-advertisement", 134),
    ("neighbor-solicitation", 135),
    ("neighbor-advertisement", 136),
    ("redirect", 137),
    ("ha-discovery-request", 144),
    ("ha-discovery-reply", 145),
    ("mobile-prefix-solicitation", 146),
    ("mobile-prefix-advertisement", 147),
];

/// ICMP (IPv4) types (RFC 792).
pub const ICMPV4_TYPES: &[(&str, u8)] = &[
    ("echo-reply", 0),
    ("destination-unreachable", 3),
    ("redirect", 5),
    ("echo-request", 8),
    ("time-exceeded", 11),
    ("parameter-problem", 12),
];

/// Looks `name` up case-insensitively, or reads it as a number 0–255.
pub fn lookup(table: &[(&str, u8)], name: &str) -> Option<u8> {
    table
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
        .or_else(|| name.parse().ok())
}

/// The name for `value` in `table`, for messages and renderers.
pub fn name_of(table: &[(&'static str, u8)], value: u8) -> Option<&'static str> {
    table.iter().find(|(_, v)| *v == value).map(|(n, _)| *n)
}

/// The closest candidate within edit distance 2, for "did you mean".
pub fn suggest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| {
            (
                distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_suggestions() {
        assert_eq!(lookup(MH_TYPES, "back"), Some(6));
        assert_eq!(lookup(MH_TYPES, "9"), Some(9));
        assert_eq!(lookup(MH_TYPES, "BAK"), None);
        assert_eq!(lookup(PROTOCOLS, "udp"), Some(17));
        assert_eq!(
            suggest("protocl", ["protocol", "proposals"]),
            Some("protocol".into())
        );
        assert_eq!(suggest("zzzzzz", ["protocol"]), None);
        assert_eq!(name_of(ICMPV6_TYPES, 128), Some("echo-request"));
    }
}
