//! iproute2 commands and the addresses of an IP packet. `ip` costs a process (a few ms) per
//! call: what runs before a Binding Acknowledgement goes through [`crate::netlink`]
//! instead (dsmip-ha's routes and neighbour proxies); `ip` stays where that cost is paid
//! rarely.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

/// Run `ip ARGS…`; the error holds the command line and iproute2's message.
pub fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip (iproute2)")?;
    if !out.status.success() {
        bail!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Run `nft ARGS…` with `input` on its standard input (a ruleset for `-f -`); the error
/// holds the command line and nft's message. The daemons use it once at start and once at
/// exit for the tables that keep the kernel from answering Mobile IPv6 packets it cannot
/// parse.
pub fn nft(input: &str, args: &[&str]) -> Result<()> {
    let mut c = Command::new("nft")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (nftables)")?;
    if let Some(mut i) = c.stdin.take() {
        std::io::Write::write_all(&mut i, input.as_bytes()).context("writing to nft")?;
    }
    let out = c.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The source address of an IPv4 or IPv6 packet (`None` when too short or neither).
pub fn source(pkt: &[u8]) -> Option<IpAddr> {
    address(pkt, true)
}

/// The destination address of an IPv4 or IPv6 packet.
pub fn destination(pkt: &[u8]) -> Option<IpAddr> {
    address(pkt, false)
}

fn address(pkt: &[u8], src: bool) -> Option<IpAddr> {
    match pkt.first()? >> 4 {
        4 => {
            // RFC 791 §3.1: source at octet 12, destination at 16.
            let at = if src { 12 } else { 16 };
            let b: [u8; 4] = pkt.get(at..at + 4)?.try_into().ok()?;
            Some(IpAddr::V4(Ipv4Addr::from(b)))
        }
        6 => {
            // RFC 8200 §3: source at octet 8, destination at 24.
            let at = if src { 8 } else { 24 };
            let b: [u8; 16] = pkt.get(at..at + 16)?.try_into().ok()?;
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_of_both_families() {
        let mut v4 = [0u8; 20];
        v4[0] = 0x45;
        v4[12..16].copy_from_slice(&[198, 51, 100, 2]);
        v4[16..20].copy_from_slice(&[203, 0, 113, 2]);
        assert_eq!(source(&v4), Some("198.51.100.2".parse().unwrap()));
        assert_eq!(destination(&v4), Some("203.0.113.2".parse().unwrap()));
        assert_eq!(source(&v4[..15]), None);
        let mut v6 = [0u8; 40];
        v6[0] = 0x60;
        v6[23] = 1;
        v6[39] = 2;
        assert_eq!(source(&v6), Some("::1".parse().unwrap()));
        assert_eq!(destination(&v6), Some("::2".parse().unwrap()));
        assert_eq!(destination(&v6[..30]), None);
        assert_eq!(source(&[0x10]), None);
        assert_eq!(source(&[]), None);
    }

    #[test]
    fn ip_errors_name_the_command() {
        let e = ip(&["route", "get", "not-an-address"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("ip route get not-an-address"),
            "{e:#}"
        );
    }
}
