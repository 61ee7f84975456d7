//! Home agent discovery (RFC 5555 §2.1) against a real DNS server: Debian's dnsmasq on a
//! free high port on 127.0.0.1, serving A, AAAA and SRV `_mip6._ipv6.mip.example` records
//! from a generated configuration. Needs the `dnsmasq` package; fails if it is missing.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mn::discovery::{service_name, Discovery};
use mn::{AddressEvent, HomeAgentAddrs, HomeAgentConfig, MnConfig, MnError, MobileNode};

struct Dnsmasq {
    child: Child,
    addr: SocketAddr,
    _dir: TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory removed on drop (keeps the test free of extra crates).
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn free_port() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP port on loopback");
    s.local_addr().unwrap().port()
}

fn start_dnsmasq() -> Dnsmasq {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("mn-dns-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("dnsmasq.conf");
    let text = format!(
        "port={port}\nlisten-address=127.0.0.1\nbind-interfaces\nno-resolv\nno-hosts\nno-poll\n\
         pid-file=\nuser=root\nlocal=/mip.example/\n\
         host-record=ha1.mip.example,192.0.2.1,2001:db8:1::1\n\
         host-record=ha2.mip.example,198.51.100.1,2001:db8:2::1\n\
         host-record=ha6only.mip.example,2001:db8:3::1\n\
         srv-host=_mip6._ipv6.mip.example,ha2.mip.example,0,20,5\n\
         srv-host=_mip6._ipv6.mip.example,ha1.mip.example,0,10,5\n"
    );
    std::fs::write(&conf, text).unwrap();
    let child = Command::new("dnsmasq")
        .arg("--keep-in-foreground")
        .arg(format!("--conf-file={}", conf.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start dnsmasq (install the Debian package dnsmasq): {e}")
        });
    Dnsmasq {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        _dir: TempDir(dir),
    }
}

async fn ready(d: &Discovery) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while d.by_name("ha1.mip.example").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "dnsmasq did not answer within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn discovery_by_name_and_by_service() {
    let mut server = start_dnsmasq();
    let d = Discovery::with_name_servers(&[server.addr], Duration::from_millis(500));
    ready(&d).await;
    assert!(server.child.try_wait().unwrap().is_none(), "dnsmasq exited");

    let ha = d.by_name("ha1.mip.example").await.unwrap();
    assert_eq!(
        ha,
        HomeAgentAddrs {
            ipv6: Some("2001:db8:1::1".parse().unwrap()),
            ipv4: Some(Ipv4Addr::new(192, 0, 2, 1))
        }
    );
    let only6 = d.by_name("ha6only.mip.example").await.unwrap();
    assert_eq!(only6.ipv4, None);
    assert_eq!(only6.ipv6, Some("2001:db8:3::1".parse().unwrap()));
    let missing = d.by_name("nothere.mip.example").await.unwrap_err();
    assert!(
        matches!(&missing, MnError::Dns { query, .. } if query == "nothere.mip.example."),
        "{missing}"
    );

    assert_eq!(service_name("mip.example."), "_mip6._ipv6.mip.example");
    let list = d.by_service("mip.example").await.unwrap();
    let names: Vec<(&str, u16)> = list.iter().map(|c| (c.name.as_str(), c.priority)).collect();
    assert_eq!(
        names,
        vec![("ha1.mip.example.", 10), ("ha2.mip.example.", 20)]
    );
    assert_eq!(list[1].addrs.ipv4, Some(Ipv4Addr::new(198, 51, 100, 1)));
    assert!(d.by_service("other.mip.example").await.is_err());

    // The discovered addresses drive the engine: an IPv4-only network needs the IPv4 one.
    let cfg = MnConfig::new(
        "2001:db8:1::100".parse().unwrap(),
        HomeAgentConfig {
            name: Some("ha1.mip.example".into()),
            ..Default::default()
        },
    );
    let mut mn = MobileNode::new(cfg, 1).unwrap();
    let t0 = Instant::now();
    mn.handle_address(
        t0,
        AddressEvent::Added {
            addr: "10.0.0.2".parse().unwrap(),
            private: true,
        },
    );
    assert!(mn.poll_transmit().is_none(), "no home agent address yet");
    mn.set_home_agent(t0, list[0].addrs);
    let bu = mn.poll_transmit().expect("BU after discovery");
    assert_eq!(
        bu.ipv6_dst,
        "2001:db8:1::1".parse::<std::net::Ipv6Addr>().unwrap()
    );
    assert!(bu.outer.is_some());
}
