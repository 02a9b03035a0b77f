#!/usr/bin/env bash
# The README's quick start on a fresh clone, timed step by step; writes the table the README links to.
#   bash bench/quickstart.sh [OUT.md]     (run from the project; clones it next to ../shared into a temporary folder)
# Time it on an idle machine: a second busy process makes torch's threads fight for the cores.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/results/bench/$(date -u +%Y-%m-%d)-quickstart.md}"
shared="$(cd "$here/../shared" && pwd)" || { echo "quickstart.sh: no ../shared beside $here" >&2; exit 2; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
ln -s "$shared" "$work/shared"   # the clone's ../shared, as the README expects
git clone -q "$here" "$work/imdb-peft"
cd "$work/imdb-peft"
commit="$(git rev-parse --short HEAD)"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//') ($(nproc) cores)"
# `|| true` here and below: grep finds nothing on a CPU without these flags, which must not stop the script
flags="$( { grep -m1 -o -w -e avx512_bf16 -e amx_bf16 /proc/cpuinfo || true; } | sort -u | paste -sd' ' -)"
rows=()
step() {  # step "command" : runs it, keeps its seconds and exit code and the last line it printed
  local start end last rc=0
  start=$(date +%s.%N)
  bash -c "$1" > "$work/step.log" 2>&1 || rc=$?
  end=$(date +%s.%N)
  # a step that prints none of these words leaves the cell empty
  last="$( { grep -E 'passed|failed|progress|summary|error' "$work/step.log" || true; } | tail -1 | cut -c1-100 | tr '|' '/')"
  rows+=("| \`$1\` | $(printf '%.0f' "$(echo "$end - $start" | bc)") | $rc | $last |")
  [ "$rc" = 0 ] || tail -20 "$work/step.log"
}
step "make setup"
step "make test"
step "make part1 PROFILE=quick DATA_DIR=../shared/data/imdb"
{
  echo "# The README's quick start on a fresh clone"
  echo
  echo "Command: \`bash bench/quickstart.sh\` at commit $commit, $(date -u +%Y-%m-%dT%H:%MZ), $cpu; CPU flags: ${flags:-none}."
  echo "Each step as the README gives it, in a fresh clone beside \`../shared\`, nothing else running."
  echo
  echo "| Step | Seconds | Exit code | Last line |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$out"
cat "$out"
