//! Logs (tracing, to stderr, human lines or JSON lines; `DSMIP_LOG` sets the filter) and the
//! current-thread tokio runtime both daemons run on.

use anyhow::{Context, Result};

/// `--log-format`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line per event for people.
    #[default]
    Human,
    /// One JSON object per line, fields flattened, for log collectors.
    Json,
}

/// Install the global subscriber: level from `DSMIP_LOG` (e.g. `debug`,
/// `info,ike=debug`), `info` when unset or invalid.
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("DSMIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// The single-threaded runtime: one task owns each daemon's engines (no locks).
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}
