#!/usr/bin/env bash
# Start the local stack in the foreground: Redis, PostgreSQL and FerretDB over it (data under var/), then gunicorn.
# A service whose URL is already set in the environment (EVENTI_REDIS_URL, EVENTI_MONGO_URI) is used
# as it is and not started here. Ctrl-C stops everything this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
# Settings may also sit in .env (KEY=value lines, git-ignored); its values override the environment.
if [[ -f .env ]]; then set -a; . ./.env; set +a; fi
VAR=${EVENTI_VAR_DIR:-var}
mkdir -p "$VAR/redis" "$VAR/ferretdb" "$VAR/log" "$VAR/metrics"
VAR=$(realpath "$VAR")
pids=()
cleanup() {  # newest first: gunicorn before the store, FerretDB before PostgreSQL
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; wait "${pids[i]}" 2>/dev/null || true; done
}
trap cleanup EXIT INT TERM

wait_port() {  # host port name (30 s: PostgreSQL runs initdb on its first start)
  for _ in $(seq 300); do
    (echo >"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "run: $3 did not start on $1:$2; see $VAR/log/" >&2; exit 1
}

if [[ -z ${EVENTI_REDIS_URL:-} ]]; then
  port=${EVENTI_LOCAL_REDIS_PORT:-6379}
  redis-server --bind 127.0.0.1 --port "$port" --dir "$VAR/redis" --save "60 1" --appendonly no \
    --maxclients 20000 >"$VAR/log/redis.log" 2>&1 &
  pids+=($!)
  export EVENTI_REDIS_URL="redis://127.0.0.1:$port/0"
  wait_port 127.0.0.1 "$port" redis-server
fi

if [[ -z ${EVENTI_MONGO_URI:-} ]]; then
  # FerretDB's postgresql handler over a private PostgreSQL cluster in $VAR/postgres (scripts/postgres.sh).
  pg_port=${EVENTI_LOCAL_POSTGRES_PORT:-5433}
  ./scripts/postgres.sh "$VAR/postgres" "$pg_port" >"$VAR/log/postgres.log" 2>&1 &
  pids+=($!)
  wait_port 127.0.0.1 "$pg_port" postgres
  grep -m1 '^postgres.sh: .*the cluster is in' "$VAR/log/postgres.log" || true  # as root under a private parent
  port=${EVENTI_LOCAL_MONGO_PORT:-27017}
  .tools/bin/ferretdb --handler=postgresql --postgresql-url="postgres://postgres@127.0.0.1:$pg_port/postgres" \
    --state-dir="$VAR/ferretdb" --listen-addr="127.0.0.1:$port" --debug-addr=- --telemetry=disable \
    --log-level=warn >"$VAR/log/ferretdb.log" 2>&1 &
  pids+=($!)
  export EVENTI_MONGO_URI="mongodb://127.0.0.1:$port/eventi"
  wait_port 127.0.0.1 "$port" ferretdb
fi

if [[ -z ${PAYHERO_BASE_URL:-} ]]; then
  # No PayHero configured: the local simulator (python -m eventi.payhero.simulator) takes the pushes and
  # calls back after EVENTI_SIMULATOR_DELAY seconds; the phone number's last digit picks the outcome.
  port=${EVENTI_SIMULATOR_PORT:-8010}
  export PAYHERO_AUTH_TOKEN="simulator-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  export PAYHERO_CHANNEL_ID=${PAYHERO_CHANNEL_ID:-911}
  .venv/bin/python -m eventi.payhero.simulator --port "$port" >"$VAR/log/simulator.log" 2>&1 &
  pids+=($!)
  export PAYHERO_BASE_URL="http://127.0.0.1:$port"
  wait_port 127.0.0.1 "$port" payhero-simulator
  echo "PayHero simulator: $PAYHERO_BASE_URL (callback after ${EVENTI_SIMULATOR_DELAY:-3}s; log $VAR/log/simulator.log)"
  # Manual payment on, with the simulator as M-Pesa's C2B sender (docs/operations.md, "Manual payment").
  export EVENTI_MANUAL_PAYBILL=${EVENTI_MANUAL_PAYBILL:-600100}
  export EVENTI_C2B_TOKEN=${EVENTI_C2B_TOKEN:-simulator-c2b-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')}
  echo "Paybill $EVENTI_MANUAL_PAYBILL: pay one with curl -s $PAYHERO_BASE_URL/simulator/c2b -H 'Content-Type: application/json'" \
    "-d '{\"confirmation_url\": \"http://${EVENTI_BIND:-127.0.0.1:8000}/api/c2b/confirmation?token=$EVENTI_C2B_TOKEN\"," \
    "\"paybill\": \"$EVENTI_MANUAL_PAYBILL\", \"account\": \"<account number>\", \"amount\": <amount>}'"
fi

.venv/bin/flask --app wsgi create-indexes
.venv/bin/flask --app wsgi events demo  # the demo event of the checkout page below (eventi/demo_event.json)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
echo "eventi: http://${EVENTI_BIND:-127.0.0.1:8000}  (Redis $EVENTI_REDIS_URL, MongoDB $EVENTI_MONGO_URI)"
echo "checkout page: http://${EVENTI_BIND:-127.0.0.1:8000}/events/demo/checkout  (PayHero $PAYHERO_BASE_URL)"
PROMETHEUS_MULTIPROC_DIR=${PROMETHEUS_MULTIPROC_DIR:-$VAR/metrics} .venv/bin/gunicorn -c gunicorn.conf.py wsgi:app &
pids+=($!)
wait "${pids[-1]}"
