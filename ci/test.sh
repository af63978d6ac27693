#!/usr/bin/env bash
# The README's test command, then the sync and ipc integration tests again in release
# (optimized code runs other interleavings; crossbeam runs both). The release build
# shares its dependencies with ci/examples.sh: together they add about 30 s.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --doc
# The tokio feature's doctests (the line above builds without features).
cargo test -p multiproc --doc --features tokio tokio_io
# The cluster feature's doctests: its module, task!, and #[multiproc::remote] with the
# compile-fail examples of what it refuses.
cargo test -p multiproc --doc --features cluster -- pool::cluster remote
release=()
for f in crates/multiproc/tests/{sync,ipc}_*.rs crates/multiproc/tests/conformance_{sync,ipc}.rs; do
  release+=(--test "$(basename "$f" .rs)")
done
cargo nextest run --release -p multiproc --no-fail-fast "${release[@]}"
