#!/usr/bin/env bash
# bench/io/run_w7.sh - W7 echo: weft_echo (1 worker) vs raw_epoll_echo, server pinned to
# CPU 0, load generator pinned to CPU 1, C=64 and C=1024, REPS repetitions each, 5 s each.
#
#   bash bench/io/run_w7.sh BUILD_DIR_WITH_BENCH_IO [REPS] [DURATION]
# Prints every run and one line per server and C:
#   RESULT <server> W7 c=<C> <median> msgs/s min=<min> max=<max> reps=<n>
# Benchmark workloads cited here (W7): docs/benchmarks.md.
set -euo pipefail
dir=${1:?build dir containing weft_loadgen, weft_echo, raw_epoll_echo}
reps=${2:-5}
dur=${3:-5}
port=$((20000 + RANDOM % 20000))

run_server() {  # name cmd...
  taskset -c 0 "$@" >/dev/null &
  server=$!
  sleep 0.3
}

# The two servers alternate run by run, so a slow phase of the VM hits both alike.
for c in 64 1024; do
  declare -A rates=([raw_epoll]="" [weft]="")
  for ((r = 0; r < reps; r++)); do
    for name in raw_epoll weft; do
      port=$((port + 1))
      if [[ $name == raw_epoll ]]; then run_server "$dir/raw_epoll_echo" $port
      else run_server "$dir/weft_echo" $port 1; fi
      line=$(taskset -c 1 "$dir/weft_loadgen" --port $port --connections $c --duration "$dur" \
               --label $name | grep '^RESULT')
      kill $server; wait $server 2>/dev/null || true
      echo "$line"
      rates[$name]+=" $(awk '{print $5}' <<<"$line")"
    done
  done
  for name in raw_epoll weft; do
    sorted=($(printf '%s\n' ${rates[$name]} | sort -n))
    n=${#sorted[@]}
    echo "RESULT $name W7 c=$c ${sorted[$((n / 2))]} msgs/s min=${sorted[0]} max=${sorted[$((n - 1))]} reps=$n (server cpu0, loadgen cpu1)"
  done
done
