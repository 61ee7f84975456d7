//! `dsmip-mn`: the DSMIPv6 mobile node daemon (RFC 5555) and its control client.
//!
//! ```text
//! dsmip-mn check-config FILE
//! dsmip-mn run --config FILE [--log-format human|json]
//! dsmip-mn status [--json] (--config FILE | --socket PATH)
//! ```

#[path = "../daemon/mod.rs"]
mod daemon;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use daemon::{config, serve, status};

#[derive(Parser, Debug)]
#[command(name = "dsmip-mn", version, about = "DSMIPv6 mobile node (RFC 5555)")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Parse and validate a configuration file; errors name the file, line and key.
    CheckConfig { file: PathBuf },
    /// Run the mobile node until SIGTERM or SIGINT (then deregister).
    Run {
        #[arg(long)]
        config: PathBuf,
        #[arg(long, value_enum, default_value_t = LogFormat::Human)]
        log_format: LogFormat,
    },
    /// Show the binding state of a running mobile node.
    Status(ClientArgs),
}

#[derive(clap::Args, Debug)]
struct ClientArgs {
    /// Print JSON instead of text.
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
        Cmd::Status(a) => show(&a),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsmip-mn: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn check_config(file: &Path) -> Result<()> {
    let cfg = config::load(file)?;
    let m = &cfg.mobile_node;
    println!(
        "{}: ok (home address {}, home agent {} / {}, IKE identity {})",
        file.display(),
        m.home_address,
        m.home_agent.ipv6.map_or("-".into(), |a| a.to_string()),
        cfg.ha_v4().map_or("-".into(), |a| a.to_string()),
        cfg.ipsec.local_id
    );
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
    rt.block_on(daemon::run::run(cfg))
}

fn show(a: &ClientArgs) -> Result<()> {
    let socket = match (&a.socket, &a.config) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) => config::load(c)?.daemon.control_socket,
        (None, None) => anyhow::bail!("give --config FILE or --socket PATH"),
    };
    let text = serve::client(&socket, "status")?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("control socket answer is not JSON: {text}"))?;
    if let Some(e) = v.get("error") {
        anyhow::bail!("the daemon refused the request: {e}");
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", status::human(&v));
    }
    Ok(())
}
