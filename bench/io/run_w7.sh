#!/usr/bin/env bash
# bench/io/run_w7.sh - W7 echo: weft_echo (1 worker) vs raw_epoll_echo, server pinned to
# CPU 0, load generator pinned to CPU 1, C=64 and C=1024, REPS repetitions each, 5 s each.
#
#   bash bench/io/run_w7.sh BUILD_DIR_WITH_BENCH_IO [REPS] [DURATION]
# Prints every run as a '#' line and one RESULT line per server and C (the shape of
# bench/result.hpp), with the latency percentiles of the run whose rate is the median:
#   RESULT <server> W7 c=<C> <median> msgs/s min=<min> max=<max> reps=<n> p50=..us p99=..us p999=..us workers=1 pinning=server_cpu0,loadgen_cpu1
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
  declare -A runs=([raw_epoll]="" [weft]="")
  for ((r = 0; r < reps; r++)); do
    for name in raw_epoll weft; do
      port=$((port + 1))
      if [[ $name == raw_epoll ]]; then run_server "$dir/raw_epoll_echo" $port
      else run_server "$dir/weft_echo" $port 1; fi
      line=$(taskset -c 1 "$dir/weft_loadgen" --port $port --connections $c --duration "$dur" \
               --label $name | grep '^RESULT')
      kill $server; wait $server 2>/dev/null || true
      echo "# run $((r + 1))/$reps: $line"
      runs[$name]+="$line"$'\n'
    done
  done
  # Field 5 of a loadgen RESULT is msgs/s; fields 10-12 are p50= p99= p999=.
  for name in raw_epoll weft; do
    sorted=$(sort -g -k5,5 <<<"${runs[$name]%$'\n'}")
    n=$(wc -l <<<"$sorted")
    read -r -a median <<<"$(sed -n "$((n / 2 + 1))p" <<<"$sorted")"
    lo=$(head -n1 <<<"$sorted" | awk '{print $5}')
    hi=$(tail -n1 <<<"$sorted" | awk '{print $5}')
    echo "RESULT $name W7 c=$c ${median[4]} msgs/s min=$lo max=$hi reps=$n" \
         "${median[9]} ${median[10]} ${median[11]} workers=1 pinning=server_cpu0,loadgen_cpu1"
  done
done
