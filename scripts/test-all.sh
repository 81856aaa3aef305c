#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit + engine tests, and the official Rust client
# against the binary), the official Python client against the binary (tests/python), and the
# end-to-end suite, which drives the binary with the official convex npm client.
# Installs what the suites need: Python packages from tests/python/requirements.txt into
# tests/python/.venv, npm packages from tests/node/package-lock.json, and PostgreSQL from
# Debian's packages when it is missing (the PostgreSQL engine's tests start their own
# throw-away cluster with scripts/pg-cluster.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    echo "== installing PostgreSQL (Debian's postgresql package)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
fi

echo "== building pulsebase (release)"
cargo build --release --locked -p pulsebase

echo "== cargo test"
cargo test --release --workspace --locked

# cargo test builds its own pulsebase with the features dev-dependencies add (the convex
# crate's serde_json features) and leaves it at target/release/pulsebase; put the binary users
# get back there (cached: about a second) so the suites below test that one.
cargo build --release --locked -p pulsebase

echo "== client compatibility (tests/python: the official Python client)"
# The Rust client's suite (crates/pulsebase/tests/convex_rs_client) ran with cargo test above.
PYTHON="${PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "tests/python needs Python 3.10 or newer (set PYTHON=...)"; exit 1; }
[ -x tests/python/.venv/bin/python ] || "$PYTHON" -m venv tests/python/.venv
tests/python/.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r tests/python/requirements.txt
(cd tests/python && .venv/bin/python -m pytest -q)
echo "== pulsebase test (the example app's tests, functions/*.test.rhai)"
./target/release/pulsebase test

echo "== end-to-end tests (tests/node)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/node && npm test)

echo "== end-to-end tests again, every server storing its app in PostgreSQL"
# The suites about the SQLite file itself (export/import/backup of the file, its lock and its
# disk) stay SQLite-only, and nodes.test.mjs ran above on a cluster of its own; every other
# suite runs unchanged against a throw-away cluster.
pg_dir=$(mktemp -d /tmp/pulsebase-pg-XXXXXX)
trap 'bash scripts/pg-cluster.sh stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
PULSEBASE_TEST_POSTGRES=$(bash scripts/pg-cluster.sh start "$pg_dir")
export PULSEBASE_TEST_POSTGRES
(cd tests/node && node --test --test-concurrency=2 --test-timeout=180000 \
    $(ls ./*.test.mjs | grep -v -e data.test.mjs -e bad_days.test.mjs -e nodes.test.mjs))
echo "== all tests passed"
