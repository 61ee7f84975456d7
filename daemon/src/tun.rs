//! A TUN device and the thread that reads it. The reader hands each packet to the daemon's
//! main loop through a bounded channel (back-pressure instead of loss in the daemon) and
//! ends when the device is dropped or the channel closes; writes go straight to the device.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{Context, Result};
use mipsec::io::tun::Tun;
use tokio::sync::mpsc;

/// The device, up, with its reader running.
pub struct TunDevice {
    tun: Arc<Tun>,
    stop: Arc<AtomicBool>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl TunDevice {
    /// Create `name`, set its MTU, bring it up and start reading into `tx`.
    pub fn start(name: &str, mtu: u32, tx: mpsc::Sender<Vec<u8>>) -> Result<TunDevice> {
        let tun = Tun::create(name).with_context(|| format!("creating TUN device {name}"))?;
        tun.set_mtu(mtu)
            .with_context(|| format!("TUN device {name}: MTU {mtu}"))?;
        tun.up().with_context(|| format!("TUN device {name}: up"))?;
        let tun = Arc::new(tun);
        let stop = Arc::new(AtomicBool::new(false));
        let (t, s) = (tun.clone(), stop.clone());
        let reader = std::thread::Builder::new()
            .name(format!("tun-{name}"))
            .spawn(move || {
                let mut buf = vec![0u8; 65_536];
                while !s.load(Ordering::Relaxed) {
                    // A bounded wait, so that `stop` is seen within 200 ms.
                    if !t.wait_readable(200).unwrap_or(false) {
                        continue;
                    }
                    if let Ok(n @ 1..) = t.recv(&mut buf) {
                        if tx.blocking_send(buf[..n].to_vec()).is_err() {
                            return;
                        }
                    }
                }
            })
            .context("starting the TUN reader thread")?;
        Ok(TunDevice {
            tun,
            stop,
            reader: Some(reader),
        })
    }

    /// The kernel's name of the device.
    pub fn name(&self) -> &str {
        self.tun.name()
    }

    /// Write one IP packet to the device (the kernel receives it).
    pub fn send(&self, pkt: &[u8]) -> std::io::Result<usize> {
        self.tun.send(pkt)
    }
}

impl Drop for TunDevice {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}
