#!/usr/bin/env bash
# The dsmip demo, as root: installs what it needs, builds the daemons, and shows dsmip-mn
# behind a real NAT registering with dsmip-ha (IKEv2 + ESP) in network namespaces, pings
# and moves 4 MiB of TCP (checked byte for byte) over both home addresses through the
# ESP data SA, deregisters, then tears it all down.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-deps.sh
echo "Building (the first time takes a few minutes)..."
cargo build --quiet --locked -p ha -p mn -p interop --bins
exec target/debug/dsmip-demo --ha target/debug/dsmip-ha --mn target/debug/dsmip-mn
