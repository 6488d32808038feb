#!/usr/bin/env bash
# No source file over 400 lines (code, tests and scripts alike; data files
# such as JSON documents and dashboards are not source). `make lint` runs
# it; clang-tidy's readability-function-size keeps functions outside the
# tests under 80 lines.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${1:-400}
status=0
while IFS= read -r file; do
  lines=$(wc -l <"$file")
  if ((lines > limit)); then
    echo "sizes: $file has $lines lines (at most $limit)" >&2
    status=1
  fi
done < <(git ls-files '*.cpp' '*.hpp' '*.h' '*.py' '*.sh' '*.mjs' '*.js' '*.lua' '*.sql' '*.html' \
  'Makefile' 'Dockerfile' '.ci/run')
((status == 0)) && echo "sizes: every source file has at most $limit lines"
exit "$status"
