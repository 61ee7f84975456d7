//! The dsmip demo: a mobile node behind a real NAT registers with a home agent, gets a
//! dynamic IPv4 home address, keeps it across a home agent restart, and deregisters.
//!
//! Everything is real but IPsec: network namespaces, veth links, an nftables masquerade,
//! UDP sockets on port 4191, the home agent's binding engine (`ha`) with its redb lease
//! store, and packets built and parsed by `mipsec`. The IKE and ESP wiring arrives with the
//! daemons; here the home agent is told that an SA for the BU's home address protected it.
//!
//! Run as root: `scripts/demo.sh` (or `cargo run -p interop --bin dsmip-demo`). The binary
//! runs itself inside the namespaces in the roles `ha-role` and `mn-role`.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};
use ha::{Event, HaConfig, HomeAgent, ReplyPath, RxContext, SaInfo, Transport, Verdict};
use interop::lab::{wait_until, Lab};
use interop::probe::encode::{bu_repr, packet, BuSpec, Ipv4Prefix};
use mipsec::wire::ip::{Ipv6Repr, IPPROTO_MH};
use mipsec::wire::tunnel::{Encap, Outer};
use mipsec::wire::{BuFlags, MhMessage, MhOption, MhRepr};

const HOA: &str = "2001:db8:1::100";
const HA6: &str = "2001:db8:1::1";
const HA4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const MN4: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const PORT: u16 = 4191;

const HA_CONFIG: &str = r#"# The home agent's configuration (the same keys dsmip-ha will read).
address = "2001:db8:1::1"
address_v4 = "192.0.2.1"
home_prefixes = ["2001:db8:1::/64"]
max_lifetime = 400
nat_refresh_time = 110

[[ipv4_pool]]
range = "198.51.100.0/28"
exclude = ["198.51.100.1/32"]
"#;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("ha-role") => ha_role(
            Path::new(&args[2]),
            Path::new(&args[3]),
            Path::new(&args[4]),
        ),
        Some("mn-role") => mn_role(&args[2..]),
        _ => orchestrate(),
    }
}

/// The home agent: UDP 4191 on 192.0.2.1, the binding engine, replies to the BU's source.
fn ha_role(config: &Path, leases: &Path, ready: &Path) -> Result<()> {
    let cfg: HaConfig = toml::from_str(&fs::read_to_string(config)?).context("ha.toml")?;
    let start = Instant::now();
    let mut agent = HomeAgent::new(cfg, leases, start, SystemTime::now())?;
    for l in agent.leases() {
        println!(
            "lease store {}: {} -> {} (kept from before the restart)",
            leases.display(),
            l.hoa,
            l.net
        );
    }
    let sock = UdpSocket::bind((HA4, PORT))?;
    fs::write(ready, b"up")?;
    let mut buf = [0u8; 2048];
    loop {
        let (n, from) = sock.recv_from(&mut buf)?;
        let SocketAddr::V4(from) = from else { continue };
        let Ok(ip6) = Ipv6Repr::parse(&buf[..n]) else {
            println!("dropped a datagram from {from}: not an IPv6 packet");
            continue;
        };
        if ip6.next_header != IPPROTO_MH {
            continue;
        }
        let mh = &buf[Ipv6Repr::HEADER_LEN..Ipv6Repr::HEADER_LEN + usize::from(ip6.payload_len)];
        let ctx = RxContext {
            transport: Transport::Udp {
                src: *from.ip(),
                src_port: from.port(),
            },
            ipv6_src: ip6.src,
            ipv6_dst: ip6.dst,
            home_address_option: None,
            // Demo only: no ESP yet; the SA that would have protected the BU is asserted.
            sa: Some(SaInfo {
                spi: 0,
                home_address: ip6.src,
            }),
        };
        if let Ok(bu) = MhRepr::parse_bytes(mh) {
            describe_bu(&bu, &from);
        }
        let verdict = agent.handle_bu_bytes(Instant::now(), &ctx, mh);
        while let Some(ev) = agent.poll_event() {
            println!("data plane: {}", describe_event(&ev));
        }
        match verdict {
            Verdict::Reply(r) => {
                let ReplyPath::Udp { dst, dst_port, .. } = r.path else {
                    bail!("expected a UDP reply path, got {:?}", r.path);
                };
                let p = packet(&r.ba, r.src, r.hoa, None)?;
                sock.send_to(&p, (dst, dst_port))?;
                println!("BA sent to {dst}:{dst_port} (the NAT's mapping of the mobile node)");
            }
            other => println!("no reply: {other:?}"),
        }
        for b in agent.bindings() {
            let v4 = b
                .ipv4
                .map(|v| v.net.to_string())
                .unwrap_or_else(|| "-".into());
            println!(
                "binding cache: {} IPv4 HoA {v4} CoA {} via {}:{} NAT {} lifetime {} s",
                b.hoa,
                b.coa,
                b.peer,
                b.udp_port,
                if b.nat { "yes" } else { "no" },
                (b.expires_ms
                    .saturating_sub(start.elapsed().as_millis() as u64))
                    / 1000
            );
        }
        if agent.bindings().next().is_none() {
            println!("binding cache: empty");
        }
    }
}

fn describe_bu(bu: &MhRepr, from: &std::net::SocketAddrV4) {
    let MhMessage::BindingUpdate {
        sequence, lifetime, ..
    } = bu.message
    else {
        return;
    };
    let coa = bu.find(|o| match o {
        MhOption::Ipv4CareOfAddress(a) => Some(*a),
        _ => None,
    });
    let nat = match coa {
        Some(c) if c != *from.ip() => format!(
            "NAT detected: IPv4 CoA option {c} but outer source {}",
            from.ip()
        ),
        Some(_) => "no NAT".to_string(),
        None => "no IPv4 CoA option".to_string(),
    };
    println!(
        "BU seq {sequence} lifetime {} s from {from}: {nat}",
        u32::from(lifetime) * 4
    );
}

/// "IPv6 in UDP 4191->4191 in IPv4 192.0.2.1->192.0.2.2".
fn describe_tunnel(t: &ha::Tunnel) -> String {
    let inner = match t.inner {
        ha::Family::V6 => "IPv6",
        ha::Family::V4 => "IPv4",
    };
    let encap = match t.encap {
        Encap::IpInIp => String::new(),
        Encap::Udp { src_port, dst_port } => format!(" in UDP {src_port}->{dst_port}"),
    };
    let outer = match t.outer {
        Outer::V4 { src, dst } => format!("IPv4 {src}->{dst}"),
        Outer::V6 { src, dst } => format!("IPv6 {src}->{dst}"),
    };
    format!("{inner}{encap} in {outer}")
}

fn describe_event(ev: &Event) -> String {
    match ev {
        Event::TunnelInstall { hoa, tunnel } => {
            format!("install tunnel for {hoa}: {}", describe_tunnel(tunnel))
        }
        Event::TunnelUpdate { hoa, new, .. } => {
            format!("update tunnel for {hoa}: {}", describe_tunnel(new))
        }
        Event::TunnelRemove { hoa, tunnel } => {
            format!("remove tunnel for {hoa}: {}", describe_tunnel(tunnel))
        }
        Event::ProxyArpAdd(a) => format!("proxy ARP for {a} on the home link"),
        Event::ProxyArpRemove(a) => format!("stop proxy ARP for {a}"),
        Event::ProxyNdpAdd(a) => format!("proxy NDP for {a} on the home link"),
        Event::ProxyNdpRemove(a) => format!("stop proxy NDP for {a}"),
        other => format!("{other:?}"),
    }
}

/// The mobile node: one BU over UDP 4191, retransmitted at 1, 2, 4 s (RFC 6275 §11.8),
/// and the BA it gets back.
fn mn_role(args: &[String]) -> Result<()> {
    let seq: u16 = args[0].parse()?;
    let lifetime: u32 = args[1].parse()?;
    let ipv4_hoa: Ipv4Prefix = args[2].parse().map_err(anyhow::Error::msg)?;
    let spec = BuSpec {
        sequence: seq,
        lifetime_secs: lifetime,
        flags: BuFlags(BuFlags::A | BuFlags::H | BuFlags::K),
        hoa: HOA.parse()?,
        ha: HA6.parse()?,
        ipv4_hoa: Some(ipv4_hoa),
        prefix_request: false,
        ipv4_coa: Some(MN4),
    };
    let bu = packet(&bu_repr(&spec)?, spec.hoa, spec.ha, None)?;
    let sock = UdpSocket::bind((MN4, PORT))?;
    let mut buf = [0u8; 2048];
    for wait in [1, 2, 4] {
        sock.send_to(&bu, (HA4, PORT))?;
        println!(
            "BU seq {seq} to {HA4}:{PORT} from {MN4}:{PORT}: IPv4 HoA {} lifetime {lifetime} s",
            if ipv4_hoa.addr.is_unspecified() {
                "0.0.0.0 (please assign one)".to_string()
            } else {
                ipv4_hoa.addr.to_string()
            }
        );
        sock.set_read_timeout(Some(Duration::from_secs(wait)))?;
        let Ok((n, from)) = sock.recv_from(&mut buf) else {
            continue;
        };
        let ip6 = Ipv6Repr::parse(&buf[..n])?;
        let ba = MhRepr::parse_bytes(&buf[Ipv6Repr::HEADER_LEN..n])?;
        let MhMessage::BindingAck {
            status,
            sequence,
            lifetime,
            ..
        } = ba.message
        else {
            bail!("expected a BA, got {:?}", ba.message)
        };
        println!(
            "BA from {from} ({} -> {}): seq {sequence} status {} ({}) lifetime {} s",
            ip6.src,
            ip6.dst,
            status.0,
            status.name(),
            u32::from(lifetime) * 4
        );
        for o in &ba.options {
            match o {
                MhOption::Ipv4AddressAck {
                    status,
                    prefix_len,
                    addr,
                } => {
                    println!(
                        "  IPv4 home address: {addr}/{prefix_len}, status {} ({})",
                        status.0,
                        status.name()
                    )
                }
                MhOption::NatDetection { refresh_time, .. } => {
                    println!("  NAT detected by the home agent: UDP tunnel, keepalive every {refresh_time} s")
                }
                other => println!("  option: {}", other.name()),
            }
        }
        return Ok(());
    }
    bail!("no Binding Acknowledgement after 3 tries")
}

struct Demo {
    lab: Lab,
    mn: String,
    ha: String,
    exe: PathBuf,
    ha_pid: Option<u32>,
    ha_log: PathBuf,
    ha_seen: usize,
}

impl Demo {
    fn start_ha(&mut self) -> Result<()> {
        let dir = self.lab.dir().to_path_buf();
        let ready = dir.join("ha.ready");
        let _ = fs::remove_file(&ready);
        let (config, leases) = (dir.join("ha.toml"), dir.join("leases.redb"));
        let argv = [
            self.exe.to_str().context("path")?,
            "ha-role",
            config.to_str().context("path")?,
            leases.to_str().context("path")?,
            ready.to_str().context("path")?,
        ];
        let log = dir.join(format!("ha-{}.log", self.ha_seen));
        self.ha_log = log.clone();
        self.ha_seen = 0;
        self.ha_pid = Some(self.lab.spawn(&self.ha, &argv, &log)?);
        if !wait_until(Duration::from_secs(10), || ready.exists()) {
            bail!(
                "the home agent did not start: {}",
                fs::read_to_string(&log).unwrap_or_default()
            );
        }
        Ok(())
    }

    fn stop_ha(&mut self) {
        if let Some(pid) = self.ha_pid.take() {
            self.lab.stop(pid);
        }
    }

    /// Print the home agent's new log lines.
    fn show_ha(&mut self) {
        std::thread::sleep(Duration::from_millis(150));
        let text = fs::read_to_string(&self.ha_log).unwrap_or_default();
        for line in text.lines().skip(self.ha_seen) {
            println!("  [ha] {line}");
            self.ha_seen += 1;
        }
    }

    fn mn(&self, seq: &str, lifetime: &str, ipv4: &str) -> Result<()> {
        let out = self.lab.run(
            &self.mn,
            &[self.exe.to_str().unwrap(), "mn-role", seq, lifetime, ipv4],
        )?;
        for line in out.lines() {
            println!("  [mn] {line}");
        }
        Ok(())
    }
}

fn orchestrate() -> Result<()> {
    println!("dsmip demo: Dual-Stack Mobile IPv6 registration through a real NAT\n");
    println!("  mn 10.1.0.2 --- nat 10.1.0.1 | 192.0.2.2 (nftables masquerade) --- ha 192.0.2.1");
    println!("  mobile node home address {HOA}, home agent {HA6} / {HA4}, UDP port {PORT}");
    println!("  (IPsec is not in this demo yet: the IKE/ESP wiring lands with the daemons)\n");
    let mut lab = Lab::new("demo")?;
    let mn = lab.ns("mn")?;
    let nat = lab.ns("nat")?;
    let ha = lab.ns("ha")?;
    lab.veth(&mn, "eth0", &["10.1.0.2/24"], &nat, "in0", &["10.1.0.1/24"])?;
    lab.veth(
        &nat,
        "out0",
        &["192.0.2.2/24"],
        &ha,
        "eth0",
        &["192.0.2.1/24"],
    )?;
    lab.run(&mn, &["ip", "route", "add", "default", "via", "10.1.0.1"])?;
    lab.masquerade(&nat, "out0")?;
    fs::write(lab.dir().join("ha.toml"), HA_CONFIG)?;
    let mut d = Demo {
        exe: std::env::current_exe()?,
        ha_log: PathBuf::new(),
        ha_pid: None,
        ha_seen: 0,
        lab,
        mn,
        ha,
    };
    d.start_ha()?;

    println!("1. The mobile node registers and asks for a dynamic IPv4 home address");
    d.mn("1", "400", "0.0.0.0/32")?;
    d.show_ha();
    let lease = fs::read_to_string(&d.ha_log)?
        .lines()
        .find_map(|l| {
            l.strip_prefix("binding cache: ")
                .and_then(|r| r.split_whitespace().nth(3))
                .map(str::to_string)
        })
        .context("no binding after registration")?;

    println!(
        "\n2. The home agent restarts; the mobile node refreshes with the address it was given"
    );
    d.stop_ha();
    d.start_ha()?;
    d.mn("2", "400", &lease)?;
    d.show_ha();

    println!("\n3. The mobile node deregisters (lifetime 0)");
    d.mn("3", "0", &lease)?;
    d.show_ha();
    d.stop_ha();
    println!("\nDone: namespaces and processes are removed. The tests: scripts/test-all.sh");
    Ok(())
}
