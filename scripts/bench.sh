#!/usr/bin/env bash
# scripts/bench.sh - build the release preset and run the benchmark tour.
#
#   bash scripts/bench.sh [weft_tour arguments...]
set -euo pipefail

# shellcheck source=scripts/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
cd "$(weft_repo_root)"
weft_ensure_packages

cmake --preset release
cmake --build --preset release -j2

tour=build/release/bench/weft_tour
if [[ ! -x $tour ]]; then
  echo "weft: error: $tour was not built (does bench/CMakeLists.txt define the weft_tour target?)" >&2
  exit 1
fi
exec "$tour" "$@"
