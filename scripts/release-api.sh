#!/usr/bin/env bash
# `task release:api`: releases the current contract. Copies openapi/openapi.bundled.yaml to
# openapi/released/v<MAJOR>.yaml (MAJOR from its info.version) and prepends to CHANGELOG.md a dated
# section with `oasdiff changelog <previous released> <bundle>` (markdown).
#
# Refuses to release a breaking change without a major bump (runs scripts/breaking.sh first) and a version
# that CHANGELOG.md already has; releasing an unchanged contract again is a no-op.
# RELEASE_DATE=YYYY-MM-DD overrides the section's date (default: today, UTC).
set -euo pipefail
cd "$(dirname "$0")/.."

bundle=openapi/openapi.bundled.yaml
changelog=CHANGELOG.md
[ -f "$bundle" ] || { echo "release:api: $bundle missing; run 'task generate'" >&2; exit 1; }

version=$(bash scripts/breaking.sh --spec-version "$bundle")
major=$((10#${version%%.*}))
prev=$(bash scripts/breaking.sh --latest-released)
target=openapi/released/v$major.yaml
date=${RELEASE_DATE:-$(date -u +%F)}

if [ -f "$changelog" ] && grep -qE "^## ${version//./\\.}( |$)" "$changelog"; then
  if [ -n "$prev" ] && cmp -s "$bundle" "$prev"; then
    echo "release:api: $version is already released as $prev; nothing to do"
    exit 0
  fi
  echo "release:api: $changelog already has $version but the contract differs from ${prev:-the released one};" >&2
  echo "release:api: bump info.version in openapi/openapi.yaml, run 'task generate', then release" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if [ -n "$prev" ]; then
  prev_version=$(bash scripts/breaking.sh --spec-version "$prev")
  if [ "$prev_version" = "$version" ]; then
    echo "release:api: info.version is still $version, as in $prev; bump it in openapi/openapi.yaml first" >&2
    exit 1
  fi
  # The gate: a breaking change needs a major bump.
  bash scripts/breaking.sh "$prev" "$bundle"
  title="## $version — $date"
  [ "$major" -gt "$((10#${prev_version%%.*}))" ] && title="$title — new major version (breaking changes allowed)"
  {
    echo "$title"
    echo
    echo "Changes since $prev_version:"
    echo
    # oasdiff's own title goes; its headings move one level under ours.
    go tool -modfile=tools/go.mod oasdiff changelog "$prev" "$bundle" -f markdown |
      sed -e '/^# API Changelog/d' -e 's/^#/##/' | cat -s | sed -e '/./,$!d'
  } >"$tmp/section"
else
  printf '## %s — %s — first released contract\n\n' "$version" "$date" >"$tmp/section"
fi
# Exactly one blank line at the end of the section.
sed -i -e ':a' -e '/^\n*$/{$d;N;ba' -e '}' "$tmp/section"
echo >>"$tmp/section"

if [ ! -f "$changelog" ]; then
  printf '# Changelog\n\nChanges to the WataOmi API contract, newest first (written by `task release:api`).\n\n' >"$changelog"
fi
# Insert the section before the first existing release section (after the file's preamble).
awk -v section="$tmp/section" '
  !done && /^## / { while ((getline line < section) > 0) print line; done = 1 }
  { print; last = $0 }
  END { if (!done) { if (last != "") print ""; while ((getline line < section) > 0) print line } }
' "$changelog" >"$tmp/changelog"
cp "$tmp/changelog" "$changelog"

mkdir -p openapi/released
cp "$bundle" "$target"
echo "release:api: released $version as $target${prev:+ (previous: $prev)}; $changelog updated"
