#!/usr/bin/env bash
# A throw-away PostgreSQL cluster for tests, on 127.0.0.1 only.
#
#   scripts/pg-cluster.sh start DIR   initdb in DIR/data, start it on a free port, create the
#                                     database "pulsebase"; prints its URL on stdout
#   scripts/pg-cluster.sh stop DIR    stop that cluster by the PID in its postmaster.pid
#
# PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` user
# that Debian's package creates. fsync is off, since a test cluster never outlives its test;
# PG_CLUSTER_FSYNC=on keeps it on (benchmarks: commits then wait for the disk, as in production).
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bin" ] && PATH="$bin:$PATH"
command -v initdb >/dev/null || {
    echo "PostgreSQL is not installed (initdb not found): apt-get install postgresql, or run scripts/test-all.sh, which installs it" >&2
    exit 1
}

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:-}
dir=${2:-}
[ -n "$dir" ] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }

case "$cmd" in
start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner initdb -D "$dir/data" -U pulsebase --auth=trust --no-sync -E UTF8 --locale=C \
        >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_owner pg_ctl -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=${PG_CLUSTER_FSYNC:-off} -c max_connections=300" \
        start >/dev/null || { cat "$dir/server.log" >&2; exit 1; }
    as_owner createdb -h 127.0.0.1 -p "$port" -U pulsebase pulsebase
    echo "postgres://pulsebase@127.0.0.1:$port/pulsebase"
    ;;
stop)
    pidfile="$dir/data/postmaster.pid"
    [ -f "$pidfile" ] || exit 0
    pid=$(head -1 "$pidfile")
    # SIGINT: PostgreSQL's fast shutdown (disconnect clients, no waiting for them).
    kill -INT "$pid" 2>/dev/null || exit 0
    for _ in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || exit 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    ;;
*)
    echo "usage: $0 start|stop DIR" >&2
    exit 2
    ;;
esac
