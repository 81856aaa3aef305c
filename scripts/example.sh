#!/usr/bin/env bash
# Serves the React example in one step: builds pulsebase, installs the npm packages of
# examples/react-todo when they are missing or older than its package-lock.json (npm ci),
# regenerates the typed api, builds the page, then runs the backend and the page together:
#   pulsebase dev --static-dir examples/react-todo/dist [ARGS...]
# Extra arguments go to `pulsebase dev`, e.g. `bash scripts/example.sh --port 3300`.
# The server replaces this script's process (exec), so its PID is the server's.
set -euo pipefail
cd "$(dirname "$0")/.."
example=examples/react-todo

# Vite 8 refuses older Node.js versions with an error that does not say which one it needs.
node_ok=$(node -e '
  const [major, minor] = process.versions.node.split(".").map(Number);
  console.log((major === 20 && minor >= 19) || (major === 22 && minor >= 12) || major > 22 ? "yes" : "no");
' 2>/dev/null || echo missing)
case "$node_ok" in
  yes) ;;
  missing) echo "error: the example needs Node.js (^20.19 or >= 22.12) and npm on PATH" >&2; exit 1 ;;
  *) echo "error: the example is built with Vite 8, which needs Node.js ^20.19 or >= 22.12 (found $(node --version))" >&2; exit 1 ;;
esac

if [[ -n "${PULSEBASE_BIN:-}" ]]; then
  bin=$PULSEBASE_BIN
else
  echo "== building pulsebase (release; a few minutes the first time)"
  cargo build --release -p pulsebase
  bin=target/release/pulsebase
fi

# npm ci records what it installed in node_modules/.package-lock.json.
if [[ ! -f "$example/node_modules/.package-lock.json" || "$example/package-lock.json" -nt "$example/node_modules/.package-lock.json" ]]; then
  echo "== installing the example's npm packages (npm ci)"
  (cd "$example" && npm ci --no-audit --no-fund)
fi

# The page type-checks against functions/_generated; make it match functions/ first.
"$bin" codegen --dir .
echo "== building $example"
(cd "$example" && npm run build)

echo "== serving the example at / with the backend (Ctrl-C stops it)"
exec "$bin" dev --static-dir "$example/dist" "$@"
