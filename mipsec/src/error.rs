//! The one error type of the wire codecs: every variant names the field and its byte offset
//! from the start of the buffer that was handed to the parser.

use thiserror::Error;

/// A malformed input or an output that does not fit.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    /// The buffer ends before the field does.
    #[error("{field} at byte {offset}: truncated, needs {need} bytes, {have} present")]
    Truncated {
        field: &'static str,
        offset: usize,
        need: usize,
        have: usize,
    },
    /// The field holds a value the format forbids.
    #[error("{field} at byte {offset}: invalid value {value}: {reason}")]
    Invalid {
        field: &'static str,
        offset: usize,
        value: u64,
        reason: &'static str,
    },
    /// A checksum does not verify.
    #[error("{field} at byte {offset}: checksum {found:#06x}, expected {expected:#06x}")]
    Checksum {
        field: &'static str,
        offset: usize,
        found: u16,
        expected: u16,
    },
    /// The output buffer given to an emitter is too small.
    #[error("output buffer too small for {field}: needs {need} bytes, {have} given")]
    BufferTooSmall {
        field: &'static str,
        need: usize,
        have: usize,
    },
    /// A value cannot be represented on the wire (a lifetime that is not a multiple of 4 s,
    /// an option too long for its length byte, ...).
    #[error("{field}: cannot be encoded: {reason}")]
    Unencodable {
        field: &'static str,
        reason: &'static str,
    },
}

pub type Result<T> = core::result::Result<T, Error>;

impl Error {
    /// The byte offset the error refers to, when it refers to one.
    pub fn offset(&self) -> Option<usize> {
        match self {
            Error::Truncated { offset, .. }
            | Error::Invalid { offset, .. }
            | Error::Checksum { offset, .. } => Some(*offset),
            Error::BufferTooSmall { .. } | Error::Unencodable { .. } => None,
        }
    }

    /// The field the error refers to.
    pub fn field(&self) -> &'static str {
        match self {
            Error::Truncated { field, .. }
            | Error::Invalid { field, .. }
            | Error::Checksum { field, .. }
            | Error::BufferTooSmall { field, .. }
            | Error::Unencodable { field, .. } => field,
        }
    }

    /// The same error with its offset moved by `base`, for a parser that was handed a slice
    /// starting `base` bytes into the caller's buffer.
    #[must_use]
    pub fn shifted(mut self, base: usize) -> Self {
        match &mut self {
            Error::Truncated { offset, .. }
            | Error::Invalid { offset, .. }
            | Error::Checksum { offset, .. } => *offset += base,
            Error::BufferTooSmall { .. } | Error::Unencodable { .. } => {}
        }
        self
    }
}

/// `Err(Truncated)` unless `buf` holds `need` bytes from `offset`.
pub(crate) fn need(buf: &[u8], field: &'static str, offset: usize, len: usize) -> Result<()> {
    if buf.len() < offset.saturating_add(len) {
        return Err(Error::Truncated {
            field,
            offset,
            need: len,
            have: buf.len().saturating_sub(offset),
        });
    }
    Ok(())
}

/// `Err(BufferTooSmall)` unless `buf` holds `need` bytes.
pub(crate) fn room(buf: &[u8], field: &'static str, need: usize) -> Result<()> {
    if buf.len() < need {
        return Err(Error::BufferTooSmall {
            field,
            need,
            have: buf.len(),
        });
    }
    Ok(())
}
