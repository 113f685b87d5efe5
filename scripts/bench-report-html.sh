#!/usr/bin/env bash
# Benchmark of report.html for a big run (not a test): 1000 processes on 10 hosts, an hour of
# 5-second samples. Builds the page with the bench_report_html example, then opens it from disk
# in headless Chromium RUNS times and prints the page's own load time (navigation start to the
# first drawing done, the page's data-load-ms) and the wall time of each Chromium run.
#   scripts/bench-report-html.sh [RUNS] [-- example args: --processes N --hosts N --hour-samples N]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
out=${CARGO_TARGET_DIR:-target}/bench-report-html
cargo run -q --release -p sortie-report --example bench_report_html -- "$out" "$@"
command -v chromium >/dev/null || { echo "chromium not installed: no load time"; exit 0; }
page="file://$(cd "$out" && pwd)/report.html"
for i in $(seq "$runs"); do
  start=$(date +%s%N)
  dom=$(chromium --headless --no-sandbox --disable-gpu --window-size=1280,1600 \
    --virtual-time-budget=10000 --dump-dom "$page" 2>/dev/null)
  end=$(date +%s%N)
  load=$(printf '%s' "$dom" | grep -o 'data-load-ms="[0-9]*"' | head -1 | tr -dc 0-9)
  rows=$(printf '%s' "$dom" | grep -o '<tr data-id=' | wc -l)
  echo "run $i: page load ${load:-?} ms (to first drawing), chromium wall $(( (end - start) / 1000000 )) ms, table rows $rows"
done
