//! `dsmip-esp-fwd`: see `interop::esp_fwd`.

use clap::Parser;

fn main() -> anyhow::Result<()> {
    interop::esp_fwd::run(interop::esp_fwd::Args::parse())
}
