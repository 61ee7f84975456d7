//! Our ESP data plane against strongSwan's libipsec, keyed by our IKE engine: the IKE
//! engine (`ike`, driven by `interop::ike_probe`) negotiates a tunnel-mode CHILD_SA with
//! charon, then `interop::esp_fwd` carries traffic with those keys over the same UDP 4500
//! socket (RFC 3948: IKE behind the non-ESP marker, ESP beside it). Ping and an 8 MB TCP
//! transfer from the mobile node's inner address to the correspondent behind charon,
//! checked byte for byte; charon's own CHILD_SA counters show it decrypted our ESP.
//! Needs root, iproute2, iputils-ping and the strongSwan packages of the lab.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::{Context, Result};
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{Config, Endpoint};
use ike::wire::ProtocolId;
use interop::esp_fwd::lab_topology::{self, CN, HA_OUTER, MN_INNER, MN_OUTER};
use interop::esp_fwd::{spawn, Options};
use interop::ike_probe::{initiate, parse_cidr, Driver, Sockets};
use interop::lab::{require_tool, Charon, Lab};
use mipsec::esp::{InboundSa, OutboundSa, SaConfig, Transform};
use mipsec::io::tun::Tun;
use mipsec::io::udp::BatchUdp;

const PSK: &str = "esp-interop-psk-0123456789";

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("namespace thread panicked"))?
}

fn charon_conf() -> String {
    format!(
        "connections {{\n  fromours {{\n    version = 2\n    proposals = aes128gcm16-prfsha256-x25519\n    unique = never\n    local {{\n      auth = psk\n      id = ha.example.org\n    }}\n    remote {{\n      auth = psk\n      id = mn@example.org\n    }}\n    children {{\n      net {{\n        local_ts = 192.0.2.0/24\n        remote_ts = {MN_INNER}/32\n        esp_proposals = aes128gcm16\n        mode = tunnel\n      }}\n    }}\n  }}\n}}\nsecrets {{\n  ike-1 {{\n    id-1 = ha.example.org\n    id-2 = mn@example.org\n    secret = \"{PSK}\"\n  }}\n}}\n"
    )
}

fn keymat(enc: &[u8], auth: &[u8]) -> Vec<u8> {
    let mut k = enc.to_vec();
    k.extend_from_slice(auth);
    k
}

#[test]
fn our_esp_with_keys_from_our_ike_against_strongswan_libipsec() -> Result<()> {
    require_tool("ping", "iputils-ping")?;
    let mut lab = Lab::new("espsw")?;
    let t = lab_topology::build(&mut lab, 1500)?;
    let charon = Charon::start(&mut lab, &t.ha, &charon_conf())?;

    // TUN device and IKE sockets inside the mobile node's namespace.
    let mn_ip: IpAddr = MN_OUTER.parse()?;
    let (tun, socks) = in_ns(&t.mn, move || {
        let tun = Tun::create("dsm0")?;
        tun.set_mtu(1400)?;
        tun.add_address(MN_INNER.parse()?, 32)?;
        tun.up()?;
        Ok((tun, Sockets::bind(mn_ip, 500, 4500)?))
    })?;
    let natt = socks.natt.try_clone()?;

    let mut cfg = Config::psk("mn@example.org", Some("ha.example.org"), PSK.as_bytes());
    cfg.ike_proposals = vec![Proposal::parse(
        "aes128gcm16-prfsha256-x25519",
        ProtocolId::IKE,
    )?];
    cfg.esp_proposals = vec![Proposal::parse("aes128gcm16", ProtocolId::ESP)?];
    cfg.ts_local = vec![parse_cidr(&format!("{MN_INNER}/32"))?];
    cfg.ts_remote = vec![parse_cidr("192.0.2.0/24")?];
    cfg.retransmit_timeout = Duration::from_millis(500);
    let ha_ike = SocketAddr::new(HA_OUTER.parse()?, 500);
    let mut driver = Driver::new(Endpoint::new(None, Box::new(SystemRng::default())), socks)?;
    let rep = initiate(&mut driver, ha_ike, cfg, Duration::from_secs(10))?;
    assert!(
        rep.established(),
        "{}\ncharon log:\n{}",
        rep.to_json(),
        charon.log()
    );
    let child = rep.child.clone().context("no CHILD_SA")?;
    // The IKE driver stops reading port 4500; the data plane takes the socket over.
    drop(driver);
    natt.set_read_timeout(None)?;

    let transform = Transform::from_name(&child.proposal.name()).context("ESP transform")?;
    assert_eq!(transform, Transform::AesGcm128);
    let out_sa = OutboundSa::new(
        SaConfig::new(child.spi_out, transform),
        &keymat(child.keys.enc_out.expose(), child.keys.auth_out.expose()),
    )?;
    let in_sa = InboundSa::new(
        SaConfig::new(child.spi_in, transform),
        &keymat(child.keys.enc_in.expose(), child.keys.auth_in.expose()),
    )?;
    let peer = SocketAddr::new(HA_OUTER.parse()?, 4500);
    let opts = Options {
        mtu: 1400,
        gso: false,
        tun_gro: false,
    };
    let ep = spawn(
        out_sa,
        in_sa,
        tun,
        BatchUdp::from_std(natt),
        Some(peer),
        opts,
    );
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

    let _ = lab.run(&t.mn, &["ping", "-c", "1", "-W", "2", "-I", MN_INNER, CN]);
    let out = lab
        .run(
            &t.mn,
            &[
                "ping", "-c", "5", "-i", "0.2", "-W", "2", "-I", MN_INNER, CN,
            ],
        )
        .with_context(|| {
            format!(
                "ping; ours: {}\ncharon log:\n{}",
                ep.stats.line(),
                charon.log()
            )
        })?;
    assert!(out.contains("5 received"), "ping through charon: {out}");

    let data: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let listener = in_ns(&t.cn, || Ok(TcpListener::bind((CN, 5002))?))?;
    let server = std::thread::spawn(move || -> Result<Vec<u8>> {
        let (mut s, peer) = listener.accept()?;
        assert_eq!(peer.ip().to_string(), MN_INNER);
        let mut got = Vec::new();
        s.read_to_end(&mut got)?;
        Ok(got)
    });
    let sent = data.clone();
    in_ns(&t.mn, move || {
        let mut s =
            TcpStream::connect_timeout(&format!("{CN}:5002").parse()?, Duration::from_secs(5))?;
        s.write_all(&sent)?;
        Ok(())
    })?;
    let got = server.join().unwrap()?;
    assert_eq!(got.len(), data.len());
    assert!(got == data, "the transfer arrived intact");

    // charon's view of the CHILD_SA: its inbound SPI is our outbound one, and it counted
    // at least the 8 MB we sealed.
    let sas = charon.swanctl(&lab, &["--list-sas", "--raw"])?;
    let needle = format!("spi-in={:08x}", child.spi_out);
    assert!(sas.contains(&needle), "{needle} in {sas}");
    let bytes_in: u64 = sas
        .split("bytes-in=")
        .nth(1)
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(bytes_in >= 8 << 20, "charon bytes-in {bytes_in}: {sas}");
    Ok(())
}
