#!/usr/bin/env bash
# The whole test suite: what CI runs (.ci/run calls this script).
#
# 1. Makes sure OpenSSH's server binary is present: the integration tests start their own sshd
#    fixtures (own config, keys and loopback port). When it is missing and we are root on a
#    Debian-like system, installs `openssh-server` through apt without starting the system
#    service (a temporary policy-rc.d); the system sshd and /etc/ssh are otherwise untouched.
#    Installs ClusterShell with pip when `nodeset` is missing (the folding test's oracle).
#    Likewise Dropbear (dropbear-bin), busybox, zsh, fish and tcsh for the tests of other
#    servers and login shells (they create test accounts sortie-t-<shell>), and Chromium for the
#    headless tests of report.html and the live dashboard.
# 2. cargo fmt --check, cargo clippy -D warnings, cargo-deny (licences, bans, sources; advisories
#    when the RustSec database can be fetched), every test of the workspace, then the parsers'
#    fuzz harness for a bounded time (SORTIE_FUZZ_SECS per parser, default 10; longer runs:
#    scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || need_pkgs+=(openssh-server)
command -v ssh >/dev/null 2>&1 || need_pkgs+=(openssh-client)
command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
# Other SSH servers and login shells (tests/servers_shells.rs): Dropbear as on cameras and
# routers, BusyBox ash, and the non-POSIX shells fish and tcsh beside zsh. No service starts.
[ -x /usr/sbin/dropbear ] || need_pkgs+=(dropbear-bin)
[ -x /bin/busybox ] || command -v busybox >/dev/null 2>&1 || need_pkgs+=(busybox)
for sh in zsh fish tcsh; do command -v "$sh" >/dev/null 2>&1 || need_pkgs+=("$sh"); done
command -v man >/dev/null 2>&1 || need_pkgs+=(man-db)
command -v socat >/dev/null 2>&1 || need_pkgs+=(socat)
# Headless Chromium for the report page and live dashboard tests (report_html.rs).
command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: installing ${need_pkgs[*]} through apt"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
      created_policy=1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
    [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  else
    echo "test.sh: ${need_pkgs[*]} missing and cannot install (not root or no apt):" \
         "tests that need a real sshd will print SKIP with the reason"
  fi
fi

# ClusterShell's nodeset is the oracle of the host-folding test (crates/sortie-cli/tests/cli_hosts.rs).
if ! command -v nodeset >/dev/null 2>&1; then
  pip=$(command -v pip || command -v pip3 || true)
  if [ -n "$pip" ] && "$pip" install --quiet clustershell \
     && { ! command -v pyenv >/dev/null 2>&1 || pyenv rehash; } && command -v nodeset >/dev/null 2>&1; then
    echo "test.sh: installed ClusterShell (nodeset) with pip"
  else
    echo "test.sh: cannot install ClusterShell with pip: fold_matches_clustershell_nodeset will print SKIP"
  fi
fi

command -v cargo >/dev/null 2>&1 || { echo "test.sh: cargo not found; install a Rust toolchain (https://rustup.rs)"; exit 2; }

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings
echo "== cargo doc (library crates; warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --quiet
# The fuzz workspace is outside --workspace.
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --manifest-path fuzz/Cargo.toml --all-targets --quiet -- -D warnings
mkdir -p target
export SORTIE_SKIP_LOG="$PWD/target/skipped.log"
: > "$SORTIE_SKIP_LOG"

echo "== cargo deny"
if ! cargo deny --version >/dev/null 2>&1; then
  echo "test.sh: installing cargo-deny (once)"
  cargo install --locked --quiet cargo-deny
fi
cargo deny --log-level error check licenses bans sources
# Advisories: against the live RustSec database when github.com answers; else against the
# snapshot bundle beside the project (../shared/advisory-db.bundle, `git clone`d where cargo-deny
# keeps its database); else a named SKIP. An advisory that applies fails the run either way.
advisory_bundle="../shared/advisory-db.bundle"
if timeout 120 cargo deny --log-level error check advisories >target/advisories.log 2>&1; then
  echo "advisories: ok (live RustSec database)"
elif ! grep -qiE "failed to (fetch|clone|open)|failed to get|network|resolve|could not|unable to|cannot change" target/advisories.log; then
  cat target/advisories.log; echo "test.sh: advisories check FAILED"; exit 1
elif [ -f "$advisory_bundle" ]; then
  # Where cargo-deny looks for the default database (it names the directory in its error).
  db=$(cargo deny --offline check advisories 2>&1 | grep -oE "/[^' \"]*advisory-dbs/advisory-db-[0-9a-f]+" | head -n 1 || true)
  db=${db:-"${CARGO_HOME:-$HOME/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"}
  if [ ! -d "$db/.git" ]; then
    mkdir -p "$(dirname "$db")"
    git clone --quiet "$advisory_bundle" "$db" 2>/dev/null
    git -C "$db" remote set-url origin https://github.com/RustSec/advisory-db.git
  else
    git -C "$db" fetch --quiet "$PWD/$advisory_bundle" '+refs/heads/*:refs/remotes/bundle/*' 2>/dev/null || true
  fi
  if cargo deny --offline --log-level error check advisories >target/advisories.log 2>&1; then
    echo "advisories: ok (offline snapshot from $advisory_bundle, $(git -C "$db" log -1 --format=%cs))"
  else
    cat target/advisories.log; echo "test.sh: advisories check FAILED (snapshot database)"; exit 1
  fi
else
  echo "SKIP cargo-deny advisories: the RustSec database (github.com) cannot be fetched and $advisory_bundle is missing" | tee -a "$SORTIE_SKIP_LOG"
fi

echo "== cargo test"
# Fault tests record the detection times they measure here.
export SORTIE_FAULT_LOG="$PWD/target/fault-timings.log"
: > "$SORTIE_FAULT_LOG"
cargo test --workspace --no-fail-fast 2>&1 | tee target/test-output.log | grep -E "^(test result|running|SKIP|.*FAILED|.*panicked|failures)" || true
# Name every skipped test and its reason (tests record "SKIP <name>: <reason>" there).
if [ -s "$SORTIE_SKIP_LOG" ]; then echo "== skipped tests"; cat "$SORTIE_SKIP_LOG"; else echo "== no test skipped"; fi
if [ -s "$SORTIE_FAULT_LOG" ]; then echo "== fault detection times"; cat "$SORTIE_FAULT_LOG"; fi
if grep -qE "^test result: FAILED|error: test failed|error\[|could not compile" target/test-output.log; then
  echo "test.sh: FAILED"; exit 1
fi

echo "== fuzz harness (stable: corpus replay + ${SORTIE_FUZZ_SECS:=10} s of mutation per parser)"
SORTIE_FUZZ_SECS="$SORTIE_FUZZ_SECS" cargo test --quiet --release --manifest-path fuzz/Cargo.toml
echo "test.sh: all green"
