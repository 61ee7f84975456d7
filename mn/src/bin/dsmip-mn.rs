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

use anyhow::Result;
use clap::{Parser, Subcommand};
use dsmip_daemon::control::{self, ClientArgs};
use dsmip_daemon::log::{self, LogFormat};

use daemon::{config, status};

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
    log::init(format);
    log::runtime()?.block_on(daemon::run::run(cfg))
}

fn show(a: &ClientArgs) -> Result<()> {
    let socket = a.socket(|c| Ok(config::load(c)?.daemon.control_socket))?;
    let v = control::request("dsmip-mn", &socket, "status")?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("{}", status::human(&v));
    }
    Ok(())
}
