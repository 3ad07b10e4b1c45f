#!/usr/bin/env bash
# The whole test suite, runnable by itself on a fresh machine: installs go-task and the pinned Node
# tools when missing, starts PostgreSQL and Redis (scripts/services.sh), then runs the stages of
# `task ci` (generated-code drift, vet, spec lint, tests on SQLite, tests on PostgreSQL + Redis).
set -euo pipefail
cd "$(dirname "$0")/.."

export PATH="$(go env GOPATH)/bin:$PATH"
if ! command -v task >/dev/null 2>&1 || ! task --version 2>/dev/null | grep -q '3.54.0'; then
  echo "test.sh: installing go-task v3.54.0"
  go install github.com/go-task/task/v3/cmd/task@v3.54.0
fi
if [ ! -d tools/js/node_modules ] || [ tools/js/package-lock.json -nt tools/js/node_modules ]; then
  echo "test.sh: installing the pinned Node tools (tools/js)"
  (cd tools/js && npm ci --no-audit --no-fund --loglevel=error)
fi
bash scripts/services.sh
if [ ! -x /usr/bin/chromium ]; then # the docs pages are rendered in headless Chromium
  echo "test.sh: installing chromium"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! python3 -c 'import yaml' 2>/dev/null; then # the breaking-change self-test edits YAML copies
  echo "test.sh: installing python3-yaml"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-yaml >/dev/null
fi

# The stages of `task ci`, one by one so each is timed.
for stage in check:gen vet lint:api breaking check:ts test test:ts test:pg; do
  t0=$(date +%s)
  echo "=== task $stage"
  task "$stage"
  echo "=== task $stage: ok in $(( $(date +%s) - t0 ))s"
done
