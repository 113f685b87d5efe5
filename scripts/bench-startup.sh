#!/usr/bin/env bash
# Size and start-up time of the installed binary (the `dist` profile), beside the peers that are
# on this machine (clush, GNU parallel, pdsh). Builds the dist binary when missing (slow: LTO).
# Prints medians of N runs (default 30) and the load average; run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${N:-30}
target=${CARGO_TARGET_DIR:-target}
[ -x "$target/dist/sortie" ] || cargo build --quiet --profile dist -p sortie-cli
python3 - "$target/dist/sortie" "$n" <<'PY'
import os, shutil, statistics, subprocess, sys, time
sortie, n = sys.argv[1], int(sys.argv[2])
def median_ms(argv):
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        xs.append(time.perf_counter() - t)
    return statistics.median(xs) * 1000
print(f"load average {os.getloadavg()[0]:.2f}; medians of {n} runs")
print(f"{'command':<40} {'start-up':>10}")
rows = [("sortie --version", [sortie, "--version"]),
        ("sortie exec -H local true", [sortie, "exec", "-H", "local", "true"])]
for name, argv in (("clush --version", ["clush", "--version"]),
                   ("parallel --version", ["parallel", "--version"]),
                   ("pdsh -V", ["pdsh", "-V"])):
    if shutil.which(argv[0]):
        rows.append((name, argv))
for name, argv in rows:
    print(f"{name:<40} {median_ms(argv):>8.1f} ms")
print(f"sortie dist binary: {os.path.getsize(sortie) / 2**20:.1f} MiB")
PY
