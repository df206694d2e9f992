#!/usr/bin/env bash
# A local PostgreSQL server for the sweeper tests (on a fresh Debian/Ubuntu machine, as root, it
# installs PostgreSQL with apt-get).
#   .ci/postgres.sh [start]  start the server (or reuse the one running on the data directory), create a
#                            database and a user, print its URL on stdout; prints nothing and exits 1
#                            when no server can be started (the tests then skip with a message)
#   .ci/postgres.sh stop     stop the server of the data directory, if it runs
#   .ci/postgres.sh status   exit 0 when the server of the data directory runs
# Idempotent. SCALELAB_PG_PORT and SCALELAB_PG_DATA choose another port and data directory.
# The user's password is random and kept only in the private data directory; over TCP only that user
# can log in, with it, and the superuser only over the Unix socket (inside the data directory).
#   export SCALELAB_TEST_POSTGRES_URL="$(.ci/postgres.sh)"
set -uo pipefail
CMD=${1:-start}
DB=scalelab_test
USER_NAME=scalelab
PORT=${SCALELAB_PG_PORT:-55432}  # not 5432: a packaged cluster there may want passwords
DATA=${SCALELAB_PG_DATA:-/var/tmp/scalelab-pg}
PASS_FILE=$DATA/scalelab.password
log() { echo "postgres.sh: $*" >&2; }

case $CMD in start|stop|status) ;; *) log "usage: $0 [start|stop|status]"; exit 2 ;; esac
if [ "$CMD" = start ] && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "no PostgreSQL and cannot install it (needs root and apt-get)"; exit 1
  fi
  log "installing postgresql (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  { apt-get update -q && apt-get install -y -q --no-install-recommends postgresql; } >&2 || {
    log "apt-get install postgresql failed"; exit 1; }
fi
# the data directory, its log and the password file are for their owner only (set after apt-get,
# whose package scripts want the usual umask)
umask 077
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
# pg_ctl refuses to run as root: root runs the server as the packaged `postgres` user
RUNAS=()
SUPER=$(id -un)  # the superuser's name is its OS user's, for peer login over the socket
[ "$(id -u)" = 0 ] && RUNAS=(runuser -u postgres --) && SUPER=postgres
as_owner() { "${RUNAS[@]}" "$@"; }
running() { [ -n "$BIN" ] && [ -f "$DATA/PG_VERSION" ] && as_owner "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

case $CMD in
  status) running; exit ;;
  stop) running || exit 0
        as_owner "$BIN/pg_ctl" -D "$DATA" -m fast -w -t 60 stop >&2; exit ;;
esac

if ! running; then
  if [ ! -f "$DATA/PG_VERSION" ]; then
    mkdir -p "$DATA" && { [ "$(id -u)" != 0 ] || chown postgres:postgres "$DATA"; }
    as_owner "$BIN/initdb" -D "$DATA" -U "$SUPER" --auth-local=peer --auth-host=reject >/dev/null ||
      { log "initdb failed"; exit 1; }
  fi
  # written at every start, so that a data directory made by an older version of this script
  # (which trusted every local connection) gets the same rules
  printf '%s\n' "local all $SUPER peer" "host $DB $USER_NAME 127.0.0.1/32 scram-sha-256" |
    as_owner tee "$DATA/pg_hba.conf" >/dev/null || exit 1
  as_owner "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
      -o "-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories=$DATA -c max_connections=200 -c password_encryption=scram-sha-256" \
      start >&2 || { log "server did not start (see $DATA/server.log)"; exit 1; }
fi
if [ ! -s "$PASS_FILE" ]; then
  od -An -tx1 -N16 /dev/urandom | tr -d ' \n' | as_owner tee "$PASS_FILE" >/dev/null || exit 1
fi
PASS=$(cat "$PASS_FILE")
# the running server's own port and socket folder (postmaster.pid lines 4 and 5): one started
# earlier may use others than this call's
PORT=$(sed -n 4p "$DATA/postmaster.pid")
SOCKET_DIR=$(sed -n 5p "$DATA/postmaster.pid")
PSQL=(as_owner "$BIN/psql" -q -h "$SOCKET_DIR" -p "$PORT" -U "$SUPER" -d postgres -v ON_ERROR_STOP=1)
VERB=CREATE
[ "$("${PSQL[@]}" -tAc "SELECT 1 FROM pg_roles WHERE rolname='$USER_NAME'")" = 1 ] && VERB=ALTER
# on stdin, not in psql's arguments, which every local user can read in the process list
"${PSQL[@]}" <<<"$VERB ROLE $USER_NAME LOGIN PASSWORD '$PASS'" >&2 || exit 1
[ "$("${PSQL[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'")" = 1 ] ||
  "${PSQL[@]}" -c "CREATE DATABASE $DB OWNER $USER_NAME" >&2 || exit 1
echo "postgresql://$USER_NAME:$PASS@127.0.0.1:$PORT/$DB"
