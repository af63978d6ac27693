#!/usr/bin/env bash
# Both crates as they would be published: `cargo package` builds each from its .crate
# file alone (anything read from outside the package, like a README two directories up,
# fails here). `--workspace` packages multiproc-cli against the multiproc being packaged
# (a local overlay registry), since multiproc is not on crates.io yet. Needs the crates.io
# index (cached is enough: --offline works once the dependencies are downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo package --workspace --allow-dirty "$@"
# What the library ships: its README (the crate docs include it) and no stray files.
list=$(cargo package --list -p multiproc --allow-dirty "$@")
grep -qx README.md <<<"$list" || { echo "multiproc's package lacks README.md" >&2; exit 1; }
if grep -E '^(target|\.ci|ci)/' <<<"$list"; then echo "multiproc's package ships the files above" >&2; exit 1; fi
