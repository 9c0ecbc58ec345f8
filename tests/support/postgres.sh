#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, listening only on a Unix
# socket in DIR (no TCP port), trusted for local connections, plus one role
# that must give a password (tfimm_pw, for the tests that check it is never
# shown).
#
#   tests/support/postgres.sh start DIR   # initdb + pg_ctl start; DIR/url names it
#   tests/support/postgres.sh stop DIR    # pg_ctl stop -m immediate; DIR removed
#   tests/support/postgres.sh halt DIR    # pg_ctl stop -m immediate, data kept (a crash)
#   tests/support/postgres.sh resume DIR  # starts a halted cluster again
#
# Without server binaries, start says so in one line and exits 77 (ctest's
# "skipped"), or 1 when TFIMM_REQUIRE_POSTGRESQL=1 (CI must never skip).
#
# DIR must be short (a Unix socket path holds at most 107 bytes) and
# reachable by the postgres user: initdb refuses to run as root, so as root
# the server runs as postgres (runuser).
set -euo pipefail
action=${1:?usage: postgres.sh start|stop|halt|resume DIR}
dir=${2:?usage: postgres.sh start|stop|halt|resume DIR}

bindir=${TFIMM_PG_BINDIR:-}
if [ -z "$bindir" ]; then
  for candidate in /usr/lib/postgresql/*/bin; do
    [ -x "$candidate/initdb" ] && bindir=$candidate
  done
fi

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

server_start() {
  as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off \
        -c max_connections=200 -c shared_buffers=32MB" start >/dev/null || {
    cat "$dir/server.log" >&2
    exit 1
  }
}

stop() {
  if [ -n "$bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  fi
  rm -rf "$dir"
}

case "$action" in
  start)
    if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
      echo "PostgreSQL server binaries not found (${bindir:-/usr/lib/postgresql/*/bin}/initdb; install the" \
        "postgresql package): the PostgreSQL tests are skipped" >&2
      [ "${TFIMM_REQUIRE_POSTGRESQL:-0}" = 1 ] && exit 1
      exit 77
    fi
    stop  # a cluster left by an interrupted run
    mkdir -p "$dir"
    chmod 755 "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; fi
    as_server_user "$bindir/initdb" -D "$dir/data" -U postgres --auth=trust \
      --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$dir/initdb.log" 2>&1 || {
      cat "$dir/initdb.log" >&2
      exit 1
    }
    # The password role first: pg_hba.conf takes the first matching line.
    printf 'local all tfimm_pw scram-sha-256\nlocal all all trust\n' |
      as_server_user tee "$dir/data/pg_hba.conf" >/dev/null
    server_start
    as_server_user "$bindir/psql" -h "$dir" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
      -c "CREATE ROLE tfimm_pw LOGIN PASSWORD 'tfimm-S3cret-pw'" >/dev/null
    echo "postgresql:///postgres?host=$dir&user=postgres" >"$dir/url"
    echo "PostgreSQL test server running in $dir"
    ;;
  stop)
    stop
    ;;
  halt)
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  resume)
    server_start
    ;;
  *)
    echo "usage: postgres.sh start|stop|halt|resume DIR" >&2
    exit 2
    ;;
esac
