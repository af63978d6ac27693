#!/usr/bin/env python3
"""The Python anchors of the cluster rows: RQ, Celery and
Dramatiq running the same trivial `add(x, 1)` against one Redis, 2 workers each.

    benches/cluster_anchors.sh            # makes a venv, installs the pinned versions, runs this

Prints, per system: submit->all results for N tasks (ms per task, wall) and one task
at a time (ms per round trip). Starts its own redis-server on a free loopback port and
stops it, and every worker, by PID. Environment: N (default 2000), S (serial, 100).
"""
import os, socket, subprocess, sys, tempfile, time, shutil

N = int(os.environ.get("N", "2000"))
S = int(os.environ.get("S", "100"))
BIN = os.path.dirname(sys.executable)
TMP = tempfile.mkdtemp(prefix="mp-anchors-")

JOBS = "def add(x, y):\n    return x + y\n"
CTASKS = """import os
from celery import Celery
app = Celery("ctasks", broker=os.environ["URL"], backend=os.environ["URL"])
app.conf.update(task_default_queue="bench", worker_prefetch_multiplier=4, result_expires=600)
@app.task
def add(x, y):
    return x + y
"""
DTASKS = """import os
import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend
broker = RedisBroker(url=os.environ["URL"])
broker.add_middleware(Results(backend=RedisBackend(url=os.environ["URL"])))
dramatiq.set_broker(broker)
@dramatiq.actor(store_results=True, queue_name="bench")
def add(x, y):
    return x + y
"""


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stop(procs):
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def run_rq(url, env):
    from redis import Redis
    from rq import Queue, Worker
    r = Redis.from_url(url)
    r.flushdb()
    q = Queue("bench", connection=r)
    ws = [subprocess.Popen([f"{BIN}/rq", "worker", "-q", "-u", url, "-w", "rq.worker.SimpleWorker", "bench"],
                           cwd=TMP, env=env, stdout=subprocess.DEVNULL) for _ in range(2)]
    try:
        t = time.time()
        while len(Worker.all(connection=r)) < 2:
            assert time.time() - t < 60, "rq workers did not start"
            time.sleep(0.05)
        t = time.perf_counter()
        jobs = [q.enqueue("jobs.add", i, 1, result_ttl=600) for i in range(N)]
        for j in jobs:
            while j.get_status(refresh=True) != "finished":
                time.sleep(0.01)
        wall = (time.perf_counter() - t) / N
        assert [j.return_value() for j in jobs[:3]] == [1, 2, 3]
        t = time.perf_counter()
        for i in range(S):
            j = q.enqueue("jobs.add", i, 1, result_ttl=600)
            while j.get_status(refresh=True) != "finished":
                time.sleep(0.0005)
        return wall, (time.perf_counter() - t) / S
    finally:
        stop(ws)


def run_celery(url, env):
    import ctasks
    w = subprocess.Popen([f"{BIN}/celery", "-A", "ctasks", "worker", "-c", "2", "-P", "prefork", "-Q", "bench",
                          "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
                         cwd=TMP, env=env, stdout=subprocess.DEVNULL)
    try:
        ctasks.add.delay(0, 0).get(timeout=120)
        t = time.perf_counter()
        rs = [ctasks.add.delay(i, 1) for i in range(N)]
        out = [r.get(timeout=600) for r in rs]
        wall = (time.perf_counter() - t) / N
        assert out[:3] == [1, 2, 3]
        t = time.perf_counter()
        for i in range(S):
            ctasks.add.delay(i, 1).get(timeout=60)
        return wall, (time.perf_counter() - t) / S
    finally:
        stop([w])


def run_dramatiq(url, env):
    import dtasks
    w = subprocess.Popen([f"{BIN}/dramatiq", "dtasks", "-p", "2", "-t", "1", "-Q", "bench"],
                         cwd=TMP, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dtasks.add.send(0, 0).get_result(block=True, timeout=120_000)
        t = time.perf_counter()
        ms = [dtasks.add.send(i, 1) for i in range(N)]
        out = [m.get_result(block=True, timeout=600_000) for m in ms]
        wall = (time.perf_counter() - t) / N
        assert out[:3] == [1, 2, 3]
        t = time.perf_counter()
        for i in range(S):
            dtasks.add.send(i, 1).get_result(block=True, timeout=60_000)
        return wall, (time.perf_counter() - t) / S
    finally:
        stop([w])


def main():
    for name, text in [("jobs.py", JOBS), ("ctasks.py", CTASKS), ("dtasks.py", DTASKS)]:
        with open(os.path.join(TMP, name), "w") as f:
            f.write(text)
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                              "--appendonly", "no", "--dir", TMP], stdout=subprocess.DEVNULL)
    env = dict(os.environ, URL=url, PYTHONPATH=TMP)
    os.environ.update(URL=url)
    sys.path.insert(0, TMP)
    try:
        t = time.time()
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.time() - t < 10, "redis-server did not start"
                time.sleep(0.02)
        load = open("/proc/loadavg").read().split()[:3]
        print(f"## Python anchors: {N} tasks, 2 workers, serial {S}; loadavg {' '.join(load)}")
        print("| system | per task (wall, submit -> all results) | one at a time |")
        print("|---|---|---|")
        for name, fn in [("rq (SimpleWorker)", run_rq), ("celery (prefork)", run_celery), ("dramatiq", run_dramatiq)]:
            try:
                wall, serial = fn(url, env)
                print(f"| {name} | {wall * 1e3:.2f} ms | {serial * 1e3:.2f} ms |", flush=True)
            except Exception as e:  # report and go on with the others
                print(f"| {name} | failed: {e!r} | |", flush=True)
    finally:
        stop([redis])
        shutil.rmtree(TMP, ignore_errors=True)


if __name__ == "__main__":
    main()
