#!/usr/bin/env bash
# clang-tidy over the project's own sources (not generated or third-party
# code), with the compile commands of the build in $1. Fails on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
mapfile -t files < <(git ls-files 'common/*.cpp' 'ingest/*.cpp' 'processor/*.cpp' 'loadtest/*.cpp' 'tests/*.cpp')
run-clang-tidy -quiet -p "$build" -j "$(nproc)" "${files[@]}" >"$build/clang-tidy.log" 2>&1 || {
  grep -E "warning:|error:" "$build/clang-tidy.log" | sort -u | head -n 100
  echo "lint: clang-tidy found problems (full log: $build/clang-tidy.log)" >&2
  exit 1
}
echo "lint: clean (${#files[@]} files)"
scripts/check-sizes.sh
