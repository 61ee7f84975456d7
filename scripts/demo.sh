#!/usr/bin/env bash
# The dsmip demo, as root: installs what it needs, builds, and shows a mobile node behind a
# real NAT registering with the home agent in network namespaces, then tears it all down.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-deps.sh
echo "Building (the first time takes a few minutes)..."
cargo build --quiet --locked -p interop --bin dsmip-demo
exec target/debug/dsmip-demo
