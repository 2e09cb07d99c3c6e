#!/usr/bin/env bash
# tests/example_sigterm_test.sh BINARY echo|http - a server example stops cleanly on
# SIGTERM: it is started on a free port, two connections are opened (one idle, one that
# has just been served), SIGTERM is sent, and the process must exit 0 on its own, having
# asked both connections to stop (their pending reads end) and waited for them. Without
# the stop, the idle connection's fiber would keep
# the scheduler (and the process) alive: the test fails after 20 s instead of hanging.
set -u
bin=$1 kind=$2
out=$(mktemp)
"$bin" 0 >"$out" 2>&1 &
pid=$!
trap 'kill -9 $pid 2>/dev/null; rm -f "$out"' EXIT
fail() { echo "FAIL: $*"; echo "--- server output:"; cat "$out"; exit 1; }

port=
for _ in $(seq 200); do
  port=$(grep -o '127\.0\.0\.1:[0-9]*' "$out" | head -1 | cut -d: -f2)
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || fail "the server printed no port"

exec 3<>"/dev/tcp/127.0.0.1/$port" || fail "connect 1"  # stays idle
exec 4<>"/dev/tcp/127.0.0.1/$port" || fail "connect 2"
if [ "$kind" = echo ]; then
  printf 'hello\n' >&4
  read -r -t 20 line <&4 || fail "no echo"
  [ "$line" = hello ] || fail "echo returned '$line'"
else
  printf 'GET / HTTP/1.1\r\nHost: t\r\n\r\n' >&4
  read -r -t 20 line <&4 || fail "no HTTP answer"
  [[ "$line" == "HTTP/1.1 200 OK"* ]] || fail "HTTP answer '$line'"
fi

kill -TERM "$pid"
for _ in $(seq 200); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$pid" 2>/dev/null && fail "still running 20 s after SIGTERM"
wait "$pid"
rc=$?
[ "$rc" -eq 0 ] || fail "exit status $rc"
grep -q "stopping on signal 15" "$out" || fail "no 'stopping on signal 15' line"
grep -q "stopped: 2 connection(s) asked to stop, 0 still running" "$out" ||
  fail "expected both connections stopped"
echo "PASS: $(tail -1 "$out")"
