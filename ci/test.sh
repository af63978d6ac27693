#!/usr/bin/env bash
# The README's test command.
set -euo pipefail
cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --doc
