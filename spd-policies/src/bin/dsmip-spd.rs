//! `dsmip-spd`: check, render and explain dsmip policy files.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use spd_policies::{check::check, explain, render, Backend, Error};

#[derive(Parser)]
#[command(
    name = "dsmip-spd",
    about = "Check, render and explain dsmip SPD policy files"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Report errors (exit 1) and warnings (exit 0) for each file.
    Check {
        /// Also warn about what this backend cannot express: native, strongswan, linux-xfrm.
        #[arg(long = "for", default_value = "native")]
        backend: Backend,
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Print the rendering for a backend: native, strongswan, linux-xfrm.
    Render {
        #[arg(long = "for")]
        backend: Backend,
        file: String,
    },
    /// Say which rule a packet matches and why the earlier ones did not.
    Explain {
        file: String,
        /// e.g. 'dir=out src=2001:db8::100 dst=2001:db8::1 proto=MH mh-type=BU'
        #[arg(long)]
        packet: String,
    },
}

fn load(file: &str) -> Result<(spd_policies::Policy, spd_policies::Compiled), Vec<Error>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![Error::Io {
            file: file.to_string(),
            reason: e.to_string(),
        }]
    })?;
    spd_policies::load(file, &text)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Check { backend, files } => {
            let mut failed = false;
            for f in &files {
                match load(f) {
                    Err(errs) => {
                        failed = true;
                        for e in errs {
                            eprintln!("{e}");
                        }
                    }
                    Ok((p, c)) => {
                        let mut warnings = check(&p, &c);
                        warnings.extend(render::render(&p, &c, backend).1);
                        for w in &warnings {
                            eprintln!("{w}");
                        }
                        println!(
                            "{f}: ok, {} rules, {} SPD entries, {} warnings",
                            p.rules.len(),
                            c.spd.len(),
                            warnings.len()
                        );
                    }
                }
            }
            if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        Cmd::Render { backend, file } => match load(&file) {
            Err(errs) => {
                for e in errs {
                    eprintln!("{e}");
                }
                ExitCode::from(1)
            }
            Ok((p, c)) => {
                let (text, warnings) = render::render(&p, &c, backend);
                for w in &warnings {
                    eprintln!("{w}");
                }
                print!("{text}");
                ExitCode::SUCCESS
            }
        },
        Cmd::Explain { file, packet } => {
            let pkt = match explain::parse_packet(&packet) {
                Ok(p) => p,
                Err(e) => {
                    eprintln!("--packet: {e}");
                    return ExitCode::from(2);
                }
            };
            match load(&file) {
                Err(errs) => {
                    for e in errs {
                        eprintln!("{e}");
                    }
                    ExitCode::from(1)
                }
                Ok((p, c)) => {
                    print!("{}", explain::explain(&p, &c, &pkt));
                    ExitCode::SUCCESS
                }
            }
        }
    }
}
