#!/usr/bin/env bash
# Self-check of the breaking-change gate (run by `task breaking` in CI): proves that scripts/breaking.sh,
# the exact check CI runs, catches a removed endpoint, a new required request property and a removed
# required response property, lets an unmodified spec through, and lets a breaking change through only
# with a major info.version bump. Works on copies of openapi/openapi.bundled.yaml in a temporary
# directory (edited with python3 + PyYAML), never on the tree. Exits non-zero if any expectation fails.
set -euo pipefail
cd "$(dirname "$0")/.."

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp openapi/openapi.bundled.yaml "$tmp/base.yaml"
cp openapi/openapi.bundled.yaml "$tmp/same.yaml"

# Writes the modified copies and a manifest "<file> <expected exit> <expected oasdiff rule or ->".
python3 - "$tmp" <<'PY'
import copy, re, sys
import yaml

tmp = sys.argv[1]

# A YAML 1.2-style loader: PyYAML's YAML 1.1 resolvers would turn yes/no/on/off into booleans,
# unquoted dates into datetimes and 1:30 into 90, and the copies would then differ from the bundle
# in more than the one intended edit.
class Loader(yaml.SafeLoader):
    pass
Loader.yaml_implicit_resolvers = {}
for tag, regexp, first in [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    ("tag:yaml.org,2002:int", r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$", list("-+0123456789")),
    ("tag:yaml.org,2002:float",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
     list("-+0123456789.")),
]:
    Loader.add_implicit_resolver(tag, re.compile(regexp), first)

with open(f"{tmp}/base.yaml") as f:
    base = yaml.load(f, Loader=Loader)

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

def dump(doc, name):
    with open(f"{tmp}/{name}", "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False, allow_unicode=True, width=100000, default_flow_style=False)

def resolve(doc, schema):
    while isinstance(schema, dict) and "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), f"external $ref in the bundle: {ref}"
        node = doc
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        schema = node
    return schema

def operations(doc):
    for path, item in doc.get("paths", {}).items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]

def pick(candidates, fallback, what):
    for c in list(candidates) + list(fallback):
        return c
    sys.exit(f"selftest: no {what} in the bundle to edit")

def bump(doc, major_delta, minor_delta=0):
    major, minor, _ = (int(x) for x in re.match(r"^(\d+)\.(\d+)\.(\d+)", str(doc["info"]["version"])).groups())
    doc["info"]["version"] = f"{major + major_delta}.{0 if major_delta else minor + minor_delta}.0"

manifest = []
def case(doc, name, rc, rule, what):
    dump(doc, name)
    manifest.append(f"{name}\t{rc}\t{rule}\t{what}")

# 0. The same document re-serialised by this script: proves the edits below change nothing else.
case(copy.deepcopy(base), "roundtrip.yaml", 0, "-", "unmodified bundle, re-serialised")

# a. An operation removed (DELETE /flows/{id}; else any operation of a path that has several).
doc = copy.deepcopy(base)
path, method = pick(
    [("/flows/{id}", "delete")] if "delete" in doc["paths"].get("/flows/{id}", {}) else [],
    ((p, m) for p, m, _ in operations(doc) if sum(x in doc["paths"][p] for x in METHODS) > 1),
    "path with two operations")
del doc["paths"][path][method]
case(doc, "removed-operation.yaml", 1, "api-removed-without-deprecation", f"{method.upper()} {path} removed")
removed_operation = doc

# a'. The same with a minor bump still fails; with a major bump it passes.
doc = copy.deepcopy(removed_operation); bump(doc, 0, 1)
case(doc, "removed-operation-minor-bump.yaml", 1, "api-removed-without-deprecation",
     f"{method.upper()} {path} removed, info.version {doc['info']['version']}")
doc = copy.deepcopy(removed_operation); bump(doc, 1)
case(doc, "removed-operation-major-bump.yaml", 0, "api-removed-without-deprecation",
     f"{method.upper()} {path} removed, info.version {doc['info']['version']}")

# a''. A whole path item removed (/teams/{id}/members; else the last path).
doc = copy.deepcopy(base)
path = pick(["/teams/{id}/members"] if "/teams/{id}/members" in doc["paths"] else [],
            reversed(list(doc["paths"])), "path")
del doc["paths"][path]
case(doc, "removed-path.yaml", 1, "api-path-removed-without-deprecation", f"path {path} removed")

# b. A new required request property (POST /teams body; else the first JSON object request body).
def json_body_schema(doc, op):
    body = resolve(doc, op.get("requestBody", {}))
    return resolve(doc, body.get("content", {}).get("application/json", {}).get("schema"))

doc = copy.deepcopy(base)
preferred = [("/teams", "post")] if "post" in doc["paths"].get("/teams", {}) else []
path, method = pick(
    ((p, m) for p, m in preferred if isinstance(json_body_schema(doc, doc["paths"][p][m]), dict)
     and "properties" in json_body_schema(doc, doc["paths"][p][m])),
    ((p, m) for p, m, op in operations(doc) if isinstance(json_body_schema(doc, op), dict)
     and "properties" in json_body_schema(doc, op)),
    "JSON object request body")
schema = json_body_schema(doc, doc["paths"][path][method])
schema["properties"]["selftest_color"] = {"type": "string", "maxLength": 20}
schema["required"] = list(schema.get("required", [])) + ["selftest_color"]
case(doc, "new-required-request-property.yaml", 1, "new-required-request-property",
     f"required selftest_color added to the {method.upper()} {path} request body")

# c. A required response property removed (GET /teams/{id} 200; else the first 2xx JSON object response).
def ok_schema(doc, op):
    for code, resp in op.get("responses", {}).items():
        if str(code).startswith("2"):
            s = resolve(doc, resolve(doc, resp).get("content", {}).get("application/json", {}).get("schema"))
            if isinstance(s, dict) and s.get("required") and "properties" in s:
                return s
    return None

doc = copy.deepcopy(base)
preferred = [("/teams/{id}", "get")] if "get" in doc["paths"].get("/teams/{id}", {}) else []
path, method = pick(
    ((p, m) for p, m in preferred if ok_schema(doc, doc["paths"][p][m])),
    ((p, m) for p, m, op in operations(doc) if ok_schema(doc, op)),
    "2xx JSON object response with required properties")
schema = ok_schema(doc, doc["paths"][path][method])
prop = schema["required"][-1]
schema["required"] = [r for r in schema["required"] if r != prop]
schema["properties"].pop(prop, None)
case(doc, "removed-required-response-property.yaml", 1, "response-required-property-removed",
     f"required {prop} removed from the {method.upper()} {path} response")

with open(f"{tmp}/manifest", "w") as f:
    f.write("\n".join(manifest) + "\n")
PY

# A document oasdiff cannot load must fail the gate as a tool error (2), not pass and not look "breaking".
cat >"$tmp/broken.yaml" <<'EOF'
openapi: 3.1.0
info:
  title: broken
  version: 1.0.0
paths:
  /a: [unclosed
EOF
printf 'same.yaml\t0\t-\tbyte copy of the bundle\nbroken.yaml\t2\t-\tunparseable document\n' >>"$tmp/manifest"

failed=0
while IFS=$'\t' read -r file want rule what; do
  got=0
  out=$(bash scripts/breaking.sh "$tmp/base.yaml" "$tmp/$file" 2>&1) || got=$?
  problem=""
  if [ "$got" -ne "$want" ]; then
    problem="exit $got, want $want"
  elif [ "$rule" != "-" ] && ! grep -qF "[$rule]" <<<"$out"; then
    problem="no [$rule] finding"
  elif [ "$rule" = "-" ] && [ "$want" -eq 0 ] && ! grep -qF "No changes detected" <<<"$out"; then
    problem="oasdiff reported changes for an unmodified spec"
  fi
  if [ -n "$problem" ]; then
    failed=1
    echo "selftest: FAIL  $what ($file): $problem"
    sed 's/^/    | /' <<<"$out"
  else
    found=""; [ "$rule" = "-" ] || found=" [$rule]"
    echo "selftest: ok    $what -> exit $got$found"
  fi
done <"$tmp/manifest"

if [ "$failed" -ne 0 ]; then
  echo "selftest: the breaking-change gate does not behave as expected" >&2
  exit 1
fi
echo "selftest: OK: the breaking-change gate catches removed endpoints and required-field changes"
