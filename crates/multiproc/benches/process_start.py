"""Python peer for benches/process_start.rs: start+join times and idle-worker memory.

Driven by the Rust bench over stdin/stdout, one command per line, so that Python's rows
are interleaved with the Rust rows in the same rounds:

    time <kind> <n>   ->  total nanoseconds for n start+join cycles of an empty function
                          (kind: fork, spawn, forkserver, thread)
    uss <method>      ->  unique memory (Private_Clean + Private_Dirty, bytes) of an idle
                          Process (method: fork, spawn, forkserver) blocked on an Event
    quit

Anything else it prints goes to stderr.
"""

import multiprocessing
import sys
import threading
import time


def empty():
    pass


def idle(ready, go):
    ready.set()
    go.wait()


def uss_of(pid):
    total = 0
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1]) * 1024
    return total


def time_kind(contexts, kind, n):
    if kind == "thread":
        start = time.perf_counter_ns()
        for _ in range(n):
            t = threading.Thread(target=empty)
            t.start()
            t.join()
        return time.perf_counter_ns() - start
    ctx = contexts[kind]
    start = time.perf_counter_ns()
    for _ in range(n):
        p = ctx.Process(target=empty)
        p.start()
        p.join()
    return time.perf_counter_ns() - start


def idle_uss(contexts, method):
    ctx = contexts[method]
    ready, go = ctx.Event(), ctx.Event()
    p = ctx.Process(target=idle, args=(ready, go))
    p.start()
    ready.wait()
    # Let the child settle into go.wait() before reading its memory.
    time.sleep(0.05)
    uss = uss_of(p.pid)
    go.set()
    p.join()
    return uss


def main():
    contexts = {m: multiprocessing.get_context(m) for m in ("fork", "spawn", "forkserver")}
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        if words[0] == "time":
            answer = time_kind(contexts, words[1], int(words[2]))
        elif words[0] == "uss":
            answer = idle_uss(contexts, words[1])
        else:
            print(f"unknown command {line!r}", file=sys.stderr)
            answer = -1
        sys.stdout.write(f"{answer}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
