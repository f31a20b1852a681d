#!/usr/bin/env bash
# Bounds cargo's cached target dir between test runs. Every commit builds the
# workspace's crates and test binaries under new hashes, and the old ones stay on disk
# for good (3-5 GB a run); left alone the cache grew past 40 GB. The workspace's own
# artifacts older than a day are deleted (a commit rebuilds them anyway), and any
# artifact not read for PRUNE_AFTER_DAYS days; cargo rebuilds a missing artifact, so
# the cost of a wrong guess is a rebuild, never a wrong result. If the dir is still
# above PRUNE_MAX_GB, it is emptied. Run from the workspace root.
set -euo pipefail
dir="${1:?usage: prune-target.sh <cargo target dir>}"
days="${PRUNE_AFTER_DAYS:-2}"
max_gb="${PRUNE_MAX_GB:-40}"
[[ -d "$dir" ]] || exit 0
before=$(du -sm "$dir" | cut -f1)
# The workspace's targets (crates, binaries, test binaries) by their artifact names.
workspace=$(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
names = {t["name"].replace("-", "_") for p in json.load(sys.stdin)["packages"] for t in p["targets"]}
print("\n".join(sorted(names)))')
for sub in debug release; do
  deps="$dir/$sub/deps"
  [[ -d "$deps" ]] || continue
  while read -r name; do
    find "$deps" -maxdepth 1 -type f \( -name "$name-*" -o -name "lib$name-*" \) -mtime +0 -delete
  done <<< "$workspace"
done
# Access times suffice even on relatime mounts: an artifact read once in the last day
# has an access time within it.
for sub in debug release; do
  for part in deps build .fingerprint incremental; do
    [[ -d "$dir/$sub/$part" ]] || continue
    find "$dir/$sub/$part" -mindepth 1 -maxdepth 1 -atime +"$days" -exec rm -rf {} +
  done
done
after=$(du -sm "$dir" | cut -f1)
if (( after > max_gb * 1024 )); then
  echo "target dir still ${after} MB after pruning (limit ${max_gb} GB): emptied"
  rm -rf "${dir:?}"/debug "${dir:?}"/release
  after=0
fi
echo "target dir: ${before} MB -> ${after} MB (artifacts unread for ${days} days removed)"
