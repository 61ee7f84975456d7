//! The receiver's anti-replay window (RFC 4303 §3.4.3) with extended sequence numbers
//! (RFC 4303 Appendix A).
//!
//! The window is a ring of 64-bit words one word larger than the window (the layout of
//! RFC 6479), so sliding forward clears whole words and never shifts bits. Checking is
//! split from updating as §3.4.3 asks: `check` before the ICV is verified, `update` only
//! after it verified, so a forged packet cannot move the window.

/// The default window of RFC 4303 §3.4.3 ("a window size of 64 SHOULD be the default").
pub const DEFAULT_WINDOW: u32 = 64;
/// The largest window accepted.
pub const MAX_WINDOW: u32 = 1 << 16;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayReason {
    /// Received before (RFC 4303 §3.4.3: duplicate).
    Duplicate,
    /// Left of the window.
    TooOld,
    /// Sequence number 0 is never sent (RFC 4303 §3.3.3: the first packet carries 1).
    Zero,
    /// With ESN: the inferred high half would wrap the 64-bit space.
    Wrapped,
}

impl ReplayReason {
    pub fn as_str(self) -> &'static str {
        match self {
            ReplayReason::Duplicate => "duplicate",
            ReplayReason::TooOld => "left of the window",
            ReplayReason::Zero => "sequence number 0",
            ReplayReason::Wrapped => "beyond the 64-bit sequence space",
        }
    }
}

/// An anti-replay window of `size` packets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    size: u64,
    esn: bool,
    /// Highest authenticated sequence number (full 64 bits with ESN), 0 before the first.
    top: u64,
    bits: Vec<u64>,
}

impl ReplayWindow {
    /// A window of `size` packets (rounded up to a multiple of 64, at least 64, at most
    /// [`MAX_WINDOW`]); `esn` selects 64-bit sequence numbers.
    pub fn new(size: u32, esn: bool) -> Self {
        let size = u64::from(size.clamp(64, MAX_WINDOW)).div_ceil(64) * 64;
        let words = (size / 64 + 1) as usize;
        ReplayWindow {
            size,
            esn,
            top: 0,
            bits: vec![0; words],
        }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The highest sequence number accepted so far.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// The full sequence number of a packet carrying the low 32 bits `seq_lo`: with ESN the
    /// high half is inferred as RFC 4303 Appendix A2.2 says; `Err(Wrapped)` past 2^64.
    pub fn infer(&self, seq_lo: u32) -> Result<u64, ReplayReason> {
        if !self.esn {
            return Ok(u64::from(seq_lo));
        }
        let th = (self.top >> 32) as u32;
        let tl = self.top as u32;
        let w = self.size as u32;
        let high = if tl >= w - 1 {
            // Case A: the window lies within one subspace.
            if seq_lo >= tl - (w - 1) {
                Some(th)
            } else {
                th.checked_add(1)
            }
        } else if seq_lo >= tl.wrapping_sub(w - 1) {
            // Case B: the window spans two subspaces; this one is in the lower.
            th.checked_sub(1)
        } else {
            Some(th)
        };
        match high {
            Some(h) => Ok((u64::from(h) << 32) | u64::from(seq_lo)),
            // Below subspace 0: older than anything sent; past the top: wrapped.
            None if tl < w - 1 => Err(ReplayReason::TooOld),
            None => Err(ReplayReason::Wrapped),
        }
    }

    /// Whether `seq` (full) would be accepted; does not change the window.
    pub fn check(&self, seq: u64) -> Result<(), ReplayReason> {
        if seq == 0 {
            return Err(ReplayReason::Zero);
        }
        if seq > self.top {
            return Ok(());
        }
        if self.top - seq >= self.size {
            return Err(ReplayReason::TooOld);
        }
        let (w, b) = self.slot(seq);
        if self.bits[w] & (1 << b) != 0 {
            return Err(ReplayReason::Duplicate);
        }
        Ok(())
    }

    /// Record `seq` (full) as received; call only after its ICV verified and `check` passed.
    pub fn update(&mut self, seq: u64) {
        if seq > self.top {
            let n = self.bits.len() as u64;
            let old_word = self.top / 64;
            let new_word = seq / 64;
            // Clear the words the window slides into, at most the whole ring.
            let clear = (new_word - old_word).min(n);
            for i in 1..=clear {
                let idx = ((old_word + i) % n) as usize;
                self.bits[idx] = 0;
            }
            self.top = seq;
        }
        let (w, b) = self.slot(seq);
        self.bits[w] |= 1 << b;
    }

    fn slot(&self, seq: u64) -> (usize, u32) {
        let n = self.bits.len() as u64;
        (((seq / 64) % n) as usize, (seq % 64) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, seq: u64) -> Result<(), ReplayReason> {
        w.check(seq)?;
        w.update(seq);
        Ok(())
    }

    #[test]
    fn slide_duplicate_and_left_edge() {
        let mut w = ReplayWindow::new(64, false);
        assert_eq!(accept(&mut w, 0), Err(ReplayReason::Zero));
        for s in 1..=100 {
            accept(&mut w, s).unwrap();
        }
        assert_eq!(accept(&mut w, 100), Err(ReplayReason::Duplicate));
        assert_eq!(accept(&mut w, 37), Err(ReplayReason::Duplicate));
        // 100 - 64 = 36 is just outside the window of 64 (37..=100).
        assert_eq!(w.check(36), Err(ReplayReason::TooOld));
        accept(&mut w, 200).unwrap();
        // 137..=200 is the window now; 150 was never seen.
        accept(&mut w, 150).unwrap();
        assert_eq!(w.check(136), Err(ReplayReason::TooOld));
        accept(&mut w, 137).unwrap();
    }

    #[test]
    fn far_future_clears_everything() {
        let mut w = ReplayWindow::new(128, false);
        for s in 1..=128 {
            accept(&mut w, s).unwrap();
        }
        accept(&mut w, 1_000_000).unwrap();
        // Every slot below the new top inside the window is free again.
        for s in (1_000_000 - 127)..1_000_000 {
            assert_eq!(w.check(s), Ok(()), "seq {s}");
        }
        assert_eq!(w.check(1_000_000 - 128), Err(ReplayReason::TooOld));
    }

    #[test]
    fn large_window() {
        let mut w = ReplayWindow::new(1024, false);
        assert_eq!(w.size(), 1024);
        accept(&mut w, 2000).unwrap();
        accept(&mut w, 977).unwrap();
        assert_eq!(w.check(976), Err(ReplayReason::TooOld));
        assert_eq!(accept(&mut w, 977), Err(ReplayReason::Duplicate));
    }

    #[test]
    fn esn_inference_across_the_wrap() {
        let mut w = ReplayWindow::new(64, true);
        let base = (1u64 << 32) - 10;
        accept(&mut w, base).unwrap();
        // Low half 5 after top 2^32-10: case A, belongs to the next subspace.
        assert_eq!(w.infer(5), Ok((1u64 << 32) + 5));
        let s5 = w.infer(5).unwrap();
        accept(&mut w, s5).unwrap();
        assert_eq!(w.top(), (1u64 << 32) + 5);
        // Now case B: low half 0xffff_fff8 is still inside the window, in subspace 0.
        let s = w.infer(0xffff_fff8).unwrap();
        assert_eq!(s, 0xffff_fff8);
        accept(&mut w, s).unwrap();
        assert_eq!(w.check(base), Err(ReplayReason::Duplicate));
        // Low half 6 is in the current subspace.
        assert_eq!(w.infer(6), Ok((1u64 << 32) + 6));
    }

    #[test]
    fn esn_top_of_space() {
        let mut w = ReplayWindow::new(64, true);
        accept(&mut w, u64::MAX - 1).unwrap();
        accept(&mut w, u64::MAX).unwrap();
        assert_eq!(w.infer(3), Err(ReplayReason::Wrapped));
        assert_eq!(w.infer(0xffff_fff0), Ok(u64::MAX - 15));
    }

    #[test]
    fn esn_below_zero_is_old() {
        let mut w = ReplayWindow::new(64, true);
        accept(&mut w, 3).unwrap();
        // Case B at the very start: a low half "before" 3 in subspace -1 does not exist.
        assert_eq!(w.infer(0xffff_fffe), Err(ReplayReason::TooOld));
        assert_eq!(w.infer(2), Ok(2));
    }
}
