#!/usr/bin/env bash
# Runs the README's worked examples as a user would paste them, so the README cannot drift
# from what works:
#
#   e2e/readme.sh
#
# A fenced block right after a line `<!-- e2e/readme.sh expects: TEXT -->` runs with bash
# -e in a scratch directory holding a link to this repository's e2e/ and `fjord` (the
# binary FJORD_BIN, default $CARGO_TARGET_DIR/debug/fjord) on the PATH; it passes when it
# exits 0 and printed a line TEXT. Processes it leaves in the background are stopped when
# it ends. The commands use the broker's default ports, so each block runs in a network
# namespace of its own (unshare -n) where they are free; where namespaces are not allowed
# it runs in this one and needs the ports free. Exits 1 if any block failed.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
README="$HERE/../README.md"
FJORD_BIN="${FJORD_BIN:-${CARGO_TARGET_DIR:-$HERE/../target}/debug/fjord}"
[[ -x $FJORD_BIN ]] || { echo "readme.sh: no fjord binary at $FJORD_BIN (set FJORD_BIN)" >&2; exit 2; }
for tool in kcat curl openssl; do
  command -v "$tool" >/dev/null || { echo "readme.sh: $tool is required" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Each marked block to $work/N.sh, its expected line to $work/N.expect.
awk -v dir="$work" '
  match($0, /^<!-- e2e\/readme\.sh expects: .* -->$/) {
    expect = $0; sub(/^<!-- e2e\/readme\.sh expects: /, "", expect); sub(/ -->$/, "", expect)
    marked = 1; next
  }
  marked && /^```/ && !inside { inside = 1; n++; print expect > (dir "/" n ".expect"); next }
  inside && /^```$/ { inside = 0; marked = 0; next }
  inside { print > (dir "/" n ".sh") }
  marked && !inside && !/^```/ { marked = 0 }
' "$README"
blocks=("$work"/*.sh)
[[ -e ${blocks[0]} ]] || { echo "readme.sh: no marked block in $README" >&2; exit 2; }

# A new namespace has only a loopback interface, down: `ip` brings it up.
netns=(unshare -n)
if ! unshare -n ip link set lo up 2>/dev/null; then
  echo "readme.sh: no network namespace with loopback here (needs unshare and ip); the blocks use this one's ports" >&2
  netns=()
fi

failed=0
for block in "${blocks[@]}"; do
  n="$(basename "$block" .sh)"
  expect="$(cat "$work/$n.expect")"
  scratch="$work/run-$n"
  mkdir -p "$scratch/bin"
  ln -s "$HERE" "$scratch/e2e"
  ln -s "$(realpath "$FJORD_BIN")" "$scratch/bin/fjord"
  # The block runs in a shell that stops its background jobs (the broker) on the way out.
  cat > "$scratch/run.sh" <<RUN
set -euo pipefail
if [[ -n "${netns[*]}" ]]; then ip link set lo up; fi
trap 'kill \$(jobs -p) 2>/dev/null || true; wait' EXIT
cd "$scratch"
PATH="$scratch/bin:\$PATH"
source "$block"
RUN
  rc=0
  timeout -k 10 300 "${netns[@]}" bash "$scratch/run.sh" > "$scratch/out.log" 2>&1 || rc=$?
  if [[ $rc -eq 0 ]] && grep -qxF -- "$expect" "$scratch/out.log"; then
    echo "ok   README block $n: printed '$expect'"
  else
    echo "FAIL README block $n (exit $rc; expected a line '$expect'):"
    sed 's/^/    /' "$block"
    echo "  output:"
    tail -n 40 "$scratch/out.log" | sed 's/^/    /'
    failed=1
  fi
done
exit $failed
