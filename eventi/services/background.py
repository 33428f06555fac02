"""One background greenlet per job, started when there is work and gone when there is none."""
from collections.abc import Callable

import gevent
from redis.backoff import AbstractBackoff, ExponentialWithJitterBackoff


def retry_backoff() -> AbstractBackoff:
    """Waits between a background loop's retries (the broadcaster, the Settler, write retries): up to 0.1 s,
    doubling, at most 2 s, jittered, so a recovered Redis or store is used again within ~2 s."""
    return ExponentialWithJitterBackoff(cap=2.0, base=0.1)


class Background:
    """Runs loop() in at most one greenlet at a time: start() when work arrives (a no-op while it runs), and
    the loop returns when the work is done. close() stops it (the process is going away)."""

    def __init__(self, loop: Callable[[], None]) -> None:
        self._loop = loop
        self._greenlet: gevent.Greenlet[..., None] | None = None

    def start(self) -> None:
        """Make sure the loop runs."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def close(self) -> None:
        """Stop the loop."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None

    def _run(self) -> None:
        try:
            self._loop()
        finally:
            self._greenlet = None
