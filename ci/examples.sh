#!/usr/bin/env bash
# Every example under a timeout.
set -euo pipefail
target=${CARGO_TARGET_DIR:-target}
cargo build --release -p multiproc --examples
for ex in crates/multiproc/examples/*.rs; do
  name=$(basename "$ex" .rs)
  echo "--- example $name"
  timeout 120 "$target"/release/examples/"$name" >/dev/null
done
cargo build --release -p multiproc-cli
timeout 120 "$target"/release/multiproc demo >/dev/null
timeout 120 "$target"/release/multiproc compare --quick >/dev/null
