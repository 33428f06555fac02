#!/usr/bin/env bash
# Run a private PostgreSQL cluster in the foreground: the storage under FerretDB.
#   scripts/postgres.sh DATADIR PORT [-c name=value ...]
# Creates the cluster with initdb when DATADIR holds none, then execs `postgres` (so the caller's PID is
# the postmaster: SIGTERM/SIGINT stop it). It listens on 127.0.0.1:PORT only, with no Unix socket, and
# trusts loopback connections: a development and test store, never the system cluster, never systemctl.
# PostgreSQL refuses to run as root: as root, the cluster is owned by and run as the `postgres` user
# that Debian's package creates; as anyone else, by and as that user.
# As root, when the `postgres` user cannot reach DATADIR (a parent is private: root's home is 0700 on
# Debian), the cluster lives in /var/tmp/eventi-<first 12 hex digits of sha256(DATADIR's path)>/postgres
# instead: one per checkout, kept across runs (`make clean` leaves it: remove it by hand). The first line
# printed names it.
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: $0 DATADIR PORT [-c name=value ...]" >&2; exit 2; }
DATA=$(realpath -m "$1"); PORT=$2; shift 2

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[[ -x $bindir/postgres ]] || { echo "postgres.sh: no PostgreSQL server; run 'make deps'" >&2; exit 1; }

as_owner=()
if [[ $(id -u) == 0 ]]; then
  id postgres >/dev/null 2>&1 || { echo "postgres.sh: running as root needs the 'postgres' user" >&2; exit 1; }
  as_owner=(setpriv --reuid=postgres --regid=postgres --init-groups --)
  parent=$(dirname "$DATA")
  mkdir -p "$parent"
  if ! "${as_owner[@]}" test -x "$parent"; then
    elsewhere=/var/tmp/eventi-$(printf '%s' "$DATA" | sha256sum | head -c 12)
    echo "postgres.sh: user postgres cannot reach $parent (a parent directory is private): the cluster is in $elsewhere/postgres"
    mkdir -p -m 755 "$elsewhere"
    # /var/tmp is everyone's: use the directory only if root owns it (no one else can have placed it)
    [[ -d $elsewhere && ! -L $elsewhere && $(stat -c %u "$elsewhere") == 0 ]] || {
      echo "postgres.sh: $elsewhere is not root's own directory; remove it, or use another EVENTI_VAR_DIR" >&2
      exit 1
    }
    printf '%s\n' "$DATA" >"$elsewhere/checkout"  # whose cluster this is
    DATA=$elsewhere/postgres
  fi
  mkdir -p "$DATA"
  chown postgres:postgres "$DATA"
  chmod 700 "$DATA"
  "${as_owner[@]}" test -x "$DATA" || {
    echo "postgres.sh: user postgres cannot reach $DATA; use another EVENTI_VAR_DIR" >&2
    exit 1
  }
fi

if [[ ! -s $DATA/PG_VERSION ]]; then
  "${as_owner[@]}" "$bindir/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
fi

exec "${as_owner[@]}" "$bindir/postgres" -D "$DATA" -p "$PORT" -c listen_addresses=127.0.0.1 \
  -c unix_socket_directories= -c max_connections=300 -c logging_collector=off "$@"
