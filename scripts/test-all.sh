#!/usr/bin/env bash
# Every test of dsmip, as root: installs the Debian packages the tests need, then runs the
# whole workspace's tests (unit, property, known-answer, Wireshark oracle, network-namespace
# lab with a real NAT and real strongSwan). Crates come from crates.io through cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/install-deps.sh
# Tests that build namespaces run side by side; each lab has unique names.
cargo test --workspace --locked 2>&1
