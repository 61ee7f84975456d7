//! Dissect a packet (IPv4 or IPv6, through tunnels, UDP 4191, extension headers, the
//! Mobility Header and the Mobile IPv6 ICMPv6 messages) into JSON, one object per layer,
//! fields named as in the RFCs. Malformed input is an error naming the field and its byte
//! offset from the start of the packet.

use std::net::Ipv6Addr;

use mipsec::wire::ext::{DestOptsRepr, RoutingHeaderType2};
use mipsec::wire::icmpv6::Icmpv6Repr;
use mipsec::wire::ip::{
    Ipv4Repr, Ipv6Repr, Pseudo, UdpRepr, IPPROTO_DSTOPTS, IPPROTO_ICMPV6, IPPROTO_IPIP,
    IPPROTO_IPV6, IPPROTO_MH, IPPROTO_NONE, IPPROTO_ROUTING, IPPROTO_UDP,
};
use mipsec::wire::mh::{MhMessage, MhPacket, MhRepr};
use mipsec::wire::mh_option::MhOption;
use mipsec::wire::tunnel::{ip_version, DSMIPV6_PORT};
use mipsec::wire::{BaFlags, BuFlags};
use mipsec::Error;
use serde_json::{json, Map, Value};

/// A dissection error: the layers decoded so far and what went wrong.
#[derive(Debug)]
pub struct DecodeError {
    pub layers: Vec<Value>,
    pub error: Error,
}

/// Dissect one packet into its layers.
pub fn decode(packet: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut d = Dissector {
        layers: Vec::new(),
        pkt: packet,
        depth: 0,
    };
    match d.ip(0, packet.len()) {
        Ok(()) => Ok(d.layers),
        Err(error) => Err(DecodeError {
            layers: d.layers,
            error,
        }),
    }
}

/// The JSON object for one packet: `{"layers": [...]}` or with an `"error"` member.
pub fn to_json(result: &Result<Vec<Value>, DecodeError>) -> Value {
    match result {
        Ok(layers) => json!({ "layers": layers }),
        Err(e) => json!({
            "layers": e.layers,
            "error": {
                "field": e.error.field(),
                "offset": e.error.offset(),
                "message": e.error.to_string(),
            }
        }),
    }
}

struct Dissector<'a> {
    layers: Vec<Value>,
    pkt: &'a [u8],
    /// IP headers entered so far: tunnels nest, and a hostile packet could nest thousands.
    depth: u32,
}

/// More nested IP headers than any tunnel format here produces (ESP-in-UDP-in-IPv4 around
/// IPv6-in-IPv4 is 3) is refused rather than recursed into.
const MAX_IP_NESTING: u32 = 8;

fn hex16(v: u16) -> String {
    format!("0x{v:04x}")
}

impl Dissector<'_> {
    /// The IP packet at `pkt[at..end]`.
    fn ip(&mut self, at: usize, end: usize) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_IP_NESTING {
            return Err(Error::Invalid {
                field: "ip.nesting",
                offset: at,
                value: u64::from(self.depth),
                reason: "more than 8 nested IP headers",
            });
        }
        match ip_version(&self.pkt[..end], "ip.version", at)? {
            4 => self.ipv4(at, end),
            _ => self.ipv6(at, end),
        }
    }

    fn ipv4(&mut self, at: usize, end: usize) -> Result<(), Error> {
        let buf = &self.pkt[at..end];
        let (h, hlen) = Ipv4Repr::parse(buf).map_err(|e| e.shifted(at))?;
        self.layers.push(json!({
            "layer": "ipv4",
            "offset": at,
            "version": 4,
            "ihl": hlen / 4,
            "dscp": h.dscp,
            "ecn": h.ecn,
            "total_length": hlen + usize::from(h.payload_len),
            "identification": h.identification,
            "flags": { "DF": h.dont_fragment, "MF": h.more_fragments },
            "fragment_offset": h.fragment_offset,
            "ttl": h.ttl,
            "protocol": h.protocol,
            "header_checksum": hex16(u16::from_be_bytes([buf[10], buf[11]])),
            "source": h.src.to_string(),
            "destination": h.dst.to_string(),
        }));
        let (start, stop) = (at + hlen, at + hlen + usize::from(h.payload_len));
        if h.fragment_offset != 0 || h.more_fragments {
            return self.raw("fragment", start, stop);
        }
        let pseudo = Pseudo::V4 {
            src: h.src,
            dst: h.dst,
        };
        self.next(h.protocol, start, stop, &pseudo)
    }

    fn ipv6(&mut self, at: usize, end: usize) -> Result<(), Error> {
        let h = Ipv6Repr::parse(&self.pkt[at..end]).map_err(|e| e.shifted(at))?;
        self.layers.push(json!({
            "layer": "ipv6",
            "offset": at,
            "version": 6,
            "dscp": h.dscp,
            "ecn": h.ecn,
            "flow_label": h.flow_label,
            "payload_length": h.payload_len,
            "next_header": h.next_header,
            "hop_limit": h.hop_limit,
            "source": h.src.to_string(),
            "destination": h.dst.to_string(),
        }));
        let stop = at + Ipv6Repr::HEADER_LEN + usize::from(h.payload_len);
        self.ipv6_chain(h.next_header, at + Ipv6Repr::HEADER_LEN, stop, h.src, h.dst)
    }

    /// Extension headers and the upper layer of an IPv6 packet. `src`/`dst` become the
    /// home address when a Home Address option / type 2 routing header carries one, as the
    /// Mobility Header and ICMPv6 pseudo-headers require (RFC 6275 §6.1.1, §6.3, §6.4).
    fn ipv6_chain(
        &mut self,
        mut nh: u8,
        mut at: usize,
        stop: usize,
        mut src: Ipv6Addr,
        mut dst: Ipv6Addr,
    ) -> Result<(), Error> {
        loop {
            let buf = &self.pkt[at..stop];
            match nh {
                IPPROTO_DSTOPTS => {
                    let (d, len) = DestOptsRepr::parse(buf).map_err(|e| e.shifted(at))?;
                    let other: Vec<Value> = d
                        .other
                        .iter()
                        .map(|(t, data)| json!({"type": t, "data": hex::encode(data)}))
                        .collect();
                    self.layers.push(json!({
                        "layer": "destination_options",
                        "offset": at,
                        "next_header": d.next_header,
                        "hdr_ext_len": len / 8 - 1,
                        "home_address": d.home_address.map(|a| a.to_string()),
                        "other_options": other,
                    }));
                    if let Some(hoa) = d.home_address {
                        src = hoa;
                    }
                    nh = d.next_header;
                    at += len;
                }
                IPPROTO_ROUTING => {
                    let r = RoutingHeaderType2::parse(buf).map_err(|e| e.shifted(at))?;
                    self.layers.push(json!({
                        "layer": "routing_header_type2",
                        "offset": at,
                        "next_header": r.next_header,
                        "hdr_ext_len": 2,
                        "routing_type": 2,
                        "segments_left": r.segments_left,
                        "home_address": r.home_address.to_string(),
                    }));
                    dst = r.home_address;
                    nh = r.next_header;
                    at += RoutingHeaderType2::LEN;
                }
                IPPROTO_MH => return self.mobility_header(at, stop, &src, &dst),
                IPPROTO_ICMPV6 => return self.icmpv6(at, stop, &src, &dst),
                _ => return self.next(nh, at, stop, &Pseudo::V6 { src, dst }),
            }
        }
    }

    /// What follows an IP header or a UDP header's protocol number.
    fn next(&mut self, proto: u8, at: usize, stop: usize, pseudo: &Pseudo) -> Result<(), Error> {
        match proto {
            IPPROTO_IPIP | IPPROTO_IPV6 => self.ip(at, stop),
            IPPROTO_UDP => self.udp(at, stop, pseudo),
            IPPROTO_NONE => Ok(()),
            _ => self.raw("payload", at, stop),
        }
    }

    fn udp(&mut self, at: usize, stop: usize, pseudo: &Pseudo) -> Result<(), Error> {
        let buf = &self.pkt[at..stop];
        let (u, len) = UdpRepr::parse(buf, pseudo).map_err(|e| e.shifted(at))?;
        self.layers.push(json!({
            "layer": "udp",
            "offset": at,
            "source_port": u.src_port,
            "destination_port": u.dst_port,
            "length": len + UdpRepr::HEADER_LEN,
            "checksum": hex16(u16::from_be_bytes([buf[6], buf[7]])),
        }));
        let (start, end) = (at + UdpRepr::HEADER_LEN, at + UdpRepr::HEADER_LEN + len);
        if u.src_port == DSMIPV6_PORT || u.dst_port == DSMIPV6_PORT {
            // RFC 5555 §4.1: the version nibble after the UDP header says IPv4 or IPv6.
            return self.ip(start, end);
        }
        self.raw("payload", start, end)
    }

    fn raw(&mut self, what: &str, at: usize, stop: usize) -> Result<(), Error> {
        if at < stop {
            self.layers.push(json!({
                "layer": what,
                "offset": at,
                "length": stop - at,
                "data": hex::encode(&self.pkt[at..stop]),
            }));
        }
        Ok(())
    }

    fn mobility_header(
        &mut self,
        at: usize,
        stop: usize,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<(), Error> {
        let p = MhPacket::new_checked(&self.pkt[at..stop]).map_err(|e| e.shifted(at))?;
        p.verify_checksum(src, dst).map_err(|e| e.shifted(at))?;
        let r = MhRepr::parse(&p).map_err(|e| e.shifted(at))?;
        let mut o = Map::new();
        o.insert("layer".into(), json!("mobility_header"));
        o.insert("offset".into(), json!(at));
        o.insert("payload_proto".into(), json!(p.payload_proto()));
        o.insert("header_len".into(), json!(p.header_len()));
        o.insert("mh_type".into(), json!(p.mh_type().0));
        o.insert("mh_type_name".into(), json!(p.mh_type().name()));
        o.insert("checksum".into(), json!(hex16(p.checksum())));
        message_fields(&r.message, &mut o);
        if !matches!(r.message, MhMessage::Unknown { .. }) {
            let opts: Vec<Value> = r.options.iter().map(option_json).collect();
            o.insert("options".into(), Value::Array(opts));
        }
        self.layers.push(Value::Object(o));
        Ok(())
    }

    fn icmpv6(
        &mut self,
        at: usize,
        stop: usize,
        src: &Ipv6Addr,
        dst: &Ipv6Addr,
    ) -> Result<(), Error> {
        let buf = &self.pkt[at..stop];
        let r = Icmpv6Repr::parse(buf, src, dst).map_err(|e| e.shifted(at))?;
        let mut v = match r {
            Icmpv6Repr::HaadRequest { identifier } => json!({
                "message": "Home Agent Address Discovery Request", "identifier": identifier }),
            Icmpv6Repr::HaadReply {
                identifier,
                home_agents,
            } => json!({
                "message": "Home Agent Address Discovery Reply", "identifier": identifier,
                "home_agent_addresses": home_agents.iter().map(|a| a.to_string()).collect::<Vec<_>>() }),
            Icmpv6Repr::MobilePrefixSolicitation { identifier } => json!({
                "message": "Mobile Prefix Solicitation", "identifier": identifier }),
            Icmpv6Repr::MobilePrefixAdvertisement {
                identifier,
                managed,
                other_config,
                prefixes,
                other_options,
            } => json!({
                "message": "Mobile Prefix Advertisement", "identifier": identifier,
                "M": managed, "O": other_config,
                "prefix_information": prefixes.iter().map(|p| json!({
                    "prefix_length": p.prefix_len, "L": p.on_link, "A": p.autonomous,
                    "R": p.router_address, "valid_lifetime": p.valid_lifetime,
                    "preferred_lifetime": p.preferred_lifetime, "prefix": p.prefix.to_string(),
                })).collect::<Vec<_>>(),
                "other_options": other_options.iter().map(|(t, o)| json!({"type": t, "data": hex::encode(o)})).collect::<Vec<_>>(),
            }),
            Icmpv6Repr::Other { body, .. } => json!({ "body": hex::encode(body) }),
        };
        let o = v.as_object_mut().expect("json! object");
        o.insert("layer".into(), json!("icmpv6"));
        o.insert("offset".into(), json!(at));
        o.insert("type".into(), json!(buf[0]));
        o.insert("code".into(), json!(buf[1]));
        o.insert(
            "checksum".into(),
            json!(hex16(u16::from_be_bytes([buf[2], buf[3]]))),
        );
        self.layers.push(v);
        Ok(())
    }
}

fn flag_map<T: Copy + Into<u32>>(named: &[(&str, T)], value: u32) -> Value {
    let mut m = Map::new();
    for (name, bit) in named {
        let bit: u32 = (*bit).into();
        m.insert((*name).to_string(), json!(value & bit == bit));
    }
    Value::Object(m)
}

fn message_fields(m: &MhMessage, o: &mut Map<String, Value>) {
    let mut put = |k: &str, v: Value| {
        o.insert(k.to_string(), v);
    };
    match m {
        MhMessage::BindingRefreshRequest => {}
        MhMessage::HomeTestInit { cookie } => put("home_init_cookie", json!(hex::encode(cookie))),
        MhMessage::CareOfTestInit { cookie } => {
            put("care_of_init_cookie", json!(hex::encode(cookie)))
        }
        MhMessage::HomeTest {
            nonce_index,
            cookie,
            keygen_token,
        } => {
            put("home_nonce_index", json!(nonce_index));
            put("home_init_cookie", json!(hex::encode(cookie)));
            put("home_keygen_token", json!(hex::encode(keygen_token)));
        }
        MhMessage::CareOfTest {
            nonce_index,
            cookie,
            keygen_token,
        } => {
            put("care_of_nonce_index", json!(nonce_index));
            put("care_of_init_cookie", json!(hex::encode(cookie)));
            put("care_of_keygen_token", json!(hex::encode(keygen_token)));
        }
        MhMessage::BindingUpdate {
            sequence,
            flags,
            lifetime,
        } => {
            put("sequence", json!(sequence));
            put("flags", flag_map(&BuFlags::NAMED, u32::from(flags.0)));
            put("lifetime", json!(lifetime));
            put("lifetime_seconds", json!(u32::from(*lifetime) * 4));
        }
        MhMessage::BindingAck {
            status,
            flags,
            sequence,
            lifetime,
        } => {
            put("status", json!(status.0));
            put("status_name", json!(status.name()));
            put("flags", flag_map(&BaFlags::NAMED, u32::from(flags.0)));
            put("sequence", json!(sequence));
            put("lifetime", json!(lifetime));
            put("lifetime_seconds", json!(u32::from(*lifetime) * 4));
        }
        MhMessage::BindingError {
            status,
            home_address,
        } => {
            put("status", json!(status));
            put("home_address", json!(home_address.to_string()));
        }
        MhMessage::Unknown { data, .. } => put("message_data", json!(hex::encode(data))),
    }
}

fn option_json(opt: &MhOption) -> Value {
    let mut v = match opt {
        MhOption::BindingRefreshAdvice { refresh_interval } => json!({
            "refresh_interval": refresh_interval,
            "refresh_interval_seconds": u32::from(*refresh_interval) * 4 }),
        MhOption::AlternateCoa(a) => json!({ "alternate_care_of_address": a.to_string() }),
        MhOption::NonceIndices { home, care_of } => json!({
            "home_nonce_index": home, "care_of_nonce_index": care_of }),
        MhOption::BindingAuthorizationData(a) => json!({ "authenticator": hex::encode(a) }),
        MhOption::MobileNetworkPrefix { prefix_len, prefix } => json!({
            "prefix_length": prefix_len, "mobile_network_prefix": prefix.to_string() }),
        MhOption::Ipv4HomeAddress {
            prefix_len,
            prefix_request,
            addr,
        } => json!({
            "prefix_len": prefix_len, "P": prefix_request, "ipv4_home_address": addr.to_string() }),
        MhOption::Ipv4AddressAck {
            status,
            prefix_len,
            addr,
        } => json!({
            "status": status.0, "status_name": status.name(), "pref_len": prefix_len,
            "ipv4_home_address": addr.to_string() }),
        MhOption::NatDetection {
            force_udp,
            refresh_time,
        } => json!({
            "F": force_udp, "refresh_time": refresh_time }),
        MhOption::Ipv4CareOfAddress(a) => json!({ "ipv4_care_of_address": a.to_string() }),
        MhOption::Unknown { data, .. } => json!({ "data": hex::encode(data) }),
    };
    let o = v.as_object_mut().expect("json! object");
    o.insert("type".into(), json!(opt.kind()));
    o.insert("length".into(), json!(opt.data_len()));
    o.insert("name".into(), json!(opt.name()));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::encode::{bu_packet, BuSpec};

    fn spec() -> BuSpec {
        BuSpec {
            sequence: 9,
            lifetime_secs: 600,
            flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::F),
            hoa: "2001:db8:1::100".parse().unwrap(),
            ha: "2001:db8:1::1".parse().unwrap(),
            ipv4_hoa: Some("192.0.2.100/32".parse().unwrap()),
            prefix_request: false,
            ipv4_coa: Some("10.1.0.2".parse().unwrap()),
        }
    }

    #[test]
    fn decodes_every_layer_of_a_udp_bu() {
        let p = bu_packet(
            &spec(),
            Some((
                "10.1.0.2".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
                4191,
            )),
        )
        .unwrap();
        let layers = decode(&p).unwrap();
        let names: Vec<_> = layers
            .iter()
            .map(|l| l["layer"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ipv4", "udp", "ipv6", "mobility_header"]);
        let mh = &layers[3];
        assert_eq!(mh["offset"], 68);
        assert_eq!(mh["sequence"], 9);
        assert_eq!(mh["lifetime_seconds"], 600);
        assert_eq!(mh["flags"]["F"], true);
        assert_eq!(mh["flags"]["K"], false);
        assert_eq!(mh["options"][0]["ipv4_home_address"], "192.0.2.100");
        assert_eq!(mh["options"][1]["ipv4_care_of_address"], "10.1.0.2");
    }

    #[test]
    fn error_offsets_are_absolute() {
        let mut p = bu_packet(
            &spec(),
            Some((
                "10.1.0.2".parse().unwrap(),
                "192.0.2.1".parse().unwrap(),
                4191,
            )),
        )
        .unwrap();
        // Zero the UDP checksum (allowed over IPv4) and break the IPv4 HoA option length,
        // which sits at 68 (MH) + 12 + 1.
        p[26] = 0;
        p[27] = 0;
        p[81] = 7;
        let e = decode(&p).unwrap_err();
        assert_eq!(e.layers.len(), 3);
        // The MH checksum is checked first and now fails at 68 + 4.
        assert_eq!(e.error.offset(), Some(72));
    }

    #[test]
    fn deep_nesting_is_refused_not_recursed() {
        // 1,500 IPv4-in-IPv4 headers around nothing: an error at the ninth header.
        let n = 1500usize;
        let mut p = vec![0u8; 20 * n];
        for i in 0..n {
            let left = (20 * (n - i)) as u16;
            let h = mipsec::wire::Ipv4Repr {
                dscp: 0,
                ecn: 0,
                identification: 0,
                dont_fragment: false,
                more_fragments: false,
                fragment_offset: 0,
                ttl: 64,
                protocol: 4,
                src: "192.0.2.1".parse().unwrap(),
                dst: "192.0.2.2".parse().unwrap(),
                payload_len: left - 20,
            };
            h.emit(&mut p[20 * i..]).unwrap();
        }
        let e = decode(&p).unwrap_err();
        assert_eq!(
            (e.error.field(), e.error.offset()),
            ("ip.nesting", Some(160))
        );
        assert_eq!(e.layers.len(), 8);
    }
}
