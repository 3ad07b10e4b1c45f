#!/usr/bin/env bash
# The client tests of @wataomi/api-client against a LIVE server (issue "4 ·", item 2). From the repo root:
#
#   bash gen/ts/test/run.sh [extra node --test args]
#
# It builds the package (tools/js/gen-ts.mjs build: tsc to gen/ts/dist) and the Go binary, starts
# `wataomi serve` on a free port with a fresh SQLite database in a temp dir (APP_ENV=test), mints a
# manager session (access + refresh token) and a viewer token with the CLI, waits for /ready, then runs
# `node --test gen/ts/test/` with WATAOMI_URL (the server origin), WATAOMI_TOKEN, WATAOMI_REFRESH and
# WATAOMI_VIEWER_TOKEN. The server is stopped and the temp dir removed on exit.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
cd "$root"

tmp="$(mktemp -d)"
server_pid=""
cleanup() {
  status=$?
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -f "$tmp/server.log" ]; then
    echo "--- server log (last 40 lines) ---" >&2
    tail -n 40 "$tmp/server.log" >&2 || true
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The pinned Node tools (openapi-fetch, typescript) live in tools/js.
if [ ! -d tools/js/node_modules/openapi-fetch ] || [ ! -d tools/js/node_modules/typescript ]; then
  echo "run.sh: installing tools/js (npm ci)" >&2
  (cd tools/js && npm ci --no-audit --no-fund)
fi
node tools/js/gen-ts.mjs build

go build -o "$tmp/wataomi" ./cmd/wataomi

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
export APP_ENV=test
export SECRET_KEY="$(python3 -c 'import secrets; print(secrets.token_hex(32))')"
export DATABASE_URL="sqlite:$tmp/w.db"
export HTTP_ADDR="127.0.0.1:$port"
unset CONFIG_FILE REDIS_URL PORT 2>/dev/null || true

# Run the CLI and the server from the temp dir, so no config.yaml or .env of the work tree is read.
(
  cd "$tmp"
  ./wataomi users create --email manager@example.com --name Manager --role manager >/dev/null 2>>cli.log
  ./wataomi token --user manager@example.com --refresh >session.json 2>>cli.log
  ./wataomi token --user viewer@example.com --role viewer >viewer.txt 2>>cli.log
) || { cat "$tmp/cli.log" >&2; exit 1; }
json_field() { node -e 'process.stdout.write(JSON.parse(require("node:fs").readFileSync(process.argv[1], "utf8"))[process.argv[2]])' "$1" "$2"; }
WATAOMI_TOKEN="$(json_field "$tmp/session.json" access_token)"
WATAOMI_REFRESH="$(json_field "$tmp/session.json" refresh_token)"
WATAOMI_VIEWER_TOKEN="$(tr -d '[:space:]' <"$tmp/viewer.txt")"

(cd "$tmp" && exec ./wataomi serve >server.log 2>&1) &
server_pid=$!

url="http://127.0.0.1:$port"
ready=""
for _ in $(seq 1 150); do
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "run.sh: the server exited before it was ready" >&2
    exit 1
  fi
  if curl -fsS -o /dev/null --max-time 2 "$url/ready" 2>/dev/null; then
    ready=1
    break
  fi
  sleep 0.2
done
if [ -z "$ready" ]; then
  echo "run.sh: $url/ready did not answer 200 within 30 s" >&2
  exit 1
fi

WATAOMI_URL="$url" WATAOMI_TOKEN="$WATAOMI_TOKEN" WATAOMI_REFRESH="$WATAOMI_REFRESH" \
  WATAOMI_VIEWER_TOKEN="$WATAOMI_VIEWER_TOKEN" \
  node --test "$@" gen/ts/test/
