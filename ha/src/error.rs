//! The one error type of the home agent crate. Network input never produces an `Error`:
//! a bad Binding Update ends in a Binding Acknowledgement status or a counted drop. Errors
//! are for configuration and for the lease store, and each names the file or key at fault.

use std::path::PathBuf;

use thiserror::Error;

/// A configuration or lease store failure.
#[derive(Debug, Error)]
pub enum Error {
    /// The configuration is inconsistent.
    #[error("configuration {key}: {reason}")]
    Config { key: String, reason: String },
    /// The lease store file cannot be opened or created (unreadable, not a redb file,
    /// corrupt, locked by another process).
    #[error("lease store {path}: cannot open: {source}")]
    StoreOpen {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    /// The path exists but cannot be read, or is not a redb file: it is left untouched.
    #[error("lease store {path}: {reason}")]
    NotAStore { path: PathBuf, reason: String },
    /// A lease store transaction failed.
    #[error("lease store {path}: {op}: {reason}")]
    Store {
        path: PathBuf,
        op: &'static str,
        reason: String,
    },
    /// A lease record does not decode, or two leases claim one IPv4 address.
    #[error("lease store {path}: corrupt lease record {key}: {reason}")]
    CorruptLease {
        path: PathBuf,
        key: String,
        reason: &'static str,
    },
}

pub type Result<T> = core::result::Result<T, Error>;
