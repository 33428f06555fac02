"""Run the PayHero simulator: python -m eventi.payhero.simulator [--host H] [--port P] [--delay S].

Served by gevent's WSGI server, which keeps connections alive as PayHero's endpoint does (werkzeug's
development server closes every one, so each push cost eventi a DNS lookup and a connect); its
timers, slow pushes and callbacks are greenlets.
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import io  # noqa: E402
import logging  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from .app import create_app  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m eventi.payhero.simulator", description=__doc__)
    parser.add_argument("--host", default=env.get("EVENTI_SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("EVENTI_SIMULATOR_PORT", "8010")))
    parser.add_argument("--delay", type=float, default=float(env.get("EVENTI_SIMULATOR_DELAY", "3")),
                        help="seconds from the push to the callback")
    parser.add_argument("--slow", type=float, default=float(env.get("EVENTI_SIMULATOR_SLOW_SECONDS", "30")),
                        help="seconds a push to a number ending in 9 takes to answer")
    args = parser.parse_args(argv)
    token = env.get("PAYHERO_AUTH_TOKEN")
    if not token:
        sys.exit("PAYHERO_AUTH_TOKEN must be set: the simulator accepts only that Basic token")
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    server = WSGIServer((args.host, args.port), create_app(token, args.delay, args.slow), log=None)
    server.init_socket()
    print(f"PayHero simulator listening on http://{args.host}:{server.server_port} (callback delay {args.delay}s)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
