#!/usr/bin/env bash
# Fuzz every parser of user input (host expressions, inventory, ssh_config, plan, CSV,
# known_hosts). See docs/reliability.md.
#
#   scripts/fuzz.sh                 # 60 s per target
#   scripts/fuzz.sh 600             # 10 min per target
#   scripts/fuzz.sh 30 csv plan     # only these targets
#
# With a nightly toolchain and cargo-fuzz: coverage-guided libFuzzer runs (ASan), the corpus
# growing in target-faults/fuzz-corpus/<target> (seeded from fuzz/corpus, fuzz/malformed and
# fuzz/regressions); crashes land in fuzz/artifacts/<target>/. Copy a fixed crash into
# fuzz/regressions/<target>/ so every later test run replays it.
# Without nightly: the stable harness (fuzz/tests/stable.rs) mutates the same inputs for the
# same time per target.
set -euo pipefail
cd "$(dirname "$0")/.."

secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(hostexpr inventory sshconfig plan csv knownhosts)
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target-faults/fuzz}"

if cargo +nightly --version >/dev/null 2>&1; then
  if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
  fi
  for t in "${targets[@]}"; do
    work="$PWD/target-faults/fuzz-corpus/$t"
    mkdir -p "$work"
    seeds=()
    for d in fuzz/corpus/$t fuzz/malformed/$t fuzz/regressions/$t; do [ -d "$d" ] && seeds+=("$PWD/$d"); done
    echo "== cargo fuzz run $t (${secs}s)"
    # -rss_limit_mb: a parser must not need 2 GB for a 64 KiB input.
    (cd fuzz && cargo +nightly fuzz run --target-dir "$CARGO_TARGET_DIR" "$t" "$work" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 -timeout=10 \
        -dict="$PWD/dict/$t.dict" -print_final_stats=1)
  done
else
  echo "fuzz.sh: no nightly toolchain; running the stable mutation harness for ${secs}s per target"
  SORTIE_FUZZ_TARGETS="$(IFS=,; echo "${targets[*]}")" SORTIE_FUZZ_SECS="$secs" cargo test --manifest-path fuzz/Cargo.toml --release --test stable -- --nocapture
fi
