#!/usr/bin/env bash
# Builds sortie and runs its main job with no remote hosts: the `local` transport.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null 2>&1 || { echo "try.sh: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 2; }
cargo build --release --quiet -p sortie-cli
exec ./target/release/sortie exec -H local -- 'echo "hello from $(hostname) as $(id -un)"; uname -sr; echo "a line on stderr" >&2'
