//! `dsmip-probe ike`: one IKEv2 initiator exchange with the native engine (crate `ike`)
//! against any peer, printed as one JSON object; plus the small blocking UDP driver that the
//! probe, the interop tests and the benchmark share (sockets on the IKE and NAT-T ports,
//! reader threads, real time fed to the sans-IO [`Endpoint`]).
//!
//! Exit status: 0 when the IKE SA and the CHILD_SA were established, 1 otherwise.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ike::cert::Credentials;
use ike::crypto::{Secret, SystemRng};
use ike::proposal::Proposal;
use ike::sa::{AuthConfig, ChildSa, Config, Endpoint, Event, Failure, IkeSaInfo, Mode, SaId};
use ike::wire::{NotifyType, ProtocolId, TrafficSelector};
use serde_json::{json, Value};

/// Arguments of `dsmip-probe ike`.
#[derive(clap::Args, Debug, Clone)]
pub struct IkeArgs {
    /// The responder: ADDR or ADDR:PORT ([v6addr]:PORT); port 500 by default.
    #[arg(long)]
    pub peer: String,
    /// Our address (default: the one the kernel routes towards the peer).
    #[arg(long)]
    pub local: Option<IpAddr>,
    /// Our identity: an address, @fqdn, user@fqdn or an FQDN.
    #[arg(long)]
    pub local_id: String,
    /// The identity the peer must prove.
    #[arg(long)]
    pub remote_id: String,
    /// Pre-shared key.
    #[arg(long, conflicts_with_all = ["cert", "key", "ca"])]
    pub psk: Option<String>,
    /// Our certificate (PEM).
    #[arg(long, requires_all = ["key", "ca"])]
    pub cert: Option<PathBuf>,
    /// Our private key (PEM: PKCS#8 EC P-256/P-384 or RSA, or PKCS#1 RSA).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// The CA that must have signed the peer's certificate (PEM).
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// IKE proposal in strongSwan syntax.
    #[arg(long, default_value = "aes128gcm16-prfsha256-x25519")]
    pub ike_proposal: String,
    /// ESP proposal in strongSwan syntax.
    #[arg(long, default_value = "aes128gcm16")]
    pub esp_proposal: String,
    /// Our traffic selector (CIDR); default: our address alone.
    #[arg(long, requires = "ts_remote")]
    pub ts_local: Option<String>,
    /// The peer's traffic selector (CIDR); default: the peer's address alone.
    #[arg(long, requires = "ts_local")]
    pub ts_remote: Option<String>,
    /// Ask for a transport-mode CHILD_SA.
    #[arg(long)]
    pub transport: bool,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,
}

/// Parses `ADDR`, `ADDR:PORT` or `[V6ADDR]:PORT`.
pub fn parse_peer(s: &str) -> Result<SocketAddr> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    let ip: IpAddr = s
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .with_context(|| format!("bad --peer {s:?}"))?;
    Ok(SocketAddr::new(ip, 500))
}

/// Parses a CIDR such as `10.0.0.0/24` or `2001:db8::1` (a host) into a selector.
pub fn parse_cidr(s: &str) -> Result<TrafficSelector> {
    let (a, l) = s.split_once('/').unwrap_or((s, ""));
    let ip: IpAddr = a.parse().with_context(|| format!("bad address in {s:?}"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = if l.is_empty() {
        max
    } else {
        l.parse()
            .with_context(|| format!("bad prefix length in {s:?}"))?
    };
    if len > max {
        bail!("prefix length {len} too long in {s:?}");
    }
    Ok(TrafficSelector::prefix(ip, len))
}

/// Builds the initiator configuration from the probe's arguments.
pub fn config_from_args(args: &IkeArgs, local: IpAddr, peer: SocketAddr) -> Result<Config> {
    let mut c = Config::psk(&args.local_id, Some(&args.remote_id), b"");
    c.auth = match (&args.psk, &args.cert, &args.key, &args.ca) {
        (Some(psk), None, None, None) => AuthConfig::Psk(Secret::new(psk.as_bytes().to_vec())),
        (None, Some(cert), Some(key), Some(ca)) => {
            let read =
                |p: &PathBuf| std::fs::read(p).with_context(|| format!("reading {}", p.display()));
            let creds = Credentials::from_pem(&read(cert)?, &read(key)?, &read(ca)?)?;
            AuthConfig::Cert(Arc::new(creds))
        }
        _ => bail!("give --psk, or --cert, --key and --ca"),
    };
    c.ike_proposals = vec![Proposal::parse(&args.ike_proposal, ProtocolId::IKE)?];
    c.esp_proposals = vec![Proposal::parse(&args.esp_proposal, ProtocolId::ESP)?];
    let (tl, tr) = match (&args.ts_local, &args.ts_remote) {
        (Some(l), Some(r)) => (parse_cidr(l)?, parse_cidr(r)?),
        _ => (
            TrafficSelector::prefix(local, if local.is_ipv4() { 32 } else { 128 }),
            {
                let p = peer.ip();
                TrafficSelector::prefix(p, if p.is_ipv4() { 32 } else { 128 })
            },
        ),
    };
    c.ts_local = vec![tl];
    c.ts_remote = vec![tr];
    c.transport = args.transport;
    c.retransmit_timeout = Duration::from_millis(500);
    c.retransmit_tries = 5;
    Ok(c)
}

/// The two UDP sockets of one IKE endpoint: the IKE port and the NAT-T port.
#[derive(Debug)]
pub struct Sockets {
    pub ike: UdpSocket,
    pub natt: UdpSocket,
}

impl Sockets {
    /// Binds `local` on both ports. A port still held for an instant (a socket closed while
    /// another thread was forking keeps it until that child execs) is retried for 1 s.
    pub fn bind(local: IpAddr, ike_port: u16, natt_port: u16) -> std::io::Result<Sockets> {
        let bind = |port: u16| {
            let mut tries = 0;
            loop {
                match UdpSocket::bind((local, port)) {
                    Err(e) if e.kind() == std::io::ErrorKind::AddrInUse && tries < 40 => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(25));
                    }
                    r => return r,
                }
            }
        };
        Ok(Sockets {
            ike: bind(ike_port)?,
            natt: bind(natt_port)?,
        })
    }
}

type Rx = (SocketAddr, SocketAddr, Vec<u8>);

/// A blocking driver around a sans-IO [`Endpoint`].
pub struct Driver {
    pub endpoint: Endpoint,
    socks: Sockets,
    local_ike: SocketAddr,
    local_natt: SocketAddr,
    rx: mpsc::Receiver<Rx>,
    stop: Arc<AtomicBool>,
    readers: Vec<JoinHandle<()>>,
}

impl Driver {
    pub fn new(endpoint: Endpoint, socks: Sockets) -> Result<Driver> {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let local_ike = socks.ike.local_addr()?;
        let local_natt = socks.natt.local_addr()?;
        let mut readers = Vec::new();
        for s in [&socks.ike, &socks.natt] {
            let s = s.try_clone()?;
            s.set_read_timeout(Some(Duration::from_millis(100)))?;
            let (tx, stop) = (tx.clone(), stop.clone());
            let local = s.local_addr()?;
            readers.push(std::thread::spawn(move || {
                let mut buf = vec![0u8; 65536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = s.recv_from(&mut buf) {
                        if tx.send((local, from, buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }));
        }
        Ok(Driver {
            endpoint,
            socks,
            local_ike,
            local_natt,
            rx,
            stop,
            readers,
        })
    }

    /// Our address and IKE port.
    pub fn local(&self) -> SocketAddr {
        self.local_ike
    }

    /// Sends everything the endpoint queued.
    pub fn flush(&mut self) -> Result<()> {
        while let Some(t) = self.endpoint.poll_transmit() {
            let s = if t.local_port == self.local_natt.port() {
                &self.socks.natt
            } else {
                &self.socks.ike
            };
            s.send_to(&t.data, t.remote)
                .with_context(|| format!("sending to {}", t.remote))?;
        }
        Ok(())
    }

    /// Runs IO and timers until the endpoint reports an event or `deadline` passes.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>> {
        loop {
            self.flush()?;
            if let Some(e) = self.endpoint.poll_event() {
                return Ok(Some(e));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            self.endpoint.set_unix_time(unix);
            let wake = self
                .endpoint
                .poll_timeout()
                .map_or(deadline, |t| t.min(deadline));
            match self.rx.recv_timeout(wake.saturating_duration_since(now)) {
                Ok((local, from, data)) => {
                    let local = if local.ip().is_unspecified() {
                        SocketAddr::new(self.local_ike.ip(), local.port())
                    } else {
                        local
                    };
                    self.endpoint
                        .handle_datagram(Instant::now(), local, from, &data);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.endpoint.handle_timeout(Instant::now())
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => bail!("socket readers ended"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
    }
}

/// What one initiator run found.
#[derive(Debug, Clone, Default)]
pub struct Report {
    pub sa: Option<SaId>,
    pub ike: Option<IkeSaInfo>,
    pub child: Option<ChildSa>,
    pub child_notify: Option<u16>,
    pub failure: Option<Failure>,
    pub timed_out: bool,
    pub elapsed: Duration,
    pub deleted: bool,
}

impl Report {
    pub fn established(&self) -> bool {
        self.ike.is_some() && self.child.is_some()
    }

    /// The probe's JSON object.
    pub fn to_json(&self) -> Value {
        let notify = |n: u16| json!({"type": n, "name": NotifyType(n).name()});
        let failure = match &self.failure {
            Some(Failure::PeerNotify(n)) => json!({"notify": notify(*n)}),
            Some(Failure::Timeout) => json!({"timeout": true}),
            Some(Failure::AuthFailed) => json!({"error": "peer authentication failed"}),
            Some(Failure::Protocol(e)) => json!({"error": e.to_string()}),
            None if self.timed_out => json!({"timeout": true}),
            None => Value::Null,
        };
        json!({
            "established": self.established(),
            "ike_proposal": self.ike.as_ref().map(|i| i.proposal.name()),
            "esp_proposal": self.child.as_ref().map(|c| c.proposal.name()),
            "ike_spi_i": self.ike.as_ref().map(|i| format!("{:016x}", i.spi_i)),
            "ike_spi_r": self.ike.as_ref().map(|i| format!("{:016x}", i.spi_r)),
            "child_spi_in": self.child.as_ref().map(|c| format!("{:08x}", c.spi_in)),
            "child_spi_out": self.child.as_ref().map(|c| format!("{:08x}", c.spi_out)),
            "mode": self.child.as_ref().map(|c| if c.mode == Mode::Transport { "transport" } else { "tunnel" }),
            "ts_local": self.child.as_ref().map(|c| c.ts_local.iter().map(ts_text).collect::<Vec<_>>()),
            "ts_remote": self.child.as_ref().map(|c| c.ts_remote.iter().map(ts_text).collect::<Vec<_>>()),
            "nat_local": self.ike.as_ref().map(|i| i.nat_local),
            "nat_remote": self.ike.as_ref().map(|i| i.nat_remote),
            "local": self.ike.as_ref().map(|i| i.local.to_string()),
            "remote": self.ike.as_ref().map(|i| i.remote.to_string()),
            "udp_encap": self.child.as_ref().and_then(|c| c.encap).map(|(l, r)| json!({"local_port": l, "remote_port": r})),
            "child_failed_notify": self.child_notify.map(notify),
            "failure": failure,
            "time_ms": (self.elapsed.as_secs_f64() * 1e6).round() / 1e3,
            "deleted": self.deleted,
        })
    }
}

fn ts_text(t: &TrafficSelector) -> String {
    let proto = if t.protocol == 0 {
        String::new()
    } else {
        format!(" proto {}", t.protocol)
    };
    let ports = if (t.start_port, t.end_port) == (0, 0xffff) {
        String::new()
    } else {
        format!(" ports {}-{}", t.start_port, t.end_port)
    };
    format!("{}-{}{proto}{ports}", t.start_addr, t.end_addr)
}

/// Runs one initiator exchange on `driver` until the CHILD_SA outcome, a failure or the
/// timeout. Does not delete the SA (see [`delete`]).
pub fn initiate(
    driver: &mut Driver,
    peer: SocketAddr,
    config: Config,
    timeout: Duration,
) -> Result<Report> {
    let start = Instant::now();
    let deadline = start + timeout;
    let mut r = Report::default();
    let sa = driver
        .endpoint
        .connect(start, driver.local(), peer, config)?;
    r.sa = Some(sa);
    while let Some(e) = driver.next_event(deadline)? {
        match e {
            Event::IkeSaUp { info, .. } => r.ike = Some(info),
            Event::ChildSaUp { child, .. } => {
                r.child = Some(child);
                break;
            }
            Event::ChildSaFailed { notify, .. } => {
                r.child_notify = Some(notify);
                break;
            }
            Event::Failed { reason, .. } => {
                r.failure = Some(reason);
                break;
            }
            _ => {}
        }
    }
    r.elapsed = start.elapsed();
    r.timed_out = r.ike.is_none() && r.failure.is_none() && r.child_notify.is_none();
    Ok(r)
}

/// Deletes the IKE SA and waits up to `timeout` for the peer's answer.
pub fn delete(driver: &mut Driver, sa: SaId, timeout: Duration) -> Result<bool> {
    driver.endpoint.delete(Instant::now(), sa)?;
    let deadline = Instant::now() + timeout;
    while let Some(e) = driver.next_event(deadline)? {
        if matches!(e, Event::IkeSaDown { sa: s } if s == sa) {
            return Ok(true);
        }
        if matches!(e, Event::Failed { sa: s, .. } if s == sa) {
            return Ok(false);
        }
    }
    Ok(false)
}

/// The local address the kernel would use towards `peer`.
fn route_source(peer: SocketAddr) -> Result<IpAddr> {
    let any: IpAddr = if peer.is_ipv4() {
        "0.0.0.0".parse()?
    } else {
        "::".parse()?
    };
    let s = UdpSocket::bind((any, 0))?;
    s.connect(peer)?;
    Ok(s.local_addr()?.ip())
}

/// `dsmip-probe ike`: prints one JSON object; 0 when IKE SA and CHILD_SA came up.
pub fn run(args: &IkeArgs) -> Result<i32> {
    run_to(args, &mut std::io::stdout())
}

/// [`run`] writing its JSON line to `out`.
pub fn run_to(args: &IkeArgs, out: &mut dyn std::io::Write) -> Result<i32> {
    let peer = parse_peer(&args.peer)?;
    let local = match args.local {
        Some(a) => a,
        None => route_source(peer)?,
    };
    let config = match config_from_args(args, local, peer) {
        Ok(c) => c,
        Err(e) => {
            writeln!(
                out,
                "{}",
                json!({"established": false, "failure": {"error": format!("{e:#}")}})
            )?;
            return Ok(1);
        }
    };
    let socks = Sockets::bind(local, config.ike_port, config.natt_port)
        .with_context(|| format!("binding {local} ports 500 and 4500"))?;
    let mut driver = Driver::new(Endpoint::new(None, Box::new(SystemRng::default())), socks)?;
    let mut report = initiate(
        &mut driver,
        peer,
        config,
        Duration::from_secs_f64(args.timeout),
    )?;
    if let (true, Some(sa)) = (report.ike.is_some(), report.sa) {
        report.deleted = delete(&mut driver, sa, Duration::from_secs(3))?;
    }
    writeln!(out, "{}", report.to_json())?;
    Ok(if report.established() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_and_cidr_parsing() {
        assert_eq!(
            parse_peer("192.0.2.1").unwrap(),
            "192.0.2.1:500".parse().unwrap()
        );
        assert_eq!(
            parse_peer("192.0.2.1:4500").unwrap(),
            "192.0.2.1:4500".parse().unwrap()
        );
        assert_eq!(
            parse_peer("[2001:db8::1]:500").unwrap(),
            "[2001:db8::1]:500".parse().unwrap()
        );
        assert_eq!(
            parse_peer("2001:db8::1").unwrap(),
            "[2001:db8::1]:500".parse().unwrap()
        );
        assert!(parse_peer("nonsense").is_err());
        let t = parse_cidr("10.0.0.0/8").unwrap();
        assert_eq!(t.end_addr, "10.255.255.255".parse::<IpAddr>().unwrap());
        assert!(parse_cidr("10.0.0.0/33").is_err());
    }

    #[test]
    fn loopback_exchange_between_two_drivers() {
        // Ours against ours over real UDP sockets on 127.0.0.2 / 127.0.0.3, unprivileged
        // ports so the test needs no root.
        let (li, lr): (IpAddr, IpAddr) =
            ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
        let mk = |id: &str, peer: &str, local: IpAddr, remote: IpAddr| {
            let mut c = Config::psk(id, Some(peer), b"loopback secret");
            c.ike_proposals =
                vec![Proposal::parse("aes128gcm16-prfsha256-x25519", ProtocolId::IKE).unwrap()];
            c.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP).unwrap()];
            c.ts_local = vec![TrafficSelector::prefix(local, 32)];
            c.ts_remote = vec![TrafficSelector::prefix(remote, 32)];
            (c.ike_port, c.natt_port) = (15500, 14500);
            c
        };
        let rcfg = mk("r.example", "i.example", lr, li);
        let icfg = mk("i.example", "r.example", li, lr);
        let mut r = Driver::new(
            Endpoint::new(Some(rcfg), Box::new(SystemRng::default())),
            Sockets::bind(lr, 15500, 14500).unwrap(),
        )
        .unwrap();
        let mut i = Driver::new(
            Endpoint::new(None, Box::new(SystemRng::default())),
            Sockets::bind(li, 15500, 14500).unwrap(),
        )
        .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let responder = std::thread::spawn(move || {
            let mut ev = Vec::new();
            while !s2.load(Ordering::Relaxed) {
                if let Some(e) = r
                    .next_event(Instant::now() + Duration::from_millis(50))
                    .unwrap()
                {
                    ev.push(e);
                }
            }
            ev
        });
        let rep = initiate(
            &mut i,
            SocketAddr::new(lr, 15500),
            icfg,
            Duration::from_secs(5),
        )
        .unwrap();
        assert!(rep.established(), "{}", rep.to_json());
        assert_eq!(rep.ike.as_ref().unwrap().remote.port(), 14500);
        assert!(delete(&mut i, rep.sa.unwrap(), Duration::from_secs(2)).unwrap());
        stop.store(true, Ordering::Relaxed);
        let ev = responder.join().unwrap();
        assert!(ev.iter().any(|e| matches!(e, Event::ChildSaUp { .. })));
        assert!(ev.iter().any(|e| matches!(e, Event::IkeSaDown { .. })));
        let j = rep.to_json();
        assert_eq!(j["ike_proposal"], "aes128gcm16-prfsha256-x25519");
        assert_eq!(j["mode"], "tunnel");
    }
}
