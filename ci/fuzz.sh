#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for a fixed time: ci/fuzz.sh SECONDS [TARGET...]
# (default 60 s, all targets), one after the other (libFuzzer is single-core).
# Stable Rust is enough: the targets are built without a sanitizer (-s none), with
# debug assertions and overflow checks; fuzz/src/lib.rs caps single allocations
# (64 MiB unless a target sets more) since libFuzzer's -malloc_limit_mb needs one.
# Exits non-zero on the first target that crashes; its input is in
# fuzz/artifacts/TARGET/ and fuzz/triage.sh TARGET groups the crashes saved there.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame side_marks ring launch pool_wire codec socket_conn)
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
cargo fuzz build -s none
mkdir -p logs
status=0
for t in "${targets[@]}"; do
  mkdir -p corpus/"$t"
  # cargo fuzz rebuilds from the work tree at each run: name what it builds.
  commit=$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- ../crates ../fuzz || echo "+changes")
  echo "=== fuzz $t for $secs s on $commit"
  if cargo fuzz run -s none "$t" corpus/"$t" -- -max_total_time="$secs" -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 >logs/"$t".log 2>&1; then
    grep -E "^stat::number_of_executed_units|^Done" logs/"$t".log | tr '\n' ' '; echo
  else
    status=1
    echo "!!! $t crashed: see fuzz/logs/$t.log and fuzz/artifacts/$t/"
    grep -m1 -A1 "panicked at" logs/"$t".log || grep -m1 "ERROR" logs/"$t".log || true
  fi
done
exit $status
