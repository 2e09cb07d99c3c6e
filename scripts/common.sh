# shellcheck shell=bash
# scripts/common.sh - helpers sourced by the other scripts (not executed on its own).

# Debian packages the build, tests and benchmarks need.
WEFT_PACKAGES=(
  cmake g++ clang libclang-rt-14-dev pkg-config
  libboost-context-dev libhwloc-dev hwloc libconcurrentqueue-dev
  libgtest-dev libbenchmark-dev libboost-fiber-dev libtbb-dev
)

# What scripts/bench.sh needs on top: python3 runs the JSON converter and the SVG chart
# writer (scripts/bench_json.py, scripts/bench_charts.py; standard library only);
# golang-go builds W11's Go peer (bench/peers/go/churn.go). Kept out of WEFT_PACKAGES so
# that test.sh installs no more than the build and tests need.
# shellcheck disable=SC2034 # used by scripts/bench.sh
WEFT_BENCH_PACKAGES=(python3 golang-go)

# weft_ensure_packages [EXTRA...]: installs the missing packages of WEFT_PACKAGES and
# EXTRA when running as root; otherwise prints the apt-get command to run and exits 1.
weft_ensure_packages() {
  local missing=() pkg
  for pkg in "${WEFT_PACKAGES[@]}" "$@"; do
    if ! dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
      missing+=("$pkg")
    fi
  done
  if ((${#missing[@]} == 0)); then
    return 0
  fi
  echo "weft: missing packages: ${missing[*]}" >&2
  if [[ $(id -u) -eq 0 ]]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    echo "weft: run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
}

# weft_repo_root: prints the repository root (the parent of scripts/).
weft_repo_root() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd
}
