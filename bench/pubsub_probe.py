"""What reading one pub/sub message costs the hub's loop: python -m bench.pubsub_probe.

Starts its own redis-server, PSUBSCRIBEs as `eventi.notify.Hub` did before it subscribed per order
(issue 20), and reads 3,000 messages with `get_message(timeout=1.0)`: once published before reading
(they queue: reading and parsing only) and once at 1,000/s from another process (each one wakes the
reader). Prints this process's CPU per message.
"""
from gevent import monkey

monkey.patch_all()

import resource  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402

import redis  # noqa: E402
from redis.utils import HIREDIS_AVAILABLE  # noqa: E402

from devstack.processes import RedisServer  # noqa: E402

MESSAGES = 3000
BODY = b'{"orderId":"6b0ade5c347701d5547b1307","paymentStatus":"completed","amount":1500}'
PUBLISHER = """
import sys, time, redis
port, count, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
r, t0 = redis.Redis(port=port), time.monotonic()
for i in range(count):
    delay = t0 + i / rate - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    r.publish(f"order:status:{i:024x}", sys.argv[4].encode())
"""


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _read(pubsub, count):
    start, got = _cpu(), 0
    while got < count:
        message = pubsub.get_message(timeout=1.0)
        if message is not None and message["type"] == "pmessage":
            got += 1
    return (_cpu() - start) / count


def _report(label, seconds):
    print(f"{label:>28}: {seconds * 1e6:.0f} µs CPU per message (hiredis: {HIREDIS_AVAILABLE})")


def main():
    server = RedisServer(tempfile.mkdtemp(prefix="eventi-pubsub-probe-")).start()
    try:
        client = redis.Redis(port=server.port)
        pubsub = client.pubsub()
        pubsub.psubscribe("order:status:*")
        pipe = client.pipeline(transaction=False)
        for i in range(MESSAGES):
            pipe.publish(f"order:status:{i:024x}", BODY)
        pipe.execute()
        _report("queued (published at once)", _read(pubsub, MESSAGES))
        publisher = subprocess.Popen([sys.executable, "-c", PUBLISHER, str(server.port), str(MESSAGES), "1000",
                                      BODY.decode()])
        _report("arriving at 1,000/s", _read(pubsub, MESSAGES))
        publisher.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
