#!/usr/bin/env bash
# Runs every test: the Rust workspace (unit + engine tests) and the end-to-end suite, which
# starts the real pulsebase binary and drives it with the official convex npm client.
# Installs what the end-to-end suite needs (npm packages from tests/node/package-lock.json).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== building pulsebase (release)"
cargo build --release --locked -p pulsebase

echo "== cargo test"
cargo test --release --workspace --locked

echo "== pulsebase test (the example app's tests, functions/*.test.rhai)"
./target/release/pulsebase test

echo "== end-to-end tests (tests/node)"
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
(cd tests/node && npm test)
echo "== all tests passed"
