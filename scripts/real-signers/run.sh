#!/usr/bin/env bash
# Verifies hookgate's signature presets against the senders' own libraries, both ways:
# each library signs a request that the running gateway must accept (and refuse once the
# body changes), and each library verifies what `hookgate sign` prints.
#
# Installs what it needs itself into a throw-away directory (a Python venv with the PyPI
# packages standardwebhooks, svix, stripe, slack-sdk, twilio, squareup; npm's
# @octokit/webhooks-methods, @shopify/shopify-api, @twurple/eventsub-http), so it needs the
# PyPI and npm registries. Not part of `cargo test`. Usage: scripts/real-signers/run.sh
# (builds target/debug/hookgate), or HOOKGATE_BIN=path/to/hookgate scripts/real-signers/run.sh
# to check an existing binary.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

bin=${HOOKGATE_BIN:-}
if [ -z "$bin" ]; then
  cargo build --quiet --manifest-path "$root/Cargo.toml" --bin hookgate
  bin="$root/target/debug/hookgate"
fi
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  standardwebhooks svix stripe slack-sdk twilio squareup
(cd "$work" && npm install --silent --no-audit --no-fund \
  @octokit/webhooks-methods @shopify/shopify-api @twurple/eventsub-http >/dev/null)

"$work/venv/bin/python" "$root/scripts/real-signers/check.py" \
  --bin "$bin" --work "$work"
