#!/usr/bin/env bash
# Instructions per request body, core vs the serde_json + regex baseline, counted by
# callgrind: repeatable whatever else the machine is doing (wall-time medians are not).
# Start-up (loading validators, compiling regexes) is measured with 0 iterations and
# subtracted.
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind" >&2; exit 1; }
iters=${C2D_BENCH_ITERS:-2000}
bodies=11
bin=$(cargo bench -p click2dial-core --bench parse_validate --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*parse_validate[^"]*\)".*/\1/p' | tail -1)
count() {
  C2D_BENCH_ONLY=$1 C2D_BENCH_ITERS=$2 valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" 2>&1 |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
declare -A per_body
for which in core baseline; do
  total=$(count "$which" "$iters")
  setup=$(count "$which" 0)
  per_body[$which]=$(( (total - setup) / (iters * bodies) ))
  echo "instructions per body, $which: ${per_body[$which]}"
done
awk -v c="${per_body[core]}" -v b="${per_body[baseline]}" 'BEGIN { printf "ratio baseline/core (instructions): %.2fx\n", b / c }'
