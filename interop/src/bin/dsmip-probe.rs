//! dsmip-probe: build and dissect DSMIPv6 packets for interop testing.
//!
//! Exit status: 0 on success, 1 on a usage or I/O error, 2 when input to `decode` is
//! malformed (the JSON then carries an "error" member naming the field and byte offset).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use interop::probe::decode::{decode, to_json};
use interop::probe::encode::{
    ba_packet, bu_packet, ipv6_packet, tunnel_packet, BaSpec, BuSpec, Ipv4Prefix, Upper,
    V6Addressing,
};
use mipsec::pcap::{read_raw_ip_until_error, RawIpWriter};
use mipsec::wire::icmpv6::{Icmpv6Repr, PrefixInfo};
use mipsec::wire::tunnel::{Encap, Outer, DSMIPV6_PORT};
use mipsec::wire::{BuFlags, MhMessage, MhRepr};

#[derive(Parser)]
#[command(
    name = "dsmip-probe",
    version,
    about = "Build and dissect Dual-Stack Mobile IPv6 packets (RFC 5555, IANA code points)",
    long_about = "Build Binding Updates and Acknowledgements exactly as RFC 5555 and RFC 6275 \
lay them out (IPv4 Home Address 29, IPv4 Address Acknowledgement 30, NAT Detection 31, \
IPv4 Care-of Address 32, UDP port 4191), write them as hex or pcap, and dissect any \
packet into JSON. Use it to feed another implementation or to check what one sent.",
    after_help = "Exit status: 0 success; 1 usage or I/O error (or, for `ike`, no SA); \
2 malformed input to `decode` (the JSON carries \"error\" with the field and byte offset)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build a packet.
    Encode {
        #[command(subcommand)]
        what: Encode,
    },
    /// Dissect packets into JSON, one object per packet and line.
    Decode(DecodeArgs),
    /// Run one IKEv2 initiator exchange (IKE_SA_INIT, IKE_AUTH with one CHILD_SA) against a
    /// peer and print one JSON object; exit 0 when both SAs were established.
    Ike(interop::ike_probe::IkeArgs),
}

#[derive(Subcommand)]
enum Encode {
    /// A Binding Update: IPv6 from the home address to the home agent, in IPv4/UDP to port
    /// 4191 when --outer-src/--outer-dst are given.
    Bu(BuArgs),
    /// A Binding Acknowledgement: IPv6 from the home agent to the home address, in
    /// IPv4/UDP from port 4191 when --outer-src/--outer-dst are given.
    Ba(BaArgs),
    /// A Binding Error (RFC 6275 §6.1.9).
    Be(BeArgs),
    /// A Binding Refresh Request (RFC 6275 §6.1.2).
    Brr(MsgArgs),
    /// A Home Test Init (RFC 6275 §6.1.3).
    Hoti(InitArgs),
    /// A Care-of Test Init (RFC 6275 §6.1.4).
    Coti(InitArgs),
    /// A Home Test (RFC 6275 §6.1.5).
    Hot(TestArgs),
    /// A Care-of Test (RFC 6275 §6.1.6).
    Cot(TestArgs),
    /// ICMPv6 Home Agent Address Discovery Request (RFC 6275 §6.5).
    HaadRequest(IdArgs),
    /// ICMPv6 Home Agent Address Discovery Reply (RFC 6275 §6.6).
    HaadReply(HaadReplyArgs),
    /// ICMPv6 Mobile Prefix Solicitation (RFC 6275 §6.7).
    Mps(IdArgs),
    /// ICMPv6 Mobile Prefix Advertisement (RFC 6275 §6.8).
    Mpa(MpaArgs),
    /// Wrap any IPv4 or IPv6 packet in a tunnel format of RFC 5555 §4.1: IPv6 or IPv4 in
    /// IPv4 or IPv6, plain (protocol 41 / 4) or inside UDP.
    Tunnel(TunnelArgs),
}

/// IPv6 addressing shared by the Mobility Header and ICMPv6 messages.
#[derive(Args)]
struct V6Args {
    /// IPv6 source.
    #[arg(long, value_name = "IPV6")]
    src: Ipv6Addr,
    /// IPv6 destination.
    #[arg(long, value_name = "IPV6")]
    dst: Ipv6Addr,
    /// Add a Home Address destination option with this home address (RFC 6275 §6.3); the
    /// checksum then covers it as the source.
    #[arg(long, value_name = "IPV6")]
    hao: Option<Ipv6Addr>,
    /// Add a type 2 routing header with this home address (RFC 6275 §6.4); the checksum then
    /// covers it as the destination.
    #[arg(long, value_name = "IPV6")]
    rh2: Option<Ipv6Addr>,
}

#[derive(Args)]
struct MsgArgs {
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct BeArgs {
    /// Status: 1 unknown binding for Home Address option, 2 unrecognized MH type.
    #[arg(long, value_name = "CODE")]
    status: u8,
    /// The home address the error is about.
    #[arg(long, value_name = "IPV6")]
    hoa: Ipv6Addr,
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct InitArgs {
    /// The 64-bit init cookie, 16 hex digits.
    #[arg(long, value_name = "HEX16", value_parser = parse_hex8)]
    cookie: [u8; 8],
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct TestArgs {
    /// Nonce index.
    #[arg(long, value_name = "N")]
    nonce_index: u16,
    /// The 64-bit init cookie, 16 hex digits.
    #[arg(long, value_name = "HEX16", value_parser = parse_hex8)]
    cookie: [u8; 8],
    /// The 64-bit keygen token, 16 hex digits.
    #[arg(long, value_name = "HEX16", value_parser = parse_hex8)]
    token: [u8; 8],
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct IdArgs {
    /// Identifier.
    #[arg(long, value_name = "N")]
    id: u16,
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct HaadReplyArgs {
    /// Identifier (copied from the request).
    #[arg(long, value_name = "N")]
    id: u16,
    /// A home agent address, in preference order; repeat for more.
    #[arg(long = "home-agent", value_name = "IPV6")]
    home_agents: Vec<Ipv6Addr>,
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct MpaArgs {
    /// Identifier (copied from the solicitation).
    #[arg(long, value_name = "N")]
    id: u16,
    /// M flag: managed address configuration.
    #[arg(long)]
    managed: bool,
    /// O flag: other configuration.
    #[arg(long)]
    other_config: bool,
    /// A Prefix Information option, PREFIX/LEN[,VALID[,PREFERRED]] in seconds, with L and A
    /// set; repeat for more.
    #[arg(long, value_name = "PREFIX/LEN[,VALID[,PREFERRED]]", value_parser = parse_prefix_info)]
    prefix: Vec<PrefixInfo>,
    /// Set R on every prefix: the prefix field holds the home agent's full address (§7.2).
    #[arg(long)]
    router_address: bool,
    #[command(flatten)]
    v6: V6Args,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
struct TunnelArgs {
    /// The inner packet (a whole IPv4 or IPv6 packet) as hex, e.g. from `encode ... --hex`.
    #[arg(long, value_name = "HEX")]
    inner_hex: String,
    /// Outer source, IPv4 or IPv6.
    #[arg(long, value_name = "ADDR")]
    outer_src: IpAddr,
    /// Outer destination, of the same family.
    #[arg(long, value_name = "ADDR")]
    outer_dst: IpAddr,
    /// UDP encapsulation from SPORT to DPORT (4191:4191 for DSMIPv6); plain IP-in-IP without.
    #[arg(long, value_name = "SPORT:DPORT", value_parser = parse_ports)]
    udp: Option<(u16, u16)>,
    /// Outer TTL / hop limit.
    #[arg(long, value_name = "N", default_value_t = 64)]
    ttl: u8,
    /// Act as a forwarding tunnel entry point: decrement the inner TTL / hop limit.
    #[arg(long)]
    forwarding: bool,
    #[command(flatten)]
    out: Output,
}

fn parse_hex8(s: &str) -> Result<[u8; 8], String> {
    let v = hex::decode(s).map_err(|e| format!("`{s}`: {e}"))?;
    v.try_into()
        .map_err(|_| format!("`{s}`: expected 16 hex digits (64 bits)"))
}

fn parse_ports(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("`{s}`: expected SPORT:DPORT"))?;
    Ok((
        a.parse().map_err(|e| format!("`{a}`: {e}"))?,
        b.parse().map_err(|e| format!("`{b}`: {e}"))?,
    ))
}

fn parse_prefix_info(s: &str) -> Result<PrefixInfo, String> {
    let mut parts = s.split(',');
    let net = parts.next().unwrap_or_default();
    let (addr, len) = net
        .split_once('/')
        .ok_or_else(|| format!("`{net}`: expected PREFIX/LEN"))?;
    let prefix: Ipv6Addr = addr.parse().map_err(|e| format!("`{addr}`: {e}"))?;
    let prefix_len: u8 = len.parse().map_err(|e| format!("`{len}`: {e}"))?;
    if prefix_len > 128 {
        return Err(format!("prefix length {prefix_len} is over 128"));
    }
    let mut num = |default: u32| -> Result<u32, String> {
        parts.next().map_or(Ok(default), |v| {
            v.parse().map_err(|e| format!("`{v}`: {e}"))
        })
    };
    let valid_lifetime = num(86_400)?;
    let preferred_lifetime = num(14_400)?;
    Ok(PrefixInfo {
        prefix_len,
        on_link: true,
        autonomous: true,
        router_address: false,
        valid_lifetime,
        preferred_lifetime,
        prefix,
    })
}

#[derive(Args)]
struct Output {
    /// Write the packet to this pcap file (raw IP link type).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Print the whole packet, outermost header first, as one line of lowercase hex
    /// (the default when --pcap is not given).
    #[arg(long)]
    hex: bool,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("outer").multiple(true).requires_all(["outer_src", "outer_dst"]))]
struct BuArgs {
    /// Sequence number.
    #[arg(long, value_name = "N")]
    seq: u16,
    /// Requested lifetime in seconds; a multiple of 4.
    #[arg(long, value_name = "SECONDS")]
    lifetime: u32,
    /// A flag: acknowledge requested.
    #[arg(long)]
    ack: bool,
    /// H flag: home registration.
    #[arg(long)]
    home: bool,
    /// K flag: key management mobility capability.
    #[arg(long)]
    key_mgmt: bool,
    /// F flag: force UDP encapsulation (RFC 5555 §3.1.3).
    #[arg(long)]
    force_udp: bool,
    /// R flag: mobile router (RFC 3963).
    #[arg(long)]
    router: bool,
    /// Mobile node's IPv6 home address (IPv6 source).
    #[arg(long, value_name = "IPV6")]
    hoa: Ipv6Addr,
    /// Home agent's IPv6 address (IPv6 destination).
    #[arg(long, value_name = "IPV6")]
    ha: Ipv6Addr,
    /// IPv4 Home Address option; 0.0.0.0/32 asks for a dynamic address.
    #[arg(long, value_name = "A.B.C.D/PLEN")]
    ipv4_hoa: Option<Ipv4Prefix>,
    /// Set P in the IPv4 Home Address option: request a prefix of PLEN.
    #[arg(long, requires = "ipv4_hoa")]
    prefix_request: bool,
    /// IPv4 Care-of Address option.
    #[arg(long, value_name = "A.B.C.D")]
    ipv4_coa: Option<Ipv4Addr>,
    /// Outer IPv4 source (the care-of address as sent).
    #[arg(long, value_name = "A.B.C.D", group = "outer")]
    outer_src: Option<Ipv4Addr>,
    /// Outer IPv4 destination (the home agent's IPv4 address).
    #[arg(long, value_name = "A.B.C.D", group = "outer")]
    outer_dst: Option<Ipv4Addr>,
    /// Outer UDP source port, 4191 when not given (the destination is always 4191).
    #[arg(long, value_name = "PORT", requires = "outer")]
    sport: Option<u16>,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("outer").multiple(true).requires_all(["outer_src", "outer_dst"]))]
struct BaArgs {
    /// Sequence number (copied from the BU).
    #[arg(long, value_name = "N")]
    seq: u16,
    /// Granted lifetime in seconds; a multiple of 4.
    #[arg(long, value_name = "SECONDS")]
    lifetime: u32,
    /// Status (0 accepted; 128 and above rejected; 144 forced UDP refused).
    #[arg(long, value_name = "CODE")]
    status: u8,
    /// K flag.
    #[arg(long)]
    key_mgmt: bool,
    /// Mobile node's IPv6 home address (IPv6 destination).
    #[arg(long, value_name = "IPV6")]
    hoa: Ipv6Addr,
    /// Home agent's IPv6 address (IPv6 source).
    #[arg(long, value_name = "IPV6")]
    ha: Ipv6Addr,
    /// IPv4 Address Acknowledgement status (0 success, 128-133 failures).
    #[arg(long, value_name = "CODE", requires = "ipv4_hoa")]
    ipv4_ack_status: Option<u8>,
    /// IPv4 Address Acknowledgement address and prefix length.
    #[arg(long, value_name = "A.B.C.D/PLEN", requires = "ipv4_ack_status")]
    ipv4_hoa: Option<Ipv4Prefix>,
    /// NAT Detection option with this refresh time in seconds.
    #[arg(long, value_name = "REFRESH_SECONDS")]
    nat_detection: Option<u32>,
    /// Set F in the NAT Detection option (refresh time all ones unless --nat-detection).
    #[arg(long)]
    force_udp: bool,
    /// Outer IPv4 source (the home agent's IPv4 address).
    #[arg(long, value_name = "A.B.C.D", group = "outer")]
    outer_src: Option<Ipv4Addr>,
    /// Outer IPv4 destination (where the BU came from).
    #[arg(long, value_name = "A.B.C.D", group = "outer")]
    outer_dst: Option<Ipv4Addr>,
    /// Outer UDP destination port (the BU's source port), 4191 when not given; the source
    /// port is 4191.
    #[arg(long, value_name = "PORT", requires = "outer")]
    dport: Option<u16>,
    #[command(flatten)]
    out: Output,
}

#[derive(Args)]
#[command(group = clap::ArgGroup::new("input").required(true))]
struct DecodeArgs {
    /// One packet as hex (spaces and colons are ignored).
    #[arg(long, value_name = "HEX", group = "input")]
    hex: Option<String>,
    /// Every packet of a pcap file with the raw IP link type.
    #[arg(long, value_name = "FILE", group = "input")]
    pcap: Option<PathBuf>,
}

fn outer(
    src: Option<Ipv4Addr>,
    dst: Option<Ipv4Addr>,
    port: u16,
) -> Option<(Ipv4Addr, Ipv4Addr, u16)> {
    Some((src?, dst?, port))
}

fn emit(packet: &[u8], out: &Output) -> Result<()> {
    if let Some(path) = &out.pcap {
        let f = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = RawIpWriter::new(BufWriter::new(f))?;
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        w.write(now, packet)?;
        w.into_inner().flush()?;
    }
    if out.hex || out.pcap.is_none() {
        println!("{}", hex::encode(packet));
    }
    Ok(())
}

fn encode_bu(a: &BuArgs) -> Result<()> {
    let mut flags = BuFlags::default();
    for (on, bit) in [
        (a.ack, BuFlags::A),
        (a.home, BuFlags::H),
        (a.key_mgmt, BuFlags::K),
        (a.force_udp, BuFlags::F),
        (a.router, BuFlags::R),
    ] {
        flags = flags.with(bit, on);
    }
    let spec = BuSpec {
        sequence: a.seq,
        lifetime_secs: a.lifetime,
        flags,
        hoa: a.hoa,
        ha: a.ha,
        ipv4_hoa: a.ipv4_hoa,
        prefix_request: a.prefix_request,
        ipv4_coa: a.ipv4_coa,
    };
    emit(
        &bu_packet(
            &spec,
            outer(a.outer_src, a.outer_dst, a.sport.unwrap_or(DSMIPV6_PORT)),
        )?,
        &a.out,
    )
}

fn encode_ba(a: &BaArgs) -> Result<()> {
    let spec = BaSpec {
        sequence: a.seq,
        lifetime_secs: a.lifetime,
        status: a.status,
        key_mgmt: a.key_mgmt,
        hoa: a.hoa,
        ha: a.ha,
        ipv4_ack: a.ipv4_ack_status.zip(a.ipv4_hoa),
        nat_detection: a.nat_detection,
        force_udp: a.force_udp,
    };
    emit(
        &ba_packet(
            &spec,
            outer(a.outer_src, a.outer_dst, a.dport.unwrap_or(DSMIPV6_PORT)),
        )?,
        &a.out,
    )
}

fn addressing(v: &V6Args) -> V6Addressing {
    V6Addressing {
        src: v.src,
        dst: v.dst,
        hao: v.hao,
        rh2: v.rh2,
    }
}

fn mh(message: MhMessage) -> Upper {
    Upper::Mh(MhRepr {
        message,
        options: Vec::new(),
    })
}

/// The other Mobility Header and ICMPv6 messages, as bare IPv6 packets.
fn encode_message(what: &Encode) -> Result<()> {
    let (upper, v6, out) = match what {
        Encode::Be(a) => (
            mh(MhMessage::BindingError {
                status: a.status,
                home_address: a.hoa,
            }),
            &a.v6,
            &a.out,
        ),
        Encode::Brr(a) => (mh(MhMessage::BindingRefreshRequest), &a.v6, &a.out),
        Encode::Hoti(a) => (
            mh(MhMessage::HomeTestInit { cookie: a.cookie }),
            &a.v6,
            &a.out,
        ),
        Encode::Coti(a) => (
            mh(MhMessage::CareOfTestInit { cookie: a.cookie }),
            &a.v6,
            &a.out,
        ),
        Encode::Hot(a) => (
            mh(MhMessage::HomeTest {
                nonce_index: a.nonce_index,
                cookie: a.cookie,
                keygen_token: a.token,
            }),
            &a.v6,
            &a.out,
        ),
        Encode::Cot(a) => (
            mh(MhMessage::CareOfTest {
                nonce_index: a.nonce_index,
                cookie: a.cookie,
                keygen_token: a.token,
            }),
            &a.v6,
            &a.out,
        ),
        Encode::HaadRequest(a) => (
            Upper::Icmpv6(Icmpv6Repr::HaadRequest { identifier: a.id }),
            &a.v6,
            &a.out,
        ),
        Encode::Mps(a) => (
            Upper::Icmpv6(Icmpv6Repr::MobilePrefixSolicitation { identifier: a.id }),
            &a.v6,
            &a.out,
        ),
        Encode::HaadReply(a) => (
            Upper::Icmpv6(Icmpv6Repr::HaadReply {
                identifier: a.id,
                home_agents: a.home_agents.clone(),
            }),
            &a.v6,
            &a.out,
        ),
        Encode::Mpa(a) => {
            let prefixes = a
                .prefix
                .iter()
                .map(|p| PrefixInfo {
                    router_address: a.router_address,
                    ..*p
                })
                .collect();
            let m = Icmpv6Repr::MobilePrefixAdvertisement {
                identifier: a.id,
                managed: a.managed,
                other_config: a.other_config,
                prefixes,
                other_options: Vec::new(),
            };
            (Upper::Icmpv6(m), &a.v6, &a.out)
        }
        Encode::Bu(_) | Encode::Ba(_) | Encode::Tunnel(_) => bail!("not a bare IPv6 message"),
    };
    emit(&ipv6_packet(&upper, &addressing(v6))?, out)
}

fn encode_tunnel(a: &TunnelArgs) -> Result<()> {
    let clean: String = a
        .inner_hex
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ':')
        .collect();
    let inner = hex::decode(&clean).context("--inner-hex is not valid hex")?;
    let outer = match (a.outer_src, a.outer_dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => Outer::V4 { src, dst },
        (IpAddr::V6(src), IpAddr::V6(dst)) => Outer::V6 { src, dst },
        _ => bail!("--outer-src and --outer-dst must be of the same family"),
    };
    let encap = match a.udp {
        Some((src_port, dst_port)) => Encap::Udp { src_port, dst_port },
        None => Encap::IpInIp,
    };
    emit(
        &tunnel_packet(&inner, outer, encap, a.ttl, a.forwarding)?,
        &a.out,
    )
}

/// Decode and print; returns whether every packet (and the pcap file) was well formed.
fn run_decode(a: &DecodeArgs) -> Result<bool> {
    let mut ok = true;
    let packets: Vec<Vec<u8>> = match (&a.hex, &a.pcap) {
        (Some(h), _) => {
            let clean: String = h
                .chars()
                .filter(|c| !c.is_whitespace() && *c != ':')
                .collect();
            vec![hex::decode(&clean).context("--hex is not valid hex")?]
        }
        (None, Some(path)) => {
            let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
            let read = read_raw_ip_until_error(std::io::BufReader::new(f))
                .with_context(|| format!("reading {}", path.display()))?;
            if let Some((offset, e)) = &read.error {
                // Malformed input: the packets before it are still decoded below.
                eprintln!(
                    "dsmip-probe: {}: record {} at byte {offset} of the file is malformed: {e}",
                    path.display(),
                    read.packets.len() + 1
                );
                ok = false;
            }
            read.packets.into_iter().map(|(_, p)| p).collect()
        }
        (None, None) => bail!("give --hex or --pcap"),
    };
    for (i, p) in packets.iter().enumerate() {
        let r = decode(p);
        if let Err(e) = &r {
            eprintln!("dsmip-probe: packet {}: malformed: {}", i + 1, e.error);
            ok = false;
        }
        println!("{}", to_json(&r));
    }
    Ok(ok)
}

fn main() -> ExitCode {
    // Usage errors exit 1, so that 2 always means malformed input to `decode`.
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(1);
        }
    };
    let result = match &cli.cmd {
        Cmd::Encode {
            what: Encode::Bu(a),
        } => encode_bu(a).map(|()| true),
        Cmd::Encode {
            what: Encode::Ba(a),
        } => encode_ba(a).map(|()| true),
        Cmd::Encode {
            what: Encode::Tunnel(a),
        } => encode_tunnel(a).map(|()| true),
        Cmd::Encode { what } => encode_message(what).map(|()| true),
        Cmd::Decode(a) => run_decode(a),
        Cmd::Ike(a) => {
            return match interop::ike_probe::run(a) {
                Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
                Err(e) => {
                    eprintln!("dsmip-probe ike: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(2),
        Err(e) => {
            eprintln!("dsmip-probe: {e:#}");
            ExitCode::from(1)
        }
    }
}
