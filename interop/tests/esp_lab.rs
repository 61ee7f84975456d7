//! Two of our ESP endpoints (`dsmip-esp-fwd`) with static keys in the namespace lab:
//! mobile node, home agent, correspondent. Ping and an 8 MB TCP transfer from the mobile
//! node's inner address to the correspondent, checked byte for byte, with the forwarders'
//! own counters proving the traffic went through ESP. Needs root, iproute2 and ping
//! (iputils-ping).

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use interop::esp_fwd::lab_topology::{self, CN, MN_INNER};
use interop::lab::{require_tool, wait_until, Lab};

fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> std::thread::JoinHandle<Result<T>> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
}

/// The rx packet count in the last `--stats` line of a forwarder log.
fn rx_packets(log: &str) -> u64 {
    log.lines()
        .rev()
        .find_map(|l| l.split(", rx ").nth(1)?.split(' ').next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
fn ping_and_tcp_through_our_esp_tunnel() -> Result<()> {
    ping_and_tcp(&[])
}

/// The fast path of the throughput benchmark: TUN offloads (userspace TCP segmentation),
/// UDP GSO and GRO. The byte-for-byte check covers the segmentation.
#[test]
fn ping_and_tcp_with_offloads_gso_and_gro() -> Result<()> {
    ping_and_tcp(&["--tun-offload", "--gso", "--gro"])
}

/// RFC 5555 §5.2.2 behind a real NAT: the home agent's endpoint learns the NAT's address
/// and port from authenticated ESP and answers there; keepalives flow meanwhile.
#[test]
fn ping_and_tcp_through_a_nat() -> Result<()> {
    require_tool("nft", "nftables")?;
    let mut lab = Lab::new("espnat")?;
    let t = lab_topology::build_nat(&mut lab)?;
    let flags = ["--keepalive", "1", "--tun-offload", "--gso", "--gro"];
    ping_and_tcp_in(lab, t, &flags, |log| {
        // The home agent answers the NAT's public address, not the node's own.
        assert!(
            log.contains("peer 198.51.100.2:"),
            "home agent's peer: {log}"
        );
    })
}

fn ping_and_tcp(flags: &[&str]) -> Result<()> {
    let mut lab = Lab::new("esp")?;
    let t = lab_topology::build(&mut lab, 1500)?;
    ping_and_tcp_in(lab, t, flags, |_| {})
}

fn ping_and_tcp_in(
    mut lab: Lab,
    mut t: lab_topology::Topology,
    flags: &[&str],
    check_ha_log: impl Fn(&str),
) -> Result<()> {
    require_tool("ping", "iputils-ping")?;
    let fwd = std::path::PathBuf::from(env!("CARGO_BIN_EXE_dsmip-esp-fwd"));
    lab_topology::start_ours(&mut lab, &mut t, &fwd, 1400, flags)?;

    // The first echo may be lost while the home agent's neighbour entry for the
    // correspondent resolves; the tunnel is judged on the five after it.
    let _ = lab.run(&t.mn, &["ping", "-c", "1", "-W", "2", "-I", MN_INNER, CN]);
    let out = lab.run(
        &t.mn,
        &[
            "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", MN_INNER, CN,
        ],
    )?;
    assert!(out.contains("5 received"), "ping through the tunnel: {out}");

    // 8 MB of a pattern that is not periodic on any short scale.
    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let listener = in_ns(&t.cn, || Ok(TcpListener::bind((CN, 5001))?))
        .join()
        .unwrap()?;
    let server = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut s, peer) = listener.accept()?;
        assert_eq!(
            peer.ip().to_string(),
            MN_INNER,
            "the correspondent sees the inner address"
        );
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let sent = data.clone();
    in_ns(&t.mn, move || {
        let mut s =
            TcpStream::connect_timeout(&format!("{CN}:5001").parse()?, Duration::from_secs(5))?;
        s.write_all(&sent)?;
        Ok(())
    })
    .join()
    .unwrap()?;
    let got = server.join().unwrap()?;
    assert_eq!(got.len(), data.len(), "bytes received");
    assert!(got == data, "the transfer arrived intact");

    // The home agent's endpoint decrypted at least the 8 MB in full-size packets.
    let ha_log = lab.dir().join("fwd-ha.log");
    let ok = wait_until(Duration::from_secs(3), || {
        rx_packets(&std::fs::read_to_string(&ha_log).unwrap_or_default()) > (8 << 20) / 1400
    });
    let log = std::fs::read_to_string(&ha_log).unwrap_or_default();
    assert!(ok, "home agent endpoint counters: {log}");
    check_ha_log(&log);
    assert!(lab.alive(t.mn_pid.unwrap()) && lab.alive(t.ha_pid.unwrap()));
    Ok(())
}
