#!/usr/bin/env bash
# Install and start a local PostgreSQL server (fresh Debian/Ubuntu machine, as root), create a
# database and a user for the sweeper tests, and print its URL on stdout (and write it to
# ${TMPDIR:-/tmp}/scalelab-postgres.url). Prints nothing and exits 1 when no server can be started; the tests
# then skip with a message. Idempotent: a second run reuses the running server.
#   export SCALELAB_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
set -uo pipefail
cd "$(dirname "$0")/.."
URL_FILE=${TMPDIR:-/tmp}/scalelab-postgres.url
DB=scalelab_test
USER_NAME=scalelab
PASS=scalelab-ci-secret
PORT=${SCALELAB_PG_PORT:-55432}  # not 5432: a packaged cluster there may want passwords
log() { echo "postgres.sh: $*" >&2; }

if ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "no PostgreSQL and cannot install it (needs root and apt-get)"; exit 1
  fi
  log "installing postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; } >&2 || {
    log "apt-get install postgresql failed"; exit 1; }
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
DATA=${SCALELAB_PG_DATA:-/var/tmp/scalelab-pg}
RUNAS=()
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --)

if ! "${RUNAS[@]}" "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA" && { [ "$(id -u)" != 0 ] || chown postgres:postgres "$DATA"; }
    "${RUNAS[@]}" "$BIN/initdb" -D "$DATA" -A trust -U postgres >/dev/null 2>&1 || { log "initdb failed"; exit 1; }
  fi
  "${RUNAS[@]}" "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=/tmp -c max_connections=200" \
      start >&2 || { log "server did not start (see $DATA/server.log)"; exit 1; }
fi
PSQL=("${RUNAS[@]}" "$BIN/psql" -q -h 127.0.0.1 -p "$PORT" -U postgres -v ON_ERROR_STOP=1)
"${PSQL[@]}" -tc "SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'" | grep -q 1 ||
  "${PSQL[@]}" -c "CREATE ROLE $USER_NAME LOGIN PASSWORD '$PASS'" >&2 || exit 1
"${PSQL[@]}" -tc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 ||
  "${PSQL[@]}" -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2 || exit 1
URL="postgresql://$USER_NAME:$PASS@127.0.0.1:$PORT/$DB"
echo "$URL" > "$URL_FILE"
echo "$URL"
