#!/usr/bin/env bash
# A PostgreSQL of its own for the benchmarks, set up as a production server for
# a large tenant is: shared buffers that hold the data, in huge pages, and
# autovacuum on. README, "Where it stands", says why huge pages matter here.
#
#   sysctl vm.nr_hugepages=600        # as root, once per boot: 1.2 GiB in 2 MiB pages
#   bench/tuned-postgres.sh start     # prints the BENCH_DATABASE_URL to use
#   BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:5433/postgres npm run bench
#   bench/tuned-postgres.sh stop      # stops it and deletes its data
#
# BENCH_PG_PORT (5433) and BENCH_PG_SHARED_BUFFERS (1GB) change the port and the
# buffers; PG_BIN names PostgreSQL's programs' folder when they are not found.
set -euo pipefail

port=${BENCH_PG_PORT:-5433}
buffers=${BENCH_PG_SHARED_BUFFERS:-1GB}
dir="${TMPDIR:-/tmp}/connector-bench-postgres-$port"

# PostgreSQL's server programs: PG_BIN, Debian's folder (newest version), or PATH.
bin=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)}
pg() {
  local program=$1; shift
  local path=${bin:+$bin/}$program
  # initdb and postgres refuse to run as root: as root, run them as the postgres user.
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$path" "$@"; else "$path" "$@"; fi
}

case "${1:-}" in
  start)
    if [ -d "$dir" ]; then echo "$dir exists: stop the server first ($0 stop)" >&2; exit 1; fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    pg initdb -D "$dir/data" -U postgres -A trust >"$dir/initdb.log"
    # huge_pages=on: the server does not start without them, rather than run without them unseen.
    if ! pg pg_ctl -D "$dir/data" -l "$dir/server.log" -w -o "-p $port -c listen_addresses=127.0.0.1 -k $dir -c shared_buffers=$buffers -c huge_pages=on" start >/dev/null; then
      tail -n 5 "$dir/server.log" >&2
      echo "PostgreSQL did not start. Huge pages: reserve 2 MiB pages for shared_buffers ($buffers) and ~10 % more first, as root (sysctl vm.nr_hugepages=600 for 1GB)" >&2
      rm -rf "$dir"
      exit 1
    fi
    echo "BENCH_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    if [ -d "$dir/data" ]; then pg pg_ctl -D "$dir/data" -m fast -w stop >/dev/null || true; fi
    rm -rf "$dir"
    ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
