#!/usr/bin/env bash
# The Python anchors beside benches/cluster.rs (manual, not in CI): a throwaway venv
# with the pinned versions below, then benches/cluster_anchors.py.
#   crates/multiproc/benches/cluster_anchors.sh          # N=2000 S=100 by default
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=$(mktemp -d "${TMPDIR:-/tmp}/mp-anchors-venv.XXXXXX")
trap 'rm -rf "$venv"' EXIT
command -v redis-server >/dev/null || { echo "needs redis-server (ci/with-redis.sh installs it)" >&2; exit 1; }
python3 -m venv "$venv"
"$venv/bin/pip" install -q 'rq==3.0.0' 'celery[redis]==5.7.0' 'dramatiq[redis]==2.2.1'
"$venv/bin/python" "$here/cluster_anchors.py"
