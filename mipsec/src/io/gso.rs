//! Userspace TCP segmentation and checksum completion for packets read from a TUN device
//! with offloads (`virtio_net_hdr`): what the kernel would have done in the NIC. A TCP
//! super-packet becomes MSS-sized segments with their own IP length, identification and
//! checksum, TCP sequence number, flags (FIN and PSH only on the last, CWR only on the
//! first, as RFC 3168 §6.1.1 / Linux's tcp_gso_segment do) and complete checksums.

use super::tun::{
    VnetHdr, VNET_F_NEEDS_CSUM, VNET_GSO_NONE, VNET_GSO_TCPV4, VNET_GSO_TCPV6, VNET_HDR_LEN,
};
use crate::wire::checksum;

const TCP_FIN: u8 = 0x01;
const TCP_PSH: u8 = 0x08;
const TCP_CWR: u8 = 0x80;

/// Complete a partial transport checksum (`NEEDS_CSUM`): the field at
/// `csum_start + csum_offset` holds the pseudo-header sum; fold in the rest.
pub fn complete_checksum(pkt: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let at = csum_start + csum_offset;
    if at + 2 > pkt.len() || csum_start > pkt.len() {
        return false;
    }
    let c = checksum::finish(checksum::sum(0, &pkt[csum_start..]));
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

/// Splits one packet read from an offloading TUN device into the packets it stands for:
/// itself (checksum completed) when it is not a GSO packet, else its TCP segments.
#[derive(Debug)]
pub struct Segmenter<'p> {
    pkt: &'p [u8],
    v4: bool,
    gso: bool,
    ip_len: usize,
    tcp: usize,
    hl: usize,
    mss: usize,
    count: usize,
    next: usize,
}

impl<'p> Segmenter<'p> {
    /// `None` for a packet that cannot be handled (drop it; TCP retransmits).
    pub fn new(h: &VnetHdr, pkt: &'p mut [u8]) -> Option<Self> {
        if h.gso_type == VNET_GSO_NONE {
            if h.flags & VNET_F_NEEDS_CSUM != 0
                && !complete_checksum(pkt, h.csum_start.into(), h.csum_offset.into())
            {
                return None;
            }
            let len = pkt.len();
            return Some(Segmenter {
                pkt,
                v4: false,
                gso: false,
                ip_len: 0,
                tcp: 0,
                hl: len,
                mss: 0,
                count: 1,
                next: 0,
            });
        }
        if h.gso_type != VNET_GSO_TCPV4 && h.gso_type != VNET_GSO_TCPV6 {
            return None;
        }
        let v4 = h.gso_type == VNET_GSO_TCPV4;
        let ip_len = if v4 {
            usize::from(*pkt.first()? & 0x0f) * 4
        } else {
            40
        };
        let tcp = usize::from(h.csum_start);
        if tcp < ip_len || tcp + 20 > pkt.len() {
            return None;
        }
        let hl = tcp + usize::from(pkt[tcp + 12] >> 4) * 4;
        let mss = usize::from(h.gso_size);
        if mss == 0 || hl > pkt.len() {
            return None;
        }
        let count = (pkt.len() - hl).div_ceil(mss).max(1);
        Some(Segmenter {
            pkt,
            v4,
            gso: true,
            ip_len,
            tcp,
            hl,
            mss,
            count,
            next: 0,
        })
    }

    /// Number of packets this one stands for.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Length of the largest packet to come.
    pub fn max_len(&self) -> usize {
        if self.gso {
            self.hl + self.mss
        } else {
            self.pkt.len()
        }
    }

    /// Write the next packet into `out`; its length, or `None` when all were written or
    /// `out` is too small.
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        if self.next >= self.count {
            return None;
        }
        let k = self.next;
        let pkt = self.pkt;
        if !self.gso {
            out.get_mut(..pkt.len())?.copy_from_slice(pkt);
            self.next += 1;
            return Some(pkt.len());
        }
        let (hl, tcp, mss) = (self.hl, self.tcp, self.mss);
        let start = hl + k * mss;
        let end = (start + mss).min(pkt.len());
        let len = hl + (end - start);
        let seg = out.get_mut(..len)?;
        seg[..hl].copy_from_slice(&pkt[..hl]);
        seg[hl..].copy_from_slice(&pkt[start..end]);
        if self.v4 {
            let id0 = u16::from_be_bytes([pkt[4], pkt[5]]);
            seg[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            seg[4..6].copy_from_slice(&id0.wrapping_add(k as u16).to_be_bytes());
            seg[10..12].fill(0);
            let c = checksum::checksum(&seg[..self.ip_len]);
            seg[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            seg[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
        }
        let seq0 = u32::from_be_bytes([pkt[tcp + 4], pkt[tcp + 5], pkt[tcp + 6], pkt[tcp + 7]]);
        seg[tcp + 4..tcp + 8].copy_from_slice(&seq0.wrapping_add((k * mss) as u32).to_be_bytes());
        let mut f = pkt[tcp + 13];
        if k + 1 < self.count {
            f &= !(TCP_FIN | TCP_PSH);
        }
        if k > 0 {
            f &= !TCP_CWR;
        }
        seg[tcp + 13] = f;
        seg[tcp + 16..tcp + 18].fill(0);
        let tcp_len = len - tcp;
        let pseudo = if self.v4 {
            checksum::pseudo_v4(&ipv4(&seg[12..16]), &ipv4(&seg[16..20]), 6, tcp_len as u16)
        } else {
            checksum::pseudo_v6(&ipv6(&seg[8..24]), &ipv6(&seg[24..40]), 6, tcp_len as u32)
        };
        let c = checksum::finish(checksum::sum(pseudo, &seg[tcp..]));
        seg[tcp + 16..tcp + 18].copy_from_slice(&c.to_be_bytes());
        self.next += 1;
        Some(len)
    }
}

fn ipv4(b: &[u8]) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn ipv6(b: &[u8]) -> std::net::Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(b);
    std::net::Ipv6Addr::from(o)
}

const TCP_ACK: u8 = 0x10;
/// Largest IP packet a super-packet may become.
const MAX_SUPER: usize = 65_535;

/// The reverse of [`Segmenter`]: merges consecutive in-order TCP segments of one flow into
/// one super-packet written to an offloading TUN device with a GSO `virtio_net_hdr`, so
/// the kernel forwards (or delivers) dozens of segments as one (what GRO does in a NIC
/// driver). Only plain bulk segments merge: same addresses, ports, TCP header apart from
/// sequence number, flags ACK (PSH allowed on the last), contiguous sequence numbers,
/// equal payload sizes with a possibly shorter last. Anything else passes through alone.
#[derive(Debug)]
pub struct Coalescer {
    buf: Vec<u8>,
    /// Octets of IP packet in `buf` after the vnet header.
    len: usize,
    tcp: usize,
    hl: usize,
    mss: usize,
    next_seq: u32,
    count: usize,
    v4: bool,
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescer {
    pub fn new() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + MAX_SUPER],
            len: 0,
            tcp: 0,
            hl: 0,
            mss: 0,
            next_seq: 0,
            count: 0,
            v4: false,
            closed: false,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Packets merged so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// (IP header length, TCP header end) when `pkt` is a bulk TCP segment that may merge.
    fn tcp_shape(pkt: &[u8]) -> Option<(bool, usize, usize)> {
        let v4 = pkt.first()? >> 4 == 4;
        let ip = if v4 {
            // No options, not a fragment, protocol TCP.
            if pkt[0] != 0x45
                || pkt.len() < 40
                || pkt[9] != 6
                || u16::from_be_bytes([pkt[6], pkt[7]]) & 0x3fff != 0
            {
                return None;
            }
            20
        } else {
            if pkt.len() < 60 || pkt[6] != 6 {
                return None;
            }
            40
        };
        let hl = ip + usize::from(pkt[ip + 12] >> 4) * 4;
        let flags = pkt[ip + 13];
        if hl >= pkt.len() || flags & !(TCP_PSH) != TCP_ACK {
            return None;
        }
        Some((v4, ip, hl))
    }

    /// Add `pkt` (a whole IP packet). `false` when it cannot join what is held: take the
    /// held packet first, then push again (an empty coalescer always accepts).
    pub fn push(&mut self, pkt: &[u8]) -> bool {
        if pkt.len() > MAX_SUPER {
            return false;
        }
        let shape = Self::tcp_shape(pkt);
        if self.count == 0 {
            self.buf[VNET_HDR_LEN..VNET_HDR_LEN + pkt.len()].copy_from_slice(pkt);
            self.len = pkt.len();
            self.count = 1;
            match shape {
                Some((v4, tcp, hl)) => {
                    self.v4 = v4;
                    self.tcp = tcp;
                    self.hl = hl;
                    self.mss = pkt.len() - hl;
                    let seq = u32::from_be_bytes([
                        pkt[tcp + 4],
                        pkt[tcp + 5],
                        pkt[tcp + 6],
                        pkt[tcp + 7],
                    ]);
                    self.next_seq = seq.wrapping_add(self.mss as u32);
                    self.closed = pkt[tcp + 13] & TCP_PSH != 0;
                }
                None => self.closed = true,
            }
            return true;
        }
        let Some((v4, tcp, hl)) = shape else {
            return false;
        };
        if self.closed || v4 != self.v4 || tcp != self.tcp || hl != self.hl {
            return false;
        }
        let held = &self.buf[VNET_HDR_LEN..VNET_HDR_LEN + hl];
        let same_ip = if v4 {
            held[..2] == pkt[..2] && held[6..10] == pkt[6..10] && held[12..20] == pkt[12..20]
        } else {
            held[..4] == pkt[..4] && held[6..40] == pkt[6..40]
        };
        // Ports, ack, data offset, window, urgent pointer and options equal; flags ACK.
        let t = tcp;
        let same_tcp = held[t..t + 4] == pkt[t..t + 4]
            && held[t + 8..t + 13] == pkt[t + 8..t + 13]
            && held[t + 14..t + 16] == pkt[t + 14..t + 16]
            && held[t + 18..hl] == pkt[t + 18..hl];
        let seq = u32::from_be_bytes([pkt[t + 4], pkt[t + 5], pkt[t + 6], pkt[t + 7]]);
        let payload = pkt.len() - hl;
        if !same_ip
            || !same_tcp
            || seq != self.next_seq
            || payload > self.mss
            || self.len + payload > MAX_SUPER
        {
            return false;
        }
        let at = VNET_HDR_LEN + self.len;
        self.buf[at..at + payload].copy_from_slice(&pkt[hl..]);
        self.len += payload;
        self.count += 1;
        self.next_seq = seq.wrapping_add(payload as u32);
        // PSH carries over to the merged header; a short or PSH segment ends the run.
        if pkt[t + 13] & TCP_PSH != 0 {
            self.buf[VNET_HDR_LEN + t + 13] |= TCP_PSH;
            self.closed = true;
        }
        if payload < self.mss {
            self.closed = true;
        }
        true
    }

    /// The held packet with its `virtio_net_hdr`, ready for the TUN device; empties the
    /// coalescer. A single packet goes out unchanged with a zero header.
    pub fn take(&mut self) -> &[u8] {
        let n = std::mem::take(&mut self.count);
        let len = self.len;
        let (hdr, pkt) = self.buf.split_at_mut(VNET_HDR_LEN);
        hdr.fill(0);
        if n > 1 {
            let pkt = &mut pkt[..len];
            let (tcp, hl) = (self.tcp, self.hl);
            let tcp_len = len - tcp;
            let pseudo = if self.v4 {
                pkt[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                pkt[10..12].fill(0);
                let c = checksum::checksum(&pkt[..20]);
                pkt[10..12].copy_from_slice(&c.to_be_bytes());
                checksum::pseudo_v4(&ipv4(&pkt[12..16]), &ipv4(&pkt[16..20]), 6, tcp_len as u16)
            } else {
                pkt[4..6].copy_from_slice(&((len - 40) as u16).to_be_bytes());
                checksum::pseudo_v6(&ipv6(&pkt[8..24]), &ipv6(&pkt[24..40]), 6, tcp_len as u32)
            };
            // CHECKSUM_PARTIAL: the field holds the folded pseudo-header sum, not inverted.
            let partial = !checksum::finish(pseudo);
            pkt[tcp + 16..tcp + 18].copy_from_slice(&partial.to_be_bytes());
            hdr[0] = VNET_F_NEEDS_CSUM;
            hdr[1] = if self.v4 {
                VNET_GSO_TCPV4
            } else {
                VNET_GSO_TCPV6
            };
            hdr[2..4].copy_from_slice(&(hl as u16).to_ne_bytes());
            hdr[4..6].copy_from_slice(&(self.mss as u16).to_ne_bytes());
            hdr[6..8].copy_from_slice(&(tcp as u16).to_ne_bytes());
            hdr[8..10].copy_from_slice(&16u16.to_ne_bytes());
        }
        self.len = 0;
        self.closed = false;
        &self.buf[..VNET_HDR_LEN + len]
    }
}
