"""`python -m eventi.server.healthcheck`: exit 0 when this host's eventi answers GET /healthz on EVENTI_BIND's port, else 1.

The container HEALTHCHECK and compose's healthcheck run it, so they follow EVENTI_BIND instead of a
hard-coded port. Standard library only: it starts in a few milliseconds.
"""
import os
import sys
import urllib.request


def url(bind: str) -> str:
    """http://127.0.0.1:<port>/healthz for a gunicorn bind such as 0.0.0.0:8000 or [::]:8000."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}/healthz"


def main() -> None:
    target = url(os.environ.get("EVENTI_BIND", "127.0.0.1:8000"))
    try:
        with urllib.request.urlopen(target, timeout=2) as response:
            ok = response.status == 200
    except OSError as exc:
        print(f"eventi healthcheck: {target}: {exc}", file=sys.stderr)
        ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
