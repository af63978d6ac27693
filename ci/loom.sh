#!/usr/bin/env bash
# Loom models of the atomic protocols (src/**/loom_*), bounded to fit CI.
set -euo pipefail
RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 CARGO_TARGET_DIR=target/loom \
  cargo test -p multiproc --lib --release loom
