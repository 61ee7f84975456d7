//! Interop: the native IKEv2 engine (crate `ike`) against strongSwan's charon 5.9.8 with
//! kernel-libipsec, each in its own network namespace, with and without an nftables NAT,
//! both directions, PSK, for the three IKE proposals of issue 5.
//!
//! Our side runs in this process: a thread enters the namespace (setns) only to bind the
//! sockets, which stay in that namespace. strongSwan's own view is read with
//! `swanctl --list-sas --raw`. Transport mode is not tried here: kernel-libipsec refuses
//! transport-mode CHILD_SAs (`IPsec SA: unsupported mode`), so that is tested between two
//! instances of our engine (ike/tests/exchange.rs). Needs root and the Debian packages
//! strongswan-charon, strongswan-swanctl, libcharon-extra-plugins,
//! libstrongswan-standard-plugins, libstrongswan-extra-plugins, iproute2, nftables.

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ike::crypto::SystemRng;
use ike::proposal::Proposal;
use ike::sa::{ChildPolicy, Config, Endpoint, Event};
use ike::wire::{ProtocolId, TrafficSelector};
use interop::ike_probe::{delete, initiate, Driver, Sockets};
use interop::lab::{wait_until, Charon, Lab};

const PSK: &str = "interop-psk-0123456789";
const SUITES: [(&str, &str, &str, &str); 3] = [
    // (IKE proposal, ESP proposal, strongSwan's IKE algorithms in --raw, ESP encr-alg)
    ("aes256gcm16-prfsha384-ecp384", "aes256gcm16", "encr-alg=AES_GCM_16 encr-keysize=256 prf-alg=PRF_HMAC_SHA2_384 dh-group=ECP_384", "encr-alg=AES_GCM_16"),
    ("chacha20poly1305-prfsha256-x25519", "chacha20poly1305", "encr-alg=CHACHA20_POLY1305 prf-alg=PRF_HMAC_SHA2_256 dh-group=CURVE_25519", "encr-alg=CHACHA20_POLY1305"),
    ("aes128-sha256-modp3072", "aes256-sha256", "encr-alg=AES_CBC encr-keysize=128 integ-alg=HMAC_SHA2_256_128 prf-alg=PRF_HMAC_SHA2_256 dh-group=MODP_3072", "encr-alg=AES_CBC encr-keysize=256 integ-alg=HMAC_SHA2_256_128"),
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Binds our IKE sockets inside namespace `ns`.
fn bind_in(ns: &str, local: IpAddr) -> Result<Sockets> {
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || -> Result<Sockets> {
        let f = File::open(&path).with_context(|| format!("opening {path}"))?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).context("setns")?;
        Ok(Sockets::bind(local, 500, 4500)?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("bind thread panicked"))?
}

/// Two namespaces, or three with a masquerading NAT between them. Returns (lab, ours,
/// theirs, our address, their address, the address they see us at).
struct Topo {
    lab: Lab,
    near: String,
    far: String,
    near_ip: IpAddr,
    far_ip: IpAddr,
    near_seen_as: IpAddr,
}

fn topo(tag: &str, nat: bool) -> Result<Topo> {
    let mut lab = Lab::new(tag)?;
    let near = lab.ns("near")?;
    let far = lab.ns("far")?;
    // An address inside each side's traffic selector: libipsec installs its route into the
    // TUN device with such a source address, and fails without one.
    lab.run(&near, &["ip", "addr", "add", "10.88.0.1/32", "dev", "lo"])?;
    lab.run(&far, &["ip", "addr", "add", "10.99.0.1/32", "dev", "lo"])?;
    if !nat {
        lab.veth(
            &near,
            "eth0",
            &["192.0.2.2/24"],
            &far,
            "eth0",
            &["192.0.2.1/24"],
        )?;
        return Ok(Topo {
            lab,
            near,
            far,
            near_ip: ip("192.0.2.2"),
            far_ip: ip("192.0.2.1"),
            near_seen_as: ip("192.0.2.2"),
        });
    }
    let natns = lab.ns("nat")?;
    lab.veth(
        &near,
        "eth0",
        &["10.1.0.2/24"],
        &natns,
        "in0",
        &["10.1.0.1/24"],
    )?;
    lab.veth(
        &natns,
        "out0",
        &["198.51.100.2/24"],
        &far,
        "eth0",
        &["198.51.100.1/24"],
    )?;
    lab.run(&near, &["ip", "route", "add", "default", "via", "10.1.0.1"])?;
    lab.masquerade(&natns, "out0")?;
    Ok(Topo {
        lab,
        near,
        far,
        near_ip: ip("10.1.0.2"),
        far_ip: ip("198.51.100.1"),
        near_seen_as: ip("198.51.100.2"),
    })
}

fn our_config(
    local_id: &str,
    remote_id: &str,
    ike: &str,
    esp: &str,
    ts_local: &str,
    ts_remote: &str,
) -> Config {
    let mut c = Config::psk(local_id, Some(remote_id), PSK.as_bytes());
    c.ike_proposals = vec![Proposal::parse(ike, ProtocolId::IKE).unwrap()];
    c.esp_proposals = vec![Proposal::parse(esp, ProtocolId::ESP).unwrap()];
    c.ts_local = vec![interop::ike_probe::parse_cidr(ts_local).unwrap()];
    c.ts_remote = vec![interop::ike_probe::parse_cidr(ts_remote).unwrap()];
    c.retransmit_timeout = Duration::from_millis(500);
    c
}

fn secrets(a: &str, b: &str) -> String {
    format!("secrets {{\n  ike-1 {{\n    id-1 = {a}\n    id-2 = {b}\n    secret = \"{PSK}\"\n  }}\n}}\n")
}

/// charon as responder: one connection accepting all three suites.
fn responder_conf() -> String {
    let ike: Vec<&str> = SUITES.iter().map(|s| s.0).collect();
    let esp: Vec<&str> = SUITES.iter().map(|s| s.1).collect();
    format!(
        "connections {{\n  fromours {{\n    version = 2\n    proposals = {}\n    unique = never\n    local {{\n      auth = psk\n      id = ha.example.org\n    }}\n    remote {{\n      auth = psk\n      id = mn@example.org\n    }}\n    children {{\n      net {{\n        local_ts = 10.99.0.0/24\n        remote_ts = 10.88.0.0/24\n        esp_proposals = {}\n      }}\n    }}\n  }}\n}}\n{}",
        ike.join(", "),
        esp.join(", "),
        secrets("ha.example.org", "mn@example.org")
    )
}

/// `swanctl --list-sas --raw` of charon: one line per SA.
fn list_sas(charon: &Charon, lab: &Lab) -> String {
    charon
        .swanctl(lab, &["--list-sas", "--raw"])
        .unwrap_or_default()
}

fn check_ours_initiates(nat: bool) -> Result<()> {
    let t = topo(if nat { "ikeinat" } else { "ikei" }, nat)?;
    let mut lab = t.lab;
    let charon = Charon::start(&mut lab, &t.far, &responder_conf())?;
    let socks = bind_in(&t.near, t.near_ip)?;
    let mut driver = Driver::new(Endpoint::new(None, Box::new(SystemRng::default())), socks)?;
    for (ike, esp, their_ike, their_esp) in SUITES {
        let c = our_config(
            "mn@example.org",
            "ha.example.org",
            ike,
            esp,
            "10.88.0.0/24",
            "10.99.0.0/24",
        );
        let rep = initiate(
            &mut driver,
            SocketAddr::new(t.far_ip, 500),
            c,
            Duration::from_secs(10),
        )?;
        assert!(
            rep.established(),
            "{ike}: {}\ncharon log:\n{}",
            rep.to_json(),
            charon.log()
        );
        let info = rep.ike.clone().unwrap();
        let child = rep.child.clone().unwrap();
        assert_eq!(info.proposal.name(), ike);
        assert_eq!(child.proposal.name(), esp);
        // RFC 5555 §5 / RFC 7296 §2.23: IKE_AUTH and later on 4500.
        assert_eq!(info.remote, SocketAddr::new(t.far_ip, 4500));
        assert_eq!(info.nat_local, nat, "our NAT detection");
        let sas = list_sas(&charon, &lab);
        let line = sas
            .lines()
            .find(|l| l.contains(&format!("initiator-spi={:016x}", info.spi_i)))
            .with_context(|| format!("our SA in charon's list-sas: {sas}"))?;
        assert!(line.contains("state=ESTABLISHED"), "{line}");
        assert!(
            line.contains(their_ike),
            "{ike}: expected {their_ike} in {line}"
        );
        assert!(
            line.contains(their_esp),
            "{esp}: expected {their_esp} in {line}"
        );
        assert!(
            line.contains(&format!("responder-spi={:016x}", info.spi_r)),
            "{line}"
        );
        assert!(
            line.contains(&format!("spi-in={:08x}", child.spi_out)),
            "{line}"
        );
        assert!(
            line.contains(&format!("spi-out={:08x}", child.spi_in)),
            "{line}"
        );
        assert!(
            line.contains("local-port=4500") && line.contains("remote-port=4500"),
            "{line}"
        );
        assert!(
            line.contains(&format!("remote-host={}", t.near_seen_as)),
            "{line}"
        );
        assert!(
            line.contains("local-ts=[10.99.0.0/24]") && line.contains("remote-ts=[10.88.0.0/24]"),
            "{line}"
        );
        if nat {
            assert!(
                line.contains("nat-remote=yes"),
                "charon must see us behind the NAT: {line}"
            );
        }
        // A second CHILD_SA through CREATE_CHILD_SA (RFC 7296 §1.3.1).
        let policy = ChildPolicy {
            esp_proposals: vec![Proposal::parse(esp, ProtocolId::ESP).unwrap()],
            ts_local: vec![TrafficSelector::prefix(ip("10.88.0.0"), 24)],
            ts_remote: vec![TrafficSelector::prefix(ip("10.99.0.0"), 24)],
            transport: false,
        };
        let sa = rep.sa.unwrap();
        driver.endpoint.create_child(Instant::now(), sa, policy)?;
        let second = driver.next_event(Instant::now() + Duration::from_secs(10))?;
        let Some(Event::ChildSaUp { child: second, .. }) = second else {
            panic!(
                "{ike}: CREATE_CHILD_SA: {second:?}\ncharon log:\n{}",
                charon.log()
            );
        };
        let sas = list_sas(&charon, &lab);
        assert!(
            sas.contains(&format!("spi-in={:08x}", second.spi_out)),
            "second CHILD_SA in charon: {sas}"
        );
        assert!(
            delete(&mut driver, sa, Duration::from_secs(5))?,
            "clean delete"
        );
        let gone = wait_until(Duration::from_secs(3), || {
            !list_sas(&charon, &lab).contains(&format!("{:016x}", info.spi_i))
        });
        assert!(gone, "charon dropped the SA after our Delete");
    }
    Ok(())
}

#[test]
fn ours_initiates_strongswan_responds_psk_no_nat() {
    check_ours_initiates(false).unwrap();
}

#[test]
fn ours_initiates_strongswan_responds_psk_through_nat() {
    check_ours_initiates(true).unwrap();
}

/// charon as initiator: one connection per suite towards our responder.
fn initiator_conf(ours: IpAddr) -> String {
    let mut s = String::from("connections {\n");
    for (i, (ike, esp, _, _)) in SUITES.iter().enumerate() {
        s += &format!(
            "  c{i} {{\n    version = 2\n    remote_addrs = {ours}\n    proposals = {ike}\n    local {{\n      auth = psk\n      id = mn@example.org\n    }}\n    remote {{\n      auth = psk\n      id = ha.example.org\n    }}\n    children {{\n      net{i} {{\n        local_ts = 10.88.0.0/24\n        remote_ts = 10.99.0.0/24\n        esp_proposals = {esp}\n      }}\n    }}\n  }}\n"
        );
    }
    s + "}\n" + &secrets("mn@example.org", "ha.example.org")
}

fn check_strongswan_initiates(nat: bool) -> Result<()> {
    // Here charon is the mobile node (near, maybe behind the NAT) and we are the home agent.
    let t = topo(if nat { "ikernat" } else { "iker" }, nat)?;
    let mut lab = t.lab;
    let all_ike = SUITES
        .iter()
        .map(|s| Proposal::parse(s.0, ProtocolId::IKE).unwrap())
        .collect();
    let all_esp = SUITES
        .iter()
        .map(|s| Proposal::parse(s.1, ProtocolId::ESP).unwrap())
        .collect();
    let mut cfg = our_config(
        "ha.example.org",
        "mn@example.org",
        SUITES[0].0,
        SUITES[0].1,
        "10.99.0.0/24",
        "10.88.0.0/24",
    );
    cfg.ike_proposals = all_ike;
    cfg.esp_proposals = all_esp;
    let socks = bind_in(&t.far, t.far_ip)?;
    let mut driver = Driver::new(
        Endpoint::new(Some(cfg), Box::new(SystemRng::default())),
        socks,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut ev = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            match driver.next_event(Instant::now() + Duration::from_millis(50)) {
                Ok(Some(e)) => ev.push(e),
                Ok(None) => {}
                Err(e) => panic!("driver: {e}"),
            }
        }
        ev
    });
    let charon = Charon::start(&mut lab, &t.near, &initiator_conf(t.far_ip))?;
    let mut results = Vec::new();
    for i in 0..SUITES.len() {
        let child = format!("net{i}");
        let out = charon.swanctl(&lab, &["--initiate", "--child", &child, "--timeout", "10"]);
        results.push((i, out.map_err(|e| e.to_string()), list_sas(&charon, &lab)));
    }
    stop.store(true, Ordering::Relaxed);
    let events = server
        .join()
        .map_err(|_| anyhow::anyhow!("server thread panicked"))?;
    for (i, out, sas) in &results {
        let (ike, esp, their_ike, their_esp) = SUITES[*i];
        assert!(
            out.is_ok(),
            "{ike}: swanctl --initiate failed: {out:?}\ncharon log:\n{}",
            charon.log()
        );
        let line = sas
            .lines()
            .find(|l| l.contains(&format!("c{i} ")))
            .with_context(|| format!("c{i} in {sas}"))?;
        assert!(
            line.contains("state=ESTABLISHED")
                && line.contains(their_ike)
                && line.contains(their_esp),
            "{line}"
        );
        assert!(
            line.contains("remote-port=4500") && line.contains("local-port=4500"),
            "{line}"
        );
        if nat {
            assert!(
                line.contains("nat-local=yes"),
                "charon behind the NAT must know it: {line}"
            );
        }
        let up: Vec<_> = events
            .iter()
            .filter_map(|e| {
                if let Event::IkeSaUp { info, .. } = e {
                    Some(info)
                } else {
                    None
                }
            })
            .collect();
        let info = up
            .iter()
            .find(|inf| line.contains(&format!("initiator-spi={:016x}", inf.spi_i)))
            .with_context(|| format!("our IkeSaUp for c{i}: {events:?}"))?;
        assert_eq!(info.proposal.name(), ike);
        assert!(!info.initiator);
        assert_eq!(info.remote.ip(), t.near_seen_as);
        assert!(
            info.nat_remote,
            "charon behind NAT, or libipsec faking NAT-D"
        );
        let children: Vec<_> = events
            .iter()
            .filter_map(|e| {
                if let Event::ChildSaUp { child, .. } = e {
                    Some(child)
                } else {
                    None
                }
            })
            .collect();
        let c = children
            .iter()
            .find(|c| line.contains(&format!("spi-out={:08x}", c.spi_in)))
            .with_context(|| format!("our ChildSaUp for c{i}"))?;
        assert_eq!(c.proposal.name(), esp);
        assert_eq!(
            c.ts_local,
            vec![TrafficSelector::prefix(ip("10.99.0.0"), 24)]
        );
        assert!(c.encap.is_some(), "UDP encapsulation ports reported");
    }
    Ok(())
}

#[test]
fn strongswan_initiates_ours_responds_psk_no_nat() {
    check_strongswan_initiates(false).unwrap();
}

#[test]
fn strongswan_initiates_ours_responds_psk_through_nat() {
    check_strongswan_initiates(true).unwrap();
}

// ---- certificates ----------------------------------------------------------------------

/// The test PKI of the `ike` crate (`ike/tests/certs/gen.sh`: valid for a century).
fn pki(name: &str) -> Vec<u8> {
    let p = format!("{}/../ike/tests/certs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Puts `me`'s certificate and key and the CA into charon's swanctl folder.
fn charon_pki(c: &Charon, chain: &str, me: &str) -> Result<()> {
    let d = c.swanctl_dir();
    std::fs::write(d.join("x509ca/ca.pem"), pki(&format!("{chain}-ca.pem")))?;
    std::fs::write(d.join("x509/me.pem"), pki(&format!("{chain}-{me}.pem")))?;
    std::fs::write(d.join("pkcs8/me.key"), pki(&format!("{chain}-{me}.key")))?;
    Ok(())
}

fn cert_conn(
    name: &str,
    remote_addrs: Option<IpAddr>,
    me: &str,
    peer: &str,
    lts: &str,
    rts: &str,
) -> String {
    let addrs = remote_addrs
        .map(|a| format!("    remote_addrs = {a}\n"))
        .unwrap_or_default();
    format!(
        "connections {{\n  {name} {{\n    version = 2\n{addrs}    proposals = aes256gcm16-prfsha384-ecp384\n    unique = never\n    local {{\n      auth = pubkey\n      certs = me.pem\n      id = {me}\n    }}\n    remote {{\n      auth = pubkey\n      id = {peer}\n    }}\n    children {{\n      net {{\n        local_ts = {lts}\n        remote_ts = {rts}\n        esp_proposals = aes256gcm16\n      }}\n    }}\n  }}\n}}\n"
    )
}

fn our_cert_config(
    chain: &str,
    me: &str,
    my_id: &str,
    peer_id: &str,
    lts: &str,
    rts: &str,
) -> Config {
    let mut c = our_config(
        my_id,
        peer_id,
        "aes256gcm16-prfsha384-ecp384",
        "aes256gcm16",
        lts,
        rts,
    );
    let creds = ike::cert::Credentials::from_pem(
        &pki(&format!("{chain}-{me}.pem")),
        &pki(&format!("{chain}-{me}.key")),
        &pki(&format!("{chain}-ca.pem")),
    )
    .unwrap();
    c.auth = ike::sa::AuthConfig::Cert(Arc::new(creds));
    c
}

fn check_certs_ours_initiates(chain: &str, nat: bool) -> Result<()> {
    let t = topo(&format!("c{chain}i{}", nat as u8), nat)?;
    let mut lab = t.lab;
    let c = Charon::prepare(&mut lab, &t.far)?;
    charon_pki(&c, chain, "ha")?;
    let conf = cert_conn(
        "fromours",
        None,
        "ha.example.org",
        "mn@example.org",
        "10.99.0.0/24",
        "10.88.0.0/24",
    );
    let charon = c.start_prepared(&mut lab, &conf)?;
    let mut driver = Driver::new(
        Endpoint::new(None, Box::new(SystemRng::default())),
        bind_in(&t.near, t.near_ip)?,
    )?;
    let cfg = our_cert_config(
        chain,
        "mn",
        "mn@example.org",
        "ha.example.org",
        "10.88.0.0/24",
        "10.99.0.0/24",
    );
    let rep = initiate(
        &mut driver,
        SocketAddr::new(t.far_ip, 500),
        cfg,
        Duration::from_secs(10),
    )?;
    assert!(
        rep.established(),
        "{chain}: {}\ncharon log:\n{}",
        rep.to_json(),
        charon.log()
    );
    let log = charon.log();
    assert!(
        log.contains("authentication of 'mn@example.org' with"),
        "charon verified our signature: {log}"
    );
    let sas = list_sas(&charon, &lab);
    let info = rep.ike.unwrap();
    assert_eq!(info.nat_local, nat, "our NAT detection");
    assert!(
        sas.contains(&format!("initiator-spi={:016x}", info.spi_i))
            && sas.contains("state=ESTABLISHED"),
        "{sas}"
    );
    assert!(delete(
        &mut driver,
        rep.sa.unwrap(),
        Duration::from_secs(5)
    )?);
    Ok(())
}

fn check_certs_strongswan_initiates(chain: &str, nat: bool) -> Result<()> {
    let t = topo(&format!("c{chain}r{}", nat as u8), nat)?;
    let mut lab = t.lab;
    let cfg = our_cert_config(
        chain,
        "ha",
        "ha.example.org",
        "mn@example.org",
        "10.99.0.0/24",
        "10.88.0.0/24",
    );
    let mut driver = Driver::new(
        Endpoint::new(Some(cfg), Box::new(SystemRng::default())),
        bind_in(&t.far, t.far_ip)?,
    )?;
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut ev = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            if let Ok(Some(e)) = driver.next_event(Instant::now() + Duration::from_millis(50)) {
                ev.push(e);
            }
        }
        ev
    });
    let c = Charon::prepare(&mut lab, &t.near)?;
    charon_pki(&c, chain, "mn")?;
    if chain == "rsa" {
        // Make charon sign with RSASSA-PSS (RFC 7427) so that our PSS verification runs.
        let conf = c
            .swanctl_dir()
            .parent()
            .context("charon dir")?
            .join("strongswan.conf");
        let text = std::fs::read_to_string(&conf)?;
        std::fs::write(
            &conf,
            text.replacen("charon {\n", "charon {\n    rsa_pss = yes\n", 1),
        )?;
    }
    let conf = cert_conn(
        "toours",
        Some(t.far_ip),
        "mn@example.org",
        "ha.example.org",
        "10.88.0.0/24",
        "10.99.0.0/24",
    );
    let charon = c.start_prepared(&mut lab, &conf)?;
    let out = charon.swanctl(&lab, &["--initiate", "--child", "net", "--timeout", "10"]);
    let sas = list_sas(&charon, &lab);
    stop.store(true, Ordering::Relaxed);
    let events = server
        .join()
        .map_err(|_| anyhow::anyhow!("server panicked"))?;
    assert!(
        out.is_ok(),
        "{chain}: {out:?}\ncharon log:\n{}",
        charon.log()
    );
    let log = charon.log();
    assert!(
        log.contains("authentication of 'ha.example.org' with"),
        "charon verified our signature"
    );
    if chain == "rsa" {
        assert!(
            log.contains("(myself) with RSA_EMSA_PSS"),
            "charon signed with PSS: {log}"
        );
    }
    assert!(
        sas.contains("state=ESTABLISHED") && sas.contains("state=INSTALLED"),
        "{sas}"
    );
    assert!(
        events.iter().any(|e| matches!(e, Event::ChildSaUp { .. })),
        "{events:?}"
    );
    Ok(())
}

#[test]
fn ours_initiates_strongswan_responds_ecdsa_p256_certificates() {
    check_certs_ours_initiates("ecdsa", false).unwrap();
}

#[test]
fn ours_initiates_strongswan_responds_ecdsa_p256_certificates_through_nat() {
    check_certs_ours_initiates("ecdsa", true).unwrap();
}

#[test]
fn ours_initiates_strongswan_responds_rsa_certificates() {
    check_certs_ours_initiates("rsa", false).unwrap();
}

#[test]
fn ours_initiates_strongswan_responds_rsa_certificates_through_nat() {
    check_certs_ours_initiates("rsa", true).unwrap();
}

#[test]
fn strongswan_initiates_ours_responds_ecdsa_p256_certificates() {
    check_certs_strongswan_initiates("ecdsa", false).unwrap();
}

#[test]
fn strongswan_initiates_ours_responds_ecdsa_p256_certificates_through_nat() {
    check_certs_strongswan_initiates("ecdsa", true).unwrap();
}

#[test]
fn strongswan_initiates_ours_responds_rsa_certificates() {
    check_certs_strongswan_initiates("rsa", false).unwrap();
}

#[test]
fn strongswan_initiates_ours_responds_rsa_certificates_through_nat() {
    check_certs_strongswan_initiates("rsa", true).unwrap();
}

// ---- dsmip-probe ike -------------------------------------------------------------------

#[derive(clap::Parser)]
struct ProbeCli {
    #[command(flatten)]
    ike: interop::ike_probe::IkeArgs,
}

/// Runs `dsmip-probe ike ARGS` (the library entry point the binary calls) inside `ns`;
/// returns the exit status and the JSON it printed.
fn probe_in(ns: &str, argv: &[&str]) -> Result<(i32, serde_json::Value)> {
    use clap::Parser;
    let mut full = vec!["dsmip-probe-ike"];
    full.extend_from_slice(argv);
    let cli = ProbeCli::try_parse_from(full)?;
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || -> Result<(i32, serde_json::Value)> {
        let f = File::open(&path)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let mut out = Vec::new();
        let code = interop::ike_probe::run_to(&cli.ike, &mut out)?;
        Ok((code, serde_json::from_slice(&out)?))
    })
    .join()
    .map_err(|_| anyhow::anyhow!("probe thread panicked"))?
}

#[test]
fn probe_cli_against_strongswan_psk_cert_and_failure() {
    let t = topo("probe", true).unwrap();
    let mut lab = t.lab;
    let c = Charon::prepare(&mut lab, &t.far).unwrap();
    charon_pki(&c, "ecdsa", "ha").unwrap();
    let mut conf = cert_conn(
        "certs",
        None,
        "ha.example.org",
        "mn@example.org",
        "10.99.0.0/24",
        "10.88.0.0/24",
    );
    // A PSK connection beside the certificate one, told apart by the identities.
    conf = conf.replacen("connections {\n", "connections {\n  psk {\n    version = 2\n    proposals = aes128-sha256-modp3072\n    local {\n      auth = psk\n      id = psk-ha.example.org\n    }\n    remote {\n      auth = psk\n      id = psk-mn@example.org\n    }\n    children {\n      net {\n        local_ts = 10.99.0.0/24\n        remote_ts = 10.88.0.0/24\n        esp_proposals = aes256-sha256\n      }\n    }\n  }\n", 1);
    conf += &secrets("psk-ha.example.org", "psk-mn@example.org");
    let charon = c.start_prepared(&mut lab, &conf).unwrap();
    let far = t.far_ip.to_string();
    let psk = [
        "--peer",
        &far,
        "--local-id",
        "psk-mn@example.org",
        "--remote-id",
        "psk-ha.example.org",
        "--psk",
        PSK,
        "--ike-proposal",
        "aes128-sha256-modp3072",
        "--esp-proposal",
        "aes256-sha256",
        "--ts-local",
        "10.88.0.0/24",
        "--ts-remote",
        "10.99.0.0/24",
        "--timeout",
        "10",
    ];
    let (code, j) = probe_in(&t.near, &psk).unwrap();
    assert_eq!(code, 0, "{j}\n{}", charon.log());
    assert_eq!(j["established"], true);
    assert_eq!(j["ike_proposal"], "aes128-sha256-modp3072");
    assert_eq!(j["esp_proposal"], "aes256-sha256");
    assert_eq!(j["nat_local"], true);
    assert_eq!(j["local"], "10.1.0.2:4500");
    assert_eq!(j["remote"], format!("{far}:4500"));
    assert_eq!(j["deleted"], true);
    assert!(j["ike_spi_i"].as_str().is_some_and(|s| s.len() == 16));
    // Certificates, files given on the command line.
    let dir = lab.dir().to_path_buf();
    for n in ["ecdsa-mn.pem", "ecdsa-mn.key", "ecdsa-ca.pem"] {
        std::fs::write(dir.join(n), pki(n)).unwrap();
    }
    let (cert, key, ca) = (
        dir.join("ecdsa-mn.pem"),
        dir.join("ecdsa-mn.key"),
        dir.join("ecdsa-ca.pem"),
    );
    let certs = [
        "--peer",
        &far,
        "--local-id",
        "mn@example.org",
        "--remote-id",
        "ha.example.org",
        "--cert",
        cert.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
        "--ca",
        ca.to_str().unwrap(),
        "--ike-proposal",
        "aes256gcm16-prfsha384-ecp384",
        "--esp-proposal",
        "aes256gcm16",
        "--ts-local",
        "10.88.0.0/24",
        "--ts-remote",
        "10.99.0.0/24",
    ];
    let (code, j) = probe_in(&t.near, &certs).unwrap();
    assert_eq!(code, 0, "{j}\n{}", charon.log());
    assert_eq!(j["ike_proposal"], "aes256gcm16-prfsha384-ecp384");
    // The same key as a SEC1 `EC PRIVATE KEY` file (as `openssl ec` writes it, RFC 5915).
    let sec1 = dir.join("ecdsa-mn-sec1.key");
    std::fs::write(&sec1, pki("ecdsa-mn-sec1.key")).unwrap();
    let mut certs_sec1 = certs;
    assert_eq!(certs_sec1[8], "--key");
    certs_sec1[9] = sec1.to_str().unwrap();
    let (code, j) = probe_in(&t.near, &certs_sec1).unwrap();
    assert_eq!(code, 0, "SEC1 key: {j}\n{}", charon.log());
    assert_eq!(j["established"], true);
    assert_eq!(j["deleted"], true);
    // A wrong key: the notify strongSwan sends back is reported, exit status 1.
    let mut bad = psk;
    bad[7] = "not-the-key";
    let (code, j) = probe_in(&t.near, &bad).unwrap();
    assert_eq!(code, 1);
    assert_eq!(j["established"], false);
    assert_eq!(
        j["failure"]["notify"]["name"], "AUTHENTICATION_FAILED",
        "{j}"
    );
}

// ---- rekeying initiated by strongSwan ----------------------------------------------------

#[test]
fn strongswan_rekeys_the_ike_sa_and_the_child_sa_with_ours() {
    let t = topo("rekey", false).unwrap();
    let mut lab = t.lab;
    let (ike, esp, _, _) = SUITES[0];
    let cfg = our_config(
        "ha.example.org",
        "mn@example.org",
        ike,
        esp,
        "10.99.0.0/24",
        "10.88.0.0/24",
    );
    let mut driver = Driver::new(
        Endpoint::new(Some(cfg), Box::new(SystemRng::default())),
        bind_in(&t.far, t.far_ip).unwrap(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let s2 = stop.clone();
    let server = std::thread::spawn(move || {
        let mut ev = Vec::new();
        while !s2.load(Ordering::Relaxed) {
            if let Ok(Some(e)) = driver.next_event(Instant::now() + Duration::from_millis(50)) {
                ev.push(e);
            }
        }
        ev
    });
    let charon = Charon::start(&mut lab, &t.near, &initiator_conf(t.far_ip)).unwrap();
    let spi_of = |sas: &str, key: &str| -> Option<String> {
        let line = sas.lines().find(|l| l.contains("c0 "))?;
        let at = line.find(key)? + key.len();
        Some(line[at..].split_whitespace().next()?.to_string())
    };
    charon
        .swanctl(&lab, &["--initiate", "--child", "net0", "--timeout", "10"])
        .unwrap();
    let before = list_sas(&charon, &lab);
    let old_spi = spi_of(&before, "initiator-spi=").unwrap();
    let old_child = spi_of(&before, "spi-out=").unwrap();
    // HDR, SK {SA(IKE), Ni, KEi} --> (RFC 7296 §1.3.2), then D(old IKE SA).
    charon.swanctl(&lab, &["--rekey", "--ike", "c0"]).unwrap();
    let rekeyed = wait_until(Duration::from_secs(15), || {
        let s = list_sas(&charon, &lab);
        spi_of(&s, "initiator-spi=").is_some_and(|n| n != old_spi)
            && s.contains("state=ESTABLISHED")
    });
    assert!(
        rekeyed,
        "IKE SA rekeyed: {}\n{}",
        list_sas(&charon, &lab),
        charon.log()
    );
    // HDR, SK {N(REKEY_SA), SA(ESP), Ni, TSi, TSr} -->, then D(old CHILD_SA).
    charon
        .swanctl(&lab, &["--rekey", "--child", "net0"])
        .unwrap();
    let child_rekeyed = wait_until(Duration::from_secs(15), || {
        let s = list_sas(&charon, &lab);
        spi_of(&s, "spi-out=").is_some_and(|n| n != old_child)
            && s.matches("state=INSTALLED").count() == 1
    });
    let after = list_sas(&charon, &lab);
    assert!(child_rekeyed, "CHILD_SA rekeyed: {after}\n{}", charon.log());
    // The new IKE SA carries the delete of everything.
    charon
        .swanctl(&lab, &["--terminate", "--ike", "c0", "--timeout", "5"])
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    let events = server.join().unwrap();
    let new_spi = spi_of(&after, "initiator-spi=").unwrap();
    let rk = events.iter().find_map(|e| match e {
        Event::IkeSaRekeyed { old, new, info } => Some((*old, *new, info.clone())),
        _ => None,
    });
    let (old, new, info) = rk.unwrap_or_else(|| panic!("no IkeSaRekeyed: {events:?}"));
    assert_eq!(format!("{:016x}", info.spi_i), new_spi);
    assert!(
        events.contains(&Event::IkeSaDown { sa: old }),
        "old IKE SA deleted by charon"
    );
    let new_child = spi_of(&after, "spi-out=").unwrap();
    let up_new = events.iter().any(|e| matches!(e, Event::ChildSaUp { sa, child } if *sa == new && format!("{:08x}", child.spi_in) == new_child));
    assert!(
        up_new,
        "rekeyed CHILD_SA reported on the new IKE SA: {events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::ChildSaDown { sa, .. } if *sa == new)),
        "old CHILD_SA removed"
    );
    assert_eq!(
        events.last(),
        Some(&Event::IkeSaDown { sa: new }),
        "terminate reached us"
    );
}

#[test]
fn ours_rekeys_the_child_sa_and_the_ike_sa_with_strongswan() {
    let t = topo("ourrekey", false).unwrap();
    let mut lab = t.lab;
    let charon = Charon::start(&mut lab, &t.far, &responder_conf()).unwrap();
    let mut d = Driver::new(
        Endpoint::new(None, Box::new(SystemRng::default())),
        bind_in(&t.near, t.near_ip).unwrap(),
    )
    .unwrap();
    let (ike, esp, _, _) = SUITES[1];
    let c = our_config(
        "mn@example.org",
        "ha.example.org",
        ike,
        esp,
        "10.88.0.0/24",
        "10.99.0.0/24",
    );
    let rep = initiate(
        &mut d,
        SocketAddr::new(t.far_ip, 500),
        c,
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(rep.established(), "{}", rep.to_json());
    let (sa, old) = (rep.sa.unwrap(), rep.child.unwrap());
    let deadline = || Instant::now() + Duration::from_secs(10);
    // CHILD_SA rekey: the new one comes up, the old one is deleted at charon.
    d.endpoint
        .rekey_child(Instant::now(), sa, old.spi_in)
        .unwrap();
    let mut new_child = None;
    let mut old_down = false;
    while !(new_child.is_some() && old_down) {
        match d.next_event(deadline()).unwrap() {
            Some(Event::ChildSaUp { child, .. }) => new_child = Some(child),
            Some(Event::ChildSaDown { spi_in, .. }) if spi_in == old.spi_in => old_down = true,
            Some(e) => panic!("unexpected {e:?}\n{}", charon.log()),
            None => panic!("CHILD_SA rekey timed out\n{}", charon.log()),
        }
    }
    let nc = new_child.unwrap();
    // charon lists the old CHILD_SA as DELETED for a while: one INSTALLED, the new one.
    let gone = wait_until(Duration::from_secs(3), || {
        let s = list_sas(&charon, &lab);
        s.contains(&format!("spi-in={:08x}", nc.spi_out))
            && s.matches("state=INSTALLED").count() == 1
    });
    assert!(
        gone,
        "charon has the new CHILD_SA only: {}",
        list_sas(&charon, &lab)
    );
    while d.endpoint.busy(sa) {
        // The Delete of the old CHILD_SA is still in flight.
        assert!(d
            .next_event(Instant::now() + Duration::from_millis(100))
            .unwrap()
            .is_none());
    }
    // IKE SA rekey: charon must show the new SPIs, with the CHILD_SA moved over.
    d.endpoint.rekey_ike(Instant::now(), sa).unwrap();
    let mut new_sa = None;
    loop {
        match d.next_event(deadline()).unwrap() {
            Some(Event::IkeSaRekeyed { old, new, info }) => {
                assert_eq!(old, sa);
                new_sa = Some((new, info));
            }
            Some(Event::IkeSaDown { sa: s }) if s == sa => break,
            Some(e) => panic!("unexpected {e:?}\n{}", charon.log()),
            None => panic!("IKE SA rekey timed out\n{}", charon.log()),
        }
    }
    let (new, info) = new_sa.expect("IkeSaRekeyed before the old SA went down");
    let sas = list_sas(&charon, &lab);
    let line = sas
        .lines()
        .find(|l| l.contains(&format!("initiator-spi={:016x}", info.spi_i)))
        .unwrap_or_else(|| panic!("new IKE SA at charon: {sas}"));
    assert!(
        line.contains(&format!("responder-spi={:016x}", info.spi_r))
            && line.contains("state=ESTABLISHED"),
        "{line}"
    );
    assert!(
        line.contains(&format!("spi-in={:08x}", nc.spi_out)),
        "CHILD_SA moved to the new IKE SA: {line}"
    );
    assert!(delete(&mut d, new, Duration::from_secs(5)).unwrap());
}
