#!/usr/bin/env bash
# Fuzz the request guard together with the kafka-protocol decoder it protects
# (request_decode), and the validator of produced record batches (record_validate).
#
#   tools/fuzz.sh [seconds] [target...]   # default 60 s, both targets side by side;
#                                         # exits non-zero when a crash is found
#
# Seeds are committed in fuzz/seeds/<target>. request_decode's (valid frames of every api
# and version) are regenerated with
#   FJORD_FUZZ_SEEDS=$PWD/fuzz/seeds/request_decode \
#     cargo test -p fjord-broker --lib -- --ignored write_fuzz_seeds
# record_validate's are the client batches of broker/src/log/validate/fixtures, as sent
# and wrapped (see the target's header). New inputs go to fuzz/corpus/<target>, crashes
# to fuzz/artifacts/ (both ignored by git). A crash becomes a regression test in
# broker/src/protocol/guard.rs or broker/src/log/validate/tests.rs.
set -euo pipefail

seconds="${1:-60}"
repo="$(cd "$(dirname "$0")/.." && pwd)"
cache="${FJORD_CACHE:-$HOME/.cache/fjord}"
export CARGO_INSTALL_ROOT="${CARGO_INSTALL_ROOT:-$cache/cargo-bin}"
export PATH="$CARGO_INSTALL_ROOT/bin:$PATH"
target_dir="${FJORD_FUZZ_TARGET_DIR:-$cache/target-fuzz}"
sanitizer="${FJORD_FUZZ_SANITIZER:-address}"
# The broker crate is most of the build: 16 codegen units let both cores compile it
# (cargo fuzz's default of 1 compiles it on one), for slightly slower executions.
build=(--sanitizer "$sanitizer" --target-dir "$target_dir" --codegen-units "${FJORD_FUZZ_CODEGEN_UNITS:-16}")

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "installing cargo-fuzz into $CARGO_INSTALL_ROOT" >&2
    cargo install cargo-fuzz --locked
fi

targets=("${@:2}")
[[ ${#targets[@]} -gt 0 ]] || targets=(request_decode record_validate)

cd "$repo/fuzz"
# limits TARGET: libFuzzer's bounds for one target.
limits() {
    case "$1" in
        # -max_len covers frames with a few populated arrays; -rss_limit_mb turns an
        # allocation the guard should have prevented into a reported crash, not a hang.
        request_decode) echo -max_len=65536 -rss_limit_mb=2048 ;;
        # One allocation above 64 MiB is a crash: the validator holds a fixed buffer and
        # one codec's state (a zstd window of 16 MiB at most), never the records.
        record_validate) echo -max_len=262144 -rss_limit_mb=2048 -malloc_limit_mb=64 ;;
        *) echo "fuzz.sh: unknown target $1" >&2; return 2 ;;
    esac
}
for target in "${targets[@]}"; do limits "$target" > /dev/null || exit 2; done
for target in "${targets[@]}"; do cargo +nightly fuzz build "${build[@]}" "$target"; done

# The targets fuzz at the same time, one per core: the step takes `seconds`, not
# `seconds` per target. Each one's output goes to a log, printed in full
# when it found something and as its final stats otherwise.
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for target in "${targets[@]}"; do
    corpus="$repo/fuzz/corpus/$target"
    mkdir -p "$corpus"
    # shellcheck disable=SC2046 # limits prints separate flags
    cargo +nightly fuzz run "${build[@]}" \
        "$target" "$corpus" "$repo/fuzz/seeds/$target" -- \
        -max_total_time="$seconds" $(limits "$target") -print_final_stats=1 \
        > "$logs/$target.log" 2>&1 &
    pids+=($!)
done
rc=0
for i in "${!targets[@]}"; do
    if wait "${pids[$i]}"; then
        echo "fuzz.sh: ${targets[$i]}: no crash in ${seconds}s"
        grep -a '^stat::' "$logs/${targets[$i]}.log" || true
    else
        echo "fuzz.sh: ${targets[$i]} FAILED:"
        cat "$logs/${targets[$i]}.log"
        rc=1
    fi
done
exit $rc
