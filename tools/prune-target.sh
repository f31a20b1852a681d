#!/usr/bin/env bash
# Bounds cargo's cached target dir between test runs. Every commit builds the
# workspace's crates and test binaries under new hashes, and the old ones stay on disk
# for good (about 2 GB a run); left alone the cache grew past 40 GB. Artifacts not read
# for PRUNE_AFTER_DAYS days are deleted (cargo rebuilds a missing artifact, so the cost of
# a wrong guess is a rebuild, never a wrong result); if the dir is still above
# PRUNE_MAX_GB, it is emptied.
set -euo pipefail
dir="${1:?usage: prune-target.sh <cargo target dir>}"
days="${PRUNE_AFTER_DAYS:-2}"
max_gb="${PRUNE_MAX_GB:-40}"
[[ -d "$dir" ]] || exit 0
before=$(du -sm "$dir" | cut -f1)
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
