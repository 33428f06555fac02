"""`make bench`: held long polls measured side by side for the hub, per-request and short-polling designs.

Not part of pytest (tests/integration/test_bench_smoke.py runs a small version for correctness).
Entry point: ``python -m bench --help``.
"""
