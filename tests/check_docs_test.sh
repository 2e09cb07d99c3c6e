#!/usr/bin/env bash
# tests/check_docs_test.sh - scripts/check_docs.sh finds what it must find: a small tree
# with one citation of each kind it rejects must fail with every planted file:line
# listed, and the same tree without them must pass. The planted strings are assembled
# at run time so that this file itself cites nothing.
#
#   bash tests/check_docs_test.sh [REPO_ROOT]
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
check="$root/scripts/check_docs.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/docs" "$tmp/src" "$tmp/tests"
cat >"$tmp/docs/benchmarks.md" <<'EOF'
| Id | Name |
|----|------|
| W1 | spawn_join |
| W2 | skynet |
EOF
cat >"$tmp/docs/design.md" <<'EOF'
See [benchmarks](benchmarks.md).
EOF
clean='// src/a.cpp - cites W1 and W2 (docs/benchmarks.md) and docs/design.md only.'
echo "$clean" >"$tmp/src/a.cpp"

fail=0
if ! out=$(bash "$check" "$tmp" 2>&1); then
  echo "FAILED: a clean tree was rejected:"
  echo "$out"
  fail=1
fi

# One planted citation per kind; each must be reported at its own file:line.
dots='..'
planted=(
  "src/b.cpp|// see ${dots}/shared/notes.md"
  "src/c.cpp|// measured: platform-""facts.md 3.1"
  "src/d.cpp|// as the test-cata""logue says"
  "src/e.cpp|// bench-""spec.md defines it"
  "src/f.cpp|// fixed for issue ""7"
  "tests/g_test.cpp|// U""8: close while waiting"
  "tests/h_test.cpp|// fd reuse (U""9)"
  "src/i.cpp|// the design is in docs/no""pe.md"
  "src/j.cpp|// W""11 got faster"
  "docs/k"".md|See [x](miss""ing.md)."
)
for p in "${planted[@]}"; do
  file=${p%%|*}
  printf '%s\n%s\n' "$clean" "${p#*|}" >"$tmp/$file"
done
rc=0
out=$(bash "$check" "$tmp" 2>&1) || rc=$?
if ((rc != 1)); then
  echo "FAILED: planted citations: exit status $rc, expected 1"
  fail=1
fi
for p in "${planted[@]}"; do
  file=${p%%|*}
  if ! grep -q "^$file:2: " <<<"$out"; then
    echo "FAILED: not reported: $file:2: ${p#*|}"
    fail=1
  fi
done
if grep -q "^src/a.cpp" <<<"$out"; then
  echo "FAILED: the clean file was reported"
  fail=1
fi
if ((fail)); then
  echo "--- check_docs output:"
  echo "$out"
  exit 1
fi
echo "check_docs_test: ${#planted[@]} planted citations reported, clean tree accepted"
