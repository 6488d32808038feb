#!/usr/bin/env bash
# Checks compose.yaml, the Dockerfile and the files they use, without a
# container engine (CTest label `compose`; `make test` and .ci/run run it):
#
#   scripts/check-compose.sh [BUILD_DIR]
#
# docker-compose (Debian's, from scripts/packages-test.txt) validates the file;
# scripts/check_compose.py checks the rest and says what each check covers.
# Exits 77 (CTest: skipped) when docker-compose is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}

if ! command -v docker-compose >/dev/null; then
  echo "SKIPPED: docker-compose not installed (it is in scripts/packages-test.txt: make test-deps)"
  exit 77
fi
for tool in nats-server readelf ldd dpkg make; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not found (make deps installs it)" >&2; exit 1; }
done
# The Python that runs docker-compose has PyYAML (python3-yaml is its dependency).
python=python3
/usr/bin/python3 -c 'import yaml' 2>/dev/null && python=/usr/bin/python3
exec "$python" scripts/check_compose.py "$build_dir"
