#!/usr/bin/env bash
# Breaking-change gate (`task breaking`): compares the bundled contract with the last released one using
# oasdiff (pinned as a tool in tools/go.mod) and fails on any ERR-level (breaking) change, unless the
# bundle's info.version MAJOR is greater than the released contract's major.
#
#   scripts/breaking.sh [BASE [REVISION]]
#
# BASE defaults to the highest openapi/released/v<N>.yaml, REVISION to openapi/openapi.bundled.yaml.
# Exit codes: 0 no breaking change (or one allowed by a
# major bump), 1 breaking change without a major bump, 2 usage/version/tool error.
# BREAKING_FORMAT=githubactions (or any oasdiff -f format) changes oasdiff's output format (default text).
#
# Helpers also used by scripts/release-api.sh and scripts/breaking-selftest.sh:
#   scripts/breaking.sh --spec-version FILE   prints FILE's info.version
#   scripts/breaking.sh --latest-released     prints the highest openapi/released/v<N>.yaml (empty if none)
set -euo pipefail
# Paths given as arguments are relative to the caller's directory; the defaults to the repository root.
args=()
for a in "$@"; do
  case "$a" in /* | -*) args+=("$a") ;; *) args+=("$PWD/$a") ;; esac
done
set -- "${args[@]+"${args[@]}"}"
cd "$(dirname "$0")/.."

# spec_version FILE: the top-level info.version of a YAML OpenAPI document. The bundle is written by
# tools/specbundle with a stable layout (`info:` at column 0, its keys indented below it), so this reads
# the `version:` key at info's own child indentation only: nested keys and block-scalar text (indented
# deeper, e.g. a `description: |` mentioning "version:") are ignored. Quotes and trailing comments are
# stripped.
spec_version() {
  local v
  v=$(awk '
    /^info:[[:space:]]*(#.*)?$/ { inside = 1; next }
    inside && /^[^[:space:]#]/ { exit }                       # next top-level key
    inside && /^[[:space:]]*(#.*)?$/ { next }                 # blank or comment line
    inside {
      match($0, /^[[:space:]]*/); ind = RLENGTH
      if (child == 0) child = ind
      if (ind == child && $0 ~ /^[[:space:]]*version:/) {
        v = $0
        sub(/^[[:space:]]*version:[[:space:]]*/, "", v)
        sub(/[[:space:]]+#.*$/, "", v)
        gsub(/^["\047]|["\047][[:space:]]*$/, "", v)
        sub(/[[:space:]]+$/, "", v)
        print v; exit
      }
    }' "$1")
  if ! [[ "$v" =~ ^[0-9]+\.[0-9]+\.[0-9]+([-+].*)?$ ]]; then
    echo "breaking: $1: cannot read a semantic version from info.version (got '${v}')" >&2
    return 1
  fi
  printf '%s\n' "$v"
}

version_major() { printf '%s\n' "$((10#${1%%.*}))"; }

# latest_released: openapi/released/v<N>.yaml with the highest N.
latest_released() {
  local f n best=-1 bestf=""
  for f in openapi/released/v*.yaml; do
    [ -f "$f" ] || continue
    n=${f##*/v}; n=${n%.yaml}
    [[ "$n" =~ ^[0-9]+$ ]] || continue
    if [ "$((10#$n))" -gt "$best" ]; then best=$((10#$n)); bestf=$f; fi
  done
  printf '%s\n' "$bestf"
}

case "${1:-}" in
  --spec-version) spec_version "${2:?usage: $0 --spec-version FILE}"; exit ;;
  --latest-released) latest_released; exit ;;
esac

base=${1:-$(latest_released)}
rev=${2:-openapi/openapi.bundled.yaml}
format=${BREAKING_FORMAT:-text}
[ -n "$base" ] || { echo "breaking: no released contract under openapi/released/ (run 'task release:api' once)" >&2; exit 2; }
for f in "$base" "$rev"; do
  [ -f "$f" ] || { echo "breaking: $f: no such file" >&2; exit 2; }
done

base_version=$(spec_version "$base") || exit 2
rev_version=$(spec_version "$rev") || exit 2
base_major=$(version_major "$base_version") || exit 2
rev_major=$(version_major "$rev_version") || exit 2
echo "breaking: $base (info.version $base_version) -> $rev (info.version $rev_version)"

if [ "$rev_major" -lt "$base_major" ]; then
  echo "breaking: FAIL: info.version major went backwards ($base_version -> $rev_version)" >&2
  exit 1
fi

oasdiff=(go tool -modfile=tools/go.mod oasdiff)
color=()
case "$format" in text | singleline) color=(--color never) ;; esac

if [ "$rev_major" -gt "$base_major" ]; then
  # A new major version may break the contract: show what breaks, do not fail on it.
  rc=0
  "${oasdiff[@]}" breaking "$base" "$rev" -f "$format" "${color[@]}" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "breaking: oasdiff failed (exit $rc)" >&2
    exit 2
  fi
  echo "breaking: OK: major version bumped ($base_major -> $rev_major); breaking changes above (if any) are allowed"
  exit 0
fi

rc=0
"${oasdiff[@]}" breaking "$base" "$rev" --fail-on ERR -f "$format" "${color[@]}" || rc=$?
case "$rc" in
  0) echo "breaking: OK: no breaking change against $base" ;;
  1)
    echo "breaking: FAIL: breaking change(s) above against $base without a major version bump." >&2
    echo "breaking: make the change backward compatible, or bump info.version to $((base_major + 1)).0.0 in openapi/openapi.yaml" >&2
    exit 1
    ;;
  *)
    echo "breaking: oasdiff failed (exit $rc)" >&2
    exit 2
    ;;
esac
