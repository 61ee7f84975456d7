//! The lab itself: namespaces, veth, NAT and charon come up, carry traffic, and are gone
//! afterwards. Needs root, iproute2, nftables and strongSwan (the test command installs
//! them); without them it fails, it does not skip.

use std::process::Command;
use std::time::Duration;

use interop::lab::{Charon, Lab};

fn netns_list() -> String {
    String::from_utf8(
        Command::new("ip")
            .args(["netns", "list"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
}

#[test]
fn nat_rewrites_source_and_lab_cleans_up() {
    let prefix;
    {
        let mut lab = Lab::new("nat").expect("lab");
        let mn = lab.ns("mn").unwrap();
        let nat = lab.ns("nat").unwrap();
        let ha = lab.ns("ha").unwrap();
        prefix = mn.trim_end_matches("-mn").to_string();
        lab.veth(&mn, "eth0", &["10.1.0.2/24"], &nat, "in0", &["10.1.0.1/24"])
            .unwrap();
        lab.veth(
            &nat,
            "out0",
            &["192.0.2.2/24"],
            &ha,
            "eth0",
            &["192.0.2.1/24"],
        )
        .unwrap();
        lab.run(&mn, &["ip", "route", "add", "default", "via", "10.1.0.1"])
            .unwrap();
        lab.masquerade(&nat, "out0").unwrap();
        // A UDP listener in ha reports the source address it sees.
        let log = lab.dir().join("listen.out");
        let pid = lab
            .spawn(&ha, &["timeout", "10", "python3", "-c",
                "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('192.0.2.1',4191));d,a=s.recvfrom(100);print(a[0],d.decode(),flush=True)"], &log)
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        lab.run(&mn, &["python3", "-c",
            "import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.sendto(b'hello',('192.0.2.1',4191))"]).unwrap();
        assert!(interop::lab::wait_until(Duration::from_secs(5), || !lab.alive(pid)));
        let seen = std::fs::read_to_string(&log).unwrap();
        assert_eq!(
            seen.trim(),
            "192.0.2.2 hello",
            "the NAT must rewrite 10.1.0.2"
        );
        assert!(netns_list().contains(&prefix));
    }
    assert!(
        !netns_list().contains(&prefix),
        "namespaces must be deleted on drop"
    );
}

#[test]
fn charon_starts_and_loads_a_connection() {
    let mut lab = Lab::new("charon").expect("lab");
    let ns = lab.ns("ha").unwrap();
    let conf = r#"
connections {
    probe {
        version = 2
        proposals = aes256gcm16-prfsha384-ecp384
        local { auth = psk
                id = ha.lab.example }
        remote { auth = psk
                 id = mn.lab.example }
        children { home { local_ts = 10.99.0.0/24
                          esp_proposals = aes128gcm16 } }
    }
}
secrets { ike-mn { id = mn.lab.example
                   secret = lab-secret-not-real } }
"#;
    let charon = Charon::start(&mut lab, &ns, conf).expect("charon");
    let conns = charon.swanctl(&lab, &["--list-conns"]).unwrap();
    assert!(conns.contains("probe:"), "{conns}");
    assert!(conns.contains("home:"), "{conns}");
    let version = charon.swanctl(&lab, &["--version", "--daemon"]).unwrap();
    assert!(version.contains("charon"), "{version}");
}
