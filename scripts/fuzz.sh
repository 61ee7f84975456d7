#!/usr/bin/env bash
# Bounded fuzzing of every parser: scripts/fuzz.sh [SECONDS_PER_TARGET] (default 30).
# Needs cargo-fuzz (installed here if missing) and uses RUSTC_BOOTSTRAP=1 so the stable
# toolchain accepts the sanitizer flags. A crash stops the run with the target's exit code
# and leaves the input under fuzz/artifacts/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-30}
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for t in $(cargo fuzz list); do
  echo "== fuzz $t for ${secs}s"
  set +e +o pipefail
  RUSTC_BOOTSTRAP=1 cargo fuzz run "$t" -- -max_total_time="$secs" 2>&1 | tail -n 3
  rc=${PIPESTATUS[0]}
  set -e -o pipefail
  [ "$rc" -eq 0 ] || { echo "fuzz target $t failed (exit $rc); see fuzz/artifacts/$t/" >&2; exit "$rc"; }
done
