#!/usr/bin/env bash
# Checks compose.yaml, the Dockerfile and the files they use, without a
# container engine (CTest label `compose`; `make test` and .ci/run run it):
#
#   scripts/check-compose.sh [BUILD_DIR]
#
# Debian's docker-compose validates the file; the pytest tests of
# tests/compose check the properties, one test each. BUILD_DIR holds the
# binaries whose libraries scripts/packages-runtime.txt must cover: given,
# missing binaries fail those tests; not given, build/ is used and they are
# skipped if it lacks them.
# Exits 77 (CTest: skipped) when docker-compose is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v docker-compose >/dev/null; then
  echo "SKIPPED: docker-compose not installed (it is in scripts/packages-test.txt: make test-deps)"
  exit 77
fi
docker-compose -f compose.yaml config -q
# Debian's python3-pytest, python3-yaml and python3-docker (docker-compose's
# own dependencies) are the system Python's.
exec /usr/bin/python3 -m pytest -q tests/compose ${1:+--build-dir "$1"}
