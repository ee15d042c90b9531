#!/usr/bin/env bash
# Times `hookgate validate` against ajv-cli and check-jsonschema on the same 5 000
# Flashduty incident documents (the repository's valid fixtures, each copied with fresh
# event ids), all three asserting `format`, with hyperfine.
#
# Needs: a release build (cargo build --release), hyperfine, and the two other tools on
# PATH or in BENCH_TOOLS (default /tmp/h18bench, laid out as installed by:
#   npm install --prefix "$BENCH_TOOLS" ajv-cli ajv-formats
#   python3 -m venv "$BENCH_TOOLS/venv" && "$BENCH_TOOLS/venv/bin/pip" install check-jsonschema
# ). The documents go to a temporary folder, never into the repository.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tools=${BENCH_TOOLS:-/tmp/h18bench}
count=${COUNT:-5000}
hookgate="$repo/target/release/hookgate"
ajv="$tools/node_modules/.bin/ajv"
cj="$tools/venv/bin/check-jsonschema"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

"$hookgate" schemas show flashduty-incident > "$work/schema.json"
python3 - "$repo/tests/schemas/flashduty-incident/valid" "$work/docs" "$count" <<'PY'
import json, os, sys, uuid
src, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(out)
fixtures = [json.load(open(os.path.join(src, f))) for f in sorted(os.listdir(src)) if f.endswith(".json")]
for i in range(count):
    doc = dict(fixtures[i % len(fixtures)])
    doc["event_id"] = uuid.UUID(int=i).hex
    with open(os.path.join(out, f"{i:05}.json"), "w") as f:
        json.dump(doc, f)
PY

# Every tool must accept every document, or the timing compares different work.
"$hookgate" validate --schema flashduty-incident "$work/docs" > /dev/null
"$ajv" validate --spec=draft2020 -c ajv-formats --strict=false -s "$work/schema.json" -d "$work/docs/*.json" > /dev/null 2>&1
"$cj" --schemafile "$work/schema.json" "$work"/docs/*.json > /dev/null

cd "$work"
hyperfine --warmup 1 --runs "${RUNS:-5}" --export-markdown "${EXPORT:-/dev/stdout}" \
  -n "hookgate validate" "$hookgate validate --schema flashduty-incident docs" \
  -n "ajv-cli" "$ajv validate --spec=draft2020 -c ajv-formats --strict=false -s schema.json -d 'docs/*.json'" \
  -n "check-jsonschema" "$cj --schemafile schema.json docs/*.json"
