//! `dsmip-tcp-check`: a TCP transfer whose every byte can be checked at both ends, for the
//! lab's end-to-end scenarios (issue 8). The sender writes N bytes of a deterministic
//! pattern (xorshift64* from a seed); the receiver reads to end of stream. Both print one
//! JSON line with the length and the SHA-256 (ring) of what they sent or received, so a test
//! compares the two byte for byte; given the seed, the receiver also names the first byte
//! that differs from the pattern.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use ring::digest::{Context as Digest, SHA256};

/// Send or receive N bytes of a deterministic pattern over TCP and report length and
/// SHA-256 at each end as one JSON line on stdout.
///
/// Typical use in a lab: `dsmip-tcp-check receive --listen 203.0.113.2:5001 --seed 7` in
/// the correspondent's namespace (it prints `{"listening": ...}` once bound), then
/// `dsmip-tcp-check send --to 203.0.113.2:5001 --bytes 8388608 --seed 7` in the mobile
/// node's namespace. Compare `bytes` and `sha256` of the two lines; the receiver's
/// `first_mismatch` is null when every byte matched the pattern.
#[derive(Parser)]
#[command(name = "dsmip-tcp-check", version)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Accept one connection, read it to the end, print the report.
    Receive {
        /// Address and port to listen on (IPv6 as `[2001:db8::1]:5001`).
        #[arg(long)]
        listen: SocketAddr,
        /// The sender's seed: also check every byte against the pattern.
        #[arg(long)]
        seed: Option<u64>,
        /// Give up when no connection arrives or the stream stalls this long.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
    /// Connect, write the pattern, close, print the report.
    Send {
        /// Receiver address and port.
        #[arg(long)]
        to: SocketAddr,
        /// Number of bytes to send.
        #[arg(long)]
        bytes: u64,
        /// Seed of the pattern.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Fail unless the connection leaves from this source address (the routing table
        /// picks it; in the lab, the home address the mobile node's routes name).
        #[arg(long)]
        expect_source: Option<IpAddr>,
        /// Give up when the connection or a write stalls this long.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
    },
}

/// The byte stream: xorshift64* (Vigna), eight bytes per step, little-endian.
struct Pattern {
    state: u64,
    buf: [u8; 8],
    used: usize,
}

impl Pattern {
    fn new(seed: u64) -> Pattern {
        // A zero state would stay zero.
        let state = seed ^ 0x9e37_79b9_7f4a_7c15;
        Pattern {
            state: if state == 0 { 1 } else { state },
            buf: [0; 8],
            used: 8,
        }
    }

    fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == 8 {
                self.state ^= self.state >> 12;
                self.state ^= self.state << 25;
                self.state ^= self.state >> 27;
                self.buf = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
                self.used = 0;
            }
            *b = self.buf[self.used];
            self.used += 1;
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Receive {
            listen,
            seed,
            timeout_secs,
        } => receive(listen, seed, Duration::from_secs(timeout_secs)),
        Cmd::Send {
            to,
            bytes,
            seed,
            expect_source,
            timeout_secs,
        } => send(
            to,
            bytes,
            seed,
            expect_source,
            Duration::from_secs(timeout_secs),
        ),
    };
    if let Err(e) = res {
        eprintln!("dsmip-tcp-check: {e:#}");
        std::process::exit(1);
    }
}

fn receive(listen: SocketAddr, seed: Option<u64>, timeout: Duration) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("binding {listen}"))?;
    println!("{}", serde_json::json!({ "listening": listen.to_string() }));
    std::io::stdout().flush()?;
    listener.set_nonblocking(true)?;
    let deadline = Instant::now() + timeout;
    let (mut stream, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    bail!("no connection on {listen} within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e).context("accept"),
        }
    };
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(timeout))?;
    let start = Instant::now();
    let mut digest = Digest::new(&SHA256);
    let mut pattern = seed.map(Pattern::new);
    let (mut buf, mut want) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
    let (mut total, mut first_mismatch) = (0u64, None::<u64>);
    loop {
        let n = stream
            .read(&mut buf)
            .with_context(|| format!("reading from {peer} after {total} bytes"))?;
        if n == 0 {
            break;
        }
        digest.update(&buf[..n]);
        if let Some(p) = pattern.as_mut() {
            p.fill(&mut want[..n]);
            if first_mismatch.is_none() {
                if let Some(i) = buf[..n].iter().zip(&want[..n]).position(|(a, b)| a != b) {
                    first_mismatch = Some(total + i as u64);
                }
            }
        }
        total += n as u64;
    }
    report(
        "receiver",
        total,
        digest,
        peer,
        listen,
        start,
        first_mismatch,
    )
}

fn send(
    to: SocketAddr,
    bytes: u64,
    seed: u64,
    expect_source: Option<IpAddr>,
    timeout: Duration,
) -> Result<()> {
    let mut stream =
        TcpStream::connect_timeout(&to, timeout).with_context(|| format!("connecting to {to}"))?;
    stream.set_write_timeout(Some(timeout))?;
    let local = stream.local_addr()?;
    if let Some(src) = expect_source {
        if local.ip() != src {
            bail!(
                "the connection to {to} left from {}, not from {src}: check the routes",
                local.ip()
            );
        }
    }
    let start = Instant::now();
    let mut digest = Digest::new(&SHA256);
    let mut pattern = Pattern::new(seed);
    let mut buf = vec![0u8; 64 * 1024];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
        pattern.fill(&mut buf[..n]);
        stream
            .write_all(&buf[..n])
            .with_context(|| format!("writing to {to} after {} bytes", bytes - left))?;
        digest.update(&buf[..n]);
        left -= n as u64;
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Write)?;
    // Wait for the receiver's close, so "done" means the bytes arrived.
    stream.set_read_timeout(Some(timeout))?;
    let mut rest = [0u8; 16];
    let _ = stream.read(&mut rest);
    report("sender", bytes, digest, to, local, start, None)
}

fn report(
    role: &str,
    bytes: u64,
    digest: Digest,
    peer: SocketAddr,
    local: SocketAddr,
    start: Instant,
    first_mismatch: Option<u64>,
) -> Result<()> {
    let secs = start.elapsed().as_secs_f64();
    let mbit = if secs > 0.0 {
        bytes as f64 * 8.0 / secs / 1e6
    } else {
        0.0
    };
    let line = serde_json::json!({
        "role": role,
        "bytes": bytes,
        "sha256": hex::encode(digest.finish().as_ref()),
        "local": local.to_string(),
        "peer": peer.to_string(),
        "seconds": (secs * 1000.0).round() / 1000.0,
        "mbit_per_s": (mbit * 10.0).round() / 10.0,
        "first_mismatch": first_mismatch,
    });
    println!("{line}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_deterministic_and_split_invariant() {
        let (mut a, mut b) = (Pattern::new(7), Pattern::new(7));
        let mut whole = [0u8; 100];
        a.fill(&mut whole);
        let mut parts = [0u8; 100];
        b.fill(&mut parts[..3]);
        b.fill(&mut parts[3..61]);
        b.fill(&mut parts[61..]);
        assert_eq!(whole, parts);
        let mut other = [0u8; 100];
        Pattern::new(8).fill(&mut other);
        assert_ne!(whole, other);
        assert!(whole.iter().any(|&x| x != whole[0]));
    }
}
