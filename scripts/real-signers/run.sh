#!/usr/bin/env bash
# Verifies hookgate's signature presets against the senders' own libraries, both ways:
# each library signs a request that the running gateway must accept (and refuse once the
# body changes), and each library verifies what `hookgate sign` prints.
#
# Installs what it needs itself into a throw-away directory (a Python venv with the PyPI
# packages standardwebhooks, svix, stripe, slack-sdk, twilio, squareup; npm's
# @octokit/webhooks-methods), so it needs the PyPI and npm registries. Not part of
# `cargo test`. Usage: scripts/real-signers/run.sh
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cargo build --quiet --manifest-path "$root/Cargo.toml" --bin hookgate
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check \
  standardwebhooks svix stripe slack-sdk twilio squareup
(cd "$work" && npm install --silent --no-audit --no-fund @octokit/webhooks-methods >/dev/null)

"$work/venv/bin/python" "$root/scripts/real-signers/check.py" \
  --bin "$root/target/debug/hookgate" --work "$work"
