#!/usr/bin/env bash
# Fuzz the request guard together with the kafka-protocol decoder it protects.
#
#   tools/fuzz.sh [seconds]      # default 60; exits non-zero when a crash is found
#
# Seeds (valid frames of every api and version) are committed in
# fuzz/seeds/request_decode; regenerate them with
#   FJORD_FUZZ_SEEDS=$PWD/fuzz/seeds/request_decode \
#     cargo test -p fjord-broker --lib -- --ignored write_fuzz_seeds
# New inputs go to fuzz/corpus/request_decode, crashes to fuzz/artifacts/ (both ignored
# by git). A crash becomes a regression test in broker/src/protocol/guard.rs.
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${FJORD_CACHE:-$HOME/.cache/fjord}"
export CARGO_INSTALL_ROOT="${CARGO_INSTALL_ROOT:-$cache/cargo-bin}"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
target_dir="${FJORD_FUZZ_TARGET_DIR:-$cache/target-fuzz}"
sanitizer="${FJORD_FUZZ_SANITIZER:-address}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $CARGO_INSTALL_ROOT" >&2
    cargo install cargo-fuzz --locked
fi

corpus="$repo/fuzz/corpus/request_decode"
seeds="$repo/fuzz/seeds/request_decode"
mkdir -p "$corpus"

cd "$repo/fuzz"
# -max_len covers frames with a few populated arrays; -rss_limit_mb turns an
# allocation the guard should have prevented into a reported crash, not a hang.
exec cargo +nightly fuzz run --sanitizer "$sanitizer" --target-dir "$target_dir" \
    request_decode "$corpus" "$seeds" -- \
    -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 -print_final_stats=1
