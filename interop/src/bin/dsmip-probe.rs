//! dsmip-probe: build and dissect DSMIPv6 packets for interop testing.
//!
//! Exit status: 0 on success, 1 on a usage or I/O error, 2 when input to `decode` is
//! malformed (the JSON then carries an "error" member naming the field and byte offset).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use interop::probe::decode::{decode, to_json};
use interop::probe::encode::{ba_packet, bu_packet, BaSpec, BuSpec, Ipv4Prefix};
use mipsec::pcap::{read_raw_ip, RawIpWriter};
use mipsec::wire::BuFlags;

#[derive(Parser)]
#[command(
    name = "dsmip-probe",
    version,
    about = "Build and dissect Dual-Stack Mobile IPv6 packets (RFC 5555, IANA code points)",
    long_about = "Build Binding Updates and Acknowledgements exactly as RFC 5555 and RFC 6275 \
lay them out (IPv4 Home Address 29, IPv4 Address Acknowledgement 30, NAT Detection 31, \
IPv4 Care-of Address 32, UDP port 4191), write them as hex or pcap, and dissect any \
packet into JSON. Use it to feed another implementation or to check what one sent."
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
}

#[derive(Subcommand)]
enum Encode {
    /// A Binding Update: IPv6 from the home address to the home agent, in IPv4/UDP to port
    /// 4191 when --outer-src/--outer-dst are given.
    Bu(BuArgs),
    /// A Binding Acknowledgement: IPv6 from the home agent to the home address, in
    /// IPv4/UDP from port 4191 when --outer-src/--outer-dst are given.
    Ba(BaArgs),
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
    /// Outer UDP source port (the destination is 4191).
    #[arg(long, value_name = "PORT", default_value_t = 4191, requires = "outer")]
    sport: u16,
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
    /// Outer UDP destination port (the BU's source port); the source port is 4191.
    #[arg(long, value_name = "PORT", default_value_t = 4191, requires = "outer")]
    dport: u16,
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
        &bu_packet(&spec, outer(a.outer_src, a.outer_dst, a.sport))?,
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
        &ba_packet(&spec, outer(a.outer_src, a.outer_dst, a.dport))?,
        &a.out,
    )
}

/// Decode and print; returns whether every packet was well formed.
fn run_decode(a: &DecodeArgs) -> Result<bool> {
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
            read_raw_ip(f)
                .with_context(|| format!("reading {}", path.display()))?
                .into_iter()
                .map(|(_, p)| p)
                .collect()
        }
        (None, None) => bail!("give --hex or --pcap"),
    };
    let mut ok = true;
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
    let cli = Cli::parse();
    let result = match &cli.cmd {
        Cmd::Encode {
            what: Encode::Bu(a),
        } => encode_bu(a).map(|()| true),
        Cmd::Encode {
            what: Encode::Ba(a),
        } => encode_ba(a).map(|()| true),
        Cmd::Decode(a) => run_decode(a),
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
