#!/usr/bin/env bash
# No Docker engine runs on the development and CI machines, so this replays the Dockerfile's own
# commands, stage by stage, in temporary folders, then starts the result as the image would and
# runs its HEALTHCHECK command. Keep it in step with the Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$work"' EXIT

echo "== build stage: npm ci (prepare compiles dist/)"
mkdir -p "$work/build"
cp package.json package-lock.json tsconfig.json tsconfig.build.json "$work/build/"
cp -r scripts src "$work/build/"
(cd "$work/build" && npm ci --no-audit --no-fund --loglevel=error)
test -f "$work/build/dist/cli.js"

echo "== deps stage: npm ci --omit=dev"
mkdir -p "$work/deps"
cp package.json package-lock.json "$work/deps/"
cp -r scripts "$work/deps/"
(cd "$work/deps" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
if [ -d "$work/deps/node_modules/typescript" ] || [ -d "$work/deps/node_modules/vitest" ]; then
  echo "dev dependencies leaked into the runtime image" >&2
  exit 1
fi

echo "== runtime stage"
mkdir -p "$work/app" "$work/data"
cp -r "$work/deps/node_modules" "$work/app/"
cp -r "$work/build/dist" "$work/app/"
cp package.json "$work/app/"
cp -r bin proto rules schema web "$work/app/"
port=$((20000 + RANDOM % 20000))
(cd "$work/app" && NODE_ENV=production MALLOC_MMAP_THRESHOLD_=131072 MALLOC_ARENA_MAX=2 LEAKWATCH_HOST=127.0.0.1 LEAKWATCH_PORT=$port LEAKWATCH_DATA_DIR="$work/data" \
  LEAKWATCH_RULES="$work/app/rules" node bin/leakwatch.js serve > "$work/serve.log" 2>&1) &
server=$!
for _ in $(seq 1 60); do
  if LEAKWATCH_PORT=$port node -e "fetch('http://127.0.0.1:' + (process.env.LEAKWATCH_PORT || 8080) + '/healthz').then(r => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"; then
    echo "HEALTHCHECK passed on port $port"
    curl -fsS --data-binary @"$root/test/fixtures/netty/two-hosts.journal.txt" -H 'Content-Type: text/plain' "http://127.0.0.1:$port/ingest"
    echo
    exit 0
  fi
  sleep 1
done
cat "$work/serve.log" >&2
echo "HEALTHCHECK never passed" >&2
exit 1
