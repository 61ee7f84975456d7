//! `dsmip-esp-fwd`: a userspace ESP tunnel endpoint with static keys, built on
//! `mipsec::esp` and `mipsec::io`. Inner packets come from a TUN device, leave as ESP in
//! UDP 4500 (RFC 3948, the §5.2.2 format of RFC 5555 behind a NAT); ESP arriving on the
//! UDP socket is verified, decrypted and written to the TUN device.
//!
//! Two threads, one per direction, each owning its SA (SAs are simplex, RFC 4301 §4.1), so
//! nothing on the packet path is shared but the peer address. The outbound side reads the
//! TUN device non-blocking until it runs dry or a batch is full, seals each packet in place
//! and sends the batch with one `sendmmsg`, or with UDP GSO runs of equal-sized datagrams.
//! The inbound side receives with `recvmmsg` (and UDP GRO when asked) and decrypts in place.
//!
//! Without `--peer` the endpoint answers whoever last sent it an authenticated ESP packet,
//! as a home agent behind which the mobile node's NAT mapping may change (RFC 5555 §5.1
//! passes the outer address and port up; RFC 3948 §3.2 keeps the mapping current).

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use mipsec::esp::natt::{classify, Datagram, KEEPALIVE};
use mipsec::esp::{Inbound, InboundSa, OutboundSa, SaConfig, Transform};
use mipsec::io::gso::{Coalescer, Segmenter};
use mipsec::io::tun::{Tun, VnetHdr, VNET_HDR_LEN};
use mipsec::io::udp::{BatchUdp, RecvMeta, BATCH};

/// Command line of `dsmip-esp-fwd`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "dsmip-esp-fwd",
    about = "userspace ESP-in-UDP tunnel endpoint with static keys"
)]
pub struct Args {
    /// TUN device name (`%d` lets the kernel number it).
    #[arg(long, default_value = "esp%d")]
    pub tun: String,
    /// Address with prefix length for the TUN device (repeatable).
    #[arg(long = "tun-addr")]
    pub tun_addrs: Vec<String>,
    /// TUN MTU.
    #[arg(long, default_value_t = 1400)]
    pub mtu: u32,
    /// Local UDP address (port 4500 by default in the lab).
    #[arg(long)]
    pub local: SocketAddr,
    /// Peer UDP address; without it, the source of the last authenticated packet.
    #[arg(long)]
    pub peer: Option<SocketAddr>,
    /// ESP transform: aes128gcm16, aes256gcm16, chacha20poly1305, aes128-sha256, aes256-sha256.
    #[arg(long, default_value = "aes128gcm16")]
    pub transform: String,
    #[arg(long = "spi-out", value_parser = parse_u32)]
    pub spi_out: u32,
    /// Outbound key material in hex (encryption key || salt, or || integrity key).
    #[arg(long = "key-out")]
    pub key_out: String,
    #[arg(long = "spi-in", value_parser = parse_u32)]
    pub spi_in: u32,
    #[arg(long = "key-in")]
    pub key_in: String,
    /// Anti-replay window.
    #[arg(long, default_value_t = 1024)]
    pub replay_window: u32,
    /// Send runs of equal-sized datagrams with UDP GSO.
    #[arg(long)]
    pub gso: bool,
    /// Receive with UDP GRO.
    #[arg(long)]
    pub gro: bool,
    /// Open the TUN device with TCP segmentation and checksum offload: the kernel hands
    /// over 64 KiB TCP super-packets, segmented here, one read instead of dozens.
    #[arg(long = "tun-offload")]
    pub tun_offload: bool,
    /// With --tun-offload: do not merge received TCP segments into super-packets.
    #[arg(long = "no-tun-gro")]
    pub no_tun_gro: bool,
    /// Send a NAT keepalive (one octet 0xFF, RFC 3948 §2.3) to the peer every this many
    /// seconds (0: never). RFC 3948 suggests 20 s.
    #[arg(long, default_value_t = 0)]
    pub keepalive: u64,
    /// Print counters every this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub stats: u64,
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| e.to_string())
}

/// Counters shared by the two directions, for `--stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub tx_packets: AtomicU64,
    pub tx_bytes: AtomicU64,
    pub rx_packets: AtomicU64,
    pub rx_bytes: AtomicU64,
    pub rx_dropped: AtomicU64,
    pub tx_dropped: AtomicU64,
}

/// Largest UDP GSO buffer and segment count (the kernel caps both).
const GSO_MAX_BYTES: usize = 65_000;
const GSO_MAX_SEGMENTS: usize = 64;

/// Sets up the device and socket and runs both directions; returns only on error.
pub fn run(args: Args) -> Result<()> {
    let transform = Transform::from_name(&args.transform).context("unknown --transform")?;
    let mut cfg_out = SaConfig::new(args.spi_out, transform);
    cfg_out.replay_window = args.replay_window;
    let mut cfg_in = SaConfig::new(args.spi_in, transform);
    cfg_in.replay_window = args.replay_window;
    let out_sa = OutboundSa::new(cfg_out, &hex::decode(&args.key_out).context("--key-out")?)?;
    let in_sa = InboundSa::new(cfg_in, &hex::decode(&args.key_in).context("--key-in")?)?;

    let tun = Tun::create_with(&args.tun, args.tun_offload).context("creating the TUN device")?;
    tun.set_mtu(args.mtu)?;
    for a in &args.tun_addrs {
        let (addr, len) = a
            .split_once('/')
            .context("--tun-addr needs a prefix length")?;
        let addr: IpAddr = addr.parse()?;
        tun.add_address(addr, len.parse()?)?;
    }
    tun.up()?;
    let udp = BatchUdp::bind(args.local).context("binding the UDP socket")?;
    udp.set_buffer_sizes(8 << 20)?;
    if args.gro {
        udp.set_gro(true)?;
    }
    println!(
        "dsmip-esp-fwd: {} up, UDP {} {}",
        tun.name(),
        args.local,
        transform
    );
    let opts = Options {
        mtu: args.mtu as usize,
        gso: args.gso,
        tun_gro: !args.no_tun_gro,
    };
    let keepalive_sock = udp.socket().try_clone()?;
    let ep = spawn(out_sa, in_sa, tun, udp, args.peer, opts);
    if args.keepalive > 0 {
        let peer = ep.peer.clone();
        let every = Duration::from_secs(args.keepalive);
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            if let Some(p) = *peer.lock().unwrap_or_else(|p| p.into_inner()) {
                let _ = keepalive_sock.send_to(&KEEPALIVE, p);
            }
        });
    }
    if args.stats > 0 {
        let stats = ep.stats.clone();
        let peer = ep.peer.clone();
        let every = Duration::from_secs(args.stats);
        std::thread::spawn(move || loop {
            std::thread::sleep(every);
            let p = *peer.lock().unwrap_or_else(|p| p.into_inner());
            println!(
                "{}, peer {}",
                stats.line(),
                p.map_or("-".into(), |p| p.to_string())
            );
        });
    }
    ep.wait()
}

/// Packet-path options of an endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// TUN MTU: the largest inner packet.
    pub mtu: usize,
    /// Send with UDP GSO.
    pub gso: bool,
    /// With an offloading TUN device, merge received TCP segments (userspace GRO).
    pub tun_gro: bool,
}

/// A running endpoint: its two direction threads and shared counters.
pub struct Running {
    pub stats: Arc<Stats>,
    pub peer: Arc<Mutex<Option<SocketAddr>>>,
    tx: std::thread::JoinHandle<Result<()>>,
    rx: std::thread::JoinHandle<Result<()>>,
}

impl Running {
    /// Block until a direction fails; its error.
    pub fn wait(self) -> Result<()> {
        loop {
            if self.tx.is_finished() {
                return self
                    .tx
                    .join()
                    .unwrap_or_else(|_| bail!("outbound thread panicked"));
            }
            if self.rx.is_finished() {
                return self
                    .rx
                    .join()
                    .unwrap_or_else(|_| bail!("inbound thread panicked"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Run an endpoint on an already configured TUN device and UDP socket (which may be the
/// IKE daemon's port-4500 socket: IKE messages and keepalives are skipped by the inbound
/// side, RFC 3948 §2.2). Used by the binary and by tests that key SAs with our IKE engine.
pub fn spawn(
    out_sa: OutboundSa,
    in_sa: InboundSa,
    tun: Tun,
    udp: BatchUdp,
    peer: Option<SocketAddr>,
    o: Options,
) -> Running {
    let tun = Arc::new(tun);
    let udp = Arc::new(udp);
    let peer = Arc::new(Mutex::new(peer));
    let stats = Arc::new(Stats::default());
    let rx = {
        let (tun, udp, peer, stats) = (tun.clone(), udp.clone(), peer.clone(), stats.clone());
        std::thread::spawn(move || inbound(in_sa, &tun, &udp, &peer, &stats, o.mtu, o.tun_gro))
    };
    let tx = {
        let (peer, stats) = (peer.clone(), stats.clone());
        std::thread::spawn(move || outbound(out_sa, &tun, &udp, &peer, &stats, o.mtu, o.gso))
    };
    Running {
        stats,
        peer,
        tx,
        rx,
    }
}

impl Stats {
    pub fn line(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        format!(
            "tx {} pkts {} bytes ({} dropped), rx {} pkts {} bytes ({} dropped)",
            g(&self.tx_packets),
            g(&self.tx_bytes),
            g(&self.tx_dropped),
            g(&self.rx_packets),
            g(&self.rx_bytes),
            g(&self.rx_dropped)
        )
    }
}

fn next_header(pkt: &[u8]) -> Option<u8> {
    match pkt.first()? >> 4 {
        4 => Some(4),
        6 => Some(41),
        _ => None,
    }
}

/// The outbound batch: ESP packets laid end to end in `area`.
struct Batch {
    area: Vec<u8>,
    starts: [usize; BATCH],
    lens: [usize; BATCH],
    n: usize,
    off: usize,
    slot: usize,
}

impl Batch {
    fn full(&self) -> bool {
        self.n == BATCH || self.off + self.slot > self.area.len()
    }

    fn push(&mut self, len: usize) {
        self.starts[self.n] = self.off;
        self.lens[self.n] = len;
        self.n += 1;
        self.off += len;
    }

    fn flush(
        &mut self,
        udp: &BatchUdp,
        peer: &Mutex<Option<SocketAddr>>,
        stats: &Stats,
        gso: bool,
    ) -> Result<()> {
        let n = std::mem::take(&mut self.n);
        self.off = 0;
        if n == 0 {
            return Ok(());
        }
        let Some(dst) = *peer.lock().unwrap_or_else(|p| p.into_inner()) else {
            stats.tx_dropped.fetch_add(n as u64, Ordering::Relaxed);
            return Ok(());
        };
        if gso {
            send_gso_runs(udp, &self.area, &self.lens[..n], dst)?;
        } else {
            let msgs: Vec<(&[u8], SocketAddr)> = (0..n)
                .map(|i| {
                    (
                        &self.area[self.starts[i]..self.starts[i] + self.lens[i]],
                        dst,
                    )
                })
                .collect();
            udp.send_batch(&msgs)?;
        }
        stats.tx_packets.fetch_add(n as u64, Ordering::Relaxed);
        Ok(())
    }
}

/// Seal the inner packet at `b.area[b.off + hdr..][..len]` in place and add it to the batch.
fn seal(sa: &mut OutboundSa, b: &mut Batch, len: usize, stats: &Stats) -> Result<()> {
    let off = b.off;
    let Some(nh) = next_header(&b.area[off + sa.header_len()..]) else {
        return Ok(());
    };
    match sa.encapsulate_in_place(nh, &mut b.area[off..off + b.slot], len) {
        Ok(l) => {
            b.push(l);
            stats.tx_bytes.fetch_add(len as u64, Ordering::Relaxed);
            Ok(())
        }
        Err(
            e @ (mipsec::esp::EspError::SequenceExhausted { .. }
            | mipsec::esp::EspError::Expired { .. }),
        ) => {
            bail!("outbound SA unusable: {e}")
        }
        Err(_) => {
            stats.tx_dropped.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    }
}

/// TUN -> ESP -> UDP. With `offload` the TUN device hands over TCP super-packets, which
/// are segmented here (mipsec::io::gso) straight into the batch area.
fn outbound(
    mut sa: OutboundSa,
    tun: &Tun,
    udp: &BatchUdp,
    peer: &Mutex<Option<SocketAddr>>,
    stats: &Stats,
    mtu: usize,
    gso: bool,
) -> Result<()> {
    tun.set_nonblocking(true)?;
    let hdr = sa.header_len();
    let slot = sa.encapsulated_len(mtu);
    let mut b = Batch {
        area: vec![0u8; slot * BATCH],
        starts: [0; BATCH],
        lens: [0; BATCH],
        n: 0,
        off: 0,
        slot,
    };
    let mut big = vec![
        0u8;
        if tun.offload() {
            65_536 + VNET_HDR_LEN
        } else {
            0
        }
    ];
    loop {
        if b.full() {
            b.flush(udp, peer, stats, gso)?;
        }
        let r = if tun.offload() {
            tun.recv(&mut big)
        } else {
            tun.recv(&mut b.area[b.off + hdr..b.off + hdr + mtu])
        };
        let len = match r {
            Ok(len) => len,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                if b.n > 0 {
                    b.flush(udp, peer, stats, gso)?;
                } else {
                    tun.wait_readable(-1)?;
                }
                continue;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        if !tun.offload() {
            seal(&mut sa, &mut b, len, stats)?;
            continue;
        }
        let Some(h) = VnetHdr::parse(&big[..len]) else {
            continue;
        };
        let Some(mut segs) = Segmenter::new(&h, &mut big[VNET_HDR_LEN..len]) else {
            stats.tx_dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        loop {
            if b.full() {
                b.flush(udp, peer, stats, gso)?;
            }
            let at = b.off + hdr;
            let Some(l) = segs.next_into(&mut b.area[at..at + mtu]) else {
                break;
            };
            seal(&mut sa, &mut b, l, stats)?;
        }
    }
}

/// Send packets laid end to end in `area` as GSO runs: a run is datagrams of one size,
/// optionally ended by a single shorter one (what UDP GSO can express).
fn send_gso_runs(udp: &BatchUdp, area: &[u8], lens: &[usize], dst: SocketAddr) -> Result<()> {
    let (mut start, mut i) = (0usize, 0usize);
    while i < lens.len() {
        let seg = lens[i];
        let (mut end, mut j) = (start + seg, i + 1);
        while j < lens.len() && j - i < GSO_MAX_SEGMENTS && end + lens[j] <= start + GSO_MAX_BYTES {
            if lens[j] == seg {
                end += lens[j];
                j += 1;
            } else {
                if lens[j] < seg {
                    end += lens[j];
                    j += 1;
                }
                break;
            }
        }
        if j - i == 1 {
            udp.send_batch(&[(&area[start..end], dst)])?;
        } else {
            udp.send_gso(&area[start..end], seg as u16, dst)?;
        }
        start = end;
        i = j;
    }
    Ok(())
}

/// UDP -> ESP -> TUN.
fn inbound(
    mut sa: InboundSa,
    tun: &Tun,
    udp: &BatchUdp,
    peer: &Mutex<Option<SocketAddr>>,
    stats: &Stats,
    mtu: usize,
    tun_gro: bool,
) -> Result<()> {
    let size = 65_536.max(mtu + 200);
    let mut store: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; size]).collect();
    let mut meta = [RecvMeta::default(); 16];
    // With offloads, consecutive TCP segments are merged into one write (userspace GRO).
    let mut coal = (tun.offload() && tun_gro).then(Coalescer::new);
    loop {
        let mut bufs: Vec<&mut [u8]> = store.iter_mut().map(|b| &mut b[..]).collect();
        let n = match udp.recv_batch(&mut bufs, &mut meta) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::Interrupted | ErrorKind::WouldBlock | ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        for (buf, m) in bufs.iter_mut().zip(&meta).take(n) {
            let seg = m.segment.map_or(m.len, usize::from).max(1);
            for dgram in buf[..m.len].chunks_mut(seg) {
                match classify(dgram) {
                    Ok(Datagram::Esp) => {}
                    // Keepalives and IKE are not this endpoint's business (static keys).
                    Ok(_) => continue,
                    Err(_) => {
                        stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                }
                match sa.decapsulate(dgram) {
                    Ok(Inbound::Packet { payload, .. }) => {
                        if let Some(c) = coal.as_mut() {
                            let pkt = &dgram[payload.clone()];
                            if !c.push(pkt) {
                                tun.send(c.take())?;
                                c.push(pkt);
                            }
                        } else if tun.offload() {
                            // A zero virtio_net_hdr (no GSO, checksums complete) in front,
                            // written over the consumed ESP header and IV.
                            let at = payload.start - VNET_HDR_LEN;
                            dgram[at..payload.start].fill(0);
                            tun.send(&dgram[at..payload.end])?;
                        } else {
                            tun.send(&dgram[payload.clone()])?;
                        }
                        stats.rx_packets.fetch_add(1, Ordering::Relaxed);
                        stats
                            .rx_bytes
                            .fetch_add(payload.len() as u64, Ordering::Relaxed);
                        // Only an authenticated packet may move the peer (RFC 3948 §3.2 /
                        // RFC 4555 §3.5: never follow an unauthenticated address change).
                        if let Some(src) = m.src {
                            let mut p = peer.lock().unwrap_or_else(|p| p.into_inner());
                            if *p != Some(src) {
                                *p = Some(src);
                            }
                        }
                    }
                    Ok(Inbound::Dummy { .. }) => {}
                    Err(_) => {
                        stats.rx_dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
        if let Some(c) = coal.as_mut().filter(|c| !c.is_empty()) {
            tun.send(c.take())?;
        }
    }
}

/// The ESP lab of the tests and the throughput benchmark: mobile node, home agent and
/// correspondent namespaces, two of our endpoints with static keys between mn and ha.
///
/// ```text
///  mn  198.51.100.2 ──veth── 198.51.100.1  ha  192.0.2.1 ──veth── 192.0.2.2  cn
///  TUN 203.0.113.10/32                     TUN 203.0.113.1/32
///  route 192.0.2.0/24 -> TUN               route 203.0.113.10/32 -> TUN, forwarding on
/// ```
pub mod lab_topology {
    use std::path::Path;
    use std::time::Duration;

    use anyhow::{bail, Result};

    use crate::lab::{wait_until, Lab};

    pub const MN_OUTER: &str = "198.51.100.2";
    pub const HA_OUTER: &str = "198.51.100.1";
    pub const MN_INNER: &str = "203.0.113.10";
    pub const HA_INNER: &str = "203.0.113.1";
    pub const HA_LAN: &str = "192.0.2.1";
    pub const CN: &str = "192.0.2.2";
    /// Static test keys (AES-GCM-128 key || salt), one per direction. Lab use only.
    pub const KEY_MN_HA: &str = "000102030405060708090a0b0c0d0e0f10111213";
    pub const KEY_HA_MN: &str = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";

    /// Namespaces of one ESP lab (full names).
    pub struct Topology {
        /// The mobile node's own outer address (behind the NAT in [`build_nat`]).
        pub mn_outer: String,
        pub mn: String,
        pub ha: String,
        pub cn: String,
        pub mn_pid: Option<u32>,
        pub ha_pid: Option<u32>,
    }

    /// Namespaces and links, no tunnel yet.
    pub fn build(lab: &mut Lab, mtu: u32) -> Result<Topology> {
        let mn = lab.ns("mn")?;
        let ha = lab.ns("ha")?;
        let cn = lab.ns("cn")?;
        lab.veth(
            &mn,
            "to-ha",
            &["198.51.100.2/24"],
            &ha,
            "to-mn",
            &["198.51.100.1/24"],
        )?;
        lab.veth(
            &ha,
            "to-cn",
            &["192.0.2.1/24"],
            &cn,
            "to-ha",
            &["192.0.2.2/24"],
        )?;
        let m = mtu.to_string();
        for (ns, dev) in [
            (&mn, "to-ha"),
            (&ha, "to-mn"),
            (&ha, "to-cn"),
            (&cn, "to-ha"),
        ] {
            lab.run(ns, &["ip", "link", "set", dev, "mtu", &m])?;
        }
        lab.sysctl(&ha, "net.ipv4.ip_forward", "1")?;
        lab.run(
            &cn,
            &["ip", "route", "add", "203.0.113.0/24", "via", HA_LAN],
        )?;
        Ok(Topology {
            mn_outer: MN_OUTER.into(),
            mn,
            ha,
            cn,
            mn_pid: None,
            ha_pid: None,
        })
    }

    /// As [`build`], with the mobile node behind a masquerading NAT (nftables):
    /// `mn 198.51.100.130/25 -- .129 nat .2 -- 198.51.100.1/25 ha`, so that ESP reaches the
    /// home agent from the NAT's address and a rewritten port (RFC 5555 §5.2.2).
    pub fn build_nat(lab: &mut Lab) -> Result<Topology> {
        let mn = lab.ns("mn")?;
        let nat = lab.ns("nat")?;
        let ha = lab.ns("ha")?;
        let cn = lab.ns("cn")?;
        lab.veth(
            &mn,
            "to-nat",
            &["198.51.100.130/25"],
            &nat,
            "in0",
            &["198.51.100.129/25"],
        )?;
        lab.veth(
            &nat,
            "out0",
            &["198.51.100.2/25"],
            &ha,
            "to-mn",
            &["198.51.100.1/25"],
        )?;
        lab.veth(
            &ha,
            "to-cn",
            &["192.0.2.1/24"],
            &cn,
            "to-ha",
            &["192.0.2.2/24"],
        )?;
        lab.run(
            &mn,
            &["ip", "route", "add", "default", "via", "198.51.100.129"],
        )?;
        lab.masquerade(&nat, "out0")?;
        lab.sysctl(&ha, "net.ipv4.ip_forward", "1")?;
        lab.run(
            &cn,
            &["ip", "route", "add", "203.0.113.0/24", "via", HA_LAN],
        )?;
        Ok(Topology {
            mn_outer: "198.51.100.130".into(),
            mn,
            ha,
            cn,
            mn_pid: None,
            ha_pid: None,
        })
    }

    /// Start our two endpoints and their routes. `extra` goes to both command lines.
    pub fn start_ours(
        lab: &mut Lab,
        t: &mut Topology,
        fwd: &Path,
        tun_mtu: u32,
        extra: &[&str],
    ) -> Result<()> {
        let bin = fwd.to_str().unwrap_or_default().to_string();
        let mtu = tun_mtu.to_string();
        let mn_tun = format!("{MN_INNER}/32");
        let ha_tun = format!("{HA_INNER}/32");
        let mn_local = format!("{}:4500", t.mn_outer);
        let ha_local = format!("{HA_OUTER}:4500");
        let mut mn_argv = vec![
            bin.as_str(),
            "--tun",
            "dsm0",
            "--tun-addr",
            &mn_tun,
            "--mtu",
            &mtu,
            "--local",
            &mn_local,
            "--peer",
            &ha_local,
            "--spi-out",
            "0x1001",
            "--key-out",
            KEY_MN_HA,
            "--spi-in",
            "0x2002",
            "--key-in",
            KEY_HA_MN,
            "--stats",
            "1",
        ];
        mn_argv.extend_from_slice(extra);
        let mut ha_argv = vec![
            bin.as_str(),
            "--tun",
            "dsm0",
            "--tun-addr",
            &ha_tun,
            "--mtu",
            &mtu,
            "--local",
            &ha_local,
            "--spi-out",
            "0x2002",
            "--key-out",
            KEY_HA_MN,
            "--spi-in",
            "0x1001",
            "--key-in",
            KEY_MN_HA,
            "--stats",
            "1",
        ];
        ha_argv.extend_from_slice(extra);
        let (mn_log, ha_log) = (lab.dir().join("fwd-mn.log"), lab.dir().join("fwd-ha.log"));
        t.mn_pid = Some(lab.spawn(&t.mn, &mn_argv, &mn_log)?);
        t.ha_pid = Some(lab.spawn(&t.ha, &ha_argv, &ha_log)?);
        for ns in [t.mn.clone(), t.ha.clone()] {
            if !wait_until(Duration::from_secs(10), || {
                lab.run(&ns, &["ip", "link", "show", "dsm0"]).is_ok()
            }) {
                bail!(
                    "dsm0 did not appear in {ns}: mn log {:?}, ha log {:?}",
                    std::fs::read_to_string(&mn_log).unwrap_or_default(),
                    std::fs::read_to_string(&ha_log).unwrap_or_default()
                );
            }
        }
        lab.run(
            &t.mn,
            &[
                "ip",
                "route",
                "add",
                "192.0.2.0/24",
                "dev",
                "dsm0",
                "src",
                MN_INNER,
            ],
        )?;
        lab.run(
            &t.ha,
            &["ip", "route", "add", "203.0.113.10/32", "dev", "dsm0"],
        )?;
        Ok(())
    }
}
