#!/usr/bin/env bash
# Install what dsmip's tests and demo need on a Debian 12 machine, as root: Debian packages
# (tshark, strongSwan with kernel-libipsec, iproute2, nftables, ...) and a Rust toolchain
# check. Idempotent: packages already present are not fetched again.
set -euo pipefail

PACKAGES=(
  tshark
  strongswan-charon strongswan-swanctl strongswan-pki
  libcharon-extra-plugins libstrongswan-extra-plugins libstrongswan-standard-plugins
  iproute2 nftables iputils-ping tcpdump iperf3 dnsmasq-base python3 util-linux procps
)

if [ "$(id -u)" != 0 ]; then
  echo "install-deps: run as root (network namespaces and packages need it)" >&2
  exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  for d in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
    [ -x "$d/cargo" ] && export PATH="$d:$PATH"
  done
fi
command -v cargo >/dev/null 2>&1 || {
  echo "install-deps: no cargo on PATH. dsmip needs Rust 1.85 or newer from rustup (Debian 12's" >&2
  echo "own cargo is 1.63, too old); machines of this project's kind come with it." >&2
  exit 1
}
rustc_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [ "${rustc_minor:-0}" -lt 85 ]; then
  echo "install-deps: $(rustc --version) is older than the 1.85 dsmip needs" >&2
  exit 1
fi
