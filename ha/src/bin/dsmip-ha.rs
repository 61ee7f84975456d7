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

use anyhow::Result;
use clap::{Parser, Subcommand};
use dsmip_daemon::control::{self, ClientArgs};
use dsmip_daemon::log::{self, LogFormat};

use daemon::{config, report};

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
    log::init(format);
    log::runtime()?.block_on(daemon::run::run(cfg, file))
}

fn show(kind: &str, a: &ClientArgs) -> Result<()> {
    let socket = a.socket(|c| Ok(config::load(c)?.daemon.control_socket))?;
    let v = control::request("dsmip-ha", &socket, kind)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", report::human_table(kind, &v));
    }
    Ok(())
}
