#!/usr/bin/env bash
# Lints ingest/openapi.json with Redocly's CLI (npm @redocly/cli, installed
# in tests/clients by make test-deps), its strict rule set: any finding fails.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [[ ! -x $here/node_modules/.bin/redocly ]]; then
  echo "lint-openapi: @redocly/cli is missing; run make test-deps (npm ci in tests/clients)" >&2
  exit 1
fi
# No telemetry and no update check: the linter works offline.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
exec "$here/node_modules/.bin/redocly" lint --config "$here/redocly.yaml" \
  "$here/../../ingest/openapi.json"
