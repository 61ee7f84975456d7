//! The Security Association Database (RFC 4301 §4.4.2): inbound SAs keyed by SPI (the
//! receiver chose it, so the SPI alone identifies a unicast SA, §4.1), outbound SAs keyed
//! by SPI too, which is what an SPD entry's PROTECT action refers to.

use std::collections::HashMap;

use super::sa::{Inbound, InboundSa, OutboundSa, SaEvent};
use super::EspError;

/// The SAD of one node.
#[derive(Debug, Default)]
pub struct Sad {
    inbound: HashMap<u32, InboundSa>,
    outbound: HashMap<u32, OutboundSa>,
}

impl Sad {
    pub fn new() -> Self {
        Sad::default()
    }

    /// Installs an inbound SA, returning the one it replaces.
    pub fn insert_inbound(&mut self, sa: InboundSa) -> Option<InboundSa> {
        self.inbound.insert(sa.spi(), sa)
    }

    /// Installs an outbound SA, returning the one it replaces.
    pub fn insert_outbound(&mut self, sa: OutboundSa) -> Option<OutboundSa> {
        self.outbound.insert(sa.spi(), sa)
    }

    pub fn remove_inbound(&mut self, spi: u32) -> Option<InboundSa> {
        self.inbound.remove(&spi)
    }

    pub fn remove_outbound(&mut self, spi: u32) -> Option<OutboundSa> {
        self.outbound.remove(&spi)
    }

    pub fn inbound(&self, spi: u32) -> Option<&InboundSa> {
        self.inbound.get(&spi)
    }

    pub fn outbound_mut(&mut self, spi: u32) -> Option<&mut OutboundSa> {
        self.outbound.get_mut(&spi)
    }

    pub fn inbound_mut(&mut self, spi: u32) -> Option<&mut InboundSa> {
        self.inbound.get_mut(&spi)
    }

    pub fn len(&self) -> usize {
        self.inbound.len() + self.outbound.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the SA by the packet's SPI (RFC 4303 §3.4.2) and decapsulates in place.
    pub fn decapsulate(&mut self, pkt: &mut [u8]) -> Result<(u32, Inbound), EspError> {
        crate::error::need(pkt, "esp.spi", 0, 4)?;
        let spi = u32::from_be_bytes([pkt[0], pkt[1], pkt[2], pkt[3]]);
        let sa = self
            .inbound
            .get_mut(&spi)
            .ok_or(EspError::UnknownSpi { spi })?;
        Ok((spi, sa.decapsulate(pkt)?))
    }

    /// Seals with the outbound SA `spi`.
    pub fn encapsulate(
        &mut self,
        spi: u32,
        next_header: u8,
        payload: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let sa = self
            .outbound
            .get_mut(&spi)
            .ok_or(EspError::UnknownSpi { spi })?;
        sa.encapsulate(next_header, payload, out)
    }

    /// The next event of any SA.
    pub fn poll_event(&mut self) -> Option<SaEvent> {
        self.outbound
            .values_mut()
            .find_map(|sa| sa.poll_event())
            .or_else(|| self.inbound.values_mut().find_map(|sa| sa.poll_event()))
    }
}
