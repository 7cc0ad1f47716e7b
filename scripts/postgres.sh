#!/usr/bin/env bash
# PostgreSQL for the tests and the benchmark: Debian's `postgresql` package (installed when
# absent), a cluster of its own in a directory, on a free loopback port, run as the `postgres`
# system user (the server refuses root).
#
#   scripts/postgres.sh start DIR [--durable]
#                                     (VENTANILLA_PG_SETTINGS: more server settings, for a diagnosis)
#                                     initdb and start; prints the admin URL (postgres://postgres@127.0.0.1:PORT/postgres).
#                                     Tests run without fsync; --durable keeps PostgreSQL's defaults (the benchmark)
#   scripts/postgres.sh stop DIR      stops it (fast shutdown)
set -euo pipefail

die() { echo "postgres.sh: $*" >&2; exit 1; }

bin_dir() {
  local d
  d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
  if [ -z "$d" ]; then
    echo "postgres.sh: installing Debian's postgresql package" >&2
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >&2
    d="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
  fi
  echo "$d"
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  local dir="$1" durable="${2:-}" bin port settings
  bin="$(bin_dir)"
  id postgres >/dev/null 2>&1 || die "no postgres system user (the postgresql package creates it)"
  mkdir -p "$dir"
  dir="$(cd "$dir" && pwd)"
  [ ! -e "$dir/url" ] || die "$dir already holds a cluster"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir"
  as_postgres test -w "$dir" || die "the postgres user cannot write $dir: its parent folders must be open to it (chmod o+x)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  as_postgres "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  settings="-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300"
  # A test cluster is fast and not durable across a crash of the machine (fsync off); the
  # benchmark's keeps PostgreSQL's defaults, as durable as the embedded store's synchronous=FULL.
  [ "$durable" = "--durable" ] || settings="$settings -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  # More settings for a diagnosis, e.g. VENTANILLA_PG_SETTINGS="-c shared_preload_libraries=pg_stat_statements".
  settings="$settings ${VENTANILLA_PG_SETTINGS:-}"
  as_postgres "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start -o "$settings" \
    >/dev/null || { tail -n 30 "$dir/server.log" >&2; die "PostgreSQL did not start"; }
  echo "postgres://postgres@127.0.0.1:$port/postgres" | tee "$dir/url"
}

stop() {
  local dir="$1" bin
  [ -d "$dir/data" ] || return 0
  bin="$(bin_dir)"
  as_postgres "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case "${1:-}" in
  start) start "$2" "${3:-}" ;;
  stop) stop "$2" ;;
  *) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
