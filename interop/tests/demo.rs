//! The README's demo command works on the real daemons: `dsmip-demo` brings up the lab,
//! `dsmip-mn` registers with `dsmip-ha` through the NAT (IKEv2 + ESP), pings over both home
//! addresses succeed, the data SA carries a TCP transfer from each home address checked
//! byte for byte, SIGTERM deregisters and leaves no binding, and the lab is torn down.
//! Needs root, iproute2, nftables, iputils-ping, tcpdump and tshark.

use std::process::Command;

use anyhow::{Context, Result};
use interop::lab::workspace_binary;

#[test]
fn demo_registers_pings_transfers_and_deregisters() -> Result<()> {
    for (tool, package) in [("tcpdump", "tcpdump"), ("tshark", "tshark")] {
        interop::lab::require_tool(tool, package)?;
    }
    let ha = workspace_binary("ha", "dsmip-ha")?;
    let mn = workspace_binary("mn", "dsmip-mn")?;
    let out = Command::new(env!("CARGO_BIN_EXE_dsmip-demo"))
        .arg("--ha")
        .arg(&ha)
        .arg("--mn")
        .arg(&mn)
        .arg("--tcp-check")
        .arg(env!("CARGO_BIN_EXE_dsmip-tcp-check"))
        .output()
        .context("running dsmip-demo")?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = |needle: &str| -> Result<&str> {
        text.lines()
            .find(|l| l.contains(needle))
            .with_context(|| format!("no line with {needle:?} in:\n{text}"))
    };

    // Registration with a dynamic IPv4 home address from the pool 198.51.100.0/28.
    let reg = line("registered in ")?;
    let v4 = reg
        .split("IPv4 home address ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("no IPv4 home address: {reg}"))?;
    let host: u8 = v4
        .strip_prefix("198.51.100.")
        .and_then(|r| r.strip_suffix("/32"))
        .and_then(|h| h.parse().ok())
        .with_context(|| format!("not an address of the pool: {v4}"))?;
    assert!(
        (2..16).contains(&host),
        "{v4} outside the pool's usable range"
    );
    assert!(
        line("NAT detected: yes")?.contains("ESP SPIs in 0x"),
        "{text}"
    );
    // dsmip-ha bindings, verbatim: the binding through the NAT.
    let b = line("2001:db8:1::100  ")?;
    assert!(b.contains(v4) && b.contains("192.0.2.2:"), "{b}");
    // dsmip-mn status.
    assert!(line("state ")?.ends_with("registered"), "{text}");
    // Both pings: every reply.
    for dst in ["-> 203.0.113.2:", "-> 2001:db8:1::2:"] {
        let p = line(dst)?;
        assert!(
            p.contains("3 packets transmitted, 3 received, 0% packet loss"),
            "{p}"
        );
    }
    assert!(line("ping -4 ")?.contains(&v4[..v4.len() - 3]), "{text}");
    // Deregistration: the home agent has no binding left.
    assert!(
        line("dsmip-mn exited, ")?.contains("exited, deregistered"),
        "{text}"
    );
    assert!(line("0 bindings").is_ok(), "{text}");
    assert!(
        line("bindings left at the home agent: ")?.ends_with(": 0"),
        "{text}"
    );
    // The data SA (RFC 5555 §5.2.2) is up, in UDP 4500 behind the NAT, and carries TCP.
    assert!(
        line("data SA (tunnel mode")?.ends_with("ESP in UDP 4500: yes"),
        "{text}"
    );
    let tcp: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("4194304 bytes, SHA-256") && l.contains("equal at both ends"))
        .collect();
    assert_eq!(tcp.len(), 2, "{text}");
    // On the wire: BU/BA and data under ESP, never a cleartext Mobility Header, no
    // home-address packet outside ESP.
    let wire = line(" IKEv2, ")?;
    assert!(!wire.contains(" 0 ESP in UDP 4191"), "{wire}");
    assert!(!wire.contains(" 0 ESP in UDP 4500"), "{wire}");
    let clear = line(" cleartext Mobility Header, ")?;
    assert!(clear.trim_start().starts_with("0 cleartext"), "{clear}");
    assert!(
        clear.contains(", 0 home-address packets without ESP"),
        "{clear}"
    );
    assert!(text.contains("Lab torn down."), "{text}");
    assert!(text.lines().count() <= 50, "too long for a demo:\n{text}");
    Ok(())
}
