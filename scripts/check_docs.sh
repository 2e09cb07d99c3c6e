#!/usr/bin/env bash
# scripts/check_docs.sh - fails when a file of the repository cites something the
# repository does not contain. The repository must stand alone: a comment cites the code
# or docs/, never notes kept elsewhere.
#
#   bash scripts/check_docs.sh [REPO_ROOT]
#
# Reports file:line: reason for each of:
#   - a path into a directory outside the repository (../shared), or the names of
#     documents kept there (platform-facts, test-catalogue, bench-spec);
#   - an issue number ("issue 3", "issue #12", "issue-4");
#   - a test-catalogue id (U8, A4, F3, S6, B10: a letter of U A B F S and a number) at the
#     start of a comment, in parentheses, or anything called "catalogue";
#   - a docs/<name>.md path, or a relative *.md link in a Markdown file, that does not exist;
#   - a workload id W<n> that docs/benchmarks.md does not define (a table row "| W<n> |").
# Exit status 0 when nothing is found, 1 otherwise (2: bad usage). Registered as the ctest
# test check_docs (label docs, tests/CMakeLists.txt). Mutation that makes it fail: add a
# comment that cites ../shared/platform-facts.md (or "issue 7", or docs/nope.md) to any
# source file.
set -euo pipefail

root=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"}
[[ -d $root ]] || { echo "check_docs: no such directory: $root" >&2; exit 2; }
cd "$root"
self=scripts/check_docs.sh

# Tracked and untracked-but-not-ignored files (build/ is ignored); without git, every
# file outside build/ and .git/.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files --cached --others --exclude-standard | sort -u)
else
  mapfile -t files < <(find . -type f -not -path './build/*' -not -path './.git/*' | sed 's|^\./||' | sort)
fi
checked=()
for f in "${files[@]}"; do
  [[ $f == "$self" || ! -f $f ]] && continue
  checked+=("$f")
done
if ((${#checked[@]} == 0)); then
  echo "check_docs: no files found under $root" >&2
  exit 2
fi

problems=()
add() { problems+=("$1"); }

# grep_all REASON ERE: every line of every file matching ERE (grep -I skips binaries).
grep_all() {
  local reason=$1 re=$2 hit
  while IFS= read -r hit; do
    add "${hit%%:*}:$(cut -d: -f2 <<<"$hit"): $reason"
  done < <(grep -IHnE -- "$re" "${checked[@]}" || true)
}

grep_all "cites a directory outside the repository (../shared)" '\.\./shared'
grep_all "cites an outside document (platform-facts); use docs/platform.md" 'platform-facts'
grep_all "cites an outside document (test-catalogue); describe the property" 'test-catalogue'
grep_all "cites an outside document (bench-spec); use docs/benchmarks.md" 'bench-spec'
grep_all "cites an issue number" '\b[Ii]ssue[- ]#?[0-9]+\b'
grep_all "cites a test-catalogue id at the start of a comment" \
  '(//|#|/\*|^ *\*) *[UABFS][0-9]{1,2}([:,./ )]|$)'
grep_all "cites a test-catalogue id" '\((catalogue )?[UABFS][0-9]{1,2}(( *[,/] *| and )[UABFS][0-9]{1,2})*\)'
grep_all "cites a test-catalogue id" \
  "\\b[UABFS][0-9]{1,2}('s\\b|: | test\\b| at\\b)|^ *(//|#) *([0-9]+|[A-Z])\\. [UABFS][0-9]{1,2}\\b"
grep_all "cites the test catalogue" '\b[Cc]atalogue\b'

# docs/<name>.md must exist (relative to the repository root).
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  path=${rest#*:}
  [[ -f $path ]] || add "$file:$line: cites $path, which does not exist"
done < <(grep -IHnoE 'docs/[A-Za-z0-9_./-]+\.md' "${checked[@]}" || true)

# Relative Markdown links to *.md files, resolved from the linking file's directory.
for f in "${checked[@]}"; do
  [[ $f == *.md ]] || continue
  while IFS= read -r hit; do
    line=${hit%%:*}
    target=${hit#*:}
    target=${target#](}
    target=${target%)}
    target=${target%%#*}
    [[ $target == *://* || -z $target ]] && continue
    [[ -f "$(dirname "$f")/$target" ]] || add "$f:$line: links to $target, which does not exist"
  done < <(grep -noE '\]\([^)[:space:]]+\.md(#[^)]*)?\)' "$f" || true)
done

# Workload ids: defined by table rows "| W<n> |" of docs/benchmarks.md.
defined=" "
if [[ -f docs/benchmarks.md ]]; then
  defined+=$(grep -oE '^\| *W[0-9]+ *\|' docs/benchmarks.md | tr -d '| ' | tr '\n' ' ')
fi
while IFS= read -r hit; do
  file=${hit%%:*}
  rest=${hit#*:}
  line=${rest%%:*}
  id=${rest#*:}
  [[ $defined == *" $id "* ]] || add "$file:$line: workload id $id is not defined in docs/benchmarks.md"
done < <(grep -IHnowE 'W[0-9]+' "${checked[@]}" || true)

if ((${#problems[@]})); then
  mapfile -t problems < <(printf "%s\n" "${problems[@]}" | sort -t: -k1,1 -k2,2n | uniq)
  printf '%s\n' "${problems[@]}"
  echo "check_docs: ${#problems[@]} citation(s) of something the repository does not contain" >&2
  exit 1
fi
echo "check_docs: ${#checked[@]} files, no citation of anything outside the repository"
