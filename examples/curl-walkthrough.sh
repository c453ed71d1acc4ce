#!/usr/bin/env bash
# From ingest to incidents with curl alone, against a running `npm start` (or any leakwatch):
#
#   bash examples/curl-walkthrough.sh                      # http://127.0.0.1:8080
#   LEAKWATCH_URL=http://host:8080 LEAKWATCH_TOKEN=s3cret bash examples/curl-walkthrough.sh
#
# It sends the real two-host Netty export of test/fixtures/netty (journald text, as
# `journalctl -o short` prints it), waits for the incidents, reads one with its trace and
# evidence, acknowledges it, and shows direct memory and the rules. Then open the same URL in a
# browser. test/e2e/examples.test.ts runs this script against a real server.
set -euo pipefail
cd "$(dirname "$0")/.."
url="${LEAKWATCH_URL:-http://127.0.0.1:8080}"
auth=()
if [ -n "${LEAKWATCH_TOKEN:-}" ]; then auth=(-H "Authorization: Bearer ${LEAKWATCH_TOKEN}"); fi
call() { curl -sS --fail-with-body "${auth[@]}" "$@"; }

echo "1. Is it up and ready? (ready once its rules are checked)"
for _ in $(seq 1 60); do
  if curl -sS --fail "$url/readyz" >/dev/null 2>&1; then break; fi
  sleep 1
done
curl -sS "$url/readyz"; echo

echo "2. Send the Netty export: 275 journald lines from two hosts"
call --data-binary @test/fixtures/netty/two-hosts.journal.txt -H 'Content-Type: text/plain' "$url/ingest"; echo

echo "3. The incidents, latest activity first (traces are grouped within a few seconds)"
incidents=''
for _ in $(seq 1 30); do
  sleep 1
  previous="$incidents"
  incidents="$(call "$url/incidents?status=all&limit=10")"
  # Settled: some incidents, and the same as a second ago.
  if [[ "$incidents" == *'"id":"'* && "$incidents" == "$previous" ]]; then break; fi
done
grep -o '"category":"[a-z-]*","severity":"[a-z]*","status":"[a-z]*","host":"[^"]*"' <<<"$incidents" | sed 's/"//g'

echo "4. One incident: evidence (what came before it), its latest events and the full trace"
id="$(grep -o '"id":"[0-9a-f]*","key":"netty-direct-memory-exhausted[^"]*"' <<<"$incidents" | head -1 | sed 's/"id":"\([0-9a-f]*\)".*/\1/')"
incident="$(call "$url/incidents/$id")"
grep -o '"summary":"[^"]*"' <<<"$incident" | head -1
grep -o '"evidence":\[[^]]*\]' <<<"$incident"

echo "5. Acknowledge it (the admin token, when one is set)"
call -X POST "$url/incidents/$id/ack" | grep -o '"acked_at":"[^"]*"'

echo "6. Direct memory per process: used, max, ratio"
call "$url/memory" | grep -o '"host":"[^"]*","service":"[^"]*","pid":"[^"]*","used_bytes":[0-9]*,"max_bytes":[0-9]*,"ratio":[0-9.]*'

echo "7. The rules in force, and the traces no rule recognised"
call "$url/rules" | grep -o '"hash":"[0-9a-f]*"' | head -1
call "$url/unclassified" | grep -o '"total":[0-9]*'

echo "Now open $url/ in a browser."
