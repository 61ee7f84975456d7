//! IKE_SA + first CHILD_SA establishments per second, PSK, x25519, AES-GCM-128 (IKE
//! `aes128gcm16-prfsha256-x25519`, ESP `aes128gcm16`), all in one run on this machine:
//!
//! 1. ours against ours in one process, no IO (two `Endpoint`s, datagrams passed by hand);
//! 2. ours against ours over loopback UDP (two drivers, real sockets, one thread each,
//!    at most 32 exchanges in flight);
//! 3. ours (initiator, at most 32 in flight) against strongSwan's charon in the lab;
//! 4. charon against charon in the lab (VICI `initiate` with timeout -1, N times, then
//!    poll the responder until N SAs have a CHILD_SA: the NOTES.md method).
//!
//! Prints each figure and the ratios of (1) and (2) to (4). Needs root and strongSwan for
//! (3) and (4); it fails loudly without them. Run: `cargo bench -p interop --bench ike`.
//! `IKE_BENCH_N` sets the number of SAs per batch (default 300).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint, Event};
use ike::wire::{ProtocolId, TrafficSelector};
use interop::ike_probe::{Driver, Sockets};
use interop::lab::{wait_until, Charon, Lab};

const IKE: &str = "aes128gcm16-prfsha256-x25519";
const ESP: &str = "aes128gcm16";
const PSK: &str = "bench-psk-0123456789abcdef";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(local_id: &str, remote_id: &str, local: IpAddr, remote: IpAddr) -> Config {
    let mut c = Config::psk(local_id, Some(remote_id), PSK.as_bytes());
    c.ike_proposals = vec![Proposal::parse(IKE, ProtocolId::IKE).unwrap()];
    c.esp_proposals = vec![Proposal::parse(ESP, ProtocolId::ESP).unwrap()];
    c.ts_local = vec![TrafficSelector::prefix(local, 32)];
    c.ts_remote = vec![TrafficSelector::prefix(remote, 32)];
    c.cookie_threshold = usize::MAX;
    c.half_open_max = usize::MAX;
    c
}

/// (1) Both engines in this thread; returns SAs per second.
fn ours_in_process(n: usize) -> f64 {
    let (a, b) = (ip("192.0.2.2"), ip("192.0.2.1"));
    let mut i = Endpoint::new(None, Box::new(SystemRng::default()));
    let mut r = Endpoint::new(Some(cfg("r", "i", b, a)), Box::new(SystemRng::default()));
    let start = Instant::now();
    let mut up = 0;
    for _ in 0..n {
        let now = Instant::now();
        i.connect(
            now,
            SocketAddr::new(a, 500),
            SocketAddr::new(b, 500),
            cfg("i", "r", a, b),
        )
        .unwrap();
        loop {
            let mut moved = false;
            while let Some(t) = i.poll_transmit() {
                moved = true;
                r.handle_datagram(now, t.remote, SocketAddr::new(a, t.local_port), &t.data);
            }
            while let Some(t) = r.poll_transmit() {
                moved = true;
                i.handle_datagram(
                    now,
                    SocketAddr::new(a, t.remote.port()),
                    SocketAddr::new(b, t.local_port),
                    &t.data,
                );
            }
            if !moved {
                break;
            }
        }
        while let Some(e) = i.poll_event() {
            up += matches!(e, Event::ChildSaUp { .. }) as usize;
        }
        while r.poll_event().is_some() {}
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(up, n, "every exchange in process must complete");
    n as f64 / secs
}

/// (2) Two drivers over loopback UDP, a batch of n SAs in flight at once.
fn ours_loopback(n: usize) -> Result<f64> {
    let (a, b) = (ip("127.0.0.2"), ip("127.0.0.3"));
    let (ike_port, natt_port) = (16500, 16450);
    let mk = |c: Config| Config {
        ike_port,
        natt_port,
        ..c
    };
    let mut r = Driver::new(
        Endpoint::new(
            Some(mk(cfg("r", "i", b, a))),
            Box::new(SystemRng::default()),
        ),
        Sockets::bind(b, ike_port, natt_port)?,
    )?;
    let mut i = Driver::new(
        Endpoint::new(None, Box::new(SystemRng::default())),
        Sockets::bind(a, ike_port, natt_port)?,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let server = std::thread::spawn(move || {
        while !s2.load(Ordering::Relaxed) {
            let _ = r.next_event(Instant::now() + Duration::from_millis(20));
        }
    });
    let peer = SocketAddr::new(b, ike_port);
    let start = Instant::now();
    run_window(
        &mut i,
        n,
        |d| {
            d.endpoint
                .connect(Instant::now(), d.local(), peer, mk(cfg("i", "r", a, b)))
                .map(|_| ())
        },
        "loopback",
    )?;
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    Ok(n as f64 / secs)
}

/// At most this many exchanges in flight: a whole batch at once overflows the UDP receive
/// buffers and turns the figure into a measure of retransmission timers.
const WINDOW: usize = 32;

/// Establishes `n` SAs with at most [`WINDOW`] in flight; `start` begins one more.
fn run_window(
    d: &mut Driver,
    n: usize,
    mut start: impl FnMut(&mut Driver) -> ike::Result<()>,
    what: &str,
) -> Result<()> {
    let (mut started, mut up) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(120);
    while up < n {
        while started < n && started - up < WINDOW {
            start(d)?;
            started += 1;
        }
        match d.next_event(deadline)? {
            Some(Event::ChildSaUp { .. }) => up += 1,
            Some(Event::Failed { reason, .. }) => bail!("{what}: SA failed: {reason:?}"),
            Some(Event::ChildSaFailed { notify, .. }) => {
                bail!("{what}: CHILD_SA failed: notify {notify}")
            }
            Some(_) => {}
            None => bail!("{what}: only {up} of {n} SAs within 120 s"),
        }
    }
    Ok(())
}

/// Binds sockets inside a namespace from a thread that entered it.
fn bind_in(ns: &str, local: IpAddr) -> Result<Sockets> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || -> Result<Sockets> {
        let f = std::fs::File::open(&path)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        Ok(Sockets::bind(local, 500, 4500)?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("bind thread panicked"))?
}

/// A charon with the NOTES.md benchmark settings added to its strongswan.conf.
fn bench_charon(lab: &mut Lab, ns: &str, conf: &str) -> Result<Charon> {
    let c = Charon::prepare(lab, ns)?;
    let path = c
        .swanctl_dir()
        .parent()
        .context("charon dir")?
        .join("strongswan.conf");
    let text = std::fs::read_to_string(&path)?;
    let extra = "charon {\n    dos_protection = no\n    init_limit_half_open = 0\n    reuse_ikesa = no\n    make_before_break = yes\n";
    std::fs::write(&path, text.replacen("charon {\n", extra, 1))?;
    c.start_prepared(lab, conf)
}

fn responder_conf() -> String {
    format!(
        "connections {{\n  bench {{\n    proposals = {IKE}\n    unique = never\n    local {{\n      auth = psk\n      id = r\n    }}\n    remote {{\n      auth = psk\n      id = i\n    }}\n    children {{\n      net {{\n        local_ts = 10.99.0.0/24\n        remote_ts = 10.88.0.0/24\n        esp_proposals = {ESP}\n      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-1 {{\n    id-1 = r\n    id-2 = i\n    secret = \"{PSK}\"\n  }}\n}}\n"
    )
}

fn initiator_conf(peer: IpAddr) -> String {
    format!(
        "connections {{\n  bench {{\n    remote_addrs = {peer}\n    proposals = {IKE}\n    local {{\n      auth = psk\n      id = i\n    }}\n    remote {{\n      auth = psk\n      id = r\n    }}\n    children {{\n      net {{\n        local_ts = 10.88.0.0/24\n        remote_ts = 10.99.0.0/24\n        esp_proposals = {ESP}\n      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-1 {{\n    id-1 = r\n    id-2 = i\n    secret = \"{PSK}\"\n  }}\n}}\n"
    )
}

fn lab() -> Result<(Lab, String, String)> {
    let mut lab = Lab::new("ikebench")?;
    let near = lab.ns("near")?;
    let far = lab.ns("far")?;
    lab.veth(
        &near,
        "eth0",
        &["192.0.2.2/24"],
        &far,
        "eth0",
        &["192.0.2.1/24"],
    )?;
    lab.run(&near, &["ip", "addr", "add", "10.88.0.1/32", "dev", "lo"])?;
    lab.run(&far, &["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"])?;
    Ok((lab, near, far))
}

/// Number of IKE SAs with an installed CHILD_SA in charon's --list-sas --raw.
fn installed(charon: &Charon, lab: &Lab) -> usize {
    let s = charon
        .swanctl(lab, &["--list-sas", "--raw"])
        .unwrap_or_default();
    s.lines()
        .filter(|l| l.contains("state=ESTABLISHED") && l.contains("state=INSTALLED"))
        .count()
}

/// (3) Our initiator in `near` against charon in `far`.
fn ours_vs_strongswan(n: usize) -> Result<f64> {
    let (mut lab, near, far) = lab()?;
    let _charon = bench_charon(&mut lab, &far, &responder_conf())?;
    let mut d = Driver::new(
        Endpoint::new(None, Box::new(SystemRng::default())),
        bind_in(&near, ip("192.0.2.2"))?,
    )?;
    let mut c = cfg("i", "r", ip("10.88.0.1"), ip("10.99.0.1"));
    c.ts_local = vec![TrafficSelector::prefix(ip("10.88.0.0"), 24)];
    c.ts_remote = vec![TrafficSelector::prefix(ip("10.99.0.0"), 24)];
    c.retransmit_timeout = Duration::from_secs(2);
    let peer = SocketAddr::new(ip("192.0.2.1"), 500);
    let start = Instant::now();
    run_window(
        &mut d,
        n,
        |d| {
            d.endpoint
                .connect(Instant::now(), d.local(), peer, c.clone())
                .map(|_| ())
        },
        "ours vs strongSwan",
    )?;
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// One VICI command (framing per the lab README): returns the response body.
fn vici(sock: &mut UnixStream, cmd: &str, kv: &[(&str, &str)]) -> Result<Vec<u8>> {
    let mut body = vec![0u8, cmd.len() as u8];
    body.extend_from_slice(cmd.as_bytes());
    for (k, v) in kv {
        body.push(3);
        body.push(k.len() as u8);
        body.extend_from_slice(k.as_bytes());
        body.extend_from_slice(&(v.len() as u16).to_be_bytes());
        body.extend_from_slice(v.as_bytes());
    }
    sock.write_all(&(body.len() as u32).to_be_bytes())?;
    sock.write_all(&body)?;
    let mut len = [0u8; 4];
    sock.read_exact(&mut len)?;
    let mut resp = vec![0u8; u32::from_be_bytes(len) as usize];
    sock.read_exact(&mut resp)?;
    if resp.first() != Some(&1) {
        bail!("VICI {cmd}: unexpected packet type {:?}", resp.first());
    }
    Ok(resp)
}

/// (4) charon against charon.
fn strongswan_vs_strongswan(n: usize) -> Result<f64> {
    let (mut lab, near, far) = lab()?;
    let resp = bench_charon(&mut lab, &far, &responder_conf())?;
    let init = bench_charon(&mut lab, &near, &initiator_conf(ip("192.0.2.1")))?;
    let mut sock = UnixStream::connect(init.vici_path()).context("VICI socket")?;
    let start = Instant::now();
    for _ in 0..n {
        let r = vici(
            &mut sock,
            "initiate",
            &[("child", "net"), ("timeout", "-1"), ("init-limits", "no")],
        )?;
        if !String::from_utf8_lossy(&r).contains("yes") {
            bail!("VICI initiate refused: {}", String::from_utf8_lossy(&r));
        }
    }
    let done = wait_until(Duration::from_secs(120), || installed(&resp, &lab) >= n);
    let secs = start.elapsed().as_secs_f64();
    if !done {
        bail!(
            "strongSwan vs strongSwan: only {} of {n} within 120 s",
            installed(&resp, &lab)
        );
    }
    Ok(n as f64 / secs)
}

fn main() -> Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // cargo's bench discovery
    }
    let n: usize = std::env::var("IKE_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300);
    println!("IKE_SA + first CHILD_SA setups per second, PSK, IKE {IKE}, ESP {ESP}, N = {n}");
    let a = ours_in_process(n);
    println!("  ours vs ours, one process, no IO:   {a:9.0} /s");
    let b = ours_loopback(n)?;
    println!("  ours vs ours, loopback UDP:          {b:9.0} /s");
    let c = ours_vs_strongswan(n)?;
    println!("  ours vs strongSwan (lab):            {c:9.0} /s");
    let d = strongswan_vs_strongswan(n)?;
    println!("  strongSwan vs strongSwan (lab):      {d:9.0} /s  (baseline)");
    println!(
        "  ratio ours/ours no-IO to strongSwan/strongSwan:   {:6.1}x (target >= 3)",
        a / d
    );
    println!(
        "  ratio ours/ours loopback to strongSwan/strongSwan: {:6.1}x (target >= 3)",
        b / d
    );
    Ok(())
}
