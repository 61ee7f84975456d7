//! `dsmip-ha`: the DSMIPv6 home agent daemon (RFC 5555) and its control client.
//!
//! ```text
//! dsmip-ha check-config FILE
//! dsmip-ha run --config FILE [--log-format human|json]
//! dsmip-ha bindings [--json] (--config FILE | --socket PATH)
//! dsmip-ha leases [--json] (--config FILE | --socket PATH)
//! ```

#[path = "../daemon/mod.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use daemon::{config, report, serve};

#[derive(Parser, Debug)]
#[command(name = "dsmip-ha", version, about = "DSMIPv6 home agent (RFC 5555)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Parse and validate a configuration file; errors name the file, line and key.
    CheckConfig { file: PathBuf },
    /// Run the home agent until SIGTERM or SIGINT.
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Show the binding cache of a running home agent.
    Bindings(ClientArgs),
    /// Show the IPv4 home address leases of a running home agent.
    Leases(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// The daemon's configuration file (its `daemon.control_socket` is used).
    #[arg(long, conflicts_with = "socket")]
    config: Option<PathBuf>,
    /// The control socket path.
    #[arg(long)]
    socket: Option<PathBuf>,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::CheckConfig { file } => check_config(&file),
        Cmd::Run { config, log_format } => run(&config, log_format),
        Cmd::Bindings(a) => show("bindings", &a),
        Cmd::Leases(a) => show("leases", &a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsmip-ha: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> Result<()> {
    let cfg = config::load(file)?;
    println!(
        "{}: ok (UDP {}:{}, {} mobile node entries, {} IPv4 pools, require_ipsec = {})",
        file.display(),
        cfg.listen_v4(),
        cfg.daemon.port,
        cfg.home_agent.mobile_nodes.len(),
        cfg.home_agent.ipv4_pools.len(),
        cfg.daemon.require_ipsec
    );
    if !cfg.daemon.require_ipsec {
        println!(
            "warning: require_ipsec = false accepts unprotected Binding Updates: lab use only"
        );
    }
    Ok(())
}

fn run(file: &Path, format: LogFormat) -> Result<()> {
    let cfg = config::load(file)?;
    let filter = tracing_subscriber::EnvFilter::try_from_env("DSMIP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    rt.block_on(daemon::run::run(cfg, file))
}

fn show(kind: &str, a: &ClientArgs) -> Result<()> {
    let socket = match (&a.socket, &a.config) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => config::load(c)?.daemon.control_socket,
        (None, None) => anyhow::bail!("give --config FILE or --socket PATH"),
    };
    let text = serve::client(&socket, kind)?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("control socket answer is not JSON: {text}"))?;
    if let Some(e) = v.get("error") {
        anyhow::bail!("the daemon refused the request: {e}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", report::human_table(kind, &v));
    }
    Ok(())
}
