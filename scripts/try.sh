#!/usr/bin/env bash
# Builds sortie and runs its main job with no remote hosts: the local example plan
# (examples/local), whose KVS master/viewer stand-ins run on the `local` transport. It starts
# masters, then each viewer after its master's ready line, holds 5 s, stops everything with
# SIGINT, and prints the report (one channel fails on purpose, to show how failures look).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || { echo "try.sh: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 2; }
cargo build --release --quiet -p sortie-cli
./target/release/sortie exec -H local -- 'echo "sortie exec on $(hostname) as $(id -un): $(uname -sr)"'
exec ./target/release/sortie launch examples/local/plan.toml "$@"
