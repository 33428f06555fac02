"""gunicorn settings for measuring: eventi's own, plus tracemalloc in each worker (bench.paid_probe --tracemalloc).

The first SIGUSR2 starts tracing (once half the waits are held: tracing slows every allocation, and the
first waits must still be held when the last are); each later one writes a snapshot to
$BENCH_TRACEMALLOC_DIR/<pid>-<n>.snap, with <pid>-<n>.json beside it
(tracemalloc's own memory, the worker's PSS, live greenlets). Waits still starting count too. A snapshot
blocks the worker for seconds (Redis's heartbeat allows 15 s): keep the machine otherwise quiet. Never for
production: it slows every allocation and doubles what each costs.
"""
import json
import os
import signal
import tracemalloc
from pathlib import Path

from eventi.server.gunicorn_conf import *  # noqa: F401,F403
from eventi.server.gunicorn_conf import post_worker_init as _eventi_post_worker_init

FRAMES = int(os.environ.get("BENCH_TRACEMALLOC_FRAMES", "25"))


def post_worker_init(worker):  # type: ignore[no-redef]
    _eventi_post_worker_init(worker)
    import gevent

    taken = [0]

    def signalled():
        if tracemalloc.is_tracing():
            gevent.spawn(dump)
        else:
            tracemalloc.start(FRAMES)
            (Path(os.environ["BENCH_TRACEMALLOC_DIR"]) / f"{os.getpid()}-0.started").touch()

    def dump():
        import gc

        from greenlet import greenlet

        out = Path(os.environ["BENCH_TRACEMALLOC_DIR"])
        taken[0] += 1
        name = f"{os.getpid()}-{taken[0]}"
        gc.collect()
        snapshot = tracemalloc.take_snapshot()
        snapshot.dump(str(out / f"{name}.snap.tmp"))
        pss = next(int(line.split()[1]) * 1024 for line in Path("/proc/self/smaps_rollup").read_text().splitlines()
                   if line.startswith("Pss:"))
        info = {"tracemalloc_memory": tracemalloc.get_tracemalloc_memory(), "pss": pss,
                "traced": tracemalloc.get_traced_memory()[0],
                "greenlets": sum(1 for o in gc.get_objects() if isinstance(o, greenlet))}
        (out / f"{name}.json").write_text(json.dumps(info))
        os.rename(out / f"{name}.snap.tmp", out / f"{name}.snap")  # last: the probe waits for this name

    gevent.signal_handler(signal.SIGUSR2, signalled)
