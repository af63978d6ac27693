#!/usr/bin/env bash
# memcheck on crates/multiproc/tests/valgrind.rs (its docs say what it does): first the
# program itself with shared memory, locks, pipes, queues and threads; then, with the
# program running natively, each of its `Spawn` children under memcheck (valgrind 3.19
# lacks pidfd_open, so a process under memcheck cannot start children).
set -euo pipefail
cd "$(dirname "$0")/.."
# The debug build ci/test.sh made (same flags, so nothing is rebuilt after it).
exe=$(cargo test --workspace --all-features --test valgrind --no-run --message-format=json |
  sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | tail -n 1)
[ -x "$exe" ] || { echo "valgrind target not built" >&2; exit 1; }
# Errors (invalid reads/writes, uninitialised values, bad frees, overlapping copies) and
# definite leaks fail. Memory still referenced at exit (statics, the background reaper
# thread's state) is not a leak, nor are the "possibly lost" blocks of the watchdog
# thread, still asleep when the program exits.
export VALGRIND_FLAGS="--error-exitcode=1 --leak-check=full --show-leak-kinds=definite
  --errors-for-leak-kinds=definite --track-fds=no --num-callers=40"

echo "--- memcheck: shm, locks, pipe, queue, threads, thread pool"
timeout 600 valgrind $VALGRIND_FLAGS "$exe" in-process

echo "--- memcheck: Spawn children"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
VALGRIND_CHILD_EXE=$exe VALGRIND_LOG_DIR=$logs \
  timeout 600 "$exe" spawn-through "$PWD/ci/valgrind-child.sh"
# A child killed on purpose may write no summary; the others must have run clean.
shopt -s nullglob
clean=0
for log in "$logs"/child.*.log; do
  if grep -q "ERROR SUMMARY: 0 errors" "$log"; then
    clean=$((clean + 1))
  elif grep -q "ERROR SUMMARY" "$log"; then
    cat "$log"
    echo "memcheck found errors in a Spawn child: $log" >&2
    exit 1
  fi
done
if [ "$clean" -lt 3 ]; then
  cat /dev/null "$logs"/child.*.log
  echo "expected at least 3 Spawn children checked by memcheck, got $clean" >&2
  exit 1
fi
echo "memcheck: this process and $clean Spawn children clean"
