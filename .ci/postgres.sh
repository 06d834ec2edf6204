#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster for Replayer's tests and benchmarks and prints its
# connection string on the last line of stdout (everything else goes to stderr):
#
#   export REPLAYER_TEST_PG="$(.ci/postgres.sh | tail -1)"
#
# Installs Debian's postgresql package when no server binaries are found (apt-get update; apt-get
# install -y postgresql). The cluster lives in a fresh temp directory (or $REPLAYER_PG_DIR), listens
# on 127.0.0.1 on a free port (or $REPLAYER_PG_PORT) and on a unix socket in that directory, and
# requires a password (scram-sha-256). As root it runs the server as the `postgres` user (the server
# refuses to run as root). Stop it with: .ci/postgres.sh --stop DIR
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_pgbin() {
  local d best=""
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && best="$d"
  done
  if [ -z "$best" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    best="$(dirname "$(readlink -f "$(command -v initdb)")")"
  fi
  echo "$best"
}

run_as() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PGUSER_OS" -- "$@"; else "$@"; fi
}

PGBIN="$(find_pgbin)"
if [ "${1:-}" = "--stop" ]; then
  [ -n "${2:-}" ] || { log "usage: $0 --stop DIR"; exit 2; }
  PGUSER_OS="$(stat -c %U "$2/data")"
  run_as "$PGBIN/pg_ctl" -D "$2/data" -m fast -w stop >&2
  exit 0
fi

if [ -z "$PGBIN" ]; then
  log "no PostgreSQL server found; installing Debian's postgresql package"
  if [ "$(id -u)" != 0 ]; then log "need root to install packages (or install postgresql yourself)"; exit 1; fi
  apt-get update >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql >&2
  PGBIN="$(find_pgbin)"
  [ -n "$PGBIN" ] || { log "postgresql installed but initdb/pg_ctl not found"; exit 1; }
fi
log "using $PGBIN"

PGUSER_OS="$(id -un)"
if [ "$(id -u)" = 0 ]; then
  PGUSER_OS=postgres
  if ! id postgres >/dev/null 2>&1; then
    log "creating system user postgres"
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
fi

DIR="${REPLAYER_PG_DIR:-$(mktemp -d /tmp/replayer-pg.XXXXXX)}"
mkdir -p "$DIR"
chmod 700 "$DIR"

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT="${REPLAYER_PG_PORT:-}"
if [ -z "$PORT" ]; then
  for p in $(seq 54320 54420); do
    if port_free "$p"; then PORT=$p; break; fi
  done
  [ -n "$PORT" ] || { log "no free port in 54320..54420"; exit 1; }
fi

PASSWORD="$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$PASSWORD" > "$DIR/pwfile"
[ "$(id -u)" = 0 ] && chown -R "$PGUSER_OS" "$DIR"

if [ ! -f "$DIR/data/PG_VERSION" ]; then
  run_as "$PGBIN/initdb" -D "$DIR/data" -U replayer --pwfile="$DIR/pwfile" --auth=scram-sha-256 -E UTF8 --locale=C.UTF-8 --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
fi
rm -f "$DIR/pwfile"
run_as "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DIR -c max_connections=200 -c shared_buffers=128MB" start >&2 \
  || { cat "$DIR/server.log" >&2; exit 1; }

export PGPASSWORD="$PASSWORD"
if command -v psql >/dev/null 2>&1 || [ -x "$PGBIN/psql" ]; then
  PSQL="$(command -v psql || echo "$PGBIN/psql")"
  "$PSQL" -h 127.0.0.1 -p "$PORT" -U replayer -d postgres -qAtc "SELECT 1 FROM pg_database WHERE datname='replayer'" | grep -q 1 \
    || "$PSQL" -h 127.0.0.1 -p "$PORT" -U replayer -d postgres -qc "CREATE DATABASE replayer" >&2
else
  run_as "$PGBIN/createdb" -h "$DIR" -p "$PORT" -U replayer replayer >&2
fi
log "cluster in $DIR on 127.0.0.1:$PORT (stop: $0 --stop $DIR)"
echo "postgres://replayer:$PASSWORD@127.0.0.1:$PORT/replayer"
