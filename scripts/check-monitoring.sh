#!/usr/bin/env bash
# promtool over monitoring/: the compose Prometheus config, the alert rules
# and their unit tests. Exits 77 (CTest: skipped) when promtool is missing.
set -euo pipefail
cd "$(dirname "$0")/../monitoring/prometheus"
if ! command -v promtool >/dev/null; then
  echo "SKIPPED: promtool not installed (Debian package prometheus; make test-deps)"
  exit 77
fi
promtool check config prometheus.yml
promtool check rules rules/*.yml
promtool test rules tests/*.yml
python3 -c "import json,sys; json.load(open('../grafana/dashboards/pipeline.json'))" \
  && echo "grafana dashboard: valid JSON"
