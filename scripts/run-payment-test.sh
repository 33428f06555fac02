#!/usr/bin/env bash
# End-to-end payment check against a stack started by `make run` (the local PayHero simulator pays
# after EVENTI_SIMULATOR_DELAY seconds). Prints one summary line; exits non-zero on any failure.
# EVENTI_URL and SIMULATOR_URL (or --url / --simulator) point it elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python scripts/payment_test.py "$@"
