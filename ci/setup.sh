#!/usr/bin/env bash
# Installs what the checks need beyond the Rust toolchain, cargo-nextest, gcc and Python.
set -euo pipefail
command -v cargo-nextest >/dev/null || cargo install --locked cargo-nextest
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy || true
# Headless Chromium renders `multiproc compare --html` in crates/multiproc-cli/tests/cli.rs.
command -v chromium >/dev/null || { apt-get update && apt-get install -y chromium; }
# memcheck for ci/valgrind.sh.
command -v valgrind >/dev/null || { apt-get update && apt-get install -y valgrind; }
