"""What one blocked greenlet costs, with no request around it: python -m bench.greenlet_probe.

Spawns 10,000 greenlets that each block on one gevent Event at a given call depth and prints the RSS
growth per greenlet (the floor under the benchmark's "RSS per held client", docs/benchmarks.md).
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from .stack import rss_bytes  # noqa: E402

GREENLETS = 10_000


def _block_at(depth, event):
    if depth == 0:
        event.wait()
        return
    _block_at(depth - 1, event)


def main():
    for depth in (1, 40, 80):
        event = Event()
        before = rss_bytes(os.getpid())
        greenlets = [gevent.spawn(_block_at, depth, event) for _ in range(GREENLETS)]
        gevent.idle()  # every greenlet has run up to its wait
        grown = rss_bytes(os.getpid()) - before
        print(f"call depth {depth:>2}: {grown / GREENLETS / 1024:.1f} KB RSS per blocked greenlet")
        event.set()
        gevent.joinall(greenlets)


if __name__ == "__main__":
    main()
