#!/bin/sh
# A multiproc `Spawn` child under memcheck: ci/valgrind.sh passes this script to
# `Builder::executable`, so the child is started as `valgrind $VALGRIND_CHILD_EXE` with the
# launch descriptors it inherits. Each child writes its own log, which ci/valgrind.sh reads.
exec valgrind $VALGRIND_FLAGS --log-file="$VALGRIND_LOG_DIR/child.%p.log" "$VALGRIND_CHILD_EXE"
