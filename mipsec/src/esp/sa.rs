//! One direction of an ESP SA (RFC 4301 §4.1: SAs are simplex): framing, sequence numbers,
//! anti-replay, counters and lifetimes, on top of an [`EspCipher`].
//!
//! Outbound processing follows RFC 4303 §3.3, inbound §3.4. Both work in caller-owned
//! buffers; nothing allocates per packet. Events (lifetimes, sequence exhaustion) queue in
//! the SA and are read with `poll_event`, as a sans-IO engine's output is.

use std::collections::VecDeque;
use std::ops::Range;

use super::replay::{ReplayWindow, DEFAULT_WINDOW};
use super::transform::{EspCipher, Transform, ESP_HEADER_LEN, ICV_LEN, TRAILER_LEN};
use super::EspError;
use crate::error::{need, room};
use crate::wire::ip::IPPROTO_NONE;

/// Byte and packet limits of an SA (RFC 4301 §4.4.2.1, "SA lifetime"); `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lifetime {
    pub soft_bytes: Option<u64>,
    pub hard_bytes: Option<u64>,
    pub soft_packets: Option<u64>,
    pub hard_packets: Option<u64>,
}

/// What an SA is configured with (everything but the keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SaConfig {
    pub spi: u32,
    pub transform: Transform,
    /// Extended (64-bit) sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets (inbound); 0 turns anti-replay off (§3.4.3 allows it
    /// for manually keyed SAs).
    pub replay_window: u32,
    pub lifetime: Lifetime,
    /// Packets before the sequence space runs out at which `RekeyNeeded` is raised.
    pub rekey_margin: u64,
}

impl SaConfig {
    /// An SA with the defaults: no ESN, a window of 64, no lifetimes, rekey 2^16 packets
    /// before the sequence space ends.
    pub fn new(spi: u32, transform: Transform) -> Self {
        SaConfig {
            spi,
            transform,
            esn: false,
            replay_window: DEFAULT_WINDOW,
            lifetime: Lifetime::default(),
            rekey_margin: 1 << 16,
        }
    }
}

/// Per-SA counters (RFC 4301 §4.4.2.1 lists the first two; the drops are what an operator
/// needs to see).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets sealed or accepted.
    pub packets: u64,
    /// Payload octets sealed or accepted (the inner packet, before padding).
    pub bytes: u64,
    pub auth_failures: u64,
    pub replay_drops: u64,
    /// Malformed packets (short, bad padding, bad length).
    pub malformed: u64,
    /// Dummy packets (Next Header 59, RFC 4303 §2.6) received and dropped.
    pub dummy: u64,
}

/// Which limit a lifetime event is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Bytes,
    Packets,
}

/// What an SA tells its owner (the keying daemon).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaEvent {
    /// A soft lifetime was reached: start rekeying (RFC 4301 §4.4.2.1).
    SoftLifetime { spi: u32, limit: Limit },
    /// A hard lifetime was reached: the SA refuses traffic from now on.
    HardLifetime { spi: u32, limit: Limit },
    /// The outbound sequence space is about to run out: rekey (RFC 4303 §3.3.3).
    RekeyNeeded { spi: u32 },
    /// The outbound sequence space ran out; the SA sends nothing more.
    SequenceExhausted { spi: u32 },
}

/// Lifetime bookkeeping shared by both directions.
#[derive(Debug, Clone, Default)]
struct Life {
    soft_fired: [bool; 2],
    hard_fired: bool,
}

impl Life {
    /// `Err` when one more packet of `len` bytes would pass a hard limit.
    fn admit(
        &mut self,
        cfg: &SaConfig,
        c: &Counters,
        len: usize,
        ev: &mut VecDeque<SaEvent>,
    ) -> Result<(), EspError> {
        let l = &cfg.lifetime;
        let over = if l.hard_packets.is_some_and(|h| c.packets >= h) {
            Some(Limit::Packets)
        } else if l.hard_bytes.is_some_and(|h| c.bytes + len as u64 > h) {
            Some(Limit::Bytes)
        } else {
            None
        };
        if let Some(limit) = over {
            if !self.hard_fired {
                self.hard_fired = true;
                ev.push_back(SaEvent::HardLifetime {
                    spi: cfg.spi,
                    limit,
                });
            }
            return Err(EspError::Expired {
                spi: cfg.spi,
                limit,
            });
        }
        Ok(())
    }

    fn after(&mut self, cfg: &SaConfig, c: &Counters, ev: &mut VecDeque<SaEvent>) {
        let l = &cfg.lifetime;
        let soft = [
            (Limit::Bytes, l.soft_bytes.is_some_and(|s| c.bytes >= s)),
            (
                Limit::Packets,
                l.soft_packets.is_some_and(|s| c.packets >= s),
            ),
        ];
        for (i, (limit, hit)) in soft.into_iter().enumerate() {
            if hit && !self.soft_fired[i] {
                self.soft_fired[i] = true;
                ev.push_back(SaEvent::SoftLifetime {
                    spi: cfg.spi,
                    limit,
                });
            }
        }
    }
}

fn check_spi(spi: u32) -> Result<(), EspError> {
    // RFC 4303 §2.1: 0 is reserved for local use, 1..=255 by IANA.
    if spi < 256 {
        return Err(EspError::ReservedSpi { spi });
    }
    Ok(())
}

/// The sending half of an SA.
#[derive(Debug)]
pub struct OutboundSa {
    cfg: SaConfig,
    cipher: EspCipher,
    /// Last sequence number sent (RFC 4303 §3.3.3: the first packet carries 1).
    seq: u64,
    counters: Counters,
    life: Life,
    rekey_fired: bool,
    exhausted_fired: bool,
    events: VecDeque<SaEvent>,
}

impl OutboundSa {
    pub fn new(cfg: SaConfig, keymat: &[u8]) -> Result<Self, EspError> {
        check_spi(cfg.spi)?;
        Ok(OutboundSa {
            cipher: EspCipher::new(cfg.transform, keymat)?,
            cfg,
            seq: 0,
            counters: Counters::default(),
            life: Life::default(),
            rekey_fired: false,
            exhausted_fired: false,
            events: VecDeque::new(),
        })
    }

    /// Continue after `last_sent` (state restored from elsewhere, or tests near the end of
    /// the sequence space).
    #[must_use]
    pub fn with_last_sequence(mut self, last_sent: u64) -> Self {
        self.seq = last_sent;
        self
    }

    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }
    pub fn spi(&self) -> u32 {
        self.cfg.spi
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn last_sequence(&self) -> u64 {
        self.seq
    }
    pub fn poll_event(&mut self) -> Option<SaEvent> {
        self.events.pop_front()
    }

    /// Octets before the payload: ESP header and IV.
    pub fn header_len(&self) -> usize {
        ESP_HEADER_LEN + self.cfg.transform.iv_len()
    }

    /// Octets of the ESP packet for a payload of `payload_len`.
    pub fn encapsulated_len(&self, payload_len: usize) -> usize {
        let b = self.cfg.transform.block_len();
        let body = (payload_len + TRAILER_LEN).div_ceil(b) * b;
        self.header_len() + body + ICV_LEN
    }

    /// Seal `payload` (of protocol `next_header`: 4 or 41 in tunnel mode) into `out`;
    /// returns the ESP packet's length.
    pub fn encapsulate(
        &mut self,
        next_header: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let total = self.encapsulated_len(payload.len());
        room(out, "esp.packet", total)?;
        let h = self.header_len();
        out[h..h + payload.len()].copy_from_slice(payload);
        self.encapsulate_in_place(next_header, out, payload.len())
    }

    /// Like [`encapsulate`](Self::encapsulate) with the payload already at
    /// `buf[header_len()..header_len() + payload_len]`: no copy.
    pub fn encapsulate_in_place(
        &mut self,
        next_header: u8,
        buf: &mut [u8],
        payload_len: usize,
    ) -> Result<usize, EspError> {
        let total = self.encapsulated_len(payload_len);
        room(buf, "esp.packet", total)?;
        self.life
            .admit(&self.cfg, &self.counters, payload_len, &mut self.events)?;
        let seq = self.next_seq()?;
        let h = self.header_len();
        let pkt = &mut buf[..total];
        pkt[..4].copy_from_slice(&self.cfg.spi.to_be_bytes());
        pkt[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        // RFC 4303 §2.4: padding octets 1, 2, 3, ...
        let pad_end = total - ICV_LEN - TRAILER_LEN;
        let pad_len = pad_end - h - payload_len;
        for (i, b) in pkt[h + payload_len..pad_end].iter_mut().enumerate() {
            *b = (i + 1) as u8;
        }
        pkt[pad_end] = pad_len as u8;
        pkt[pad_end + 1] = next_header;
        self.cipher.seal(pkt, seq, self.cfg.esn, None)?;
        self.counters.packets += 1;
        self.counters.bytes += payload_len as u64;
        self.life.after(&self.cfg, &self.counters, &mut self.events);
        Ok(total)
    }

    /// RFC 4303 §3.3.3: the counter never cycles; the SA must be rekeyed first.
    fn next_seq(&mut self) -> Result<u64, EspError> {
        let max = if self.cfg.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if self.seq >= max {
            if !self.exhausted_fired {
                self.exhausted_fired = true;
                self.events
                    .push_back(SaEvent::SequenceExhausted { spi: self.cfg.spi });
            }
            return Err(EspError::SequenceExhausted { spi: self.cfg.spi });
        }
        self.seq += 1;
        if max - self.seq <= self.cfg.rekey_margin && !self.rekey_fired {
            self.rekey_fired = true;
            self.events
                .push_back(SaEvent::RekeyNeeded { spi: self.cfg.spi });
        }
        Ok(self.seq)
    }
}

/// The result of inbound processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A payload of protocol `next_header` at `payload` within the packet buffer.
    Packet {
        next_header: u8,
        payload: Range<usize>,
        seq: u64,
    },
    /// A dummy packet (Next Header 59), to be dropped silently (RFC 4303 §2.6).
    Dummy { seq: u64 },
}

/// The receiving half of an SA.
#[derive(Debug)]
pub struct InboundSa {
    cfg: SaConfig,
    cipher: EspCipher,
    replay: ReplayWindow,
    counters: Counters,
    life: Life,
    events: VecDeque<SaEvent>,
}

impl InboundSa {
    pub fn new(cfg: SaConfig, keymat: &[u8]) -> Result<Self, EspError> {
        check_spi(cfg.spi)?;
        Ok(InboundSa {
            cipher: EspCipher::new(cfg.transform, keymat)?,
            replay: ReplayWindow::new(cfg.replay_window, cfg.esn),
            cfg,
            counters: Counters::default(),
            life: Life::default(),
            events: VecDeque::new(),
        })
    }

    pub fn config(&self) -> &SaConfig {
        &self.cfg
    }
    pub fn spi(&self) -> u32 {
        self.cfg.spi
    }
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
    pub fn replay_window(&self) -> &ReplayWindow {
        &self.replay
    }
    pub fn poll_event(&mut self) -> Option<SaEvent> {
        self.events.pop_front()
    }

    /// Verify and decrypt the ESP packet `pkt` (starting at the SPI) in place.
    pub fn decapsulate(&mut self, pkt: &mut [u8]) -> Result<Inbound, EspError> {
        let r = self.process(pkt);
        match &r {
            Err(EspError::Auth { .. }) => self.counters.auth_failures += 1,
            Err(EspError::Replay { .. }) => self.counters.replay_drops += 1,
            Err(EspError::Wire(_)) => self.counters.malformed += 1,
            Ok(Inbound::Dummy { .. }) => self.counters.dummy += 1,
            _ => {}
        }
        r
    }

    fn process(&mut self, pkt: &mut [u8]) -> Result<Inbound, EspError> {
        let t = self.cfg.transform;
        let h = ESP_HEADER_LEN + t.iv_len();
        need(pkt, "esp.packet", 0, h + TRAILER_LEN + ICV_LEN)?;
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        if spi != self.cfg.spi {
            return Err(EspError::UnknownSpi { spi });
        }
        let seq_lo = u32::from_be_bytes([pkt[4], pkt[5], pkt[6], pkt[7]]);
        let replay = |reason| EspError::Replay {
            spi,
            seq: u64::from(seq_lo),
            reason,
        };
        // RFC 4303 §3.4.3: the window check comes first, cheap, before the ICV.
        let seq = self.replay.infer(seq_lo).map_err(replay)?;
        if self.cfg.replay_window > 0 {
            self.replay.check(seq).map_err(replay)?;
        }
        self.life
            .admit(&self.cfg, &self.counters, pkt.len() - h, &mut self.events)?;
        self.cipher.open(pkt, seq, self.cfg.esn)?;
        // Only an authenticated packet moves the window (§3.4.3).
        self.replay.update(seq);
        let end = pkt.len() - ICV_LEN;
        let pad_len = usize::from(pkt[end - 2]);
        let next_header = pkt[end - 1];
        let payload_end = (end - TRAILER_LEN)
            .checked_sub(pad_len)
            .filter(|&e| e >= h)
            .ok_or(EspError::Wire(crate::Error::Invalid {
                field: "esp.pad_length",
                offset: end - 2,
                value: pad_len as u64,
                reason: "longer than the payload",
            }))?;
        // §2.4: the padding must be 1, 2, 3, ... (checking it is allowed and cheap).
        if let Some(i) = pkt[payload_end..end - TRAILER_LEN]
            .iter()
            .enumerate()
            .position(|(i, &b)| b != (i + 1) as u8)
        {
            return Err(EspError::Wire(crate::Error::Invalid {
                field: "esp.padding",
                offset: payload_end + i,
                value: u64::from(pkt[payload_end + i]),
                reason: "padding octets must count 1, 2, 3, ...",
            }));
        }
        if next_header == IPPROTO_NONE {
            return Ok(Inbound::Dummy { seq });
        }
        self.counters.packets += 1;
        self.counters.bytes += (payload_end - h) as u64;
        self.life.after(&self.cfg, &self.counters, &mut self.events);
        Ok(Inbound::Packet {
            next_header,
            payload: h..payload_end,
            seq,
        })
    }
}
